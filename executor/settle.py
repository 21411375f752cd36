"""Settling an intent's orders by client order id: find every leg, cancel what still rests, count every fill.

Used after a route that ended with an error (an order may still rest) and on restart for an intent that
was submitted but has no outcome in the journal (it was in flight when the process died). Leg ids are
``client_order_id(intent_id, k)`` for k = 1, 2, ...; a route skips an id only when a send timed out and
the venue did not know it, at most ``max_venue_retries + 1`` in a row, so probing stops after
``probe_gap_legs`` consecutive unknown ids (config guarantees the gap is larger). Nothing is ever sent
here except cancels.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from router_tuner.router.contract import ContractSpec
from router_tuner.router.events import RouterEvent
from router_tuner.router.policy import RouterPolicy
from router_tuner.router.routing.ledger import RouteLedger
from router_tuner.router.routing.order import RouteOrder, client_order_id, request
from router_tuner.router.venue import (
    OrderNotFound,
    OrderRequest,
    OrderState,
    RateLimited,
    TopOfBook,
    Venue,
    VenueError,
    VenueTimeout,
    VenueUnavailable,
)

T = TypeVar("T")


class SettleError(RuntimeError):
    """An intent's orders could not be settled (venue unreachable, leg cap reached): do not trade on."""


@dataclass(frozen=True, slots=True)
class Settlement:
    """The final states of an intent's orders and how many were cancelled here."""

    states: tuple[OrderState, ...]
    cancelled: int


_TRANSIENT: tuple[type[VenueError], ...] = (VenueTimeout, VenueUnavailable, RateLimited)


@dataclass(frozen=True, slots=True)
class SettleRetry:
    """Transient venue errors (timeout, disconnect, 429) are retried ``retries`` times, backing off on the
    venue clock by ``backoff_ms * 2**n`` (the router's own retry settings)."""

    retries: int
    backoff_ms: float


def _with_retries(venue: Venue, call: Callable[[], T], retry: SettleRetry) -> T:
    for attempt in range(retry.retries + 1):
        try:
            return call()
        except _TRANSIENT:
            if attempt == retry.retries:
                raise
            venue.clock.sleep_until(venue.clock.now_ns() + int(retry.backoff_ms * 2**attempt * 1e6))
    raise AssertionError("unreachable")


def _final_state(venue: Venue, symbol: str, cid: str, retry: SettleRetry) -> tuple[OrderState, bool]:
    """The order's terminal state, cancelling it if it still rests; returns (state, cancelled here)."""
    state = _with_retries(venue, lambda: venue.fetch_order(symbol, cid), retry)
    cancelled = False
    for _ in range(retry.retries + 1):
        if state.is_terminal:
            return state, cancelled
        try:
            state = venue.cancel_order(symbol, cid)
            cancelled = True
        except (*_TRANSIENT, OrderNotFound):
            pass  # the cancel's effect is unknown: read the order again
        if not state.is_terminal:
            venue.clock.sleep_until(venue.clock.now_ns() + int(retry.backoff_ms * 1e6))
            state = _with_retries(venue, lambda: venue.fetch_order(symbol, cid), retry)
    if not state.is_terminal:
        raise SettleError(f"{cid} still {state.status} after {retry.retries + 1} cancels")
    return state, cancelled


def settle_orders(venue: Venue, *, symbol: str, intent_id: str, probe_gap_legs: int, max_legs: int,
                  retry: SettleRetry) -> Settlement:
    """Fetch every leg of ``intent_id``; cancel any that is not terminal. Raises ``SettleError``."""
    states: list[OrderState] = []
    cancelled = 0
    misses = 0
    for leg in range(1, max_legs + 1):
        cid = client_order_id(intent_id, leg)
        try:
            state, was_cancelled = _final_state(venue, symbol, cid, retry)
        except OrderNotFound:
            misses += 1
            if misses >= probe_gap_legs:
                return Settlement(tuple(states), cancelled)
            continue
        except VenueError as exc:
            raise SettleError(f"{intent_id}: leg {cid} unresolved: {type(exc).__name__}: {exc}") from exc
        misses = 0
        cancelled += was_cancelled
        states.append(state)
    raise SettleError(f"{intent_id}: more than reconcile.max_legs_per_intent={max_legs} legs probed")


def settled_event(*, order: RouteOrder, policy: RouterPolicy, arrival: TopOfBook, arrival_ts_ns: int,
                  states: tuple[OrderState, ...], finished_ts_ns: int, note: str,
                  routed: RouterEvent | None, contract: ContractSpec) -> RouterEvent:
    """The intent's RouterEvent from every leg's final state (fills once each by trade id).

    ``routed`` is the router's own event when the route returned (its counters and flags are kept and
    its fills are a subset of the legs' fills); ``None`` after a crash, when only the venue's states are
    known: then ``started_maker`` and the counters are unknown and left false/zero, and ``note`` says so.
    ``contract``: the venue's contract spec (``router.contract.venue_contract``), the route's own: the
    event's ``fees_bps`` divides the fees by the fills' USD notional under it.
    """
    ledger = RouteLedger(order=order, arrival=arrival, arrival_ts_ns=arrival_ts_ns, contract=contract)
    if routed is not None:
        ledger.reprice_count, ledger.cancel_count = routed.reprice_count, routed.cancel_count
        ledger.post_only_reject_count = routed.post_only_reject_count
        ledger.started_maker, ledger.used_fallback = routed.started_maker, routed.used_fallback
        ledger.route_propensity = routed.route_propensity
        ledger.rejected = routed.outcome == "rejected"
        for fill in routed.fills:  # keep the router's fill order; the states add what it never saw
            ledger.observe(OrderState(client_order_id=fill.client_order_id, symbol=order.symbol,
                                      status="open", qty=order.qty, filled_qty=0.0, price=None, fills=(fill,)))
    for state in states:
        ledger.expect(_as_stated(order, state))
        ledger.observe(state)
    previous = routed.error if routed is not None else None
    ledger.error = note if previous is None else f"{previous}; {note}"
    return ledger.to_event(policy, finished_ts_ns)


def _as_stated(order: RouteOrder, state: OrderState) -> OrderRequest:
    """A leg as the venue states it (its limit and quantity), for the ledger to check the fills it first shows here
    against (``router.routing.anomaly``: none worse than the limit, none beyond the quantity). Whether the leg was
    post-only or IOC is the route's to know: the route checked the fills it saw against that."""
    return request(order, client_id=state.client_order_id, qty=state.qty,
                   order_type="market" if state.price is None else "limit", price=state.price, time_in_force="GTC",
                   post_only=False)
