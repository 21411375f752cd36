"""``router-tuner ope``: score a candidate policy on a journal's logged router events, one symbol at a time.

``--candidate`` is an arm id (``o1.00_b0.00``), a policy JSON file (a RouterPolicy document, as the
registry stores it), or an MLflow reference ``SYMBOL@ALIAS`` / ``SYMBOL/VERSION``. With an MLflow
candidate the result is also logged to that version's run. ``--baseline`` takes the same forms and is
scored on the same events; without it the baseline is the logging policy's own (on-policy) value.

Per symbol, never pooled: a policy's cost is a fact about one market (spot pays 10 bps taker, perpetuals
5), so an average over markets is a number about the mix of the log, not about the policy. The symbol is
``--symbol``, else the candidate's own (an MLflow reference or a policy file that names one), else every
symbol in the log, each scored on its own events. ``--since``/``--until`` (ISO-8601, UTC when no zone is
given; on the order's arrival time) and ``--logging-policy ID[:VERSION]`` narrow the events.
Every number printed or returned is a cost in bps (lower is better); ``diff`` is candidate minus baseline
with its paired bootstrap interval (negative: the candidate is cheaper). A symbol that cannot be scored (no
support, a propensity outside (0, 1]) makes the command exit 2 after the others are printed, so a script does
not take a partial answer for a whole one.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import functools
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from router_tuner.cli.main import (
    BadInput,
    add_tracking_uri,
    model_prefix_option,
    path_argument,
    path_text,
    refuse_missing_store,
    refuse_partial,
    symbol_name,
)
from router_tuner.config.encoding import encoding_problem
from router_tuner.config.text import json_error_hint, repeated_keys

if TYPE_CHECKING:
    from router_tuner.router.events import RouterEvent
    from router_tuner.tuner.ope.compare import Comparison
    from router_tuner.tuner.ope.cost import CostInterval

_MLFLOW_REF = re.compile(r"^(?P<symbol>[A-Z0-9_]+)(?:@(?P<alias>[a-z_]+)|/(?P<version>\d+))$")
_LOGGING_POLICY = re.compile(r"^(?P<id>[^:\s].*?)(?::(?P<version>\d+))?$")
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--journal", required=True, type=path_argument, help="journal SQLite file with router events")
    parser.add_argument("--candidate", required=True, help="arm id, policy JSON file, or SYMBOL@ALIAS|SYMBOL/N")
    parser.add_argument("--baseline", default=None,
                        help="a second policy scored on the same events (default: the logging policy's own value)")
    parser.add_argument("--symbol", type=symbol_name, default=None,
                        help="only this symbol (default: the candidate's symbol, else each symbol of the log alone)")
    parser.add_argument("--since", default=None, help="only orders that arrived at or after this ISO-8601 time")
    parser.add_argument("--until", default=None, help="only orders that arrived before this ISO-8601 time")
    parser.add_argument("--logging-policy", default=None, metavar="ID[:VERSION]",
                        help="only orders routed by this policy id (and version)")
    parser.add_argument("--config", default=None, type=path_text, help="config directory (default: embedded defaults)")
    add_tracking_uri(parser)
    parser.add_argument("--prefix", default=None,
                        help="registered model name prefix of SYMBOL@ALIAS and SYMBOL/N (default: tuner.json "
                             "mlflow.registered_model_prefix; a simulated learner's models are <router.json "
                             "simulation.registered_model_prefix>-<learner>, as `policy list --simulation` shows)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")


@dataclass(frozen=True, slots=True)
class _Ref:
    """A resolved ``--candidate``/``--baseline``: its arm, the symbol it belongs to, its MLflow run."""

    arm: str
    symbol: str | None
    run_id: str | None


@dataclass(frozen=True, slots=True)
class _Filters:
    """The event filters of one command line (times in ns on the arrival clock, half-open window)."""

    since_ns: int | None
    until_ns: int | None
    policy_id: str | None
    policy_version: int | None

    def keeps(self, event: RouterEvent) -> bool:
        return ((self.since_ns is None or event.arrival_ts_ns >= self.since_ns)
                and (self.until_ns is None or event.arrival_ts_ns < self.until_ns)
                and (self.policy_id is None or event.policy_id == self.policy_id)
                and (self.policy_version is None or event.policy_version == self.policy_version))


def _each_key_once(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A policy document's object; a key given twice is refused (``json`` scored the last offset silently)."""
    if repeated := repeated_keys(key for key, _ in pairs):
        raise ValueError(f"not a RouterPolicy document (duplicate key(s) {', '.join(repeated)}: give each once)")
    return dict(pairs)


