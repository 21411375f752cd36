"""Recordings the loader was not written against: other names, other capture tools, damaged captures.

Each case is either loaded sanely (the summary saying what was used and dropped) or refused with one line naming
the file (and line) and what to do; never loaded silently wrong.
"""

from __future__ import annotations

import gzip
import re
import shutil
from pathlib import Path

import pytest

from router_tuner.router.market.binance import MarketDataError, discover, load_binance, read_binance
from tests.market.test_market_binance import T0_MS, _diff, _futures_stream, _snapshot, _ticker, _trade, _write


def _plain(path: Path, messages: list[dict[str, object]]) -> Path:
    """``_write`` without gzip."""
    gz = _write(path.with_name(path.name + ".tmp.gz"), messages)
    with gzip.open(gz, "rb") as fh:
        path.write_bytes(fh.read())
    gz.unlink()
    return path


def test_a_file_named_for_another_symbol_is_refused_naming_file_and_line(tmp_path: Path) -> None:
    """BTC's recording copied under an ETH name replayed as ETHUSDT, silently."""
    path = _write(tmp_path / "usdm_ethusdt_20240101.jsonl.gz", _futures_stream())
    with pytest.raises(MarketDataError, match=r"TSTUSDT message in a file named for ETHUSDT, and no ETHUSDT message "
                                              "in it: .*rename it") as err:
        load_binance([path])
    assert str(err.value).startswith(f"{path}:1: ")


def test_a_capture_of_several_symbols_is_read_for_the_symbol_its_name_says(tmp_path: Path) -> None:
    """One file of a tool that records every symbol it follows: read as the named symbol, the others counted. (For a
    few minutes of this pass it was refused at the first message of another symbol; before, as "several symbols: pass
    symbol= to choose one", which no command can.)"""
    from tests.market.test_market_binance import _ticker as ticker

    msgs = [*_futures_stream(), ticker("othusdt", 9, "5.0", "5.1"), _trade("othusdt", 9, "5.1", "1.000", True)]
    whole = load_binance([_write(tmp_path / "usdm_tstusdt_20240101.jsonl.gz", _futures_stream())])
    (tmp_path / "both").mkdir()
    mixed = _write(tmp_path / "both" / "usdm_tstusdt_20240101.jsonl.gz", msgs)
    (tmp_path / "both" / "usdm_othusdt_20240101.jsonl.gz").symlink_to(mixed)
    found = discover(tmp_path / "both")
    tst, oth = read_binance(found["usdm_tstusdt"]), read_binance(found["usdm_othusdt"])
    assert tst.tape.bid_px.tolist() == whole.bid_px.tolist() and tst.summary.other_symbols == 2
    assert "skipped 2 messages of other symbols" in tst.summary.describe()
    assert oth.tape.symbol == "OTHUSDT" and oth.tape.bid_px.tolist() == [50] and oth.summary.other_symbols == 7
    # the REST snapshot line has no symbol: in a capture of several it may be either's book, so neither replays it
    for loaded in (tst, oth):
        assert len(loaded.tape.depth_ts_ns) == 0
        assert "DEPTH NOT REPLAYED: 1 snapshot line(s) without a symbol in a capture of several symbols" in (
            loaded.summary.describe())


def test_upper_case_names_and_gzip_under_a_plain_name_load_like_the_original(tmp_path: Path) -> None:
    """``USDM_TSTUSDT_20240101.JSONL.GZ`` was not discovered at all; a gzipped ``.jsonl`` failed on binary bytes."""
    whole = load_binance([_write(tmp_path / "usdm_tstusdt_20240101.jsonl.gz", _futures_stream())])
    for name in ("USDM_TSTUSDT_20240101.JSONL.GZ", "usdm_TSTUSDT_20240101.jsonl"):
        folder = tmp_path / name.lower().replace(".", "-")
        folder.mkdir()
        shutil.copy(tmp_path / "usdm_tstusdt_20240101.jsonl.gz", folder / name)
        found = discover(folder)
        assert list(found) == ["usdm_tstusdt"]
        tape = load_binance(found["usdm_tstusdt"])
        assert tape.symbol == "TSTUSDT" and tape.market == "usdm"
        assert tape.bid_px.tolist() == whole.bid_px.tolist() and tape.depth_px.tolist() == whole.depth_px.tolist()


def test_the_same_hours_in_two_files_are_refused_naming_both(tmp_path: Path) -> None:
    """A ``.jsonl`` beside its ``.jsonl.gz`` (or a day copied under the next day's name) replayed every message twice,
    or failed on "depth event time ... precedes the previous depth event", naming neither cause nor cure."""
    msgs = _futures_stream()
    gz = _write(tmp_path / "usdm_tstusdt_20240101.jsonl.gz", msgs)
    plain = _plain(tmp_path / "usdm_tstusdt_20240101.jsonl", msgs)
    with pytest.raises(MarketDataError, match=r"overlaps .* in time .* the same hours recorded twice; keep one"):
        load_binance(discover(tmp_path)["usdm_tstusdt"])
    plain.unlink()
    shutil.copy(gz, tmp_path / "usdm_tstusdt_20240102.jsonl.gz")
    with pytest.raises(MarketDataError, match=r"usdm_tstusdt_2024010[12].jsonl.gz overlaps usdm_tstusdt_2024010[12]"):
        read_binance(discover(tmp_path)["usdm_tstusdt"])


