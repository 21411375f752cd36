"""Atomic replacement: the old file survives a failed write, and no temporary file is left behind."""

from __future__ import annotations

from pathlib import Path

import pytest

from router.atomic_file import atomic_path, write_bytes_atomic


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
