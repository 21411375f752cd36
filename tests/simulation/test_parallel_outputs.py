"""``simulate`` with two workers writes its journal and report side by side in forked processes: the files are
the same as one process writes, and a failure there still ends the run in one line."""

from __future__ import annotations

from pathlib import Path

import pytest

from router_tuner.cli.main import main
from router_tuner.executor.journal import Journal

ARGS = ["simulate", "--orders", "20", "--symbols", "BTCUSDT", "--seed", "2", "--learners", "ucb", "--no-mlflow"]


@pytest.fixture()
def no_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ROUTER_TUNER_DATA", "")
    monkeypatch.setattr("router_tuner.router.market.binance._DEFAULT_DATA_DIR", tmp_path / "none")


def _journal_rows(path: Path) -> list[tuple[str, str]]:
    with Journal(path, readonly=True) as journal:
        return [(kind, e.intent_id) for kind in ("router", "shadow") for e in journal.read(kind)]


def test_the_forked_writers_write_what_one_process_writes(tmp_path: Path, no_data: None, capsys) -> None:
    assert main([*ARGS, "--workers", "1", "--out", str(tmp_path / "one")]) == 0
    assert main([*ARGS, "--workers", "2", "--out", str(tmp_path / "two")]) == 0
    capsys.readouterr()
    one, two = tmp_path / "one", tmp_path / "two"
    assert _journal_rows(one / "simulation.sqlite") == _journal_rows(two / "simulation.sqlite") != []
    for name in ("report.md", "report.html"):
        assert (one / "report" / name).read_bytes() == (two / "report" / name).read_bytes()


def test_a_failed_forked_writer_ends_the_run_in_one_line(tmp_path: Path, no_data: None, capsys,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    def full_disk(result: object, out_dir: Path) -> None:
        raise OSError(28, "No space left on device", str(out_dir))

    monkeypatch.setattr("router_tuner.simulation.report.page.write_report", full_disk)
    code = main([*ARGS, "--workers", "2", "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code != 0 and "No space left on device" in err[-1] and "Traceback" not in "\n".join(err)
