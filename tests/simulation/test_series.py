"""A learner's run as curves over its orders: window and running cost, regret against the best arm, arm shares."""

from __future__ import annotations

import msgspec
import numpy as np
import pytest

from router_tuner.simulation.runner import PolicyRun
from router_tuner.simulation.series import learner_series
from tests.factories import routed


def _run(name: str, costs: list[float | None], arms: list[str], versions: list[int]) -> PolicyRun:
    events = tuple(msgspec.structs.replace(routed(arm=arm, intent_id=f"{name}{i}"), cost_bps=cost,
                                           policy_version=version)
                   for i, (cost, arm, version) in enumerate(zip(costs, arms, versions, strict=True)))
    return PolicyRun(symbol="BTCUSDT", policy=name, events=events, markout_bps=np.full(len(events), np.nan),
                     late_starts=0)


def test_curves_per_window_with_regret_and_arm_shares() -> None:
    learner = _run("learner", [4.0, 2.0, None, 1.0], ["a", "b", "b", "b"], [1, 1, 2, 2])
    best = _run("best", [1.0, 1.0, 1.0, 1.0], ["b"] * 4, [0] * 4)
    first, second = learner_series(learner, best, ("a", "b", "c"), points=2)
    assert first.step == 2 and first.metrics == {
        "cumulative_regret_bps": 4.0, "policy_version": 1.0, "window_cost_bps": 3.0, "mean_cost_bps": 3.0,
        "arm_share/a": 0.5, "arm_share/b": 0.5, "arm_share/c": 0.0}
    assert second.step == 4 and second.metrics["cumulative_regret_bps"] == 4.0, "unfilled orders add no regret"
    assert second.metrics["window_cost_bps"] == 1.0 and second.metrics["mean_cost_bps"] == pytest.approx(7 / 3)
    assert second.metrics["policy_version"] == 2.0 and second.metrics["arm_share/b"] == 1.0


def test_more_points_than_orders_gives_one_point_per_order_and_no_fill_no_cost() -> None:
    learner = _run("learner", [None, None, 3.0], ["a"] * 3, [1] * 3)
    best = _run("best", [1.0] * 3, ["a"] * 3, [0] * 3)
    series = learner_series(learner, best, ("a",), points=50)
    assert [p.step for p in series] == [1, 2, 3]
    assert "window_cost_bps" not in series[0].metrics and "mean_cost_bps" not in series[1].metrics
    assert series[2].metrics["mean_cost_bps"] == 3.0
    assert learner_series(_run("empty", [], [], []), best, ("a",)) == []


def test_regret_needs_the_same_intents() -> None:
    with pytest.raises(ValueError, match="regret needs the same intents"):
        learner_series(_run("learner", [1.0, 2.0], ["a", "a"], [1, 1]), _run("best", [1.0], ["a"], [0]), ("a",))
