"""What the live venue makes of the venue's less common answers: an empty book side, fees in another currency,
an order whose embedded trades do not add up, payloads missing what a fill or an order needs, and errors that the
quirks table does not name.

The venue's logic is sans-IO (``router.venues.ccxt.core``): besides the fake exchange end to end, some tests drive
its steps here with answers parsed by ccxt's own Binance parser from the fake's payloads."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import ccxt
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from router_tuner.executor.engine.live import LoopVenue
from router_tuner.router.venue import (
    InsufficientMargin,
    OrderNotFound,
    RateLimited,
    VenueError,
    VenueTimeout,
    VenueUnavailable,
)
from router_tuner.router.venues.ccxt.core import ExchangeCall, Steps, VenueCore
from router_tuner.router.venues.ccxt.errors import map_ccxt_error, retry_after_s
from router_tuner.router.venues.ccxt.parse import fill_from_trade, order_state, order_status
from router_tuner.router.venues.ccxt.quirks import BINANCE_USDM
from router_tuner.router.venues.ccxt.redact import SecretRedactor
from tests.fakes.binance_usdm import DEFAULT_SYMBOLS, FakeBinanceUsdm, SymbolSpec
from tests.venues.ccxt_support import Connect, RecordedSleeps, open_live, request
from tests.venues.stream_support import API_KEY, API_SECRET

NOW_NS = 1_700_000_000_000_000_000


# ----- an empty book side ----------------------------------------------------------------------------
@pytest.mark.parametrize("source", ["order_book", "bids_asks"])
@pytest.mark.parametrize("empty", ["bid", "ask"])
def test_an_empty_book_side_is_a_venue_error_naming_the_symbol(
    fake: FakeBinanceUsdm, connect: Connect, source: str, empty: str
) -> None:
    # /depth lists no level on the empty side; /ticker/bookTicker answers it as zeros, which ccxt reads as None.
    venue = connect(top_of_book_source=source).venue
    bid_qty, ask_qty = ("0", "2.0") if empty == "bid" else ("1.5", "0")
    fake.set_book("BTCUSDT", "60000.0", bid_qty, "60000.1", ask_qty)
    with pytest.raises(VenueError, match="BTCUSDT: empty book side"):
        venue.top_of_book("BTCUSDT")
    fake.set_book("BTCUSDT", "60000.0", "1.5", "60000.1", "2.0")
    assert venue.top_of_book("BTCUSDT").mid == pytest.approx(60000.05)


@pytest.mark.parametrize("qty", [None, "0.000", "-1"])
@pytest.mark.parametrize("side", ["bidQty", "askQty"])
def test_a_book_ticker_with_a_price_but_no_size_on_a_side_is_a_venue_error_naming_the_symbol(
    fake: FakeBinanceUsdm, connect: Connect, qty: str | None, side: str
) -> None:
    """A /ticker/bookTicker answer with a price on a side and its size null, zero or negative (an instrument halted or
    settling; ccxt reads null as None, zero as 0.0): the touch is not usable, as the book stream does not use such a
    ticker (``StreamedBook``), so it is a ``VenueError`` (the intent is vetoed ``book_unavailable``). A null size was
    ``float(None)``: ``live`` stopped with "unexpected TypeError", exit 1; a zero size was routed on as a touch."""
    venue = connect(top_of_book_source="bids_asks").venue
    fake.set_book("BTCUSDT", "60000.0", "1.5", "60000.1", "2.0")

    def book_ticker(params: dict[str, str], _key: str | None) -> Any:
        answer = fake._route("GET", "/fapi/v1/ticker/bookTicker", params)
        return {**answer, side: qty}

    fake.state.extra_routes[("GET", "/fapi/v1/ticker/bookTicker")] = book_ticker
    with pytest.raises(VenueError, match="BTCUSDT: touch not usable"):
        venue.top_of_book("BTCUSDT")
    del fake.state.extra_routes[("GET", "/fapi/v1/ticker/bookTicker")]
    assert venue.top_of_book("BTCUSDT").mid == pytest.approx(60000.05)


# ----- fees in another currency ----------------------------------------------------------------------
def test_a_fee_in_a_currency_nothing_prices_in_the_quote_leaves_the_fill_counted_and_the_fee_named(
    fake: FakeBinanceUsdm, venue: LoopVenue
) -> None:
    """A BNB fee on a USDC-quoted perpetual: the venue lists no BNB/USDC market nor a cross to USDC, so the fee cannot
    be stated in USDC. The whole order was unreadable ("BTCUSDC: cannot convert fee in BNB to USDC: no BNB/USDC
    market"), a filled order included: the settle halted the run, and every restart. The fill counts as reported,
    its fee_usd leaves the BNB out, and the state names it."""
    venue.place_order(request("fee-usdc", symbol="BTCUSDC", price=59980.0))
    fake.state.fee_asset_override = "BNB"
    fake.fill("fee-usdc", "0.002")
    state = venue.fetch_order("BTCUSDC", "fee-usdc")
    (fill,) = state.fills
    assert (state.status, state.filled_qty, fill.qty, fill.fee_usd) == ("filled", 0.002, 0.002, 0.0)
    (fee,) = state.unpriced_fees
    assert (fee.trade_id, fee.currency, fee.quote) == (fill.trade_id, "BNB", "USDC")
    assert fee.amount == pytest.approx(0.002 * 59980.0 * 0.0002 / 500.05, abs=1e-8)  # the fake's BNB at its BNBUSDT mid
    assert fee.describe("fee-usdc") == (
        f"fill {fill.trade_id} of fee-usdc: fee {fee.amount:.12g} BNB not priced in USDC (no BNB/USDC market, nor a "
        "cross through an asset both are listed against), left out of fee_usd")


def test_a_fee_in_a_currency_listed_against_another_quote_is_priced_through_the_cross(
    sleeps: RecordedSleeps
) -> None:
    """With USDC/USDT listed beside BNB/USDT, a BNB fee on BTCUSDC is priced in USDC through USDT (BNB/USDT mid over
    USDC/USDT mid), from markets and books the venue already has: nothing is left unpriced."""
    usdc = SymbolSpec("USDCUSDT", "USDC", "USDT", "0.0001", "1", "5", 4, 0)
    with FakeBinanceUsdm(API_KEY, API_SECRET, symbols=(*DEFAULT_SYMBOLS, usdc)) as fake:
        fake.set_book("BTCUSDC", "59990.0", "1.0", "59990.1", "1.0")
        fake.set_book("BNBUSDT", "500.00", "10", "500.10", "10")
        fake.set_book("USDCUSDT", "0.9990", "1000", "0.9992", "1000")
        live = open_live(fake, sleeps)
        try:
            live.venue.place_order(request("fee-cross", symbol="BTCUSDC", price=59980.0))
            fake.state.fee_asset_override = "BNB"
            fake.fill("fee-cross", "0.002")
            state = live.venue.fetch_order("BTCUSDC", "fee-cross")
            with fake.state.lock:
                (trade,) = fake.state.trades
        finally:
            live.loop.close()
    (fill,) = state.fills
    assert state.unpriced_fees == ()
    assert fill.fee_usd == pytest.approx(float(trade["commission"]) * 500.05 / 0.9991)


def drive(steps: Steps[Any], answers: Mapping[str, Any]) -> tuple[Any, list[ExchangeCall]]:
    """Run ``steps`` to its end, answering each call from ``answers`` by method; the result and the calls made."""
    calls: list[ExchangeCall] = []
    reply: Any = None
    while True:
        try:
            step = steps.send(reply)
        except StopIteration as stop:
            return stop.value, calls
        calls.append(step)
        reply = answers[step.method]


@pytest.fixture()
def core(fake: FakeBinanceUsdm, connect: Connect) -> VenueCore:
    """The connected venue's steps (markets loaded from the fake) with two orders filled on BTCUSDT: one in two
    trades (0.002 then 0.003, maker, fee in USDT), one in a trade charged in BTC."""
    live = connect()
    live.venue.place_order(request("two-trades", qty=0.005))
    fake.fill("two-trades", "0.002")
    fake.fill("two-trades", "0.003")
    live.venue.place_order(request("base-fee", qty=0.002))
    fake.state.fee_asset_override = "BTC"
    fake.fill("base-fee", "0.002")
    return live.client.core


def ccxt_order(fake: FakeBinanceUsdm, core: VenueCore, cid: str) -> dict[str, Any]:
    """The order as ccxt parses the fake's payload, with its trades embedded (as a spot FULL reply carries them)."""
    exchange, market = core.exchange, core.market("BTCUSDT")
    with fake.state.lock:
        order = exchange.parse_order(fake._order_json(fake.state.orders[cid]), market)
        trades = [t for t in fake.state.trades if t["orderId"] == fake.state.orders[cid].order_id]
    order["trades"] = exchange.parse_trades(trades, market)
    return order


def test_embedded_trades_that_add_up_to_filled_are_the_fills_without_a_call(
    fake: FakeBinanceUsdm, core: VenueCore
) -> None:
    order = ccxt_order(fake, core, "two-trades")
    (fills, unpriced), calls = drive(core.fills(order, "two-trades", core.market("BTCUSDT"), NOW_NS), {})
    assert calls == [] and unpriced == ()
    assert [(f.qty, f.price, f.liquidity) for f in fills] == [(0.002, 59999.9, "maker"), (0.003, 59999.9, "maker")]
    assert [f.fee_usd for f in fills] == pytest.approx([0.002 * 59999.9 * 0.0002, 0.003 * 59999.9 * 0.0002])


def test_embedded_trades_short_of_filled_are_replaced_by_the_accounts_trades(
    fake: FakeBinanceUsdm, core: VenueCore
) -> None:
    order = ccxt_order(fake, core, "two-trades")
    all_trades = order["trades"]
    order["trades"] = all_trades[:1]  # a reply that carried the first trade only
    other = ccxt_order(fake, core, "base-fee")["trades"]  # the venue's trade list holds other orders' too
    (fills, unpriced), calls = drive(core.fills(order, "two-trades", core.market("BTCUSDT"), NOW_NS),
                                     {"fetch_my_trades": [*all_trades, *other]})
    assert calls == [ExchangeCall("fetch_my_trades", ("BTC/USDT:USDT", None, None, {"orderId": order["id"]}))]
    assert [f.qty for f in fills] == [0.002, 0.003] and unpriced == ()
    assert {f.client_order_id for f in fills} == {"two-trades"}


def test_a_fee_in_the_base_currency_is_valued_at_the_fills_own_price(fake: FakeBinanceUsdm, core: VenueCore) -> None:
    # Binance spot charges a buyer's fee in the base asset: no market is read, the fill's price converts it.
    order = ccxt_order(fake, core, "base-fee")
    ((trade,),) = (order["trades"],)
    assert trade["fee"]["currency"] == "BTC"
    (fills, unpriced), calls = drive(core.fills(order, "base-fee", core.market("BTCUSDT"), NOW_NS), {})
    assert calls == [] and unpriced == ()
    assert fills[0].fee_usd == pytest.approx(trade["fee"]["cost"] * 59999.9)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lots=st.lists(st.integers(min_value=1, max_value=50), min_size=1, max_size=8), data=st.data())
