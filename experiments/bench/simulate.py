"""Wall time and peak memory of the main job, ``router-tuner simulate``, against loading its tapes alone.

Run: ``.venv/bin/python -m experiments.bench.simulate [--orders N] [--learners a,b] [--symbols S ...]
[--data DIR] [--repeats 1] [--save-json PATH] [--compare-json PATH]``

Each measurement is a fresh child process of this checkout's interpreter, timed around its life; its CPU
time (itself and the worker processes it reaped) is read back with ``os.wait4``, and its memory is the peak
of the summed proportional set size (PSS: a page shared by n processes counts 1/n in each) of the child and
every process under it, sampled from ``/proc`` every 50 ms in one more run of the same command (sampling costs
a fifth of a core, so the timed runs are not sampled):

- baseline: import the job's modules, load the configuration and the markets the job would replay,
  exit (what every run pays before routing a single order);
- job: ``python -m cli.main simulate --no-mlflow --json`` with the given options (workers: the job's
  default, one per CPU this process may use), into a temporary output folder;
- single process: the same job with ``--workers 1``.

Prints the three, the ratio job / baseline (wall time), the cores the job kept busy (CPU time / wall time)
and the job's memory against the single-process run's (peak PSS), and checks both jobs' results agree. The
job's JSON line without its output paths (``journal``, ``report``) is identified by its SHA-256, so runs of
two versions of the code with the same seed can be checked for identical results; ``--save-json`` writes
that line and ``--compare-json`` checks it exactly.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path

from router_tuner.router.market.binance import resolve_data_dir

REPO_ROOT = Path(__file__).resolve().parents[2]
_SAMPLE_S = 0.05
OUTPUT_PATH_KEYS = ("journal", "report")
"""Keys of the JSON line that name where this run wrote its files; they differ between runs by design."""

LOAD_ONLY = """
import sys
from router_tuner.config.loader import load_config
from router_tuner.simulation.job import SimulationOptions, load_markets
from router_tuner.simulation.learners import parse_learners
data, learners, symbols = sys.argv[1] or None, sys.argv[2], sys.argv[3:]
config = load_config()
options = SimulationOptions(symbols=tuple(symbols) or None, orders_per_symbol=1, seed=config.tuner.seed,
                            data_dir=data, learners=parse_learners(learners))
markets, source = load_markets(config, options)
print(source, len(markets), sum(m.tape.n_events for m in markets))
"""


@dataclass(frozen=True, slots=True)
class ChildRun:
    """One child process: wall seconds, CPU seconds (with its reaped workers), peak summed PSS in MB, stdout."""

    wall_s: float
    cpu_s: float
    peak_pss_mb: float
    stdout: str

    @property
    def busy_cores(self) -> float:
        return self.cpu_s / self.wall_s


def _children(pids: set[int]) -> set[int]:
    """``pids`` and every process whose parent is among them (one level; called repeatedly while sampling)."""
    out = set(pids)
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                with open(f"/proc/{entry.name}/stat", "rb") as fh:
                    ppid = int(fh.read().rsplit(b")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            if ppid in pids:
                out.add(int(entry.name))
    return out


def _pss_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/smaps_rollup", "rb") as fh:
            for line in fh:
                if line.startswith(b"Pss:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


class _PssSampler(threading.Thread):
    """Peak over time of the summed PSS of a process tree (the tree is re-read at every sample)."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self._root, self._done, self.peak_kb = pid, threading.Event(), 0

    def run(self) -> None:
        tree = {self._root}
        while not self._done.wait(_SAMPLE_S):
            tree = _children({self._root} | tree)
            self.peak_kb = max(self.peak_kb, sum(_pss_kb(pid) for pid in tree))

    def stop(self) -> int:
        self._done.set()
        self.join()
        return self.peak_kb


