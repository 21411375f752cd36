"""A local fake of Binance USDⓈ-M futures' REST API: ccxt's own signing and parsing run without a network.

It answers the real paths with the real payload shapes, checks the HMAC-SHA256 signature that ccxt
computes (with the fake's secret), keeps a one-level book, orders, trades and positions, enforces the
rules the venue adapter must respect (post-only GTX crossing -> -5022, hedge mode rejects ``reduceOnly``
and needs ``positionSide``), keeps closePosition STOP_MARKET / TAKE_PROFIT_MARKET orders in its algo
service (``/fapi/v1/algoOrder``: Binance's validation, -2021 for a trigger already met; they fire when the
book or mark the test sets meets them, closing the leg at the touch), honours ``timeInForce=IOC`` as
Binance does (takes the touch's displayed size
up to the limit price, answers ``EXPIRED`` with the ``executedQty`` for the rest; the book is a snapshot the
test sets, fills do not deplete it), and can be scripted to fail the next request on a path in the ways a live
exchange does: an error code, a 429 with ``Retry-After``, a timeout or a dropped connection before/after the order
exists, an IP ban (``Ban``: every request answered 418 -1003 for a while); its order queries can lag its matching
engine (``-2013`` for an order that exists, ``lag_queries``). A book side set to quantity 0 is empty: ``/depth``
lists no level on it and ``/ticker/bookTicker`` answers it as zeros, as Binance does. ``fill`` can report a fill
as a misreporting venue would (another price, taker, beyond the order's quantity). A fee asset other than the quote
(``fee_asset_override``, the BNB discount) is charged at the mid of that asset's book against the quote, or against
USDT when the fake has no such book. Bound to 127.0.0.1 on an ephemeral port; tests start it as a context manager.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal
from urllib.parse import parse_qsl, urlsplit

ORDER_PATH = "/fapi/v1/order"
ALGO_ORDER_PATH = "/fapi/v1/algoOrder"


@dataclass(frozen=True)
class SymbolSpec:
    """One perpetual's exchangeInfo entry: tick, step and minimum notional as Binance publishes them."""

    symbol: str
    base: str
    quote: str
    tick_size: str
    step_size: str
    min_notional: str
    price_precision: int
    quantity_precision: int


DEFAULT_SYMBOLS = (
    SymbolSpec("BTCUSDT", "BTC", "USDT", "0.10", "0.001", "100", 2, 3),
    SymbolSpec("BTCUSDC", "BTC", "USDC", "0.1", "0.001", "5", 1, 3),
    SymbolSpec("BNBUSDT", "BNB", "USDT", "0.010", "0.01", "5", 3, 2),
)


@dataclass(frozen=True)
class ErrorReply:
    """Answer the next matching request with a Binance error body and HTTP status."""

    code: int
    msg: str
    http_status: int = 400


@dataclass(frozen=True)
class RateLimitReply:
    """Answer the next matching request with HTTP 429 (or 418) and a ``Retry-After`` header in seconds."""

    retry_after_s: int
    http_status: int = 429


@dataclass(frozen=True)
class Stall:
    """Sleep ``seconds`` before answering; ``create_first`` processes an order POST before stalling."""

    seconds: float
    create_first: bool


@dataclass(frozen=True)
class Drop:
    """Close the connection without answering; ``create_first`` processes an order POST before dropping."""

    create_first: bool


@dataclass(frozen=True)
class Ban:
    """Answer the next matching request, and every request to any path for ``seconds`` after it, HTTP 418 -1003
    with a ``Retry-After`` of what is left of the ban (Binance's IP ban of a client that did not back off)."""

    seconds: float


Fault = ErrorReply | RateLimitReply | Stall | Drop | Ban


@dataclass
class FakeOrder:
    order_id: int
    client_order_id: str
    symbol: str
    side: Literal["BUY", "SELL"]
    position_side: str
    order_type: str
    time_in_force: str
    price: Decimal
    orig_qty: Decimal
    reduce_only: bool
    status: str = "NEW"
    executed_qty: Decimal = Decimal(0)
    cum_quote: Decimal = Decimal(0)
    update_ms: int = 0


@dataclass
class FakeAlgoOrder:
    """A conditional (algo service) order: STOP_MARKET / TAKE_PROFIT_MARKET with closePosition."""

    algo_id: int
    client_algo_id: str
    symbol: str
    side: Literal["BUY", "SELL"]
    position_side: str
    order_type: str
    trigger_price: Decimal
    working_type: str
    status: str = "NEW"
    actual_order_id: str = ""
    trigger_ms: int = 0
    update_ms: int = 0
    create_ms: int = 0


