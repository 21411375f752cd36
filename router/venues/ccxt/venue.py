"""The live venue: the ``Venue`` protocol on ccxt's synchronous client, for any exchange in the quirks table.

What it guarantees the router:
- one client order id per order, ever: after a timeout the id is looked up, and only if the venue has
  no such order is the same request resent, once, with the same id;
- rate-limit answers are waited out with bounded exponential back-off (``Retry-After`` honoured);
- prices are rounded away from the touch (buy down, sell up) to the tick, amounts truncated to the
  step, both as exact strings through ccxt's precision helpers;
- the API key and secret come from the environment and never appear in a log record or error text.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import time
from collections.abc import Callable, Mapping
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from typing import Any, TypeVar

import ccxt

from router.contract import ContractSpec
from router.events import Fill, PositionSide
from router.venue import (
    Clock,
    InvalidOrder,
    OrderNotFound,
    OrderRequest,
    OrderState,
    RateLimited,
    ReduceOnlyRejected,
    StopRequest,
    StopState,
    TopOfBook,
    VenueError,
    VenueTimeout,
    VenueUnavailable,
    check_time_in_force,
)
from router.venues.ccxt.config import ApiCredentials, CcxtVenueConfig
from router.venues.ccxt.errors import is_rate_limit, map_ccxt_error, retry_after_s
from router.venues.ccxt.parse import (
    actual_order_id,
    contract_of_market,
    fill_from_trade,
    order_state,
    position_amounts,
    price_tick,
    stop_state,
)
from router.venues.ccxt.quirks import DuplicateClientOrderId, quirks_for
from router.venues.ccxt.redact import SecretRedactor, install_redaction

T = TypeVar("T")
logger = logging.getLogger(__name__)

_OUTCOME_UNKNOWN = (VenueTimeout, VenueUnavailable)


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
        self._config = config
        self._quirks = quirks_for(config.exchange_id)
        self._clock = clock
        self._redactor = SecretRedactor((credentials.api_key, credentials.api_secret))
        self.name = f"ccxt:{config.exchange_id}"
        self._markets: dict[str, Mapping[str, Any]] = {}
        self._hedged: bool
        exchange_class = getattr(ccxt, config.exchange_id, None)
        if exchange_class is None:
            raise ValueError(f"ccxt has no exchange {config.exchange_id!r}")
        self._exchange: ccxt.Exchange = exchange_class(
            {
                "apiKey": credentials.api_key,
                "secret": credentials.api_secret,
                "timeout": config.request_timeout_ms,
                "enableRateLimit": config.ccxt_rate_limiter,
                "options": dict(self._quirks.ccxt_options),
            }
        )
        self._log_filters = [
            (log, install_redaction(log, self._redactor)) for log in (logger, self._exchange.logger)
        ]
        try:
            self._connect(config)
        except BaseException:
            self.close()  # a venue that failed to connect leaves no filters behind
            raise
        logger.info("%s connected: %d markets, hedge mode %s", self.name, len(self._markets), self._hedged)

    def _connect(self, config: CcxtVenueConfig) -> None:
        if config.api_base_url is not None:
            self._repoint_api(config.api_base_url)
        if self._exchange.precisionMode not in (ccxt.TICK_SIZE, ccxt.DECIMAL_PLACES):
            raise ValueError(
                f"{config.exchange_id}: unsupported ccxt precision mode {self._exchange.precisionMode}"
            )
        self._call(self._exchange.load_markets)
        self._markets = self._index_markets(self._exchange.markets)
        mode = self._call(self._exchange.fetch_position_mode)
        self._hedged = bool(mode["hedged"])

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
        return self._hedged

    def close(self) -> None:
        """Detach the log redaction filters this venue installed."""
        for log, log_filter in self._log_filters:
            log.removeFilter(log_filter)
        self._log_filters = []

    # ----- market data -----------------------------------------------------------------------------
    def contract(self, symbol: str) -> ContractSpec:
        """The symbol's contract spec from the exchange's market info (``linear``/``inverse``/``spot``,
        ``contractSize``); ``VenueError`` when the market states none the router can use."""
        return contract_of_market(self._market(symbol))

    def top_of_book(self, symbol: str) -> TopOfBook:
        unified = self._market(symbol)["symbol"]
        if self._config.top_of_book_source == "order_book":
            book = self._call(lambda: self._exchange.fetch_order_book(unified, self._config.order_book_depth))
            if not book["bids"] or not book["asks"]:
                raise VenueError(f"{symbol}: empty book side")
            (bid, bid_qty), (ask, ask_qty) = book["bids"][0][:2], book["asks"][0][:2]
            timestamp_ms = book.get("timestamp")
        else:
            ticker = self._call(lambda: self._exchange.fetch_bids_asks([unified]))[unified]
            bid, bid_qty, ask, ask_qty = (
                ticker["bid"],
                ticker["bidVolume"],
                ticker["ask"],
                ticker["askVolume"],
            )
            if bid is None or ask is None:
                raise VenueError(f"{symbol}: empty book side")
            timestamp_ms = ticker.get("timestamp")
        # The exchange's own time when it gives one; otherwise the moment we received the answer.
        ts_ns = int(timestamp_ms) * 1_000_000 if timestamp_ms is not None else self._clock.now_ns()
        return TopOfBook(symbol, float(bid), float(bid_qty), float(ask), float(ask_qty), ts_ns)

    # ----- positions -------------------------------------------------------------------------------
    def positions(self, symbol: str) -> dict[PositionSide, float]:
        """Signed position amounts of ``symbol`` by position side, with ``SimVenue.positions``' keys and signs.

        ``{"BOTH": amount}`` in one-way mode, ``{"LONG": >= 0, "SHORT": <= 0}`` in hedge mode (the mode read
        at connection), from ccxt ``fetch_positions`` (Binance USDⓈ-M: ``positionRisk``). Restart
        reconciliation compares these with the journal, so an unreadable position raises ``VenueError``.
        """
        unified = self._market(symbol)["symbol"]
        rows = self._call(lambda: self._exchange.fetch_positions([unified]))
        return position_amounts(rows, symbol, unified, self._hedged)

    # ----- orders ----------------------------------------------------------------------------------
    def place_order(self, request: OrderRequest) -> OrderState:
        market = self._market(request.symbol)
        self._validate(request)
        qty = self._close_qty(request, market) if request.close_position else request.qty
        amount = self._amount(market, qty)
        price = self._passive_price(market, request) if request.order_type == "limit" else None
        params = self._order_params(request)

        def send() -> dict[str, Any]:
            return self._exchange.create_order(
                market["symbol"], request.order_type, request.side, amount, price, dict(params)
            )

        logger.info(
            "%s place %s %s %s %s @ %s %s",
            self.name,
            request.client_order_id,
            request.symbol,
            request.side,
            amount,
            price,
            params,
        )
        try:
            order = self._call(send)
        except _OUTCOME_UNKNOWN as err:
            return self._resolve_unknown_outcome(request, send, err)
        return self._state(order, request.symbol, request.client_order_id, market)

    def cancel_order(self, symbol: str, client_order_id: str) -> OrderState:
        market = self._market(symbol)
        params = {self._quirks.query_client_order_id_param: client_order_id}
        try:
            order = self._call(lambda: self._exchange.cancel_order(None, market["symbol"], params))
        except OrderNotFound:
            # Already filled or canceled orders are "unknown" to a cancel; their final state still exists.
            return self.fetch_order(symbol, client_order_id)
        return self._state(order, symbol, client_order_id, market)

    def fetch_order(self, symbol: str, client_order_id: str) -> OrderState:
        market = self._market(symbol)
        params = {self._quirks.query_client_order_id_param: client_order_id}
        order = self._call(lambda: self._exchange.fetch_order(None, market["symbol"], params))
        return self._state(order, symbol, client_order_id, market)

    def open_orders(self, symbol: str | None) -> tuple[OrderState, ...]:
        unified = self._market(symbol)["symbol"] if symbol is not None else None
        orders = self._call(lambda: self._exchange.fetch_open_orders(unified))
        states = []
        for order in orders:
            market = self._exchange.market(order["symbol"])
            states.append(self._state(order, market["id"], str(order["clientOrderId"]), market))
        return tuple(states)

    # ----- protective orders -----------------------------------------------------------------------
    def place_stop(self, request: StopRequest) -> StopState:
        """A closePosition stop in the exchange's conditional-order service (Binance: the algo service).

        No quantity, no reduce-only flag: the exchange closes the whole leg when it triggers. The trigger is
        rounded to the tick (ccxt's precision helper); a send whose outcome is unknown is resolved by id.
        """
        market = self._market(request.symbol)
        cid = request.client_order_id
        if not cid:
            raise InvalidOrder("client_order_id is required")
        if not math.isfinite(request.trigger_price) or request.trigger_price <= 0:
            raise InvalidOrder(f"{cid}: trigger_price must be finite and > 0, got {request.trigger_price}")
        if request.working_type not in ("CONTRACT_PRICE", "MARK_PRICE"):
            raise InvalidOrder(f"{cid}: working_type must be CONTRACT_PRICE or MARK_PRICE, "
                               f"got {request.working_type!r}")
        self._check_position_side(cid, request.side, request.position_side, reducing=True)
        q = self._quirks
        params: dict[str, object] = {
            q.stop_client_order_id_param: cid,
            q.stop_price_params[request.kind]: self._exchange.price_to_precision(market["symbol"],
                                                                                 request.trigger_price),
            q.stop_working_type_param: request.working_type,
            **q.stop_params,
        }
        if request.position_side != "BOTH":
            params[q.position_side_param] = request.position_side
        logger.info("%s place stop %s %s %s %s @ %s", self.name, cid, request.symbol, request.kind, request.side,
                    params)

        def send() -> dict[str, Any]:
            return self._exchange.create_order(market["symbol"], "market", request.side, None, None, dict(params))

        try:
            info = self._call(send)["info"]
        except _OUTCOME_UNKNOWN:
            return self.fetch_stop(request.symbol, cid)
        return self._stop_state(info, request.symbol, cid, market)

    def cancel_stop(self, symbol: str, client_order_id: str) -> StopState:
        market = self._market(symbol)
        params = {self._quirks.stop_client_order_id_param: client_order_id, **self._quirks.stop_query_params}
        with contextlib.suppress(OrderNotFound):  # triggered or already ended: its final state still exists
            self._call(lambda: self._exchange.cancel_order(None, market["symbol"], dict(params)))
        return self.fetch_stop(symbol, client_order_id)

    def fetch_stop(self, symbol: str, client_order_id: str) -> StopState:
        market = self._market(symbol)
        params = {self._quirks.stop_client_order_id_param: client_order_id, **self._quirks.stop_query_params}
        order = self._call(lambda: self._exchange.fetch_order(None, market["symbol"], dict(params)))
        return self._stop_state(order["info"], symbol, client_order_id, market)

    def open_stops(self, symbol: str | None) -> tuple[StopState, ...]:
        unified = self._market(symbol)["symbol"] if symbol is not None else None
        params = dict(self._quirks.stop_query_params)
        orders = self._call(lambda: self._exchange.fetch_open_orders(unified, None, None, params))
        states = []
        for order in orders:
            market = self._exchange.market(order["symbol"])
            states.append(self._stop_state(order["info"], market["id"], str(order["clientOrderId"]), market))
        return tuple(states)

    def _stop_state(self, info: Mapping[str, Any], symbol: str, cid: str, market: Mapping[str, Any]) -> StopState:
        order_id = actual_order_id(info)
        fills = self._trade_fills(order_id, cid, market) if order_id is not None else ()
        return stop_state(info, symbol, cid, fills)

    # ----- idempotency -----------------------------------------------------------------------------
    def _resolve_unknown_outcome(
        self, request: OrderRequest, send: Callable[[], dict[str, Any]], first: VenueError
    ) -> OrderState:
        """After a timeout: return the order if it exists, else resend once with the same id."""
        cid = request.client_order_id
        found = self._lookup(request.symbol, cid)
        if found is not None:
            logger.warning("%s %s: outcome unknown (%s) but the order exists", self.name, cid, first)
            return found
        logger.warning(
            "%s %s: outcome unknown (%s), order absent: resending once, same id", self.name, cid, first
        )
        market = self._market(request.symbol)
        try:
            return self._state(self._call(send), request.symbol, cid, market)
        except DuplicateClientOrderId:
            found = self._lookup(request.symbol, cid)
            if found is None:
                raise
            return found
        except _OUTCOME_UNKNOWN as second:
            found = self._lookup(request.symbol, cid)
            if found is not None:
                return found
            raise VenueTimeout(
                f"{cid}: outcome unknown after one resend ({second}); not resending again, query it later"
            ) from None

    def _lookup(self, symbol: str, client_order_id: str) -> OrderState | None:
        try:
            return self.fetch_order(symbol, client_order_id)
        except OrderNotFound:
            return None

    # ----- request building ------------------------------------------------------------------------
    def _validate(self, request: OrderRequest) -> None:
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
        self._check_position_side(cid, request.side, request.position_side,
                                  reducing=request.reduce_only or request.close_position)

    def _check_position_side(self, cid: str, side: str, position_side: str, *, reducing: bool) -> None:
        """The account's position mode decides the position side; in hedge mode a reducing side must close it."""
        if self._hedged and position_side == "BOTH":
            raise InvalidOrder(f"{cid}: account is in hedge mode, position_side must be LONG or SHORT")
        if not self._hedged and position_side != "BOTH":
            raise InvalidOrder(f"{cid}: account is in one-way mode, position_side must be BOTH")
        if self._hedged and reducing:
            closing_side = "sell" if position_side == "LONG" else "buy"
            if side != closing_side:
                raise InvalidOrder(f"{cid}: reducing a {position_side} position needs side {closing_side}")

    def _order_params(self, request: OrderRequest) -> dict[str, str]:
        q = self._quirks
        params: dict[str, str] = {q.client_order_id_param: request.client_order_id}
        if request.post_only:
            params.update(q.post_only_params)
        elif request.order_type == "limit":
            params.update(q.time_in_force_params[request.time_in_force])
        if request.position_side != "BOTH":
            params[q.position_side_param] = request.position_side
        reducing = request.reduce_only or request.close_position
        if reducing and (not self._hedged or q.hedge_mode_sends_reduce_only):
            params.update(q.reduce_only_params)
        return params

    def _close_qty(self, request: OrderRequest, market: Mapping[str, Any]) -> float:
        """The whole open position on the request's side, read from the venue (the router's may be stale)."""
        positions = self._call(lambda: self._exchange.fetch_positions([market["symbol"]]))
        wanted = request.position_side.lower() if self._hedged else None
        for position in positions:
            contracts = position.get("contracts") or 0.0
            if position.get("symbol") != market["symbol"] or contracts <= 0:
                continue
            if wanted is not None and position.get("side") != wanted:
                continue
            closing_side = "sell" if position.get("side") == "long" else "buy"
            if request.side != closing_side:
                raise InvalidOrder(
                    f"{request.client_order_id}: position is {position.get('side')},"
                    f" closing it needs side {closing_side}"
                )
            return float(contracts)
        raise ReduceOnlyRejected(
            f"{request.client_order_id}: no open {request.position_side} position in {request.symbol}"
        )

    def _amount(self, market: Mapping[str, Any], qty: float) -> str:
        try:
            amount = str(self._exchange.amount_to_precision(market["symbol"], str(qty)))
        except ccxt.InvalidOrder:
            amount = "0"  # ccxt refuses amounts below one step instead of truncating them to zero
        if Decimal(amount) <= 0:
            raise InvalidOrder(f"{market['id']}: qty {qty} truncates to zero at the venue's step")
        return amount

    def _passive_price(self, market: Mapping[str, Any], request: OrderRequest) -> str:
        """Round to the tick away from the touch, so rounding never turns a maker price into a taker one."""
        tick = price_tick(market, self._exchange.precisionMode)
        price = Decimal(str(request.price))
        rounding = ROUND_FLOOR if request.side == "buy" else ROUND_CEILING
        rounded = (price / tick).to_integral_value(rounding=rounding) * tick
        if rounded <= 0:
            raise InvalidOrder(f"{request.client_order_id}: price {request.price} rounds to zero")
        return str(self._exchange.price_to_precision(market["symbol"], format(rounded, "f")))

    # ----- parsing ---------------------------------------------------------------------------------
    def _state(
        self, order: Mapping[str, Any], symbol: str, cid: str, market: Mapping[str, Any]
    ) -> OrderState:
        return order_state(order, symbol, cid, self._fills(order, cid, market))

    def _fills(self, order: Mapping[str, Any], cid: str, market: Mapping[str, Any]) -> tuple[Fill, ...]:
        filled = order.get("filled") or 0.0
        if filled <= 0:
            return ()
        trades = order.get("trades") or []
        if not trades or not math.isclose(sum(t["amount"] for t in trades), filled):
            return self._trade_fills(str(order["id"]), cid, market)
        return self._as_fills(trades, cid, market)

    def _trade_fills(self, order_id: str, cid: str, market: Mapping[str, Any]) -> tuple[Fill, ...]:
        """The fills of exchange order ``order_id``, read from the account's trades, under our id ``cid``."""
        params = {self._quirks.trades_order_id_param: order_id}
        trades = self._call(lambda: self._exchange.fetch_my_trades(market["symbol"], None, None, params))
        return self._as_fills([t for t in trades if str(t.get("order")) == order_id], cid, market)

    def _as_fills(self, trades: list[Any], cid: str, market: Mapping[str, Any]) -> tuple[Fill, ...]:
        quote = market["quote"]

        def fee_to_quote(currency: str, cost: float, price: float) -> float:
            return self._fee_to_quote(market, quote, currency, cost, price)

        return tuple(
            fill_from_trade(t, cid, fee_to_quote) for t in sorted(trades, key=lambda t: t["timestamp"])
        )

    def _fee_to_quote(
        self, market: Mapping[str, Any], quote: str, currency: str, cost: float, price: float
    ) -> float:
        if currency in (quote, market.get("settle")):
            return cost
        if currency == market["base"]:
            return cost * price
        # A third asset (e.g. BNB fee discount): price it at the mid of its own perp against our quote.
        for candidate in self._markets.values():
            if candidate["base"] == currency and candidate["quote"] == quote:
                return cost * self.top_of_book(candidate["id"]).mid
        raise VenueError(
            f"{market['id']}: cannot convert fee in {currency} to {quote}: no {currency}/{quote} market"
        )

    # ----- plumbing --------------------------------------------------------------------------------
    def _market(self, symbol: str) -> Mapping[str, Any]:
        try:
            return self._markets[symbol]
        except KeyError:
            raise ValueError(f"{self.name}: unknown symbol {symbol!r}") from None

    @staticmethod
    def _index_markets(markets: Mapping[str, Mapping[str, Any]]) -> dict[str, Mapping[str, Any]]:
        by_id: dict[str, Mapping[str, Any]] = {}
        for market in markets.values():
            if market["id"] in by_id:
                raise ValueError(f"market id {market['id']!r} is ambiguous on this exchange client")
            by_id[market["id"]] = market
        return by_id

    def _repoint_api(self, base_url: str) -> None:
        """Send every REST endpoint to ``base_url``, keeping each endpoint's path."""
        api = self._exchange.urls["api"]
        if not isinstance(api, dict):
            raise ValueError(f"{self.name}: ccxt urls['api'] is not a mapping; cannot re-point it")
        for key, url in api.items():
            parts = url.split("/", 3)
            api[key] = base_url.rstrip("/") + ("/" + parts[3] if len(parts) > 3 else "")

    def _call(self, fn: Callable[[], T]) -> T:
        """Run one ccxt call, waiting out rate limits with bounded back-off; map every error once."""
        cfg = self._config
        for attempt in range(cfg.rate_limit_max_retries + 1):
            try:
                return fn()
            except ccxt.BaseError as exc:
                hint = (
                    retry_after_s(self._exchange.last_response_headers, self._quirks.retry_after_header)
                    if is_rate_limit(exc)
                    else None
                )
                mapped = map_ccxt_error(exc, self._quirks, self._redactor, hint)
                if not isinstance(mapped, RateLimited) or attempt == cfg.rate_limit_max_retries:
                    raise mapped from None
                backoff_s = min(cfg.backoff_initial_ms * 2**attempt, cfg.backoff_max_ms) / 1000
                if hint is not None and hint > cfg.retry_after_max_s:
                    raise mapped from None
                wait_s = max(backoff_s, hint or 0.0)
                logger.warning(
                    "%s rate limited (attempt %d), waiting %.3f s: %s", self.name, attempt + 1, wait_s, mapped
                )
                self._clock.sleep_until(self._clock.now_ns() + int(wait_s * 1e9))
        raise AssertionError("unreachable: the loop returns or raises")
