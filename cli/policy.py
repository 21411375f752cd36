"""``router-tuner policy list|show|promote|rollback|go-live``: the policy versions in the MLflow registry.

The tracking URI is ``--tracking-uri`` when given, else ``MLFLOW_TRACKING_URI``, else ``tuner.json``'s
``mlflow.tracking_uri``, else the local SQLite default (see :func:`tuner.registry.resolve_tracking_uri`). A SQLite
store that does not exist is refused, never created: every action reads what a run registered there.

``promote`` moves the challenger (or ``--version``) to champion only when it clears the OPE gate of
:mod:`tuner.promotion` on the recent router events of ``--journal`` (exit 1 with the reason when it does
not); ``--force --who NAME --why TEXT`` skips the gate and records who and why as MLflow tags on the
version and its run; ``--force --version N`` on a champion without a gate record (an alias moved in the
MLflow UI, which a router following the registry does not act on) records the override and so accepts
it. ``rollback`` moves the champion back to the version it replaced, and each further rollback one step
further back through the promotions, never forward to the version it left (exit 1 when no earlier champion
is left); a router reading the champion (``RegistryPolicySource``) follows both without a restart.
``go-live`` asks the tuner to take a symbol out of shadow mode (a registered-model tag the tuner service
follows); on a symbol already live it says so on stderr, changes nothing (the first request's who and why
stay) and exits 0, so a script may repeat it. MLflow is imported inside :func:`run` only. Failures end in
one line (``cli.main``), also under ``--json``: exit 2 for a bad config or command line, 1 when the registry
refuses (no such version, already champion, nothing to roll back to) or the OPE gate does.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from router_tuner.cli.main import (
    BadInput,
    RunFailure,
    add_tracking_uri,
    model_prefix_option,
    path_text,
    print_result,
    reading,
    refuse_missing_store,
    refuse_unknown_symbols,
    symbol_name,
    whole_number,
)
from router_tuner.config.encoding import escape_controls
from router_tuner.config.loader import DEFAULTS_DIR, load_config
from router_tuner.config.models import MAX_COUNT, ConfigBundle
from router_tuner.router.events import RouterEvent
from router_tuner.tuner.gate_record import PROMOTION_TAG, gate_problem

if TYPE_CHECKING:
    from router_tuner.tuner.registry import PolicyRegistry, PolicyVersion


PREFIX_HELP = ("registered model name prefix (default: tuner.json mlflow.registered_model_prefix; a simulated "
               "learner's models are <router.json simulation.registered_model_prefix>-<learner>)")


MAX_RECORD_CHARS = 8000
"""MLflow's limit on a run tag's value (``mlflow.utils.validation.MAX_TAG_VAL_LENGTH``): a forced promotion's who
and why are tagged on the version's run too, and MLflow kept a longer why's first 8000 characters with a log
warning, the command saying it was recorded."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="policy_command", required=True, metavar="ACTION")
    specs = {
        "list": "list policy versions (all symbols, or --symbol), newest first",
        "show": "show one version (--version N, default the champion)",
        "promote": "make the challenger (or --version N) the champion",
        "rollback": "move the champion back to the version it replaced (again: one step further back)",
        "go-live": "take a symbol out of shadow mode (--who and --why are recorded); already live: says so, exit 0",
    }
    for name, help_text in specs.items():
        sub = actions.add_parser(name, help=help_text, description=help_text)
        sub.add_argument("--symbol", type=symbol_name, required=name != "list", default=None,
                         help="symbol, e.g. BTCUSDT")
        if name in ("show", "promote"):
            sub.add_argument("--version", type=whole_number(1, MAX_COUNT), default=None,
                             help="registered version number")
        if name == "promote":
            sub.add_argument("--journal", default=None, type=path_text,
                             help="journal whose recent router events the OPE gate reads")
            sub.add_argument("--force", action="store_true", help="promote without the OPE gate (needs --who, --why)")
        if name in ("promote", "go-live"):
            sub.add_argument("--who", default=None, help="who decides (recorded in MLflow)")
            sub.add_argument("--why", default=None, help="why (recorded in MLflow)")
        if name == "list":
            scope = sub.add_mutually_exclusive_group()
            scope.add_argument("--simulation", action="store_true",
                               help="the simulation's models (router.json simulation.registered_model_prefix, "
                                    "every learner)")
            scope.add_argument("--prefix", default=None, help=PREFIX_HELP)
        else:
            sub.add_argument("--prefix", default=None, help=PREFIX_HELP)
        sub.add_argument("--json", action="store_true",
                         help="print JSON instead of text (a failure is still one plain line on stderr)")
        add_tracking_uri(sub)
        sub.add_argument("--config", default=None, type=path_text, help="config directory (default: embedded defaults)")


