"""Crash points: a real ``router-tuner`` process killed (SIGKILL) between two of its steps, then the same command
run again. What was left must be the previous complete output or the new complete one, and the rerun must
succeed with the result an uninterrupted run gives. The kill is placed by ``tests/cli/crash_at.py`` (the process
kills itself right after the Nth call of a function returns), so each case is deterministic and takes seconds.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
from mlflow import MlflowClient

from router_tuner.config.loader import DEFAULTS_DIR, FILES, load_config
from router_tuner.router.atomic_file import atomic_path, write_bytes_atomic
from router_tuner.router.policy import RouterPolicy
from router_tuner.tuner.gate_record import FORCED_BY_TAG, gate_problem
from router_tuner.tuner.registry import (
    CHAMPION_HISTORY_TAG,
    DEPLOYMENT_MODE_TAG,
    PREVIOUS_CHAMPION_TAG,
    PolicyRegistry,
)
from tests.conftest import default_registry, edit_config

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


def _fast_publishing(tmp_path: Path) -> Path:
    """The defaults with a tuner that publishes a version every 15 outcomes after 10 (as in
    tests/simulation/test_simulate_mlflow.py), so 60 orders register two or more versions."""
    config = tmp_path / "config"
    shutil.copytree(DEFAULTS_DIR, config)
    edit_config(config, "router.json", lambda d: d["static_policy"].update(maker_offset_bps=4.0))
    edit_config(config, "tuner.json", lambda d: (d["learner_params"].update(burn_in_per_arm=1),
                                                 d["guardrails"].update(min_outcomes_before_move=10),
                                                 d["publish"].update(every_n_outcomes=15)))
    return config


def test_simulate_killed_while_registering_versions_leaves_nothing_part_registered_and_the_rerun_completes(
        tmp_path: Path) -> None:
    """A simulate killed between two versions of a model left it holding the first ones, listed by `policy list
    --simulation` like a finished simulation's (later marked part-registered). The versions are now registered
    under a staging model that no listing shows, and put in place only once whole."""
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}"}
    config = _fast_publishing(tmp_path)
    argv = ["simulate", "--config", str(config), "--orders", "60", "--symbols", "BTCUSDT", "--learners", "structured",
            "--workers", "1", "--shadow-symbols", "--out", str(tmp_path / "out"), "--json"]
    if (data := ROOT.parent / "shared" / "data" / "binance").is_dir():
        argv += ["--data", str(data)]
    listing = ["policy", "list", "--simulation", "--json", "--config", str(config)]
    killed = crash_at("router_tuner.tuner.registry:PolicyRegistry.publish", 1, *argv, env=env)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-500:]
    left = router_tuner(*listing, env=env)
    assert left.returncode == 0 and json.loads(left.stdout) == [] and "PART-REGISTERED" not in left.stderr
    # the killed simulate's run stayed RUNNING for good: the listing, the next to open the experiment, ends it
    said = [line for line in left.stderr.splitlines() if "KILLED" in line]
    assert len(said) == 1 and "marked 1 run(s) of experiment router-tuner KILLED" in said[0], left.stderr[-500:]
    client = MlflowClient(tracking_uri=env["MLFLOW_TRACKING_URI"])
    runs = client.search_runs([client.get_experiment_by_name("router-tuner").experiment_id])
    assert [r.info.status for r in runs if r.data.tags.get("job") == "simulate"] == ["KILLED"]
    assert "RUNNING" not in {r.info.status for r in runs}
    rerun = router_tuner(*argv, env=env)
    assert rerun.returncode == 0, rerun.stderr[-500:]
    registered = json.loads(rerun.stdout.strip().splitlines()[-1])["policy_versions"][0]["registered_versions"]
    assert registered >= 2
    listed = router_tuner(*listing, env=env)
    assert listed.returncode == 0 and "PART-REGISTERED" not in listed.stderr
    versions = json.loads(listed.stdout)
    assert [v["version"] for v in versions] == list(range(registered, 0, -1))  # every version once, in order
    assert not any(v["part_registered"] for v in versions)
    assert _model_names(tmp_path / "mlflow.db") == ["sim-router-policy-structured-BTCUSDT"]  # no staging left


def _model_names(store: Path) -> list[str]:
    return sorted(m.name for m in MlflowClient(tracking_uri=f"sqlite:///{store}").search_registered_models())


def _simulate_argv(tmp_path: Path, *extra: str) -> list[str]:
    argv = ["simulate", "--orders", "30", "--symbols", "BTCUSDT", "--learners", "structured", "--shadow-symbols",
            "--out", str(tmp_path / "out"), "--json", *extra]
    if (data := ROOT.parent / "shared" / "data" / "binance").is_dir():
        argv += ["--data", str(data)]
    return argv


def _journal_rows(path: Path) -> tuple[dict[str, int], str]:
    """Rows per kind and a digest of every row's kind, symbol, intent and payload, in order."""
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        counts = dict(db.execute("SELECT kind, count(*) FROM events GROUP BY kind").fetchall())
        digest = hashlib.sha256()
        for row in db.execute("SELECT kind, symbol, intent_id, payload FROM events ORDER BY id"):
            digest.update(repr(row).encode())
        return counts, digest.hexdigest()
    finally:
        db.close()


