"""The venue requests the routing state machine yields, so one machine runs under any driver.

The machine (``router.routing.machine``) does no I/O: it yields one of these and receives the reply (or has
the venue's exception thrown in at the ``yield``). A driver maps each to a venue call: blocking on a
clocked venue (``router.routing.drive``), awaited on a wall clock (``router.routing.aio``). The replies are
what the ``Venue`` method of the same name returns; ``Now`` answers the venue clock's ``now_ns()``.

``WaitUntil`` is the only request that lets time pass by itself: wake at ``ts_ns`` at the latest, or earlier
with news of ``order`` (a driver without pushed updates wakes after ``poll_ns`` and answers ``None``, and the
machine then fetches the order itself). Its reply is the order's state when the driver has news, else
``None``. A clock that cannot reach ``ts_ns`` (a replay that ended) raises its ``VenueError`` there.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass
from typing import Any, TypeAlias, TypeVar

from router_tuner.router.venue import OrderRequest, OrderState

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Now:
    """The venue clock's current time in ns."""


@dataclass(frozen=True, slots=True)
class ContractOf:
    """The contract spec ``symbol`` trades under (validated by ``router.contract.venue_contract``)."""

    symbol: str


@dataclass(frozen=True, slots=True)
class Touch:
    """The top of book of ``symbol``."""

    symbol: str


@dataclass(frozen=True, slots=True)
class Place:
    """Send ``request``; the reply is the order's state at arrival."""

    request: OrderRequest


@dataclass(frozen=True, slots=True)
class Cancel:
    """Cancel an order; the reply is its final state (fills that raced the cancel included)."""

    symbol: str
    client_order_id: str


@dataclass(frozen=True, slots=True)
class Fetch:
    """The current state of an order."""

    symbol: str
    client_order_id: str


@dataclass(frozen=True, slots=True)
class OrderRef:
    """The order a wait listens to."""

    symbol: str
    client_order_id: str


@dataclass(frozen=True, slots=True)
class WaitUntil:
    """Let time pass until ``ts_ns``, or less with news of ``order`` (see the module docstring).

    ``seen`` is the state of ``order`` the machine holds: a polling driver that fetches the order itself
    answers with the first polled state that differs from it (news), and keeps polling while it does not.
    """

    ts_ns: int
    order: OrderRef | None
    poll_ns: int
    seen: OrderState | None = None

    def poll_wake_ns(self, now_ns: int) -> int:
        """When a driver without pushed updates wakes: the next poll, never past ``ts_ns``."""
        return min(now_ns + self.poll_ns, self.ts_ns) if self.order is not None else self.ts_ns


VenueCall: TypeAlias = Now | ContractOf | Touch | Place | Cancel | Fetch | WaitUntil
Steps: TypeAlias = Generator[VenueCall, Any, T]
"""A machine (or a piece of one): yields venue calls, receives their replies, returns ``T``."""
