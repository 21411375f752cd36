"""The executor's own durable store: submissions (written before sending), health snapshots and alerts.

One SQLite file in WAL mode with ``synchronous=FULL``: a submission is on disk before its first order
leaves, which is what lets a restarted executor find an order that was in flight when it died instead
of sending it again. With adaptive routing, the tuner's ``DecisionRecord`` (decision context, shadow
proposal) is written in the same transaction, so a restart can learn the intent's outcome with the
context it was decided in (``executor.adaptive.routing``). Health and alerts (and the tuner block of health)
are appended on every publish so ``router-tuner health`` and dashboards read the same numbers
Prometheus served. Opened by one executor at a time (``flock`` on
``<path>.lock``); readers open it ``readonly``.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType

import msgspec

from router_tuner.executor.adaptive.records import DecisionRecord, TunerHealth
from router_tuner.executor.file_lock import lock_for_writing
from router_tuner.executor.records import Alert, HealthSnapshot, ProtectiveStopRecord, Submission

_SCHEMA_SQL = (
    "CREATE TABLE IF NOT EXISTS submissions (intent_id TEXT PRIMARY KEY, symbol TEXT NOT NULL, "
    "ts_ns INTEGER NOT NULL, payload TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS health (id INTEGER PRIMARY KEY, ts_ns INTEGER NOT NULL, payload TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS alerts (id INTEGER PRIMARY KEY, ts_ns INTEGER NOT NULL, code TEXT NOT NULL, "
    "payload TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS decisions (intent_id TEXT PRIMARY KEY, symbol TEXT NOT NULL, payload TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS tuner_health (health_id INTEGER PRIMARY KEY, ts_ns INTEGER NOT NULL, "
    "payload TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS protective_stops (seq INTEGER PRIMARY KEY, client_order_id TEXT NOT NULL UNIQUE, "
    "symbol TEXT NOT NULL, working INTEGER NOT NULL, payload TEXT NOT NULL)",
)


DEFAULT_STORE = Path("var/executor.sqlite")


class StoreLocked(RuntimeError):
    """Another executor already writes this store."""


class NotAStore(ValueError):
    """The file holds SQLite tables but no executor store's: another program's database, or a journal."""


_STORE_TABLES = frozenset({"submissions", "health", "alerts", "decisions", "tuner_health", "protective_stops"})


class ExecutorStore:
    """Submissions, health snapshots and alerts of one executor (see the module docstring)."""

    def __init__(self, path: str | os.PathLike[str], *, readonly: bool = False) -> None:
        self.path = Path(path)
        self.readonly = readonly
        self._lock_fd: int | None = None
        if readonly:
            if not self.path.is_file():
                raise FileNotFoundError(f"no executor store at {self.path}")
            self._conn = sqlite3.connect(f"{self.path.resolve().as_uri()}?mode=ro", uri=True, isolation_level=None)
            return
        try:
            self._lock_fd = lock_for_writing(self.path)
        except BlockingIOError:
            raise StoreLocked(f"{self.path} is already open by another executor") from None
        try:
            self._conn = self._open_writer()
        except BaseException:
            os.close(self._lock_fd)
            self._lock_fd = None
            raise

    def _open_writer(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        try:
            tables = {name for (name,) in conn.execute("SELECT name FROM sqlite_schema WHERE type = 'table'")}
            if tables and "submissions" not in tables:
                # a journal given as --store used to get the store's tables written into it, and run
                foreign = ", ".join(sorted(tables - _STORE_TABLES)[:3]) or ", ".join(sorted(tables)[:3])
                raise NotAStore(f"holds tables ({foreign}) but no submissions table: not an executor store")
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = FULL")
            for statement in _SCHEMA_SQL:
                conn.execute(statement)
        except BaseException:
            conn.close()
            raise
        return conn

    # --- submissions ------------------------------------------------------------------------------

    def record_submission(self, submission: Submission, *, decision: DecisionRecord | None) -> None:
        """Durably record that ``submission`` is about to be routed, with the tuner's decision if one was made.

        One transaction: both rows or neither. An intent is submitted once (``ValueError`` otherwise).
        """
        intent = submission.intent
        if decision is not None and (decision.intent_id, decision.symbol) != (intent.intent_id, intent.symbol):
            raise ValueError(f"decision of {decision.symbol}/{decision.intent_id} stored with the submission of "
                             f"{intent.symbol}/{intent.intent_id}")
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            self._conn.execute("INSERT INTO submissions VALUES (?, ?, ?, ?)",
                               (intent.intent_id, intent.symbol, submission.ts_ns,
                                msgspec.json.encode(submission).decode()))
            if decision is not None:
                self._conn.execute("INSERT INTO decisions VALUES (?, ?, ?)",
                                   (intent.intent_id, intent.symbol, msgspec.json.encode(decision).decode()))
            self._conn.execute("COMMIT")
        except sqlite3.IntegrityError as err:
            self._conn.execute("ROLLBACK")
            raise ValueError(f"intent {intent.intent_id!r} was already submitted") from err
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise

    def decisions(self) -> dict[str, DecisionRecord]:
        """Every stored tuner decision by intent id."""
        rows = self._conn.execute("SELECT payload FROM decisions ORDER BY rowid").fetchall()
        decoded = (msgspec.json.decode(payload, type=DecisionRecord, strict=True) for (payload,) in rows)
        return {decision.intent_id: decision for decision in decoded}

    def submissions(self) -> dict[str, Submission]:
        """Every submission by intent id, in submission order."""
        rows = self._conn.execute("SELECT payload FROM submissions ORDER BY rowid").fetchall()
        decoded = (msgspec.json.decode(payload, type=Submission, strict=True) for (payload,) in rows)
        return {submission.intent.intent_id: submission for submission in decoded}

    # --- protective stops -------------------------------------------------------------------------

    def next_stop_seq(self) -> int:
        """A number no protective stop of this store has used (its client order ids end with it)."""
        return int(self._conn.execute("SELECT COALESCE(MAX(seq), 0) + 1 FROM protective_stops").fetchone()[0])

    def record_stop(self, stop: ProtectiveStopRecord, seq: int) -> None:
        """Durably note a stop about to be sent, as working (before the send: a crash leaves no stop unknown)."""
        self._conn.execute("INSERT INTO protective_stops VALUES (?, ?, ?, 1, ?)",
                           (seq, stop.client_order_id, stop.symbol, msgspec.json.encode(stop).decode()))

    def close_stop(self, client_order_id: str) -> None:
        """The stop ended at the venue and anything it filled is journaled: no restart looks at it again."""
        self._conn.execute("UPDATE protective_stops SET working = 0 WHERE client_order_id = ?", (client_order_id,))

    def working_stops(self) -> list[ProtectiveStopRecord]:
        """Every stop not yet closed, oldest first."""
        rows = self._conn.execute("SELECT payload FROM protective_stops WHERE working = 1 ORDER BY seq").fetchall()
        return [msgspec.json.decode(payload, type=ProtectiveStopRecord, strict=True) for (payload,) in rows]

    # --- telemetry --------------------------------------------------------------------------------

    def append_health(self, snapshot: HealthSnapshot, alerts: tuple[Alert, ...], tuner: TunerHealth | None) -> None:
        """One snapshot, the alerts it raised and its tuner block (adaptive routing only), in one transaction."""
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            cursor = self._conn.execute("INSERT INTO health (ts_ns, payload) VALUES (?, ?)",
                                        (snapshot.ts_ns, msgspec.json.encode(snapshot).decode()))
            if tuner is not None:
                self._conn.execute("INSERT INTO tuner_health VALUES (?, ?, ?)",
                                   (cursor.lastrowid, tuner.ts_ns, msgspec.json.encode(tuner).decode()))
            self._conn.executemany("INSERT INTO alerts (ts_ns, code, payload) VALUES (?, ?, ?)",
                                   [(a.ts_ns, a.code, msgspec.json.encode(a).decode()) for a in alerts])
            self._conn.execute("COMMIT")
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise

    def append_alert(self, alert: Alert) -> None:
        """An alert raised by an event rather than by a health snapshot (a quarantined intent line)."""
        self._conn.execute("INSERT INTO alerts (ts_ns, code, payload) VALUES (?, ?, ?)",
                           (alert.ts_ns, alert.code, msgspec.json.encode(alert).decode()))

    def latest_health(self) -> HealthSnapshot | None:
        row = self._conn.execute("SELECT payload FROM health ORDER BY id DESC LIMIT 1").fetchone()
        return None if row is None else msgspec.json.decode(row[0], type=HealthSnapshot, strict=True)

    def latest_tuner_health(self) -> TunerHealth | None:
        """The tuner block of the latest snapshot; ``None`` when that snapshot had none (not adaptive)."""
        if self._conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'tuner_health'"
                              ).fetchone() is None:
            return None  # a store written before adaptive routing existed, opened read-only
        row = self._conn.execute("SELECT t.payload FROM tuner_health t WHERE t.health_id = "
                                 "(SELECT MAX(id) FROM health)").fetchone()
        return None if row is None else msgspec.json.decode(row[0], type=TunerHealth, strict=True)

    def health_count(self) -> int:
        return int(self._conn.execute("SELECT COUNT(*) FROM health").fetchone()[0])

    def alerts(self, *, since_ns: int | None = None) -> Iterator[Alert]:
        rows = self._conn.execute("SELECT payload FROM alerts WHERE ts_ns >= ? ORDER BY id",
                                  (since_ns if since_ns is not None else -(2**63),)).fetchall()
        for (payload,) in rows:
            yield msgspec.json.decode(payload, type=Alert, strict=True)

    # --- lifetime ---------------------------------------------------------------------------------

    def close(self) -> None:
        """Close the connection and release the writer lock; closing twice is harmless."""
        self._conn.close()
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def __enter__(self) -> ExecutorStore:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
