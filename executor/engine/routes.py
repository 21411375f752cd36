"""Routes as asyncio tasks on one event loop in a thread of its own, started and collected by the executor.

Why a thread: the executor's own work (admission, the Submission record, settling, the journal batch, health)
is blocking and owns SQLite connections, while routes must wait on the venue concurrently. ``RouteLoop`` runs
every route machine (``router.routing.machine``) under the asyncio driver (``router.routing.aio.drive_async``)
on its loop; the executor thread starts routes (``start``), blocks in ``wait`` until one finishes, and pops
``finished``. A route never waits for the executor, and a new intent's admission never waits for a route
to be stepped. The executor's own venue calls go through ``RouteVenues.venue``: on the same client as the
routes (``executor.engine.live``: one rate limiter per venue) or, on a simulated clock, the same venue under
the timeline's lock.

On a simulated clock (``RouteLoop.clocked``: the paper venue, test venues) time passes only while the executor
thread waits in ``wait`` and no finished route awaits it (``router.routing.timeline``), and a route started
runs to its first wait before ``start`` returns, so a replay routes the same way whatever the thread timing.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import threading
import weakref
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from router_tuner.router.events import RouterEvent
from router_tuner.router.routing.aio import AsyncVenue, OrderUpdates, PollingOrderUpdates, drive_async
from router_tuner.router.routing.calls import Steps
from router_tuner.router.routing.drive import Finished
from router_tuner.router.routing.timeline import ClockedVenue, LockedVenue, Timeline
from router_tuner.router.venue import OrderState, Venue

if TYPE_CHECKING:
    from router_tuner.router.venues.ccxt.book_feed import BookStatus
    from router_tuner.router.venues.ccxt.order_feed import FeedStatus

T = TypeVar("T")
ABANDON_WAIT_S = 5.0
"""How long an interrupted venue opening may take to cancel and close its client (``RouteLoop._abandon``)."""


@dataclass(frozen=True, slots=True)
class RouteVenues:
    """What routes and the executor run on, built on the loop's thread.

    ``venue`` serves the executor's thread (blocking calls); ``routes_venue`` and ``updates`` serve the routes;
    ``timeline`` is set on a simulated clock; ``feed_status`` reports the order stream (``None`` without
    one) and ``book_status`` the streamed touch (likewise); ``forget`` drops an order of a finished route from
    the updates source; ``close`` releases them.
    """

    venue: Venue
    routes_venue: AsyncVenue
    updates: OrderUpdates
    timeline: Timeline | None
    feed_status: Callable[[], FeedStatus] | None
    forget: Callable[[str], None] | None
    close: Callable[[], Awaitable[None]] | None
    book_status: Callable[[], BookStatus] | None = None


class RouteLoop:
    """Route machines as tasks on one event loop (see the module docstring); ``close`` when done."""

    def __init__(self, open_venues: Callable[[], Coroutine[Any, Any, RouteVenues]]) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="route-loop", daemon=True)
        self._thread.start()
        # an engine dropped without close() (a test, an embedder) still stops its thread and frees its loop
        self._stop_loop = weakref.finalize(self, _stop_loop, self._loop, self._thread)
        self._closed = False
        opening = asyncio.run_coroutine_threadsafe(open_venues(), self._loop)
        try:
            self.venues = opening.result()
        except BaseException:
            self._abandon(opening)
            self._stop_loop()
            raise
        self.finished: deque[Finished[str, RouterEvent]] = deque()
        self._tasks: set[asyncio.Task[None]] = set()
        self._wake: asyncio.Event | None = None

    @classmethod
    def clocked(cls, venue: Venue, *, poll_interval_ms: float) -> RouteLoop:
        """Routes on a blocking ``venue`` whose clock the engine moves (``router.routing.timeline``); orders
        are polled every ``poll_interval_ms`` of that clock."""
        async def open_venues() -> RouteVenues:
            timeline = Timeline(venue.clock)
            clocked = ClockedVenue(venue, timeline)
            return RouteVenues(venue=LockedVenue(venue, timeline.lock),  # type: ignore[arg-type]
                               routes_venue=clocked,
                               updates=PollingOrderUpdates(clocked, poll_interval_ms=poll_interval_ms),
                               timeline=timeline, feed_status=None, forget=None, close=None)
        return cls(open_venues)

    @property
    def venue(self) -> Venue:
        """The venue for the executor's thread."""
        return self.venues.venue

    def feed_status(self) -> FeedStatus | None:
        """How order updates arrive now (stream or polling), or ``None`` when no stream is configured."""
        return self.venues.feed_status() if self.venues.feed_status is not None else None

    def book_status(self) -> BookStatus | None:
        """How the touch is read now (stream or REST), or ``None`` when it is read by REST only."""
        return self.venues.book_status() if self.venues.book_status is not None else None

    def call(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Run ``coroutine`` on the loop and block for its result (never from the loop's own thread)."""
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result()

    def start(self, key: str, machine: Steps[RouterEvent]) -> None:
        """Start a route as a task; on a simulated clock it has sent its first request when this returns."""
        self.call(self._launch(key, machine))

    def wait(self, timeout_s: float | None) -> None:
        """Block until ``finished`` holds a route or ``timeout_s`` passed (``None``: no limit); on a simulated
        clock this is when time passes."""
        if not self.finished:
            self.call(self._wait(timeout_s))

    def _abandon(self, opening: concurrent.futures.Future[RouteVenues]) -> None:
        """Cancel an opening this thread stopped waiting for, and give its tasks ``ABANDON_WAIT_S`` to clean up.

        Why: Ctrl-C while the live venue connects interrupts this thread's wait, not the connection on the loop.
        Stopping the loop under it left its tasks pending and its HTTP session open: the one line "interrupted" was
        followed by asyncio's "Task was destroyed but it is pending!", "Exception ignored … Traceback … Event loop is
        closed" and "Unclosed client session". Cancelled, the connection closes its client itself
        (``AsyncCcxtVenue.connect``)."""
        if opening.done():
            return
        opening.cancel()
        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(_settle_tasks(ABANDON_WAIT_S), self._loop).result(ABANDON_WAIT_S + 1.0)

    def close(self) -> None:
        """Cancel routes still working (the executor finishes its routes before), release the venues, stop."""
        if self._closed:
            return
        self._closed = True
        try:
            self.call(self._shutdown())
        finally:
            self._stop_loop()

    # --- on the loop's thread -----------------------------------------------------------------------

    async def _launch(self, key: str, machine: Steps[RouterEvent]) -> None:
        task = asyncio.create_task(self._route(key, machine), name=f"route:{key}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        timeline = self.venues.timeline
        if timeline is not None:
            timeline.route_started()
            await asyncio.sleep(0)  # the task runs first: inline venue calls up to its first wait

    async def _route(self, key: str, machine: Steps[RouterEvent]) -> None:
        updates = _RouteUpdates(self.venues.updates)
        try:
            finished: Finished[str, RouterEvent] = Finished(
                key, await drive_async(machine, self.venues.routes_venue, updates), None)
        except Exception as exc:  # the executor decides (a venue error before the first send is a veto)
            finished = Finished(key, None, exc)
        self.finished.append(finished)
        timeline = self.venues.timeline
        if timeline is not None:
            timeline.set_open(False)  # the executor journals this one before time moves on
            timeline.route_ended()
        if self.venues.forget is not None:
            for client_order_id in updates.orders:
                self.venues.forget(client_order_id)
        self._event().set()

    async def _wait(self, timeout_s: float | None) -> None:
        if self.finished:
            return
        wake = self._event()
        wake.clear()
        timeline = self.venues.timeline
        if timeline is not None:
            timeline.set_open(True)
        try:
            await asyncio.wait_for(wake.wait(), timeout_s)
        except TimeoutError:
            pass
        finally:
            if timeline is not None:
                timeline.set_open(False)

    async def _shutdown(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.venues.close is not None:
            await self.venues.close()

    def _event(self) -> asyncio.Event:
        if self._wake is None:
            self._wake = asyncio.Event()
        return self._wake


async def _settle_tasks(timeout_s: float) -> None:
    """Wait up to ``timeout_s`` for the loop's other tasks to end (cancelled ones included)."""
    others = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
    if others:
        await asyncio.wait(others, timeout=timeout_s)


def _stop_loop(loop: asyncio.AbstractEventLoop, thread: threading.Thread) -> None:
    """Stop the loop and its thread, then close the loop (from the loop's own thread it can only be stopped)."""
    loop.call_soon_threadsafe(loop.stop)
    if thread is threading.current_thread():
        return
    thread.join()
    loop.close()


class _RouteUpdates:
    """One route's view of the order updates, noting the orders it waited on (forgotten when it ends)."""

    def __init__(self, updates: OrderUpdates) -> None:
        self._updates = updates
        self.orders: set[str] = set()

    async def wait(self, symbol: str, client_order_id: str, until_ns: int) -> OrderState | None:
        self.orders.add(client_order_id)
        return await self._updates.wait(symbol, client_order_id, until_ns)
