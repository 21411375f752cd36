"""The live venue: the ``Venue`` protocol on ccxt's synchronous client, for any exchange in the quirks table.

The logic (idempotent placement, protective stops, rate-limit back-off, rounding away from the touch,
parsing) lives in ``router.venues.ccxt.core`` as steps shared with the asyncio venue; this module runs them blocking.
The API key and secret come from the environment and never appear in a log record or error text.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from typing import Any, TypeVar

import ccxt

from router_tuner.router.contract import ContractSpec
from router_tuner.router.events import PositionSide
from router_tuner.router.venue import Clock, OrderRequest, OrderState, StopRequest, StopState, TopOfBook, VenueError
from router_tuner.router.venues.ccxt.config import ApiCredentials, CcxtVenueConfig
from router_tuner.router.venues.ccxt.core import Steps, VenueCore, logger
from router_tuner.router.venues.ccxt.quirks import quirks_for
from router_tuner.router.venues.ccxt.redact import SecretRedactor, install_redaction
from router_tuner.router.venues.ccxt.urls import repoint_urls

T = TypeVar("T")


class WallClock:
    """The live clock: wall time in ns since the epoch; sleeping blocks the calling thread."""

    def now_ns(self) -> int:
        return time.time_ns()

    def sleep_until(self, ts_ns: int) -> None:
        delay_ns = ts_ns - time.time_ns()
        if delay_ns > 0:
            time.sleep(delay_ns / 1e9)


class CcxtVenue:
    """A live exchange behind the venue protocol. Symbols are the exchange's market ids (``BTCUSDT``).

    Construction connects: it loads the markets and the account's position mode (hedge or one-way),
    because every order's parameters depend on both.
    """

    def __init__(self, config: CcxtVenueConfig, credentials: ApiCredentials, clock: Clock) -> None:
        quirks = quirks_for(config.exchange_id)
        self._clock = clock
        self.name = f"ccxt:{config.exchange_id}"
        exchange_class = getattr(ccxt, config.exchange_id, None)
        if exchange_class is None:
            raise ValueError(f"ccxt has no exchange {config.exchange_id!r}")
        self._exchange: ccxt.Exchange = exchange_class(
            {
                "apiKey": credentials.api_key,
                "secret": credentials.api_secret,
                "timeout": config.request_timeout_ms,
                "enableRateLimit": config.ccxt_rate_limiter,
                "options": dict(quirks.ccxt_options),
            }
        )
        redactor = SecretRedactor((credentials.api_key, credentials.api_secret))
        self._core = VenueCore(config, quirks, self._exchange, redactor, self.name)
        self._log_filters = [(log, install_redaction(log, redactor)) for log in (logger, self._exchange.logger)]
        try:
            if config.api_base_url is not None:
                repoint_urls(self._exchange.urls, config.api_base_url, None)
            self._run(self._core.connect())
        except BaseException:
            self.close()  # a venue that failed to connect leaves no filters behind
            raise
        logger.info("%s connected: %d markets, hedge mode %s", self.name, len(self._core.markets), self.hedge_mode)

    @classmethod
    def from_env(
        cls, config: CcxtVenueConfig, clock: Clock, environ: Mapping[str, str] = os.environ
    ) -> CcxtVenue:
        """Build the venue with credentials read from the environment variables the config names."""
        return cls(config, ApiCredentials.from_env(config.api_key_env, config.api_secret_env, environ), clock)

    @property
    def clock(self) -> Clock:
        return self._clock

    @property
    def hedge_mode(self) -> bool:
        return self._core.hedged

    def close(self) -> None:
        """Detach the log redaction filters this venue installed."""
        for log, log_filter in self._log_filters:
            log.removeFilter(log_filter)
        self._log_filters = []

    def contract(self, symbol: str) -> ContractSpec:
        """The symbol's contract spec from the exchange's market info (``linear``/``inverse``/``spot``,
        ``contractSize``); ``VenueError`` when the market states none the router can use."""
        return self._core.contract(symbol)

    def top_of_book(self, symbol: str) -> TopOfBook:
        return self._run(self._core.top_of_book(symbol, self._clock.now_ns()))

    def positions(self, symbol: str) -> dict[PositionSide, float]:
        """Signed position amounts of ``symbol`` by position side, with ``SimVenue.positions``' keys and signs.

        ``{"BOTH": amount}`` in one-way mode, ``{"LONG": >= 0, "SHORT": <= 0}`` in hedge mode (the mode read
        at connection), from ccxt ``fetch_positions`` (Binance USDⓈ-M: ``positionRisk``). Restart
        reconciliation compares these with the journal, so an unreadable position raises ``VenueError``.
        """
        return self._run(self._core.positions(symbol))

    def place_order(self, request: OrderRequest) -> OrderState:
        return self._run(self._core.place_order(request, self._clock.now_ns()))

    def cancel_order(self, symbol: str, client_order_id: str) -> OrderState:
        return self._run(self._core.cancel_order(symbol, client_order_id, self._clock.now_ns()))

    def fetch_order(self, symbol: str, client_order_id: str) -> OrderState:
        return self._run(self._core.fetch_order(symbol, client_order_id, self._clock.now_ns()))

    def open_orders(self, symbol: str | None) -> tuple[OrderState, ...]:
        return self._run(self._core.open_orders(symbol, self._clock.now_ns()))

    def place_stop(self, request: StopRequest) -> StopState:
        return self._run(self._core.place_stop(request, self._clock.now_ns()))

    def cancel_stop(self, symbol: str, client_order_id: str) -> StopState:
        return self._run(self._core.cancel_stop(symbol, client_order_id, self._clock.now_ns()))

    def fetch_stop(self, symbol: str, client_order_id: str) -> StopState:
        return self._run(self._core.fetch_stop(symbol, client_order_id, self._clock.now_ns()))

    def open_stops(self, symbol: str | None) -> tuple[StopState, ...]:
        return self._run(self._core.open_stops(symbol, self._clock.now_ns()))

    def _run(self, steps: Steps[T]) -> T:
        """Drive ``steps`` on the blocking client: each call answered, or its mapped error thrown in."""
        reply: Any = None
        error: VenueError | None = None
        while True:
            try:
                step = steps.throw(error) if error is not None else steps.send(reply)
            except StopIteration as stop:
                return stop.value  # type: ignore[no-any-return]
            reply, error = None, None
            try:
                reply = self._call(step.method, step.args)
            except VenueError as exc:
                error = exc

    def _call(self, method: str, args: tuple[Any, ...]) -> Any:
        """One ccxt call, waiting out rate limits with bounded back-off; every error mapped once."""
        attempt = 0
        while True:
            try:
                return getattr(self._exchange, method)(*args)
            except ccxt.BaseError as exc:
                wait_s = self._core.retry_wait_s(exc, attempt)
            self._clock.sleep_until(self._clock.now_ns() + int(wait_s * 1e9))
            attempt += 1
