"""The live ccxt venue against a local Binance USDⓈ-M fake: ccxt's real signing and parsing, no network.

The venue runs as the live engine wires it (``tests.venues.ccxt_support``): ``AsyncCcxtVenue`` on the route loop,
called blocking through ``LoopVenue`` as the executor does; the route test awaits it from a route on that loop."""

from __future__ import annotations

import logging
from dataclasses import replace
from decimal import Decimal

import ccxt
import msgspec
import numpy as np
import pytest

from router_tuner.config.loader import load_config
from router_tuner.config.models import Instrument
from router_tuner.executor.engine.live import LoopVenue, refuse_floors_under_venue, venue_minimums
from router_tuner.risk.lot import FloorUnderVenueMinimum
from router_tuner.router.contract import Contract, notional_usd, venue_contract
from router_tuner.router.policy import RouterPolicy
from router_tuner.router.routing.machine import route_machine
from router_tuner.router.routing.order import RouteOrder, RouteSettings
from router_tuner.router.venue import (
    BelowMinNotional,
    InsufficientMargin,
    InvalidOrder,
    OrderNotFound,
    OrderRequest,
    PostOnlyRejected,
    RateLimited,
    ReduceOnlyRejected,
    VenueError,
    VenueTimeout,
    VenueUnavailable,
)
from router_tuner.router.venues.ccxt.config import ApiCredentials, MissingCredentials
from router_tuner.router.venues.ccxt.core import logger as venue_logger
from router_tuner.router.venues.ccxt.parse import (
    contract_of_market,
    min_notional_of_market,
    position_amounts,
    price_tick,
)
from router_tuner.router.venues.ccxt.quirks import quirks_for
from tests.fakes.binance_usdm import Ban, ErrorReply, FakeBinanceUsdm, RateLimitReply, Stall
from tests.venues.ccxt_support import STALL_S, Connect, RecordedSleeps, request, rest_config
from tests.venues.stream_support import API_KEY, API_SECRET, DEADLINE_S

ORDER = "/fapi/v1/order"


# ----- placing ---------------------------------------------------------------------------------------
def test_post_only_maker_order_is_sent_with_gtx_and_client_order_id(
    fake: FakeBinanceUsdm, venue: LoopVenue
) -> None:
    state = venue.place_order(request("mk-1"))
    assert (state.client_order_id, state.status, state.qty, state.filled_qty, state.fills) == (
        "mk-1",
        "open",
        0.002,
        0.0,
        (),
    )
    # A buy is rounded down to the tick (never toward the ask), and the wire carries exact strings.
    assert state.price == 59999.9
    sent = fake.order_requests("POST")[-1]
    assert sent["timeInForce"] == "GTX"
    assert sent["newClientOrderId"] == "mk-1"
    assert (sent["price"], sent["quantity"], sent["type"], sent["side"]) == (
        "59999.9",
        "0.002",
        "LIMIT",
        "BUY",
    )
    assert "reduceOnly" not in sent and "positionSide" not in sent
    assert fake.posts_for("mk-1") == 1


def test_sell_price_is_rounded_up_and_amount_truncated(fake: FakeBinanceUsdm, venue: LoopVenue) -> None:
    venue.place_order(request("mk-2", side="sell", price=60000.13, qty=0.0029))
    sent = fake.order_requests("POST")[-1]
    assert (sent["price"], sent["quantity"]) == ("60000.2", "0.002")


def test_post_only_that_would_cross_is_mapped_to_post_only_rejected(venue: LoopVenue) -> None:
    with pytest.raises(PostOnlyRejected, match="-5022"):
        venue.place_order(request("mk-x", price=60000.1))


@pytest.mark.parametrize(
    ("reply", "error"),
    [
        (ErrorReply(-2019, "Margin is insufficient."), InsufficientMargin),
        (
            ErrorReply(
                -4164, "Order's notional must be no smaller than 100 (unless you choose reduce only)."
            ),
            BelowMinNotional,
        ),
    ],
)
def test_exchange_error_codes_are_mapped(
    fake: FakeBinanceUsdm, venue: LoopVenue, reply: ErrorReply, error: type[VenueError]
) -> None:
    fake.fail_next("POST", ORDER, reply)
    with pytest.raises(error, match=str(reply.code)):
        venue.place_order(request("err-1"))


@pytest.mark.parametrize(("reply", "error"), [
    (ErrorReply(-1006, "An unexpected response was received from the message bus. Execution status unknown.", 500),
     VenueTimeout),
    (ErrorReply(-1008, "Server is currently overloaded with other requests. Please try again in a few minutes.", 503),
     VenueUnavailable),
])
def test_server_answers_of_unknown_outcome_or_overload_are_not_plain_errors(
    fake: FakeBinanceUsdm, venue: LoopVenue, reply: ErrorReply, error: type[VenueError]
) -> None:
    """ccxt raises both as plain errors (BadResponse, OperationFailed), which ended a route at once: -1006 is an
    outcome to look up by client order id (as -1000, -1001, -1007), -1008 a read to retry (bounded)."""
    venue.place_order(request("busy-1"))
    fake.fail_next("GET", ORDER, reply)
    with pytest.raises(error, match=str(reply.code)):
        venue.fetch_order("BTCUSDT", "busy-1")


