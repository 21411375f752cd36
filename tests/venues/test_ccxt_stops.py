"""Protective closePosition stops through ccxt against the local Binance USDⓈ-M fake (real signing and parsing):
what goes on the wire, the trigger closing the leg, queries, cancels and the mapped errors, through the executor's
blocking ``LoopVenue`` over the ccxt.pro venue (``tests.venues.ccxt_support``)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from router_tuner.executor.engine.live import LoopVenue
from router_tuner.router.venue import InvalidOrder, OrderNotFound, StopRequest, StopWouldTrigger, VenueError
from router_tuner.router.venues.ccxt.parse import stop_state
from tests.fakes.binance_usdm import ALGO_ORDER_PATH, FakeBinanceUsdm, Stall
from tests.venues.ccxt_support import STALL_S, Connect


def stop(cid: str, symbol: str = "BTCUSDT", kind: str = "stop_market", side: str = "sell", trigger: float = 59000.0,
         position_side: str = "BOTH", working_type: str = "CONTRACT_PRICE") -> StopRequest:
    return StopRequest(client_order_id=cid, symbol=symbol, kind=kind, side=side,  # type: ignore[arg-type]
                       position_side=position_side, trigger_price=trigger,  # type: ignore[arg-type]
                       working_type=working_type)  # type: ignore[arg-type]


def algo_posts(fake: FakeBinanceUsdm) -> list[dict[str, str]]:
    with fake.state.lock:
        return [p for m, path, p in fake.state.requests if m == "POST" and path == ALGO_ORDER_PATH]


@pytest.mark.parametrize("symbol", ["BTCUSDT", "BTCUSDC"])  # every quote in config, USDC included
def test_a_stop_is_sent_as_a_close_all_algo_order_and_closes_the_leg_when_it_triggers(
        fake: FakeBinanceUsdm, venue: LoopVenue, symbol: str) -> None:
    fake.set_position(symbol, "BOTH", "0.004")
    working = venue.place_stop(stop("sl-1", symbol=symbol))
    assert working.status == "working" and working.fills == () and working.trigger_price == 59000.0
    (sent,) = algo_posts(fake)
    assert sent["algoType"] == "CONDITIONAL" and sent["type"] == "STOP_MARKET" and sent["closePosition"] == "true"
    assert sent["clientAlgoId"] == "sl-1" and Decimal(sent["triggerPrice"]) == Decimal("59000")
    assert "quantity" not in sent and "reduceOnly" not in sent and sent["workingType"] == "CONTRACT_PRICE"
    assert [s.client_order_id for s in venue.open_stops(symbol)] == ["sl-1"] and venue.open_orders(symbol) == ()
    fake.set_book(symbol, "58990.0", "1.0", "58990.1", "1.0")  # mid 58990.05 <= 59000: triggers
    done = venue.fetch_stop(symbol, "sl-1")
    assert done.status == "triggered" and done.triggered_ts_ns is not None
    (fill,) = done.fills
    assert (fill.client_order_id, fill.qty, fill.price, fill.liquidity) == ("sl-1", 0.004, 58990.0, "taker")
    assert fill.fee_usd == pytest.approx(0.004 * 58990.0 * 0.0005)
    assert venue.positions(symbol) == {"BOTH": 0.0} and venue.open_stops(None) == ()
    assert venue.cancel_stop(symbol, "sl-1").status == "triggered"  # a cancel after the trigger reports it


def test_a_triggered_stop_whose_fee_nothing_prices_in_the_quote_keeps_its_fill_and_names_the_fee(
        fake: FakeBinanceUsdm, venue: LoopVenue) -> None:
    """The stop's close on BTCUSDC is charged in BNB, which no listed market prices in USDC: reading the triggered stop
    raised "cannot convert fee in BNB to USDC", so a stop that closed the leg could not be journaled."""
    fake.set_position("BTCUSDC", "BOTH", "0.004")
    venue.place_stop(stop("sl-bnb", symbol="BTCUSDC"))
    fake.state.fee_asset_override = "BNB"
    fake.set_book("BTCUSDC", "58990.0", "1.0", "58990.1", "1.0")  # triggers
    done = venue.fetch_stop("BTCUSDC", "sl-bnb")
    (fill,) = done.fills
    (fee,) = done.unpriced_fees
    assert (done.status, fill.qty, fill.fee_usd) == ("triggered", 0.004, 0.0)
    assert (fee.trade_id, fee.currency, fee.quote) == (fill.trade_id, "BNB", "USDC") and fee.amount > 0


def test_hedge_mode_take_profit_names_the_leg_and_leaves_the_other(fake: FakeBinanceUsdm, connect: Connect) -> None:
    fake.state.hedge_mode = True
    fake.set_position("BTCUSDT", "SHORT", "-0.003")
    fake.set_position("BTCUSDT", "LONG", "0.002")
    venue = connect().venue
    venue.place_stop(stop("tp-s", kind="take_profit_market", side="buy", trigger=59500.0,
                          position_side="SHORT", working_type="MARK_PRICE"))
    (sent,) = algo_posts(fake)
    assert (sent["type"], sent["positionSide"]) == ("TAKE_PROFIT_MARKET", "SHORT")
    assert sent["workingType"] == "MARK_PRICE"
    fake.set_mark_price("BTCUSDT", "60000")
    fake.set_book("BTCUSDT", "59400.0", "1", "59400.1", "1")  # the mid moves, the mark does not
    assert venue.fetch_stop("BTCUSDT", "tp-s").status == "working"
    fake.set_mark_price("BTCUSDT", "59450")
    assert venue.fetch_stop("BTCUSDT", "tp-s").status == "triggered"
    assert venue.positions("BTCUSDT") == {"LONG": 0.002, "SHORT": 0.0}
    with pytest.raises(InvalidOrder, match="needs side sell"):  # refused before sending
        venue.place_stop(stop("bad", side="buy", position_side="LONG", trigger=58000.0))
    with pytest.raises(InvalidOrder, match="hedge mode"):
        venue.place_stop(stop("bad2"))
    assert len(algo_posts(fake)) == 1


@pytest.mark.parametrize(
    ("request_", "message"),
    [
        (stop(""), "client_order_id is required"),
        (stop("s-nan", trigger=float("nan")), "s-nan: trigger_price must be finite and > 0, got nan"),
        (stop("s-neg", trigger=-1.0), "s-neg: trigger_price must be finite and > 0, got -1.0"),
        (stop("s-wt", working_type="INDEX_PRICE"), "s-wt: working_type must be CONTRACT_PRICE or MARK_PRICE"),
    ],
)
def test_a_stop_the_venue_could_not_take_is_refused_before_sending(
    fake: FakeBinanceUsdm, venue: LoopVenue, request_: StopRequest, message: str
) -> None:
    with pytest.raises(InvalidOrder, match=message):
        venue.place_stop(request_)
    assert algo_posts(fake) == []


def test_a_stop_already_met_is_mapped_to_stop_would_trigger(fake: FakeBinanceUsdm, venue: LoopVenue) -> None:
    fake.set_position("BTCUSDT", "BOTH", "0.004")
    with pytest.raises(StopWouldTrigger, match="-2021"):
        venue.place_stop(stop("late", trigger=60500.0))  # a sell stop above the last price
    with pytest.raises(StopWouldTrigger):
        venue.place_stop(stop("tp-late", kind="take_profit_market", trigger=59000.0))


def test_cancel_ends_a_working_stop_and_unknown_stops_are_not_found(fake: FakeBinanceUsdm, venue: LoopVenue) -> None:
    fake.set_position("BTCUSDT", "BOTH", "0.004")
    venue.place_stop(stop("sl-c"))
    assert venue.cancel_stop("BTCUSDT", "sl-c").status == "canceled"
    fake.set_book("BTCUSDT", "58000.0", "1", "58000.1", "1")
    assert venue.fetch_stop("BTCUSDT", "sl-c").status == "canceled"
    assert venue.positions("BTCUSDT") == {"BOTH": 0.004}
    with pytest.raises(OrderNotFound):
        venue.fetch_stop("BTCUSDT", "nope")


def test_a_stop_triggering_on_a_flat_leg_expires(fake: FakeBinanceUsdm, venue: LoopVenue) -> None:
    fake.set_position("BTCUSDT", "BOTH", "0.004")
    venue.place_stop(stop("sl-e"))
    fake.set_position("BTCUSDT", "BOTH", "0")
    fake.set_book("BTCUSDT", "58000.0", "1", "58000.1", "1")
    state = venue.fetch_stop("BTCUSDT", "sl-e")
    assert state.status == "expired" and state.fills == ()


def test_the_fake_enforces_binances_close_all_rules(fake: FakeBinanceUsdm, connect: Connect) -> None:
    """What a wrong adapter would send: quantity or reduceOnly next to closePosition, the opening side."""
    fake.set_position("BTCUSDT", "BOTH", "0.004")
    live = connect()
    exchange = live.client.exchange  # the raw ccxt.pro client, to send what our adapter never does
    base = {"clientAlgoId": "raw", "stopLossPrice": "59000", "closePosition": True}
    with pytest.raises(Exception, match="-4137"):
        live.loop.call(exchange.create_order("BTC/USDT:USDT", "market", "sell", 0.004, None,
                                             {**base, "quantity": "0.004"}))
    with pytest.raises(Exception, match="-1106"):
        live.loop.call(exchange.create_order("BTC/USDT:USDT", "market", "sell", None, None,
                                             {**base, "reduceOnly": "true"}))
    fake.state.hedge_mode = True
    with pytest.raises(Exception, match="-2022"):  # close-all on the opening side of a hedge leg
        live.loop.call(exchange.create_order("BTC/USDT:USDT", "market", "buy", None, None,
                                             {**base, "positionSide": "LONG", "stopLossPrice": "61000"}))
    assert algo_posts(fake) and not fake.state.algo_orders
    assert Decimal(fake.state.positions[("BTCUSDT", "BOTH")]) == Decimal("0.004")


def test_a_stop_send_that_timed_out_after_the_venue_took_it_is_found_not_resent(
        fake: FakeBinanceUsdm, venue: LoopVenue) -> None:
    fake.set_position("BTCUSDT", "BOTH", "0.004")
    fake.fail_next("POST", ALGO_ORDER_PATH, Stall(seconds=STALL_S, create_first=True))
    state = venue.place_stop(stop("sl-t"))
    assert state.status == "working" and state.client_order_id == "sl-t" and len(algo_posts(fake)) == 1


def test_algo_orders_the_router_did_not_place_are_errors_not_guesses() -> None:
    info = {"clientAlgoId": "a", "algoStatus": "NEW", "orderType": "STOP_MARKET", "side": "SELL",
            "positionSide": "BOTH", "triggerPrice": "59000", "triggerTime": 0}
    assert stop_state(info, "BTCUSDT", "a", ()).status == "working"
    with pytest.raises(VenueError, match="asked 'b'"):
        stop_state(info, "BTCUSDT", "b", ())
    with pytest.raises(VenueError, match="unknown algoStatus 'PAUSED'"):
        stop_state({**info, "algoStatus": "PAUSED"}, "BTCUSDT", "a", ())
    with pytest.raises(VenueError, match="not a market stop"):
        stop_state({**info, "orderType": "STOP"}, "BTCUSDT", "a", ())
