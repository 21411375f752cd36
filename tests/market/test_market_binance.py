"""Binance loader: the six recorded files, and crafted files for gaps, errors and multi-file order."""

from __future__ import annotations

import gzip
import json
from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest

from router_tuner.router.market.binance import MarketDataError, discover, load_binance, parse_decimals, resolve_data_dir
from router_tuner.router.market.book import iter_book_tops
from router_tuner.router.market.tape import MarketTape

# Facts of the recorded files: README line counts (approx.), stream counts and Binance's tick sizes.
REAL: dict[str, dict[str, object]] = {
    "usdm_btcusdt": dict(
        lines=94_000, quotes=66_089, trades=21_313, depth_msgs=6_551, tick=Decimal("0.1")),
    "usdm_ethusdt": dict(
        lines=75_000, quotes=53_992, trades=14_076, depth_msgs=6_586, tick=Decimal("0.01")),
    "spot_btcusdt": dict(
        lines=41_000, quotes=28_040, trades=9_757, depth_msgs=3_451, tick=Decimal("0.01")),
    "spot_ethusdt": dict(
        lines=35_000, quotes=24_077, trades=6_106, depth_msgs=3_434, tick=Decimal("0.01")),
    "cm_btcusd_perp": dict(
        lines=48_000, quotes=19_136, trades=2_286, depth_msgs=26_847, tick=Decimal("0.1")),
    "cm_ethusd_perp": dict(
        lines=40_000, quotes=15_812, trades=1_732, depth_msgs=22_909, tick=Decimal("0.01")),
}


@pytest.fixture(scope="module")
def real_files() -> dict[str, list[Path]]:
    data_dir = resolve_data_dir(None)
    if data_dir is None:
        pytest.skip("recorded Binance data not present (set ROUTER_TUNER_DATA)")
    return discover(data_dir)


@pytest.fixture(scope="module")
def real_tapes(real_files: dict[str, list[Path]]) -> dict[str, MarketTape]:
    return {key: load_binance(files) for key, files in real_files.items()}


def _first_book_ticker(path: Path) -> dict[str, str]:
    with gzip.open(path, "rt") as fh:
        for line in fh:
            msg = json.loads(line.partition(" ")[2])
            if msg.get("stream", "").endswith("@bookTicker"):
                return msg["data"]
    raise AssertionError(f"no bookTicker in {path}")


def test_discover_finds_the_six_files(real_files: dict[str, list[Path]]) -> None:
    assert sorted(real_files) == sorted(REAL)
    assert all(len(files) == 1 for files in real_files.values())


@pytest.mark.parametrize("key", sorted(REAL))
def test_real_file_counts_and_invariants(key: str, real_tapes: dict[str, MarketTape]) -> None:
    tape, facts = real_tapes[key], REAL[key]
    assert tape.market == key.split("_")[0]
    assert len(tape.quote_ts_ns) == facts["quotes"]
    assert len(tape.trade_ts_ns) == facts["trades"]
    depth_times = len(np.unique(tape.depth_ts_ns))
    assert depth_times <= facts["depth_msgs"] + 1
    approx_lines = len(tape.quote_ts_ns) + len(tape.trade_ts_ns) + depth_times
    assert abs(approx_lines - facts["lines"]) / facts["lines"] < 0.05  # README counts are rounded
    for ts in (tape.quote_ts_ns, tape.trade_ts_ns, tape.depth_ts_ns):
        assert (np.diff(ts) >= 0).all()
    assert (tape.bid_px < tape.ask_px).all()
    assert Decimal(tape.price_scale) * facts["tick"] % 1 == 0
    assert Decimal(str(tape.tick_size)) == facts["tick"]
    assert len(tape.depth_snapshot_idx) == 1 and len(tape.depth_gap_ts_ns) == 0
    tape.validate()


@pytest.mark.parametrize("key", sorted(REAL))
def test_real_prices_are_exact(key: str, real_files: dict[str, list[Path]],
                               real_tapes: dict[str, MarketTape]) -> None:
    tape, first = real_tapes[key], _first_book_ticker(real_files[key][0])
    assert Decimal(int(tape.bid_px[0])) / tape.price_scale == Decimal(first["b"])
    assert Decimal(int(tape.ask_px[0])) / tape.price_scale == Decimal(first["a"])
    assert Decimal(int(tape.bid_qty[0])) / tape.qty_scale == Decimal(first["B"])
    assert Decimal(int(tape.ask_qty[0])) / tape.qty_scale == Decimal(first["A"])


