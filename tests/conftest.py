"""Fixtures shared by several test files: a writable copy of the default configuration."""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from router_tuner.config import ConfigError, load_config
from router_tuner.config.loader import DEFAULTS_DIR

PRODUCT_PACKAGES = ("config", "router", "risk", "features", "tuner", "executor", "simulation", "cli")


@pytest.fixture
def config_dir(tmp_path: Path) -> Path:
    """A copy of the embedded default configuration that a test may edit."""
    target = tmp_path / "cfg"
    shutil.copytree(DEFAULTS_DIR, target)
    return target


def edit_config(directory: Path, file: str, edit: Callable[[Any], None]) -> None:
    """Apply ``edit`` to the parsed JSON of ``file`` and write it back."""
    path = directory / file
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))


def use_tracking_uri(monkeypatch: pytest.MonkeyPatch, uri: str) -> None:
    """Point MLflow's fluent API (``models:/`` URIs, ``mlflow.pyfunc.load_model``) at ``uri`` for one test.

    ``mlflow.set_tracking_uri`` would also export ``MLFLOW_TRACKING_URI`` to the rest of the session (and
    its subprocesses) and keep a process global; this sets the variable and clears that global through
    ``monkeypatch``, so both are restored when the test ends.
    """
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setattr("mlflow.tracking._tracking_service.utils._tracking_uri", None)


def default_registry(uri: str) -> Any:
    """The policy registry at ``uri`` under the default tuner.json experiment and model prefix.

    ``uri`` is passed as the override, so an ``MLFLOW_TRACKING_URI`` in the environment cannot redirect it.
    """
    from router_tuner.tuner.registry import PolicyRegistry

    mlflow = load_config().tuner.mlflow
    return PolicyRegistry(None, experiment=mlflow.experiment, model_prefix=mlflow.registered_model_prefix,
                          override_uri=uri)


def config_issues(directory: Path) -> list[str]:
    """The problems a load of ``directory`` reports (the load must fail)."""
    with pytest.raises(ConfigError) as caught:
        load_config(directory)
    return [str(issue) for issue in caught.value.issues]


@pytest.fixture(scope="session")
def ray_runner() -> Iterator[Any]:
    """One local 2-worker Ray for the whole session (127.0.0.1 only), shut down when the session ends."""
    from router_tuner.tuner.cluster import RayRunner

    with RayRunner(workers=2) as runner:
        yield runner


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """The product imports as ``router_tuner.<package>`` only: a test that reached a module under its bare folder
    name (pytest puts the repo root on ``sys.path``) tested a second copy of it, so the session fails."""
    bare = sorted(name for name in sys.modules if name.split(".")[0] in PRODUCT_PACKAGES)
    if bare:
        print(f"\nmodules imported outside the router_tuner namespace: {bare}", file=sys.stderr)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
