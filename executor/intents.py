"""Where intents come from: a JSONL file (one ``router.events.Intent`` per line) or an in-process queue.

Both speak ``next_intent(timeout_s) -> Intent | None`` and ``exhausted``: ``None`` means nothing arrived
in time (the loop publishes health and polls again), ``exhausted`` means no intent will ever come.
A malformed line is an error naming the file and line, never skipped silently: it carries the line
(``MalformedLine``) so the loop can quarantine it in ``--follow`` mode (``executor.quarantine``); the
source has moved past it, so the next call reads the line after.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import os
import queue
import stat
import time
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn, Protocol

import msgspec

from router_tuner.config.encoding import encoding_problem, escape_controls
from router_tuner.config.text import repeated_keys
from router_tuner.router.events import Intent

_DECODER = msgspec.json.Decoder(Intent, strict=True)
logger = logging.getLogger("executor.intents")
_HEAD_BYTES = 4096
MAX_LINE_BYTES = 1 << 20
"""An intent is a few hundred bytes; a longer line is malformed (a wrong file, /dev/zero) and is not buffered."""


class IntentSource(Protocol):
    """A stream of intents for the executor loop."""

    @property
    def exhausted(self) -> bool: ...

    def next_intent(self, timeout_s: float) -> Intent | None: ...


@dataclass(frozen=True, slots=True)
class MalformedLine:
    """A line of an intents file that is not a valid ``Intent``: where it is, its bytes and why it failed.

    ``file`` is the resolved path, so a restart naming the file another way finds the same line.
    """

    file: str
    line_no: int
    raw: bytes
    reason: str

    @property
    def digest(self) -> str:
        """SHA-256 of the raw bytes: the same line number with other content is another line."""
        return hashlib.sha256(self.raw).hexdigest()


class IntentFormatError(ValueError):
    """A line of an intents file is not a valid ``Intent`` (``line`` says which and why)."""

    def __init__(self, message: str, line: MalformedLine) -> None:
        super().__init__(message)
        self.line = line


FOLLOW_POLL_S = 0.005
"""How often a followed file is checked for a new line while waiting (wall seconds): a line lands in at most this
(2.5 ms on average; it was 50 ms), at a few syscalls per check (experiments/bench/intent_wake.py measures both)."""


class JsonlIntentSource:
    """Intents from a JSONL file. With ``follow`` the file is tailed (new lines are read as they land, checked every
    ``poll_s``)."""

    def __init__(self, path: str | Path, *, follow: bool, poll_s: float = FOLLOW_POLL_S) -> None:
        if not (math.isfinite(poll_s) and poll_s > 0.0):
            raise ValueError(f"poll_s must be a finite number of seconds > 0, got {poll_s!r}")
        self.path = Path(path)
        self.follow = follow
        self.poll_s = poll_s
        self._handle = self.path.open("rb")
        self._line_no = 0
        self._pending = b""
        self._eof = False
        self._skipping = False  # the rest of an over-long line, already reported, is being read past
        self._head = b""  # the file's first bytes as read: a rewrite in place changes them
        self._not_read: tuple[int, int] | None = None  # what replaced the file, was warned of and is not read

    @property
    def exhausted(self) -> bool:
        return self._eof and not self.follow

    def next_intent(self, timeout_s: float) -> Intent | None:
        deadline = time.monotonic() + timeout_s
        while True:
            chunk = self._handle.readline(MAX_LINE_BYTES + 1 - len(self._pending))
            if self._read_again_if_changed(chunk):  # after the read: a line spliced from two contents is never decoded
                continue
            if len(self._head) < _HEAD_BYTES:
                self._head += chunk[:_HEAD_BYTES - len(self._head)]
            if self._skipping and chunk:
                self._skipping = not chunk.endswith(b"\n")
                if time.monotonic() < deadline:
                    continue
                return None
            if len(self._pending) + len(chunk) > MAX_LINE_BYTES and not chunk.endswith(b"\n"):
                line, self._pending, self._skipping = self._pending + chunk, b"", True
                self._line_no += 1
                self._refuse(line[:MAX_LINE_BYTES], f"line longer than {MAX_LINE_BYTES} bytes")
            if chunk.endswith(b"\n") or (chunk and not self.follow):
                line, self._pending = self._pending + chunk, b""
                self._line_no += 1
                if not line.strip():
                    continue
                try:
                    intent = _DECODER.decode(line)
                    _refuse_duplicate_keys(line)
                    return intent
                except (msgspec.DecodeError, ValueError) as err:
                    self._refuse(line.rstrip(b"\r\n"),
                                 encoding_problem(line) or _bare_cr(line) or _non_finite(line) or _cut_at_end(line, err)
                                 or str(err))
            self._pending += chunk
            if not self.follow:
                self._eof = True
                return None
            if time.monotonic() >= deadline:
                return None
            time.sleep(min(self.poll_s, max(0.0, deadline - time.monotonic())))

    def _read_again_if_changed(self, chunk: bytes) -> bool:
        """Like ``tail -F``: a file rewritten in place (a producer that restarts its file) or, followed, replaced
        (log rotation) is read again from its first line, instead of reading on at an offset of the old one: the
        rest of a line there glued to what was read of the old (a buffered read holds 8 KiB of it) decoded as an
        intent nobody wrote, or as garbage named by a line number of neither file. Checked after each read (of
        ``chunk``), so a line read while the file was rewritten is dropped and read again from the new content.
        A replaced file is read to its end first: a rename leaves its lines as they were, and the ones not yet read
        were dropped with it (a producer that rotates its own file lost every intent the executor had not reached).
        Returns whether the file is read again.

        Intents read before are not routed twice (the executor skips an intent id it has journaled). A file
        rewritten in place is told by its first bytes (up to 4 KiB) no longer being the ones read; one rewritten
        with the same first bytes and longer than the old offset looks like one that grew.
        """
        how = self._change(chunk)
        if how is None:
            return False
        if how == "replaced":
            try:
                fresh = self.path.open("rb")
            except OSError as error:  # unreadable (permissions): it stopped the run; the old file stays followed
                with contextlib.suppress(OSError):  # gone again meanwhile: nothing to warn of
                    self._warn_not_read(os.stat(self.path), f"{error.strerror or error}")
                return False
            self._handle.close()
            self._handle = fresh
        else:  # the file held is the one rewritten: read it again, whatever is at the path now, with an empty
            # buffer (a seek within the buffer keeps the old bytes it holds)
            fresh = open(os.dup(self._handle.fileno()), "rb")  # noqa: SIM115 - held until the next change or close
            fresh.seek(0)
            self._handle.close()
            self._handle = fresh
        logger.warning("intents file %s was %s: reading it again from line 1", self.path, how)
        # the rest of a replaced file is its own; what a rewritten one gave at the old offset belongs to no line;
        # the rest of an over-long line was reported with its start
        unfinished = b"" if self._skipping else self._pending + chunk if how == "replaced" else self._pending
        unfinished_no = self._line_no + 1
        self._line_no, self._pending, self._skipping, self._head = 0, b"", False, b""
        if unfinished:
            self._refuse_unfinished(unfinished, unfinished_no, how)
        return True

    def _change(self, chunk: bytes) -> str | None:
        """``rewritten`` (in place: cut below the offset read, or its first bytes changed), or ``replaced`` (followed
        only, once the file held is read to its end: without ``--follow`` the file opened is read to its end as it
        was, whatever a rename put at the path)."""
        held = os.fstat(self._handle.fileno())
        if not stat.S_ISREG(held.st_mode):
            return None  # a FIFO has no offset to fall behind
        if held.st_size < self._handle.tell() or os.pread(self._handle.fileno(), len(self._head), 0) != self._head:
            return "rewritten"
        if not self.follow or chunk.endswith(b"\n") or held.st_size > self._handle.tell():
            return None
        try:
            current = os.stat(self.path)
        except OSError:  # gone between a rotation's unlink and create, a symlink loop: the old file is still held
            return None
        if (current.st_ino, current.st_dev) == (held.st_ino, held.st_dev):
            return None
        if not stat.S_ISREG(current.st_mode):  # opening a FIFO blocks the loop; a folder stopped the run, no summary
            self._warn_not_read(current, "not a regular file (a folder, FIFO or device)")
            return None
        return "replaced"

    def _warn_not_read(self, current: os.stat_result, why: str) -> None:
        """Say once per file put at the path that it is not read, and why: the run goes on with the old file."""
        if self._not_read != (current.st_ino, current.st_dev):
            logger.warning("intents file %s was replaced by something not read (%s); the old file is still followed",
                           self.path, why)
            self._not_read = (current.st_ino, current.st_dev)

    def _refuse_unfinished(self, raw: bytes, line_no: int, how: str) -> NoReturn:
        """The start of a line its writer never ended, in a file since rewritten or replaced, is malformed (so
        quarantined under ``--follow``), never glued to the bytes the new file holds at the old offset: that
        splice decoded as an intent nobody wrote, and a replaced file was never read again."""
        reason = (f"unfinished line ({len(raw)} bytes without a newline) when the file was {how}: its writer "
                  "never ended it; resend the intent on a new line")
        self._refuse(raw, reason, line_no)

    def _refuse(self, raw: bytes, reason: str, line_no: int | None = None) -> NoReturn:
        """Raise the malformed line (the one just read unless ``line_no`` says which), naming file and line."""
        number = self._line_no if line_no is None else line_no
        reason = escape_controls(reason)  # it quotes the line: logged, alerted and shown by health as written
        malformed = MalformedLine(file=str(self.path.resolve()), line_no=number, raw=raw, reason=reason)
        raise IntentFormatError(f"{self.path}:{number}: {reason}", malformed)

    def close(self) -> None:
        self._handle.close()


def _bare_cr(line: bytes) -> str | None:
    """Lines ended by a bare CR (classic Mac line endings) read as one line of several intents; the decoder's own
    words were "JSON is malformed: trailing characters (byte 234)"."""
    if b"\r" not in line.rstrip(b"\r\n"):
        return None
    return ("lines end in a bare CR (old Mac line endings), so several intents read as one: end each line with LF "
            "or CRLF")


def _cut_at_end(line: bytes, error: Exception) -> str | None:
    """The last line of a file still being written, read without ``--follow``: the decoder's own words were "Input
    data was truncated", which reads like damage, not like a writer that had not finished the line."""
    if line.endswith(b"\n") or "truncated" not in str(error):
        return None
    return ("the file ends inside this line (no newline after it): its writer had not finished it (--follow tails a "
            "file being written)")


