"""The paper account: the simulated venue's positions and recent orders, kept on disk across restarts.

Why: a real venue keeps an account's positions and orders while the executor is down, and restart
reconciliation (``executor.reconcile``) relies on that. A paper venue lived in the process, so a restart
after kill -9 with an open position met a flat venue and refused ("venue 0.0, journal 0.003"), having
first journaled the in-flight intent as unfilled. ``PaperAccount`` wraps the paper ``SimVenue`` and
rewrites one JSON file atomically (``router.atomic_file``) after every call that can change the account
(an order placed or cancelled, the replay clock advanced), before the call returns: the file is never
behind what the executor could have journaled. At start it reloads the positions into the new replay and
serves the saved orders by client order id.

What is kept: positions, every non-terminal order and the latest ``keep_orders`` orders, and likewise
every working protective stop (re-armed in the new replay, ``SimVenue.restore_stop``) and the latest
``keep_orders`` ended ones with their fills (a restart journals a stop that triggered before the kill). The
executor passes ``reconcile.max_legs_per_intent`` times ``engine.max_routes_in_flight``: at most that many routes
work at once, so those cover every leg of the intents in flight at a crash. A saved order that was still
resting is reported open with the fills it had; the paper market did not trade while the process was
down, so it fills no further, and a cancel (what recovery does) ends it.
"""

from __future__ import annotations

import contextlib
import os
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path

import msgspec

from router_tuner.router.atomic_file import write_bytes_atomic
from router_tuner.router.contract import ContractSpec
from router_tuner.router.events import PositionSide
from router_tuner.router.venue import (
    Clock,
    InvalidOrder,
    OrderNotFound,
    OrderRequest,
    OrderState,
    StopRequest,
    StopState,
    TopOfBook,
    VenueError,
)
from router_tuner.router.venues.sim.venue import SimVenue

PAPER_ACCOUNT_VERSION = 1


