"""How a contextual learner encodes the market context (``features.context.Context``) into features.

The hour is encoded on the unit circle (sin, cos) so 23:00 and 00:00 are neighbours; bps features are
divided by configured scales so a ridge penalty treats them alike.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from router_tuner.features.context import Context, hour_on_circle

N_FEATURES = 7
"""Intercept, spread, volatility, book imbalance, sin(hour), cos(hour), size vs touch."""

MIN_FEATURE_SCALE = 1e-3
"""The smallest scale (0.001 bps of spread or volatility, a thousandth of the touch): a scale of 1e-300 made the
features ~1e300, their squares overflowed and every LinUCB score was NaN (``simulate`` ended in an IndexError)."""


@dataclass(frozen=True, slots=True)
class ContextScales:
    """Typical magnitudes that bring each raw feature to order one (from config, per venue/symbol)."""

    spread_scale_bps: float
    volatility_scale_bps: float
    size_vs_touch_scale: float

    def __post_init__(self) -> None:
        for name in ("spread_scale_bps", "volatility_scale_bps", "size_vs_touch_scale"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= MIN_FEATURE_SCALE):
                raise ValueError(f"{name} must be finite and >= {MIN_FEATURE_SCALE}, got {value!r}")

    def encode(self, context: Context) -> np.ndarray:
        """The feature vector (length :data:`N_FEATURES`, intercept first)."""
        sin_hour, cos_hour = hour_on_circle(context.hour)
        return np.array(
            [
                1.0,
                context.spread_bps / self.spread_scale_bps,
                context.volatility_bps / self.volatility_scale_bps,
                context.book_imbalance,
                sin_hour,
                cos_hour,
                context.size_vs_touch / self.size_vs_touch_scale,
            ]
        )