def _outside_bounds(ref: str, document: dict[str, Any], bounds: Any) -> str | None:
    """What of a policy file's bounded knobs lies outside ``router.json`` ``policy_bounds`` (None: all inside, or
    not given). No router routes such a policy (``RouterPolicy.validate`` refuses it), so scoring it is refused
    by name: a maker offset of 500 bps read only "candidate arm o500.00_b0.00 was never taken with a fill", and
    a knob the arm does not show (``maker_ttl_ms`` -1) was not read at all."""
    from router_tuner.router.policy import BOUNDED_KNOBS

    for knob in BOUNDED_KNOBS:
        value, band = document.get(knob), getattr(bounds, knob)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and not band.min <= value <= band.max:
            return (f"{ref}: {knob} {value:g} is outside router.json policy_bounds [{band.min:g}, {band.max:g}]: no "
                    "router routes such a policy; give a value within the bounds")
    return None


def _resolve(ref: str, registry_factory: Any, bounds: Any) -> _Ref:
    """The arm, symbol and MLflow run of a candidate reference; ValueError when it names nothing or names a
    policy file outside ``bounds`` (``router.json`` ``policy_bounds``)."""
    from router_tuner.tuner.arms import arm_id_of_policy

    path = Path(ref)
    if path.suffix == ".json" or path.is_file():
        if not path.is_file():
            raise ValueError(f"{ref}: no such policy file")
        data = path.read_bytes()
        if (problem := encoding_problem(data)) is not None:  # a BOM read "decode using utf-8-sig": Python's advice
            raise ValueError(f"{ref}: {problem}")
        try:
            document = json.loads(data.decode("utf-8"), object_pairs_hook=_each_key_once)
        except json.JSONDecodeError as error:
            raise ValueError(f"{ref}:{error.lineno}: not JSON ({error.msg}){json_error_hint(error)}") from None
        except UnicodeDecodeError:
            raise ValueError(f"{ref}: not a RouterPolicy document (not UTF-8 text)") from None
        except RecursionError:  # it was "unexpected RecursionError", exit 1
            raise ValueError(f"{ref}: not a RouterPolicy document (nested too deeply)") from None
        except ValueError as error:  # a key given twice
            raise ValueError(f"{ref}: {error}") from None
        if not isinstance(document, dict):
            raise ValueError(f"{ref}: not a RouterPolicy document (a JSON object)")
        symbol = document.get("symbol")
        arm = arm_id_of_policy(document, ref)
        if (problem := _outside_bounds(ref, document, bounds)) is not None:
            raise ValueError(problem)
        if symbol is not None and (not isinstance(symbol, str) or not symbol.strip()):  # 7 or "" scored every symbol
            raise ValueError(f"{ref}: not a RouterPolicy document (symbol must be a symbol name such as \"BTCUSDT\", "
                             f"got {symbol!r}; leave the key out to score each symbol of the log)")
        return _Ref(arm, symbol.strip().upper() if symbol is not None else None, None)  # case ignored, as --symbol
    match = _MLFLOW_REF.match(ref)
    if match is not None and ("@" in ref or "/" in ref):
        from router_tuner.tuner.registry import RegistryError

        try:
            version = registry_factory().show(match["symbol"], match["alias"] or match["version"])
        except RegistryError as error:
            raise ValueError(f"{ref}: {error} (see `router-tuner policy list`)") from None
        return _Ref(arm_id_of_policy(version.policy, ref), match["symbol"], version.run_id)
    return _Ref(ref, None, None)


def _time_ns(text: str | None, flag: str) -> int | None:
    if text is None:
        return None
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{flag} {text!r}: not an ISO-8601 time (e.g. 2024-08-08T23:55:00Z)") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return (moment - _EPOCH) // dt.timedelta(microseconds=1) * 1_000


def _filters(args: argparse.Namespace) -> _Filters:
    since_ns, until_ns = _time_ns(args.since, "--since"), _time_ns(args.until, "--until")
    if since_ns is not None and until_ns is not None and since_ns >= until_ns:
        raise ValueError(f"--since {args.since} is not before --until {args.until}: the window is empty")
    policy_id = policy_version = None
    if args.logging_policy is not None:
        match = _LOGGING_POLICY.match(args.logging_policy)
        if match is None:
            raise ValueError(f"--logging-policy {args.logging_policy!r}: expected ID or ID:VERSION")
        policy_id = match["id"]
        policy_version = int(match["version"]) if match["version"] else None
    return _Filters(since_ns, until_ns, policy_id, policy_version)


