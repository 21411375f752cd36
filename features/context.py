"""The decision context a contextual learner sees when it picks an arm for one order.

Built from what is known at arrival only (the touch, recent mids, the order's size), never from the
outcome, so a policy trained on it can act live. ``Context`` is the one definition: the learners
(``tuner.learners``) encode it, the simulation and the executor build it with ``decision_context``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from router_tuner.risk.units import NS_PER_S, S_PER_HOUR

NS_PER_HOUR = NS_PER_S * S_PER_HOUR


@dataclass(frozen=True, slots=True)
class Context:
    """What the market looked like when the order arrived.

    ``book_imbalance`` is (bid size - ask size) / (bid size + ask size) at the touch, in [-1, 1];
    ``hour`` is the UTC hour of day in [0, 24) (fractions allowed); ``size_vs_touch`` is order size
    over the size resting at the touch on our side.
    """

    spread_bps: float
    volatility_bps: float
    book_imbalance: float
    hour: float
    size_vs_touch: float

    def __post_init__(self) -> None:
        for name in ("spread_bps", "volatility_bps", "book_imbalance", "hour", "size_vs_touch"):
            if not math.isfinite(getattr(self, name)):
                raise ValueError(f"context {name} must be finite, got {getattr(self, name)!r}")
        if self.spread_bps < 0 or self.volatility_bps < 0 or self.size_vs_touch < 0:
            raise ValueError(f"spread, volatility and size_vs_touch must be >= 0: {self}")
        if not -1.0 <= self.book_imbalance <= 1.0:
            raise ValueError(f"book_imbalance must be in [-1, 1], got {self.book_imbalance}")
        if not 0.0 <= self.hour < 24.0:
            raise ValueError(f"hour must be in [0, 24), got {self.hour}")


def hour_on_circle(hour: float) -> tuple[float, float]:
    """(sin, cos) of the hour of day on the unit circle, so 23:00 and 00:00 are neighbours."""
    angle = 2.0 * math.pi * hour / 24.0
    return math.sin(angle), math.cos(angle)


def hour_from_circle(sin_hour: float, cos_hour: float) -> float:
    """The hour in [0, 24) pointing along (sin, cos): the circular mean of hours when given mean sin/cos."""
    hour = (math.atan2(sin_hour, cos_hour) * 24.0 / (2.0 * math.pi)) % 24.0
    return hour if hour < 24.0 else 0.0


def decision_context(
    *, bid: float, ask: float, bid_qty: float, ask_qty: float, recent_mids: np.ndarray, order_qty: float,
    side: str, ts_ns: int,
) -> Context:
    """Context at arrival.

    ``volatility_bps`` is the standard deviation of log mid changes over ``recent_mids`` (bps per step,
    0 with fewer than three mids); ``size_vs_touch`` is the order size over the size on the side the
    order would rest on (bid for a buy).
    """
    if not (math.isfinite(bid) and math.isfinite(ask)) or bid <= 0 or ask <= bid:
        raise ValueError(f"need a valid uncrossed book, got bid={bid} ask={ask}")
    if not (bid_qty > 0 and ask_qty > 0):
        raise ValueError(f"need size on both sides of the touch, got bid_qty={bid_qty} ask_qty={ask_qty}")
    if side not in ("buy", "sell"):
        raise ValueError(f"side must be buy or sell, got {side!r}")
    mid = 0.5 * (bid + ask)
    mids = np.asarray(recent_mids, dtype=np.float64)
    volatility = float(np.std(np.diff(np.log(mids))) * 1e4) if mids.size >= 3 else 0.0
    resting_qty = bid_qty if side == "buy" else ask_qty
    return Context(
        spread_bps=(ask - bid) / mid * 1e4,
        volatility_bps=volatility,
        book_imbalance=(bid_qty - ask_qty) / (bid_qty + ask_qty),
        hour=(ts_ns % (24 * NS_PER_HOUR)) / NS_PER_HOUR,
        size_vs_touch=order_qty / resting_qty,
    )