def test_a_stretch_recorded_twice_is_dropped_and_counted(tmp_path: Path) -> None:
    """Lines repeated by a capture tool were replayed as more trades and quotes, and a repeated depth diff broke the
    book until the next snapshot, with no word of why."""
    msgs = _futures_stream()
    whole = load_binance([_write(tmp_path / "usdm_tstusdt_20240101.jsonl.gz", msgs)])
    (tmp_path / "twice").mkdir()
    loaded = read_binance([_write(tmp_path / "twice" / "usdm_tstusdt_20240101.jsonl.gz", msgs[:7] + msgs[4:])])
    for name in ("quote_ts_ns", "bid_px", "trade_ts_ns", "trade_qty", "depth_ts_ns", "depth_px", "depth_gap_ts_ns"):
        assert getattr(loaded.tape, name).tolist() == getattr(whole, name).tolist(), name
    assert dict(loaded.summary.repeated) == {"trade": 1, "depth": 1, "bookTicker": 1}
    assert "DROPPED repeated or out-of-order messages (id not after the previous) bookTicker 1, depth 1, trade 1" in (
        loaded.summary.describe())
    assert loaded.summary.to_dict()["repeated"] == {"trade": 1, "depth": 1, "bookTicker": 1}


def test_event_times_going_back_are_refused_naming_the_line(tmp_path: Path) -> None:
    """New ids with event times an hour back (a capture spliced out of order) were sorted into place silently."""
    late = _trade("tstusdt", 21 - 3_600_000, "100.2", "0.010", False)
    late["data"]["t"] = 21   # type: ignore[index]  # a new trade id
    msgs = [*_futures_stream(), _ticker("tstusdt", 20, "100.1", "100.2"), late]
    path = _write(tmp_path / "usdm_tstusdt_20240101.jsonl.gz", msgs)
    with pytest.raises(MarketDataError, match=r":10: trade event time goes back 3600.0 s here .* split the file"):
        load_binance([path])


@pytest.mark.parametrize(("bid", "ask"), [("100.3", "100.2"), ("100.2", "100.2")])
def test_a_crossed_or_locked_quote_is_refused_naming_file_and_line(tmp_path: Path, bid: str, ask: str) -> None:
    """It was refused as "loaded tape is invalid: TSTUSDT: crossed quote at index 2 (ts ...)": no file, no line."""
    msgs = [*_futures_stream(), _ticker("tstusdt", 20, bid, ask), _ticker("tstusdt", 21, bid, ask)]
    path = _write(tmp_path / "usdm_tstusdt_20240101.jsonl.gz", msgs)
    with pytest.raises(MarketDataError, match=f"crossed quote, bid {bid} >= ask {ask} \\(2 such quotes in all\\)"
                                              ".*cut the damaged stretch out") as err:
        load_binance([path])
    assert str(err.value).startswith(f"{path}:9: ")


def test_hours_without_a_quote_are_refused_naming_where_the_recording_resumes(tmp_path: Path) -> None:
    """A recorder down for five hours replayed as a frozen book: every policy's cost became the same 5.01 bps."""
    quiet_ms = 5 * 3_600_000
    msgs = [*_futures_stream(), _ticker("tstusdt", 20 + quiet_ms, "100.1", "100.2")]
    path = _write(tmp_path / "usdm_tstusdt_20240101.jsonl.gz", msgs)
    with pytest.raises(MarketDataError, match=r":9: no quote for 300.0 min before this one .* two data directories"):
        load_binance([path])
    ok = load_binance([_write(path, [*_futures_stream(), _ticker("tstusdt", 20 + 600_000, "100.1", "100.2")])])
    assert int(ok.quote_ts_ns[-1]) == (T0_MS + 20 + 600_000) * 1_000_000   # ten quiet minutes are a market's


def test_minutes_without_a_quote_are_replayed_and_said_in_the_data_line(tmp_path: Path) -> None:
    """Two minutes cut out of ETHUSDT (a recorder's outage, under the 15 minutes refused) replayed as a frozen book
    with nothing said; the data line now names where the quotes resume and how long they were quiet."""
    path = _write(tmp_path / "usdm_tstusdt_20240101.jsonl.gz",
                  [*_futures_stream(), _ticker("tstusdt", 20 + 120_000, "100.1", "100.2")])
    summary = read_binance([path]).summary
    assert summary.quiet == [f"{path}:9: no quote for 120.0 s before this one"]
    assert summary.describe().endswith(f"; QUIET: {path}:9: no quote for 120.0 s before this one (replayed as a "
                                       "frozen book)")
    assert summary.to_dict()["quiet"] == summary.quiet
    short = read_binance([_write(path, [*_futures_stream(), _ticker("tstusdt", 20 + 50_000, "100.1", "100.2")])])
    assert short.summary.quiet == [] and "QUIET" not in short.summary.describe()


