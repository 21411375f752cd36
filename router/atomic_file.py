"""Atomic file replacement: a reader sees the old file or the new one, never half of either.

Every file the project rewrites in place (state, tapes, exports) goes through ``atomic_path``: the
content is written to a temporary file in the target's folder, flushed to disk, renamed over the
target, and the folder entry itself is flushed, so a crash at any point leaves a complete file.
A target that is a symlink is followed (the file it names is replaced); a target that exists but is not a
regular file (``/dev/full``, a FIFO) is refused instead of being replaced by a file.
A new file gets the mode any other file gets (``0o666`` less the process umask, applied by the kernel at
creation); a replaced file keeps its mode, so a state file someone restricted stays restricted.
A writer holds an exclusive ``flock`` on its temporary until the rename, so the next write of the same target
deletes the temporaries a killed writer left (and their SQLite sidecars) without touching a live writer's.
"""

from __future__ import annotations

import errno
import fcntl
import glob
import os
import re
import secrets
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_path(target: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path to write; on a clean exit it replaces ``target`` durably.

    On an exception the temporary file is removed and ``target`` is left as it was.
    """
    final = refuse_unreplaceable(target)
    final.parent.mkdir(parents=True, exist_ok=True)
    temporary, held = _create_temporary(final)
    try:
        remove_stale_temporaries(final)
        try:
            yield temporary
            with open(temporary, "rb") as written:
                os.fsync(written.fileno())
            os.replace(temporary, final)
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise
    finally:
        os.close(held)
    _fsync_folder(final.parent)


def refuse_unreplaceable(target: str | os.PathLike[str]) -> Path:
    """The file ``target`` names (through a symlink); ``FileExistsError`` when it exists and is not a regular file
    (a device, FIFO or folder would be replaced by a file). A long job checks its outputs with it before working."""
    final = Path(os.path.realpath(target))  # through a symlink: the file it names is replaced, not the link
    if final.exists() and not final.is_file():
        raise FileExistsError(errno.EEXIST, "exists and is not a regular file (a device, FIFO or folder): "
                              "it would be replaced, not written", str(target))
    return final


def _create_temporary(final: Path) -> tuple[Path, int]:
    """An empty, new file beside ``final``: mode ``0o666`` less the umask (``mkstemp`` would force ``0o600``),
    or ``final``'s own mode when it exists; and an fd holding its exclusive ``flock`` while it is written, which
    tells a live writer's temporary from one a killed process left (:func:`remove_stale_temporaries`)."""
    try:
        keep_mode: int | None = stat.S_IMODE(final.stat().st_mode)
    except FileNotFoundError:
        keep_mode = None
    while True:
        temporary = final.with_name(f".{final.name}.{secrets.token_hex(6)}{TEMPORARY_SUFFIX}")
        try:
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:  # a name drawn twice: draw again
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # a new file: nobody else holds it
            if keep_mode is not None:
                os.fchmod(fd, keep_mode)
        except BaseException:
            os.close(fd)
            temporary.unlink(missing_ok=True)
            raise
        return temporary, fd


TEMPORARY_SUFFIX = ".tmp"
STALE_SIDECARS = ("-wal", "-shm", "-journal", ".lock")
"""What SQLite (its WAL and shared memory, or the rollback journal it keeps while creating a new file) and the
journal's writer lock leave beside a journal written under a temporary name."""


def remove_stale_temporaries(final: Path) -> None:
    """Delete the temporaries of ``final`` that writers killed before their rename left (kill -9, a power cut):
    ``.<name>.<12 hex>.tmp`` files whose ``flock`` nobody holds, and their SQLite sidecars. A live writer holds
    its temporary's lock, so a run beside another never deletes the other's work in progress."""
    pattern = re.compile(re.escape(f".{final.name}.") + r"[0-9a-f]{12}" + re.escape(TEMPORARY_SUFFIX))
    for candidate in final.parent.glob(f".{glob.escape(final.name)}.*{TEMPORARY_SUFFIX}"):
        if not pattern.fullmatch(candidate.name):
            continue
        with abandoned(candidate) as dead:
            if dead:
                for sidecar in STALE_SIDECARS:
                    candidate.with_name(candidate.name + sidecar).unlink(missing_ok=True)
                candidate.unlink(missing_ok=True)


@contextmanager
def abandoned(path: Path) -> Iterator[bool]:
    """Whether the writer of ``path`` (a temporary file or staging folder whose writer holds an exclusive ``flock``
    on it while it works) is gone: the lock is free. True holds the lock for the block, so another process cannot
    take the same path for its own meanwhile; False for a path held by a live writer, gone or unreadable."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # gone meanwhile, or unreadable: not ours to judge
        yield False
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:  # held: a live writer's
            yield False
            return
        yield True
    finally:
        os.close(fd)


def write_bytes_atomic(target: str | os.PathLike[str], payload: bytes) -> None:
    """Replace ``target`` with ``payload`` atomically and durably."""
    with atomic_path(target) as temporary:
        temporary.write_bytes(payload)


def create_bytes_atomic(target: str | os.PathLike[str], payload: bytes) -> None:
    """Create ``target`` holding ``payload``, whole or not at all, never over an existing file.

    The content is written and flushed under a temporary name, then hard-linked to ``target`` (which fails with
    ``FileExistsError`` when the name exists, even if it appeared meanwhile): a process killed at any point leaves
    either no ``target`` or the complete one, never a part of it in place.
    """
    final = Path(target)
    temporary, held = _create_temporary(final)
    try:
        remove_stale_temporaries(final)
        with open(temporary, "wb") as out:
            out.write(payload)
            out.flush()
            os.fsync(out.fileno())
        os.link(temporary, final)
    finally:
        temporary.unlink(missing_ok=True)
        os.close(held)
    _fsync_folder(final.parent)


def _fsync_folder(folder: Path) -> None:
    """Make a rename or link in ``folder`` durable (its entry, not only the file's data)."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
