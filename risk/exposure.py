"""How an order changes its symbol's exposure: the one place that knows one-way and hedge-mode rules.

A *reducing* intent is one that can only take exposure off: ``reduce_only``, ``close_position``, or a
hedge-mode order on the closing side of its leg (sell LONG, buy SHORT), which the venue treats as reducing.
Reducing intents are bounded by the position they reduce and never flip it. Every other intent is
*growing*; in one-way mode a growing order against the position first closes it, so the first
``2 * |position|`` of gross do not raise the symbol's gross exposure (``shrink_room_usd``).
"""

from __future__ import annotations

import math

from router_tuner.risk.context import RiskContext
from router_tuner.risk.units import EPOCH_2000_NS, EPOCH_2100_NS
from router_tuner.router.events import Intent


def is_reducing(intent: Intent) -> bool:
    """True when the intent can only take exposure off (see the module docstring)."""
    closing_hedge_side = ((intent.position_side == "LONG" and intent.side == "sell")
                          or (intent.position_side == "SHORT" and intent.side == "buy"))
    return intent.reduce_only or intent.close_position or closing_hedge_side


def has_valid_size_hint(intent: Intent) -> bool:
    """A size hint the sizer can take: finite and not negative."""
    return math.isfinite(intent.size_hint_usd) and intent.size_hint_usd >= 0


def has_valid_ts(intent: Intent) -> bool:
    """An intent time that is nanoseconds since the epoch in this century (``risk.units``)."""
    return EPOCH_2000_NS <= intent.ts_ns < EPOCH_2100_NS


def against_position_mode(intent: Intent, ctx: RiskContext) -> bool:
    """True when a leg held on the symbol is of the other position mode (one-way BOTH vs hedge LONG/SHORT)."""
    return any((leg.position_side == "BOTH") != (intent.position_side == "BOTH")
               for leg in ctx.positions if leg.symbol == ctx.symbol)


def position_notional_usd(intent: Intent, ctx: RiskContext) -> float:
    """Signed gross notional of the leg the intent trades against (long > 0)."""
    leg = ctx.leg(intent.position_side)
    if leg is None:
        return 0.0
    return leg.gross_notional_usd if leg.qty > 0 else -leg.gross_notional_usd


def reducible_usd(intent: Intent, ctx: RiskContext) -> float:
    """Gross the intent can trade against its leg without flipping it (0 if it trades the same way)."""
    signed = position_notional_usd(intent, ctx)
    opposes = (intent.side == "sell" and signed > 0) or (intent.side == "buy" and signed < 0)
    return abs(signed) if opposes else 0.0


def shrink_room_usd(intent: Intent, ctx: RiskContext) -> float:
    """Gross a growing order can trade before the symbol's gross exposure rises above today's.

    Only a one-way order against the position has any: it closes ``|p|`` and reopens up to ``|p|``.
    """
    if intent.position_side != "BOTH":
        return 0.0
    reducible = reducible_usd(intent, ctx)
    return reducible + reducible


def exposure_increase_usd(intent: Intent, gross_usd: float, ctx: RiskContext) -> float:
    """How much the order raises the symbol's (and so tier and portfolio) gross exposure, >= 0."""
    if is_reducing(intent):
        return 0.0
    return max(0.0, gross_usd - shrink_room_usd(intent, ctx))


def opens_new_position(intent: Intent, ctx: RiskContext) -> bool:
    """True when a growing order would open a leg that is flat now and no working route is opening."""
    return (not is_reducing(intent) and ctx.leg(intent.position_side) is None
            and (ctx.symbol, intent.position_side) not in ctx.opening_legs)
