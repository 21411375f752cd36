"""The synthetic touch imbalance: seeded, bounded, mean-reverting, and the touch keeps its total size."""

from __future__ import annotations

import numpy as np
import pytest

from router_tuner.router.market.synthetic import SyntheticMarketSpec, generate
from router_tuner.router.market.touch_imbalance import imbalance_path, with_touch_imbalance

STEP_NS = 100_000_000  # 100 ms quotes


def _tape(touch_qty: float = 2.0):
    return generate(SyntheticMarketSpec(
        symbol="BTCUSDT", start_ns=0, duration_s=600.0, mid0=60_000.0, tick_size=0.1, spread_ticks=1,
        volatility_bps_per_sqrt_s=1.0, quote_interval_ms=100.0, trade_rate_per_s=5.0, mean_trade_qty=0.05,
        qty_step=0.001, touch_qty=touch_qty, sweep_decay_per_bps=0.5, seed=1))


def test_the_path_is_seeded_bounded_and_leans_both_ways_at_the_stationary_rate() -> None:
    times = np.arange(200_000, dtype=np.int64) * STEP_NS
    path = imbalance_path(times, sd=1.0, half_life_s=5.0, seed=7)
    assert np.array_equal(path, imbalance_path(times, sd=1.0, half_life_s=5.0, seed=7))
    assert not np.array_equal(path, imbalance_path(times, sd=1.0, half_life_s=5.0, seed=8))
    assert np.all(np.abs(path) < 1)
    # tanh(x) >= 0.2 when x >= atanh(0.2) = 0.2027, x ~ N(0, 1): 0.42 of the time, either way
    assert np.mean(path >= 0.2) == pytest.approx(0.42, abs=0.05)
    assert np.mean(path <= -0.2) == pytest.approx(0.42, abs=0.05)


def test_the_half_life_sets_how_fast_the_lean_forgets() -> None:
    times = np.arange(200_000, dtype=np.int64) * STEP_NS
    latent = np.arctanh(imbalance_path(times, sd=1.0, half_life_s=5.0, seed=3))
    lag = 50  # 5 s: one half-life
    correlation = np.corrcoef(latent[:-lag], latent[lag:])[0, 1]
    assert correlation == pytest.approx(0.5, abs=0.05)


def test_the_tape_keeps_prices_trades_and_the_touch_total() -> None:
    flat = _tape()
    leaning = with_touch_imbalance(flat, sd=1.0, half_life_s=5.0, seed=(11, 0))
    assert np.array_equal(leaning.bid_px, flat.bid_px) and np.array_equal(leaning.trade_px, flat.trade_px)
    total = leaning.bid_qty + leaning.ask_qty
    assert np.all(np.abs(total - (flat.bid_qty + flat.ask_qty)) <= 1)
    assert leaning.bid_qty.min() >= 1 and leaning.ask_qty.min() >= 1
    observed = (leaning.bid_qty - leaning.ask_qty) / total
    assert observed.std() > 0.3  # the flat book read 0.0 everywhere


@pytest.mark.parametrize(("sd", "half_life_s"), [(0.0, 5.0), (1.0, 0.0), (float("nan"), 5.0), (1.0, float("inf"))])
def test_bad_parameters_are_refused(sd: float, half_life_s: float) -> None:
    with pytest.raises(ValueError, match="must be finite and > 0"):
        imbalance_path(np.arange(3, dtype=np.int64), sd=sd, half_life_s=half_life_s, seed=0)


def test_unsorted_times_are_refused() -> None:
    with pytest.raises(ValueError, match="sorted"):
        imbalance_path(np.array([0, 2, 1], dtype=np.int64), sd=1.0, half_life_s=5.0, seed=0)