def _symbols(args: argparse.Namespace, refs: Sequence[tuple[str, _Ref]], events: Sequence[RouterEvent]) -> list[str]:
    """The symbols to score: the one asked for or implied by the refs (which must agree), else every one logged."""
    asked = {("--symbol", args.symbol)} if args.symbol else set()
    asked |= {(flag, ref.symbol) for flag, ref in refs if ref.symbol is not None}
    named = {symbol for _, symbol in asked}
    if len(named) > 1:
        raise ValueError("symbols disagree: " + ", ".join(f"{flag} is {symbol}" for flag, symbol in sorted(asked))
                         + "; score one symbol at a time")
    return sorted(named) if named else sorted({e.symbol for e in events})


def _row(name: str, cost: CostInterval, base: CostInterval | None, diff: CostInterval | None, ess: float,
         gap: float | None) -> str:
    cells = [f"{round(v, 3) + 0.0:>10.3f}" if v is not None else f"{'-':>10}" for v in (  # -1e-16 is 0.000, not -0.000
        cost.cost_bps, cost.ci_low_bps, cost.ci_high_bps, base.cost_bps if base is not None else None,
        *((diff.cost_bps, diff.ci_low_bps, diff.ci_high_bps) if diff is not None else (None, None, None)))]
    return f"  {name:<16}{''.join(cells)}{ess:>9.1f}{gap or 0.0:>13.3f}"


def _table(comparison: Comparison) -> str:
    from router_tuner.tuner.ope.cost import CostInterval

    cand, base = comparison.candidate, comparison.baseline
    against = f"baseline {base.candidate_arm}" if base is not None else "the logging policy (on_policy)"
    flagged = sum(cand.skipped_flagged.values())
    lines = [f"{comparison.symbol}: candidate {cand.candidate_arm} vs {against} on {cand.n_events} filled "
             f"events ({cand.skipped_unfilled} unfilled skipped, {flagged} flagged left out); cost in bps, lower is "
             "better, "
             f"diff = candidate - baseline (paired)",
             f"  {'estimator':<16}{'cost_bps':>10}{'ci_low':>10}{'ci_high':>10}{'base_bps':>10}{'diff_bps':>10}"
             f"{'diff_low':>10}{'diff_high':>10}{'ess':>9}{'support_gap':>13}",
             _row(cand.logging.estimator, CostInterval.of(cand.logging), None, None, cand.logging.ess, None)]
    for name, est in cand.estimates.items():
        base_cost = CostInterval.of(base.estimates[name]) if base is not None else CostInterval.of(cand.logging)
        lines.append(_row(name, CostInterval.of(est), base_cost, comparison.differences[name], est.ess,
                          est.support_gap_share))
    lines.extend(f"  warning: {w}" for w in comparison.warnings)
    reports = [cand] if base is None else [cand, base]
    lines.extend(f"  note: {note}" for note in cand.notes)
    lines.extend(f"  note: {note}" for note in sorted({n for r in reports for e in r.estimates.values()
                                                       for n in e.notes}))
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    """Failures end in ``cli.main``'s one line: a bad configuration, journal, candidate or filter is exit 2, an
    MLflow store or a locked journal that fails is exit 1."""
    from router_tuner.config import load_config

    bundle = load_config(args.config)

    @functools.cache
    def registry() -> Any:
        """One registry for the whole command (candidate, baseline and the run it logs to)."""
        from router_tuner.tuner.registry import PolicyRegistry

        mlflow_config = bundle.tuner.mlflow
        refuse_missing_store(mlflow_config.tracking_uri, args.tracking_uri)
        return PolicyRegistry(mlflow_config.tracking_uri, mlflow_config.experiment,
                              args.prefix or mlflow_config.registered_model_prefix, override_uri=args.tracking_uri)

    if args.prefix is not None:
        model_prefix_option(args.prefix)

    if not args.journal.is_file():
        raise BadInput(f"no journal at {args.journal}: pass the SQLite journal a run wrote "
                       "(e.g. var/simulation.sqlite)")
    try:
        return _score(args, bundle, registry)
    except ValueError as error:  # what the journal, the candidate or the filters hold that cannot be scored
        raise BadInput(str(error)) from error


def _read_journal(path: Path, symbol: str | None) -> list[RouterEvent]:
    """The journal's router events; a file that is not an SQLite database is bad input, a locked one is not."""
    import sqlite3

    from router_tuner.executor.journal import Journal
    from router_tuner.router.events import RouterEvent

    try:
        with Journal(path, readonly=True) as journal:
            return [e for e in journal.read("router", symbol=symbol) if isinstance(e, RouterEvent)]
    except sqlite3.DatabaseError as error:
        if isinstance(error, sqlite3.OperationalError):
            raise
        raise ValueError(f"{path}: not a journal ({error})") from None


