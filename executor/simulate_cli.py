"""``router-tuner simulate``: the main job (what ``make run`` runs).

Replays the recorded markets (or, loudly, the synthetic market when no data directory is found) with a
seeded stream of small intents, routes the same intents under always-taker, the static policy, the old
rule policy, every fixed arm of the tuner grid and the tuner with each learner, scores each learner's
greedy arm off-policy on its own log beside that arm's fixed run, journals every RouterEvent, logs one
MLflow run (and registers the learners' final policies) and writes the report. Prints the per-symbol
table of mean cost; with ``--json`` the last stdout line is one JSON object with every number of the
report.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import get_args

from config.models import LearnerName

LEARNERS: tuple[str, ...] = get_args(LearnerName)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--symbols", nargs="+", default=None,
                        help="our symbol names (e.g. BTCUSDT ETHUSDT_SPOT); default: every recorded market")
    parser.add_argument("--orders", type=int, default=None,
                        help="orders per symbol (default: router.json simulation.intents.orders_per_symbol)")
    parser.add_argument("--seed", type=int, default=None, help="seed (default: tuner.json seed)")
    parser.add_argument("--data", default=None,
                        help="recorded data directory (default: $ROUTER_TUNER_DATA, then ../shared/data/binance)")
    parser.add_argument("--out", default="var", help="output directory for journal and report (default: var)")
    parser.add_argument("--config", default=None, help="configuration directory (default: the embedded defaults)")
    parser.add_argument("--learners", default=",".join(LEARNERS),
                        help=f"comma-separated learners to run the tuner with (default: {','.join(LEARNERS)})")
    parser.add_argument("--no-mlflow", action="store_true", help="do not log the run to MLflow")
    parser.add_argument("--json", action="store_true", help="print the summary as one JSON line last on stdout")


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from config.loader import load_config
    from executor.report import summary_dict, text_table, write_report
    from executor.simulation import SimulationOptions, count_routes, load_markets, simulate
    from executor.simulation_io import json_line, log_to_mlflow, write_journal
    from executor.simulation_learners import parse_learners
    from tuner.factory import build_grid

    try:
        learners = parse_learners(args.learners)
    except ValueError as error:
        print(f"router-tuner simulate: --learners: {error}", file=sys.stderr)
        return 2
    config = load_config(args.config)
    options = SimulationOptions(
        symbols=tuple(args.symbols) if args.symbols else None,
        orders_per_symbol=(args.orders if args.orders is not None
                           else config.router.simulation.intents.orders_per_symbol),
        seed=args.seed if args.seed is not None else config.tuner.seed, data_dir=args.data, learners=learners)
    markets, source = load_markets(config, options)
    if source == "synthetic":
        print("WARNING: no recorded market data found (--data, $ROUTER_TUNER_DATA, ../shared/data/binance): "
              "simulating the SYNTHETIC market of router.json simulation.synthetic_market", file=sys.stderr)
    grid = build_grid(config.tuner, config.router)
    total = count_routes(markets, options, grid)
    with tqdm(total=total, desc="routing", unit="order", file=sys.stderr, mininterval=0.5) as bar:
        result = simulate(config, markets, options, grid, data_source=source, progress=bar.update)
    out = Path(args.out)
    journal = write_journal(result, out)
    report = write_report(result, out / "report")
    summary = summary_dict(result)
    summary["journal"] = str(journal)
    summary["report"] = str(report.html)
    if not args.no_mlflow:
        run_id, versions = log_to_mlflow(result, config, summary, [report.html, report.markdown, *report.plots])
        summary["mlflow_run_id"] = run_id
        summary["policy_versions"] = versions
    print(f"mean cost per order (bps), {options.orders_per_symbol} orders per symbol, seed {options.seed}, "
          f"data {source}:")
    print(text_table(result))
    print(f"journal: {journal}\nreport: {report.html}")
    if args.json:
        print(json_line(summary))
    return 0
