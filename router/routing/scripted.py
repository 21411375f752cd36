"""``ScriptedVenue``: a deterministic venue whose touch, fills and faults follow a script.

It exists to test and benchmark the routing state machine against known truth: the test decides where
the touch is at each instant, when a resting order gets filled, and which call fails how. Matching is
deliberately simple (no queue model; that is the simulated venue's job): a post-only order that would
cross at arrival is rejected, a marketable limit takes the far touch up to its size, an IOC or market
order expires what the touch did not fill, a resting (GTC) order fills fully when a later touch trades
through it and partially when a ``ScriptedFill`` says so. Fees are charged on the USD notional of the
contract spec the test gives (:func:`router.contract.notional_usd`), as the simulated venue does.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from router_tuner.router.contract import ContractSpec, check_spec, notional_usd
from router_tuner.router.events import Fill, Liquidity
from router_tuner.router.venue import (
    OrderNotFound,
    OrderRequest,
    OrderState,
    OrderStatus,
    PostOnlyRejected,
    TopOfBook,
    VenueError,
    check_time_in_force,
)


@dataclass(frozen=True, slots=True)
class Quote:
    """The touch from ``ts_ns`` on (until the next quote)."""

    ts_ns: int
    bid: float
    ask: float
    bid_qty: float
    ask_qty: float


@dataclass(frozen=True, slots=True)
class ScriptedFill:
    """At ``ts_ns``, the oldest resting order gets ``qty`` (capped at what it has left) as maker."""

    ts_ns: int
    qty: float


@dataclass(frozen=True, slots=True)
class Fault:
    """The ``call``-th call (from 1) of ``op`` (``touch``, ``place``, ``cancel``, ``fetch``) raises ``error``.

    ``applied`` says whether the venue carried the call out before failing to answer (a timeout after the
    order was accepted or the cancel took effect); it only matters for ``place`` and ``cancel``.
    """

    op: str
    call: int
    error: VenueError
    applied: bool


class ScriptedClock:
    """A clock that only moves when told to; ``sleep_until`` jumps to the requested instant."""

    def __init__(self, start_ns: int) -> None:
        self._now_ns = start_ns

    def now_ns(self) -> int:
        return self._now_ns

    def sleep_until(self, ts_ns: int) -> None:
        self._now_ns = max(self._now_ns, ts_ns)


@dataclass(slots=True)
class _Order:
    request: OrderRequest
    status: OrderStatus
    placed_ns: int
    fills: list[Fill] = field(default_factory=list)

    @property
    def filled_qty(self) -> float:
        return sum(f.qty for f in self.fills)

    @property
    def left_qty(self) -> float:
        return self.request.qty - self.filled_qty

    def state(self) -> OrderState:
        req = self.request
        return OrderState(client_order_id=req.client_order_id, symbol=req.symbol, status=self.status,
                          qty=req.qty, filled_qty=self.filled_qty, price=req.price, fills=tuple(self.fills))


class ScriptedVenue:
    """A venue for one symbol following ``quotes``, ``fills`` and ``faults`` on a ``ScriptedClock``.

    Every order request the router sent is recorded in ``requests``, failed ones included (and every
    cancel that took effect in ``cancels``), so tests can assert what the
    router sent; a client order id used twice is refused, as real venues do.

    Examples
    --------
    >>> from router_tuner.router.contract import Contract
    >>> venue = ScriptedVenue("BTCUSDT", [Quote(0, 100.0, 100.1, 5.0, 5.0)], contract=Contract("linear", 1.0),
    ...                       fills=[], faults=[], maker_fee_bps=2.0, taker_fee_bps=5.0, entry_latency_ns=0,
    ...                       cancel_latency_ns=0)
    >>> venue.top_of_book("BTCUSDT").mid
    100.05
    >>> venue.contract("BTCUSDT")
    Contract('linear', 1.0)
    """

    name = "scripted"

    def __init__(self, symbol: str, quotes: Iterable[Quote], *, contract: ContractSpec, fills: Iterable[ScriptedFill],
                 faults: Iterable[Fault], maker_fee_bps: float, taker_fee_bps: float, entry_latency_ns: int,
                 cancel_latency_ns: int, start_ns: int = 0) -> None:
        check_spec(contract, where=f"ScriptedVenue({symbol}) contract")
        self.symbol = symbol
        self._contract = contract
        self._quotes = sorted(quotes, key=lambda q: q.ts_ns)
        if not self._quotes:
            raise ValueError("ScriptedVenue needs at least one quote")
        self._fills = sorted(fills, key=lambda f: f.ts_ns)
        self._faults = {(f.op, f.call): f for f in faults}
        self._calls: dict[str, int] = {}
        self.maker_fee_bps, self.taker_fee_bps = maker_fee_bps, taker_fee_bps
        self.entry_latency_ns, self.cancel_latency_ns = entry_latency_ns, cancel_latency_ns
        self._clock = ScriptedClock(start_ns)
        self._orders: dict[str, _Order] = {}
        self._trade_seq = 0
        self.requests: list[OrderRequest] = []
        self.cancels: list[str] = []

    @property
    def clock(self) -> ScriptedClock:
        return self._clock

    # --- protocol ---------------------------------------------------------------------------------

    def contract(self, symbol: str) -> ContractSpec:
        """The spec given at construction; fees are charged on its USD notional."""
        self._check_symbol(symbol)
        return self._contract

    def top_of_book(self, symbol: str) -> TopOfBook:
        self._check_symbol(symbol)
        self._fault("touch", lambda: None)
        self._advance()
        q = self._quote()
        return TopOfBook(symbol=symbol, bid=q.bid, bid_qty=q.bid_qty, ask=q.ask, ask_qty=q.ask_qty, ts_ns=q.ts_ns)

    def place_order(self, request: OrderRequest) -> OrderState:
        self._check_symbol(request.symbol)
        self.requests.append(request)
        check_time_in_force(request)
        self._fault("place", lambda: self._accept(request))
        return self._accept(request).state()

    def cancel_order(self, symbol: str, client_order_id: str) -> OrderState:
        self._check_symbol(symbol)
        self._fault("cancel", lambda: self._do_cancel(client_order_id))
        return self._do_cancel(client_order_id).state()

    def fetch_order(self, symbol: str, client_order_id: str) -> OrderState:
        self._check_symbol(symbol)
        self._fault("fetch", lambda: None)
        self._advance()
        return self._get(client_order_id).state()

    def open_orders(self, symbol: str | None) -> tuple[OrderState, ...]:
        self._advance()
        return tuple(o.state() for o in self._orders.values()
                     if o.status in ("open", "partially_filled") and symbol in (None, o.request.symbol))

    # --- matching ---------------------------------------------------------------------------------

    def _accept(self, request: OrderRequest) -> _Order:
        if request.client_order_id in self._orders:
            raise VenueError(f"duplicate client order id {request.client_order_id}")
        self._clock.sleep_until(self._clock.now_ns() + self.entry_latency_ns)
        self._advance()
        order = _Order(request=request, status="open", placed_ns=self._clock.now_ns())
        q = self._quote()
        crosses = (request.order_type == "market"
                   or (request.side == "buy" and request.price is not None and request.price >= q.ask)
                   or (request.side == "sell" and request.price is not None and request.price <= q.bid))
        if crosses and request.post_only:
            order.status = "rejected"
            self._orders[request.client_order_id] = order
            raise PostOnlyRejected(f"{request.client_order_id} would cross ({request.side} {request.price} "
                                   f"vs bid {q.bid} ask {q.ask})")
        self._orders[request.client_order_id] = order
        if crosses:
            far_px, far_qty = (q.ask, q.ask_qty) if request.side == "buy" else (q.bid, q.bid_qty)
            self._fill(order, min(order.left_qty, far_qty), far_px, "taker")
        if request.time_in_force == "IOC" and order.left_qty > 0:
            order.status = "expired"  # an IOC (market orders are IOC) never rests
        return order

    def _do_cancel(self, client_order_id: str) -> _Order:
        order = self._get(client_order_id)
        self.cancels.append(client_order_id)
        self._clock.sleep_until(self._clock.now_ns() + self.cancel_latency_ns)
        self._advance()
        if order.status in ("open", "partially_filled"):
            order.status = "canceled"
        return order

    def _advance(self) -> None:
        """Apply scripted fills due by now, then trade through every resting order the touch crossed."""
        now = self._clock.now_ns()
        while self._fills and self._fills[0].ts_ns <= now:
            scripted = self._fills.pop(0)
            resting = self._resting()
            if resting:
                order = resting[0]
                self._fill(order, min(scripted.qty, order.left_qty), order.request.price, "maker",
                           ts_ns=scripted.ts_ns)
        q = self._quote()
        for order in self._resting():
            req = order.request
            moved_after = q.ts_ns > order.placed_ns  # a touch the order rested through, not the one it met
            if moved_after and ((req.side == "buy" and q.ask <= req.price)
                                or (req.side == "sell" and q.bid >= req.price)):
                self._fill(order, order.left_qty, req.price, "maker", ts_ns=q.ts_ns)

    def _resting(self) -> list[_Order]:
        return [o for o in self._orders.values() if o.status in ("open", "partially_filled")
                and o.request.order_type == "limit"]

    def _fill(self, order: _Order, qty: float, price: float | None, liquidity: Liquidity, *,
              ts_ns: int | None = None) -> None:
        if qty <= 0 or price is None:
            return
        self._trade_seq += 1
        fee_bps = self.maker_fee_bps if liquidity == "maker" else self.taker_fee_bps
        fee_usd = notional_usd(self._contract, price, qty) * fee_bps / 1e4
        order.fills.append(Fill(trade_id=f"T{self._trade_seq}", client_order_id=order.request.client_order_id,
                                price=price, qty=qty, fee_usd=fee_usd, liquidity=liquidity,
                                ts_ns=self._clock.now_ns() if ts_ns is None else ts_ns))
        order.status = "filled" if math.isclose(order.left_qty, 0.0, abs_tol=1e-12) else "partially_filled"

    # --- helpers ----------------------------------------------------------------------------------

    def _quote(self) -> Quote:
        now = self._clock.now_ns()
        current = self._quotes[0]
        for q in self._quotes:
            if q.ts_ns > now:
                break
            current = q
        return current

    def _get(self, client_order_id: str) -> _Order:
        order = self._orders.get(client_order_id)
        if order is None:
            raise OrderNotFound(f"no order {client_order_id}")
        return order

    def _fault(self, op: str, apply: Callable[[], object]) -> None:
        call = self._calls[op] = self._calls.get(op, 0) + 1
        fault = self._faults.pop((op, call), None)
        if fault is None:
            return
        if fault.applied:
            with contextlib.suppress(VenueError):
                apply()
        raise fault.error

    def _check_symbol(self, symbol: str) -> None:
        if symbol != self.symbol:
            raise OrderNotFound(f"{self.name} venue trades {self.symbol}, not {symbol}")

    @property
    def pending_faults(self) -> int:
        return len(self._faults)
