"""End to end: a route through the asyncio driver (``router.routing.aio.drive_async``) on the ccxt.pro venue,
woken by fills the local Binance USDⓈ-M fakes push on the user data stream. No network, nothing polled."""

from __future__ import annotations

import asyncio
import dataclasses

import numpy as np

from router_tuner.config.loader import load_config
from router_tuner.router.events import RouterEvent
from router_tuner.router.policy import RouterPolicy
from router_tuner.router.routing.aio import drive_async
from router_tuner.router.routing.machine import route_machine
from router_tuner.router.routing.order import RouteOrder, RouteSettings
from router_tuner.router.venues.ccxt.aio import AsyncCcxtVenue
from router_tuner.router.venues.ccxt.config import ApiCredentials
from router_tuner.router.venues.ccxt.order_feed import FeedSettings, StreamOrderFeed
from tests.venues.stream_support import API_KEY, API_SECRET, SLOW_POLL_MS, Fakes, eventually, venue_config

MAKER_TTL_MS = 60_000.0  # a route that waited this long was not woken by the stream (and then cancels)


def machine(intent_id: str) -> object:
    order = RouteOrder(intent_id=intent_id, symbol="BTCUSDT", side="buy", qty=0.01, reduce_only=False,
                       close_position=False, position_side="BOTH", quote="USDT", tick_size=0.1, qty_step=0.001)
    config = load_config().router
    policy = dataclasses.replace(RouterPolicy.from_static("BTCUSDT", config), taker_bias=0.0,
                                 maker_ttl_ms=MAKER_TTL_MS, reprice_attempts=0, fallback_mode="taker")
    settings = dataclasses.replace(  # the fake account is in one-way mode
        RouteSettings.from_config(config, poll_interval_ms=SLOW_POLL_MS, max_venue_retries=2,
                                  rate_limit_backoff_ms=5.0, max_retry_after_ms=1000.0), position_mode="one_way")
    return route_machine(order, policy, settings, rng=np.random.default_rng(0))


def routed(fakes: Fakes, intent_id: str, while_resting: object) -> tuple[RouterEvent, int, int]:
    """Run one route to its event while ``while_resting(feed)`` acts on the resting maker order; return the event
    and the REST order fetches and cancels the route made after it rested."""
    async def main() -> tuple[RouterEvent, int, int]:
        venue = await AsyncCcxtVenue.connect(venue_config(fakes.rest.base_url), ApiCredentials(API_KEY, API_SECRET),
                                             fakes.stream.ws_url, 1_200_000)
        feed = StreamOrderFeed(venue, FeedSettings(poll_interval_ms=SLOW_POLL_MS, reconnect_initial_ms=5.0,
                                                   reconnect_max_ms=40.0))
        try:
            await feed.start()
            await eventually(lambda: feed.status.mode == "stream", "the order stream is up")
            task = asyncio.create_task(drive_async(machine(intent_id), venue, feed))  # type: ignore[arg-type]
            await eventually(lambda: f"{intent_id}-1" in fakes.rest.state.orders, "the maker leg rests")
            fetches, cancels = len(fakes.rest.order_requests("GET")), len(fakes.rest.order_requests("DELETE"))
            await while_resting(feed)  # type: ignore[operator]
            event = await task
            return (event, len(fakes.rest.order_requests("GET")) - fetches,
                    len(fakes.rest.order_requests("DELETE")) - cancels)
        finally:
            await feed.close()
            await venue.close()

    return asyncio.run(main())


def test_a_route_is_woken_by_its_fill_on_the_stream(fakes: Fakes) -> None:
    async def fill(feed: StreamOrderFeed) -> None:
        fakes.rest.fill("e1-1", "0.01")

    event, fetches, cancels = routed(fakes, "e1", fill)
    assert (event.outcome, event.routed_as, event.used_fallback, event.error) == ("filled", "maker", False, None)
    [fill_] = event.fills
    assert (fill_.client_order_id, fill_.qty, fill_.liquidity) == ("e1-1", 0.01, "maker")
    assert (fetches, cancels) == (0, 0)  # woken by the push: no poll, and no TTL cancel


def test_a_route_whose_stream_drops_gets_the_gap_fills_once(fakes: Fakes) -> None:
    async def fill_across_a_gap(feed: StreamOrderFeed) -> None:
        fakes.rest.fill("e2-1", "0.004")
        await eventually(lambda: (s := feed.current("e2-1")) is not None and s.filled_qty > 0, "the first fill")
        fakes.stream.refuse_connections(True)
        fakes.stream.drop()
        await eventually(lambda: feed.status.mode == "polling", "the feed notices the drop")
        fakes.rest.fill("e2-1", "0.006")  # while nobody listens
        fakes.stream.refuse_connections(False)

    event, fetches, cancels = routed(fakes, "e2", fill_across_a_gap)
    assert (event.outcome, event.routed_as, event.used_fallback) == ("filled", "maker", False)
    assert sorted(f.qty for f in event.fills) == [0.004, 0.006] and len({f.trade_id for f in event.fills}) == 2
    assert cancels == 0 and fetches >= 1  # the gap was recovered by REST, once the stream was back
