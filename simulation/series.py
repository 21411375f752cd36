"""A learner's run as metric series over its orders: cost per window, running cost and regret, arm shares.

MLflow draws a metric logged at many steps as a curve, so a learner's run shows whether it learned: its
cost falling, its regret against the best fixed arm (in hindsight, on the same intents) flattening, its
arm shares settling. Pure: the MLflow logging is :mod:`simulation.recording`'s.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np

from router_tuner.simulation.results import costs, cumulative_regret_bps
from router_tuner.simulation.runner import PolicyRun

SERIES_POINTS = 50
"""Points per curve: enough to see learning, few enough to log 30 learner-symbol runs in seconds."""


@dataclass(frozen=True, slots=True)
class SeriesPoint:
    """The metrics at one step (the number of orders routed so far)."""

    step: int
    metrics: dict[str, float]


def learner_series(run: PolicyRun, best: PolicyRun, arms: tuple[str, ...],
                   points: int = SERIES_POINTS) -> list[SeriesPoint]:
    """Per window of about ``len(run.events) / points`` orders: ``window_cost_bps`` (mean over the window's
    filled orders, absent when none filled), ``mean_cost_bps`` (all filled orders so far),
    ``cumulative_regret_bps`` (against ``best``, as :func:`simulation.results.cumulative_regret_bps`),
    ``policy_version`` (of the window's last order) and ``arm_share/<arm>`` for every arm in ``arms``."""
    n = len(run.events)
    if n == 0:
        return []
    cost = costs(run.events)
    regret = cumulative_regret_bps(run, best)
    ends = np.unique(np.linspace(0, n, min(points, n) + 1).round().astype(int)[1:])
    series, start = [], 0
    for end in ends:
        window = cost[start:end]
        so_far = cost[:end]
        metrics: dict[str, float] = {"cumulative_regret_bps": float(regret[end - 1]),
                                     "policy_version": float(run.events[end - 1].policy_version)}
        if np.isfinite(window).any():
            metrics["window_cost_bps"] = float(np.nanmean(window))
        if np.isfinite(so_far).any():
            metrics["mean_cost_bps"] = float(np.nanmean(so_far))
        chosen = Counter(e.arm for e in run.events[start:end])
        metrics.update({f"arm_share/{arm}": chosen[arm] / (end - start) for arm in arms})
        series.append(SeriesPoint(step=int(end), metrics=metrics))
        start = end
    return series
