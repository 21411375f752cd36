"""Fills pushed by the venue: ccxt.pro's watch_orders against the local Binance USDⓈ-M fakes (REST + user data
stream on 127.0.0.1), through the asyncio venue and the order feed. No network; ccxt signs and parses for real.

Each test runs one event loop (``asyncio.run``) while the fakes run in their own threads, as an exchange would.
Waits have generous deadlines and nothing asserts on how long anything took.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import msgspec
import pytest

from router_tuner.router.venue import OrderState
from router_tuner.router.venues.ccxt.aio import AsyncCcxtVenue
from router_tuner.router.venues.ccxt.config import ApiCredentials
from router_tuner.router.venues.ccxt.order_feed import FeedSettings, StreamOrderFeed
from tests.fakes.binance_usdm import Ban, ErrorReply, FakeBinanceUsdm
from tests.fakes.binance_user_ws import LISTEN_KEY_PATH
from tests.venues.stream_support import (
    API_KEY,
    API_SECRET,
    SLOW_POLL_MS,
    Fakes,
    deadline,
    eventually,
    resting_buy,
    venue_config,
)


async def until_state(feed: StreamOrderFeed, cid: str, check: Callable[[OrderState], bool],
                      seen: list[OrderState] | None = None) -> OrderState:
    """Wait on the feed until ``cid``'s state passes ``check``; every answer is appended to ``seen``."""
    end = deadline()
    while True:
        state = await feed.wait("BTCUSDT", cid, end)
        assert state is not None, f"no update of {cid} passing the check before the deadline"
        if seen is not None:
            seen.append(state)
        if check(state):
            return state


def run_with_feed(fakes: Fakes, body: Callable[[AsyncCcxtVenue, StreamOrderFeed], Awaitable[None]],
                  poll_ms: float = SLOW_POLL_MS, listen_key_refresh_ms: int = 1_200_000) -> None:
    async def main() -> None:
        venue = await AsyncCcxtVenue.connect(venue_config(fakes.rest.base_url), ApiCredentials(API_KEY, API_SECRET),
                                             fakes.stream.ws_url, listen_key_refresh_ms)
        feed = StreamOrderFeed(venue, FeedSettings(poll_interval_ms=poll_ms, reconnect_initial_ms=5.0,
                                                   reconnect_max_ms=40.0))
        try:
            await feed.start()
            await eventually(lambda: feed.status.mode == "stream", "the order stream is up")
            await body(venue, feed)
        finally:
            await feed.close()
            await venue.close()

    asyncio.run(main())


BOOK_TICKER = "/fapi/v1/ticker/bookTicker"


def order_fetches(rest: FakeBinanceUsdm) -> int:
    return len(rest.order_requests("GET"))


def trade_ids(state: OrderState) -> list[str]:
    return [f.trade_id for f in state.fills]


# ----- the happy path ----------------------------------------------------------------------------------
def test_a_fill_arrives_by_the_stream_with_price_fee_and_liquidity(fakes: Fakes) -> None:
    async def body(venue: AsyncCcxtVenue, feed: StreamOrderFeed) -> None:
        placed = await venue.place_order(resting_buy("s1"))
        assert placed.status == "open"
        opened = await until_state(feed, "s1", lambda s: s.status == "open")
        assert (opened.qty, opened.filled_qty, opened.price) == (0.01, 0.0, 59_000.0)
        fetches_before = order_fetches(fakes.rest)
        fakes.rest.fill("s1", "0.004")
        state = await until_state(feed, "s1", lambda s: s.filled_qty > 0)
        assert state.status == "partially_filled" and state.filled_qty == pytest.approx(0.004)
        [fill] = state.fills
        assert (fill.client_order_id, fill.price, fill.qty, fill.liquidity) == ("s1", 59_000.0, 0.004, "maker")
        assert fill.fee_usd == pytest.approx(0.004 * 59_000.0 * 0.0002)
        assert order_fetches(fakes.rest) == fetches_before  # pushed, not polled
        fakes.rest.fill("s1", "0.006")
        done = await until_state(feed, "s1", lambda s: s.is_terminal)
        assert done.status == "filled" and len(trade_ids(done)) == 2 == len(set(trade_ids(done)))
        assert feed.status.mode == "stream" and feed.status.reconnects == 0

    run_with_feed(fakes, body)