def test_fills_read_from_a_lagging_or_repeating_trade_list_add_up_to_filled_or_are_asked_again(
    core: VenueCore, lots: list[int], data: st.DataObject
) -> None:
    """An order filled in several trades, read while the account's trade list lags (its latest trades not listed
    yet) and repeats some (a trade listed twice): the fills returned always account for the whole filled quantity,
    each trade once after the route's ledger, else the read raises ``VenueTimeout`` to be asked again. It used to
    return the trades listed, so an order the venue reported filled was journaled with less (or nothing) filled."""
    trades = [{**TRADE, "id": f"t{i}", "order": "42", "amount": lot / 1000, "timestamp": TRADE["timestamp"] + i}
              for i, lot in enumerate(lots)]
    filled = math.fsum(t["amount"] for t in trades)
    shown = data.draw(st.integers(min_value=0, max_value=len(trades)), label="trades listed")
    repeats = data.draw(st.lists(st.sampled_from(trades[:shown]), max_size=3) if shown else st.just([]),
                        label="trades listed twice")
    order = {"id": "42", "clientOrderId": "lag", "filled": filled, "trades": []}
    steps = core.fills(order, "lag", core.market("BTCUSDT"), NOW_NS)
    if shown < len(trades):
        with pytest.raises(VenueTimeout, match="lists trades for"):
            drive(steps, {"fetch_my_trades": [*trades[:shown], *repeats]})
        return
    (fills, _unpriced), _calls = drive(steps, {"fetch_my_trades": [*trades, *repeats]})
    once = {f.trade_id: f.qty for f in fills}
    assert set(once) == {t["id"] for t in trades} and math.isclose(math.fsum(once.values()), filled)