def test_payloads_recorded_without_the_envelope_load_like_the_combined_stream(tmp_path: Path) -> None:
    """A capture from a single-stream connection (or SUBSCRIBE on /ws) holds each payload bare, plus the reply to the
    subscription; it was refused at line 1 ("neither a combined-stream envelope nor a depth snapshot")."""
    for market, msgs in (("usdm", _futures_stream()),
                         ("spot", [_ticker("tstusdt", 1, "10.00", "10.01", exchange_time=False),
                                   _snapshot(3, 50, [["10.00", "2.0"]], [["10.01", "3.0"]], exchange_time=False),
                                   _diff("tstusdt", 4, 51, 52, None, [["9.99", "1.5"]], []),
                                   _trade("tstusdt", 6, "10.01", "0.5", True)])):
        (tmp_path / market).mkdir()
        whole = load_binance([_write(tmp_path / market / f"{market}_tstusdt_20240101.jsonl.gz", msgs)])
        bare = [{"_recv_ms": T0_MS, "result": None, "id": 1}]
        bare += [{"_recv_ms": m["_recv_ms"], **m["data"]} if "data" in m else m for m in msgs]  # type: ignore[dict-item]
        loaded = read_binance([_write(tmp_path / f"{market}_tstusdt_20240101.jsonl.gz", bare)])
        for name in ("quote_ts_ns", "bid_px", "ask_qty", "trade_ts_ns", "trade_px", "depth_ts_ns", "depth_px"):
            assert getattr(loaded.tape, name).tolist() == getattr(whole, name).tolist(), (market, name)
        assert loaded.summary.skipped == {"subscription reply": 1}


def test_a_capture_of_aggregate_trades_without_trades_replays_them_as_the_trades(tmp_path: Path) -> None:
    """aggTrade was always skipped: a capture with it instead of trade replayed a market without a single trade
    (no maker order ever filled by one), the summary saying only "skipped aggTrade"."""
    def agg(msg: dict[str, object]) -> dict[str, object]:
        data = dict(msg["data"])  # type: ignore[call-overload]
        data.update(e="aggTrade", a=data["t"], f=data["t"], l=data.pop("t"))
        return {**msg, "stream": "tstusdt@aggTrade", "data": data}

    trades = [_trade("tstusdt", 10 + k, f"100.{k % 3}", "0.010", k % 2 == 0) for k in range(4)]
    whole = load_binance([_write(tmp_path / "usdm_tstusdt_20240101.jsonl.gz", _futures_stream() + trades)])
    (tmp_path / "agg").mkdir()
    msgs = [m if "trade" not in str(m.get("stream")) else agg(m)
            for m in [*_futures_stream(), *trades, trades[-1]]]   # the last one recorded twice
    loaded = read_binance([_write(tmp_path / "agg" / "usdm_tstusdt_20240101.jsonl.gz", msgs)])
    for name in ("trade_ts_ns", "trade_px", "trade_qty", "trade_buyer_maker", "bid_px", "depth_px"):
        assert getattr(loaded.tape, name).tolist() == getattr(whole, name).tolist(), name
    assert "aggTrade 6 (as the trades: no trade stream)" in loaded.summary.describe()
    assert loaded.summary.repeated == {"aggTrade": 1} and "aggTrade" not in loaded.summary.skipped
    # spot: quotes without an exchange time are timed by the aggregates when nothing else carries one
    spot = [_ticker("tstusdt", 1, "10.00", "10.01", exchange_time=False),
            agg(_trade("tstusdt", 2, "10.01", "0.5", True))]
    tape = load_binance([_write(tmp_path / "spot_tstusdt_20240101.jsonl.gz", spot)])
    assert tape.quote_ts_ns.tolist() == [(T0_MS + 1) * 1_000_000] and tape.trade_px.tolist() == [1001]


@pytest.mark.parametrize("step_s", [30, -3600])
def test_a_local_clock_that_jumps_within_a_spot_file_is_refused_near_the_jump(tmp_path: Path, step_s: int) -> None:
    """Spot bookTicker is timed by the local clock plus the file's median offset: a clock stepped 30 s within the file
    misplaced half its quotes by 30 s against the trades, silently (an hour's step was refused as an hour without a
    quote)."""
    msgs = []
    for k in range(2000):
        msgs.append(_ticker("tstusdt", 10 * k, "10.00", "10.01", exchange_time=False))
        msgs.append(_trade("tstusdt", 10 * k + 5, "10.01", "0.5", True))
        if k >= 1000:   # the local receive clock steps: every later line is received step_s later
            msgs[-2]["_recv_ms"] += step_s * 1000   # type: ignore[operator]
            msgs[-1]["_recv_ms"] += step_s * 1000   # type: ignore[operator]
    path = _write(tmp_path / "spot_tstusdt_20240101.jsonl.gz", msgs)
    expected = re.escape(f"the local receive clock moved {step_s:+.1f} s against the exchange's around here")
    with pytest.raises(MarketDataError, match=expected + ".* split the file at the jump") as err:
        load_binance([path])
    line = int(str(err.value).split(":")[1])
    assert 2001 <= line <= 2001 + 2 * 500   # within a block of the jump


