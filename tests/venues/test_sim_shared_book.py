"""Venues sharing one prebuilt ``TapeBook``: the book is read-only and holds no venue state, so venues on
it stay independent (orders, fills, positions, clocks) and behave exactly as venues with their own tables."""

from __future__ import annotations

import gc
import weakref
from unittest.mock import patch

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from router_tuner.config.loader import load_config
from router_tuner.router.market.tape import MarketTape
from router_tuner.router.venue import OrderState, PostOnlyRejected, VenueError
from router_tuner.router.venues.sim import SimVenue
from router_tuner.router.venues.sim import book as book_module
from router_tuner.router.venues.sim.book import TapeBook
from router_tuner.simulation.job import SimulationOptions, simulate
from router_tuner.simulation.markets import synthetic_markets
from router_tuner.simulation.report.page import summary_dict
from router_tuner.tuner.factory import build_grid
from tests.venues.test_sim_venue_props import tapes
from tests.venues.test_sim_venue_support import MS, config, limit, make_tape, market

FLAT = [(0, 99, 3, 101, 4), (100 * MS, 99, 3, 101, 4)]

Step = tuple[int, str, str, int, int, int]
"""(lane, action, side, qty, price, sleep_ns)."""

steps_strategy = st.lists(
    st.tuples(st.integers(0, 1), st.sampled_from(["post", "limit", "market", "cancel", "sleep"]),
              st.sampled_from(["buy", "sell"]), st.integers(1, 6), st.integers(96, 106), st.integers(0, 5 * MS)),
    min_size=1, max_size=30)


def _drive(venues: tuple[SimVenue, SimVenue], steps: list[Step]) -> list[tuple[object, ...]]:
    """Apply interleaved steps to two venues; returns what each step observed (states, errors, clocks)."""
    seen: list[tuple[object, ...]] = []
    sent: list[list[str]] = [[], []]
    for k, (lane, action, side, qty, px, dt) in enumerate(steps):
        venue = venues[lane]
        if venue.clock.now_ns() + 2 * MS + dt > venue.end_ns:
            continue
        coid = f"o{k}"
        try:
            if action == "sleep":
                venue.clock.sleep_until(venue.clock.now_ns() + dt)
                out: object = venue.clock.now_ns()
            elif action == "cancel":
                if not sent[lane]:
                    continue
                out = venue.cancel_order("BTCUSDT", sent[lane][-1])
            else:
                request = market(coid, side, qty) if action == "market" else \
                    limit(coid, side, qty, px, post_only=action == "post")
                sent[lane].append(coid)
                out = venue.place_order(request)
        except (PostOnlyRejected, VenueError) as error:
            out = type(error).__name__
        seen.append((lane, action, out, venue.clock.now_ns(), venue.positions("BTCUSDT")))
    for lane, venue in enumerate(venues):
        states: tuple[OrderState, ...] = tuple(venue.fetch_order("BTCUSDT", c) for c in sent[lane])
        seen.append((lane, states, venue.open_orders(None), venue.clock.now_ns(), venue.positions("BTCUSDT")))
    return seen


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tape=tapes(), steps=steps_strategy, starts=st.tuples(st.integers(0, 10 * MS), st.integers(0, 10 * MS)))
def test_venues_on_one_book_match_venues_with_their_own_tables(tape: MarketTape, steps: list[Step],
                                                               starts: tuple[int, int]) -> None:
    cfg = config(cancel_latency_ms=0.5, max_taker_walk_levels=1000)
    if max(starts) > tape.end_ns:
        starts = (0, 0)
    book = TapeBook(tape)
    shared = (SimVenue([book], cfg, start_ns=starts[0]), SimVenue([book], cfg, start_ns=starts[1]))
    separate = (SimVenue([tape], cfg, start_ns=starts[0]), SimVenue([tape], cfg, start_ns=starts[1]))
    assert _drive(shared, steps) == _drive(separate, steps)


def test_orders_positions_and_clocks_of_two_lanes_stay_apart() -> None:
    book = TapeBook(make_tape(FLAT, [(5 * MS, 99, 10, True)]))
    a, b = SimVenue([book], config(), start_ns=0), SimVenue([book], config(), start_ns=2 * MS)
    resting = a.place_order(limit("r", "buy", 2, 99))
    taken = b.place_order(market("r", "sell", 1))  # the same client id is fine: another venue
    assert resting.status == "open" and taken.status == "filled"
    assert a.positions("BTCUSDT") == {"BOTH": 0.0} and b.positions("BTCUSDT") == {"BOTH": -1.0}
    assert (a.clock.now_ns(), b.clock.now_ns()) == (MS, 3 * MS)
    a.clock.sleep_until(10 * MS)  # a sell trade at 99 fills a's resting bid; b is untouched
    assert a.fetch_order("BTCUSDT", "r").filled_qty == 2.0 and a.positions("BTCUSDT") == {"BOTH": 2.0}
    assert b.clock.now_ns() == 3 * MS and b.positions("BTCUSDT") == {"BOTH": -1.0}
    assert b.fetch_order("BTCUSDT", "r").fills[0].liquidity == "taker" and b.open_orders(None) == ()
    assert [o.client_order_id for o in a.open_orders(None)] == []


