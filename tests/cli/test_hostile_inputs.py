"""Bad inputs from the hostile pass of issue 13 that used to crash, hang or do the wrong thing silently.

Each ends in one stderr line and exit 2 (bad input) or 1 (runtime failure), before anything is written.
"""

from __future__ import annotations

import gzip
import os
import socket
import sqlite3
import stat
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest

from router_tuner.cli.main import BAD_INPUT, INTERRUPTED, RUNTIME_FAILURE, describe_failure, main
from router_tuner.executor.journal import Journal
from router_tuner.router.events import Intent
from tests.cli.test_cli_failures import one_line_failure
from tests.conftest import edit_config
from tests.market.test_market_binance import _snapshot, _ticker, _write
from tests.tuner.test_registry import _NOT_FOUND_PAGE, _serving


def _intents(path: Path) -> Path:
    intent = Intent(intent_id="i0", symbol="ETHUSDT", side="buy", size_hint_usd=300.0, tier="CORE", strategy="s",
                    reduce_only=False, close_position=False, position_side="LONG", is_stop=False,
                    ts_ns=time.time_ns())
    path.write_bytes(msgspec.json.encode(intent) + b"\n")
    return path


def _live(tmp_path: Path, config: Path, *extra: str, journal: Path | None = None,
          store: Path | None = None) -> list[str]:
    return ["live", "--venue", "binanceusdm", "--config", str(config), "--idle-poll-s", "0.05",
            "--intents", str(_intents(tmp_path / "intents.jsonl")),
            "--journal", str(journal or tmp_path / "journal.sqlite"),
            "--store", str(store or tmp_path / "store.sqlite"),
            *extra]


