"""The third careless-user pass (``ope``, ``ope-dataset``, ``policy``, ``journal``, ``health``, ``record``, ``config
check``): each bad input it found ends in one line and a documented exit code, never a wrong answer read as right.

Every case here failed before its fix: it exited 0 on a partial answer, printed a stale or foreign result, lost
a file, or ended in "unexpected …".
"""

from __future__ import annotations

import json
from pathlib import Path

import msgspec
import pytest

from router_tuner.cli.main import BAD_INPUT, main
from router_tuner.executor.journal import Journal
from router_tuner.router.events import RouterEvent
from router_tuner.tuner.ope.partition.layout import write_router_events
from tests.conftest import edit_config
from tests.factories import fill, routed

T0_NS = 1_723_161_600_000_000_000  # 2024-08-09T00:00:00Z
ARMS = ("o0.00_b0.00", "o1.00_b0.00", "o2.00_b0.00")


def _events(symbol: str, arms: tuple[str, ...], n: int = 300) -> list[RouterEvent]:
    """``n`` filled orders of ``symbol`` logged by a uniform choice over ``arms`` (cost varies with the index)."""
    return [routed(intent_id=f"{symbol}-{i}", symbol=symbol, arm=arms[i % len(arms)], propensity=1 / len(arms),
                   arrival_ts_ns=T0_NS + i * 1_000_000_000,
                   fills=(fill(100.0 * (1 + (i % 7) / 1e4), 1.0, trade_id=f"t{symbol}{i}"),))
            for i in range(n)]


def _journal(path: Path, events: list[RouterEvent]) -> Path:
    with Journal(path) as journal:
        journal.append_many(events)
    return path


def _run(argv: list[str], capsys: pytest.CaptureFixture[str], code: int) -> tuple[str, str]:
    """Run a command expecting ``code``: its stdout, and its one stderr line (no traceback)."""
    try:
        got = main(argv)
    except SystemExit as stop:
        got = stop.code
    captured = capsys.readouterr()
    lines = [line for line in captured.err.strip().splitlines() if " INFO mlflow." not in line]
    assert got == code, captured.err
    assert "Traceback" not in captured.err and len(lines) == 1, captured.err
    assert lines[0].startswith("router-tuner "), lines[0]
    return captured.out, lines[0]


