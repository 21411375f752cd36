"""The live route engine: the ccxt.pro venue and its order stream on the engine's loop, one client for all.

``live_routes`` connects ``router.venues.ccxt.aio.AsyncCcxtVenue`` on the ``RouteLoop``'s thread. Routes
await it directly and learn of their orders from ``StreamOrderFeed`` (``executor.json`` ``live.order_updates``
``stream``: the user-data stream, REST polling only while it is down) or from ``PollingOrderUpdates``
(``polling``, or an exchange whose ccxt.pro class cannot watch orders). The executor's thread calls the same
client through ``LoopVenue`` (each call run on the loop, blocking the executor's thread only), so REST calls
of routes, the feed and the executor share one connection pool and one rate limiter. With ``live.book_updates``
``stream`` (and an exchange whose ccxt.pro class watches bids and asks) the touch of every instrument is
streamed on the same client (``StreamedBook``) and read by REST only when it is missing or stale.
Once the markets are loaded, every instrument must be listed (``listed_instruments``) and its ``risk_limits.json``
``min_notional`` floor must not be under the venue's own minimum (``refuse_floors_under_venue``), or the venue
does not start.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Coroutine, Mapping
from typing import Any, TypeVar

from router_tuner.config.models import ConfigBundle
from router_tuner.executor.engine.routes import RouteLoop, RouteVenues
from router_tuner.risk.lot import FloorUnderVenueMinimum, VenueMinimum, floor_under_venue
from router_tuner.router.contract import ContractSpec
from router_tuner.router.events import PositionSide
from router_tuner.router.routing.aio import PollingOrderUpdates
from router_tuner.router.venue import (
    BelowMinNotional,
    Clock,
    OrderRequest,
    OrderState,
    StopRequest,
    StopState,
    TopOfBook,
    VenueError,
)
from router_tuner.router.venues.ccxt.aio import AsyncCcxtVenue
from router_tuner.router.venues.ccxt.book_feed import BookSettings, StreamedBook
from router_tuner.router.venues.ccxt.config import ApiCredentials, CcxtVenueConfig
from router_tuner.router.venues.ccxt.order_feed import FeedSettings, StreamOrderFeed
from router_tuner.router.venues.ccxt.parse import min_notional_of_market

T = TypeVar("T")


def ccxt_config(config: ConfigBundle) -> CcxtVenueConfig:
    """The ccxt venue settings of ``executor.json`` ``live``."""
    live = config.executor.live
    return CcxtVenueConfig(
        exchange_id=live.exchange_id, api_key_env=live.api_key_env, api_secret_env=live.api_secret_env,
        api_base_url=live.api_base_url, request_timeout_ms=live.request_timeout_ms,
        ccxt_rate_limiter=live.ccxt_rate_limiter, rate_limit_max_retries=live.rate_limit_max_retries,
        backoff_initial_ms=live.backoff_initial_ms, backoff_max_ms=live.backoff_max_ms,
        retry_after_max_s=live.retry_after_max_s, top_of_book_source=live.top_of_book_source,
        order_book_depth=live.order_book_depth)


def live_routes(config: ConfigBundle, environ: Mapping[str, str] = os.environ) -> RouteLoop:
    """Connect the live venue (markets, position mode) and start its order feed; ``KeyError`` names a missing
    key variable, a ccxt or venue error says why the connection failed (nothing is left running)."""
    live = config.executor.live
    venue_config = ccxt_config(config)
    credentials = ApiCredentials.from_env(venue_config.api_key_env, venue_config.api_secret_env, environ)
    poll_interval_ms = config.executor.route.poll_interval_ms

    async def open_venues() -> RouteVenues:
        venue = await AsyncCcxtVenue.connect(venue_config, credentials, live.ws_base_url, live.listen_key_refresh_ms)
        bridged = LoopVenue(venue, asyncio.get_running_loop())
        try:
            listed_instruments(venue, config)
            refuse_floors_under_venue(venue, config)
            book = await stream_book(venue, config)
        except BaseException:
            await venue.close()
            raise
        book_status = (lambda: book.status) if book is not None else None

        async def close_venue() -> None:
            try:
                if book is not None:
                    await book.close()
            finally:
                await venue.close()

        if live.order_updates == "polling" or not venue.exchange.has.get("watchOrders"):
            return RouteVenues(venue=bridged, routes_venue=venue,  # type: ignore[arg-type]
                               updates=PollingOrderUpdates(venue, poll_interval_ms=poll_interval_ms),
                               timeline=None, feed_status=None, forget=None, close=close_venue,
                               book_status=book_status)
        feed = StreamOrderFeed(venue, FeedSettings(poll_interval_ms=poll_interval_ms,
                                                   reconnect_initial_ms=live.stream_reconnect_initial_ms,
                                                   reconnect_max_ms=live.stream_reconnect_max_ms))
        await feed.start()

        async def close() -> None:
            try:
                await feed.close()
            finally:
                await close_venue()

        return RouteVenues(venue=bridged, routes_venue=venue, updates=feed,  # type: ignore[arg-type]
                           timeline=None, feed_status=lambda: feed.status, forget=feed.forget, close=close,
                           book_status=book_status)

    return RouteLoop(open_venues)


def listed_instruments(venue: AsyncCcxtVenue, config: ConfigBundle) -> dict[str, str]:
    """Each ``executor.json`` instrument's unified ccxt symbol on ``venue``; one the exchange does not list (delisted,
    another market's name) is a ``VenueError``, so the venue does not start.

    Why here, for every ``live.book_updates``: only the book stream's start checked it, so with the touch read by
    REST the first position read of the reconciliation failed with "unexpected ValueError: … unknown symbol"."""
    try:
        return {symbol: venue.market(symbol)["symbol"] for symbol in config.executor.instruments}
    except ValueError as exc:
        raise VenueError(f"executor.json instruments: {exc}") from None


def venue_minimums(venue: AsyncCcxtVenue, config: ConfigBundle) -> dict[str, VenueMinimum]:
    """Each ``executor.json`` instrument's minimum notional on ``venue``, from the markets loaded at connection
    (``router.venues.ccxt.parse.min_notional_of_market``; no call is made)."""
    codes = [code for code, error in venue.core.quirks.error_codes.items() if error is BelowMinNotional]
    minimums = {}
    for symbol in config.executor.instruments:
        market = venue.market(symbol)
        minimums[symbol] = VenueMinimum(venue=venue.core.config.exchange_id, market=market["symbol"],
                                        quote=str(market.get("quote")), notional=min_notional_of_market(market),
                                        rejected_as=" / ".join(codes))
    return minimums


def refuse_floors_under_venue(venue: AsyncCcxtVenue, config: ConfigBundle) -> None:
    """Refuse (``FloorUnderVenueMinimum``, one line naming every symbol concerned) a ``risk_limits.json``
    ``min_notional`` floor under the venue's own minimum (``risk.lot.floor_under_venue``).

    Why refuse rather than warn or raise the floor silently: every opening order the risk layer sizes between the
    two is sent and rejected (-4164 on USDⓈ-M), a wasted round trip and a reject counted against the account on
    each intent, while the floor is the operator's risk decision to change. It is checked here, as the markets are
    loaded and before the reconciliation, so nothing reaches the account first; reducing orders are not concerned
    (the floor does not apply to them and the venue exempts reduce-only), so the fix never blocks a close."""
    problems = [problem for symbol, minimum in sorted(venue_minimums(venue, config).items())
                if (problem := floor_under_venue(symbol, minimum, config)) is not None]
    if problems:
        raise FloorUnderVenueMinimum("; ".join(problems))


async def stream_book(venue: AsyncCcxtVenue, config: ConfigBundle) -> StreamedBook | None:
    """Start the streamed touch of the instruments on ``venue`` when configured and the exchange can watch bids
    and asks (``None``: every touch is read by REST); an instrument the exchange does not list is a VenueError."""
    live = config.executor.live
    if live.book_updates == "rest" or not venue.exchange.has.get("watchBidsAsks"):
        return None
    symbols = listed_instruments(venue, config)
    book = StreamedBook(venue.exchange, symbols, BookSettings(max_age_ms=live.book_max_age_ms,
                                                              reconnect_initial_ms=live.stream_reconnect_initial_ms,
                                                              reconnect_max_ms=live.stream_reconnect_max_ms),
                        venue.name)
    await book.start()
    venue.book = book
    return book


class WallClock:
    """The executor's clock on a live venue: wall time in ns since the epoch; sleeping blocks the calling thread."""

    def now_ns(self) -> int:
        return time.time_ns()

    def sleep_until(self, ts_ns: int) -> None:
        delay_ns = ts_ns - time.time_ns()
        if delay_ns > 0:
            time.sleep(delay_ns / 1e9)