def test_min_notional_enforced_by_the_venue_is_mapped(venue: LoopVenue) -> None:
    with pytest.raises(BelowMinNotional):
        venue.place_order(request("tiny", qty=0.001))  # 60 USDT < 100 USDT minimum on BTCUSDT


def test_bad_requests_are_refused_before_sending(fake: FakeBinanceUsdm, venue: LoopVenue) -> None:
    with pytest.raises(InvalidOrder, match="price"):
        venue.place_order(request("b1", price=None))
    with pytest.raises(InvalidOrder, match="post_only"):
        venue.place_order(request("b2", order_type="market", price=None))
    with pytest.raises(InvalidOrder, match="qty"):
        venue.place_order(request("b3", qty=float("nan")))
    with pytest.raises(InvalidOrder, match="truncates to zero"):
        venue.place_order(request("b4", qty=0.0004))
    with pytest.raises(InvalidOrder, match="one-way"):
        venue.place_order(request("b5", position_side="LONG"))
    with pytest.raises(ValueError, match="unknown symbol"):
        venue.place_order(request("b6", symbol="BTC/USDT:USDT"))
    with pytest.raises(InvalidOrder, match="client_order_id is required"):
        venue.place_order(request(""))
    with pytest.raises(InvalidOrder, match="b7: a market order must not carry a price"):
        venue.place_order(request("b7", order_type="market", price=60000.0, post_only=False))
    with pytest.raises(InvalidOrder, match=r"b8: price 0\.05 rounds to zero"):
        venue.place_order(request("b8", price=0.05))  # a buy rounds down, to 0 at the 0.1 tick
    assert fake.order_requests("POST") == []


# ----- rate limits -----------------------------------------------------------------------------------
def test_rate_limit_is_backed_off_then_succeeds(
    fake: FakeBinanceUsdm, venue: LoopVenue, sleeps: RecordedSleeps
) -> None:
    fake.fail_next("POST", ORDER, RateLimitReply(retry_after_s=0))
    fake.fail_next("POST", ORDER, RateLimitReply(retry_after_s=1, http_status=418))
    state = venue.place_order(request("rl-1"))
    assert state.status == "open"
    # Exponential back-off, and the venue's Retry-After wins when it is longer.
    assert sleeps.sleeps_s == [0.1, 1.0]
    assert fake.posts_for("rl-1") == 3
    assert len([o for o in fake.state.orders.values() if o.client_order_id == "rl-1"]) == 1


def test_rate_limit_retries_are_bounded(fake: FakeBinanceUsdm, venue: LoopVenue, sleeps: RecordedSleeps) -> None:
    for _ in range(4):
        fake.fail_next("POST", ORDER, RateLimitReply(retry_after_s=0))
    with pytest.raises(RateLimited) as info:
        venue.place_order(request("rl-2"))
    assert info.value.retry_after_s == 0.0
    assert sleeps.sleeps_s == [0.1, 0.2, 0.4]
    assert fake.posts_for("rl-2") == 4


def test_retry_after_beyond_the_configured_wait_is_raised_not_slept(
    fake: FakeBinanceUsdm, venue: LoopVenue, sleeps: RecordedSleeps
) -> None:
    fake.fail_next("GET", "/fapi/v1/depth", RateLimitReply(retry_after_s=120))
    with pytest.raises(RateLimited) as info:
        venue.top_of_book("BTCUSDT")
    assert info.value.retry_after_s == 120.0
    assert sleeps.sleeps_s == []


def test_a_ban_quiets_every_call_of_the_client_and_nothing_more_is_sent(
    fake: FakeBinanceUsdm, venue: LoopVenue, sleeps: RecordedSleeps
) -> None:
    fake.fail_next("GET", "/fapi/v1/depth", Ban(seconds=120))
    with pytest.raises(RateLimited, match="IP banned until"):
        venue.top_of_book("BTCUSDT")
    sent = len(fake.state.requests)
    for call in (lambda: venue.place_order(request("ban-1")), lambda: venue.fetch_order("BTCUSDT", "ban-1")):
        with pytest.raises(RateLimited, match=r"not sent: the venue asked for no requests for 1\d\d\.\d s more, "
                                              "longer than retry_after_max_s 5 s") as info:
            call()
        assert info.value.retry_after_s is not None and 100 < info.value.retry_after_s <= 120
    assert len(fake.state.requests) == sent and sleeps.sleeps_s == []  # the ban is not extended by our requests


def test_a_rate_limit_that_outlasts_its_retries_makes_the_next_call_wait_out_the_rest(
    fake: FakeBinanceUsdm, venue: LoopVenue, sleeps: RecordedSleeps
) -> None:
    for _ in range(4):
        fake.fail_next("POST", ORDER, RateLimitReply(retry_after_s=1))
    with pytest.raises(RateLimited):
        venue.place_order(request("rl-3"))
    assert sleeps.sleeps_s == [1.0, 1.0, 1.0]
    assert venue.top_of_book("BTCUSDT").bid == 60000.0  # sent once the venue's last second is over
    assert len(sleeps.sleeps_s) == 4 and 0.5 < sleeps.sleeps_s[3] <= 1.0


# ----- timeouts and idempotency ----------------------------------------------------------------------
def test_timeout_after_the_order_was_created_finds_it_without_resending(
    fake: FakeBinanceUsdm, venue: LoopVenue
) -> None:
    fake.fail_next("POST", ORDER, Stall(STALL_S, create_first=True))
    state = venue.place_order(request("to-1"))
    assert (state.client_order_id, state.status) == ("to-1", "open")
    assert fake.posts_for("to-1") == 1


