"""Recorder storage without a network: exact parsing of raw payloads, rejection of bad ones, chunk merging."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from router_tuner.router.market.record.buffer import RecordingError, SymbolBuffer
from router_tuner.router.market.record.chunks import ChunkWriter, chunk_paths, read_recording
from router_tuner.router.market.record.fields import BINANCE_USDM, record_fields_for
from tests.fakes.binance_ws import book_ticker, trade

Q, T = BINANCE_USDM.quote, BINANCE_USDM.trade
T0_MS = 1_723_161_256_313


def test_quotes_and_trades_keep_exact_prices_at_one_scale() -> None:
    buf = SymbolBuffer("BTCUSDT")
    assert buf.add_quote(book_ticker("BTCUSDT", 1, "61800.2", "2.507", "61800.25", "0.001", T0_MS + 5), Q)
    assert buf.add_quote(book_ticker("BTCUSDT", 2, "61800", "3", "61800.10", "12", T0_MS), Q)
    assert buf.add_trade(trade("BTCUSDT", 7, "0.00000001", "100000", T0_MS, True), T)
    tape = buf.to_tape("binanceusdm", 0.1)
    assert tape.price_scale == 10**8 and tape.qty_scale == 1000
    assert tape.quote_ts_ns.tolist() == [T0_MS * 10**6, (T0_MS + 5) * 10**6]  # sorted by exchange time
    assert [Decimal(int(x)) / tape.price_scale for x in tape.bid_px] == [Decimal("61800"), Decimal("61800.2")]
    assert [Decimal(int(x)) / tape.price_scale for x in tape.ask_px] == [Decimal("61800.1"), Decimal("61800.25")]
    assert [Decimal(int(x)) / tape.qty_scale for x in tape.ask_qty] == [Decimal(12), Decimal("0.001")]
    assert int(tape.trade_px[0]) == 1 and tape.trade_buyer_maker.tolist() == [True]


@pytest.mark.parametrize(("field", "value", "message"), [
    ("b", 61800.2, "must be the exchange's decimal string"),
    ("b", "6.18e4", "not an unsigned decimal string"),
    ("A", "-1", "not an unsigned decimal string"),
    ("E", "1723161256313", "time field 'E' must be a positive integer"),
])
def test_malformed_quote_fields_raise_naming_the_field(field: str, value: object, message: str) -> None:
    msg = book_ticker("BTCUSDT", 1, "61800.2", "1", "61800.3", "1", T0_MS)
    msg[field] = value
    with pytest.raises(RecordingError, match=message):
        SymbolBuffer("BTCUSDT").add_quote(msg, Q)


def test_trade_side_flag_must_be_boolean() -> None:
    msg = trade("BTCUSDT", 1, "61800.2", "1", T0_MS, True)
    msg["m"] = "true"
    with pytest.raises(RecordingError, match="trade field 'm' must be a boolean"):
        SymbolBuffer("BTCUSDT").add_trade(msg, T)


def test_crossed_or_zero_price_messages_are_counted_not_stored() -> None:
    buf = SymbolBuffer("BTCUSDT")
    assert not buf.add_quote(book_ticker("BTCUSDT", 1, "61800.30", "1", "61800.3", "1", T0_MS), Q)  # bid == ask
    assert not buf.add_quote(book_ticker("BTCUSDT", 2, "0", "1", "61800.3", "1", T0_MS), Q)
    assert not buf.add_trade(trade("BTCUSDT", 1, "0.0", "1", T0_MS, False), T)
    assert buf.rejected == 3 and buf.is_empty()


def test_drain_moves_events_and_keeps_the_rejected_count() -> None:
    buf = SymbolBuffer("BTCUSDT")
    buf.add_trade(trade("BTCUSDT", 1, "1.5", "1", T0_MS, False), T)
    buf.add_trade(trade("BTCUSDT", 2, "0", "1", T0_MS, False), T)
    buf.add_gap(T0_MS * 10**6)
    drained = buf.drain()
    assert drained.n_events == 1 and drained.gap_ts_ns == [T0_MS * 10**6]
    assert buf.is_empty() and buf.rejected == 1


def test_chunks_at_different_scales_merge_exactly_and_temp_files_are_ignored(tmp_path: Path) -> None:
    writer = ChunkWriter(tmp_path, "ETHUSDT")
    first, second = SymbolBuffer("ETHUSDT"), SymbolBuffer("ETHUSDT")
    first.add_trade(trade("ETHUSDT", 1, "2580", "1", T0_MS + 10, False), T)
    first.add_gap((T0_MS + 10) * 10**6)
    second.add_trade(trade("ETHUSDT", 2, "2580.05", "0.125", T0_MS + 20, True), T)
    second.add_quote(book_ticker("ETHUSDT", 3, "2580.01", "4", "2580.02", "5", T0_MS + 1), Q)
    writer.write(first.to_tape("binanceusdm", 0.01))
    writer.write(second.to_tape("binanceusdm", 0.01))
    (writer.dir / ".chunk-000002.parquet.123.tmp").write_bytes(b"half a file")  # a crash mid-write
    tape = read_recording(tmp_path, "ETHUSDT")
    assert (tape.price_scale, tape.qty_scale) == (100, 1000)
    assert tape.trade_px.tolist() == [258000, 258005] and tape.trade_qty.tolist() == [1000, 125]
    assert tape.bid_px.tolist() == [258001] and tape.depth_gap_ts_ns.tolist() == [(T0_MS + 10) * 10**6]
    assert ChunkWriter(tmp_path, "ETHUSDT").resumed  # a new session continues the numbering
    assert [p.name for p in chunk_paths(writer.dir)] == ["chunk-000000.parquet", "chunk-000001.parquet"]


def test_chunk_of_another_symbol_is_refused(tmp_path: Path) -> None:
    buf = SymbolBuffer("BTCUSDT")
    buf.add_trade(trade("BTCUSDT", 1, "1.5", "1", T0_MS, False), T)
    ChunkWriter(tmp_path, "ETHUSDT").write(buf.to_tape("binanceusdm", 0.1))
    with pytest.raises(RecordingError, match="chunk holds binanceusdm/BTCUSDT, expected binanceusdm/ETHUSDT"):
        read_recording(tmp_path, "ETHUSDT")


def test_unsupported_exchange_is_refused() -> None:
    with pytest.raises(ValueError, match=r"recording from 'kraken' is not supported.*supported: binanceusdm"):
        record_fields_for("kraken")
