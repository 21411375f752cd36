"""Decision latency and update throughput of the tuner's learners, against river's Thompson sampling.

Run: ``python -m experiments.bench.learners [--decisions N] [--propensity-draws D ...] [--seed S]``.

Every learner runs on the same 8 arms and the same reward stream in the same process. A decision is
``choose`` including its propensity (river's ``pull`` has none); latencies are per call (p50/p99),
update throughput is updates per second over the whole run. The baseline is
``river.bandit.ThompsonSampling(proba.Gaussian(), seed=...)``, measured in this run, and every figure
is printed next to it as a ratio (latency: ours / river, lower is better; throughput: ours / river,
higher is better).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from river import bandit, proba

from tuner.arms import ArmGrid
from tuner.learners import (
    UCB,
    Context,
    ContextScales,
    EpsilonGreedy,
    Learner,
    LinUCB,
    NormalThompson,
    RobbinsMonro,
    RouteOutcome,
    StructuredThompson,
)


@dataclass(frozen=True, slots=True)
class Result:
    name: str
    p50_us: float
    p99_us: float
    updates_per_s: float


def _rewards(grid: ArmGrid, n: int, seed: int) -> np.ndarray:
    """(n, arms) rewards: arm means spread over 3 bps, 5 bps of noise."""
    rng = np.random.default_rng(seed)
    means = -np.linspace(1.0, 4.0, len(grid))
    return means + rng.normal(0.0, 5.0, size=(n, len(grid)))


def _contexts(n: int, seed: int) -> list[Context]:
    rng = np.random.default_rng(seed)
    return [
        Context(float(rng.uniform(0.5, 8)), float(rng.uniform(1, 60)), float(rng.uniform(-1, 1)),
                float(rng.uniform(0, 24)), float(rng.uniform(0, 2)))
        for _ in range(n)
    ]


def _measure(
    name: str, choose: Callable[[int], int], update: Callable[[int, int], None], n: int, warmup: int
) -> Result:
    for t in range(warmup):
        update(t, choose(t))
    latencies = np.empty(n)
    arms = np.empty(n, dtype=int)
    for t in range(n):
        start = time.perf_counter_ns()
        arms[t] = choose(warmup + t)
        latencies[t] = time.perf_counter_ns() - start
    start = time.perf_counter_ns()
    for t in range(n):
        update(warmup + t, int(arms[t]))
    elapsed_s = (time.perf_counter_ns() - start) / 1e9
    return Result(name, float(np.percentile(latencies, 50)) / 1e3, float(np.percentile(latencies, 99)) / 1e3,
                  n / elapsed_s)


def _outcomes(grid: ArmGrid, n: int, seed: int) -> list[list[RouteOutcome]]:
    """(n, arms) route outcomes for learners that split cost by them: a maker start with the arm's
    probability, and a maker fill half of the time (the speed measured does not depend on the values)."""
    rng = np.random.default_rng(seed + 1)
    maker = rng.random((n, len(grid))) >= np.array([a.taker_bias for a in grid])
    filled = rng.random((n, len(grid))) < 0.5
    return [[RouteOutcome(started_maker=bool(m), maker_filled=bool(m and f)) for m, f in zip(row_m, row_f, strict=True)]
            for row_m, row_f in zip(maker, filled, strict=True)]


def _ours(name: str, learner: Learner, rewards: np.ndarray, contexts: list[Context], n: int, warmup: int,
          outcomes: list[list[RouteOutcome]]) -> Result:
    index = {a: i for i, a in enumerate(learner.grid.arm_ids)}
    ids = learner.grid.arm_ids

    def choose(t: int) -> int:
        return index[learner.choose(contexts[t]).arm.arm_id]

    def update(t: int, i: int) -> None:
        learner.update(ids[i], float(rewards[t, i]), contexts[t], outcomes[t][i])

    return _measure(name, choose, update, n, warmup)


def _river_ts(grid: ArmGrid, rewards: np.ndarray, n: int, warmup: int, seed: int) -> Result:
    policy = bandit.ThompsonSampling(reward_obj=proba.Gaussian(), seed=seed)
    ids = list(grid.arm_ids)
    index = {a: i for i, a in enumerate(ids)}

    def choose(t: int) -> int:
        return index[policy.pull(ids)]

    def update(t: int, i: int) -> None:
        policy.update(ids[i], float(rewards[t, i]))

    return _measure("river ThompsonSampling(Gaussian)", choose, update, n, warmup)


def _river_linucb(grid: ArmGrid, rewards: np.ndarray, contexts: list[Context], scales: ContextScales,
                  n: int, warmup: int, seed: int) -> Result:
    """river's only contextual policy on the same encoded features, as the contextual reference."""
    policy = bandit.LinUCBDisjoint(alpha=1.0, beta=1.0, seed=seed)
    ids = list(grid.arm_ids)
    index = {a: i for i, a in enumerate(ids)}
    features = [dict(enumerate(scales.encode(c).tolist())) for c in contexts]

    def choose(t: int) -> int:
        return index[policy.pull(ids, context=features[t])]

    def update(t: int, i: int) -> None:
        policy.update(ids[i], features[t], float(rewards[t, i]))

    return _measure("river LinUCBDisjoint", choose, update, n, warmup)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--decisions", type=int, default=20_000, help="measured decisions per learner")
    parser.add_argument("--warmup", type=int, default=1_000, help="unmeasured decisions+updates first")
    parser.add_argument("--propensity-draws", type=int, nargs="+", default=[100, 1000],
                        help="Monte-Carlo draws per Thompson decision (one row each)")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)

    grid = ArmGrid.from_values([0.0, 1.0, 2.0, 4.0], [0.0, 0.5], min_offset_bps=0.0, max_offset_bps=10.0)
    total = args.warmup + args.decisions
    rewards = _rewards(grid, total, args.seed)
    contexts = _contexts(total, args.seed)
    scales = ContextScales(spread_scale_bps=5.0, volatility_scale_bps=20.0, size_vs_touch_scale=1.0)

    baseline = _river_ts(grid, rewards, args.decisions, args.warmup, args.seed)
    learners: list[tuple[str, Learner]] = [
        (f"NormalThompson (draws={d})",
         NormalThompson(grid, prior_mean_reward=-3.0, prior_mean_pseudo_count=1.0, prior_noise_std=5.0,
                        prior_noise_pseudo_count=2.0, burn_in=5, propensity_draws=d, seed=args.seed))
        for d in args.propensity_draws
    ]
    learners += [
        ("UCB", UCB(grid, delta=1.0, min_noise_std=1.0, burn_in=5, seed=args.seed)),
        ("EpsilonGreedy", EpsilonGreedy(grid, epsilon=0.2, decay=0.001, min_epsilon=0.05, burn_in=5,
                                        seed=args.seed)),
        ("StructuredThompson (32 replicas)",
         StructuredThompson(grid, replicas=32, forgetting_window=200.0, shrinkage=10.0, maker_fee_bps=2.0,
                            taker_fee_bps=5.0, prior_fallback_drift_bps=1.0, prior_fill_probability=0.5,
                            prior_strength=1.0, burn_in=5, seed=args.seed)),
        ("RobbinsMonro", RobbinsMonro(grid, initial_offset_bps=1.0, step_bps=0.3, step_decay=0.7, exploration=0.1,
                                      baseline_window=100.0, burn_in=5, seed=args.seed)),
        ("LinUCB (7 features)", LinUCB(grid, scales=scales, alpha=5.0, ridge=1.0, prior_mean_reward=-3.0,
                                       burn_in=5, seed=args.seed)),
    ]
    outcomes = _outcomes(grid, total, args.seed)
    ours = [_ours(name, lr, rewards, contexts, args.decisions, args.warmup, outcomes) for name, lr in learners]
    river_lin = _river_linucb(grid, rewards, contexts, scales, args.decisions, args.warmup, args.seed)
    results = [baseline, *ours, river_lin]

    print(f"{len(grid)} arms, {args.decisions} measured decisions after {args.warmup} warm-up, one thread")
    header = f"{'learner':36s} {'p50 us':>8s} {'p99 us':>8s} {'upd/s':>10s} {'p50 x':>7s} {'p99 x':>7s} {'upd x':>7s}"
    print(header)
    print("-" * len(header))
    for r in results:
        print(f"{r.name:36s} {r.p50_us:8.1f} {r.p99_us:8.1f} {r.updates_per_s:10.0f} "
              f"{r.p50_us / baseline.p50_us:7.2f} {r.p99_us / baseline.p99_us:7.2f} "
              f"{r.updates_per_s / baseline.updates_per_s:7.2f}")
    lin = ours[-1]
    print(f"LinUCB vs river LinUCBDisjoint: p50 latency x{lin.p50_us / river_lin.p50_us:.2f}, "
          f"updates x{lin.updates_per_s / river_lin.updates_per_s:.2f}")
    print("x = ratio to river ThompsonSampling(Gaussian) in this run (latency: lower is better; "
          "updates: higher is better). Our decisions include the propensity; river's pull does not.")


if __name__ == "__main__":
    main()
