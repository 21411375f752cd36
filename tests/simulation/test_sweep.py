"""The sweep: a validated grid of independent tasks, the same rows on one core and on Ray, resumable after an
interruption, and every row's numbers consistent with the main job's definitions."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from router_tuner.config import load_config
from router_tuner.config.models import ConfigBundle
from router_tuner.simulation.sweep.grid import (
    SYNTHETIC,
    GridError,
    SweepGrid,
    build_grid,
    parse_axis,
    settings_grid,
    with_settings,
)
from router_tuner.simulation.sweep.run import run_sweep
from router_tuner.simulation.sweep.store import CheckpointError, CheckpointStore
from router_tuner.simulation.sweep.table import sweep_rows, write_table
from router_tuner.tuner.cluster import LocalRunner, TaskRunner
from tests.conftest import edit_config

T = TypeVar("T")
R = TypeVar("R")
ORDERS = 40


@pytest.fixture(scope="module")
def config() -> ConfigBundle:
    return load_config()


def small_grid(config: ConfigBundle, **changes: Any) -> SweepGrid:
    options: dict[str, Any] = {"config_dir": None, "learners": ["thompson", "epsilon_greedy"], "seeds": [1, 2],
                               "symbols": ["BTCUSDT"], "data": [SYNTHETIC], "orders": ORDERS,
                               "axes": [parse_axis("tuner.learner_params.epsilon=0.05,0.3")]}
    return build_grid(config, **{**options, **changes})


class InterruptAfter:
    """A one-core runner that is interrupted (Ctrl-C) after ``n`` tasks, and counts what it ran."""

    workers = 1

    def __init__(self, n: int | None) -> None:
        self.n = n
        self.ran = 0

    def map(self, fn: Callable[[T], R], items: Sequence[T]) -> list[R]:
        raise NotImplementedError

    def as_completed(self, fn: Callable[[T], R], items: Sequence[T]) -> Iterator[tuple[int, R]]:
        for index, item in enumerate(items):
            if self.n is not None and self.ran >= self.n:
                raise KeyboardInterrupt
            self.ran += 1
            yield index, fn(item)


def test_grid_is_the_product_of_its_axes_with_each_baseline_once(config: ConfigBundle) -> None:
    grid = small_grid(config)
    assert len(grid.learner_tasks) == 2 * 2 * 2  # learners x seeds x epsilon values
    assert len(grid.baseline_tasks) == 2  # one per seed: the learner settings do not change the baselines
    assert grid.tasks[:2] == grid.baseline_tasks
    ids = [t.task_id for t in grid.tasks]
    assert len(set(ids)) == len(ids) and ids == [t.task_id for t in small_grid(config).tasks]
    assert ids[0].startswith("baseline-BTCUSDT-s1-") and ids[2].startswith("thompson-BTCUSDT-s1-")


def test_rows_follow_the_main_job_definitions(config: ConfigBundle, tmp_path: Path) -> None:
    grid = small_grid(config, seeds=[3], learners=["ucb"], axes=[])
    outcome = run_sweep(grid, LocalRunner(), CheckpointStore(tmp_path))
    (row,) = sweep_rows(grid, outcome.results)
    baseline = outcome.results[grid.baseline_tasks[0].task_id]
    fixed = {c.summary.policy: c.summary.mean_cost_bps for c in baseline.fixed}
    assert row["best_fixed_arm"] == min(fixed, key=fixed.get)
    assert row["best_fixed_cost_bps"] == fixed[row["best_fixed_arm"]]
    gap = row["taker_cost_bps"] - row["best_fixed_cost_bps"]
    assert row["captured_share"] == pytest.approx((row["taker_cost_bps"] - row["mean_cost_bps"]) / gap)
    learner = outcome.results[grid.learner_tasks[0].task_id]
    diff = learner.run.cost_array() - outcome.results[grid.baseline_tasks[0].task_id].fixed[
        [c.summary.policy for c in baseline.fixed].index(row["best_fixed_arm"])].cost_array()
    assert row["regret_bps"] == pytest.approx(np.nansum(diff) / ORDERS)
    assert row["cost_ci_low_bps"] <= row["mean_cost_bps"] <= row["cost_ci_high_bps"]
    assert (row["orders"], row["settings"], row["data"]) == (ORDERS, "{}", SYNTHETIC)


def test_two_ray_workers_give_the_one_core_rows(config: ConfigBundle, tmp_path: Path, ray_runner: TaskRunner) -> None:
    grid = small_grid(config)
    local = sweep_rows(grid, run_sweep(grid, LocalRunner(), CheckpointStore(tmp_path / "one")).results)
    on_ray = sweep_rows(grid, run_sweep(grid, ray_runner, CheckpointStore(tmp_path / "ray")).results)
    assert on_ray == local
    assert {r["tuner.learner_params.epsilon"] for r in local} == {0.05, 0.3}
    # the epsilon axis moves epsilon-greedy, and not Thompson sampling, which has no epsilon
    by = {(r["learner"], r["seed"], r["tuner.learner_params.epsilon"]): r["mean_cost_bps"] for r in local}
    assert by[("thompson", 1, 0.05)] == by[("thompson", 1, 0.3)]


def test_an_interrupted_sweep_resumes_without_rerunning_finished_tasks(config: ConfigBundle, tmp_path: Path) -> None:
    grid = small_grid(config, learners=["epsilon_greedy"])
    store = CheckpointStore(tmp_path)
    first = InterruptAfter(3)
    with pytest.raises(KeyboardInterrupt):
        run_sweep(grid, first, store)
    assert len(list((tmp_path / "tasks").glob("*.json"))) == 3
    second = InterruptAfter(None)
    done: list[str] = []
    resumed = run_sweep(grid, second, store, on_done=lambda task: done.append(task.task_id))
    assert (resumed.resumed, resumed.ran, second.ran) == (3, len(grid.tasks) - 3, len(grid.tasks) - 3)
    assert sorted(done) == sorted(t.task_id for t in grid.tasks)
    uninterrupted = run_sweep(grid, LocalRunner(), CheckpointStore(tmp_path / "fresh"))
    assert sweep_rows(grid, resumed.results) == sweep_rows(grid, uninterrupted.results)


def test_bad_checkpoints_are_errors_not_skips(config: ConfigBundle, tmp_path: Path) -> None:
    grid = small_grid(config, learners=["ucb"], seeds=[1], axes=[])
    store = CheckpointStore(tmp_path)
    baseline, learner = grid.tasks
    store.path(baseline).parent.mkdir(parents=True)
    store.path(baseline).write_text("{not json")
    with pytest.raises(CheckpointError, match="not a task result"):
        run_sweep(grid, LocalRunner(), store)
    store.path(baseline).unlink()
    run_sweep(grid, LocalRunner(), store)
    store.path(learner).write_bytes(store.path(baseline).read_bytes())
    with pytest.raises(CheckpointError, match="holds the result of baseline-"):
        store.load(learner)


def test_table_is_one_typed_row_per_learner_task(config: ConfigBundle, tmp_path: Path) -> None:
    grid = small_grid(config, learners=["ucb"], seeds=[1], axes=[parse_axis("tuner.publish.every_n_outcomes=50,100")])
    rows = sweep_rows(grid, run_sweep(grid, LocalRunner(), CheckpointStore(tmp_path)).results)
    frame = pd.read_parquet(write_table(rows, tmp_path))
    assert len(frame) == 2 and frame["tuner.publish.every_n_outcomes"].tolist() == [50, 100]
    assert json.loads(frame["settings"][0]) == {"tuner.publish.every_n_outcomes": 50}
    mixed = [{**rows[0], "tuner.x": "a"}, {**rows[1], "tuner.x": 1}]
    assert pd.read_parquet(write_table(mixed, tmp_path))["tuner.x"].tolist() == ['"a"', "1"]


@given(st.lists(st.floats(allow_nan=False, allow_infinity=False, width=32), min_size=1, max_size=4, unique=True))
def test_axis_values_parse_back(values: list[float]) -> None:
    key, parsed = parse_axis("tuner.learner_params.epsilon=" + ",".join(repr(v) for v in values))
    assert key == "learner_params.epsilon" and list(parsed) == values


def test_a_value_nested_past_the_stack_is_a_string_its_key_refuses(config: ConfigBundle) -> None:
    """``--set tuner.learner_params.epsilon=[[[…]]]`` 3,000 deep ended in "unexpected RecursionError"."""
    deep = "[" * 3000 + "]" * 3000
    assert parse_axis(f"tuner.learner_params.epsilon={deep}") == ("learner_params.epsilon", (deep,))
    with pytest.raises(GridError, match="Expected `float`, got `str`"):
        with_settings(config, [("learner_params.epsilon", deep)])

@pytest.mark.parametrize("content", [b'{"tracking_uri": "sql', b"[1]", b'{"tracking_uri": "u"}', b"[" * 3000])
def test_a_damaged_record_of_the_sweeps_mlflow_parent_is_named(tmp_path: Path, content: bytes) -> None:
    """``OUT/mlflow_run.json`` cut short or edited failed every rerun with the decoder's words ("MLflow logging failed
    …; rerun to retry: Unterminated string …"; "'list' object has no attribute 'get'")."""
    from router_tuner.simulation.sweep.tracking import STATE_NAME, SweepStateError, _parent_id

    state = tmp_path / STATE_NAME
    state.write_bytes(content)
    with pytest.raises(SweepStateError, match=f"{STATE_NAME}: not this sweep's record of its MLflow parent run .*; "
                                              "delete it to log the sweep under a new parent run"):
        _parent_id(state, "u")
    state.write_bytes(b'{"tracking_uri": "u", "parent_run_id": "r1"}')
    assert _parent_id(state, "u") == "r1" and _parent_id(state, "other") is None

