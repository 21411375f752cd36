"""Fills the venue's own rules rule out, through ccxt's real parsing: a route counts them and flags them."""

from __future__ import annotations

import time
from dataclasses import replace

from router_tuner.config.loader import load_config
from router_tuner.router.policy import RouterPolicy
from tests.fakes.binance_usdm import FakeBinanceUsdm
from tests.venues.ccxt_support import Connect, buy_order, route_event, start_route
from tests.venues.stream_support import DEADLINE_S


def test_a_misreported_and_overfilled_maker_order_ends_filled_with_each_anomaly_named(
    fake: FakeBinanceUsdm, connect: Connect
) -> None:
    live = connect()
    policy = replace(RouterPolicy.from_static("BTCUSDT", load_config().router), taker_bias=0.0, maker_offset_bps=1.0)
    start_route(live, buy_order("fa1", 0.005), policy)
    end = time.monotonic() + DEADLINE_S
    while not fake.created_for("fa1-1") and time.monotonic() < end:
        time.sleep(0.005)
    with fake.state.lock:  # both before the route's next poll: one answer carries them
        fake.fill("fa1-1", "0.003", maker=False)
        fake.fill("fa1-1", "0.003", price="60010.0")
        first, second = (t["id"] for t in fake.state.trades)
    event = route_event(live)
    (sent,) = fake.order_requests("POST")
    assert (sent["timeInForce"], sent["price"]) == ("GTX", "59994")  # 1 bp under the 60000.0 bid
    assert (event.outcome, event.filled_qty, len(event.fills)) == ("filled", 0.006, 2)  # what the venue holds
    assert event.error == (f"venue_anomaly(fill {first} of fa1-1 reported as taker on a post-only order; "
                           f"fill {second} of fa1-1 at 60010, worse than its buy limit 59994; "
                           "fa1-1 filled 0.006, more than its quantity 0.005)")
