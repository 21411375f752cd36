"""``check_order``: an ordered list of small named pre-trade checks; every veto reason is collected.

Each check is ``(intent, gross_usd, ctx, limits) -> VetoReason | None`` and reads its threshold from
``limits`` at call time, so a reason always names the limit in force (``trade_gt_equity_cap`` with
threshold 0.15 and observed 0.18). ``VetoReason.detail`` starts with the config path of the threshold.

Reducing intents (``risk.exposure.is_reducing``) face one check only: they may not exceed the position
they reduce (vetoed, not clamped: a check never changes the size; the sizer clamps). Every other check
applies to growing intents, so a stale NAV, a tripped breaker or a restricted symbol never blocks a close.
Boundaries: caps are inclusive (at the cap passes), floors are inclusive (at the floor passes), a
cooldown has ended when exactly ``after_stop_s`` has elapsed, and the hourly trade cap counts this order.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from router_tuner.config.models import RiskLimits
from router_tuner.risk.caps import SIZE_CAPS, ratio, reportable
from router_tuner.risk.context import RiskContext
from router_tuner.risk.exposure import (
    against_position_mode,
    exposure_increase_usd,
    is_reducing,
    opens_new_position,
    reducible_usd,
)
from router_tuner.risk.units import NS_PER_S
from router_tuner.router.events import Intent, VetoReason

Check = Callable[[Intent, float, RiskContext, RiskLimits], VetoReason | None]


def not_in_universe(symbol: str) -> VetoReason:
    """The veto of a symbol the configured universe does not list (screener and ``unknown_tier`` alike)."""
    return VetoReason(code="symbol_not_in_universe", threshold="strategy_config.universe", observed=symbol,
                      detail=f"strategy_config.universe: {symbol} is not listed")


def unknown_tier(intent: Intent, gross_usd: float, ctx: RiskContext, limits: RiskLimits) -> VetoReason | None:
    """The symbol must be in the universe and its tier must have a cap."""
    if is_reducing(intent):
        return None
    if ctx.tier_name is None:
        return not_in_universe(ctx.symbol)
    if ctx.tier_name not in limits.tier_caps:
        return VetoReason(code="tier_without_cap", threshold=",".join(sorted(limits.tier_caps)),
                          observed=ctx.tier_name, detail=f"risk_limits.tier_caps: no cap for {ctx.tier_name}")
    return None


def intent_tier_mismatch(intent: Intent, gross_usd: float, ctx: RiskContext,
                         limits: RiskLimits) -> VetoReason | None:
    """The intent's tier label must match the universe's tier for its symbol."""
    if is_reducing(intent) or ctx.tier_name is None or intent.tier == ctx.tier_name:
        return None
    return VetoReason(code="intent_tier_mismatch", threshold=ctx.tier_name, observed=intent.tier,
                      detail=f"strategy_config.universe.{ctx.symbol}.tier: intent says {intent.tier}")


def restricted_symbol(intent: Intent, gross_usd: float, ctx: RiskContext,
                      limits: RiskLimits) -> VetoReason | None:
    """No new exposure on a restricted symbol (closing stays allowed)."""
    if is_reducing(intent) or ctx.symbol not in limits.restricted_symbols:
        return None
    return VetoReason(code="restricted_symbol", threshold=",".join(limits.restricted_symbols),
                      observed=ctx.symbol,
                      detail=f"risk_limits.restricted_symbols: {ctx.symbol} is restricted")


def nav_stale(intent: Intent, gross_usd: float, ctx: RiskContext, limits: RiskLimits) -> VetoReason | None:
    """Fail closed on a NAV older than ``nav.max_age_s`` when ``nav.fail_closed_when_stale``."""
    if is_reducing(intent) or not limits.nav.fail_closed_when_stale or ctx.nav_age_s <= limits.nav.max_age_s:
        return None
    return VetoReason(code="nav_stale", threshold=limits.nav.max_age_s, observed=ctx.nav_age_s,
                      detail=f"risk_limits.nav.max_age_s: NAV is {ctx.nav_age_s:.6g} s old")


def _nav_fraction_veto(intent: Intent, ctx: RiskContext, *, amount_usd: float, cap: float, code: str,
                       detail: str) -> VetoReason | None:
    """Veto a growing intent when ``amount_usd`` over NAV exceeds ``cap`` (NAV <= 0 is infinitely over)."""
    observed = ratio(amount_usd, ctx.nav_usd)
    if is_reducing(intent) or observed <= cap:
        return None
    return VetoReason(code=code, threshold=cap, observed=reportable(observed), detail=detail)


def daily_loss_breaker(intent: Intent, gross_usd: float, ctx: RiskContext,
                       limits: RiskLimits) -> VetoReason | None:
    """Circuit breaker: realized loss over the trailing day as a fraction of NAV."""
    return _nav_fraction_veto(intent, ctx, amount_usd=ctx.daily_realized_loss_usd,
                              cap=limits.circuit_breakers.daily_loss_pct, code="daily_loss_circuit_breaker",
                              detail="risk_limits.circuit_breakers.daily_loss_pct: breaker tripped")


def weekly_loss_breaker(intent: Intent, gross_usd: float, ctx: RiskContext,
                        limits: RiskLimits) -> VetoReason | None:
    """Circuit breaker: realized loss over the trailing week as a fraction of NAV."""
    return _nav_fraction_veto(intent, ctx, amount_usd=ctx.weekly_realized_loss_usd,
                              cap=limits.circuit_breakers.weekly_loss_pct, code="weekly_loss_circuit_breaker",
                              detail="risk_limits.circuit_breakers.weekly_loss_pct: breaker tripped")


def symbol_drawdown(intent: Intent, gross_usd: float, ctx: RiskContext,
                    limits: RiskLimits) -> VetoReason | None:
    """The symbol's realized drawdown over the trailing day, as a fraction of NAV."""
    return _nav_fraction_veto(intent, ctx, amount_usd=ctx.symbol_drawdown_usd,
                              cap=limits.symbol_caps.max_drawdown_pct, code="symbol_drawdown_cap",
                              detail=f"risk_limits.symbol_caps.max_drawdown_pct: {ctx.symbol}")


