"""Columnar view of RouterEvents: the arrays every feature is computed from, built once per call.

``notional_usd`` is each event's filled USD notional under its symbol's contract spec
(:func:`router.contract.notional_usd`: ``price * qty`` on linear and spot, contracts times USD per
contract on inverse), so fee drag, expectancy and per-trade returns are ratios to real USD on COIN-M too.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from router_tuner.router.contract import ContractSpec, contract_of, notional_usd
from router_tuner.router.events import RouterEvent


def _optional(values: list[float | None]) -> np.ndarray:
    return np.array([np.nan if v is None else v for v in values], dtype=np.float64)


@dataclass(frozen=True, slots=True)
class EventArrays:
    """RouterEvents as aligned numpy columns; a missing optional value (nothing filled) is NaN."""

    symbol: np.ndarray
    started_maker: np.ndarray
    is_maker_final: np.ndarray
    used_fallback: np.ndarray
    filled: np.ndarray
    notional_usd: np.ndarray
    maker_qty_share: np.ndarray
    slippage_bps: np.ndarray
    fees_bps: np.ndarray
    cost_bps: np.ndarray
    time_to_fill_ms: np.ndarray
    reprice_count: np.ndarray
    realized_pnl_usd: np.ndarray
    finished_ts_ns: np.ndarray

    @classmethod
    def from_events(cls, events: Sequence[RouterEvent], contracts: Mapping[str, ContractSpec]) -> EventArrays:
        """Columns of ``events``; ``contracts`` maps each symbol to its spec (the config universe), and a
        symbol without one raises ``KeyError`` rather than pass ``price * qty`` off as a notional."""

        def filled_notional_usd(event: RouterEvent) -> float:
            if not event.fills:
                return 0.0
            spec = contract_of(contracts, event.symbol)
            return sum(notional_usd(spec, f.price, f.qty) for f in event.fills)

        def maker_share(event: RouterEvent) -> float:
            if event.filled_qty <= 0:
                return np.nan
            return sum(f.qty for f in event.fills if f.liquidity == "maker") / event.filled_qty

        return cls(
            symbol=np.array([e.symbol for e in events], dtype=object),
            started_maker=np.array([e.started_maker for e in events], dtype=bool),
            is_maker_final=np.array([e.is_maker_final for e in events], dtype=bool),
            used_fallback=np.array([e.used_fallback for e in events], dtype=bool),
            filled=np.array([e.filled_qty > 0 for e in events], dtype=bool),
            notional_usd=np.array([filled_notional_usd(e) for e in events], dtype=np.float64),
            maker_qty_share=np.array([maker_share(e) for e in events], dtype=np.float64),
            slippage_bps=_optional([e.slippage_bps for e in events]),
            fees_bps=_optional([e.fees_bps for e in events]),
            cost_bps=_optional([e.cost_bps for e in events]),
            time_to_fill_ms=_optional([e.time_to_fill_ms for e in events]),
            reprice_count=np.array([e.reprice_count for e in events], dtype=np.int64),
            realized_pnl_usd=_optional([e.realized_pnl_usd for e in events]),
            finished_ts_ns=np.array([e.finished_ts_ns for e in events], dtype=np.int64),
        )

    def __len__(self) -> int:
        return len(self.symbol)

    def select(self, mask: np.ndarray) -> EventArrays:
        """The rows where ``mask`` is true, as a new view."""
        return EventArrays(**{name: getattr(self, name)[mask] for name in self.__slots__})