def test_simulate_killed_while_writing_its_journal_keeps_the_previous_one_and_the_rerun_clears_the_leftovers(
        tmp_path: Path) -> None:
    """The journal's temporary (with its -wal, -shm and .lock) stayed beside the journal after a kill -9, one set
    per killed run, never deleted (a full run's journal is hundreds of MB): the next run now deletes it."""
    argv = _simulate_argv(tmp_path, "--no-mlflow", "--workers", "1")
    first = router_tuner(*argv)
    assert first.returncode == 0, first.stderr[-500:]
    journal = tmp_path / "out" / "simulation.sqlite"
    before = _journal_rows(journal)
    killed = crash_at("router_tuner.executor.journal:Journal.append_many", 1, *argv)
    assert killed.returncode == -signal.SIGKILL
    left = sorted(p.name for p in journal.parent.iterdir() if p.name.startswith(".simulation.sqlite."))
    assert left and all(name.endswith((".tmp", ".tmp-wal", ".tmp-shm", ".tmp.lock")) for name in left)
    assert _journal_rows(journal) == before  # the previous journal, whole
    rerun = router_tuner(*argv)
    assert rerun.returncode == 0, rerun.stderr[-500:]
    assert sorted(p.name for p in journal.parent.iterdir()) == ["report", "simulation.sqlite"]
    assert _journal_rows(journal) == before
    assert json.loads(rerun.stdout.splitlines()[-1])["symbols"] == json.loads(first.stdout.splitlines()[-1])["symbols"]


def test_simulate_killed_between_its_report_documents_never_leaves_one_of_the_previous_run(tmp_path: Path) -> None:
    """Killed after report.html, before report.md: this run's page and journal sat beside the previous run's
    report.md (seed 1's numbers), every file whole and nothing saying so. Now the previous documents go first."""
    argv = _simulate_argv(tmp_path, "--no-mlflow", "--workers", "1")
    assert router_tuner(*argv, "--seed", "1").returncode == 0
    report = tmp_path / "out" / "report"
    killed = crash_at("router_tuner.simulation.report.page:write_bytes_atomic", 2, *argv, "--seed", "2")
    assert killed.returncode == -signal.SIGKILL
    assert "Seed 2," in (report / "report.html").read_text() and not (report / "report.md").exists()
    rerun = router_tuner(*argv, "--seed", "2")
    assert rerun.returncode == 0, rerun.stderr[-500:]
    assert "Seed 2," in (report / "report.md").read_text()
    assert sorted(p.name for p in report.iterdir()) == ["plotly.min.js", "report.html", "report.md"]

def test_a_live_writers_temporary_is_never_taken_for_a_killed_ones(tmp_path: Path) -> None:
    target = tmp_path / "state.json"
    with atomic_path(target) as outer:
        outer.write_bytes(b"outer")
        write_bytes_atomic(target, b"inner")  # cleans up around it, but the outer writer holds its temporary
        assert outer.read_bytes() == b"outer"
    assert target.read_bytes() == b"outer"
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]


@pytest.fixture
def store(tmp_path: Path) -> str:
    """Three BTCUSDT versions under tuner.json's model prefix: v1 champion (initial), v3 challenger."""
    uri = f"sqlite:///{tmp_path / 'store.db'}"
    registry = default_registry(uri)
    base = RouterPolicy.from_static("BTCUSDT", load_config().router, policy_id="tuner-BTCUSDT")
    for n in (1, 2, 3):
        registry.publish(replace(base, version=n, arm=f"o{n:.2f}_b0.00", maker_offset_bps=float(n)),
                         params={"learner": "thompson"}, metrics={"cost_bps": 3.0 - n}, config_snapshot={})
    return uri


def _model(uri: str) -> tuple[dict[str, str], dict[str, str]]:
    """The model's tags and its aliases."""
    model = MlflowClient(tracking_uri=uri).get_registered_model("router-policy-BTCUSDT")
    return dict(model.tags), {alias: str(version) for alias, version in model.aliases.items()}


@pytest.mark.parametrize("step", ["mlflow:MlflowClient.set_registered_model_alias",
                                  "mlflow:MlflowClient.set_model_version_tag",
                                  "mlflow:MlflowClient.set_registered_model_tag"])
