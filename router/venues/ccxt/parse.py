"""Conversion of ccxt's unified market, order, trade and position structures into ``Contract``,
``OrderState``, ``Fill`` and amounts.

Pure functions: the venue fetches, these translate. Anything the router relies on that ccxt left empty
(a status, a fee, a maker/taker flag) is an error here, never a guessed default.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from decimal import Decimal
from typing import Any

import ccxt

from router_tuner.router.contract import Contract
from router_tuner.router.events import Fill, Liquidity, PositionSide
from router_tuner.router.venue import (
    OrderState,
    OrderStatus,
    StopKind,
    StopState,
    StopStatus,
    UnpricedFee,
    VenueError,
)

_CCXT_STATUS: Mapping[str, OrderStatus] = {
    "closed": "filled",
    "canceled": "canceled",
    "expired": "expired",
    "rejected": "rejected",
}

FeeToQuote = Callable[[str, float, float], float]
"""(fee currency, fee amount, fill price) -> fee in the market's quote currency (0 for one that cannot be stated in
it: the caller names it, ``router.venue.UnpricedFee``)."""


def contract_of_market(market: Mapping[str, Any]) -> Contract:
    """The contract spec of a ccxt unified market: ``spot`` (size 1), or ``linear``/``inverse`` perps and
    futures with ccxt's ``contractSize`` (Binance USDⓈ-M: 1 base unit; COIN-M: USD per contract).

    A market that is neither (an option, a quanto contract) or a contract without a size raises
    ``VenueError``: the router must know what a quantity is worth before it sends one.
    """
    market_id = market.get("id")
    if market.get("spot"):
        return Contract("spot", 1.0)
    if not market.get("contract") or market.get("option"):
        raise VenueError(f"{market_id}: market type {market.get('type')!r} is neither spot nor a linear or "
                         f"inverse contract; no contract spec")
    size = market.get("contractSize")
    if size is None:
        raise VenueError(f"{market_id}: the venue publishes no contractSize for this contract")
    if market.get("linear") and not market.get("inverse"):
        return Contract("linear", float(size))
    if market.get("inverse") and not market.get("linear"):
        return Contract("inverse", float(size))
    raise VenueError(f"{market_id}: contract settles in {market.get('settle')!r}, neither its quote "
                     f"{market.get('quote')!r} (linear) nor its base {market.get('base')!r} (inverse)")


def min_notional_of_market(market: Mapping[str, Any]) -> float | None:
    """The venue's own minimum notional of an opening order on ``market``, in its quote: ccxt's ``limits.cost.min``.

    ccxt's Binance parser fills it from the exchangeInfo filters: USDⓈ-M's ``MIN_NOTIONAL`` (``notional``, e.g.
    100 on BTCUSDT, 5 on most), spot's ``NOTIONAL`` or ``MIN_NOTIONAL`` (``minNotional``). COIN-M contracts are
    sized in USD per contract and publish no such filter: ``None`` then, as for a missing, zero or non-finite
    value (no minimum to compare with; ``limits`` itself may be absent from a hand-built market).
    """
    limits = market.get("limits") or {}
    cost = limits.get("cost") or {}
    value = cost.get("min")
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
        return None
    return float(value)


def price_tick(market: Mapping[str, Any], precision_mode: int) -> Decimal:
    """The market's price tick, exact: ccxt states it as a tick (``TICK_SIZE``) or a number of decimals.

    ``VenueError`` when the market publishes no price precision or the exchange uses another mode.
    """
    precision = market["precision"]["price"]
    if precision is None:
        raise VenueError(f"{market['id']}: venue publishes no price precision")
    if precision_mode == ccxt.TICK_SIZE:
        return Decimal(str(precision))
    if precision_mode == ccxt.DECIMAL_PLACES:
        return Decimal(1).scaleb(-int(precision))
    raise VenueError(f"{market['id']}: unsupported ccxt precision mode {precision_mode}")


def order_status(order: Mapping[str, Any]) -> OrderStatus:
    """ccxt's ``open`` covers both resting and partly filled orders; ``filled`` tells them apart."""
    status = order.get("status")
    if status == "open":
        return "partially_filled" if (order.get("filled") or 0.0) > 0.0 else "open"
    if status in _CCXT_STATUS:
        return _CCXT_STATUS[status]
    raise VenueError(f"order {order.get('clientOrderId')!r} has unknown status {status!r}")


def fill_from_trade(trade: Mapping[str, Any], client_order_id: str, fee_to_quote: FeeToQuote) -> Fill:
    """One ccxt trade as a ``Fill``: fee converted to quote, signed (a rebate is negative)."""
    liquidity: Liquidity
    if trade.get("takerOrMaker") == "maker":
        liquidity = "maker"
    elif trade.get("takerOrMaker") == "taker":
        liquidity = "taker"
    else:
        raise VenueError(f"trade {trade.get('id')!r} does not say maker or taker")
    fee = trade.get("fee")
    if not fee or fee.get("cost") is None or not fee.get("currency"):
        raise VenueError(f"trade {trade.get('id')!r} has no fee")
    price = float(trade["price"])
    timestamp_ms = trade.get("timestamp")
    if timestamp_ms is None:
        raise VenueError(f"trade {trade.get('id')!r} has no timestamp")
    return Fill(
        trade_id=str(trade["id"]),
        client_order_id=client_order_id,
        price=price,
        qty=float(trade["amount"]),
        fee_usd=fee_to_quote(str(fee["currency"]), float(fee["cost"]), price),
        liquidity=liquidity,
        ts_ns=int(timestamp_ms) * 1_000_000,
    )


