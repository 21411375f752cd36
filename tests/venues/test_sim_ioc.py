"""IOC limit orders on the simulated venue: judged at arrival after latency, walk the book up to the limit
(depth where the tape has it, the impact assumption where it does not), expire the rest, never rest."""

from __future__ import annotations

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from router_tuner.router.venue import InvalidOrder, OrderRequest
from router_tuner.router.venues.sim import SimVenue
from tests.venues.test_sim_venue_props import tapes
from tests.venues.test_sim_venue_support import MS, config, limit, make_tape, market

FLAT = [(0, 99, 5, 101, 5), (100 * MS, 99, 5, 101, 5)]
DEPTH = [(0, -1, 101, 2), (0, -1, 102, 3), (0, -1, 103, 10), (0, 1, 99, 5), (0, 1, 98, 4)]


def ioc(coid: str, side: str, qty: float, price: float) -> OrderRequest:
    return limit(coid, side, qty, price, post_only=False, time_in_force="IOC")


def flat_venue(**changes: object) -> SimVenue:
    return SimVenue([make_tape(FLAT, [(5 * MS, 102, 1, True), (6 * MS, 100, 3, False)])], config(**changes),
                    start_ns=0)


def depth_venue() -> SimVenue:
    tape = make_tape([(0, 99, 5, 101, 2), (100 * MS, 99, 5, 101, 2)], depth=DEPTH, snapshot_idx=[0])
    return SimVenue([tape], config(taker_fee_bps=5.0), start_ns=0)


def test_ioc_that_the_touch_covers_fills_completely() -> None:
    venue = flat_venue()
    state = venue.place_order(ioc("a", "buy", 3, 101))
    assert (state.status, state.filled_qty) == ("filled", 3)
    assert [(f.price, f.qty, f.liquidity) for f in state.fills] == [(101.0, 3.0, "taker")]
    assert venue.open_orders("BTCUSDT") == () and venue.clock.now_ns() == 1 * MS  # judged at arrival


def test_ioc_without_depth_walks_the_impact_assumption_then_expires_the_rest() -> None:
    venue = flat_venue(no_depth_level_qty_ratio=0.2)
    state = venue.place_order(ioc("a", "buy", 10, 102))
    assert [(f.price, f.qty) for f in state.fills] == [(101.0, 5.0), (102.0, 1.0)]  # 0.2 * 5 beyond the touch
    assert (state.status, state.filled_qty) == ("expired", 6)
    assert venue.open_orders("BTCUSDT") == ()
    venue.clock.sleep_until(7 * MS)  # a sell at 102 would have filled a resting remainder (see the GTC test)
    assert venue.fetch_order("BTCUSDT", "a") == state


def test_ioc_with_depth_walks_the_depth_levels_up_to_its_limit() -> None:
    venue = depth_venue()
    partial = venue.place_order(ioc("p", "buy", 6, 102))
    assert [(f.price, f.qty) for f in partial.fills] == [(101.0, 2.0), (102.0, 3.0)]
    assert (partial.status, partial.filled_qty) == ("expired", 5)
    full = venue.place_order(ioc("f", "buy", 4, 103))
    assert [(f.price, f.qty) for f in full.fills] == [(103.0, 4.0)]  # the first taker took 101 and 102
    assert full.status == "filled"
    sell = venue.place_order(ioc("s", "sell", 12, 98))
    assert [(f.price, f.qty) for f in sell.fills] == [(99.0, 5.0), (98.0, 4.0)]
    assert (sell.status, sell.filled_qty) == ("expired", 9)
    assert all(f.fee_usd == pytest.approx(f.price * f.qty * 5.0 / 1e4) for f in sell.fills)
    assert venue.open_orders(None) == ()


@pytest.mark.parametrize("with_depth", [False, True])
def test_ioc_that_cannot_trade_at_arrival_expires_with_nothing(with_depth: bool) -> None:
    venue = depth_venue() if with_depth else flat_venue()
    state = venue.place_order(ioc("n", "buy", 3, 100))
    assert (state.status, state.filled_qty, state.fills) == ("expired", 0.0, ())
    assert venue.open_orders("BTCUSDT") == ()
    venue.clock.sleep_until(50 * MS)
    assert venue.fetch_order("BTCUSDT", "n") == state
    assert venue.cancel_order("BTCUSDT", "n") == state  # nothing to cancel: the final state as it was


