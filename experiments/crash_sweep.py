"""Crash sweep of paper ``live``: kill -9 at every write site of one run, restart, check nothing was lost or doubled.

``.venv/bin/python -m experiments.crash_sweep [--intents 30] [--modes tuner,rollback,static] [--jobs 2]
[--sites SUBSTRINGS] [--stride K] [--out DIR]``

For each mode (``live --policy-source tuner`` publishing to a fresh SQLite MLflow store, v1 after 15 outcomes and
v2 after 30; ``rollback``, the same with a rollback window so v2 is the tuner's rollback, made champion at once;
``--policy-source static``; ``stops``, static with a protective stop-loss and take-profit) one uninterrupted run
counts the calls of every function that persists something (``SITES``: journal and executor-store transactions,
the paper account file, the tuner checkpoint's files, MLflow client writes and the SQLAlchemy commits under them).
Then, for each site and N in {1, 2, the middle call, the last call}, the same command on fresh files is killed
with SIGKILL right after the Nth call returns (as ``tests/cli/crash_at.py`` does), restarted once armed at the
same site's first call (a kill during recovery) and, if that one died too, restarted again to completion. After
the completed restart it checks:

* exit 0 and no traceback on stderr (a refusal is reported with its last stderr line);
* every intent of the intents file journaled exactly once, done (router event) or vetoed, and every store
  submission done;
* no client order id sent twice to the paper venue (every ``place_order`` of every run is logged);
* the journal's positions (replayed from its fills) equal the paper account file's;
* the tuner learned each router event once: the checkpoint's ``router_events_learned`` equals the journal's
  router events and its learners' outcome counts equal the journal's learnable events;
* MLflow (tuner mode): each model's versions numbered 1..k, every alias on an existing version, the champion with
  a gate record, no run left ``RUNNING``.

Prints one row per (site, N): ``ok`` (with the registry's versions and aliases when they differ from the
uninterrupted run's: an intent cut off before its order went out ends unfilled, at most once, and a route cut
off mid-way ends at recovery with the fills it had, so the tuner learns other outcomes and may publish other
versions), the violated invariant(s), or ``refused: <line>``. Scratch goes under ``--out`` (default
``/tmp/crash_sweep``), one folder per point, deleted when the point is ok.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import functools
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from tests.cli.crash_at import kill_after, wrap_after

ROOT = Path(__file__).resolve().parents[1]
SYMBOL = "BTCUSDT"
MODEL = "router-policy-BTCUSDT"
STOP_BPS = 8.0  # the stops mode's stop-loss and take-profit distance (above the 5 bps taker fee): some trigger

# every function of the live path that persists something (a kill right after one returns is a crash point)
SITES = (
    "router_tuner.executor.journal:Journal._open_writer",
    "router_tuner.executor.journal:Journal.append_many",
    "router_tuner.executor.journal:Journal.quarantine",
    "router_tuner.executor.store:ExecutorStore._open_writer",
    "router_tuner.executor.store:ExecutorStore.record_submission",
    "router_tuner.executor.store:ExecutorStore.record_stop",
    "router_tuner.executor.store:ExecutorStore.close_stop",
    "router_tuner.executor.store:ExecutorStore.append_health",
    "router_tuner.executor.store:ExecutorStore.append_alert",
    "router_tuner.executor.paper_account:write_bytes_atomic",
    "router_tuner.executor.adaptive.checkpoint:write_bytes_atomic",
    "router_tuner.tuner.state:write_bytes_atomic",
    "router_tuner.tuner.service.tuner_service:write_bytes_atomic",
    "mlflow:MlflowClient.create_experiment",
    "mlflow:MlflowClient.create_run",
    "mlflow:MlflowClient.log_batch",
    "mlflow:MlflowClient.log_artifact",
    "mlflow:MlflowClient.log_artifacts",
    "mlflow:MlflowClient.log_dict",
    "mlflow:MlflowClient.set_tag",
    "mlflow:MlflowClient.set_terminated",
    "mlflow:MlflowClient.create_registered_model",
    "mlflow:MlflowClient.create_model_version",
    "mlflow:MlflowClient.set_model_version_tag",
    "mlflow:MlflowClient.set_registered_model_alias",
    "mlflow:MlflowClient.set_registered_model_tag",
    "mlflow:MlflowClient.delete_registered_model_tag",
    # MLflow's SQLite store commits through SQLAlchemy: a kill between two commits of one client call
    "sqlalchemy.orm.session:Session.commit",
)
SENT_SITE = "router_tuner.executor.paper_account:PaperAccount.place_order"


# --- the child: router-tuner with counted (and maybe armed) sites ----------------------------------------------

def _child(argv: list[str]) -> int:
    """``_child SENT_LOG COUNTS_OUT|- SPEC|- N -- ARGS``: run router-tuner ARGS, logging every order sent."""
    sent_log, counts_out, spec, after, _, *args = argv
    sent = os.open(sent_log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def log_sent(call_args: tuple, _kwargs: dict) -> None:
        os.write(sent, (call_args[1].client_order_id + "\n").encode())  # in the kernel before any kill

    wrap_after(SENT_SITE, log_sent)
    counts: Counter[str] = Counter()
    if counts_out != "-":
        for site in SITES:
            wrap_after(site, lambda _a, _k, site=site: counts.update([site]))
    if spec != "-":
        kill_after(spec, int(after))
    from router_tuner.cli.main import main

    try:
        return main(args)
    finally:
        if counts_out != "-":
            Path(counts_out).write_text(json.dumps(counts))


# --- the sweep ----------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Mode:
    name: str
    intents: int

    @property
    def tuned(self) -> bool:
        """Routing with the tuner (publishing to MLflow), not the static knobs."""
        return self.name in ("tuner", "rollback")

    def argv(self, run: Path) -> list[str]:
        argv = ["live", "--venue", "binanceusdm", "--config", str(run / "config"), "--intents",
                str(run / "intents.jsonl"), "--journal", str(run / "journal.sqlite"), "--store",
                str(run / "executor.sqlite"), "--idle-poll-s", "0.02", "--seed", "5"]
        if not self.tuned:
            return [*argv, "--policy-source", "static"]
        return [*argv, "--policy-source", "tuner", "--tuner-state", str(run / "state" / "tuner_state.json")]


def _prepare(base: Path, mode: Mode) -> None:
    """Config, intents and an empty migrated MLflow store, copied into every point's folder."""
    from mlflow import MlflowClient

    from tests.conftest import edit_config
    from tests.executor.adaptive.live_adaptive_support import paper_tuner_files

    shutil.rmtree(base, ignore_errors=True)
    base.mkdir(parents=True)
    config = paper_tuner_files(base, mode.intents, rollback=mode.name == "rollback")
    if mode.name == "stops":  # static, with a protective stop-loss and take-profit on every position
        edit_config(config, "executor.json", lambda d: d["protective_stops"].update(stop_loss_bps=STOP_BPS,
                                                                                    take_profit_bps=STOP_BPS))
    if mode.tuned:
        MlflowClient(tracking_uri=f"sqlite:///{base / 'mlflow.db'}").search_experiments()


