"""Bad inputs of the careless-user pass that used to be accepted silently, lose data or end in the wrong code.

Each ends in one stderr line (``one_line_failure``) and the documented exit code, before anything is written.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import shutil
import time
from pathlib import Path

import numpy as np
import pytest

from router_tuner.cli.main import BAD_INPUT, INTERRUPTED, main
from router_tuner.config.loader import load_config
from router_tuner.executor.journal import Journal
from router_tuner.executor.venues import synthetic_tapes
from router_tuner.router.market.binance import read_binance
from router_tuner.router.market.parquet import read_tape, write_tape
from router_tuner.router.market.record.chunks import ChunkWriter, recorded_tapes
from router_tuner.router.market.tape import MarketTape
from tests.cli.test_cli_failures import one_line_failure
from tests.cli.test_hostile_inputs import _live, _simulate
from tests.cli.test_unseen_recordings_cli import _minute
from tests.conftest import edit_config


def test_an_export_onto_its_own_journal_is_refused_and_the_journal_kept(
        journal_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """``--out`` naming the journal (here by another spelling) used to replace it with the Parquet file: exit 0,
    every record lost."""
    monkeypatch.chdir(journal_path.parent)
    line = one_line_failure(["journal", "export", "--journal", str(journal_path), "--kind", "router",
                             "--out", f"./{journal_path.name}"], capsys, BAD_INPUT)
    assert line.endswith(f"--journal and --out are the same file ({journal_path.name}): each needs its own file")
    with Journal(journal_path, readonly=True) as journal:
        assert journal.count("router") == 3


@pytest.mark.parametrize("suffix", ["-wal", "-shm", "-journal"])
def test_an_export_onto_its_journals_sqlite_sidecar_is_refused(journal_path: Path, suffix: str,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    """``--out J-wal`` would replace the WAL file holding committed pages not yet checkpointed into J."""
    line = one_line_failure(["journal", "export", "--journal", str(journal_path), "--kind", "router",
                             "--out", f"{journal_path}{suffix}"], capsys, BAD_INPUT)
    assert f"is where SQLite keeps the {suffix} file of --journal" in line
    with Journal(journal_path, readonly=True) as journal:
        assert journal.count("router") == 3


@pytest.mark.parametrize("argv", [
    ["config", "check", ""],
    ["config", "init", " "],
    ["simulate", "--out", ""],
    ["simulate", "--config", ""],
    ["simulate", "--data", ""],
    ["sweep", "--out", ""],
    ["sweep", "--data", "synthetic", ""],
    ["ope", "--journal", "", "--candidate", "o1.00_b0.00"],
    ["ope-dataset", "--dataset", "", "--candidate", "o1.00_b0.00"],
    ["journal", "count", "--journal", ""],
    ["health", "--store", ""],
    ["policy", "list", "--config", ""],
    ["policy", "list", "--tracking-uri", ""],
    ["ope", "--journal", "j", "--candidate", "o1.00_b0.00", "--tracking-uri", " "],
    ["live", "--venue", "binanceusdm", "--intents", "x.jsonl", "--journal", ""],
])
def test_an_empty_path_is_refused(argv: list[str], capsys: pytest.CaptureFixture[str],
                                  monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """``Path("")`` is the current folder: ``--out "$UNSET"`` used to write the journal and report there,
    ``--config ""`` to read whatever config files it held, ``--data ""`` to fall back to the default data,
    ``--tracking-uri ""`` to fall back to MLFLOW_TRACKING_URI or the configured store."""
    monkeypatch.chdir(tmp_path)
    line = one_line_failure(argv, capsys, BAD_INPUT)
    assert "empty: name a file, folder or store" in line
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("command", [["simulate", "--symbols", "BTCUSDT", "--orders", "20"],
                                     ["sweep", "--data", "synthetic", "--symbols", "BTCUSDT", "--orders", "20"]])
def test_a_tracking_uri_mlflow_cannot_use_is_refused_before_the_run(
        command: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """It used to be found after the whole run, when its results were logged (exit 1, a runtime failure)."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "zz://nowhere")
    out = tmp_path / "out"
    line = one_line_failure([*command, "--out", str(out)], capsys, BAD_INPUT)
    assert "unsupported URI 'zz://nowhere'" in line and "MLFLOW_TRACKING_URI" in line
    assert not [path for path in out.rglob("*") if path.is_file()]  # no journal, report or task checkpoint