def cooldown_after_stop(intent: Intent, gross_usd: float, ctx: RiskContext,
                        limits: RiskLimits) -> VetoReason | None:
    """No new exposure on a symbol until ``cooldowns.after_stop_s`` has elapsed since its last stop."""
    if is_reducing(intent) or ctx.last_stop_ns is None:
        return None
    elapsed_s = (ctx.now_ns - ctx.last_stop_ns) / NS_PER_S
    if elapsed_s >= limits.cooldowns.after_stop_s:
        return None
    return VetoReason(code="cooldown_after_stop", threshold=limits.cooldowns.after_stop_s,
                      observed=elapsed_s,
                      detail=f"risk_limits.cooldowns.after_stop_s: {ctx.symbol} stopped {elapsed_s:.6g}s ago")


def trades_per_hour(intent: Intent, gross_usd: float, ctx: RiskContext,
                    limits: RiskLimits) -> VetoReason | None:
    """This order plus the symbol's orders in the last hour may not exceed the hourly cap."""
    observed = ctx.trades_last_hour + 1
    if is_reducing(intent) or observed <= limits.max_trades_per_symbol_per_hour:
        return None
    return VetoReason(code="trades_per_hour_cap", threshold=float(limits.max_trades_per_symbol_per_hour),
                      observed=float(observed),
                      detail=f"risk_limits.max_trades_per_symbol_per_hour: {ctx.symbol}")


def max_concurrent_positions(intent: Intent, gross_usd: float, ctx: RiskContext,
                             limits: RiskLimits) -> VetoReason | None:
    """Opening a new leg may not take the open legs (and those working routes open) beyond the cap."""
    observed = ctx.open_positions_count + len(ctx.opening_legs) + 1
    if not opens_new_position(intent, ctx) or observed <= limits.max_concurrent_positions:
        return None
    return VetoReason(code="max_concurrent_positions", threshold=float(limits.max_concurrent_positions),
                      observed=float(observed),
                      detail="risk_limits.max_concurrent_positions: would open one more")


