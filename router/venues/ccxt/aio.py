"""The live venue on ccxt.pro's asyncio client: the venue protocol's calls, awaited (``router.routing.aio.AsyncVenue``).

It runs the venue's steps (``router.venues.ccxt.core``) on one ``ccxt.pro`` client per exchange, so the REST
calls and the user-data stream (``router.venues.ccxt.order_feed``) share that client's connection pool and its one
rate limiter. Two gaps of ccxt.pro 4.5.90 are closed here: it ignores the listen key's expiry event (the key
died, its connection stays open and silent; the quirks table names the event), which becomes a failed watch so the
feed reconnects on a fresh key; and its keep-alive renews the key once and then never again (it looks for
subscriptions with ``safe_dict`` on ``Client`` objects, which are not dicts), so ``renew_listen_key`` is called on
a schedule by the feed.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeAlias, TypeVar

import ccxt
import ccxt.pro

from router_tuner.router.contract import ContractSpec
from router_tuner.router.events import PositionSide
from router_tuner.router.routing.aio import sleep_until_ns
from router_tuner.router.venue import (
    OrderRequest,
    OrderState,
    RateLimited,
    StopRequest,
    StopState,
    TopOfBook,
    VenueError,
)
from router_tuner.router.venues.ccxt.book_feed import StreamedBook
from router_tuner.router.venues.ccxt.config import ApiCredentials, CcxtVenueConfig
from router_tuner.router.venues.ccxt.core import Steps, VenueCore, logger
from router_tuner.router.venues.ccxt.quirks import quirks_for
from router_tuner.router.venues.ccxt.redact import SecretRedactor, install_redaction
from router_tuner.router.venues.ccxt.urls import repoint_urls

T = TypeVar("T")
Sleep: TypeAlias = Callable[[float], Awaitable[None]]


class ListenKeyExpired(ccxt.NetworkError):
    """The venue said the user-data stream's listen key expired: the connection will carry nothing more."""


def _stream_exchange_class(exchange_id: str, expired_event: str | None) -> type[Any]:
    """ccxt.pro's class for ``exchange_id``, taught the quirks table's listen-key expiry event if it has one."""
    base = getattr(ccxt.pro, exchange_id, None)
    if base is None:
        raise ValueError(f"ccxt.pro has no exchange {exchange_id!r}")
    if expired_event is None:
        return base  # type: ignore[no-any-return]

    def handle_message(self: Any, client: Any, message: object) -> None:
        if isinstance(message, dict) and message.get("e") == expired_event:
            # Forget the key (as ccxt's own failed keep-alive does) so the next watch authenticates afresh,
            # fail the watches waiting on this connection, and close it.
            for bucket in self.options.values():
                if isinstance(bucket, dict) and bucket.get("listenKey") and bucket["listenKey"] in client.url:
                    bucket["listenKey"], bucket["lastAuthenticatedTime"] = None, 0
            client.reject(ListenKeyExpired(f"{self.id}: user-data listen key expired"))
            self.spawn(client.close)
            return
        base.handle_message(self, client, message)

    return type(f"{base.__name__}_expiring_listen_keys", (base,), {"handle_message": handle_message})


