"""Probabilistic queue-position models for resting orders in the simulated venue.

When the displayed size at our price level shrinks by more than the trades there explain, someone
cancelled, and we cannot see whether they were ahead of us or behind. Following hftbacktest's
``ProbQueueModel``, a model gives the share of such a decrease that came from ahead of us as a
function of the size ahead (``front``) and behind (``back``); the expected position is then updated.
A model is a small frozen dataclass so that it is a plain, comparable configuration value.

References: hftbacktest, ``PowerProbQueueFunc``, ``LogProbQueueFunc`` (queue models documentation).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol


class QueueModel(Protocol):
    """Share in [0, 1] of a level's unexplained size decrease that happened ahead of our order."""

    def front_share(self, front: float, back: float) -> float: ...


@dataclass(frozen=True, slots=True)
class PowerProbQueue:
    """``f(x) = x**power``; share ahead = f(front) / (f(front) + f(back)).

    ``power`` > 1 attributes cancels mostly to the larger side of the queue; 1 is proportional.

    Examples
    --------
    >>> PowerProbQueue(power=2.0).front_share(front=1.0, back=3.0)
    0.1
    """

    power: float

    def __post_init__(self) -> None:
        if not (math.isfinite(self.power) and self.power > 0):
            raise ValueError(f"PowerProbQueue.power must be finite and > 0, got {self.power!r}")

    def front_share(self, front: float, back: float) -> float:
        return _share(max(front, 0.0) ** self.power, max(back, 0.0) ** self.power)


@dataclass(frozen=True, slots=True)
class LogProbQueue:
    """``f(x) = log(1 + x)``: flatter than proportional, cancels spread over both sides.

    Examples
    --------
    >>> round(LogProbQueue().front_share(front=0.0, back=5.0), 3)
    0.0
    """

    def front_share(self, front: float, back: float) -> float:
        return _share(math.log1p(max(front, 0.0)), math.log1p(max(back, 0.0)))


@dataclass(frozen=True, slots=True)
class RiskAverseQueue:
    """Every cancel happened behind us: the position advances only on trades (the pessimistic bound).

    Examples
    --------
    >>> RiskAverseQueue().front_share(front=10.0, back=1.0)
    0.0
    """

    def front_share(self, front: float, back: float) -> float:
        return 0.0


def _share(f_front: float, f_back: float) -> float:
    total = f_front + f_back
    if total <= 0.0 or not math.isfinite(total):
        # Nothing ahead and nothing behind (or overflow): the decrease cannot be placed; a zero-size
        # front stays at zero either way, so attributing it behind is exact for the empty case.
        return 0.0 if f_front <= 0.0 else 1.0
    return f_front / total


def front_after_level_change(model: QueueModel, front: float, prev_level_qty: float, new_level_qty: float,
                             traded_since_prev: float) -> float:
    """Expected size ahead of us after the level went from ``prev`` to ``new`` displayed size.

    ``traded_since_prev`` is the volume already taken off ``front`` by trades at the level since the
    previous observation; it is removed from the decrease so that a trade is not counted twice (once as
    a trade, once as the size drop it caused). An increase only joins behind us, but the front can
    never exceed what is displayed.
    """
    decrease = prev_level_qty - new_level_qty - traded_since_prev
    if decrease <= 0.0:
        return max(0.0, min(front, new_level_qty))
    back = max(prev_level_qty - traded_since_prev - front, 0.0)
    share = model.front_share(front, back)
    est = front - share * decrease + min(back - (1.0 - share) * decrease, 0.0)
    return max(0.0, min(est, new_level_qty))
