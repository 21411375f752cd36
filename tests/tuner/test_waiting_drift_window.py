"""``reward_mid_drift_window`` 0 assumes uninformed intents: the waiting drift's rate stays 0 even when the state it
starts from was saved under a window (it used to keep that state's rate, frozen, since window 0 observes nothing)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from router_tuner.tuner.reward_adjustment import MAX_MOVE_SUM_BPS, MAX_SECONDS_SUM, WaitingDrift, WaitingDriftState

states = st.builds(WaitingDriftState,
                   move_bps=st.floats(-MAX_MOVE_SUM_BPS, MAX_MOVE_SUM_BPS),
                   seconds=st.floats(0.0, MAX_SECONDS_SUM),
                   routes=st.integers(0, 10**6))


@given(state=states, move=st.floats(-1e4, 1e4), seconds=st.floats(0.0, 600.0))
def test_window_zero_has_no_drift_whatever_state_it_starts_from(state: WaitingDriftState, move: float,
                                                                seconds: float) -> None:
    drift = WaitingDrift(0, state)
    assert drift.rate_bps_per_s == 0.0
    drift.observe(move, seconds)
    assert drift.rate_bps_per_s == 0.0 and drift.state == state


def test_a_window_continues_from_the_state_it_loaded() -> None:
    state = WaitingDriftState(move_bps=20.0, seconds=10.0, routes=5)
    assert WaitingDrift(2000, state).rate_bps_per_s == 1.0  # 20 bps over 10 s + the 10 s prior
