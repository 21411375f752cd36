"""The main job on two processes, one (symbol, policy) run per task: the same results as on one, progress counted,
a worker's failure raised."""

from __future__ import annotations

import dataclasses
import os
import signal
from collections.abc import Callable

import pytest

from router_tuner.cli.main import RUNTIME_FAILURE, describe_failure
from router_tuner.config.loader import load_config
from router_tuner.simulation.job import SimulationOptions, baseline_names, baseline_sources, simulate
from router_tuner.simulation.markets import synthetic_markets
from router_tuner.simulation.report.page import summary_dict
from router_tuner.simulation.workers import WorkerKilled, run_forked
from router_tuner.tuner.factory import build_grid


def test_two_workers_give_the_results_of_one_and_count_every_order() -> None:
    config = load_config()
    one = SimulationOptions(symbols=("BTCUSDT", "ETHUSDT"), orders_per_symbol=30, seed=4, data_dir=None,
                            learners=("structured", "ucb"), shadow_symbols=("ETHUSDT",))
    markets = synthetic_markets(config, one.symbols, one.seed)
    grid = build_grid(config.tuner, config.router)
    routed: list[int] = []
    first = simulate(config, markets, one, grid, data_source="synthetic")
    second = simulate(config, markets, dataclasses.replace(one, workers=2), grid, data_source="synthetic",
                      progress=routed.append)
    assert summary_dict(second) == summary_dict(first)
    assert sum(routed) == (2 * (3 + len(grid) + 2) + 2) * 30, "every order of every policy and the shadow run"
    assert [r.learner for r in second.learner_runs] == ["structured", "ucb"]
    assert set(second.learner_runs[0].service.symbols) == {"BTCUSDT", "ETHUSDT"}
    assert second.symbols["BTCUSDT"].market is markets[0], "the parent's market, not a copy from the worker"


def _fails_on_one(index: int, progress: Callable[[int], None] | None) -> int:
    if index == 1:
        raise ValueError(f"task {index} failed in process {os.getpid()}")
    return index * 10


def test_a_failing_worker_raises_in_the_parent() -> None:
    assert run_forked(lambda i, progress: i * 10, 3, workers=2, progress=None) == [0, 10, 20]
    with pytest.raises(ValueError, match="task 1 failed"):
        run_forked(_fails_on_one, 3, workers=2, progress=None)


def test_a_worker_killed_is_named_as_such() -> None:
    """A worker killed by the OOM killer or a kill -9 ended the run in "unexpected BrokenProcessPool: A process in
    the process pool was terminated abruptly … (report it)"."""
    def task(i: int, _progress: Callable[[int], None] | None) -> int:
        if i == 1:
            os.kill(os.getpid(), signal.SIGKILL)
        return i

    with pytest.raises(WorkerKilled, match=r"a worker process was killed before its part of the run was done \(out "
                                           r"of memory\? a kill -9\?\), so the run stopped; rerun the same command"):
        run_forked(task, 3, workers=2, progress=None)
    assert describe_failure(WorkerKilled("w"))[0] == RUNTIME_FAILURE

def test_workers_must_be_positive() -> None:
    with pytest.raises(ValueError, match="workers must be >= 1"):
        SimulationOptions(symbols=None, orders_per_symbol=1, seed=1, data_dir=None, learners=("ucb",), workers=0)


def test_baseline_names_are_the_baseline_sources_in_order() -> None:
    config = load_config()
    grid = build_grid(config.tuner, config.router)
    assert baseline_names(grid) == list(baseline_sources("BTCUSDT", config, grid))
