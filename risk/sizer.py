"""``suggest_gross_usd``: the largest gross an intent may trade, under every size cap at once.

Why: the sizer and ``check_order`` share each cap's allowance (``risk.caps``), so a suggestion is never
vetoed for size. Growing intents start from ``min(size_hint, bucket cap, max(bucket floor, base_nav_pct
* NAV))`` and are cut to the tightest allowance; below the symbol's min notional the answer is
``too_small_for_venue`` (so small NAVs do not spam vetoes). Reducing intents are clamped to the position
they reduce (``close_position`` takes all of it) and have no venue floor (reduce-only is exempt).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Literal

from router_tuner.config.models import ConfigBundle
from router_tuner.risk.caps import SIZE_CAPS
from router_tuner.risk.context import RiskContext
from router_tuner.risk.exposure import has_valid_size_hint, is_reducing, reducible_usd
from router_tuner.router.events import Intent

SizeOutcome = Literal["sized", "too_small_for_venue", "nothing_to_reduce", "not_in_universe"]


@dataclass(frozen=True, slots=True)
class SizeSuggestion:
    """The sizer's answer. ``gross_usd`` is set only when ``outcome == "sized"``.

    ``largest_allowed_usd`` is the tightest candidate (what ``binding`` names), reported for every
    outcome so a ``too_small_for_venue`` says by how much; ``candidates_usd`` lists every limit looked at.
    """

    outcome: SizeOutcome
    gross_usd: float | None
    largest_allowed_usd: float
    binding: str
    min_notional_usd: float
    candidates_usd: dict[str, float] = field(hash=False)


def suggest_gross_usd(intent: Intent, ctx: RiskContext, config: ConfigBundle) -> SizeSuggestion:
    """Size ``intent`` against ``ctx`` under ``config``'s sizing buckets and risk limits."""
    if intent.symbol != ctx.symbol:
        raise ValueError(f"context was built for {ctx.symbol}, intent is for {intent.symbol}")
    if not has_valid_size_hint(intent):
        raise ValueError(f"size_hint_usd must be finite and >= 0, got {intent.size_hint_usd!r}")
    limits = config.risk
    floor_usd = limits.min_notional_usd(ctx.symbol)
    if is_reducing(intent):
        reducible = reducible_usd(intent, ctx)
        candidates = {"position": reducible}
        if not intent.close_position:
            candidates["size_hint"] = intent.size_hint_usd
        binding = min(candidates, key=candidates.__getitem__)
        gross = candidates[binding]
        if gross <= 0:
            return SizeSuggestion("nothing_to_reduce", None, gross, binding, floor_usd, candidates)
        return SizeSuggestion("sized", gross, gross, binding, floor_usd, candidates)
    bucket = config.strategy.sizing.buckets.get(ctx.tier_name) if ctx.tier_name is not None else None
    if bucket is None:
        return SizeSuggestion("not_in_universe", None, 0.0, "universe", floor_usd, {})
    candidates = {
        "size_hint": intent.size_hint_usd,
        "bucket_cap": bucket.cap_usd,
        "base_nav_pct": max(bucket.floor_usd, config.strategy.sizing.base_nav_pct * ctx.nav_usd),
    }
    for cap in SIZE_CAPS:
        if cap.applies(intent, ctx, limits):
            candidates[cap.code] = cap.allowance_usd(intent, ctx, limits)
    binding = min(candidates, key=candidates.__getitem__)
    largest = candidates[binding]
    if largest < floor_usd:
        return SizeSuggestion("too_small_for_venue", None, largest, binding, floor_usd, candidates)
    return SizeSuggestion("sized", largest, largest, binding, floor_usd, candidates)


def _flat(ctx: RiskContext) -> RiskContext:
    """``ctx`` without positions or working routes: whether the account's size or what it holds stops openings
    (after a restart with positions at their caps, "raise starting_wallet_usd or that limit" was the wrong advice)."""
    return replace(ctx, positions=(), open_positions_count=0, symbol_gross_notional_usd=0.0,
                   current_tier_gross_notional=0.0, gross_exposure_usd=0.0, pending_gross_usd=0.0, working_routes=0,
                   opening_legs=frozenset())


def opening_unsizable(symbol: str, ctx: RiskContext, config: ConfigBundle) -> str | None:
    """Why no opening intent on ``symbol`` can be sized at ``ctx``'s NAV (every one would be vetoed), or None.

    Asked at start with the account as it is (``executor.json starting_wallet_usd`` plus what the journal
    realized): a wallet so small that every NAV cap allows less than the venue floor vetoed every intent with
    no word at start. The probe asks for the sizing bucket's cap, so only a cap can bind.
    """
    entry = config.strategy.universe.get(symbol)
    bucket = config.strategy.sizing.buckets.get(entry.tier) if entry is not None else None
    if entry is None or bucket is None:
        return None
    probe = Intent(intent_id="start-check", symbol=symbol, side="buy", size_hint_usd=bucket.cap_usd, tier=entry.tier,
                   strategy="start-check", reduce_only=False, close_position=False, position_side="LONG",
                   is_stop=False, ts_ns=ctx.now_ns)
    suggestion = suggest_gross_usd(probe, ctx, config)
    if suggestion.outcome != "too_small_for_venue":
        return None
    key = next((cap.threshold_path(probe, ctx, config.risk) for cap in SIZE_CAPS if cap.code == suggestion.binding),
               suggestion.binding)
    flat = suggest_gross_usd(probe, _flat(ctx), config)
    if flat.outcome == "sized":
        return (f"{symbol}: with the positions held ({ctx.symbol_gross_notional_usd:.6g} USD of {symbol}, "
                f"{ctx.gross_exposure_usd:.6g} USD gross) the largest opening order {key} allows is "
                f"{suggestion.largest_allowed_usd:.6g} USD, under the {suggestion.min_notional_usd:g} USD floor: "
                f"opening intents are vetoed until positions are reduced (with none held, up to "
                f"{flat.largest_allowed_usd:.6g} USD)")
    return (f"{symbol}: at NAV {ctx.nav_usd:.6g} USD (executor.json starting_wallet_usd "
            f"{config.executor.starting_wallet_usd:g} plus the journal's PnL) the largest opening order {key} allows "
            f"is {suggestion.largest_allowed_usd:.6g} USD, under the {suggestion.min_notional_usd:g} USD floor: every "
            f"opening intent will be vetoed; raise executor.json starting_wallet_usd or that limit")
