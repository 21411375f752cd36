"""``router-tuner sweep``: the table, nested MLflow runs, resuming, a local Ray started and stopped by the command,
and one clear line with exit 2 for every bad input."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from router_tuner.cli.main import BAD_INPUT, main
from tests.cli.test_cli_failures import one_line_failure

REPO = Path(__file__).resolve().parents[2]
SMALL = ["--learners", "ucb,epsilon_greedy", "--seeds", "1,2", "--symbols", "BTCUSDT", "--data", "synthetic",
         "--orders", "30", "--set", "tuner.learner_params.epsilon=0.05,0.2"]


def test_sweep_writes_the_table_and_resumes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "sweep"
    assert main(["sweep", *SMALL, "--out", str(out), "--no-mlflow"]) == 0
    printed = capsys.readouterr().out
    assert "10 tasks (10 run now, 0 resumed from checkpoints), 8 rows" in printed
    assert "epsilon_greedy" in printed and "captured_share" in printed
    frame = pd.read_parquet(out / "sweep.parquet")
    assert len(frame) == 8 and set(frame["learner"]) == {"ucb", "epsilon_greedy"}
    for column in ("mean_cost_bps", "cost_ci_low_bps", "cost_ci_high_bps", "regret_bps", "captured_share",
                   "best_fixed_arm", "taker_cost_bps", "tuner.learner_params.epsilon", "seed", "symbol", "data"):
        assert column in frame.columns
    assert main(["sweep", *SMALL, "--out", str(out), "--no-mlflow"]) == 0
    assert "(0 run now, 10 resumed from checkpoints)" in capsys.readouterr().out
    assert pd.read_parquet(out / "sweep.parquet").equals(frame)


def test_sweep_logs_one_parent_and_a_nested_run_per_row(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    from mlflow import MlflowClient

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/elsewhere.db")  # --tracking-uri wins
    out = tmp_path / "sweep"
    argv = ["sweep", "--learners", "ucb", "--seeds", "1,2", "--symbols", "BTCUSDT", "--data", "synthetic",
            "--orders", "20", "--out", str(out), "--tracking-uri", uri]
    assert main(argv) == 0
    assert "2 nested runs added" in capsys.readouterr().out
    client = MlflowClient(tracking_uri=uri)
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    (parent,) = [r for r in runs if r.data.tags.get("job") == "sweep"]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert len(children) == 2 and {c.data.params["seed"] for c in children} == {"1", "2"}
    assert {"mean_cost_bps", "regret_bps", "captured_share"} <= set(children[0].data.metrics)
    assert parent.data.params["tasks"] == "4"  # two baselines, two learner runs
    assert main(argv) == 0  # a rerun logs into the same parent and adds no duplicate
    assert "parent run " + parent.info.run_id + ", 0 nested runs added" in capsys.readouterr().out
    assert not (tmp_path / "elsewhere.db").exists()


@pytest.mark.parametrize("argv, message", [
    (["--set", "tuner.seed=1"], "--seeds"),
    (["--set", "tuner.learner_params.epsilon=7"], "epsilon"),
    (["--learners", "nope"], "unknown learner"),
    (["--seeds", "1,x"], "'x' is not an integer"),
    (["--data", "/no/such/folder"], "no folder at"),
    (["--symbols", "NOPE"], "no market for ['NOPE']"),
    (["--config", "/no/such/config"], "1 configuration problem(s), first: "),
    (["--tracking-uri", "sqlite:///m.db"], "--tracking-uri sqlite:///m.db is ignored with --no-mlflow, which logs "
                                           "nothing to MLflow: drop --no-mlflow to log there, or drop --tracking-uri"),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str],
                                          message: str) -> None:
    base = ["sweep", "--learners", "ucb", "--data", "synthetic", "--symbols", "BTCUSDT", "--out", str(tmp_path),
            "--no-mlflow"]
    assert main([*base, *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "tasks").exists()


@pytest.mark.parametrize("orders, message", [
    ("0", "argument --orders: must be at least 1, got 0"),
    ("99999999999999", "argument --orders: must be at most 1000000, got 99999999999999"),
    ("1e14", "argument --orders: '1e14' is not a whole number"),
])
def test_orders_out_of_range_is_a_bad_argument(orders: str, message: str, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    """Refused by argparse as `simulate --orders` is (it read "invalid int value: '1e14'", or "orders must be 1 to
    1000000" without naming the flag); nothing is planned or written."""
    line = one_line_failure(["sweep", "--orders", orders, "--out", str(tmp_path / "out"), "--no-mlflow"], capsys,
                            BAD_INPUT)
    assert message in line
    assert not (tmp_path / "out").exists()


def test_an_unreachable_cluster_is_one_line_and_exit_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sweep", "--address", "127.0.0.1:1", "--learners", "ucb", "--data", "synthetic", "--symbols",
                 "BTCUSDT", "--out", str(tmp_path), "--no-mlflow"]) == 1
    err = capsys.readouterr().err
    assert "no Ray cluster answers at 127.0.0.1:1" in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("address", ["zzz", "host:", "host:99999", "ray://:6379"])
