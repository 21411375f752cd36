"""Which process owns an MLflow run, and the runs whose process is gone.

A process killed with SIGKILL (or a crash of the machine) leaves its MLflow runs ``RUNNING`` for good: MLflow
ends a run only when the process says so. Every run this package creates carries :func:`owner_tags` (host and pid
namespace, pid and the process's start, read from ``/proc``), and :func:`end_orphaned_runs`, called whenever a
command opens the experiment (:func:`tuner.registry.ensure_experiment`), marks ``KILLED`` the ``RUNNING`` runs whose
owner is provably gone: same host and pid namespace (a container of the same name sees other pids), and the pid is
not running, or is a zombie, or is another process (another start time, or another boot). A run of another host or
container, of a live process or without these tags (another tool's) is left alone.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Mapping
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

HOST_TAG = "router_tuner.host"
"""``<host name>/<machine id>/<pid namespace>`` of the owning process (the machine id from ``/etc/machine-id``: the
initial pid namespace has one inode on every Linux host, so two hosts of one name sharing a tracking server would
otherwise judge each other's runs; each part empty where it cannot be read)."""
PID_TAG = "router_tuner.pid"
STARTED_TAG = "router_tuner.process_start"
"""``<boot id>/<start time in clock ticks since boot>`` of the owning process; empty where ``/proc`` is not."""


def process_start(pid: int) -> str | None:
    """``<boot id>/<start ticks>`` of process ``pid``, ``""`` when it runs but cannot be read (no ``/proc``, or another
    user's process under ``/proc`` mounted ``hidepid``), ``None`` when no such process runs (absent, or a zombie:
    killed, not yet reaped)."""
    try:
        os.kill(pid, 0)
        ours = True
    except ProcessLookupError:
        return None
    except PermissionError:  # another user's: it exists, and hidepid may hide its /proc entry
        ours = False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except FileNotFoundError:  # ours gone meanwhile, or a system without /proc
        return None if ours and Path("/proc/self/stat").exists() else ""
    except OSError:  # unreadable: it runs, and we cannot tell which process it is
        return ""
    fields = stat[stat.rindex(")") + 2:].split()  # the name in parentheses may hold spaces
    if fields[0] in ("Z", "X"):
        return None
    return f"{boot}/{fields[19]}"  # field 22 of stat, starttime


def _host() -> str:
    """This host, machine and pid namespace: where a recorded pid means the same process."""
    try:
        namespace = os.readlink("/proc/self/ns/pid")
    except OSError:
        namespace = ""
    try:
        machine = Path("/etc/machine-id").read_text().strip()
    except OSError:
        machine = ""
    return f"{socket.gethostname()}/{machine}/{namespace}"


def owner_tags() -> dict[str, str]:
    """The tags that let a later command tell this process is gone."""
    return {HOST_TAG: _host(), PID_TAG: str(os.getpid()), STARTED_TAG: process_start(os.getpid()) or ""}


def owner_gone(tags: Mapping[str, str]) -> bool:
    """True only when the run's owner ran on this host (and pid namespace) and that process no longer runs."""
    if tags.get(HOST_TAG) != _host() or not tags.get(PID_TAG, "").isdigit():
        return False
    started = process_start(int(tags[PID_TAG]))
    if started is None:
        return True
    recorded = tags.get(STARTED_TAG, "")
    return bool(started and recorded) and started != recorded


def end_orphaned_runs(client: Any, experiment_id: str) -> list[str]:
    """Mark ``KILLED`` the experiment's ``RUNNING`` runs whose owning process is gone; returns their ids.

    Best effort: a run that cannot be marked (deleted meanwhile, a store refusing) is left as it is and logged; the
    command that opened the experiment goes on."""
    running = client.search_runs([experiment_id], filter_string=f"attributes.status = 'RUNNING' and "
                                                               f"tags.`{HOST_TAG}` = '{_host()}'",
                                 max_results=50_000)
    ended = []
    for run in running:
        if not owner_gone(run.data.tags):
            continue
        try:
            client.set_terminated(run.info.run_id, status="KILLED")
        except Exception as error:  # any store error: the run stays RUNNING, nothing else depends on it
            logger.warning("MLflow: run %s of a process that is gone left RUNNING (%s: %s)", run.info.run_id,
                           type(error).__name__, error)
            continue
        ended.append(run.info.run_id)
    return ended
