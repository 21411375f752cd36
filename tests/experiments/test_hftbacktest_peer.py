"""The hftbacktest peer benchmark: its conversion, probe schedule and statistics, and a run on a small slice."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from experiments.peer.probes import FILLED, REJECTED, ProbeOutcome, build_schedule, fill_stats, wilson_interval
from router_tuner.router.market.tape import MarketTape

hftbacktest = pytest.importorskip("hftbacktest", reason="the peer benchmark needs requirements-peer.txt installed")

from experiments.peer.events import tape_events  # noqa: E402  (needs hftbacktest)
from router_tuner.router.market.binance import resolve_data_dir  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
HAS_DATA = resolve_data_dir(None) is not None


def _i64(*v: int) -> np.ndarray:
    return np.array(v, dtype=np.int64)


def _tape(**over: object) -> MarketTape:
    """Quotes every 100 ms over 10 s, a snapshot of two levels at 0.5 s, one diff and two trades."""
    n = 101
    fields: dict[str, object] = dict(
        symbol="BTCUSDT", market="usdm", price_scale=10, qty_scale=1000, tick_size=0.1,
        quote_ts_ns=np.arange(n, dtype=np.int64) * 100_000_000, bid_px=np.full(n, 1000, np.int64),
        bid_qty=np.full(n, 500, np.int64), ask_px=np.full(n, 1001, np.int64), ask_qty=np.full(n, 700, np.int64),
        trade_ts_ns=_i64(700_000_000, 800_000_000), trade_px=_i64(1000, 1001), trade_qty=_i64(5, 7),
        trade_buyer_maker=np.array([True, False]), depth_ts_ns=_i64(500_000_000, 500_000_000, 800_000_000),
        depth_side=np.array([1, -1, 1], dtype=np.int8), depth_px=_i64(1000, 1001, 1000),
        depth_qty=_i64(500, 700, 495), depth_snapshot_idx=_i64(0))
    fields.update(over)
    return MarketTape(**fields).validate()  # type: ignore[arg-type]


def test_tape_events_follow_the_documented_mapping() -> None:
    from hftbacktest.types import (
        BUY_EVENT,
        DEPTH_CLEAR_EVENT,
        DEPTH_EVENT,
        EXCH_EVENT,
        LOCAL_EVENT,
        SELL_EVENT,
        TRADE_EVENT,
    )

    ev = tape_events(_tape())
    both = EXCH_EVENT | LOCAL_EVENT
    assert ev["ev"].tolist() == [DEPTH_CLEAR_EVENT | both, DEPTH_EVENT | BUY_EVENT | both,
                                 DEPTH_EVENT | SELL_EVENT | both, TRADE_EVENT | SELL_EVENT | both,
                                 TRADE_EVENT | BUY_EVENT | both, DEPTH_EVENT | BUY_EVENT | both]
    assert ev["exch_ts"].tolist() == ev["local_ts"].tolist() == [5e8, 5e8, 5e8, 7e8, 8e8, 8e8]
    assert ev["px"].tolist() == [0.0, 100.0, 100.1, 100.0, 100.1, 100.0]
    assert ev["qty"].tolist() == [0.0, 0.5, 0.7, 0.005, 0.007, 0.495]  # the trade at 0.8 s sorts before the diff


def test_a_clear_goes_just_before_its_snapshot_row_not_before_earlier_rows_of_the_same_time() -> None:
    from hftbacktest.types import DEPTH_CLEAR_EVENT

    tape = _tape(depth_snapshot_idx=_i64(0, 2), depth_ts_ns=_i64(500_000_000, 800_000_000, 800_000_000))
    ev = tape_events(tape)
    kinds = (ev["ev"] & 0xFF).tolist()
    depth_rows = [i for i, k in enumerate(kinds) if k != 2]  # 2 = TRADE_EVENT
    assert [kinds[i] for i in depth_rows] == [DEPTH_CLEAR_EVENT, 1, 1, DEPTH_CLEAR_EVENT, 1]


def test_schedule_alternates_sides_at_the_quote_touch_and_keeps_one_probe_resting() -> None:
    tape = _tape()
    schedule = build_schedule(tape, period_s=1.0, ttl_s=0.5, latency_ms=5.0)
    assert schedule.submit_ns[0] == 1_700_000_000  # the last stream to start (trades, 0.7 s) + one period
    assert schedule.is_buy.tolist()[:3] == [True, False, True]
    assert schedule.px.tolist()[:2] == [1000, 1001]
    assert int(schedule.submit_ns[-1]) + schedule.ttl_ns + 2 * schedule.latency_ns <= tape.end_ns
    assert len(build_schedule(tape, 1.0, 0.5, 5.0, window_s=2.0)) == 3
    with pytest.raises(ValueError, match="one probe rests at a time"):
        build_schedule(tape, period_s=1.0, ttl_s=0.995, latency_ms=5.0)
    with pytest.raises(ValueError, match="too short"):
        build_schedule(tape, period_s=20.0, ttl_s=0.5, latency_ms=5.0)


@given(st.integers(0, 500), st.integers(1, 500))
def test_wilson_interval_holds_the_rate_within_zero_and_one(k: int, n: int) -> None:
    k = min(k, n)
    low, high = wilson_interval(k, n)
    assert 0.0 <= low <= k / n <= high <= 1.0


def test_fill_stats_count_rejects_as_not_filled_and_time_fills_from_sending() -> None:
    schedule = build_schedule(_tape(), 1.0, 0.5, 5.0)
    n = len(schedule)
    status = np.zeros(n, dtype=np.int8)
    status[:2], status[2] = FILLED, REJECTED
    fill_ns = np.full(n, -1, dtype=np.int64)
    fill_ns[:2] = schedule.submit_ns[:2] + _i64(100_000_000, 300_000_000)
    stats = fill_stats(schedule, ProbeOutcome(status=status, fill_ns=fill_ns, sent=n))
    assert (stats.probes, stats.filled, stats.rejected, stats.median_fill_ms) == (n, 2, 1, 200.0)
    assert stats.rate == pytest.approx(2 / n) and stats.low < stats.rate < stats.high


_ROW = re.compile(r"^(\w+)\s+(RiskAverse|LogProb@units|LogProb|PowerProb\(2\))\s+(\d+)\s+"
                  r"([\d.]+) \[([\d.]+), ([\d.]+)\]\s+([\d.]+) \[([\d.]+), ([\d.]+)\]\s+([+-][\d.]+)\s+(yes|NO)\s+"
                  r"(\d+)/(\d+)")


@pytest.mark.skipif(not HAS_DATA, reason="recorded market data not found (../shared/data/binance or ROUTER_TUNER_DATA)")
def test_benchmark_on_a_slice_prints_sane_rates_from_the_same_probes(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "experiments.bench.hftbacktest_peer", "--markets", "usdm_ethusdt",
                           "--window-s", "8", "--repeats", "1", "--tolerance", "0.2"],
                          cwd=REPO, capture_output=True, text=True, timeout=240, check=False,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert done.returncode == 0, done.stderr[-2000:]
    rows = [m for line in done.stdout.splitlines() if (m := _ROW.match(line))]
    assert [m[2] for m in rows] == ["RiskAverse", "LogProb", "LogProb@units", "PowerProb(2)"], done.stdout
    for m in rows:
        probes = int(m[3])
        ours, ours_low, ours_high, theirs, theirs_low, theirs_high = map(float, m.groups()[3:9])
        assert probes == 9
        assert 0.0 <= ours_low <= ours <= ours_high <= 1.0 and 0.0 <= theirs_low <= theirs <= theirs_high <= 1.0
        assert float(m[10]) == pytest.approx(ours - theirs, abs=1.5e-3)
        assert m[11] == ("yes" if abs(ours - theirs) <= 0.2 else "NO")
        assert 0 <= int(m[12]) <= probes and 0 <= int(m[13]) <= probes
    held = re.findall(r"scheduled (\d+), our venue holds (\d+) orders, hftbacktest (\d+)", done.stdout)
    assert held == [("9", "9", "9")] * 4
    assert re.search(r"ratio ours/theirs \d+\.\d+x", done.stdout)
    assert "probe outcomes differ" in done.stdout


def test_unknown_market_ends_in_one_line() -> None:
    if not HAS_DATA:
        pytest.skip("recorded market data not found")
    done = subprocess.run([sys.executable, "-m", "experiments.bench.hftbacktest_peer", "--markets", "nope_x"],
                          cwd=REPO, capture_output=True, text=True, timeout=120, check=False,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert done.returncode == 1
    assert done.stderr.strip().count("\n") == 0 and "nope_x" in done.stderr and "recorded:" in done.stderr


def test_timing_that_cannot_keep_one_probe_resting_ends_in_one_line() -> None:
    if not HAS_DATA:
        pytest.skip("recorded market data not found")
    done = subprocess.run([sys.executable, "-m", "experiments.bench.hftbacktest_peer", "--markets", "usdm_ethusdt",
                           "--period-s", "1", "--ttl-s", "1"],
                          cwd=REPO, capture_output=True, text=True, timeout=120, check=False,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert done.returncode == 1
    assert done.stderr.strip().count("\n") == 0 and "one probe rests at a time" in done.stderr


def _one_level_tape(ask_sizes: list[int], trade_qty: int) -> MarketTape:
    """A book 100.0 / 100.1 (sizes in whole units) whose ask level changes every 10 ms from 1.1 s, then one
    buyer-initiated trade at the ask at 1.2 s; an unchanged bid row at 3 s keeps hftbacktest's data going."""
    n = len(ask_sizes)
    quotes = np.arange(0, 3_000_000_001, 100_000_000, dtype=np.int64)
    k = len(quotes)
    return MarketTape(
        symbol="BTCUSDT", market="usdm", price_scale=10, qty_scale=1, tick_size=0.1, quote_ts_ns=quotes,
        bid_px=np.full(k, 1000, np.int64), bid_qty=np.full(k, 4000, np.int64), ask_px=np.full(k, 1001, np.int64),
        ask_qty=np.full(k, 688, np.int64), trade_ts_ns=_i64(1_200_000_000), trade_px=_i64(1001),
        trade_qty=_i64(trade_qty), trade_buyer_maker=np.array([False]),
        depth_ts_ns=np.concatenate((_i64(500_000_000, 500_000_000), 1_100_000_000 + 10_000_000 * np.arange(n),
                                    _i64(3_000_000_000))),
        depth_side=np.array([1, -1] + [-1] * n + [1], dtype=np.int8), depth_px=_i64(1000, 1001, *[1001] * n, 1000),
        depth_qty=_i64(4000, 688, *ask_sizes, 4000), depth_snapshot_idx=_i64(0)).validate()


