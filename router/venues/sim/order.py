"""One order inside the simulated venue: its fills, its status and, while it rests, its queue position.

A resting order keeps an expected size ahead of it (``front``) at its price. Trades at the price that
take our side reduce it; once they exhaust it, the excess fills us (partially or fully). Unexplained
decreases of the displayed level (cancels) move it by the configured queue model. The market trading
through our price (the other side's touch reaching it, or a trade beyond it) fills whatever is left.
Our own orders share the queue: an order placed at a price where earlier orders of ours rest on the same
side counts their remaining size ahead of it (``own_ahead``, not part of the displayed book), trades
there reach it only after they have gone through that part, cancels of others move only the displayed
part, and an earlier order of ours that leaves the queue (cancel, expiry) releases its place. Our orders
never match each other (no self-match).

The queue logic *claims* what the market would fill; the venue then *settles* each claim (in time
order across orders, since a reducing order's fill depends on the position the others left), either
granting it as a ``Fill`` or, for a reducing order with nothing left to reduce, expiring the order.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from router_tuner.router.events import Fill, Liquidity
from router_tuner.router.venue import OrderRequest, OrderState, OrderStatus
from router_tuner.router.venues.sim.book import TRADE_EVENT, LevelCursor, TapeBook, WindowMemo
from router_tuner.router.venues.sim.queue import QueueModel, front_after_level_change

FillSink = Callable[["SimOrder", int, int, Liquidity, int], None]
"""Receives one claim the order has just made: (order, price, size, liquidity, ts_ns)."""

_CLOSED: frozenset[OrderStatus] = frozenset({"canceled", "expired", "rejected"})


@dataclass(slots=True)
class SimOrder:
    """Mutable venue-side state of one order; prices and sizes are the tape's scaled integers."""

    request: OrderRequest
    book: TapeBook
    is_buy: bool
    px: int | None
    qty: int
    status: OrderStatus
    filled: int = 0
    claimed: int = 0  # filled by the queue logic, not yet settled by the venue
    fills: list[Fill] = field(default_factory=list)
    front: float | None = None  # expected size ahead; None while our level was never displayed
    level_qty: float | None = None  # last displayed size of our level that we used
    traded_since_level: float = 0.0  # trades at our level since that observation
    synced_ns: int = 0  # market events with time <= this have been applied
    cursor: LevelCursor | None = None  # reader of the events at our price, while resting
    own_ahead: float = 0.0  # part of ``front`` that is our own earlier orders at this price (not displayed)
    quiet_until_ns: int = -1  # nothing in (synced_ns, this] can fill the order (TapeBook.quiet_until) ...
    quiet_from_ns: int = -1  # ... as computed when synced_ns was this
    _state: OrderState | None = field(default=None, repr=False, compare=False)  # the last state() built

    @property
    def leaves(self) -> int:
        """Units that may still be claimed: none once canceled, expired or rejected."""
        return 0 if self.status in _CLOSED else self.qty - self.filled - self.claimed

    def claim(self, qty: int) -> None:
        """Reserve ``qty`` units the market filled, until the venue settles them."""
        if qty <= 0 or qty > self.leaves:
            raise AssertionError(f"{self.request.client_order_id}: claim of {qty} with {self.leaves} left")
        self.claimed += qty

    def settle(self, claimed: int, fill: Fill | None, granted: int) -> None:
        """Resolve a claim of ``claimed`` units: ``granted`` of them became ``fill``, the rest lapse."""
        if claimed <= 0 or claimed > self.claimed or not 0 <= granted <= claimed or (fill is None) != (granted == 0):
            raise AssertionError(f"{self.request.client_order_id}: settle {granted}/{claimed} of {self.claimed}")
        self.claimed -= claimed
        if fill is not None:
            self.fills.append(fill)
            self.filled += granted
        if self.status not in _CLOSED and self.filled > 0:
            self.status = "filled" if self.filled == self.qty else "partially_filled"

    def expire(self) -> None:
        """End the order; claims still pending will be settled with nothing granted."""
        self.status = "expired"

    def state(self) -> OrderState:
        """The order as the venue reports it; the same (immutable) object while status and fills are unchanged,
        as they are at most polls."""
        last = self._state
        if last is not None and last.status == self.status and len(last.fills) == len(self.fills):
            return last
        req = self.request
        self._state = OrderState(client_order_id=req.client_order_id, symbol=req.symbol, status=self.status,
                                 qty=req.qty, filled_qty=self.filled / self.book.tape.qty_scale, price=req.price,
                                 fills=tuple(self.fills))
        return self._state

    def start_resting(self, ts_ns: int, improves_touch: bool, own_ahead: int) -> None:
        """Estimate the queue ahead at arrival: the displayed size at our price (0 if we improve it), plus
        ``own_ahead``, what our earlier orders resting at this price still have to fill.

        With usable depth the level's depth size is used (the touch size if depth does not show the
        touch level); without depth the touch size at the touch, and "unknown" behind it, which becomes
        the whole displayed size the first time the level is seen (the pessimistic choice).
        """
        assert self.px is not None
        self.synced_ns = ts_ns
        self.quiet_until_ns = self.quiet_from_ns = -1
        self.cursor = self.book.level_cursor(self.is_buy, self.px, ts_ns)
        self.status = "open" if self.filled == 0 else "partially_filled"
        self.own_ahead = float(own_ahead)
        if improves_touch:
            self.level_qty = 0.0
            self.front = self.own_ahead
            return
        quote = self.book.quote_at(ts_ns)
        touch_px, touch_qty = (quote.bid_px, quote.bid_qty) if self.is_buy else (quote.ask_px, quote.ask_qty)
        level: int | None = None
        if self.book.depth_known_at(ts_ns):
            level = self.book.level_qty_at(self.is_buy, self.px, ts_ns)
        if self.px == touch_px and not level:
            level = touch_qty
        self.level_qty = None if level is None else float(level)
        self.front = None if level is None else float(level) + self.own_ahead

    def release_ahead(self, units: int) -> None:
        """An earlier order of ours at this price left the queue with ``units`` unfilled: we move up."""
        moved = min(self.own_ahead, float(units))
        self.own_ahead -= moved
        if self.front is not None:
            self.front = max(0.0, self.front - moved)

    def advance(self, t1_ns: int, queue_model: QueueModel, sink: FillSink, windows: WindowMemo, *,
                catch_up: bool = False) -> None:
        """Apply the market in (synced_ns, t1_ns] to this resting order, filling it where due.

        ``windows`` is the venue's memo of the book's windows (shared by the orders of one step). Until the
        market can next fill the order (a trade at or through its price, the other side's touch reaching it:
        ``quiet_until_ns``) nothing is applied: the moves of its level only change the queue ahead, and they
        are applied, in time order, by the first step that may fill it, or by ``catch_up`` (needed before an
        earlier order of ours leaves the queue ahead of this one). Most polls of a resting order do nothing.
        """
        if t1_ns <= self.synced_ns or self.leaves == 0:
            return
        assert self.px is not None and self.cursor is not None
        if not catch_up:
            if self.quiet_from_ns != self.synced_ns:
                self.quiet_until_ns = self.book.quiet_until(self.is_buy, self.px, self.synced_ns)
                self.quiet_from_ns = self.synced_ns
            if t1_ns <= self.quiet_until_ns:
                return
        win = windows.window(self.book, self.synced_ns, t1_ns, self.is_buy)
        cross_ns = self.book.first_cross_ns(self.is_buy, self.px, win)
        events = self.cursor.take_until(t1_ns if cross_ns is None else cross_ns, win)
        if events is not None:
            for t, kind, size in zip(*events, strict=True):
                if kind == TRADE_EVENT:
                    self._on_trade(size, t, sink)
                else:
                    self._on_level(size, queue_model)
                if self.leaves == 0:
                    break
        if cross_ns is not None and self.leaves > 0:
            self._claim(self.px, self.leaves, cross_ns, sink)
        self.synced_ns = t1_ns

    def _on_trade(self, size: int, ts_ns: int, sink: FillSink) -> None:
        if self.front is None:
            return  # our level was never displayed: a trade there cannot be placed relative to us
        self.traded_since_level += size
        self.front -= size
        self.own_ahead = min(self.own_ahead, max(self.front, 0.0))  # trades go through the displayed part first
        if self.front < 0:
            take = min(int(-self.front), self.leaves)
            self.front = 0.0
            if take > 0:
                self._claim(self.px, take, ts_ns, sink)  # type: ignore[arg-type]

    def _claim(self, px: int, qty: int, ts_ns: int, sink: FillSink) -> None:
        self.claim(qty)
        sink(self, px, qty, "maker", ts_ns)

    def _on_level(self, new_qty: int, queue_model: QueueModel) -> None:
        if self.front is None or self.level_qty is None:
            self.level_qty = float(new_qty)
            self.front = self.level_qty + self.own_ahead
        else:  # cancels by others move only the displayed part of the queue ahead
            displayed = front_after_level_change(queue_model, self.front - self.own_ahead, self.level_qty,
                                                 float(new_qty), self.traded_since_level)
            self.front = displayed + self.own_ahead
            self.level_qty = float(new_qty)
        self.traded_since_level = 0.0
