"""Where independent tasks run: in this process, or on Ray (a local cluster this process starts, or one it joins).

Sweeps and partitioned OPE are embarrassingly parallel: a list of small, picklable task descriptions, a
module-level function per task, results combined by the caller. Both runners speak the same two verbs,
``map`` (results in item order, for combinations that must not depend on which task finished first) and
``as_completed`` (``(index, result)`` as tasks finish, for progress bars and checkpoints), so every caller
runs identically on one core and on a cluster. Ray is imported only when a Ray runner is opened: it stays
out of the import path of everything else.

Ray Core tasks, not Ray Data, Spark or Dask: the work is a few thousand coarse tasks of pure Python and
numpy that return a few kilobytes each (no shuffle, no join, no dataframe algebra), so a task API is all
that is needed; Ray starts a local cluster from ``pip install`` alone (no JVM, no scheduler process to run
by hand) and the same code joins a multi-node cluster by address.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, nullcontext
from types import TracebackType
from typing import Any, Protocol, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class ClusterError(RuntimeError):
    """Ray could not be started or joined (bad address, no such cluster)."""


class TaskFailed(RuntimeError):
    """A task raised on a Ray worker; the message is the original error's type and text."""


class TaskRunner(Protocol):
    """Runs ``fn`` over ``items``; ``fn`` (a module-level function or a partial of one) and the items must
    pickle."""

    @property
    def workers(self) -> int: ...

    def map(self, fn: Callable[[T], R], items: Sequence[T]) -> list[R]: ...

    def as_completed(self, fn: Callable[[T], R], items: Sequence[T]) -> Iterator[tuple[int, R]]: ...


class LocalRunner:
    """Every task in this process, in order: the one-core reference the distributed runs must equal."""

    workers = 1

    def map(self, fn: Callable[[T], R], items: Sequence[T]) -> list[R]:
        return [fn(item) for item in items]

    def as_completed(self, fn: Callable[[T], R], items: Sequence[T]) -> Iterator[tuple[int, R]]:
        for index, item in enumerate(items):
            yield index, fn(item)


class RayRunner:
    """Ray Core tasks, one per item; a context manager that starts (or joins) Ray and always shuts it down.

    ``workers`` starts a local Ray with that many CPUs, listening on 127.0.0.1 only, no dashboard and no
    usage reporting, its workers at normal priority (not Ray's default nice 15); ``address`` joins an
    existing cluster instead (``workers`` is then the cluster's CPU count, read after joining).
    """

    def __init__(self, *, workers: int | None = None, address: str | None = None) -> None:
        if (workers is None) == (address is None):
            raise ValueError("give exactly one of workers (local Ray) or address (join a cluster)")
        if workers is not None and workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        self._requested = workers
        self._address = address
        self._ray: Any = None
        self._workers = workers or 0

    @property
    def workers(self) -> int:
        return self._workers

    def __enter__(self) -> RayRunner:
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        if self._address is None:
            # Ray renices its workers to 15 to keep its own daemons responsive; on a shared machine that starves
            # the very tasks this runner exists for, which then run slower than the one-core LocalRunner.
            os.environ.setdefault("RAY_worker_niceness", "0")
        import ray

        if self._address is not None:
            _check_reachable(self._address)
        try:
            if self._address is not None:
                ray.init(address=self._address, include_dashboard=False, log_to_driver=False,
                         logging_level="ERROR")
                self._workers = max(1, int(ray.cluster_resources().get("CPU", 1)))
            else:
                # address="local": always a new cluster, never one a stale /tmp/ray file points at
                ray.init(address="local", num_cpus=self._requested, include_dashboard=False, log_to_driver=False,
                         logging_level="ERROR", _node_ip_address="127.0.0.1")
        except (ConnectionError, ValueError, RuntimeError) as error:
            ray.shutdown()
            where = f"join the Ray cluster at {self._address}" if self._address else "start a local Ray"
            raise ClusterError(f"could not {where}: {error}") from error
        self._ray = ray
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._ray is not None:
            self._ray.shutdown()
            self._ray = None

    def map(self, fn: Callable[[T], R], items: Sequence[T]) -> list[R]:
        return self._get(self._submit(fn, items))

    def as_completed(self, fn: Callable[[T], R], items: Sequence[T]) -> Iterator[tuple[int, R]]:
        ray = self._ray_module()
        refs = self._submit(fn, items)
        index_of = {ref: i for i, ref in enumerate(refs)}
        pending = list(refs)
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            yield index_of[done[0]], self._get(done[0])

    def _get(self, refs: Any) -> Any:
        """``ray.get``, with a worker's exception turned back into one line naming the original error."""
        ray = self._ray_module()
        try:
            return ray.get(refs)
        except ray.exceptions.RayTaskError as error:
            cause = getattr(error, "cause", None)
            if cause is None:  # no original exception: the text is a traceback, whose last line says it
                raise TaskFailed(str(error).strip().splitlines()[-1]) from error
            lines = str(cause).strip().splitlines()
            raise TaskFailed(f"{type(cause).__name__}: {lines[0] if lines else ''}") from error

    def _submit(self, fn: Callable[[T], R], items: Sequence[T]) -> list[Any]:
        remote = self._ray_module().remote(_apply)
        shared_fn = self._ray_module().put(fn)
        return [remote.remote(shared_fn, item) for item in items]

    def _ray_module(self) -> Any:
        if self._ray is None:
            raise RuntimeError("RayRunner is used outside its `with` block")
        return self._ray


def open_runner(workers: int, address: str | None) -> AbstractContextManager[TaskRunner]:
    """What a command's ``--workers N`` / ``--address`` ask for: a cluster to join, a local Ray when N > 1,
    else this process (no Ray at all)."""
    if address is not None:
        return RayRunner(address=address)
    if workers > 1:
        return RayRunner(workers=workers)
    return nullcontext(LocalRunner())


def check_address_form(address: str) -> tuple[str, int] | None:
    """(host, port) of a Ray address, ``None`` for ``auto``; ValueError for anything else (a bad argument)."""
    if address == "auto":
        return None
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"Ray address {address!r} is not HOST:PORT, ray://HOST:PORT or auto")
    return host, int(port)


def _check_reachable(address: str, timeout_s: float = 5.0) -> None:
    """Fail fast on an address nothing listens at: ``ray.init`` would retry it for minutes."""
    try:
        where = check_address_form(address)
    except ValueError as error:
        raise ClusterError(str(error)) from None
    if where is None:
        return
    host, port = where
    try:
        socket.create_connection((host, port), timeout=timeout_s).close()
    except OSError as error:
        raise ClusterError(f"no Ray cluster answers at {address}: {error}") from error


def _apply(fn: Callable[[T], R], item: T) -> R:
    """The one remote function: any callable (a ``functools.partial`` too) applied to one item."""
    return fn(item)
