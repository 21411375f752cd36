"""A journal or store write that fails mid-run (disk full, read-only, busy) halts the executor with one clear
line, leaves nothing half-written, and the restart journals the in-flight intent exactly once.

A read-only file is SQLite's own failure (``query_only``: "attempt to write a readonly database"), a busy one
is another connection holding the write lock past the timeout, a full disk is a connection whose INSERTs
raise SQLite's "database or disk is full"."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable
from pathlib import Path

import msgspec
import pytest

from router_tuner.cli.main import main as cli_main
from router_tuner.executor.journal import Journal
from router_tuner.executor.loop import ExecutorHalted
from router_tuner.executor.store import ExecutorStore
from router_tuner.router.events import Event
from tests.executor.test_executor_support import (
    build_executor,
    executor_config,
    intent,
    make_paper_venue,
    paper_config_dir,
)

FAULTS = {"full": ("database or disk is full", "free disk space, then restart"),
          "readonly": ("attempt to write a readonly database", "make the file and its folder writable, then restart")}


class _FullDisk:
    """A connection whose INSERTs fail as SQLite's do on a full disk (after ``BEGIN``, so the batch is rolled back)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    @property
    def in_transaction(self) -> bool:
        return self.conn.in_transaction

    def execute(self, sql: str, *args: object) -> sqlite3.Cursor:
        if sql.startswith("INSERT"):
            raise sqlite3.OperationalError("database or disk is full")
        return self.conn.execute(sql, *args)

    def executemany(self, sql: str, rows: object) -> sqlite3.Cursor:
        if sql.startswith("INSERT"):
            raise sqlite3.OperationalError("database or disk is full")
        return self.conn.executemany(sql, rows)  # type: ignore[arg-type]

    def close(self) -> None:
        self.conn.close()


def _break(owner: Journal | ExecutorStore, fault: str) -> None:
    """Make the next write of ``owner`` fail as a full disk or a read-only file would."""
    if fault == "full":
        owner._conn = _FullDisk(owner._conn)  # type: ignore[assignment]
    else:
        owner._conn.execute("PRAGMA query_only = ON")  # SQLite's own "attempt to write a readonly database"


def _long_btc(journal: Journal) -> float:
    return sum(f.qty if e.side == "buy" else -f.qty for e in journal.read("router") for f in e.fills)


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_a_failed_journal_write_halts_and_the_restart_journals_the_intent_once(tmp_path: Path, fault: str) -> None:
    config = executor_config()
    venue = make_paper_venue(config)
    executor, journal, store = build_executor(config, venue, tmp_path)
    executor.start()
    executor.process(intent("a1", size_hint_usd=300.0))
    _break(journal, fault)
    with pytest.raises(ExecutorHalted) as halted:
        executor.process(intent("a2", size_hint_usd=300.0))
    error, advice = FAULTS[fault]
    assert str(halted.value) == (f"journal {journal.path}: write failed ({error}); intent a2 not journaled: its "
                                 f"orders are settled and journaled once on restart; {advice}")
    assert "a2" in store.submissions() and venue.positions("BTCUSDT")["LONG"] > 0.0
    with pytest.raises(RuntimeError, match="must reconcile"):  # halted: nothing more before a restart
        executor.process(intent("a3", size_hint_usd=300.0))
    journal.close()
    store.close()
    with Journal(journal.path, readonly=True) as reader:  # the failed batch left nothing
        assert [t.intent_id for t in reader.read("trade")] == ["a1"] and reader.count("router") == 1

    for restart in range(2):
        executor, journal, store = build_executor(config, venue, tmp_path)
        report = executor.start()
        assert report.recovered_intent_ids == (("a2",) if restart == 0 else ())
        assert executor.process(intent("a2", size_hint_usd=300.0)) is None  # done: not routed again
        assert [t.intent_id for t in journal.read("trade")] == ["a1", "a2"]
        assert _long_btc(journal) == pytest.approx(venue.positions("BTCUSDT")["LONG"], abs=1e-12)
        journal.close()
        store.close()


