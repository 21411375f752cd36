"""SIGKILL ``live --policy-source tuner`` (a real subprocess, ``reward_mid`` ``route_end``) while an order rests, move
the market while it is dead, restart: the recovered intent is learned at its journaled cost, and the mid's move
during the downtime is not taken for its route's move (it used to be: the restart read the touch, charged the whole
downtime's move to the route and added it, over the downtime's seconds, to the waiting drift; on a paper venue the
"move" was to another run's market, over a negative duration clipped to 0 s)."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import msgspec
import pytest

from router_tuner.executor.journal import Journal
from tests.conftest import edit_config
from tests.executor.test_executor_restart import API_KEY, API_SECRET, ENV, _committed, _config_dir, _has_order
from tests.executor.test_executor_support import intent, kill9, start_live, wait_for
from tests.fakes.binance_usdm import FakeBinanceUsdm

pytestmark = pytest.mark.timeout(120)


def _saved_drift(state: Path) -> dict[str, float]:
    generation = json.loads(state.read_text())["generation"]
    tuners = json.loads((state.parent / f"{state.stem}.g{generation}.tuners.json").read_text())
    drift = tuners["symbols"]["BTCUSDT"]["waiting_drift"]
    assert drift is not None
    return drift


def test_an_intent_recovered_after_a_kill_is_learned_at_its_journaled_cost(tmp_path: Path) -> None:
    state = tmp_path / "tuner" / "state.json"
    tuner_args = ("--live", "--policy-source", "tuner", "--no-mlflow", "--tuner-state", str(state), "--seed", "5")
    with FakeBinanceUsdm(API_KEY, API_SECRET) as fake:
        fake.state.hedge_mode = True
        fake.set_book("BTCUSDT", "60000.0", "5", "60000.1", "5")
        cfg = _config_dir(tmp_path, base_url=fake.base_url)
        edit_config(cfg, "tuner.json", lambda d: d["arms"].update(taker_biases=[0.0]))  # every leg rests
        with (tmp_path / "intents.jsonl").open("wb") as handle:
            for k in range(2):
                handle.write(msgspec.json.encode(intent(f"r{k}", size_hint_usd=300.0)) + b"\n")

        proc, _, err1 = start_live(tmp_path, cfg, 1, *tuner_args, env=ENV)
        try:
            wait_for("both orders resting", lambda: _has_order(fake, "r0-1") and _has_order(fake, "r1-1"), proc)
            with fake.state.lock:
                qty = {k: str(fake.state.orders[f"r{k}-1"].orig_qty) for k in range(2)}
            fake.fill("r0-1", qty[0])
            wait_for("r0 journaled", lambda: "trade:r0" in _committed(tmp_path / "journal.sqlite"), proc)
            time.sleep(0.3)  # r0's checkpoint is written with its journal batch; let the loop settle
        finally:
            kill9(proc)
        assert proc.returncode == -signal.SIGKILL, err1.read_text()
        learned_before = _saved_drift(state)
        assert learned_before["routes"] == 1, "r0's route end was read and learned"

        fake.set_book("BTCUSDT", "60600.0", "5", "60600.1", "5")  # +100 bps while the process is dead
        fake.fill("r1-1", qty[1])
        proc2, out2, err2 = start_live(tmp_path, cfg, 2, *tuner_args, env=ENV)
        try:
            assert proc2.wait(timeout=60) == 0, err2.read_text()
        finally:
            kill9(proc2)

    assert "1 in-flight intents recovered (r1)" in out2.read_text()
    with Journal(tmp_path / "journal.sqlite", readonly=True) as journal:
        events = list(journal.read("router"))
    assert [e.intent_id for e in events] == ["r0", "r1"] and events[1].filled_qty > 0
    assert _saved_drift(state) == learned_before, "the downtime's move is no route's move"
