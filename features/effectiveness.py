"""Router effectiveness over a window of RouterEvents: what health, alerts and the rule policy read.

Definitions (one place, so every consumer agrees):
- ``maker_fill_ratio``: of the orders that started as maker and filled anything, the share that filled
  entirely as maker (``is_maker_final``);
- ``fallback_ratio``: of the orders that started as maker, the share that used the fallback leg;
- slippage quartiles and ``fee_drag_bps``: over filled orders, fee drag weighted by filled USD notional
  (contract notional: contracts x USD per contract on inverse symbols);
- ``reprice_loop_ratio``: share of orders that re-priced at least ``reprice_loop_min`` times.
A ratio over an empty set is ``None``, never 0: "no maker orders" is not "no maker fills".
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from router_tuner.features.frame import EventArrays
from router_tuner.router.contract import ContractSpec
from router_tuner.router.events import RouterEvent


@dataclass(frozen=True, slots=True)
class RouterEffectiveness:
    """KPIs of routing over one window of events."""

    orders: int
    filled_orders: int
    maker_started: int
    maker_fill_ratio: float | None
    fallback_ratio: float | None
    slippage_p25_bps: float | None
    slippage_p50_bps: float | None
    slippage_p75_bps: float | None
    mean_cost_bps: float | None
    fee_drag_bps: float | None
    mean_time_to_fill_ms: float | None
    reprice_loop_ratio: float | None


def _ratio(numerator: int, denominator: int) -> float | None:
    return None if denominator == 0 else numerator / denominator


def _finite_or_none(value: float) -> float | None:
    return float(value) if np.isfinite(value) else None


def effectiveness_of(arrays: EventArrays, *, reprice_loop_min: int) -> RouterEffectiveness:
    """KPIs of the given rows (already windowed and filtered by the caller)."""
    maker = arrays.started_maker
    maker_filled = maker & arrays.filled
    filled = arrays.filled
    slippage = arrays.slippage_bps[filled]
    quartiles = np.percentile(slippage, [25, 50, 75]) if slippage.size else np.full(3, np.nan)
    notional = arrays.notional_usd[filled]
    fee_drag = (float(np.sum(arrays.fees_bps[filled] * notional) / notional.sum())
                if notional.size and notional.sum() > 0 else np.nan)
    return RouterEffectiveness(
        orders=len(arrays),
        filled_orders=int(filled.sum()),
        maker_started=int(maker.sum()),
        maker_fill_ratio=_ratio(int((maker_filled & arrays.is_maker_final).sum()), int(maker_filled.sum())),
        fallback_ratio=_ratio(int((maker & arrays.used_fallback).sum()), int(maker.sum())),
        slippage_p25_bps=_finite_or_none(quartiles[0]),
        slippage_p50_bps=_finite_or_none(quartiles[1]),
        slippage_p75_bps=_finite_or_none(quartiles[2]),
        mean_cost_bps=_finite_or_none(np.mean(arrays.cost_bps[filled])) if filled.any() else None,
        fee_drag_bps=_finite_or_none(fee_drag),
        mean_time_to_fill_ms=(_finite_or_none(np.nanmean(arrays.time_to_fill_ms[filled]))
                              if np.isfinite(arrays.time_to_fill_ms[filled]).any() else None),
        reprice_loop_ratio=_ratio(int((arrays.reprice_count >= reprice_loop_min).sum()), len(arrays)),
    )


def router_effectiveness(
    events: Sequence[RouterEvent], *, contracts: Mapping[str, ContractSpec], window: int | None,
    reprice_loop_min: int, symbol: str | None = None
) -> RouterEffectiveness:
    """KPIs over the last ``window`` events (all when ``None``), optionally of one symbol.

    ``contracts``: each symbol's contract spec (the config universe), for the USD notional fee drag weighs by.
    """
    arrays = EventArrays.from_events(events, contracts)
    if symbol is not None:
        arrays = arrays.select(arrays.symbol == symbol)
    if window is not None:
        if window < 1:
            raise ValueError(f"window must be at least 1, got {window}")
        keep = np.zeros(len(arrays), dtype=bool)
        keep[-window:] = True
        arrays = arrays.select(keep)
    return effectiveness_of(arrays, reprice_loop_min=reprice_loop_min)