def run_child(argv: list[str], *, sample_memory: bool) -> ChildRun:
    """Run ``argv`` from the repository root; raise with its stderr tail when it fails. With ``sample_memory``
    the tree's PSS is sampled every ``_SAMPLE_S`` (reading smaps of an 800 MB tree every 50 ms costs a fifth of
    a core, so timed runs do not sample: their peak is reported as 0)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(argv, cwd=REPO_ROOT, stdout=out, stderr=err)
        sampler = _PssSampler(proc.pid) if sample_memory else None
        if sampler is not None:
            sampler.start()
        _pid, status, usage = os.wait4(proc.pid, 0)
        wall_s = time.perf_counter() - t0
        peak_kb = sampler.stop() if sampler is not None else 0
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(), err.read().decode()
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[:4])} ... exited with {proc.returncode}:\n{stderr[-2000:]}")
    return ChildRun(wall_s=wall_s, cpu_s=usage.ru_utime + usage.ru_stime, peak_pss_mb=peak_kb / 1024.0,
                    stdout=stdout)


def best_of(repeats: int, argv: list[str]) -> ChildRun:
    """The fastest of ``repeats`` timed runs, with the peak PSS of one more run that samples it."""
    fastest = min((run_child(argv, sample_memory=False) for _ in range(repeats)), key=lambda r: r.wall_s)
    sampled = run_child(argv, sample_memory=True)
    return replace(fastest, peak_pss_mb=sampled.peak_pss_mb)


def result_line(stdout: str) -> str:
    """The job's JSON line with the output paths removed, re-serialised canonically."""
    summary = json.loads(stdout.strip().splitlines()[-1])
    for key in OUTPUT_PATH_KEYS:
        summary.pop(key, None)
    return json.dumps(summary, sort_keys=True, separators=(",", ":"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=None,
                        help="orders per symbol (default: router.json simulation.intents.orders_per_symbol)")
    parser.add_argument("--learners", default=None, help="comma-separated learners (default: the job's default)")
    parser.add_argument("--symbols", nargs="+", default=None, help="our symbol names (default: every market)")
    parser.add_argument("--data", default=None, help="recorded data folder (default: see the binance loader)")
    parser.add_argument("--repeats", type=int, default=1, help="runs of each child; the fastest is reported")
    parser.add_argument("--save-json", type=Path, default=None, help="write the job's JSON line (paths removed)")
    parser.add_argument("--compare-json", type=Path, default=None,
                        help="exit 1 unless the job's JSON line (paths removed) equals this file's")
    args = parser.parse_args()
    if args.repeats < 1:
        raise SystemExit(f"--repeats must be >= 1, got {args.repeats}")
    data_dir = resolve_data_dir(args.data)
    data = "" if data_dir is None else str(data_dir.resolve())
    learners_arg = args.learners
    if learners_arg is None:
        from router_tuner.simulation.learners import LEARNERS
        learners_arg = ",".join(LEARNERS)
    symbols = list(args.symbols or [])

    baseline = best_of(args.repeats, [sys.executable, "-c", LOAD_ONLY, data, learners_arg, *symbols])
    source, n_markets, n_events = baseline.stdout.split()
    with tempfile.TemporaryDirectory() as out_dir:
        job_argv = [sys.executable, "-m", "router_tuner.cli.main", "simulate", "--no-mlflow", "--json", "--out",
                    out_dir,
                    "--learners", learners_arg]
        job_argv += ["--data", data] if data else []
        job_argv += ["--orders", str(args.orders)] if args.orders is not None else []
        job_argv += ["--symbols", *symbols] if symbols else []
        job = best_of(args.repeats, job_argv)
        single = best_of(args.repeats, [*job_argv, "--workers", "1"])
    line = result_line(job.stdout)
    orders = json.loads(line)["orders_per_symbol"]
    print(f"checkout {REPO_ROOT}; data {source}: {n_markets} markets, {int(n_events):,} market events; "
          f"{orders} orders per symbol, learners {learners_arg}; {len(os.sched_getaffinity(0))} CPUs; "
          f"best of {args.repeats}")
    print(f"{'':34}{'wall s':>10}{'CPU s':>10}{'busy cores':>12}{'peak PSS MB':>14}")
    for name, run in (("baseline: load the tapes", baseline), ("job: router-tuner simulate", job),
                      ("single process: --workers 1", single)):
        print(f"{name:34}{run.wall_s:10.2f}{run.cpu_s:10.2f}{run.busy_cores:12.2f}{run.peak_pss_mb:14.0f}")
    print(f"ratio job / baseline (wall): {job.wall_s / baseline.wall_s:.2f}x; job / single process: wall "
          f"{job.wall_s / single.wall_s:.2f}x, peak PSS {job.peak_pss_mb / single.peak_pss_mb:.2f}x")
    same = result_line(single.stdout) == line
    print(f"job and single process results identical: {same}")
    if not same:
        raise SystemExit(1)
    print(f"result sha256 (JSON line without {', '.join(OUTPUT_PATH_KEYS)}): "
          f"{hashlib.sha256(line.encode()).hexdigest()}")
    if args.save_json is not None:
        args.save_json.write_text(line + "\n")
    if args.compare_json is not None:
        expected = args.compare_json.read_text().strip()
        same = expected == line
        print(f"identical to {args.compare_json}: {same}")
        if not same:
            raise SystemExit(1)


if __name__ == "__main__":
    main()
