"""Applying fills to the portfolio, and realized PnL per reducing fill.

Method: **average cost**, per symbol and position side (``risk.portfolio.PortfolioState.apply_fill``):
a fill that adds to a leg moves its average entry price; a fill that reduces it realizes
``closed_qty * (price - entry) * direction``; every fill's fee is charged to the wallet. An order's
``realized_pnl_usd`` is the sum over its fills of realized PnL net of each fill's fee, and is set only
when at least one fill reduced exposure (an order that only opens has no realized PnL, its fees are in
``TradeRecord.fees_usd`` and the wallet). One-way mode: a fill through zero closes the old leg at its
entry and opens the rest at the fill price. Hedge mode: a fill beyond its leg (a reducing order the venue
overfilled, or filled after the leg closed) closes the leg, and the rest is held by no position
(:class:`AppliedOrder` ``past_flat``). A reduce-only (or close-position) order the venue fills past flat in one-way
mode is applied as reported, a flip, and named in ``past_flat`` too: whether the venue really flipped is the
venue's to say, so the loop reads its position, and when the venue is flat the books hold flat as well
(:func:`hold_flat`), which the event's flag records (:data:`HELD_FLAT`) so that the journal's replay does the same.

:class:`OpeningLots` links closes to their openings (``TradeRecord.closed_lots``): each leg is also kept as
the opening trades it is made of, first in first out, and a reducing fill consumes the oldest. The order's
realized PnL is split over the lots it closed by quantity, which under average cost is exact (every unit
closed realises ``price - average entry``). :func:`apply_order` does both, for the loop and the replay alike.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import NamedTuple

from router_tuner.risk.portfolio import PortfolioState
from router_tuner.router.events import (
    VENUE_ANOMALY,
    ClosedLot,
    Fill,
    Intent,
    PositionSide,
    RouterEvent,
    Side,
    flag_items,
)

LegKey = tuple[str, PositionSide]


HELD_FLAT = "the venue's BOTH position is flat: the books follow it"
"""The item of an event's ``venue_anomaly(...)`` flag saying a one-way reduce-only order's fills past flat were not
held by the venue (its position read flat), so the books hold flat too (:func:`hold_flat`): the run writes it, the
journal's replay reads it (:func:`held_flat`)."""


def _apply_fills(portfolio: PortfolioState, *, symbol: str, side: Side, position_side: PositionSide,
                 fills: Iterable[Fill], qty_step: float,
                 reducing: bool) -> tuple[float | None, list[Fill], list[str]]:
    """Apply ``fills`` in order: (realized PnL net of fees if any fill reduced exposure else None, fills applied,
    what went past flat on a hedge-mode leg or, for a ``reducing`` order, on a one-way position, one line per fill).

    A fill already applied (same ``trade_id``) is skipped, so re-applying an order's fills is harmless.
    After each fill the leg is snapped to the lot grid (``qty_step``), as the venue's position is: float
    sums such as 0.003 + 0.003 - 0.006 would otherwise leave a dust leg that counts as an open position.
    """
    realized = 0.0
    reduced = False
    applied: list[Fill] = []
    past_flat: list[str] = []
    for fill in fills:
        leg = portfolio.legs.get((symbol, position_side))
        before = 0.0 if leg is None else leg.qty
        net = portfolio.apply_fill(symbol=symbol, side=side, position_side=position_side, fill=fill)
        if net is None:
            continue
        applied.append(fill)
        realized += net
        _snap_to_lot(portfolio, (symbol, position_side), qty_step)
        signed = fill.qty if side == "buy" else -fill.qty
        if before != 0.0 and (before > 0) != (signed > 0):
            reduced = True
        beyond = _past_flat(position_side, before, signed, qty_step, reducing=reducing)
        if beyond is None:
            continue
        if position_side == "BOTH":
            past_flat.append(f"fill {fill.trade_id} of {fill.client_order_id} {side}s {fill.qty:.12g} beyond the "
                             f"BOTH position of {abs(before):.12g}: {beyond:.12g} past flat on a reduce-only order")
        else:
            past_flat.append(f"fill {fill.trade_id} of {fill.client_order_id} {side}s {fill.qty:.12g} beyond the "
                             f"{position_side} leg of {abs(before):.12g}: the leg is flat, {beyond:.12g} past flat "
                             "held by no position")
    return (realized if reduced else None), applied, past_flat


def _past_flat(position_side: PositionSide, before: float, signed: float, qty_step: float, *,
               reducing: bool) -> float | None:
    """How far a fill took a hedge-mode leg, or a ``reducing`` order's one-way position, past flat (on the lot grid),
    if at least half a lot. A one-way fill counts from flat: what a position already past flat grows by."""
    after = before + signed
    if position_side == "BOTH":
        if not reducing or after == 0.0 or (after > 0) != (signed > 0):
            return None
        beyond = min(abs(after), abs(signed))
    elif (position_side == "LONG" and after < 0) or (position_side == "SHORT" and after > 0):
        beyond = abs(after)
    else:
        return None
    lots = round(beyond / qty_step)
    return round(lots * qty_step, _decimals(qty_step)) if lots > 0 else None


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



