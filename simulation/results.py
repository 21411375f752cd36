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

from router_tuner.config.models import OpeConfig, SimulationBootstrap
from router_tuner.router.events import RouterEvent
from router_tuner.simulation.policies import FIXED_PREFIX
from router_tuner.simulation.runner import PolicyRun
from router_tuner.tuner.ope.bootstrap import BlockBootstrap, BootstrapConfig
from router_tuner.tuner.ope.cost import CostInterval
from router_tuner.tuner.ope.estimators import MIN_WEIGHTED_EVENTS_FOR_INTERVAL, OpeEstimate
from router_tuner.tuner.ope.run import CandidateReport, evaluate_candidate


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


class NothingFilled(ValueError):
    """No order of any fixed arm filled on a market: the run has no cost to compare the policies by."""


def best_fixed_arm(summaries: Mapping[str, PolicySummary]) -> str:
    """Name of the fixed-arm policy with the lowest mean cost (ties: the first in name order); raises
    :class:`NothingFilled` when no fixed arm filled an order."""
    fixed = {name: s.mean_cost_bps for name, s in summaries.items()
             if name.startswith(FIXED_PREFIX) and s.mean_cost_bps is not None}
    if not fixed:
        raise NothingFilled("no order of any fixed arm filled (every maker leg expired and no taker leg ran), so "
                            "there is no cost to compare the policies by")
    return min(sorted(fixed), key=lambda name: fixed[name])


def cumulative_regret_bps(run: PolicyRun, best: PolicyRun) -> np.ndarray:
    """Sum over intents of (this policy's cost - the best fixed arm's cost); orders unfilled in either add 0."""
    if len(run.events) != len(best.events):
        raise ValueError(f"{run.policy} routed {len(run.events)} orders, {best.policy} {len(best.events)}: "
                         "regret needs the same intents")
    diff = costs(run.events) - costs(best.events)
    return np.cumsum(np.where(np.isfinite(diff), diff, 0.0))


def regret_by_quarter_bps(run: PolicyRun, best: PolicyRun) -> list[float]:
    """Mean regret per order against the best fixed arm in each quarter of the run (in intent order): a
    learner that learns shows it shrinking. Orders unfilled in either run count 0, as in the sum."""
    if len(run.events) < 4:
        raise ValueError(f"{run.policy}: need at least 4 orders for quarters, got {len(run.events)}")
    diff = costs(run.events) - costs(best.events)
    return [float(np.mean(np.where(np.isfinite(q), q, 0.0))) for q in np.array_split(diff, 4)]


def segment_oracle_cost_bps(runs: Mapping[str, PolicyRun], segments: int) -> float:
    """Mean cost of the per-segment oracle: the intents cut into ``segments`` consecutive blocks, and in each
    the fixed arm that was cheapest on that block in hindsight.

    It can switch arm when the market changes, so it bounds from below what any policy choosing among the
    grid's arms, one regime at a time, could have reached; with one segment it is the best fixed arm.
    """
    fixed = {name: costs(run.events) for name, run in runs.items() if name.startswith(FIXED_PREFIX)}
    if not fixed:
        raise ValueError("no fixed-arm runs: no oracle")
    matrix = np.vstack(list(fixed.values()))
    blocks = np.array_split(np.arange(matrix.shape[1]), min(segments, matrix.shape[1]))
    total, filled = 0.0, 0
    for block in blocks:
        part = matrix[:, block]
        means = np.array([np.nanmean(row) if np.isfinite(row).any() else np.inf for row in part])
        best = part[int(np.argmin(means))]
        total += float(np.nansum(best))
        filled += int(np.isfinite(best).sum())
    if filled == 0:
        raise ValueError("no fixed-arm run filled an order: no oracle")
    return total / filled


MIN_CAPTURE_GAP_BPS = 0.1
"""The smallest always-taker -> reference gap a captured share is given for. A mean cost over a run's orders moves by
about 0.05 bps from seed to seed, so a share of a smaller gap measures that noise: on spot, where taking is within
0.03 bps of the best fixed arm, a learner 0.8 bps behind read -2623% in the report."""