def test_timeout_before_the_order_existed_resends_once_with_the_same_id(
    fake: FakeBinanceUsdm, venue: LoopVenue
) -> None:
    fake.fail_next("POST", ORDER, Stall(STALL_S, create_first=False))
    state = venue.place_order(request("to-2"))
    assert state.status == "open"
    assert fake.posts_for("to-2") == 2
    assert {p["newClientOrderId"] for p in fake.order_requests("POST")} == {"to-2"}


def test_second_timeout_is_raised_and_never_sent_a_third_time(
    fake: FakeBinanceUsdm, venue: LoopVenue
) -> None:
    fake.fail_next("POST", ORDER, Stall(STALL_S, create_first=False))
    fake.fail_next("POST", ORDER, Stall(STALL_S, create_first=False))
    with pytest.raises(VenueTimeout, match="not resending"):
        venue.place_order(request("to-3"))
    assert fake.posts_for("to-3") == 2


def test_resend_after_timeout_that_created_late_returns_the_existing_order(
    fake: FakeBinanceUsdm, venue: LoopVenue
) -> None:
    fake.fail_next("POST", ORDER, Stall(STALL_S, create_first=False))
    fake.fail_next("POST", ORDER, Stall(STALL_S, create_first=True))
    state = venue.place_order(request("to-4"))
    assert state.status == "open"
    assert fake.posts_for("to-4") == 2


# ----- reduce-only and close-position ----------------------------------------------------------------
@pytest.mark.parametrize("symbol", ["BTCUSDT", "BTCUSDC"])
@pytest.mark.parametrize(
    ("position_side", "side", "amount"), [("LONG", "sell", "0.005"), ("SHORT", "buy", "-0.005")]
)
def test_hedge_mode_reduce_only_sends_position_side_and_no_reduce_only(
    fake: FakeBinanceUsdm, connect: Connect, symbol: str, position_side: str, side: str, amount: str
) -> None:
    fake.state.hedge_mode = True
    fake.set_position(symbol, position_side, amount)
    venue = connect().venue
    assert venue.hedge_mode
    state = venue.place_order(
        request(
            f"hc-{symbol}-{position_side}",
            symbol=symbol,
            side=side,
            qty=0.005,
            order_type="market",
            price=None,
            post_only=False,
            reduce_only=True,
            position_side=position_side,
        )
    )
    assert (state.status, state.filled_qty) == ("filled", 0.005)
    sent = fake.order_requests("POST")[-1]
    assert sent["positionSide"] == position_side
    assert "reduceOnly" not in sent
    assert fake.state.positions[(symbol, position_side)] == 0


def test_hedge_mode_refuses_one_way_and_opening_side_reduce_only(
    fake: FakeBinanceUsdm, connect: Connect
) -> None:
    fake.state.hedge_mode = True
    venue = connect().venue
    with pytest.raises(InvalidOrder, match="hedge mode"):
        venue.place_order(request("h1"))
    with pytest.raises(InvalidOrder, match="needs side sell"):
        venue.place_order(request("h2", reduce_only=True, position_side="LONG", side="buy"))


@pytest.mark.parametrize("symbol", ["BTCUSDT", "BTCUSDC"])
def test_one_way_reduce_only_sends_reduce_only(fake: FakeBinanceUsdm, venue: LoopVenue, symbol: str) -> None:
    fake.set_position(symbol, "BOTH", "0.004")
    venue.place_order(
        request(
            f"ow-{symbol}",
            symbol=symbol,
            side="sell",
            qty=0.004,
            order_type="market",
            price=None,
            post_only=False,
            reduce_only=True,
        )
    )
    sent = fake.order_requests("POST")[-1]
    assert sent["reduceOnly"] == "true"
    assert "positionSide" not in sent


def test_close_position_closes_the_venues_whole_position(fake: FakeBinanceUsdm, venue: LoopVenue) -> None:
    fake.set_position("BTCUSDC", "BOTH", "-0.007")
    state = venue.place_order(
        request(
            "cp-1",
            symbol="BTCUSDC",
            side="buy",
            qty=0.001,
            order_type="market",
            price=None,
            post_only=False,
            close_position=True,
        )
    )
    assert (state.status, state.qty) == ("filled", 0.007)
    sent = fake.order_requests("POST")[-1]
    assert (sent["quantity"], sent["reduceOnly"], sent["side"]) == ("0.007", "true", "BUY")
    assert fake.state.positions[("BTCUSDC", "BOTH")] == 0


def test_close_position_in_hedge_mode_and_bad_paths(fake: FakeBinanceUsdm, connect: Connect) -> None:
    fake.state.hedge_mode = True
    fake.set_position("BTCUSDT", "LONG", "0.003")
    fake.set_position("BTCUSDT", "SHORT", "-0.009")
    venue = connect().venue
    close_short = request(
        "cp-2",
        side="buy",
        order_type="market",
        price=None,
        post_only=False,
        close_position=True,
        position_side="SHORT",
    )
    assert venue.place_order(close_short).qty == 0.009
    sent = fake.order_requests("POST")[-1]
    assert (sent["positionSide"], sent["quantity"]) == ("SHORT", "0.009")
    assert "reduceOnly" not in sent
    with pytest.raises(ReduceOnlyRejected, match="no open SHORT position"):
        venue.place_order(msgspec.structs.replace(close_short, client_order_id="cp-3"))


