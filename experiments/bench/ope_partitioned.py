"""Partitioned OPE on a large synthetic log: one core vs Ray workers vs the single-process estimators.

Run: ``.venv/bin/python -m experiments.bench.ope_partitioned [--events 10000000] [--symbols 10] [--days 10]
[--workers 2] [--resamples 1000] [--buckets 2000] [--no-reference] [--dir DIR] [--seed 0]``

Writes the synthetic log (``tuner.ope.partition.synthetic``; generation timed apart), then scores one fixed
arm with every configured estimator three ways over the same files, in this run:

- one core: every partition task in this process (``LocalRunner``; best of two runs), the ratios' baseline;
- Ray: a local cluster of ``--workers`` CPUs (start-up timed apart), the same tasks run twice: cold (each
  worker imports numpy, pyarrow and the packages on its first task) and warm (the figure in the ratio);
- the single-process estimators (``tuner.ope.estimators.evaluate``) on the whole log concatenated in memory:
  point values must agree to float rounding (its intervals use contiguous blocks, ours hashed buckets).

It prints the time per million events, the largest differences between the runs, and a paper estimate for
1B events on N nodes from the measured per-partition cost.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import msgspec
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from experiments.bench.timing import best_of
from router_tuner.config import load_config
from router_tuner.config.models import OpeConfig
from router_tuner.tuner.cluster import LocalRunner, RayRunner
from router_tuner.tuner.ope.estimators import evaluate
from router_tuner.tuner.ope.log import LoggedBandit
from router_tuner.tuner.ope.partition.evaluate import PartitionedReport, evaluate_partitions
from router_tuner.tuner.ope.partition.layout import Partition, list_partitions
from router_tuner.tuner.ope.partition.sufficient import PassTwo, combine_tables, partition_tables
from router_tuner.tuner.ope.partition.synthetic import SyntheticLog, write_synthetic_log
from router_tuner.tuner.ope.policy import fixed_arm_policy
from router_tuner.tuner.ope.reward_model import PerArmMeanModel
from router_tuner.tuner.ope.run import bootstrap_from_config, estimators_from_config

CANDIDATE = "o1.00_b0.00"
SYMBOLS = ("BTCUSDT", "ETHUSDT", "SOLUSDT", "BNBUSDT", "XRPUSDT", "DOGEUSDT", "ADAUSDT", "AVAXUSDT", "LINKUSDT",
           "DOTUSDT", "LTCUSDT", "TRXUSDT")
SCALE_EVENTS = 1_000_000_000
SCALE_NODES = (1, 10, 50)
SCALE_CORES_PER_NODE = 16
DISPATCH_PROBE = 1000


def single_process(partitions: list[Partition], config: OpeConfig, seed: int) -> tuple[float, dict[str, float]]:
    """Seconds (loading not timed) and point values of the single-process estimators on the whole log held in
    memory at once."""
    table = pa.concat_tables(pq.read_table(p.path, columns=["arm", "propensity", "cost_bps"]) for p in partitions)
    table = table.filter(pc.is_valid(table["cost_bps"]))
    arms = table["arm"].unify_dictionaries().combine_chunks()
    arm_ids = tuple(sorted(arms.dictionary.to_pylist()))
    recode = np.array([arm_ids.index(a) for a in arms.dictionary.to_pylist()])
    log = LoggedBandit(actions=recode[arms.indices.to_numpy()], propensities=table["propensity"].to_numpy(),
                       rewards=-table["cost_bps"].to_numpy(), arm_ids=arm_ids)
    seconds, estimates = best_of(1, lambda: evaluate(
        log, fixed_arm_policy(log, CANDIDATE), estimators_from_config(config),
        bootstrap=bootstrap_from_config(config, seed), reward_model=PerArmMeanModel(), weight_quantiles=()))
    return seconds, {name: est.value for name, est in estimates.items()}


def noop(x: int) -> int:
    return x


def merge_seconds(partition: Partition, report: PartitionedReport, config: OpeConfig) -> float:
    """Driver time to add one partition's pass-2 tables into the running total (the serial part)."""
    spec = PassTwo(arm_ids=report.arm_ids, arm_means=np.zeros(len(report.arm_ids)), candidate_arm=CANDIDATE,
                   estimators=tuple(estimators_from_config(config)), n_buckets=config.bootstrap_max_blocks)
    tables = partition_tables(partition.path, spec)
    assert tables is not None
    seconds, _ = best_of(3, lambda: combine_tables([tables] * 200))
    return seconds / 199


