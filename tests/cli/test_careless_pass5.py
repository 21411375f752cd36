"""A careless user against this session's surface: the structured learner's weak prior and the learner benchmarks.

Each test is a case that went wrong before its fix: ``prior_strength`` 1e-200 (or ``prior_fill_probability``
1e-300) passed ``config check`` and made every maker arm's expected cost NaN, so the learner routed the first arm it
met with propensity 1; ``learner_eval --no-recorded --no-regimes`` ended in a numpy traceback (no market to score).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from experiments.bench.learner_eval import main as learner_eval
from router_tuner.cli.main import BAD_INPUT, main
from router_tuner.config.loader import load_config
from router_tuner.tuner.factory import build_grid, build_learner
from router_tuner.tuner.learners.structured import MAX_PRIOR_STRENGTH, MIN_PRIOR_FILL_PROBABILITY, MIN_PRIOR_STRENGTH
from tests.conftest import edit_config


@pytest.mark.parametrize(("key", "value", "line"), [
    ("prior_strength", 1e-200, "tuner.json: $.learner_params.structured.prior_strength: Expected `float` >= 1e-06"),
    ("prior_fill_probability", 1e-300,
     "tuner.json: $.learner_params.structured.prior_fill_probability: Expected `float` >= 1e-06"),
    ("prior_fill_probability", 0.9999999,
     "tuner.json: $.learner_params.structured.prior_fill_probability: Expected `float` <= 0.999999"),
])
def test_a_prior_too_weak_to_fit_is_refused_by_config_check(config_dir: Path, capsys: pytest.CaptureFixture[str],
                                                            key: str, value: float, line: str) -> None:
    edit_config(config_dir, "tuner.json", lambda d: d["learner_params"]["structured"].update({key: value}))
    assert main(["config", "check", str(config_dir)]) == BAD_INPUT
    assert line in capsys.readouterr().err


@pytest.mark.parametrize(("strength", "fill"), [(MIN_PRIOR_STRENGTH, MIN_PRIOR_FILL_PROBABILITY),
                                              (MAX_PRIOR_STRENGTH, 1.0 - MIN_PRIOR_FILL_PROBABILITY)])
def test_the_config_accepts_what_the_learner_accepts_at_its_bounds(config_dir: Path, strength: float,
                                                                   fill: float) -> None:
    """The config model states the learner's bounds as literals (config does not import the tuner): they agree. (A
    burn-in: at the lowest fill probability the prior alone would never post, which `config check` refuses.)"""
    edit_config(config_dir, "tuner.json", lambda d: d["learner_params"]["structured"].update(
        prior_strength=strength, prior_fill_probability=fill, burn_in_per_arm=1))
    assert main(["config", "check", str(config_dir)]) == 0
    bundle = load_config(config_dir)
    grid, fees = build_grid(bundle.tuner, bundle.router), bundle.router.sim_venue.fees["usdm"]
    learner = build_learner(bundle.tuner, grid, 1, fees, static_offset_bps=1.0)
    assert np.isfinite(learner.expected_costs_bps()).all()


def test_learner_eval_with_no_market_left_is_one_line_and_exit_2(capsys: pytest.CaptureFixture[str],
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.argv", ["learner_eval.py"])
    with pytest.raises(SystemExit) as stop:
        learner_eval(["--no-recorded", "--no-regimes"])
    assert stop.value.code == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        "learner_eval.py: error: --no-recorded with --no-regimes leaves no market to score: drop one of them")
