"""Symbol scores: one row per symbol that allocators and health reports rank symbols by.

The Sharpe ratio here is per closing trade (mean over standard deviation of realized PnL per unit of
notional, times the square root of the number of trades in the window), not annualised: trades are
irregular in time, and an annualisation would invent a frequency.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from router_tuner.features.effectiveness import RouterEffectiveness, effectiveness_of
from router_tuner.features.frame import EventArrays
from router_tuner.router.contract import ContractSpec
from router_tuner.router.events import RouterEvent


@dataclass(frozen=True, slots=True)
class SlippageRegimes:
    """Median slippage limits (bps) between the ``calm``, ``normal`` and ``stressed`` regimes."""

    calm_below_bps: float
    stressed_above_bps: float

    def __post_init__(self) -> None:
        if not self.calm_below_bps < self.stressed_above_bps:
            raise ValueError("calm_below_bps must be below stressed_above_bps")

    def classify(self, median_slippage_bps: float | None) -> str | None:
        if median_slippage_bps is None:
            return None
        if median_slippage_bps < self.calm_below_bps:
            return "calm"
        return "stressed" if median_slippage_bps > self.stressed_above_bps else "normal"


@dataclass(frozen=True, slots=True)
class SymbolScore:
    """How well a symbol trades and routes over the window."""

    symbol: str
    closing_trades: int
    sharpe_per_trade: float | None
    fee_drag_bps: float | None
    slippage_regime: str | None
    router: RouterEffectiveness


def sharpe_per_trade(returns: np.ndarray) -> float | None:
    """Mean over standard deviation of per-trade returns, times the square root of their count.

    ``None`` with fewer than two returns or none of them different: there is no spread to scale by.
    """
    if returns.size < 2:
        return None
    spread = returns.std(ddof=1)
    return None if spread == 0 else float(returns.mean() / spread * np.sqrt(returns.size))


def symbol_scores(
    events: Sequence[RouterEvent], *, contracts: Mapping[str, ContractSpec], window: int, regimes: SlippageRegimes,
    reprice_loop_min: int
) -> list[SymbolScore]:
    """A score per symbol over its last ``window`` events, sorted by symbol (``contracts``: specs per symbol)."""
    if window < 1:
        raise ValueError(f"window must be at least 1, got {window}")
    arrays = EventArrays.from_events(events, contracts)
    scores = []
    for symbol in sorted(set(arrays.symbol.tolist())):
        rows = np.flatnonzero(arrays.symbol == symbol)[-window:]
        keep = np.zeros(len(arrays), dtype=bool)
        keep[rows] = True
        mine = arrays.select(keep)
        closing = np.isfinite(mine.realized_pnl_usd) & (mine.notional_usd > 0)
        returns = mine.realized_pnl_usd[closing] / mine.notional_usd[closing]
        router = effectiveness_of(mine, reprice_loop_min=reprice_loop_min)
        scores.append(SymbolScore(symbol=symbol, closing_trades=int(closing.sum()),
                                  sharpe_per_trade=sharpe_per_trade(returns), fee_drag_bps=router.fee_drag_bps,
                                  slippage_regime=regimes.classify(router.slippage_p50_bps), router=router))
    return scores
