"""Fixtures of the command-line tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import edit_config


@pytest.fixture
def quiet_config(config_dir: Path) -> Path:
    """The defaults without the Prometheus endpoint (tests run in parallel; 9464 is one port)."""
    edit_config(config_dir, "executor.json", lambda d: d["prometheus"].update(enabled=False))
    return config_dir
