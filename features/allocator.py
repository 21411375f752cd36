"""Feedback allocator: size multipliers per strategy and per symbol from the PnL realised on closed lots.

Why: the trade records link every close to the opening trade it closed, with that trade's strategy and
the PnL realised on it (``TradeRecord.closed_lots``), so a strategy or a symbol that keeps losing can be
given less size and one that keeps winning a little more, within bounds, before a human looks. The
evidence per strategy and per symbol is the symbol score's Sharpe (``features.scores.sharpe_per_trade``)
of the returns of its last ``window_lots`` closed lots (realised PnL over the lot's USD notional at the
closing price). A proposal moves the current multiplier toward ``floor`` when that Sharpe is below
``down_below_sharpe``, toward ``ceiling`` above ``up_above_sharpe``, back toward 1 in between, by at most
``max_step``; nothing moves with fewer than ``min_lots`` lots. These are proposals: the executor applies
them only when configured to, and the risk core still sizes and caps what it is given.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from router_tuner.config.models import AllocatorSettings
from router_tuner.features.scores import sharpe_per_trade
from router_tuner.router.contract import ContractSpec, contract_of, notional_usd
from router_tuner.router.events import TradeRecord

Scope = Literal["strategy", "symbol"]
SCOPES: tuple[Scope, ...] = ("strategy", "symbol")


@dataclass(frozen=True, slots=True)
class LotReturn:
    """One closed lot: the strategy that opened it, its symbol, and realised PnL per USD of notional."""

    strategy: str
    symbol: str
    pnl_per_usd: float


@dataclass(frozen=True, slots=True)
class Proposal:
    """The multiplier of one strategy or symbol: where it is, where the evidence moves it, and why."""

    scope: Scope
    name: str
    lots: int
    sharpe_per_trade: float | None
    current: float
    proposed: float
    reason: str


def lot_returns(trades: Iterable[TradeRecord], contracts: Mapping[str, ContractSpec]) -> list[LotReturn]:
    """The closed lots of ``trades`` in order, each as a return on its notional at the closing price."""
    returns = []
    for trade in trades:
        if trade.avg_price is None:
            continue
        spec = contract_of(contracts, trade.symbol)
        for lot in trade.closed_lots:
            notional = notional_usd(spec, trade.avg_price, lot.qty)
            returns.append(LotReturn(strategy=lot.opening_strategy, symbol=trade.symbol,
                                     pnl_per_usd=lot.realized_pnl_usd / notional))
    return returns


def step(current: float, sharpe: float | None, lots: int, settings: AllocatorSettings) -> tuple[float, str]:
    """The next multiplier from ``current`` and the evidence, with the reason (see the module docstring)."""
    if lots < settings.min_lots or sharpe is None:
        return current, "min_lots"
    if sharpe < settings.down_below_sharpe:
        target, reason = settings.floor, "losing"
    elif sharpe > settings.up_above_sharpe:
        target, reason = settings.ceiling, "winning"
    else:
        target, reason = 1.0, "neutral"
    moved = current + float(np.clip(target - current, -settings.max_step, settings.max_step))
    return float(np.clip(moved, settings.floor, settings.ceiling)), reason


def propose(returns: Sequence[LotReturn], current: Mapping[tuple[Scope, str], float],
            settings: AllocatorSettings) -> tuple[Proposal, ...]:
    """One proposal per strategy and per symbol seen in ``returns`` or ``current`` (multiplier 1 if new).

    Examples
    --------
    A seeded stream where ``mean_rev`` loses about 4 bps per lot and ``trend`` earns about 4, both on
    BTCUSDT and ETHUSDT, proposed on six health publishes (the defaults: step 0.1, floor 0.25, ceiling 1.5):

    >>> from router_tuner.config.loader import load_config
    >>> settings = load_config().executor.allocator
    >>> rng = np.random.default_rng(7)
    >>> stream = [LotReturn(strategy, symbol, rng.normal(mean, 3e-4)) for _ in range(30)
    ...           for strategy, mean in (("mean_rev", -4e-4), ("trend", 4e-4)) for symbol in ("BTCUSDT", "ETHUSDT")]
    >>> multipliers = {}
    >>> for _ in range(6):
    ...     proposals = propose(stream, multipliers, settings)
    ...     multipliers = {(p.scope, p.name): p.proposed for p in proposals}
    >>> for p in proposals:
    ...     print(f"{p.scope:<8} {p.name:<8} lots {p.lots} sharpe {p.sharpe_per_trade:+.1f}", end=" ")
    ...     print(f"-> {p.proposed:.2f} {p.reason}")
    strategy mean_rev lots 60 sharpe -17.1 -> 0.40 losing
    strategy trend    lots 60 sharpe +10.1 -> 1.50 winning
    symbol   BTCUSDT  lots 60 sharpe -0.9 -> 1.00 neutral
    symbol   ETHUSDT  lots 60 sharpe -0.5 -> 1.00 neutral
    """
    proposals = []
    for scope in SCOPES:
        groups: dict[str, list[float]] = {name: [] for (s, name) in current if s == scope}
        for lot in returns:
            groups.setdefault(lot.strategy if scope == "strategy" else lot.symbol, []).append(lot.pnl_per_usd)
        for name in sorted(groups):
            recent = np.asarray(groups[name][-settings.window_lots:], dtype=float)
            sharpe = sharpe_per_trade(recent)
            now = current.get((scope, name), 1.0)
            proposed, reason = step(now, sharpe, recent.size, settings)
            proposals.append(Proposal(scope=scope, name=name, lots=int(recent.size), sharpe_per_trade=sharpe,
                                      current=now, proposed=proposed, reason=reason))
    return tuple(proposals)
