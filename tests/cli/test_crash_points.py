"""Crash points: a real ``router-tuner`` process killed (SIGKILL) between two of its steps, then the same command
run again. What was left must be the previous complete output or the new complete one, and the rerun must
succeed with the result an uninterrupted run gives. The kill is placed by ``tests/cli/crash_at.py`` (the process
kills itself right after the Nth call of a function returns), so each case is deterministic and takes seconds.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

from router_tuner.config.loader import DEFAULTS_DIR, FILES

ROOT = Path(__file__).resolve().parents[2]


def crash_at(spec: str, after: int, *args: str, cwd: Path | None = None,
             env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``router-tuner ARGS`` killed with SIGKILL right after the ``after``-th call of ``spec`` returns."""
    return subprocess.run([sys.executable, "-m", "tests.cli.crash_at", spec, str(after), *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=120, env=env)


def router_tuner(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "router_tuner.cli", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=120, env=env)


def test_config_init_killed_between_two_files_leaves_whole_files_and_the_same_command_completes(
        tmp_path: Path) -> None:
    """Each file was opened in place and written: a kill left a half file there, and every later init refused
    the folder ("already holds ...")."""
    target = tmp_path / "config"
    killed = crash_at("os:link", 2, "config", "init", str(target))
    assert killed.returncode == -signal.SIGKILL
    left = sorted(p.name for p in target.iterdir() if not p.name.startswith("."))
    assert 1 <= len(left) < len(FILES)
    assert all((target / name).read_bytes() == (DEFAULTS_DIR / name).read_bytes() for name in left)
    rerun = router_tuner("config", "init", str(target))
    assert rerun.returncode == 0, rerun.stderr
    assert f"{len(left)} already there" in rerun.stdout
    assert sorted(p.name for p in target.iterdir()) == sorted(FILES)  # no temporary left either
    assert all((target / name).read_bytes() == (DEFAULTS_DIR / name).read_bytes() for name in FILES)
    assert router_tuner("config", "check", str(target)).returncode == 0
