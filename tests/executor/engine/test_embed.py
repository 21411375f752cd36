"""The embedding API: ``await engine.submit(intent)`` / ``submit_sync`` return each intent's journaled
RouterEvent or VetoEvent from a paper engine running routes at once; the example script runs."""

from __future__ import annotations

import asyncio
from pathlib import Path

import msgspec
import pytest

from experiments.examples import embed as example
from router_tuner.executor.embed import DuplicateIntent, EmbeddedEngine, EngineStopped, outcome_intent_id
from router_tuner.executor.journal import Journal
from router_tuner.router.events import RouterEvent, VetoEvent
from tests.executor.test_executor_support import executor_config, intent


def engine(tmp_path: Path) -> EmbeddedEngine:
    config = example.with_routes_in_flight(executor_config(), 6)
    config = msgspec.structs.replace(config, executor=msgspec.structs.replace(
        config.executor, engine=msgspec.structs.replace(config.executor.engine, max_routes_per_symbol=3)))
    return EmbeddedEngine.paper(config, journal_path=tmp_path / "journal.sqlite",
                                store_path=tmp_path / "executor.sqlite")


def test_submit_returns_each_intents_journaled_outcome(tmp_path: Path) -> None:
    batch = [intent(f"e{i}", symbol="BTCUSDT" if i % 2 else "ETHUSDT", size_hint_usd=300.0) for i in range(8)]
    batch.append(intent("e-stop", is_stop=True))  # a stop that does not reduce: vetoed by the executor
    with engine(tmp_path) as running:

        async def submit() -> list[RouterEvent | VetoEvent]:
            return list(await asyncio.gather(*(running.submit(i) for i in batch)))

        outcomes = asyncio.run(submit())
        sync = running.submit_sync(intent("e-sync", size_hint_usd=300.0), timeout_s=120.0)
        with pytest.raises(DuplicateIntent, match="e0"):
            running.submit_sync(batch[0])
    assert [outcome_intent_id(o) for o in outcomes] == [i.intent_id for i in batch]
    assert isinstance(outcomes[-1], VetoEvent) and outcomes[-1].reasons[0].code == "stop_not_reducing"
    assert sum(isinstance(o, RouterEvent) for o in outcomes) >= 4
    assert outcome_intent_id(sync) == "e-sync"
    with Journal(tmp_path / "journal.sqlite", readonly=True) as journal:
        journaled = {outcome_intent_id(e): e for kind in ("router", "veto") for e in journal.read(kind)}
        assert journal.count("trade") == len(batch) + 1
    assert all(journaled[outcome_intent_id(o)] == o for o in outcomes)  # the very records journaled
    with pytest.raises(EngineStopped):
        running.submit_sync(intent("after-close"))


def test_an_engine_not_started_refuses_intents(tmp_path: Path) -> None:
    idle = engine(tmp_path)
    try:
        with pytest.raises(EngineStopped, match="not running"):
            idle.submit_sync(intent("x"))
        with pytest.raises(TypeError, match="Intent"):
            idle.submit_sync({"intent_id": "x"})  # type: ignore[arg-type]
    finally:
        idle.close()


def test_the_example_script_runs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert example.main(["--out", str(tmp_path), "--intents", "6", "--routes-in-flight", "3"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 7 and lines[-1].startswith("6 intents: ")
    assert all(line.startswith("embed-") for line in lines[:-1])
