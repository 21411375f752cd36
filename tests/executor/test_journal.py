"""The journal: strict, durable, append-only, versioned, single-writer; exports Parquet atomically."""

from __future__ import annotations

import doctest
import math
import sqlite3
from pathlib import Path
from typing import Any

import msgspec
import pyarrow.parquet as pq
import pytest

import router_tuner.executor.journal as journal_module
from router_tuner.executor.journal import (
    JOURNAL_FORMAT_VERSION,
    CorruptRow,
    DuplicateEvent,
    Journal,
    JournalError,
    JournalLocked,
    JournalVersionError,
)
from router_tuner.router.arrow_events import from_arrow
from router_tuner.router.codec import SchemaError
from router_tuner.router.events import (
    SCHEMA_VERSION,
    ClosedLot,
    Fill,
    Intent,
    RouterEvent,
    TradeRecord,
    VetoEvent,
    VetoReason,
)


def trade(intent_id: str, symbol: str = "BTC/USDT:USDT", ts_ns: int = 1_000, **overrides: Any) -> TradeRecord:
    fields: dict[str, Any] = dict(
        schema_version=SCHEMA_VERSION, intent_id=intent_id, symbol=symbol, tier="t1", strategy="s1",
        size_hint_usd=300.0, size_multiplier=1.0, suggested_gross_usd=250.0, clamped_gross_usd=200.0,
        binding_limit="bucket_cap", veto_reasons=(), filled_qty=0.002, avg_price=100_000.1, fees_usd=0.08,
        realized_pnl_usd=None, ts_ns=ts_ns,
        closed_lots=(ClosedLot(opening_intent_id="o1", opening_strategy="s1", qty=0.001, realized_pnl_usd=-0.25),),
    )
    fields.update(overrides)
    return TradeRecord(**fields)


def routed(intent_id: str, finished_ts_ns: int = 2_000) -> RouterEvent:
    fill = Fill(trade_id=f"t-{intent_id}", client_order_id=f"c-{intent_id}", price=0.1 + 0.2, qty=1.0,
                fee_usd=-0.0, liquidity="maker", ts_ns=finished_ts_ns - 1)
    return RouterEvent(
        schema_version=SCHEMA_VERSION, intent_id=intent_id, symbol="ETH/USDC:USDC", side="sell", qty=1.0,
        reduce_only=True, close_position=True, position_side="LONG", arrival_bid=0.29, arrival_ask=0.31,
        arrival_mid=0.3, arrival_ts_ns=finished_ts_ns - 10,
        policy_id="bandit", policy_version=7, arm="o1_b0.2", maker_offset_bps=1.0, taker_bias=0.2,
        propensity=0.125, route_propensity=0.8, started_maker=True, is_maker_final=True, used_fallback=False,
        routed_as="maker", outcome="filled", reprice_count=1, cancel_count=1, post_only_reject_count=0,
        fills=(fill,), filled_qty=1.0, avg_price=0.1 + 0.2, slippage_bps=-1.5e-12, fees_bps=-0.0, cost_bps=None,
        time_to_fill_ms=None, realized_pnl_usd=5e-324, error=None, finished_ts_ns=finished_ts_ns,
    )


def vetoed(intent_id: str, ts_ns: int = 3_000) -> VetoEvent:
    intent = Intent(intent_id=intent_id, symbol="SOL/USDT", side="buy", size_hint_usd=50.0, tier="t2",
                    strategy="mr", reduce_only=False, close_position=False, position_side="LONG", is_stop=False,
                    ts_ns=ts_ns - 5)
    reason = VetoReason(code="symbol_notional_cap", threshold=1_000.0, observed="1200.5", detail="cap 1000")
    return VetoEvent(schema_version=SCHEMA_VERSION, intent=intent, reasons=(reason,),
                     context={"open_positions_count": 3, "nav_age_ms": 1.5, "tags": ["a", None]}, ts_ns=ts_ns)


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "nested" / "journal.sqlite"


def test_docstring_example_runs() -> None:
    assert doctest.testmod(journal_module).failed == 0