def test_promote_force_killed_between_its_steps_is_ended_by_the_same_command(store: str, step: str) -> None:
    """Killed after moving the alias, before (all of) who and why: the champion had no gate record (not acted
    on), and the same command failed ("version 3 is already the champion", exit 1). Killed after the history
    tag, before the alias: the rerun listed the old champion twice (a later rollback moved nothing)."""
    argv = ["policy", "promote", "--symbol", "BTCUSDT", "--force", "--who", "ops", "--why", "drill",
            "--tracking-uri", store]
    assert crash_at(step, 1, *argv).returncode == -signal.SIGKILL
    rerun = router_tuner(*argv)
    assert rerun.returncode == 0, rerun.stderr[-500:]
    tags, aliases = _model(store)
    assert aliases == {"champion": "3", "challenger": "3"}
    assert tags[CHAMPION_HISTORY_TAG] == "1" and tags[PREVIOUS_CHAMPION_TAG] == "1"
    record = MlflowClient(tracking_uri=store).get_model_version("router-policy-BTCUSDT", "3").tags
    assert gate_problem(record) is None and record[FORCED_BY_TAG] == "ops"


def test_go_live_killed_after_its_first_tag_keeps_who_and_why(store: str) -> None:
    """The mode tag was written first: killed after it, the symbol was live without who and why, and the rerun
    said "already live; nothing changed"."""
    argv = ["policy", "go-live", "--symbol", "BTCUSDT", "--who", "ops", "--why", "drill", "--tracking-uri", store]
    assert crash_at("mlflow:MlflowClient.set_registered_model_tag", 1, *argv).returncode == -signal.SIGKILL
    assert _model(store)[0].get(DEPLOYMENT_MODE_TAG) is None  # not live before its record is whole
    assert router_tuner(*argv).returncode == 0
    tags, _ = _model(store)
    assert (tags[DEPLOYMENT_MODE_TAG], tags["go_live_by"], tags["go_live_why"]) == ("live", "ops", "drill")


def test_journal_export_killed_before_its_rename_keeps_the_previous_file_and_the_rerun_clears_the_temporary(
        journal_path: Path, tmp_path: Path) -> None:
    out = tmp_path / "router.parquet"
    argv = ["journal", "export", "--journal", str(journal_path), "--kind", "router", "--out", str(out)]
    assert router_tuner(*argv).returncode == 0
    previous = out.read_bytes()
    assert crash_at("pyarrow.parquet:write_table", 1, *argv).returncode == -signal.SIGKILL
    assert out.read_bytes() == previous and len(list(tmp_path.glob(".router.parquet.*.tmp"))) == 1
    assert router_tuner(*argv).returncode == 0
    assert out.read_bytes() == previous and not list(tmp_path.glob(".router.parquet.*"))


def test_partitioned_export_killed_midway_leaves_no_dataset_and_the_rerun_clears_the_staging_folder(
        journal_path: Path, tmp_path: Path) -> None:
    """The hidden staging folder of a killed export (as large as the part written) stayed beside the dataset for
    good, one per killed run; the next export to the same folder now deletes it."""
    root = tmp_path / "dataset"
    argv = ["journal", "export", "--journal", str(journal_path), "--kind", "router", "--partitioned", str(root),
            "--json"]
    assert crash_at("pyarrow.parquet:write_table", 1, *argv).returncode == -signal.SIGKILL
    assert not root.exists() and len(list(tmp_path.glob(".dataset.*"))) == 1
    scored = router_tuner("ope-dataset", "--dataset", str(root), "--candidate", "o1.00_b0.00")
    assert scored.returncode == 2 and scored.stderr.strip() == f"router-tuner ope-dataset: no dataset folder at {root}"
    rerun = router_tuner(*argv)
    assert rerun.returncode == 0, rerun.stderr[-500:]
    assert json.loads(rerun.stdout)["rows"] == 3
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith((".dataset", "dataset"))) == ["dataset"]


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
        except (OSError, IndexError, ValueError):
            continue
    return found


