"""How much faster posts fill lately than the learner's memory says: the market's activity, seen in fill times.

Why: a market turning busy shows first in how fast a post fills, not in whether it fills. On the synthetic regime
market (README, "The tuner") a post 0.5 bps behind the touch filled 92% of the time in the quiet stretches and
100% in the busy one, but its median time to fill fell from ~1,650 ms to 93 ms; the fill model, which sees
fills only, kept the quiet market's curve, put a post 4 bps behind at a 3% fill (it filled ~73%), and the
learner stayed near the touch through the busy stretch in most runs.

Model: posts at offset d fill at the hazard ``level(t) * h(d)`` (proportional hazards: activity multiplies the
fill rate at every distance while the shape across distances changes slowly). Per offset two discounted tallies
are kept of first-post fills and exposure (the share of the TTL each post waited: its fill time over the TTL, 1
when the first post did not fill), one with the learner's memory (``slow_window``), one short (``fast_window``),
both aged by every outcome, taker legs included. The level is the ratio of the recent fills to those the
long-memory hazards expect over the recent exposure,
``(observed + 1) / (expected + 1)`` (one pseudo-fill each way, so a few outcomes cannot swing it), kept within
``exp(±MAX_LOG_LEVEL)``. A fill probability p of the fitted curve then becomes ``1 - (1 - p) ** level``: the
probability under a hazard ``level`` times as high. Offsets routed lately carry their own fresh evidence;
the level moves what the curve says of the others.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

MAX_LOG_LEVEL = 3.0
"""The level stays within e^-3 .. e^3 (a twentyfold change of the fill rate either way)."""
PSEUDO_FILLS = 1.0
PRIOR_EXPOSURE = 0.5
"""An offset without long-memory evidence is expected to fill at one per TTL (half a fill over half a TTL). Tried and
not kept (tune split): shrinking each offset's rate towards all offsets' pooled rate instead (+0.043/+0.054 bps behind
the best fixed arm on seeds 3-5/6-8 against +0.032/+0.047, the synthetic regime market no longer followed on 6-8)."""


class FillSpeed:
    """The tallies and level of one learner's market (see the module docstring); the arithmetic of an outcome is
    the compiled ``structured_kernel.fill_level`` (in plain Python it cost the structured learner a third of its
    updates per second), passed in as ``kernel`` by the learner that binds it.
    """

    def __init__(self, columns: int, *, slow_window: float, fast_window: float) -> None:
        if not fast_window > 1.0:
            raise ValueError(f"fast_window must be > 1, got {fast_window!r}")
        if not slow_window > fast_window:
            raise ValueError(f"slow_window ({slow_window!r}) must be longer than fast_window ({fast_window!r})")
        self.fast_window = float(fast_window)
        self._keep_slow = 1.0 - 1.0 / slow_window
        self._keep_fast = 1.0 - 1.0 / fast_window
        self.tallies = np.zeros((4, columns))
        """Rows: long-memory fills and exposure, short-memory fills and exposure; one column per offset."""
        self.level = 1.0

    def observe(self, kernel: Callable[..., float], column: int | None, wait_share: float | None) -> float:
        """Add one outcome: a post at ``column`` (``wait_share``: its fill time over the TTL, ``None`` when the first
        post did not fill), or with ``column`` ``None`` a taker leg, which only ages both memories (a learner that
        stopped posting sees its level return to 1 instead of keeping the last one for good); returns the level."""
        exposure, filled = (1.0, 0.0) if wait_share is None else (wait_share, 1.0)
        self.level = kernel(self.tallies, self._keep_slow, self._keep_fast, -1 if column is None else column, filled,
                            exposure)
        return self.level

    def restore(self, kernel: Callable[..., float], tallies: np.ndarray) -> float:
        """Continue from saved tallies (shape ``(4, columns)``); returns the level they give."""
        if tallies.shape != self.tallies.shape:
            raise ValueError(f"fill-speed tallies of shape {tallies.shape}, expected {self.tallies.shape}")
        self.tallies[:] = tallies
        self.level = kernel(self.tallies, 1.0, 1.0, -1, 0.0, 0.0)
        return self.level
