"""The garbage collector paced between orders (``executor.engine.collection``): nothing before generation 0 is
half way to its threshold, then the generation CPython would pick, a cycle made garbage collected there; the
executor collects after a route has landed and been journaled, and ``live`` thaws what it froze."""

from __future__ import annotations

import gc
import time
import weakref
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest

from router_tuner.cli.main import main as cli_main
from router_tuner.executor.engine import collection
from router_tuner.executor.engine.collection import collect_if_due, freeze_startup, thaw
from tests.executor.test_executor_support import (
    build_executor,
    executor_config,
    intent,
    make_paper_venue,
    paper_config_dir,
)


class _Node:
    """A tracked object that can sit in a reference cycle."""

    def __init__(self) -> None:
        self.other: _Node | None = None


@pytest.fixture()
def thresholds() -> Iterator[None]:
    """Thresholds these tests choose (restored after), starting from empty generations; the collector on."""
    saved, enabled = gc.get_threshold(), gc.isenabled()
    gc.enable()
    gc.collect()
    yield
    gc.set_threshold(*saved)
    if not enabled:
        gc.disable()


def _allocate(count: int) -> list[_Node]:
    return [_Node() for _ in range(count)]


def test_nothing_is_collected_before_generation_0_is_half_way_to_its_threshold(thresholds: None) -> None:
    gc.set_threshold(100_000, 10, 10)  # the automatic collector never runs inside the test
    gc.collect()
    kept = _allocate(int(100_000 * collection.HEADROOM) - 1_000)
    before = gc.get_count()[0]
    assert collect_if_due() is None
    assert gc.get_count()[0] >= before  # nothing collected
    kept += _allocate(2_000)
    assert collect_if_due() == 0
    assert gc.get_count()[0] < 100  # generation 0 emptied into generation 1


def test_generations_are_picked_in_cpythons_order(thresholds: None) -> None:
    gc.set_threshold(100_000, 2, 1)
    gc.collect()
    picked = []
    kept = []
    for _ in range(9):
        kept.append(_allocate(60_000))
        picked.append(collect_if_due())
    # generation 1 once it counts more than 2 collections of generation 0, generation 2 once it counts more than 1
    # of generation 1
    assert picked == [0, 0, 0, 1, 0, 0, 0, 1, 2]


def test_a_cycle_made_garbage_is_collected_when_due(thresholds: None) -> None:
    gc.set_threshold(100_000, 10, 10)
    gc.collect()
    first, second = _Node(), _Node()
    first.other, second.other = second, first
    alive = weakref.ref(first)
    del first, second
    assert alive() is not None  # a cycle: reference counting alone never frees it
    kept = _allocate(60_000)
    assert collect_if_due() == 0
    assert alive() is None
    assert kept


def test_a_collector_switched_off_stays_off(thresholds: None) -> None:
    gc.set_threshold(1_000, 10, 10)
    gc.disable()
    kept = _allocate(5_000)
    assert collect_if_due() is None
    assert gc.get_count()[0] >= 5_000
    gc.set_threshold(0)
    gc.enable()
    assert collect_if_due() is None
    assert kept


def test_freeze_startup_excludes_what_exists_until_thaw(thresholds: None) -> None:
    kept = _allocate(1_000)
    freeze_startup()
    try:
        assert gc.get_freeze_count() >= len(kept)
    finally:
        thaw()
    assert gc.get_freeze_count() == 0


def test_the_executor_collects_after_a_route_has_landed_and_been_journaled(tmp_path: Path,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    config = executor_config()
    executor, journal, _ = build_executor(config, make_paper_venue(config), tmp_path)
    journaled_at_collection: list[int] = []
    monkeypatch.setattr("router_tuner.executor.loop.collect_if_due",
                        lambda: journaled_at_collection.append(journal.count("router")))
    executor.start()
    for k in range(3):
        executor.process(intent(f"i{k}", size_hint_usd=300.0))
    routed = journal.count("router")
    assert routed == 3
    # once per landing, each after that route's RouterEvent was journaled: never between admission and route
    assert journaled_at_collection == [1, 2, 3]


def test_live_thaws_what_it_froze(config_dir: Path, tmp_path: Path) -> None:
    paper_config_dir(config_dir)
    lines = [msgspec.json.encode(intent(f"o{k}", size_hint_usd=300.0, ts_ns=time.time_ns())) for k in range(2)]
    (tmp_path / "intents.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    assert cli_main(["live", "--venue", "binanceusdm", "--config", str(config_dir), "--intents",
                     str(tmp_path / "intents.jsonl"), "--journal", str(tmp_path / "journal.sqlite"), "--store",
                     str(tmp_path / "executor.sqlite"), "--idle-poll-s", "0.05"]) == 0
    assert gc.get_freeze_count() == 0