@pytest.fixture(scope="module")
def mixed_journal(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """BTCUSDT logged on the three arms, ETHUSDT on another grid: a BTCUSDT arm has no support on ETHUSDT."""
    return _journal(tmp_path_factory.mktemp("mixed") / "journal.sqlite",
                    _events("BTCUSDT", ARMS) + _events("ETHUSDT", ("o7.00_b0.00",)))


@pytest.mark.parametrize("as_json", [False, True])
def test_ope_dataset_fails_when_one_symbol_cannot_be_scored(mixed_journal: Path, tmp_path: Path, as_json: bool,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    with Journal(mixed_journal, readonly=True) as journal:
        write_router_events(tmp_path / "ds", list(journal.read("router")))  # type: ignore[arg-type]
    out, line = _run(["ope-dataset", "--dataset", str(tmp_path / "ds"), "--candidate", "o1.00_b0.00",
                      *(["--json"] if as_json else [])], capsys, BAD_INPUT)
    assert line.startswith("router-tuner ope-dataset: 1 of 2 symbol(s) not scored: ETHUSDT: candidate arm "
                           "o1.00_b0.00 was never taken") and "(the others are printed above)" in line
    if as_json:  # stdout still carries the whole result, the failed symbol with its error
        symbols = json.loads(out)["symbols"]
        assert "estimates" in symbols["BTCUSDT"] and "no support" in symbols["ETHUSDT"]["error"]
    else:
        assert out.startswith("BTCUSDT: o1.00_b0.00 on 300 filled events") and "ETHUSDT" not in out


@pytest.mark.parametrize("as_json", [False, True])
def test_ope_fails_when_one_symbol_of_the_log_cannot_be_scored(mixed_journal: Path, as_json: bool,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    out, line = _run(["ope", "--journal", str(mixed_journal), "--candidate", "o1.00_b0.00",
                      *(["--json"] if as_json else [])], capsys, BAD_INPUT)
    assert line.startswith("router-tuner ope: 1 of 2 symbol(s) not scored: ETHUSDT: candidate arm o1.00_b0.00")
    if as_json:
        result = json.loads(out)
        assert [r["symbol"] for r in result["results"]] == ["BTCUSDT"]
        assert [s["symbol"] for s in result["skipped"]] == ["ETHUSDT"]
    else:
        assert out.startswith("BTCUSDT: candidate o1.00_b0.00") and "not scored" not in out
    # the symbol that can be scored, asked for alone, is a success
    assert main(["ope", "--journal", str(mixed_journal), "--candidate", "o1.00_b0.00", "--symbol", "BTCUSDT"]) == 0


def test_config_check_refuses_the_markout_reward_live_refuses(config_dir: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    edit_config(config_dir, "tuner.json", lambda data: data.update(reward_markout_horizon_ms=1000.0))
    assert main(["config", "check", str(config_dir), "--json"]) == BAD_INPUT
    captured = capsys.readouterr()
    [problem] = json.loads(captured.out)["problems"]
    assert (problem["file"], problem["path"]) == ("tuner.json", "$.reward_markout_horizon_ms")
    assert "only `simulate` can learn; set it to 0 for live adaptive routing" in problem["message"]
    assert "$.reward_markout_horizon_ms: 1000 charges markout" in captured.err


def test_config_check_refuses_a_route_end_reward_without_the_waiting_drift(config_dir: Path,
                                                                           capsys: pytest.CaptureFixture[str]) -> None:
    """``route_end`` runs live (the loop reads the touch when a route ends); with ``reward_mid_drift_window`` 0
    it would assume intents that know nothing of the price, which live refuses, and config check with it."""
    edit_config(config_dir, "tuner.json", lambda data: data.update(reward_mid="route_end"))
    assert main(["config", "check", str(config_dir)]) == 0
    capsys.readouterr()
    edit_config(config_dir, "tuner.json", lambda data: data.update(reward_mid_drift_window=0))
    assert main(["config", "check", str(config_dir)]) == BAD_INPUT
    assert "tuner.json: $.reward_mid_drift_window: 0 assumes intents that know nothing" in capsys.readouterr().err
    edit_config(config_dir, "tuner.json", lambda data: data.update(reward_mid="end"))
    assert main(["config", "check", str(config_dir)]) == BAD_INPUT
    assert "$.reward_mid" in capsys.readouterr().err
    edit_config(config_dir, "tuner.json", lambda data: data.update(reward_mid="route_end", reward_mid_drift_window=-1))
    assert main(["config", "check", str(config_dir)]) == BAD_INPUT
    assert "$.reward_mid_drift_window" in capsys.readouterr().err


def test_config_check_passes_what_live_runs(config_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", "check", str(config_dir)]) == 0
    assert ": OK (" in capsys.readouterr().out


def test_a_journal_row_of_another_event_schema_is_refused_not_read_as_this_one(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    events = _events("BTCUSDT", ARMS, n=30)
    events[5] = msgspec.structs.replace(events[5], schema_version=events[5].schema_version + 1)
    path = tmp_path / "journal.sqlite"
    with Journal(path) as journal:  # written around the writer's own check, as a newer build would write it
        journal.append_many(events[:5])
        journal._connection.execute(
            "INSERT INTO events (kind, symbol, ts_ns, intent_id, payload) VALUES ('router', ?, ?, ?, ?)",
            (events[5].symbol, events[5].finished_ts_ns, events[5].intent_id, msgspec.json.encode(events[5]).decode()))
        journal.append_many(events[6:])
    _, line = _run(["ope", "--journal", str(path), "--candidate", "o1.00_b0.00"], capsys, BAD_INPUT)
    assert "journal row 6 is corrupt" in line and "schema_version 3" in line


@pytest.mark.parametrize("payload", ['{"garbage": 1}', "{not json"])
def test_health_names_a_damaged_snapshot(tmp_path: Path, payload: str, capsys: pytest.CaptureFixture[str]) -> None:
    from router_tuner.executor.store import ExecutorStore

    store = tmp_path / "executor.sqlite"
    with ExecutorStore(store) as opened:
        opened._conn.execute("INSERT INTO health (ts_ns, payload) VALUES (1, ?)", (payload,))
    out, line = _run(["health", "--store", str(store), "--json"], capsys, BAD_INPUT)
    assert out == ""
    assert line.startswith(f"router-tuner health: executor store {store}: its latest health snapshot or an alert "
                           "does not read (") and line.endswith("restore it from a copy")


@pytest.mark.parametrize(("offset_s", "says"), [
    (-3 * 86_400, "was taken 259200 s ago (2026-"),
    (400 * 86_400, "is stamped 3.456e+07 s ahead of this machine's clock")])
def test_health_says_when_its_latest_snapshot_is_stale_or_from_the_future(
        tmp_path: Path, offset_s: int, says: str, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """An executor stopped three days ago: `health` printed its last snapshot as the current health, exit 0, with
    nothing but a raw ts_ns to tell (its nav_age_s is the NAV's age at the snapshot); a snapshot stamped a year ahead
    alike. Now a `snapshot_age_s` line (STALE), `snapshot_age_s`/`stale` in --json and a warning on stderr."""
    import time

    from router_tuner.executor.records import HealthSnapshot
    from router_tuner.executor.store import ExecutorStore

    now_ns = 1_796_428_800_000_000_000  # 2026-12-05T00:00:00Z
    monkeypatch.setattr(time, "time_ns", lambda: now_ns)
    snapshot = HealthSnapshot(
        ts_ns=now_ns + offset_s * 1_000_000_000, nav_usd=1e4, wallet_balance_usd=1e4, nav_age_s=1.0,
        open_positions=0, gross_exposure_usd=0.0, orders_in_window=0, maker_ratio=None, fallback_ratio=None,
        reprice_loop_ratio=None, slippage_p25_bps=None, slippage_p50_bps=None, slippage_p75_bps=None,
        fee_drag_bps=None, rolling_sharpe=None, window_realized_pnl_usd=0.0, vetoes_in_storm_window=0, symbols=(),
        expectancy=(), allocations=(), allocator_applied=False)
    store = tmp_path / "executor.sqlite"
    with ExecutorStore(store) as opened:
        opened.append_health(snapshot, (), None)
    assert main(["health", "--store", str(store)]) == 0
    captured = capsys.readouterr()
    assert captured.out.startswith(f"snapshot_age_s            {-offset_s:.6g} (taken ") and "STALE)" in \
        captured.out.splitlines()[0]
    [warning] = captured.err.splitlines()
    assert warning.startswith(f"router-tuner health: warning: the latest snapshot in {store} {says}")
    assert warning.endswith("every figure is as of then")
    assert main(["health", "--store", str(store), "--json"]) == 0
    captured = capsys.readouterr()
    decoded = json.loads(captured.out)
    assert decoded["stale"] is True and decoded["snapshot_age_s"] == pytest.approx(-offset_s)
    assert len(captured.err.splitlines()) == 1
    assert main(["health", "--store", str(store), "--json", "--stale-after-s", str(abs(offset_s) + 1)]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["stale"] is False and captured.err == ""


def test_journal_export_keeps_a_file_that_is_not_an_earlier_export(tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    journal = _journal(tmp_path / "journal.sqlite", _events("BTCUSDT", ARMS, n=10))
    other = _journal(tmp_path / "other.sqlite", _events("ETHUSDT", ARMS, n=10))
    before = other.read_bytes()
    _, line = _run(["journal", "export", "--journal", str(journal), "--kind", "router", "--out", str(other)],
                   capsys, BAD_INPUT)
    assert line == (f"router-tuner journal: --out {other}: exists and is not a Parquet file, so it is not an earlier "
                    "export to replace; choose another name, or move it away first")
    assert other.read_bytes() == before, "another journal named as --out used to be replaced by the export"
    _, line = _run(["journal", "export", "--journal", str(journal), "--kind", "router", "--out", str(tmp_path)],
                   capsys, BAD_INPUT)
    assert line.startswith(f"router-tuner journal: --out {tmp_path}: exists and is not a regular file"), \
        "the line used to name the journal"
    export = tmp_path / "router.parquet"
    for rows in (10, 10):  # an earlier export is replaced, as documented
        assert main(["journal", "export", "--journal", str(journal), "--kind", "router", "--out", str(export)]) == 0
        assert f"wrote {rows} router records" in capsys.readouterr().out


@pytest.mark.parametrize(("flags", "message"), [
    (["--flush-seconds", "1e308"], "flush_interval_s must be at most 86400, got 1e+308"),
    (["--seconds", "1e12"], "duration_s must be at most 3.16224e+07"),
    (["--reconnect-initial-ms", "1e308", "--reconnect-max-ms", "1e308"], "reconnect_initial_ms must be at most"),
    (["--max-failures", "99999999999999999999"], "max_consecutive_failures must be at most 1e+06"),
    (["--api-url", "junk"], "argument --api-url: 'junk' is not a URL of the form http://HOST or https://HOST"),
    (["--api-url", ""], "argument --api-url: '' is not a URL"),
    (["--ws-url", "http://127.0.0.1:9"], "argument --ws-url: 'http://127.0.0.1:9' is not a URL of the form ws://"),
    (["--out", "FILE"], "exists and is not a folder: name a folder"),
    (["--out", "FILE/sub"], "output directory"),
])
def test_record_refuses_bad_flags_before_any_connection(flags: list[str], message: str, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    """The URLs point at a port nothing listens on: a check that came after connecting would fail as exit 1."""
    (tmp_path / "FILE").write_text("not a folder")
    flags = [flag.replace("FILE", str(tmp_path / "FILE")) for flag in flags]
    defaults = {"--out": str(tmp_path / "rec"), "--api-url": "http://127.0.0.1:9", "--ws-url": "ws://127.0.0.1:9"}
    given = dict(zip(flags[::2], flags[1::2], strict=True))
    argv = ["record", "--venue", "binanceusdm", "--symbols", "BTCUSDT",
            *[part for flag, value in (defaults | given).items() for part in (flag, value)]]
    _, line = _run(argv, capsys, BAD_INPUT)
    assert line.startswith("router-tuner record: ") and message in line, line
    assert not (tmp_path / "rec").exists()


def _store(tmp_path: Path, versions: int) -> tuple[str, object]:
    """A fresh SQLite MLflow store with ``versions`` BTCUSDT versions (v1 champion, the last challenger)."""
    from dataclasses import replace

    from router_tuner.config.loader import load_config
    from router_tuner.router.policy import RouterPolicy
    from tests.conftest import default_registry

    uri = f"sqlite:///{tmp_path}/store.db"
    registry = default_registry(uri)
    base = RouterPolicy.from_static("BTCUSDT", load_config().router, policy_id="tuner-BTCUSDT")
    for n in range(1, versions + 1):
        registry.publish(replace(base, version=n, arm=f"o{n:.2f}_b0.00", maker_offset_bps=float(n)),
                         params={}, metrics={}, config_snapshot={})
    return uri, registry


def test_policy_promote_prints_the_gate_record_it_wrote_and_list_keeps_to_its_prefix(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    uri, _ = _store(tmp_path, 2)
    assert main(["policy", "promote", "--symbol", "BTCUSDT", "--force", "--who", "ops", "--why", "test",
                 "--tracking-uri", uri, "--json"]) == 0
    [promoted] = json.loads(capsys.readouterr().out)
    assert promoted["version"] == 2 and promoted["gate"] == {"record": "forced", "problem": None}, \
        "it used to print the version as it was before the tags: 'no gate record'"
    assert main(["policy", "list", "--prefix", "%", "--tracking-uri", uri, "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == [], "LIKE read % as a wildcard and listed every model"
    assert main(["policy", "list", "--prefix", "router_policy", "--tracking-uri", uri, "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == []


def test_policy_list_names_the_version_whose_policy_artifact_is_gone(tmp_path: Path,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    import shutil

    uri, registry = _store(tmp_path, 2)
    run_id = registry.show("BTCUSDT", "2").run_id  # type: ignore[attr-defined]
    artifacts = registry._client.get_run(run_id).info.artifact_uri.removeprefix("file://")  # type: ignore[attr-defined]
    shutil.rmtree(artifacts)
    _, line = _run(["policy", "list", "--tracking-uri", uri], capsys, 1)
    assert line.startswith(f"router-tuner policy: BTCUSDT policy version 2 (router-policy-BTCUSDT, run {run_id}): "
                           "its policy artifact ") and "restore the run's artifacts, or delete that version" in line


@pytest.mark.parametrize("uri", ["garbage!!", "file:///nowhere/mlruns", "relative/folder"])
def test_a_tracking_uri_naming_a_folder_is_bad_input(uri: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_ALLOW_FILE_STORE", raising=False)
    _, line = _run(["policy", "list", "--tracking-uri", uri], capsys, BAD_INPUT)
    assert line.startswith(f"router-tuner policy: MLflow tracking URI {uri!r} is a folder path"), \
        "it was MLflow's paragraph about migrating its file store, exit 1"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)  # the environment is judged the same way
    _, line = _run(["policy", "list"], capsys, BAD_INPUT)
    assert f"MLflow tracking URI {uri!r} is a folder path" in line
    assert not any(tmp_path.iterdir()), "nothing is created for a refused URI"


@pytest.mark.parametrize(("flags", "message"), [
    (["promote", "--force", "--who", "ops", "--why", "x", "--journal", "J"],
     "promote --force skips the OPE gate that --journal is for"),
    (["go-live", "--who", "ops\nadmin", "--why", "x"], "go-live --who and --why: one line of printable text each"),
    (["promote", "--force", "--who", "ops", "--why", "x\x1b[2J"], "one line of printable text each"),
])
def test_policy_refuses_conflicting_or_multi_line_flags_before_mlflow(flags: list[str], message: str, tmp_path: Path,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["policy", flags[0], "--symbol", "BTCUSDT", *[f.replace("J", str(tmp_path / "j.sqlite")) if f == "J"
                                                       else f for f in flags[1:]],
            "--tracking-uri", f"sqlite:///{tmp_path}/store.db"]
    _, line = _run(argv, capsys, BAD_INPUT)
    assert line.startswith("router-tuner policy: ") and message in line
    assert not (tmp_path / "store.db").exists(), "refused before the store is opened"


def test_ope_dataset_refuses_an_export_file_copied_into_a_partition(tmp_path: Path,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    """A ``journal export --out`` file (it has a symbol column) put in a partition folder used to be scored as the
    folder's symbol, whatever symbols its rows were."""
    btc = _events("BTCUSDT", ARMS, n=60)
    write_router_events(tmp_path / "ds", btc)
    journal = _journal(tmp_path / "eth.sqlite", _events("ETHUSDT", ARMS, n=60))
    part = tmp_path / "ds" / "day=2024-08-09" / "symbol=BTCUSDT" / "part-0.parquet"
    part.unlink()
    assert main(["journal", "export", "--journal", str(journal), "--kind", "router", "--out", str(part)]) == 0
    capsys.readouterr()
    _, line = _run(["ope-dataset", "--dataset", str(tmp_path / "ds"), "--candidate", "o1.00_b0.00"], capsys,
                   BAD_INPUT)
    assert f"{part}: holds a symbol column, so it is not a partition file" in line


def test_sweep_refuses_a_table_path_that_is_a_folder_before_any_task(tmp_path: Path,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "sweep.parquet").mkdir()
    _, line = _run(["sweep", "--no-mlflow", "--data", "synthetic", "--orders", "30", "--learners", "thompson",
                    "--seeds", "1", "--out", str(tmp_path)], capsys, BAD_INPUT)
    assert line == (f"router-tuner sweep: {tmp_path / 'sweep.parquet'} exists and is not a file: move it away "
                    "(the table is written there)")
    assert not any((tmp_path / "tasks").iterdir()), "it used to be refused after every task had run"


def test_a_refused_promotion_is_the_usual_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    uri, registry = _store(tmp_path, 2)
    journal = _journal(tmp_path / "journal.sqlite", _events("BTCUSDT", ("o1.00_b0.00",)))  # v2's arm never taken
    _, line = _run(["policy", "promote", "--symbol", "BTCUSDT", "--journal", str(journal), "--tracking-uri", uri,
                    "--json"], capsys, 1)
    assert line.startswith("router-tuner policy: promote refused: ope: candidate arm o2.00_b0.00 was never taken"), \
        "it was 'policy promote: refused: …', outside the documented form"
    assert line.endswith("(the OPE gate)")
    assert registry.champion_version("BTCUSDT") == 1  # type: ignore[attr-defined]
