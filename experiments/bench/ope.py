"""Wall time of every OPE estimator with bootstrap intervals on a large simulated log, against numpy.

Run: ``.venv/bin/python -m experiments.bench.ope [--events 1000000] [--arms 15] [--resamples 1000]
[--max-blocks 10000] [--repeats 3] [--seed 0]``

The log is a simulated contextual bandit (4 context features, softmax logging policy with uniform
exploration, its full distribution logged); the candidate is a different contextual softmax policy.
Baselines, measured in the same run over the same arrays: a plain numpy mean of the rewards, and one
IPS point estimate without bootstrap. Each estimator is timed alone (its own weights, reward model and
bootstrap draw included) and all of them together in one ``evaluate`` call, which shares that work.
Every printed time is the fastest of ``--repeats`` runs; ratios are time / baseline time.
"""

from __future__ import annotations

import argparse
from typing import Any

import numpy as np

from experiments.bench.timing import best_of
from router_tuner.tuner.ope.bootstrap import BootstrapConfig
from router_tuner.tuner.ope.cost import CostInterval
from router_tuner.tuner.ope.estimators import (
    IPS,
    SNIPS,
    DirectMethod,
    DoublyRobust,
    DRShrinkage,
    Estimator,
    SelfNormalizedDR,
    SwitchDR,
    evaluate,
    on_policy_value,
)
from router_tuner.tuner.ope.log import LoggedBandit
from router_tuner.tuner.ope.replay import replay
from router_tuner.tuner.ope.reward_model import PerArmRidgeModel

N_FEATURES = 4
EXPLORATION = 0.2
CLIP_THRESHOLD = 20.0
SWITCH_TAU = 20.0
SHRINKAGE_LAMBDA = 50.0
RIDGE_L2 = 1.0
QUANTILES = (0.5, 0.9, 0.99)


def softmax(scores: np.ndarray) -> np.ndarray:
    exp = np.exp(scores - scores.max(axis=1, keepdims=True))
    return exp / exp.sum(axis=1, keepdims=True)


def simulate(n: int, n_arms: int, seed: int) -> tuple[LoggedBandit, np.ndarray]:
    """A log with context-dependent costs and propensities, and a contextual candidate policy."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, N_FEATURES))
    mean_cost_bps = (
        rng.uniform(1.0, 6.0, size=n_arms) + x @ rng.normal(scale=0.5, size=(n_arms, N_FEATURES)).T
    )
    logging_pi = (1.0 - EXPLORATION) * softmax(-mean_cost_bps) + EXPLORATION / n_arms
    actions = (logging_pi.cumsum(axis=1) > rng.random((n, 1))).argmax(axis=1)
    rows = np.arange(n)
    rewards = -(mean_cost_bps[rows, actions] + rng.normal(scale=2.0, size=n))
    log = LoggedBandit(
        actions=actions,
        propensities=logging_pi[rows, actions],
        rewards=rewards,
        arm_ids=tuple(f"arm{i}" for i in range(n_arms)),
        contexts=x,
        logging_pi=logging_pi,
    )
    candidate = softmax(-2.0 * mean_cost_bps + x @ rng.normal(size=(N_FEATURES, n_arms)))
    return log, candidate


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--arms", type=int, default=15)
    parser.add_argument("--resamples", type=int, default=1000)
    parser.add_argument("--max-blocks", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    log, pi = simulate(args.events, args.arms, args.seed)
    boot = BootstrapConfig(
        n_resamples=args.resamples, ci_level=0.95, seed=args.seed, max_blocks=args.max_blocks
    )
    model = PerArmRidgeModel(l2=RIDGE_L2)
    estimators: list[Estimator] = [
        IPS(),
        IPS(clip_threshold=CLIP_THRESHOLD),
        SNIPS(),
        DirectMethod(),
        DoublyRobust(),
        SelfNormalizedDR(),
        SwitchDR(tau=SWITCH_TAU),
        DRShrinkage(shrinkage_lambda=SHRINKAGE_LAMBDA),
    ]
    rows = np.arange(log.n)

    t_mean, _ = best_of(args.repeats, lambda: float(log.rewards.mean()))
    t_ips, _ = best_of(
        args.repeats, lambda: float(np.mean(pi[rows, log.actions] / log.propensities * log.rewards))
    )

    def run(selected: list[Estimator]) -> Any:
        return evaluate(log, pi, selected, bootstrap=boot, reward_model=model, weight_quantiles=QUANTILES)

    print(f"OPE benchmark: {log.n:,} events, {log.n_arms} arms, B={args.resamples} resamples, "
          f"<= {args.max_blocks:,} blocks, best of {args.repeats}")  # fmt: skip
    print(f"baseline numpy mean of rewards: {t_mean * 1e3:8.2f} ms")
    print(f"baseline IPS point, no CI:      {t_ips * 1e3:8.2f} ms")
    print(f"{'estimator':<16}{'alone ms':>10}{'x mean':>9}{'x IPS':>8}   cost bps [95% CI]       ESS")
    for estimator in estimators:
        t, out = best_of(args.repeats, lambda e=estimator: run([e]))
        r, c = out[estimator.name], CostInterval.of(out[estimator.name])
        print(f"{estimator.name:<16}{t * 1e3:10.1f}{t / t_mean:9.0f}{t / t_ips:8.1f}   "
              f"{c.cost_bps:7.3f} [{c.ci_low_bps:7.3f}, {c.ci_high_bps:7.3f}] {r.ess:10.0f}")  # fmt: skip
    t_base, base = best_of(args.repeats, lambda: on_policy_value(log, bootstrap=boot))
    c = CostInterval.of(base)
    print(f"{'on_policy':<16}{t_base * 1e3:10.1f}{t_base / t_mean:9.0f}{t_base / t_ips:8.1f}   "
          f"{c.cost_bps:7.3f} [{c.ci_low_bps:7.3f}, {c.ci_high_bps:7.3f}]")  # fmt: skip
    t_all, _ = best_of(args.repeats, lambda: run(estimators))
    print(f"all {len(estimators)} estimators in one evaluate call: {t_all:.2f} s "
          f"({t_all / t_mean:.0f}x numpy mean, {t_all / t_ips:.1f}x IPS without CI)")  # fmt: skip
    favourite = int(np.argmax(pi.mean(axis=0)))
    t_replay, rep = best_of(1, lambda: replay(log, lambda context: favourite, bootstrap=boot))
    print(f"replay (fixed arm, Python loop over events): {t_replay:.2f} s, kept {rep.n_nonzero_weight:,} "
          f"events ({t_replay / t_mean:.0f}x numpy mean)")  # fmt: skip
    print(f"total with on-policy baseline and replay: {t_all + t_base + t_replay:.2f} s")


if __name__ == "__main__":
    main()
