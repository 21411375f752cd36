"""Applying fills to the portfolio, and realized PnL per reducing fill.

Method: **average cost**, per symbol and position side (``risk.portfolio.PortfolioState.apply_fill``):
a fill that adds to a leg moves its average entry price; a fill that reduces it realizes
``closed_qty * (price - entry) * direction``; every fill's fee is charged to the wallet. An order's
``realized_pnl_usd`` is the sum over its fills of realized PnL net of each fill's fee, and is set only
when at least one fill reduced exposure (an order that only opens has no realized PnL, its fees are in
``TradeRecord.fees_usd`` and the wallet). One-way mode: a fill through zero closes the old leg at its
entry and opens the rest at the fill price.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal

from risk.portfolio import PortfolioState
from router.events import Fill, PositionSide, Side


def apply_fills(portfolio: PortfolioState, *, symbol: str, side: Side, position_side: PositionSide,
                fills: Iterable[Fill], qty_step: float) -> float | None:
    """Apply ``fills`` in order; returns realized PnL net of fees if any fill reduced exposure, else None.

    A fill already applied (same ``trade_id``) is skipped, so re-applying an order's fills is harmless.
    After each fill the leg is snapped to the lot grid (``qty_step``), as the venue's position is: float
    sums such as 0.003 + 0.003 - 0.006 would otherwise leave a dust leg that counts as an open position.
    """
    realized = 0.0
    reduced = False
    for fill in fills:
        leg = portfolio.legs.get((symbol, position_side))
        before = 0.0 if leg is None else leg.qty
        net = portfolio.apply_fill(symbol=symbol, side=side, position_side=position_side, fill=fill)
        if net is None:
            continue
        realized += net
        _snap_to_lot(portfolio, (symbol, position_side), qty_step)
        signed = fill.qty if side == "buy" else -fill.qty
        if before != 0.0 and (before > 0) != (signed > 0):
            reduced = True
    return realized if reduced else None


def _snap_to_lot(portfolio: PortfolioState, key: tuple[str, PositionSide], qty_step: float) -> None:
    leg = portfolio.legs.get(key)
    if leg is None:
        return
    lots = round(leg.qty / qty_step)
    if lots == 0:
        del portfolio.legs[key]
    else:
        leg.qty = round(lots * qty_step, _decimals(qty_step))


def _decimals(step: float) -> int:
    exponent = Decimal(repr(step)).normalize().as_tuple().exponent
    return max(0, -int(exponent))

