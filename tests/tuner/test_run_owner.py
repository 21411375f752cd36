"""MLflow runs left RUNNING by a process that is gone are marked KILLED by the next opening of the experiment;
runs of live processes, of other hosts and of other tools are left alone."""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from mlflow import MlflowClient

from router_tuner.tuner.registry import PolicyRegistry, ensure_experiment, open_client
from router_tuner.tuner.run_owner import (
    HOST_TAG,
    PID_TAG,
    STARTED_TAG,
    end_orphaned_runs,
    owner_gone,
    owner_tags,
    process_start,
)

ROOT = Path(__file__).resolve().parents[2]
_KILLED_WHILE_RUNNING = """
import os, signal, sys
from router_tuner.tuner.registry import ensure_experiment, open_client
from router_tuner.tuner.run_owner import owner_tags
client = open_client(sys.argv[1])
run = client.create_run(ensure_experiment(client, sys.argv[1], "test"), tags=owner_tags())
print(run.info.run_id, flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""


def _status(uri: str, run_id: str) -> str:
    return str(MlflowClient(tracking_uri=uri).get_run(run_id).info.status)


def test_a_run_of_a_process_killed_with_sigkill_is_marked_killed_by_the_next_opening_once(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    uri = f"sqlite:///{tmp_path / 'store.db'}"
    killed = subprocess.run([sys.executable, "-c", _KILLED_WHILE_RUNNING, uri], cwd=ROOT, capture_output=True,
                            text=True, timeout=60)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-500:]
    run_id = killed.stdout.split()[0]
    assert _status(uri, run_id) == "RUNNING"
    with caplog.at_level(logging.WARNING, logger="router_tuner.tuner.registry"):
        PolicyRegistry(uri, experiment="test", model_prefix="policy")
        assert _status(uri, run_id) == "KILLED"
        PolicyRegistry(uri, experiment="test", model_prefix="policy")  # nothing left to mark: no second line
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1 and "marked 1 run(s) of experiment test KILLED" in lines[0] and run_id in lines[0]


def test_runs_of_a_live_process_another_host_or_another_tool_stay_running(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'store.db'}"
    client = open_client(uri)
    experiment = ensure_experiment(client, uri, "test")
    mine = owner_tags()
    live = {**mine, PID_TAG: str(os.getppid())}
    live[STARTED_TAG] = process_start(os.getppid()) or ""
    kept = [client.create_run(experiment, tags=tags).info.run_id for tags in (
        mine,  # this process
        live,  # another live process
        {**mine, HOST_TAG: "another-host", PID_TAG: "999999999"},  # cannot be checked from here
        {**mine, HOST_TAG: mine[HOST_TAG].split("/")[0] + "/pid:[1]", PID_TAG: "999999999"},  # another container
        {},  # not ours: no owner recorded
    )]
    reused = client.create_run(experiment, tags={**live, STARTED_TAG: "another-boot/1"}).info.run_id  # pid reused
    ensure_experiment(client, uri, "test")
    assert [_status(uri, run_id) for run_id in kept] == ["RUNNING"] * 5
    assert _status(uri, reused) == "KILLED"


def test_a_zombie_is_gone_and_a_process_start_tells_two_processes_apart() -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    started = process_start(child.pid)
    deadline = time.monotonic() + 30
    while process_start(child.pid) is not None:  # until it exits, unreaped: a zombie
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert Path(f"/proc/{child.pid}/stat").exists() or not Path("/proc/self/stat").exists()
    tags = {HOST_TAG: owner_tags()[HOST_TAG], PID_TAG: str(child.pid), STARTED_TAG: started or ""}
    assert owner_gone(tags)
    child.wait()
    assert process_start(child.pid) is None
    assert not owner_gone(owner_tags())
    assert not owner_gone({**owner_tags(), PID_TAG: "not-a-pid"})


@pytest.mark.parametrize("hidden", [FileNotFoundError, PermissionError])
def test_another_users_process_hidden_by_hidepid_is_alive_not_gone(hidden: type[OSError],
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Under /proc mounted hidepid=2 another user's /proc entry is missing (it read as gone: its live run was marked
    KILLED), under hidepid=1 unreadable (the PermissionError escaped every command that opened the experiment)."""
    real_read = Path.read_text

    def read_text(path: Path, *args: object, **kwargs: object) -> str:
        if path.name == "stat" and path.parent.name == "4242":
            raise hidden(str(path))
        return real_read(path, *args, **kwargs)  # type: ignore[arg-type]

    def kill(pid: int, signal_number: int) -> None:
        raise PermissionError(f"[Errno 1] Operation not permitted: {pid}")

    monkeypatch.setattr(Path, "read_text", read_text)
    monkeypatch.setattr(os, "kill", kill)
    assert process_start(4242) == ""
    assert not owner_gone({**owner_tags(), PID_TAG: "4242", STARTED_TAG: "boot/123"})


def test_a_run_that_cannot_be_marked_is_logged_and_the_opening_goes_on(caplog: pytest.LogCaptureFixture) -> None:
    run = SimpleNamespace(info=SimpleNamespace(run_id="r1"),  # the shape of an MLflow Run, of a pid that cannot run
                          data=SimpleNamespace(tags={**owner_tags(), PID_TAG: "999999999"}))

    class _Client:
        def search_runs(self, *args: object, **kwargs: object) -> list[SimpleNamespace]:
            return [run]

        def set_terminated(self, run_id: str, status: str) -> None:
            raise RuntimeError("RESOURCE_DOES_NOT_EXIST: run deleted meanwhile")

    with caplog.at_level(logging.WARNING):
        assert end_orphaned_runs(_Client(), "0") == []
    assert "run r1 of a process that is gone left RUNNING (RuntimeError: RESOURCE_DOES_NOT_EXIST" in caplog.text


def test_the_host_tag_names_the_machine_not_only_its_name() -> None:
    """The initial pid namespace has one inode on every Linux host: two hosts of one name would have matched."""
    name, machine, namespace = owner_tags()[HOST_TAG].split("/", 2)
    expected = Path("/etc/machine-id").read_text().strip() if Path("/etc/machine-id").exists() else ""
    assert (name, machine) == (socket.gethostname(), expected) and namespace.startswith(("pid:", ""))
