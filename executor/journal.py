"""The append-only event journal: one SQLite file in WAL mode, the executor's durable record of what happened.

Why SQLite/WAL: one file, crash-safe transactions, and readers (features, tuner, OPE, reports) that can
read while the executor writes, each seeing a consistent snapshot of whole batches.

Guarantees:

* **Durable on return.** ``append``/``append_many`` write one transaction and commit it before returning,
  with ``PRAGMA synchronous=FULL`` (the WAL is fsynced at every commit). A batch is all there or absent.
* **Append-only.** There is no update or delete API. ``(kind, intent_id)`` is unique for every kind, so
  writing the same intent's router event, veto or trade record twice raises :class:`DuplicateEvent`:
  the executor can retry after a restart without double-journaling.
* **Strict both ways.** Rows are written and read through :mod:`router.codec`; a row whose payload no
  longer matches the schema (or its own index columns) raises :class:`CorruptRow` naming the row id.
* **Versioned.** The ``journal_schema`` table records the journal format and ``events.SCHEMA_VERSION``;
  a journal of another version is refused at open, and an event of another ``schema_version`` at append.
* **Dead letters.** Malformed intent lines quarantined in ``--follow`` mode (``executor.quarantine``) are
  kept in their own ``dead_letters`` table (file, line number, raw text, error, time), unique per file,
  line and content, so quarantining the same line again is a no-op. A writer adds the table to a journal
  that lacks it; a reader of such a journal sees no dead letters.
* **Single writer.** One ``Journal`` opened for writing per file, enforced by an exclusive ``flock`` on
  ``<path>.lock`` (released by the kernel if the process dies). Any number of ``readonly=True`` journals
  may read concurrently, from any process.

Index columns per kind: ``symbol``, ``ts_ns`` and ``intent_id`` come from the event (trade, shadow and
arm-safety records carry all three); for a router event
``ts_ns`` is ``finished_ts_ns`` (when the outcome was known), for a veto the intent's symbol and id with
the veto's ``ts_ns``.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import pyarrow.parquet as pq

from router_tuner.executor.file_lock import lock_for_writing
from router_tuner.executor.intents import MalformedLine
from router_tuner.router.arrow_events import to_arrow
from router_tuner.router.atomic_file import atomic_path
from router_tuner.router.codec import SchemaError, from_json, kind_of, to_json
from router_tuner.router.events import (
    EVENT_TYPES,
    SCHEMA_VERSION,
    ArmSafetyEvent,
    Event,
    RouterEvent,
    ShadowDecision,
    TradeRecord,
    VetoEvent,
)

DEFAULT_PATH = Path("var/journal.sqlite")
DEFAULT_BUSY_TIMEOUT_MS = 5_000
JOURNAL_FORMAT_VERSION = 2
"""2: the ``shadow`` and ``arm_safety`` kinds (the kind CHECK of a version-1 file refuses them)."""

_KINDS_SQL = ", ".join(f"'{kind}'" for kind in sorted(EVENT_TYPES))
_SCHEMA_SQL = f"""
CREATE TABLE journal_schema (
    format_version INTEGER NOT NULL,
    event_schema_version INTEGER NOT NULL
);
CREATE TABLE events (
    id INTEGER PRIMARY KEY,
    kind TEXT NOT NULL CHECK (kind IN ({_KINDS_SQL})),
    symbol TEXT NOT NULL,
    ts_ns INTEGER NOT NULL,
    intent_id TEXT NOT NULL,
    payload TEXT NOT NULL,
    UNIQUE (kind, intent_id)
);
CREATE INDEX events_kind_symbol_ts ON events (kind, symbol, ts_ns);
CREATE INDEX events_kind_ts ON events (kind, ts_ns);
"""
_DEAD_LETTERS_SQL = """
CREATE TABLE IF NOT EXISTS dead_letters (
    id INTEGER PRIMARY KEY,
    file TEXT NOT NULL,
    line_no INTEGER NOT NULL,
    raw_sha256 TEXT NOT NULL,
    raw TEXT NOT NULL,
    error TEXT NOT NULL,
    ts_ns INTEGER NOT NULL,
    UNIQUE (file, line_no, raw_sha256)
)
"""


class JournalError(Exception):
    """Base of journal errors."""


class DuplicateEvent(JournalError):
    """An event of this kind was already journaled for this intent; the whole batch was rolled back."""

    def __init__(self, kind: str, intent_id: str) -> None:
        self.kind = kind
        self.intent_id = intent_id
        super().__init__(f"a {kind} event for intent {intent_id!r} is already journaled")


class JournalVersionError(JournalError):
    """The file is not a journal of the format and event schema version this code reads and writes."""


class JournalLocked(JournalError):
    """Another process (or Journal object) already holds this journal open for writing."""


class CorruptRow(JournalError):
    """A stored row does not decode under the strict schema, or disagrees with its own index columns."""

    def __init__(self, row_id: int, reason: str) -> None:
        self.row_id = row_id
        super().__init__(f"journal row {row_id} is corrupt: {reason}")


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A quarantined intent line as journaled (``raw`` decoded as UTF-8, undecodable bytes escaped)."""

    file: str
    line_no: int
    raw: str
    error: str
    ts_ns: int


