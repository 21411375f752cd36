"""Numbers of the main job: per symbol and policy summaries, the best fixed arm in hindsight, regret, OPE.

Definitions (the report and the JSON line use exactly these):
- ``mean_cost_bps``: mean ``RouterEvent.cost_bps`` (fees and the fallback leg included) over filled orders,
  with a bootstrap interval; unfilled orders have no cost and are counted in ``unfilled``;
- ``maker_ratio``: share of filled orders that filled entirely as maker;
- ``fallback_ratio``: share of all orders that sent a fallback order;
- ``markout_bps``: mean mid move against us after the last fill (positive = adverse selection).
The best fixed arm is the fixed arm with the lowest mean cost on the SAME intents it is compared on:
a hindsight oracle, not a policy anyone could have run.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from config.models import SimulationBootstrap
from executor.simulation_policies import FIXED_PREFIX
from executor.simulation_runner import PolicyRun
from router.events import RouterEvent
from tuner.ope import IPS, SNIPS, DirectMethod, DoublyRobust, OpeEstimate, evaluate
from tuner.ope_bootstrap import BlockBootstrap, BootstrapConfig
from tuner.ope_log import LoggedBandit
from tuner.ope_policy import fixed_arm_policy
from tuner.ope_reward_model import PerArmMeanModel


@dataclass(frozen=True, slots=True)
class PolicySummary:
    """One policy on one symbol."""

    symbol: str
    policy: str
    orders: int
    filled: int
    unfilled: int
    mean_cost_bps: float | None
    cost_ci_low_bps: float | None
    cost_ci_high_bps: float | None
    maker_ratio: float | None
    fallback_ratio: float
    mean_slippage_bps: float | None
    mean_markout_bps: float | None
    late_starts: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def costs(events: Sequence[RouterEvent]) -> np.ndarray:
    """Per-order cost in bps, NaN where nothing filled."""
    return np.array([np.nan if e.cost_bps is None else e.cost_bps for e in events], dtype=float)


def bootstrap_config(config: SimulationBootstrap, seed: int) -> BootstrapConfig:
    return BootstrapConfig(n_resamples=config.n_resamples, ci_level=config.ci_level, seed=seed,
                           max_blocks=config.max_blocks)


def summarize(run: PolicyRun, bootstrap: BootstrapConfig) -> PolicySummary:
    """The summary of one run; the interval is a (block) bootstrap of the mean over filled orders."""
    cost = costs(run.events)
    filled_mask = np.isfinite(cost)
    filled = cost[filled_mask]
    low = high = mean = None
    if filled.size:
        mean = float(filled.mean())
        if filled.size >= 2:
            low, high = BlockBootstrap(filled.size, bootstrap).interval([(filled, None)])
        else:
            low = high = mean
    filled_events = [e for e in run.events if e.cost_bps is not None]
    slippage = np.array([e.slippage_bps for e in filled_events], dtype=float)
    markout = run.markout_bps[np.isfinite(run.markout_bps)]
    return PolicySummary(
        symbol=run.symbol, policy=run.policy, orders=len(run.events), filled=int(filled.size),
        unfilled=len(run.events) - int(filled.size), mean_cost_bps=mean, cost_ci_low_bps=low, cost_ci_high_bps=high,
        maker_ratio=(float(np.mean([e.is_maker_final for e in filled_events])) if filled_events else None),
        fallback_ratio=float(np.mean([e.used_fallback for e in run.events])) if run.events else 0.0,
        mean_slippage_bps=float(slippage.mean()) if slippage.size else None,
        mean_markout_bps=float(markout.mean()) if markout.size else None, late_starts=run.late_starts)


def best_fixed_arm(summaries: Mapping[str, PolicySummary]) -> str:
    """Name of the fixed-arm policy with the lowest mean cost (ties: the first in name order)."""
    fixed = {name: s.mean_cost_bps for name, s in summaries.items()
             if name.startswith(FIXED_PREFIX) and s.mean_cost_bps is not None}
    if not fixed:
        raise ValueError("no fixed-arm run with a filled order: cannot pick the best fixed arm")
    return min(sorted(fixed), key=lambda name: fixed[name])


def cumulative_regret_bps(run: PolicyRun, best: PolicyRun) -> np.ndarray:
    """Sum over intents of (this policy's cost - the best fixed arm's cost); orders unfilled in either add 0."""
    diff = costs(run.events) - costs(best.events)
    return np.cumsum(np.where(np.isfinite(diff), diff, 0.0))


@dataclass(frozen=True, slots=True)
class OpeComparison:
    """OPE of a learner's final greedy arm on the learner's own log, beside that arm's measured value.

    Values are costs in bps (minus the estimators' reward). ``truth`` is the mean cost of the arm's own
    fixed-arm run on the same intents (known truth), with its interval.
    """

    symbol: str
    learner: str
    arm: str
    logged_events: int
    estimates: dict[str, dict[str, Any]]
    truth_cost_bps: float
    truth_ci_low_bps: float
    truth_ci_high_bps: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _as_cost(estimate: OpeEstimate) -> dict[str, Any]:
    return {"cost_bps": -estimate.value, "ci_low_bps": -estimate.ci_high, "ci_high_bps": -estimate.ci_low,
            "ess": estimate.ess, "n_nonzero_weight": estimate.n_nonzero_weight,
            "support_gap_share": estimate.support_gap_share}


def ope_against_truth(learner_run: PolicyRun, arm_ids: Sequence[str], greedy_arm: str, truth: PolicySummary,
                      bootstrap: BootstrapConfig) -> OpeComparison:
    """IPS, SNIPS, DM and DR of always playing ``greedy_arm``, from the learner's logged propensities."""
    if truth.mean_cost_bps is None or truth.cost_ci_low_bps is None or truth.cost_ci_high_bps is None:
        raise ValueError(f"the fixed run of {greedy_arm} on {truth.symbol} filled nothing: no truth to compare")
    log = LoggedBandit.from_events(learner_run.events, arm_ids)
    results = evaluate(log, fixed_arm_policy(log, greedy_arm), [IPS(), SNIPS(), DirectMethod(), DoublyRobust()],
                       bootstrap=bootstrap, reward_model=PerArmMeanModel(), weight_quantiles=(0.5, 0.99))
    return OpeComparison(symbol=learner_run.symbol, learner=learner_run.policy, arm=greedy_arm, logged_events=log.n,
                         estimates={name: _as_cost(est) for name, est in results.items()},
                         truth_cost_bps=truth.mean_cost_bps, truth_ci_low_bps=truth.cost_ci_low_bps,
                         truth_ci_high_bps=truth.cost_ci_high_bps)