def order_state(
    order: Mapping[str, Any], symbol: str, client_order_id: str, fills: tuple[Fill, ...],
    unpriced_fees: tuple[UnpricedFee, ...] = (),
) -> OrderState:
    """The venue's view of one order under the router's symbol and id (checked against ccxt's); ``unpriced_fees``
    are the fees of ``fills`` not stated in the quote (``VenueCore.fills_of_trades``)."""
    reported_id = order.get("clientOrderId")
    if reported_id is not None and reported_id != client_order_id:
        raise VenueError(f"venue answered for client order id {reported_id!r}, asked {client_order_id!r}")
    amount = order.get("amount")
    if amount is None:
        raise VenueError(f"order {client_order_id!r} has no amount")
    price = order.get("price")
    return OrderState(
        client_order_id=client_order_id,
        symbol=symbol,
        status=order_status(order),
        qty=float(amount),
        filled_qty=float(order.get("filled") or 0.0),
        price=float(price) if order.get("type") == "limit" and price is not None else None,
        fills=fills,
        unpriced_fees=unpriced_fees,
    )


def position_amounts(
    positions: Iterable[Mapping[str, Any]], symbol: str, unified_symbol: str, hedged: bool
) -> dict[PositionSide, float]:
    """Signed amounts of one symbol by position side, as ``SimVenue.positions`` reports them.

    ``{"BOTH": amount}`` for a one-way account, ``{"LONG": >= 0, "SHORT": <= 0}`` for a hedge-mode one;
    a side the venue does not list is flat. Amounts are ccxt ``contracts`` (the order amount unit), signed
    by ccxt's ``side``. Rows are picked by ccxt's ``unified_symbol``; errors name the market id ``symbol``.
    A non-flat row that contradicts the account's position mode, has no side, or repeats a leg is an
    error: reconciliation must not trade on a position it cannot place.
    """
    sides: tuple[PositionSide, ...] = ("LONG", "SHORT") if hedged else ("BOTH",)
    amounts: dict[PositionSide, float] = dict.fromkeys(sides, 0.0)
    seen: set[PositionSide] = set()
    for position in positions:
        if position.get("symbol") != unified_symbol:
            continue
        contracts = position.get("contracts")
        if contracts is None:
            raise VenueError(f"{symbol}: position without a contracts amount: {position.get('info')!r}")
        if float(contracts) == 0.0:
            continue  # flat rows carry no side (and a hedge account also lists its unused BOTH row)
        side = position.get("side")
        if side not in ("long", "short"):
            raise VenueError(f"{symbol}: open position of {contracts} contracts has side {side!r}")
        if bool(position.get("hedged")) != hedged:
            raise VenueError(
                f"{symbol}: open {side} position is {'hedge' if position.get('hedged') else 'one-way'}"
                f" but the account was {'hedge' if hedged else 'one-way'} mode at connection"
            )
        leg: PositionSide = ("LONG" if side == "long" else "SHORT") if hedged else "BOTH"
        if leg in seen:
            raise VenueError(f"{symbol}: the venue reported the {leg} position twice")
        seen.add(leg)
        amounts[leg] = float(contracts) if side == "long" else -float(contracts)
    return amounts


_ALGO_STATUS: Mapping[str, StopStatus] = {
    "NEW": "working",
    "TRIGGERING": "working",  # forwarded to the matching engine, its order not placed yet: ask again
    "TRIGGERED": "triggered",
    "FINISHED": "triggered",
    "CANCELED": "canceled",
    "EXPIRED": "expired",
    "REJECTED": "rejected",
}
_STOP_KINDS: Mapping[str, StopKind] = {"STOP_MARKET": "stop_market", "TAKE_PROFIT_MARKET": "take_profit_market"}


def actual_order_id(info: Mapping[str, Any]) -> str | None:
    """The id of the market order a triggered conditional order placed (Binance ``actualOrderId``), if any."""
    order_id = info.get("actualOrderId")
    return str(order_id) if order_id not in (None, "", 0, "0") else None


def stop_state(info: Mapping[str, Any], symbol: str, client_order_id: str, fills: tuple[Fill, ...],
               unpriced_fees: tuple[UnpricedFee, ...] = ()) -> StopState:
    """A Binance algo-service order (ccxt's raw ``info``) as a ``StopState`` under the router's id.

    ``triggered_ts_ns`` is the venue's ``triggerTime`` (0 until it triggers). An order type or status the
    router does not place is an error, never a guess.
    """
    reported = info.get("clientAlgoId")
    if reported is not None and reported != client_order_id:
        raise VenueError(f"venue answered for client algo id {reported!r}, asked {client_order_id!r}")
    status = _ALGO_STATUS.get(str(info.get("algoStatus")))
    if status is None:
        raise VenueError(f"stop {client_order_id!r} has unknown algoStatus {info.get('algoStatus')!r}")
    kind = _STOP_KINDS.get(str(info.get("orderType")))
    if kind is None:
        raise VenueError(f"stop {client_order_id!r} has order type {info.get('orderType')!r}, not a market stop")
    trigger_ms = int(info.get("triggerTime") or 0)
    return StopState(client_order_id=client_order_id, symbol=symbol, kind=kind,
                     side="buy" if info.get("side") == "BUY" else "sell",
                     position_side=info.get("positionSide") or "BOTH", trigger_price=float(info["triggerPrice"]),
                     status=status, triggered_ts_ns=trigger_ms * 1_000_000 if trigger_ms else None, fills=fills,
                     unpriced_fees=unpriced_fees)
