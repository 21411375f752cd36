"""Atomic file replacement: a reader sees the old file or the new one, never half of either.

Every file the project rewrites in place (state, tapes, exports) goes through ``atomic_path``: the
content is written to a temporary file in the target's folder, flushed to disk, renamed over the
target, and the folder entry itself is flushed, so a crash at any point leaves a complete file.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_path(target: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path to write; on a clean exit it replaces ``target`` durably.

    On an exception the temporary file is removed and ``target`` is left as it was.
    """
    final = Path(target)
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent)
    os.close(fd)
    temporary = Path(name)
    try:
        yield temporary
        with open(temporary, "rb") as written:
            os.fsync(written.fileno())
        os.replace(temporary, final)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    folder = os.open(final.parent, os.O_RDONLY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)


def write_bytes_atomic(target: str | os.PathLike[str], payload: bytes) -> None:
    """Replace ``target`` with ``payload`` atomically and durably."""
    with atomic_path(target) as temporary:
        temporary.write_bytes(payload)