class _Unfit(str):
    """A number literal no 64-bit float holds finitely, as written (``NaN``, ``Infinity``, ``1e400``)."""


def _unfit_float(literal: str) -> float | _Unfit:
    value = float(literal)
    return value if math.isfinite(value) else _Unfit(literal)


def _non_finite(line: bytes) -> str | None:
    """Name the fields written ``NaN`` / ``Infinity`` (Python's ``json.dumps`` writes them; JSON has no such number):
    the decoder's own words are 'invalid character (byte 227)'. A literal past the float range (``1e400``) is named
    as such: it was called NaN or Infinity, which the line never held."""
    try:
        fields = json.loads(line, object_pairs_hook=tuple, parse_constant=_Unfit, parse_float=_unfit_float)
    except (ValueError, RecursionError):  # nested past Python's stack: msgspec's own words say what is wrong
        return None
    if not isinstance(fields, tuple):  # an array, a number or a string: not an object
        return None
    unfit = [(key, value) for key, value in fields if isinstance(value, _Unfit)]
    if not unfit:
        return None
    constants = [key for key, value in unfit if value in ("NaN", "Infinity", "-Infinity")]
    if constants:
        return f"{', '.join(constants)}: NaN and Infinity are not JSON numbers: write a finite number"
    key, value = unfit[0]
    return f"{key}: {value} is beyond the largest number a 64-bit float holds (1.8e308): write a finite number"


