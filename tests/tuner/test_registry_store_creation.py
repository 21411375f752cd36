"""Two processes creating the same new MLflow store at once: one waits for the other (issue 13).

Before the lock, two ``simulate`` runs on a fresh ``var/mlflow.db`` crashed one of them with SQLite's
"duplicate column name" while both migrated the schema.
"""

from __future__ import annotations

import fcntl
import subprocess
import sys
import time
from pathlib import Path

from router_tuner.tuner.registry import STORE_LOCK_SUFFIX

OPEN_STORE = ("import sys\n"
              "from tuner.registry import PolicyRegistry\n"
              "PolicyRegistry(f'sqlite:///{sys.argv[1]}', experiment='e', model_prefix='p')\n"
              "print('opened', flush=True)\n")
START_TOGETHER = ("import sys, time\n"
                  "import mlflow  # imported before the start line, so both reach the store together\n"
                  "while time.time() < float(sys.argv[2]):\n"
                  "    time.sleep(0.002)\n") + OPEN_STORE


def test_a_process_waits_while_another_holds_the_store_creation_lock(tmp_path: Path) -> None:
    database = tmp_path / "mlflow.db"
    with open(database.with_name(database.name + STORE_LOCK_SUFFIX), "a+b") as held:
        fcntl.flock(held.fileno(), fcntl.LOCK_EX)
        opener = subprocess.Popen([sys.executable, "-c", OPEN_STORE, str(database)], stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True)
        time.sleep(4.0)  # long enough to import MLflow and reach the lock
        assert opener.poll() is None and not database.exists(), "the store was opened under a held lock"
    out, err = opener.communicate(timeout=120)
    assert opener.returncode == 0, err
    assert out.strip() == "opened" and database.is_file()


def test_two_processes_creating_a_new_store_at_once_both_succeed(tmp_path: Path) -> None:
    database = tmp_path / "var" / "mlflow.db"
    start = str(time.time() + 6.0)
    runs = [subprocess.Popen([sys.executable, "-c", START_TOGETHER, str(database), start], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = [run.communicate(timeout=180) for run in runs]
    for run, (out, err) in zip(runs, results, strict=True):
        assert run.returncode == 0 and "duplicate column" not in err, err
        assert out.strip() == "opened"
