"""``router-tuner journal count|export`` on a small journal."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from cli.main import main
from executor.journal import Journal
from router.codec import from_dataframe
from tests.factories import fill, routed


@pytest.fixture
def journal_path(tmp_path: Path) -> Path:
    path = tmp_path / "journal.sqlite"
    with Journal(path) as journal:
        journal.append_many([routed(intent_id=f"i{i}", fills=(fill(100.0, 1.0, trade_id=f"t{i}"),))
                             for i in range(3)])
    return path


def test_count_and_export_round_trip(journal_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["journal", "count", "--journal", str(journal_path)]) == 0
    counts = dict(line.split() for line in capsys.readouterr().out.splitlines())
    assert counts["router"] == "3" and counts["veto"] == "0"
    out = tmp_path / "router.parquet"
    assert main(["journal", "export", "--journal", str(journal_path), "--kind", "router", "--out", str(out)]) == 0
    assert "wrote 3 router records" in capsys.readouterr().out
    with Journal(journal_path, readonly=True) as journal:
        assert from_dataframe(pd.read_parquet(out), "router") == list(journal.read("router"))


def test_missing_journal_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["journal", "count", "--journal", str(tmp_path / "none.sqlite")]) == 2
    assert "no journal at" in capsys.readouterr().err