def test_close_position_with_the_wrong_side_is_refused(fake: FakeBinanceUsdm, venue: LoopVenue) -> None:
    fake.set_position("BTCUSDT", "BOTH", "0.003")
    with pytest.raises(InvalidOrder, match="needs side sell"):
        venue.place_order(
            request("cp-4", side="buy", order_type="market", price=None, post_only=False, close_position=True)
        )


# ----- fills, queries, cancels -----------------------------------------------------------------------
def test_partial_fills_are_parsed_with_maker_liquidity_and_quote_fees(
    fake: FakeBinanceUsdm, venue: LoopVenue
) -> None:
    venue.place_order(request("pf-1", qty=0.005))
    fake.fill("pf-1", "0.002")
    state = venue.fetch_order("BTCUSDT", "pf-1")
    assert (state.status, state.filled_qty) == ("partially_filled", 0.002)
    (fill,) = state.fills
    assert (fill.client_order_id, fill.liquidity, fill.price, fill.qty) == ("pf-1", "maker", 59999.9, 0.002)
    assert fill.fee_usd == pytest.approx(0.002 * 59999.9 * 0.0002)
    fake.fill("pf-1", "0.001")
    canceled = venue.cancel_order("BTCUSDT", "pf-1")
    assert (canceled.status, canceled.filled_qty) == ("canceled", 0.003)
    assert [f.qty for f in canceled.fills] == [0.002, 0.001]
    assert len({f.trade_id for f in canceled.fills}) == 2


def test_taker_fill_and_fee_in_a_third_asset_is_converted_to_quote(
    fake: FakeBinanceUsdm, venue: LoopVenue
) -> None:
    fake.state.fee_asset_override = "BNB"
    state = venue.place_order(request("tk-1", qty=0.002, order_type="market", price=None, post_only=False))
    (fill,) = state.fills
    assert (state.status, fill.liquidity, fill.price) == ("filled", "taker", 60000.1)
    # Paid in BNB at the BNB mid, reported back in USDT (to the fake's 8-decimal commission rounding).
    assert fill.fee_usd == pytest.approx(0.002 * 60000.1 * 0.0005, rel=1e-4)


def test_cancel_of_a_filled_order_returns_its_final_state(fake: FakeBinanceUsdm, venue: LoopVenue) -> None:
    venue.place_order(request("cf-1"))
    fake.fill("cf-1", "0.002")
    state = venue.cancel_order("BTCUSDT", "cf-1")
    assert (state.status, state.is_terminal, len(state.fills)) == ("filled", True, 1)


def test_unknown_orders_are_order_not_found(venue: LoopVenue) -> None:
    with pytest.raises(OrderNotFound, match="-2013"):
        venue.fetch_order("BTCUSDT", "nope")
    with pytest.raises(OrderNotFound, match="-2013"):
        venue.cancel_order("BTCUSDT", "nope")


def test_open_orders_by_symbol_and_for_all(fake: FakeBinanceUsdm, venue: LoopVenue) -> None:
    venue.place_order(request("oo-1"))
    venue.place_order(request("oo-2", symbol="BTCUSDC", price=59980.0))
    fake.fill("oo-1", "0.001")
    assert [s.client_order_id for s in venue.open_orders("BTCUSDC")] == ["oo-2"]
    states = {s.client_order_id: s for s in venue.open_orders(None)}
    assert set(states) == {"oo-1", "oo-2"}
    assert states["oo-1"].symbol == "BTCUSDT" and len(states["oo-1"].fills) == 1


@pytest.mark.parametrize("source", ["order_book", "bids_asks"])
def test_top_of_book_from_either_endpoint(fake: FakeBinanceUsdm, connect: Connect, source: str) -> None:
    venue = connect(top_of_book_source=source).venue
    tob = venue.top_of_book("BTCUSDT")
    assert (tob.symbol, tob.bid, tob.bid_qty, tob.ask, tob.ask_qty) == ("BTCUSDT", 60000.0, 1.5, 60000.1, 2.0)
    assert tob.ts_ns > 0
    assert fake.state.requests[-1][1] == (
        "/fapi/v1/depth" if source == "order_book" else "/fapi/v1/ticker/bookTicker"
    )


