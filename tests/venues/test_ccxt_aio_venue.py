"""The asyncio venue (ccxt.pro's client) awaited on an event loop of the test's own, as routes await it: orders,
cancels, fetches, protective stops, rate-limit back-off and the timed-out-order lookup, against the local Binance
USDⓈ-M fake (no network). The venue's guarantees one by one: ``test_ccxt_venue`` and ``test_ccxt_stops``."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace

import ccxt.pro
import pytest

from router_tuner.router.contract import Contract
from router_tuner.router.venue import OrderNotFound, PostOnlyRejected, RateLimited, StopRequest
from router_tuner.router.venues.ccxt.aio import AsyncCcxtVenue, _stream_exchange_class
from router_tuner.router.venues.ccxt.config import ApiCredentials
from tests.fakes.binance_usdm import ALGO_ORDER_PATH, FakeBinanceUsdm, RateLimitReply, Stall
from tests.venues.stream_support import API_KEY, API_SECRET, resting_buy, venue_config

ORDER = "/fapi/v1/order"


def with_venue(fake: FakeBinanceUsdm, body: Callable[[AsyncCcxtVenue], Awaitable[None]], **config: object) -> None:
    async def main() -> None:
        cfg = replace(venue_config(fake.base_url), **config)  # type: ignore[arg-type]
        venue = await AsyncCcxtVenue.connect(cfg, ApiCredentials(API_KEY, API_SECRET), None, 1_200_000)
        try:
            await body(venue)
        finally:
            await venue.close()

    asyncio.run(main())


def test_orders_cancels_fetches_and_the_book_through_ccxt_pro(fake: FakeBinanceUsdm) -> None:
    async def body(venue: AsyncCcxtVenue) -> None:
        assert await venue.contract("BTCUSDT") == Contract("linear", 1.0) and not venue.hedge_mode
        book = await venue.top_of_book("BTCUSDT")
        assert (book.bid, book.ask, book.bid_qty) == (60_000.0, 60_000.1, 1.5)
        placed = await venue.place_order(resting_buy("a1", qty=0.0105, price=59_000.07))
        assert (placed.status, placed.qty, placed.price) == ("open", 0.01, 59_000.0)  # step and tick, buy rounds down
        assert [s.client_order_id for s in await venue.open_orders("BTCUSDT")] == ["a1"]
        fake.fill("a1", "0.004")
        fetched = await venue.fetch_order("BTCUSDT", "a1")
        assert fetched.status == "partially_filled" and [f.qty for f in fetched.fills] == [0.004]
        canceled = await venue.cancel_order("BTCUSDT", "a1")
        assert canceled.status == "canceled" and canceled.filled_qty == pytest.approx(0.004)
        assert await venue.open_orders(None) == ()
        assert (await venue.positions("BTCUSDT")) == {"BOTH": pytest.approx(0.004)}
        with pytest.raises(OrderNotFound):
            await venue.fetch_order("BTCUSDT", "never-sent")
        with pytest.raises(PostOnlyRejected):
            await venue.place_order(resting_buy("cross", price=60_000.1))

    with_venue(fake, body)


def test_rate_limits_are_waited_out_then_raised_past_the_budget(fake: FakeBinanceUsdm) -> None:
    async def body(venue: AsyncCcxtVenue) -> None:
        fake.fail_next("POST", ORDER, RateLimitReply(retry_after_s=0))
        assert (await venue.place_order(resting_buy("r1"))).status == "open"
        for _ in range(3):
            fake.fail_next("GET", ORDER, RateLimitReply(retry_after_s=0))
        with pytest.raises(RateLimited):
            await venue.fetch_order("BTCUSDT", "r1")
        assert fake.posts_for("r1") == 2  # the refused request and its retry, same client order id

    with_venue(fake, body)


def test_a_timed_out_placement_is_looked_up_not_resent(fake: FakeBinanceUsdm) -> None:
    async def body(venue: AsyncCcxtVenue) -> None:
        fake.fail_next("POST", ORDER, Stall(0.6, create_first=True))
        state = await venue.place_order(resting_buy("t1"))
        assert state.status == "open" and fake.posts_for("t1") == 1

    with_venue(fake, body, request_timeout_ms=300)


def test_protective_stops_through_ccxt_pro(fake: FakeBinanceUsdm) -> None:
    """Placed in the algo service, found by id after a timed-out send, filled via the triggered order's trades."""

    def stop(cid: str) -> StopRequest:
        return StopRequest(client_order_id=cid, symbol="BTCUSDT", kind="stop_market", side="sell",
                           position_side="BOTH", trigger_price=59_000.0, working_type="CONTRACT_PRICE")

    async def body(venue: AsyncCcxtVenue) -> None:
        fake.set_position("BTCUSDT", "BOTH", "0.004")
        fake.fail_next("POST", ALGO_ORDER_PATH, Stall(0.6, create_first=True))
        working = await venue.place_stop(stop("sl-a"))
        assert working.status == "working" and working.fills == ()
        assert [s.client_order_id for s in await venue.open_stops("BTCUSDT")] == ["sl-a"]
        assert (await venue.cancel_stop("BTCUSDT", "sl-a")).status == "canceled"
        await venue.place_stop(stop("sl-b"))
        fake.set_book("BTCUSDT", "58990.0", "1.0", "58990.1", "1.0")  # mid at or below the trigger
        done = await venue.cancel_stop("BTCUSDT", "sl-b")  # too late: the cancel reports the trigger
        assert done.status == "triggered" and [(f.client_order_id, f.qty, f.price) for f in done.fills] == [
            ("sl-b", 0.004, 58_990.0)]
        assert await venue.open_stops(None) == () and await venue.positions("BTCUSDT") == {"BOTH": 0.0}
        with pytest.raises(OrderNotFound):
            await venue.fetch_stop("BTCUSDT", "never-sent")
        with fake.state.lock:
            posts = [p for m, path, p in fake.state.requests if m == "POST" and path == ALGO_ORDER_PATH]
        assert [p["clientAlgoId"] for p in posts] == ["sl-a", "sl-b"]  # the timed-out send was not resent

    with_venue(fake, body, request_timeout_ms=300)