@pytest.mark.parametrize("text, message", [
    ("learner_params.epsilon=0.1", "expected tuner.KEY"),
    ("tuner.learner_params.epsilon", "expected tuner.KEY"),
    ("tuner.=1", "expected tuner.KEY"),
    ("tuner.seed=1,2", "--seeds"),
    ("tuner.learner=ucb", "--learners"),
    ("tuner.arms.taker_biases=0", "one arm grid"),
    ("tuner.learner_params.epsilon=", "no values"),
    ("tuner.learner_params.epsilon=0.1,0.1", "repeated"),
])
def test_bad_axes_are_refused(text: str, message: str) -> None:
    with pytest.raises(GridError, match=message):
        parse_axis(text)


_UNDERFLOWED = parse_axis("tuner.deployment.budget.max_extra_cost_bps_per_order=1e-400")


@pytest.mark.parametrize("setting, message", [
    (("learner_params.nope", 1), "no such key"),
    (("learner_params.structured", 1), "not a single value"),
    (("learner_params.epsilon", "high"), "Expected `float`"),
    (("publish.every_n_outcomes", -5), "tuner.publish.every_n_outcomes=-5"),
    (("mlflow.experiment", "a\tb"), r"tuner.json \$.mlflow.experiment: holds a control character \(U\+0009"),
    (("ope.ci_level", 0.05), "not their error rate"),
    (("deployment.budget.max_extra_cost_bps_per_order", _UNDERFLOWED[1][0]),   # --set …=1e-400 read 0 silently
     r"\$.deployment.budget.max_extra_cost_bps_per_order: 1e-400 reads as 0"),
])
def test_settings_are_validated_like_a_loaded_file(config: ConfigBundle, setting: tuple[str, Any],
                                                   message: str) -> None:
    with pytest.raises(GridError, match=message):
        with_settings(config, [setting])
    assert with_settings(config, [("learner_params.epsilon", 0.2)]).tuner.learner_params.epsilon == 0.2
    assert with_settings(config, []) is config