def test_a_wait_without_news_returns_none_at_the_deadline(fakes: Fakes) -> None:
    async def body(venue: AsyncCcxtVenue, feed: StreamOrderFeed) -> None:
        await venue.place_order(resting_buy("quiet"))
        await until_state(feed, "quiet", lambda s: s.status == "open")
        assert await feed.wait("BTCUSDT", "quiet", time.time_ns() + 50_000_000) is None
        assert await feed.wait("BTCUSDT", "quiet", time.time_ns() - 1) is None  # a deadline already past
        fakes.rest.fill("quiet", "0.001")
        await eventually(lambda: feed.current("quiet") is not None and feed.current("quiet").filled_qty > 0,
                         "the fill is merged")
        # News not yet answered is returned even at a past deadline: the deadline bounds the waiting only.
        assert (await feed.wait("BTCUSDT", "quiet", time.time_ns() - 1)).status == "partially_filled"
        with pytest.raises(ValueError, match="followed under BTCUSDT"):
            await feed.wait("ETHUSDT", "quiet", deadline())
        feed.forget("quiet")
        assert feed.current("quiet") is None

    run_with_feed(fakes, body)


# ----- faults ------------------------------------------------------------------------------------------
def test_fills_during_a_stream_gap_are_recovered_once_after_the_reconnect(fakes: Fakes) -> None:
    async def body(venue: AsyncCcxtVenue, feed: StreamOrderFeed) -> None:
        await venue.place_order(resting_buy("gap"))
        fakes.rest.fill("gap", "0.003")
        await until_state(feed, "gap", lambda s: s.filled_qty > 0)
        fakes.stream.refuse_connections(True)
        assert fakes.stream.drop() == 1
        await eventually(lambda: feed.status.mode == "polling", "the feed notices the drop")
        assert feed.status.last_error is not None
        fakes.rest.fill("gap", "0.002")  # pushed to nobody: the stream is down
        assert feed.current("gap") is not None and feed.current("gap").filled_qty == pytest.approx(0.003)
        fakes.stream.refuse_connections(False)
        recovered = await until_state(feed, "gap", lambda s: s.filled_qty >= 0.005 - 1e-12)
        assert len(recovered.fills) == 2 and sum(f.qty for f in recovered.fills) == pytest.approx(0.005)
        await eventually(lambda: feed.status.mode == "stream", "the stream is back")
        assert feed.status.reconnects == 1
        fakes.rest.fill("gap", "0.005")
        done = await until_state(feed, "gap", lambda s: s.is_terminal)
        assert done.status == "filled" and len(done.fills) == 3 == len(set(trade_ids(done)))
        assert sum(f.qty for f in done.fills) == pytest.approx(0.01)

    run_with_feed(fakes, body)


def test_while_the_stream_is_down_orders_are_polled_by_rest(fakes: Fakes) -> None:
    async def body(venue: AsyncCcxtVenue, feed: StreamOrderFeed) -> None:
        await venue.place_order(resting_buy("poll"))
        await until_state(feed, "poll", lambda s: s.status == "open")
        fakes.stream.refuse_connections(True)
        fakes.stream.drop()
        await eventually(lambda: feed.status.mode == "polling", "the feed notices the drop")
        fakes.rest.fill("poll", "0.004")
        state = await until_state(feed, "poll", lambda s: s.filled_qty > 0)
        assert feed.status.mode == "polling" and len(state.fills) == 1
        fakes.stream.refuse_connections(False)
        await eventually(lambda: feed.status.mode == "stream", "the stream is back")
        fakes.rest.fill("poll", "0.006")
        done = await until_state(feed, "poll", lambda s: s.is_terminal)
        assert len(done.fills) == 2 == len(set(trade_ids(done)))

    run_with_feed(fakes, body, poll_ms=20.0)


def test_an_expired_listen_key_reconnects_on_a_new_key(fakes: Fakes) -> None:
    async def body(venue: AsyncCcxtVenue, feed: StreamOrderFeed) -> None:
        await venue.place_order(resting_buy("exp"))
        await until_state(feed, "exp", lambda s: s.status == "open")
        first_key = fakes.stream.active_key
        fakes.stream.expire_listen_key()
        await eventually(lambda: feed.status.reconnects == 1 and feed.status.mode == "stream",
                         "the feed reconnects on a fresh key")
        assert "ListenKeyExpired" in (feed.status.last_error or "")
        assert fakes.stream.active_key not in (None, first_key) and fakes.stream.key_posts == 2
        fakes.rest.fill("exp", "0.01")
        done = await until_state(feed, "exp", lambda s: s.is_terminal)
        assert done.status == "filled" and len(done.fills) == 1

    run_with_feed(fakes, body)


def test_the_listen_key_is_kept_alive_and_a_refused_keep_alive_reconnects(fakes: Fakes) -> None:
    async def body(venue: AsyncCcxtVenue, feed: StreamOrderFeed) -> None:
        await eventually(lambda: fakes.stream.keepalive_puts >= 2, "ccxt.pro renews the listen key")
        assert feed.status.reconnects == 0 and fakes.stream.key_posts == 1
        fakes.rest.fail_next("PUT", LISTEN_KEY_PATH, ErrorReply(-1125, "This listenKey does not exist."))
        await eventually(lambda: feed.status.reconnects >= 1 and feed.status.mode == "stream",
                         "a refused keep-alive ends in a reconnect")
        assert fakes.stream.key_posts >= 2
        await venue.place_order(resting_buy("alive"))
        fakes.rest.fill("alive", "0.01")
        done = await until_state(feed, "alive", lambda s: s.is_terminal)
        assert len(done.fills) == 1

    run_with_feed(fakes, body, listen_key_refresh_ms=40)