def largest_gap(a: PartitionedReport, b: PartitionedReport) -> tuple[float, float]:
    """Largest absolute difference of point values, and of interval bounds, between two reports."""
    values = max(abs(a.estimates[k].value - b.estimates[k].value) for k in a.estimates)
    bounds = max(max(abs(a.estimates[k].ci_low - b.estimates[k].ci_low), abs(a.estimates[k].ci_high
                                                                              - b.estimates[k].ci_high))
                 for k in a.estimates)
    return values, bounds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--symbols", type=int, default=10)
    parser.add_argument("--days", type=int, default=10)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--resamples", type=int, default=1000)
    parser.add_argument("--buckets", type=int, default=2000)
    parser.add_argument("--no-reference", action="store_true", help="skip the in-memory single-process run")
    parser.add_argument("--dir", type=Path, default=None, help="where to write the log (default: a temp folder)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    config = msgspec.structs.replace(load_config().tuner.ope, bootstrap_resamples=args.resamples,
                                     bootstrap_max_blocks=args.buckets)
    spec = SyntheticLog(n_events=args.events, symbols=SYMBOLS[: args.symbols], days=args.days, seed=args.seed)
    with tempfile.TemporaryDirectory(dir=args.dir) as folder:
        start = time.perf_counter()
        write_synthetic_log(Path(folder) / "log", spec)
        generated = time.perf_counter() - start
        partitions = list_partitions(Path(folder) / "log")
        size_mb = sum(p.path.stat().st_size for p in partitions) / 1e6
        print(f"synthetic log: {args.events:,} events in {len(partitions)} partitions ({size_mb:.0f} MB Parquet), "
              f"written in {generated:.1f} s")

        one_core, local = best_of(2, lambda: evaluate_partitions(partitions, CANDIDATE, config, seed=args.seed,
                                                                 runner=LocalRunner()))
        merge = merge_seconds(partitions[0], local, config)
        start = time.perf_counter()
        with RayRunner(workers=args.workers) as runner:
            started = time.perf_counter() - start
            start = time.perf_counter()
            evaluate_partitions(partitions, CANDIDATE, config, seed=args.seed, runner=runner)
            cold = time.perf_counter() - start
            start = time.perf_counter()
            on_ray = evaluate_partitions(partitions, CANDIDATE, config, seed=args.seed, runner=runner)
            ray_time = time.perf_counter() - start
            dispatch, _ = best_of(2, lambda: runner.map(noop, list(range(DISPATCH_PROBE))))
            per_task = dispatch / DISPATCH_PROBE
        size_bytes = sum(p.path.stat().st_size for p in partitions)
        reference = None if args.no_reference else single_process(partitions, config, args.seed)

    millions = args.events / 1e6
    per_partition = one_core / len(partitions)
    print(f"estimators: {', '.join(local.estimates)} (B={args.resamples} resamples over {args.buckets} buckets)")
    print(f"one core:          {one_core:7.2f} s  {one_core / millions:6.3f} s per million events  "
          f"({per_partition * 1e3:.0f} ms per partition of {args.events // len(partitions):,} events, both passes)")
    print(f"Ray, {args.workers} workers:    {ray_time:7.2f} s  {ray_time / millions:6.3f} s per million events  "
          f"(warm; the first run, workers importing the packages: {cold:.2f} s; +{started:.1f} s to start Ray)")
    print(f"ratio one core / Ray: {one_core / ray_time:.2f}x")
    values, bounds = largest_gap(on_ray, local)
    print(f"Ray vs one core: largest |value diff| {values:.2e}, largest |interval bound diff| {bounds:.2e}")
    if reference is not None:
        seconds, reference = reference
        print(f"single-process estimators on the log in memory (reading not timed): {seconds:.2f} s, "
              f"{seconds / millions:.3f} s per million events; one core partitioned / in memory: "
              f"{one_core / seconds:.2f}x")
        worst = max(abs(local.estimates[k].value - reference[k]) / max(abs(reference[k]), 1e-300) for k in reference)
        print(f"partitioned vs single-process estimators: largest relative value diff {worst:.2e}")
        for name, value in reference.items():
            est = local.estimates[name]
            print(f"  {name:<12} cost {-est.value:8.4f} bps [{-est.ci_high:.4f}, {-est.ci_low:.4f}]  "
                  f"single-process {-value:8.4f}")
    efficiency = min(1.0, one_core / (args.workers * ray_time))
    n_partitions = SCALE_EVENTS // (args.events // len(partitions))
    core_seconds = one_core / millions * SCALE_EVENTS / 1e6
    driver = n_partitions * (merge + 2 * per_task)  # serial: two tasks per partition submitted and collected
    scale_gb = size_bytes / args.events * SCALE_EVENTS / 1e9
    print(f"Ray task throughput of one driver here: {per_task * 1e3:.2f} ms per no-op task (best of 2 x "
          f"{DISPATCH_PROBE})")
    print(f"paper scaling to {SCALE_EVENTS:,} events ({scale_gb:,.0f} GB of Parquet) in {n_partitions:,} partitions "
          f"of this size: {core_seconds:,.0f} core-seconds of tasks at the measured rate, run at the parallel "
          f"efficiency measured here ({efficiency:.2f}), plus the driver's serial part: two task round trips "
          f"and one table merge ({merge * 1e3:.2f} ms) per partition, {driver:.0f} s in all:")
    for nodes in SCALE_NODES:
        compute = core_seconds / (nodes * SCALE_CORES_PER_NODE * efficiency)
        print(f"  {nodes:>3} nodes x {SCALE_CORES_PER_NODE} cores: {compute + driver:7.1f} s  (tasks {compute:.1f} s; "
              f"storage must deliver {scale_gb / (compute + driver):.1f} GB/s)")

if __name__ == "__main__":
    main()
