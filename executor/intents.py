"""Where intents come from: a JSONL file (one ``router.events.Intent`` per line) or an in-process queue.

Both speak ``next_intent(timeout_s) -> Intent | None`` and ``exhausted``: ``None`` means nothing arrived
in time (the loop publishes health and polls again), ``exhausted`` means no intent will ever come.
A malformed line is an error naming the file and line, never skipped.
"""

from __future__ import annotations

import queue
import time
from pathlib import Path
from typing import Protocol

import msgspec

from router.events import Intent

_DECODER = msgspec.json.Decoder(Intent, strict=True)


class IntentSource(Protocol):
    """A stream of intents for the executor loop."""

    @property
    def exhausted(self) -> bool: ...

    def next_intent(self, timeout_s: float) -> Intent | None: ...


class IntentFormatError(ValueError):
    """A line of an intents file is not a valid ``Intent``."""


class JsonlIntentSource:
    """Intents from a JSONL file. With ``follow`` the file is tailed (new lines are read as they land)."""

    def __init__(self, path: str | Path, *, follow: bool) -> None:
        self.path = Path(path)
        self.follow = follow
        self._handle = self.path.open("rb")
        self._line_no = 0
        self._pending = b""
        self._eof = False

    @property
    def exhausted(self) -> bool:
        return self._eof and not self.follow

    def next_intent(self, timeout_s: float) -> Intent | None:
        deadline = time.monotonic() + timeout_s
        while True:
            chunk = self._handle.readline()
            if chunk.endswith(b"\n") or (chunk and not self.follow):
                line, self._pending = self._pending + chunk, b""
                self._line_no += 1
                if not line.strip():
                    continue
                try:
                    return _DECODER.decode(line)
                except msgspec.DecodeError as err:
                    raise IntentFormatError(f"{self.path}:{self._line_no}: {err}") from err
            self._pending += chunk
            if not self.follow:
                self._eof = True
                return None
            if time.monotonic() >= deadline:
                return None
            time.sleep(min(0.05, max(0.0, deadline - time.monotonic())))

    def close(self) -> None:
        self._handle.close()


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
