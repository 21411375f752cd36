"""The single-writer lock of the executor's SQLite files (journal, store): an exclusive ``flock``.

The lock lives on ``<file>.lock`` beside the file, not on the database itself (SQLite manages its own
locks there); the kernel releases it when the process dies, so a crashed writer never blocks a restart.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path


def lock_for_writing(target: Path) -> int:
    """Take the exclusive lock of ``target`` (creating its folder); returns the fd to ``os.close`` to release.

    Raises ``BlockingIOError`` when another process (or another open writer) holds it.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(target.with_name(target.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BaseException:
        os.close(fd)
        raise
    return fd
