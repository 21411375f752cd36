"""The venue protocol: the only surface the router speaks, whether the venue is simulated or live.

Exchange quirks (Binance's GTX time-in-force, hedge-mode ``positionSide``, ``closePosition``) live in
the adapters' mappings, never in routing logic. Errors are mapped once into the small hierarchy below.
Time is a venue concern too: the simulated venue's clock advances by replaying the market, the live
venue's clock is the wall clock, and the router only ever calls ``clock.now_ns()`` and
``clock.sleep_until(ns)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

import msgspec

from router_tuner.router.contract import ContractSpec
from router_tuner.router.events import Fill, PositionSide, Side

OrderType = Literal["limit", "market"]
TimeInForce = Literal["GTC", "IOC"]
OrderStatus = Literal["open", "partially_filled", "filled", "canceled", "rejected", "expired"]
TERMINAL_STATUSES: frozenset[str] = frozenset({"filled", "canceled", "rejected", "expired"})


class TopOfBook(msgspec.Struct, frozen=True):
    """Best bid and ask with their sizes, as of ``ts_ns``."""

    symbol: str
    bid: float
    bid_qty: float
    ask: float
    ask_qty: float
    ts_ns: int

    @property
    def mid(self) -> float:
        return 0.5 * (self.bid + self.ask)

    @property
    def spread_bps(self) -> float:
        return (self.ask - self.bid) / self.mid * 1e4


class OrderRequest(msgspec.Struct, frozen=True):
    """A new order. ``client_order_id`` is the idempotency key: the same id is never sent twice.

    ``price`` is required for limit orders and must be ``None`` for market orders. ``post_only``
    makes a limit order maker-or-reject. ``position_side`` is ``BOTH`` in one-way mode.

    ``time_in_force`` says whether the order may rest: ``GTC`` rests until filled or canceled, ``IOC``
    fills what it can at arrival (up to its limit price) and expires the rest, never resting. It is
    always stated, because the two differ in what the caller must clean up (see
    :func:`check_time_in_force` for the combinations venues accept).
    """

    client_order_id: str
    symbol: str
    side: Side
    qty: float
    order_type: OrderType
    price: float | None
    time_in_force: TimeInForce
    post_only: bool
    reduce_only: bool
    close_position: bool
    position_side: PositionSide


def check_time_in_force(request: OrderRequest) -> None:
    """Refuse time-in-force combinations that contradict the order (raises :class:`InvalidOrder`).

    A market order never rests, so it must say ``IOC``; a post-only order is a resting maker order, so
    it must say ``GTC`` (Binance spells that pair GTX). Every venue applies the same rule.
    """
    cid = request.client_order_id
    tif = request.time_in_force
    if tif not in ("GTC", "IOC"):
        raise InvalidOrder(f"{cid}: time_in_force must be 'GTC' or 'IOC', got {tif!r}")
    if request.order_type == "market" and tif != "IOC":
        raise InvalidOrder(f"{cid}: a market order never rests: time_in_force must be 'IOC', got {tif!r}")
    if request.post_only and tif != "GTC":
        raise InvalidOrder(f"{cid}: a post-only order rests as maker: time_in_force must be 'GTC', got {tif!r}")


class UnpricedFee(msgspec.Struct, frozen=True):
    """A fill's fee the venue charged in an asset nothing the venue lists prices in the market's quote (BNB on a
    USDC-quoted symbol): the fill's ``fee_usd`` leaves it out, and whoever reads the fill flags it
    (``router.events.FEE_UNPRICED``) instead of learning a cost without it."""

    trade_id: str
    amount: float
    currency: str
    quote: str
    reason: str
    """Why it could not be priced (``no BNB/USDC market``)."""

    def describe(self, client_order_id: str) -> str:
        """One line naming the fill, the fee and why it was not priced."""
        return (f"fill {self.trade_id} of {client_order_id}: fee {self.amount:.12g} {self.currency} not priced in "
                f"{self.quote} ({self.reason}), left out of fee_usd")


class OrderState(msgspec.Struct, frozen=True):
    """The venue's view of one order. ``fills`` is every fill so far (cumulative, each once); ``unpriced_fees`` the
    fees of those fills that could not be stated in the quote (:class:`UnpricedFee`), by trade id."""

    client_order_id: str
    symbol: str
    status: OrderStatus
    qty: float
    filled_qty: float
    price: float | None
    fills: tuple[Fill, ...]
    unpriced_fees: tuple[UnpricedFee, ...] = ()

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES


class VenueError(Exception):
    """Base of every error a venue raises; adapters map exchange errors into these."""


class PostOnlyRejected(VenueError):
    """A post-only order would have crossed the book at arrival and was refused."""


class RateLimited(VenueError):
    """The venue asked us to slow down; ``retry_after_s`` is its hint when it gave one."""

    def __init__(self, message: str, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class VenueTimeout(VenueError):
    """No answer in time: the order may or may not exist; resolve by querying the client order id."""


class InsufficientMargin(VenueError):
    """The account cannot carry the order."""


class BelowMinNotional(VenueError):
    """The order is smaller than the venue accepts."""


class VenueProtocolError(VenueError):
    """The venue answered something its own protocol rules out (e.g. a fill reported under another order)."""


class InvalidOrder(VenueError):
    """The request itself is malformed for this venue (bad quantity, price, symbol or flags)."""


class ReduceOnlyRejected(InvalidOrder):
    """A reducing order found nothing to reduce, or would have increased the position (Binance -2022)."""


class StopWouldTrigger(InvalidOrder):
    """A protective order's trigger condition already holds at arrival (Binance -2021)."""


