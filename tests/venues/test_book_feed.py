"""The streamed touch: ccxt.pro's watch_bids_asks against the local Binance USDⓈ-M fakes (REST, and the market
stream on the user-data fake's host, as on Binance), through the asyncio venue. No network; ccxt parses for real.
The last test starts it as the live engine does (``executor.engine.live.stream_book``).

The REST fake's book and the streamed one are set apart on purpose, so each answer shows where it came from.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable

import msgspec
import pytest

from router_tuner.config.loader import load_config
from router_tuner.config.models import ConfigBundle, Instrument
from router_tuner.executor.engine.live import live_routes, stream_book
from router_tuner.router.venue import TopOfBook, VenueError
from router_tuner.router.venues.ccxt.aio import AsyncCcxtVenue
from router_tuner.router.venues.ccxt.book_feed import BookSettings, StreamedBook
from router_tuner.router.venues.ccxt.config import ApiCredentials
from router_tuner.router.venues.ccxt.order_feed import StreamOrderFeed
from tests.fakes.binance_usdm import FakeBinanceUsdm
from tests.fakes.binance_ws import book_ticker
from tests.venues.stream_support import (
    API_KEY,
    API_SECRET,
    DEADLINE_S,
    Fakes,
    eventually,
    resting_buy,
    venue_config,
)

STREAM = "btcusdt@bookTicker"
REST_TOUCH = (60_000.0, 2.0, 60_000.1, 2.0)  # the conftest's REST book
MAX_AGE_MS = 2_000.0


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def ticker_reads(rest: FakeBinanceUsdm) -> int:
    with rest.state.lock:
        return sum(1 for _, path, _ in rest.state.requests if path == "/fapi/v1/ticker/bookTicker")


def prices(touch: TopOfBook) -> tuple[float, float, float, float]:
    return (touch.bid, touch.bid_qty, touch.ask, touch.ask_qty)


async def push(fakes: Fakes, update_id: int, bid: str, ask: str, ts_ms: int | None = None) -> None:
    """One book ticker on the market stream (exchange time now unless given), sent from the fake's thread."""
    payload = book_ticker("BTCUSDT", update_id, bid, "3", ask, "4", now_ms() if ts_ms is None else ts_ms)
    await asyncio.to_thread(fakes.stream.market.push, STREAM, [payload], 0.0)


async def until_streamed(venue: AsyncCcxtVenue, bid: float) -> TopOfBook:
    """Wait until the venue's touch is the streamed one with ``bid``."""
    assert venue.book is not None
    await eventually(lambda: (t := venue.book.touch("BTCUSDT", venue.now_ns())) is not None and t.bid == bid,
                     f"the streamed touch with bid {bid}")
    return await venue.top_of_book("BTCUSDT")


def run_with_book(fakes: Fakes, body: Callable[[AsyncCcxtVenue, StreamedBook], Awaitable[None]]) -> None:
    async def main() -> None:
        venue = await AsyncCcxtVenue.connect(venue_config(fakes.rest.base_url), ApiCredentials(API_KEY, API_SECRET),
                                             fakes.stream.ws_url, 1_200_000)
        book = StreamedBook(venue.exchange, {"BTCUSDT": "BTC/USDT:USDT"},
                            BookSettings(max_age_ms=MAX_AGE_MS, reconnect_initial_ms=5.0, reconnect_max_ms=40.0),
                            venue.name)
        venue.book = book
        try:
            await book.start()
            await asyncio.to_thread(fakes.stream.market.wait_subscribed, [STREAM], 10.0)
            await body(venue, book)
        finally:
            await book.close()
            await venue.close()

    asyncio.run(main())


def test_a_fresh_streamed_touch_is_read_with_no_rest_call(fakes: Fakes) -> None:
    async def body(venue: AsyncCcxtVenue, book: StreamedBook) -> None:
        ts_ms = now_ms()
        await push(fakes, 1, "60010.0", "60010.5", ts_ms)
        first = await until_streamed(venue, 60_010.0)
        assert (prices(first), first.symbol, first.ts_ns) == ((60_010.0, 3.0, 60_010.5, 4.0), "BTCUSDT",
                                                              ts_ms * 1_000_000)
        await push(fakes, 2, "60011.0", "60011.5")
        assert prices(await until_streamed(venue, 60_011.0)) == (60_011.0, 3.0, 60_011.5, 4.0)
        assert ticker_reads(fakes.rest) == 0, "no REST ticker read while the streamed touch is fresh"
        status = book.status
        assert (status.mode, status.reconnects, status.ignored, status.last_error) == ("stream", 0, 0, None)
        assert status.streamed_reads >= 2

    run_with_book(fakes, body)


