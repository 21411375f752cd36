"""A careless user against the route-end reward and its waiting drift (``tuner.json`` ``reward_mid`` ``route_end``,
``reward_mid_drift_window``; ``router.json`` ``simulation.intents.informed_share`` / ``informed_horizon_ms``).

Each test is a case that went wrong before its fix: a damaged ``waiting_drift`` in a tuner state file ended in
"unexpected ZeroDivisionError" (a duration sum of -10 s), or was used with the drift's sign flipped (-5 s); a run
learning the journaled cost (``reward_mid`` ``arrival``) erased the saved drift; informed intents whose horizon
reached past the tape took the side of the tape's end.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
import pytest

from router_tuner.cli.main import BAD_INPUT, main
from router_tuner.config.loader import load_config
from router_tuner.simulation.intents import NS_PER_MS, intent_stream
from router_tuner.simulation.markets import synthetic_markets
from tests.cli.test_cli_failures import one_line_failure
from tests.conftest import edit_config
from tests.executor.adaptive.live_adaptive_support import round_trip
from tests.executor.test_executor_support import paper_config_dir

SYMBOL = "BTCUSDT"


def _append_intents(path: Path, ks: range) -> None:
    with path.open("ab") as handle:
        for k in ks:
            handle.write(msgspec.json.encode(round_trip(k)) + b"\n")


def _live_tuner(tmp_path: Path, config: Path) -> list[str]:
    return ["live", "--venue", "binanceusdm", "--config", str(config), "--idle-poll-s", "0.05",
            "--intents", str(tmp_path / "intents.jsonl"), "--journal", str(tmp_path / "journal.sqlite"),
            "--store", str(tmp_path / "store.sqlite"), "--policy-source", "tuner", "--no-mlflow",
            "--tuner-state", str(tmp_path / "tuner" / "state.json"), "--seed", "5"]


def _tuners_file(tmp_path: Path) -> Path:
    """The latest generation's tuners file (the manifest names it)."""
    generation = json.loads((tmp_path / "tuner" / "state.json").read_text())["generation"]
    return tmp_path / "tuner" / f"state.g{generation}.tuners.json"


def _saved_drift(tmp_path: Path) -> dict[str, Any] | None:
    return json.loads(_tuners_file(tmp_path).read_text())["symbols"][SYMBOL]["waiting_drift"]


def _edit_drift(tmp_path: Path, edit: Callable[[dict[str, Any]], None]) -> None:
    path = _tuners_file(tmp_path)
    doc = json.loads(path.read_text())
    edit(doc["symbols"][SYMBOL])
    path.write_text(json.dumps(doc))