def run(args: argparse.Namespace) -> int:
    bundle = load_config(args.config if args.config is not None else DEFAULTS_DIR)
    refuse_unknown_symbols("--symbol", [args.symbol] if args.symbol else [], bundle.strategy.universe,
                           embedded=args.config is None)
    usage = _usage_error(args)
    if usage is not None:
        raise BadInput(f"{args.policy_command} {usage}")
    from router_tuner.tuner.registry import PolicyRegistry

    mlflow_config = bundle.tuner.mlflow
    refuse_missing_store(mlflow_config.tracking_uri, args.tracking_uri)
    registry = PolicyRegistry(mlflow_config.tracking_uri, experiment=mlflow_config.experiment,
                              model_prefix=_model_prefix(args, bundle), override_uri=args.tracking_uri)
    if args.policy_command == "list":
        if getattr(args, "simulation", False) and args.symbol:  # <prefix>-<learner>-<SYMBOL>: one model per learner
            versions = [v for v in registry.list() if v.symbol == args.symbol]
        else:
            versions = registry.list(args.symbol)
    elif args.policy_command == "show":
        versions = [registry.show(args.symbol, str(args.version) if args.version is not None else "champion")]
    elif args.policy_command == "promote":
        versions = [_promote(args, registry, bundle)]
    elif args.policy_command == "go-live":
        versions = [_go_live(args, registry)]
    else:
        left = registry.champion_version(args.symbol)
        versions = [registry.rollback(args.symbol)]
        if left == versions[0].version:  # the alias had moved back already: a rollback killed before its history
            print(f"policy rollback: {args.symbol} champion stays v{left}: an interrupted rollback had moved it "
                  "there; completed", file=sys.stderr)
        else:
            print(f"policy rollback: {args.symbol} champion v{left} -> v{versions[0].version}", file=sys.stderr)
    if not versions:
        simulation_prefix = bundle.router.simulation.registered_model_prefix
        hint = (f"the simulation registers its learners' policies under {simulation_prefix}-*: add --simulation"
                if registry.model_prefix != simulation_prefix else
                "`router-tuner simulate` registers them at its end, replacing the previous simulation's: none "
                "registered yet, or a simulate stopped before registering; run it again")
        of = f" of {args.symbol}" if args.symbol else ""
        print(f"policy list: no policy versions{of} named {registry.model_prefix}-* in {registry.tracking_uri} "
              f"({hint})", file=sys.stderr)
    partial = {model: run for model in sorted({v.model for v in versions})
               if (run := registry.registering(model)) is not None}
    for model, run in partial.items():
        print(f"policy {args.policy_command}: {model} is PART-REGISTERED: {run} stopped before registering its "
              "last version; run that simulate again to replace it", file=sys.stderr)
    if args.json:
        print_result(json.dumps([_as_dict(v) | {"part_registered": v.model in partial} for v in versions],
                                indent=2, sort_keys=True, allow_nan=False))
    else:
        for version in versions:
            print_result(_as_text(version, detailed=args.policy_command != "list"))
    return 0


def _model_prefix(args: argparse.Namespace, bundle: ConfigBundle) -> str:
    """``--prefix``, the simulation's prefix for ``list --simulation``, else ``tuner.json``'s."""
    if args.prefix is not None:
        return model_prefix_option(args.prefix)
    if getattr(args, "simulation", False):
        return bundle.router.simulation.registered_model_prefix
    return bundle.tuner.mlflow.registered_model_prefix


def _usage_error(args: argparse.Namespace) -> str | None:
    """What is missing from a promote or go-live command line, if anything."""
    needs_person = args.policy_command == "go-live" or (args.policy_command == "promote" and args.force)
    if needs_person and not (args.who and args.who.strip() and args.why and args.why.strip()):
        return "needs --who NAME and --why TEXT (recorded in MLflow)"
    if needs_person and any(not c.isprintable() for c in args.who + args.why):
        return "--who and --why: one line of printable text each (a newline or control character would forge lines)"
    if needs_person and max(len(args.who), len(args.why)) > MAX_RECORD_CHARS:  # kept whole or refused, never cut
        return (f"--who and --why: at most {MAX_RECORD_CHARS} characters each (got {len(args.who)} and "
                f"{len(args.why)}): MLflow cuts a longer run tag short; write a shorter reason (link to a longer one)")
    if args.policy_command == "promote" and not args.force and args.journal is None:
        return "needs --journal PATH (the OPE gate scores the challenger on its recent orders) or --force"
    if args.policy_command == "promote" and args.force and args.journal is not None:
        return "--force skips the OPE gate that --journal is for: give --journal to gate, or --force without it"
    if args.policy_command == "promote" and not args.force and (args.who is not None or args.why is not None):
        return ("--who and --why are recorded only with --force (a gated promotion records its OPE verdict): drop "
                "them, or add --force and drop --journal")
    return None


def _go_live(args: argparse.Namespace, registry: PolicyRegistry) -> PolicyVersion:
    """Request go-live unless the symbol is live already (then say so and change nothing); the champion."""
    champion = registry.show(args.symbol, "champion")  # no registered policy: NoSuchVersion, exit 2
    if registry.deployment_mode(args.symbol) == "live":
        print(f"policy go-live: {args.symbol} is already live; nothing changed", file=sys.stderr)
    else:
        registry.request_go_live(args.symbol, who=args.who, why=args.why)
        print(f"policy go-live: {args.symbol} requested live by {args.who}; the tuner takes it out of shadow "
              "mode at its next registry poll", file=sys.stderr)
    return champion


