"""Driving routing machines on the wall clock with asyncio: venue calls are awaited, waits end early on news.

Many routes run as tasks on one event loop; each awaits its own venue calls, so a slow answer for one
does not hold the others. A waiting route (``WaitUntil``) wakes at its deadline or as soon as
``OrderUpdates`` has news of the order it rests: pushed by a stream (another module implements
``OrderUpdates`` over ccxt.pro) or, here, ``PollingOrderUpdates``, which fetches the order at the poll
interval. Time passes through the venue (``AsyncVenue.sleep_until``): a wall-clock venue sleeps on the
loop, a simulated one is moved by ``router.routing.timeline``. A blocking wall-clock ``Venue`` is used
through ``ThreadedVenue``, each call in a worker thread.
"""

from __future__ import annotations

import asyncio
from typing import Any, Protocol, TypeVar

from router_tuner.router.contract import ContractSpec, check_spec
from router_tuner.router.routing.calls import Cancel, ContractOf, Fetch, Now, Place, Steps, Touch, VenueCall, WaitUntil
from router_tuner.router.venue import OrderRequest, OrderState, TopOfBook, Venue, VenueError

R = TypeVar("R")


class AsyncVenue(Protocol):
    """The ``Venue`` protocol with awaited calls, on the wall clock (``now_ns``)."""

    name: str

    def now_ns(self) -> int: ...

    async def sleep_until(self, ts_ns: int) -> None:
        """Let the venue's time reach ``ts_ns`` (a wall clock sleeps on the loop; a simulated one is moved)."""
        ...

    async def contract(self, symbol: str) -> ContractSpec: ...

    async def top_of_book(self, symbol: str) -> TopOfBook: ...

    async def place_order(self, request: OrderRequest) -> OrderState: ...

    async def cancel_order(self, symbol: str, client_order_id: str) -> OrderState: ...

    async def fetch_order(self, symbol: str, client_order_id: str) -> OrderState: ...


class OrderUpdates(Protocol):
    """News of our orders, as the venue reports them.

    ``wait`` returns the order's state as soon as there is news of it (an update pushed by the venue, or
    an answer to a poll), or ``None`` once ``until_ns`` (wall clock, ns) has passed without news. ``None``
    tells the route to fetch the order itself, so an implementation may also return it early when its
    source failed (a dropped stream); it never raises for a missing update.
    """

    async def wait(self, symbol: str, client_order_id: str, until_ns: int) -> OrderState | None: ...


class ThreadedVenue:
    """A blocking ``Venue`` on the wall clock behind ``AsyncVenue``: each call runs in a worker thread."""

    def __init__(self, venue: Venue) -> None:
        self.venue = venue
        self.name = venue.name

    def now_ns(self) -> int:
        return self.venue.clock.now_ns()

    async def sleep_until(self, ts_ns: int) -> None:
        await sleep_until_ns(self.now_ns(), ts_ns)

    async def contract(self, symbol: str) -> ContractSpec:
        return await asyncio.to_thread(self.venue.contract, symbol)

    async def top_of_book(self, symbol: str) -> TopOfBook:
        return await asyncio.to_thread(self.venue.top_of_book, symbol)

    async def place_order(self, request: OrderRequest) -> OrderState:
        return await asyncio.to_thread(self.venue.place_order, request)

    async def cancel_order(self, symbol: str, client_order_id: str) -> OrderState:
        return await asyncio.to_thread(self.venue.cancel_order, symbol, client_order_id)

    async def fetch_order(self, symbol: str, client_order_id: str) -> OrderState:
        return await asyncio.to_thread(self.venue.fetch_order, symbol, client_order_id)


async def sleep_until_ns(now_ns: int, ts_ns: int) -> None:
    """Sleep on the event loop until wall-clock ``ts_ns`` (``now_ns`` is the venue's current time)."""
    if ts_ns > now_ns:
        await asyncio.sleep((ts_ns - now_ns) / 1e9)


class PollingOrderUpdates:
    """``OrderUpdates`` by polling: the order's state fetched every ``poll_interval_ms``.

    The REST fallback when nothing pushes updates. A failed poll answers ``None`` (the route then
    fetches with its own retries and error handling).
    """

    def __init__(self, venue: AsyncVenue, *, poll_interval_ms: float) -> None:
        if not poll_interval_ms > 0:
            raise ValueError(f"poll_interval_ms must be > 0, got {poll_interval_ms!r}")
        self.venue = venue
        self.poll_ns = int(poll_interval_ms * 1e6)

    async def wait(self, symbol: str, client_order_id: str, until_ns: int) -> OrderState | None:
        poll_at = min(self.venue.now_ns() + self.poll_ns, until_ns)
        await self.venue.sleep_until(poll_at)
        if poll_at >= until_ns:
            return None
        try:
            return await self.venue.fetch_order(symbol, client_order_id)
        except VenueError:
            return None


async def perform_async(call: VenueCall, venue: AsyncVenue, updates: OrderUpdates) -> Any:
    """The awaited reply of ``venue`` to one call; a wait on an order ends early on its news."""
    if isinstance(call, Now):
        return venue.now_ns()
    if isinstance(call, WaitUntil):
        if call.order is None:
            await venue.sleep_until(call.ts_ns)
            return None
        return await updates.wait(call.order.symbol, call.order.client_order_id, call.ts_ns)
    if isinstance(call, Touch):
        return await venue.top_of_book(call.symbol)
    if isinstance(call, Fetch):
        return await venue.fetch_order(call.symbol, call.client_order_id)
    if isinstance(call, Place):
        return await venue.place_order(call.request)
    if isinstance(call, Cancel):
        return await venue.cancel_order(call.symbol, call.client_order_id)
    if isinstance(call, ContractOf):
        spec = await venue.contract(call.symbol)
        check_spec(spec, where=f"venue {venue.name!r} contract({call.symbol!r})")
        return spec
    raise TypeError(f"not a venue call the driver performs: {call!r}")


async def drive_async(machine: Steps[R], venue: AsyncVenue, updates: OrderUpdates) -> R:
    """Run one machine to its end as an asyncio task; what escapes the machine is raised."""
    reply: Any = None
    error: BaseException | None = None
    while True:
        try:
            call = machine.send(reply) if error is None else machine.throw(error)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]
        try:
            reply, error = await perform_async(call, venue, updates), None
        except Exception as exc:  # thrown into the machine, which decides
            reply, error = None, exc