# ----- credentials and redaction ---------------------------------------------------------------------
def test_key_and_secret_never_reach_logs_or_errors(
    fake: FakeBinanceUsdm, connect: Connect, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    venue = connect().venue
    venue.place_order(request("rd-1"))
    fake.fail_next("POST", ORDER, ErrorReply(-2015, f"Invalid API-key {API_KEY} secret {API_SECRET}", 401))
    with pytest.raises(VenueError) as info:
        venue.place_order(request("rd-2"))
    fake.fail_next("POST", ORDER, RateLimitReply(retry_after_s=0))
    venue.place_order(request("rd-3"))
    text = caplog.text + str(info.value)
    assert "X-MBX-APIKEY" in caplog.text  # ccxt's DEBUG request logs were captured ...
    assert "***" in str(info.value)
    assert API_KEY not in text and API_SECRET not in text  # ... and masked
    assert API_KEY[:20] not in text


def test_wrong_secret_fails_the_fakes_signature_check(connect: Connect) -> None:
    env = {"K": API_KEY, "S": "not-the-secret"}
    with pytest.raises(VenueError, match="-1022"):
        connect(credentials=ApiCredentials.from_env("K", "S", env))


def test_credentials_come_only_from_named_environment_variables() -> None:
    with pytest.raises(MissingCredentials, match="ROUTER_TUNER_API_SECRET"):
        ApiCredentials.from_env(
            "ROUTER_TUNER_API_KEY", "ROUTER_TUNER_API_SECRET", {"ROUTER_TUNER_API_KEY": "k"}
        )
    creds = ApiCredentials.from_env("A", "B", {"A": API_KEY, "B": API_SECRET})
    assert API_KEY not in repr(creds) and API_SECRET not in repr(creds)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("request_timeout_ms", 0),
        ("rate_limit_max_retries", -1),
        ("backoff_max_ms", 50.0),
        ("top_of_book_source", "ticker"),
        ("order_book_depth", 0),
        ("api_secret_env", "K"),  # the key's own variable
        ("retry_after_max_s", float("inf")),
    ],
)
def test_config_rejects_bad_values(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=field.split("_")[0]):
        rest_config("http://127.0.0.1:1", **{field: value})


def test_exchanges_without_a_quirks_entry_are_refused() -> None:
    with pytest.raises(ValueError, match="no quirks mapping for exchange 'kraken'"):
        quirks_for("kraken")


def test_redacting_filter_masks_args_and_tracebacks(connect: Connect, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    connect()
    try:
        raise RuntimeError(f"boom {API_SECRET}")
    except RuntimeError:
        venue_logger.exception("failed with key %s", API_KEY)
    assert "failed with key ***" in caplog.text and "boom ***" in caplog.text
    assert API_KEY not in caplog.text and API_SECRET not in caplog.text


def test_duplicate_client_order_id_on_a_first_send_is_an_error(
    fake: FakeBinanceUsdm, venue: LoopVenue
) -> None:
    venue.place_order(request("dup-1"))
    with pytest.raises(VenueError, match="-4116"):
        venue.place_order(request("dup-1"))
    assert fake.posts_for("dup-1") == 2


def test_a_venue_that_fails_to_connect_leaves_no_log_filters(connect: Connect) -> None:
    before = list(venue_logger.filters)
    with pytest.raises(VenueError):
        connect(credentials=ApiCredentials.from_env("K", "S", {"K": API_KEY, "S": "not-the-secret"}))
    assert venue_logger.filters == before


# ----- time in force ---------------------------------------------------------------------------------
def ioc(cid: str, **kw: object) -> OrderRequest:
    fields: dict[str, object] = dict(price=60003.0, post_only=False, time_in_force="IOC", qty=0.005)
    fields.update(kw)
    return request(cid, **fields)


def test_ioc_takes_the_touch_within_its_limit_and_expires_the_rest(
    fake: FakeBinanceUsdm, venue: LoopVenue
) -> None:
    fake.set_book("BTCUSDT", "60000.0", "1.5", "60000.1", "0.003")
    state = venue.place_order(ioc("ioc-1"))
    sent = fake.order_requests("POST")[-1]
    assert (sent["timeInForce"], sent["type"], sent["price"]) == ("IOC", "LIMIT", "60003")
    assert (state.status, state.qty, state.filled_qty, state.is_terminal) == ("expired", 0.005, 0.003, True)
    (fill,) = state.fills
    assert (fill.client_order_id, fill.liquidity, fill.price, fill.qty) == ("ioc-1", "taker", 60000.1, 0.003)
    assert fill.fee_usd == pytest.approx(0.003 * 60000.1 * 0.0005)
    assert venue.open_orders("BTCUSDT") == () and venue.fetch_order("BTCUSDT", "ioc-1") == state
    assert fake.order_requests("DELETE") == []


def test_ioc_the_touch_covers_is_filled(fake: FakeBinanceUsdm, venue: LoopVenue) -> None:
    state = venue.place_order(ioc("ioc-2", side="sell", price=59999.0))
    assert (fake.order_requests("POST")[-1]["timeInForce"], state.status, state.filled_qty) == ("IOC", "filled", 0.005)
    assert [(f.price, f.liquidity) for f in state.fills] == [(60000.0, "taker")]


def test_ioc_that_cannot_trade_expires_with_nothing(fake: FakeBinanceUsdm, venue: LoopVenue) -> None:
    state = venue.place_order(ioc("ioc-3", price=59999.0))
    assert (state.status, state.filled_qty, state.fills) == ("expired", 0.0, ())
    assert venue.open_orders(None) == ()


def test_time_in_force_on_the_wire_per_order_kind(fake: FakeBinanceUsdm, venue: LoopVenue) -> None:
    venue.place_order(request("gtc-1", post_only=False, time_in_force="GTC"))
    venue.place_order(request("gtx-1"))
    venue.place_order(request("mkt-1", order_type="market", price=None, post_only=False))
    gtc, gtx, mkt = fake.order_requests("POST")[-3:]
    assert (gtc["timeInForce"], gtx["timeInForce"]) == ("GTC", "GTX")
    assert "timeInForce" not in mkt  # a market order is IOC by nature; Binance takes no time in force on it
    assert quirks_for("binanceusdm").time_in_force_params["IOC"] == {"timeInForce": "IOC"}


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"post_only": True, "time_in_force": "IOC"}, "post-only order rests as maker"),
        ({"order_type": "market", "price": None, "post_only": False, "time_in_force": "GTC"}, "never rests"),
        ({"post_only": False, "time_in_force": "FOK"}, "must be 'GTC' or 'IOC'"),
    ],
)
def test_contradictory_time_in_force_is_refused_before_sending(
    fake: FakeBinanceUsdm, venue: LoopVenue, kw: dict[str, object], message: str
) -> None:
    with pytest.raises(InvalidOrder, match=message):
        venue.place_order(request("tif-bad", **kw))
    assert fake.order_requests("POST") == []