def _alive(pid: int) -> bool:
    try:
        return (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return False


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads the process tree from /proc")
def test_simulate_parent_killed_alone_while_its_workers_write_takes_the_workers_with_it(tmp_path: Path) -> None:
    """kill -9 of simulate's own pid while its two forked writers (journal, report) worked left them waiting for
    their next task for ever, holding its stdout and stderr (a caller reading them hung too)."""
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "router_tuner.cli", *_simulate_argv(tmp_path, "--no-mlflow",
                                                                                       "--workers", "2")],
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 90
        while not list(out.glob(".simulation.sqlite.*.tmp")):  # the journal's writer has started
            assert proc.poll() is None and time.monotonic() < deadline, "simulate ended before writing its journal"
            time.sleep(0.005)
        workers = _children(proc.pid)
        proc.kill()  # the parent alone
        proc.wait(timeout=10)
    finally:
        proc.kill()
    assert workers
    deadline = time.monotonic() + 10
    while any(_alive(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.05)
    orphans = [pid for pid in workers if _alive(pid)]
    for pid in orphans:  # not left behind when the test fails
        os.kill(pid, signal.SIGKILL)
    assert not orphans
    rerun = router_tuner(*_simulate_argv(tmp_path, "--no-mlflow", "--workers", "2"))
    assert rerun.returncode == 0, rerun.stderr[-500:]
    left = sorted(p.name for p in out.iterdir())
    assert left == ["report", "simulation.sqlite"], left


def _small_sweep(tmp_path: Path) -> tuple[str, dict[str, str], list[str]]:
    """A two-row sweep of BTCUSDT into tmp_path/out, logged to an MLflow store there: its URI, environment and argv."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri}
    argv = ["sweep", "--learners", "structured", "--seeds", "1,2", "--symbols", "BTCUSDT", "--orders", "40",
            "--out", str(tmp_path / "out")]
    if (data := ROOT.parent / "shared" / "data" / "binance").is_dir():
        argv += ["--data", str(data)]
    return uri, env, argv


@pytest.mark.parametrize("step", [("router_tuner.simulation.sweep.store:CheckpointStore.save", 3),
                                  ("router_tuner.simulation.sweep.table:write_table", 1)])
def test_sweep_killed_between_tasks_or_after_its_table_resumes_to_the_uninterrupted_table(
        tmp_path: Path, step: tuple[str, int]) -> None:
    """The resume after a kill -9 (three checkpoints in, or once the table is written) gives the very table an
    uninterrupted run gives, each task run or resumed once."""
    import pandas as pd

    argv = ["sweep", "--learners", "ucb,epsilon_greedy", "--seeds", "1,2", "--symbols", "BTCUSDT", "--data",
            "synthetic", "--orders", "30", "--no-mlflow"]
    whole = router_tuner(*argv, "--out", str(tmp_path / "whole"))
    assert whole.returncode == 0, whole.stderr[-500:]
    assert crash_at(*step, *argv, "--out", str(tmp_path / "killed")).returncode == -signal.SIGKILL
    resumed = router_tuner(*argv, "--out", str(tmp_path / "killed"))
    assert resumed.returncode == 0, resumed.stderr[-500:]
    done = 3 if step[1] == 3 and "save" in step[0] else 6
    assert f"6 tasks ({6 - done} run now, {done} resumed from checkpoints)" in resumed.stdout
    assert pd.read_parquet(tmp_path / "killed" / "sweep.parquet").equals(pd.read_parquet(tmp_path / "whole" /
                                                                                         "sweep.parquet"))

def test_sweep_killed_while_logging_a_nested_run_logs_it_whole_on_the_rerun(tmp_path: Path) -> None:
    """Killed after creating a row's nested run, before its params and metrics: the rerun took the row as logged
    (its task id tag was there) and the run stayed empty and RUNNING for good."""
    uri, env, argv = _small_sweep(tmp_path)
    killed = crash_at("mlflow:MlflowClient.create_run", 2, *argv, env=env)  # the parent, then the first row's
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-500:]
    rerun = router_tuner(*argv, env=env)
    assert rerun.returncode == 0, rerun.stderr[-500:]
    client = MlflowClient(tracking_uri=uri)
    runs = client.search_runs([client.get_experiment_by_name("router-tuner").experiment_id])
    rows = [r for r in runs if "task_id" in r.data.tags]
    assert sorted(r.data.params["seed"] for r in rows) == ["1", "2"]  # each row once
    assert all(r.info.status == "FINISHED" and "mean_cost_bps" in r.data.metrics for r in rows)


def _paper_tuner(tmp_path: Path, intents: int, *, rollback: bool = False) -> tuple[list[str], dict[str, str]]:
    """``live`` in paper mode with ``--policy-source tuner`` on ``intents`` round trips of BTCUSDT (the synthetic
    market), publishing to a tmp MLflow store: v1 after 15 outcomes, v2 after 30; with ``rollback`` a rollback
    window of 5 outcomes and no margin, so v2 is the tuner's rollback to the static knobs."""
    from tests.executor.adaptive.live_adaptive_support import paper_tuner_files

    config = paper_tuner_files(tmp_path, intents, rollback=rollback)
    argv = ["live", "--venue", "binanceusdm", "--config", str(config), "--intents", str(tmp_path / "intents.jsonl"),
            "--journal", str(tmp_path / "journal.sqlite"), "--store", str(tmp_path / "executor.sqlite"),
            "--idle-poll-s", "0.05", "--policy-source", "tuner", "--tuner-state",
            str(tmp_path / "state" / "tuner_state.json"),
            "--seed", "5"]
    return argv, {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}"}


@pytest.mark.parametrize("step", [("mlflow:MlflowClient.create_model_version", 1),
                                  ("mlflow:MlflowClient.set_registered_model_alias", 2),
                                  ("mlflow:MlflowClient.create_model_version", 2)])
def test_live_tuner_killed_while_publishing_a_version_finishes_it_on_the_restart(
        tmp_path: Path, step: tuple[str, int]) -> None:
    """Killed after registering v1, before its aliases (or after the champion alias, before its gate record): the
    restart publishes v1 again (at-least-once) and took it as it was, so the model had no champion, v2 was crowned
    in its place without a gate (`initial`) and v1 stayed without an alias (or the champion had no gate record).
    Killed after registering v2, before its alias: v1 stayed the challenger."""
    from router_tuner.executor.journal import Journal

    argv, env = _paper_tuner(tmp_path, 35)
    killed = crash_at(*step, *argv, env=env)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-500:]
    restarted = router_tuner(*argv, env=env)
    assert restarted.returncode == 0, restarted.stderr[-500:]
    assert "1 in-flight intents recovered" in restarted.stdout
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert _model(store)[1] == {"champion": "1", "challenger": "2"}  # as an uninterrupted run leaves them
    client = MlflowClient(tracking_uri=store)
    assert sorted(int(v.version) for v in client.search_model_versions("name='router-policy-BTCUSDT'")) == [1, 2]
    assert gate_problem(client.get_model_version("router-policy-BTCUSDT", "1").tags) is None
    assert client.get_model_version("router-policy-BTCUSDT", "2").tags.get("promotion") is None  # not crowned
    with Journal(tmp_path / "journal.sqlite", readonly=True) as journal:
        ids = [e.intent_id for e in journal.read("router")]
    assert sorted(ids) == sorted(f"i{k}" for k in range(35))  # every intent routed and journaled once