@pytest.mark.parametrize(("ask_sizes", "replayed", "theirs_filled"), [
    ([470, 4637, 6435, 5768, 5786, 4009, 4894], "filled", True),
    ([470, 4637, 6435, 5768, 5786, 4009, 4894, 4894], "reset", False),  # the repeated row: log(1 + front) NaN
])
def test_hftbacktest_log_model_resets_a_negative_front_and_the_replay_says_so(
        ask_sizes: list[int], replayed: str, theirs_filled: bool) -> None:
    from experiments.bench.sim_replay import with_contract
    from experiments.peer import sim_engine
    from experiments.peer.diagnose import replay_log_model
    from experiments.peer.hbt_engine import build_backtest, run_hbt
    from experiments.peer.probes import ProbeSchedule
    from router_tuner.router.venues.sim import LogProbQueue
    from router_tuner.router.venues.sim.book import TapeBook

    tape = _one_level_tape(ask_sizes, trade_qty=16)
    schedule = ProbeSchedule(submit_ns=_i64(1_000_000_000), is_buy=np.array([False]), px=_i64(1001),
                             ttl_ns=700_000_000, latency_ns=5_000_000)
    theirs = run_hbt(build_backtest(tape, tape_events(tape), "ProbQueueModel(LogProbQueueFunc)", 5_000_000), tape,
                     schedule)
    ours = sim_engine.run_sim(TapeBook(tape), sim_engine.probe_config(with_contract(tape), LogProbQueue(), 5_000_000),
                              schedule)
    assert replay_log_model(tape, False, 1001, 1_005_000_000, 1_705_000_000, unit=1) == replayed
    assert bool(theirs.status[0] == FILLED) == theirs_filled
    assert ours.status[0] == FILLED and ours.fill_ns[0] == 1_200_000_000  # ours keeps the front at 0 and fills
