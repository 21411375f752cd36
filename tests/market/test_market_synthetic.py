"""Synthetic market: determinism, statistical sanity, and the fill-probability truth it realises."""

from __future__ import annotations

import dataclasses
import itertools
import math

import numpy as np
import pytest

from router_tuner.router.market.synthetic import SyntheticMarketSpec, generate, generate_regimes

BASE = SyntheticMarketSpec(
    symbol="SYNUSDT", start_ns=1_700_000_000_000_000_000, duration_s=1800.0, mid0=60_000.0, tick_size=0.01,
    spread_ticks=3, volatility_bps_per_sqrt_s=1.5, quote_interval_ms=100.0, trade_rate_per_s=4.0,
    mean_trade_qty=0.05, qty_step=0.001, touch_qty=2.0, sweep_decay_per_bps=0.8, seed=7,
)


def _same(a: object, b: object) -> bool:
    return all(np.array_equal(getattr(a, f.name), getattr(b, f.name)) for f in dataclasses.fields(a))


def test_deterministic_for_a_seed() -> None:
    assert _same(generate(BASE), generate(BASE))
    assert not np.array_equal(generate(BASE).trade_px, generate(dataclasses.replace(BASE, seed=8)).trade_px)


def test_statistical_sanity() -> None:
    tape = generate(BASE)
    expected = BASE.trade_rate_per_s * BASE.duration_s
    assert abs(len(tape.trade_ts_ns) - expected) < 4 * math.sqrt(expected)
    assert (tape.ask_px - tape.bid_px == BASE.spread_ticks).all()
    assert (tape.bid_qty == 2000).all() and tape.price_scale == 100 and tape.qty_scale == 1000
    assert tape.start_ns == BASE.start_ns and tape.end_ns <= BASE.start_ns + int(BASE.duration_s * 1e9)
    mid = (tape.bid_px + tape.ask_px) / 2
    step_bps = np.diff(np.log(mid)) * 1e4
    realised = step_bps.std() / math.sqrt(BASE.quote_interval_ms / 1000)
    assert realised == pytest.approx(BASE.volatility_bps_per_sqrt_s, rel=0.1)
    sells = tape.trade_buyer_maker
    assert abs(sells.mean() - 0.5) < 4 * math.sqrt(0.25 / len(sells))
    assert tape.qty(tape.trade_qty).mean() == pytest.approx(BASE.mean_trade_qty, rel=0.1)
    at = np.searchsorted(tape.quote_ts_ns, tape.trade_ts_ns, side="right") - 1
    assert (tape.trade_px[sells] <= tape.bid_px[at][sells]).all()
    assert (tape.trade_px[~sells] >= tape.ask_px[at][~sells]).all()


@pytest.mark.parametrize(("offset_ticks", "ttl_ms"), [(0, 250), (60, 1000), (150, 2000)])
def test_generated_trades_realise_the_fill_probability(offset_ticks: int, ttl_ms: int) -> None:
    """A passive buy ``offset_ticks`` below a still bid fills when a sell prints at or through it."""
    spec = dataclasses.replace(BASE, volatility_bps_per_sqrt_s=0.0, duration_s=3600.0)
    tape = generate(spec)
    bid = int(tape.bid_px[0])
    offset_bps = offset_ticks / bid * 1e4
    ttl_ns = ttl_ms * 1_000_000
    windows = np.arange(spec.start_ns, spec.start_ns + int(spec.duration_s * 1e9) - ttl_ns, ttl_ns)
    hits = tape.trade_buyer_maker & (tape.trade_px <= bid - offset_ticks)
    hit_ts = tape.trade_ts_ns[hits]
    first = np.searchsorted(hit_ts, windows, side="left")
    filled = (first < len(hit_ts)) & (hit_ts[np.minimum(first, len(hit_ts) - 1)] < windows + ttl_ns)
    truth = spec.fill_probability(offset_bps, ttl_ms)
    assert filled.mean() == pytest.approx(truth, abs=4 * math.sqrt(truth * (1 - truth) / len(windows)) + 1e-3)


def test_fill_probability_shape() -> None:
    p = [BASE.fill_probability(x, 1000) for x in (0.0, 1.0, 2.0, 4.0)]
    assert p == sorted(p, reverse=True) and 0 < p[-1] < p[0] < 1
    small = dataclasses.replace(BASE, trade_rate_per_s=0.002)
    a = small.fill_rate_at_touch_per_s * 1.0
    assert small.fill_probability(2.0, 1000) == pytest.approx(a * math.exp(-0.8 * 2.0), rel=1e-3)
    assert BASE.fill_probability(3.0, 0) == 0.0
    with pytest.raises(ValueError, match="must be >= 0"):
        BASE.fill_probability(-1.0, 100)


@pytest.mark.parametrize(("field", "value", "message"), [
    ("tick_size", 0.03, "tick_size must be 1/n"),
    ("tick_size", 0.0, "tick_size must be > 0"),
    ("spread_ticks", 0, "spread_ticks must be >= 1"),
    ("trade_rate_per_s", -1.0, "trade_rate_per_s must be >= 0"),
    ("symbol", "", "symbol must not be empty"),
    ("qty_step", 0.3, "qty_step must be 1/n"),
])
def test_spec_rejects_bad_values(field: str, value: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        dataclasses.replace(BASE, **{field: value})


def test_zero_trade_rate_gives_quotes_only() -> None:
    tape = generate(dataclasses.replace(BASE, trade_rate_per_s=0.0, duration_s=10.0))
    assert len(tape.trade_ts_ns) == 0 and len(tape.quote_ts_ns) == 101


def test_regimes_follow_each_other_at_the_last_mid_with_their_own_activity() -> None:
    quiet = dataclasses.replace(BASE, duration_s=300.0, trade_rate_per_s=0.5)
    busy = dataclasses.replace(BASE, duration_s=300.0, trade_rate_per_s=8.0, seed=8)
    tape = generate_regimes([quiet, busy, dataclasses.replace(quiet, seed=9)])
    assert np.all(np.diff(tape.quote_ts_ns) > 0) and np.all(np.diff(tape.trade_ts_ns) >= 0)
    bounds = [BASE.start_ns + k * 300 * 10**9 for k in range(4)]
    counts = [int(np.count_nonzero((tape.trade_ts_ns >= a) & (tape.trade_ts_ns < b)))
              for a, b in itertools.pairwise(bounds)]
    assert counts[1] > 8 * max(counts[0], counts[2]), f"the busy regime trades far more: {counts}"
    last = int(np.searchsorted(tape.quote_ts_ns, bounds[1], side="right")) - 1  # the first regime's last quote
    mid = (tape.bid_px + tape.ask_px) / 2
    assert tape.quote_ts_ns[last + 1] - tape.quote_ts_ns[last] == round(BASE.quote_interval_ms * 1e6)
    assert abs(mid[last + 1] - mid[last]) <= 1, "the next regime starts at the last mid (within a tick)"
    with pytest.raises(ValueError, match="share symbol"):
        generate_regimes([BASE, dataclasses.replace(BASE, tick_size=0.1)])
    with pytest.raises(ValueError, match="at least one"):
        generate_regimes([])
