"""``router-tuner ope``: score a candidate policy on a journal's logged router events.

``--candidate`` is an arm id (``o1.00_b0.00``), a policy JSON file (a RouterPolicy document, as the
registry stores it), or an MLflow reference ``SYMBOL@ALIAS`` / ``SYMBOL/VERSION``. With an MLflow
candidate the result is also logged to that version's run. ``--baseline`` takes the same forms and is
scored on the same events, so the two can be compared side by side.
"""

from __future__ import annotations

import argparse
import functools
import json
import re
import sys
from pathlib import Path
from typing import Any

_MLFLOW_REF = re.compile(r"^(?P<symbol>[A-Z0-9_]+)(?:@(?P<alias>[a-z_]+)|/(?P<version>\d+))$")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--journal", required=True, type=Path, help="journal SQLite file with router events")
    parser.add_argument("--candidate", required=True, help="arm id, policy JSON file, or SYMBOL@ALIAS|SYMBOL/N")
    parser.add_argument("--baseline", default=None, help="a second policy to score on the same events")
    parser.add_argument("--symbol", default=None, help="only this symbol's events (default: the MLflow "
                                                       "reference's symbol, else all)")
    parser.add_argument("--config", default=None, help="config directory (default: embedded defaults)")
    parser.add_argument("--tracking-uri", default=None, help="MLflow tracking URI (overrides env and config)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")


def _resolve(ref: str, registry_factory: Any) -> tuple[str, str | None, str | None]:
    """(arm id, symbol or None, MLflow run id or None) of a candidate reference."""
    from tuner.arms import arm_id_of_policy

    path = Path(ref)
    if path.suffix == ".json" or path.is_file():
        if not path.is_file():
            raise ValueError(f"{ref}: no such policy file")
        return arm_id_of_policy(json.loads(path.read_text()), ref), None, None
    match = _MLFLOW_REF.match(ref)
    if match is not None and ("@" in ref or "/" in ref):
        version = registry_factory().show(match["symbol"], match["alias"] or match["version"])
        return arm_id_of_policy(version.policy, ref), match["symbol"], version.run_id
    return ref, None, None


def _table(report: Any, title: str) -> str:
    lines = [f"{title}: arm {report.candidate_arm} on {report.n_events} filled events "
             f"({report.skipped_unfilled} unfilled skipped), symbol {report.symbol or 'all'}",
             f"  {'estimator':<16}{'cost_bps':>10}{'ci_low':>10}{'ci_high':>10}{'ess':>10}{'support_gap':>13}"]
    rows = [report.logging, *report.estimates.values()]
    for est in rows:
        lines.append(f"  {est.estimator:<16}{-est.value:>10.3f}{-est.ci_high:>10.3f}{-est.ci_low:>10.3f}"
                     f"{est.ess:>10.1f}{est.support_gap_share if est.support_gap_share is not None else 0:>13.3f}")
    notes = sorted({note for est in rows for note in est.notes})
    lines.extend(f"  note: {note}" for note in notes)
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from config import ConfigError, load_config
    from executor.journal import Journal
    from tuner.ope.run import evaluate_candidate

    try:
        bundle = load_config(args.config)
    except ConfigError as error:
        print(f"ope: {error}", file=sys.stderr)
        return 2

    @functools.cache
    def registry() -> Any:
        """One registry for the whole command (candidate, baseline and the run it logs to)."""
        from tuner.registry import PolicyRegistry

        mlflow_config = bundle.tuner.mlflow
        return PolicyRegistry(mlflow_config.tracking_uri, mlflow_config.experiment,
                              mlflow_config.registered_model_prefix, override_uri=args.tracking_uri)

    if not args.journal.is_file():
        print(f"ope: no journal at {args.journal}", file=sys.stderr)
        return 2
    try:
        candidate_arm, ref_symbol, run_id = _resolve(args.candidate, registry)
        symbol = args.symbol or ref_symbol
        with Journal(args.journal, readonly=True) as journal:
            events = list(journal.read("router", symbol=symbol))
        seed = bundle.tuner.seed
        candidate = evaluate_candidate(events, candidate_arm, bundle.tuner.ope, seed=seed, symbol=symbol)
        baseline = None
        if args.baseline is not None:
            baseline_arm, _, _ = _resolve(args.baseline, registry)
            baseline = evaluate_candidate(events, baseline_arm, bundle.tuner.ope, seed=seed, symbol=symbol)
    except (ValueError, OSError) as error:
        print(f"ope: {error}", file=sys.stderr)
        return 2
    result = {"candidate": candidate.to_dict(), "baseline": baseline.to_dict() if baseline else None}
    if run_id is not None:
        metrics = {f"ope_{name}_cost_bps": -est.value for name, est in candidate.estimates.items()}
        registry().log_to_run(run_id, metrics=metrics, artifact=result, artifact_file="ope/ope_report.json")
    if args.json:
        print(json.dumps(result, sort_keys=True))
    else:
        print(_table(candidate, "candidate"))
        if baseline is not None:
            print(_table(baseline, "baseline"))
        if run_id is not None:
            print(f"logged to MLflow run {run_id}")
    return 0
