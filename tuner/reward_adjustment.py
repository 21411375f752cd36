"""What a tuner adds to an order's journaled cost before learning it, from what the market did after arrival.

Two adjustments (``tuner.json``), each needing the mid after the order's arrival:

* ``reward_markout_horizon_ms`` > 0 charges adverse selection: the mid's move against us that long after the
  last fill.
* ``reward_mid`` ``route_end`` takes the market's noise out: the cost less the mid's move against the order from
  its arrival to the route's end, plus what that move is expected to be for the time the route took. A fallback's
  cost is mostly that move (the market ran away while the maker leg waited) and per-order costs have a 2.4-3 bps
  standard deviation, so without this 800 orders cannot tell arms 0.1 bps apart. The expected move is the
  *waiting drift*: an uninformed order's mid is a martingale, and the move to a bounded stopping time (the route's
  end) has mean zero whatever the arm does; a strategy's orders are informed (a buy sent before a rise), and then
  waiting costs the drift, which the learner must still see. The tuner learns it as a rate, bps per second
  against the order, pooled over every route of the symbol whatever its arm: with ``mid - rate * t`` a martingale,
  the mean move to the route's end is ``rate * E[duration]`` for every arm (optional stopping again), so
  ``sum(move) / sum(duration)`` estimates the rate from routes of any mix of arms. Pooled over all of them and
  over ``reward_mid_drift_window`` routes (a property of the strategy's orders more than of the market's
  regime), it brings back little of the noise the end mid took out. The rate of a drift that is not constant in
  the time since arrival (alpha that decays within the route) is an average over the routes' durations.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Annotated

import msgspec

from router_tuner.router.events import RouterEvent

PRIOR_SECONDS = 10.0
"""The drift rate is shrunk towards zero by this many seconds of waiting without a move: a first few routes do
not set it alone."""


@dataclass(frozen=True, slots=True)
class MarketAfter:
    """What the market did after an order's arrival, in bps against the order (a buy pays a rise).

    ``markout_bps``: the mid's move ``reward_markout_horizon_ms`` after the last fill (``None`` when nothing
    filled); ``move_to_end_bps``: the mid's move from the order's arrival to the route's end, ``None`` when it
    was not read (live: the touch read after the route failed, or an event learned again from the journal after
    a restart). An unknown move is replaced by its expected value, ``rate * seconds``: the cost is then learned as
    journaled, with its noise but with the same mean.
    """

    markout_bps: float | None
    move_to_end_bps: float | None


def move_against_bps(side: str, arrival_mid: float, later_mid: float) -> float:
    """The mid's move against an order of ``side`` (up for a buy) from ``arrival_mid``, in bps of it."""
    sign = 1.0 if side == "buy" else -1.0
    return sign * (later_mid - arrival_mid) / arrival_mid * 1e4


MAX_MOVE_SUM_BPS = 1e10
"""Bound of a saved discounted move sum: a window of at most 1e6 routes (``MAX_COUNT``) of moves of at most 1e4 bps."""
MAX_SECONDS_SUM = 1e12
"""Bound of a saved discounted duration sum (1e6 routes of at most ~11 days each): a damaged file is refused."""


class WaitingDriftState(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The discounted sums the waiting drift's rate is their ratio of; ``routes`` counts what was added.

    The bounds refuse a damaged state file at load (named with its key): a negative duration sum would divide by
    zero or flip the drift's sign, and a huge move would make every learned cost absurd."""

    move_bps: Annotated[float, msgspec.Meta(ge=-MAX_MOVE_SUM_BPS, le=MAX_MOVE_SUM_BPS)]
    seconds: Annotated[float, msgspec.Meta(ge=0.0, le=MAX_SECONDS_SUM)]
    routes: Annotated[int, msgspec.Meta(ge=0)]


class WaitingDrift:
    """The mid's drift against a symbol's orders per second since arrival, learned from every route's end move.

    ``window`` routes: each route discounts the sums by ``1 - 1/window``; 0 assumes uninformed orders (the rate
    stays 0: an evaluation setting, for the simulation's intents, which know nothing of the price).
    """

    def __init__(self, window: int, state: WaitingDriftState | None = None) -> None:
        if window < 0:
            raise ValueError(f"reward_mid_drift_window must be >= 0, got {window}")
        self.window = window
        self._keep = 1.0 - 1.0 / window if window else 0.0
        state = state or WaitingDriftState(move_bps=0.0, seconds=0.0, routes=0)
        self._move_bps, self._seconds, self._routes = state.move_bps, state.seconds, state.routes

    @property
    def rate_bps_per_s(self) -> float:
        """The drift against the order per second waited, in bps (0 with ``window`` 0, even after loading a state
        saved under another window: an evaluation setting assumes uninformed intents)."""
        if not self.window:
            return 0.0
        return self._move_bps / (self._seconds + PRIOR_SECONDS)

    def observe(self, move_bps: float, seconds: float) -> None:
        """Add one route: its mid's move against the order from arrival to end, and how long it took."""
        if not self.window:
            return
        self._move_bps = self._keep * self._move_bps + move_bps
        self._seconds = self._keep * self._seconds + seconds
        self._routes += 1

    @property
    def state(self) -> WaitingDriftState:
        return WaitingDriftState(move_bps=self._move_bps, seconds=self._seconds, routes=self._routes)


class RewardAdjustment:
    """A tuner's adjustment of the cost it learns (``tuner.json`` ``reward_markout_horizon_ms``, ``reward_mid``,
    ``reward_mid_drift_window``); built only for a tuner that adjusts its reward."""

    def __init__(self, *, markout: bool, to_route_end: bool, drift_window: int,
                 state: WaitingDriftState | None = None) -> None:
        if not (markout or to_route_end):
            raise ValueError("a reward adjustment charges the markout, measures against the route's end, or both")
        self.markout, self.to_route_end = markout, to_route_end
        self.drift = WaitingDrift(drift_window, state)

    def adjust(self, symbol: str, event: RouterEvent, after: MarketAfter | None) -> float | None:
        """What is added to ``event``'s cost before it is learned (``None`` when nothing filled), and the event's
        move learned into the waiting drift; raises ``ValueError`` when ``after`` lacks what the reward needs."""
        if after is None:
            if event.fills:
                raise ValueError(f"{symbol} adjusts its reward (tuner.json reward_markout_horizon_ms, reward_mid): "
                                 f"filled event {event.intent_id} needs what the market did after its arrival")
            return None
        move = after.move_to_end_bps
        if move is not None and not math.isfinite(move):
            raise ValueError(f"{symbol} event {event.intent_id}: the mid's move to the route's end must be finite, "
                             f"got {after.move_to_end_bps!r}")
        adjustment: float | None = None
        if event.fills:
            adjustment = 0.0
            if self.markout:
                if after.markout_bps is None or not math.isfinite(after.markout_bps):
                    raise ValueError(f"{symbol} charges the markout (tuner.json reward_markout_horizon_ms): filled "
                                     f"event {event.intent_id} needs a finite markout, got {after.markout_bps!r}")
                adjustment += after.markout_bps
        seconds = max(event.finished_ts_ns - event.arrival_ts_ns, 0) / 1e9
        if self.to_route_end and move is not None:
            if adjustment is not None:
                adjustment -= move - self.drift.rate_bps_per_s * seconds
            self.drift.observe(move, seconds)
        return adjustment