@dataclass
class FakeState:
    """Everything the fake exchange knows; tests read and script it under ``lock``."""

    symbols: dict[str, SymbolSpec]
    maker_fee_rate: Decimal
    taker_fee_rate: Decimal
    hedge_mode: bool = False
    books: dict[str, tuple[Decimal, Decimal, Decimal, Decimal]] = field(default_factory=dict)
    orders: dict[str, FakeOrder] = field(default_factory=dict)
    algo_orders: dict[str, FakeAlgoOrder] = field(default_factory=dict)
    marks: dict[str, Decimal] = field(default_factory=dict)
    trades: list[dict[str, Any]] = field(default_factory=list)
    positions: dict[tuple[str, str], Decimal] = field(default_factory=dict)
    order_posts: Counter[str] = field(default_factory=Counter)
    orders_created: Counter[str] = field(default_factory=Counter)  # orders the matching engine took, by client id
    query_lag: Counter[str] = field(default_factory=Counter)  # queries still to answer -2013 for, by client id
    trades_lag: int = 0  # account trade-list reads still to answer without the latest trade (``lag_trades``)
    requests: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)
    faults: dict[tuple[str, str], deque[Fault]] = field(default_factory=dict)
    fee_asset_override: str | None = None
    banned_until: float = 0.0  # time.monotonic() until which every request is answered 418 (a ``Ban``)
    next_id: int = 1000
    # Hooks of the user-data stream (tests.fakes.binance_user_ws): told of every order change under ``lock``
    # as (order, Binance execution type, the trade of a TRADE), and answering the listen-key endpoints.
    order_listeners: list[Callable[[FakeOrder, str, dict[str, Any] | None], None]] = field(default_factory=list)
    extra_routes: dict[tuple[str, str], Callable[[dict[str, str], str | None], Any]] = field(default_factory=dict)
    lock: threading.RLock = field(default_factory=threading.RLock)


