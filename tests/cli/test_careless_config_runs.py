"""Configurations that load but that one command cannot run: refused before anything starts, naming the key.

``live --policy-source tuner`` with a markout reward, or a learner the arm grid cannot carry, used to open the
journal and store, then end in exit 1 "tuner state not restored: ConfigError/ValueError: …"; ``simulate`` and
``sweep`` with such a learner (robbins_monro, run by default) stopped at its first order as an unexpected error.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from router_tuner.cli.main import BAD_INPUT
from tests.cli.test_cli_failures import one_line_failure
from tests.cli.test_hostile_inputs import _live
from tests.conftest import edit_config

_NO_TAKER_BIAS_ZERO = ("robbins_monro: robbins_monro needs at least two maker offsets (taker bias 0) in the grid "
                       "(tuner.json arms): change the arms or leave the learner out")


def _taker_biases_from_half(config: Path) -> None:
    """Bounds, static policy, rule policy and arms all at taker bias 0.5 or more: valid, but robbins_monro walks the
    maker offsets at taker bias 0."""
    def router(data: dict[str, Any]) -> None:
        data["policy_bounds"]["taker_bias"] = {"min": 0.0, "max": 1.0}
        data["static_policy"]["taker_bias"] = 0.5
    edit_config(config, "router.json", router)
    edit_config(config, "tuner.json", lambda data: data["arms"].update(taker_biases=[0.5, 1.0]))


def test_live_adaptive_routing_with_a_markout_reward_is_bad_input_before_anything_starts(
        tmp_path: Path, quiet_config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    edit_config(quiet_config, "tuner.json", lambda data: data.update(reward_markout_horizon_ms=1000.0))
    line = one_line_failure(_live(tmp_path, quiet_config, "--policy-source", "tuner", "--no-mlflow",
                                  "--tuner-state", str(tmp_path / "tuner" / "state.json")), capsys, BAD_INPUT)
    assert line == ("router-tuner live: --policy-source tuner: tuner.json: $.reward_markout_horizon_ms: 1000 charges "
                    "markout in the reward, which only `simulate` can learn; set it to 0 for live adaptive routing")
    assert not (tmp_path / "journal.sqlite").exists() and not (tmp_path / "tuner").exists()


def test_live_adaptive_routing_with_a_learner_the_grid_cannot_carry_is_bad_input(
        tmp_path: Path, quiet_config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _taker_biases_from_half(quiet_config)
    edit_config(quiet_config, "tuner.json", lambda data: data.update(learner="robbins_monro"))
    line = one_line_failure(_live(tmp_path, quiet_config, "--policy-source", "tuner", "--no-mlflow",
                                  "--tuner-state", str(tmp_path / "tuner" / "state.json")), capsys, BAD_INPUT)
    assert line == ("router-tuner live: --policy-source tuner: tuner.json: $.learner: robbins_monro needs at least "
                    "two maker offsets (taker bias 0) in the grid: change $.arms or the learner")
    assert not (tmp_path / "journal.sqlite").exists()


@pytest.mark.parametrize(("command", "prefix"), [
    (["simulate", "--no-mlflow"], "router-tuner simulate: --learners "),
    (["sweep", "--no-mlflow", "--data", "synthetic"], "router-tuner sweep: "),
])
def test_a_learner_the_grid_cannot_carry_is_refused_before_any_market_is_loaded(
        command: list[str], prefix: str, tmp_path: Path, quiet_config: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    """The default --learners include robbins_monro; an empty --data folder would be refused later, so the
    learners are checked first."""
    _taker_biases_from_half(quiet_config)
    (tmp_path / "empty").mkdir()
    data = [] if "--data" in command else ["--data", str(tmp_path / "empty")]
    line = one_line_failure([*command, *data, "--config", str(quiet_config), "--orders", "20",
                             "--out", str(tmp_path / "out")], capsys, BAD_INPUT)
    assert line == prefix + _NO_TAKER_BIAS_ZERO
    assert not (tmp_path / "out").exists()


def test_the_other_learners_still_run_on_that_grid(tmp_path: Path, quiet_config: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    """Leaving robbins_monro out is the way around: the check refuses only the learner that cannot run."""
    from router_tuner.config.loader import load_config
    from router_tuner.simulation.learners import LEARNERS, refuse_unrunnable

    _taker_biases_from_half(quiet_config)
    refuse_unrunnable(load_config(quiet_config), [name for name in LEARNERS if name != "robbins_monro"])


def test_config_check_names_a_tuner_learner_the_grid_cannot_carry(quiet_config: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    """It said OK, and every command that runs the learner refused the directory."""
    from router_tuner.cli.main import main

    _taker_biases_from_half(quiet_config)
    edit_config(quiet_config, "tuner.json", lambda data: data.update(learner="robbins_monro"))
    assert main(["config", "check", str(quiet_config)]) == BAD_INPUT
    assert capsys.readouterr().err.splitlines()[1:] == [
        "  tuner.json: $.learner: robbins_monro needs at least two maker offsets (taker bias 0) in the grid: "
        "change $.arms or the learner"]


@pytest.mark.parametrize(("edit", "cause"), [
    (lambda data: data.update(learner="thompson"), "thompson learner cannot load a StructuredState"),
    (lambda data: data["arms"].update(maker_offsets_bps=[0.0, 0.5, 1.0, 2.0]), "saved arms ("),
])
def test_a_tuner_state_saved_under_another_tuner_json_is_bad_input_naming_the_file(
        edit: Any, cause: str, tmp_path: Path, quiet_config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Changing the learner or the arms between two runs ended in exit 1, "tuner state not restored:
    StateMismatchError: thompson learner cannot load a StructuredState": no file named, nothing to do."""
    from router_tuner.cli.main import main

    state = tmp_path / "tuner" / "state.json"
    args = _live(tmp_path, quiet_config, "--policy-source", "tuner", "--no-mlflow", "--tuner-state", str(state))
    assert main(args) == 0
    capsys.readouterr()
    edit_config(quiet_config, "tuner.json", edit)
    line = one_line_failure(args, capsys, BAD_INPUT)
    generation = re.escape(str(tmp_path / "tuner" / "state.g")) + r"\d+\.json"
    assert re.match(f"router-tuner live: tuner state not restored: {generation}: {re.escape(cause)}", line)
    assert line.endswith("it was saved under another tuner.json learner, arms or learner parameters; restore the "
                         "files it was saved with, or move them away: the tuner then learns this journal again from "
                         "its start")