@pytest.mark.parametrize("key", sorted(REAL))
def test_real_depth_book_never_crosses_and_agrees_with_book_ticker(
        key: str, real_tapes: dict[str, MarketTape]) -> None:
    tape = real_tapes[key]
    tops = list(iter_book_tops(tape))
    ts = np.array([t for t, _, _ in tops], dtype=np.int64)
    bid = np.array([b for _, b, _ in tops], dtype=np.int64)
    ask = np.array([a for _, _, a in tops], dtype=np.int64)
    assert (bid < ask).all()
    last_quote = np.searchsorted(tape.quote_ts_ns, ts, side="right") - 1
    seen = last_quote >= 0
    # the depth book rebuilt by snapshot + diffs shows the same touch as bookTicker almost always; for
    # spot this also checks the clock offset applied to bookTicker's local receive times
    assert np.mean(bid[seen] == tape.bid_px[last_quote[seen]]) > 0.99
    assert np.mean(ask[seen] == tape.ask_px[last_quote[seen]]) > 0.99


# --- crafted files -----------------------------------------------------------------------------------
T0_MS = 1_700_000_000_000
OFFSET_NS = 1_250_000_000  # local clock behind the exchange


def _write(path: Path, messages: list[dict[str, object]]) -> Path:
    """Write messages as recorded lines; ``_E`` (ms) sets the local receive time (E - offset + 1 ms)."""
    with gzip.open(path, "wt") as fh:
        for msg in messages:
            msg = dict(msg)
            recv_ms = msg.pop("_recv_ms")
            fh.write(f"{int(recv_ms) * 1_000_000 - OFFSET_NS} {json.dumps(msg, separators=(',', ':'))}\n")
    return path


def _diff(sym: str, t: int, first: int, last: int, prev: int | None,
          bids: list[list[str]], asks: list[list[str]]) -> dict[str, object]:
    data: dict[str, object] = {"e": "depthUpdate", "E": T0_MS + t, "T": T0_MS + t, "s": sym.upper(),
                               "U": first, "u": last, "b": bids, "a": asks}
    if prev is not None:
        data["pu"] = prev
    return {"_recv_ms": T0_MS + t + 1, "stream": f"{sym}@depth@0ms", "data": data}


def _snapshot(t: int, last_id: int, bids: list[list[str]], asks: list[list[str]],
              *, exchange_time: bool = True) -> dict[str, object]:
    snap: dict[str, object] = {"_recv_ms": T0_MS + t + 1, "lastUpdateId": last_id, "bids": bids, "asks": asks}
    if exchange_time:
        snap |= {"E": T0_MS + t, "T": T0_MS + t}
    return snap


def _ticker(sym: str, t: int, bid: str, ask: str, *, exchange_time: bool = True) -> dict[str, object]:
    data: dict[str, object] = {"u": t, "s": sym.upper(), "b": bid, "B": "1.000", "a": ask, "A": "2.000"}
    if exchange_time:
        data |= {"e": "bookTicker", "E": T0_MS + t, "T": T0_MS + t}
    return {"_recv_ms": T0_MS + t + 1, "stream": f"{sym}@bookTicker", "data": data}


def _trade(sym: str, t: int, px: str, qty: str, buyer_maker: bool) -> dict[str, object]:
    return {"_recv_ms": T0_MS + t + 1, "stream": f"{sym}@trade",
            "data": {"e": "trade", "E": T0_MS + t, "T": T0_MS + t, "s": sym.upper(), "t": t,
                     "p": px, "q": qty, "m": buyer_maker}}


def _futures_stream() -> list[dict[str, object]]:
    return [
        _diff("tstusdt", 1, 90, 99, 89, [["100.0", "1.000"]], []),          # older than the snapshot: dropped
        _ticker("tstusdt", 2, "100.1", "100.2"),
        _diff("tstusdt", 3, 95, 105, 99, [["100.1", "2.000"]], []),         # straddles 100: first applied
        _snapshot(4, 100, [["100.0", "3.000"]], [["100.2", "4.000"]]),
        _trade("tstusdt", 5, "100.2", "0.010", False),
        _diff("tstusdt", 6, 106, 110, 105, [], [["100.3", "5.000"]]),
        _ticker("tstusdt", 7, "100.1", "100.2"),
        _diff("tstusdt", 8, 111, 112, 110, [["100.0", "0.000"]], []),
    ]