def _fresh(base: Path, run: Path) -> None:
    shutil.rmtree(run, ignore_errors=True)
    shutil.copytree(base, run)


def _run(run: Path, mode: Mode, tag: str, *, spec: str = "-", after: int = 0,
         counts: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{run / 'mlflow.db'}", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-m", "experiments.crash_sweep", "_child", str(run / "sent.log"),
                           str(counts) if counts else "-", spec, str(after), "--", *mode.argv(run)],
                          cwd=ROOT, capture_output=True, text=True, timeout=300, env=env)
    (run / f"{tag}.out").write_text(proc.stdout)
    (run / f"{tag}.err").write_text(proc.stderr)
    return proc


def _last_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[-1][:300] if lines else "(no output)"


def check(run: Path, mode: Mode) -> list[str]:
    """The invariants a completed run must meet (empty when all hold)."""
    from router_tuner.config.loader import load_config
    from router_tuner.executor.adaptive.checkpoint import TunerCheckpoint
    from router_tuner.executor.journal import Journal
    from router_tuner.executor.reconcile import replay_journal
    from router_tuner.executor.store import ExecutorStore
    from router_tuner.tuner.factory import build_reward_filter
    from router_tuner.tuner.service.publish import InMemoryPublisher

    problems: list[str] = []
    wanted = [json.loads(line)["intent_id"] for line in (run / "intents.jsonl").read_text().splitlines()]
    with Journal(run / "journal.sqlite", readonly=True) as journal:
        events = list(journal.read("router"))
        vetoes = list(journal.read("veto"))
        trades = list(journal.read("trade"))
        journaled = Counter([e.intent_id for e in events] + [v.intent.intent_id for v in vetoes])
    if missing := [i for i in wanted if journaled[i] == 0]:
        problems.append(f"intents not journaled: {missing[:5]} ({len(missing)})")
    if doubled := sorted(i for i, n in journaled.items() if n > 1):
        problems.append(f"intents journaled twice: {doubled[:5]}")
    if extra := sorted(set(journaled) - set(wanted)):
        problems.append(f"journaled intents not in the file: {extra[:5]}")
    with ExecutorStore(run / "executor.sqlite", readonly=True) as store:
        submissions = store.submissions()
    if undone := sorted(set(submissions) - {e.intent_id for e in events}):
        problems.append(f"submissions without a router event: {undone[:5]}")
    sent = Counter((run / "sent.log").read_text().split()) if (run / "sent.log").exists() else Counter()
    if twice := sorted(cid for cid, n in sent.items() if n > 1):
        problems.append(f"client order ids sent twice: {twice[:5]}")
    replayed = replay_journal(router_events=events, vetoes=vetoes, trades=trades, submissions=submissions,
                              wallet_balance_usd=0.0, now_ns=0)
    ours = {f"{s}/{side}": round(leg.qty, 9) for (s, side), leg in replayed.portfolio.legs.items()
            if abs(leg.qty) > 1e-12}
    account = json.loads((run / "executor.paper.json").read_text())
    venue = {f"{s}/{side}": round(qty, 9) for s, sides in account["positions"].items() for side, qty in sides.items()
             if abs(qty) > 1e-12}
    if ours != venue:
        problems.append(f"positions: journal {ours}, paper account {venue}")
    if not mode.tuned:
        return problems
    config = load_config(run / "config")
    checkpoint = TunerCheckpoint(run / "state" / "tuner_state.json")
    manifest = checkpoint.manifest
    if manifest is None or manifest.router_events_learned != len(events):
        problems.append(f"tuner learned {manifest and manifest.router_events_learned} router events, "
                        f"journal holds {len(events)}")
    else:
        budget = checkpoint.restore(config, [SYMBOL], InMemoryPublisher()).service.tuner(SYMBOL).to_state().budget
        reward_filter = build_reward_filter(config.tuner)
        learnable = Counter(e.arm for e in events if reward_filter.reward_from_event(e) is not None)
        learned = Counter({arm: n for arm, n in budget.cost_n.items() if n})
        if learned != learnable:
            problems.append(f"tuner outcomes per arm {dict(learned)} != journal's learnable {dict(learnable)}")
    return problems + _check_mlflow(run)


