"""Driving routing machines on a venue whose clock the driver may sleep on (simulated or wall clock).

``ClockDriver`` is a discrete-event loop: it steps each machine until it waits, keeps a heap of wake
times, sleeps the venue clock to the earliest one and resumes that machine, so many routes overlap on
one replay. Venue calls are blocking round trips performed in the order the machines make them (one
connection); on a simulated venue each advances the shared clock by its latency, and a wake time the
clock has already passed resumes at once. ``drive`` runs one machine to its end: the sequential
``route``. A driver without pushed order updates wakes a waiting machine at its next poll and answers
``None`` (``WaitUntil.poll_wake_ns``), so one machine behaves exactly as the blocking loop did.
"""

from __future__ import annotations

import heapq
from collections import deque
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from router.contract import venue_contract
from router.routing.calls import Cancel, ContractOf, Fetch, Now, Place, Steps, Touch, VenueCall, WaitUntil
from router.venue import Venue

K = TypeVar("K")
R = TypeVar("R")


def perform(call: VenueCall, venue: Venue) -> Any:
    """The reply of ``venue`` to one non-waiting call (its exceptions propagate)."""
    if isinstance(call, Now):
        return venue.clock.now_ns()
    if isinstance(call, Touch):
        return venue.top_of_book(call.symbol)
    if isinstance(call, Fetch):
        return venue.fetch_order(call.symbol, call.client_order_id)
    if isinstance(call, Place):
        return venue.place_order(call.request)
    if isinstance(call, Cancel):
        return venue.cancel_order(call.symbol, call.client_order_id)
    if isinstance(call, ContractOf):
        return venue_contract(venue, call.symbol)
    raise TypeError(f"not a venue call the driver performs: {call!r}")


@dataclass(frozen=True, slots=True)
class Finished(Generic[K, R]):
    """A machine that ended: its ``result``, or the ``error`` that escaped it (then ``result`` is None)."""

    key: K
    result: R | None
    error: BaseException | None


class ClockDriver(Generic[K, R]):
    """Steps many machines on one venue, each identified by a caller's ``key``, in wake-time order."""

    def __init__(self, venue: Venue) -> None:
        self.venue = venue
        self._heap: list[tuple[int, int, K, Steps[R]]] = []
        self._seq = 0
        self.finished: deque[Finished[K, R]] = deque()

    @property
    def waiting(self) -> int:
        """Machines parked on a wake time."""
        return len(self._heap)

    def next_wake_ns(self) -> int | None:
        return self._heap[0][0] if self._heap else None

    def start(self, key: K, machine: Steps[R]) -> None:
        """Run a new machine until it first waits (or ends: then it is in ``finished``)."""
        self._run(key, machine, None, None)

    def step(self) -> None:
        """Sleep the clock to the earliest wake and resume that machine until it waits or ends."""
        wake_ns, _, key, machine = heapq.heappop(self._heap)
        try:
            self.venue.clock.sleep_until(wake_ns)
        except Exception as exc:  # a clock that cannot get there is the machine's to handle
            self._run(key, machine, None, exc)
            return
        self._run(key, machine, None, None)

    def _run(self, key: K, machine: Steps[R], reply: Any, error: BaseException | None) -> None:
        while True:
            try:
                call = machine.send(reply) if error is None else machine.throw(error)
            except StopIteration as stop:
                self.finished.append(Finished(key, stop.value, None))
                return
            except Exception as exc:  # reported with its key; the other machines go on
                self.finished.append(Finished(key, None, exc))
                return
            if isinstance(call, WaitUntil):
                self._seq += 1
                heapq.heappush(self._heap, (call.poll_wake_ns(self.venue.clock.now_ns()), self._seq, key, machine))
                return
            try:
                reply, error = perform(call, self.venue), None
            except Exception as exc:  # thrown into the machine, which decides
                reply, error = None, exc


def drive(machine: Steps[R], venue: Venue) -> R:
    """Run one machine to its end on ``venue``, blocking; what escapes the machine is raised."""
    driver: ClockDriver[None, R] = ClockDriver(venue)
    driver.start(None, machine)
    while driver.waiting:
        driver.step()
    done = driver.finished.popleft()
    if done.error is not None:
        raise done.error
    return done.result  # type: ignore[return-value]