def test_before_the_first_streamed_touch_and_when_it_is_stale_rest_is_read(fakes: Fakes) -> None:
    async def body(venue: AsyncCcxtVenue, book: StreamedBook) -> None:
        assert prices(await venue.top_of_book("BTCUSDT")) == REST_TOUCH  # subscribed, nothing pushed yet
        assert (book.status.mode, book.status.rest_reads, ticker_reads(fakes.rest)) == ("rest", 1, 1)
        # a touch the exchange timed longer ago than the max age: the stream is up, the touch is not used
        await push(fakes, 1, "60010.0", "60010.5", now_ms() - int(MAX_AGE_MS) - 500)
        await eventually(lambda: book.status.mode == "stream", "the book stream is up")
        assert prices(await venue.top_of_book("BTCUSDT")) == REST_TOUCH
        assert (book.status.rest_reads, book.status.streamed_reads, ticker_reads(fakes.rest)) == (2, 0, 2)

    run_with_book(fakes, body)


@pytest.mark.parametrize(("bid", "ask"), [("60010.5", "60010.0"), ("60010.0", "60010.0"), ("0", "60010.0")])
def test_a_crossed_locked_or_empty_streamed_touch_is_not_used_nor_the_one_before_it(
        fakes: Fakes, bid: str, ask: str) -> None:
    async def body(venue: AsyncCcxtVenue, book: StreamedBook) -> None:
        await push(fakes, 1, "60009.0", "60009.5")
        await until_streamed(venue, 60_009.0)
        await push(fakes, 2, bid, ask)
        await eventually(lambda: book.status.ignored == 1, "the bad touch counted")
        assert prices(await venue.top_of_book("BTCUSDT")) == REST_TOUCH
        assert ticker_reads(fakes.rest) == 1
        await push(fakes, 3, "60012.0", "60012.5")  # a sane touch again: streamed again
        assert prices(await until_streamed(venue, 60_012.0)) == (60_012.0, 3.0, 60_012.5, 4.0)

    run_with_book(fakes, body)


def test_while_the_stream_is_down_rest_is_read_and_a_reconnect_streams_again(fakes: Fakes) -> None:
    async def body(venue: AsyncCcxtVenue, book: StreamedBook) -> None:
        market = fakes.stream.market
        await push(fakes, 1, "60009.0", "60009.5")
        await until_streamed(venue, 60_009.0)
        await asyncio.to_thread(market.refuse_connections, True)
        assert await asyncio.to_thread(market.drop, STREAM) == 1
        await eventually(lambda: book.status.mode == "rest", "the book stream seen down")
        # the touch from before the drop is young, but changes during the gap are lost: REST is read
        assert prices(await venue.top_of_book("BTCUSDT")) == REST_TOUCH
        status = book.status
        assert (status.reconnects, ticker_reads(fakes.rest)) == (1, 1) and status.last_error is not None
        await asyncio.sleep(0.1)  # failed re-subscriptions with back-off meanwhile
        await asyncio.to_thread(market.refuse_connections, False)
        await asyncio.to_thread(market.wait_subscribed, [STREAM], 10.0)
        assert prices(await venue.top_of_book("BTCUSDT")) == REST_TOUCH, "resubscribed, nothing pushed yet"
        await push(fakes, 2, "60013.0", "60013.5")
        assert prices(await until_streamed(venue, 60_013.0)) == (60_013.0, 3.0, 60_013.5, 4.0)
        assert (book.status.mode, ticker_reads(fakes.rest)) == ("stream", 2)

    run_with_book(fakes, body)


def test_book_settings_refuse_bad_values() -> None:
    with pytest.raises(ValueError, match="max_age_ms must be finite and > 0"):
        BookSettings(max_age_ms=0.0, reconnect_initial_ms=1.0, reconnect_max_ms=2.0)
    with pytest.raises(ValueError, match="reconnect_max_ms must be >= reconnect_initial_ms"):
        BookSettings(max_age_ms=1.0, reconnect_initial_ms=3.0, reconnect_max_ms=2.0)
    with pytest.raises(ValueError, match="at least one symbol"):
        StreamedBook(object(), {}, BookSettings(1.0, 1.0, 2.0), "x")


def with_live(instruments: dict[str, Instrument], **live: object) -> ConfigBundle:
    base = load_config()
    ex = base.executor
    return msgspec.structs.replace(base, executor=msgspec.structs.replace(
        ex, instruments=instruments, live=msgspec.structs.replace(ex.live, **live)))


