"""The executor's halt: the loop cannot go on safely, and a restart reconciles what was left.

Two causes. An intent's orders could not be settled after a route error (the venue is unreachable), or
a write to the journal or the executor store failed mid-run (disk full, read-only file, SQLite busy
beyond its timeout, an I/O error). Why halt on a failed write rather than retry or carry on: the batch
that failed left nothing (one transaction), but the executor's memory (positions, done intents) is now
ahead of its files, and routing on a state a restart cannot rebuild is how fills get lost or doubled.
The failed intent's ``Submission`` is in the store, so the restart settles its orders by client order id
and journals it exactly once (``Executor.start``); an intent that never got a Submission was not sent,
and the restart routes it from the intents file like any other.
"""

from __future__ import annotations

import errno
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager


class ExecutorHalted(RuntimeError):
    """The loop cannot go on safely (an intent unsettled or unjournaled); restart to reconcile."""


def _advice(error: Exception) -> str:
    text = str(error)
    if "full" in text or (isinstance(error, OSError) and error.errno == errno.ENOSPC):
        return "free disk space, then restart"
    if "readonly" in text or "read-only" in text or (isinstance(error, OSError) and error.errno == errno.EROFS):
        return "make the file and its folder writable, then restart"
    if "locked" in text or "busy" in text:
        return "stop the process that holds it, then restart"
    return "check the disk, then restart"


@contextmanager
def halt_on_write_failure(where: str, consequence: str) -> Iterator[None]:
    """Turn a failed SQLite or file write to ``where`` (``journal PATH``) into :class:`ExecutorHalted`.

    ``consequence`` says what becomes of the intent at hand (``intent i7 not journaled: ...``).
    """
    try:
        yield
    except (sqlite3.OperationalError, OSError) as error:
        raise ExecutorHalted(f"{where}: write failed ({error}); {consequence}; {_advice(error)}") from error