def test_a_damaged_tuner_state_is_bad_input(tmp_path: Path, quiet_config: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    from router_tuner.cli.main import main

    state = tmp_path / "tuner" / "state.json"
    args = _live(tmp_path, quiet_config, "--policy-source", "tuner", "--no-mlflow", "--tuner-state", str(state))
    assert main(args) == 0
    capsys.readouterr()
    state.write_bytes(state.read_bytes()[:10])  # cut short
    line = one_line_failure(args, capsys, BAD_INPUT)
    assert line.startswith(f"router-tuner live: tuner state not restored: {state}: not a tuner checkpoint manifest")


@pytest.mark.parametrize("flag", ["--journal", "--store", "--paper-state", "--tuner-state"])
def test_a_file_path_under_a_file_names_its_option_before_anything_starts(
        flag: str, tmp_path: Path, quiet_config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``--tuner-state intents.jsonl/state.json`` failed after the journal had opened, as "File exists:
    intents.jsonl: choose a location that can be written", naming neither the option nor the cause."""
    not_a_folder = tmp_path / "notes.txt"
    not_a_folder.write_text("a file, not a folder\n")
    args = _live(tmp_path, quiet_config, "--policy-source", "tuner", "--no-mlflow",
                 "--tuner-state", str(tmp_path / "tuner" / "state.json"))
    line = one_line_failure([*args, flag, str(not_a_folder / "x")], capsys, BAD_INPUT)
    assert line == (f"router-tuner live: {flag} {not_a_folder / 'x'}: {not_a_folder} is a file, not a folder; give "
                    "a path in a folder")
    assert not (tmp_path / "journal.sqlite").exists()
