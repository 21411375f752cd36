"""The timing rule every in-process benchmark shares: the fastest of ``repeats`` runs, setup not timed."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


def best_of(repeats: int, run: Callable[..., T], *, setup: Callable[[], Any] | None = None) -> tuple[float, T]:
    """Fastest wall time in seconds of ``repeats`` calls of ``run``, and the last call's result.

    With ``setup``, each call is ``run(setup())`` and the setup is not timed (e.g. a fresh venue per run).
    """
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    best = float("inf")
    for _ in range(repeats):
        args = () if setup is None else (setup(),)
        start = time.perf_counter()
        out = run(*args)
        best = min(best, time.perf_counter() - start)
    return best, out