def test_live_tuner_killed_between_a_checkpoints_manifest_and_its_cleanup_leaves_no_generation_for_good(
        tmp_path: Path) -> None:
    """Killed after the manifest named generation 2, before generation 1's files were deleted: the next checkpoint
    deleted generation 2's only, so generation 1's stayed beside the state for good (one pair per such kill)."""
    from router_tuner.executor.journal import Journal

    argv, env = _paper_tuner(tmp_path, 35)
    argv.append("--no-mlflow")
    state = tmp_path / "state"
    killed = crash_at("router_tuner.executor.adaptive.checkpoint:write_bytes_atomic", 2, *argv, env=env)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-500:]
    assert json.loads((state / "tuner_state.json").read_bytes())["generation"] == 2
    assert {"tuner_state.g1.json", "tuner_state.g2.json"} <= {p.name for p in state.iterdir()}
    restarted = router_tuner(*argv, env=env)
    assert restarted.returncode == 0, restarted.stderr[-500:]
    manifest = json.loads((state / "tuner_state.json").read_bytes())
    generation = manifest["generation"]
    assert sorted(p.name for p in state.iterdir()) == sorted(
        ["tuner_state.json", f"tuner_state.g{generation}.json", f"tuner_state.g{generation}.tuners.json"])
    with Journal(tmp_path / "journal.sqlite", readonly=True) as journal:
        ids = [e.intent_id for e in journal.read("router")]
    assert sorted(ids) == sorted(f"i{k}" for k in range(35)) and manifest["router_events_learned"] == 35


def _champion_and_challenger(tmp_path: Path) -> tuple[str, PolicyRegistry]:
    """A store whose BTCUSDT model has version 1 as champion and version 2 as challenger."""
    from tests.tuner.test_promotion import CHALLENGER, CHAMPION, policy

    uri = f"sqlite:///{tmp_path / 'store.db'}"
    registry = default_registry(uri)
    for n, knobs in ((1, CHAMPION), (2, CHALLENGER)):
        registry.publish(policy("BTCUSDT", n, knobs), params={"learner": "thompson"}, metrics={"cost_bps": 1.0},
                         config_snapshot={})
    return uri, registry


@pytest.mark.parametrize("step", ["mlflow:MlflowClient.set_registered_model_alias",
                                  "mlflow:MlflowClient.set_model_version_tag"])