class AsyncCcxtVenue:
    """A live exchange behind the venue protocol's calls as coroutines; build it with ``await connect(...)``.

    ``ws_base_url`` re-points the websocket endpoints (a proxy, or the local fake); ``listen_key_refresh_ms``
    is how often ccxt.pro renews the user-data listen key (Binance expires it after 60 minutes). With ``book``
    set (a ``StreamedBook`` on this client), ``top_of_book`` answers from the stream while its touch is fresh.
    ``backoff_sleep`` waits out a rate limit (seconds): the event loop's sleep, or a recorder that lets a test
    read the waits without taking them. A rate limit quiets every call of the client until the venue's wait is
    over (``_call``).
    """

    def __init__(self, config: CcxtVenueConfig, credentials: ApiCredentials, ws_base_url: str | None,
                 listen_key_refresh_ms: int, *, backoff_sleep: Sleep = asyncio.sleep) -> None:
        if listen_key_refresh_ms <= 0:
            raise ValueError(f"listen_key_refresh_ms must be > 0, got {listen_key_refresh_ms}")
        quirks = quirks_for(config.exchange_id)
        self.name = f"ccxt.pro:{config.exchange_id}"
        self.listen_key_refresh_ms = listen_key_refresh_ms
        self.book: StreamedBook | None = None
        self._backoff_sleep = backoff_sleep
        self._quiet_until = 0.0  # time.monotonic() before which no request is sent (the venue's last wait)
        exchange_class = _stream_exchange_class(config.exchange_id, quirks.listen_key_expired_event)
        self.exchange: Any = exchange_class(
            {
                "apiKey": credentials.api_key,
                "secret": credentials.api_secret,
                "timeout": config.request_timeout_ms,
                "enableRateLimit": config.ccxt_rate_limiter,
                "options": {**quirks.ccxt_options, "listenKeyRefreshRate": listen_key_refresh_ms},
            }
        )
        redactor = SecretRedactor((credentials.api_key, credentials.api_secret))
        self.core = VenueCore(config, quirks, self.exchange, redactor, self.name)
        self._log_filters = [(log, install_redaction(log, redactor)) for log in (logger, self.exchange.logger)]
        repoint_urls(self.exchange.urls, config.api_base_url, ws_base_url)

    @classmethod
    async def connect(cls, config: CcxtVenueConfig, credentials: ApiCredentials, ws_base_url: str | None,
                      listen_key_refresh_ms: int, *, backoff_sleep: Sleep = asyncio.sleep) -> AsyncCcxtVenue:
        """Build the venue and load its markets and position mode; a failed connection closes the client."""
        venue = cls(config, credentials, ws_base_url, listen_key_refresh_ms, backoff_sleep=backoff_sleep)
        try:
            await venue.run(venue.core.connect())
        except BaseException:
            await venue.close()
            raise
        logger.info("%s connected: %d markets, hedge mode %s", venue.name, len(venue.core.markets), venue.hedge_mode)
        return venue

    @property
    def hedge_mode(self) -> bool:
        return self.core.hedged

    @staticmethod
    def now_ns() -> int:
        """The live clock: wall time in ns since the epoch (what ``OrderUpdates.wait`` deadlines use)."""
        return time.time_ns()

    async def sleep_until(self, ts_ns: int) -> None:
        """Sleep on the event loop until wall-clock ``ts_ns``."""
        await sleep_until_ns(time.time_ns(), ts_ns)

    async def close(self) -> None:
        """Close the client's connections and detach the log redaction filters."""
        try:
            await self.exchange.close()
        finally:
            for log, log_filter in self._log_filters:
                log.removeFilter(log_filter)
            self._log_filters = []

    async def renew_listen_key(self) -> None:
        """Extend the user-data listen key (ccxt's keep-alive: on a refusal it forgets the key and fails the
        stream's watches, so the next watch starts on a new key), once the venue's last rate-limit wait is over."""
        await self.quiet()
        await self.exchange.keep_alive_listen_key()

    async def quiet(self) -> None:
        """Wait out the rest of the venue's last rate-limit wait, however long: for the user-data stream's own
        requests (its listen key), which no caller waits on but which, sent during a ban, would extend it."""
        left_s = self._quiet_until - time.monotonic()
        if left_s > 0:
            await self._sleep_quiet(left_s)

    def market(self, symbol: str) -> Mapping[str, Any]:
        return self.core.market(symbol)

    async def contract(self, symbol: str) -> ContractSpec:
        """From the markets loaded at connection: no call is made."""
        return self.core.contract(symbol)

    async def top_of_book(self, symbol: str) -> TopOfBook:
        """The streamed touch when ``book`` has a fresh one, else a REST read."""
        now_ns = self.now_ns()
        streamed = self.book.touch(symbol, now_ns) if self.book is not None else None
        return streamed if streamed is not None else await self.run(self.core.top_of_book(symbol, now_ns))

    async def positions(self, symbol: str) -> dict[PositionSide, float]:
        return await self.run(self.core.positions(symbol))

    async def place_order(self, request: OrderRequest) -> OrderState:
        return await self.run(self.core.place_order(request, self.now_ns()))

    async def cancel_order(self, symbol: str, client_order_id: str) -> OrderState:
        return await self.run(self.core.cancel_order(symbol, client_order_id, self.now_ns()))

    async def fetch_order(self, symbol: str, client_order_id: str) -> OrderState:
        return await self.run(self.core.fetch_order(symbol, client_order_id, self.now_ns()))

    async def open_orders(self, symbol: str | None) -> tuple[OrderState, ...]:
        return await self.run(self.core.open_orders(symbol, self.now_ns()))

    async def place_stop(self, request: StopRequest) -> StopState:
        return await self.run(self.core.place_stop(request, self.now_ns()))

    async def cancel_stop(self, symbol: str, client_order_id: str) -> StopState:
        return await self.run(self.core.cancel_stop(symbol, client_order_id, self.now_ns()))

    async def fetch_stop(self, symbol: str, client_order_id: str) -> StopState:
        return await self.run(self.core.fetch_stop(symbol, client_order_id, self.now_ns()))

    async def open_stops(self, symbol: str | None) -> tuple[StopState, ...]:
        return await self.run(self.core.open_stops(symbol, self.now_ns()))

    async def run(self, steps: Steps[T]) -> T:
        """Drive ``steps`` on the asyncio client: each call awaited, or its mapped error thrown in."""
        reply: Any = None
        error: VenueError | None = None
        while True:
            try:
                step = steps.throw(error) if error is not None else steps.send(reply)
            except StopIteration as stop:
                return stop.value  # type: ignore[no-any-return]
            reply, error = None, None
            try:
                reply = await self._call(step.method, step.args)
            except VenueError as exc:
                error = exc

    async def _call(self, method: str, args: tuple[Any, ...]) -> Any:
        """One ccxt call, waiting out rate limits with bounded back-off; every error mapped once.

        A rate-limit answer quiets the whole client, not only the call it answered (the venue counts every request
        of the account and bans one that goes on, Binance's 418 -1003): each call first waits out what is left of
        the venue's wait, and one that would wait longer than ``retry_after_max_s`` is refused unsent."""
        attempt = 0
        while True:
            await self._wait_quiet()
            try:
                return await getattr(self.exchange, method)(*args)
            except ccxt.BaseError as exc:
                try:
                    wait_s = self.core.retry_wait_s(exc, attempt)
                except RateLimited as limited:
                    self._quiet_until = max(self._quiet_until, time.monotonic() + (limited.retry_after_s or 0.0))
                    raise
            await self._sleep_quiet(wait_s)
            attempt += 1

    async def _wait_quiet(self) -> None:
        """Wait out the rest of the venue's last wait, or raise ``RateLimited`` (nothing sent) if it is too long."""
        left_s = self._quiet_until - time.monotonic()
        if left_s <= 0:
            return
        limit_s = self.core.config.retry_after_max_s
        if left_s > limit_s:
            raise RateLimited(f"{self.name}: not sent: the venue asked for no requests for {left_s:.1f} s more, "
                              f"longer than retry_after_max_s {limit_s:g} s", retry_after_s=left_s)
        await self._sleep_quiet(left_s)

    async def _sleep_quiet(self, wait_s: float) -> None:
        """Sleep ``wait_s``, every call of the client quiet meanwhile; served once slept, unless extended since."""
        until = self._quiet_until = max(self._quiet_until, time.monotonic() + wait_s)
        await self._backoff_sleep(wait_s)
        if self._quiet_until == until:
            self._quiet_until = 0.0
