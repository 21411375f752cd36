"""The sweep's result table: one row per learner task, joined with its scenario's baselines.

Definitions are the main job's (``simulation.results``): mean cost per filled order with its bootstrap
interval, the best fixed arm in hindsight on the same intents (:func:`best_fixed_arm`), and the share of the
always-taker -> best-fixed-arm gap the learner captured (:func:`captured_share`). ``regret_bps`` is the
learner's cost minus the best fixed arm's, summed over the same intents (an order unfilled in either counts
0, as ``cumulative_regret_bps`` counts it) and divided by the number of orders.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from router_tuner.router.atomic_file import atomic_path
from router_tuner.simulation.results import best_fixed_arm, captured_share
from router_tuner.simulation.sweep.grid import SweepGrid
from router_tuner.simulation.sweep.tasks import BaselineResult, LearnerResult, TaskResult

TABLE_NAME = "sweep.parquet"


def sweep_rows(grid: SweepGrid, results: Mapping[str, TaskResult]) -> list[dict[str, Any]]:
    """One row per learner task of ``grid``, in grid order; every task must have its result."""
    rows = []
    for task in grid.learner_tasks:
        learner, baseline = results[task.task_id], results[task.baseline.task_id]
        if not isinstance(learner, LearnerResult) or not isinstance(baseline, BaselineResult):
            raise TypeError(f"results of {task.task_id} / {task.baseline.task_id} are of the wrong kind")
        fixed = {cost.summary.policy: cost for cost in baseline.fixed}
        best = fixed[best_fixed_arm({name: cost.summary for name, cost in fixed.items()})]
        own = learner.run.summary
        diff = learner.run.cost_array() - best.cost_array()
        taker_cost, best_cost = baseline.taker.summary.mean_cost_bps, best.summary.mean_cost_bps
        share = (captured_share(own.mean_cost_bps, taker_cost, best_cost)
                 if None not in (own.mean_cost_bps, taker_cost, best_cost) else None)
        scenario = task.scenario
        rows.append({
            "task_id": task.task_id, "learner": task.learner,
            "settings": json.dumps({f"tuner.{k}": v for k, v in task.settings}, sort_keys=True),
            **{f"tuner.{k}": v for k, v in task.settings},
            "seed": scenario.seed, "symbol": scenario.symbol, "data": scenario.data, "orders": own.orders,
            "filled": own.filled, "mean_cost_bps": own.mean_cost_bps, "cost_ci_low_bps": own.cost_ci_low_bps,
            "cost_ci_high_bps": own.cost_ci_high_bps, "maker_ratio": own.maker_ratio,
            "fallback_ratio": own.fallback_ratio, "taker_cost_bps": taker_cost,
            "best_fixed_arm": best.summary.policy, "best_fixed_cost_bps": best_cost,
            "regret_bps": float(np.where(np.isfinite(diff), diff, 0.0).sum() / len(diff)),
            "captured_share": share, "greedy_arm": learner.greedy_arm,
            "versions_published": learner.versions_published,
        })
    return rows


def write_table(rows: list[dict[str, Any]], out_dir: Path) -> Path:
    """The rows as ``OUT/sweep.parquet`` (replaced atomically); a setting column whose values mix text and
    numbers is stored as JSON text so that every column has one type."""
    frame = pd.DataFrame(rows)
    for column in [c for c in frame.columns if c.startswith("tuner.")]:
        kinds = {type(v) for v in frame[column] if v is not None}
        if not kinds <= {int, float} and len(kinds) > 1:
            frame[column] = [json.dumps(v) for v in frame[column]]
    path = Path(out_dir) / TABLE_NAME
    with atomic_path(path) as temporary:
        frame.to_parquet(temporary, index=False)
    return path
