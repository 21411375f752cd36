"""The execution health snapshot: NAV and its age, router KPIs, rolling Sharpe, policy quality, intel.

Pure computation over what the executor holds (portfolio, recent RouterEvents, recent veto times, the
current policy per symbol); the KPIs come from ``features`` so health, alerts and the tuner agree.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np

from router_tuner.config.models import HealthSettings
from router_tuner.executor.records import (
    BookFeedHealth,
    HealthSnapshot,
    HourExpectancy,
    OrderFeedHealth,
    SymbolHealth,
)
from router_tuner.features.allocator import Proposal
from router_tuner.features.effectiveness import router_effectiveness
from router_tuner.features.expectancy import hourly_expectancy
from router_tuner.features.quality import QualityThresholds, router_quality
from router_tuner.features.scores import SlippageRegimes, SymbolScore, sharpe_per_trade, symbol_scores
from router_tuner.risk.portfolio import PortfolioState
from router_tuner.risk.units import NS_PER_S
from router_tuner.router.contract import ContractSpec, notional_usd
from router_tuner.router.events import RouterEvent
from router_tuner.router.policy import RouterPolicy

if TYPE_CHECKING:  # the ccxt.pro feed imports ccxt, which paper runs never need
    from router_tuner.router.venues.ccxt.book_feed import BookStatus
    from router_tuner.router.venues.ccxt.order_feed import FeedStatus


def is_closing(event: RouterEvent) -> bool:
    """A filled order that reduced exposure: it has realized PnL and a notional to divide it by."""
    return event.realized_pnl_usd is not None and event.avg_price is not None and event.filled_qty > 0


def rolling_sharpe(events: Sequence[RouterEvent], window: int,
                   contracts: Mapping[str, ContractSpec]) -> float | None:
    """Per-trade Sharpe of realized PnL per USD notional over the last ``window`` closing orders."""
    returns = [e.realized_pnl_usd / notional_usd(contracts[e.symbol], e.avg_price, e.filled_qty)
               for e in events if is_closing(e)]
    return sharpe_per_trade(np.asarray(returns[-window:], dtype=float))


def _symbol_row(symbol: str, policy: RouterPolicy, score: SymbolScore | None,
                thresholds: QualityThresholds) -> SymbolHealth:
    """The health row of one policy symbol; KPIs ``None`` (quality ``unknown``) without events in the window."""
    identity = {"symbol": symbol, "policy_id": policy.policy_id, "policy_version": policy.version, "arm": policy.arm}
    if score is None:
        return SymbolHealth(**identity, quality="unknown", orders=0, maker_ratio=None, fallback_ratio=None,
                            reprice_loop_ratio=None, slippage_p25_bps=None, slippage_p50_bps=None,
                            slippage_p75_bps=None, sharpe_per_trade=None, fee_drag_bps=None, slippage_regime=None)
    kpis = score.router
    return SymbolHealth(**identity, quality=router_quality(kpis, thresholds), orders=kpis.orders,
                        maker_ratio=kpis.maker_fill_ratio, fallback_ratio=kpis.fallback_ratio,
                        reprice_loop_ratio=kpis.reprice_loop_ratio, slippage_p25_bps=kpis.slippage_p25_bps,
                        slippage_p50_bps=kpis.slippage_p50_bps, slippage_p75_bps=kpis.slippage_p75_bps,
                        sharpe_per_trade=score.sharpe_per_trade, fee_drag_bps=score.fee_drag_bps,
                        slippage_regime=score.slippage_regime)


def compute_health(*, now_ns: int, portfolio: PortfolioState, events: Sequence[RouterEvent],
                   closing_events: Sequence[RouterEvent], veto_ts_ns: Sequence[int],
                   policies: Mapping[str, RouterPolicy], settings: HealthSettings, veto_storm_window_s: float,
                   contracts: Mapping[str, ContractSpec], allocations: tuple[Proposal, ...],
                   allocator_applied: bool, order_feed: OrderFeedHealth | None,
                   book_feed: BookFeedHealth | None = None) -> HealthSnapshot:
    """Health at ``now_ns`` over the last ``settings.window_events`` router events; one row per policy symbol.

    ``closing_events``: the recent closing orders (``is_closing``), however far back, of which the rolling
    Sharpe takes the last ``settings.sharpe_window``. ``contracts``: each symbol's contract spec (the
    config universe), for the features' USD notionals. ``allocations``, ``allocator_applied``: the allocator's proposals
    and whether they are applied, as they are. ``order_feed``: the live order stream's status (``order_feed_health``).
    ``book_feed``: the live streamed touch's status (``book_feed_health``).
    """
    window = list(events)[-settings.window_events:]
    kpis = router_effectiveness(window, contracts=contracts, window=None, reprice_loop_min=settings.reprice_loop_min)
    bands = settings.quality
    thresholds = QualityThresholds(
        broken_fallback_ratio=bands.broken_fallback_ratio, broken_slippage_bps=bands.broken_slippage_bps,
        degraded_fallback_ratio=bands.degraded_fallback_ratio, degraded_slippage_bps=bands.degraded_slippage_bps,
        good_maker_ratio=bands.good_maker_ratio, good_fallback_ratio=bands.good_fallback_ratio,
        good_slippage_bps=bands.good_slippage_bps)
    regimes = SlippageRegimes(calm_below_bps=settings.slippage_regimes.calm_below_bps,
                              stressed_above_bps=settings.slippage_regimes.stressed_above_bps)
    scores = {s.symbol: s for s in symbol_scores(window, contracts=contracts, window=settings.window_events,
                                                  regimes=regimes, reprice_loop_min=settings.reprice_loop_min)
              } if window else {}
    symbols = [_symbol_row(symbol, policy, scores.get(symbol), thresholds)
               for symbol, policy in sorted(policies.items())]
    storm_since_ns = now_ns - int(veto_storm_window_s * NS_PER_S)
    positions = portfolio.legs
    return HealthSnapshot(
        ts_ns=now_ns,
        nav_usd=portfolio.nav_usd,
        wallet_balance_usd=portfolio.wallet_balance_usd,
        nav_age_s=max(0, now_ns - portfolio.nav_ts_ns) / NS_PER_S,
        open_positions=len(positions),
        gross_exposure_usd=float(sum(abs(leg.qty) * portfolio.mark(symbol) for (symbol, _), leg in positions.items())),
        orders_in_window=kpis.orders,
        maker_ratio=kpis.maker_fill_ratio,
        fallback_ratio=kpis.fallback_ratio,
        reprice_loop_ratio=kpis.reprice_loop_ratio,
        slippage_p25_bps=kpis.slippage_p25_bps,
        slippage_p50_bps=kpis.slippage_p50_bps,
        slippage_p75_bps=kpis.slippage_p75_bps,
        fee_drag_bps=kpis.fee_drag_bps,
        rolling_sharpe=rolling_sharpe(closing_events, settings.sharpe_window, contracts),
        window_realized_pnl_usd=float(sum(e.realized_pnl_usd for e in window if e.realized_pnl_usd is not None)),
        vetoes_in_storm_window=sum(1 for ts in veto_ts_ns if ts >= storm_since_ns),
        symbols=tuple(symbols),
        expectancy=tuple(HourExpectancy(hour=h.hour, trades=h.trades, expectancy_bps=h.expectancy_bps)
                         for h in hourly_expectancy(window, contracts=contracts)),
        allocations=allocations,
        allocator_applied=allocator_applied,
        order_feed=order_feed,
        book_feed=book_feed,
    )


def book_feed_health(status: BookStatus | None) -> BookFeedHealth | None:
    """The streamed touch's status as the health snapshot keeps it (``None``: the touch is read by REST only)."""
    if status is None:
        return None
    return BookFeedHealth(mode=status.mode, since_ns=status.since_ns, reconnects=status.reconnects,
                          streamed_reads=status.streamed_reads, rest_reads=status.rest_reads, ignored=status.ignored,
                          last_error=status.last_error)


def order_feed_health(status: FeedStatus | None) -> OrderFeedHealth | None:
    """The order feed's status as the health snapshot keeps it (``None``: no stream configured)."""
    if status is None:
        return None
    return OrderFeedHealth(mode=status.mode, since_ns=status.since_ns, reconnects=status.reconnects,
                           protocol_violations=status.protocol_violations, last_error=status.last_error)
