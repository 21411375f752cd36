"""``router-tuner ope-dataset``: score a candidate arm on a partitioned dataset of router events, on one core or Ray.

The dataset is what ``journal export --partitioned DIR`` writes (``DIR/day=.../symbol=.../part-0.parquet``).
Per symbol, never pooled, as ``router-tuner ope`` scores: each symbol's partitions (optionally a range of
days) are one log, evaluated as two rounds of one task per partition and combined exactly
(:mod:`tuner.ope.partition.evaluate`). ``--workers N`` starts a local Ray for the command, ``--address`` joins
a cluster (the dataset must be readable at the same path on every node); the numbers are the same either
way. Every number printed is a cost in bps (lower is better); the warnings are ``ope``'s (a low ESS, IPS and SNIPS
disagreeing, logging policies that routed over the same time: :mod:`tuner.ope.compare`). A symbol that cannot
be scored (no support, a partition that does not read) makes the command exit 2, in one stderr line, after the
others are printed.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from typing import Any

from router_tuner.cli.main import (
    MAX_WORKERS,
    BadInput,
    path_argument,
    path_text,
    ray_address,
    refuse_partial,
    symbol_name,
    whole_number,
)
from router_tuner.config.models import SEED_MAX

_ONE_POLICY = "the dataset has no filter by policy: score one of them with `ope --journal FILE --logging-policy ID`"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dataset", required=True, type=path_argument,
                        help="folder written by journal export --partitioned")
    parser.add_argument("--candidate", required=True, help="the arm to score (e.g. o1.00_b0.00)")
    parser.add_argument("--symbol", type=symbol_name, default=None,
                        help="only this symbol (default: each symbol on its own)")
    parser.add_argument("--since-day", default=None, metavar="YYYY-MM-DD", help="first UTC day to include")
    parser.add_argument("--until-day", default=None, metavar="YYYY-MM-DD", help="last UTC day to include")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--workers", type=whole_number(1, MAX_WORKERS), default=1,
                       help="tasks at once: 1 runs them in this process, N > 1 starts a local Ray (default: 1)")
    where.add_argument("--address", default=None, type=ray_address, help="join a running Ray cluster (HOST:PORT)")
    parser.add_argument("--seed", type=whole_number(0, SEED_MAX), default=None,
                        help="bootstrap seed (default: tuner.json seed)")
    parser.add_argument("--config", default=None, type=path_text, help="config directory (default: embedded defaults)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")


def run(args: argparse.Namespace) -> int:
    from router_tuner.config.loader import load_config
    from router_tuner.tuner.arms import loose_arm_problem
    from router_tuner.tuner.ope.partition.layout import DatasetError, Partition, list_partitions

    config = load_config(args.config)
    if (problem := loose_arm_problem(args.candidate)) is not None:
        raise BadInput(f"--candidate {problem}")
    try:
        since, until = (_day(args.since_day, "--since-day"), _day(args.until_day, "--until-day"))
        if since is not None and until is not None and since > until:
            raise ValueError(f"--since-day {since} is after --until-day {until}: the range is empty")
        every = list_partitions(args.dataset)
        partitions = [p for p in every
                      if (since is None or p.day >= since) and (until is None or p.day <= until)
                      and (args.symbol is None or p.symbol == args.symbol)]
        if not partitions:
            raise DatasetError(f"no partition of {args.dataset} matches --symbol/--since-day/--until-day; it holds "
                               f"{_holdings(every)}")
    except (DatasetError, ValueError) as error:
        print(f"router-tuner ope-dataset: {error}", file=sys.stderr)
        return 2
    by_symbol: dict[str, list[Partition]] = {}
    for partition in partitions:
        by_symbol.setdefault(partition.symbol, []).append(partition)
    seed = args.seed if args.seed is not None else config.tuner.seed
    return _score(args, config, by_symbol, seed)


def _score(args: argparse.Namespace, config: Any, by_symbol: dict[str, list[Any]], seed: int) -> int:
    from router_tuner.tuner.cluster import ClusterError, TaskFailed, open_runner
    from router_tuner.tuner.ope.compare import arm_warnings, concurrent_policies_warning
    from router_tuner.tuner.ope.partition.evaluate import evaluate_partitions
    from router_tuner.tuner.ope.partition.layout import DatasetError

    reports: dict[str, dict[str, Any]] = {}
    try:
        with open_runner(args.workers, args.address) as runner:
            for symbol, parts in by_symbol.items():
                try:
                    report = evaluate_partitions(parts, args.candidate, config.tuner.ope, seed=seed, runner=runner)
                except ValueError as error:  # no support for the candidate on this symbol's log
                    reports[symbol] = {"error": str(error)}
                    continue
                warnings = arm_warnings(report, config.tuner.deployment.promotion.min_effective_sample_size)
                if (mixed := concurrent_policies_warning(report.policy_spans, _ONE_POLICY)) is not None:
                    warnings.append(mixed)
                reports[symbol] = report.to_dict() | {"days": [parts[0].day, parts[-1].day], "warnings": warnings}
    except (ClusterError, TaskFailed, DatasetError, OSError) as error:
        print(f"router-tuner ope-dataset: {error}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps({"candidate_arm": args.candidate, "seed": seed, "symbols": reports}, allow_nan=False))
    else:
        for symbol, report in reports.items():
            if "error" not in report:
                _print(symbol, report)
    refuse_partial({symbol: report["error"] for symbol, report in reports.items() if "error" in report},
                   len(reports))
    return 0


def _print(symbol: str, report: dict[str, Any]) -> None:
    logging = report["logging"]
    print(f"{symbol}: {report['candidate_arm']} on {report['n_events']:,} filled events in {report['n_partitions']} "
          f"partitions, days {report['days'][0]}..{report['days'][1]}; logging policy "
          f"{logging['cost_bps']:.3f} bps [{logging['ci_low_bps']:.3f}, {logging['ci_high_bps']:.3f}]")
    for name, est in report["estimates"].items():
        print(f"  {name:<12} {est['cost_bps']:8.3f} bps [{est['ci_low_bps']:.3f}, {est['ci_high_bps']:.3f}]  "
              f"ESS {est['ess']:,.0f}")
    for warning in report["warnings"]:
        print(f"  warning: {warning}")
    for note in report["notes"]:
        print(f"  note: {note}")


def _holdings(partitions: list[Any]) -> str:
    """What a dataset holds, for a filter that matched none of it: its days and symbols."""
    days = sorted({p.day for p in partitions})
    return f"days {days[0]}..{days[-1]}, symbols {', '.join(sorted({p.symbol for p in partitions}))}"


def _day(text: str | None, flag: str) -> str | None:
    if text is None:
        return None
    try:
        return dt.date.fromisoformat(text).isoformat()
    except ValueError:
        raise ValueError(f"{flag}: {text!r} is not a YYYY-MM-DD day") from None