@pytest.mark.parametrize("fee_asset", [None, "BNB"])
def test_a_maker_rebate_is_a_negative_fee_in_quote(fake: FakeBinanceUsdm, venue: LoopVenue,
                                                   fee_asset: str | None) -> None:
    fake.state.maker_fee_rate = Decimal("-0.0001")  # Binance reports a rebate as a negative commission
    fake.state.fee_asset_override = fee_asset
    venue.place_order(request("rebate-1"))
    fake.fill("rebate-1", "0.002")
    (fill,) = venue.fetch_order("BTCUSDT", "rebate-1").fills
    # In BNB: charged at the BNB mid, reported back in USDT (to the fake's 8-decimal commission, 1e-8 BNB).
    assert fill.liquidity == "maker" and fill.fee_usd == pytest.approx(-0.002 * 59999.9 * 0.0001, abs=1e-8 * 500.05)


def test_router_taker_leg_is_one_ioc_without_a_cancel(fake: FakeBinanceUsdm, connect: Connect) -> None:
    """A route on the live engine's loop, awaiting the venue as every live route does."""
    live = connect()
    fake.set_book("BTCUSDT", "60000.0", "1.5", "60000.1", "0.002")  # a thin ask: the IOC fills part of it
    router = load_config().router
    policy = replace(RouterPolicy.from_static("BTCUSDT", router), taker_bias=1.0)
    settings = RouteSettings(position_mode="one_way", close_position_quotes=router.close_position_quotes,
                             poll_interval_ms=10.0, max_venue_retries=2, rate_limit_backoff_ms=10.0,
                             max_retry_after_ms=5000.0)
    order = RouteOrder(intent_id="rt1", symbol="BTCUSDT", side="buy", qty=0.005, reduce_only=False,
                       close_position=False, position_side="BOTH", quote="USDT", tick_size=0.1, qty_step=0.001)
    live.loop.start("rt1", route_machine(order, policy, settings, rng=np.random.default_rng(0)))
    live.loop.wait(DEADLINE_S)
    (finished,) = live.loop.finished
    event = finished.result
    assert finished.error is None and event is not None
    (sent,) = fake.order_requests("POST")
    # mid 60000.05 + 15 bps = 60090.05..., floored to the tick
    assert (sent["timeInForce"], sent["price"], sent["newClientOrderId"]) == ("IOC", "60090", "rt1-1")
    assert fake.order_requests("DELETE") == [] and event.cancel_count == 0
    assert (event.outcome, event.routed_as, event.filled_qty, event.error) == ("partial", "taker", 0.002, None)
    assert (event.close_position, event.position_side) == (False, "BOTH")


# ----- positions -------------------------------------------------------------------------------------
def test_positions_one_way_are_signed_both_legs_like_the_sim_venue(fake: FakeBinanceUsdm, venue: LoopVenue) -> None:
    assert venue.positions("BTCUSDT") == {"BOTH": 0.0}  # nothing listed is flat, with the one-way key
    venue.place_order(request("ps-1", qty=0.003, order_type="market", price=None, post_only=False))
    fake.set_position("BTCUSDC", "BOTH", "-0.007")
    assert venue.positions("BTCUSDT") == {"BOTH": 0.003}
    assert venue.positions("BTCUSDC") == {"BOTH": -0.007}
    fake.set_position("BTCUSDC", "BOTH", "0")  # a closed position's row stays, flat
    assert venue.positions("BTCUSDC") == {"BOTH": 0.0}
    assert fake.state.requests[-1][1] == "/fapi/v3/positionRisk"


def test_positions_hedge_mode_report_long_and_short_legs(fake: FakeBinanceUsdm, connect: Connect) -> None:
    fake.state.hedge_mode = True
    venue = connect().venue
    assert venue.positions("BTCUSDT") == {"LONG": 0.0, "SHORT": 0.0}
    fake.set_position("BTCUSDT", "LONG", "0.003")
    fake.set_position("BTCUSDT", "SHORT", "-0.009")
    fake.set_position("BTCUSDT", "BOTH", "0")  # the unused one-way row of a hedge account
    fake.set_position("BNBUSDT", "SHORT", "-1.5")
    assert venue.positions("BTCUSDT") == {"LONG": 0.003, "SHORT": -0.009}
    assert venue.positions("BNBUSDT") == {"LONG": 0.0, "SHORT": -1.5}