class BinanceUsdmError(Exception):
    """A request the real exchange would refuse, with its code and message."""

    def __init__(self, code: int, msg: str, http_status: int = 400) -> None:
        super().__init__(msg)
        self.code = code
        self.msg = msg
        self.http_status = http_status


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class FakeBinanceUsdm:
    """The fake exchange: start it, point ccxt at ``base_url``, script faults, fill orders."""

    def __init__(
        self,
        api_key: str,
        api_secret: str,
        symbols: tuple[SymbolSpec, ...] = DEFAULT_SYMBOLS,
        maker_fee_rate: str = "0.0002",
        taker_fee_rate: str = "0.0005",
    ) -> None:
        self.api_key = api_key
        self.api_secret = api_secret
        self.state = FakeState(
            symbols={s.symbol: s for s in symbols},
            maker_fee_rate=Decimal(maker_fee_rate),
            taker_fee_rate=Decimal(taker_fee_rate),
        )
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.02,), daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> FakeBinanceUsdm:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    # ----- scripting -------------------------------------------------------------------------------
    def set_book(self, symbol: str, bid: str, bid_qty: str, ask: str, ask_qty: str) -> None:
        """Move the book; working stops whose trigger the new prices meet fire at once (their close walks
        nothing: it takes the new touch)."""
        with self.state.lock:
            self.state.books[symbol] = (Decimal(bid), Decimal(bid_qty), Decimal(ask), Decimal(ask_qty))
            self._trigger_stops(symbol)

    def set_mark_price(self, symbol: str, mark: str) -> None:
        """Set the mark price (``MARK_PRICE`` stops work on it; it is the mid until set)."""
        with self.state.lock:
            self.state.marks[symbol] = Decimal(mark)
            self._trigger_stops(symbol)

    def set_position(self, symbol: str, position_side: str, amount: str) -> None:
        with self.state.lock:
            self.state.positions[(symbol, position_side)] = Decimal(amount)

    def fail_next(self, method: str, path: str, fault: Fault) -> None:
        with self.state.lock:
            self.state.faults.setdefault((method, path), deque()).append(fault)

    def fill(self, client_order_id: str, qty: str, *, price: str | None = None, maker: bool = True) -> None:
        """Fill part of a resting order as maker at its limit price (a trade against our quote).

        ``price`` and ``maker`` report it otherwise, and a ``qty`` beyond what rests overfills the order: the fills
        a venue's own rules rule out, as a misreporting venue would report them."""
        with self.state.lock:
            order = self.state.orders[client_order_id]
            self._execute(order, Decimal(qty), order.price if price is None else Decimal(price), maker=maker)

    def posts_for(self, client_order_id: str) -> int:
        with self.state.lock:
            return self.state.order_posts[client_order_id]

    def created_for(self, client_order_id: str) -> int:
        """How many orders the fake created under ``client_order_id`` (a double order shows as 2)."""
        with self.state.lock:
            return self.state.orders_created[client_order_id]

    def lag_queries(self, client_order_id: str, queries: int) -> None:
        """Answer the next ``queries`` GETs of this order -2013, whether or not it exists (a lagging query)."""
        with self.state.lock:
            self.state.query_lag[client_order_id] = queries

    def lag_trades(self, reads: int) -> None:
        """Answer the next ``reads`` account trade-list reads (``userTrades``) without the latest trade, as Binance's
        trade list can lag its order status: an order already reported filled whose trade is not listed yet."""
        with self.state.lock:
            self.state.trades_lag = reads

    def order_requests(self, method: str) -> list[dict[str, str]]:
        with self.state.lock:
            return [p for m, path, p in self.state.requests if m == method and path == ORDER_PATH]

    # ----- matching --------------------------------------------------------------------------------
    def _notify(self, order: FakeOrder, execution_type: str, trade: dict[str, Any] | None = None) -> None:
        for listener in self.state.order_listeners:
            listener(order, execution_type, trade)

    def _execute(self, order: FakeOrder, qty: Decimal, price: Decimal, maker: bool) -> None:
        st = self.state
        spec = st.symbols[order.symbol]
        order.executed_qty += qty
        order.cum_quote += qty * price
        order.status = "FILLED" if order.executed_qty >= order.orig_qty else "PARTIALLY_FILLED"
        order.update_ms = _now_ms()
        rate = st.maker_fee_rate if maker else st.taker_fee_rate
        commission = qty * price * rate
        asset = spec.quote
        if st.fee_asset_override is not None:
            asset = st.fee_asset_override
            book = st.books.get(f"{asset}{spec.quote}", st.books.get(f"{asset}USDT"))
            if book is None:
                raise BinanceUsdmError(-1000, f"fake has no book to price fees in {asset}", 500)
            fee_bid, _, fee_ask, _ = book
            commission = commission / ((fee_bid + fee_ask) / 2)
        st.next_id += 1
        st.trades.append(
            {
                "buyer": order.side == "BUY",
                "commission": f"{commission:.8f}",
                "commissionAsset": asset,
                "id": st.next_id,
                "maker": maker,
                "orderId": order.order_id,
                "price": str(price),
                "qty": str(qty),
                "quoteQty": str(qty * price),
                "realizedPnl": "0",
                "side": order.side,
                "positionSide": order.position_side,
                "symbol": order.symbol,
                "time": order.update_ms,
            }
        )
        signed = qty if order.side == "BUY" else -qty
        key = (order.symbol, order.position_side)
        st.positions[key] = st.positions.get(key, Decimal(0)) + signed
        self._notify(order, "TRADE", st.trades[-1])

    def _new_order(self, p: dict[str, str]) -> FakeOrder:
        st = self.state
        symbol = p["symbol"]
        if symbol not in st.symbols:
            raise BinanceUsdmError(-1121, "Invalid symbol.")
        spec = st.symbols[symbol]
        cid = p.get("newClientOrderId")
        if cid is None:
            raise BinanceUsdmError(
                -1102, "Mandatory parameter 'newClientOrderId' was not sent (fake requires it)."
            )
        if cid in st.orders and st.orders[cid].status in ("NEW", "PARTIALLY_FILLED"):
            raise BinanceUsdmError(-4116, "ClientOrderId is duplicated.")
        position_side = p.get("positionSide", "BOTH")
        reduce_only = p.get("reduceOnly", "false").lower() == "true"
        if st.hedge_mode:
            if "reduceOnly" in p:
                raise BinanceUsdmError(-1106, "Parameter 'reduceOnly' sent when not required.")
            if position_side not in ("LONG", "SHORT"):
                raise BinanceUsdmError(-4061, "Order's position side does not match user's setting.")
        elif position_side != "BOTH":
            raise BinanceUsdmError(-4061, "Order's position side does not match user's setting.")
        qty = Decimal(p["quantity"])
        if qty % Decimal(spec.step_size) != 0 or qty <= 0:
            raise BinanceUsdmError(-1111, "Precision is over the maximum defined for this asset.")
        bid, _, ask, _ = st.books[symbol]
        order_type = p["type"]
        price = Decimal(p["price"]) if order_type == "LIMIT" else (ask if p["side"] == "BUY" else bid)
        if order_type == "LIMIT" and price % Decimal(spec.tick_size) != 0:
            raise BinanceUsdmError(-1111, "Precision is over the maximum defined for this asset.")
        if not reduce_only and qty * price < Decimal(spec.min_notional):
            raise BinanceUsdmError(
                -4164,
                f"Order's notional must be no smaller than {spec.min_notional}"
                " (unless you choose reduce only).",
            )
        crosses = (p["side"] == "BUY" and price >= ask) or (p["side"] == "SELL" and price <= bid)
        if order_type == "MARKET" and "timeInForce" in p:
            raise BinanceUsdmError(-1106, "Parameter 'timeInForce' sent when not required.")
        tif = p.get("timeInForce", "GTC")
        if tif not in ("GTC", "IOC", "GTX"):
            raise BinanceUsdmError(-1115, "Invalid timeInForce.")
        if tif == "GTX" and crosses:
            raise BinanceUsdmError(
                -5022,
                "Due to the order could not be executed as maker, the Post Only order will be rejected.",
            )
        st.next_id += 1
        order = FakeOrder(
            order_id=st.next_id,
            client_order_id=cid,
            symbol=symbol,
            side=p["side"],  # type: ignore[arg-type]
            position_side=position_side,
            order_type=order_type,
            time_in_force=tif,
            price=price,
            orig_qty=qty,
            reduce_only=reduce_only,
            update_ms=_now_ms(),
        )
        st.orders[cid] = order
        st.orders_created[cid] += 1
        self._notify(order, "NEW")
        if tif == "IOC":
            self._match_ioc(order, crosses)
        elif crosses:
            self._execute(order, qty, ask if p["side"] == "BUY" else bid, maker=False)
        return order

    def _match_ioc(self, order: FakeOrder, crosses: bool) -> None:
        """Binance IOC: take the touch's displayed size up to the limit, expire the rest (status EXPIRED)."""
        bid, bid_qty, ask, ask_qty = self.state.books[order.symbol]
        touch_px, touch_qty = (ask, ask_qty) if order.side == "BUY" else (bid, bid_qty)
        take = min(order.orig_qty, touch_qty) if crosses else Decimal(0)
        if take > 0:
            self._execute(order, take, touch_px, maker=False)
        if order.executed_qty < order.orig_qty:
            order.status = "EXPIRED"
            order.update_ms = _now_ms()
            self._notify(order, "EXPIRED")

    # ----- conditional (algo) orders ----------------------------------------------------------------
    def _working_price(self, symbol: str, working_type: str) -> Decimal:
        """CONTRACT_PRICE: the fake's last price is the mid of its book; MARK_PRICE: the mark (mid until set)."""
        bid, _, ask, _ = self.state.books[symbol]
        mid = (bid + ask) / 2
        return self.state.marks.get(symbol, mid) if working_type == "MARK_PRICE" else mid

    @staticmethod
    def _condition_met(algo: FakeAlgoOrder, price: Decimal) -> bool:
        falls = (algo.order_type == "STOP_MARKET") == (algo.side == "SELL")
        return price <= algo.trigger_price if falls else price >= algo.trigger_price

    def _trigger_stops(self, symbol: str) -> None:
        for algo in list(self.state.algo_orders.values()):
            if algo.symbol == symbol and algo.status == "NEW" and \
                    self._condition_met(algo, self._working_price(symbol, algo.working_type)):
                self._fire(algo)

    def _fire(self, algo: FakeAlgoOrder) -> None:
        """Binance: the algo service places a MARKET order closing the whole leg; FINISHED once it filled."""
        st = self.state
        now = _now_ms()
        algo.trigger_ms = algo.update_ms = now
        amount = st.positions.get((algo.symbol, algo.position_side), Decimal(0))
        closes = amount < 0 if algo.side == "BUY" else amount > 0
        if not closes:
            algo.status = "EXPIRED"  # nothing left to close
            return
        bid, _, ask, _ = st.books[algo.symbol]
        st.next_id += 1
        order = FakeOrder(order_id=st.next_id, client_order_id=f"autoclose-{algo.algo_id}", symbol=algo.symbol,
                          side=algo.side, position_side=algo.position_side, order_type="MARKET",
                          time_in_force="GTC", price=ask if algo.side == "BUY" else bid, orig_qty=abs(amount),
                          reduce_only=True, update_ms=now)
        st.orders[order.client_order_id] = order
        self._execute(order, abs(amount), order.price, maker=False)
        algo.actual_order_id = str(order.order_id)
        algo.status = "FINISHED"

    def _new_algo_order(self, p: dict[str, str]) -> FakeAlgoOrder:
        """Binance's validation of a conditional order; the fake keeps closePosition stops only."""
        st = self.state
        symbol = p.get("symbol", "")
        if symbol not in st.symbols:
            raise BinanceUsdmError(-1121, "Invalid symbol.")
        spec = st.symbols[symbol]
        if p.get("algoType") != "CONDITIONAL":
            raise BinanceUsdmError(-1102, "Mandatory parameter 'algoType' was not sent, was empty/null, or malformed.")
        order_type = p.get("type")
        if order_type not in ("STOP_MARKET", "TAKE_PROFIT_MARKET"):
            raise BinanceUsdmError(-1116, "Invalid orderType.")
        if p.get("closePosition", "false").lower() != "true":
            raise BinanceUsdmError(-1000, "fake keeps closePosition conditional orders only", 400)
        if "quantity" in p:
            raise BinanceUsdmError(-4137, "Quantity must be zero with closePosition equals true.")
        if "reduceOnly" in p:
            raise BinanceUsdmError(-1106, "Parameter 'reduceOnly' sent when not required.")
        if "triggerPrice" not in p:
            raise BinanceUsdmError(-1102, "Mandatory parameter 'triggerPrice' was not sent, was empty/null, or "
                                          "malformed.")
        trigger = Decimal(p["triggerPrice"])
        if trigger <= 0 or trigger % Decimal(spec.tick_size) != 0:
            raise BinanceUsdmError(-4014, "Price not increased by tick size.")
        working_type = p.get("workingType", "CONTRACT_PRICE")
        if working_type not in ("CONTRACT_PRICE", "MARK_PRICE"):
            raise BinanceUsdmError(-1116, "Invalid workingType.")
        position_side = p.get("positionSide", "BOTH")
        if st.hedge_mode != (position_side in ("LONG", "SHORT")) or position_side not in ("BOTH", "LONG", "SHORT"):
            raise BinanceUsdmError(-4061, "Order's position side does not match user's setting.")
        if st.hedge_mode and (p["side"] == "BUY") == (position_side == "LONG"):
            raise BinanceUsdmError(-2022, "ReduceOnly Order is rejected.")  # close-all on the opening side
        cid = p.get("clientAlgoId")
        if cid is None:
            raise BinanceUsdmError(-1102, "Mandatory parameter 'clientAlgoId' was not sent (fake requires it).")
        if cid in st.algo_orders and st.algo_orders[cid].status == "NEW":
            raise BinanceUsdmError(-4116, "ClientOrderId is duplicated.")
        st.next_id += 1
        now = _now_ms()
        algo = FakeAlgoOrder(algo_id=st.next_id, client_algo_id=cid, symbol=symbol, side=p["side"],  # type: ignore[arg-type]
                             position_side=position_side, order_type=order_type, trigger_price=trigger,
                             working_type=working_type, update_ms=now, create_ms=now)
        if self._condition_met(algo, self._working_price(symbol, working_type)):
            raise BinanceUsdmError(-2021, "Order would immediately trigger.")
        st.algo_orders[cid] = algo
        return algo

    def _algo_json(self, a: FakeAlgoOrder) -> dict[str, Any]:
        return {
            "algoId": a.algo_id,
            "clientAlgoId": a.client_algo_id,
            "algoType": "CONDITIONAL",
            "orderType": a.order_type,
            "symbol": a.symbol,
            "side": a.side,
            "positionSide": a.position_side,
            "timeInForce": "GTC",
            "quantity": "0",
            "algoStatus": a.status,
            "actualOrderId": a.actual_order_id,
            "actualPrice": "0",
            "triggerPrice": str(a.trigger_price),
            "price": "0",
            "icebergQuantity": None,
            "selfTradePreventionMode": "EXPIRE_MAKER",
            "workingType": a.working_type,
            "priceMatch": "NONE",
            "closePosition": True,
            "priceProtect": False,
            "reduceOnly": False,
            "createTime": a.create_ms,
            "updateTime": a.update_ms,
            "triggerTime": a.trigger_ms,
            "goodTillDate": 0,
        }

    def _algo_route(self, method: str, p: dict[str, str]) -> Any:
        st = self.state
        if method == "POST":
            return self._algo_json(self._new_algo_order(p))
        algo = st.algo_orders.get(p.get("clientAlgoId", ""))
        if algo is None and "algoId" in p:
            algo = next((a for a in st.algo_orders.values() if str(a.algo_id) == p["algoId"]), None)
        if algo is None:
            raise BinanceUsdmError(-2013 if method == "GET" else -2011,
                                   "Order does not exist." if method == "GET" else "Unknown order sent.")
        if method == "DELETE":
            if algo.status != "NEW":
                raise BinanceUsdmError(-2011, "Unknown order sent.")
            algo.status = "CANCELED"
            algo.update_ms = _now_ms()
            return {"algoId": algo.algo_id, "clientAlgoId": algo.client_algo_id, "code": "200", "msg": "success"}
        return self._algo_json(algo)

    # ----- payloads --------------------------------------------------------------------------------
    def _order_json(self, o: FakeOrder) -> dict[str, Any]:
        avg = o.cum_quote / o.executed_qty if o.executed_qty else Decimal(0)
        return {
            "orderId": o.order_id,
            "symbol": o.symbol,
            "status": o.status,
            "clientOrderId": o.client_order_id,
            "price": str(o.price) if o.order_type == "LIMIT" else "0",
            "avgPrice": str(avg),
            "origQty": str(o.orig_qty),
            "executedQty": str(o.executed_qty),
            "cumQty": str(o.executed_qty),
            "cumQuote": str(o.cum_quote),
            "timeInForce": o.time_in_force,
            "type": o.order_type,
            "reduceOnly": o.reduce_only,
            "closePosition": False,
            "side": o.side,
            "positionSide": o.position_side,
            "stopPrice": "0",
            "workingType": "CONTRACT_PRICE",
            "priceProtect": False,
            "origType": o.order_type,
            "priceMatch": "NONE",
            "selfTradePreventionMode": "EXPIRE_MAKER",
            "goodTillDate": 0,
            "time": o.update_ms,
            "updateTime": o.update_ms,
        }

    def _exchange_info(self) -> dict[str, Any]:
        symbols = []
        for s in self.state.symbols.values():
            symbols.append(
                {
                    "symbol": s.symbol,
                    "pair": s.symbol,
                    "contractType": "PERPETUAL",
                    "deliveryDate": 4133404800000,
                    "onboardDate": 1569398400000,
                    "status": "TRADING",
                    "maintMarginPercent": "2.5000",
                    "requiredMarginPercent": "5.0000",
                    "baseAsset": s.base,
                    "quoteAsset": s.quote,
                    "marginAsset": s.quote,
                    "pricePrecision": s.price_precision,
                    "quantityPrecision": s.quantity_precision,
                    "baseAssetPrecision": 8,
                    "quotePrecision": 8,
                    "underlyingType": "COIN",
                    "underlyingSubType": [],
                    "triggerProtect": "0.0500",
                    "liquidationFee": "0.012500",
                    "marketTakeBound": "0.05",
                    "maxMoveOrderLimit": 10000,
                    "filters": [
                        {
                            "filterType": "PRICE_FILTER",
                            "minPrice": s.tick_size,
                            "maxPrice": "4529764",
                            "tickSize": s.tick_size,
                        },
                        {
                            "filterType": "LOT_SIZE",
                            "minQty": s.step_size,
                            "maxQty": "1000",
                            "stepSize": s.step_size,
                        },
                        {
                            "filterType": "MARKET_LOT_SIZE",
                            "minQty": s.step_size,
                            "maxQty": "120",
                            "stepSize": s.step_size,
                        },
                        {"filterType": "MAX_NUM_ORDERS", "limit": 200},
                        {"filterType": "MAX_NUM_ALGO_ORDERS", "limit": 10},
                        {"filterType": "MIN_NOTIONAL", "notional": s.min_notional},
                        {
                            "filterType": "PERCENT_PRICE",
                            "multiplierUp": "1.0500",
                            "multiplierDown": "0.9500",
                            "multiplierDecimal": "4",
                        },
                    ],
                    "orderTypes": [
                        "LIMIT",
                        "MARKET",
                        "STOP",
                        "STOP_MARKET",
                        "TAKE_PROFIT",
                        "TAKE_PROFIT_MARKET",
                        "TRAILING_STOP_MARKET",
                    ],
                    "timeInForce": ["GTC", "IOC", "FOK", "GTX", "GTD"],
                    "permissionSets": ["GRID", "COPY"],
                }
            )
        return {
            "timezone": "UTC",
            "serverTime": _now_ms(),
            "futuresType": "U_MARGINED",
            "rateLimits": [],
            "exchangeFilters": [],
            "assets": [],
            "symbols": symbols,
        }

    def _position_risk(self, symbol: str | None) -> list[dict[str, Any]]:
        out = []
        for (sym, side), amt in self.state.positions.items():
            if symbol is not None and sym != symbol:
                continue
            bid, _, ask, _ = self.state.books[sym]
            mark = (bid + ask) / 2
            out.append(
                {
                    "symbol": sym,
                    "positionSide": side,
                    "positionAmt": str(amt),
                    "entryPrice": str(mark),
                    "breakEvenPrice": str(mark),
                    "markPrice": str(mark),
                    "unRealizedProfit": "0",
                    "liquidationPrice": "0",
                    "isolatedMargin": "0",
                    "notional": str(amt * mark),
                    "marginAsset": self.state.symbols[sym].quote,
                    "isolatedWallet": "0",
                    "initialMargin": "0",
                    "maintMargin": "0",
                    "positionInitialMargin": "0",
                    "openOrderInitialMargin": "0",
                    "adl": 0,
                    "bidNotional": "0",
                    "askNotional": "0",
                    "updateTime": _now_ms(),
                }
            )
        return out

    def _route(self, method: str, path: str, p: dict[str, str]) -> Any:
        st = self.state
        if (method, path) == ("GET", "/fapi/v1/exchangeInfo"):
            return self._exchange_info()
        if (method, path) == ("GET", "/fapi/v1/time"):
            return {"serverTime": _now_ms()}
        if (method, path) == ("GET", "/fapi/v1/ticker/bookTicker"):
            bid, bq, ask, aq = st.books[p["symbol"]]
            return {
                "symbol": p["symbol"],
                "bidPrice": str(bid) if bq else "0.00",
                "bidQty": str(bq),
                "askPrice": str(ask) if aq else "0.00",
                "askQty": str(aq),
                "time": _now_ms(),
                "lastUpdateId": st.next_id,
            }
        if (method, path) == ("GET", "/fapi/v1/depth"):
            bid, bq, ask, aq = st.books[p["symbol"]]
            now = _now_ms()
            return {
                "lastUpdateId": st.next_id,
                "E": now,
                "T": now,
                "bids": [[str(bid), str(bq)]] if bq else [],
                "asks": [[str(ask), str(aq)]] if aq else [],
            }
        if (method, path) == ("GET", "/fapi/v1/positionSide/dual"):
            return {"dualSidePosition": st.hedge_mode}
        if method == "GET" and path in ("/fapi/v2/positionRisk", "/fapi/v3/positionRisk"):
            return self._position_risk(p.get("symbol"))
        if (method, path) == ("GET", "/fapi/v1/leverageBracket"):
            return [
                {
                    "symbol": sym,
                    "notionalCoef": 1.0,
                    "brackets": [
                        {
                            "bracket": 1,
                            "initialLeverage": 125,
                            "notionalCap": 50000,
                            "notionalFloor": 0,
                            "maintMarginRatio": 0.004,
                            "cum": 0.0,
                        }
                    ],
                }
                for sym in st.symbols
                if p.get("symbol") in (None, sym)
            ]
        if (method, path) == ("POST", ORDER_PATH):
            return self._order_json(self._new_order(p))
        if (method, path) in (("GET", ORDER_PATH), ("DELETE", ORDER_PATH)):
            cid = p.get("origClientOrderId", "")
            order = st.orders.get(cid)
            lagging = method == "GET" and st.query_lag[cid] > 0
            if lagging:
                st.query_lag[cid] -= 1
            if order is None or order.symbol != p.get("symbol") or lagging:
                if method == "GET":
                    raise BinanceUsdmError(-2013, "Order does not exist.")
                raise BinanceUsdmError(-2011, "Unknown order sent.")
            if method == "DELETE":
                if order.status not in ("NEW", "PARTIALLY_FILLED"):
                    raise BinanceUsdmError(-2011, "Unknown order sent.")
                order.status = "CANCELED"
                order.update_ms = _now_ms()
                self._notify(order, "CANCELED")
            return self._order_json(order)
        if path == ALGO_ORDER_PATH and method in ("POST", "GET", "DELETE"):
            return self._algo_route(method, p)
        if (method, path) == ("GET", "/fapi/v1/openAlgoOrders"):
            return [
                self._algo_json(a)
                for a in st.algo_orders.values()
                if a.status == "NEW" and p.get("symbol") in (None, a.symbol)
            ]
        if (method, path) == ("GET", "/fapi/v1/openOrders"):
            return [
                self._order_json(o)
                for o in st.orders.values()
                if o.status in ("NEW", "PARTIALLY_FILLED") and p.get("symbol") in (None, o.symbol)
            ]
        if (method, path) == ("GET", "/fapi/v1/userTrades"):
            listed = st.trades
            if st.trades_lag > 0:
                st.trades_lag -= 1
                listed = st.trades[:-1]
            return [
                t
                for t in listed
                if t["symbol"] == p["symbol"] and ("orderId" not in p or str(t["orderId"]) == p["orderId"])
            ]
        raise BinanceUsdmError(-1000, f"fake has no route for {method} {path}", 404)

    def _check_signature(self, headers: Any, payload: str) -> None:
        if headers.get("X-MBX-APIKEY") != self.api_key:
            raise BinanceUsdmError(-2015, "Invalid API-key, IP, or permissions for action.", 401)
        unsigned, sep, signature = payload.rpartition("&signature=")
        expected = hmac.new(self.api_secret.encode(), unsigned.encode(), hashlib.sha256).hexdigest()
        if not sep or not hmac.compare_digest(signature, expected):
            raise BinanceUsdmError(-1022, "Signature for this request is not valid.")

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                return

            def _reply(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                try:
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    return

            def _handle(self, method: str) -> None:
                split = urlsplit(self.path)
                payload = split.query
                if method in ("POST", "PUT"):
                    length = int(self.headers.get("Content-Length", "0"))
                    payload = self.rfile.read(length).decode()
                params = dict(parse_qsl(payload, keep_blank_values=True))
                path = split.path
                with fake.state.lock:
                    fake.state.requests.append((method, path, params))
                    queue = fake.state.faults.get((method, path))
                    fault = queue.popleft() if queue else None
                    if method == "POST" and path == ORDER_PATH and "newClientOrderId" in params:
                        fake.state.order_posts[params["newClientOrderId"]] += 1
                    if isinstance(fault, Ban):
                        fake.state.banned_until = time.monotonic() + fault.seconds
                    banned_s = fake.state.banned_until - time.monotonic()
                if banned_s > 0:
                    until_ms = _now_ms() + int(banned_s * 1000)
                    self._reply(418, {"code": -1003, "msg": f"Way too much request weight used; IP banned until "
                                                            f"{until_ms}. Please use WebSocket Streams for live "
                                                            "updates to avoid bans."},
                                {"Retry-After": str(math.ceil(banned_s))})
                    return
                try:
                    if "signature=" in payload:
                        fake._check_signature(self.headers, payload)
                    elif path in (ORDER_PATH, ALGO_ORDER_PATH, "/fapi/v1/openOrders", "/fapi/v1/openAlgoOrders",
                                  "/fapi/v1/userTrades"):
                        raise BinanceUsdmError(-1102, "Mandatory parameter 'signature' was not sent.")
                    if isinstance(fault, ErrorReply):
                        raise BinanceUsdmError(fault.code, fault.msg, fault.http_status)
                    if isinstance(fault, RateLimitReply):
                        self._reply(
                            fault.http_status,
                            {
                                "code": -1003,
                                "msg": "Too many requests; current limit is 2400 requests per minute.",
                            },
                            {"Retry-After": str(fault.retry_after_s)},
                        )
                        return
                    if isinstance(fault, Drop):
                        if fault.create_first:
                            with fake.state.lock:
                                fake._route(method, path, params)
                        self.close_connection = True
                        return
                    if isinstance(fault, Stall):
                        if fault.create_first:
                            with fake.state.lock:
                                fake._route(method, path, params)
                        time.sleep(fault.seconds)
                        return
                    with fake.state.lock:
                        extra = fake.state.extra_routes.get((method, path))
                        if extra is not None:
                            body = extra(params, self.headers.get("X-MBX-APIKEY"))
                        else:
                            body = fake._route(method, path, params)
                    self._reply(200, body)
                except BinanceUsdmError as err:
                    self._reply(err.http_status, {"code": err.code, "msg": err.msg})

            def do_GET(self) -> None:
                self._handle("GET")

            def do_POST(self) -> None:
                self._handle("POST")

            def do_DELETE(self) -> None:
                self._handle("DELETE")

            def do_PUT(self) -> None:
                self._handle("PUT")

        return Handler
