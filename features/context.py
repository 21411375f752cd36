"""The decision context a contextual learner sees when it picks an arm for one order.

Built from what is known at arrival only (the touch, recent mids, the order's size), never from the
outcome, so a policy trained on it can act live.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

NS_PER_HOUR = 3_600 * 1_000_000_000


@dataclass(frozen=True, slots=True)
class DecisionContext:
    """Features of one decision; ``as_dict`` is what learners consume."""

    spread_bps: float
    volatility_bps: float
    book_imbalance: float
    hour_sin: float
    hour_cos: float
    size_vs_touch: float

    def as_dict(self) -> dict[str, float]:
        return {name: getattr(self, name) for name in self.__slots__}


def decision_context(
    *, bid: float, ask: float, bid_qty: float, ask_qty: float, recent_mids: np.ndarray, order_qty: float,
    side: str, ts_ns: int,
) -> DecisionContext:
    """Context at arrival.

    ``volatility_bps`` is the standard deviation of log mid changes over ``recent_mids`` (in bps per
    step); ``book_imbalance`` is (bid size − ask size) / (bid size + ask size) in [−1, 1];
    ``size_vs_touch`` is the order size over the size on the side it would rest on.
    """
    if not (np.isfinite(bid) and np.isfinite(ask)) or bid <= 0 or ask <= bid:
        raise ValueError(f"need a valid uncrossed book, got bid={bid} ask={ask}")
    if bid_qty < 0 or ask_qty < 0 or bid_qty + ask_qty == 0:
        raise ValueError(f"need touch sizes, got bid_qty={bid_qty} ask_qty={ask_qty}")
    if side not in ("buy", "sell"):
        raise ValueError(f"side must be buy or sell, got {side!r}")
    mid = 0.5 * (bid + ask)
    mids = np.asarray(recent_mids, dtype=np.float64)
    volatility = float(np.std(np.diff(np.log(mids))) * 1e4) if mids.size >= 3 else 0.0
    resting_qty = bid_qty if side == "buy" else ask_qty
    hour_angle = 2 * np.pi * ((ts_ns // NS_PER_HOUR) % 24) / 24
    return DecisionContext(
        spread_bps=(ask - bid) / mid * 1e4,
        volatility_bps=volatility,
        book_imbalance=(bid_qty - ask_qty) / (bid_qty + ask_qty),
        hour_sin=float(np.sin(hour_angle)),
        hour_cos=float(np.cos(hour_angle)),
        size_vs_touch=order_qty / resting_qty if resting_qty > 0 else float("inf"),
    )
