"""What start-up built kept out of full garbage collections (``executor.engine.collection``): frozen until thawed,
a full collection then no longer scans it, and ``live`` thaws what it froze when its run ends."""

from __future__ import annotations

import gc
import time
from pathlib import Path
from typing import Any

import msgspec
import pytest

from router_tuner.cli.main import main as cli_main
from router_tuner.executor.engine.collection import freeze_startup, thaw
from router_tuner.executor.loop import Executor
from tests.executor.test_executor_support import (
    intent,
    paper_config_dir,
)


def test_freeze_startup_excludes_what_exists_until_thaw() -> None:
    kept = [[index] for index in range(50_000)]  # containers: what the collector tracks
    freeze_startup()
    try:
        assert gc.get_freeze_count() >= len(kept)
        assert all(not any(item is inner for item in gc.get_objects(2)) for inner in kept[:3])  # out of generation 2
    finally:
        thaw()
    assert gc.get_freeze_count() == 0
    assert any(item is kept[0] for item in gc.get_objects(2))


def test_live_routes_frozen_and_thaws_what_it_froze(config_dir: Path, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    frozen_while_routing: list[int] = []
    route = Executor.run

    def run(self: Executor, *args: Any, **kwargs: Any) -> int:
        frozen_while_routing.append(gc.get_freeze_count())
        return route(self, *args, **kwargs)

    monkeypatch.setattr(Executor, "run", run)
    paper_config_dir(config_dir)
    lines = [msgspec.json.encode(intent(f"o{k}", size_hint_usd=300.0, ts_ns=time.time_ns())) for k in range(2)]
    (tmp_path / "intents.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    assert cli_main(["live", "--venue", "binanceusdm", "--config", str(config_dir), "--intents",
                     str(tmp_path / "intents.jsonl"), "--journal", str(tmp_path / "journal.sqlite"), "--store",
                     str(tmp_path / "executor.sqlite"), "--idle-poll-s", "0.05"]) == 0
    assert len(frozen_while_routing) == 1 and frozen_while_routing[0] > 100_000  # the modules, config, executor
    assert gc.get_freeze_count() == 0