@pytest.mark.parametrize("policy_source", ["registry", "tuner"])
def test_live_with_a_tracking_uri_mlflow_cannot_use_is_bad_input_before_anything_starts(
        policy_source: str, tmp_path: Path, quiet_config: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """It used to be exit 1, "policy source not started", as if a registry had refused."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "zz://nowhere")
    line = one_line_failure(_live(tmp_path, quiet_config, "--policy-source", policy_source), capsys, BAD_INPUT)
    assert "unsupported URI 'zz://nowhere'" in line
    assert not (tmp_path / "journal.sqlite").exists()


@pytest.mark.parametrize("command", [["sweep", "--data", "synthetic"],
                                     ["ope-dataset", "--dataset", "d", "--candidate", "o1.00_b0.00"]])
@pytest.mark.parametrize(("workers", "message"), [("0", "must be at least 1, got 0"),
                                                  ("100000", "must be at most 1024, got 100000"),
                                                  ("two", "'two' is not a whole number")])
def test_workers_out_of_range_is_refused_like_simulate(command: list[str], workers: str, message: str,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    """``--workers 100000`` used to start a local Ray of that many CPUs (simulate refused it)."""
    line = one_line_failure([*command, "--workers", workers], capsys, BAD_INPUT)
    assert f"argument --workers: {message}" in line


@pytest.mark.parametrize("taken", ["out", "out/tasks"])
def test_a_sweep_out_or_its_tasks_folder_that_is_a_file_is_refused_before_any_task(
        taken: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """It used to fail as the first task's failure: exit 1, a runtime failure."""
    path = tmp_path / taken
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("keep me")
    line = one_line_failure(["sweep", "--data", "synthetic", "--symbols", "BTCUSDT", "--learners", "ucb",
                             "--orders", "20", "--no-mlflow", "--out", str(tmp_path / "out")], capsys, BAD_INPUT)
    assert f"output directory {tmp_path / 'out' / 'tasks'}" in line and path.read_text() == "keep me"


def test_an_interrupted_sweep_exits_130(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """Ctrl-C in a sweep used to exit 1 (a runtime failure); 130 is the documented code."""
    import router_tuner.simulation.sweep.run as sweep_run

    def interrupted(*_args: object, **_kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(sweep_run, "run_sweep", interrupted)
    assert main(["sweep", "--data", "synthetic", "--symbols", "BTCUSDT", "--learners", "ucb", "--orders", "20",
                 "--no-mlflow", "--out", str(tmp_path / "out")]) == INTERRUPTED
    assert "run the same command again to resume" in capsys.readouterr().err


def _recorded_in_chunks(tape: MarketTape, out: Path, chunks: int) -> list[Path]:
    """``tape``'s quotes and trades as ``record --out OUT`` leaves a recording of ``chunks`` flushes (no depth)."""
    edges = np.linspace(tape.start_ns, tape.end_ns + 1, chunks + 1).astype(np.int64)
    writer = ChunkWriter(out, tape.symbol)
    paths = []
    for start, end in itertools.pairwise(edges):
        quotes = (tape.quote_ts_ns >= start) & (tape.quote_ts_ns < end)
        trades = (tape.trade_ts_ns >= start) & (tape.trade_ts_ns < end)
        empty = np.empty(0, dtype=np.int64)
        paths.append(writer.write(dataclasses.replace(
            tape, quote_ts_ns=tape.quote_ts_ns[quotes], bid_px=tape.bid_px[quotes], bid_qty=tape.bid_qty[quotes],
            ask_px=tape.ask_px[quotes], ask_qty=tape.ask_qty[quotes], trade_ts_ns=tape.trade_ts_ns[trades],
            trade_px=tape.trade_px[trades], trade_qty=tape.trade_qty[trades],
            trade_buyer_maker=tape.trade_buyer_maker[trades], depth_ts_ns=empty, depth_side=np.empty(0, np.int8),
            depth_px=empty, depth_qty=empty, depth_snapshot_idx=empty, depth_gap_ts_ns=empty,
            mark_ts_ns=empty, mark_px=np.empty(0))))
    return paths


def test_a_recording_of_several_chunks_replays_through_its_folder(
        tmp_path: Path, quiet_config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A recording longer than one flush is several chunks of one symbol: `--tape` refused them as two tapes of
    one symbol, so only its first flush could be replayed. A symbol's chunk folder, or `record`'s --out folder, is
    now merged into one tape per symbol."""
    out = tmp_path / "recording"
    chunks = {tape.symbol: _recorded_in_chunks(tape, out, 3)
              for tape in synthetic_tapes(load_config(quiet_config), start_ns=time.time_ns())}
    line = one_line_failure(_live(tmp_path, quiet_config, "--tape", str(chunks["ETHUSDT"][0]), "--tape",
                                  str(chunks["ETHUSDT"][1])), capsys, BAD_INPUT)
    assert line.endswith("--tape: two tapes for ETHUSDT: give one per symbol (a recording's chunks: give their "
                         "folder, OUT/SYMBOL, and they are replayed as one)")
    (tmp_path / "empty").mkdir()
    line = one_line_failure(_live(tmp_path, quiet_config, "--tape", str(tmp_path / "empty")), capsys, BAD_INPUT)
    assert line.endswith(f"--tape {tmp_path / 'empty'}: a folder without recorded chunks (chunk-NNNNNN.parquet) nor "
                         "symbol folders holding them: give a Parquet tape, a symbol's chunk folder (OUT/SYMBOL) or "
                         "the --out folder of `router-tuner record`")
    assert not (tmp_path / "journal.sqlite").exists()
    assert main(_live(tmp_path, quiet_config, "--tape", str(out / "BTCUSDT"), "--tape", str(out / "ETHUSDT"))) == 0
    capsys.readouterr()
    rerun = tmp_path / "rerun"
    rerun.mkdir()
    assert main(_live(rerun, quiet_config, "--tape", str(out))) == 0  # every symbol of the --out folder
    merged = recorded_tapes(out / "BTCUSDT")[0]
    assert merged.quote_ts_ns.size == sum(read_tape(p).quote_ts_ns.size for p in chunks["BTCUSDT"])


def test_the_main_job_replays_a_folder_written_by_record(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`simulate --data D` on `record --out D` said "no recorded Binance files in D": a market recorded with the
    product could only be replayed through paper `live`. Its chunks are now a market like a capture's days."""
    capture = read_binance([_minute(tmp_path / "capture")]).tape
    recorded = tmp_path / "recorded"
    _recorded_in_chunks(dataclasses.replace(capture, market="binanceusdm"), recorded, 3)
    assert main(_simulate(recorded, tmp_path, "--json")) == 0
    captured = capsys.readouterr()
    data = json.loads(captured.out.strip().splitlines()[-1])["symbols"]["BTCUSDT"]["data"]
    assert (data["files"], data["read"]) == (3, {"bookTicker": capture.quote_ts_ns.size,
                                                 "trade": capture.trade_ts_ns.size})
    assert "data: usdm BTCUSDT, 3 files: used bookTicker 1200, trade 60" in captured.err
    shutil.copy(next((tmp_path / "capture").iterdir()), recorded)  # the same market as a capture beside it
    line = one_line_failure(_simulate(recorded, tmp_path), capsys, BAD_INPUT)
    assert line.endswith(f"{recorded} holds usdm BTCUSDT twice, as Binance captures and as the recorded folder "
                         f"{recorded / 'BTCUSDT'}: keep one of them in the folder")


def test_paper_mode_without_a_tape_for_every_instrument_is_bad_input(
        tmp_path: Path, quiet_config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """One ``--tape`` of two instruments used to start, then stop as a reconciliation failure (exit 1:
    ``ReconcileError: BTCUSDT positions unavailable``); a second tape of one symbol, or one outside the
    instruments, as ``venue not started: ValueError`` (exit 1)."""
    tapes = {tape.symbol: tape for tape in synthetic_tapes(load_config(quiet_config), start_ns=time.time_ns())}
    paths = {}
    for symbol, tape in tapes.items():
        paths[symbol] = tmp_path / f"{symbol}.parquet"
        write_tape(tape, paths[symbol])
    line = one_line_failure(_live(tmp_path, quiet_config, "--tape", str(paths["ETHUSDT"])), capsys, BAD_INPUT)
    assert line.endswith("--tape: no tape for BTCUSDT: paper mode replays one tape for each instrument "
                         "(BTCUSDT ETHUSDT)")
    line = one_line_failure(_live(tmp_path, quiet_config, "--tape", str(paths["ETHUSDT"]),
                                  "--tape", str(paths["ETHUSDT"])), capsys, BAD_INPUT)
    assert line.endswith("--tape: two tapes for ETHUSDT: give one per symbol (a recording's chunks: give their "
                         "folder, OUT/SYMBOL, and they are replayed as one)")
    assert not (tmp_path / "journal.sqlite").exists()
    assert main(_live(tmp_path, quiet_config, "--tape", str(paths["ETHUSDT"]), "--tape", str(paths["BTCUSDT"]))) == 0


def test_paper_mode_with_an_empty_synthetic_market_is_bad_input(
        tmp_path: Path, quiet_config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """It used to be ``venue not started: ValueError: paper venue needs tapes of one market …`` (exit 1)."""
    edit_config(quiet_config, "executor.json", lambda d: d["paper"].update(synthetic={}))
    line = one_line_failure(_live(tmp_path, quiet_config), capsys, BAD_INPUT)
    assert line.endswith("executor.json paper.synthetic: no tape for BTCUSDT ETHUSDT: paper mode replays one tape "
                         "for each instrument (BTCUSDT ETHUSDT)")


@pytest.mark.parametrize(("argv", "message"), [
    (["show", "--symbol", "DOGEUSDT"], "--symbol DOGEUSDT: not in strategy_config.json universe (the embedded "
     "defaults': pass --config DIR if you added it to the universe of yours); choose from "),
    (["go-live", "--symbol", "BTCUSD", "--who", "me", "--why", "test"], "--symbol BTCUSD: not in strategy_config"),
    (["show", "--symbol", "BTCUSDT", "--version", "0"], "argument --version: must be at least 1, got 0"),
    (["promote", "--symbol", "BTCUSDT", "--version", "-3", "--force"], "argument --version: must be at least 1"),
])
def test_policy_refuses_an_unknown_symbol_or_version_before_mlflow(
        argv: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """They used to be looked up in MLflow and not found: exit 1, 'check the MLflow store'."""
    store = tmp_path / "mlflow.db"
    line = one_line_failure(["policy", *argv, "--tracking-uri", f"sqlite:///{store}"], capsys, BAD_INPUT)
    assert message in line and not store.exists()


def test_a_symbol_outside_a_given_configs_universe_is_not_sent_to_pass_it(
        tmp_path: Path, quiet_config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Without --config the line says the universe is the embedded one (a user who added DOGEUSDT to a config
    directory for `simulate --config DIR` and then ran `policy show --symbol DOGEUSDT` was told only "not in
    strategy_config.json universe"); with --config it names no other."""
    store = tmp_path / "mlflow.db"
    line = one_line_failure(["policy", "show", "--symbol", "DOGEUSDT", "--config", str(quiet_config),
                             "--tracking-uri", f"sqlite:///{store}"], capsys, BAD_INPUT)
    assert "--symbol DOGEUSDT: not in strategy_config.json universe; choose from " in line and not store.exists()


def test_a_path_whose_bytes_are_not_utf8_is_refused(tmp_path: Path, journal_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    """It used to end in ``unexpected UnicodeEncodeError … report it`` (exit 1) when Arrow or SQLite opened it."""
    out = str(tmp_path) + "/\udcfe.parquet"  # how Python passes the byte 0xFE of a file name
    line = one_line_failure(["journal", "export", "--journal", str(journal_path), "--kind", "router", "--out", out],
                            capsys, BAD_INPUT)
    assert "argument --out: b'" in line and "/\\xfe.parquet' is not valid UTF-8: rename the file or folder" in line


def test_an_unwritable_partitioned_export_names_the_output_not_the_journal(
        journal_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The line used to read ``journal J: No such file or directory: /proc/.ds.x``: the journal was fine."""
    line = one_line_failure(["journal", "export", "--journal", str(journal_path), "--kind", "router",
                             "--partitioned", "/proc/ds"], capsys, BAD_INPUT)
    assert line.startswith("router-tuner journal: output directory /proc: ") and str(journal_path) not in line


@pytest.mark.parametrize(("taken", "message"), [
    ("simulation.sqlite", "exists and is not a regular file (a device, FIFO or folder): it would be replaced"),
    ("report", "output directory {out}/report: File exists"),
])
def test_a_simulate_output_taken_by_the_wrong_kind_of_entry_is_refused_before_the_run(
        taken: str, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A folder named simulation.sqlite, or a file named report, in --out used to fail after the whole run
    (the default run: 44 s on two cores, lost); the line is the only output: no data loaded, nothing routed."""
    out = tmp_path / "out"
    out.mkdir()
    if taken == "simulation.sqlite":
        (out / taken).mkdir()
    else:
        (out / taken).write_text("mine")
    line = one_line_failure(["simulate", "--symbols", "BTCUSDT", "--orders", "20", "--no-mlflow",
                             "--out", str(out)], capsys, BAD_INPUT)
    assert message.format(out=out) in line


@pytest.mark.parametrize(("argv", "message"), [
    (["simulate", "--no-mlflow", "--tracking-uri", "STORE", "--out", "OUT"],
     "--tracking-uri STORE is ignored with --no-mlflow, which logs nothing to MLflow: drop --no-mlflow to log there, "
     "or drop --tracking-uri"),
    (["ope", "--journal", "JOURNAL", "--candidate", "o1.00_b0.00", "--tracking-uri", "STORE", "--prefix", "sim"],
     "--tracking-uri and --prefix: only for an MLflow reference (SYMBOL@ALIAS, SYMBOL/N), and neither --candidate nor "
     "--baseline is one, so it would be ignored: drop it, or name a registered version"),
    (["policy", "promote", "--symbol", "BTCUSDT", "--journal", "JOURNAL", "--who", "me", "--why", "x",
      "--tracking-uri", "STORE"],
     "promote --who and --why are recorded only with --force (a gated promotion records its OPE verdict): drop them, "
     "or add --force and drop --journal"),
    (["live", "--venue", "binanceusdm", "--intents", "JOURNAL", "--tracking-uri", "STORE", "--journal", "OUT"],
     "--tracking-uri STORE is ignored: only --policy-source registry, or tuner without --no-mlflow, opens MLflow; drop "
     "--tracking-uri"),
])
def test_an_option_another_one_makes_unused_is_refused_before_anything_runs(
        argv: list[str], message: str, tmp_path: Path, journal_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    """Each was accepted and silently ignored (exit 0): a simulation meant for another store logged nowhere, an
    ope scored without the registry the user named, a promotion recorded without the who and why given."""
    store, out = f"sqlite:///{tmp_path / 'mlflow.db'}", tmp_path / "out"
    given = {"STORE": store, "OUT": str(out), "JOURNAL": str(journal_path)}
    line = one_line_failure([given.get(arg, arg) for arg in argv], capsys, BAD_INPUT)
    assert line == f"router-tuner {argv[0]}: {message.replace('STORE', store)}"
    assert not (tmp_path / "mlflow.db").exists() and not out.exists()