def test_the_live_engine_streams_the_configured_instruments_or_names_one_the_exchange_lacks(fakes: Fakes) -> None:
    btc = {"BTCUSDT": Instrument(tick_size=0.1, qty_step=0.001)}

    async def main() -> None:
        venue = await AsyncCcxtVenue.connect(venue_config(fakes.rest.base_url), ApiCredentials(API_KEY, API_SECRET),
                                             fakes.stream.ws_url, 1_200_000)
        try:
            assert await stream_book(venue, with_live(btc, book_updates="rest")) is None
            assert venue.book is None
            with pytest.raises(VenueError, match=r"executor\.json instruments: .*unknown symbol 'XYZUSDT'"):
                await stream_book(venue, with_live({**btc, "XYZUSDT": btc["BTCUSDT"]}))
            book = await stream_book(venue, with_live(btc, book_max_age_ms=MAX_AGE_MS))
            assert book is not None and venue.book is book
            try:
                await asyncio.to_thread(fakes.stream.market.wait_subscribed, [STREAM], 10.0)
                await push(fakes, 1, "60010.0", "60010.5")
                assert prices(await until_streamed(venue, 60_010.0)) == (60_010.0, 3.0, 60_010.5, 4.0)
            finally:
                await book.close()
        finally:
            await venue.close()

    asyncio.run(main())


class _FlakyExchange:
    """A stand-in client whose watch fails with a non-ccxt error, then pushes a NaN touch, then a sound one."""

    def __init__(self) -> None:
        self.calls = 0
        self.bidsasks: dict[str, dict[str, object]] = {}

    async def watch_bids_asks(self, symbols: list[str]) -> None:
        self.calls += 1
        await asyncio.sleep(0.01)
        if self.calls == 1:
            raise KeyError("a parser's surprise")
        bid = float("nan") if self.calls == 2 else 100.0
        self.bidsasks[symbols[0]] = {"bid": bid, "ask": 100.1, "bidVolume": 1.0, "askVolume": 1.0,
                                     "timestamp": time.time_ns() // 1_000_000}


def test_any_watch_failure_reads_rest_and_a_non_number_touch_is_not_used() -> None:
    """A watch that dies of something ccxt did not raise must not leave the symbol looking streamed."""
    async def scenario() -> tuple[TopOfBook | None, TopOfBook | None, object]:
        exchange = _FlakyExchange()
        book = StreamedBook(exchange, {"BTCUSDT": "BTC/USDT:USDT"},
                            BookSettings(max_age_ms=5_000.0, reconnect_initial_ms=5.0, reconnect_max_ms=10.0), "t")
        await book.start()
        while exchange.calls < 2:
            await asyncio.sleep(0.005)
        first = book.touch("BTCUSDT", time.time_ns())   # down after the KeyError: REST
        while exchange.calls < 4:
            await asyncio.sleep(0.005)
        second = book.touch("BTCUSDT", time.time_ns())
        status = book.status
        await book.close()
        return first, second, status

    first, second, status = asyncio.run(scenario())
    assert first is None
    assert second is not None and second.bid == 100.0
    assert status.ignored >= 1 and status.last_error == "KeyError: \"a parser's surprise\"" and status.rest_reads >= 1


def wait_until(check: Callable[[], bool], what: str) -> None:
    """``eventually`` for the test's own thread (the engine's loop runs in another)."""
    end = time.monotonic() + DEADLINE_S
    while not check():
        assert time.monotonic() < end, f"not within {DEADLINE_S} s: {what}"
        time.sleep(0.005)


def test_live_routes_follow_orders_and_the_touch_by_stream_and_a_failed_book_leaves_nothing_open(fakes: Fakes) -> None:
    btc = {"BTCUSDT": Instrument(tick_size=0.1, qty_step=0.001)}
    environ = {"RT_K": API_KEY, "RT_S": API_SECRET}
    settings = dict(api_key_env="RT_K", api_secret_env="RT_S", api_base_url=fakes.rest.base_url,
                    ws_base_url=fakes.stream.ws_url, order_updates="stream", book_updates="stream")
    routes = live_routes(with_live(btc, **settings), environ)
    try:
        assert routes.book_status() is not None
        feed = routes.venues.updates
        assert isinstance(feed, StreamOrderFeed)
        wait_until(lambda: routes.feed_status().mode == "stream", "the order stream is up")
        routes.venue.place_order(resting_buy("lr-1"))
        fakes.rest.fill("lr-1", "0.004")
        wait_until(lambda: (state := feed.current("lr-1")) is not None and state.filled_qty > 0,
                   "the fill arrives by the stream")
        assert [f.qty for f in feed.current("lr-1").fills] == [0.004]
        assert fakes.rest.order_requests("GET") == []  # pushed, not polled
    finally:
        routes.close()
    wait_until(lambda: fakes.stream.connected() == 0, "the order stream closes with the engine")
    threads = {t.name for t in threading.enumerate()}
    with pytest.raises(VenueError, match=r"executor\.json instruments: .*unknown symbol 'XYZUSDT'"):
        live_routes(with_live({**btc, "XYZUSDT": btc["BTCUSDT"]}, **settings), environ)
    assert {t.name for t in threading.enumerate()} <= threads  # no loop thread left running