def test_a_ban_holds_the_listen_key_keep_alive_until_it_is_over(fakes: Fakes) -> None:
    """ccxt.pro's keep-alive and the stream's reconnects (a new listen key each) went out during a ban like any request
    (Binance extends the ban of a client that keeps sending): they now wait out the venue's last wait as every REST
    call does."""
    async def body(venue: AsyncCcxtVenue, feed: StreamOrderFeed) -> None:
        await eventually(lambda: fakes.stream.keepalive_puts >= 2, "ccxt.pro renews the listen key")
        first = len(fakes.rest.state.requests)
        fakes.rest.fail_next("GET", BOOK_TICKER, Ban(seconds=1.0))
        await venue.top_of_book("BTCUSDT")  # banned, waits the ban out, then read
        sent = [(method, path) for method, path, _ in fakes.rest.state.requests[first:]]
        reads = [i for i, (_, path) in enumerate(sent) if path == BOOK_TICKER]
        during = [r for r in sent[reads[0] + 1:reads[-1]] if r[1] == LISTEN_KEY_PATH]
        # one keep-alive may have left as the ban began; before, a keep-alive refused by the ban took the stream down
        # and every reconnect asked for a new key (POST) through the ban
        assert len(reads) == 2 and len(during) <= 1, sent
        await eventually(lambda: ("PUT", LISTEN_KEY_PATH) in [(m, p) for m, p, _ in
                                                               fakes.rest.state.requests[first:][reads[-1]:]],
                         "the keep-alive goes on once the ban is over")

    run_with_feed(fakes, body, listen_key_refresh_ms=40)


def test_duplicated_and_swapped_updates_count_each_fill_once_and_never_go_back(fakes: Fakes) -> None:
    async def body(venue: AsyncCcxtVenue, feed: StreamOrderFeed) -> None:
        seen: list[OrderState] = []
        await venue.place_order(resting_buy("dup"))
        await until_state(feed, "dup", lambda s: s.status == "open", seen)
        fakes.stream.duplicate_next(2)
        fakes.rest.fill("dup", "0.002")
        await until_state(feed, "dup", lambda s: s.filled_qty > 0, seen)
        fakes.stream.swap_next()
        fakes.rest.fill("dup", "0.003")  # held back ...
        fakes.rest.fill("dup", "0.005")  # ... and sent after this one, which completes the order
        done = await until_state(feed, "dup", lambda s: s.is_terminal and len(s.fills) == 3, seen)
        assert done.status == "filled" and done.filled_qty == pytest.approx(0.01)
        assert sorted(f.qty for f in done.fills) == pytest.approx([0.002, 0.003, 0.005])
        filled = [s.filled_qty for s in seen]
        assert filled == sorted(filled)
        terminal_at = next(i for i, s in enumerate(seen) if s.is_terminal)
        assert all(s.status == "filled" for s in seen[terminal_at:])
        assert feed.status.protocol_violations == 0

    run_with_feed(fakes, body)


def test_a_fill_reported_under_another_order_is_not_believed_and_reaches_its_own_order(fakes: Fakes) -> None:
    async def body(venue: AsyncCcxtVenue, feed: StreamOrderFeed) -> None:
        seen_b: list[OrderState] = []
        await venue.place_order(resting_buy("A"))
        await venue.place_order(resting_buy("B", price=58_000.0))
        await until_state(feed, "A", lambda s: s.status == "open")
        await until_state(feed, "B", lambda s: s.status == "open", seen_b)
        fakes.stream.report_next_fill_under("B")
        fakes.rest.fill("A", "0.004")
        await eventually(lambda: feed.status.protocol_violations == 1, "the misreported fill is caught")
        fakes.rest.fill("A", "0.006")
        done = await until_state(feed, "A", lambda s: s.is_terminal and len(s.fills) == 2)
        assert sum(f.qty for f in done.fills) == pytest.approx(0.01)
        assert {f.client_order_id for f in done.fills} == {"A"}
        late_b = await feed.wait("BTCUSDT", "B", time.time_ns() + 100_000_000)
        seen_b.extend([late_b] if late_b is not None else [])
        assert all(s.fills == () and s.filled_qty == 0.0 for s in seen_b)
        assert feed.current("B") is not None and feed.current("B").status == "open"

    run_with_feed(fakes, body)