def _promote(args: argparse.Namespace, registry: PolicyRegistry, bundle: ConfigBundle) -> PolicyVersion:
    """Forced, or gated on the journal's recent events; :class:`RunFailure` (exit 1, the reason in the usual
    one line) when the gate refuses."""
    from router_tuner.executor.journal import Journal
    from router_tuner.tuner.promotion import PromotionRule, force_promote, promote_if_better, recent_events

    if args.force:
        return force_promote(registry, args.symbol, who=args.who, why=args.why, version=args.version)
    with reading("journal", args.journal), Journal(Path(args.journal), readonly=True) as journal:
        events = [e for e in journal.read("router", symbol=args.symbol) if isinstance(e, RouterEvent)]
    tuner = bundle.tuner
    rule = PromotionRule.from_config(tuner.deployment)
    _refuse_mixed_log(args.journal, args.symbol, recent_events(events, args.symbol, rule.recent_window_s))
    verdict, promoted = promote_if_better(registry, args.symbol, events, rule,
                                          tuner.ope, seed=tuner.seed, version=args.version)
    if promoted is None:
        raise RunFailure(f"promote refused: {verdict.reason} (the OPE gate)")
    print(f"policy promote: {verdict.reason}", file=sys.stderr)
    return promoted


def _metric(value: float) -> float:
    """A version's metric as logged: MLflow's SQL store saves ±infinity as ±the largest float, shown as ±inf (not
    as a cost of 1.8e308 bps)."""
    return math.copysign(math.inf, value) if abs(value) == sys.float_info.max else value


def _json_metric(value: float) -> float | None:
    """A metric for ``--json``: ``null`` when not finite (NaN, ±inf). Why: ``json.dumps`` wrote ``NaN`` and a
    learner's NaN estimate made ``policy show --json`` invalid JSON for jq and every strict parser."""
    value = _metric(value)
    return value if math.isfinite(value) else None


def _refuse_mixed_log(journal: str, symbol: str, window: list[RouterEvent]) -> None:
    """``BadInput`` when the gate's window was logged by several policies routing over the same time: a simulation's
    journal, where every policy (always-taker, each fixed arm, each learner) routes the same intents. Why: the gate
    scored the challenger against their pooled mixture as if it were the champion's own log, each intent counted once
    per policy, and could promote on it; ``ope`` warns of such a log, the gate said nothing."""
    from router_tuner.tuner.ope.compare import concurrent_policies_warning, policy_spans

    spans = policy_spans(window)
    if concurrent_policies_warning(spans, "") is not None:
        shown = ", ".join(sorted(spans)[:3]) + (", …" if len(spans) > 3 else "")
        raise BadInput(f"promote --journal {journal}: its recent {symbol} router events were logged by {len(spans)} "
                       f"policies routing over the same time ({shown}), as a simulation's journal is: the gate judges "
                       "the challenger on the champion's own log; give the journal `live` wrote under the champion")


def _as_dict(version: PolicyVersion) -> dict[str, Any]:
    metrics = {key: _json_metric(value) for key, value in version.metrics.items()}
    return {"symbol": version.symbol, "model": version.model, "version": version.version, "run_id": version.run_id,
            "aliases": list(version.aliases), "policy": version.policy, "metrics": metrics,
            "gate": {"record": version.tags.get(PROMOTION_TAG), "problem": gate_problem(version.tags)}}


def _as_text(version: PolicyVersion, *, detailed: bool) -> str:
    """The version as one line (``list``) or four (``show``), each line's control characters escaped: tags and
    aliases are anyone's to edit in the MLflow UI, and a symbol tag holding ``\\x1b[2J`` or a newline cleared the
    operator's screen or forged a listed version (``FAKE v9 [champion]``)."""
    return "\n".join(escape_controls(line) for line in _text_lines(version, detailed=detailed))


def _text_lines(version: PolicyVersion, *, detailed: bool) -> list[str]:
    policy = version.policy
    aliases = ",".join(version.aliases) or "-"
    head = (f"{version.symbol} v{version.version} [{aliases}] policy {policy.get('policy_id')} "
            f"v{policy.get('version')} arm {policy.get('arm')} offset {policy.get('maker_offset_bps')} bps "
            f"taker_bias {policy.get('taker_bias')}")
    problem = gate_problem(version.tags)
    if not detailed:
        acting = problem is None or "champion" not in version.aliases
        return [f"{head} model {version.model}" + ("" if acting else f" (champion NOT ACTED ON: {problem})")]
    metrics = " ".join(f"{k}={_metric(v):.4g}" for k, v in sorted(version.metrics.items()))
    gate = f"record {version.tags[PROMOTION_TAG]}" if problem is None else f"none that entitles it to act: {problem}"
    return [head, f"  run {version.run_id}", f"  metrics {metrics or '-'}", f"  gate {gate}"]
