"""Time-of-day expectancy: realized PnL per unit of notional, by UTC hour, from closing fills."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from router_tuner.features.context import NS_PER_HOUR
from router_tuner.features.frame import EventArrays
from router_tuner.router.contract import ContractSpec
from router_tuner.router.events import RouterEvent


@dataclass(frozen=True, slots=True)
class HourlyExpectancy:
    """One UTC hour: how many closing orders, their notional, PnL and PnL per notional in bps."""

    hour: int
    trades: int
    notional_usd: float
    realized_pnl_usd: float
    expectancy_bps: float


def hourly_expectancy(events: Sequence[RouterEvent], *,
                      contracts: Mapping[str, ContractSpec]) -> list[HourlyExpectancy]:
    """Hours with at least one order that realized PnL (closed exposure), in hour order.

    Notional is USD under each symbol's contract spec (``contracts``, the config universe).
    """
    arrays = EventArrays.from_events(events, contracts)
    closing = np.isfinite(arrays.realized_pnl_usd) & (arrays.notional_usd > 0)
    hours = (arrays.finished_ts_ns[closing] // NS_PER_HOUR) % 24
    pnl = arrays.realized_pnl_usd[closing]
    notional = arrays.notional_usd[closing]
    result = []
    for hour in np.unique(hours):
        in_hour = hours == hour
        total_notional = float(notional[in_hour].sum())
        total_pnl = float(pnl[in_hour].sum())
        result.append(HourlyExpectancy(hour=int(hour), trades=int(in_hour.sum()), notional_usd=total_notional,
                                       realized_pnl_usd=total_pnl,
                                       expectancy_bps=total_pnl / total_notional * 1e4))
    return result
