"""Checkpoints of a sweep: one small JSON file per finished task, so an interrupted sweep resumes where it was.

``OUT/tasks/<task_id>.json`` is written atomically (``router.atomic_file``) by the driver as each result
arrives, and only then counted as done: a crash leaves every finished task on disk whole and none half.
Task ids are content addresses of every input (:mod:`simulation.sweep.grid`), so a file is reused only by
the very same task; a file that does not decode, or belongs to another task, is an error, not a skip. A file cut
short (empty, or JSON that stops midway: a copy or a disk that failed mid-write, never this writer) is a task
that has not finished: it runs again and its checkpoint is rewritten whole.
"""

from __future__ import annotations

from pathlib import Path

import msgspec

from router_tuner.router.atomic_file import write_bytes_atomic
from router_tuner.simulation.sweep.grid import Task
from router_tuner.simulation.sweep.tasks import TaskResult

_ENCODER = msgspec.json.Encoder()
_DECODER = msgspec.json.Decoder(TaskResult)


class CheckpointError(RuntimeError):
    """A checkpoint file is corrupt or does not match its task."""


class DamagedCheckpoint(CheckpointError):
    """What is at a task's checkpoint path stops every resume the same way until it is moved (a file that is not
    a task result, another task's result, a folder): bad input, named before any task runs, not a failure of the
    run (a folder there used to fail only when its task's result was saved, after the task had run, on every
    rerun)."""


class CheckpointStore:
    """The finished tasks of one sweep output folder."""

    def __init__(self, out_dir: Path) -> None:
        self.folder = Path(out_dir) / "tasks"

    def path(self, task: Task) -> Path:
        return self.folder / f"{task.task_id}.json"

    def load(self, task: Task) -> TaskResult | None:
        """The task's recorded result, or ``None`` when it has not finished."""
        path = self.path(task)
        if not path.is_file():
            if path.exists():
                raise DamagedCheckpoint(f"{path}: exists and is not a file (a folder, FIFO or device): "
                                        "move it away; the task's result is written there")
            return None
        payload = path.read_bytes()
        try:
            result = _DECODER.decode(payload)
        except msgspec.DecodeError as error:
            if not payload.strip() or "truncated" in str(error):  # cut short: the task's result was never whole
                return None
            raise DamagedCheckpoint(f"{path}: not a task result ({error}); delete it to rerun the task") from error
        if result.task_id != task.task_id:
            raise DamagedCheckpoint(f"{path}: holds the result of {result.task_id}, not {task.task_id}; delete it to "
                                    "rerun the task")
        return result

    def save(self, task: Task, result: TaskResult) -> None:
        if result.task_id != task.task_id:
            raise CheckpointError(f"result of {result.task_id} given for task {task.task_id}")
        write_bytes_atomic(self.path(task), _ENCODER.encode(result))
