"""``router-tuner simulate``: the main job (what ``make run`` runs).

Replays the recorded markets (or, loudly, the synthetic market when no data directory is found) with a
seeded stream of small intents, routes the same intents under always-taker, the static policy, the old
rule policy, every fixed arm of the tuner grid and the tuner with each learner, scores each learner's
greedy arm off-policy on its own log beside that arm's fixed run, runs the shadow scenario (the tuner
watches an exploring champion, goes live, then acts) on its symbols, journals every RouterEvent, logs one
MLflow run (and registers the learners' final policies) and writes the report. Prints the per-symbol
table of mean cost; with ``--json`` the last stdout line is one JSON object with every number of the
report.
Bad arguments (an unknown symbol, ``--orders 0``, an unwritable ``--out``, ``--tracking-uri`` with
``--no-mlflow``) end in one line and exit 2 before anything runs (``cli.main``).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, get_args

from router_tuner.cli.main import (
    MAX_WORKERS,
    SYMBOLS_RULE,
    BadInput,
    SymbolList,
    add_tracking_uri,
    path_text,
    probe_writable,
    refuse_tracking_uri_without_mlflow,
    refuse_unknown_symbols,
    whole_number,
)
from router_tuner.config.models import MAX_COUNT, MIN_SIMULATED_ORDERS, SEED_MAX, LearnerName

if TYPE_CHECKING:
    from router_tuner.simulation.job import SimulationResult
    from router_tuner.simulation.report.page import Report

LEARNERS: tuple[str, ...] = get_args(LearnerName)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--symbols", nargs="+", action=SymbolList, default=None,
                        help=f"our symbol names, {SYMBOLS_RULE}; default: every recorded market")
    parser.add_argument("--orders", type=whole_number(MIN_SIMULATED_ORDERS, MAX_COUNT), default=None,
                        help=f"orders per symbol, at least {MIN_SIMULATED_ORDERS} (the report reads each run by "
                             "quarter; default: router.json simulation.intents.orders_per_symbol)")
    parser.add_argument("--seed", type=whole_number(0, SEED_MAX), default=None, help="seed (default: tuner.json seed)")
    parser.add_argument("--data", default=None, type=path_text,
                        help="recorded data directory (default: $ROUTER_TUNER_DATA, then ../shared/data/binance beside "
                             "the repository, whatever the current folder)")
    parser.add_argument("--out", default="var", type=path_text,
                        help="output directory for journal and report (default: var)")
    parser.add_argument("--config", default=None, type=path_text,
                        help="configuration directory (default: the embedded defaults)")
    parser.add_argument("--learners", default=",".join(LEARNERS),
                        help=f"comma-separated learners to run the tuner with (default: {','.join(LEARNERS)})")
    parser.add_argument("--shadow-symbols", nargs="*", action=SymbolList, default=None,
                        help="symbols that also run the shadow scenario (none after the flag: no scenario; "
                             "default: router.json simulation.shadow_scenario.symbols)")
    parser.add_argument("--workers", type=whole_number(1, MAX_WORKERS), default=None,
                        help="processes that share the symbols (default: the CPUs this process may use; the "
                             "results do not depend on it)")
    parser.add_argument("--no-mlflow", action="store_true", help="do not log the run to MLflow")
    add_tracking_uri(parser)
    parser.add_argument("--json", action="store_true",
                        help="print the summary as one JSON line last on stdout (a failure is still one plain "
                             "line on stderr)")


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from router_tuner.config.loader import ConfigError, load_config
    from router_tuner.router.atomic_file import refuse_unreplaceable
    from router_tuner.simulation.intents import crowded_window_warning, intent_window, lot_warning
    from router_tuner.simulation.job import SimulationOptions, count_routes, load_markets, simulate
    from router_tuner.simulation.learners import parse_learners, refuse_unrunnable, unrunnable_reason
    from router_tuner.simulation.recording import JOURNAL_NAME, json_line, log_to_mlflow
    from router_tuner.simulation.report.page import summary_dict, text_table
    from router_tuner.tuner.arms import offsets_at_one_price, one_price_warning
    from router_tuner.tuner.factory import build_grid, frozen_budget_warning

    refuse_tracking_uri_without_mlflow(args)
    try:
        learners = parse_learners(args.learners)
    except ValueError as error:
        raise BadInput(f"--learners: {error}") from None
    config = load_config(args.config)
    _check_symbols(args, config.strategy.universe)
    try:
        refuse_unrunnable(config, learners, args.symbols)
    except ConfigError:
        raise
    except ValueError as error:
        raise BadInput(f"--learners {error}") from None
    shadow = (args.shadow_symbols if args.shadow_symbols is not None
              else config.router.simulation.shadow_scenario.symbols)
    if shadow and config.tuner.learner not in learners:  # the scenario runs tuner.json's learner, --learners or not
        learner = config.tuner.learner
        problem = unrunnable_reason(config, learner, args.symbols)
        if problem is not None:  # it used to end the run once the data had loaded: "unexpected ValueError"
            raise BadInput(f"the shadow scenario runs tuner.json learner {learner}: {problem}; change tuner.json, or "
                           "run no scenario (--shadow-symbols with no symbol after it)")
    out = Path(args.out)
    probe_writable(out / "report")  # before the long run, not after it: the folder, the report folder
    refuse_unreplaceable(out / JOURNAL_NAME)  # and the journal's place
    tracking_uri = None
    if not args.no_mlflow:  # likewise an MLflow store that cannot be opened or a server that does not answer
        from router_tuner.tuner.registry import open_client, resolve_tracking_uri

        tracking_uri = resolve_tracking_uri(config.tuner.mlflow.tracking_uri, override=args.tracking_uri)
        open_client(tracking_uri)  # the first open of a new local store creates its schema: one process at a time
    options = SimulationOptions(
        symbols=tuple(args.symbols) if args.symbols else None,
        orders_per_symbol=(args.orders if args.orders is not None
                           else config.router.simulation.intents.orders_per_symbol),
        seed=args.seed if args.seed is not None else config.tuner.seed, data_dir=args.data, learners=learners,
        shadow_symbols=tuple(args.shadow_symbols if args.shadow_symbols is not None
                             else config.router.simulation.shadow_scenario.symbols),
        workers=args.workers if args.workers is not None else len(os.sched_getaffinity(0)))
    try:
        markets, source = load_markets(config, options)
        for market in markets:
            intent_window(market, config.router.simulation.intents)  # too short: refused before any work
    except ValueError as error:  # a symbol without recorded data, an unreadable or too short tape
        raise BadInput(f"--symbols/--data: {error}") from None
    if source == "synthetic":
        print("WARNING: no recorded market data found (--data, $ROUTER_TUNER_DATA, ../shared/data/binance): "
              "simulating the SYNTHETIC market of router.json simulation.synthetic_market", file=sys.stderr)
    warnings = [] if (frozen := frozen_budget_warning(config, learners)) is None else [frozen]
    for warning in warnings:
        print(f"WARNING: {warning}", file=sys.stderr)
    grid = build_grid(config.tuner, config.router)
    one_price: dict[str, list[tuple[float, ...]]] = {}
    for market in markets:
        if market.data_summary is not None:
            print(f"data: {market.data_summary.describe()}", file=sys.stderr)
        for warning in (crowded_window_warning(market, options.orders_per_symbol, config.router.simulation.intents),
                        lot_warning(market, config.router.simulation.intents)):
            if warning is not None:
                warnings.append(warning)
                print(f"WARNING: {warning}", file=sys.stderr)
        tick_bps = market.tick_bps()  # a median over the whole tape: once per market
        one_price[market.symbol] = offsets_at_one_price(grid, tick_bps)
        if (warning := one_price_warning(market.symbol, grid, tick_bps)) is not None:
            print(f"WARNING: {warning}", file=sys.stderr)
    total = count_routes(markets, options, grid)
    with tqdm(total=total, desc="routing", unit="order", file=sys.stderr, mininterval=0.5) as bar:
        result = simulate(config, markets, options, grid, data_source=source, progress=bar.update)
    journal, report = _write_outputs(result, out, options.workers)
    summary = summary_dict(result)
    for symbol, block in summary["symbols"].items():  # the warning above, for a reader of --json or MLflow's summary
        block["offsets_at_one_price"] = [list(group) for group in one_price[symbol]]
    summary["warnings"] = warnings  # the stderr WARNINGs above, for a reader of --json
    summary["journal"] = str(journal)
    summary["report"] = str(report.html)
    if tracking_uri is not None:
        run_id, versions = log_to_mlflow(result, config, summary, [report.html, report.markdown, *report.assets],
                                         tracking_uri=tracking_uri)
        summary["mlflow_run_id"] = run_id
        summary["policy_versions"] = versions
    print(f"mean cost per order (bps), {options.orders_per_symbol} orders per symbol, seed {options.seed}, "
          f"data {source}:")
    print(text_table(result))
    for symbol, block in summary["shadow"]["symbols"].items():
        print(f"shadow scenario {symbol}: {_shadow_line(block)}")
    if result.shadow_not_simulated:
        print(f"shadow scenario symbols not simulated: {', '.join(result.shadow_not_simulated)}")
    print(f"journal: {journal}\nreport: {report.html}")
    if tracking_uri is not None:  # where a reviewer finds the run (the store may be a default they never named)
        print(f"mlflow: run {summary['mlflow_run_id']} in experiment {config.tuner.mlflow.experiment} at "
              f"{tracking_uri}")
    if args.json:
        print(json_line(summary))
    return 0


def _write_outputs(result: SimulationResult, out: Path, workers: int) -> tuple[Path, Report]:
    """The journal and the report of ``result``, side by side in two forked processes when the job may use two
    CPUs: each is a second or two of single-threaded work (SQLite writing, building the page) over the same
    finished result, and the one that fails is raised here as it would be in this process."""
    from router_tuner.simulation.recording import write_journal
    from router_tuner.simulation.report.page import Report, retire_report, write_report
    from router_tuner.simulation.workers import run_forked

    retire_report(out / "report")  # first: a kill from here on never leaves the previous report beside new outputs
    writers: tuple[Callable[[], Path | Report], ...] = (lambda: write_journal(result, out),
                                                       lambda: write_report(result, out / "report"))
    if workers == 1:
        written = [write() for write in writers]
    else:
        written = run_forked(lambda i, _progress: writers[i](), len(writers), workers=2, progress=None)
    journal, report = written
    assert isinstance(journal, Path) and isinstance(report, Report)
    return journal, report


def _check_symbols(args: argparse.Namespace, universe: Mapping[str, object]) -> None:
    """Symbols named on the command line must be ours, each once: a typo is refused before anything runs."""
    for flag, symbols in (("--symbols", args.symbols), ("--shadow-symbols", args.shadow_symbols)):
        refuse_unknown_symbols(flag, symbols or (), universe, embedded=args.config is None)
        repeated = sorted({symbol for symbol in symbols or () if list(symbols).count(symbol) > 1})
        if repeated:
            raise BadInput(f"{flag} {' '.join(repeated)}: named twice (case is ignored); name each symbol once")


def _shadow_line(block: dict[str, Any]) -> str:
    """One printed line of a shadow scenario: the switch, the OPE value then, the live costs after it."""
    if block["went_live_by"] is None:
        return f"never went live ({block['shadow_orders']} orders in shadow)"
    at = block["at_go_live"]
    from router_tuner.simulation.report.page import ope_estimate_text

    ope = ope_estimate_text(at["estimate"])
    costs = block["costs"]
    live, champ = costs["learner_live"], costs["champion_same_orders"]
    return (f"live after {block['went_live_after_orders']} orders by {block['went_live_by']} "
            f"(agreement {_fmt(at['agreement'])}); OPE of {at['candidate_arm']} then {ope} bps; "
            f"learner live {_fmt(live['mean_cost_bps'])} bps vs champion {_fmt(champ['mean_cost_bps'])} bps "
            f"on the same {live['orders']} orders")


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"
