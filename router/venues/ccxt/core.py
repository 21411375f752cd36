"""The live venue's logic, free of I/O: what to ask the exchange, and what its answers mean.

Every operation is a generator of steps: it yields an ``ExchangeCall`` (a ccxt method by name and its
arguments), receives the answer, or has the mapped ``VenueError`` thrown in at the ``yield``. The asyncio
venue (``router.venues.ccxt.aio``) awaits them on ``ccxt.pro.<id>``. Rate-limit back-off is decided here too
(``retry_wait_s``); only the waiting itself is the driver's.

What it guarantees the router:
- one client order id per order, ever: after a timeout the id is looked up, and only if the venue has
  no such order is the same request resent, once, with the same id, and only an order that can rest (GTC):
  the venue refuses a second live order under one id (Binance -4116) but not one whose first copy already
  ended, and its order query can lag its matching engine, so an IOC order that is not found is not resent;
- rate-limit answers are waited out with bounded exponential back-off (``Retry-After`` honoured);
- prices are rounded away from the touch (buy down, sell up) to the tick, amounts truncated to the
  step, both as exact strings through ccxt's precision helpers.
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Generator, Mapping
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from typing import Any, NamedTuple, TypeAlias, TypeVar

import ccxt

from router_tuner.router.contract import ContractSpec
from router_tuner.router.events import Fill, PositionSide
from router_tuner.router.venue import (
    InvalidOrder,
    OrderNotFound,
    OrderRequest,
    OrderState,
    RateLimited,
    ReduceOnlyRejected,
    StopRequest,
    StopState,
    TopOfBook,
    UnpricedFee,
    VenueError,
    VenueTimeout,
    VenueUnavailable,
    check_time_in_force,
)
from router_tuner.router.venues.ccxt.config import CcxtVenueConfig
from router_tuner.router.venues.ccxt.errors import is_rate_limit, map_ccxt_error, retry_after_s
from router_tuner.router.venues.ccxt.parse import (
    actual_order_id,
    contract_of_market,
    fill_from_trade,
    order_state,
    position_amounts,
    price_tick,
    stop_state,
)
from router_tuner.router.venues.ccxt.quirks import DuplicateClientOrderId, ExchangeQuirks
from router_tuner.router.venues.ccxt.redact import SecretRedactor

T = TypeVar("T")
logger = logging.getLogger(f"{__package__}.venue")  # the ccxt venue's one log name, kept across its modules

OUTCOME_UNKNOWN = (VenueTimeout, VenueUnavailable)


@dataclass(frozen=True, slots=True)
class ExchangeCall:
    """One ccxt client call: ``getattr(exchange, method)(*args)`` (awaited on an async client)."""

    method: str
    args: tuple[Any, ...]


Steps: TypeAlias = Generator[ExchangeCall, Any, T]


def call(method: str, *args: Any) -> ExchangeCall:
    return ExchangeCall(method, args)


_TRANSIENT: tuple[type[VenueError], ...] = (VenueTimeout, VenueUnavailable, RateLimited)


@dataclass(frozen=True, slots=True)
class NoFeeRate:
    """A fee asset nothing listed prices in the quote, and why (``VenueCore._fee_rate``)."""

    reason: str


class PricedFills(NamedTuple):
    """An order's fills with their fees in the quote, and the fees that could not be (``UnpricedFee``)."""

    fills: tuple[Fill, ...]
    unpriced: tuple[UnpricedFee, ...]


NO_FILLS = PricedFills((), ())


