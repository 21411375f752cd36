"""A recording played at different speeds piece by piece (``warp_time``)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from router_tuner.router.market.synthetic import SyntheticMarketSpec, generate
from router_tuner.router.market.tape import MarketTape
from router_tuner.router.market.warp import warp_time

START = 1_700_000_000_000_000_000
S = 1_000_000_000
TAPE = generate(SyntheticMarketSpec(
    symbol="SYNUSDT", start_ns=START, duration_s=600.0, mid0=60_000.0, tick_size=0.01, spread_ticks=3,
    volatility_bps_per_sqrt_s=1.5, quote_interval_ms=100.0, trade_rate_per_s=4.0, mean_trade_qty=0.05,
    qty_step=0.001, touch_qty=2.0, sweep_decay_per_bps=0.8, seed=3))


def _rate(tape: MarketTape, start_ns: int, end_ns: int) -> float:
    """Trades per second between two times of ``tape``."""
    ts = tape.trade_ts_ns
    return float(((ts >= start_ns) & (ts < end_ns)).sum()) / ((end_ns - start_ns) / S)


def test_a_slowed_stretch_lasts_longer_with_fewer_trades_per_second_and_the_same_events() -> None:
    knots = [START + 100 * S, START + 200 * S, START + 400 * S]
    warped = warp_time(TAPE, knots, [0.25, 1.0])
    # before the first knot nothing moves; the slowed 100 s last 400 s; the rest is shifted by the 300 s added
    before = TAPE.quote_ts_ns < knots[0]
    assert np.array_equal(warped.quote_ts_ns[before], TAPE.quote_ts_ns[before])
    after = TAPE.trade_ts_ns > knots[-1]
    assert np.array_equal(warped.trade_ts_ns[after], TAPE.trade_ts_ns[after] + 300 * S)
    slowed = (TAPE.trade_ts_ns >= knots[0]) & (TAPE.trade_ts_ns < knots[1])
    offsets = TAPE.trade_ts_ns[slowed] - knots[0]
    assert np.abs(warped.trade_ts_ns[slowed] - (knots[0] + 4 * offsets)).max() <= 1
    assert _rate(warped, knots[0], knots[0] + 400 * S) == pytest.approx(_rate(TAPE, knots[0], knots[1]) / 4)
    # prices, sizes and the order of events are the recording's
    for name in ("bid_px", "ask_px", "trade_px", "trade_qty", "trade_buyer_maker", "depth_px", "depth_qty"):
        assert np.array_equal(getattr(warped, name), getattr(TAPE, name)), name
    assert warped.end_ns - warped.start_ns == TAPE.end_ns - TAPE.start_ns + 300 * S


@settings(max_examples=30, deadline=None)
@given(cuts=st.lists(st.integers(1, 599), min_size=1, max_size=5, unique=True),
       speeds=st.lists(st.sampled_from([0.1, 0.25, 0.5, 1.0, 2.0, 4.0]), min_size=6, max_size=6))
def test_any_warp_keeps_every_stream_sorted_and_the_tape_valid(cuts: list[int], speeds: list[float]) -> None:
    knots = [START + c * S for c in sorted(cuts)] + [START + 600 * S]
    warped = warp_time(TAPE, knots, speeds[:len(knots) - 1])  # validate() inside: every stream sorted by time
    for name in ("quote_ts_ns", "trade_ts_ns", "depth_ts_ns"):
        assert (np.diff(getattr(warped, name)) >= 0).all()
        assert len(getattr(warped, name)) == len(getattr(TAPE, name))


@pytest.mark.parametrize(("knots", "speeds", "message"), [
    ([START, START + S], [], "one more knot"),
    ([START, START], [1.0], "increase strictly"),
    ([START + S, START], [1.0], "increase strictly"),
    ([START, START + S], [0.0], "positive and finite"),
    ([START, START + S], [float("nan")], "positive and finite"),
])
def test_bad_knots_or_speeds_are_refused(knots: list[int], speeds: list[float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        warp_time(TAPE, knots, speeds)
