"""The simulated venue: the ``Venue`` protocol over replayed ``MarketTape``s, with latency and fees.

Time is the replay. ``clock.sleep_until(ts)`` moves the market to ``ts``; with no order resting that
is a constant-time jump (books are looked up by ``searchsorted`` when asked for), and with orders
resting only the events at or through their prices are examined.

Requests are blocking round trips, like a REST call to a live venue: ``place_order`` advances the
replay by the entry latency and returns the order as the matching engine left it at arrival, and a
post-only order that would cross the book *at arrival* raises :class:`PostOnlyRejected` (the order is
kept with status ``"rejected"``, so ``fetch_order`` also reports it). ``cancel_order`` advances by the
cancel latency and returns the final state: fills that landed before the cancel took effect (ties go
to the fill) are in it, and an order that filled completely in the meantime comes back ``"filled"``.
An IOC limit order walks the book at arrival up to its limit price (``router.venues.sim.taker``) and expires what is
left: ``"filled"``, or ``"expired"`` with whatever it filled; it never rests. Market orders are IOC.

Fees: ``fee_usd = notional_usd(contract, price, qty) * fee_bps / 1e4`` per fill, negative for a rebate,
with the symbol's contract spec from the config (:mod:`router.contract`): ``price * qty`` on linear
contracts and spot, ``contracts * contract_size`` on inverse (COIN-M) contracts, whose ``qty`` is a number
of contracts (Binance charges the fee in coin; its USD value at the fill price is this). The venue states
its specs (``contract(symbol)``) so the route's ``fees_bps`` divides by the same notional.

Positions follow Binance USDⓈ-M (see ``router.venues.sim.position``): every fill moves the position of its symbol
and position side. A reducing order (hedge: sell LONG / buy SHORT; one-way: ``reduce_only``) is
rejected at arrival with :class:`ReduceOnlyRejected` when its position is flat or on the side the
order would increase (Binance -2022); one larger than the position fills only the position and the
rest expires (status ``"expired"``); a resting one whose position goes flat or flips expires then.
``close_position`` mirrors the live ccxt venue, which reads the position when the request is sent and
places a reducing order of exactly that size: the request's ``qty`` is ignored (any finite number >= 0)
and the returned state reports the position size as ``qty``; with no position nothing is placed and
:class:`ReduceOnlyRejected` is raised. Malformed requests raise :class:`~router.venue.InvalidOrder`
naming the field; ``ValueError`` is kept for bad construction (config, tapes).

Protective orders (``place_stop``, :class:`~router.venue.StopRequest`) are closePosition stops kept apart
from plain orders, as Binance keeps them in its algo service: ``open_orders`` does not list them. One
works from its arrival; as the replay advances, the first moment the tape's working price meets its
condition (``router.venues.sim.stops``) it fires: the replay stops there, and a market order closes the
whole leg as it is then, walking the book like any taker (taker fee, slippage); with the leg already flat
it expires. A stop whose condition holds at arrival is refused (:class:`~router.venue.StopWouldTrigger`).

Tables: a venue queries each tape through a :class:`~router.venues.sim.book.TapeBook`. Given a
``MarketTape`` it builds its own; given a prebuilt ``TapeBook`` it shares it, since a book is immutable
(read-only arrays, no per-venue state). Build one book per tape and pass it to every venue that replays
that tape (lanes, policies): the tables are paid for once, and each venue keeps only its own orders,
positions, clock and cursors.

Our own orders share the market: a later order of ours at the price of an earlier one queues behind it
(``router.venues.sim.order``), and what our takers take from the displayed book is gone for our later
takers until the tape shows a new touch on that side (``router.venues.sim.taker``).

Not modelled: margin and liquidation, self-matching between our own orders, and the market's reaction to
our orders (the recording goes on as it was; a touch change refills what we took).
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Mapping, Sequence
from typing import get_args

import msgspec
import numpy as np

from router_tuner.router.contract import ContractSpec, notional_usd
from router_tuner.router.events import Fill, Liquidity, PositionSide, Side
from router_tuner.router.market.tape import MarketTape
from router_tuner.router.venue import (
    InvalidOrder,
    OrderNotFound,
    OrderRequest,
    OrderState,
    PostOnlyRejected,
    ReduceOnlyRejected,
    StopKind,
    StopRequest,
    StopState,
    StopWouldTrigger,
    TopOfBook,
    VenueError,
    WorkingType,
    check_time_in_force,
)
from router_tuner.router.venues.sim.book import Quote, TapeBook, WindowMemo
from router_tuner.router.venues.sim.config import SimVenueConfig
from router_tuner.router.venues.sim.order import SimOrder
from router_tuner.router.venues.sim.position import SimPositions
from router_tuner.router.venues.sim.stops import PriceWindows, SimStop
from router_tuner.router.venues.sim.taker import taker_walk

_JITTER_BLOCK = 256
"""Latency jitter draws made at once (the generator's per-call cost dominates a single draw)."""
_SIDES: tuple[str, ...] = get_args(Side)


class ReplayExhausted(VenueError):
    """The request needs market data past the end of the replay."""


class SimClock:
    """The replay clock of one :class:`SimVenue`: sleeping advances the market.

    It refers to its venue weakly, so a venue and its clock form no reference cycle and a finished
    venue is freed as soon as its last user lets go of it (not at the next full garbage collection).
    """

    def __init__(self, venue: SimVenue) -> None:
        self._venue = weakref.ref(venue)

    def now_ns(self) -> int:
        return self._live_venue().now_ns

    def sleep_until(self, ts_ns: int) -> None:
        self._live_venue().advance_to(ts_ns)

    def _live_venue(self) -> SimVenue:
        venue = self._venue()
        if venue is None:
            raise RuntimeError("the SimVenue of this clock no longer exists: keep the venue while using its clock")
        return venue


class SimVenue:
    """A venue that replays one tape per symbol and fills our orders with a queue-position model.

    Parameters
    ----------
    tapes:
        Per symbol (symbols must be distinct) a :class:`MarketTape`, whose tables this venue builds
        for itself (the tape is validated), or a prebuilt :class:`TapeBook` of it, shared as is.
    config:
        Fees, latencies, fill-model parameters and the account's position mode.
    start_ns:
        Replay start; every tape must have a quote at or before it.

    Examples
    --------
    >>> import numpy as np
    >>> from router_tuner.router.contract import Contract
    >>> from router_tuner.router.venues.sim.queue import RiskAverseQueue
    >>> i64 = lambda *v: np.array(v, dtype=np.int64)
    >>> tape = MarketTape(symbol="BTCUSDT", market="synthetic", price_scale=10, qty_scale=1000,
    ...     tick_size=0.1, quote_ts_ns=i64(0, 10_000_000), bid_px=i64(1000, 1000), bid_qty=i64(500, 500),
    ...     ask_px=i64(1001, 1001), ask_qty=i64(700, 700), trade_ts_ns=i64(), trade_px=i64(),
    ...     trade_qty=i64(), trade_buyer_maker=np.array([], dtype=bool), depth_ts_ns=i64(),
    ...     depth_side=np.array([], dtype=np.int8), depth_px=i64(), depth_qty=i64())
    >>> config = SimVenueConfig(name="sim", maker_fee_bps=-1.0, taker_fee_bps=4.0,
    ...     contracts={"BTCUSDT": Contract("linear", 1.0)}, order_entry_latency_ms=1.0, cancel_latency_ms=1.0,
    ...     latency_jitter_ms=0.0,
    ...     queue_model=RiskAverseQueue(), no_depth_level_qty_ratio=1.0, max_taker_walk_levels=50, seed=7,
    ...     position_mode="one_way")
    >>> venue = SimVenue([tape], config, start_ns=0)
    >>> state = venue.place_order(OrderRequest(client_order_id="a1", symbol="BTCUSDT", side="buy",
    ...     qty=0.2, order_type="market", price=None, time_in_force="IOC", post_only=False, reduce_only=False,
    ...     close_position=False, position_side="BOTH"))
    >>> state.status, state.fills[0].price, round(state.fills[0].fee_usd, 6), venue.clock.now_ns()
    ('filled', 100.1, 0.008008, 1000000)
    >>> venue.positions("BTCUSDT")
    {'BOTH': 0.2}
    >>> closed = venue.place_order(OrderRequest(client_order_id="a2", symbol="BTCUSDT", side="sell",
    ...     qty=5.0, order_type="market", price=None, time_in_force="IOC", post_only=False, reduce_only=True,
    ...     close_position=False, position_side="BOTH"))
    >>> closed.status, closed.filled_qty, venue.positions("BTCUSDT")
    ('expired', 0.2, {'BOTH': 0.0})

    Venues replaying the same tape share one prebuilt book; their orders and positions stay apart:

    >>> book = TapeBook(tape)
    >>> lane_a, lane_b = SimVenue([book], config, start_ns=0), SimVenue([book], config, start_ns=0)
    >>> _ = lane_a.place_order(OrderRequest(client_order_id="a1", symbol="BTCUSDT", side="buy",
    ...     qty=0.2, order_type="market", price=None, time_in_force="IOC", post_only=False, reduce_only=False,
    ...     close_position=False, position_side="BOTH"))
    >>> lane_a.positions("BTCUSDT"), lane_b.positions("BTCUSDT"), lane_b.clock.now_ns()
    ({'BOTH': 0.2}, {'BOTH': 0.0}, 0)
    """

    def __init__(self, tapes: Sequence[MarketTape | TapeBook], config: SimVenueConfig, start_ns: int) -> None:
        if not isinstance(config, SimVenueConfig):
            raise TypeError(f"config must be a SimVenueConfig, got {type(config).__name__}")
        if not tapes:
            raise ValueError("SimVenue needs at least one tape")
        books: dict[str, TapeBook] = {}
        for tape in tapes:
            if not isinstance(tape, MarketTape | TapeBook):
                raise TypeError(f"tapes must hold MarketTape or TapeBook objects, got {type(tape).__name__}")
            if tape.symbol in books:
                raise ValueError(f"two tapes for symbol {tape.symbol!r}")
            books[tape.symbol] = tape if isinstance(tape, TapeBook) else TapeBook(tape)
        no_spec = sorted(set(books) - set(config.contracts))
        if no_spec:
            raise ValueError(f"SimVenueConfig.contracts has no contract spec for {no_spec}")
        for book in books.values():
            first_quote_ns = int(book.quote_ts[0])
            if start_ns < first_quote_ns:
                raise ValueError(f"start_ns {start_ns} is before the first quote of {book.symbol} "
                                 f"({first_quote_ns})")
        self.name = config.name
        self._config = config
        self._books = books
        self._end_ns = min(book.tape.end_ns for book in books.values())
        self._exhausted = False
        if start_ns > self._end_ns:
            raise ValueError(f"start_ns {start_ns} is after the end of the replay ({self._end_ns})")
        self._now_ns = int(start_ns)
        self._rng = np.random.default_rng(config.seed)
        self._jitter_ms: list[float] = []  # latency jitter drawn ahead, next draw last
        self._stepped_ns = self._now_ns  # where the resting orders were last stepped to (advance_to)
        self._orders: dict[str, SimOrder] = {}
        self._resting: dict[str, SimOrder] = {}
        self._positions = SimPositions(config.position_mode, books)
        self._claims: list[tuple[int, int, SimOrder, int, int, Liquidity]] = []
        self._windows = WindowMemo()
        self._fill_seq = 0
        self._stops: dict[str, SimStop] = {}
        self._working_stops: dict[str, SimStop] = {}
        self._price_windows = PriceWindows()
        self._taken: dict[tuple[str, bool], tuple[Quote, dict[int, int]]] = {}  # our takes per touch shown
        self._clock = SimClock(self)

    # ---- clock ----------------------------------------------------------------------------------

    @property
    def clock(self) -> SimClock:
        return self._clock

    @property
    def now_ns(self) -> int:
        return self._now_ns

    @property
    def end_ns(self) -> int:
        """Last time every tape still has data; the replay cannot advance beyond it."""
        return self._end_ns

    @property
    def exhausted(self) -> bool:
        """Whether a request has needed data past :attr:`end_ns` (the market is over for new work)."""
        return self._exhausted

    def advance_to(self, ts_ns: int) -> None:
        """Replay the market to ``ts_ns`` (a time already passed is a no-op), filling resting orders."""
        if ts_ns <= self._now_ns:
            return
        if ts_ns > self._end_ns:
            self._exhausted = True
            raise ReplayExhausted(f"cannot advance to {ts_ns}: the replay ends at {self._end_ns}")
        while self._working_stops:
            due = [(t, stop) for stop in self._working_stops.values()
                   if (t := stop.first_trigger_ns(self._now_ns, ts_ns, self._price_windows)) is not None]
            if not due:
                break
            trigger_ns = min(t for t, _ in due)
            self._advance_resting(trigger_ns)
            self._now_ns = trigger_ns
            for _, stop in sorted((d for d in due if d[0] == trigger_ns), key=lambda d: d[1].request.client_order_id):
                self._fire(stop, trigger_ns)  # every stop of this instant: the next window starts after it
        self._advance_resting(ts_ns)
        self._now_ns = ts_ns

    def _advance_resting(self, ts_ns: int) -> None:
        """Replay the resting orders to ``ts_ns`` and settle what the market filled, in time order."""
        self._stepped_ns = ts_ns
        if not self._resting and not self._claims:
            return
        for order in list(self._resting.values()):
            order.advance(ts_ns, self._config.queue_model, self._claim, self._windows)
            if order.leaves == 0:
                del self._resting[order.request.client_order_id]
        if self._claims:
            # Settle in time order (ties: the order they were claimed in): a reducing order's fill
            # depends on what the others did to the position before it.
            claims = sorted(self._claims, key=lambda c: (c[0], c[1]))
            self._claims.clear()
            for claim_ts, _seq, order, px, qty, liquidity in claims:
                self._settle(order, px, qty, liquidity, claim_ts)

    # ---- market data ----------------------------------------------------------------------------

    def top_of_book(self, symbol: str) -> TopOfBook:
        book = self._book(symbol)
        quote = book.quote_at(self._now_ns)
        tape = book.tape
        return TopOfBook(symbol=symbol, bid=quote.bid_px / tape.price_scale, bid_qty=quote.bid_qty / tape.qty_scale,
                         ask=quote.ask_px / tape.price_scale, ask_qty=quote.ask_qty / tape.qty_scale,
                         ts_ns=self._now_ns)

    def contract(self, symbol: str) -> ContractSpec:
        """The contract spec ``symbol`` trades under (what one unit of ``qty`` is worth)."""
        self._book(symbol)
        return self._config.contracts[symbol]

    # ---- positions ------------------------------------------------------------------------------

    def positions(self, symbol: str) -> dict[PositionSide, float]:
        """Signed position amounts of ``symbol`` by position side (Binance ``positionAmt``: short < 0).

        ``{"BOTH": amount}`` in one-way mode, ``{"LONG": >= 0, "SHORT": <= 0}`` in hedge mode.
        """
        scale = self._book(symbol).tape.qty_scale
        return {side: units / scale for side, units in self._positions.amounts_units(symbol).items()}

    def restore_positions(self, amounts: Mapping[str, Mapping[PositionSide, float]]) -> None:
        """Open the replay with an account's positions, as ``positions`` reported them (a paper account
        carried over a restart: a real venue keeps positions while the client is down).

        Only before the first order, whose fills would otherwise have moved positions it never saw.
        Raises ``ValueError`` for an unknown symbol, a side of the other position mode or an amount off
        the tape's quantity grid.
        """
        if self._orders:
            raise RuntimeError("positions can only be restored before the first order")
        for symbol, sides in amounts.items():
            if symbol not in self._books:
                raise ValueError(f"positions in {symbol!r}, which this venue does not replay ({sorted(self._books)})")
            scale = self._books[symbol].tape.qty_scale
            units = {side: round(amount * scale) for side, amount in sides.items()}
            off_grid = [side for side, amount in sides.items() if abs(units[side] - amount * scale) > 1e-6]
            if off_grid:
                raise ValueError(f"{symbol}: positions {off_grid} are not whole numbers of 1/{scale} units")
            self._positions.restore_units(symbol, units)

    # ---- orders ---------------------------------------------------------------------------------

    def place_order(self, request: OrderRequest) -> OrderState:
        """Send an order; returns its state at arrival.

        Raises InvalidOrder on a malformed request (nothing is registered), ReduceOnlyRejected when a
        reducing order finds nothing to reduce, PostOnlyRejected when a post-only order would cross.
        """
        order = self._new_order(request)
        arrival_ns = self._now_ns + self._latency_ns(self._config.order_entry_latency_ms)
        self.advance_to(arrival_ns)  # raises ReplayExhausted before the order exists
        request = order.request  # a close_position request carries the position size read at sending
        self._orders[request.client_order_id] = order
        reducing = self._positions.is_reducing(request)
        if reducing and self._positions.reducible_units(request) == 0:
            order.status = "rejected"
            amount = self._positions.amount_units(request) / order.book.tape.qty_scale
            raise ReduceOnlyRejected(
                f"{request.client_order_id}: reducing {request.side} on position_side {request.position_side} "
                f"rejected at arrival: the position is {amount} (nothing to reduce in that direction)")
        quote = order.book.quote_at(arrival_ns)
        if order.px is None:
            self._take(order, None, arrival_ns)
            return order.state()
        marketable = order.px >= quote.ask_px if order.is_buy else order.px <= quote.bid_px
        if marketable and request.post_only:
            order.status = "rejected"
            touch = quote.ask_px if order.is_buy else quote.bid_px
            raise PostOnlyRejected(
                f"{request.client_order_id}: post-only {request.side} at {request.price} would cross the "
                f"{'ask' if order.is_buy else 'bid'} {touch / order.book.tape.price_scale} at arrival")
        ioc = request.time_in_force == "IOC"
        if marketable:
            self._take(order, order.px, arrival_ns)
            if order.leaves > 0 and ioc:
                order.expire()
            elif order.leaves > 0:
                # it just cleared the levels up to px
                order.start_resting(arrival_ns, improves_touch=True, own_ahead=self._own_ahead(order))
                self._resting[request.client_order_id] = order
            return order.state()
        if ioc:
            order.expire()  # nothing to take within the limit at arrival, and an IOC never rests
            return order.state()
        improves = order.px > quote.bid_px if order.is_buy else order.px < quote.ask_px
        order.start_resting(arrival_ns, improves_touch=improves, own_ahead=self._own_ahead(order))
        self._resting[request.client_order_id] = order
        return order.state()

    def cancel_order(self, symbol: str, client_order_id: str) -> OrderState:
        """Request a cancel; returns the final state once it took effect (or the order completed)."""
        order = self._order(symbol, client_order_id)
        effective_ns = self._now_ns + self._latency_ns(self._config.cancel_latency_ms)
        self.advance_to(effective_ns)
        if not order.state().is_terminal:
            self._leave_queue(order)
            order.status = "canceled"
        return order.state()

    def fetch_order(self, symbol: str, client_order_id: str) -> OrderState:
        return self._order(symbol, client_order_id).state()

    def open_orders(self, symbol: str | None) -> tuple[OrderState, ...]:
        if symbol is not None:
            self._book(symbol)
        return tuple(o.state() for o in self._resting.values() if symbol is None or o.request.symbol == symbol)

    # ---- protective orders ----------------------------------------------------------------------

    def place_stop(self, request: StopRequest) -> StopState:
        """Send a closePosition stop; it works from its arrival (after the entry latency).

        Raises InvalidOrder for a malformed request or a side that does not close the leg, ReduceOnlyRejected
        when the leg is flat at arrival, StopWouldTrigger when the working price already meets the condition.
        """
        book = self._book(request.symbol)
        stop = SimStop(request=request, book=book, trigger_px=self._check_stop(request, book))
        self.advance_to(self._now_ns + self._latency_ns(self._config.order_entry_latency_ms))
        closing = self._closing_request(request, self._positions.amount_units(self._as_order(request, 1)))
        self._stops[request.client_order_id] = stop
        if closing is None:
            stop.status = "rejected"
            raise ReduceOnlyRejected(f"{request.client_order_id}: close_position stop: no open "
                                     f"{request.position_side} position in {request.symbol} to close with a "
                                     f"{request.side}")
        if stop.met_now(self._now_ns):
            stop.status = "rejected"
            raise StopWouldTrigger(f"{request.client_order_id}: order would immediately trigger: the "
                                   f"{request.working_type} already meets {request.kind} {request.side} at "
                                   f"{request.trigger_price}")
        self._working_stops[request.client_order_id] = stop
        return stop.state()

    def restore_stop(self, request: StopRequest) -> StopState:
        """Re-arm a stop that worked on an account carried over a restart (``restore_positions``): it works
        from now, without the entry latency, and fires at once if the working price already meets it (it
        would have triggered at the venue while the client was down)."""
        book = self._book(request.symbol)
        stop = SimStop(request=request, book=book, trigger_px=self._check_stop(request, book))
        self._stops[request.client_order_id] = stop
        self._working_stops[request.client_order_id] = stop
        if stop.met_now(self._now_ns):
            self._fire(stop, self._now_ns)
        return stop.state()

    def cancel_stop(self, symbol: str, client_order_id: str) -> StopState:
        stop = self._stop(symbol, client_order_id)
        self.advance_to(self._now_ns + self._latency_ns(self._config.cancel_latency_ms))
        if stop.status == "working":
            stop.status = "canceled"
            self._working_stops.pop(client_order_id, None)
        return stop.state()

    def fetch_stop(self, symbol: str, client_order_id: str) -> StopState:
        return self._stop(symbol, client_order_id).state()

    def open_stops(self, symbol: str | None) -> tuple[StopState, ...]:
        if symbol is not None:
            self._book(symbol)
        return tuple(s.state() for s in self._working_stops.values() if symbol in (None, s.request.symbol))

    def _fire(self, stop: SimStop, ts_ns: int) -> None:
        """The stop triggered at ``ts_ns``: close its leg at market (taker fees, the book walked for slippage)."""
        del self._working_stops[stop.request.client_order_id]
        stop.triggered_ts_ns = ts_ns
        amount = self._positions.amount_units(self._as_order(stop.request, 1))
        closing = self._closing_request(stop.request, amount)
        if closing is None:
            stop.status = "expired"  # nothing left to close when it triggered
            return
        order = SimOrder(request=closing, book=stop.book, is_buy=closing.side == "buy", px=None, qty=abs(amount),
                         status="open")
        try:
            self._take(order, None, ts_ns)
        except VenueError:
            stop.status = "rejected"  # the matching engine refused the market order (book too thin)
            return
        stop.status = "triggered"
        stop.fills.extend(order.fills)

    def _closing_request(self, request: StopRequest, amount_units: int) -> OrderRequest | None:
        """The market order a stop places on its leg of ``amount_units``; None when it has nothing to close."""
        if amount_units == 0 or (amount_units > 0) != (request.side == "sell"):
            return None
        scale = self._books[request.symbol].tape.qty_scale
        return self._as_order(request, abs(amount_units) / scale)

    @staticmethod
    def _as_order(request: StopRequest, qty: float) -> OrderRequest:
        return OrderRequest(client_order_id=request.client_order_id, symbol=request.symbol, side=request.side,
                            qty=qty, order_type="market", price=None, time_in_force="IOC", post_only=False,
                            reduce_only=False, close_position=True, position_side=request.position_side)

    def _check_stop(self, request: StopRequest, book: TapeBook) -> int:
        """Validate a stop request (InvalidOrder naming the field); returns the trigger in price units."""
        coid = request.client_order_id
        if not isinstance(coid, str) or not coid:
            raise InvalidOrder(f"client_order_id must be a non-empty string, got {coid!r}")
        if coid in self._stops or coid in self._orders:
            raise InvalidOrder(f"client_order_id {coid!r} is a duplicate: an id is never sent twice")
        if request.kind not in get_args(StopKind):
            raise InvalidOrder(f"{coid}: kind must be one of {get_args(StopKind)}, got {request.kind!r}")
        if request.working_type not in get_args(WorkingType):
            raise InvalidOrder(f"{coid}: working_type must be one of {get_args(WorkingType)}, "
                               f"got {request.working_type!r}")
        if request.side not in _SIDES:
            raise InvalidOrder(f"{coid}: side must be 'buy' or 'sell', got {request.side!r}")
        self._positions.check_request(self._as_order(request, 1))
        trigger_px = _to_units(request.trigger_price, book.tape.price_scale, f"{coid}: trigger_price")
        if trigger_px % book.tick_px:
            raise InvalidOrder(f"{coid}: trigger_price {request.trigger_price} is not a multiple of the tick "
                               f"{book.tape.tick_size}")
        return trigger_px

    def _stop(self, symbol: str, client_order_id: str) -> SimStop:
        self._book(symbol)
        stop = self._stops.get(client_order_id)
        if stop is None or stop.request.symbol != symbol:
            raise OrderNotFound(f"no stop {client_order_id!r} on {symbol}")
        return stop

    # ---- internals ------------------------------------------------------------------------------

    def _own_ahead(self, order: SimOrder) -> int:
        """What our orders already resting at ``order``'s price and side still have to fill (queue ahead)."""
        return sum(o.leaves for o in self._resting.values()
                   if o.px == order.px and o.is_buy == order.is_buy and o.request.symbol == order.request.symbol)

    def _leave_queue(self, order: SimOrder) -> None:
        """Take a resting order out of the queue: our later orders at its price move up by its leaves."""
        client_id = order.request.client_order_id
        if client_id not in self._resting:
            return
        leaves, behind = order.leaves, False
        for other in self._resting.values():  # insertion order is arrival order
            if other is order:
                behind = True
            elif behind and other.own_ahead > 0 and other.px == order.px and other.is_buy == order.is_buy \
                    and other.request.symbol == order.request.symbol:
                # its level's moves up to the step's end first, as every resting order has been stepped there
                other.advance(max(self._now_ns, self._stepped_ns), self._config.queue_model, self._claim,
                              self._windows, catch_up=True)
                other.release_ahead(leaves)
        del self._resting[client_id]

    def _take(self, order: SimOrder, limit_px: int | None, ts_ns: int) -> None:
        """Walk the book for what the order may fill now; a reducing order only walks its position.

        What our earlier takers took from the displayed book is gone until the touch changes on the tape.
        """
        want = order.leaves
        if self._positions.is_reducing(order.request):
            want = min(want, self._positions.reducible_units(order.request))
        side = (order.request.symbol, order.is_buy)
        quote = order.book.quote_at(ts_ns)
        seen = self._taken.get(side)
        taken = seen[1] if seen is not None and seen[0] == quote else {}
        try:
            plan, _left = taker_walk(order.book, order.is_buy, want, limit_px, ts_ns,
                                     self._config.no_depth_level_qty_ratio, self._config.max_taker_walk_levels,
                                     taken)
        except VenueError:
            order.status = "rejected"
            raise
        for px, qty in plan:
            taken[px] = taken.get(px, 0) + qty
        self._taken[side] = (quote, taken)
        for px, qty in plan:
            order.claim(qty)
            self._settle(order, px, qty, "taker", ts_ns)
        self._expire_if_stranded(order)

    def _claim(self, order: SimOrder, px: int, qty: int, liquidity: Liquidity, ts_ns: int) -> None:
        """Queue a resting order's claim; ``advance_to`` settles the step's claims in time order."""
        self._claims.append((ts_ns, len(self._claims), order, px, qty, liquidity))

    def _settle(self, order: SimOrder, px: int, qty: int, liquidity: Liquidity, ts_ns: int) -> None:
        """Turn a claim into a fill and a position change; a reducing order is capped at its position."""
        request = order.request
        granted = 0 if order.status == "expired" else qty
        reducing = self._positions.is_reducing(request)
        if reducing and granted:
            granted = min(granted, self._positions.reducible_units(request))
        order.settle(qty, self._fill(order, px, granted, liquidity, ts_ns) if granted else None, granted)
        if granted:
            before, after = self._positions.apply_fill(request, granted)
            if after == 0 or (after > 0) != (before > 0):
                for resting in list(self._resting.values()):
                    if resting.request.symbol == request.symbol:
                        self._expire_if_stranded(resting)
        if reducing:
            self._expire_if_stranded(order)

    def _expire_if_stranded(self, order: SimOrder) -> None:
        """Expire a reducing order with units left whose position has nothing left for it to reduce."""
        if order.leaves > 0 and self._positions.is_reducing(order.request) \
                and self._positions.reducible_units(order.request) == 0:
            self._leave_queue(order)
            order.expire()

    def _fill(self, order: SimOrder, px: int, qty: int, liquidity: Liquidity, ts_ns: int) -> Fill:
        tape = order.book.tape
        price = px / tape.price_scale
        size = qty / tape.qty_scale
        fee_bps = self._config.maker_fee_bps if liquidity == "maker" else self._config.taker_fee_bps
        self._fill_seq += 1
        return Fill(trade_id=f"{self.name}-{self._fill_seq}", client_order_id=order.request.client_order_id,
                    price=price, qty=size,
                    fee_usd=notional_usd(self._config.contracts[order.request.symbol], price, size) * fee_bps / 1e4,
                    liquidity=liquidity, ts_ns=ts_ns)

    def _latency_ns(self, latency_ms: float) -> int:
        jitter_ms = self._config.latency_jitter_ms
        extra_ms = 0.0
        if jitter_ms > 0:
            if not self._jitter_ms:  # drawn in blocks: the same numbers, in the same order, as one by one
                self._jitter_ms = self._rng.uniform(0.0, jitter_ms, _JITTER_BLOCK).tolist()[::-1]
            extra_ms = self._jitter_ms.pop()
        return round((latency_ms + extra_ms) * 1e6)

    def _book(self, symbol: str) -> TapeBook:
        try:
            return self._books[symbol]
        except KeyError:
            raise InvalidOrder(f"symbol {symbol!r} is unknown; this venue replays {sorted(self._books)}") from None

    def _order(self, symbol: str, client_order_id: str) -> SimOrder:
        self._book(symbol)
        order = self._orders.get(client_order_id)
        if order is None or order.request.symbol != symbol:
            raise OrderNotFound(f"no order {client_order_id!r} on {symbol}")
        return order

    def _new_order(self, request: OrderRequest) -> SimOrder:
        """Validate a request into a (not yet registered) order; InvalidOrder names the field at fault.

        A ``close_position`` request comes back with ``qty`` set to its position's size at sending, as
        the live venue reads it; ReduceOnlyRejected when there is no such position.
        """
        book = self._book(request.symbol)
        tape = book.tape
        coid = request.client_order_id
        if not isinstance(coid, str) or not coid:
            raise InvalidOrder(f"client_order_id must be a non-empty string, got {coid!r}")
        if coid in self._orders:
            raise InvalidOrder(f"client_order_id {coid!r} is a duplicate: an id is never sent twice")
        if request.side not in _SIDES:
            raise InvalidOrder(f"{coid}: side must be 'buy' or 'sell', got {request.side!r}")
        for flag in ("post_only", "reduce_only", "close_position"):
            if not isinstance(getattr(request, flag), bool):
                raise InvalidOrder(f"{coid}: {flag} must be a bool, got {getattr(request, flag)!r}")
        self._positions.check_request(request)
        if request.close_position:
            request = self._sized_close(request, tape.qty_scale)
        qty = _to_units(request.qty, tape.qty_scale, f"{coid}: qty")
        if request.order_type == "market":
            if request.price is not None:
                raise InvalidOrder(f"{coid}: price must be None for a market order, got {request.price!r}")
            if request.post_only:
                raise InvalidOrder(f"{coid}: post_only needs a limit order, got order_type 'market'")
            px = None
        elif request.order_type == "limit":
            if request.price is None:
                raise InvalidOrder(f"{coid}: price is required for a limit order")
            px = _to_units(request.price, tape.price_scale, f"{coid}: price")
            if px % book.tick_px:
                raise InvalidOrder(f"{coid}: price {request.price} is not a multiple of the tick {tape.tick_size}")
        else:
            raise InvalidOrder(f"{coid}: order_type must be 'limit' or 'market', got {request.order_type!r}")
        check_time_in_force(request)
        return SimOrder(request=request, book=book, is_buy=request.side == "buy", px=px, qty=qty, status="open")

    def _sized_close(self, request: OrderRequest, qty_scale: int) -> OrderRequest:
        """The close request with ``qty`` = the whole position it closes (the request's own qty is ignored)."""
        coid = request.client_order_id
        if isinstance(request.qty, bool) or not isinstance(request.qty, int | float) \
                or not math.isfinite(request.qty) or request.qty < 0:
            raise InvalidOrder(f"{coid}: qty must be a finite number >= 0 (ignored by close_position), "
                               f"got {request.qty!r}")
        amount = self._positions.amount_units(request)
        if amount == 0:
            raise ReduceOnlyRejected(f"{coid}: close_position: no open {request.position_side} position in "
                                     f"{request.symbol}")
        needed = "sell" if amount > 0 else "buy"
        if request.side != needed:
            raise InvalidOrder(f"{coid}: side {request.side} cannot close_position: the {request.position_side} "
                               f"position is {amount / qty_scale}, closing it needs side {needed}")
        return msgspec.structs.replace(request, qty=abs(amount) / qty_scale)


def _to_units(value: float, scale: int, what: str) -> int:
    """A positive float to a whole number of 1/scale units; InvalidOrder for values off that grid."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
        raise InvalidOrder(f"{what} must be a finite number > 0, got {value!r}")
    units = round(value * scale)
    if units < 1 or abs(units - value * scale) > 1e-6 * max(1, units):
        raise InvalidOrder(f"{what} {value!r} is not a whole number of 1/{scale} units")
    return int(units)