def test_round_trip_of_every_kind_in_insertion_order(path: Path) -> None:
    events = [routed("r1"), vetoed("v1"), trade("b", ts_ns=5), trade("a", ts_ns=1), routed("r2")]
    with Journal(path) as journal:
        journal.append(events[0])
        journal.append_many(events[1:])
        assert list(journal.read("router")) == [events[0], events[4]]
        assert list(journal.read("veto")) == [events[1]]
        assert [e.intent_id for e in journal.read("trade")] == ["b", "a"]  # insertion, not ts order
        assert (journal.count("router"), journal.count("veto"), journal.count("trade")) == (2, 1, 2)
    with Journal(path, readonly=True) as reader:
        assert list(reader.read("router")) == [events[0], events[4]]


def test_filters_by_symbol_and_time(path: Path) -> None:
    with Journal(path) as journal:
        journal.append_many([trade("1", "BTC", 10), trade("2", "ETH", 20), trade("3", "BTC", 30), trade("4", "BTC", 5)])
        assert [e.intent_id for e in journal.read("trade", symbol="BTC")] == ["1", "3", "4"]
        assert [e.intent_id for e in journal.read("trade", since_ns=10)] == ["1", "2", "3"]
        assert [e.intent_id for e in journal.read("trade", symbol="BTC", since_ns=11)] == ["3"]
        assert list(journal.read("trade", symbol="XRP")) == []
        journal.append(routed("r", finished_ts_ns=100))
        assert list(journal.read("router", since_ns=100)) == [routed("r", finished_ts_ns=100)]
        assert list(journal.read("router", since_ns=101)) == []


def test_reads_what_was_appended_after_a_row(path: Path) -> None:
    with Journal(path) as journal:
        assert journal.last_row() == 0
        journal.append_many([trade("1"), routed("r1")])
        mark = journal.last_row()
        journal.append_many([trade("2"), routed("r2"), vetoed("v2")])
        assert [e.intent_id for e in journal.read("trade", after_row=mark)] == ["2"]
        assert [e.intent_id for e in journal.read("router", after_row=mark)] == ["r2"]
        assert journal.last_row() == mark + 3 and list(journal.read("veto", after_row=journal.last_row())) == []


