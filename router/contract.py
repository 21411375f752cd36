"""What an order quantity is worth in USD: the one place a USD notional is derived from (price, qty).

Why one function: on inverse (COIN-M) contracts the quantity is a number of contracts of a fixed USD
value, so ``qty * price`` is not a notional at all (one BTCUSD_PERP contract at 60,000 would count as
60,000 USD instead of 100). Every budget, fee and feature that needs USD calls :func:`notional_usd`.

Formulas (``contract_size`` from ``strategy_config.json`` universe):

* ``linear`` (USDⓈ-M) and ``spot``: ``qty * contract_size * price`` (qty in units of ``contract_size``
  base coin, usually 1.0, so ``qty * price``);
* ``inverse`` (COIN-M): ``qty * contract_size`` (contracts times USD per contract), whatever the price.

Every venue states the spec of each symbol it trades (``Venue.contract``); the router asks it through
:func:`venue_contract`, which refuses a venue that cannot say. Lives in ``router/`` (not ``features/``)
because the venues need it for fees and ``router`` must not import the layers that read its events.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Protocol, get_args

from router_tuner.config.models import ContractType

CONTRACT_TYPES: tuple[ContractType, ...] = get_args(ContractType)


class ContractSpec(Protocol):
    """What a quantity means: ``config.models.UniverseEntry`` satisfies it, so does :class:`Contract`."""

    @property
    def contract_type(self) -> ContractType: ...

    @property
    def contract_size(self) -> float: ...


class Contract:
    """A standalone contract spec (for venues and tests that have no universe entry), validated.

    Examples
    --------
    >>> notional_usd(Contract("inverse", 100.0), price=61_234.5, qty=3)
    300.0
    >>> notional_usd(Contract("linear", 1.0), price=2_000.0, qty=0.5)
    1000.0
    """

    __slots__ = ("contract_size", "contract_type")

    def __init__(self, contract_type: ContractType, contract_size: float) -> None:
        check_contract(contract_type, contract_size, where="Contract")
        self.contract_type: ContractType = contract_type
        self.contract_size: float = float(contract_size)

    def __repr__(self) -> str:
        return f"Contract({self.contract_type!r}, {self.contract_size!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Contract) and (self.contract_type, self.contract_size) == (
            other.contract_type, other.contract_size)

    def __hash__(self) -> int:
        return hash((self.contract_type, self.contract_size))


def check_contract(contract_type: object, contract_size: object, *, where: str) -> None:
    """Raise ``ValueError`` naming ``where`` unless the type is known and the size finite and > 0."""
    if contract_type not in CONTRACT_TYPES:
        raise ValueError(f"{where}: contract_type must be one of {CONTRACT_TYPES}, got {contract_type!r}")
    if isinstance(contract_size, bool) or not isinstance(contract_size, int | float) \
            or not math.isfinite(contract_size) or contract_size <= 0:
        raise ValueError(f"{where}: contract_size must be a finite number > 0, got {contract_size!r}")


def check_spec(spec: object, *, where: str) -> None:
    """:func:`check_contract` on an object claiming to be a :class:`ContractSpec` (missing attributes fail)."""
    check_contract(getattr(spec, "contract_type", None), getattr(spec, "contract_size", None), where=where)


def notional_usd(spec: ContractSpec, price: float, qty: float) -> float:
    """USD notional of ``qty`` (venue units: base coin for linear/spot, contracts for inverse) at ``price``.

    Pure; ``price`` must be finite and > 0 (also for inverse, where it does not change the result, so a
    bad price is never hidden) and ``qty`` finite (signed quantities give signed notionals).
    """
    if not (isinstance(price, int | float) and math.isfinite(price) and price > 0):
        raise ValueError(f"price must be a finite number > 0, got {price!r}")
    if not (isinstance(qty, int | float) and math.isfinite(qty)):
        raise ValueError(f"qty must be a finite number, got {qty!r}")
    if spec.contract_type == "inverse":
        return qty * spec.contract_size
    if spec.contract_type in ("linear", "spot"):
        return qty * spec.contract_size * price
    raise ValueError(f"unknown contract_type {spec.contract_type!r}")


def contract_of(contracts: Mapping[str, ContractSpec], symbol: str) -> ContractSpec:
    """The spec of ``symbol`` in a per-symbol mapping; ``KeyError`` naming the known symbols otherwise."""
    try:
        return contracts[symbol]
    except KeyError:
        raise KeyError(f"no contract spec for {symbol!r}; known: {sorted(contracts)}") from None


def venue_contract(venue: object, symbol: str) -> ContractSpec:
    """``symbol``'s contract spec as ``venue`` states it (``Venue.contract``), validated.

    There is no default: a venue that cannot say what a quantity is worth is an error, never a silent
    linear guess (a COIN-M quantity taken as base coin misstates every fee ratio and notional by the
    contract value over the price). Raises ``TypeError`` for an object without ``contract(symbol)`` and
    ``ValueError`` for a spec that is not one; the venue's own errors (unknown symbol, unsupported
    market) propagate.
    """
    stated_by = getattr(venue, "contract", None)
    if not callable(stated_by):
        raise TypeError(f"venue {getattr(venue, 'name', venue)!r} does not state contract specs "
                        f"(Venue.contract(symbol)): refusing to guess what a {symbol} quantity is worth")
    spec = stated_by(symbol)
    check_spec(spec, where=f"venue {getattr(venue, 'name', venue)!r} contract({symbol!r})")
    return spec
