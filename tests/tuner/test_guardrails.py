"""Guardrails: bounds, step clamping, publish gating, rollback and drift re-opening exploration."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from router_tuner.tuner.arms import Arm, ArmGrid
from router_tuner.tuner.guardrails import (
    AdwinParams,
    DriftMonitor,
    GuardrailError,
    Guardrails,
    PageHinkleyParams,
    RollbackMonitor,
    allowed_arm_ids,
    clamp_step,
    should_publish,
)
from router_tuner.tuner.learners import UCB, NormalThompson

GRID = ArmGrid.from_values([0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0], [0.0, 0.1, 0.2, 0.3, 0.5, 1.0],
                           min_offset_bps=0.0, max_offset_bps=6.0)
PH = PageHinkleyParams(min_instances=30, delta=0.05, threshold=25.0, alpha=0.9999)


def rails(**overrides: object) -> Guardrails:
    base = Guardrails(min_offset_bps=0.0, max_offset_bps=4.0, min_taker_bias=0.0, max_taker_bias=0.5,
                      max_step_offset_bps=1.0, max_step_taker_bias=0.1, min_outcomes_before_move=50,
                      rollback_window=20, rollback_margin_bps=1.0, drift=PH, fill_drift=PH,
                      drift_keep_fraction=0.2)
    return dataclasses.replace(base, **overrides)  # type: ignore[arg-type]


def test_clamp_step_moves_at_most_one_step_towards_the_proposal() -> None:
    g = rails()
    assert clamp_step(Arm(1.0, 0.1), Arm(6.0, 1.0), GRID, g) == Arm(2.0, 0.2)
    assert clamp_step(Arm(1.0, 0.1), Arm(1.5, 0.0), GRID, g) == Arm(1.5, 0.0)  # reachable: taken as is
    assert clamp_step(Arm(4.0, 0.5), Arm(6.0, 0.5), GRID, g) == Arm(4.0, 0.5)  # 6.0 is out of bounds
    assert clamp_step(Arm(2.0, 0.0), Arm(2.0, 0.0), GRID, g) == Arm(2.0, 0.0)


def test_clamp_step_from_out_of_bounds_arm_is_an_error() -> None:
    with pytest.raises(GuardrailError, match="no grid arm"):
        clamp_step(Arm(6.0, 1.0), Arm(1.0, 0.0), GRID, rails())


def test_allowed_arm_ids_respects_bounds_and_step() -> None:
    g = rails()
    everywhere = allowed_arm_ids(GRID, g, None)
    assert "o6.00_b0.00" not in everywhere and "o4.00_b0.50" in everywhere and "o0.00_b1.00" not in everywhere
    near = allowed_arm_ids(GRID, g, Arm(1.0, 0.1))
    assert set(near) == {f"o{o:.2f}_b{b:.2f}" for o in (0.0, 0.5, 1.0, 1.5, 2.0) for b in (0.0, 0.1, 0.2)}


def test_should_publish_waits_for_outcomes_and_reports_why() -> None:
    g = rails()
    cur = Arm(1.0, 0.1)
    assert should_publish(cur, Arm(3.0, 0.1), 49, GRID, g).reason == "insufficient_outcomes"
    d = should_publish(cur, Arm(3.0, 0.1), 50, GRID, g)
    assert d.publish and d.arm == Arm(2.0, 0.1) and d.reason == "step_clamped"
    d = should_publish(cur, Arm(1.5, 0.1), 50, GRID, g)
    assert d.publish and d.arm == Arm(1.5, 0.1) and d.reason == "proposed"
    d = should_publish(cur, cur, 500, GRID, g)
    assert not d.publish and d.reason == "unchanged" and d.arm == cur
    with pytest.raises(ValueError):
        should_publish(cur, cur, -1, GRID, g)


_lattice = st.integers(min_value=0, max_value=40).map(lambda i: i / 4)  # offsets 0..10 bps, 0.25 apart
_bias = st.integers(min_value=0, max_value=20).map(lambda i: i / 20)


@settings(max_examples=200, deadline=None)
@given(
    offsets=st.lists(_lattice, min_size=1, max_size=8, unique=True),
    biases=st.lists(_bias, min_size=1, max_size=5, unique=True),
    lo=_lattice, width=_lattice, blo_i=st.integers(0, 20), bwidth_i=st.integers(0, 20),
    step_o=st.integers(1, 12).map(lambda i: i / 4), step_b=st.integers(1, 10).map(lambda i: i / 20),
    proposals=st.lists(st.tuples(st.integers(0, 100), st.integers(0, 100)), min_size=1, max_size=15),
)
def test_published_arms_stay_in_bounds_and_within_one_step(
    offsets: list[float], biases: list[float], lo: float, width: float, blo_i: int, bwidth_i: int,
    step_o: float, step_b: float, proposals: list[tuple[int, int]],
) -> None:
    # Bias bounds are built from whole twentieths, as a user writes them (0.4, not 0.05 + 0.35 in floats).
    grid = ArmGrid.from_values(offsets, biases, min_offset_bps=0.0, max_offset_bps=10.0)
    g = rails(min_offset_bps=lo, max_offset_bps=lo + width, min_taker_bias=blo_i / 20,
              max_taker_bias=min(1.0, (blo_i + bwidth_i) / 20), max_step_offset_bps=step_o, max_step_taker_bias=step_b,
              min_outcomes_before_move=0)
    inside = [a for a in grid if g.in_bounds(a)]
    if not inside:
        with pytest.raises(GuardrailError):
            allowed_arm_ids(grid, g, None)
        return
    current = inside[0]
    for po, pb in proposals:
        proposed = grid.arms[(po * len(biases) + pb) % len(grid)]
        decision = should_publish(current, proposed, 10, grid, g)
        arm = decision.arm
        assert g.min_offset_bps <= arm.maker_offset_bps <= g.max_offset_bps
        assert g.min_taker_bias <= arm.taker_bias <= g.max_taker_bias
        assert abs(arm.maker_offset_bps - current.maker_offset_bps) <= step_o + 1e-9
        assert abs(arm.taker_bias - current.taker_bias) <= step_b + 1e-9
        assert arm.arm_id in grid
        if g.within_step(current, proposed) and g.in_bounds(proposed):
            assert arm == proposed  # never clamps what is already allowed
        current = arm


@pytest.mark.parametrize(
    "overrides",
    [
        {"min_offset_bps": 5.0},
        {"max_offset_bps": math.inf},
        {"min_taker_bias": 0.6},
        {"max_taker_bias": 1.5},
        {"max_step_offset_bps": 0.0},
        {"max_step_taker_bias": math.nan},
        {"min_outcomes_before_move": -1},
        {"rollback_window": 0},
        {"rollback_margin_bps": -1.0},
        {"drift_keep_fraction": 0.0},
    ],
)
def test_bad_guardrails_are_refused(overrides: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        rails(**overrides)


def test_bad_drift_params_are_refused() -> None:
    with pytest.raises(ValueError):
        PageHinkleyParams(min_instances=0, delta=0.1, threshold=1.0, alpha=1.0)
    with pytest.raises(ValueError):
        PageHinkleyParams(min_instances=5, delta=0.1, threshold=-1.0, alpha=1.0)
    with pytest.raises(ValueError):
        AdwinParams(delta=1.5, clock=32, grace_period=10, min_window_length=5)
    with pytest.raises(ValueError):
        AdwinParams(delta=0.002, clock=0, grace_period=10, min_window_length=5)


def test_rollback_fires_only_on_a_full_window_worse_than_margin_and_latches() -> None:
    m = RollbackMonitor.from_guardrails(rails(rollback_window=4, rollback_margin_bps=1.0), baseline_cost_bps=2.0)
    assert [m.observe(c) for c in (10.0, 10.0, 10.0)] == [False, False, False]  # window not yet full
    assert m.observe(10.0) and m.triggered
    assert m.observe(0.0)  # latched until rebase
    m.rebase(3.0)
    assert not m.triggered and m.live_mean_cost_bps is None
    assert not any(m.observe(c) for c in (3.9, 4.0, 4.0, 4.0, 3.0))  # mean 4.0 is not > 3 + 1
    with pytest.raises(ValueError):
        m.observe(math.nan)
    with pytest.raises(ValueError):
        RollbackMonitor(window=0, margin_bps=1.0, baseline_cost_bps=0.0)
    with pytest.raises(ValueError):
        m.rebase(math.inf)


def _ucb() -> UCB:
    return UCB(GRID, delta=1.0, min_noise_std=0.5, burn_in=1, seed=0)


@pytest.mark.parametrize("params", [PH, AdwinParams(delta=0.002, clock=16, grace_period=30, min_window_length=5)])
def test_drift_monitor_reopens_exploration_on_a_cost_shift(params: PageHinkleyParams | AdwinParams) -> None:
    learner = _ucb()
    monitor = DriftMonitor(params, learner, keep_fraction=0.1)
    rng = np.random.default_rng(0)
    arm = "o1.00_b0.00"
    for _ in range(400):
        r = -2.0 + rng.normal(0.0, 0.5)
        assert not monitor.observe(arm, r)
        learner.update(arm, r)
    before = learner.counts()[arm]
    fired_at = None
    for t in range(400):
        r = -6.0 + rng.normal(0.0, 0.5)  # costs jumped by 4 bps
        if monitor.observe(arm, r):
            fired_at = t
            break
        learner.update(arm, r)
    assert fired_at is not None and fired_at < 100
    assert monitor.drifts_detected == 1
    assert learner.counts()[arm] < 0.2 * before


def test_drift_monitor_ignores_arms_without_evidence_and_bad_input() -> None:
    ts = NormalThompson(GRID, prior_mean_reward=0.0, prior_mean_pseudo_count=1.0, prior_noise_std=1.0,
                        prior_noise_pseudo_count=1.0, burn_in=0, seed=0)
    monitor = DriftMonitor.from_guardrails(rails(), ts)
    assert not any(monitor.observe("o1.00_b0.00", -50.0) for _ in range(200))
    with pytest.raises(ValueError):
        monitor.observe("o1.00_b0.00", math.nan)
    with pytest.raises(KeyError):
        monitor.observe("o9.00_b0.00", -1.0)
    with pytest.raises(ValueError):
        DriftMonitor(PH, ts, keep_fraction=0.0)
