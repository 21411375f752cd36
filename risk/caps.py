"""Size caps: limits on an order's gross, each defined once and used by both the sizer and the check.

Why one object per cap: the sizer's suggestion must never be vetoed for size, and a veto must never
report an observed value that does not break its threshold. So each ``SizeCap`` decides on exactly the
figure it reports (``observed > threshold``, both in the threshold's units), and its ``allowance_usd``
(the largest gross that does not breach) is derived from that same predicate: a closed-form estimate,
then walked down past any float rounding. The sizer takes the minimum of the allowances; since each
``observed`` grows with the gross, the minimum passes every cap to the last bit.

Convention: a cap is inclusive. An order that lands exactly on the cap passes; one beyond it is vetoed.
Exposure caps (symbol, share, tier, gross, leverage) only limit the *increase* of exposure: a growing
order may always use its shrink room (see ``risk.exposure``), and reducing intents skip them entirely.
The notional share cap is the symbol's share of the portfolio's gross budget
(``max_gross_exposure_nav * NAV``), not of today's gross, so the first position is not refused.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from router_tuner.config.models import RiskLimits
from router_tuner.risk.context import RiskContext
from router_tuner.risk.exposure import exposure_increase_usd, is_reducing, reducible_usd, shrink_room_usd
from router_tuner.router.events import Intent, VetoReason

Applies = Literal["growing", "reducing"]


def ratio(numerator: float, denominator: float) -> float:
    """``numerator / denominator`` with a non-positive denominator meaning "infinitely over"."""
    if denominator > 0:
        return numerator / denominator
    return math.inf if numerator > 0 else 0.0


def reportable(value: float) -> float | str:
    """A VetoReason value the journal can hold: ``"inf"`` when NAV, equity or budget is not positive.

    The event codec refuses non-finite floats (JSON would turn them into null), so the one infinite
    observation a check can make is written as the string ``"inf"``.
    """
    return value if math.isfinite(value) else "inf"


@dataclass(frozen=True, slots=True)
class SizeCap:
    """One cap: its veto code, where its threshold lives, what it observes and a first guess of its room.

    ``threshold`` returns ``None`` when the cap is not configured for this context (no tier, no
    per-symbol override); ``exposure`` caps breach only when the order raises exposure at all.
    """

    code: str
    applies_to: Applies
    exposure: bool
    threshold_path: Callable[[Intent, RiskContext, RiskLimits], str]
    threshold: Callable[[Intent, RiskContext, RiskLimits], float | None]
    estimate_usd: Callable[[Intent, RiskContext, RiskLimits, float], float]
    observed: Callable[[Intent, float, RiskContext, RiskLimits], float]

    def applies(self, intent: Intent, ctx: RiskContext, limits: RiskLimits) -> bool:
        return (is_reducing(intent) == (self.applies_to == "reducing")
                and self.threshold(intent, ctx, limits) is not None)

    def breached(self, intent: Intent, gross_usd: float, ctx: RiskContext, limits: RiskLimits) -> bool:
        """True when ``gross_usd`` breaks this cap (assumes ``applies``)."""
        if self.exposure and exposure_increase_usd(intent, gross_usd, ctx) <= 0:
            return False
        threshold = self.threshold(intent, ctx, limits)
        return threshold is not None and self.observed(intent, gross_usd, ctx, limits) > threshold

    def allowance_usd(self, intent: Intent, ctx: RiskContext, limits: RiskLimits) -> float:
        """The largest gross that does not breach (assumes ``applies``); <= 0 means none does."""
        threshold = self.threshold(intent, ctx, limits)
        if threshold is None:
            return math.inf
        allowance = self.estimate_usd(intent, ctx, limits, threshold)
        step = math.ulp(allowance)
        while allowance > 0 and self.breached(intent, allowance, ctx, limits):
            allowance = max(0.0, allowance - step)  # rounding left the estimate a few ulps high
            step += step
        return allowance

    def __call__(self, intent: Intent, gross_usd: float, ctx: RiskContext,
                 limits: RiskLimits) -> VetoReason | None:
        if not self.applies(intent, ctx, limits) or not self.breached(intent, gross_usd, ctx, limits):
            return None
        threshold = self.threshold(intent, ctx, limits)
        observed = self.observed(intent, gross_usd, ctx, limits)
        path = self.threshold_path(intent, ctx, limits)
        return VetoReason(code=self.code, threshold=threshold, observed=reportable(observed),
                          detail=f"{path}: {observed:.6g} > {threshold:.6g}")


def _fixed_path(path: str) -> Callable[[Intent, RiskContext, RiskLimits], str]:
    return lambda intent, ctx, limits: path


def _trade_cap(code: str, path: str, threshold: Callable[[RiskLimits], float],
               denominator: Callable[[RiskContext], float]) -> SizeCap:
    """A cap on the order alone: ``gross / denominator <= threshold``."""
    return SizeCap(
        code=code, applies_to="growing", exposure=False, threshold_path=_fixed_path(path),
        threshold=lambda i, c, lim: threshold(lim),
        estimate_usd=lambda i, c, lim, cap: cap * denominator(c),
        observed=lambda i, g, c, lim: ratio(g, denominator(c)))


def _exposure_cap(code: str, path: Callable[[Intent, RiskContext, RiskLimits], str],
                  threshold: Callable[[Intent, RiskContext, RiskLimits], float | None],
                  used_usd: Callable[[RiskContext], float],
                  denominator: Callable[[RiskContext, RiskLimits], float]) -> SizeCap:
    """A cap on exposure after the order: ``(used + increase) / denominator <= threshold``."""
    return SizeCap(
        code=code, applies_to="growing", exposure=True, threshold_path=path, threshold=threshold,
        estimate_usd=lambda i, c, lim, cap: (shrink_room_usd(i, c)
                                             + max(cap * denominator(c, lim) - used_usd(c), 0.0)),
        observed=lambda i, g, c, lim: ratio(used_usd(c) + exposure_increase_usd(i, g, c),
                                            denominator(c, lim)))


def _nav(ctx: RiskContext, limits: RiskLimits) -> float:
    return ctx.nav_usd


def _gross_budget_usd(ctx: RiskContext, limits: RiskLimits) -> float:
    return limits.max_gross_exposure_nav * ctx.nav_usd


def _tier_cap_pct(intent: Intent, ctx: RiskContext, limits: RiskLimits) -> float | None:
    """``None`` without a tier: ``unknown_tier`` vetoes such an intent instead."""
    cap = limits.tier_caps.get(ctx.tier_name) if ctx.tier_name is not None else None
    return None if cap is None else cap.max_nav_pct


MAX_ORDER_NOTIONAL = SizeCap(
    code="order_gt_max_notional", applies_to="growing", exposure=False,
    threshold_path=_fixed_path("risk_limits.max_order_notional_usd"),
    threshold=lambda i, c, lim: lim.max_order_notional_usd,
    estimate_usd=lambda i, c, lim, cap: cap,
    observed=lambda i, g, c, lim: g)

TRADE_EQUITY_CAP = _trade_cap("trade_gt_equity_cap", "risk_limits.trade_equity_cap_pct",
                              lambda lim: lim.trade_equity_cap_pct, lambda c: c.equity_usd)

MAX_TRADE_NAV = _trade_cap("trade_gt_nav_cap", "risk_limits.max_trade_nav_pct",
                           lambda lim: lim.max_trade_nav_pct, lambda c: c.nav_usd)

SYMBOL_NAV_CAP = _exposure_cap(
    "symbol_gt_nav_cap", _fixed_path("risk_limits.symbol_caps.max_nav_pct"),
    lambda i, c, lim: lim.symbol_caps.max_nav_pct, lambda c: c.symbol_gross_notional_usd, _nav)

SYMBOL_SHARE_CAP = _exposure_cap(
    "symbol_gt_notional_share_cap", _fixed_path("risk_limits.symbol_caps.notional_share_cap"),
    lambda i, c, lim: lim.symbol_caps.notional_share_cap, lambda c: c.symbol_gross_notional_usd,
    _gross_budget_usd)

TIER_NAV_CAP = _exposure_cap(
    "tier_gt_nav_cap", lambda i, c, lim: f"risk_limits.tier_caps.{c.tier_name}.max_nav_pct",
    _tier_cap_pct, lambda c: c.current_tier_gross_notional, _nav)

GROSS_EXPOSURE_CAP = _exposure_cap(
    "gross_gt_nav_cap", _fixed_path("risk_limits.max_gross_exposure_nav"),
    lambda i, c, lim: lim.max_gross_exposure_nav, lambda c: c.gross_exposure_usd, _nav)

GLOBAL_LEVERAGE_CAP = _exposure_cap(
    "leverage_gt_global_cap", _fixed_path("risk_limits.leverage.max_global"),
    lambda i, c, lim: lim.leverage.max_global, lambda c: c.gross_exposure_usd, _nav)

# Only symbols with an override: without one, the global cap on total gross already bounds the symbol.
SYMBOL_LEVERAGE_CAP = _exposure_cap(
    "symbol_leverage_gt_cap", lambda i, c, lim: f"risk_limits.leverage.per_symbol.{c.symbol}",
    lambda i, c, lim: lim.leverage.per_symbol.get(c.symbol), lambda c: c.symbol_gross_notional_usd, _nav)

REDUCE_WITHIN_POSITION = SizeCap(
    code="reduce_only_exceeds_position", applies_to="reducing", exposure=False,
    threshold_path=_fixed_path("context.position_gross_notional_usd"),
    threshold=lambda i, c, lim: reducible_usd(i, c),
    estimate_usd=lambda i, c, lim, cap: cap,
    observed=lambda i, g, c, lim: g)

SIZE_CAPS: tuple[SizeCap, ...] = (
    MAX_ORDER_NOTIONAL, TRADE_EQUITY_CAP, MAX_TRADE_NAV, SYMBOL_NAV_CAP, SYMBOL_SHARE_CAP, TIER_NAV_CAP,
    GROSS_EXPOSURE_CAP, GLOBAL_LEVERAGE_CAP, SYMBOL_LEVERAGE_CAP, REDUCE_WITHIN_POSITION,
)
SIZE_CAP_CODES: frozenset[str] = frozenset(cap.code for cap in SIZE_CAPS)
