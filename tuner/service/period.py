"""What a symbol's tuner counts between two published versions: outcomes, costs, arm pulls and contexts.

The counters are a msgspec struct so the tuner's state file carries them across a restart; the metrics
of the next version (:class:`tuner.service.publish.VersionMetrics`) are computed from them.
"""

from __future__ import annotations

import msgspec

from router_tuner.features.context import Context, hour_from_circle, hour_on_circle
from router_tuner.router.events import RouterEvent

_CONTEXT_FIELDS = 6
"""Running sums of spread, volatility, imbalance, sin(hour), cos(hour) and size vs touch."""


class PeriodStats(msgspec.Struct, forbid_unknown_fields=True):
    """Counters since the last published version; mutable, owned by one ``SymbolTuner``."""

    events: int
    learned: int
    cost_sum_bps: float
    maker_final: int
    fallback: int
    pulls: dict[str, int]
    contexts: int
    context_sums: list[float]

    @classmethod
    def empty(cls) -> PeriodStats:
        return cls(events=0, learned=0, cost_sum_bps=0.0, maker_final=0, fallback=0, pulls={}, contexts=0,
                   context_sums=[0.0] * _CONTEXT_FIELDS)

    def add_event(self, event: RouterEvent) -> None:
        """Count one routed order, learned or not (for maker and fallback ratios)."""
        self.events += 1
        self.maker_final += int(event.is_maker_final)
        self.fallback += int(event.used_fallback)

    def add_learned(self, arm_id: str, cost_bps: float, context: Context | None) -> None:
        """Count one learned outcome: its cost, its arm and (when given) its context."""
        self.learned += 1
        self.cost_sum_bps += cost_bps
        self.pulls[arm_id] = self.pulls.get(arm_id, 0) + 1
        if context is not None:
            values = (context.spread_bps, context.volatility_bps, context.book_imbalance,
                      *hour_on_circle(context.hour), context.size_vs_touch)
            self.contexts += 1
            for i, value in enumerate(values):
                self.context_sums[i] += value

    @property
    def mean_cost_bps(self) -> float | None:
        return self.cost_sum_bps / self.learned if self.learned else None

    @property
    def maker_ratio(self) -> float:
        return self.maker_final / self.events if self.events else 0.0

    @property
    def fallback_ratio(self) -> float:
        return self.fallback / self.events if self.events else 0.0

    def mean_context(self) -> Context | None:
        """The period's average context; the hour is the circular mean (direction of the mean sin/cos)."""
        if not self.contexts:
            return None
        spread, vol, imbalance, sin_h, cos_h, size = (s / self.contexts for s in self.context_sums)
        return Context(spread_bps=spread, volatility_bps=vol, book_imbalance=max(-1.0, min(1.0, imbalance)),
                       hour=hour_from_circle(sin_h, cos_h), size_vs_touch=size)
