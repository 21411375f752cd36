"""The touch pushed by the venue (ccxt.pro ``watch_bids_asks``): routing reads no REST ticker while it is fresh.

One task per symbol watches its book ticker on the venue's own ccxt.pro client (its connection pool and its
one rate limiter) and keeps the symbol's latest touch, timed by the exchange. ``touch`` hands it out only
while that symbol's watch is up and the touch is younger than ``max_age_ms`` by the exchange's time (Binance
pushes a book ticker on every change of the touch, so a quiet symbol ages out and is read by REST; the age
also covers a stream that lags or has gone silent; a skewed local clock eats into it). A crossed or empty
touch is not kept, and it takes the touch before it out too: the book moved, so that one is wrong now.
A failed watch drops its symbol's touch (changes during a gap are lost) and re-subscribes with doubling
back-off; only a book ticker received after that makes the symbol streamed again. ``status`` says how
touches are read (``stream`` when every symbol is streamed, else ``rest``) and counts both kinds of read.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from router_tuner.router.venue import TopOfBook
from router_tuner.router.venues.ccxt.config import check_stream_settings

logger = logging.getLogger(__name__)

BookMode = Literal["stream", "rest"]


@dataclass(frozen=True, slots=True)
class BookSettings:
    """How old (by the exchange's time) a streamed touch may be, and the reconnect back-off (doubling, capped)."""

    max_age_ms: float
    reconnect_initial_ms: float
    reconnect_max_ms: float

    def __post_init__(self) -> None:
        check_stream_settings(self, "max_age_ms")


@dataclass(frozen=True, slots=True)
class BookStatus:
    """How touches are read now: ``mode`` since ``since_ns`` (wall ns), with counters for health and alerts.

    ``reconnects`` counts the times a streamed symbol's watch failed (each is re-subscribed); ``streamed_reads``
    and ``rest_reads`` count the reads answered by the stream and sent to REST (stale, missing or down);
    ``ignored`` counts crossed or empty touches the stream pushed."""

    mode: BookMode
    since_ns: int
    reconnects: int
    streamed_reads: int
    rest_reads: int
    ignored: int
    last_error: str | None


class StreamedBook:
    """The latest streamed touch of each symbol (market id -> ccxt unified symbol in ``symbols``).

    ``await start()`` on the client's event loop before use and ``await close()`` after.
    """

    def __init__(self, exchange: Any, symbols: Mapping[str, str], settings: BookSettings, name: str) -> None:
        if not symbols:
            raise ValueError("a streamed book needs at least one symbol")
        self._exchange = exchange
        self._symbols = dict(symbols)
        self._settings = settings
        self._name = name
        self._touches: dict[str, TopOfBook] = {}
        self._up: set[str] = set()
        self._mode: BookMode = "rest"
        self._since_ns = time.time_ns()
        self._reconnects = 0
        self._streamed_reads = 0
        self._rest_reads = 0
        self._ignored = 0
        self._last_error: str | None = None
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def status(self) -> BookStatus:
        return BookStatus(self._mode, self._since_ns, self._reconnects, self._streamed_reads, self._rest_reads,
                          self._ignored, self._last_error)

    async def start(self) -> None:
        self._tasks = [asyncio.create_task(self._watch_loop(symbol, unified), name=f"book-feed:{symbol}")
                       for symbol, unified in self._symbols.items()]

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []

    def touch(self, symbol: str, now_ns: int) -> TopOfBook | None:
        """The streamed touch if ``symbol`` is streamed and its touch is fresh; ``None`` (a REST read, counted)
        otherwise."""
        touch = self._touches.get(symbol) if symbol in self._up else None
        if touch is None or now_ns - touch.ts_ns >= self._settings.max_age_ms * 1e6:
            self._rest_reads += 1
            return None
        self._streamed_reads += 1
        return touch

    async def _watch_loop(self, symbol: str, unified: str) -> None:
        delay_ms = self._settings.reconnect_initial_ms
        while True:
            try:
                await self._exchange.watch_bids_asks([unified])
                ticker = self._exchange.bidsasks[unified]
            except Exception as exc:  # any failure, not only ccxt's: a dead watch must not look streamed
                self._down(symbol, f"{type(exc).__name__}: {exc}")
                await asyncio.sleep(delay_ms / 1000)
                delay_ms = min(delay_ms * 2, self._settings.reconnect_max_ms)
                continue
            delay_ms = self._settings.reconnect_initial_ms
            # ccxt keeps the newest ticker per symbol; the watch may have resolved with an older one of the read.
            self._keep(symbol, ticker, time.time_ns())
            self._mark(symbol, up=True)

    def _keep(self, symbol: str, ticker: Mapping[str, Any], received_ns: int) -> None:
        bid, ask = ticker.get("bid"), ticker.get("ask")
        bid_qty, ask_qty = ticker.get("bidVolume"), ticker.get("askVolume")
        numbers = all(isinstance(v, (int, float)) and math.isfinite(v) for v in (bid, ask, bid_qty, ask_qty))
        if not numbers or min(bid, ask) <= 0 or min(bid_qty, ask_qty) <= 0 or bid >= ask:
            self._ignored += 1
            self._touches.pop(symbol, None)
            logger.warning("%s: streamed touch of %s not used (bid %s x %s, ask %s x %s)", self._name, symbol,
                           bid, bid_qty, ask, ask_qty)
            return
        timestamp_ms = ticker.get("timestamp")
        ts_ns = int(timestamp_ms) * 1_000_000 if timestamp_ms is not None else received_ns
        self._touches[symbol] = TopOfBook(symbol, float(bid), float(bid_qty), float(ask), float(ask_qty), ts_ns)

    def _down(self, symbol: str, error: str) -> None:
        self._last_error = error
        self._touches.pop(symbol, None)
        if symbol in self._up:
            self._reconnects += 1
            logger.warning("%s: book stream of %s down (%s): reading the touch by REST", self._name, symbol, error)
        self._mark(symbol, up=False)

    def _mark(self, symbol: str, up: bool) -> None:
        (self._up.add if up else self._up.discard)(symbol)
        mode: BookMode = "stream" if self._up == set(self._symbols) else "rest"
        if mode != self._mode:
            self._mode, self._since_ns = mode, time.time_ns()
            if mode == "stream":
                logger.info("%s: book stream up for %d symbols (reconnects %d)", self._name, len(self._up),
                            self._reconnects)