def test_snapshot_plus_diff_procedure(tmp_path: Path) -> None:
    tape = load_binance([_write(tmp_path / "usdm_tstusdt_20240101.jsonl.gz", _futures_stream())])
    assert tape.symbol == "TSTUSDT" and tape.market == "usdm"
    assert tape.price_scale == 10 and tape.qty_scale == 100 and tape.tick_size == pytest.approx(0.1)
    # snapshot rows (stamped no later than the first diff applied on it), then diffs 95-105, 106-110, 111-112
    assert tape.depth_px.tolist() == [1000, 1002, 1001, 1003, 1000]
    assert tape.depth_qty.tolist() == [300, 400, 200, 500, 0]
    assert tape.depth_side.tolist() == [1, -1, 1, -1, 1]
    assert tape.depth_snapshot_idx.tolist() == [0]
    ns = 1_000_000
    assert tape.depth_ts_ns.tolist() == [(T0_MS + t) * ns for t in (3, 3, 3, 6, 8)]
    assert tape.trade_px.tolist() == [1002] and tape.trade_buyer_maker.tolist() == [False]
    assert tape.quote_ts_ns.tolist() == [(T0_MS + 2) * ns, (T0_MS + 7) * ns]
    tops = list(iter_book_tops(tape))
    assert tops[-1][1:] == (1001, 1002)


def test_depth_gap_is_recorded_and_diffs_dropped_until_next_snapshot(tmp_path: Path) -> None:
    msgs = [*_futures_stream(),
            _diff("tstusdt", 9, 120, 125, 115, [["99.0", "1.000"]], []),   # pu 115 != 112: gap
            _diff("tstusdt", 10, 126, 130, 125, [["99.1", "1.000"]], []),  # waits for a snapshot
            _snapshot(11, 128, [["99.5", "7.000"]], [["99.9", "8.000"]]),
            _diff("tstusdt", 12, 131, 131, 130, [], [["99.8", "1.000"]])]
    tape = load_binance([_write(tmp_path / "usdm_tstusdt_20240101.jsonl.gz", msgs)])
    assert tape.depth_gap_ts_ns.tolist() == [(T0_MS + 9) * 1_000_000]
    assert tape.depth_snapshot_idx.tolist() == [0, 5]
    assert 990 not in tape.depth_px.tolist()  # the diff at the gap is never applied
    assert tape.depth_px.tolist()[5:] == [995, 999, 991, 998]
    tops = dict((t, (b, a)) for t, b, a in iter_book_tops(tape))
    assert tops[(T0_MS + 12) * 1_000_000] == (995, 998)


def test_spot_rules_and_local_clock_timing(tmp_path: Path) -> None:
    msgs = [
        _ticker("tstusdt", 1, "10.00", "10.01", exchange_time=False),
        _diff("tstusdt", 2, 48, 50, None, [["10.00", "1.0"]], []),     # u == lastUpdateId: dropped on spot
        _snapshot(3, 50, [["10.00", "2.0"]], [["10.01", "3.0"]], exchange_time=False),
        _diff("tstusdt", 4, 51, 52, None, [["9.99", "1.5"]], []),      # U == lastUpdateId + 1: first
        _diff("tstusdt", 5, 54, 55, None, [["9.98", "1.5"]], []),      # U != 53: gap on spot
        _trade("tstusdt", 6, "10.01", "0.5", True),
    ]
    tape = load_binance([_write(tmp_path / "spot_tstusdt_20240101.jsonl.gz", msgs)])
    assert tape.depth_px.tolist() == [1000, 1001, 999]
    assert tape.depth_gap_ts_ns.tolist() == [(T0_MS + 5) * 1_000_000]
    # no exchange time: local receive (1 ms after E here) + offset estimated from messages that have E
    assert tape.quote_ts_ns.tolist() == [(T0_MS + 1) * 1_000_000]
    assert tape.depth_ts_ns[0] == (T0_MS + 3) * 1_000_000
    assert tape.qty_scale == 10 and tape.trade_qty.tolist() == [5]