def test_reports_of_unfollowed_orders_are_kept_newest_first_up_to_the_cap(
    fakes: Fakes, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("router_tuner.router.venues.ccxt.order_feed.UNFOLLOWED_KEPT", 2)

    async def body(venue: AsyncCcxtVenue, feed: StreamOrderFeed) -> None:
        feed.track("BTCUSDT", "kept")
        for cid in ("kept", "u1", "u2", "u3"):
            await venue.place_order(resting_buy(cid))
        await eventually(lambda: feed.current("u3") is not None, "the newest report arrives")
        assert feed.current("u1") is None  # the oldest unfollowed report made room
        assert feed.current("u2") is not None and feed.current("kept") is not None
        early = await feed.wait("BTCUSDT", "u3", deadline())  # reported before anyone waited: answered at once
        assert early is not None and early.status == "open"

    run_with_feed(fakes, body)


def test_a_failed_re_read_while_polling_is_logged_and_the_next_poll_reads_the_order(
    fakes: Fakes, caplog: pytest.LogCaptureFixture
) -> None:
    async def body(venue: AsyncCcxtVenue, feed: StreamOrderFeed) -> None:
        await venue.place_order(resting_buy("pollfail"))
        await until_state(feed, "pollfail", lambda s: s.status == "open")
        fakes.stream.refuse_connections(True)
        fakes.rest.fail_next("GET", "/fapi/v1/order", ErrorReply(-1001, "Internal error; unable to process your "
                                                                        "request. Please try again.", 500))
        assert fakes.stream.drop() == 1
        await eventually(lambda: feed.status.mode == "polling", "the feed notices the drop")
        fakes.rest.fill("pollfail", "0.004")  # pushed to nobody: only a poll can see it
        state = await until_state(feed, "pollfail", lambda s: s.filled_qty > 0)
        assert (state.status, [f.qty for f in state.fills]) == ("partially_filled", [0.004])
        assert feed.status.mode == "polling"
        fakes.stream.refuse_connections(False)

    with caplog.at_level("WARNING", logger="router_tuner.router.venues.ccxt.order_feed"):
        run_with_feed(fakes, body, poll_ms=20.0)
    failed = [r.getMessage() for r in caplog.records if "re-reading pollfail by REST failed" in r.getMessage()]
    assert len(failed) == 1 and "-1001" in failed[0]


def test_a_fill_whose_fee_no_market_prices_in_our_quote_is_read_with_the_fee_named_and_the_stream_stays_up(
    fakes: Fakes, caplog: pytest.LogCaptureFixture
) -> None:
    # Another program on the account trades BTCUSDC, its fees paid in BNB: the venue lists no BNB/USDC market, so
    # its fee cannot be stated in USDC. The report was unreadable ("stream report of theirs not read (VenueError:
    # BTCUSDC: cannot convert fee in BNB to USDC: no BNB/USDC market)"), and so was every report and REST read of an
    # order of ours so charged: its fill never counted. Now the fill is read, its fee named in ``unpriced_fees``.
    fakes.rest.set_book("BTCUSDC", "59990.0", "1", "59990.1", "1")
    fakes.rest.set_book("BNBUSDT", "500.00", "10", "500.10", "10")

    async def body(venue: AsyncCcxtVenue, feed: StreamOrderFeed) -> None:
        feed.track("BTCUSDT", "ours")
        await venue.place_order(resting_buy("ours"))
        await venue.place_order(msgspec.structs.replace(resting_buy("theirs"), symbol="BTCUSDC"))
        with fakes.rest.state.lock:
            fakes.rest.state.fee_asset_override = "BNB"
            fakes.rest.fill("theirs", "0.004")
            fakes.rest.fill("ours", "0.004")
        state = await until_state(feed, "ours", lambda s: s.filled_qty > 0)
        (fill,) = state.fills
        assert fill.client_order_id == "ours" and fill.fee_usd > 0  # its BNB fee priced at the BNB/USDT mid
        assert state.unpriced_fees == ()
        assert (feed.status.mode, feed.status.reconnects, feed.status.last_error) == ("stream", 0, None)
        theirs = feed.current("theirs")  # reported before ours, so read by now
        assert theirs is not None and theirs.filled_qty == 0.004
        (their_fill,) = theirs.fills
        (fee,) = theirs.unpriced_fees
        assert their_fill.fee_usd == 0.0 and (fee.trade_id, fee.currency, fee.quote) == (their_fill.trade_id, "BNB",
                                                                                           "USDC")
        assert fee.amount == pytest.approx(0.004 * 59_000.0 * 0.0002 / 500.05, abs=1e-8)

    with caplog.at_level("WARNING", logger="router_tuner.router.venues.ccxt.order_feed"):
        run_with_feed(fakes, body)
    assert not [r.getMessage() for r in caplog.records if "not read" in r.getMessage()]
