"""``fit_to_lot``: the order quantity on the venue's lot grid for a gross ``check_order`` approved.

Why here and not in the executor: rounding changes the notional that reaches the venue, so it is a risk
decision. Rounding down alone sent orders under the venue floor (BTCUSDT, lot 0.001 at about 60,000 USD:
a 115 USD gross became a 60 USD order against a 100 USD floor). So a growing order is rounded down when
that still clears the floor; otherwise up by one lot, but only when ``check_order`` passes the rounded-up
notional and it stays within the tier's sizing bucket cap; otherwise the intent is vetoed with
``lot_rounding_below_min_notional``, naming the floor, the lot and the price. Rounding up may exceed the
size hint and the sizing target by less than one lot; it never exceeds a cap.

Notionals are measured at the mid, as everywhere in the risk core. Reducing orders are exempt from the
floor (reduce-only is at the venue): they are rounded down and never exceed the leg they reduce
(``close_position`` takes the whole leg).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from config.models import ConfigBundle
from risk.checks import check_order, min_notional_path
from risk.context import RiskContext
from risk.exposure import is_reducing
from router.events import Intent, VetoReason
from router.routing.order import floor_qty


@dataclass(frozen=True, slots=True)
class LotFit:
    """The order quantity (``0.0`` when vetoed), the reason when vetoed, and what was weighed."""

    qty: float
    reason: VetoReason | None
    detail: dict[str, Any]


def fit_to_lot(intent: Intent, gross_usd: float, *, unit_usd: float, qty_step: float, ctx: RiskContext,
               config: ConfigBundle) -> LotFit:
    """Quantity for ``gross_usd`` (already passed by ``check_order``) at ``unit_usd`` per unit of quantity."""
    leg = ctx.leg(intent.position_side)
    if is_reducing(intent) and leg is not None:
        if intent.close_position:
            return LotFit(abs(leg.qty), None, {"rounding": "whole_leg"})
        qty = min(floor_qty(gross_usd / unit_usd, qty_step), floor_qty(abs(leg.qty), qty_step))
        return LotFit(qty, None, {"rounding": "down"})
    down = floor_qty(gross_usd / unit_usd, qty_step)
    if is_reducing(intent):  # nothing to reduce: the sizer refuses it first, the floor does not apply
        return LotFit(down, None, {"rounding": "down"})
    if down * unit_usd > gross_usd and _blocked(intent, down * unit_usd, ctx, config):
        down = floor_qty(down - qty_step, qty_step)  # the grid's float tolerance took it past a cap
    floor_usd = config.risk.min_notional_usd(intent.symbol)
    if down * unit_usd >= floor_usd:
        return LotFit(down, None, {"rounding": "down"})
    up = floor_qty(down + qty_step, qty_step)
    up_usd = up * unit_usd
    blocked = _blocked(intent, up_usd, ctx, config)
    detail = {"rounding": "up", "down_usd": down * unit_usd, "up_usd": up_usd, "blocked_by": blocked}
    if not blocked:
        return LotFit(up, None, detail)
    return LotFit(0.0, VetoReason(
        code="lot_rounding_below_min_notional", threshold=floor_usd, observed=down * unit_usd,
        detail=(f"{min_notional_path(config.risk, intent.symbol)}: {gross_usd:.6g} USD on lot {qty_step:g} at "
                f"{unit_usd:.6g} USD a unit rounds down to {down * unit_usd:.6g} USD, under the {floor_usd:.6g} USD "
                f"floor; one lot more ({up_usd:.6g} USD) breaks {', '.join(blocked)}")), detail)


def _blocked(intent: Intent, notional_usd: float, ctx: RiskContext, config: ConfigBundle) -> list[str]:
    """What refuses a growing order at ``notional_usd``: ``check_order``'s codes and the sizing bucket's cap."""
    blocked = [r.code for r in check_order(intent, notional_usd, ctx, config.risk).reasons]
    bucket = config.strategy.sizing.buckets.get(ctx.tier_name) if ctx.tier_name is not None else None
    if bucket is not None and notional_usd > bucket.cap_usd:
        blocked.append("sizing_bucket_cap")
    return blocked
