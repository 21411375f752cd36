"""The executor's own durable store: submissions (written before sending), health snapshots and alerts.

One SQLite file in WAL mode with ``synchronous=FULL``: a submission is on disk before its first order
leaves, which is what lets a restarted executor find an order that was in flight when it died instead
of sending it again. Health and alerts are appended on every publish so ``router-tuner health`` and
dashboards read the same numbers Prometheus served. Opened by one executor at a time (``flock`` on
``<path>.lock``); readers open it ``readonly``.
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType

import msgspec

from executor.records import Alert, HealthSnapshot, Submission

_SCHEMA_SQL = (
    "CREATE TABLE IF NOT EXISTS submissions (intent_id TEXT PRIMARY KEY, symbol TEXT NOT NULL, "
    "ts_ns INTEGER NOT NULL, payload TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS health (id INTEGER PRIMARY KEY, ts_ns INTEGER NOT NULL, payload TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS alerts (id INTEGER PRIMARY KEY, ts_ns INTEGER NOT NULL, code TEXT NOT NULL, "
    "payload TEXT NOT NULL)",
)


class StoreLocked(RuntimeError):
    """Another executor already writes this store."""


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
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path.with_name(self.path.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise StoreLocked(f"{self.path} is already open by another executor") from None
        self._lock_fd = fd
        self._conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._conn.execute("PRAGMA journal_mode = WAL")
        self._conn.execute("PRAGMA synchronous = FULL")
        for statement in _SCHEMA_SQL:
            self._conn.execute(statement)

    # --- submissions ------------------------------------------------------------------------------

    def record_submission(self, submission: Submission) -> None:
        """Durably record that ``submission`` is about to be routed; an intent is submitted once."""
        intent = submission.intent
        try:
            self._conn.execute("INSERT INTO submissions VALUES (?, ?, ?, ?)",
                               (intent.intent_id, intent.symbol, submission.ts_ns,
                                msgspec.json.encode(submission).decode()))
        except sqlite3.IntegrityError as err:
            raise ValueError(f"intent {intent.intent_id!r} was already submitted") from err

    def submissions(self) -> dict[str, Submission]:
        """Every submission by intent id, in submission order."""
        rows = self._conn.execute("SELECT payload FROM submissions ORDER BY rowid").fetchall()
        decoded = (msgspec.json.decode(payload, type=Submission, strict=True) for (payload,) in rows)
        return {submission.intent.intent_id: submission for submission in decoded}

    # --- telemetry --------------------------------------------------------------------------------

    def append_health(self, snapshot: HealthSnapshot, alerts: tuple[Alert, ...]) -> None:
        """One snapshot and the alerts it raised, in one transaction."""
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            self._conn.execute("INSERT INTO health (ts_ns, payload) VALUES (?, ?)",
                               (snapshot.ts_ns, msgspec.json.encode(snapshot).decode()))
            self._conn.executemany("INSERT INTO alerts (ts_ns, code, payload) VALUES (?, ?, ?)",
                                   [(a.ts_ns, a.code, msgspec.json.encode(a).decode()) for a in alerts])
            self._conn.execute("COMMIT")
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise

    def latest_health(self) -> HealthSnapshot | None:
        row = self._conn.execute("SELECT payload FROM health ORDER BY id DESC LIMIT 1").fetchone()
        return None if row is None else msgspec.json.decode(row[0], type=HealthSnapshot, strict=True)

    def health_count(self) -> int:
        return int(self._conn.execute("SELECT COUNT(*) FROM health").fetchone()[0])

    def alerts(self, *, since_ns: int | None = None) -> Iterator[Alert]:
        rows = self._conn.execute("SELECT payload FROM alerts WHERE ts_ns >= ? ORDER BY id",
                                  (since_ns if since_ns is not None else -(2**63),)).fetchall()
        for (payload,) in rows:
            yield msgspec.json.decode(payload, type=Alert, strict=True)

    # --- lifetime ---------------------------------------------------------------------------------

    def close(self) -> None:
        self._conn.close()
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def __enter__(self) -> ExecutorStore:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
