"""SIGKILL the executor running ``--policy-source tuner`` (a real subprocess) between two tuner
checkpoints, append more intents, restart: the restarted tuner re-learns exactly the journaled events
its last checkpoint did not include, so its learned outcomes equal the journal's learnable events
(none learned twice, none lost), and learning goes on from there."""

from __future__ import annotations

import signal
from pathlib import Path

import msgspec
import pytest

from router_tuner.config.loader import load_config
from router_tuner.executor.adaptive.checkpoint import TunerCheckpoint
from router_tuner.executor.journal import Journal
from router_tuner.executor.store import ExecutorStore
from router_tuner.tuner.factory import build_reward_filter
from router_tuner.tuner.service.publish import InMemoryPublisher
from tests.conftest import edit_config
from tests.executor.adaptive.live_adaptive_support import SYMBOL, round_trip
from tests.executor.test_executor_support import journaled_trades, kill9, paper_config_dir, start_live, wait_for

CHECKPOINT_EVERY = 25
FIRST, SECOND = 120, 60  # intents before the kill, intents appended for the restart


def _tuner_args(tmp_path: Path) -> tuple[str, ...]:
    return ("--policy-source", "tuner", "--no-mlflow", "--tuner-state", str(tmp_path / "state" / "tuner_state.json"),
            "--seed", "5")


pytestmark = pytest.mark.timeout(60)


def _configure(config_dir: Path) -> None:
    paper_config_dir(config_dir, SYMBOL)

    def executor(d: dict) -> None:
        d["health"]["interval_s"] = 5.0
        d["adaptive"]["checkpoint_every_n_events"] = CHECKPOINT_EVERY

    edit_config(config_dir, "executor.json", executor)


def _write_intents(path: Path, ks: range) -> None:
    with path.open("ab") as handle:
        for k in ks:
            handle.write(msgspec.json.encode(round_trip(k)) + b"\n")


def test_sigkill_between_checkpoints_then_restart_learns_every_event_once(config_dir: Path, tmp_path: Path) -> None:
    _configure(config_dir)
    config = load_config(config_dir)
    journal_path, state_path = tmp_path / "journal.sqlite", tmp_path / "state" / "tuner_state.json"
    _write_intents(tmp_path / "intents.jsonl", range(FIRST))
    proc, _, err1 = start_live(tmp_path, config_dir, 1, *_tuner_args(tmp_path), "--follow")
    try:
        wait_for("first intents journaled", lambda: journaled_trades(journal_path) == FIRST, proc)
    finally:
        kill9(proc)
    assert proc.returncode == -signal.SIGKILL, err1.read_text()
    at_kill = TunerCheckpoint(state_path).manifest
    with Journal(journal_path, readonly=True) as journal:
        journaled_at_kill = journal.count("router")
    assert at_kill is not None and journaled_at_kill == FIRST
    # the kill fell between checkpoints: the last is the last multiple, or later when a version was published
    assert FIRST - FIRST % CHECKPOINT_EVERY <= at_kill.router_events_learned < FIRST

    _write_intents(tmp_path / "intents.jsonl", range(FIRST, FIRST + SECOND))
    proc2, out2, err2 = start_live(tmp_path, config_dir, 2, *_tuner_args(tmp_path))
    try:
        assert proc2.wait(timeout=40) == 0, err2.read_text()
    finally:
        if proc2.poll() is None:
            proc2.kill()
    expected = f"tuner re-learned {FIRST - at_kill.router_events_learned} events (0 without a decision record)"
    assert expected in out2.read_text()

    with Journal(journal_path, readonly=True) as journal:
        events = list(journal.read("router"))
        arm_safety = {e.intent_id for e in journal.read("arm_safety")}
    assert [e.intent_id for e in events] == [f"i{k}" for k in range(FIRST + SECOND)]  # each routed once
    assert arm_safety <= {e.intent_id for e in events}
    final = TunerCheckpoint(state_path)
    assert final.manifest is not None and final.manifest.router_events_learned == FIRST + SECOND
    restored = final.restore(config, [SYMBOL], InMemoryPublisher()).service
    budget = restored.tuner(SYMBOL).to_state().budget
    reward_filter = build_reward_filter(config.tuner)
    learnable = [e for e in events if reward_filter.reward_from_event(e) is not None]
    assert sum(budget.cost_n.values()) == len(learnable) > FIRST  # no event learned twice, none lost
    for arm in {e.arm for e in learnable}:
        assert budget.cost_n[arm] == sum(e.arm == arm for e in learnable)
    with ExecutorStore(tmp_path / "executor.sqlite", readonly=True) as store:
        tuner = store.latest_tuner_health()  # health published at shutdown carries the tuner block
    assert tuner is not None and tuner.router_events_learned == FIRST + SECOND
    assert tuner.symbols[0].learned_outcomes == len(learnable) and tuner.symbols[0].mode == "live"
    # only the last checkpoint generation is left on disk
    assert sorted(p.name for p in state_path.parent.iterdir()) == sorted(
        [state_path.name, f"tuner_state.g{final.manifest.generation}.json",
         f"tuner_state.g{final.manifest.generation}.tuners.json"])