def test_gated_promote_killed_between_the_alias_and_its_gate_record_is_ended_by_the_same_command(
        tmp_path: Path, step: str) -> None:
    """The OPE-gated `policy promote` killed after moving the alias, before (all of) its gate record: the champion
    was not acted on ("no gate record") and the same command refused, "version 2 is already the champion" (exit 1);
    only `--force` ended it. It now records the gate the logs pass."""
    from tests.tuner.test_promotion import journal_with, logged

    uri, _ = _champion_and_challenger(tmp_path)
    journal = journal_with(tmp_path / "better.sqlite", logged("BTCUSDT", 600, 1.0, seed=4))
    argv = ["policy", "promote", "--symbol", "BTCUSDT", "--journal", str(journal), "--tracking-uri", uri]
    assert crash_at(step, 1, *argv).returncode == -signal.SIGKILL
    assert _model(uri)[1]["champion"] == "2"
    rerun = router_tuner(*argv)
    assert rerun.returncode == 0, rerun.stderr[-500:]
    tags, aliases = _model(uri)
    assert aliases == {"champion": "2", "challenger": "2"} and tags[CHAMPION_HISTORY_TAG] == "1"
    record = MlflowClient(tracking_uri=uri).get_model_version("router-policy-BTCUSDT", "2").tags
    assert gate_problem(record) is None and record["promotion"] == "ope_gate"
    listed = router_tuner("policy", "list", "--tracking-uri", uri)
    assert listed.returncode == 0 and "NOT ACTED ON" not in listed.stdout


def test_live_tuner_killed_after_promoting_its_rollback_before_the_gate_record_records_it_on_the_restart(
        tmp_path: Path) -> None:
    """The tuner's rollback version is made champion at once with a `tuner_rollback` gate record; killed after the
    alias moved, before the record: the restart published it again and, finding it champion, skipped the record,
    so the champion stayed `NOT ACTED ON` (a router following the registry kept the degraded knobs). With fill speed
    the restart derives another v2 in its place, and adopts the registered one: the same finish."""
    argv, env = _paper_tuner(tmp_path, 30, rollback=True)
    # aliases: v1 challenger, v1 champion, v2 challenger, v2 champion (the rollback's promotion)
    killed = crash_at("mlflow:MlflowClient.set_registered_model_alias", 4, *argv, env=env)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-500:]
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert _model(store)[1]["champion"] == "2"
    restarted = router_tuner(*argv, env=env)
    assert restarted.returncode == 0, restarted.stderr[-500:]
    tags, aliases = _model(store)
    assert aliases["champion"] == "2" and tags[CHAMPION_HISTORY_TAG] == "1"
    record = MlflowClient(tracking_uri=store).get_model_version("router-policy-BTCUSDT", "2").tags
    assert gate_problem(record) is None and record["promotion"] == "tuner_rollback"
    listed = router_tuner("policy", "list", "--tracking-uri", store, env=env)
    assert listed.returncode == 0 and "NOT ACTED ON" not in listed.stdout


def test_live_tuner_killed_after_registering_a_version_adopts_it_when_the_restart_derives_another(
        tmp_path: Path) -> None:
    """Killed after registering v2 (the tuner's rollback to the static knobs), before its aliases and checkpoint, then
    restarted by an operator who widened the rollback margin meanwhile: the restarted tuner derives another v2 (a
    scheduled one). The registry refused it ("policy version 2 would be registered as router-policy-BTCUSDT version
    3"), nothing routed, exit 1; the registered v2 is now adopted (finished as its publish would have: promoted, with
    its gate record), one warning line says so, and the tuner goes on to v3. (The kill alone used to diverge, before
    the rollback window was kept in the checkpoint: the restart then missed the rollback.)"""
    from router_tuner.executor.journal import Journal

    argv, env = _paper_tuner(tmp_path, 50, rollback=True)
    killed = crash_at("mlflow:MlflowClient.create_model_version", 2, *argv, env=env)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-500:]
    edit_config(tmp_path / "config", "tuner.json", lambda d: d["guardrails"].update(rollback_margin_bps=100.0))
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=store)
    assert client.get_model_version("router-policy-BTCUSDT", "2").aliases == []
    restarted = router_tuner(*argv, env=env)
    assert restarted.returncode == 0, restarted.stderr[-500:]
    assert "1 in-flight intents recovered" in restarted.stdout
    [warning] = [line for line in restarted.stderr.splitlines() if " WARNING " in line]
    assert warning.split(" WARNING router_tuner.tuner.service.publish: ")[1] == (
        "BTCUSDT: adopted router-policy-BTCUSDT version 2, registered by a run killed before it saved its state (arm "
        "static, rollback), in place of the version 2 the restarted tuner derived (arm o4.00_b0.00, schedule): "
        "maker_offset_bps 1.0 registered, 4.0 derived; the tuner goes on from version 2, its next version is 3")
    versions = {int(v.version): v for v in client.search_model_versions("name='router-policy-BTCUSDT'")}
    assert {1, 2, 3} <= set(versions)
    second = client.get_model_version("router-policy-BTCUSDT", "2")
    assert second.tags["arm"] == "static" and second.tags["promotion"] == "tuner_rollback"
    assert gate_problem(second.tags) is None
    tags, aliases = _model(store)
    assert (aliases["champion"], tags[CHAMPION_HISTORY_TAG]) == ("2", "1"), "v2 acted after v1, as the killed run meant"
    assert client.get_run(versions[3].run_id).data.params["previous_version"] == "2"
    listed = router_tuner("policy", "list", "--tracking-uri", store, env=env)
    assert listed.returncode == 0 and "NOT ACTED ON" not in listed.stdout
    with Journal(tmp_path / "journal.sqlite", readonly=True) as journal:
        ids = [e.intent_id for e in journal.read("router")]
    assert sorted(ids) == sorted(f"i{k}" for k in range(50))  # every intent routed and journaled once


