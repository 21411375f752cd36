"""Live recorder end to end against local fakes: ccxt.pro subscribes and parses for real, no network.

REST (exchangeInfo for load_markets) is ``tests.fakes.binance_usdm``; the market streams are
``tests.fakes.binance_ws``. The recorder runs on its own event loop in a thread while the test drives the
fakes, as a live exchange would.
"""

from __future__ import annotations

import asyncio
import dataclasses
import io
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path

import ccxt.pro
import pytest

from router_tuner.cli.record import repoint_urls
from router_tuner.router.market.record.buffer import RecordingError
from router_tuner.router.market.record.chunks import chunk_paths, read_recording
from router_tuner.router.market.record.recorder import Recorder, RecorderConfig, RecordingSummary
from router_tuner.router.venues.ccxt.quirks import quirks_for
from tests.fakes.binance_usdm import FakeBinanceUsdm, SymbolSpec
from tests.fakes.binance_ws import FakeBinanceWs, book_ticker, trade

REPO = Path(__file__).resolve().parents[2]
SPECS = (SymbolSpec("BTCUSDT", "BTC", "USDT", "0.10", "0.001", "100", 2, 3),
         SymbolSpec("ETHUSDT", "ETH", "USDT", "0.01", "0.001", "20", 2, 3))
T0_MS = 1_723_161_256_313
QUOTE_PACE_S = 0.004  # ccxt conflates quotes read together; paced quotes each reach the recorder


@pytest.fixture(scope="module")
def rest() -> Iterator[FakeBinanceUsdm]:
    with FakeBinanceUsdm("key", "secret", SPECS) as fake:
        yield fake


@pytest.fixture()
def ws() -> Iterator[FakeBinanceWs]:
    with FakeBinanceWs() as fake:
        yield fake


def _config(out: Path, symbols: tuple[str, ...] = ("BTCUSDT", "ETHUSDT"), **kw: float) -> RecorderConfig:
    values: dict = {"duration_s": None, "flush_interval_s": 30.0, "progress_interval_s": 0.2,
                    "reconnect_initial_ms": 10.0, "reconnect_max_ms": 50.0, "max_consecutive_failures": 5}
    values.update(kw)
    return RecorderConfig(exchange_id="binanceusdm", symbols=symbols, out_dir=out, **values)


class Running:
    """A recorder on its own loop in a thread; ``stop()`` returns its summary or raises its error."""

    def __init__(self, config: RecorderConfig, rest: FakeBinanceUsdm, ws_url: str) -> None:
        self.progress = io.StringIO()
        self._loop = asyncio.new_event_loop()
        self._stop_event: asyncio.Event | None = None
        self._result: RecordingSummary | BaseException | None = None
        self.recorder: Recorder | None = None
        self._thread = threading.Thread(target=self._main, args=(config, rest.base_url, ws_url), daemon=True)
        self._thread.start()

    def _main(self, config: RecorderConfig, api_url: str, ws_url: str) -> None:
        async def go() -> RecordingSummary:
            exchange = ccxt.pro.binanceusdm({"options": dict(quirks_for("binanceusdm").ccxt_options)})
            repoint_urls(exchange.urls, api_url, ws_url)
            self._stop_event = asyncio.Event()
            self.recorder = Recorder(config, exchange, self.progress)
            try:
                return await self.recorder.run(self._stop_event)
            finally:
                await exchange.close()

        try:
            self._result = self._loop.run_until_complete(go())
        except BaseException as exc:  # handed to the test thread by stop()
            self._result = exc

    def stop(self) -> RecordingSummary:
        """Ask the recorder to stop (as Ctrl-C does) and return what ``run`` returned."""
        while self._stop_event is None and self._thread.is_alive():
            time.sleep(0.005)
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop_event.set)  # type: ignore[union-attr]
        return self.join()

    def join(self) -> RecordingSummary:
        """Wait for the recorder to end by itself and return (or raise) its outcome."""
        self._thread.join(timeout=20)
        assert not self._thread.is_alive(), "recorder did not stop"
        self._loop.close()
        if isinstance(self._result, BaseException):
            raise self._result
        assert self._result is not None
        return self._result


