"""Protective closePosition stops in the simulated venue: trigger rules, the close at market, bad paths."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from router_tuner.router.venue import (
    InvalidOrder,
    OrderNotFound,
    OrderRequest,
    ReduceOnlyRejected,
    StopRequest,
    StopWouldTrigger,
    stop_condition_met,
)
from router_tuner.router.venues.sim import SimVenue
from tests.venues.test_sim_venue_support import MS, config, make_tape

QUOTES = [(0, 100, 5, 101, 5)] + [(t * 10 * MS, 100, 5, 101, 5) for t in range(1, 100)]


def market(coid: str, side: str, qty: float, position_side: str = "BOTH") -> OrderRequest:
    return OrderRequest(client_order_id=coid, symbol="BTCUSDT", side=side, qty=qty,  # type: ignore[arg-type]
                        order_type="market", price=None, time_in_force="IOC", post_only=False, reduce_only=False,
                        close_position=False, position_side=position_side)  # type: ignore[arg-type]


def stop(coid: str, kind: str = "stop_market", side: str = "sell", trigger: float = 95.0,
         working_type: str = "CONTRACT_PRICE", position_side: str = "BOTH") -> StopRequest:
    return StopRequest(client_order_id=coid, symbol="BTCUSDT", kind=kind, side=side,  # type: ignore[arg-type]
                       position_side=position_side, trigger_price=trigger,  # type: ignore[arg-type]
                       working_type=working_type)  # type: ignore[arg-type]


def venue_with(trades, quotes=QUOTES, depth=(), **cfg) -> SimVenue:
    return SimVenue([make_tape(quotes, trades, depth)], config(**cfg), start_ns=0)


def test_a_stop_triggers_at_the_first_trade_through_its_price_and_closes_the_leg_at_market() -> None:
    venue = venue_with([(200 * MS, 97, 1, True), (300 * MS, 95, 1, True), (400 * MS, 90, 1, True)])
    venue.place_order(market("open", "buy", 3))
    working = venue.place_stop(stop("sl"))
    assert working.status == "working" and venue.open_stops("BTCUSDT") == (working,)
    assert venue.open_orders(None) == ()  # stops live apart from plain orders
    venue.advance_to(350 * MS)
    done = venue.fetch_stop("BTCUSDT", "sl")
    assert done.status == "triggered" and done.triggered_ts_ns == 300 * MS
    (fill,) = done.fills
    # the close walks the book at the trigger: the bid of the quote at 300 ms, taker fee of 5 bps
    assert (fill.price, fill.qty, fill.liquidity, fill.ts_ns) == (100.0, 3.0, "taker", 300 * MS)
    assert fill.fee_usd == pytest.approx(3 * 100 * 5e-4)
    assert venue.positions("BTCUSDT") == {"BOTH": 0.0} and venue.open_stops(None) == ()


def test_the_close_walks_beyond_the_touch_when_the_leg_is_larger_than_it() -> None:
    venue = venue_with([(200 * MS, 94, 1, True)])
    venue.place_order(market("open", "buy", 12))
    venue.place_stop(stop("sl"))
    venue.advance_to(250 * MS)
    fills = venue.fetch_stop("BTCUSDT", "sl").fills
    assert [(f.price, f.qty) for f in fills] == [(100.0, 5.0), (99.0, 5.0), (98.0, 2.0)]  # slippage per level


def test_mark_price_stops_trigger_on_the_mid_not_on_trades() -> None:
    quotes = QUOTES[:20] + [(200 * MS, 94, 5, 95, 5)] + [(t * 10 * MS, 94, 5, 95, 5) for t in range(21, 60)]
    venue = venue_with([(100 * MS, 80, 1, True)], quotes=quotes)
    venue.place_order(market("open", "buy", 2))
    venue.place_stop(stop("mark", working_type="MARK_PRICE"))
    venue.advance_to(190 * MS)  # the trade at 80 is the last price, not the mark: no trigger
    assert venue.fetch_stop("BTCUSDT", "mark").status == "working"
    venue.advance_to(250 * MS)
    state = venue.fetch_stop("BTCUSDT", "mark")
    assert state.status == "triggered" and state.triggered_ts_ns == 200 * MS  # mid 94.5 <= 95


def test_take_profit_triggers_the_other_way_and_closes_a_short() -> None:
    venue = venue_with([(200 * MS, 99, 1, False), (300 * MS, 96, 1, False)])
    venue.place_order(market("short", "sell", 2))
    venue.place_stop(stop("tp", kind="take_profit_market", side="buy", trigger=96.0))
    venue.advance_to(250 * MS)
    assert venue.fetch_stop("BTCUSDT", "tp").status == "working"
    venue.advance_to(350 * MS)
    state = venue.fetch_stop("BTCUSDT", "tp")
    assert state.status == "triggered" and [f.price for f in state.fills] == [101.0]  # bought at the ask
    assert venue.positions("BTCUSDT") == {"BOTH": 0.0}


def test_hedge_mode_stops_close_their_own_leg_only() -> None:
    venue = venue_with([(200 * MS, 94, 1, True)], position_mode="hedge")
    venue.place_order(market("long", "buy", 2, "LONG"))
    venue.place_order(market("short", "sell", 1, "SHORT"))
    venue.place_stop(stop("sl-long", position_side="LONG"))
    venue.advance_to(300 * MS)
    assert venue.positions("BTCUSDT") == {"LONG": 0.0, "SHORT": -1.0}
    with pytest.raises(InvalidOrder, match="needs side buy"):
        venue.place_stop(stop("wrong", side="sell", position_side="SHORT"))


def test_a_stop_that_would_trigger_at_arrival_is_refused() -> None:
    venue = venue_with([(5 * MS, 96, 1, True)])
    venue.place_order(market("open", "buy", 1))
    venue.advance_to(10 * MS)
    with pytest.raises(StopWouldTrigger, match="immediately trigger"):
        venue.place_stop(stop("late", trigger=97.0))  # last price 96 <= 97
    assert venue.fetch_stop("BTCUSDT", "late").status == "rejected"
    with pytest.raises(StopWouldTrigger):  # take profit above a long, already below the last price
        venue.place_stop(stop("tp", kind="take_profit_market", trigger=95.0))


def test_bad_stop_requests_are_refused_naming_the_field() -> None:
    venue = venue_with([])
    with pytest.raises(ReduceOnlyRejected, match="no open BOTH position"):
        venue.place_stop(stop("flat"))
    venue.place_order(market("open", "buy", 1))
    with pytest.raises(ReduceOnlyRejected):  # a buy cannot close a long
        venue.place_stop(stop("wrong-side", side="buy", trigger=105.0))
    for bad, match in ((stop("t", trigger=95.5), "trigger_price 95.5 is not a whole number"),
                       (stop("t", trigger=float("nan")), "trigger_price must be"),
                       (stop("t", kind="stop_limit"), "kind must be"),
                       (stop("t", working_type="LAST"), "working_type must be"),
                       (stop("t", position_side="LONG"), "not allowed in one-way"),
                       (stop("flat"), "duplicate")):
        with pytest.raises(InvalidOrder, match=match):
            venue.place_stop(bad)
    with pytest.raises(OrderNotFound):
        venue.fetch_stop("BTCUSDT", "nope")


def test_cancel_ends_a_working_stop_and_a_stop_on_a_flat_leg_expires_when_it_triggers() -> None:
    venue = venue_with([(200 * MS, 90, 1, True)])
    venue.place_order(market("open", "buy", 1))
    venue.place_stop(stop("a"))
    venue.place_stop(stop("b", trigger=94.0))
    assert venue.cancel_stop("BTCUSDT", "a").status == "canceled"
    venue.place_order(OrderRequest(client_order_id="close", symbol="BTCUSDT", side="sell", qty=1,
                                   order_type="market", price=None, time_in_force="IOC", post_only=False,
                                   reduce_only=True, close_position=False, position_side="BOTH"))
    venue.advance_to(300 * MS)
    assert venue.fetch_stop("BTCUSDT", "b").status == "expired" and venue.fetch_stop("BTCUSDT", "b").fills == ()
    assert venue.cancel_stop("BTCUSDT", "b").status == "expired"  # a finished stop stays as it ended


@settings(max_examples=60, deadline=None)
@given(prices=st.lists(st.integers(min_value=85, max_value=115), min_size=1, max_size=30),
       trigger=st.integers(min_value=88, max_value=112), kind=st.sampled_from(["stop_market", "take_profit_market"]))
def test_a_stop_fires_exactly_at_the_first_trade_meeting_its_condition(prices, trigger, kind) -> None:
    trades = [((i + 1) * 10 * MS, px, 1, True) for i, px in enumerate(prices)]
    venue = venue_with(trades)
    venue.place_order(market("open", "buy", 1))  # arrives at 1 ms, before the first trade
    try:
        venue.place_stop(stop("s", kind=kind, trigger=float(trigger)))
    except StopWouldTrigger:
        assert stop_condition_met(kind, "sell", 100.5, float(trigger))  # the mid already met it
        return
    venue.advance_to(500 * MS)
    expected = next((ts for ts, px, _, _ in trades if stop_condition_met(kind, "sell", px, float(trigger))), None)
    state = venue.fetch_stop("BTCUSDT", "s")
    assert state.triggered_ts_ns == expected
    assert venue.positions("BTCUSDT") == {"BOTH": 0.0 if expected is not None else 1.0}


def test_stops_triggered_by_the_same_trade_all_fire() -> None:
    venue = venue_with([(200 * MS, 94, 1, True)], position_mode="hedge")
    venue.place_order(market("long", "buy", 2, "LONG"))
    venue.place_order(market("short", "sell", 1, "SHORT"))
    venue.place_stop(stop("sl-long", position_side="LONG"))
    venue.place_stop(stop("tp-short", kind="take_profit_market", side="buy", trigger=95.0, position_side="SHORT"))
    venue.advance_to(300 * MS)
    assert {s: venue.fetch_stop("BTCUSDT", s).triggered_ts_ns for s in ("sl-long", "tp-short")} == {
        "sl-long": 200 * MS, "tp-short": 200 * MS}
    assert venue.positions("BTCUSDT") == {"LONG": 0.0, "SHORT": 0.0}
