"""Captures with more streams than the book needs: markPrice kept, aggTrade/forceOrder counted and skipped,
unknown streams skipped with a warning, and the book and trades identical to the capture without them."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from router_tuner.router.market.binance import MarketDataError, load_binance, read_binance
from router_tuner.router.market.tape import MarketTape
from tests.market.test_market_binance import T0_MS, _diff, _futures_stream, _snapshot, _ticker, _trade, _write

_TAPE_COLUMNS = ("quote_ts_ns", "bid_px", "bid_qty", "ask_px", "ask_qty", "trade_ts_ns", "trade_px", "trade_qty",
                 "trade_buyer_maker", "depth_ts_ns", "depth_side", "depth_px", "depth_qty", "depth_snapshot_idx",
                 "depth_gap_ts_ns")


def _mark(sym: str, t: int, price: str, *, skew_ms: int = 0) -> dict[str, object]:
    return {"_recv_ms": T0_MS + t + 1 + skew_ms, "stream": f"{sym}@markPrice@1s",
            "data": {"e": "markPriceUpdate", "E": T0_MS + t, "s": sym.upper(), "p": price,
                     "i": "100.10000000", "P": "100.20000000", "r": "0.00010000", "T": T0_MS + 8 * 3_600_000}}


def _agg_trade(sym: str, t: int, *, skew_ms: int = 0) -> dict[str, object]:
    return {"_recv_ms": T0_MS + t + 1 + skew_ms, "stream": f"{sym}@aggTrade",
            "data": {"e": "aggTrade", "E": T0_MS + t, "s": sym.upper(), "a": 5, "p": "100.2", "q": "0.010",
                     "f": 100, "l": 105, "T": T0_MS + t, "m": True}}


def _force_order(stream: str, t: int, symbol: str) -> dict[str, object]:
    return {"_recv_ms": T0_MS + t + 1, "stream": stream,
            "data": {"e": "forceOrder", "E": T0_MS + t,
                     "o": {"s": symbol, "S": "SELL", "o": "LIMIT", "f": "IOC", "q": "0.014", "p": "99.50",
                           "ap": "99.80", "X": "FILLED", "l": "0.014", "z": "0.014", "T": T0_MS + t}}}


def _extras(sym: str) -> list[dict[str, object]]:
    """Every extra stream once per kind; skewed receive times would move the clock offset if they counted."""
    return [_mark(sym, 2, "100.15234567", skew_ms=900), _agg_trade(sym, 3, skew_ms=-700),
            _force_order(f"{sym}@forceOrder", 4, sym.upper()), _force_order("!forceOrder@arr", 5, "OTHERUSDT"),
            _mark(sym, 6, "100.16"), _agg_trade(sym, 7)]


def _assert_same_market(with_extras: MarketTape, plain: MarketTape) -> None:
    for name in _TAPE_COLUMNS:
        assert np.array_equal(getattr(with_extras, name), getattr(plain, name)), name
    for name in ("symbol", "market", "price_scale", "qty_scale", "tick_size", "start_ns", "end_ns", "n_events"):
        assert getattr(with_extras, name) == getattr(plain, name), name


def _interleave(base: list[dict[str, object]], extras: list[dict[str, object]],
                positions: list[int]) -> list[dict[str, object]]:
    out = list(base)
    for extra, pos in sorted(zip(extras, positions, strict=True), key=lambda pair: -pair[1]):
        out.insert(pos, extra)
    return out


def test_futures_capture_with_mark_agg_trade_and_liquidations(tmp_path: Path) -> None:
    base = _futures_stream()
    plain = load_binance([_write(tmp_path / "usdm_tstusdt_20240101.jsonl.gz", base)])
    (tmp_path / "x").mkdir()
    mixed = _interleave(base, _extras("tstusdt"), [1, 2, 3, 5, 6, 8])
    loaded = read_binance([_write(tmp_path / "x" / "usdm_tstusdt_20240101.jsonl.gz", mixed)])
    _assert_same_market(loaded.tape, plain)
    assert loaded.tape.mark_ts_ns.tolist() == [(T0_MS + 2) * 1_000_000, (T0_MS + 6) * 1_000_000]
    assert loaded.tape.mark_px.tolist() == pytest.approx([100.15234567, 100.16], abs=1e-12)
    assert len(plain.mark_ts_ns) == 0 and plain.mark_px.dtype == np.float64
    summary = loaded.summary
    assert dict(summary.read) == {"bookTicker": 2, "depth": 4, "snapshot": 1, "trade": 1, "markPrice": 2}
    assert summary.depth_applied == 3 and summary.depth_gaps == 0
    assert dict(summary.skipped) == {"aggTrade": 2, "forceOrder": 1, "!forceOrder@arr": 1}
    assert not summary.unknown and summary.other_symbols == 0
    line = summary.describe()
    assert line.startswith("usdm TSTUSDT, 1 file: used bookTicker 2, depth 4 (3 applied, 0 gaps)")
    assert "markPrice 2" in line and "skipped !forceOrder@arr 1, aggTrade 2, forceOrder 1" in line
    assert summary.to_dict()["skipped"] == {"aggTrade": 2, "forceOrder": 1, "!forceOrder@arr": 1}


def test_spot_local_clock_is_not_moved_by_skipped_streams(tmp_path: Path) -> None:
    """Spot bookTicker is timed by the clock offset; aggTrade lines with other offsets must not shift it."""
    base = [_ticker("tstusdt", 1, "10.00", "10.01", exchange_time=False),
            _snapshot(3, 50, [["10.00", "2.0"]], [["10.01", "3.0"]], exchange_time=False),
            _diff("tstusdt", 4, 51, 52, None, [["9.99", "1.5"]], []),
            _trade("tstusdt", 6, "10.01", "0.5", True)]
    plain = load_binance([_write(tmp_path / "spot_tstusdt_20240101.jsonl.gz", base)])
    (tmp_path / "x").mkdir()
    extras = [_agg_trade("tstusdt", t, skew_ms=5_000) for t in (2, 3, 5, 7, 8)]
    mixed = _interleave(base, extras, [1, 1, 2, 3, 4])
    _assert_same_market(load_binance([_write(tmp_path / "x" / "spot_tstusdt_20240101.jsonl.gz", mixed)]), plain)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(positions=st.lists(st.integers(0, len(_futures_stream())), min_size=6, max_size=6))
def test_any_interleaving_leaves_book_and_trades_identical(tmp_path: Path, positions: list[int]) -> None:
    base = _futures_stream()
    plain = load_binance([_write(tmp_path / "usdm_tstusdt_20240101.jsonl.gz", base)])
    mixed = _write(tmp_path / "usdm_tstusdt_20240102.jsonl.gz", _interleave(base, _extras("tstusdt"), positions))
    loaded = read_binance([mixed])
    _assert_same_market(loaded.tape, plain)
    assert len(loaded.tape.mark_ts_ns) == 2 and (np.diff(loaded.tape.mark_ts_ns) >= 0).all()


def test_unknown_stream_is_counted_skipped_and_warned(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    base = _futures_stream()
    plain = load_binance([_write(tmp_path / "usdm_tstusdt_20240101.jsonl.gz", base)])
    kline = {"_recv_ms": T0_MS + 3, "stream": "tstusdt@kline_1m", "data": {"e": "kline", "E": T0_MS + 2}}
    partial = {"_recv_ms": T0_MS + 4, "stream": "tstusdt@depth20@100ms", "data": {"lastUpdateId": 1}}
    everything = {"_recv_ms": T0_MS + 5, "stream": "!ticker@arr", "data": {"e": "24hrTicker"}}
    (tmp_path / "x").mkdir()
    path = _write(tmp_path / "x" / "usdm_tstusdt_20240101.jsonl.gz",
                  _interleave(base, [kline, partial, everything], [2, 4, 6]))
    with caplog.at_level(logging.INFO, logger="router_tuner.router.market.binance"):
        tape = load_binance([path])
    _assert_same_market(tape, plain)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "skipped unknown streams !ticker@arr 1, depth20@100ms 1, kline_1m 1" in warnings[0]


def test_capture_without_book_ticker_is_refused(tmp_path: Path) -> None:
    msgs = [m for m in _futures_stream() if not str(m.get("stream", "")).endswith("@bookTicker")]
    path = _write(tmp_path / "usdm_tstusdt_20240101.jsonl.gz", [*msgs, _agg_trade("tstusdt", 9)])
    with pytest.raises(MarketDataError, match=r"no bookTicker messages for TSTUSDT.*skipped aggTrade 1"):
        load_binance([path])


def test_other_symbols_extra_streams_are_counted_when_one_symbol_is_selected(tmp_path: Path) -> None:
    msgs = [*_futures_stream(), _mark("othusdt", 9, "5.05"), _agg_trade("othusdt", 9)]
    loaded = read_binance([_write(tmp_path / "usdm_mixed_20240101.jsonl.gz", msgs)], symbol="tstusdt")
    assert len(loaded.tape.mark_ts_ns) == 0 and loaded.summary.other_symbols == 2
    assert "skipped 2 messages of other symbols" in loaded.summary.describe()
