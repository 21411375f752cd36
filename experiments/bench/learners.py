"""Pull+update throughput and decision latency of the tuner's learners, each against river's same-family policy.

Run: ``python -m experiments.bench.learners [--decisions N] [--warmup W] [--seed S]``.

Every policy runs on the same 8 arms and the same reward stream in the same process, one decision then its
update, as the tuner does (so every decision after the first sees a changed posterior: no cache can carry a
propensity over). A decision is our ``choose`` including its propensity (river's ``pull`` has none); latencies
are per decision (p50/p99), throughput is decisions+updates per second, timed over a loop that reads no clock
(then as many decisions again are timed one by one for the latencies). Each of our learners is printed next to
river's policy of the same family, measured in this run: epsilon-greedy and UCB against river's, Thompson and the
structured (bootstrap Thompson) learner against ``ThompsonSampling(proba.Gaussian())``, LinUCB against
``LinUCBDisjoint``; Robbins-Monro has no river counterpart and is compared with river's epsilon-greedy (its
cheapest policy). The targets of issue 17 are checked in the last columns: >= 150k pull+update/s for a
non-contextual learner and >= 50k/s for a contextual one, decision p99 <= 20 us.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from river import bandit, proba

from router_tuner.cli.main import whole_number
from router_tuner.tuner.arms import ArmGrid
from router_tuner.tuner.learners import (
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

NON_CONTEXTUAL_TARGET_PER_S = 150_000.0
CONTEXTUAL_TARGET_PER_S = 50_000.0
P99_TARGET_US = 20.0


@dataclass(frozen=True, slots=True)
class Result:
    name: str
    p50_us: float
    p99_us: float
    cycles_per_s: float
    """Decisions plus their updates per second."""


@dataclass(frozen=True, slots=True)
class Stream:
    """What every policy sees, precomputed so building it is not timed: rewards per (step, arm), contexts,
    the contexts' encodings for river and route outcomes per (step, arm) for the structured learner."""

    rewards: list[list[float]]
    contexts: list[Context]
    features: list[dict[int, float]]
    outcomes: list[list[RouteOutcome]]


def make_stream(grid: ArmGrid, scales: ContextScales, n: int, seed: int) -> Stream:
    """Arm means spread over 3 bps with 5 bps of noise; contexts uniform over plausible ranges; a maker start with
    the arm's probability and a maker fill half of the time (the speed measured does not depend on the values)."""
    rng = np.random.default_rng(seed)
    rewards = (-np.linspace(1.0, 4.0, len(grid)) + rng.normal(0.0, 5.0, size=(n, len(grid)))).tolist()
    contexts = [Context(float(rng.uniform(0.5, 8)), float(rng.uniform(1, 60)), float(rng.uniform(-1, 1)),
                        float(rng.uniform(0, 24)), float(rng.uniform(0, 2))) for _ in range(n)]
    maker = rng.random((n, len(grid))) >= np.array([a.taker_bias for a in grid])
    filled = rng.random((n, len(grid))) < 0.5
    waits = rng.random((n, len(grid)))  # a fill's wait, a share of the TTL (the structured learner's fill speed)
    outcomes = [[RouteOutcome(started_maker=bool(m), maker_filled=bool(m and f),
                              fill_wait_share=float(w) if m and f else None)
                 for m, f, w in zip(row_m, row_f, row_w, strict=True)]
                for row_m, row_f, row_w in zip(maker, filled, waits, strict=True)]
    features = [dict(enumerate(scales.encode(c).tolist())) for c in contexts]
    return Stream(rewards, contexts, features, outcomes)


def measure(name: str, choose: Callable[[int], int], update: Callable[[int, int], None], n: int,
            warmup: int) -> Result:
    """``warmup`` untimed decisions+updates; ``n`` more timed as a whole (the throughput: no clock is read inside
    the loop, since three clock reads cost about a tenth of a fast policy's cycle); then ``n`` more with each
    decision's latency read (p50/p99). The stream holds ``warmup + 2 n`` steps."""
    for t in range(warmup):
        update(t, choose(t))
    clock = time.perf_counter_ns
    start = clock()
    for t in range(warmup, warmup + n):
        update(t, choose(t))
    total_ns = clock() - start
    latencies = np.empty(n)
    for t in range(warmup + n, warmup + 2 * n):
        start = clock()
        arm = choose(t)
        latencies[t - warmup - n] = clock() - start
        update(t, arm)
    return Result(name, float(np.percentile(latencies, 50)) / 1e3, float(np.percentile(latencies, 99)) / 1e3,
                  n / (total_ns / 1e9))


def ours(name: str, learner: Learner, stream: Stream, n: int, warmup: int) -> Result:
    ids = learner.grid.arm_ids
    index = {a: i for i, a in enumerate(ids)}
    contexts, rewards, outcomes = stream.contexts, stream.rewards, stream.outcomes

    def choose(t: int) -> int:
        return index[learner.choose(contexts[t]).arm.arm_id]

    def update(t: int, i: int) -> None:
        learner.update(ids[i], rewards[t][i], contexts[t], outcomes[t][i])

    return measure(name, choose, update, n, warmup)


