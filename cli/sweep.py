"""``router-tuner sweep``: learner settings x learners x seeds x symbols x data, as independent tasks.

``--workers 1`` (the default) runs every task in this process; ``--workers N`` starts a local Ray with N
CPUs for the command and stops it at the end; ``--address`` joins a running Ray cluster (every node must
have the package installed and the data folders at the same paths). Each finished task is checkpointed in
``OUT/tasks/``: run the same command again after an interruption and only the unfinished tasks run. The
result is ``OUT/sweep.parquet``, one row per (settings, learner, seed, symbol, data) with the learner's
cost and interval, regret against the best fixed arm and the captured share of the taker -> best fixed
arm gap; and, unless ``--no-mlflow``, one MLflow parent run with a nested run per row (in ``--tracking-uri``, else
``MLFLOW_TRACKING_URI``, else ``tuner.json`` ``mlflow.tracking_uri``, as in ``simulate``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, get_args

from router_tuner.cli.main import (
    INTERRUPTED,
    MAX_WORKERS,
    SYMBOLS_RULE,
    BadInput,
    SymbolList,
    add_tracking_uri,
    path_text,
    probe_writable,
    ray_address,
    refuse_tracking_uri_without_mlflow,
    whole_number,
)
from router_tuner.config.models import MAX_COUNT, LearnerName

LEARNERS: tuple[str, ...] = get_args(LearnerName)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--workers", type=whole_number(1, MAX_WORKERS), default=1,
                       help="tasks at once: 1 runs them in this process, N > 1 starts a local Ray (default: 1)")
    where.add_argument("--address", default=None, type=ray_address,
                       help="join a running Ray cluster (HOST:PORT of its head; a cluster with Ray's token "
                            "authentication needs Ray's own RAY_AUTH_* environment, as Ray documents)")
    parser.add_argument("--learners", default=",".join(LEARNERS),
                        help=f"comma-separated learners (default: {','.join(LEARNERS)})")
    parser.add_argument("--seeds", default=None, help="comma-separated seeds (default: tuner.json seed)")
    parser.add_argument("--symbols", nargs="+", action=SymbolList, default=None,
                        help=f"our symbol names, {SYMBOLS_RULE} (default: every market of the first --data source)")
    parser.add_argument("--data", nargs="+", default=None, type=path_text,
                        help="recorded data folders and/or 'synthetic' (default: $ROUTER_TUNER_DATA, then "
                             "../shared/data/binance beside the repository, else synthetic)")
    parser.add_argument("--orders", type=whole_number(1, MAX_COUNT), default=None,
                        help="orders per task (default: router.json simulation.intents.orders_per_symbol)")
    parser.add_argument("--set", dest="axes", action="append", default=[], metavar="tuner.KEY=V1,V2",
                        help="a grid axis over one tuner.json key (repeat for more axes), e.g. "
                             "--set tuner.learner_params.epsilon=0.05,0.1")
    parser.add_argument("--config", default=None, type=path_text,
                        help="configuration directory (default: the embedded defaults)")
    parser.add_argument("--out", default="var/sweep", type=path_text, help="output folder: checkpoints and the table "
                        "(default: var/sweep)")
    parser.add_argument("--no-mlflow", action="store_true", help="do not log the sweep to MLflow")
    add_tracking_uri(parser)


def run(args: argparse.Namespace) -> int:
    from router_tuner.config.loader import ConfigError, load_config
    from router_tuner.simulation.sweep.grid import GridError

    refuse_tracking_uri_without_mlflow(args)
    config = load_config(args.config)
    try:
        grid, params = _plan(args, config)
    except ConfigError:  # one line naming the file and key, as a load's
        raise
    except (GridError, ValueError, FileNotFoundError) as error:
        print(f"router-tuner sweep: {_one_line(error)}", file=sys.stderr)
        return 2
    return _execute(args, config, grid, params)


def _plan(args: argparse.Namespace, config: Any) -> tuple[Any, dict[str, str]]:
    from router_tuner.router.market.binance import resolve_data_dir
    from router_tuner.simulation.learners import parse_learners, refuse_unrunnable
    from router_tuner.simulation.markets import recorded_files, refuse_non_usd_quote
    from router_tuner.simulation.sweep.grid import SYNTHETIC, available_symbols, build_grid, parse_axis

    learners = parse_learners(args.learners)
    refuse_unrunnable(config, learners, args.symbols)
    seeds = [config.tuner.seed] if args.seeds is None else [_int(s, "--seeds") for s in _split(args.seeds)]
    if args.data is None:
        default = resolve_data_dir(None)
        data = [SYNTHETIC if default is None else str(default.resolve())]
    else:
        data = [d if d == SYNTHETIC else str(_existing_dir(d)) for d in _split(" ".join(args.data))]
    if args.symbols is None:  # every market of the first source: a recording outside the universe is refused, as
        symbols = list(available_symbols(config, data[0]))  # `simulate` refuses it (it was passed over, unsaid)
        if data[0] != SYNTHETIC:
            recorded_files(config, Path(data[0]), None)
    else:
        symbols = args.symbols
        if any(d != SYNTHETIC for d in data):  # a task failed on it at run time (exit 1), on every rerun
            for symbol in symbols:
                refuse_non_usd_quote(config, symbol)
    orders = args.orders if args.orders is not None else config.router.simulation.intents.orders_per_symbol
    axes = [parse_axis(text) for text in args.axes]
    grid = build_grid(config, config_dir=args.config, learners=learners, seeds=seeds, symbols=symbols, data=data,
                      orders=orders, axes=axes)
    params = {"learners": ",".join(learners), "seeds": ",".join(map(str, seeds)), "symbols": ",".join(symbols),
              "data": ",".join(data), "orders": str(orders), "axes": " ".join(args.axes) or "none",
              "tasks": str(len(grid.tasks))}
    return grid, params


def _execute(args: argparse.Namespace, config: Any, grid: Any, params: dict[str, str]) -> int:
    from tqdm import tqdm

    from router_tuner.simulation.sweep.run import run_sweep
    from router_tuner.simulation.sweep.store import CheckpointError, CheckpointStore, DamagedCheckpoint
    from router_tuner.simulation.sweep.table import TABLE_NAME, sweep_rows, write_table
    from router_tuner.tuner.cluster import ClusterError, open_runner

    out = Path(args.out)
    store = CheckpointStore(out)
    probe_writable(store.folder)  # before the tasks, not as the first task's failure
    table_path = out / TABLE_NAME
    if table_path.exists() and not table_path.is_file():  # found after every task had run, before
        raise BadInput(f"{table_path} exists and is not a file: move it away (the table is written there)")
    if not args.no_mlflow:  # an MLflow store that cannot be opened or does not answer fails now, not after the sweep
        from router_tuner.tuner.registry import open_client, resolve_tracking_uri

        open_client(resolve_tracking_uri(config.tuner.mlflow.tracking_uri, override=args.tracking_uri))
    try:  # before Ray and the progress bar: every rerun would stop at such a checkpoint until it is moved
        for task in grid.tasks:
            store.load(task)
    except DamagedCheckpoint as error:
        raise BadInput(_one_line(error)) from error
    runner = open_runner(args.workers, args.address)
    total = len(grid.tasks)
    done = 0
    try:
        with runner as tasks, tqdm(total=total, desc="sweep", unit="task", file=sys.stderr,
                                   mininterval=0.5) as bar:
            def advance(_task: Any) -> None:
                nonlocal done
                done += 1
                bar.update(1)

            outcome = run_sweep(grid, tasks, store, on_done=advance)
    except KeyboardInterrupt:
        print(f"router-tuner sweep: interrupted: {done} of {total} tasks are recorded in {out / 'tasks'}; "
              "run the same command again to resume", file=sys.stderr)
        return INTERRUPTED
    except (ClusterError, CheckpointError) as error:
        print(f"router-tuner sweep: {_one_line(error)}", file=sys.stderr)
        return 1
    except Exception as error:  # a task failed on a worker: say which, keep what finished
        print(f"router-tuner sweep: a task failed ({done} of {total} recorded, rerun to resume): "
              f"{_one_line(error)}", file=sys.stderr)
        return 1
    rows = sweep_rows(grid, outcome.results)
    table = write_table(rows, out)
    print(f"sweep: {total} tasks ({outcome.ran} run now, {outcome.resumed} resumed from checkpoints), "
          f"{len(rows)} rows in {table}")
    _print_summary(rows)
    if not args.no_mlflow:
        from router_tuner.simulation.sweep.tracking import SweepStateError, log_sweep

        try:
            parent, added = log_sweep(rows, params, config, table, out, tracking_uri=args.tracking_uri)
        except SweepStateError as error:  # a rerun would fail the same way: the file is named, and what to do
            raise BadInput(f"MLflow logging refused (the table is written): {error}") from error
        except Exception as error:  # the table is written; MLflow is the optional record
            print(f"router-tuner sweep: MLflow logging failed (the table is written; rerun to retry): "
                  f"{_one_line(error)}", file=sys.stderr)
            return 1
        print(f"mlflow: parent run {parent}, {added} nested runs added")
    return 0


def _print_summary(rows: list[dict[str, Any]]) -> None:
    """Mean over seeds, symbols and data per (learner, settings): cost, regret and captured share."""
    import pandas as pd

    frame = pd.DataFrame(rows)
    summary = frame.groupby(["learner", "settings"], sort=False).agg(
        runs=("task_id", "size"), mean_cost_bps=("mean_cost_bps", "mean"), regret_bps=("regret_bps", "mean"),
        captured_share=("captured_share", "mean"))
    print(summary.to_string(float_format=lambda v: f"{v:.3f}"))


def _split(text: str) -> list[str]:
    return [part for chunk in text.split(",") for part in chunk.split() if part]


def _int(text: str, flag: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"{flag}: {text!r} is not an integer") from None


def _existing_dir(text: str) -> Path:
    path = Path(text).expanduser()
    if not path.is_dir():
        raise FileNotFoundError(f"--data: no folder at {path}")
    return path.resolve()


def _one_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__
