"""Saving and restoring learners: same choices as never stopping, atomic writes, strict loading."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from router_tuner.tuner.arms import ArmGrid
from router_tuner.tuner.learners import UCB, Context, ContextScales, EpsilonGreedy, Learner, LinUCB, NormalThompson
from router_tuner.tuner.learners.base import StateMismatchError
from router_tuner.tuner.state import STATE_FORMAT_VERSION, StateFileError, restore_state, save_state

GRID = ArmGrid.from_values([0.0, 1.0, 2.0, 4.0], [0.0, 0.5], min_offset_bps=0.0, max_offset_bps=5.0)
SCALES = ContextScales(spread_scale_bps=5.0, volatility_scale_bps=10.0, size_vs_touch_scale=1.0)


def learners(epsilon: float = 0.3) -> dict[str, Learner]:
    return {
        "BTCUSDT": NormalThompson(GRID, prior_mean_reward=-3.0, prior_mean_pseudo_count=1.0, prior_noise_std=3.0,
                                  prior_noise_pseudo_count=2.0, burn_in=1, seed=1),
        "ETHUSDT": UCB(GRID, delta=1.0, min_noise_std=1.0, burn_in=1, seed=2),
        "SOLUSDT": EpsilonGreedy(GRID, epsilon=epsilon, decay=0.01, min_epsilon=0.05, burn_in=1, seed=3),
        "XRPUSDT": LinUCB(GRID, scales=SCALES, alpha=1.0, ridge=1.0, prior_mean_reward=-3.0, burn_in=1, seed=4),
    }


def run(ls: dict[str, Learner], steps: int, seed: int) -> list[tuple[str, str, float]]:
    """Drive every learner with one shared reward stream; returns (key, arm, propensity) per decision."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(steps):
        ctx = Context(float(rng.uniform(0, 8)), float(rng.uniform(0, 30)), float(rng.uniform(-1, 1)),
                      float(rng.uniform(0, 24)), float(rng.uniform(0, 2)))
        noise = float(rng.normal())
        for key, learner in ls.items():
            c = learner.choose(ctx)
            out.append((key, c.arm.arm_id, c.propensity))
            learner.update(c.arm.arm_id, -3.0 + 0.4 * c.arm.maker_offset_bps + noise, ctx)
    return out


def test_restore_then_continue_equals_never_stopping(tmp_path: Path) -> None:
    uninterrupted = learners()
    run(uninterrupted, 150, seed=7)
    expected = run(uninterrupted, 150, seed=8)

    first = learners()
    run(first, 150, seed=7)
    path = tmp_path / "tuner-state.json"
    save_state(path, first)
    resumed = learners()
    restore_state(path, resumed)
    assert run(resumed, 150, seed=8) == expected


def test_file_is_versioned_json_and_no_temp_file_is_left(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    save_state(path, learners())
    text = path.read_text()
    assert text.startswith(f'{{"format_version":{STATE_FORMAT_VERSION}')
    assert '"kind":"linucb"' in text
    assert os.listdir(tmp_path) == ["s.json"]


def test_failed_write_keeps_the_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "s.json"
    save_state(path, learners())
    old = path.read_bytes()
    ls = learners()
    run(ls, 20, seed=1)

    def boom(src: str, dst: str) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError, match="disk full"):
        save_state(path, ls)
    assert path.read_bytes() == old
    assert os.listdir(tmp_path) == ["s.json"]


def test_changed_parameters_are_refused_and_nothing_is_loaded(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    trained = learners()
    run(trained, 30, seed=1)
    save_state(path, trained)
    fresh = learners(epsilon=0.2)
    with pytest.raises(StateMismatchError, match="params"):
        restore_state(path, fresh)
    assert all(sum(learner.counts().values()) == 0 for learner in fresh.values())


def test_other_grid_or_kind_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    save_state(path, learners())
    other = ArmGrid.from_values([0.0, 1.0], [0.0], min_offset_bps=0.0, max_offset_bps=5.0)
    ls = learners()
    ls["ETHUSDT"] = UCB(other, delta=1.0, min_noise_std=1.0, burn_in=1, seed=2)
    with pytest.raises(StateMismatchError, match="arms"):
        restore_state(path, ls)
    ls = learners()
    ls["ETHUSDT"], ls["SOLUSDT"] = ls["SOLUSDT"], ls["ETHUSDT"]
    with pytest.raises(StateMismatchError, match="cannot load"):
        restore_state(path, ls)


def test_key_mismatch_version_and_garbage_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    save_state(path, learners())
    ls = learners()
    del ls["XRPUSDT"]
    with pytest.raises(StateFileError, match="XRPUSDT"):
        restore_state(path, ls)
    path.write_text(path.read_text().replace('"PCG64"', '"MT19937"', 1))
    with pytest.raises(StateMismatchError, match="random generator"):
        restore_state(path, learners())
    save_state(path, learners())
    path.write_text(path.read_text().replace('"format_version":1', '"format_version":99'))
    with pytest.raises(StateFileError, match="version 99"):
        restore_state(path, learners())
    path.write_text("not json")
    with pytest.raises(StateFileError):
        restore_state(path, learners())
    path.write_text('{"format_version":1,"learners":{},"extra":1}')
    with pytest.raises(StateFileError):
        restore_state(path, learners())


def test_saving_nothing_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        save_state(tmp_path / "s.json", {})