def test_an_order_whose_trade_is_not_listed_yet_is_read_again_but_still_listed_among_the_open_orders(
    fake: FakeBinanceUsdm, venue: LoopVenue
) -> None:
    """A resting order filled in part while the account's trade list lags: reading it raises ``VenueTimeout`` (ask
    again) instead of a state with the fill missing; the open-order listing (start-up reconciliation: ids and status)
    still lists it, as before, rather than refusing the start; once the trade is listed the read has the fill."""
    venue.place_order(request("lagged", price=59980.0, qty=0.003))
    fake.fill("lagged", "0.001")
    fake.lag_trades(2)
    with pytest.raises(VenueTimeout, match=r"lagged: the venue reports 0\.001 filled but lists trades for 0 "):
        venue.fetch_order("BTCUSDT", "lagged")
    (listed,) = venue.open_orders("BTCUSDT")
    assert (listed.client_order_id, listed.status, listed.filled_qty) == ("lagged", "partially_filled", 0.001)
    state = venue.fetch_order("BTCUSDT", "lagged")
    assert [f.qty for f in state.fills] == [0.001] and state.filled_qty == 0.001


# ----- payloads missing what a fill or an order needs ------------------------------------------------
TRADE = {"id": "t1", "price": 60000.0, "amount": 0.002, "timestamp": 1_700_000_000_000, "takerOrMaker": "maker",
         "fee": {"cost": 0.024, "currency": "USDT"}}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"takerOrMaker": None}, "trade 't1' does not say maker or taker"),
        ({"fee": None}, "trade 't1' has no fee"),
        ({"fee": {"cost": None, "currency": "USDT"}}, "trade 't1' has no fee"),
        ({"fee": {"cost": 0.1, "currency": ""}}, "trade 't1' has no fee"),
        ({"timestamp": None}, "trade 't1' has no timestamp"),
    ],
)
def test_a_trade_without_liquidity_fee_or_time_is_a_venue_error(change: dict[str, Any], message: str) -> None:
    with pytest.raises(VenueError, match=message):
        fill_from_trade({**TRADE, **change}, "c1", lambda currency, cost, price: cost)


