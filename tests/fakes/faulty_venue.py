"""A fault-injection wrapper around any venue: timeouts (before or after the venue acted), 429s,
post-only rejects, disconnects, lost cancel answers, order fetches timing out, stale and out-of-order
order states (a fetch answered with a state of the order the venue had reported earlier, as a lagging
replica or a reordered stream does); partial fills and cancel/fill races come from the wrapped simulated
venue. It records what really reached the venue so tests can prove nothing was lost or sent twice.
Faults are drawn from one seeded generator."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np

from router_tuner.router.contract import ContractSpec
from router_tuner.router.events import PositionSide
from router_tuner.router.venue import (
    Clock,
    OrderRequest,
    OrderState,
    PostOnlyRejected,
    RateLimited,
    TopOfBook,
    VenueError,
    VenueTimeout,
    VenueUnavailable,
)
from router_tuner.router.venues.sim.venue import SimVenue


@dataclass(frozen=True)
class FaultRates:
    """Probability of each fault per call of the kind it applies to."""

    rate_limit: float
    timeout_before: float
    timeout_after: float
    post_only_reject: float
    disconnect: float
    cancel_answer_lost: float
    stale_state: float = 0.0
    fetch_timeout: float = 0.0


class FaultyVenue:
    """``SimVenue`` behind injected faults; ``sent`` lists every client order id the venue really received."""

    def __init__(self, inner: SimVenue, rates: FaultRates, *, seed: int) -> None:
        self.inner = inner
        self.rates = rates
        self.name = f"faulty:{inner.name}"
        self._rng = np.random.default_rng(seed)
        self.sent: list[str] = []
        self.sent_symbol: dict[str, str] = {}
        self.faults: Counter[str] = Counter()
        self.enabled = True
        self._seen: dict[str, list[OrderState]] = {}
        self._rejects: list[tuple[bool, VenueError]] = []

    @property
    def clock(self) -> Clock:
        return self.inner.clock

    def _draw(self, kind: str) -> bool:
        hit = self.enabled and self._rng.random() < getattr(self.rates, kind)
        if hit:
            self.faults[kind] += 1
        return bool(hit)

    def contract(self, symbol: str) -> ContractSpec:
        """The wrapped venue's spec: static facts, never faulted (a live venue reads them at connection)."""
        return self.inner.contract(symbol)

    def top_of_book(self, symbol: str) -> TopOfBook:
        if self._draw("disconnect"):
            raise VenueUnavailable("injected: connection reset reading the book")
        return self.inner.top_of_book(symbol)

    def reject_next(self, error: VenueError, *, taker_only: bool) -> None:
        """Script a reject: the next place (the next one that is not post-only with ``taker_only``) raises
        ``error`` before the venue sees the order."""
        self._rejects.append((taker_only, error))

    def place_order(self, request: OrderRequest) -> OrderState:
        if self._rejects and not (self._rejects[0][0] and request.post_only):
            raise self._rejects.pop(0)[1]
        if self._draw("rate_limit"):
            raise RateLimited("injected: 429 Too Many Requests", retry_after_s=None)
        if self._draw("timeout_before"):
            raise VenueTimeout("injected: timed out before the venue got the order")
        if request.post_only and self._draw("post_only_reject"):
            raise PostOnlyRejected("injected: post-only order would immediately match (-5022)")
        self.sent.append(request.client_order_id)
        self.sent_symbol[request.client_order_id] = request.symbol
        state = self.inner.place_order(request)
        if self._draw("timeout_after"):
            raise VenueTimeout("injected: answer lost after the venue accepted the order")
        return state

    def cancel_order(self, symbol: str, client_order_id: str) -> OrderState:
        if self._draw("rate_limit"):
            raise RateLimited("injected: 429 on cancel", retry_after_s=0.05)
        if self._draw("disconnect"):
            raise VenueUnavailable("injected: disconnected before the cancel was sent")
        state = self.inner.cancel_order(symbol, client_order_id)
        if self._draw("cancel_answer_lost"):
            raise VenueTimeout("injected: cancel answer lost (the cancel happened)")
        return state

    def fetch_order(self, symbol: str, client_order_id: str) -> OrderState:
        if self._draw("disconnect"):
            raise VenueUnavailable("injected: connection reset fetching the order")
        if self._draw("fetch_timeout"):
            raise VenueTimeout("injected: order status request timed out")
        state = self.inner.fetch_order(symbol, client_order_id)
        seen = self._seen.setdefault(client_order_id, [])
        seen.append(state)
        if len(seen) > 1 and self._draw("stale_state"):
            return seen[int(self._rng.integers(len(seen) - 1))]  # an earlier answer, out of order
        return state

    def open_orders(self, symbol: str | None) -> tuple[OrderState, ...]:
        if self._draw("disconnect"):
            raise VenueUnavailable("injected: connection reset listing open orders")
        return self.inner.open_orders(symbol)

    def positions(self, symbol: str) -> dict[PositionSide, float]:
        return self.inner.positions(symbol)
