"""Every bad input ends in one line and exit 2, every runtime failure in one line and exit 1; no traceback.

The inputs are the ones issue 13 found ending in a traceback. Each test drives ``cli.main.main`` (or a
subprocess for the real ``python -m cli``) and reads stderr.
"""

from __future__ import annotations

import errno
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from mlflow.exceptions import MlflowException

from router_tuner.cli.main import BAD_INPUT, INTERRUPTED, READER_GONE, RUNTIME_FAILURE, describe_failure, main
from router_tuner.config import ConfigError, ConfigIssue
from router_tuner.executor.journal import Journal
from router_tuner.executor.store import ExecutorStore
from tests.conftest import edit_config


def one_line_failure(argv: list[str], capsys: pytest.CaptureFixture[str], code: int) -> str:
    """Run the command, check the exit code and that stderr is one line without a traceback; return it.

    argparse ends a bad command line with ``SystemExit`` (as the real process does), the rest return the code.
    """
    try:
        got = main(argv)
    except SystemExit as stop:
        got = stop.code
    assert got == code
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("router-tuner")
    return lines[0]


@pytest.fixture
def journal_path(tmp_path: Path) -> Path:
    path = tmp_path / "journal.sqlite"
    Journal(path).close()
    return path


@pytest.fixture
def store_path(tmp_path: Path) -> Path:
    path = tmp_path / "store.sqlite"
    ExecutorStore(path).close()
    return path


@pytest.fixture
def unwritable_dir(tmp_path: Path) -> Iterator[Path]:
    """A directory nothing can be written under (a read-only one, or /sys for root, whom modes do not stop)."""
    if os.geteuid() != 0:
        directory = tmp_path / "read-only"
        directory.mkdir()
        directory.chmod(0o555)
        yield directory / "out"
        directory.chmod(0o755)
        return
    probe = Path("/sys/router-tuner-probe")
    try:
        probe.mkdir()
    except OSError:
        yield probe
        return
    probe.rmdir()
    pytest.skip("no unwritable directory on this machine")


def _damaged(tmp_path: Path, journal_path: Path, kind: str) -> Path:
    path = tmp_path / f"{kind}.sqlite"
    if kind == "random":
        path.write_bytes(os.urandom(4096))
    elif kind == "text":
        path.write_text("not a database\n")
    elif kind == "truncated":
        path.write_bytes(journal_path.read_bytes()[:3000])
    elif kind == "page":  # one page past the header overwritten: the file opens, its b-tree does not read
        data = bytearray(journal_path.read_bytes())
        assert len(data) >= 3 * 4096, "the journal fixture spans several pages"
        data[4096:8192] = os.urandom(4096)
        path.write_bytes(bytes(data))
    else:  # foreign: a valid SQLite file some other program wrote
        with sqlite3.connect(path) as conn:
            conn.execute("CREATE TABLE health (x)")
    return path