def _index_columns(event: Event) -> tuple[str, int, str]:
    """(symbol, ts_ns, intent_id) of an event, as stored in the indexed columns."""
    if isinstance(event, RouterEvent):
        return event.symbol, event.finished_ts_ns, event.intent_id
    if isinstance(event, VetoEvent):
        return event.intent.symbol, event.ts_ns, event.intent.intent_id
    if isinstance(event, (TradeRecord, ShadowDecision, ArmSafetyEvent)):
        return event.symbol, event.ts_ns, event.intent_id
    raise TypeError(f"not a journaled event type: {type(event).__name__}")


def event_type_of_kind(kind: str) -> None:
    if kind not in EVENT_TYPES:
        raise ValueError(f"unknown event kind {kind!r}; expected one of {sorted(EVENT_TYPES)}")


class Journal:
    """An append-only SQLite journal of router, veto, trade, shadow and arm-safety events (see the module docstring).

    Parameters
    ----------
    path:
        The journal file; its parent directory is created when opening for writing.
    readonly:
        Open an existing journal for reading only (no writer lock, concurrent with the writer).
    busy_timeout_ms:
        How long a statement waits on a lock held by another connection (a checkpoint, a reader's
        snapshot start) before failing; the executor passes its configured value.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from router_tuner.router.events import TradeRecord
    >>> record = TradeRecord(schema_version=2, intent_id="i1", symbol="BTC/USDT", tier="t1", strategy="s1",
    ...     size_hint_usd=150.0, size_multiplier=1.0, suggested_gross_usd=100.0, clamped_gross_usd=100.0,
    ...     binding_limit="bucket_cap", veto_reasons=(), filled_qty=0.001, avg_price=100000.0, fees_usd=0.04,
    ...     realized_pnl_usd=None, closed_lots=(), ts_ns=1)
    >>> with Journal(pathlib.Path(tempfile.mkdtemp()) / "journal.sqlite") as journal:
    ...     journal.append(record)
    ...     [r.intent_id for r in journal.read("trade")], journal.count("trade")
    (['i1'], 1)
    """

    def __init__(self, path: str | os.PathLike[str] = DEFAULT_PATH, *, readonly: bool = False,
                 busy_timeout_ms: int = DEFAULT_BUSY_TIMEOUT_MS) -> None:
        if busy_timeout_ms < 0:
            raise ValueError(f"busy_timeout_ms must be >= 0, got {busy_timeout_ms}")
        self.path = Path(path)
        self.readonly = readonly
        self._lock_fd: int | None = None
        self._conn: sqlite3.Connection | None = None
        try:
            if readonly:
                self._conn = self._open_reader(busy_timeout_ms)
            else:
                self._lock_fd = self._take_writer_lock()
                self._conn = self._open_writer(busy_timeout_ms)
        except BaseException:
            self.close()
            raise

    # ---- opening ---------------------------------------------------------------------------------------

    def _take_writer_lock(self) -> int:
        try:
            return lock_for_writing(self.path)
        except BlockingIOError:
            raise JournalLocked(f"{self.path} is already open for writing ({self.path.name}.lock is locked)") from None

    def _open_writer(self, busy_timeout_ms: int) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, isolation_level=None)
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if mode != "wal":
                raise JournalError(f"{self.path}: SQLite refused WAL mode (got {mode!r})")
            conn.execute("PRAGMA synchronous = FULL")
            conn.execute("BEGIN IMMEDIATE")
            try:
                if self._has_table(conn, "journal_schema"):
                    self._check_version(conn)
                elif self._has_table(conn, None):
                    raise JournalVersionError(f"{self.path} holds tables but no journal_schema: not a journal")
                else:
                    for statement in _SCHEMA_SQL.split(";"):
                        if statement.strip():
                            conn.execute(statement)
                    conn.execute("INSERT INTO journal_schema VALUES (?, ?)",
                                 (JOURNAL_FORMAT_VERSION, SCHEMA_VERSION))
                conn.execute(_DEAD_LETTERS_SQL)
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        except BaseException:
            conn.close()
            raise
        return conn

    def _open_reader(self, busy_timeout_ms: int) -> sqlite3.Connection:
        if self.path.exists() and not self.path.is_file():  # "no journal at DIR: check the path" named no cause
            kind = "a folder" if self.path.is_dir() else "a FIFO or device"
            raise JournalVersionError(f"{self.path} is {kind}, not a journal file")
        if not self.path.is_file():
            raise FileNotFoundError(f"no journal at {self.path}")
        conn = sqlite3.connect(f"{self.path.resolve().as_uri()}?mode=ro", uri=True, isolation_level=None)
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
            if not self._has_table(conn, "journal_schema"):
                raise JournalVersionError(f"{self.path} has no journal_schema table: not a journal")
            self._check_version(conn)
        except BaseException:
            conn.close()
            raise
        return conn

    @staticmethod
    def _has_table(conn: sqlite3.Connection, name: str | None) -> bool:
        if name is None:
            row = conn.execute("SELECT 1 FROM sqlite_schema WHERE type = 'table' LIMIT 1").fetchone()
        else:
            row = conn.execute("SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = ?", (name,)).fetchone()
        return row is not None

    def _check_version(self, conn: sqlite3.Connection) -> None:
        rows = conn.execute("SELECT format_version, event_schema_version FROM journal_schema").fetchall()
        expected = (JOURNAL_FORMAT_VERSION, SCHEMA_VERSION)
        if rows != [expected]:
            raise JournalVersionError(
                f"{self.path} has journal format/event schema {rows}, this code uses "
                f"format {JOURNAL_FORMAT_VERSION} with event schema {SCHEMA_VERSION}: migrate it or use a new file"
            )

    @property
    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            raise JournalError(f"journal {self.path} is closed")
        return self._conn

    # ---- writing ---------------------------------------------------------------------------------------

    def append(self, event: Event) -> None:
        """Journal one event durably (see :meth:`append_many`)."""
        self.append_many((event,))

    def append_many(self, events: Iterable[Event]) -> None:
        """Journal a batch in one transaction: all events are durable when this returns, or none is written.

        Raises SchemaError (from the codec) for an event that would not read back exactly,
        JournalVersionError for an event of another schema version, DuplicateEvent when an event of the
        same kind and intent is already journaled or repeated within the batch.
        """
        if self.readonly:
            raise JournalError(f"journal {self.path} is open read-only")
        rows = []
        for event in events:
            kind = kind_of(event)
            if event.schema_version != SCHEMA_VERSION:
                raise JournalVersionError(
                    f"{kind} event for intent {_index_columns(event)[2]!r} has schema_version "
                    f"{event.schema_version}, this journal holds version {SCHEMA_VERSION}"
                )
            rows.append((kind, *_index_columns(event), to_json(event).decode()))
        if not rows:
            return
        conn = self._connection
        conn.execute("BEGIN IMMEDIATE")
        try:
            # one statement for the batch (a call per row was half of the main job's journal time)
            conn.executemany(
                "INSERT INTO events (kind, symbol, ts_ns, intent_id, payload) VALUES (?, ?, ?, ?, ?)", rows
            )
            conn.execute("COMMIT")
        except BaseException as err:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            if isinstance(err, sqlite3.IntegrityError) and "UNIQUE" in str(err):
                kind, intent_id = self._first_duplicate(conn, rows)
                raise DuplicateEvent(kind, intent_id) from err
            raise

    @staticmethod
    def _first_duplicate(conn: sqlite3.Connection, rows: list[tuple[str, str, int, str, str]]) -> tuple[str, str]:
        """(kind, intent_id) of the first row of a refused batch that repeats an earlier row or a journaled event."""
        seen: set[tuple[str, str]] = set()
        for kind, _symbol, _ts_ns, intent_id, _payload in rows:
            if (kind, intent_id) in seen or conn.execute(
                    "SELECT 1 FROM events WHERE kind = ? AND intent_id = ?", (kind, intent_id)).fetchone():
                return kind, intent_id
            seen.add((kind, intent_id))
        raise AssertionError("sqlite refused a batch as not unique, but no row repeats a key")

    def quarantine(self, line: MalformedLine, *, ts_ns: int) -> bool:
        """Journal a malformed intent line durably; ``False`` (nothing written) if this very line is already there."""
        if self.readonly:
            raise JournalError(f"journal {self.path} is open read-only")
        cursor = self._connection.execute(
            "INSERT OR IGNORE INTO dead_letters (file, line_no, raw_sha256, raw, error, ts_ns) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (line.file, line.line_no, line.digest, line.raw.decode("utf-8", "backslashreplace"), line.reason, ts_ns))
        return cursor.rowcount == 1

    # ---- reading ---------------------------------------------------------------------------------------

    def is_quarantined(self, line: MalformedLine) -> bool:
        """Whether this line (same file, number and content) is already a dead letter."""
        if not self._has_table(self._connection, "dead_letters"):
            return False
        row = self._connection.execute("SELECT 1 FROM dead_letters WHERE file = ? AND line_no = ? AND raw_sha256 = ?",
                                       (line.file, line.line_no, line.digest)).fetchone()
        return row is not None

    def dead_letters(self) -> list[DeadLetter]:
        """Every quarantined intent line, in the order they were quarantined."""
        if not self._has_table(self._connection, "dead_letters"):
            return []
        rows = self._connection.execute("SELECT file, line_no, raw, error, ts_ns FROM dead_letters ORDER BY id")
        return [DeadLetter(*row) for row in rows.fetchall()]

    def dead_letter_count(self) -> int:
        """How many intent lines are quarantined (0 for a journal written before the dead-letter table)."""
        if not self._has_table(self._connection, "dead_letters"):
            return 0
        return int(self._connection.execute("SELECT COUNT(*) FROM dead_letters").fetchone()[0])

    def read(self, kind: str, *, symbol: str | None = None, since_ns: int | None = None,
             after_row: int | None = None) -> Iterator[Event]:
        """Events of ``kind`` in insertion order, optionally of one symbol, with ``ts_ns >= since_ns`` and
        appended after row ``after_row`` (a :meth:`last_row` taken earlier: what a run added since).

        The iterator reads one consistent snapshot (whole batches only) and holds it until exhausted or
        closed; close it when stopping early, as an open snapshot keeps the WAL from being checkpointed.
        """
        event_type_of_kind(kind)
        clauses = ["kind = ?"]
        params: list[object] = [kind]
        if symbol is not None:
            clauses.append("symbol = ?")
            params.append(symbol)
        if since_ns is not None:
            clauses.append("ts_ns >= ?")
            params.append(since_ns)
        if after_row is not None:
            clauses.append("id > ?")
            params.append(after_row)
        query = f"SELECT id, symbol, ts_ns, intent_id, payload FROM events WHERE {' AND '.join(clauses)} ORDER BY id"
        return self._decode_rows(kind, self._connection.execute(query, params))

    @staticmethod
    def _decode_rows(kind: str, cursor: sqlite3.Cursor) -> Iterator[Event]:
        try:
            for row_id, symbol, ts_ns, intent_id, payload in cursor:
                try:
                    event = from_json(payload, kind)
                except SchemaError as err:
                    raise CorruptRow(row_id, str(err)) from err
                if event.schema_version != SCHEMA_VERSION:  # a newer build's row decodes, but means other things
                    raise CorruptRow(row_id, f"{kind} event has schema_version {event.schema_version}, this code "
                                             f"reads version {SCHEMA_VERSION}")
                if _index_columns(event) != (symbol, ts_ns, intent_id):
                    raise CorruptRow(
                        row_id, f"index columns {(symbol, ts_ns, intent_id)} disagree with the payload's "
                        f"{_index_columns(event)}"
                    )
                yield event
        finally:
            cursor.close()

    def last_row(self) -> int:
        """The id of the last row appended (0 for an empty journal); ids only grow."""
        return int(self._connection.execute("SELECT COALESCE(MAX(id), 0) FROM events").fetchone()[0])

    def intent_ids(self, kind: str) -> frozenset[str]:
        """The intent id of every journaled event of ``kind``, read from the index column (no payload decoded)."""
        event_type_of_kind(kind)
        rows = self._connection.execute("SELECT intent_id FROM events WHERE kind = ?", (kind,))
        return frozenset(intent_id for (intent_id,) in rows)

    def count(self, kind: str) -> int:
        """Number of journaled events of ``kind``."""
        event_type_of_kind(kind)
        return self._connection.execute("SELECT COUNT(*) FROM events WHERE kind = ?", (kind,)).fetchone()[0]

    def export_parquet(self, kind: str, path: str | os.PathLike[str]) -> int:
        """Write every event of ``kind`` to a Parquet file (:mod:`router.arrow_events` layout: nested fields as
        Arrow structs and lists, timestamps as ``timestamp[ns, UTC]``); returns the row count.

        The file appears atomically: written to a temporary file beside it, fsynced, then renamed, so a
        reader never sees a half-written export. The whole kind is held in memory while writing.
        """
        table = to_arrow(list(self.read(kind)), kind=kind)
        with atomic_path(path) as temporary:
            pq.write_table(table, temporary)
        return table.num_rows

    # ---- lifetime --------------------------------------------------------------------------------------

    def close(self) -> None:
        """Close the connection and release the writer lock; closing twice is harmless."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