def _policy_hint(logged: Sequence[RouterEvent], filters: _Filters) -> str:
    """What the log holds when ``--logging-policy`` names nothing in it: the ids nearest the one asked for (a
    simulation's journal holds a hundred), or the versions of that id; empty when the policy is not the reason."""
    import difflib

    if filters.policy_id is None:
        return ""
    versions = sorted({e.policy_version for e in logged if e.policy_id == filters.policy_id})
    if versions:
        return ("" if filters.policy_version is None or filters.policy_version in versions else
                f"; {filters.policy_id} logged version(s) {', '.join(map(str, versions))}")
    ids = sorted({e.policy_id for e in logged})
    by_lower = {policy_id.lower(): policy_id for policy_id in ids}  # a wrong case is the likeliest slip
    near = [by_lower[m] for m in difflib.get_close_matches(filters.policy_id.lower(), by_lower, n=3, cutoff=0.5)]
    near = near or ids[:3]
    return (f"; no policy {filters.policy_id} in the log, which holds {len(ids)} (e.g. {', '.join(near)}): "
            "the ids are the journal's policy_id") if ids else ""


def _score(args: argparse.Namespace, bundle: Any, registry: Any) -> int:
    from router_tuner.tuner.arms import loose_arm_problem
    from router_tuner.tuner.ope.compare import compare, concurrent_policies_warning, policy_spans
    from router_tuner.tuner.ope.cost import cost_of_reward

    filters = _filters(args)
    for flag, ref in (("--candidate", args.candidate), ("--baseline", args.baseline)):
        if ref is not None and (problem := loose_arm_problem(ref)) is not None:
            raise ValueError(f"{flag} {problem}")
    bounds = bundle.router.policy_bounds
    candidate = _resolve(args.candidate, registry, bounds)
    baseline = _resolve(args.baseline, registry, bounds) if args.baseline is not None else None
    refs = [("--candidate", candidate)] + ([("--baseline", baseline)] if baseline is not None else [])
    unused = [flag for flag, value in (("--tracking-uri", args.tracking_uri), ("--prefix", args.prefix)) if value]
    if unused and not any(ref.run_id is not None for _, ref in refs):
        raise ValueError(f"{' and '.join(unused)}: only for an MLflow reference (SYMBOL@ALIAS, SYMBOL/N), and neither "
                         f"--candidate nor --baseline is one, so it would be ignored: drop it, or name a registered "
                         f"version")
    logged = _read_journal(args.journal, args.symbol or candidate.symbol)
    events = [e for e in logged if filters.keeps(e)]
    symbols = _symbols(args, refs, events)
    if not events or not symbols:
        where = f" for {symbols[0]}" if symbols else ""
        raise ValueError(f"no router events{where} in {args.journal} match the filters "
                         f"({len(logged)} before --since/--until/--logging-policy){_policy_hint(logged, filters)}")
    results, skipped = [], []
    for symbol in symbols:
        try:
            scored = compare(events, candidate.arm, baseline.arm if baseline else None, bundle.tuner.ope,
                             seed=bundle.tuner.seed, symbol=symbol,
                             min_effective_sample_size=bundle.tuner.deployment.promotion.min_effective_sample_size)
        except ValueError as error:
            skipped.append({"symbol": symbol, "reason": str(error)})
            continue
        spans = policy_spans([e for e in events if e.symbol == symbol])
        if (mixed := concurrent_policies_warning(spans, "--logging-policy ID scores one of them")) is not None:
            scored = dataclasses.replace(scored, warnings=(*scored.warnings, mixed))
        results.append(scored)
    if not results:
        raise ValueError("nothing could be scored: " + "; ".join(f"{s['symbol']}: {s['reason']}" for s in skipped))
    output = {"cost_unit": "bps", "results": [r.to_dict() for r in results], "skipped": skipped,
              "filters": {"symbol": args.symbol, "since": args.since, "until": args.until,
                          "logging_policy": args.logging_policy}}
    if candidate.run_id is not None:
        (only,) = results
        metrics = {f"ope_{name}_cost_bps": cost_of_reward(est.value) for name, est in only.candidate.estimates.items()}
        metrics |= {f"ope_{name}_diff_cost_bps": diff.cost_bps for name, diff in only.differences.items()}
        registry().log_to_run(candidate.run_id, metrics=metrics, artifact=output, artifact_file="ope/ope_report.json")
    if args.json:
        print(json.dumps(output, sort_keys=True))
    else:
        print("\n\n".join(_table(r) for r in results))
        if candidate.run_id is not None:
            print(f"logged to MLflow run {candidate.run_id}")
    refuse_partial({s["symbol"]: s["reason"] for s in skipped}, len(symbols))
    return 0
