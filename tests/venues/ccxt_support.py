"""The ccxt venue on the local Binance USDⓈ-M fake as the live engine wires it (``executor.engine.live``).

An ``AsyncCcxtVenue`` lives on a ``RouteLoop``'s thread: routes await it there, and the executor's thread calls it
blocking through ``LoopVenue``. Its rate-limit back-off sleeps through ``RecordedSleeps``, so a test reads the
waits without taking them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from router_tuner.config.loader import load_config
from router_tuner.executor.engine.live import LoopVenue
from router_tuner.executor.engine.routes import RouteLoop, RouteVenues
from router_tuner.router.events import RouterEvent
from router_tuner.router.policy import RouterPolicy
from router_tuner.router.routing.aio import PollingOrderUpdates
from router_tuner.router.routing.machine import route_machine
from router_tuner.router.routing.order import RouteOrder, RouteSettings
from router_tuner.router.venue import OrderRequest
from router_tuner.router.venues.ccxt.aio import AsyncCcxtVenue
from router_tuner.router.venues.ccxt.config import ApiCredentials, CcxtVenueConfig
from tests.fakes.binance_usdm import FakeBinanceUsdm
from tests.venues.stream_support import API_KEY, API_SECRET, DEADLINE_S, venue_config

TIMEOUT_MS = 300
STALL_S = 0.6  # a stall the fake holds a request for: twice the timeout
POLL_INTERVAL_MS = 10.0


def rest_config(base_url: str, **overrides: object) -> CcxtVenueConfig:
    """``venue_config`` with short timeouts and a back-off of 0.1, 0.2, 0.4 s (at most 0.8 s) over three retries,
    a ``Retry-After`` honoured up to 5 s, and the touch read from the order book."""
    settings: dict[str, object] = dict(request_timeout_ms=TIMEOUT_MS, rate_limit_max_retries=3,
                                       backoff_initial_ms=100.0, backoff_max_ms=800.0, retry_after_max_s=5.0,
                                       top_of_book_source="order_book")
    return replace(venue_config(base_url), **{**settings, **overrides})  # type: ignore[arg-type]


class RecordedSleeps:
    """The venue's back-off sleep: records each wait asked of it (seconds) and returns at once."""

    def __init__(self) -> None:
        self.sleeps_s: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.sleeps_s.append(seconds)


@dataclass(frozen=True)
class LiveVenue:
    """One connected venue: ``venue`` for the executor's blocking calls, ``client`` for what routes await,
    ``loop`` running both (``loop.start`` runs a route on ``client``, polling its orders)."""

    loop: RouteLoop
    venue: LoopVenue
    client: AsyncCcxtVenue


Connect = Callable[..., LiveVenue]  # the ``connect`` fixture: ``open_live`` on the test's fake, closed after it


def open_live(fake: FakeBinanceUsdm, sleep: RecordedSleeps, credentials: ApiCredentials | None = None,
              **overrides: object) -> LiveVenue:
    """Connect to ``fake`` (markets, position mode) on a new ``RouteLoop``; ``close`` the loop when done. A failed
    connection raises and leaves nothing running."""
    config = rest_config(fake.base_url, **overrides)
    creds = credentials if credentials is not None else ApiCredentials(API_KEY, API_SECRET)

    async def open_venues() -> RouteVenues:
        client = await AsyncCcxtVenue.connect(config, creds, None, 1_200_000, backoff_sleep=sleep)
        return RouteVenues(venue=LoopVenue(client, asyncio.get_running_loop()),  # type: ignore[arg-type]
                           routes_venue=client, updates=PollingOrderUpdates(client, poll_interval_ms=POLL_INTERVAL_MS),
                           timeline=None, feed_status=None, forget=None, close=client.close)

    loop = RouteLoop(open_venues)
    venues = loop.venues
    assert isinstance(venues.venue, LoopVenue) and isinstance(venues.routes_venue, AsyncCcxtVenue)
    return LiveVenue(loop, venues.venue, venues.routes_venue)


def request(cid: str, **kw: object) -> OrderRequest:
    """A 0.002 BTCUSDT post-only buy at 59999.95 (below the fakes' 60000.0 bid), changed by ``kw``; the time in
    force follows the order type unless given (IOC for market, GTC for limit)."""
    fields: dict[str, object] = dict(
        client_order_id=cid,
        symbol="BTCUSDT",
        side="buy",
        qty=0.002,
        order_type="limit",
        price=59999.95,
        post_only=True,
        reduce_only=False,
        close_position=False,
        position_side="BOTH",
    )
    fields.update(kw)
    fields.setdefault("time_in_force", "IOC" if fields["order_type"] == "market" else "GTC")
    return OrderRequest(**fields)  # type: ignore[arg-type]


def buy_order(intent_id: str, qty: float) -> RouteOrder:
    """A one-way BTCUSDT buy of ``qty`` to route on the fake (its tick and lot)."""
    return RouteOrder(intent_id=intent_id, symbol="BTCUSDT", side="buy", qty=qty, reduce_only=False,
                      close_position=False, position_side="BOTH", quote="USDT", tick_size=0.1, qty_step=0.001)


def start_route(live: LiveVenue, order: RouteOrder, policy: RouterPolicy) -> None:
    """Start a route on the live engine's loop, awaiting the venue as every live route does (a 10 ms poll)."""
    router = load_config().router
    settings = RouteSettings(position_mode="one_way", close_position_quotes=router.close_position_quotes,
                             poll_interval_ms=10.0, max_venue_retries=2, rate_limit_backoff_ms=10.0,
                             max_retry_after_ms=5000.0)
    live.loop.start(order.intent_id, route_machine(order, policy, settings, rng=np.random.default_rng(0)))


def route_event(live: LiveVenue) -> RouterEvent:
    """The event of the one route started on ``live``, once it ends."""
    live.loop.wait(DEADLINE_S)
    (finished,) = live.loop.finished
    assert finished.error is None and finished.result is not None, finished.error
    return finished.result
