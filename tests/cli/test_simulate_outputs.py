"""``simulate`` writes its journal and its report side by side in two forked processes: the same files as one
process writes, and a failure in either is the command's one line, with the previous journal kept."""

from __future__ import annotations

import errno
import sqlite3
from pathlib import Path

import pytest

from router_tuner.cli.main import main
from router_tuner.simulation import recording

_RUN = ["simulate", "--no-mlflow", "--learners", "ucb", "--orders", "20", "--symbols",
        "BTCUSDT", "--shadow-symbols"]


def _rows(journal: Path) -> list[tuple[str, str, str]]:
    with sqlite3.connect(journal) as db:
        return db.execute("SELECT kind, intent_id, payload FROM events ORDER BY kind, intent_id").fetchall()


def _report_text(out: Path) -> str:
    return (out / "report" / "report.md").read_text().replace(str(out), "OUT")


def test_two_processes_write_what_one_writes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    one, two = tmp_path / "one", tmp_path / "two"
    assert main([*_RUN, "--workers", "1", "--out", str(one)]) == 0
    assert main([*_RUN, "--workers", "2", "--out", str(two)]) == 0
    capsys.readouterr()
    rows = _rows(two / recording.JOURNAL_NAME)
    assert len(rows) > 100 and rows == _rows(one / recording.JOURNAL_NAME)
    assert _report_text(two) == _report_text(one)
    assert (two / "report" / "report.html").stat().st_size > 0


def test_a_journal_that_fails_in_its_process_is_one_line_and_keeps_the_previous_journal(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    assert main([*_RUN, "--workers", "2", "--out", str(out)]) == 0
    before = _rows(out / recording.JOURNAL_NAME)
    capsys.readouterr()

    def full_disk(result: object, out_dir: Path) -> Path:
        raise OSError(errno.ENOSPC, "No space left on device", str(out_dir / recording.JOURNAL_NAME))

    monkeypatch.setattr(recording, "write_journal", full_disk)  # inherited by the forked writer
    assert main([*_RUN, "--workers", "2", "--out", str(out)]) == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines[-1].startswith("router-tuner simulate: No space left on device")
    assert "Traceback" not in "\n".join(lines)
    assert _rows(out / recording.JOURNAL_NAME) == before