def _check_mlflow(run: Path) -> list[str]:
    from mlflow import MlflowClient

    from router_tuner.tuner.gate_record import gate_problem

    problems = []
    client = MlflowClient(tracking_uri=f"sqlite:///{run / 'mlflow.db'}")
    for model in client.search_registered_models():
        versions = {int(v.version): v for v in client.search_model_versions(f"name='{model.name}'")}
        if sorted(versions) != list(range(1, len(versions) + 1)):
            problems.append(f"{model.name}: versions {sorted(versions)}")
        for alias, version in model.aliases.items():
            if int(version) not in versions:
                problems.append(f"{model.name}: alias {alias} on missing version {version}")
        champion = model.aliases.get("champion")
        if champion is not None and (problem := gate_problem(client.get_model_version(model.name, champion).tags)):
            problems.append(f"{model.name}: champion v{champion}: {problem}")
        if versions and champion is None:
            problems.append(f"{model.name}: {len(versions)} versions, no champion")
    for experiment in client.search_experiments():
        running = [r.info.run_id for r in client.search_runs([experiment.experiment_id])
                   if r.info.status == "RUNNING"]
        if running:
            problems.append(f"runs left RUNNING: {running}")
    return problems


def _mlflow_summary(run: Path) -> str:
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{run / 'mlflow.db'}")
    try:
        model = client.get_registered_model(MODEL)
    except Exception:  # no model registered
        return "no model"
    count = len(client.search_model_versions(f"name='{MODEL}'"))
    return f"{count} versions, aliases {dict(sorted(model.aliases.items()))}"


@dataclass
class Point:
    mode: Mode
    site: str
    after: int
    outcome: str = ""
    runs: str = ""
    seconds: float = 0.0


