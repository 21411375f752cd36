"""The ccxt venue on the local Binance USDⓈ-M fake as the live engine wires it (``executor.engine.live``).

An ``AsyncCcxtVenue`` lives on a ``RouteLoop``'s thread: routes await it there, and the executor's thread calls it
blocking through ``LoopVenue``. Its rate-limit back-off sleeps through ``RecordedSleeps``, so a test reads the
waits without taking them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, replace

from router_tuner.executor.engine.live import LoopVenue
from router_tuner.executor.engine.routes import RouteLoop, RouteVenues
from router_tuner.router.routing.aio import PollingOrderUpdates
from router_tuner.router.venue import OrderRequest
from router_tuner.router.venues.ccxt.aio import AsyncCcxtVenue
from router_tuner.router.venues.ccxt.config import ApiCredentials, CcxtVenueConfig
from tests.fakes.binance_usdm import FakeBinanceUsdm
from tests.venues.stream_support import API_KEY, API_SECRET, venue_config

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
