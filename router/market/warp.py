"""A recording played at different speeds piece by piece: real market data that changes regime.

Slowing a stretch of a recording down ``k`` times gives a quieter market made of real events: a ``k``-th of
the trades per second, the price moving ``sqrt(k)`` times less per square-root second, a resting order's
time-to-live seeing a ``k``-th of the market it saw. Playing the next stretch at its own speed makes it the
active regime after it. Prices, sizes and the order of events are untouched, and since the pieces are
consecutive stretches of one recording the book stays continuous across them (no spliced snapshot).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from router_tuner.router.market.tape import MarketTape

_TIMED = ("quote_ts_ns", "trade_ts_ns", "depth_ts_ns", "depth_gap_ts_ns", "mark_ts_ns")
"""Every time column of a tape: all are mapped through the same warp."""


def warp_time(tape: MarketTape, knots_ns: Sequence[int], speeds: Sequence[float]) -> MarketTape:
    """``tape`` with the stretch between ``knots_ns[i]`` and ``knots_ns[i + 1]`` played at ``speeds[i]`` (0.25:
    four times slower); times before the first knot are kept, after the last they are shifted by what the
    pieces added. Raises ``ValueError`` on knots that do not increase or a speed that is not positive and finite.
    """
    knots = np.asarray(knots_ns, dtype=np.int64)
    rates = np.asarray(speeds, dtype=np.float64)
    if len(knots) != len(rates) + 1 or len(rates) == 0:
        raise ValueError(f"need one more knot than speeds, got {len(knots)} knots and {len(rates)} speeds")
    if not (np.diff(knots) > 0).all():
        raise ValueError(f"knots must increase strictly, got {knots.tolist()}")
    if not (np.isfinite(rates) & (rates > 0)).all():
        raise ValueError(f"speeds must be positive and finite, got {rates.tolist()}")
    origin = int(knots[0])  # times relative to it: nanoseconds since the epoch exceed float64's exact integers
    relative_knots = (knots - origin).astype(np.float64)
    warped_knots = np.concatenate(([0.0], np.cumsum(np.diff(relative_knots) / rates)))
    shift_after = round(float(warped_knots[-1] - relative_knots[-1]))

    def warp(ts: np.ndarray) -> np.ndarray:
        relative = ts - origin
        warped = np.interp(relative.astype(np.float64), relative_knots, warped_knots)
        inside = origin + np.round(warped).astype(np.int64)
        return np.where(relative < 0, ts, np.where(ts > knots[-1], ts + shift_after, inside))

    return dataclasses.replace(tape, **{name: warp(getattr(tape, name)) for name in _TIMED}).validate()
