"""Routes under asyncio on a venue whose clock the engine moves (the paper venue's replay, a scripted test venue).

Why: the asyncio driver (``router.routing.aio``) waits by asking the venue to let time pass
(``AsyncVenue.sleep_until``). A simulated clock does not pass by itself, so ``Timeline`` moves it the way
``router.routing.drive.ClockDriver`` does: a waiting route parks on a heap of wake times, and only once
every route is parked and the engine lets time pass (``set_open``) is the clock slept to the earliest
wake and that one route resumed, until it waits again. The same routes therefore see the same clock
whatever the thread timing, and a replay stays reproducible. ``ClockedVenue`` is the ``AsyncVenue`` over
such a blocking ``Venue``: its calls run inline on the loop, under ``Timeline.lock``, which the engine's
own thread takes too (``LockedVenue``) because the simulated venue is not thread-safe.

A clock that cannot reach a wake time (the replay ended) raises its error in the route that waited, as
under ``ClockDriver``. Routes must tell the timeline when they start and end (``route_started`` /
``route_ended``): a route that is running, or started but not yet run, holds the clock still.
"""

from __future__ import annotations

import asyncio
import heapq
import threading
from collections.abc import Callable
from typing import Any

from router_tuner.router.contract import ContractSpec
from router_tuner.router.venue import Clock, OrderRequest, OrderState, TopOfBook, Venue


class Timeline:
    """The wake-time heap of the routes on one simulated clock (used from the event loop's thread only,
    except ``lock``)."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.lock = threading.RLock()
        self._heap: list[tuple[int, int, asyncio.Future[None]]] = []
        self._seq = 0
        self._running = 0
        self._open = False

    @property
    def parked(self) -> int:
        """Routes waiting for their wake time."""
        return len(self._heap)

    def route_started(self) -> None:
        self._running += 1

    def route_ended(self) -> None:
        self._running -= 1
        self._advance()

    def set_open(self, is_open: bool) -> None:
        """Let time pass (the engine waits for a route to finish) or hold it (the engine admits, journals)."""
        self._open = is_open
        self._advance()

    async def sleep_until(self, ts_ns: int) -> None:
        """Park the calling route until the clock is moved to ``ts_ns`` (a time already past resumes in
        wake-time order too); a clock that cannot get there raises its error here."""
        wake: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._seq += 1
        heapq.heappush(self._heap, (ts_ns, self._seq, wake))
        self._running -= 1
        self._advance()
        await wake

    def _advance(self) -> None:
        """Resume the earliest parked route, once nothing runs and time may pass."""
        if not self._open or self._running > 0 or not self._heap:
            return
        ts_ns, _, wake = heapq.heappop(self._heap)
        self._running += 1
        try:
            with self.lock:
                self.clock.sleep_until(ts_ns)
        except Exception as exc:  # the route that waited decides (``clock stopped``)
            wake.set_exception(exc)
            return
        wake.set_result(None)


class ClockedVenue:
    """A blocking ``Venue`` on a simulated clock as an ``AsyncVenue``: calls inline under the timeline's lock,
    waits on the timeline."""

    def __init__(self, venue: Venue, timeline: Timeline) -> None:
        self.venue = venue
        self.timeline = timeline
        self.name = venue.name

    def now_ns(self) -> int:
        return self.venue.clock.now_ns()

    async def sleep_until(self, ts_ns: int) -> None:
        await self.timeline.sleep_until(ts_ns)

    async def contract(self, symbol: str) -> ContractSpec:
        with self.timeline.lock:
            return self.venue.contract(symbol)

    async def top_of_book(self, symbol: str) -> TopOfBook:
        with self.timeline.lock:
            return self.venue.top_of_book(symbol)

    async def place_order(self, request: OrderRequest) -> OrderState:
        with self.timeline.lock:
            return self.venue.place_order(request)

    async def cancel_order(self, symbol: str, client_order_id: str) -> OrderState:
        with self.timeline.lock:
            return self.venue.cancel_order(symbol, client_order_id)

    async def fetch_order(self, symbol: str, client_order_id: str) -> OrderState:
        with self.timeline.lock:
            return self.venue.fetch_order(symbol, client_order_id)


class LockedVenue:
    """The same venue for the engine's own thread: every method (and the clock) under ``lock``.

    It forwards any attribute (positions, protective stops, ``hedge_mode``), so it is whatever venue it wraps.
    """

    def __init__(self, venue: Any, lock: threading.RLock) -> None:
        self._venue = venue
        self._lock = lock
        self.clock = _LockedClock(venue.clock, lock)

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._venue, name)
        if not callable(attr):
            return attr
        return _locked(attr, self._lock)


class _LockedClock:
    def __init__(self, clock: Clock, lock: threading.RLock) -> None:
        self._clock = clock
        self._lock = lock

    def now_ns(self) -> int:
        return self._clock.now_ns()

    def sleep_until(self, ts_ns: int) -> None:
        with self._lock:
            self._clock.sleep_until(ts_ns)


def _locked(method: Callable[..., Any], lock: threading.RLock) -> Callable[..., Any]:
    def call(*args: Any, **kwargs: Any) -> Any:
        with lock:
            return method(*args, **kwargs)
    return call
