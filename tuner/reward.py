"""The tuner's reward: minus the execution cost in bps against the arrival mid, filtered before learning.

``RouterEvent.cost_bps`` already contains fees and rebates and, when the maker leg timed out, the taker
fallback leg, so the reward needs no further accounting. What it needs is a gate: a non-finite or absurd
cost (a bad mid, a unit bug, a fat-finger fill) would pull a running mean or a posterior far away for a
long time, so such values are rejected and counted by reason, never learned.

Unfilled orders are rejected with reason ``unfilled``: their cost is the missed opportunity (the move of
the market after we gave up), which the event does not measure and which is not comparable with the cost
of a fill. Counting them keeps the unfilled rate visible without inventing a number for it. Orders the
venue rejected (``outcome == "rejected"``) are counted as ``venue_rejected`` for the same reason. An event
whose fills the venue's own rules rule out (the ``venue_anomaly(...)`` flag in its error, read by
``router.events.event_flags``: a post-only fill reported as taker,
a fill worse than its limit, an overfill) is counted as ``venue_anomaly``: its cost is real money but says
nothing about the arm. An event with a fee the venue charged in an asset nothing prices in the quote
(the ``fee_unpriced(...)`` flag) is counted as ``fee_unpriced``: its cost leaves that fee out, and learning it would
teach the arm a cost lower than it was.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping
from typing import Literal

from router_tuner.router.events import FEE_UNPRICED, VENUE_ANOMALY, RouterEvent, event_flags

RejectReason = Literal["unfilled", "venue_rejected", "venue_anomaly", "fee_unpriced", "non_finite", "below_min",
                       "above_max"]


class RewardFilter:
    """Turns a cost in bps into a reward (``-cost_bps``), or rejects it and counts the reason.

    Parameters
    ----------
    min_cost_bps
        Lowest plausible cost (a large rebate-plus-improvement is negative); below is rejected.
    max_cost_bps
        Highest plausible cost; above is rejected.

    Examples
    --------
    >>> f = RewardFilter(min_cost_bps=-20.0, max_cost_bps=50.0)
    >>> f.reward_from_cost(3.5)
    -3.5
    >>> f.reward_from_cost(float("nan")) is None, f.reward_from_cost(900.0) is None
    (True, True)
    >>> dict(f.rejections), f.accepted
    ({'non_finite': 1, 'above_max': 1}, 1)
    """

    def __init__(self, min_cost_bps: float, max_cost_bps: float) -> None:
        if not (math.isfinite(min_cost_bps) and math.isfinite(max_cost_bps)):
            raise ValueError("reward band limits must be finite")
        if min_cost_bps >= max_cost_bps:
            raise ValueError(f"min_cost_bps {min_cost_bps} must be < max_cost_bps {max_cost_bps}")
        self.min_cost_bps = min_cost_bps
        self.max_cost_bps = max_cost_bps
        self._rejections: Counter[str] = Counter()
        self._accepted = 0

    @property
    def rejections(self) -> Mapping[str, int]:
        """Rejected inputs so far, by reason (a read-only copy)."""
        return dict(self._rejections)

    @property
    def accepted(self) -> int:
        return self._accepted

    def reward_from_cost(self, cost_bps: float) -> float | None:
        """``-cost_bps`` when the cost is finite and inside the band, else ``None`` (and counted)."""
        reason = self._reject_reason(cost_bps)
        if reason is not None:
            self._rejections[reason] += 1
            return None
        self._accepted += 1
        return -float(cost_bps)

    def reward_from_event(self, event: RouterEvent) -> float | None:
        """The reward of one routed order, or ``None`` for unfilled/rejected orders, venue anomalies, unpriced fees
        and bad costs."""
        if event.outcome == "rejected":
            self._rejections["venue_rejected"] += 1
            return None
        flags = event_flags(event)
        if VENUE_ANOMALY in flags:
            self._rejections["venue_anomaly"] += 1
            return None
        if FEE_UNPRICED in flags:
            self._rejections["fee_unpriced"] += 1
            return None
        if event.outcome == "unfilled" or event.cost_bps is None:
            self._rejections["unfilled"] += 1
            return None
        return self.reward_from_cost(event.cost_bps)

    def _reject_reason(self, cost_bps: float) -> RejectReason | None:
        if not math.isfinite(cost_bps):
            return "non_finite"
        if cost_bps < self.min_cost_bps:
            return "below_min"
        if cost_bps > self.max_cost_bps:
            return "above_max"
        return None
