"""Run ``router-tuner ARGS`` and kill it with SIGKILL right after the Nth call of a function returns.

``python -m tests.cli.crash_at MODULE:QUALNAME N ARGS...`` (e.g. ``os:link 2 config init DIR``): the function is
wrapped in this process only (the product code has no hook), so the crash point is deterministic: the process
dies between two steps exactly as a ``kill -9`` landing there would leave it, with no cleanup of any kind.
"""

from __future__ import annotations

import functools
import importlib
import os
import signal
import sys
from collections.abc import Callable
from typing import Any


def wrap_after(spec: str, after_call: Callable[[tuple[Any, ...], dict[str, Any]], None]) -> None:
    """Replace the function ``MODULE:QUALNAME`` in this process by one that calls ``after_call(args, kwargs)`` each
    time the real one returns (also used by ``experiments.crash_sweep``)."""
    module_name, _, qualname = spec.partition(":")
    owner: Any = importlib.import_module(module_name)
    *path, name = qualname.split(".")
    for part in path:
        owner = getattr(owner, part)
    real = getattr(owner, name)

    @functools.wraps(real)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        result = real(*args, **kwargs)
        after_call(args, kwargs)
        return result

    setattr(owner, name, wrapped)


def kill_after(spec: str, after: int) -> None:
    """SIGKILL this process right after the ``after``-th call of ``MODULE:QUALNAME`` returns (also used by
    ``experiments.crash_sweep``)."""
    calls = 0

    def counted(_args: tuple[Any, ...], _kwargs: dict[str, Any]) -> None:
        nonlocal calls
        calls += 1
        if calls >= after:
            os.kill(os.getpid(), signal.SIGKILL)

    wrap_after(spec, counted)


if __name__ == "__main__":
    kill_after(sys.argv[1], int(sys.argv[2]))
    from router_tuner.cli.main import main

    sys.exit(main(sys.argv[3:]))