def min_notional_path(limits: RiskLimits, symbol: str) -> str:
    """The config path of the venue floor that applies to ``symbol`` (its override or the default)."""
    if symbol in limits.min_notional.per_symbol_usd:
        return "risk_limits.min_notional.per_symbol_usd." + symbol
    return "risk_limits.min_notional.default_usd"


def min_notional(intent: Intent, gross_usd: float, ctx: RiskContext, limits: RiskLimits) -> VetoReason | None:
    """A growing order must clear the venue floor for its symbol (reduce-only is exempt at the venue)."""
    floor_usd = limits.min_notional_usd(ctx.symbol)
    if is_reducing(intent) or gross_usd >= floor_usd:
        return None
    path = min_notional_path(limits, ctx.symbol)
    return VetoReason(code="below_min_notional", threshold=floor_usd, observed=gross_usd,
                      detail=f"{path}: {gross_usd:.6g} < {floor_usd:.6g}")


CHECKS: tuple[Check, ...] = (
    unknown_tier, intent_tier_mismatch, restricted_symbol, nav_stale, daily_loss_breaker,
    weekly_loss_breaker, symbol_drawdown, cooldown_after_stop, trades_per_hour, max_concurrent_positions,
    min_notional, *SIZE_CAPS,
)


@dataclass(frozen=True, slots=True)
class RiskDecision:
    """The verdict on one sized intent: ``veto`` iff any reason; ``detail`` is what the checks saw.

    ``detail`` holds JSON-native values only (it goes into ``VetoEvent.context`` as is).
    """

    veto: bool
    reasons: tuple[VetoReason, ...]
    detail: dict[str, Any] = field(hash=False)


def check_order(intent: Intent, gross_usd: float, ctx: RiskContext, limits: RiskLimits) -> RiskDecision:
    """Run every check on ``intent`` at ``gross_usd`` against ``ctx``; collect every reason."""
    if not isinstance(ctx, RiskContext):
        raise TypeError(f"check_order needs a RiskContext (built by RiskContext.from_state), got {type(ctx)}")
    if not isinstance(limits, RiskLimits):
        raise TypeError(f"check_order needs RiskLimits, got {type(limits)}")
    if intent.symbol != ctx.symbol:
        raise ValueError(f"context was built for {ctx.symbol}, intent is for {intent.symbol}")
    if not (math.isfinite(gross_usd) and gross_usd > 0):
        raise ValueError(f"gross_usd must be positive and finite, got {gross_usd!r}")
    gross_usd = float(gross_usd)
    if against_position_mode(intent, ctx):
        raise ValueError(f"{intent.position_side} intent against the other position mode on {ctx.symbol}")
    reasons = tuple(reason for check in CHECKS
                    if (reason := check(intent, gross_usd, ctx, limits)) is not None)
    stale = ctx.nav_age_s > limits.nav.max_age_s
    detail: dict[str, Any] = {
        "gross_usd": gross_usd,
        "reducing": is_reducing(intent),
        "reducible_usd": reducible_usd(intent, ctx),
        "exposure_increase_usd": exposure_increase_usd(intent, gross_usd, ctx),
        "nav_usd": ctx.nav_usd,
        "nav_age_s": ctx.nav_age_s,
        "equity_usd": ctx.equity_usd,
        "open_positions_count": ctx.open_positions_count,
        "tier_name": ctx.tier_name,
        "current_tier_gross_notional": ctx.current_tier_gross_notional,
        "gross_exposure_usd": ctx.gross_exposure_usd,
        "warnings": ["nav_stale"] if stale and not limits.nav.fail_closed_when_stale else [],
        "checks_run": len(CHECKS),
    }
    return RiskDecision(veto=bool(reasons), reasons=reasons, detail=detail)
