"""Config values of the careless-user pass that used to load and fail later (or never): each is a load error
naming its file and key path."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.conftest import config_issues, edit_config


@pytest.mark.parametrize(("key", "value"), [
    ("experiment", ""),                 # MLflow refused it only after the run, as a store failure (exit 1)
    ("experiment", "   "),
    ("registered_model_prefix", ""),    # registered the live models as "-BTCUSDT"
    ("registered_model_prefix", "a b"),
    ("tracking_uri", ""),               # read as "no URI": the local default store, silently
])
def test_an_empty_mlflow_name_is_refused(config_dir: Path, key: str, value: Any) -> None:
    edit_config(config_dir, "tuner.json", lambda d: d["mlflow"].update({key: value}))
    [issue] = config_issues(config_dir)
    assert issue.startswith(f"tuner.json: $.mlflow.{key}: Expected `str`")
