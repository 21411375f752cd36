"""Router quality in the manner of the old system: broken, degraded, good or neutral.

The thresholds are parameters (``QualityThresholds``), never literals here; the rule policy of the
main job reads them from its configuration.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from router_tuner.features.effectiveness import RouterEffectiveness

Quality = Literal["broken", "degraded", "good", "neutral", "unknown"]


@dataclass(frozen=True, slots=True)
class QualityThresholds:
    """Fallback ratio and median slippage limits of each quality band."""

    broken_fallback_ratio: float
    broken_slippage_bps: float
    degraded_fallback_ratio: float
    degraded_slippage_bps: float
    good_maker_ratio: float
    good_fallback_ratio: float
    good_slippage_bps: float


def router_quality(kpis: RouterEffectiveness, limits: QualityThresholds) -> Quality:
    """Classify a window's KPIs; ``unknown`` when there is nothing filled to judge."""
    if kpis.fallback_ratio is None or kpis.slippage_p50_bps is None or kpis.maker_fill_ratio is None:
        return "unknown"
    fallback, slippage, maker = kpis.fallback_ratio, kpis.slippage_p50_bps, kpis.maker_fill_ratio
    if fallback >= limits.broken_fallback_ratio or slippage >= limits.broken_slippage_bps:
        return "broken"
    if fallback >= limits.degraded_fallback_ratio or slippage >= limits.degraded_slippage_bps:
        return "degraded"
    if (maker >= limits.good_maker_ratio and fallback <= limits.good_fallback_ratio
            and slippage <= limits.good_slippage_bps):
        return "good"
    return "neutral"