def test_several_days_read_as_one_stream_in_time_order(tmp_path: Path) -> None:
    msgs = _futures_stream()
    whole = load_binance([_write(tmp_path / "usdm_tstusdt_20240101.jsonl.gz", msgs)])
    (tmp_path / "a").mkdir()
    day1 = _write(tmp_path / "a" / "usdm_tstusdt_20240101.jsonl.gz", msgs[:5])
    day2 = _write(tmp_path / "a" / "usdm_tstusdt_20240102.jsonl.gz", msgs[5:])  # continues: no snapshot
    split = load_binance([day2, day1])
    for name in ("quote_ts_ns", "bid_px", "trade_ts_ns", "depth_ts_ns", "depth_px", "depth_qty",
                 "depth_snapshot_idx", "depth_gap_ts_ns"):
        assert getattr(split, name).tolist() == getattr(whole, name).tolist(), name
    assert list(discover(tmp_path / "a")) == ["usdm_tstusdt"]
    assert [p.name for p in discover(tmp_path / "a")["usdm_tstusdt"]] == [day1.name, day2.name]


def test_missing_message_across_files_is_a_gap(tmp_path: Path) -> None:
    msgs = _futures_stream()
    (tmp_path / "d").mkdir()
    day1 = _write(tmp_path / "d" / "usdm_tstusdt_20240101.jsonl.gz", msgs[:5])
    day2 = _write(tmp_path / "d" / "usdm_tstusdt_20240102.jsonl.gz", msgs[6:])  # 106-110 lost
    tape = load_binance([day1, day2])
    assert tape.depth_gap_ts_ns.tolist() == [(T0_MS + 8) * 1_000_000]


def test_symbol_selection(tmp_path: Path) -> None:
    msgs = [*_futures_stream(), _ticker("othusdt", 9, "5.0", "5.1"),
            _trade("othusdt", 9, "5.1", "1.000", True)]
    path = _write(tmp_path / "usdm_tstusdt_20240101.jsonl.gz", msgs)
    assert load_binance([path]).symbol == "TSTUSDT"   # the symbol its name says (the others counted)
    other = load_binance([path], symbol="othusdt")
    assert other.symbol == "OTHUSDT" and len(other.quote_ts_ns) == 1 and len(other.trade_ts_ns) == 1


@pytest.mark.parametrize(("line_no", "bad_line", "message"), [
    (3, "not-a-time {}", "line must start with"),
    (3, "1700000000000000000 {not json", "malformed|JSON"),
    (3, '1700000000000000000 {"stream":"tstusdt@aggTrade","data":{}}', "missing required field `E`"),
    (3, '1700000000000000000 {"stream":"tstusdt@forceOrder","data":{"E":1,"o":{}}}', "`s`"),
    (3, '1700000000000000000 {"stream":"tstusdt@markPrice@1s","data":{"E":1700000000003,"p":"-1"}}', "not an unsigned"),
    (3, '1700000000000000000 {"foo":1}', "neither a combined-stream envelope .* nor a depth snapshot"),
    (3, '1700000000000000000 {"stream":"tstusdt@trade","data":{"E":1,"p":"1.0","m":true}}', "q"),
    (3, '1700000000000000000 {"stream":"tstusdt@trade","data":{"E":1700000000003,"p":"1e5","q":"1",'
        '"m":true}}',
     "not an unsigned decimal"),
    (3, '1700000000000000000 {"stream":"tstusdt@bookTicker","data":{"u":3,"b":"-1.0","B":"1","a":"2",'
        '"A":"1","E":1700000000003}}', "not an unsigned decimal"),
    (9, '1700000000000000000 {"stream":"tstusdt@depth@0ms","data":{"E":1700000000009,"U":113,"u":113,'
        '"pu":112,"b":[["1.2.3","1"]],"a":[]}}', "not an unsigned decimal"),
    (9, '1700000000000000000 {"stream":"tstusdt@depth@0ms","data":{"E":1700000000009,"U":113,"u":113,'
        '"pu":112,"b":[["1.0"]],"a":[]}}', "depth levels are not"),
    (3, '1700000000000000000 {"stream":"tstusdt@depth@0ms","data":{"E":1,"U":1,"u":2,"b":[],"a":[]}}',
     "a depth diff without 'pu', as spot streams send it, in a file named usdm"),
    (3, '1700000000000000000 {"stream":"tstusdt@trade","data":{"E":1,"p":"1.0","q":"1","m":true,'
        '"x":"\u00e9"}}',
     "non-ASCII|not an unsigned"),
])
def test_malformed_lines_name_file_and_line(tmp_path: Path, line_no: int, bad_line: str,
                                            message: str) -> None:
    path = _write(tmp_path / "usdm_tstusdt_20240101.jsonl.gz", _futures_stream())
    with gzip.open(path, "rt") as fh:
        lines = fh.read().splitlines()
    lines.insert(line_no - 1, bad_line)
    with gzip.open(path, "wt") as fh:
        fh.write("\n".join(lines) + "\n")
    with pytest.raises(MarketDataError, match=message) as err:
        load_binance([path])
    assert f"{path}:{line_no}:" in str(err.value)


