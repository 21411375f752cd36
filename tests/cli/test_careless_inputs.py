"""Bad inputs of the careless-user pass that used to be accepted silently, lose data or end in the wrong code.

Each ends in one stderr line (``one_line_failure``) and the documented exit code, before anything is written.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from router_tuner.cli.main import BAD_INPUT
from router_tuner.executor.journal import Journal
from tests.cli.test_cli_failures import one_line_failure
from tests.factories import fill, routed


@pytest.fixture
def journal_path(tmp_path: Path) -> Path:
    path = tmp_path / "journal.sqlite"
    with Journal(path) as journal:
        journal.append_many([routed(intent_id=f"i{i}", fills=(fill(100.0, 1.0, trade_id=f"t{i}"),))
                             for i in range(3)])
    return path


def test_an_export_onto_its_own_journal_is_refused_and_the_journal_kept(
        journal_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """``--out`` naming the journal (here by another spelling) used to replace it with the Parquet file: exit 0,
    every record lost."""
    monkeypatch.chdir(journal_path.parent)
    line = one_line_failure(["journal", "export", "--journal", str(journal_path), "--kind", "router",
                             "--out", f"./{journal_path.name}"], capsys, BAD_INPUT)
    assert line.endswith(f"--journal and --out are the same file ({journal_path.name}): each needs its own file")
    with Journal(journal_path, readonly=True) as journal:
        assert journal.count("router") == 3
