"""Fixtures of the command-line tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from router_tuner.executor.journal import Journal
from tests.conftest import edit_config
from tests.factories import fill, routed


@pytest.fixture
def quiet_config(config_dir: Path) -> Path:
    """The defaults without the Prometheus endpoint (tests run in parallel; 9464 is one port)."""
    edit_config(config_dir, "executor.json", lambda d: d["prometheus"].update(enabled=False))
    return config_dir


@pytest.fixture
def journal_path(tmp_path: Path) -> Path:
    """A journal holding three routed events, each with one fill."""
    path = tmp_path / "journal.sqlite"
    with Journal(path) as journal:
        journal.append_many([routed(intent_id=f"i{i}", fills=(fill(100.0, 1.0, trade_id=f"t{i}"),))
                             for i in range(3)])
    return path