def _refuse_duplicate_keys(line: bytes) -> None:
    """A key given twice is ambiguous (which size did the strategy mean?): the line is malformed, as a
    configuration file with a duplicate key is (msgspec alone would keep the last value silently)."""
    repeated = repeated_keys(key for key, _ in json.loads(line, object_pairs_hook=lambda pairs: pairs))
    if repeated:
        raise ValueError(f"duplicate key(s) {', '.join(repeated)}: give each field once")


class QueueIntentSource:
    """Intents put on a ``queue.Queue`` by another thread (a strategy, a driver); ``close()`` ends it."""

    _CLOSED = object()

    def __init__(self) -> None:
        self._queue: queue.Queue[object] = queue.Queue()
        self._closed = False

    def put(self, intent: Intent) -> None:
        if not isinstance(intent, Intent):
            raise TypeError(f"expected an Intent, got {type(intent).__name__}")
        self._queue.put(intent)

    def close(self) -> None:
        self._queue.put(self._CLOSED)

    @property
    def exhausted(self) -> bool:
        return self._closed

    def next_intent(self, timeout_s: float) -> Intent | None:
        if self._closed:
            return None
        try:
            item = self._queue.get(timeout=timeout_s) if timeout_s > 0 else self._queue.get_nowait()
        except queue.Empty:
            return None
        if item is self._CLOSED:
            self._closed = True
            return None
        assert isinstance(item, Intent)
        return item
