"""Our own resting orders share the simulated queue: a later order of ours at the same price waits behind
the earlier one, and moves up when the earlier one leaves the queue."""

from __future__ import annotations

from router_tuner.router.venues.sim import SimVenue
from tests.venues.test_sim_venue_support import MS, config, limit, make_tape

QUOTES = [(0, 99, 5, 101, 5), (100 * MS, 99, 5, 101, 5)]
SELLS_AT_BID = [(20 * MS, 99, 5, True), (30 * MS, 99, 2, True), (40 * MS, 99, 3, True)]


def venue() -> SimVenue:
    return SimVenue([make_tape(QUOTES, SELLS_AT_BID)], config(), start_ns=0)


def test_a_later_order_of_ours_at_the_same_price_queues_behind_the_earlier_one() -> None:
    sim = venue()
    sim.place_order(limit("a", "buy", 2, 99))  # 5 displayed ahead of it
    sim.place_order(limit("b", "buy", 2, 99))  # 5 displayed + our 2 ahead of it
    sim.clock.sleep_until(30 * MS)
    assert sim.fetch_order("BTCUSDT", "a").filled_qty == 2.0  # the 2 past the displayed 5 are a's
    assert sim.fetch_order("BTCUSDT", "b").filled_qty == 0.0
    sim.clock.sleep_until(40 * MS)
    b = sim.fetch_order("BTCUSDT", "b")
    assert (b.status, b.filled_qty, b.fills[0].ts_ns) == ("filled", 2.0, 40 * MS)


def test_an_order_of_ours_that_leaves_the_queue_lets_the_later_one_move_up() -> None:
    sim = venue()
    sim.place_order(limit("a", "buy", 2, 99))
    sim.place_order(limit("b", "buy", 2, 99))
    assert sim.cancel_order("BTCUSDT", "a").status == "canceled"
    sim.clock.sleep_until(30 * MS)
    b = sim.fetch_order("BTCUSDT", "b")
    assert (b.status, b.filled_qty, b.fills[0].ts_ns) == ("filled", 2.0, 30 * MS)


def test_orders_at_other_prices_or_sides_do_not_queue_ahead() -> None:
    sim = venue()
    sim.place_order(limit("a", "buy", 2, 98))  # behind the touch: not ahead of an order at 99
    sim.place_order(limit("s", "sell", 2, 101))  # the other side
    sim.place_order(limit("b", "buy", 2, 99))
    sim.clock.sleep_until(30 * MS)
    assert sim.fetch_order("BTCUSDT", "b").filled_qty == 2.0