@pytest.mark.parametrize(("text", "digits", "decimals"), [
    ("61800.20", 6180020, 2), ("3", 3, 0), ("0.00000001", 1, 8),
    ("123456789012345678", 123456789012345678, 0),
])
def test_decimal_parsing_is_exact(text: str, digits: int, decimals: int) -> None:
    got_digits, got_decimals = parse_decimals(["1.5", text])
    assert (int(got_digits[1]), int(got_decimals[1])) == (digits, decimals)


@pytest.mark.parametrize("text", ["1.2.3", ".5", "", "1e5", "-1", "1 2", "1234567890123456789", "1\x002",
                                  "+1"])
def test_decimal_parsing_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="not an unsigned decimal") as err:
        parse_decimals(["1.5", text])
    assert err.value.index == 1  # type: ignore[attr-defined]


def test_bad_inputs(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="at least one file"):
        load_binance([])
    bad_name = _write(tmp_path / "btc.jsonl.gz", _futures_stream())
    with pytest.raises(MarketDataError, match="file name does not match"):
        load_binance([bad_name])
    spot = _write(tmp_path / "spot_tstusdt_20240101.jsonl.gz", _futures_stream())
    usdm = _write(tmp_path / "usdm_tstusdt_20240101.jsonl.gz", _futures_stream())
    with pytest.raises(MarketDataError, match="mix markets"):
        load_binance([spot, usdm])
    local_only = _write(tmp_path / "spot_loc_20240101.jsonl.gz",
                        [_ticker("loc", 1, "1.0", "1.1", exchange_time=False)])
    with pytest.raises(MarketDataError, match="estimate the clock offset"):
        load_binance([local_only])


def test_resolve_data_dir_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    explicit, env = tmp_path / "explicit", tmp_path / "env"
    explicit.mkdir()
    env.mkdir()
    monkeypatch.setenv("ROUTER_TUNER_DATA", str(env))
    assert resolve_data_dir(str(explicit)) == explicit
    assert resolve_data_dir(None) == env
    with pytest.raises(FileNotFoundError, match="nowhere"):
        resolve_data_dir(str(tmp_path / "nowhere"))
    monkeypatch.setenv("ROUTER_TUNER_DATA", str(tmp_path / "gone"))
    with pytest.raises(FileNotFoundError, match="gone"):
        resolve_data_dir(None)
    monkeypatch.delenv("ROUTER_TUNER_DATA")
    default = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "binance"
    assert resolve_data_dir(None) == (default if default.is_dir() else None)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        discover(tmp_path / "nothing")


def test_continuation_file_alone_has_no_depth(tmp_path: Path) -> None:
    """Diffs with no snapshot to build on cannot make a book: the tape carries quotes and trades only."""
    msgs = [m for m in _futures_stream() if "lastUpdateId" not in m]
    tape = load_binance([_write(tmp_path / "usdm_tstusdt_20240102.jsonl.gz", msgs)])
    assert len(tape.depth_ts_ns) == 0 and len(tape.depth_snapshot_idx) == 0
    assert len(tape.quote_ts_ns) == 2 and len(tape.trade_ts_ns) == 1
