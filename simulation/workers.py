"""Independent pieces of the main job in forked worker processes, with one progress bar in the parent.

Forking (not spawning) lets every worker read the parent's market tables as they are in memory, so a
worker gets an index, never a copy of a tape, and only its results travel back (pickled). Progress is a
shared counter the workers add to and the parent polls, so the bar moves as orders are routed wherever
they are routed.
"""

from __future__ import annotations

import ctypes
import gc
import multiprocessing
import os
import signal
from collections.abc import Callable
from concurrent.futures import FIRST_EXCEPTION, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from multiprocessing.sharedctypes import Synchronized
from typing import Any, TypeVar

_T = TypeVar("_T")
_POLL_S = 0.2
"""How often the parent moves the progress bar (seconds); not a result-bearing setting."""
_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>

_counter: Synchronized | None = None  # set in each worker by _init_worker
_task: Callable[[int, Callable[[int], None] | None], object] | None = None  # set by run_forked before the fork


class WorkerKilled(RuntimeError):
    """A forked worker died without an exception of its own (SIGKILL: the OOM killer, an operator's kill -9)."""


def run_forked(task: Callable[[int, Callable[[int], None] | None], _T], count: int, *, workers: int,
               progress: Callable[[int], None] | None) -> list[_T]:
    """``[task(i, add) for i in range(count)]`` on ``workers`` forked processes, results in index order.

    ``task`` receives a progress callback that counts routed orders; a failure in any worker is raised
    here once the others have stopped.
    """
    context = multiprocessing.get_context("fork")
    counter = context.Value("q", 0)
    global _task
    _task = task  # inherited by the forked workers: the task is never pickled
    # The parent's objects go to the collector's permanent generation while workers fork: a worker's collections
    # would otherwise write to every object header they scan, copying the parent's pages into each worker.
    gc.freeze()
    try:
        return _run_pool(context, counter, count, workers, progress)
    except BrokenProcessPool as error:  # its own words ("terminated abruptly") read as a bug to report
        raise WorkerKilled("a worker process was killed before its part of the run was done (out of memory? a kill "
                           "-9?), so the run stopped; rerun the same command (with fewer --workers if memory ran "
                           "out)") from error
    finally:
        gc.unfreeze()


def _run_pool(context: multiprocessing.context.ForkContext, counter: Synchronized, count: int, workers: int,
              progress: Callable[[int], None] | None) -> list[Any]:
    with ProcessPoolExecutor(max_workers=min(workers, count), mp_context=context, initializer=_init_worker,
                             initargs=(counter, os.getpid())) as pool:
        futures = [pool.submit(_run, i) for i in range(count)]
        reported = 0
        while True:
            done, pending = wait(futures, timeout=_POLL_S, return_when=FIRST_EXCEPTION)
            reported = _report(counter, reported, progress)
            if not pending or any(f.exception() is not None for f in done):
                break
        for future in pending:
            future.cancel()
        return [f.result() for f in futures]


def _init_worker(counter: Synchronized, parent: int) -> None:
    global _counter
    _counter = counter
    _die_with_parent(parent)


def _die_with_parent(parent: int) -> None:
    """Have the kernel kill this worker when ``parent`` dies (Linux). A parent killed on its own (kill -9 of its
    pid, an OOM kill) left its workers waiting for their next task for ever, holding its stdout and stderr (a
    caller reading them hung too); a worker killed midway leaves no more than the killed parent would."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):  # no prctl (not Linux): orphans are left as before
        return
    if os.getppid() != parent:  # the parent died before the request took effect
        os._exit(1)


def _add(n: int) -> None:
    if _counter is not None:
        with _counter.get_lock():
            _counter.value += n


def _run(index: int) -> object:
    if _task is None:
        raise RuntimeError("run_forked: no task in this worker (was it started by fork?)")
    return _task(index, _add)


def _report(counter: Synchronized, reported: int, progress: Callable[[int], None] | None) -> int:
    now = counter.value
    if progress is not None and now > reported:
        progress(now - reported)
    return now
