"""``fit_to_lot``: the order quantity on the venue's lot grid for a gross ``check_order`` approved.

Why here and not in the executor: rounding changes the notional that reaches the venue, so it is a risk
decision. Rounding down alone sent orders under the venue floor (BTCUSDT, lot 0.001 at about 60,000 USD:
a 115 USD gross became a 60 USD order against a 100 USD floor). So a growing order is rounded down when
that still clears the floor; otherwise up by one lot, but only when ``check_order`` passes the rounded-up
notional and it stays within the tier's sizing bucket cap; otherwise the intent is vetoed with
``lot_rounding_below_min_notional``, naming the floor, the lot and the price. Rounding up may exceed the
size hint and the sizing target by less than one lot; it never exceeds a cap.

``unreachable_floor`` is the start-up check of the same arithmetic: where the smallest quantity on the lot grid
that clears the floor is already over the per-order cap or the tier's bucket cap, every opening intent on the
symbol will be vetoed, and the operator is told so before the first intent.

``floor_under_venue`` compares the floor with the venue's own minimum notional (Binance's ``MIN_NOTIONAL`` /
``NOTIONAL`` filter, ccxt's ``limits.cost.min``): a floor under it sizes orders the venue rejects (USDⓈ-M -4164),
each a wasted round trip and a reject counted against the account, so ``live`` refuses to start on a live venue
(``executor.engine.live``) with one line naming the key and the value needed. Only opening orders are concerned:
the floor never applies to reducing ones, and the venue exempts reduce-only orders from its minimum.

Notionals are measured at the mid, as everywhere in the risk core. Reducing orders are exempt from the
floor (reduce-only is at the venue): they are rounded down and never exceed the leg they reduce
(``close_position`` takes the whole leg).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from router_tuner.config.models import ConfigBundle
from router_tuner.risk.checks import check_order, min_notional_path
from router_tuner.risk.context import RiskContext
from router_tuner.risk.exposure import is_reducing
from router_tuner.router.events import Intent, VetoReason
from router_tuner.router.routing.order import ceil_qty, floor_qty


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


def unreachable_floor(symbol: str, *, unit_usd: float, qty_step: float, config: ConfigBundle) -> str | None:
    """Why no opening order on ``symbol`` can be sized at ``unit_usd`` USD a unit, or ``None`` when one can.

    The smallest order that clears the floor is ``ceil(floor / unit / step)`` lots; it must fit under
    ``risk_limits.max_order_notional_usd`` and the symbol's tier bucket cap.
    """
    floor_usd = config.risk.min_notional_usd(symbol)
    smallest_usd = ceil_qty(floor_usd / unit_usd, qty_step) * unit_usd
    caps = {"risk_limits.max_order_notional_usd": config.risk.max_order_notional_usd}
    entry = config.strategy.universe.get(symbol)
    bucket = config.strategy.sizing.buckets.get(entry.tier) if entry is not None else None
    if entry is not None and bucket is not None:
        caps[f"strategy_config.sizing.buckets.{entry.tier}.cap_usd"] = bucket.cap_usd
    broken = {path: cap for path, cap in caps.items() if smallest_usd > cap}
    if not broken:
        return None
    named = ", ".join(f"{path} {cap:g} USD" for path, cap in broken.items())
    return (f"{symbol}: the smallest order on lot {qty_step:g} at {unit_usd:.6g} USD a unit that clears the "
            f"{floor_usd:g} USD floor ({min_notional_path(config.risk, symbol)}) is {smallest_usd:.6g} USD, over "
            f"{named}: every opening intent will be vetoed (lot_rounding_below_min_notional); raise the cap or "
            f"drop the symbol")


class FloorUnderVenueMinimum(ValueError):
    """``risk_limits.json`` ``min_notional`` under the venue's own minimum for at least one traded symbol: bad
    configuration (``live`` exits 2), found when the venue's markets are loaded, before anything is sent."""


@dataclass(frozen=True, slots=True)
class VenueMinimum:
    """A venue's own minimum notional for one symbol's opening orders, as its market lists it.

    ``notional`` is in the market's ``quote`` (``None``: the venue publishes none, e.g. Binance COIN-M);
    ``rejected_as`` is the venue's error code for an order under it (``""`` when unknown).
    """

    venue: str
    market: str
    quote: str
    notional: float | None
    rejected_as: str = ""


def floor_under_venue(symbol: str, minimum: VenueMinimum, config: ConfigBundle) -> str | None:
    """Why ``symbol``'s ``min_notional`` floor is under the venue's minimum, or ``None`` when it is not (or the venue
    has none).

    The floor is in USD and the venue's minimum in the quote: the risk core measures a linear or spot notional as
    quantity x price in the quote (``router.contract.notional_usd``), so the two are compared as they are. The line
    names the key that sets the floor: the symbol's own entry, else ``default_usd``, where the fix is an entry for
    the symbol (raising the default would raise every other symbol's floor too).
    """
    needed = minimum.notional
    floor_usd = config.risk.min_notional_usd(symbol)
    if needed is None or floor_usd >= needed:
        return None
    key = min_notional_path(config.risk, symbol).removeprefix("risk_limits.")
    own = symbol in config.risk.min_notional.per_symbol_usd
    fix = (f"set it to at least {needed:.15g}" if own  # every digit: a rounded "at least" could be under it
           else f"add min_notional.per_symbol_usd.{symbol} of at least {needed:.15g} (or raise default_usd)")
    code = f", {minimum.rejected_as}" if minimum.rejected_as else ""
    return (f"risk_limits.json {key} is {floor_usd:.15g} USD{'' if own else f' for {symbol}'}, under "
            f"{minimum.venue}'s minimum notional {needed:.15g} {minimum.quote} for {minimum.market}: {fix} (opening "
            f"orders under it are rejected by the venue{code})")