class LoopVenue:
    """The blocking ``Venue`` protocol (with positions and protective stops) over an ``AsyncCcxtVenue`` that
    lives on ``loop``: each call runs there and blocks the calling thread, never the loop."""

    def __init__(self, venue: AsyncCcxtVenue, loop: asyncio.AbstractEventLoop) -> None:
        self._venue = venue
        self._loop = loop
        self.name = venue.name
        self._clock = WallClock()

    @property
    def clock(self) -> Clock:
        return self._clock

    @property
    def hedge_mode(self) -> bool:
        return self._venue.hedge_mode

    def contract(self, symbol: str) -> ContractSpec:
        return self._run(self._venue.contract(symbol))

    def top_of_book(self, symbol: str) -> TopOfBook:
        return self._run(self._venue.top_of_book(symbol))

    def place_order(self, request: OrderRequest) -> OrderState:
        return self._run(self._venue.place_order(request))

    def cancel_order(self, symbol: str, client_order_id: str) -> OrderState:
        return self._run(self._venue.cancel_order(symbol, client_order_id))

    def fetch_order(self, symbol: str, client_order_id: str) -> OrderState:
        return self._run(self._venue.fetch_order(symbol, client_order_id))

    def open_orders(self, symbol: str | None) -> tuple[OrderState, ...]:
        return self._run(self._venue.open_orders(symbol))

    def positions(self, symbol: str) -> dict[PositionSide, float]:
        return self._run(self._venue.positions(symbol))

    def place_stop(self, request: StopRequest) -> StopState:
        return self._run(self._venue.place_stop(request))

    def cancel_stop(self, symbol: str, client_order_id: str) -> StopState:
        return self._run(self._venue.cancel_stop(symbol, client_order_id))

    def fetch_stop(self, symbol: str, client_order_id: str) -> StopState:
        return self._run(self._venue.fetch_stop(symbol, client_order_id))

    def open_stops(self, symbol: str | None) -> tuple[StopState, ...]:
        return self._run(self._venue.open_stops(symbol))

    def _run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result()
