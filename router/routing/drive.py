"""Driving routing machines on a venue whose clock the driver may sleep on (simulated or wall clock).

``ClockDriver`` is a discrete-event loop: it steps each machine until it waits, keeps a heap of wake
times, sleeps the venue clock to the earliest one and resumes that machine, so many routes overlap on
one replay. Venue calls are blocking round trips performed in the order the machines make them (one
connection); on a simulated venue each advances the shared clock by its latency, and a wake time the
clock has already passed resumes at once. ``drive`` runs one machine to its end: the sequential
``route``. Neither has pushed order updates: a machine waiting on an order is polled at its poll
interval (``WaitUntil.poll_wake_ns``), the driver fetching the order itself as ``PollingOrderUpdates`` does,
and resumed only with news (a state other than the one it holds, ``WaitUntil.seen``) or, at its deadline,
with ``None`` (it then fetches itself). A poll without news would only have had the machine fetch the same
state and wait again, so skipping it changes nothing the machine does; a failed poll resumes it with
``None``, and it fetches with its own retries.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from router_tuner.router.contract import venue_contract
from router_tuner.router.routing.calls import Cancel, ContractOf, Fetch, Now, Place, Steps, Touch, VenueCall, WaitUntil
from router_tuner.router.venue import OrderState, Venue

K = TypeVar("K")
R = TypeVar("R")


_PERFORM: dict[type, Callable[[Any, Venue], Any]] = {
    Now: lambda call, venue: venue.clock.now_ns(),
    Touch: lambda call, venue: venue.top_of_book(call.symbol),
    Fetch: lambda call, venue: venue.fetch_order(call.symbol, call.client_order_id),
    Place: lambda call, venue: venue.place_order(call.request),
    Cancel: lambda call, venue: venue.cancel_order(call.symbol, call.client_order_id),
    ContractOf: lambda call, venue: venue_contract(venue, call.symbol),
}


def perform(call: VenueCall, venue: Venue) -> Any:
    """The reply of ``venue`` to one non-waiting call (its exceptions propagate)."""
    try:
        do = _PERFORM[type(call)]
    except KeyError:
        raise TypeError(f"not a venue call the driver performs: {call!r}") from None
    return do(call, venue)


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
        self._heap: list[tuple[int, int, K, Steps[R], WaitUntil]] = []
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
        """Sleep the clock to the earliest wake and resume that machine until it waits or ends (a poll without
        news parks it again at its next poll)."""
        wake_ns, _, key, machine, wait = heapq.heappop(self._heap)
        try:
            self.venue.clock.sleep_until(wake_ns)
        except Exception as exc:  # a clock that cannot get there is the machine's to handle
            self._run(key, machine, None, exc)
            return
        news = poll(wait, self.venue, wake_ns)
        if news is NO_NEWS:
            self._park(key, machine, wait)
        else:
            self._run(key, machine, news, None)

    def _run(self, key: K, machine: Steps[R], reply: Any, error: BaseException | None) -> None:
        outcome = until_wait(machine, self.venue, reply, error)
        if isinstance(outcome, WaitUntil):
            self._park(key, machine, outcome)
        else:
            self.finished.append(Finished(key, outcome.result, outcome.error))

    def _park(self, key: K, machine: Steps[R], wait: WaitUntil) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (wait.poll_wake_ns(self.venue.clock.now_ns()), self._seq, key, machine, wait))


class _NoNews:
    """The type of :data:`NO_NEWS`."""


NO_NEWS = _NoNews()
"""What :func:`poll` answers when the machine would learn nothing: keep it waiting until its next poll."""


def poll(wait: WaitUntil, venue: Venue, wake_ns: int) -> OrderState | _NoNews | None:
    """The reply to a machine woken at ``wake_ns`` from ``wait``: the order's state when it is news (it differs
    from ``wait.seen``), :data:`NO_NEWS` when it is not and the deadline is still ahead, else ``None`` (the
    machine fetches itself: a wait without an order, the deadline reached, or a failed fetch, whose error the
    machine then meets on its own fetch)."""
    if wait.order is None or wait.seen is None or wake_ns >= wait.ts_ns:
        return None
    try:
        state = venue.fetch_order(wait.order.symbol, wait.order.client_order_id)
    except Exception:  # the machine fetches again and meets the error where it handles errors
        return None
    return NO_NEWS if state is wait.seen or state == wait.seen else state


def until_wait(machine: Steps[R], venue: Venue, reply: Any,
               error: BaseException | None) -> WaitUntil | Finished[None, R]:
    """Resume ``machine`` with ``reply`` (or ``error`` thrown in), performing its calls, until it waits or
    ends; what escapes it is returned in the ``Finished``, never raised."""
    while True:
        try:
            call = machine.send(reply) if error is None else machine.throw(error)
        except StopIteration as stop:
            return Finished(None, stop.value, None)
        except Exception as exc:  # reported to the driver; other machines go on
            return Finished(None, None, exc)
        if isinstance(call, WaitUntil):
            return call
        try:
            reply, error = perform(call, venue), None
        except Exception as exc:  # thrown into the machine, which decides
            reply, error = None, exc


def drive(machine: Steps[R], venue: Venue) -> R:
    """Run one machine to its end on ``venue``, blocking (the sequential ``route``); what escapes it is raised.

    The one-machine case of ``ClockDriver`` without its heap: each wait sleeps the clock to the next poll,
    until there is news or the deadline.
    """
    clock = venue.clock
    reply: Any = None
    error: BaseException | None = None
    while True:
        outcome = until_wait(machine, venue, reply, error)
        if isinstance(outcome, Finished):
            if outcome.error is not None:
                raise outcome.error
            return outcome.result  # type: ignore[return-value]
        reply, error = NO_NEWS, None
        while reply is NO_NEWS:
            wake_ns = outcome.poll_wake_ns(clock.now_ns())
            try:
                clock.sleep_until(wake_ns)
            except Exception as exc:  # a clock that cannot get there is the machine's to handle
                reply, error = None, exc
                break
            reply = poll(outcome, venue, wake_ns)