def river_policy(name: str, policy: bandit.base.Policy, grid: ArmGrid, stream: Stream, n: int, warmup: int, *,
                 contextual: bool = False) -> Result:
    ids = list(grid.arm_ids)
    index = {a: i for i, a in enumerate(ids)}
    rewards, features = stream.rewards, stream.features

    def choose(t: int) -> int:
        return index[policy.pull(ids, context=features[t]) if contextual else policy.pull(ids)]

    def update(t: int, i: int) -> None:
        if contextual:
            policy.update(ids[i], features[t], rewards[t][i])
        else:
            policy.update(ids[i], rewards[t][i])

    return measure(name, choose, update, n, warmup)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--decisions", type=whole_number(100, 10_000_000), default=20_000,
                        help="decisions+updates per policy timed for throughput, then as many for latency")
    parser.add_argument("--warmup", type=whole_number(0, 10_000_000), default=1_000,
                        help="untimed decisions+updates first")
    parser.add_argument("--seed", type=whole_number(0, 2**32 - 1), default=7)
    args = parser.parse_args(argv)

    grid = ArmGrid.from_values([0.0, 1.0, 2.0, 4.0], [0.0, 0.5], min_offset_bps=0.0, max_offset_bps=10.0)
    scales = ContextScales(spread_scale_bps=5.0, volatility_scale_bps=20.0, size_vs_touch_scale=1.0)
    stream = make_stream(grid, scales, args.warmup + 2 * args.decisions, args.seed)
    n, warmup, seed = args.decisions, args.warmup, args.seed

    def river(name: str, policy: bandit.base.Policy, contextual: bool = False) -> Result:
        return river_policy(name, policy, grid, stream, n, warmup, contextual=contextual)

    river_eg = river("river EpsilonGreedy", bandit.EpsilonGreedy(epsilon=0.2, decay=0.001, seed=seed))
    river_ucb = river("river UCB", bandit.UCB(delta=1.0, seed=seed))
    river_ts = river("river ThompsonSampling(Gaussian)", bandit.ThompsonSampling(reward_obj=proba.Gaussian(),
                                                                                 seed=seed))
    river_lin = river("river LinUCBDisjoint", bandit.LinUCBDisjoint(alpha=1.0, beta=1.0, seed=seed), contextual=True)
    pairs: list[tuple[Learner, str, Result]] = [
        (EpsilonGreedy(grid, epsilon=0.2, decay=0.001, min_epsilon=0.05, burn_in=5, seed=seed), "EpsilonGreedy",
         river_eg),
        (UCB(grid, delta=1.0, min_noise_std=1.0, burn_in=5, seed=seed), "UCB", river_ucb),
        (NormalThompson(grid, prior_mean_reward=-3.0, prior_mean_pseudo_count=1.0, prior_noise_std=5.0,
                        prior_noise_pseudo_count=2.0, burn_in=5, seed=seed), "NormalThompson", river_ts),
        (StructuredThompson(grid, replicas=32, forgetting_window=200.0, shrinkage=10.0, maker_fee_bps=2.0,
                            taker_fee_bps=5.0, prior_fallback_drift_bps=1.0, prior_fill_probability=0.5,
                            prior_fill_logit_spread=2.0, prior_strength=1.0, burn_in=5, seed=seed,
                            fill_speed_window=30.0),
         "Structured (default, 32 replicas)", river_ts),
        (RobbinsMonro(grid, initial_offset_bps=1.0, step_bps=0.3, step_decay=0.7, exploration=0.1,
                      baseline_window=100.0, burn_in=5, seed=seed), "RobbinsMonro", river_eg),
        (LinUCB(grid, scales=scales, alpha=5.0, ridge=1.0, prior_mean_reward=-3.0, burn_in=5, seed=seed),
         "LinUCB (7 features)", river_lin),
    ]

    print(f"{len(grid)} arms, {n} timed decisions+updates after {warmup} warm-up per policy, one thread")
    header = (f"{'policy':34s} {'p50 us':>7s} {'p99 us':>7s} {'pull+upd/s':>11s}   {'vs river (same family)':34s}"
              f" {'x rate':>6s} {'x p50':>6s}   {'rate ok':>7s} {'p99 ok':>6s}")
    print(header)
    print("-" * len(header))
    for r in (river_eg, river_ucb, river_ts, river_lin):
        print(f"{r.name:34s} {r.p50_us:7.1f} {r.p99_us:7.1f} {r.cycles_per_s:11.0f}")
    print("-" * len(header))
    for learner, name, reference in pairs:
        r = ours(name, learner, stream, n, warmup)
        target = CONTEXTUAL_TARGET_PER_S if learner.requires_context else NON_CONTEXTUAL_TARGET_PER_S
        rate_ok, p99_ok = r.cycles_per_s >= target, r.p99_us <= P99_TARGET_US
        print(f"{r.name:34s} {r.p50_us:7.1f} {r.p99_us:7.1f} {r.cycles_per_s:11.0f}   {reference.name:34s}"
              f" {r.cycles_per_s / reference.cycles_per_s:6.2f} {r.p50_us / reference.p50_us:6.2f}"
              f"   {'yes' if rate_ok else 'no':>7s} {'yes' if p99_ok else 'no':>6s}")
    print(f"x rate = our pull+update/s over river's (higher is better); x p50 = our decision latency over river's "
          f"pull (lower is better; ours includes the propensity, river's pull has none). rate ok: >= "
          f"{NON_CONTEXTUAL_TARGET_PER_S / 1e3:.0f}k/s (contextual {CONTEXTUAL_TARGET_PER_S / 1e3:.0f}k/s); "
          f"p99 ok: <= {P99_TARGET_US:.0f} us.")


if __name__ == "__main__":
    main()