class VenueCore:
    """Markets, position mode, request building and parsing of one exchange client; I/O only as steps.

    ``exchange`` is used directly only for what needs no network (market lookup, precision helpers, the
    last response's headers); every call that does is a step for the driver to run.
    """

    def __init__(self, config: CcxtVenueConfig, quirks: ExchangeQuirks, exchange: Any,
                 redactor: SecretRedactor, name: str) -> None:
        self.config = config
        self.quirks = quirks
        self.exchange = exchange
        self.redactor = redactor
        self.name = name
        self.markets: dict[str, Mapping[str, Any]] = {}
        self.hedged = False

    # ----- connection ------------------------------------------------------------------------------
    def connect(self) -> Steps[None]:
        """Load the markets and the account's position mode: every order's parameters depend on both."""
        if self.exchange.precisionMode not in (ccxt.TICK_SIZE, ccxt.DECIMAL_PLACES):
            raise ValueError(
                f"{self.config.exchange_id}: unsupported ccxt precision mode {self.exchange.precisionMode}"
            )
        yield call("load_markets")
        self.markets = index_markets(self.exchange.markets)
        mode = yield call("fetch_position_mode")
        self.hedged = bool(mode["hedged"])

    def retry_wait_s(self, exc: ccxt.BaseError, attempt: int) -> float:
        """How long to wait before retrying ``exc`` (a rate limit within budget); else raises it mapped."""
        cfg = self.config
        hint = (
            retry_after_s(self.exchange.last_response_headers, self.quirks.retry_after_header)
            if is_rate_limit(exc)
            else None
        )
        mapped = map_ccxt_error(exc, self.quirks, self.redactor, hint)
        if not isinstance(mapped, RateLimited) or attempt == cfg.rate_limit_max_retries:
            raise mapped from None
        if hint is not None and hint > cfg.retry_after_max_s:
            raise mapped from None
        backoff_s = min(cfg.backoff_initial_ms * 2**attempt, cfg.backoff_max_ms) / 1000
        wait_s = max(backoff_s, hint or 0.0)
        logger.warning("%s rate limited (attempt %d), waiting %.3f s: %s", self.name, attempt + 1, wait_s, mapped)
        return wait_s

    # ----- market data -----------------------------------------------------------------------------
    def contract(self, symbol: str) -> ContractSpec:
        return contract_of_market(self.market(symbol))

    def top_of_book(self, symbol: str, now_ns: int) -> Steps[TopOfBook]:
        unified = self.market(symbol)["symbol"]
        if self.config.top_of_book_source == "order_book":
            book = yield call("fetch_order_book", unified, self.config.order_book_depth)
            if not book["bids"] or not book["asks"]:
                raise VenueError(f"{symbol}: empty book side")
            (bid, bid_qty), (ask, ask_qty) = book["bids"][0][:2], book["asks"][0][:2]
            timestamp_ms = book.get("timestamp")
        else:
            tickers = yield call("fetch_bids_asks", [unified])
            ticker = tickers[unified]
            bid, bid_qty, ask, ask_qty = ticker["bid"], ticker["bidVolume"], ticker["ask"], ticker["askVolume"]
            if bid is None or ask is None:
                raise VenueError(f"{symbol}: empty book side")
            timestamp_ms = ticker.get("timestamp")
        check_touch(symbol, bid, bid_qty, ask, ask_qty)
        # The exchange's own time when it gives one; otherwise the moment we received the answer.
        ts_ns = int(timestamp_ms) * 1_000_000 if timestamp_ms is not None else now_ns
        return TopOfBook(symbol, float(bid), float(bid_qty), float(ask), float(ask_qty), ts_ns)

    def positions(self, symbol: str) -> Steps[dict[PositionSide, float]]:
        unified = self.market(symbol)["symbol"]
        rows = yield call("fetch_positions", [unified])
        return position_amounts(rows, symbol, unified, self.hedged)

    # ----- orders ----------------------------------------------------------------------------------
    def place_order(self, request: OrderRequest, now_ns: int) -> Steps[OrderState]:
        market = self.market(request.symbol)
        self.validate(request)
        qty = (yield from self._close_qty(request, market)) if request.close_position else request.qty
        amount = self._amount(market, qty)
        price = self._passive_price(market, request) if request.order_type == "limit" else None
        params = self._order_params(request)
        send = call("create_order", market["symbol"], request.order_type, request.side, amount, price, params)
        logger.info("%s place %s %s %s %s @ %s %s", self.name, request.client_order_id, request.symbol,
                    request.side, amount, price, params)
        try:
            order = yield send
        except OUTCOME_UNKNOWN as err:
            return (yield from self._resolve_unknown_outcome(request, send, err, now_ns))
        return (yield from self._state(order, request.symbol, request.client_order_id, market, now_ns))

    def cancel_order(self, symbol: str, client_order_id: str, now_ns: int) -> Steps[OrderState]:
        market = self.market(symbol)
        params = {self.quirks.query_client_order_id_param: client_order_id}
        try:
            order = yield call("cancel_order", None, market["symbol"], params)
        except OrderNotFound:
            # Already filled or canceled orders are "unknown" to a cancel; their final state still exists.
            return (yield from self.fetch_order(symbol, client_order_id, now_ns))
        return (yield from self._state(order, symbol, client_order_id, market, now_ns))

    def fetch_order(self, symbol: str, client_order_id: str, now_ns: int) -> Steps[OrderState]:
        market = self.market(symbol)
        params = {self.quirks.query_client_order_id_param: client_order_id}
        order = yield call("fetch_order", None, market["symbol"], params)
        return (yield from self._state(order, symbol, client_order_id, market, now_ns))

    def open_orders(self, symbol: str | None, now_ns: int) -> Steps[tuple[OrderState, ...]]:
        unified = self.market(symbol)["symbol"] if symbol is not None else None
        orders = yield call("fetch_open_orders", unified)
        states = []
        for order in orders:
            market = self.exchange.market(order["symbol"])
            # complete=False: this listing is for ids and status (start-up reconciliation, the orders not ours), and
            # each order of ours is settled by ``fetch_order``, which waits for its trades; a partly filled order whose
            # trades lag used to refuse the whole start ("open orders unavailable")
            states.append((yield from self._state(order, market["id"], str(order["clientOrderId"]), market, now_ns,
                                                  complete=False)))
        return tuple(states)

    # ----- protective orders -----------------------------------------------------------------------
    def place_stop(self, request: StopRequest, now_ns: int) -> Steps[StopState]:
        """A closePosition stop in the exchange's conditional-order service (Binance: the algo service).

        No quantity, no reduce-only flag: the exchange closes the whole leg when it triggers. The trigger is
        rounded to the tick (ccxt's precision helper); a send whose outcome is unknown is resolved by id.
        """
        market = self.market(request.symbol)
        cid = request.client_order_id
        if not cid:
            raise InvalidOrder("client_order_id is required")
        if not math.isfinite(request.trigger_price) or request.trigger_price <= 0:
            raise InvalidOrder(f"{cid}: trigger_price must be finite and > 0, got {request.trigger_price}")
        if request.working_type not in ("CONTRACT_PRICE", "MARK_PRICE"):
            raise InvalidOrder(f"{cid}: working_type must be CONTRACT_PRICE or MARK_PRICE, "
                               f"got {request.working_type!r}")
        self.check_position_side(cid, request.side, request.position_side, reducing=True)
        q = self.quirks
        params: dict[str, object] = {
            q.stop_client_order_id_param: cid,
            q.stop_price_params[request.kind]: self.exchange.price_to_precision(market["symbol"],
                                                                                request.trigger_price),
            q.stop_working_type_param: request.working_type,
            **q.stop_params,
        }
        if request.position_side != "BOTH":
            params[q.position_side_param] = request.position_side
        logger.info("%s place stop %s %s %s %s @ %s", self.name, cid, request.symbol, request.kind, request.side,
                    params)
        try:
            order = yield call("create_order", market["symbol"], "market", request.side, None, None, params)
        except OUTCOME_UNKNOWN:
            return (yield from self.fetch_stop(request.symbol, cid, now_ns))
        return (yield from self._stop_state(order["info"], request.symbol, cid, market, now_ns))

    def cancel_stop(self, symbol: str, client_order_id: str, now_ns: int) -> Steps[StopState]:
        market = self.market(symbol)
        params = {self.quirks.stop_client_order_id_param: client_order_id, **self.quirks.stop_query_params}
        with contextlib.suppress(OrderNotFound):  # triggered or already ended: its final state still exists
            yield call("cancel_order", None, market["symbol"], params)
        return (yield from self.fetch_stop(symbol, client_order_id, now_ns))

    def fetch_stop(self, symbol: str, client_order_id: str, now_ns: int) -> Steps[StopState]:
        market = self.market(symbol)
        params = {self.quirks.stop_client_order_id_param: client_order_id, **self.quirks.stop_query_params}
        order = yield call("fetch_order", None, market["symbol"], params)
        return (yield from self._stop_state(order["info"], symbol, client_order_id, market, now_ns))

    def open_stops(self, symbol: str | None, now_ns: int) -> Steps[tuple[StopState, ...]]:
        unified = self.market(symbol)["symbol"] if symbol is not None else None
        orders = yield call("fetch_open_orders", unified, None, None, dict(self.quirks.stop_query_params))
        states = []
        for order in orders:
            market = self.exchange.market(order["symbol"])
            states.append(
                (yield from self._stop_state(order["info"], market["id"], str(order["clientOrderId"]), market, now_ns))
            )
        return tuple(states)

    def _stop_state(
        self, info: Mapping[str, Any], symbol: str, cid: str, market: Mapping[str, Any], now_ns: int
    ) -> Steps[StopState]:
        """The stop under our id; a triggered one's fills are those of the market order it placed."""
        order_id = actual_order_id(info)
        priced = (yield from self.trade_fills(order_id, cid, market, now_ns)) if order_id is not None else NO_FILLS
        return stop_state(info, symbol, cid, priced.fills, priced.unpriced)

    # ----- idempotency -----------------------------------------------------------------------------
    def _resolve_unknown_outcome(
        self, request: OrderRequest, send: ExchangeCall, first: VenueError, now_ns: int
    ) -> Steps[OrderState]:
        """After a timeout: return the order if it exists, else resend a resting order once with the same id."""
        cid = request.client_order_id
        found = yield from self._lookup(request.symbol, cid, now_ns)
        if found is not None:
            logger.warning("%s %s: outcome unknown (%s) but the order exists", self.name, cid, first)
            return found
        if request.time_in_force != "GTC":
            raise VenueTimeout(
                f"{cid}: outcome unknown ({first}) and the order is not found; an IOC order is not resent (if it "
                "was taken, it already ended, and the venue's duplicate check covers live orders only): query it "
                "later"
            ) from None
        logger.warning("%s %s: outcome unknown (%s), order absent: resending once, same id", self.name, cid, first)
        market = self.market(request.symbol)
        try:
            order = yield send
        except DuplicateClientOrderId as duplicate:
            found = yield from self._lookup(request.symbol, cid, now_ns)
            if found is None:  # the venue has the order live, its query does not show it yet
                raise VenueTimeout(
                    f"{cid}: the resend was refused as a duplicate ({duplicate}), so the order exists, but the "
                    "venue's query does not show it yet: query it later"
                ) from None
            return found
        except OUTCOME_UNKNOWN as second:
            found = yield from self._lookup(request.symbol, cid, now_ns)
            if found is not None:
                return found
            raise VenueTimeout(
                f"{cid}: outcome unknown after one resend ({second}); not resending again, query it later"
            ) from None
        return (yield from self._state(order, request.symbol, cid, market, now_ns))

    def _lookup(self, symbol: str, client_order_id: str, now_ns: int) -> Steps[OrderState | None]:
        try:
            return (yield from self.fetch_order(symbol, client_order_id, now_ns))
        except OrderNotFound:
            return None

    # ----- request building ------------------------------------------------------------------------
    def validate(self, request: OrderRequest) -> None:
        cid = request.client_order_id
        if not cid:
            raise InvalidOrder("client_order_id is required")
        if not math.isfinite(request.qty) or (request.qty <= 0 and not request.close_position):
            raise InvalidOrder(f"{cid}: qty must be finite and > 0, got {request.qty}")
        if request.order_type == "limit":
            if request.price is None or not math.isfinite(request.price) or request.price <= 0:
                raise InvalidOrder(f"{cid}: a limit order needs a finite price > 0, got {request.price}")
        elif request.price is not None:
            raise InvalidOrder(f"{cid}: a market order must not carry a price")
        if request.post_only and request.order_type != "limit":
            raise InvalidOrder(f"{cid}: post_only needs a limit order")
        check_time_in_force(request)
        self.check_position_side(cid, request.side, request.position_side,
                                 reducing=request.reduce_only or request.close_position)

    def check_position_side(self, cid: str, side: str, position_side: str, *, reducing: bool) -> None:
        """The account's position mode decides the position side; in hedge mode a reducing side must close it."""
        if self.hedged and position_side == "BOTH":
            raise InvalidOrder(f"{cid}: account is in hedge mode, position_side must be LONG or SHORT")
        if not self.hedged and position_side != "BOTH":
            raise InvalidOrder(f"{cid}: account is in one-way mode, position_side must be BOTH")
        if self.hedged and reducing:
            closing_side = "sell" if position_side == "LONG" else "buy"
            if side != closing_side:
                raise InvalidOrder(f"{cid}: reducing a {position_side} position needs side {closing_side}")

    def _order_params(self, request: OrderRequest) -> dict[str, str]:
        q = self.quirks
        params: dict[str, str] = {q.client_order_id_param: request.client_order_id}
        if request.post_only:
            params.update(q.post_only_params)
        elif request.order_type == "limit":
            params.update(q.time_in_force_params[request.time_in_force])
        if request.position_side != "BOTH":
            params[q.position_side_param] = request.position_side
        reducing = request.reduce_only or request.close_position
        if reducing and (not self.hedged or q.hedge_mode_sends_reduce_only):
            params.update(q.reduce_only_params)
        return params

    def _close_qty(self, request: OrderRequest, market: Mapping[str, Any]) -> Steps[float]:
        """The whole open position on the request's side, read from the venue (the router's may be stale)."""
        positions = yield call("fetch_positions", [market["symbol"]])
        wanted = request.position_side.lower() if self.hedged else None
        for position in positions:
            contracts = position.get("contracts") or 0.0
            if position.get("symbol") != market["symbol"] or contracts <= 0:
                continue
            if wanted is not None and position.get("side") != wanted:
                continue
            closing_side = "sell" if position.get("side") == "long" else "buy"
            if request.side != closing_side:
                raise InvalidOrder(
                    f"{request.client_order_id}: position is {position.get('side')}, closing it needs side "
                    f"{closing_side}"
                )
            return float(contracts)
        raise ReduceOnlyRejected(
            f"{request.client_order_id}: no open {request.position_side} position in {request.symbol}"
        )

    def _amount(self, market: Mapping[str, Any], qty: float) -> str:
        try:
            amount = str(self.exchange.amount_to_precision(market["symbol"], str(qty)))
        except ccxt.InvalidOrder:
            amount = "0"  # ccxt refuses amounts below one step instead of truncating them to zero
        if Decimal(amount) <= 0:
            raise InvalidOrder(f"{market['id']}: qty {qty} truncates to zero at the venue's step")
        return amount

    def _passive_price(self, market: Mapping[str, Any], request: OrderRequest) -> str:
        """Round to the tick away from the touch, so rounding never turns a maker price into a taker one."""
        tick = price_tick(market, self.exchange.precisionMode)
        price = Decimal(str(request.price))
        rounding = ROUND_FLOOR if request.side == "buy" else ROUND_CEILING
        rounded = (price / tick).to_integral_value(rounding=rounding) * tick
        if rounded <= 0:
            raise InvalidOrder(f"{request.client_order_id}: price {request.price} rounds to zero")
        return str(self.exchange.price_to_precision(market["symbol"], format(rounded, "f")))

    # ----- parsing ---------------------------------------------------------------------------------
    def _state(
        self, order: Mapping[str, Any], symbol: str, cid: str, market: Mapping[str, Any], now_ns: int, *,
        complete: bool = True
    ) -> Steps[OrderState]:
        priced = yield from self.fills(order, cid, market, now_ns, complete=complete)
        return order_state(order, symbol, cid, priced.fills, priced.unpriced)

    def fills(
        self, order: Mapping[str, Any], cid: str, market: Mapping[str, Any], now_ns: int, *, complete: bool = True
    ) -> Steps[PricedFills]:
        """The order's fills: its own ``trades`` when they add up to ``filled``, else the venue's trade list.

        Raises ``VenueTimeout`` when the trade list accounts for less than ``filled``: Binance's account trade list
        can lag its order status by a moment, so an order answered filled may have no trade listed yet. Its state
        would then say filled with fewer fills, and the route journaled what the fills add up to (an IOC order the
        venue filled as "unfilled", without an error): the venue held a position the books did not. A timeout is
        what it is, an answer not complete yet, so the reader asks again (a route's read retries on its back-off,
        a place resolves the order by its client id, the settle retries and otherwise halts for the restart). A trade
        the list repeats counts once, as the route's ledger counts it. ``complete`` False returns what is listed."""
        filled = order.get("filled") or 0.0
        if filled <= 0:
            return NO_FILLS
        trades = order.get("trades") or []
        if trades and math.isclose(sum(t["amount"] for t in trades), filled):
            return (yield from self.fills_of_trades(trades, cid, market, now_ns))
        priced = yield from self.trade_fills(str(order["id"]), cid, market, now_ns)
        listed = math.fsum({f.trade_id: f.qty for f in priced.fills}.values())  # a trade listed twice counts once
        if complete and listed < filled and not math.isclose(listed, filled, rel_tol=1e-9, abs_tol=1e-12):
            raise VenueTimeout(f"{cid}: the venue reports {filled:.12g} filled but lists trades for {listed:.12g} "
                               "(its trade list lags its order status): read the order again")
        return priced

    def trade_fills(self, order_id: str, cid: str, market: Mapping[str, Any], now_ns: int) -> Steps[PricedFills]:
        """The fills of exchange order ``order_id``, read from the account's trades, under our id ``cid``."""
        params = {self.quirks.trades_order_id_param: order_id}
        trades = yield call("fetch_my_trades", market["symbol"], None, None, params)
        mine = [t for t in trades if str(t.get("order")) == order_id]
        return (yield from self.fills_of_trades(mine, cid, market, now_ns))

    def fills_of_trades(
        self, trades: list[Mapping[str, Any]], cid: str, market: Mapping[str, Any], now_ns: int
    ) -> Steps[PricedFills]:
        """ccxt trades of one order as fills, in time order, fees in the market's quote currency.

        A fee in an asset nothing here prices in the quote (``_fee_rate``) does not make the fill unreadable: the
        fill is real (the venue's position moved), so it is returned with that fee left out of ``fee_usd`` and
        named in ``unpriced`` for the reader to flag (``OrderState.unpriced_fees``). It used to be a ``VenueError``
        for the whole order, which left a filled order unreadable: the settle halted the run and every restart."""
        quote = market["quote"]
        rates: dict[str, float | NoFeeRate | None] = {}
        for trade in trades:
            currency = (trade.get("fee") or {}).get("currency")
            if currency and currency not in rates:
                rates[currency] = yield from self._fee_rate(market, quote, str(currency), now_ns)

        def fee_to_quote(currency: str, cost: float, price: float) -> float:
            rate = rates[currency]
            if isinstance(rate, NoFeeRate):
                return 0.0
            return cost * price if rate is None else cost * rate

        ordered = sorted(trades, key=lambda t: t["timestamp"])
        fills = tuple(fill_from_trade(t, cid, fee_to_quote) for t in ordered)
        unpriced = []
        for trade in ordered:
            fee = trade["fee"]
            rate = rates[str(fee["currency"])]
            if isinstance(rate, NoFeeRate) and float(fee["cost"]) != 0.0:
                unpriced.append(UnpricedFee(trade_id=str(trade["id"]), amount=float(fee["cost"]),
                                            currency=str(fee["currency"]), quote=quote, reason=rate.reason))
        return PricedFills(fills, tuple(unpriced))

    def _fee_rate(self, market: Mapping[str, Any], quote: str, currency: str,
                  now_ns: int) -> Steps[float | NoFeeRate | None]:
        """Quote per unit of ``currency``: 1 for the quote/settle asset, ``None`` for the base (each fill's own
        price), else the mid of ``currency``'s own market against our quote (e.g. a BNB fee discount), else a cross
        through one asset both are listed against (BNB/USDT with USDC/USDT or USDT/USDC, for a USDC quote).

        ``NoFeeRate`` when no listed market gives it, or its book does not (an empty side, a mid that is not a
        positive price); a transient venue error (timeout, disconnect, rate limit) is raised: the read is retried.
        """
        if currency in (quote, market.get("settle")):
            return 1.0
        if currency == market["base"]:
            return None
        by_pair: dict[tuple[str, str], str] = {}  # one market per pair: a perpetual or spot before a dated future
        for listed in sorted(self.markets.values(), key=lambda m: (m.get("expiry") is not None, m["id"])):
            by_pair.setdefault((listed["base"], listed["quote"]), listed["id"])
        if (currency, quote) in by_pair:
            return (yield from self._mid_or_none(by_pair[(currency, quote)], now_ns))
        for (base, via), fee_market in by_pair.items():
            if base != currency:
                continue
            if (quote, via) in by_pair:  # quote per fee unit = (via per fee unit) / (via per quote unit)
                legs: tuple[tuple[str, bool], ...] = ((fee_market, False), (by_pair[(quote, via)], True))
            elif (via, quote) in by_pair:  # = (via per fee unit) * (quote per via unit)
                legs = ((fee_market, False), (by_pair[(via, quote)], False))
            else:
                continue
            rate = 1.0
            for market_id, inverted in legs:
                mid = yield from self._mid_or_none(market_id, now_ns)
                if isinstance(mid, NoFeeRate):
                    return mid
                rate = rate / mid if inverted else rate * mid
            return rate
        return NoFeeRate(f"no {currency}/{quote} market, nor a cross through an asset both are listed against")

    def _mid_or_none(self, market_id: str, now_ns: int) -> Steps[float | NoFeeRate]:
        """The mid of ``market_id``'s book, or ``NoFeeRate`` saying why not (transient errors are raised)."""
        try:
            book = yield from self.top_of_book(market_id, now_ns)
        except _TRANSIENT:
            raise
        except VenueError as exc:
            return NoFeeRate(f"{market_id} book unreadable: {exc}")
        mid = book.mid
        if not (math.isfinite(mid) and mid > 0):
            return NoFeeRate(f"{market_id} mid is {mid!r}")
        return mid

    # ----- plumbing --------------------------------------------------------------------------------
    def market(self, symbol: str) -> Mapping[str, Any]:
        try:
            return self.markets[symbol]
        except KeyError:
            raise ValueError(f"{self.name}: unknown symbol {symbol!r}") from None