def test_a_malformed_cluster_address_is_a_bad_argument(address: str, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    """It used to exit 1 as if a cluster had failed; nothing is planned or written."""
    line = one_line_failure(["sweep", "--address", address, "--out", str(tmp_path / "out"), "--no-mlflow"], capsys,
                            BAD_INPUT)
    assert f"argument --address: Ray address {address!r} is not HOST:PORT, ray://HOST:PORT or auto" in line
    assert not (tmp_path / "out").exists()


def test_two_workers_start_and_stop_a_local_ray_with_the_one_core_table(tmp_path: Path) -> None:
    """In a fresh process (the test session may hold its own Ray): the command starts Ray, and stops it."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    for workers in ("1", "2"):
        done = subprocess.run([sys.executable, "-m", "router_tuner.cli", "sweep", *SMALL, "--workers", workers, "--out",
                               str(tmp_path / workers), "--no-mlflow"], cwd=REPO, env=env, capture_output=True,
                              text=True, timeout=300, check=False)
        assert done.returncode == 0, done.stderr[-2000:]
        assert "Traceback" not in done.stderr
    one = pd.read_parquet(tmp_path / "1" / "sweep.parquet")
    assert pd.read_parquet(tmp_path / "2" / "sweep.parquet").equals(one)


def test_a_resume_after_the_recording_changed_runs_its_tasks_again(tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    """The task ids held the data folder's path only: a recording replaced (here by a wider-spread minute) after a
    sweep resumed every task from the old recording's checkpoints, and its rows stood for data no longer there."""
    from tests.cli.test_unseen_recordings_cli import _minute

    data, out = tmp_path / "data", tmp_path / "sweep"
    argv = ["sweep", "--learners", "ucb", "--seeds", "1", "--symbols", "BTCUSDT", "--data", str(data), "--orders",
            "20", "--out", str(out), "--no-mlflow"]
    _minute(data)
    assert main(argv) == 0
    assert "2 tasks (2 run now, 0 resumed" in capsys.readouterr().out
    assert main(argv) == 0  # the same bytes (a copy, a touch): resumed
    assert "(0 run now, 2 resumed" in capsys.readouterr().out
    first = pd.read_parquet(out / "sweep.parquet")
    _minute(tmp_path / "wider", ask="60003.00")
    (tmp_path / "wider" / "usdm_btcusdt_20240809.jsonl.gz").replace(data / "usdm_btcusdt_20240809.jsonl.gz")
    assert main(argv) == 0
    assert "2 tasks (2 run now, 0 resumed" in capsys.readouterr().out
    second = pd.read_parquet(out / "sweep.parquet")
    assert len(second) == 1 and set(second["task_id"]).isdisjoint(first["task_id"])


@pytest.mark.parametrize("damage, message", [
    ("garbage", "not a task result (Object missing required field `type`); delete it to rerun the task"),
    ("another task's", "holds the result of baseline-BTCUSDT-s1-"),
    ("folder", "exists and is not a file (a folder, FIFO or device): move it away"),
])
def test_a_damaged_checkpoint_is_bad_input_before_any_task(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                           damage: str, message: str) -> None:
    """Every rerun stops at such a checkpoint until it is moved: it is exit 2, named, before any task runs (a
    damaged file was exit 1 as a run failure; a folder failed only once its task had run again, "a task failed
    ... rerun to resume", on every rerun)."""
    out = tmp_path / "sweep"
    argv = ["sweep", "--learners", "ucb", "--seeds", "1", "--symbols", "BTCUSDT", "--data", "synthetic", "--orders",
            "20", "--out", str(out), "--no-mlflow"]
    assert main(argv) == 0
    capsys.readouterr()
    (baseline,) = (out / "tasks").glob("baseline-*.json")
    (learner,) = (out / "tasks").glob("ucb-*.json")
    if damage == "garbage":
        learner.write_text('{"garbage": 1}')
    elif damage == "another task's":
        learner.write_bytes(baseline.read_bytes())
    else:
        learner.unlink()
        learner.mkdir()
    table = (out / "sweep.parquet").read_bytes()
    line = one_line_failure(argv, capsys, BAD_INPUT)
    assert line.startswith(f"router-tuner sweep: {learner}: ") and message in line
    assert (out / "sweep.parquet").read_bytes() == table