@pytest.mark.parametrize("changes, message", [
    ({"seeds": [1, 1]}, "repeated"),
    ({"learners": []}, "no learners"),
    ({"symbols": ["NOPE"]}, "no market for"),
    ({"orders": 0}, "orders must be 1 to"),
    ({"orders": 10**14}, "orders must be 1 to"),
    ({"seeds": [-1]}, "seeds must be 0 to"),
    ({"seeds": [2**40]}, "seeds must be 0 to"),
    ({"axes": [parse_axis("tuner.learner_params.epsilon=2.0")]}, "epsilon"),
])
def test_bad_grids_fail_before_any_task_runs(config: ConfigBundle, changes: dict[str, Any], message: str) -> None:
    with pytest.raises(GridError, match=message):
        small_grid(config, **changes)


def test_settings_grid_is_a_product_and_refuses_repeated_keys() -> None:
    assert settings_grid([]) == [()]
    assert settings_grid([("a", (1, 2)), ("b", ("x",))]) == [(("a", 1), ("b", "x")), (("a", 2), ("b", "x"))]
    with pytest.raises(GridError, match="twice"):
        settings_grid([("a", (1,)), ("a", (2,))])


def test_a_configuration_changed_after_planning_is_refused(config_dir: Path) -> None:
    grid = build_grid(load_config(config_dir), config_dir=str(config_dir), learners=["ucb"], seeds=[1],
                      symbols=["BTCUSDT"], data=[SYNTHETIC], orders=10, axes=[])
    edit_config(config_dir, "tuner.json", lambda d: d["learner_params"].update(epsilon=0.3))
    with pytest.raises(GridError, match="changed since the sweep was planned"):
        run_sweep(grid, LocalRunner(), CheckpointStore(config_dir / "out"))


def test_a_checkpoint_cut_short_is_a_task_that_runs_again(config: ConfigBundle, tmp_path: Path) -> None:
    """A checkpoint cut short (empty, or stopping midway) stopped the resume ("not a task result ... delete it");
    it is a task that never finished: it runs again, and its checkpoint is rewritten whole."""
    grid = small_grid(config, learners=["ucb"], seeds=[1], axes=[])
    store = CheckpointStore(tmp_path)
    reference = run_sweep(grid, LocalRunner(), store)
    baseline, _learner = grid.tasks
    whole = store.path(baseline).read_bytes()
    for cut in (b"", whole[: len(whole) // 2]):
        store.path(baseline).write_bytes(cut)
        assert store.load(baseline) is None
        resumed = run_sweep(grid, LocalRunner(), store)
        assert (resumed.resumed, resumed.ran) == (1, 1)
        assert store.path(baseline).read_bytes() == whole
        assert sweep_rows(grid, resumed.results) == sweep_rows(grid, reference.results)