def test_book_arrays_are_read_only_and_the_callers_tape_is_untouched() -> None:
    tape = make_tape(FLAT, [(5 * MS, 99, 1, True)], depth=[(0, 1, 99, 3), (0, -1, 101, 4)], snapshot_idx=[0])
    book = TapeBook(tape)
    arrays = [v for v in vars(book).values() if isinstance(v, np.ndarray)]
    arrays += [a for v in vars(book).values() if isinstance(v, tuple) for pair in v
               for a in (pair if isinstance(pair, tuple) else (pair,))]
    arrays += [getattr(book.tape, f) for f in MarketTape.__dataclass_fields__
               if isinstance(getattr(book.tape, f), np.ndarray)]
    assert len(arrays) > 20 and not any(a.flags.writeable for a in arrays)
    with pytest.raises(ValueError, match="read-only"):
        book.bid_px[0] = 1
    with pytest.raises(ValueError, match="read-only"):
        book.tape.depth_qty[0] = 1
    assert tape.bid_px.flags.writeable  # views: the caller's own arrays keep their flags
    assert np.shares_memory(book.tape.bid_px, tape.bid_px)  # and nothing was copied


def test_bad_tables_are_refused() -> None:
    book = TapeBook(make_tape(FLAT))
    with pytest.raises(ValueError, match="two tapes for symbol 'BTCUSDT'"):
        SimVenue([book, make_tape(FLAT)], config(), start_ns=0)
    with pytest.raises(TypeError, match="MarketTape or TapeBook"):
        SimVenue([object()], config(), start_ns=0)  # type: ignore[list-item]
    with pytest.raises(ValueError, match="before the first quote"):
        SimVenue([book], config(), start_ns=-1)


def test_a_finished_venue_is_freed_without_the_cycle_collector() -> None:
    gc.disable()
    try:
        venue = SimVenue([TapeBook(make_tape(FLAT))], config(), start_ns=0)
        clock, gone = venue.clock, weakref.ref(venue)
        venue.place_order(limit("r", "buy", 1, 99))
        del venue
        assert gone() is None
    finally:
        gc.enable()
    with pytest.raises(RuntimeError, match="no longer exists"):
        clock.now_ns()


def test_simulation_builds_each_market_book_once(monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = load_config()
    options = SimulationOptions(symbols=("BTCUSDT", "ETHUSDT"), orders_per_symbol=30, seed=5, data_dir=None,
                                learners=("ucb",))
    markets = synthetic_markets(cfg, options.symbols, options.seed)
    assert all(not m.tape.bid_px.flags.writeable for m in markets)
    built: list[str] = []
    original = TapeBook.__init__

    def counting(self: TapeBook, tape: MarketTape) -> None:
        built.append(tape.symbol)
        original(self, tape)

    monkeypatch.setattr(TapeBook, "__init__", counting)
    result = simulate(cfg, markets, options, build_grid(cfg.tuner, cfg.router), data_source="synthetic")
    assert built == []  # every lane of every policy replayed the market's one book
    assert max(i.lane for i in result.symbols["BTCUSDT"].intents) >= 1
    monkeypatch.undo()
    again = simulate(cfg, synthetic_markets(cfg, options.symbols, options.seed), options,
                     build_grid(cfg.tuner, cfg.router), data_source="synthetic")
    assert summary_dict(again) == summary_dict(result)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tape=tapes(), data=st.data())
def test_window_extremes_are_numpys_on_short_and_long_windows(tape: MarketTape, data: st.DataObject) -> None:
    """The window's extremes (list ``min`` on short slices, numpy beyond) equal numpy's over the same rows."""
    book = TapeBook(tape)
    ts = np.concatenate((book.quote_ts, book.trade_ts))
    t0 = data.draw(st.integers(int(ts.min()) - 1, int(ts.max())))
    t1 = data.draw(st.integers(t0, int(ts.max()) + 1))
    short_slice = data.draw(st.sampled_from([1, 3, book_module._SHORT_SLICE]))  # 1 and 3: numpy's side too
    for is_buy in (True, False):
        with patch.object(book_module, "_SHORT_SLICE", short_slice):
            win = book.window(t0, t1, is_buy)
        asks, bids, trades = book.ask_px[win.q0:win.q1], book.bid_px[win.q0:win.q1], book.trade_px[win.r0:win.r1]
        if len(asks):
            assert win.cross_touch_px == (int(asks.min()) if is_buy else int(bids.max()))
            if not book.has_depth:
                assert win.own_touch_px == (int(bids.min()) if is_buy else int(asks.max()))
        else:
            assert win.cross_touch_px is None
        assert win.cross_trade_px == (None if not len(trades) else int(trades.min() if is_buy else trades.max()))