def check_touch(symbol: str, bid: Any, bid_qty: Any, ask: Any, ask_qty: Any) -> None:
    """Refuse a REST touch without a positive finite price and size on each side (``VenueError``).

    Why: an instrument halted or settling can answer its book ticker with a price and a null or zero size. A null
    size was ``float(None)``, a TypeError that stopped ``live`` ("unexpected TypeError", exit 1), and a zero size was
    routed on as a touch; the book stream already does not use such a ticker (``StreamedBook``), so the REST read
    now says the same: the intent is vetoed ``book_unavailable``. A crossed REST touch is still returned: the route
    journals it as ``crossed_or_locked_book``."""
    values = (bid, bid_qty, ask, ask_qty)
    if not all(isinstance(v, (int, float)) and math.isfinite(v) and v > 0 for v in values):
        raise VenueError(f"{symbol}: touch not usable: bid {bid} x {bid_qty}, ask {ask} x {ask_qty} (a side without "
                         "a positive price and size)")


def index_markets(markets: Mapping[str, Mapping[str, Any]]) -> dict[str, Mapping[str, Any]]:
    """Markets by exchange id (``BTCUSDT``): the router's symbols."""
    by_id: dict[str, Mapping[str, Any]] = {}
    for market in markets.values():
        if market["id"] in by_id:
            raise ValueError(f"market id {market['id']!r} is ambiguous on this exchange client")
        by_id[market["id"]] = market
    return by_id