def _recv_in(path: Path, divisor: int) -> Path:
    """The file rewritten with its receive times divided by ``divisor`` (1_000_000: ms)."""
    with gzip.open(path, "rt") as fh:
        lines = [line.split(" ", 1) for line in fh.read().splitlines()]
    with gzip.open(path, "wt") as fh:
        fh.write("".join(f"{int(ts) // divisor} {rest}\n" for ts, rest in lines))
    return path


@pytest.mark.parametrize(("divisor", "unit"), [(1_000, "us"), (1_000_000, "ms")])
def test_receive_times_in_ms_or_us_are_read_in_their_unit(tmp_path: Path, divisor: int, unit: str) -> None:
    """Another tool's millisecond receive times made a spot file's local clock seem to drift (its quotes timed
    1e6 times too close together, or refused as a clock jump)."""
    spot = [_ticker("tstusdt", 10 * k, "10.00", "10.01", exchange_time=False) for k in range(100)]
    spot += [_trade("tstusdt", 10 * k + 5, "10.01", "0.5", True) for k in range(100)]
    spot.sort(key=lambda m: m["_recv_ms"])  # type: ignore[arg-type, return-value]
    whole = load_binance([_write(tmp_path / "spot_tstusdt_20240101.jsonl.gz", spot)])
    (tmp_path / unit).mkdir()
    loaded = read_binance([_recv_in(_write(tmp_path / unit / "spot_tstusdt_20240101.jsonl.gz", spot), divisor)])
    assert loaded.tape.quote_ts_ns.tolist() == whole.quote_ts_ns.tolist()   # whole ms here
    assert loaded.summary.recv_units == {"spot_tstusdt_20240101.jsonl.gz": unit}
    assert f"receive times in {unit}: spot_tstusdt_20240101.jsonl.gz" in loaded.summary.describe()


