"""Properties of the simulated venue over random tapes and random order/cancel sequences, the queue
models and depth bookkeeping (snapshots, gaps), and a smoke run on recorded Binance data."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from router_tuner.router.venue import PostOnlyRejected
from router_tuner.router.venues.sim import LogProbQueue, PowerProbQueue, RiskAverseQueue, SimVenue, SimVenueConfig
from router_tuner.router.venues.sim.book import TapeBook
from router_tuner.router.venues.sim.queue import front_after_level_change
from tests.venues.test_sim_venue_support import MS, config, limit, make_tape, market

DATA = Path("/work/shared/data/binance/usdm_btcusdt_20240808.jsonl.gz")


@st.composite
def tapes(draw: st.DrawFn) -> object:
    n = draw(st.integers(2, 40))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    ts = np.sort(rng.integers(0, 50 * MS, n))
    ts[0] = 0
    bid = 100 + np.cumsum(rng.integers(-1, 2, n))
    ask = bid + rng.integers(1, 3, n)
    quotes = [(int(t), int(b), int(rng.integers(1, 8)), int(a), int(rng.integers(1, 8)))
              for t, b, a in zip(ts, bid, ask, strict=True)]
    m = draw(st.integers(0, 60))
    tts = np.sort(rng.integers(0, 50 * MS, m))
    trades = [(int(t), int(bid[min(np.searchsorted(ts, t), n - 1)] + rng.integers(-1, 3)),
               int(rng.integers(1, 6)), bool(rng.integers(0, 2))) for t in tts]
    depth: list[tuple[int, int, int, int]] = []
    if draw(st.booleans()):
        dts = np.sort(rng.integers(0, 50 * MS, draw(st.integers(1, 60))))
        depth = [(int(t), int(s), int(100 + rng.integers(-4, 5)), int(rng.integers(0, 9)))
                 for t, s in zip(dts, rng.choice([-1, 1], len(dts)), strict=True)]
    return make_tape(quotes, trades, depth, snapshot_idx=[0] if depth else [])


actions = st.lists(st.tuples(st.sampled_from(["limit", "post", "market", "cancel", "sleep"]),
                             st.sampled_from(["buy", "sell"]), st.integers(1, 6), st.integers(96, 106),
                             st.integers(0, 5 * MS)), min_size=1, max_size=25)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tape=tapes(), steps=actions, model=st.sampled_from([PowerProbQueue(2.0), LogProbQueue(), RiskAverseQueue()]))
def test_fills_never_exceed_qty_nor_repeat(tape: object, steps: list[tuple[str, str, int, int, int]],
                                          model: object) -> None:
    venue = SimVenue([tape], config(model, cancel_latency_ms=0.5, max_taker_walk_levels=1000),  # type: ignore[list-item,arg-type]
                     start_ns=0)
    sent: list[str] = []
    seen: dict[str, tuple[object, ...]] = {}
    for k, (kind, side, qty, px, dt) in enumerate(steps):
        if venue.clock.now_ns() + 2 * MS + dt > venue.end_ns:
            break
        coid = f"o{k}"
        if kind == "sleep":
            venue.clock.sleep_until(venue.clock.now_ns() + dt)
        elif kind == "cancel" and sent:
            venue.cancel_order("BTCUSDT", sent[px % len(sent)])
        elif kind in ("limit", "post"):
            sent.append(coid)
            try:
                venue.place_order(limit(coid, side, qty, px, post_only=kind == "post"))
            except PostOnlyRejected:
                assert venue.fetch_order("BTCUSDT", coid).status == "rejected"
        elif kind == "market":
            sent.append(coid)
            assert venue.place_order(market(coid, side, qty)).status == "filled"
        for c in sent:
            state = venue.fetch_order("BTCUSDT", c)
            prior = seen.get(c, ())
            assert state.fills[:len(prior)] == prior  # cumulative: earlier fills never change or vanish
            seen[c] = state.fills
            assert 0 <= state.filled_qty <= state.qty
            assert math.isclose(sum(f.qty for f in state.fills), state.filled_qty, abs_tol=1e-9)
            assert (state.status == "filled") == (state.filled_qty == state.qty)
            assert all(f.qty > 0 and f.client_order_id == c for f in state.fills)
            assert [f.ts_ns for f in state.fills] == sorted(f.ts_ns for f in state.fills)
    trade_ids = [f.trade_id for fills in seen.values() for f in fills]
    assert len(trade_ids) == len(set(trade_ids))
    assert {s.client_order_id for s in venue.open_orders(None)} <= set(sent)
    assert all(not s.is_terminal for s in venue.open_orders(None))


def test_front_after_level_change() -> None:
    proportional = PowerProbQueue(power=1.0)
    # 10 ahead, 10 behind, 10 cancelled: half of it ahead.
    assert front_after_level_change(proportional, 10.0, 20.0, 10.0, 0.0) == 5.0
    # A drop fully explained by trades already applied moves nothing more.
    assert front_after_level_change(proportional, 4.0, 20.0, 14.0, 6.0) == 4.0
    # Growth joins behind; the front never exceeds what is displayed.
    assert front_after_level_change(proportional, 4.0, 10.0, 30.0, 0.0) == 4.0
    assert front_after_level_change(RiskAverseQueue(), 9.0, 10.0, 3.0, 0.0) == 3.0
    assert front_after_level_change(LogProbQueue(), 0.0, 10.0, 2.0, 0.0) == 0.0
    # A larger power puts more of the cancel on the larger part of the queue.
    assert front_after_level_change(PowerProbQueue(3.0), 15.0, 20.0, 10.0, 0.0) < \
        front_after_level_change(proportional, 15.0, 20.0, 10.0, 0.0)


def test_config_validation() -> None:
    for change, match in [({"order_entry_latency_ms": -1.0}, "order_entry_latency_ms"),
                          ({"cancel_latency_ms": float("nan")}, "cancel_latency_ms"),
                          ({"maker_fee_bps": True}, "maker_fee_bps"),
                          ({"taker_fee_bps": 5000.0}, "taker_fee_bps"),
                          ({"queue_model": "power"}, "queue_model"),
                          ({"no_depth_level_qty_ratio": 0.0}, "no_depth_level_qty_ratio"),
                          ({"max_taker_walk_levels": 0}, "max_taker_walk_levels"),
                          ({"seed": -1}, "seed"), ({"name": ""}, "name")]:
        with pytest.raises(ValueError, match=match):
            config(**change)
    with pytest.raises(ValueError, match="power"):
        PowerProbQueue(power=0.0)
    with pytest.raises(TypeError):
        SimVenue([make_tape([(0, 99, 1, 101, 1)])], {"name": "sim"}, start_ns=0)  # type: ignore[arg-type]
    assert isinstance(config(), SimVenueConfig)


def test_depth_snapshots_and_gaps() -> None:
    depth = [(0, 1, 99, 10), (0, -1, 101, 5), (MS, 1, 99, 8),
             (5 * MS, 1, 98, 7), (5 * MS, -1, 101, 4)]  # second snapshot: no 99 bid any more
    tape = make_tape([(0, 99, 3, 101, 5), (100 * MS, 98, 7, 101, 4)], depth=depth, snapshot_idx=[0, 3],
                     gap_ts=[2 * MS])
    book = TapeBook(tape)
    assert [book.depth_known_at(t) for t in (-1, MS, 3 * MS, 6 * MS)] == [False, True, False, True]
    assert [book.level_qty_at(True, 99, t) for t in (0, MS, 6 * MS)] == [10, 8, 0]
    events = book.level_cursor(True, 99, 0).take_until(10 * MS, book.window(0, 10 * MS, True))
    assert events == ([MS, 5 * MS], [1, 1], [8, 0])
    with pytest.raises(ValueError, match="a buy window asked about a sell order"):
        book.first_cross_ns(False, 101, book.window(0, 10 * MS, True))
    assert list(book.levels_beyond(True, 100, 6 * MS, 10)) == [(98, 7)]
    # In the gap the taker falls back on the touch plus the impact assumption.
    venue = SimVenue([tape], config(no_depth_level_qty_ratio=1.0, order_entry_latency_ms=0.0), start_ns=3 * MS)
    state = venue.place_order(market("m", "sell", 5))
    assert [(f.price, f.qty) for f in state.fills] == [(99.0, 3.0), (98.0, 2.0)]


@pytest.mark.skipif(not DATA.exists(), reason="recorded Binance data not present")
def test_recorded_binance_replay() -> None:
    from router_tuner.router.market.binance import load_binance

    tape = load_binance([DATA])
    start = int(tape.quote_ts_ns[0]) + 10 * 1_000_000_000
    venue = SimVenue([tape], config(PowerProbQueue(2.0), maker_fee_bps=-0.5, taker_fee_bps=4.5), start_ns=start)
    book = venue.top_of_book("BTCUSDT")
    assert 40_000 < book.bid < book.ask < 80_000
    state = venue.place_order(market("t", "buy", 0.01))
    assert state.status == "filled" and all(f.liquidity == "taker" for f in state.fills)
    placed = 0
    for k in range(40):
        tob = venue.top_of_book("BTCUSDT")
        side, px = ("buy", tob.bid) if k % 2 else ("sell", tob.ask)
        venue.place_order(limit(f"m{k}", side, 0.002, round(px, 1)))
        placed += 1
        venue.clock.sleep_until(venue.clock.now_ns() + 5_000_000_000)
    maker_fills = [f for k in range(placed) for f in venue.fetch_order("BTCUSDT", f"m{k}").fills]
    assert maker_fills, "forty touch orders over 200 s of BTCUSDT should see some fills"
    assert all(f.liquidity == "maker" and f.fee_usd < 0 for f in maker_fills)
    assert len({f.trade_id for f in maker_fills}) == len(maker_fills)