def _wait(cond: Callable[[], bool], what: str, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


def _quotes(symbol: str, n: int, base: str, t0_ms: int) -> list[dict]:
    # Varying decimal counts ("x.1", "x.25", "x") exercise the exact common-scale conversion.
    out = []
    for i in range(n):
        bid = Decimal(base) + Decimal(i) / 10
        out.append(book_ticker(symbol, 1000 + i, f"{bid}", f"{Decimal('1.5') + i}", f"{bid + Decimal('0.25')}",
                               "0.001" if i % 2 else "3", t0_ms + i))
    return out


def _trades(symbol: str, n: int, base: str, t0_ms: int, first_id: int = 1) -> list[dict]:
    return [trade(symbol, first_id + i, f"{Decimal(base) + Decimal(i) / 100}", f"{Decimal('0.006') * (i + 1)}",
                  t0_ms + i, i % 3 == 0) for i in range(n)]


def _assert_quotes(tape, sent: list[dict]) -> None:
    assert len(tape.quote_ts_ns) == len(sent)
    for i, msg in enumerate(sent):
        assert int(tape.quote_ts_ns[i]) == msg["E"] * 1_000_000
        assert Decimal(int(tape.bid_px[i])) / tape.price_scale == Decimal(msg["b"])
        assert Decimal(int(tape.ask_px[i])) / tape.price_scale == Decimal(msg["a"])
        assert Decimal(int(tape.bid_qty[i])) / tape.qty_scale == Decimal(msg["B"])
        assert Decimal(int(tape.ask_qty[i])) / tape.qty_scale == Decimal(msg["A"])


def _assert_trades(tape, sent: list[dict]) -> None:
    assert len(tape.trade_ts_ns) == len(sent)
    assert tape.trade_ts_ns.tolist() == [m["E"] * 1_000_000 for m in sent]
    assert [Decimal(int(p)) / tape.price_scale for p in tape.trade_px] == [Decimal(m["p"]) for m in sent]
    assert [Decimal(int(q)) / tape.qty_scale for q in tape.trade_qty] == [Decimal(m["q"]) for m in sent]
    assert tape.trade_buyer_maker.tolist() == [m["m"] for m in sent]


def _streams(*symbols: str) -> list[str]:
    return [f"{s.lower()}@{k}" for s in symbols for k in ("bookTicker", "trade")]


def test_recorded_tapes_equal_what_the_exchange_sent(rest: FakeBinanceUsdm, ws: FakeBinanceWs,
                                                     tmp_path: Path) -> None:
    run = Running(_config(tmp_path), rest, ws.ws_url)
    ws.wait_subscribed(_streams("BTCUSDT", "ETHUSDT"), timeout_s=10)
    sent = {"BTCUSDT": (_quotes("BTCUSDT", 25, "61800.2", T0_MS), _trades("BTCUSDT", 40, "61800.3", T0_MS)),
            "ETHUSDT": (_quotes("ETHUSDT", 20, "2580.01", T0_MS), _trades("ETHUSDT", 30, "2580.5", T0_MS))}
    for sym, (quotes, trades) in sent.items():
        assert ws.push(f"{sym.lower()}@bookTicker", quotes, QUOTE_PACE_S) == 1
        assert ws.push(f"{sym.lower()}@trade", trades, 0) == 1
    _wait(lambda: all(run.recorder._symbols[s].stats.quotes == len(q) and
                      run.recorder._symbols[s].stats.trades == len(t) for s, (q, t) in sent.items()),
          "all messages recorded")
    summary = run.stop()
    # The subscription handshake ccxt sent is Binance's: SUBSCRIBE with the raw stream names.
    assert sorted(p for r in ws.subscribe_requests for p in r["params"]) == sorted(_streams("BTCUSDT", "ETHUSDT"))
    for sym, (quotes, trades) in sent.items():
        tape = read_recording(tmp_path, sym)
        assert (tape.symbol, tape.market) == (sym, "binanceusdm")
        assert tape.tick_size == {"BTCUSDT": 0.1, "ETHUSDT": 0.01}[sym]
        _assert_quotes(tape, quotes)
        _assert_trades(tape, trades)
        assert len(tape.depth_gap_ts_ns) == 0
        assert summary.stats[sym].chunks == 1  # the final flush
    assert "BTCUSDT" in run.progress.getvalue() and "quotes/s" in run.progress.getvalue()


def test_periodic_flush_writes_chunks_that_merge_back(rest: FakeBinanceUsdm, ws: FakeBinanceWs,
                                                     tmp_path: Path) -> None:
    run = Running(_config(tmp_path, ("BTCUSDT",), flush_interval_s=0.15), rest, ws.ws_url)
    ws.wait_subscribed(_streams("BTCUSDT"), timeout_s=10)
    first = _trades("BTCUSDT", 10, "61800.3", T0_MS)
    second = _trades("BTCUSDT", 10, "61801.25", T0_MS + 100, first_id=11)
    ws.push("btcusdt@trade", first, 0)
    _wait(lambda: len(chunk_paths(tmp_path / "BTCUSDT")) >= 1, "first chunk")
    ws.push("btcusdt@trade", second, 0)
    _wait(lambda: run.recorder._symbols["BTCUSDT"].stats.trades == 20, "second batch")
    run.stop()
    assert len(chunk_paths(tmp_path / "BTCUSDT")) >= 2
    _assert_trades(read_recording(tmp_path, "BTCUSDT"), first + second)


def test_sigkill_between_flushes_keeps_every_flushed_chunk(rest: FakeBinanceUsdm, ws: FakeBinanceWs,
                                                           tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "router_tuner.cli", "record", "--venue", "binanceusdm", "--symbols", "BTCUSDT",
           "--out", str(tmp_path), "--flush-seconds", "1.5", "--progress-seconds", "5",
           "--api-url", rest.base_url, "--ws-url", ws.ws_url]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        ws.wait_subscribed(_streams("BTCUSDT"), timeout_s=15)
        flushed = _trades("BTCUSDT", 12, "61800.3", T0_MS)
        ws.push("btcusdt@trade", flushed, 0)
        _wait(lambda: len(chunk_paths(tmp_path / "BTCUSDT")) >= 1, "first flushed chunk", timeout_s=10)
        ws.push("btcusdt@trade", _trades("BTCUSDT", 5, "61900", T0_MS + 500, first_id=13), 0)
        time.sleep(0.1)  # received, not yet flushed (the next flush is ~1.4 s away)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    assert proc.returncode == -signal.SIGKILL
    _assert_trades(read_recording(tmp_path, "BTCUSDT"), flushed)


def test_ctrl_c_flushes_and_exits_cleanly(rest: FakeBinanceUsdm, ws: FakeBinanceWs, tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "router_tuner.cli", "record", "--venue", "binanceusdm", "--symbols", "btcusdt",
           "--out", str(tmp_path), "--seconds", "60", "--api-url", rest.base_url, "--ws-url", ws.ws_url]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    ws.wait_subscribed(_streams("BTCUSDT"), timeout_s=15)
    sent = _trades("BTCUSDT", 7, "61800.3", T0_MS)
    ws.push("btcusdt@trade", sent, 0)
    time.sleep(0.3)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=15)
    assert proc.returncode == 0, err
    assert "BTCUSDT: 0 quotes, 7 trades, 0 gaps, 0 rejected, 1 chunks" in out
    _assert_trades(read_recording(tmp_path, "BTCUSDT"), sent)