def test_default_path_is_var_journal_with_parent_created(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with Journal() as journal:
        journal.append(trade("x"))
    assert (tmp_path / "var" / "journal.sqlite").is_file()


def test_wal_and_full_sync(path: Path) -> None:
    with Journal(path) as journal:
        assert journal._connection.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    assert sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_duplicate_rolls_back_the_whole_batch(path: Path) -> None:
    with Journal(path) as journal:
        journal.append(trade("a"))
        with pytest.raises(DuplicateEvent, match="trade event for intent 'a'") as info:
            journal.append_many([trade("b"), trade("a", ts_ns=9)])
        assert (info.value.kind, info.value.intent_id) == ("trade", "a")
        with pytest.raises(DuplicateEvent) as info:
            journal.append_many([trade("c"), trade("d"), trade("c", ts_ns=9)])
        assert (info.value.kind, info.value.intent_id) == ("trade", "c"), "a repeat within the batch is named"
        assert [e.intent_id for e in journal.read("trade")] == ["a"]
        journal.append(trade("b"))  # the journal is still usable after a refused batch
        assert journal.count("trade") == 2


def test_uniqueness_is_per_kind_and_intent_and_survives_restart(path: Path) -> None:
    with Journal(path) as journal:
        journal.append_many([routed("same"), vetoed("same"), trade("same")])
    with Journal(path) as journal:
        for event in (routed("same", 9), vetoed("same", 9), trade("same", ts_ns=9)):
            with pytest.raises(DuplicateEvent):
                journal.append(event)
        assert [journal.count(k) for k in ("router", "veto", "trade")] == [1, 1, 1]


def test_invalid_events_write_nothing(path: Path) -> None:
    with Journal(path) as journal:
        with pytest.raises(SchemaError) as info:
            journal.append_many([trade("ok"), trade("bad", avg_price=math.nan)])
        assert info.value.path == "$.avg_price"
        with pytest.raises(JournalVersionError, match="schema_version 99"):
            journal.append_many([trade("ok"), trade("old", schema_version=99)])
        with pytest.raises(TypeError, match="Intent"):
            journal.append(vetoed("v").intent)  # type: ignore[arg-type]
        journal.append_many([])
        assert journal.count("trade") == 0


def test_unknown_kind_and_closed_journal(path: Path) -> None:
    journal = Journal(path)
    with pytest.raises(ValueError, match="unknown event kind 'fill'"):
        journal.read("fill")
    with pytest.raises(ValueError, match="unknown event kind"):
        journal.count("Router")
    journal.close()
    journal.close()
    with pytest.raises(JournalError, match="closed"):
        journal.count("trade")
    with pytest.raises(JournalError, match="closed"):
        journal.append(trade("x"))


def test_single_writer_many_readers(path: Path) -> None:
    with Journal(path) as writer:
        with pytest.raises(JournalLocked, match="already open for writing"):
            Journal(path)
        writer.append(trade("a"))
        with Journal(path, readonly=True) as reader_1, Journal(path, readonly=True) as reader_2:
            writer.append(trade("b"))
            assert reader_1.count("trade") == reader_2.count("trade") == 2
            with pytest.raises(JournalError, match="read-only"):
                reader_1.append(trade("c"))
    with Journal(path) as writer:  # the lock is released on close
        assert writer.count("trade") == 2


def test_reader_needs_an_existing_journal(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no journal"):
        Journal(tmp_path / "missing.sqlite", readonly=True)
    assert not (tmp_path / "missing.sqlite").exists()


@pytest.mark.parametrize("readonly", [False, True])
def test_other_schema_versions_are_refused(path: Path, readonly: bool) -> None:
    with Journal(path):
        pass
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE journal_schema SET event_schema_version = ?", (SCHEMA_VERSION + 1,))
    expected = f"this code uses format {JOURNAL_FORMAT_VERSION} with event schema {SCHEMA_VERSION}"
    with pytest.raises(JournalVersionError, match=expected):
        Journal(path, readonly=readonly)


@pytest.mark.parametrize("readonly", [False, True])
def test_a_foreign_database_is_refused(tmp_path: Path, readonly: bool) -> None:
    path = tmp_path / "other.sqlite"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE positions (symbol TEXT)")
    with pytest.raises(JournalVersionError, match="not a journal"):
        Journal(path, readonly=readonly)


def test_corrupt_rows_are_named(path: Path) -> None:
    with Journal(path) as journal:
        journal.append_many([trade("a"), trade("b"), trade("c")])
    raw = msgspec.to_builtins(trade("b")) | {"venue": "x"}
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE events SET payload = ? WHERE intent_id = 'b'", (msgspec.json.encode(raw).decode(),))
        row_id = conn.execute("SELECT id FROM events WHERE intent_id = 'b'").fetchone()[0]
    with Journal(path, readonly=True) as reader:
        events = reader.read("trade")
        assert next(events).intent_id == "a"
        with pytest.raises(CorruptRow, match=rf"journal row {row_id} is corrupt: .*\$\.venue") as info:
            next(events)
        assert info.value.row_id == row_id
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE events SET payload = ? WHERE intent_id = 'b'", (msgspec.json.encode(trade("b")).decode(),))
        conn.execute("UPDATE events SET symbol = 'ETH' WHERE intent_id = 'c'")
    with Journal(path, readonly=True) as reader, pytest.raises(CorruptRow, match="disagree"):
        list(reader.read("trade"))


def test_export_parquet_round_trips_and_is_atomic(path: Path, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "exports" / "router.parquet"
    events = [routed("r1", 10), routed("r2", 20)]
    with Journal(path) as journal:
        journal.append_many(events)
        assert journal.export_parquet("router", target) == 2
        assert from_arrow(pq.read_table(target), "router") == events
        assert journal.export_parquet("veto", tmp_path / "exports" / "veto.parquet") == 0
        assert from_arrow(pq.read_table(tmp_path / "exports" / "veto.parquet"), "veto") == []

        before = target.read_bytes()
        journal.append(routed("r3", 30))

        def fail(table: Any, where: Any, **kwargs: Any) -> None:
            Path(where).write_bytes(b"PAR1 half a file")
            raise OSError("disk full")

        monkeypatch.setattr(pq, "write_table", fail)
        with pytest.raises(OSError, match="disk full"):
            journal.export_parquet("router", target)
        assert target.read_bytes() == before
        assert sorted(p.name for p in target.parent.iterdir()) == ["router.parquet", "veto.parquet"]
