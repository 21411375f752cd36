"""The coarse-tick markets of ``learner_ticks`` are honest re-quotes of their recording: every price on the coarse
tick and on the right side of the recorded one, the touch at least as deep as recorded, sizes scaled so notionals
are kept; and the benchmark's bad flags end in one line, exit 2."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from experiments.bench.learner_ticks import coarsen_tick, main
from router_tuner.router.market.synthetic import SyntheticMarketSpec, generate
from router_tuner.router.market.tape import MarketTape
from tests.market.test_market_binance import _snapshot, _ticker, _write


@pytest.fixture(scope="module")
def fine() -> MarketTape:
    return generate(SyntheticMarketSpec(
        symbol="BTCUSDT", start_ns=0, duration_s=60.0, mid0=60000.0, tick_size=0.1, spread_ticks=3,
        volatility_bps_per_sqrt_s=1.0, quote_interval_ms=100.0, trade_rate_per_s=5.0, mean_trade_qty=0.05,
        qty_step=0.001, touch_qty=2.0, sweep_decay_per_bps=1.0, seed=3))


@pytest.mark.parametrize("tick_bps", [2.0, 5.0])
def test_a_coarse_tape_is_the_recording_requoted(fine: MarketTape, tick_bps: float) -> None:
    divisor = 1_000_000
    coarse = coarsen_tick(fine, tick_bps, divisor)
    tick = round(coarse.tick_size * coarse.price_scale)
    mid = float(np.median((coarse.bid_px + coarse.ask_px) / 2.0))
    assert tick / mid * 1e4 == pytest.approx(tick_bps, rel=0.01)
    assert coarse.price_scale == fine.price_scale * divisor
    for prices in (coarse.bid_px, coarse.ask_px, coarse.trade_px, coarse.depth_px):
        assert (prices % tick == 0).all()
    assert (coarse.bid_px <= fine.bid_px).all() and (coarse.ask_px >= fine.ask_px).all()
    assert (coarse.ask_px - coarse.bid_px >= tick).all()
    assert (coarse.bid_qty >= fine.bid_qty * divisor).all() and (coarse.ask_qty >= fine.ask_qty * divisor).all()
    np.testing.assert_array_equal(coarse.trade_qty, fine.trade_qty * divisor)  # the notional of every trade is kept
    assert (np.abs(coarse.trade_px - fine.trade_px) < tick).all()
    assert len(coarse.depth_px) == len(fine.depth_px) and (coarse.depth_qty >= 0).all()


def test_a_tick_not_coarser_than_the_recording_is_refused(fine: MarketTape) -> None:
    with pytest.raises(ValueError, match="not coarser than the recording's"):
        coarsen_tick(fine, 0.01)
    with pytest.raises(ValueError, match="tick_bps must be positive and finite"):
        coarsen_tick(fine, float("nan"))


@pytest.mark.parametrize(("argv", "line"), [
    (["--tick-bps", "two"], "learner_ticks.py: error: --tick-bps two: could not convert string to float: 'two'"),
    (["--orders", "0"], "learner_ticks.py: error: --orders 0: at least 1"),
    (["--tick-bps", "0.001", "--symbols", "BTCUSD_PERP", "--data", "{data}"],
     "learner_ticks: BTCUSD_PERP: a tick of 0.001 bps is 0 price units, not coarser than the recording's 1"),
])
def test_a_bad_flag_is_one_line_and_exit_2(argv: list[str], line: str, capsys: pytest.CaptureFixture[str],
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    from router_tuner.router.market.binance import resolve_data_dir

    data = resolve_data_dir(None)
    if "{data}" in argv and data is None:
        pytest.skip("no recorded data")
    monkeypatch.setattr("sys.argv", ["learner_ticks.py"])
    try:
        code = main([a.replace("{data}", str(data)) for a in argv])
    except SystemExit as stop:
        code = stop.code
    assert code == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == line


def test_a_recording_too_short_for_the_intents_is_one_line_and_exit_2(tmp_path: Path,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    """Five seconds of BTCUSDT: shorter than the intents' warm-up and tail (it would have been a traceback)."""
    messages = [_snapshot(0, 100, [["60000.00", "3.000"]], [["60000.10", "4.000"]])]
    messages += [_ticker("btcusdt", 1 + 50 * k, "60000.00", "60000.10") for k in range(100)]
    data = tmp_path / "data"
    data.mkdir()
    _write(data / "usdm_btcusdt_20240809.jsonl.gz", messages)
    assert main(["--data", str(data), "--symbols", "BTCUSDT", "--orders", "5", "--seeds", "3"]) == 2
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert line.startswith("learner_ticks: BTCUSDT: the tape (") and "\n" not in line