def test_dropped_connection_reconnects_and_records_a_gap(rest: FakeBinanceUsdm, ws: FakeBinanceWs,
                                                         tmp_path: Path) -> None:
    run = Running(_config(tmp_path, ("BTCUSDT",)), rest, ws.ws_url)
    ws.wait_subscribed(_streams("BTCUSDT"), timeout_s=10)
    before = _trades("BTCUSDT", 5, "61800.3", T0_MS)
    after = _trades("BTCUSDT", 5, "61805", T0_MS + 1000, first_id=50)
    ws.push("btcusdt@trade", before, 0)
    _wait(lambda: run.recorder._symbols["BTCUSDT"].stats.trades == 5, "trades before the drop")
    opened = ws.connections_opened
    assert ws.drop("btcusdt@trade") == 1
    _wait(lambda: ws.connections_opened > opened and "btcusdt@trade" in ws.subscribed_streams(), "re-subscribe")
    ws.push("btcusdt@trade", after, 0)
    _wait(lambda: run.recorder._symbols["BTCUSDT"].stats.trades == 10, "trades after the drop")
    summary = run.stop()
    tape = read_recording(tmp_path, "BTCUSDT")
    _assert_trades(tape, before + after)
    # The gap starts at the last trade stored before the connection dropped.
    assert tape.depth_gap_ts_ns.tolist() == [before[-1]["E"] * 1_000_000]
    assert summary.stats["BTCUSDT"].gaps == 1 and summary.stats["BTCUSDT"].reconnects >= 1
    assert "BTCUSDT trades disconnected" in run.progress.getvalue()