def test_positions_refuse_what_cannot_be_placed(fake: FakeBinanceUsdm, connect: Connect) -> None:
    fake.state.hedge_mode = True
    venue = connect().venue
    fake.set_position("BTCUSDT", "BOTH", "0.002")  # the account left hedge mode after we connected
    with pytest.raises(VenueError, match="BTCUSDT: open long position is one-way but the account was hedge"):
        venue.positions("BTCUSDT")
    with pytest.raises(ValueError, match="unknown symbol 'ETHUSDT'"):
        venue.positions("ETHUSDT")
    fake.fail_next("GET", "/fapi/v3/positionRisk", ErrorReply(-2015, "Invalid API-key", 401))
    with pytest.raises(VenueError):
        venue.positions("BNBUSDT")


def test_positions_back_off_a_rate_limit(fake: FakeBinanceUsdm, venue: LoopVenue, sleeps: RecordedSleeps) -> None:
    fake.set_position("BTCUSDT", "BOTH", "0.004")
    fake.fail_next("GET", "/fapi/v3/positionRisk", RateLimitReply(retry_after_s=1))
    assert venue.positions("BTCUSDT") == {"BOTH": 0.004}
    assert sleeps.sleeps_s == [1.0]


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ({"contracts": None}, "without a contracts amount"),
        ({"side": None}, "has side None"),
    ],
)
def test_position_rows_without_amount_or_side_are_errors(row: dict[str, object], message: str) -> None:
    base = {"symbol": "BTC/USDT:USDT", "contracts": 0.002, "side": "long", "hedged": False, "info": {}}
    with pytest.raises(VenueError, match=message):
        position_amounts([{**base, **row}], "BTCUSDT", "BTC/USDT:USDT", False)


def test_a_leg_reported_twice_is_an_error() -> None:
    row = {"symbol": "BTC/USDT:USDT", "contracts": 0.002, "side": "short", "hedged": True, "info": {}}
    with pytest.raises(VenueError, match="SHORT position twice"):
        position_amounts([row, row], "BTCUSDT", "BTC/USDT:USDT", True)
    other = {**row, "symbol": "BNB/USDT:USDT"}
    assert position_amounts([row, other], "BTCUSDT", "BTC/USDT:USDT", True) == {"LONG": 0.0, "SHORT": -0.002}


# ----- contract specs --------------------------------------------------------------------------------
def test_venue_states_usdm_symbols_as_linear_contracts_of_one_base_unit(
    fake: FakeBinanceUsdm, venue: LoopVenue
) -> None:
    """USDⓈ-M exchangeInfo publishes no contractSize and margins in the quote: ccxt reads linear, size 1."""
    for symbol in ("BTCUSDT", "BTCUSDC", "BNBUSDT"):
        assert venue.contract(symbol) == Contract("linear", 1.0)
    assert venue_contract(venue, "BTCUSDT") == Contract("linear", 1.0)
    with pytest.raises(ValueError, match="unknown symbol 'ETHUSD_PERP'"):
        venue.contract("ETHUSD_PERP")


def _coin_m_entry(fake: FakeBinanceUsdm) -> dict[str, object]:
    """A COIN-M (``/dapi``) exchangeInfo entry: quoted in USD, margined in BTC, 100 USD per contract."""
    [usdm] = [s for s in fake._exchange_info()["symbols"] if s["symbol"] == "BTCUSDT"]
    return {**usdm, "symbol": "BTCUSD_PERP", "pair": "BTCUSD", "quoteAsset": "USD", "marginAsset": "BTC",
            "contractSize": 100}


def test_coin_m_market_parsed_by_ccxt_is_an_inverse_contract_of_its_size(fake: FakeBinanceUsdm) -> None:
    market = ccxt.binancecoinm().parse_market(_coin_m_entry(fake))
    assert contract_of_market(market) == Contract("inverse", 100.0)
    assert notional_usd(contract_of_market(market), price=60_000.0, qty=3) == 300.0


def test_spot_market_parsed_by_ccxt_is_spot_of_one_base_unit() -> None:
    client = ccxt.binance()
    client.options.update(crossMarginPairsData=[], isolatedMarginPairsData=[])
    market = client.parse_market({"symbol": "BTCUSDT", "status": "TRADING", "baseAsset": "BTC", "quoteAsset": "USDT",
                                  "baseAssetPrecision": 8, "quotePrecision": 8, "filters": [], "permissions": [],
                                  "permissionSets": [["SPOT"]], "isMarginTradingAllowed": False})
    assert contract_of_market(market) == Contract("spot", 1.0)


# ----- the venue's own minimum notional --------------------------------------------------------------
def _spot_market(filters: list[dict[str, object]]) -> dict[str, object]:
    client = ccxt.binance()
    client.options.update(crossMarginPairsData=[], isolatedMarginPairsData=[])
    return client.parse_market({"symbol": "BTCUSDT", "status": "TRADING", "baseAsset": "BTC", "quoteAsset": "USDT",
                                "baseAssetPrecision": 8, "quotePrecision": 8, "filters": filters, "permissions": [],
                                "permissionSets": [["SPOT"]], "isMarginTradingAllowed": False})


