"""The sweep on one core vs on a local Ray with N workers: wall time ratio, and the same table both ways.

Run: ``.venv/bin/python -m experiments.bench.sweep [--workers 2] [--learners structured,thompson,ucb,...]
[--seeds 1,2] [--symbols BTCUSDT,ETHUSDT] [--orders 400] [--data DIR|synthetic]``

The same grid (``simulation.sweep``) runs three times from this process, each into its own empty checkpoint
folder: every task in this process (``LocalRunner``, the baseline), then on a local Ray of ``--workers`` CPUs,
then on a local Ray of one CPU (the per-worker costs of N workers without the parallelism). Ray's start-up is
timed apart (a cluster that is already running, as with ``sweep --address``, does not pay it); the Ray times
include each worker importing the packages and loading its markets. The three tables must be equal.
On a shared machine other work moves the ratio, so the bench also measures the machine's ceiling in the same
run: how much faster N plain processes finish N equal units of pure CPU work than one process does them in
turn. The load average is printed before and after.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from router_tuner.config import load_config
from router_tuner.router.market.binance import resolve_data_dir
from router_tuner.simulation.learners import LEARNERS, parse_learners
from router_tuner.simulation.sweep.grid import SYNTHETIC, SweepGrid, build_grid
from router_tuner.simulation.sweep.run import run_sweep
from router_tuner.simulation.sweep.store import CheckpointStore
from router_tuner.simulation.sweep.table import sweep_rows
from router_tuner.tuner.cluster import LocalRunner, RayRunner, TaskRunner


def spin(n: int) -> int:
    """A fixed amount of pure CPU work (the calibration unit)."""
    total = 0
    for i in range(n):
        total = (total + i * i) % 1_000_003
    return total


def machine_ceiling(workers: int, n: int = 6_000_000) -> float:
    """How much faster ``workers`` plain processes finish ``workers`` equal units than one process does them one
    after another, right now: the most any N-worker speedup can show while other work shares the machine."""
    with ProcessPoolExecutor(workers) as pool:
        list(pool.map(spin, [1] * workers))  # start the processes before timing
        start = time.perf_counter()
        for _ in range(workers):
            spin(n)
        serial = time.perf_counter() - start
        start = time.perf_counter()
        list(pool.map(spin, [n] * workers))
        parallel = time.perf_counter() - start
    return serial / parallel


def timed_sweep(grid: SweepGrid, runner: TaskRunner, folder: Path) -> tuple[float, list[dict[str, object]]]:
    start = time.perf_counter()
    outcome = run_sweep(grid, runner, CheckpointStore(folder))
    return time.perf_counter() - start, sweep_rows(grid, outcome.results)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--learners", default=",".join(LEARNERS))
    parser.add_argument("--seeds", default="1,2")
    parser.add_argument("--symbols", default="BTCUSDT,ETHUSDT")
    parser.add_argument("--orders", type=int, default=400)
    parser.add_argument("--data", default=None, help="a recorded data folder or 'synthetic' (default: recorded if "
                        "found, else synthetic)")
    args = parser.parse_args()
    config = load_config()
    data = args.data or str(resolve_data_dir(None) or SYNTHETIC)
    grid = build_grid(config, config_dir=None, learners=parse_learners(args.learners),
                      seeds=[int(s) for s in args.seeds.split(",")], symbols=args.symbols.split(","), data=[data],
                      orders=args.orders, axes=[])
    print(f"grid: {len(grid.learner_tasks)} learner tasks + {len(grid.baseline_tasks)} baseline tasks, "
          f"{args.orders} orders each, data {data}")
    print(f"load average before: {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    ceiling_before = machine_ceiling(args.workers)
    with tempfile.TemporaryDirectory() as folder:
        one_core, local_rows = timed_sweep(grid, LocalRunner(), Path(folder) / "local")
        start = time.perf_counter()
        with RayRunner(workers=args.workers) as runner:
            started = time.perf_counter() - start
            on_ray, ray_rows = timed_sweep(grid, runner, Path(folder) / "ray")
        with RayRunner(workers=1) as runner:
            ray_one, ray_one_rows = timed_sweep(grid, runner, Path(folder) / "ray1")
    print(f"one core (in process):  {one_core:7.2f} s")
    print(f"Ray, {args.workers} workers:         {on_ray:7.2f} s  (+{started:.1f} s to start Ray)")
    with_start = one_core / (on_ray + started)
    print(f"ratio one core / Ray: {one_core / on_ray:.2f}x  (with Ray's start-up: {with_start:.2f}x)")
    print(f"Ray, 1 worker:           {ray_one:7.2f} s  -> {args.workers} Ray workers vs 1 Ray worker: "
          f"{ray_one / on_ray:.2f}x (both pay the workers' imports and market loads)")
    identical = ray_rows == local_rows == ray_one_rows
    print(f"identical tables: {identical} ({len(local_rows)} rows)")
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    print(f"machine ceiling ({args.workers} plain processes vs one, same work): {ceiling_before:.2f}x before, "
          f"{machine_ceiling(args.workers):.2f}x after; the sweep reached "
          f"{one_core / on_ray / ceiling_before:.0%} of the ceiling before")
    if not identical:
        raise SystemExit("the Ray sweep's table differs from the one-core table")


if __name__ == "__main__":
    main()