def run_point(base: Path, out: Path, point: Point, *, baseline: str) -> Point:
    started = time.monotonic()
    run = out / point.mode.name / f"{label(point.site)}-{point.after}"
    _fresh(base, run)
    killed = _run(run, point.mode, "run1", spec=point.site, after=point.after)
    runs = [killed.returncode]
    if killed.returncode != -signal.SIGKILL:
        point.outcome = f"not reached (exit {killed.returncode}: {_last_line(killed.stderr)})"
    else:
        # the restart is armed at the same site's first call: a kill during recovery, then one to completion
        again = _run(run, point.mode, "run2", spec=point.site, after=1)
        runs.append(again.returncode)
        final = again
        if again.returncode == -signal.SIGKILL:
            final = _run(run, point.mode, "run3")
            runs.append(final.returncode)
        if final.returncode != 0:
            point.outcome = f"refused (exit {final.returncode}): {_last_line(final.stderr)}"
        elif "Traceback" in final.stderr:
            point.outcome = f"traceback: {_last_line(final.stderr)}"
        else:
            try:
                problems = check(run, point.mode)
            except Exception as error:  # a check that cannot read the files is a finding too
                problems = [f"check failed: {type(error).__name__}: {error}"]
            point.outcome = "ok" if not problems else "VIOLATED: " + "; ".join(problems)
            if point.mode.tuned and not problems and (summary := _mlflow_summary(run)) != baseline:
                # not a violation: an intent cut off before its order went out ends unfilled (at most once), a route
                # cut off ends with the fills it had: other outcomes, so maybe other versions
                point.outcome = f"ok (registry: {summary}; uninterrupted: {baseline})"
    point.runs = ",".join(str(code) for code in runs)
    point.seconds = time.monotonic() - started
    if point.outcome.startswith("ok"):
        shutil.rmtree(run, ignore_errors=True)
    return point


def label(site: str) -> str:
    """``module.Qual.name`` without the package path: ``paper_account.write_bytes_atomic``."""
    module, _, qualname = site.partition(":")
    return f"{module.rsplit('.', 1)[-1]}.{qualname}"


def _points_of(counts: dict[str, int], only: list[str] | None, stride: int) -> list[tuple[str, int]]:
    """1, 2, the middle and the last call of each site called (every ``stride``-th call too, if given)."""
    points = []
    for site in SITES:
        total = counts.get(site, 0)
        if total and (not only or any(word in site for word in only)):
            every = set(range(1, total + 1, stride)) if stride else set()
            points += [(site, n) for n in sorted({1, 2, (total + 1) // 2, total} | every) if n <= total]
    return points


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m experiments.crash_sweep", description=__doc__.splitlines()[0])
    parser.add_argument("--intents", type=int, default=30, help="intents (round trips of BTCUSDT) per run")
    parser.add_argument("--modes", default="tuner,rollback,static",
                        help="comma-separated: tuner, rollback (the tuner rolling back to the static knobs), static, "
                        "stops (static with protective stops)")
    parser.add_argument("--jobs", type=int, default=2, help="points run at once")
    parser.add_argument("--out", type=Path, default=Path("/tmp/crash_sweep"), help="scratch folder")
    parser.add_argument("--sites", default="", help="comma-separated substrings: only the sites matching one")
    parser.add_argument("--stride", type=int, default=0, help="also kill at every STRIDE-th call of each site")
    args = parser.parse_args(argv)
    started = time.monotonic()
    rows: list[Point] = []
    for name in args.modes.split(","):
        mode = Mode(name, args.intents)
        base = args.out / name / "base"
        _prepare(base, mode)
        whole = args.out / name / "uninterrupted"
        _fresh(base, whole)
        counts_file = whole / "counts.json"
        first = _run(whole, mode, "run1", counts=counts_file)
        if first.returncode != 0:
            print(f"{name}: the uninterrupted run failed (exit {first.returncode}): {_last_line(first.stderr)}")
            return 1
        if problems := check(whole, mode):
            print(f"{name}: the uninterrupted run already violates: {problems}")
        baseline = _mlflow_summary(whole) if mode.tuned else ""
        counts = json.loads(counts_file.read_text())
        print(f"{name}: uninterrupted run: {baseline or 'no MLflow'}; calls per site: "
              + ", ".join(f"{label(site)}={n}" for site, n in counts.items()), flush=True)
        points = [Point(mode, site, n) for site, n in _points_of(counts, [s for s in args.sites.split(",") if s],
                                                                       args.stride)]
        with concurrent.futures.ThreadPoolExecutor(max_workers=args.jobs) as pool:
            for point in pool.map(functools.partial(run_point, base, args.out, baseline=baseline), points):
                rows.append(point)
                print(f"{name:6} {label(point.site):50} {point.after:4}  [{point.runs:>11}] "
                      f"{point.seconds:5.1f}s  {point.outcome}", flush=True)
    bad = [p for p in rows if not p.outcome.startswith("ok")]
    print(f"\n{len(rows)} points, {len(rows) - len(bad)} ok, {len(bad)} not ok, "
          f"{time.monotonic() - started:.0f} s")
    for point in bad:
        print(f"  {point.mode.name} {point.site} N={point.after}: {point.outcome}")
    return 0 if not bad else 1


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "_child":
        sys.exit(_child(sys.argv[2:]))
    sys.exit(main())