class PaperAccountState(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The saved account: signed positions by symbol and side, orders oldest first, and protective stops
    (their latest states, and the requests of those still working, to re-arm them)."""

    version: int
    positions: dict[str, dict[PositionSide, float]]
    orders: list[OrderState]
    stops: list[StopState] = []
    working_stops: list[StopRequest] = []


class PaperAccountError(ValueError):
    """The paper account file cannot be read as one: name it, say what to do."""


class _SavingClock:
    """The replay clock; advancing it can fill resting orders, so the account is saved after it moves."""

    def __init__(self, account: PaperAccount, inner: Clock) -> None:
        self._account, self._inner = account, inner

    def now_ns(self) -> int:
        return self._inner.now_ns()

    def sleep_until(self, ts_ns: int) -> None:
        try:
            self._inner.sleep_until(ts_ns)
        finally:
            self._account.save()


class PaperAccount:
    """A ``SimVenue`` whose account survives the process (see the module docstring); a ``Venue`` itself.

    ``symbols`` are the ones the replay trades (their positions are saved); a file at ``path`` is
    reloaded, raising ``PaperAccountError`` when it is not a paper account this replay can take.
    """

    def __init__(self, inner: SimVenue, path: str | os.PathLike[str], *, symbols: Sequence[str],
                 keep_orders: int) -> None:
        if keep_orders < 1:
            raise ValueError(f"keep_orders must be >= 1, got {keep_orders}")
        self.inner = inner
        self.symbols = tuple(sorted(symbols))
        self.name = inner.name
        self.path = Path(path)
        self.keep_orders = keep_orders
        self._clock = _SavingClock(self, inner.clock)
        self._orders: OrderedDict[str, OrderState] = OrderedDict()
        self._restored: set[str] = set()
        self._stops: OrderedDict[str, StopState] = OrderedDict()
        self._stop_requests: dict[str, StopRequest] = {}
        self._saved: PaperAccountState | None = None
        if self.path.exists():
            self._restore(self._load())

    # --- persistence ------------------------------------------------------------------------------

    def _load(self) -> PaperAccountState:
        try:
            state = msgspec.json.decode(self.path.read_bytes(), type=PaperAccountState, strict=True)
        except (OSError, msgspec.DecodeError) as error:
            raise PaperAccountError(f"{self.path}: not a paper account file ({error}); restore it, or move it away "
                                    "together with the journal and store to start a new paper account") from error
        if state.version != PAPER_ACCOUNT_VERSION:
            raise PaperAccountError(f"{self.path}: paper account version {state.version}, this code reads "
                                    f"{PAPER_ACCOUNT_VERSION}")
        return state

    def _restore(self, state: PaperAccountState) -> None:
        try:
            self.inner.restore_positions(state.positions)
        except ValueError as error:
            raise PaperAccountError(f"{self.path}: {error}") from error
        for order in state.orders:
            self._orders[order.client_order_id] = order
            self._restored.add(order.client_order_id)
        for stop in state.stops:
            self._stops[stop.client_order_id] = stop
        for request in state.working_stops:
            try:
                self._stops[request.client_order_id] = self.inner.restore_stop(request)
            except VenueError as error:
                raise PaperAccountError(f"{self.path}: stop {request.client_order_id}: {error}") from error
            self._stop_requests[request.client_order_id] = request
        self._saved = state

    def save(self) -> None:
        """Write the account if it changed since the last save (atomically: the old file or the new one)."""
        for cid, state in list(self._orders.items()):
            if not state.is_terminal and cid not in self._restored:
                self._orders[cid] = self.inner.fetch_order(state.symbol, cid)
        kept = [cid for index, (cid, state) in enumerate(self._orders.items())
                if not state.is_terminal or index >= len(self._orders) - self.keep_orders]
        for cid in set(self._orders) - set(kept):
            del self._orders[cid]
            self._restored.discard(cid)
        positions = {symbol: {side: qty for side, qty in self.inner.positions(symbol).items() if qty}
                     for symbol in self.symbols}
        for cid in list(self._stop_requests):
            self._stops[cid] = self.inner.fetch_stop(self._stop_requests[cid].symbol, cid)
            if self._stops[cid].is_terminal:
                del self._stop_requests[cid]
        ended = [cid for cid, stop in self._stops.items() if stop.is_terminal]
        for cid in ended[:max(0, len(ended) - self.keep_orders)]:
            del self._stops[cid]
        state = PaperAccountState(version=PAPER_ACCOUNT_VERSION,
                                  positions={s: sides for s, sides in positions.items() if sides},
                                  orders=list(self._orders.values()), stops=list(self._stops.values()),
                                  working_stops=list(self._stop_requests.values()))
        if state != self._saved:
            write_bytes_atomic(self.path, msgspec.json.encode(state))
            self._saved = state

    def _record(self, state: OrderState) -> None:
        self._orders[state.client_order_id] = state
        self._orders.move_to_end(state.client_order_id)

    # --- the venue protocol -----------------------------------------------------------------------

    @property
    def clock(self) -> Clock:
        return self._clock

    def contract(self, symbol: str) -> ContractSpec:
        return self.inner.contract(symbol)

    def top_of_book(self, symbol: str) -> TopOfBook:
        return self.inner.top_of_book(symbol)

    def positions(self, symbol: str) -> dict[PositionSide, float]:
        return self.inner.positions(symbol)

    def place_order(self, request: OrderRequest) -> OrderState:
        if request.client_order_id in self._restored:
            raise InvalidOrder(f"client_order_id {request.client_order_id!r} is a duplicate: an id is never "
                               "sent twice")
        try:
            state = self.inner.place_order(request)
        except VenueError:
            with contextlib.suppress(VenueError):  # a rejected order is registered: fetch_order finds it later
                self._record(self.inner.fetch_order(request.symbol, request.client_order_id))
            self.save()
            raise
        self._record(state)
        self.save()
        return state

    def cancel_order(self, symbol: str, client_order_id: str) -> OrderState:
        if client_order_id in self._restored:
            state = self.fetch_order(symbol, client_order_id)
            if not state.is_terminal:
                state = msgspec.structs.replace(state, status="canceled")
                self._orders[client_order_id] = state
                self.save()
            return state
        try:
            state = self.inner.cancel_order(symbol, client_order_id)
        except VenueError:
            self.save()  # the replay may have moved before the cancel failed
            raise
        self._record(state)
        self.save()
        return state

    def fetch_order(self, symbol: str, client_order_id: str) -> OrderState:
        if client_order_id in self._restored:
            state = self._orders[client_order_id]
            if state.symbol != symbol:
                raise OrderNotFound(f"no order {client_order_id!r} on {symbol}")
            return state
        return self.inner.fetch_order(symbol, client_order_id)

    def open_orders(self, symbol: str | None) -> tuple[OrderState, ...]:
        restored = tuple(state for cid, state in self._orders.items() if cid in self._restored
                         and not state.is_terminal and symbol in (None, state.symbol))
        return restored + self.inner.open_orders(symbol)

    # --- protective stops: the inner venue's, their states kept like orders -------------------------

    def place_stop(self, request: StopRequest) -> StopState:
        if request.client_order_id in self._stops:
            raise InvalidOrder(f"client_order_id {request.client_order_id!r} is a duplicate: an id is never "
                               "sent twice")
        try:
            state = self.inner.place_stop(request)
        except VenueError:
            with contextlib.suppress(VenueError):  # a refused stop is registered: fetch_stop finds it later
                self._stops[request.client_order_id] = self.inner.fetch_stop(request.symbol, request.client_order_id)
            self.save()
            raise
        self._stops[request.client_order_id] = state
        self._stop_requests[request.client_order_id] = request
        self.save()
        return state

    def cancel_stop(self, symbol: str, client_order_id: str) -> StopState:
        if client_order_id not in self._stop_requests:
            return self.fetch_stop(symbol, client_order_id)  # ended (here or before a restart)
        try:
            return self.inner.cancel_stop(symbol, client_order_id)
        finally:
            self.save()

    def fetch_stop(self, symbol: str, client_order_id: str) -> StopState:
        if client_order_id in self._stop_requests:
            return self.inner.fetch_stop(symbol, client_order_id)
        state = self._stops.get(client_order_id)
        if state is None or state.symbol != symbol:
            raise OrderNotFound(f"no stop {client_order_id!r} on {symbol}")
        return state

    def open_stops(self, symbol: str | None) -> tuple[StopState, ...]:
        return self.inner.open_stops(symbol)