@dataclass(slots=True)
class OpenLot:
    """What one opening trade (and its strategy) still holds of a leg: signed quantity (long > 0)."""

    intent_id: str
    strategy: str
    qty: float


class OpeningLots:
    """The opening trades each open leg is made of, oldest first (see the module docstring)."""

    def __init__(self) -> None:
        self._lots: dict[LegKey, deque[OpenLot]] = {}

    def lots(self, key: LegKey) -> tuple[OpenLot, ...]:
        return tuple(self._lots.get(key, ()))

    def apply(self, key: LegKey, *, intent_id: str, strategy: str, side: Side, fills: Sequence[Fill],
              qty_step: float) -> dict[tuple[str, str], float]:
        """Consume or add lots for ``fills`` of ``intent_id``; returns the quantity closed per opening
        (intent id, strategy), oldest first.

        A remainder under half a lot step is dust (the portfolio snaps the leg to the grid) and is dropped.
        """
        lots = self._lots.setdefault(key, deque())
        closed: dict[tuple[str, str], float] = {}
        dust = qty_step / 2
        for fill in fills:
            signed = fill.qty if side == "buy" else -fill.qty
            while lots and abs(signed) > dust and (lots[0].qty > 0) != (signed > 0):
                oldest = lots[0]
                take = min(abs(signed), abs(oldest.qty))
                opening = (oldest.intent_id, oldest.strategy)
                closed[opening] = closed.get(opening, 0.0) + take
                direction = 1.0 if oldest.qty > 0 else -1.0
                oldest.qty -= direction * take
                signed += direction * take
                if abs(oldest.qty) <= dust:
                    lots.popleft()
            if abs(signed) > dust:
                lots.append(OpenLot(intent_id=intent_id, strategy=strategy, qty=signed))
        if not lots:
            del self._lots[key]
        return closed

    def forget(self, key: LegKey) -> None:
        """The portfolio closed the leg (snapped flat): no lot of it is open any more."""
        self._lots.pop(key, None)


class AppliedOrder(NamedTuple):
    """What one order's fills did to the books (:func:`apply_order`)."""

    realized_pnl_usd: float | None
    closed_lots: tuple[ClosedLot, ...]
    past_flat: tuple[str, ...]
    """Fills that took a hedge-mode leg past flat, one line each (``PortfolioState.apply_fill``): the leg closed,
    the rest is held by no position; or a reduce-only order's one-way position, applied as a flip. The venue's own
    rules rule it out, so the loop flags the event and reads the venue's position."""


def apply_order(portfolio: PortfolioState, lots: OpeningLots, *, intent: Intent, fills: Sequence[Fill],
                qty_step: float) -> AppliedOrder:
    """Apply one order's fills to the portfolio and the opening lots: realized PnL, the lots it closed, and the
    fills that went past flat on a hedge-mode leg.

    Realized PnL as the module docstring defines it (``None`` when no fill reduced exposure); fills the
    portfolio had already applied (same ``trade_id``) move no lot either.
    """
    key = (intent.symbol, intent.position_side)
    realized, applied, past_flat = _apply_fills(portfolio, symbol=intent.symbol, side=intent.side,
                                                position_side=intent.position_side, fills=fills, qty_step=qty_step,
                                                reducing=intent.reduce_only or intent.close_position)
    closed = lots.apply(key, intent_id=intent.intent_id, strategy=intent.strategy, side=intent.side, fills=applied,
                        qty_step=qty_step)
    if key not in portfolio.legs:
        lots.forget(key)
    if realized is None or not closed:
        return AppliedOrder(realized, (), tuple(past_flat))
    total = sum(closed.values())
    return AppliedOrder(realized, tuple(ClosedLot(opening_intent_id=opening, opening_strategy=strategy, qty=qty,
                                                  realized_pnl_usd=realized * qty / total)
                                        for (opening, strategy), qty in closed.items()), tuple(past_flat))


def hold_flat(portfolio: PortfolioState, lots: OpeningLots, key: LegKey) -> None:
    """The venue holds no position where the books applied a one-way reduce-only order's fills past flat: the books
    hold none either (the flipped part opened at the fill price, so nothing more is realised; its fee stays paid)."""
    portfolio.legs.pop(key, None)
    lots.forget(key)


def held_flat(event: RouterEvent) -> bool:
    """The run held a one-way position flat after ``event``'s fills past flat (its flag says :data:`HELD_FLAT`)."""
    return HELD_FLAT in flag_items(event.error, VENUE_ANOMALY)
