"""Atomic replacement: the old file survives a failed write, no temporary file is left behind, and the
file gets the mode the umask allows (a replaced file keeps its own)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from router_tuner.router.atomic_file import atomic_path, write_bytes_atomic


def test_replaces_the_target_and_creates_missing_folders(tmp_path: Path) -> None:
    target = tmp_path / "deep" / "state.json"
    write_bytes_atomic(target, b"one")
    write_bytes_atomic(target, b"two")
    assert target.read_bytes() == b"two"
    assert [p.name for p in target.parent.iterdir()] == ["state.json"]


def test_a_failed_write_keeps_the_old_file_and_removes_the_temporary(tmp_path: Path) -> None:
    target = tmp_path / "state.json"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError, match="disk full"), atomic_path(target) as temporary:
        temporary.write_bytes(b"half")
        raise RuntimeError("disk full")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_a_new_file_gets_the_mode_the_umask_allows(tmp_path: Path, umask: int) -> None:
    previous = os.umask(umask)
    try:
        write_bytes_atomic(tmp_path / "report.html", b"page")
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "report.html").stat().st_mode) == 0o666 & ~umask


def test_a_replaced_file_keeps_its_mode(tmp_path: Path) -> None:
    target = tmp_path / "state.json"
    target.write_bytes(b"old")
    target.chmod(0o640)
    write_bytes_atomic(target, b"new")
    assert stat.S_IMODE(target.stat().st_mode) == 0o640 and target.read_bytes() == b"new"


def test_a_fifo_or_device_is_refused_not_replaced_by_a_file(tmp_path: Path) -> None:
    """``--out /dev/full`` once renamed an export over the device node (as root): special files are refused."""
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    for target in (fifo, Path("/dev/null")):
        with pytest.raises(FileExistsError, match="not a regular file"):
            write_bytes_atomic(target, b"data")
    assert stat.S_ISFIFO(fifo.stat().st_mode) and stat.S_ISCHR(Path("/dev/null").stat().st_mode)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pipe"]  # no temporary left behind


def test_a_symlink_target_is_written_through(tmp_path: Path) -> None:
    real = tmp_path / "real.json"
    real.write_bytes(b"old")
    link = tmp_path / "link.json"
    link.symlink_to(real)
    write_bytes_atomic(link, b"new")
    assert link.is_symlink() and real.read_bytes() == b"new"


def test_the_next_write_removes_what_a_killed_writer_left_but_never_a_live_writers_temporary(tmp_path: Path) -> None:
    """A killed writer's temporary and every SQLite sidecar (a new database keeps a rollback ``-journal`` until WAL
    mode is on) go at the next write of the same target; a temporary whose writer still holds it stays."""
    target = tmp_path / "j.sqlite"
    dead = tmp_path / ".j.sqlite.0123456789ab.tmp"
    left = [dead, *(dead.with_name(dead.name + s) for s in ("-wal", "-shm", "-journal", ".lock"))]
    for path in left:
        path.write_bytes(b"x")
    other = tmp_path / ".other.sqlite.0123456789ab.tmp"
    other.write_bytes(b"y")
    with atomic_path(target) as live, atomic_path(target) as second:
        live.write_bytes(b"first")  # held while the second write runs: not stale
        second.write_bytes(b"second")
        assert live.exists()
    assert target.read_bytes() == b"first"
    assert not any(path.exists() for path in left)
    assert other.exists(), "another target's temporary is not ours to judge"