def test_resuming_into_a_recording_marks_a_gap_at_its_end(rest: FakeBinanceUsdm, ws: FakeBinanceWs,
                                                          tmp_path: Path) -> None:
    first = _trades("BTCUSDT", 3, "61800.3", T0_MS)
    second = _trades("BTCUSDT", 3, "61810", T0_MS + 60_000, first_id=90)
    for batch in (first, second):
        run = Running(_config(tmp_path, ("BTCUSDT",)), rest, ws.ws_url)
        _wait(lambda: "btcusdt@trade" in ws.subscribed_streams(), "subscription")
        ws.push("btcusdt@trade", batch, 0)
        _wait(lambda r=run, b=batch: r.recorder._symbols["BTCUSDT"].stats.trades == len(b), "batch")
        run.stop()
        _wait(lambda: not ws.subscribed_streams(), "client closed")
    tape = read_recording(tmp_path, "BTCUSDT")
    _assert_trades(tape, first + second)
    assert tape.depth_gap_ts_ns.tolist() == [first[-1]["E"] * 1_000_000]


def test_unknown_symbol_is_a_clear_error_before_anything_is_written(rest: FakeBinanceUsdm, ws: FakeBinanceWs,
                                                                    tmp_path: Path) -> None:
    run = Running(_config(tmp_path, ("BTCUSDT", "NOPEUSDT")), rest, ws.ws_url)
    with pytest.raises(RecordingError, match=r"binanceusdm: unknown symbol 'NOPEUSDT' \(2 markets loaded"):
        run.stop()
    assert not (tmp_path / "BTCUSDT").exists()
    assert ws.subscribe_requests == []


