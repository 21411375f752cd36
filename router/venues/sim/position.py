"""Positions of the simulated venue, and the rules Binance USDⓈ-M applies to orders that reduce them.

The position mode is the account's, as on Binance (``dualSidePosition`` applies to every symbol, and
``router.json`` has one ``position_mode``): ``one_way`` keeps one signed net position per symbol under
position side ``BOTH``; ``hedge`` keeps a ``LONG`` and a ``SHORT`` position per symbol, and an order
names the one it acts on. Amounts are signed like Binance's ``positionAmt``: long positive, short
negative (so a hedge-mode ``SHORT`` position is <= 0), in the tape's integer quantity units.

An order *reduces* when, in hedge mode, its side closes its position side (sell LONG, buy SHORT: the
pair decides, no flag needed), or, in one-way mode, when it is ``reduce_only`` or ``close_position``.
A reducing order never fills more than the position it reduces holds at the moment of the fill and
never makes it change sign; what it cannot fill expires (Binance reports such orders ``EXPIRED``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import get_args

from router_tuner.config.models import PositionMode
from router_tuner.router.events import PositionSide
from router_tuner.router.venue import InvalidOrder, OrderRequest

POSITION_MODES: tuple[PositionMode, ...] = get_args(PositionMode)


class SimPositions:
    """Signed per-symbol positions under one account-wide position mode, in integer quantity units."""

    def __init__(self, mode: PositionMode, symbols: Iterable[str]) -> None:
        if mode not in POSITION_MODES:
            raise ValueError(f"position mode must be one of {POSITION_MODES}, got {mode!r}")
        self.mode = mode
        sides: tuple[PositionSide, ...] = ("LONG", "SHORT") if mode == "hedge" else ("BOTH",)
        self._units: dict[str, dict[PositionSide, int]] = {s: dict.fromkeys(sides, 0) for s in symbols}

    def check_request(self, request: OrderRequest) -> None:
        """Refuse a request whose position side or flags contradict the mode (Binance -4061 and kin)."""
        coid = request.client_order_id
        if request.position_side not in get_args(PositionSide):
            raise InvalidOrder(f"{coid}: position_side must be BOTH, LONG or SHORT, got {request.position_side!r}")
        if self.mode == "one_way":
            if request.position_side != "BOTH":
                raise InvalidOrder(f"{coid}: position_side {request.position_side} is not allowed in one-way "
                                   f"position mode (use BOTH)")
            return
        if request.position_side == "BOTH":
            raise InvalidOrder(f"{coid}: position_side BOTH is not allowed in hedge position mode "
                               f"(use LONG or SHORT)")
        if (request.reduce_only or request.close_position) and not self.is_reducing(request):
            flag = "close_position" if request.close_position else "reduce_only"
            needed = "sell" if request.position_side == "LONG" else "buy"
            raise InvalidOrder(f"{coid}: {flag} on position_side {request.position_side} needs side {needed}, "
                               f"got {request.side}")

    def is_reducing(self, request: OrderRequest) -> bool:
        """True for an order that may only shrink its position (see the module docstring)."""
        if self.mode == "hedge":
            return (request.side == "sell") == (request.position_side == "LONG")
        return request.reduce_only or request.close_position

    def reducible_units(self, request: OrderRequest) -> int:
        """How much a reducing order may fill now: its position's size if the order's side shrinks it."""
        amount = self.amount_units(request)
        shrinks = amount > 0 if request.side == "sell" else amount < 0
        return abs(amount) if shrinks else 0

    def amount_units(self, request: OrderRequest) -> int:
        """Signed amount of the position ``request`` acts on."""
        return self._units[request.symbol][self._side_of(request)]

    def apply_fill(self, request: OrderRequest, units: int) -> tuple[int, int]:
        """Book a fill of ``units``; returns the signed amount of the position it moved, before and after."""
        book = self._units[request.symbol]
        side = self._side_of(request)
        before = book[side]
        book[side] = before + (units if request.side == "buy" else -units)
        return before, book[side]

    def restore_units(self, symbol: str, amounts: dict[PositionSide, int]) -> None:
        """Set ``symbol``'s signed amounts by position side (sides of this mode only; hedge signs kept)."""
        book = self._units[symbol]
        unknown = sorted(set(amounts) - set(book))
        if unknown:
            raise ValueError(f"{symbol}: position sides {unknown} do not exist in {self.mode} position mode")
        for side, units in amounts.items():
            if (side == "LONG" and units < 0) or (side == "SHORT" and units > 0):
                raise ValueError(f"{symbol}: a {side} position cannot hold the amount {units}")
        book.update(amounts)

    def amounts_units(self, symbol: str) -> dict[PositionSide, int]:
        """Signed amount of every position of ``symbol`` by position side (a copy)."""
        return dict(self._units[symbol])

    def _side_of(self, request: OrderRequest) -> PositionSide:
        return request.position_side if self.mode == "hedge" else "BOTH"