def test_live_tuner_killed_twice_while_publishing_its_rollback_rolls_back_on_the_second_restart(
        tmp_path: Path) -> None:
    """The rollback window (the costs of the version on probation) was not in the checkpoint: killed while
    publishing the rollback (MLflow run created, no version yet), the restart learned the outcome that had triggered
    it into an empty window and rolled back only once the window was full again (here 4 outcomes later: 200 with the
    defaults); killed there too, the second restart never rolled back (v2 a scheduled version, the degraded v1 still
    champion). Found by `python -m experiments.crash_sweep`."""
    argv, env = _paper_tuner(tmp_path, 30, rollback=True)
    # runs: v1's, then v2's (the rollback's); the first restart's first run is the rollback published again
    assert crash_at("mlflow:MlflowClient.create_run", 2, *argv, env=env).returncode == -signal.SIGKILL
    assert crash_at("mlflow:MlflowClient.create_run", 1, *argv, env=env).returncode == -signal.SIGKILL
    restarted = router_tuner(*argv, env=env)
    assert restarted.returncode == 0, restarted.stderr[-500:]
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert _model(store)[1] == {"champion": "2", "challenger": "2"}  # as an uninterrupted run leaves them
    record = MlflowClient(tracking_uri=store).get_model_version("router-policy-BTCUSDT", "2").tags
    assert gate_problem(record) is None and record["promotion"] == "tuner_rollback"


@pytest.mark.parametrize("step", [("mlflow:MlflowClient.create_run", 1), ("mlflow:MlflowClient.log_batch", 1)])
def test_sweep_killed_before_recording_its_parent_run_leaves_one_parent_after_the_rerun(
        tmp_path: Path, step: tuple[str, int]) -> None:
    """Killed after creating the sweep's parent MLflow run, before writing OUT/mlflow_run.json: the rerun created
    another parent and the first stayed empty and RUNNING for good (one per such kill)."""
    uri, env, argv = _small_sweep(tmp_path)
    killed = crash_at(*step, *argv, env=env)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-500:]
    assert not (tmp_path / "out" / "mlflow_run.json").exists()
    rerun = router_tuner(*argv, env=env)
    assert rerun.returncode == 0, rerun.stderr[-500:]
    client = MlflowClient(tracking_uri=uri)
    runs = client.search_runs([client.get_experiment_by_name("router-tuner").experiment_id])
    parents = [r for r in runs if r.data.tags.get("job") == "sweep"]
    assert [(p.info.status, p.info.run_id) for p in parents] == [
        ("FINISHED", json.loads((tmp_path / "out" / "mlflow_run.json").read_text())["parent_run_id"])]
    rows = [r for r in runs if "task_id" in r.data.tags]
    assert sorted(r.data.params["seed"] for r in rows) == ["1", "2"]
    assert all(r.data.tags["mlflow.parentRunId"] == parents[0].info.run_id for r in rows)


@pytest.mark.parametrize("step", ["PolicyRegistry.publish", "PolicyRegistry.end_registering"])
def test_simulate_killed_while_registering_its_models_keeps_the_previous_simulations(tmp_path: Path,
                                                                                     step: str) -> None:
    """simulate deleted the previous simulation's models before registering its own: killed in between (or while
    registering), neither was left and `policy list --simulation` found nothing. The new versions now go to a
    staging model that replaces the previous one only once whole: killed before (mid-way, or with every version
    in), the previous simulation's models are listed as they were; the rerun replaces them."""
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}"}
    config = _fast_publishing(tmp_path)
    argv = ["simulate", "--config", str(config), "--orders", "60", "--symbols", "BTCUSDT", "--learners", "structured",
            "--workers", "1", "--shadow-symbols", "--out", str(tmp_path / "out"), "--json"]
    if (data := ROOT.parent / "shared" / "data" / "binance").is_dir():
        argv += ["--data", str(data)]
    listing = ["policy", "list", "--simulation", "--json", "--config", str(config)]

    def listed() -> list[tuple[int, list[str], dict[str, object]]]:
        shown = router_tuner(*listing, env=env)
        assert shown.returncode == 0 and "PART-REGISTERED" not in shown.stderr, shown.stderr[-500:]
        return [(v["version"], v["aliases"], v["policy"]) for v in json.loads(shown.stdout)]

    assert router_tuner(*argv, "--seed", "3", env=env).returncode == 0
    before = listed()
    assert len(before) >= 2
    killed = crash_at(f"router_tuner.tuner.registry:{step}", 1, *argv, env=env)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-500:]
    assert listed() == before
    rerun = router_tuner(*argv, env=env)
    assert rerun.returncode == 0, rerun.stderr[-500:]
    after = listed()
    assert after and after != before
    assert _model_names(tmp_path / "mlflow.db") == ["sim-router-policy-structured-BTCUSDT"]


