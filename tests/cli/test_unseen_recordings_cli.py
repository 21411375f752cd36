"""simulate on recordings it was not written against: each works, saying what it used, or ends in one line naming
the file and line, exit 2 (the unseen-recordings pass; the loader's own cases are in
tests/market/test_unseen_recordings.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from router_tuner.cli.main import BAD_INPUT, main
from tests.cli.test_cli_failures import one_line_failure
from tests.conftest import edit_config
from tests.market.test_market_binance import _snapshot, _ticker, _trade, _write


def _minute(data: Path, *, bid_qty: str = "1.000", bare: bool = False, bid: str = "60000.00", ask: str = "60000.10",
            size: str = "1.000") -> Path:
    """A minute of usdm BTCUSDT (lot 0.001): quotes every 50 ms and a trade every second; ``bid_qty`` from the 600th
    quote; ``size`` the other touch sizes (the ask's doubled) and the snapshot's."""
    data.mkdir()
    messages = [_snapshot(0, 100, [[bid, f"{3 * float(size):.3f}"]], [[ask, f"{4 * float(size):.3f}"]])]
    for k in range(1200):
        quote = _ticker("btcusdt", 1 + 50 * k, bid, ask)
        quote["data"]["B"], quote["data"]["A"] = size, f"{2 * float(size):.3f}"  # type: ignore[index]
        if k >= 600:
            quote["data"]["B"] = bid_qty   # type: ignore[index]
        messages.append(quote)
        if k % 20 == 10:
            messages.append(_trade("btcusdt", 2 + 50 * k, ask if k % 40 else bid, "0.001", k % 40 == 10))
    if bare:   # payloads without the combined-stream envelope, as a single-stream connection records them
        messages = [{"_recv_ms": m["_recv_ms"], **m["data"]} if "data" in m else m for m in messages]  # type: ignore[dict-item]
    return _write(data / "usdm_btcusdt_20240809.jsonl.gz", messages)


def _simulate(data: Path, tmp_path: Path) -> list[str]:
    return ["simulate", "--symbols", "BTCUSDT", "--data", str(data), "--no-mlflow", "--workers", "1", "--learners",
            "structured", "--orders", "5", "--shadow-symbols", "--out", str(tmp_path / "out"), "--json"]


def test_a_touch_without_size_is_bad_input_naming_the_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A bookTicker stretch with a bid size of 0 ended simulate in "unexpected ValueError: need size on both sides of
    the touch" (exit 1)."""
    path = _minute(tmp_path / "data", bid_qty="0.000")
    line = one_line_failure(_simulate(tmp_path / "data", tmp_path), capsys, BAD_INPUT)
    assert line.startswith(f"router-tuner simulate: --symbols/--data: {path}:")
    assert "quote with an empty side, bid 0.000 at 60000.00, ask 2.000 at 60000.10 (600 such quotes in all)" in line


def test_bare_payloads_simulate_like_the_combined_stream(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A single-stream capture was refused at its first line; it now replays to the same results."""
    results = []
    for name, bare in (("envelope", False), ("bare", True)):
        _minute(tmp_path / name, bare=bare)
        assert main(_simulate(tmp_path / name, tmp_path / name)) == 0
        out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
        results.append(out["symbols"]["BTCUSDT"])
    assert results[0]["policies"] == results[1]["policies"]
    assert results[1]["data"]["read"] == {"bookTicker": 1200, "trade": 60, "snapshot": 1}


def test_a_folder_of_misnamed_recordings_says_how_files_are_named(tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    """It said only "no recorded Binance files in DIR: check the path", of a folder full of them."""
    path = _minute(tmp_path / "data")
    path.rename(tmp_path / "data" / "usdm_btcusdt_2024-08-09.jsonl.gz")
    line = one_line_failure(_simulate(tmp_path / "data", tmp_path), capsys, BAD_INPUT)
    assert ("(Binance captures named <usdm|spot|cm>_<symbol>_<YYYYMMDD>.jsonl[.gz], e.g. "
            "usdm_btcusdt_20240808.jsonl.gz, or `router-tuner record` folders <SYMBOL>/chunk-NNNNNN.parquet; it "
            "holds 1 other file(s), e.g. usdm_btcusdt_2024-08-09.jsonl.gz)") in line


def test_a_coarse_tick_says_which_arms_post_at_one_price(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A coin at 0.05 quoted in 0.00001 (one tick is 2 bps): the default grid's 0.5 and 1 bp both rest one tick behind
    the touch; the run works and says so in one line, naming the symbol, the key and what to do (it used to say
    nothing while the learner offered both)."""
    _minute(tmp_path / "data", bid="0.05000", ask="0.05001", bid_qty="50000.000", size="50000.000")
    assert main(_simulate(tmp_path / "data", tmp_path)) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out.strip().splitlines()[-1])["symbols"]["BTCUSDT"]["offsets_at_one_price"] == [
        [0.5, 1.0]]
    warnings = [line for line in captured.err.splitlines() if line.startswith("WARNING: ")]
    assert warnings == ["WARNING: BTCUSDT: one tick is 2 bps of its price, so tuner.json arms.maker_offsets_bps post "
                        "at one price (0.5, 1 bps: 1 tick(s) behind the touch): those arms differ at most in where a "
                        "re-price goes and split the learner's evidence; for this market keep one offset per tick "
                        "(multiples of 2 bps)"]


def test_a_fine_tick_warns_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _minute(tmp_path / "data")
    assert main(_simulate(tmp_path / "data", tmp_path)) == 0
    captured = capsys.readouterr()
    assert "WARNING" not in captured.err
    assert json.loads(captured.out.strip().splitlines()[-1])["symbols"]["BTCUSDT"]["offsets_at_one_price"] == []


def _rewrite(path: Path, change: object) -> None:
    """Each recorded message's payload passed through ``change`` (a callable editing the dict in place)."""
    import gzip

    with gzip.open(path, "rt") as fh:
        lines = [line.split(" ", 1) for line in fh.read().splitlines()]
    out = []
    for ts, raw in lines:
        msg = json.loads(raw)
        change(msg.get("data", msg))  # type: ignore[operator]
        out.append(f"{ts} {json.dumps(msg)}\n")
    with gzip.open(path, "wt") as fh:
        fh.write("".join(out))


def test_exchange_times_in_us_simulate_like_ms(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Event times in µs (``timeUnit=MICROSECOND``) ended simulate in "unexpected OverflowError" (exit 1)."""
    def to_us(body: dict[str, int]) -> None:
        for key in ("E", "T"):
            if key in body:
                body[key] *= 1000

    results = []
    for name in ("ms", "us"):
        path = _minute(tmp_path / name)
        if name == "us":
            _rewrite(path, to_us)
        assert main(_simulate(tmp_path / name, tmp_path / name)) == 0
        out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
        results.append(out["symbols"]["BTCUSDT"])
    assert results[0]["policies"] == results[1]["policies"]
    assert results[1]["data"]["event_units"] == {"usdm_btcusdt_20240809.jsonl.gz": "us"}


def test_spot_quotes_under_a_futures_name_are_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Spot quotes (no E) in a usdm-named file replayed as a perpetual, silently."""
    def as_spot(body: dict[str, object]) -> None:
        if "u" in body and "b" in body and "U" not in body:
            for key in ("e", "E", "T"):
                body.pop(key, None)

    path = _minute(tmp_path / "data")
    _rewrite(path, as_spot)
    line = one_line_failure(_simulate(tmp_path / "data", tmp_path), capsys, BAD_INPUT)
    assert line.startswith(f"router-tuner simulate: --symbols/--data: {path}:2: a bookTicker without an event time E")
    assert line.endswith("the file holds spot data; rename it spot_<symbol>_<YYYYMMDD>.jsonl.gz")


def test_a_recording_outside_the_universe_beside_the_asked_symbol(tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    """An XRPUSDT recording (not in the universe) beside BTCUSDT's: `simulate --symbols BTCUSDT` was refused for the
    XRPUSDT file, and `sweep` (with or without --symbols BTCUSDT) planned BTCUSDT, then failed every task at run
    time, "a task failed (0 of 2 recorded, rerun to resume)", exit 1, on every rerun. Asked symbols now simulate;
    every recorded market (no --symbols) is refused naming the entry to add, by both commands, before any task."""
    import gzip

    data = tmp_path / "data"
    btc = _minute(data)
    text = gzip.decompress(btc.read_bytes()).decode().replace("btcusdt", "xrpusdt").replace("BTCUSDT", "XRPUSDT")
    (data / "usdm_xrpusdt_20240809.jsonl.gz").write_bytes(gzip.compress(text.encode()))
    assert main(_simulate(data, tmp_path)) == 0
    assert list(json.loads(capsys.readouterr().out.strip().splitlines()[-1])["symbols"]) == ["BTCUSDT"]
    sweep = ["sweep", "--learners", "ucb", "--seeds", "1", "--orders", "5", "--data", str(data), "--no-mlflow"]
    assert main([*sweep, "--symbols", "BTCUSDT", "--out", str(tmp_path / "named")]) == 0
    assert "2 tasks (2 run now, 0 resumed from checkpoints), 1 rows" in capsys.readouterr().out
    for argv in (["simulate", *_simulate(data, tmp_path)[3:]], [*sweep, "--out", str(tmp_path / "every")]):
        line = one_line_failure(argv, capsys, BAD_INPUT)
        assert 'recorded usdm XRPUSDT is not in strategy_config.json\'s universe: add "XRPUSDT": ' in line
    assert not (tmp_path / "every").exists()


def test_a_recording_much_shorter_than_the_orders_asked_says_so(tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    """A 20 s recording took 300 orders inside its 46 ms intent window, each on its own replay of the same instant,
    and said nothing; now one WARNING line (and ``warnings`` in --json) names the symbol, the window and what to do.
    The minute tape leaves 40 s, under 10 route spans of 6 s: 20 orders are warned of, 5 are not."""
    _minute(tmp_path / "data")
    args = _simulate(tmp_path / "data", tmp_path)
    args[args.index("--orders") + 1] = "20"
    assert main(args) == 0
    captured = capsys.readouterr()
    warning = ("BTCUSDT: the recording (60.0 s) leaves 39.95 s for the 20 orders to arrive in (after router.json "
               "simulation.intents warmup_ms 5000, before tail_ms 15000), under 10 routes' span (lane_min_gap_ms "
               "6000): they are routed on 5 replays of that stretch, so the costs describe it, not the market; use a "
               "longer recording or fewer --orders")
    assert f"WARNING: {warning}\n" in captured.err
    assert json.loads(captured.out.strip().splitlines()[-1])["warnings"] == [warning]
    assert main(_simulate(tmp_path / "data", tmp_path)) == 0
    captured = capsys.readouterr()
    assert "WARNING" not in captured.err
    assert json.loads(captured.out.strip().splitlines()[-1])["warnings"] == []


def test_a_lot_worth_more_than_the_largest_order_asked_says_so(tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    """A coin at 6,000,000 USD recorded in lots of 0.001: every order was one lot of 6000 USD where router.json asks
    100 to 400, unsaid; now one WARNING line (and ``warnings`` in --json) says so and what to change."""
    _minute(tmp_path / "data", bid="6000000.00", ask="6000000.10")
    assert main(_simulate(tmp_path / "data", tmp_path)) == 0
    captured = capsys.readouterr()
    warning = ("BTCUSDT: one lot (0.001 at 6000000.05, the recording's median mid, 6000 USD) is over router.json "
               "simulation.intents notional_max_usd 400: every order is one lot, 15 times the largest asked; raise "
               "notional_min_usd and notional_max_usd to a few lots")
    assert f"WARNING: {warning}\n" in captured.err
    assert json.loads(captured.out.strip().splitlines()[-1])["warnings"] == [warning]


@pytest.mark.parametrize("command", ["simulate", "sweep"])
def test_a_pair_quoted_in_btc_is_refused_naming_the_quote(tmp_path: Path, config_dir: Path, command: str,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    """ETHBTC (quote BTC, as the universe hint suggests) simulated its orders of 100 to 400 "USD" as 100 to 400 BTC:
    8178 ETH an order, walking the book (always-taker 19.65 bps where 11 was the fee and half spread), unsaid; a
    sweep with --symbols failed each task at run time (exit 1). Both refuse it before any work, one line, exit 2."""
    import gzip

    source = _minute(tmp_path / "minute")
    (tmp_path / "data").mkdir()
    with gzip.open(source, "rt") as fh, gzip.open(tmp_path / "data" / "usdm_ethbtc_20240809.jsonl.gz", "wt") as out:
        out.write(fh.read().replace("btcusdt", "ethbtc").replace("BTCUSDT", "ETHBTC"))
    edit_config(config_dir, "strategy_config.json", lambda d: d["universe"].update(ETHBTC={
        "venue_symbol": "ETHBTC", "tier": "CORE", "quote": "BTC", "market": "usdm", "contract_type": "linear",
        "contract_size": 1.0}))
    edit_config(config_dir, "router.json", lambda d: d["close_position_quotes"].append("BTC"))
    args = {"simulate": ["simulate", "--shadow-symbols"],
            "sweep": ["sweep", "--symbols", "ETHBTC", "--seeds", "1"]}[command]
    line = one_line_failure([*args, "--config", str(config_dir), "--data", str(tmp_path / "data"), "--no-mlflow",
                             "--workers", "1", "--learners", "structured", "--orders", "5", "--out",
                             str(tmp_path / "out")], capsys, BAD_INPUT)
    assert line.endswith(
        "ETHBTC is quoted in BTC (strategy_config.json $.universe.ETHBTC.quote): the simulation sizes orders in USD "
        "(router.json simulation.intents notional_min_usd/notional_max_usd) and has no BTC price to convert them, so "
        "they would be that many BTC; simulate pairs quoted in USD or a USD stablecoin (BUSD, DAI, FDUSD, TUSD, USD, "
        "USDC, USDP, USDT), or move its recording out of the data directory")
    line = one_line_failure(["simulate", "--data", str(tmp_path / "data"), "--no-mlflow", "--orders", "5", "--out",
                             str(tmp_path / "out")], capsys, BAD_INPUT)   # the embedded universe lacks it
    assert line.startswith("router-tuner simulate: --symbols/--data: recorded usdm ETHBTC is quoted in BTC: the "
                           "simulation sizes orders in USD")   # it said to add it to the universe, quoted BTC