def test_a_paper_account_given_the_journal_path_is_refused_and_the_journal_kept(
        tmp_path: Path, quiet_config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """It used to run, then write the paper account JSON over the journal: every record lost."""
    journal = tmp_path / "journal.sqlite"
    assert main(_live(tmp_path, quiet_config)) == 0
    before = Journal(journal, readonly=True)
    count = before.count("veto") + before.count("router")
    before.close()
    capsys.readouterr()
    line = one_line_failure(_live(tmp_path, quiet_config, "--paper-state", str(journal)), capsys, BAD_INPUT)
    assert line.endswith(f"--journal and --paper-state are the same file ({journal}): each needs its own file")
    with Journal(journal, readonly=True) as after:
        assert after.count("veto") + after.count("router") == count == 1


@pytest.mark.parametrize(("roles", "message"), [
    ({"journal": "same", "store": "same"}, "--journal and --store are the same file"),
    ({"store": "same", "extra": ["--policy-source", "tuner", "--no-mlflow", "--tuner-state", "same"]},
     "--store and --tuner-state are the same file"),
    ({"journal": "/dev/null"}, "--journal /dev/null: not a regular file"),
    ({"store": "."}, "--store .: not a regular file"),
])
def test_one_file_for_two_roles_or_a_device_is_bad_input(tmp_path: Path, quiet_config: Path, roles: dict,
                                                          message: str, capsys: pytest.CaptureFixture[str],
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    def path(role: str) -> Path | None:
        return None if role not in roles else Path(roles[role])
    extra = roles.get("extra", [])
    beside_dev_null = set(Path("/dev").glob("null[.-]*"))
    line = one_line_failure(_live(tmp_path, quiet_config, *extra, journal=path("journal"), store=path("store")),
                            capsys, BAD_INPUT)
    assert message in line
    assert not (tmp_path / "same").exists()  # refused before anything was created
    assert set(Path("/dev").glob("null[.-]*")) == beside_dev_null  # no SQLite lock or journal put in /dev


@pytest.mark.parametrize(("flag", "value", "message"), [
    ("--idle-poll-s", "nan", "must be a number above 0 and at most 3600, got nan"),
    ("--idle-poll-s", "1e308", "must be a number above 0 and at most 3600, got 1e308"),
    ("--idle-poll-s", "0", "must be a number above 0 and at most 3600, got 0"),
    ("--seed", "-5", "must be at least 0, got -5"),
    ("--seed", str(2**64), "must be at most 4294967295"),
])
def test_live_numbers_out_of_range_are_refused_by_the_parser(tmp_path: Path, quiet_config: Path, flag: str,
                                                             value: str, message: str,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    line = one_line_failure(_live(tmp_path, quiet_config, flag, value), capsys, BAD_INPUT)
    assert f"argument {flag}: {message}" in line


def test_a_tape_that_is_not_parquet_is_bad_input(tmp_path: Path, quiet_config: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    tape = tmp_path / "tape.parquet"
    tape.write_text("not parquet")
    line = one_line_failure(_live(tmp_path, quiet_config, "--tape", str(tape)), capsys, BAD_INPUT)
    assert f"--tape {tape}: not a readable Parquet file" in line
    assert not (tmp_path / "journal.sqlite").exists()


def test_a_jsonl_recording_given_as_tape_says_where_it_replays(tmp_path: Path, quiet_config: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    """A Binance recording of the kind `simulate --data` reads, given to paper `live --tape`, said "not a readable
    Parquet file: … Parquet magic bytes not found in footer …"."""
    (tmp_path / "data").mkdir()
    tape = _write(tmp_path / "data" / "usdm_btcusdt_20240809.jsonl.gz", [_ticker("btcusdt", 1, "60000.00", "60000.10")])
    line = one_line_failure(_live(tmp_path, quiet_config, "--tape", str(tape)), capsys, BAD_INPUT)
    assert line == (f"router-tuner live: --tape {tape}: a JSONL recording, which `simulate --data` replays; --tape "
                    "takes the Parquet tapes `router-tuner record` writes: simulate this one with `router-tuner "
                    f"simulate --data {tmp_path / 'data'}`, or record the market with `router-tuner record`")
    assert not (tmp_path / "journal.sqlite").exists()


@pytest.mark.parametrize("kind", ["fifo", "device"])
def test_intents_that_would_block_the_loop_are_bad_input(tmp_path: Path, quiet_config: Path, kind: str,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    """A FIFO blocked the loop (even the open, with no writer) where no signal could stop it; /dev/zero filled
    memory with one endless line."""
    argv = _live(tmp_path, quiet_config)
    if kind == "fifo":
        os.mkfifo(tmp_path / "fifo")
    path = str(tmp_path / "fifo") if kind == "fifo" else "/dev/zero"
    argv[argv.index("--intents") + 1] = path
    line = one_line_failure(argv, capsys, BAD_INPUT)
    assert f"--intents {path}: not a regular file" in line and "--follow tails a file" in line
    assert not (tmp_path / "journal.sqlite").exists()


@pytest.fixture
def busy_port() -> Iterator[int]:
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    yield holder.getsockname()[1]
    holder.close()


def test_a_metrics_port_in_use_or_a_host_that_does_not_resolve_names_the_config_key(
        tmp_path: Path, config_dir: Path, busy_port: int, capsys: pytest.CaptureFixture[str]) -> None:
    edit_config(config_dir, "executor.json", lambda d: d["prometheus"].update(port=busy_port))
    line = one_line_failure(_live(tmp_path, config_dir), capsys, RUNTIME_FAILURE)
    assert f"Prometheus endpoint 127.0.0.1:{busy_port} (executor.json prometheus.host/port): " in line
    assert "choose another port" in line
    edit_config(config_dir, "executor.json", lambda d: d["prometheus"].update(host="nosuchhost.invalid", port=0))
    line = one_line_failure(_live(tmp_path, config_dir), capsys, BAD_INPUT)
    assert "Prometheus endpoint nosuchhost.invalid:0" in line and "set a host this machine has" in line


def test_ctrl_c_while_the_command_module_is_imported_is_exit_130(monkeypatch: pytest.MonkeyPatch,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    """The import of a command's module (MLflow, Ray) takes seconds; Ctrl-C there was a KeyboardInterrupt
    traceback."""
    def interrupted(_selected: str | None) -> None:
        raise KeyboardInterrupt
    monkeypatch.setattr("router_tuner.cli.main.build_parser", interrupted)
    assert main(["health"]) == INTERRUPTED
    assert capsys.readouterr().err == "router-tuner health: interrupted\n"
    with pytest.raises(KeyboardInterrupt):
        main(["--debug", "health"])


def _recording(directory: Path, *, seconds: float) -> Path:
    """A usdm BTCUSDT recording of quotes every 50 ms over ``seconds``."""
    directory.mkdir(exist_ok=True)
    steps = int(seconds * 20)
    messages = [_snapshot(0, 100, [["100.0", "3.000"]], [["100.2", "4.000"]])]
    messages += [_ticker("btcusdt", 1 + 50 * k, "100.1", "100.2") for k in range(steps)]
    return _write(directory / "usdm_btcusdt_20240808.jsonl.gz", messages)


def _simulate(data: Path, tmp_path: Path, *extra: str) -> list[str]:
    return ["simulate", "--symbols", "BTCUSDT", "--data", str(data), "--no-mlflow", "--workers", "1",
            "--learners", "ucb", "--orders", "5", "--out", str(tmp_path / "out"), *extra]


def test_a_tape_shorter_than_warm_up_and_tail_is_bad_input(tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "data"
    _recording(data, seconds=0.5)
    line = one_line_failure(_simulate(data, tmp_path), capsys, BAD_INPUT)
    assert "BTCUSDT: the tape (0.5 s) is shorter than warmup_ms + tail_ms of router.json" in line


def test_a_damaged_recording_is_bad_input_naming_the_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "data"
    path = _recording(data, seconds=120)
    path.write_bytes(b"hello, not gzip")
    line = one_line_failure(_simulate(data, tmp_path), capsys, BAD_INPUT)
    assert f"{path}: damaged gzip file" in line


@pytest.mark.parametrize("cut", ["gzip stream", "last line"])
def test_a_recording_cut_short_by_its_writer_is_used_up_to_the_cut_and_says_so(
        tmp_path: Path, cut: str, capsys: pytest.CaptureFixture[str]) -> None:
    """A recorder killed mid-write leaves a gzip stream without its end, or a last line without its newline:
    everything before is sound. It used to refuse the whole file ("damaged or truncated gzip file")."""
    data = tmp_path / "data"
    path = _recording(data, seconds=120)
    if cut == "gzip stream":
        raw = path.read_bytes()
        path.write_bytes(raw[: len(raw) // 2])
    else:
        with gzip.open(path, "ab") as fh:
            fh.write(b'1723161255088156767 {"stream":"btcusdt@bookTicker","data":{"e":"bookT')
    assert main(_simulate(data, tmp_path)) == 0
    data_line = next(line for line in capsys.readouterr().err.splitlines() if line.startswith("data: "))
    expected = ("gzip stream ends early, used its first" if cut == "gzip stream"
                else "is incomplete, ignored")
    assert f"CUT SHORT: {path.name}: " in data_line and expected in data_line


@pytest.mark.parametrize(("argv", "message"), [
    (["simulate", "--symbols", "BTCUSDT", "btcusdt", "--no-mlflow"], "--symbols BTCUSDT: named twice"),
    (["simulate", "--orders", str(10**20)], "argument --orders: must be at most 1000000"),
    (["simulate", "--workers", "100000"], "argument --workers: must be at most 1024"),
    (["simulate", "--seed", str(2**40)], "argument --seed: must be at most 4294967295"),
    (["simulate", "--data", "/dev/null", "--no-mlflow"], "market data directory from argument is not a directory"),
    (["health", "--alerts-since-s", "nan"], "argument --alerts-since-s: must be a number at least 0"),
    (["health", "--alerts-since-s", "-5"], "argument --alerts-since-s: must be a number at least 0"),
    (["health", "--alerts-since-s", "1e308"], "and at most 3.1536e+08, got 1e308"),
    (["health", "--store", "/"], "--store /: not a file (a directory?)"),
    (["ope-dataset", "--dataset", "x", "--candidate", "o0.00_b0.00", "--seed", "-1"],
     "argument --seed: must be at least 0"),
])
def test_numbers_and_paths_out_of_range_are_one_line(argv: list[str], message: str,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    assert message in one_line_failure(argv, capsys, BAD_INPUT)


def test_an_export_to_a_fifo_or_device_is_refused_and_the_node_kept(tmp_path: Path,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    """``journal export --out /dev/full`` used to rename the Parquet file over the device node (as root)."""
    journal = tmp_path / "journal.sqlite"
    Journal(journal).close()
    fifo = tmp_path / "out.parquet"
    os.mkfifo(fifo)
    line = one_line_failure(["journal", "export", "--journal", str(journal), "--kind", "router", "--out",
                             str(fifo)], capsys, BAD_INPUT)
    assert "exists and is not a regular file" in line
    assert stat.S_ISFIFO(fifo.stat().st_mode)
    assert not list(tmp_path.glob(".out.parquet.*"))  # no temporary left behind


def test_config_json_deeper_than_the_parser_is_a_config_problem(config_dir: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    (config_dir / "tuner.json").write_text("[" * 100_000 + "]" * 100_000)
    assert main(["config", "check", str(config_dir)]) == BAD_INPUT
    err = capsys.readouterr().err
    assert "Traceback" not in err and "tuner.json: $: not valid JSON: nested too deeply" in err


def test_an_mlflow_sql_store_failure_is_one_line_without_the_sql() -> None:
    """``MLFLOW_TRACKING_URI=sqlite:////dev/null`` failed after the whole simulate run as "unexpected
    OperationalError" with the CREATE TABLE statement in the line."""
    from sqlalchemy.exc import OperationalError

    error = OperationalError("CREATE TABLE experiments (experiment_id INTEGER NOT NULL)", {},
                             sqlite3.OperationalError("disk I/O error"))
    code, line = describe_failure(error)
    assert code == RUNTIME_FAILURE
    assert line == ("MLflow store: disk I/O error; check the MLflow store (--tracking-uri, MLFLOW_TRACKING_URI or "
                    "tuner.json mlflow)")


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _simulate_logging_to(uri: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """A short simulate over a minute of recording, logging to MLflow at ``uri`` (``MLFLOW_TRACKING_URI``)."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    data = tmp_path / "data"
    _recording(data, seconds=60.0)
    return [a for a in _simulate(data, tmp_path) if a != "--no-mlflow"]


def test_an_mlflow_server_that_does_not_answer_fails_before_the_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    """It used to fail only after the whole run, after MLflow's own retries (about two minutes)."""
    uri = f"http://127.0.0.1:{_closed_port()}"
    argv = _simulate_logging_to(uri, tmp_path, monkeypatch)
    line = one_line_failure(argv, capsys, RUNTIME_FAILURE)
    assert line.startswith(f"router-tuner simulate: MLflow tracking server {uri} did not answer {uri}/health")
    assert "check the MLflow store" in line
    assert not [p for p in (tmp_path / "out").rglob("*") if p.is_file()], "nothing simulated, nothing written"


def test_a_web_server_that_is_not_mlflow_is_bad_input_before_the_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    """It answered the probe, so the whole run was made, then failed with the server's HTML page in its line, exit 1
    (README, "Bad input and failures")."""
    with _serving(lambda path: _NOT_FOUND_PAGE) as url:
        line = one_line_failure(_simulate_logging_to(url, tmp_path, monkeypatch), capsys, BAD_INPUT)
    assert line.startswith(f"router-tuner simulate: MLflow tracking URI {url}: the server there is not MLflow "
                           "(HTTP 404 on /health, HTTP 404 without MLflow's JSON on "
                           "/api/2.0/mlflow/experiments/get-by-name)")
    assert "<" not in line
    assert not [p for p in (tmp_path / "out").rglob("*") if p.is_file()], "nothing simulated, nothing written"


@pytest.mark.parametrize(("file", "edit", "where"), [
    ("executor.json", lambda d: d["adaptive"].update(tuner_state_path="var/a\x00b.json"),
     "executor.json: $.adaptive.tuner_state_path: holds a control character (U+0000"),
    ("tuner.json", lambda d: d["mlflow"].update(tracking_uri="sqlite:///m\x00l.db"),
     "tuner.json: $.mlflow.tracking_uri: holds a control character (U+0000"),
])
def test_a_nul_in_a_config_path_is_bad_input_before_anything_opens(
        tmp_path: Path, quiet_config: Path, file: str, edit: Callable[[Any], None], where: str,
        capsys: pytest.CaptureFixture[str]) -> None:
    """Both passed `config check`; `live --policy-source tuner` ended in "unexpected ValueError: embedded null byte",
    exit 1 (`simulate` too, with the tracking URI)."""
    edit_config(quiet_config, file, edit)
    line = one_line_failure(_live(tmp_path, quiet_config, "--policy-source", "tuner", "--no-mlflow"), capsys,
                            BAD_INPUT)
    assert where in line
    assert not (tmp_path / "journal.sqlite").exists()


@pytest.mark.parametrize("role", ["--journal", "tuner_state_path"])
def test_a_path_through_a_symbolic_link_loop_is_bad_input(tmp_path: Path, quiet_config: Path, role: str,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    """`live` ended in "unexpected RuntimeError: Symlink loop from …", exit 1 (from `--journal`, or from executor.json
    adaptive.tuner_state_path, which `config check` passed); `journal export --out` too."""
    (tmp_path / "a").symlink_to(tmp_path / "b")
    (tmp_path / "b").symlink_to(tmp_path / "a")
    looped = tmp_path / "a" / "x.sqlite"
    if role == "--journal":
        argv = _live(tmp_path, quiet_config, journal=looped)
    else:
        edit_config(quiet_config, "executor.json", lambda d: d["adaptive"].update(tuner_state_path=str(looped)))
        argv = _live(tmp_path, quiet_config, "--policy-source", "tuner", "--no-mlflow")
    line = one_line_failure(argv, capsys, BAD_INPUT)
    assert f"{looped}: a symbolic link on its way leads back to itself" in line


def test_a_file_name_longer_than_the_file_system_takes_is_bad_input(tmp_path: Path, quiet_config: Path,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    """It was exit 1 ("File name too long"), a runtime failure, though the name was the problem."""
    journal = tmp_path / ("j" * 300 + ".sqlite")
    line = one_line_failure(_live(tmp_path, quiet_config, journal=journal), capsys, BAD_INPUT)
    assert line.endswith(f"{journal}: a file or folder name is longer than the file system takes; shorten it")


@pytest.mark.parametrize(("uri", "problem"), [
    ("http://127.0.0.1:99999", "has no port a connection can reach (1 to 65535 after the host's colon)"),
    ("http:///x", "names no host (or holds a space)"),
])
def test_an_mlflow_server_uri_no_socket_can_reach_is_bad_input(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                               uri: str, problem: str,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    """It read "MLflow tracking server … did not answer … within 5 s", exit 1, as if a server were down."""
    argv = _simulate_logging_to(uri, tmp_path, monkeypatch)
    line = one_line_failure(argv, capsys, BAD_INPUT)
    assert line.startswith(f"router-tuner simulate: MLflow tracking URI {uri}: {problem}")