def test_ope_killed_while_logging_to_the_versions_run_never_leaves_two_evaluations_mixed(tmp_path: Path) -> None:
    """`ope --candidate SYMBOL/N` logs its estimates to the version's run: one request per metric, so a kill
    between two left the run (and `policy show`) with some estimates of this evaluation and the rest of the one
    before (snips cost 3.58 beside its diff from the earlier journal, -1.35). They now go in one batch."""
    from tests.tuner.test_promotion import journal_with, logged

    uri, registry = _champion_and_challenger(tmp_path)
    earlier = journal_with(tmp_path / "earlier.sqlite", logged("BTCUSDT", 600, 1.0, seed=4))
    later = journal_with(tmp_path / "later.sqlite", logged("BTCUSDT", 600, 3.5, seed=4))
    run_id = registry.show("BTCUSDT", "2").run_id
    client = MlflowClient(tracking_uri=uri)

    def ope_metrics() -> dict[str, float]:
        return {k: v for k, v in client.get_run(run_id).data.metrics.items() if k.startswith("ope_")}

    argv = ["ope", "--candidate", "BTCUSDT/2", "--tracking-uri", uri, "--journal"]
    assert router_tuner(*argv, str(earlier)).returncode == 0
    before = ope_metrics()
    assert crash_at("mlflow:MlflowClient.log_batch", 1, *argv, str(later)).returncode == -signal.SIGKILL
    left = ope_metrics()
    rerun = router_tuner(*argv, str(later), "--json")
    assert rerun.returncode == 0, rerun.stderr[-500:]
    after = ope_metrics()
    assert left == after and set(after) == set(before) and all(after[k] != before[k] for k in after)
    assert after["ope_snips_cost_bps"] == pytest.approx(
        json.loads(rerun.stdout)["results"][0]["candidate"]["estimates"]["snips"]["cost_bps"])
    import mlflow

    report = Path(mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path="ope/ope_report.json",
                                                      tracking_uri=uri, dst_path=str(tmp_path / "dl")))
    assert json.loads(report.read_text())["results"] == json.loads(rerun.stdout)["results"]


@pytest.mark.parametrize("statements", [30, 150])
def test_a_command_killed_while_mlflow_creates_its_store_leaves_no_half_store(tmp_path: Path, statements: int) -> None:
    """The first command on a new SQLite store (here a small `sweep`; `policy` refuses a store that does not exist)
    killed while MLflow created and migrated it (a few seconds; its migrations are not transactional): the
    half-migrated file stayed as the store and every later command failed, "MLflow store: table latest_metrics
    already exists" (exit 1), until it was deleted by hand. The store is now created under a temporary name and
    renamed into place whole."""
    store = tmp_path / "store.db"
    argv = ["sweep", "--learners", "thompson", "--seeds", "1", "--symbols", "BTCUSDT", "--data", "synthetic",
            "--orders", "20", "--out", str(tmp_path / "sweep"), "--tracking-uri", f"sqlite:///{store}"]
    killed = crash_at("sqlalchemy.engine.base:Connection.execute", statements, *argv)  # mid-migration
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-500:]
    assert not store.exists() and list(tmp_path.glob(".store.db.*.tmp"))
    rerun = router_tuner(*argv)
    assert rerun.returncode == 0, rerun.stderr[-500:]
    listed = router_tuner("policy", "list", "--tracking-uri", f"sqlite:///{store}")
    assert listed.returncode == 0 and "no policy versions named router-policy-*" in listed.stderr
    assert not list(tmp_path.glob(".store.db.*"))  # the killed command's temporary deleted
    registry = default_registry(f"sqlite:///{store}")
    base = RouterPolicy.from_static("BTCUSDT", load_config().router, policy_id="tuner-BTCUSDT")
    published = registry.publish(replace(base, version=1), params={}, metrics={}, config_snapshot={})
    assert (published.version, published.aliases) == (1, ("challenger", "champion"))  # a whole store