def test_the_venues_minimum_notional_is_ccxts_parse_of_each_binance_markets_filter(fake: FakeBinanceUsdm) -> None:
    """ccxt 4.5.90 fills ``limits.cost.min`` from USDⓈ-M's ``MIN_NOTIONAL`` (``notional``) and spot's ``NOTIONAL`` or
    older ``MIN_NOTIONAL`` (``minNotional``); COIN-M's exchangeInfo has no such filter (contracts are USD-sized), so
    it is None there, as in a market without ``limits`` or with a zero."""
    usdm = {s["symbol"]: s for s in fake._exchange_info()["symbols"]}
    assert min_notional_of_market(ccxt.binanceusdm().parse_market(usdm["BTCUSDT"])) == 100.0
    assert min_notional_of_market(ccxt.binanceusdm().parse_market(usdm["BNBUSDT"])) == 5.0
    coin_m = _coin_m_entry(fake)
    coin_m["filters"] = [f for f in coin_m["filters"] if f["filterType"] != "MIN_NOTIONAL"]  # type: ignore[attr-defined]
    market = ccxt.binancecoinm().parse_market(coin_m)
    assert market["limits"]["cost"]["min"] is None and min_notional_of_market(market) is None
    notional = {"filterType": "NOTIONAL", "minNotional": "5.00000000", "applyMinToMarket": True,
                "maxNotional": "9000000.00000000", "applyMaxToMarket": False, "avgPriceMins": 5}
    assert min_notional_of_market(_spot_market([notional])) == 5.0
    assert min_notional_of_market(_spot_market([{"filterType": "MIN_NOTIONAL", "minNotional": "10.00000000",
                                                 "applyToMarket": True, "avgPriceMins": 5}])) == 10.0
    assert min_notional_of_market(_spot_market([])) is None
    assert min_notional_of_market({"id": "X"}) is None
    assert min_notional_of_market({"limits": {"cost": {"min": 0.0}}}) is None


def test_floors_under_the_venues_minimums_are_refused_in_one_line_naming_each_symbol(connect: Connect) -> None:
    """The start-up check of the live engine on the venue's loaded markets: BTCUSDT's own floor 20 under 100, and the
    default 2 under BNBUSDT's 5, in one line; BTCUSDC's own 100 over its 5 is not named."""
    client = connect().client
    bundle = load_config()
    spec = Instrument(tick_size=0.1, qty_step=0.001)
    traded = {symbol: spec for symbol in ("BTCUSDT", "BTCUSDC", "BNBUSDT")}
    executor = msgspec.structs.replace(bundle.executor, instruments=traded)
    floors = msgspec.structs.replace(bundle.risk.min_notional, default_usd=2.0,
                                     per_symbol_usd={"BTCUSDT": 20.0, "BTCUSDC": 100.0})
    config = msgspec.structs.replace(bundle, executor=executor,
                                     risk=msgspec.structs.replace(bundle.risk, min_notional=floors))
    minimums = venue_minimums(client, config)
    assert {s: (m.market, m.quote, m.notional, m.rejected_as) for s, m in minimums.items()} == {
        "BTCUSDT": ("BTC/USDT:USDT", "USDT", 100.0, "-4164"), "BTCUSDC": ("BTC/USDC:USDC", "USDC", 5.0, "-4164"),
        "BNBUSDT": ("BNB/USDT:USDT", "USDT", 5.0, "-4164")}
    with pytest.raises(FloorUnderVenueMinimum) as refused:
        refuse_floors_under_venue(client, config)
    assert str(refused.value) == (
        "risk_limits.json min_notional.default_usd is 2 USD for BNBUSDT, under binanceusdm's minimum notional 5 USDT "
        "for BNB/USDT:USDT: add min_notional.per_symbol_usd.BNBUSDT of at least 5 (or raise default_usd) (opening "
        "orders under it are rejected by the venue, -4164); risk_limits.json min_notional.per_symbol_usd.BTCUSDT is "
        "20 USD, under binanceusdm's minimum notional 100 USDT for BTC/USDT:USDT: set it to at least 100 (opening "
        "orders under it are rejected by the venue, -4164)")
    floors = msgspec.structs.replace(floors, default_usd=5.0, per_symbol_usd={"BTCUSDT": 100.0})
    refuse_floors_under_venue(client, msgspec.structs.replace(config, risk=msgspec.structs.replace(
        bundle.risk, min_notional=floors)))  # at the venue's minimums: nothing refused


@pytest.mark.parametrize(
    "change, message",
    [
        ({"contractSize": None}, "no contractSize"),
        ({"type": "option", "option": True}, "neither spot nor"),
        ({"contract": False}, "neither spot nor"),
        ({"linear": False, "inverse": False, "settle": "ETH"}, "neither its quote"),
    ],
)
def test_markets_without_a_usable_contract_spec_are_venue_errors(
    fake: FakeBinanceUsdm, change: dict[str, object], message: str
) -> None:
    market = {**ccxt.binancecoinm().parse_market(_coin_m_entry(fake)), **change}
    with pytest.raises(VenueError, match=message):
        contract_of_market(market)


def test_price_tick_is_exact_in_both_ccxt_precision_modes_and_refuses_the_rest() -> None:
    market = {"id": "BTCUSDT", "precision": {"price": 0.1}}
    assert price_tick(market, ccxt.TICK_SIZE) == Decimal("0.1")
    assert price_tick({"id": "X", "precision": {"price": 3}}, ccxt.DECIMAL_PLACES) == Decimal("0.001")
    with pytest.raises(VenueError, match="no price precision"):
        price_tick({"id": "X", "precision": {"price": None}}, ccxt.TICK_SIZE)
    with pytest.raises(VenueError, match="unsupported ccxt precision mode"):
        price_tick(market, ccxt.SIGNIFICANT_DIGITS)
