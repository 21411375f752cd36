"""Size caps: limits on an order's gross, each defined once and used by both the sizer and the check.

Why one object per cap: the sizer's suggestion must never be vetoed for size. Each ``SizeCap`` knows the
largest gross it allows (``allowance_usd``); the check vetoes ``gross_usd > allowance_usd`` and the sizer
takes the minimum of the same allowances, so the two agree to the last bit.

Convention: a cap is inclusive. An order that lands exactly on the cap passes; one beyond it is vetoed.
Exposure caps (symbol, share, tier, gross, leverage) only limit the *increase* of exposure: a growing
order may always use its shrink room (see ``risk.exposure``), and reducing intents skip them entirely.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from config.models import RiskLimits
from risk.context import RiskContext
from risk.exposure import exposure_increase_usd, is_reducing, reducible_usd, shrink_room_usd
from router.events import Intent, VetoReason

Applies = Literal["growing", "reducing"]


def ratio(numerator: float, denominator: float) -> float:
    """``numerator / denominator`` with a non-positive denominator meaning "infinitely over"."""
    if denominator > 0:
        return numerator / denominator
    return math.inf if numerator > 0 else 0.0


@dataclass(frozen=True, slots=True)
class SizeCap:
    """One cap: its veto code, where its threshold lives, the gross it allows and what it observes."""

    code: str
    applies_to: Applies
    threshold_path: Callable[[Intent, RiskContext, RiskLimits], str]
    threshold: Callable[[Intent, RiskContext, RiskLimits], float]
    allowance_usd: Callable[[Intent, RiskContext, RiskLimits], float]
    observed: Callable[[Intent, float, RiskContext, RiskLimits], float]

    def applies(self, intent: Intent, ctx: RiskContext, limits: RiskLimits) -> bool:
        return is_reducing(intent) == (self.applies_to == "reducing") and not math.isinf(
            self.allowance_usd(intent, ctx, limits))

    def __call__(self, intent: Intent, gross_usd: float, ctx: RiskContext,
                 limits: RiskLimits) -> VetoReason | None:
        if not self.applies(intent, ctx, limits) or gross_usd <= self.allowance_usd(intent, ctx, limits):
            return None
        threshold = self.threshold(intent, ctx, limits)
        observed = self.observed(intent, gross_usd, ctx, limits)
        return VetoReason(code=self.code, threshold=threshold, observed=observed,
                          detail=f"{self.threshold_path(intent, ctx, limits)}: {observed:.6g} > {threshold:.6g}")


def _exposure_allowance(intent: Intent, ctx: RiskContext, cap_usd: float, used_usd: float) -> float:
    return shrink_room_usd(intent, ctx) + max(cap_usd - used_usd, 0.0)


def _fixed_path(path: str) -> Callable[[Intent, RiskContext, RiskLimits], str]:
    return lambda intent, ctx, limits: path


MAX_ORDER_NOTIONAL = SizeCap(
    code="order_gt_max_notional", applies_to="growing",
    threshold_path=_fixed_path("risk_limits.max_order_notional_usd"),
    threshold=lambda i, c, lim: lim.max_order_notional_usd,
    allowance_usd=lambda i, c, lim: lim.max_order_notional_usd,
    observed=lambda i, g, c, lim: g)

TRADE_EQUITY_CAP = SizeCap(
    code="trade_gt_equity_cap", applies_to="growing",
    threshold_path=_fixed_path("risk_limits.trade_equity_cap_pct"),
    threshold=lambda i, c, lim: lim.trade_equity_cap_pct,
    allowance_usd=lambda i, c, lim: lim.trade_equity_cap_pct * c.equity_usd,
    observed=lambda i, g, c, lim: ratio(g, c.equity_usd))

MAX_TRADE_NAV = SizeCap(
    code="trade_gt_nav_cap", applies_to="growing",
    threshold_path=_fixed_path("risk_limits.max_trade_nav_pct"),
    threshold=lambda i, c, lim: lim.max_trade_nav_pct,
    allowance_usd=lambda i, c, lim: lim.max_trade_nav_pct * c.nav_usd,
    observed=lambda i, g, c, lim: ratio(g, c.nav_usd))

SYMBOL_NAV_CAP = SizeCap(
    code="symbol_gt_nav_cap", applies_to="growing",
    threshold_path=_fixed_path("risk_limits.symbol_caps.max_nav_pct"),
    threshold=lambda i, c, lim: lim.symbol_caps.max_nav_pct,
    allowance_usd=lambda i, c, lim: _exposure_allowance(
        i, c, lim.symbol_caps.max_nav_pct * c.nav_usd, c.symbol_gross_notional_usd),
    observed=lambda i, g, c, lim: ratio(c.symbol_gross_notional_usd + exposure_increase_usd(i, g, c), c.nav_usd))


def _gross_budget_usd(ctx: RiskContext, limits: RiskLimits) -> float:
    return limits.max_gross_exposure_nav * ctx.nav_usd


SYMBOL_SHARE_CAP = SizeCap(
    code="symbol_gt_notional_share_cap", applies_to="growing",
    threshold_path=_fixed_path("risk_limits.symbol_caps.notional_share_cap"),
    threshold=lambda i, c, lim: lim.symbol_caps.notional_share_cap,
    allowance_usd=lambda i, c, lim: _exposure_allowance(
        i, c, lim.symbol_caps.notional_share_cap * _gross_budget_usd(c, lim), c.symbol_gross_notional_usd),
    observed=lambda i, g, c, lim: ratio(c.symbol_gross_notional_usd + exposure_increase_usd(i, g, c),
                                        _gross_budget_usd(c, lim)))


def _tier_cap_pct(ctx: RiskContext, limits: RiskLimits) -> float | None:
    cap = limits.tier_caps.get(ctx.tier_name) if ctx.tier_name is not None else None
    return None if cap is None else cap.max_nav_pct


def _tier_allowance(intent: Intent, ctx: RiskContext, limits: RiskLimits) -> float:
    cap_pct = _tier_cap_pct(ctx, limits)
    if cap_pct is None:  # no tier: ``unknown_tier`` vetoes the intent instead
        return math.inf
    return _exposure_allowance(intent, ctx, cap_pct * ctx.nav_usd, ctx.current_tier_gross_notional)


TIER_NAV_CAP = SizeCap(
    code="tier_gt_nav_cap", applies_to="growing",
    threshold_path=lambda i, c, lim: f"risk_limits.tier_caps.{c.tier_name}.max_nav_pct",
    threshold=lambda i, c, lim: lim.tier_caps[str(c.tier_name)].max_nav_pct,
    allowance_usd=_tier_allowance,
    observed=lambda i, g, c, lim: ratio(c.current_tier_gross_notional + exposure_increase_usd(i, g, c),
                                        c.nav_usd))

GROSS_EXPOSURE_CAP = SizeCap(
    code="gross_gt_nav_cap", applies_to="growing",
    threshold_path=_fixed_path("risk_limits.max_gross_exposure_nav"),
    threshold=lambda i, c, lim: lim.max_gross_exposure_nav,
    allowance_usd=lambda i, c, lim: _exposure_allowance(
        i, c, lim.max_gross_exposure_nav * c.nav_usd, c.gross_exposure_usd),
    observed=lambda i, g, c, lim: ratio(c.gross_exposure_usd + exposure_increase_usd(i, g, c), c.nav_usd))

GLOBAL_LEVERAGE_CAP = SizeCap(
    code="leverage_gt_global_cap", applies_to="growing",
    threshold_path=_fixed_path("risk_limits.leverage.max_global"),
    threshold=lambda i, c, lim: lim.leverage.max_global,
    allowance_usd=lambda i, c, lim: _exposure_allowance(
        i, c, lim.leverage.max_global * c.nav_usd, c.gross_exposure_usd),
    observed=lambda i, g, c, lim: ratio(c.gross_exposure_usd + exposure_increase_usd(i, g, c), c.nav_usd))


def _symbol_leverage_allowance(intent: Intent, ctx: RiskContext, limits: RiskLimits) -> float:
    cap = limits.leverage.per_symbol.get(ctx.symbol)
    if cap is None:  # no override: the global cap on total gross already bounds this symbol
        return math.inf
    return _exposure_allowance(intent, ctx, cap * ctx.nav_usd, ctx.symbol_gross_notional_usd)


SYMBOL_LEVERAGE_CAP = SizeCap(
    code="symbol_leverage_gt_cap", applies_to="growing",
    threshold_path=lambda i, c, lim: f"risk_limits.leverage.per_symbol.{c.symbol}",
    threshold=lambda i, c, lim: lim.leverage.per_symbol[c.symbol],
    allowance_usd=_symbol_leverage_allowance,
    observed=lambda i, g, c, lim: ratio(c.symbol_gross_notional_usd + exposure_increase_usd(i, g, c),
                                        c.nav_usd))

REDUCE_WITHIN_POSITION = SizeCap(
    code="reduce_only_exceeds_position", applies_to="reducing",
    threshold_path=_fixed_path("context.position_gross_notional_usd"),
    threshold=lambda i, c, lim: reducible_usd(i, c),
    allowance_usd=lambda i, c, lim: reducible_usd(i, c),
    observed=lambda i, g, c, lim: g)

SIZE_CAPS: tuple[SizeCap, ...] = (
    MAX_ORDER_NOTIONAL, TRADE_EQUITY_CAP, MAX_TRADE_NAV, SYMBOL_NAV_CAP, SYMBOL_SHARE_CAP, TIER_NAV_CAP,
    GROSS_EXPOSURE_CAP, GLOBAL_LEVERAGE_CAP, SYMBOL_LEVERAGE_CAP, REDUCE_WITHIN_POSITION,
)
SIZE_CAP_CODES: frozenset[str] = frozenset(cap.code for cap in SIZE_CAPS)