def test_receive_times_in_two_units_or_past_2255_are_refused(tmp_path: Path) -> None:
    msgs = _futures_stream()
    path = _write(tmp_path / "usdm_tstusdt_20240101.jsonl.gz", msgs)
    with gzip.open(path, "rt") as fh:
        lines = fh.read().splitlines()
    for bad, message in ((str(int(lines[3].split(" ")[0]) // 1_000_000), "is not in ns, as the file's first line"),
                         ("9300000000000000000", "is not in ns, as the file's first line")):
        with gzip.open(path, "wt") as fh:
            fh.write("\n".join([*lines[:3], f"{bad} {lines[3].split(' ', 1)[1]}", *lines[4:]]) + "\n")
        with pytest.raises(MarketDataError, match=f":4: receive time {bad} {message}"):
            load_binance([path])
    with gzip.open(path, "wt") as fh:
        fh.write(f"9300000000000000000 {lines[0].split(' ', 1)[1]}\n")
    with pytest.raises(MarketDataError, match=":1: receive time 9300000000000000000 is not a time since the epoch"):
        load_binance([path])


@pytest.mark.parametrize("depth_until_ms", [0, 10_000, 30_000])
def test_a_depth_book_that_stops_while_the_quotes_go_on_is_unknown_from_there(tmp_path: Path,
                                                                             depth_until_ms: int) -> None:
    """A capture with the REST snapshot but no diff stream (or whose depth subscription dropped) replayed the last
    book for the rest of the tape, frozen, with "0 gaps": queues and taker walks read a book hours old."""
    msgs = [_snapshot(0, 100, [["100.0", "3.000"]], [["100.2", "4.000"]])]
    msgs += [_diff("tstusdt", 100 * k + 2, 100 + k, 100 + k, 99 + k, [["100.0", f"{k % 7 + 1}.000"]], [])
             for k in range(depth_until_ms // 100)]
    msgs += [_ticker("tstusdt", 50 * k + 1, "100.0", "100.2") for k in range(600)]
    msgs.sort(key=lambda m: m["_recv_ms"])  # type: ignore[arg-type, return-value]
    loaded = read_binance([_write(tmp_path / "usdm_tstusdt_20240101.jsonl.gz", msgs)])
    if depth_until_ms >= 30_000:   # depth to the end: known throughout
        assert loaded.tape.depth_gap_ts_ns.tolist() == [] and loaded.summary.depth_stale == 0
        return
    if depth_until_ms == 0:   # the snapshot alone: no depth stream, replayed as a capture without depth
        assert len(loaded.tape.depth_ts_ns) == 0 and loaded.tape.depth_gap_ts_ns.tolist() == []
        reason = "1 snapshot(s) and no depth diff while the quotes went on"
        assert loaded.summary.depth_unused == reason and loaded.summary.to_dict()["depth_unused"] == reason
        assert f"DEPTH NOT REPLAYED: {reason} (the quotes alone are)" in loaded.summary.describe()
        return
    last_depth_ms = 100 * (depth_until_ms // 100 - 1) + 2
    first_missed_ms = next(50 * k + 1 for k in range(600) if 50 * k + 1 > last_depth_ms)
    assert loaded.tape.depth_gap_ts_ns.tolist() == [(T0_MS + first_missed_ms) * 1_000_000]
    assert loaded.summary.depth_stale == 1 and loaded.summary.to_dict()["depth_stale"] == 1
    assert "DEPTH STOPPED while the quotes went on 1 time(s): book unknown from there" in loaded.summary.describe()


def test_an_empty_file_and_a_line_that_is_not_json_say_what_to_do(tmp_path: Path) -> None:
    """They named file and line but not the cure ("file is empty"; msgspec's "Input data was truncated")."""
    empty = tmp_path / "usdm_tstusdt_20240101.jsonl.gz"
    with gzip.open(empty, "wb"):
        pass
    with pytest.raises(MarketDataError, match="file is empty: a recorder that never wrote; move it out of the data"):
        load_binance([empty])
    path = _write(empty, _futures_stream())
    with gzip.open(path, "rt") as fh:
        lines = fh.read().splitlines()
    with gzip.open(path, "wt") as fh:
        fh.write("\n".join([lines[0], lines[1][:60], *lines[2:]]) + "\n")
    with pytest.raises(MarketDataError, match=r":2: Input data was truncated \(not a JSON message: cut the line out"):
        load_binance([path])


def test_futures_trades_that_are_not_market_trades_are_skipped_and_counted(tmp_path: Path) -> None:
    """Insurance-fund, auto-deleveraging and "NA" fills (``X`` on the futures trade stream), at prices off the book,
    were replayed as market trades: every resting order above such a price counted as filled."""
    whole = load_binance([_write(tmp_path / "usdm_tstusdt_20240101.jsonl.gz", _futures_stream())])
    msgs = _futures_stream()
    for k, kind in enumerate(("INSURANCE_FUND", "ADL", "NA", "MARKET")):
        extra = _trade("tstusdt", 8, "97.0", "1.000", True)
        extra["data"].update(X=kind, t=9 + k)   # type: ignore[attr-defined]
        msgs.append(extra)
    (tmp_path / "x").mkdir()
    loaded = read_binance([_write(tmp_path / "x" / "usdm_tstusdt_20240101.jsonl.gz", msgs)])
    assert loaded.tape.trade_px.tolist() == [*whole.trade_px.tolist(), 970]   # the MARKET one only
    assert loaded.summary.read["trade"] == 2
    assert dict(loaded.summary.skipped) == {"trade X=INSURANCE_FUND": 1, "trade X=ADL": 1, "trade X=NA": 1}
    assert "skipped trade X=ADL 1, trade X=INSURANCE_FUND 1, trade X=NA 1" in loaded.summary.describe()


def test_exchange_times_in_microseconds_are_read_in_their_unit(tmp_path: Path) -> None:
    """Spot streams subscribed with ``timeUnit=MICROSECOND`` (E of 16 digits) ended in "unexpected OverflowError"."""
    whole = load_binance([_write(tmp_path / "usdm_tstusdt_20240101.jsonl.gz", _futures_stream())])
    msgs = _futures_stream()
    for msg in msgs:
        body = msg.get("data", msg)
        for key in ("E", "T"):
            if key in body:   # type: ignore[operator]
                body[key] *= 1000   # type: ignore[index]
    (tmp_path / "us").mkdir()
    loaded = read_binance([_write(tmp_path / "us" / "usdm_tstusdt_20240101.jsonl.gz", msgs)])
    for name in ("quote_ts_ns", "trade_ts_ns", "depth_ts_ns", "depth_px"):
        assert getattr(loaded.tape, name).tolist() == getattr(whole, name).tolist(), name
    assert loaded.summary.event_units == {"usdm_tstusdt_20240101.jsonl.gz": "us"}
    assert "event times in us: usdm_tstusdt_20240101.jsonl.gz" in loaded.summary.describe()
    msgs[4]["data"]["E"] = 1_700_000_000   # type: ignore[index]  # seconds: no unit the exchange writes
    with pytest.raises(MarketDataError, match=r":5: event time E 1700000000 is not a time since the epoch in ms or us"):
        load_binance([_write(tmp_path / "us" / "usdm_tstusdt_20240101.jsonl.gz", msgs)])


def test_prices_written_as_json_numbers_are_refused_saying_why(tmp_path: Path) -> None:
    """A tool that converted the price strings to numbers got "not a JSON message: cut the line out" (every line
    was one): a ValidationError is a DecodeError too, so every field error was called not JSON."""
    msgs = _futures_stream()
    msgs[4]["data"]["p"] = 100.2   # type: ignore[index]
    with pytest.raises(MarketDataError, match=r":5: Expected `str`, got `float` - at `\$.p`: a price or size written "
                                              "as a JSON number, where Binance sends a string .* record with a tool"):
        load_binance([_write(tmp_path / "usdm_tstusdt_20240101.jsonl.gz", msgs)])
    msgs = _futures_stream()
    msgs[4]["data"]["m"] = "yes"   # type: ignore[index]
    with pytest.raises(MarketDataError, match=r":5: Expected `bool`, got `str` - at `\$.m` \(not as documented"):
        load_binance([_write(tmp_path / "usdm_tstusdt_20240101.jsonl.gz", msgs)])


def test_depth_diffs_without_a_snapshot_say_the_depth_is_not_replayed(tmp_path: Path) -> None:
    """A capture without the REST snapshot line read "depth 4 (0 applied, 0 gaps)": the book not replayed, no word
    of why."""
    msgs = [m for m in _futures_stream() if "lastUpdateId" not in m]
    loaded = read_binance([_write(tmp_path / "usdm_tstusdt_20240101.jsonl.gz", msgs)])
    assert len(loaded.tape.depth_ts_ns) == 0 and loaded.tape.bid_px.tolist() == [1001, 1001]
    assert "DEPTH NOT REPLAYED: 4 depth diffs and no REST snapshot line to start the book from" in (
        loaded.summary.describe())


def test_bare_partial_book_payloads_are_not_replayed_as_diffs(tmp_path: Path) -> None:
    """Futures ``depth5/10/20`` payloads recorded without the envelope are ``"e": "depthUpdate"`` events with chained
    ids, like the diffs: applied as diffs, every level that left the top 5 stayed in the book for good (a book that
    crossed the quotes as soon as the price moved), with "0 gaps"."""
    def partial(k: int, top: float) -> dict[str, object]:
        bids = [[f"{top - 0.1 * i:.1f}", "1.000"] for i in range(5)]
        asks = [[f"{top + 0.1 * (i + 1):.1f}", "1.000"] for i in range(5)]
        msg = _diff("tstusdt", 10 * k + 5, 100 + k, 101 + k, 100 + k, bids, asks)
        return {"_recv_ms": msg["_recv_ms"], **msg["data"]}   # type: ignore[dict-item]
    msgs: list[dict[str, object]] = [_snapshot(0, 100, [["100.0", "3.000"]], [["100.2", "4.000"]])]
    msgs += [partial(k, 100.0 + 0.1 * k) for k in range(25)]
    msgs += [_ticker("tstusdt", 10 * k + 6, f"{100.0 + 0.1 * k:.1f}", f"{100.1 + 0.1 * k:.1f}") for k in range(25)]
    msgs.sort(key=lambda m: m["_recv_ms"])  # type: ignore[arg-type, return-value]
    loaded = read_binance([_write(tmp_path / "usdm_tstusdt_20240101.jsonl.gz", msgs)])
    assert len(loaded.tape.depth_ts_ns) == 0 and loaded.tape.depth_gap_ts_ns.tolist() == []
    assert ("DEPTH NOT REPLAYED: 25 depth messages of exactly 5 levels a side and none removing a level: partial-book "
            "snapshots (depth5), not diffs") in loaded.summary.describe()
    # the same with one level removed is a diff stream that happens to be regular: replayed
    next(m for m in reversed(msgs) if "b" in m and "U" in m)["b"][0][1] = "0.000"   # type: ignore[index]
    loaded = read_binance([_write(tmp_path / "usdm_tstusdt_20240101.jsonl.gz", msgs)])
    assert loaded.summary.depth_applied == 25 and loaded.summary.depth_unused == ""


def test_a_snapshot_no_diff_continues_says_so(tmp_path: Path) -> None:
    """A REST snapshot taken long before the diffs (its lastUpdateId far below their ids) read "depth 4 (0 applied,
    0 gaps); DEPTH NOT REPLAYED: 1 snapshot(s) and no depth diff", though the diffs were there."""
    msgs = _futures_stream()
    msgs[3]["lastUpdateId"] = 10   # type: ignore[index]
    loaded = read_binance([_write(tmp_path / "usdm_tstusdt_20240101.jsonl.gz",
                                  [*msgs, *(_ticker("tstusdt", 1000 * k + 9, "100.1", "100.2") for k in range(10))])])
    assert len(loaded.tape.depth_ts_ns) == 0
    assert ("DEPTH NOT REPLAYED: 1 snapshot(s) and none of the 4 depth diffs continuing one (a snapshot taken before "
            "the diffs began") in loaded.summary.describe()


def test_a_file_of_the_other_kind_of_market_is_refused_naming_file_and_line(tmp_path: Path) -> None:
    """A spot capture saved under a usdm name (without depth) replayed as a perpetual, and a futures capture under a
    spot name as spot (spot fees, its depth read by spot rules: "1 applied, 2 gaps"), both silently."""
    spot = [_ticker("tstusdt", 1, "10.00", "10.01", exchange_time=False), _trade("tstusdt", 2, "10.01", "0.5", True)]
    path = _write(tmp_path / "usdm_tstusdt_20240101.jsonl.gz", spot)
    with pytest.raises(MarketDataError, match=r":1: a bookTicker without an event time E, as spot streams send it, in "
                                              "a file named usdm: the file holds spot data; rename it spot_<symbol>_"):
        load_binance([path])
    path.unlink()
    futures = _write(tmp_path / "spot_tstusdt_20240101.jsonl.gz", _futures_stream())
    with pytest.raises(MarketDataError, match=r":1: a depth diff with 'pu', as futures streams send it, in a file "
                                              r"named spot: the file holds futures data; rename it usdm_<symbol>_"):
        load_binance([futures])
    trade = _trade("tstusdt", 5, "100.2", "0.010", False)
    trade["data"]["X"] = "MARKET"   # type: ignore[index]
    futures = _write(futures, [_ticker("tstusdt", 1, "100.1", "100.2"), trade])
    with pytest.raises(MarketDataError, match=r":2: a trade with a trade type X, as futures streams send it"):
        load_binance([futures])


def test_two_files_overlapping_briefly_are_read_once_through(tmp_path: Path) -> None:
    """Two recorders handing over at midnight (the next day's file opened before the last one closed) were refused
    as "the same hours recorded twice; keep one of them", which would lose half the capture."""
    msgs: list[dict[str, object]] = [_snapshot(0, 100, [["100.0", "3.000"]], [["100.2", "4.000"]])]
    for k in range(40):
        msgs += [_ticker("tstusdt", 100 * k + 1, "100.0", "100.2"),
                 _diff("tstusdt", 100 * k + 2, 100 + k, 101 + k, 100 + k, [["100.0", f"{k % 7 + 1}.000"]], []),
                 _trade("tstusdt", 100 * k + 3, "100.2", "0.010", False)]
    whole = load_binance([_write(tmp_path / "usdm_tstusdt_20240101.jsonl.gz", msgs)])
    (tmp_path / "two").mkdir()
    first = _write(tmp_path / "two" / "usdm_tstusdt_20240101.jsonl.gz", msgs[:64])
    second = _write(tmp_path / "two" / "usdm_tstusdt_20240102.jsonl.gz", msgs[58:])
    loaded = read_binance([second, first])
    for name in ("quote_ts_ns", "bid_px", "trade_ts_ns", "depth_ts_ns", "depth_qty", "depth_gap_ts_ns"):
        assert getattr(loaded.tape, name).tolist() == getattr(whole, name).tolist(), name
    assert dict(loaded.summary.repeated) == {"bookTicker": 2, "depth": 2, "trade": 2}
    assert ("OVERLAP: usdm_tstusdt_20240102.jsonl.gz starts 0.1 s before usdm_tstusdt_20240101.jsonl.gz ends (the "
            "messages recorded in both are read once)") in loaded.summary.describe()


def test_the_all_market_book_ticker_stream_gives_the_quotes(tmp_path: Path) -> None:
    """A capture of ``!bookTicker`` (every symbol's quotes in one stream) was refused as "no bookTicker messages",
    its quotes skipped as an unknown stream."""
    whole = load_binance([_write(tmp_path / "usdm_tstusdt_20240101.jsonl.gz", _futures_stream())])
    msgs = _futures_stream()
    for msg in msgs:
        if str(msg.get("stream", "")).endswith("@bookTicker"):
            msg["stream"] = "!bookTicker"
    other = _ticker("othusdt", 3, "5.0", "5.1")
    msgs.insert(3, {**other, "stream": "!bookTicker"})
    (tmp_path / "all").mkdir()
    loaded = read_binance([_write(tmp_path / "all" / "usdm_tstusdt_20240101.jsonl.gz", msgs)])
    assert loaded.tape.quote_ts_ns.tolist() == whole.quote_ts_ns.tolist()
    assert loaded.tape.bid_px.tolist() == whole.bid_px.tolist() and loaded.summary.read["bookTicker"] == 2
    assert loaded.summary.other_symbols == 1 and not loaded.summary.unknown


def test_a_break_in_the_depth_chain_is_one_gap_not_a_stop(tmp_path: Path) -> None:
    """A lost diff (the chain broken, no snapshot after it) was counted twice: the gap, and a "DEPTH STOPPED while the
    quotes went on" a few ms before it, though the diffs went on."""
    msgs: list[dict[str, object]] = [_snapshot(0, 100, [["100.0", "3.000"]], [["100.2", "4.000"]])]
    for k in range(300):
        msgs.append(_ticker("tstusdt", 100 * k + 1, "100.0", "100.2"))
        if k != 100:   # the 101st diff lost
            msgs.append(_diff("tstusdt", 100 * k + 2, 100 + k, 101 + k, 100 + k, [["100.0", f"{k % 7 + 1}.000"]], []))
    loaded = read_binance([_write(tmp_path / "usdm_tstusdt_20240101.jsonl.gz", msgs)])
    assert loaded.tape.depth_gap_ts_ns.tolist() == [(T0_MS + 100 * 101 + 2) * 1_000_000]
    assert loaded.summary.depth_stale == 0 and loaded.summary.depth_applied == 100
    assert "DEPTH STOPPED" not in loaded.summary.describe()


def test_nul_padding_after_a_crash_and_a_byte_order_mark_load_like_the_original(tmp_path: Path) -> None:
    """A plain ``.jsonl`` whose writer died leaving the filesystem's NUL bytes at its end, and one saved by an editor
    with a UTF-8 byte order mark, were refused at that line ("line must start with '<receive time ns> ', got
    b'\\x00\\x00..." / b'\\xef\\xbb\\xbf1700...')."""
    whole = load_binance([_write(tmp_path / "usdm_tstusdt_20240101.jsonl.gz", _futures_stream())])
    (tmp_path / "orig").mkdir()
    text = _plain(tmp_path / "orig" / "usdm_tstusdt_20240101.jsonl", _futures_stream())
    for name, raw in (("nul", text.read_bytes() + b"\0" * 5000), ("bom", b"\xef\xbb\xbf" + text.read_bytes())):
        (tmp_path / name).mkdir()
        path = tmp_path / name / "usdm_tstusdt_20240101.jsonl"
        path.write_bytes(raw)
        loaded = read_binance([path])
        for field in ("quote_ts_ns", "bid_px", "trade_px", "depth_ts_ns", "depth_px"):
            assert getattr(loaded.tape, field).tolist() == getattr(whole, field).tolist(), (name, field)
        cut = ["usdm_tstusdt_20240101.jsonl: ends in 5000 NUL bytes after line 8 (its writer stopped), ignored"]
        assert loaded.summary.cut == (cut if name == "nul" else [])


def test_depth_event_time_going_back_says_what_to_do(tmp_path: Path) -> None:
    """It read "depth event time 1700000000004000000 precedes the previous depth event 1700000000006000000": raw ns,
    no cure."""
    msgs = _futures_stream()
    msgs[7]["data"]["E"] -= 3000   # type: ignore[index, operator]  # ids chained, its time 3 s back
    with pytest.raises(MarketDataError, match=r":8: depth event time goes back 3.0 s here .* split the file at this"):
        load_binance([_write(tmp_path / "usdm_tstusdt_20240101.jsonl.gz", msgs)])


def test_a_file_of_only_a_subscription_reply_names_the_file(tmp_path: Path) -> None:
    """A recorder that subscribed and then received nothing left a file refused as "no market messages found in the
    given files", naming none."""
    path = _write(tmp_path / "usdm_tstusdt_20240101.jsonl.gz", [{"_recv_ms": T0_MS, "result": None, "id": 1}])
    with pytest.raises(MarketDataError, match=r"usdm_tstusdt_20240101.jsonl.gz: no market message of any symbol in "
                                              r"it \(only subscription reply 1\): .* move the file out"):
        load_binance([path])


def test_a_recorder_that_reconnects_resumes_the_book_from_its_new_snapshot(tmp_path: Path) -> None:
    """A recorder that reconnected at midnight wrote the new connection's REST snapshot before its first diff; read
    while the old chain still held, the snapshot was thrown away, and the book stayed unknown from the break to the
    end of the capture (half the depth unused, one gap)."""
    day1: list[dict[str, object]] = [_snapshot(0, 100, [["100.0", "3.000"]], [["100.2", "4.000"]])]
    for k in range(20):
        day1 += [_ticker("tstusdt", 100 * k + 1, "100.0", "100.2"),
                 _diff("tstusdt", 100 * k + 2, 100 + k, 101 + k, 100 + k, [["100.0", f"{k % 7 + 1}.000"]], [])]
    day2: list[dict[str, object]] = [_snapshot(2_010, 503, [["100.0", "9.000"]], [["100.2", "8.000"]])]
    for k in range(25, 45):   # ids 125.. : the diffs between 120 and 125 were lost in the reconnection
        day2 += [_ticker("tstusdt", 100 * k + 1, "100.0", "100.2"),
                 _diff("tstusdt", 100 * k + 2, 475 + k, 476 + k, 475 + k, [["100.0", f"{k % 7 + 1}.000"]], [])]
    loaded = read_binance([_write(tmp_path / "usdm_tstusdt_20240101.jsonl.gz", day1),
                           _write(tmp_path / "usdm_tstusdt_20240102.jsonl.gz", day2)])
    break_ns = (T0_MS + 2_502) * 1_000_000   # the first diff of the new connection
    assert loaded.tape.depth_gap_ts_ns.tolist() == [break_ns] and loaded.summary.depth_stale == 0
    assert loaded.summary.depth_applied == 20 + 18   # the new connection's, from the one straddling 503 on
    second = int(loaded.tape.depth_snapshot_idx[1])
    assert int(loaded.tape.depth_ts_ns[second]) == break_ns
    assert int(loaded.tape.depth_qty[second]) == 9 * loaded.tape.qty_scale   # the new snapshot's bid