class OrderNotFound(VenueError):
    """The venue has no order with that client order id."""


class VenueUnavailable(VenueError):
    """The connection to the venue is down."""


StopKind = Literal["stop_market", "take_profit_market"]
WorkingType = Literal["CONTRACT_PRICE", "MARK_PRICE"]
StopStatus = Literal["working", "triggered", "canceled", "expired", "rejected"]
STOP_TERMINAL: frozenset[str] = frozenset({"triggered", "canceled", "expired", "rejected"})


@dataclass(frozen=True, slots=True)
class StopRequest:
    """An exchange-side protective order: when the trigger price is reached, close the whole position.

    Always ``closePosition`` (Binance's Close-All): no quantity, no reduce-only flag; the venue closes
    whatever the ``position_side`` leg holds when it triggers. ``side`` is the closing side (sell closes a
    long, buy a short). Trigger rule (Binance USDⓈ-M): a ``stop_market`` sell triggers when the working
    price falls to ``trigger_price`` or below, a buy when it rises to it or above; a
    ``take_profit_market`` the other way round. ``working_type`` names the price: the last trade
    (``CONTRACT_PRICE``) or the mark price (``MARK_PRICE``). A stop whose condition already holds when it
    arrives is refused with :class:`StopWouldTrigger` (Binance -2021).
    """

    client_order_id: str
    symbol: str
    kind: StopKind
    side: Side
    position_side: PositionSide
    trigger_price: float
    working_type: WorkingType


def stop_condition_met(kind: StopKind, side: Side, price: float, trigger_price: float) -> bool:
    """Whether ``price`` satisfies a stop's trigger condition (the rule in :class:`StopRequest`)."""
    falls_through = (kind == "stop_market") == (side == "sell")
    return price <= trigger_price if falls_through else price >= trigger_price


@dataclass(frozen=True, slots=True)
class StopState:
    """The venue's view of one protective order; ``fills`` are those of the market order its trigger placed."""

    client_order_id: str
    symbol: str
    kind: StopKind
    side: Side
    position_side: PositionSide
    trigger_price: float
    status: StopStatus
    triggered_ts_ns: int | None
    fills: tuple[Fill, ...]
    unpriced_fees: tuple[UnpricedFee, ...] = ()

    @property
    def is_terminal(self) -> bool:
        return self.status in STOP_TERMINAL


class Clock(Protocol):
    """Time as the router sees it: simulated (replay advances) or wall clock."""

    def now_ns(self) -> int: ...

    def sleep_until(self, ts_ns: int) -> None: ...


class Venue(Protocol):
    """What the router needs of a market: what a quantity is worth, the touch, orders, cancels, status."""

    name: str

    @property
    def clock(self) -> Clock: ...

    def contract(self, symbol: str) -> ContractSpec:
        """The contract spec ``symbol`` trades under (linear/spot: base units, inverse: USD contracts).

        Required: fees in bps and every USD notional derive from it (``router.contract.notional_usd``);
        a venue that cannot say raises rather than let a quantity pass for base coin.
        """
        ...

    def top_of_book(self, symbol: str) -> TopOfBook: ...

    def place_order(self, request: OrderRequest) -> OrderState: ...

    def cancel_order(self, symbol: str, client_order_id: str) -> OrderState:
        """Cancel and return the final state; fills that landed before the cancel are in it."""
        ...

    def fetch_order(self, symbol: str, client_order_id: str) -> OrderState: ...

    def open_orders(self, symbol: str | None) -> tuple[OrderState, ...]: ...


class StopVenue(Venue, Protocol):
    """A venue that keeps protective orders on its side, so they work while the executor is down.

    Stops are addressed apart from plain orders (Binance keeps them in its algo service: other ids, other
    endpoints); ``open_orders`` never lists them.
    """

    def place_stop(self, request: StopRequest) -> StopState:
        """Send a protective order; raises :class:`StopWouldTrigger`, :class:`InvalidOrder` or
        :class:`ReduceOnlyRejected` (nothing to close)."""
        ...

    def cancel_stop(self, symbol: str, client_order_id: str) -> StopState:
        """Cancel a working stop and return its final state (a stop that already triggered says so)."""
        ...

    def fetch_stop(self, symbol: str, client_order_id: str) -> StopState: ...

    def open_stops(self, symbol: str | None) -> tuple[StopState, ...]: ...