def test_cli_unknown_symbol_exits_1(rest: FakeBinanceUsdm, ws: FakeBinanceWs, tmp_path: Path,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    from router_tuner.cli.main import main

    code = main(["record", "--venue", "binanceusdm", "--symbols", "BTCUSDT,ETHUSDX", "--out", str(tmp_path),
                 "--api-url", rest.base_url, "--ws-url", ws.ws_url])
    assert code == 1
    err = capsys.readouterr().err
    assert "unknown symbol 'ETHUSDX'" in err and "similar: ETHUSDT" in err


def test_cli_json_prints_the_counts_as_one_object(rest: FakeBinanceUsdm, ws: FakeBinanceWs, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    from router_tuner.cli.main import main

    code = main(["record", "--venue", "binanceusdm", "--symbols", "btcusdt", "ETHUSDT", "--out", str(tmp_path),
                 "--seconds", "0.5", "--api-url", rest.base_url, "--ws-url", ws.ws_url, "--json"])
    assert code == 0
    [line] = capsys.readouterr().out.splitlines()
    summary = json.loads(line)
    assert sorted(summary["symbols"]) == ["BTCUSDT", "ETHUSDT"] and summary["out_dir"] == str(tmp_path)
    assert summary["symbols"]["BTCUSDT"]["folder"] == str(tmp_path / "BTCUSDT")
    assert {"quotes", "trades", "gaps", "rejected", "chunks"} <= set(summary["symbols"]["ETHUSDT"])


def test_giving_up_after_consecutive_connection_failures(rest: FakeBinanceUsdm, tmp_path: Path) -> None:
    with FakeBinanceWs() as dead:
        dead_url = dead.ws_url  # the port is closed once the fake has stopped
    run = Running(_config(tmp_path, ("BTCUSDT",), max_consecutive_failures=2), rest, dead_url)
    with pytest.raises(RecordingError, match=r"BTCUSDT (quotes|trades): 2 connection failures in a row, giving up"):
        run.join()
    assert not (tmp_path / "BTCUSDT").exists() or not chunk_paths(tmp_path / "BTCUSDT")


@pytest.mark.parametrize(("argv", "message"), [
    (["--venue", "kraken", "--symbols", "BTCUSDT"], "recording from 'kraken' is not supported"),
    (["--venue", "binanceusdm", "--symbols", "BTCUSDT,BTCUSDT"], "symbols listed more than once: BTCUSDT"),
    (["--venue", "binanceusdm", "--symbols", "BTCUSDT", "btcusdt"], "symbols listed more than once: BTCUSDT"),
    (["--venue", "binanceusdm", "--symbols", "BTC/USDT"], "exchange market ids like BTCUSDT"),
    (["--venue", "binanceusdm", "--symbols", "BTCUSDT", "--seconds", "0"], "duration_s must be > 0"),
    (["--venue", "binanceusdm", "--symbols", "BTCUSDT", "--flush-seconds", "nan"], "flush_interval_s"),
])
def test_cli_rejects_bad_arguments_with_exit_2(argv: list[str], message: str, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    from router_tuner.cli.main import main

    assert main(["record", *argv, "--out", str(tmp_path)]) == 2
    assert message in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


def test_read_recording_without_chunks_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(RecordingError, match="no recorded chunks for 'BTCUSDT'"):
        read_recording(tmp_path, "BTCUSDT")


def test_quote_burst_is_conflated_to_real_quotes_in_order(rest: FakeBinanceUsdm, ws: FakeBinanceWs,
                                                          tmp_path: Path) -> None:
    """The documented ccxt limit: quotes read together reach the recorder as the latest one; none invented."""
    run = Running(_config(tmp_path, ("BTCUSDT",)), rest, ws.ws_url)
    ws.wait_subscribed(_streams("BTCUSDT"), timeout_s=10)
    burst = _quotes("BTCUSDT", 40, "61800.2", T0_MS)
    ws.push("btcusdt@bookTicker", burst, 0)
    _wait(lambda: run.recorder._symbols["BTCUSDT"].buffer.quote_ts_ns[-1:] == [burst[-1]["E"] * 1_000_000],
          "the burst's last quote")
    run.stop()
    tape = read_recording(tmp_path, "BTCUSDT")
    by_ts = {m["E"] * 1_000_000: m for m in burst}
    stored = [by_ts[int(ts)] for ts in tape.quote_ts_ns]  # every stored quote is one that was sent
    assert stored == sorted(stored, key=lambda m: m["E"]) and stored[-1] is burst[-1]
    _assert_quotes(tape, stored)


@pytest.mark.parametrize("damage", ["empty", "text", "foreign parquet", "another symbol's chunk"])
def test_cli_resume_over_a_damaged_last_chunk_is_bad_input_before_connecting(
        rest: FakeBinanceUsdm, ws: FakeBinanceWs, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        damage: str) -> None:
    """A resumed recording reads its folder's last chunk once connected: a damaged or foreign one ended `record` in
    "unexpected TapeFormatError" (exit 1) after loading the markets; it is now one line naming the file, exit 2,
    before any request, and the chunks already there are left as they were."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from router_tuner.cli.main import main
    from router_tuner.router.market.parquet import write_tape
    from tests.market.test_market_parquet import _small_tape

    folder = tmp_path / "BTCUSDT"
    folder.mkdir()
    write_tape(dataclasses.replace(_small_tape(), symbol="BTCUSDT"), folder / "chunk-000000.parquet")
    last = folder / "chunk-000001.parquet"
    if damage == "empty":
        last.write_bytes(b"")
    elif damage == "text":
        last.write_text("not a tape\n")
    elif damage == "foreign parquet":
        pq.write_table(pa.table({"a": [1, 2]}), last)
    else:
        write_tape(dataclasses.replace(_small_tape(), symbol="ETHUSDT"), last)
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    code = main(["record", "--venue", "binanceusdm", "--symbols", "BTCUSDT", "--out", str(tmp_path), "--seconds",
                 "0.5", "--api-url", rest.base_url, "--ws-url", ws.ws_url])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "unexpected" not in err[0], err
    assert err[0].startswith(f"router-tuner record: --out {last}: ")
    assert "or record into another --out" in err[0]
    assert ws.subscribe_requests == []
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before


def test_cli_a_file_where_the_symbol_folder_belongs_is_bad_input_before_connecting(
        rest: FakeBinanceUsdm, ws: FakeBinanceWs, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`OUT/BTCUSDT` a file: it read "File exists: OUT/BTCUSDT: choose a location that can be written", once the
    exchange's markets had loaded; it now names the file as what is in the way, before any request."""
    from router_tuner.cli.main import main

    (tmp_path / "BTCUSDT").write_text("notes\n")
    code = main(["record", "--venue", "binanceusdm", "--symbols", "BTCUSDT", "--out", str(tmp_path), "--seconds",
                 "0.5", "--api-url", rest.base_url, "--ws-url", ws.ws_url])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err == [f"router-tuner record: --out {tmp_path / 'BTCUSDT'}: exists and is not a folder: each "
                                 "symbol's chunks are written in a folder of its name; move that file away, or record "
                                 "into another --out"]
    assert ws.subscribe_requests == [] and (tmp_path / "BTCUSDT").read_text() == "notes\n"
