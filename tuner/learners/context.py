"""The market context a contextual learner conditions on, and its encoding into a feature vector.

The hour is encoded on the unit circle (sin, cos) so 23:00 and 00:00 are neighbours; bps features are
divided by configured scales so a ridge penalty treats them alike.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

N_FEATURES = 7
"""Intercept, spread, volatility, book imbalance, sin(hour), cos(hour), size vs touch."""


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


@dataclass(frozen=True, slots=True)
class ContextScales:
    """Typical magnitudes that bring each raw feature to order one (from config, per venue/symbol)."""

    spread_scale_bps: float
    volatility_scale_bps: float
    size_vs_touch_scale: float

    def __post_init__(self) -> None:
        for name in ("spread_scale_bps", "volatility_scale_bps", "size_vs_touch_scale"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be finite and > 0, got {value!r}")

    def encode(self, context: Context) -> np.ndarray:
        """The feature vector (length :data:`N_FEATURES`, intercept first)."""
        angle = 2.0 * math.pi * context.hour / 24.0
        return np.array(
            [
                1.0,
                context.spread_bps / self.spread_scale_bps,
                context.volatility_bps / self.volatility_scale_bps,
                context.book_imbalance,
                math.sin(angle),
                math.cos(angle),
                context.size_vs_touch / self.size_vs_touch_scale,
            ]
        )