def test_an_exchange_without_a_quirks_entry_is_refused(fake: FakeBinanceUsdm) -> None:
    with pytest.raises(ValueError, match="no quirks mapping for exchange 'kraken'"):
        AsyncCcxtVenue(replace(venue_config(fake.base_url), exchange_id="kraken"),
                       ApiCredentials(API_KEY, API_SECRET), None, 1000)


def test_the_venue_sleeps_until_a_wall_clock_time(fake: FakeBinanceUsdm) -> None:
    async def body(venue: AsyncCcxtVenue) -> None:
        wake_ns = venue.now_ns() + 20_000_000
        await venue.sleep_until(wake_ns)
        assert time.time_ns() >= wake_ns

    with_venue(fake, body)


def test_a_listen_key_refresh_that_is_not_positive_is_refused_before_a_client_exists() -> None:
    with pytest.raises(ValueError, match="listen_key_refresh_ms must be > 0, got 0"):
        AsyncCcxtVenue(venue_config("http://127.0.0.1:9"), ApiCredentials(API_KEY, API_SECRET), None, 0)


def test_the_stream_class_is_ccxt_pros_own_without_an_expiry_event_and_refused_for_an_unknown_exchange() -> None:
    assert _stream_exchange_class("binanceusdm", None) is ccxt.pro.binanceusdm
    taught = _stream_exchange_class("binanceusdm", "listenKeyExpired")
    assert issubclass(taught, ccxt.pro.binanceusdm) and taught is not ccxt.pro.binanceusdm
    with pytest.raises(ValueError, match=r"ccxt\.pro has no exchange 'nosuchexchange'"):
        _stream_exchange_class("nosuchexchange", None)
