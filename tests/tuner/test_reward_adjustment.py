"""The reward adjustment: the route-end mid takes the market's noise out, the waiting drift puts its mean back."""

from __future__ import annotations

import math

import msgspec
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from router_tuner.tuner.reward_adjustment import MarketAfter, RewardAdjustment, WaitingDrift
from tests.factories import fill, routed
from tests.tuner.test_service import SYMBOL, event_for, new_service, tuned_bundle

NS = 1_000_000_000


def walk_to_end(rng: np.random.Generator, arm: str, rate: float) -> tuple[float, float, float]:
    """One buy's route on a mid drifting ``rate`` bps/s against it (a 10 ms random walk of 0.3 bps/step):
    ``taker`` ends at once; ``maker`` rests until the mid falls 0.5 bps (a fill: the route ends) or 2 s pass
    (a fallback at the mid then). Returns (move to the end in bps, seconds, cost: half spread 0.5 bps and fee)."""
    if arm == "taker":
        return 0.0, 0.0, 0.5 + 5.0
    mid, t = 0.0, 0.0
    while t < 2.0 - 1e-9:
        mid += rate * 0.01 + 0.3 * rng.standard_normal()
        t += 0.01
        if mid <= -0.5:
            return mid, t, -0.5 + 2.0   # filled at our price, 0.5 bps under the arrival mid, maker fee 2 bps
    return mid, t, mid + 0.5 + 5.0


@pytest.mark.parametrize("rate", [0.0, 0.8])
def test_the_drift_is_learned_from_any_mix_of_arms_and_keeps_each_arms_expected_cost(rate: float) -> None:
    """The stopping rule depends on the path (a fill ends the route early), yet sum(move)/sum(time) estimates the
    drift (optional stopping), and cost - move + rate * time has each arm's mean cost with much less noise."""
    rng = np.random.default_rng(11)
    adjustment = RewardAdjustment(markout=False, to_route_end=True, drift_window=100_000)
    raw: dict[str, list[float]] = {"taker": [], "maker": []}
    learned: dict[str, list[float]] = {"taker": [], "maker": []}
    for i in range(6000):
        arm = "taker" if i % 5 == 0 else "maker"
        move, seconds, cost = walk_to_end(rng, arm, rate)
        event = routed(fills=(fill(100.0, 1.0),), arrival_ts_ns=0, finished_ts_ns=round(seconds * NS),
                       intent_id=f"i{i}")
        shift = adjustment.adjust(SYMBOL, event, MarketAfter(markout_bps=None, move_to_end_bps=move))
        assert shift is not None
        raw[arm].append(cost)
        learned[arm].append(cost + shift)
    assert adjustment.drift.rate_bps_per_s == pytest.approx(rate, abs=0.25)
    for arm in ("taker", "maker"):
        assert np.mean(learned[arm][1000:]) == pytest.approx(np.mean(raw[arm][1000:]), abs=0.15)
    assert np.std(learned["maker"]) < 0.5 * np.std(raw["maker"])


def test_without_a_drift_window_the_move_is_taken_out_whole() -> None:
    adjustment = RewardAdjustment(markout=False, to_route_end=True, drift_window=0)
    for i in range(50):
        event = routed(fills=(fill(100.0, 1.0),), finished_ts_ns=2 * NS, intent_id=f"i{i}")
        assert adjustment.adjust(SYMBOL, event, MarketAfter(markout_bps=None, move_to_end_bps=3.0)) == -3.0
    assert adjustment.drift.rate_bps_per_s == 0.0 and adjustment.drift.state.routes == 0


def test_markout_and_route_end_add_up_and_an_unfilled_route_still_teaches_the_drift() -> None:
    adjustment = RewardAdjustment(markout=True, to_route_end=True, drift_window=1000)
    unfilled = routed(finished_ts_ns=4 * NS)
    assert adjustment.adjust(SYMBOL, unfilled, MarketAfter(markout_bps=None, move_to_end_bps=2.8)) is None
    assert adjustment.drift.rate_bps_per_s == pytest.approx(2.8 / (4.0 + 10.0))   # shrunk by PRIOR_SECONDS
    filled = routed(fills=(fill(100.0, 1.0),), finished_ts_ns=NS, intent_id="i2")
    rate = adjustment.drift.rate_bps_per_s
    shift = adjustment.adjust(SYMBOL, filled, MarketAfter(markout_bps=1.0, move_to_end_bps=0.5))
    assert shift == pytest.approx(1.0 - (0.5 - rate * 1.0))


def test_a_refused_outcome_teaches_the_drift_nothing() -> None:
    adjustment = RewardAdjustment(markout=True, to_route_end=True, drift_window=1000)
    filled = routed(fills=(fill(100.0, 1.0),), finished_ts_ns=NS)
    for after in (None, MarketAfter(markout_bps=None, move_to_end_bps=1.0),
                  MarketAfter(markout_bps=1.0, move_to_end_bps=math.inf)):
        with pytest.raises(ValueError, match=SYMBOL):
            adjustment.adjust(SYMBOL, filled, after)
    assert adjustment.drift.state.routes == 0


@given(st.lists(st.tuples(st.floats(-1e4, 1e4), st.floats(0.0, 3600.0)), max_size=60),
       st.integers(0, 5000))
def test_the_drift_rate_stays_finite_and_bounded_by_the_moves_it_saw(
        routes: list[tuple[float, float]], window: int) -> None:
    drift = WaitingDrift(window)
    for move, seconds in routes:
        drift.observe(move, seconds)
        assert math.isfinite(drift.rate_bps_per_s)
    assert abs(drift.rate_bps_per_s) <= sum(abs(m) for m, _ in routes) / 10.0 + 1e-9


def test_a_tuner_keeps_its_waiting_drift_across_a_restart() -> None:
    bundle = tuned_bundle()
    against_end = msgspec.structs.replace(bundle, tuner=msgspec.structs.replace(bundle.tuner, reward_mid="route_end"))
    service, _ = new_service(against_end)
    for i in range(30):
        policy = service.decide(SYMBOL, None)
        event = msgspec.structs.replace(event_for(policy, 2.0), intent_id=f"i{i}", finished_ts_ns=2 * NS)
        service.observe(event, None, MarketAfter(markout_bps=None, move_to_end_bps=1.0))
    state = service.tuner(SYMBOL).to_state()
    assert state.waiting_drift is not None and state.waiting_drift.routes == 30
    restarted, _ = new_service(against_end)
    restarted.tuner(SYMBOL).load_state(state)
    assert restarted.tuner(SYMBOL).to_state().waiting_drift == state.waiting_drift
    plain, _ = new_service(bundle)   # learning the journaled cost (reward_mid arrival): no drift to keep
    assert plain.tuner(SYMBOL).to_state().waiting_drift is None