@pytest.fixture
def routed_once(tmp_path: Path, config_dir: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    """A paper run of ``live --policy-source tuner`` (route_end, the default) that routed 20 intents."""
    paper_config_dir(config_dir, SYMBOL)
    _append_intents(tmp_path / "intents.jsonl", range(20))
    assert main(_live_tuner(tmp_path, config_dir)) == 0
    capsys.readouterr()
    drift = _saved_drift(tmp_path)
    assert drift is not None and drift["routes"] == 20 and drift["seconds"] > 0.0
    return config_dir


@pytest.mark.parametrize(("damage", "key", "was"), [
    ({"seconds": -10.0}, "seconds", "unexpected ZeroDivisionError, exit 1"),
    ({"seconds": -5.0}, "seconds", "the drift's sign flipped, silently"),
    ({"move_bps": 1e308, "seconds": 0.0}, "move_bps", "unexpected ValidationError after learning, exit 1"),
    ({"routes": -3}, "routes", "accepted"),
])
def test_a_damaged_waiting_drift_is_bad_input_naming_the_file_and_key(
        damage: dict[str, float], key: str, was: str, tmp_path: Path, routed_once: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    _edit_drift(tmp_path, lambda symbol: symbol["waiting_drift"].update(damage))
    damaged = _tuners_file(tmp_path)
    _append_intents(tmp_path / "intents.jsonl", range(20, 24))
    line = one_line_failure(_live_tuner(tmp_path, routed_once), capsys, BAD_INPUT)
    assert line.startswith(f"router-tuner live: tuner state not restored: {damaged}: "), was
    assert f"at `$.symbols[...].waiting_drift.{key}`" in line
    assert line.endswith("restore the files it was saved with, or move them away: the tuner then learns this journal "
                         "again from its start")


def test_a_state_saved_before_the_waiting_drift_existed_loads_with_the_drift_at_zero(
        tmp_path: Path, routed_once: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _edit_drift(tmp_path, lambda symbol: symbol.pop("waiting_drift"))
    _append_intents(tmp_path / "intents.jsonl", range(20, 26))
    assert main(_live_tuner(tmp_path, routed_once)) == 0, capsys.readouterr().err
    drift = _saved_drift(tmp_path)
    assert drift is not None and drift["routes"] == 6, "learned afresh from the routes of this run only"


def test_a_run_learning_the_journaled_cost_keeps_the_saved_waiting_drift_for_a_return_to_route_end(
        tmp_path: Path, routed_once: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """route_end -> arrival -> route_end: the arrival run saved ``waiting_drift: null``, so the next route_end run
    started the drift again from zero (20 routes of it lost)."""
    saved = _saved_drift(tmp_path)
    edit_config(routed_once, "tuner.json", lambda d: d.update(reward_mid="arrival"))
    _append_intents(tmp_path / "intents.jsonl", range(20, 30))
    assert main(_live_tuner(tmp_path, routed_once)) == 0, capsys.readouterr().err
    assert _saved_drift(tmp_path) == saved, "kept as saved: the arrival run learned no move"
    edit_config(routed_once, "tuner.json", lambda d: d.update(reward_mid="route_end"))
    _append_intents(tmp_path / "intents.jsonl", range(30, 36))
    assert main(_live_tuner(tmp_path, routed_once)) == 0, capsys.readouterr().err
    drift = _saved_drift(tmp_path)
    assert drift is not None and saved is not None and drift["routes"] == saved["routes"] + 6


def test_informed_intents_looking_past_the_tape_are_refused_by_config_check(
        config_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``informed_horizon_ms`` 3 600 000 on a 6-minute synthetic tape: every informed intent read the last quote's
    mid as its horizon's (146 of 800 bought, the tape's end being lower), and ``config check`` passed it."""
    edit_config(config_dir, "router.json", lambda d: d["simulation"]["intents"].update(
        informed_share=0.5, informed_horizon_ms=15_001.0, tail_ms=15_000.0))
    assert main(["config", "check", str(config_dir)]) == BAD_INPUT
    err = capsys.readouterr().err
    assert ("router.json: $.simulation.intents.informed_horizon_ms: 15001 ms is longer than tail_ms 15000 ms: the "
            "last informed intents would look past the tape's end; lower it or raise tail_ms") in err


def test_uninformed_intents_may_have_any_horizon(config_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    edit_config(config_dir, "router.json", lambda d: d["simulation"]["intents"].update(
        informed_share=0.0, informed_horizon_ms=3_600_000.0))
    assert main(["config", "check", str(config_dir)]) == 0, capsys.readouterr().err


def test_a_horizon_within_the_tail_keeps_every_informed_intent_inside_the_tape() -> None:
    config = load_config()
    market = synthetic_markets(config, [SYMBOL], 1)[0]
    stream = msgspec.structs.replace(config.router.simulation.intents, informed_share=1.0,
                                     informed_horizon_ms=config.router.simulation.intents.tail_ms)
    intents = intent_stream(market, 400, stream, seed=3)
    end_ns = int(market.tape.quote_ts_ns[-1])
    assert all(i.arrival_ns + stream.informed_horizon_ms * NS_PER_MS <= end_ns for i in intents)
    assert 0 < sum(i.side == "buy" for i in intents) < len(intents)