@pytest.mark.parametrize(("argv", "expected"), [
    (["simulate", "--symbols", "FOO", "--no-mlflow"], "--symbols FOO: not in strategy_config.json universe"),
    (["simulate", "--symbols", "BTCUSDT", "--shadow-symbols", "XRPUSDT"],
     "--shadow-symbols XRPUSDT: not in strategy_config.json universe"),
    (["simulate", "--orders", "0"], "argument --orders: must be at least 4, got 0"),
    (["simulate", "--orders", "3"], "argument --orders: must be at least 4, got 3"),  # was "unexpected ValueError"
    (["simulate", "--orders", "many"], "argument --orders: 'many' is not a whole number"),
    (["simulate", "--seed", "-1"], "argument --seed: must be at least 0, got -1"),
    (["simulate", "--learners", "thompson,magic"], "--learners: unknown learner(s) ['magic']"),
    (["journal", "count"], "the following arguments are required: --journal"),
    (["config", "check", "--nope"], "unrecognized arguments: --nope"),
])
def test_bad_arguments_are_one_line_and_exit_2(argv: list[str], expected: str,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    assert expected in one_line_failure(argv, capsys, BAD_INPUT)


def test_a_data_directory_without_recordings_is_bad_input(tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "data"
    data.mkdir()
    line = one_line_failure(["simulate", "--symbols", "BTCUSDC", "--data", str(data), "--no-mlflow",
                             "--out", str(tmp_path / "out")], capsys, BAD_INPUT)
    assert f"no recordings in {data} (Binance captures named" in line


def test_a_bad_config_is_one_line_naming_the_first_problem(config_dir: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    edit_config(config_dir, "risk_limits.json", lambda d: d.update(max_order_notional_usd=1e30))
    line = one_line_failure(["simulate", "--config", str(config_dir), "--no-mlflow"], capsys, BAD_INPUT)
    assert "1 configuration problem(s), first: risk_limits.json: $.max_order_notional_usd:" in line
    assert "config check" in line


def test_an_unwritable_output_directory_fails_before_the_run(unwritable_dir: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    line = one_line_failure(["simulate", "--symbols", "BTCUSDT", "--no-mlflow", "--out", str(unwritable_dir)],
                            capsys, BAD_INPUT)
    assert f"output directory {unwritable_dir}" in line


def test_an_output_path_under_a_file_is_bad_input(tmp_path: Path, journal_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    out = journal_path / "router.parquet"
    line = one_line_failure(["journal", "export", "--journal", str(journal_path), "--kind", "router",
                             "--out", str(out)], capsys, BAD_INPUT)
    assert f"output directory {journal_path}: File exists" in line


def test_journal_export_to_an_unwritable_directory(journal_path: Path, unwritable_dir: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    line = one_line_failure(["journal", "export", "--journal", str(journal_path), "--kind", "router",
                             "--out", str(unwritable_dir / "router.parquet")], capsys, BAD_INPUT)
    assert "output directory" in line


@pytest.mark.parametrize("kind", ["random", "text", "truncated", "page", "foreign"])
@pytest.mark.parametrize("command", [["journal", "count"], ["journal", "export", "--kind", "veto", "--out"],
                                     ["health"]])
def test_a_corrupt_truncated_or_foreign_file_is_bad_input(tmp_path: Path, journal_path: Path, kind: str,
                                                          command: list[str],
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    path = _damaged(tmp_path, journal_path, kind)
    if command[0] == "health":
        argv, what = ["health", "--store", str(path)], "executor store"
    else:
        argv, what = [*command[:2], "--journal", str(path)], "journal"
        if command[1] == "export":
            argv += [*command[2:], str(tmp_path / "veto.parquet")]
    line = one_line_failure(argv, capsys, BAD_INPUT)
    assert line.startswith(f"router-tuner {argv[0]}: {what} {path}: ")


@pytest.fixture
def lock_holder(tmp_path: Path) -> Iterator[Path]:
    """A second process holding an exclusive SQLite lock on whichever file is written to the returned path."""
    target = tmp_path / "lock-target"
    script = ("import sqlite3, sys, time\n"
              "path = open(sys.argv[1]).read()\n"
              "conn = sqlite3.connect(path, isolation_level=None)\n"
              "conn.execute('PRAGMA locking_mode = EXCLUSIVE'); conn.execute('BEGIN EXCLUSIVE')\n"
              "conn.execute('CREATE TABLE held (x)')\n"
              "print('held', flush=True)\n"
              "sys.stdin.read()\n")
    holder: list[subprocess.Popen[str]] = []

    def hold(path: Path) -> None:
        target.write_text(str(path))
        process = subprocess.Popen([sys.executable, "-c", script, str(target)], stdin=subprocess.PIPE,
                                   stdout=subprocess.PIPE, text=True)
        holder.append(process)
        assert process.stdout is not None and process.stdout.readline().strip() == "held"

    yield hold  # type: ignore[misc]
    for process in holder:
        process.communicate("")


def test_a_held_lock_is_a_runtime_failure(journal_path: Path, store_path: Path, tmp_path: Path, lock_holder,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    lock_holder(journal_path)
    lock_holder(store_path)
    for argv in (["journal", "count", "--journal", str(journal_path)],
                 ["journal", "export", "--journal", str(journal_path), "--kind", "router",
                  "--out", str(tmp_path / "r.parquet")],
                 ["health", "--store", str(store_path)]):
        line = one_line_failure(argv, capsys, RUNTIME_FAILURE)
        assert "database is locked: another process holds it" in line


def test_a_malformed_intent_line_is_bad_input_naming_file_and_line(config_dir: Path, tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    edit_config(config_dir, "executor.json", lambda d: d["prometheus"].update(enabled=False))
    intents = tmp_path / "intents.jsonl"
    intents.write_text('\n{"intent_id": "x1", "symbol": "BTCUSDT"\n')
    argv = ["live", "--venue", "binanceusdm", "--config", str(config_dir), "--intents", str(intents),
            "--journal", str(tmp_path / "journal.sqlite"), "--store", str(tmp_path / "store.sqlite")]
    assert main(argv) == BAD_INPUT
    err = capsys.readouterr().err
    assert "Traceback" not in err
    [line] = [line for line in err.splitlines() if line.startswith("router-tuner live:")]
    assert f"{intents}:2:" in line and "fix or remove that line" in line


def test_a_malformed_intent_line_cannot_drive_the_terminal_it_is_reported_on(
        quiet_config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """An unknown key holding ESC [2J (clear the screen) and BEL reached stderr raw: a producer's line could wipe or
    rewrite the very message naming it. Every failure line now shows such characters as escapes."""
    intents = tmp_path / "intents.jsonl"
    intents.write_text('{"intent_id": "x1", "x\\u001b[2J\\u0007": 1}\n')
    argv = ["live", "--venue", "binanceusdm", "--config", str(quiet_config), "--intents", str(intents),
            "--journal", str(tmp_path / "journal.sqlite"), "--store", str(tmp_path / "store.sqlite")]
    assert main(argv) == BAD_INPUT
    [line] = [line for line in capsys.readouterr().err.splitlines() if line.startswith("router-tuner live:")]
    assert "unknown field `x\\x1b[2J\\x07`" in line and line.isprintable()
    assert describe_failure(ValueError("a\u2028b\x1b[0m\x00"))[1].startswith("unexpected ValueError: a b\\x1b[0m\\x00")

def test_the_real_process_prints_one_line_and_debug_shows_the_traceback(tmp_path: Path) -> None:
    missing = tmp_path / "none.sqlite"
    plain = subprocess.run([sys.executable, "-m", "router_tuner.cli", "journal", "count", "--journal", str(missing)],
                           capture_output=True, text=True, check=False)
    assert plain.returncode == BAD_INPUT
    assert plain.stderr.strip().splitlines() == [
        f"router-tuner journal: journal {missing}: no journal at {missing}: check the path"]
    debug = subprocess.run([sys.executable, "-m", "router_tuner.cli", "--debug", "journal", "count", "--journal",
                            str(missing)],
                           capture_output=True, text=True, check=False)
    assert debug.returncode == 1 and "Traceback" in debug.stderr and "FileNotFoundError" in debug.stderr


def test_a_reader_that_goes_away_is_quiet_as_for_any_shell_command(journal_path: Path) -> None:
    """``router-tuner journal count … | head -1`` (or ``| true``) printed "router-tuner journal: journal F: Broken
    pipe", blaming the journal, and exited 1: a script under ``pipefail`` took it for a failed command."""
    for argv in (["journal", "count", "--journal", str(journal_path)], ["config", "check", "--json"]):
        process = subprocess.Popen([sys.executable, "-m", "router_tuner.cli", *argv], stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE)
        assert process.stdout is not None and process.stderr is not None
        process.stdout.close()  # the reader is gone before the command writes
        err = process.stderr.read()
        assert (process.wait(timeout=120), err) == (READER_GONE, b"")


@pytest.mark.parametrize(("error", "code", "text"), [
    (KeyboardInterrupt(), INTERRUPTED, "interrupted"),
    (OSError(errno.ENOSPC, "No space left on device", "var/j.sqlite"), RUNTIME_FAILURE,
     "No space left on device: var/j.sqlite: the disk is full; free space and rerun"),
    (OSError(errno.EROFS, "Read-only file system", "/mnt/ro"), BAD_INPUT, "Read-only file system: /mnt/ro: choose"),
    (ConfigError([ConfigIssue("tuner.json", "$.seed", "Expected `int` >= 0"), ConfigIssue("a", "$", "b")]), BAD_INPUT,
     "2 configuration problem(s), first: tuner.json: $.seed: Expected `int` >= 0;"),
    (sqlite3.OperationalError("database is locked"), RUNTIME_FAILURE, "database is locked: another process holds it"),
    (sqlite3.OperationalError("database or disk is full"), RUNTIME_FAILURE,
     "database or disk is full: the disk is full; free space and rerun"),
    (ZeroDivisionError("division by zero"), RUNTIME_FAILURE,
     "unexpected ZeroDivisionError: division by zero (rerun with --debug for the traceback, and report it)"),
    # a proxy's error page pasted whole into the line (seen: a web server on the tracking URI's port)
    (MlflowException("API request to endpoint /api/2.0/mlflow/runs/create failed with error code 502 != 200. "
                     "Response body: '<!DOCTYPE HTML>\n<html><body><h1>Bad Gateway</h1></body></html>\n'"),
     RUNTIME_FAILURE, "API request to endpoint /api/2.0/mlflow/runs/create failed with error code 502 != 200. "
                      "Response body: an HTML page, not MLflow's JSON; check the MLflow store (--tracking-uri, "),
    (MlflowException(f"API request failed with error code 500 != 200. Response body: '{'x' * 5000}'"),
     RUNTIME_FAILURE, f"API request failed with error code 500 != 200. Response body: '{'x' * 300}…'; check the"),
])
def test_each_kind_of_failure_has_its_code_and_one_line(error: BaseException, code: int, text: str) -> None:
    got_code, line = describe_failure(error)
    assert got_code == code and line.startswith(text) and "\n" not in line


def test_every_listed_failure_names_a_class_that_exists() -> None:
    """The table names classes as text (so ``cli.main`` imports nothing heavy): a rename must fail here."""
    import importlib

    from router_tuner.cli.main import FAILURES

    for name in FAILURES:
        module, _, qualname = name.rpartition(".")
        assert isinstance(getattr(importlib.import_module(module), qualname), type), name


def test_health_without_a_store_is_one_line_even_when_the_path_holds_a_newline(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """It printed its own message, so a --store with a newline came out on three lines."""
    line = one_line_failure(["health", "--store", str(tmp_path / "s\nx.sqlite")], capsys, 1)
    assert line == (f"router-tuner health: no executor store at {tmp_path}/s x.sqlite yet: run `router-tuner live "
                    f"--store {tmp_path}/s x.sqlite` first, or point --store at its store")


def test_the_shadow_scenario_learner_is_checked_though_not_in_learners(config_dir: Path, tmp_path: Path,
                                                                       capsys: pytest.CaptureFixture[str]) -> None:
    """The scenario runs tuner.json's learner whatever --learners says: robbins_monro on a one-offset grid ended
    `simulate --learners thompson` once the data had loaded, in "unexpected ValueError", exit 1."""
    edit_config(config_dir, "tuner.json", lambda d: (d.update(learner="robbins_monro"),
                                                     d["arms"].update(maker_offsets_bps=[1.0])))
    argv = ["simulate", "--config", str(config_dir), "--symbols", "BTCUSDT", "--learners", "thompson", "--no-mlflow",
            "--out", str(tmp_path / "out")]
    assert one_line_failure(argv, capsys, BAD_INPUT) == (
        "router-tuner simulate: the shadow scenario runs tuner.json learner robbins_monro: robbins_monro needs at "
        "least two maker offsets (taker bias 0) in the grid; change tuner.json, or run no scenario (--shadow-symbols "
        "with no symbol after it)")
    assert not (tmp_path / "out" / "simulation.sqlite").exists()


def test_the_shadow_scenario_structured_prior_is_checked_though_not_in_learners(
        config_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The same for tuner.json's structured learner with a prior that would never post on the symbol's market."""
    edit_config(config_dir, "tuner.json",
                lambda d: d["learner_params"]["structured"].update(prior_fallback_drift_bps=100.0))
    argv = ["simulate", "--config", str(config_dir), "--symbols", "BTCUSDT", "--learners", "thompson", "--no-mlflow",
            "--out", str(tmp_path / "out")]
    line = one_line_failure(argv, capsys, BAD_INPUT)
    assert line.startswith("router-tuner simulate: the shadow scenario runs tuner.json learner structured: tuner.json: "
                           "$.learner_params.structured.prior_fallback_drift_bps: 100 bps"), line
    assert line.endswith("change tuner.json, or run no scenario (--shadow-symbols with no symbol after it)"), line
    assert not (tmp_path / "out" / "simulation.sqlite").exists()
