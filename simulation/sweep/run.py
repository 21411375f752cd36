"""Drive a sweep: skip what the checkpoints say is done, run the rest on a task runner, record each as it lands.

The driver is the only writer (checkpoints here, MLflow afterwards in :mod:`simulation.sweep.tracking`):
workers only compute, so a SQLite MLflow store never sees two writers and an interrupted sweep loses at most
the tasks that were running.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from router_tuner.simulation.sweep.grid import SweepGrid, Task
from router_tuner.simulation.sweep.store import CheckpointStore
from router_tuner.simulation.sweep.tasks import TaskResult, run_task
from router_tuner.tuner.cluster import TaskRunner


@dataclass(frozen=True, slots=True)
class SweepOutcome:
    """Every task's result by task id, and how many were resumed from checkpoints or run now."""

    results: dict[str, TaskResult]
    resumed: int
    ran: int


def run_sweep(grid: SweepGrid, runner: TaskRunner, store: CheckpointStore, *,
              on_done: Callable[[Task], None] | None = None) -> SweepOutcome:
    """Run every task of ``grid`` without a checkpoint; ``on_done(task)`` after each is recorded."""
    results: dict[str, TaskResult] = {}
    pending: list[Task] = []
    for task in grid.tasks:
        recorded = store.load(task)
        if recorded is None:
            pending.append(task)
        else:
            results[task.task_id] = recorded
            if on_done is not None:
                on_done(task)
    resumed = len(results)
    for index, result in runner.as_completed(run_task, pending):
        task = pending[index]
        store.save(task, result)
        results[task.task_id] = result
        if on_done is not None:
            on_done(task)
    return SweepOutcome(results=results, resumed=resumed, ran=len(pending))