def test_a_failed_veto_write_halts_and_the_restart_judges_the_intent_again(tmp_path: Path) -> None:
    config = executor_config()
    executor, journal, store = build_executor(config, make_paper_venue(config), tmp_path)
    executor.start()
    _break(journal, "full")
    with pytest.raises(ExecutorHalted, match=r"veto of intent p1 not journaled \(nothing was sent\)"):
        executor.process(intent("p1", size_hint_usd=-500.0))
    journal.close()
    store.close()
    executor, journal, _ = build_executor(config, make_paper_venue(config), tmp_path)
    assert executor.start().recovered_intent_ids == ()
    executor.process(intent("p1", size_hint_usd=-500.0))
    assert [v.intent.intent_id for v in journal.read("veto")] == ["p1"]


def test_a_failed_submission_write_halts_before_anything_is_sent(tmp_path: Path) -> None:
    config = executor_config()
    venue = make_paper_venue(config)
    executor, journal, store = build_executor(config, venue, tmp_path)
    executor.start()
    _break(store, "readonly")
    with pytest.raises(ExecutorHalted, match=r"executor store .*executor\.sqlite: write failed \(attempt to write "
                                             r"a readonly database\); nothing was sent for intent s1"):
        executor.process(intent("s1", size_hint_usd=300.0))
    assert venue.positions("BTCUSDT").get("LONG", 0.0) == 0.0 and journal.count("trade") == 0


def test_a_busy_journal_beyond_the_timeout_halts(tmp_path: Path) -> None:
    config = executor_config()
    executor, journal, store = build_executor(config, make_paper_venue(config), tmp_path)
    executor.start()
    journal._connection.execute("PRAGMA busy_timeout = 50")
    other = sqlite3.connect(journal.path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another writer holds the write lock past the timeout
    try:
        with pytest.raises(ExecutorHalted, match=r"write failed \(database is locked\).*stop the process that holds"):
            executor.process(intent("b1", size_hint_usd=300.0))
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert "b1" in store.submissions()


def test_store_write_failure_while_publishing_health_halts(tmp_path: Path) -> None:
    config = executor_config()
    executor, _, store = build_executor(config, make_paper_venue(config), tmp_path)
    executor.start()
    _break(store, "full")
    with pytest.raises(ExecutorHalted, match=r"executor store .*: write failed \(database or disk is full\); "
                                             r"health not stored"):
        executor.publish_now()


def test_live_ends_a_full_journal_in_one_line_exit_1_and_the_rerun_recovers(
        config_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    paper_config_dir(config_dir)
    (tmp_path / "intents.jsonl").write_bytes(b"".join(
        msgspec.json.encode(intent(i, size_hint_usd=300.0, ts_ns=time.time_ns())) + b"\n" for i in ("g1", "g2")))
    append_many = Journal.append_many

    def full_at_g2(journal: Journal, events: Iterable[Event]) -> None:
        batch = tuple(events)
        if any(getattr(event, "intent_id", None) == "g2" for event in batch):
            raise sqlite3.OperationalError("database or disk is full")
        append_many(journal, batch)

    monkeypatch.setattr(Journal, "append_many", full_at_g2)
    args = ["live", "--venue", "binanceusdm", "--config", str(config_dir), "--intents", str(tmp_path / "intents.jsonl"),
            "--journal", str(tmp_path / "journal.sqlite"), "--store", str(tmp_path / "executor.sqlite")]
    assert cli_main(args) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith(f"router-tuner live: stopped: ExecutorHalted: journal {tmp_path / 'journal.sqlite'}: "
                              "write failed (database or disk is full); intent g2 not journaled: its orders are "
                              "settled and journaled once on restart; free disk space, then restart")
    assert not any("Traceback" in line for line in err)
    monkeypatch.setattr(Journal, "append_many", append_many)
    assert cli_main(args) == 0
    assert "1 in-flight intents recovered (g2)" in capsys.readouterr().out
    with Journal(tmp_path / "journal.sqlite", readonly=True) as journal:
        assert [t.intent_id for t in journal.read("trade")] == ["g1", "g2"]