def test_a_complete_trade_is_a_fill_with_its_fee_converted() -> None:
    fill = fill_from_trade({**TRADE, "takerOrMaker": "taker"}, "c1", lambda currency, cost, price: cost * 2)
    assert (fill.trade_id, fill.client_order_id, fill.liquidity, fill.fee_usd, fill.ts_ns) == (
        "t1", "c1", "taker", 0.048, 1_700_000_000_000 * 1_000_000)


ORDER = {"clientOrderId": "c1", "status": "open", "amount": 0.002, "filled": 0.0, "price": 60000.0}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"clientOrderId": "someone-else"}, "venue answered for client order id 'someone-else', asked 'c1'"),
        ({"amount": None}, "order 'c1' has no amount"),
        ({"status": "triggered"}, "order 'c1' has unknown status 'triggered'"),
    ],
)
def test_an_order_for_another_id_without_amount_or_with_an_unknown_status_is_a_venue_error(
    change: dict[str, Any], message: str
) -> None:
    with pytest.raises(VenueError, match=message):
        order_state({**ORDER, **change}, "BTCUSDT", "c1", ())


@pytest.mark.parametrize(("status", "filled", "ours"), [
    ("open", 0.0, "open"), ("open", 0.001, "partially_filled"), ("closed", 0.002, "filled"),
    ("canceled", 0.0, "canceled"), ("expired", 0.0, "expired"), ("rejected", 0.0, "rejected")])
def test_ccxt_statuses_map_to_the_routers(status: str, filled: float, ours: str) -> None:
    assert order_status({**ORDER, "status": status, "filled": filled}) == ours


# ----- errors the quirks table does not name ---------------------------------------------------------
REDACTOR = SecretRedactor(("key-0123456789", API_SECRET))


@pytest.mark.parametrize(
    ("exc", "error"),
    [
        (ccxt.RequestTimeout("binanceusdm GET https://fapi.binance.com/fapi/v1/order"), VenueTimeout),
        (ccxt.OrderNotFound('binanceusdm {"code":-2026,"msg":"Order was canceled or expired."}'), OrderNotFound),
        (ccxt.InsufficientFunds("binanceusdm Account has insufficient balance for requested action."),
         InsufficientMargin),
        (ccxt.ExchangeNotAvailable("binanceusdm GET https://fapi.binance.com/fapi/v1/order 503"), VenueUnavailable),
        (ccxt.InvalidNonce('binanceusdm {"code":-1021,"msg":"Timestamp for this request is outside of the '
                           'recvWindow."}'), VenueError),
        (ccxt.DDoSProtection('binanceusdm 429 {"code":-1003,"msg":"Too many requests."}'), RateLimited),
    ],
    ids=lambda value: type(value).__name__,
)
def test_ccxt_classes_map_when_no_native_code_is_in_the_quirks_table(
    exc: ccxt.BaseError, error: type[VenueError]
) -> None:
    mapped = map_ccxt_error(exc, BINANCE_USDM, REDACTOR, None)
    assert type(mapped) is error
    assert str(mapped).startswith(f"{type(exc).__name__}: binanceusdm")


def test_a_secret_in_an_error_message_is_masked() -> None:
    mapped = map_ccxt_error(ccxt.ExchangeError(f"binanceusdm signature for {API_SECRET} rejected"), BINANCE_USDM,
                            REDACTOR, None)
    assert API_SECRET not in str(mapped) and "signature for" in str(mapped)


@pytest.mark.parametrize(
    ("headers", "seconds"),
    [
        (None, None),
        ({}, None),
        ({"Content-Type": "application/json"}, None),
        ({"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}, None),  # the HTTP-date form: not a wait we can honour
        ({"Retry-After": "-3"}, None),
        ({"Retry-After": "0"}, 0.0),
        ({"Retry-After": "2.5"}, 2.5),
    ],
)
def test_retry_after_is_a_non_negative_number_of_seconds_or_nothing(
    headers: dict[str, str] | None, seconds: float | None
) -> None:
    assert retry_after_s(headers, "Retry-After") == seconds
