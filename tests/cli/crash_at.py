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
from typing import Any


def _arm(spec: str, after: int) -> None:
    module_name, _, qualname = spec.partition(":")
    owner: Any = importlib.import_module(module_name)
    *path, name = qualname.split(".")
    for part in path:
        owner = getattr(owner, part)
    real = getattr(owner, name)
    calls = 0

    @functools.wraps(real)
    def counted(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        result = real(*args, **kwargs)
        calls += 1
        if calls >= after:
            os.kill(os.getpid(), signal.SIGKILL)
        return result

    setattr(owner, name, counted)


if __name__ == "__main__":
    _arm(sys.argv[1], int(sys.argv[2]))
    from router_tuner.cli.main import main

    sys.exit(main(sys.argv[3:]))