def test_ioc_is_judged_at_arrival_after_latency() -> None:
    # The ask moves from 101 to 103 within the 1 ms entry latency: the IOC at 101 finds nothing.
    tape = make_tape([(0, 99, 5, 101, 5), (MS // 2, 99, 5, 103, 5), (100 * MS, 99, 5, 103, 5)])
    venue = SimVenue([tape], config(), start_ns=0)
    assert venue.place_order(ioc("late", "buy", 1, 101)).status == "expired"
    assert venue.place_order(ioc("now", "buy", 1, 103)).status == "filled"


def test_reducing_ioc_fills_only_the_position_then_expires() -> None:
    venue = flat_venue()
    venue.place_order(market("open", "buy", 2))
    state = venue.place_order(msgspec.structs.replace(ioc("close", "sell", 5, 99), reduce_only=True))
    assert (state.status, state.filled_qty) == ("expired", 2) and venue.positions("BTCUSDT") == {"BOTH": 0.0}


def test_contradictory_time_in_force_is_refused_and_nothing_registered() -> None:
    venue = flat_venue()
    with pytest.raises(InvalidOrder, match="post-only order rests as maker"):
        venue.place_order(limit("po", "buy", 1, 99, post_only=True, time_in_force="IOC"))
    with pytest.raises(InvalidOrder, match="market order never rests"):
        venue.place_order(msgspec.structs.replace(market("mk", "buy", 1), time_in_force="GTC"))
    with pytest.raises(InvalidOrder, match="time_in_force must be 'GTC' or 'IOC'"):
        venue.place_order(limit("fok", "buy", 1, 101, post_only=False, time_in_force="FOK"))  # type: ignore[arg-type]
    assert venue.positions("BTCUSDT") == {"BOTH": 0.0} and venue.open_orders(None) == ()
    for coid in ("po", "mk", "fok"):
        venue.place_order(ioc(coid, "buy", 1, 101))  # the ids were never registered


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tape=tapes(), orders=st.lists(st.tuples(st.sampled_from(["buy", "sell"]), st.integers(1, 12),
                                              st.integers(94, 108), st.integers(0, 5 * MS)), min_size=1,
                                    max_size=12))
def test_an_ioc_never_rests_nor_fills_beyond_its_limit(tape: object,
                                                      orders: list[tuple[str, int, int, int]]) -> None:
    venue = SimVenue([tape], config(max_taker_walk_levels=1000), start_ns=0)  # type: ignore[list-item]
    for k, (side, qty, px, dt) in enumerate(orders):
        if venue.clock.now_ns() + 2 * MS + dt > venue.end_ns:
            break
        venue.clock.sleep_until(venue.clock.now_ns() + dt)
        state = venue.place_order(ioc(f"o{k}", side, qty, px))
        assert state.status in ("filled", "expired")
        assert (state.status == "filled") == (state.filled_qty == qty)
        assert state.filled_qty == sum(f.qty for f in state.fills) <= qty
        assert all(f.liquidity == "taker" and (f.price <= px if side == "buy" else f.price >= px)
                   for f in state.fills)
        assert venue.open_orders(None) == ()


def test_our_takers_consume_the_displayed_touch_until_the_tape_refreshes_it() -> None:
    """Two IOCs on one shown touch share its size; a new touch on the tape is whole again."""
    tape = make_tape([(0, 99, 5, 101, 5), (10 * MS, 99, 5, 101, 6), (50 * MS, 99, 5, 101, 6)], [])
    venue = SimVenue([tape], config(no_depth_level_qty_ratio=0.2), start_ns=0)
    first = venue.place_order(ioc("a", "buy", 4, 101))
    second = venue.place_order(ioc("b", "buy", 4, 101))
    assert (first.filled_qty, second.filled_qty, second.status) == (4.0, 1.0, "expired")
    venue.clock.sleep_until(10 * MS)
    third = venue.place_order(ioc("c", "buy", 4, 101))
    assert (third.filled_qty, third.status) == (4.0, "filled")
    assert venue.place_order(ioc("d", "sell", 5, 99)).filled_qty == 5.0  # the other side is untouched
