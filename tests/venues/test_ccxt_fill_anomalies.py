"""Fills the venue's own rules rule out, through ccxt's real parsing: a route counts them and flags them."""

from __future__ import annotations

import time
from dataclasses import replace

import numpy as np

from router_tuner.config.loader import load_config
from router_tuner.router.policy import RouterPolicy
from router_tuner.router.routing.machine import route_machine
from router_tuner.router.routing.order import RouteOrder, RouteSettings
from tests.fakes.binance_usdm import FakeBinanceUsdm
from tests.venues.ccxt_support import Connect
from tests.venues.stream_support import DEADLINE_S


def test_a_misreported_and_overfilled_maker_order_ends_filled_with_each_anomaly_named(
    fake: FakeBinanceUsdm, connect: Connect
) -> None:
    live = connect()
    router = load_config().router
    policy = replace(RouterPolicy.from_static("BTCUSDT", router), taker_bias=0.0, maker_offset_bps=1.0)
    settings = RouteSettings(position_mode="one_way", close_position_quotes=router.close_position_quotes,
                             poll_interval_ms=10.0, max_venue_retries=2, rate_limit_backoff_ms=10.0,
                             max_retry_after_ms=5000.0)
    order = RouteOrder(intent_id="fa1", symbol="BTCUSDT", side="buy", qty=0.005, reduce_only=False,
                       close_position=False, position_side="BOTH", quote="USDT", tick_size=0.1, qty_step=0.001)
    live.loop.start("fa1", route_machine(order, policy, settings, rng=np.random.default_rng(0)))
    end = time.monotonic() + DEADLINE_S
    while not fake.created_for("fa1-1") and time.monotonic() < end:
        time.sleep(0.005)
    with fake.state.lock:  # both before the route's next poll: one answer carries them
        fake.fill("fa1-1", "0.003", maker=False)
        fake.fill("fa1-1", "0.003", price="60010.0")
        first, second = (t["id"] for t in fake.state.trades)
    live.loop.wait(DEADLINE_S)
    (finished,) = live.loop.finished
    event = finished.result
    assert finished.error is None and event is not None
    (sent,) = fake.order_requests("POST")
    assert (sent["timeInForce"], sent["price"]) == ("GTX", "59994")  # 1 bp under the 60000.0 bid
    assert (event.outcome, event.filled_qty, len(event.fills)) == ("filled", 0.006, 2)  # what the venue holds
    assert event.error == (f"venue_anomaly(fill {first} of fa1-1 reported as taker on a post-only order; "
                           f"fill {second} of fa1-1 at 60010, worse than its buy limit 59994; "
                           "fa1-1 filled 0.006, more than its quantity 0.005)")