def captured_share(policy_cost_bps: float, taker_cost_bps: float, reference_cost_bps: float) -> float | None:
    """Share of the always-taker -> reference gap that a policy captures (1.0 = as cheap as the reference);
    ``None`` when the reference is not cheaper than taking by ``MIN_CAPTURE_GAP_BPS`` (no gap to measure a share of)."""
    gap = taker_cost_bps - reference_cost_bps
    return (taker_cost_bps - policy_cost_bps) / gap if gap >= MIN_CAPTURE_GAP_BPS else None


@dataclass(frozen=True, slots=True)
class OpeComparison:
    """OPE of a learner's greedy arm on the learner's own log, beside that arm's measured value.

    ``report`` is exactly what ``router-tuner ope`` computes (:func:`tuner.ope.run.evaluate_candidate`);
    the truth is the mean cost of the arm's own fixed-arm run on the same intents, with its interval.
    Values here are costs in bps (the estimators' reward negated), lower is better.
    """

    symbol: str
    learner: str
    arm: str
    report: CandidateReport
    truth_cost_bps: float
    truth_ci_low_bps: float
    truth_ci_high_bps: float

    def estimates_bps(self) -> dict[str, dict[str, Any]]:
        """Per estimator: cost estimate and interval in bps, ESS, weighted events, support gap, coverage."""
        out = {}
        for name, estimate in self.report.estimates.items():
            cost = as_cost(estimate)
            cost["covers_truth"] = bool(cost["ci_low_bps"] <= self.truth_cost_bps <= cost["ci_high_bps"])
            out[name] = cost
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"symbol": self.symbol, "learner": self.learner, "arm": self.arm,
                "logged_events": self.report.n_events, "skipped_unfilled": self.report.skipped_unfilled,
                "logging_cost_bps": as_cost(self.report.logging), "estimates": self.estimates_bps(),
                "truth_cost_bps": self.truth_cost_bps, "truth_ci_low_bps": self.truth_ci_low_bps,
                "truth_ci_high_bps": self.truth_ci_high_bps}


def as_cost(estimate: OpeEstimate) -> dict[str, Any]:
    """An estimate as a cost in bps (``tuner.ope.cost``'s one sign convention), with its diagnostics."""
    return CostInterval.of(estimate).to_dict() | {"ess": estimate.ess, "n_nonzero_weight": estimate.n_nonzero_weight,
                                                  "support_gap_share": estimate.support_gap_share}


def events_without_interval(cost: Mapping[str, Any] | None) -> int | None:
    """The logged events carrying weight of an estimate in :func:`as_cost`'s form when they are too few for its
    interval to mean anything (``MIN_WEIGHTED_EVENTS_FOR_INTERVAL``), else ``None``: the report then shows no
    interval instead of a zero-width one."""
    carrying = None if cost is None else cost.get("n_nonzero_weight")
    return carrying if carrying is not None and carrying < MIN_WEIGHTED_EVENTS_FOR_INTERVAL else None


def ope_vs_truth(learner_run: PolicyRun, arm: str, truth: PolicySummary, config: OpeConfig, *,
                 seed: int) -> OpeComparison:
    """The configured estimators of always playing ``arm`` on ``learner_run``'s log, beside ``truth``."""
    if truth.mean_cost_bps is None or truth.cost_ci_low_bps is None or truth.cost_ci_high_bps is None:
        raise ValueError(f"the fixed run of {arm} on {truth.symbol} filled nothing: no truth to compare")
    report = evaluate_candidate(learner_run.events, arm, config, seed=seed, symbol=learner_run.symbol)
    return OpeComparison(symbol=learner_run.symbol, learner=learner_run.policy, arm=arm, report=report,
                         truth_cost_bps=truth.mean_cost_bps, truth_ci_low_bps=truth.cost_ci_low_bps,
                         truth_ci_high_bps=truth.cost_ci_high_bps)
