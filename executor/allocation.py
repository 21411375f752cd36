"""The feedback allocator in the executor: closed lots in, size multipliers out, shadow unless configured.

Every journaled trade record's closed lots feed ``features.allocator``; each health publish moves the
multipliers one bounded step (:meth:`Allocation.update`) and the proposals are stored and served with the
snapshot. With ``allocator.apply`` false (the default) nothing else happens: the multipliers evolve as if
applied, so health shows what the allocator would do. With it true, :meth:`Allocation.multiplier` scales a
growing intent's size hint before the risk core sizes it (the risk core's caps still bind, and a reducing
intent is never scaled). The state survives a restart: the lots come back from the journal, the
multipliers from the last stored health snapshot.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping

from router_tuner.config.models import AllocatorSettings
from router_tuner.features.allocator import LotReturn, Proposal, Scope, lot_returns, propose
from router_tuner.risk.exposure import is_reducing
from router_tuner.router.contract import ContractSpec
from router_tuner.router.events import Intent, TradeRecord


class Allocation:
    """Closed-lot returns per strategy (the last ``window_lots`` each), the multipliers and the last proposals."""

    def __init__(self, settings: AllocatorSettings, contracts: Mapping[str, ContractSpec]) -> None:
        self.settings = settings
        self._contracts = contracts
        self._returns: dict[str, deque[LotReturn]] = {}
        self.multipliers: dict[tuple[Scope, str], float] = {}
        self.last: tuple[Proposal, ...] = ()

    def observe(self, trades: Iterable[TradeRecord]) -> None:
        """Trade records in journal order (closing ones carry lots; the others add nothing)."""
        for lot in lot_returns(trades, self._contracts):
            window = self._returns.setdefault(lot.strategy, deque(maxlen=self.settings.window_lots))
            window.append(lot)

    def restore(self, allocations: Iterable[Proposal]) -> None:
        """The multipliers of the last stored snapshot, so a restart goes on from where it was."""
        self.last = tuple(allocations)
        self.multipliers = {(a.scope, a.name): a.proposed for a in self.last}

    def update(self) -> tuple[Proposal, ...]:
        """One bounded step of every multiplier (one call per health publish); returns the proposals."""
        lots = [lot for window in self._returns.values() for lot in window]
        self.last = propose(lots, self.multipliers, self.settings)
        self.multipliers = {(p.scope, p.name): p.proposed for p in self.last}
        return self.last

    def multiplier(self, intent: Intent) -> float:
        """The factor the risk core sizes ``intent``'s hint with: 1 in shadow mode and for a reducing intent."""
        if not self.settings.apply or is_reducing(intent):
            return 1.0
        return (self.multipliers.get(("strategy", intent.strategy), 1.0)
                * self.multipliers.get(("symbol", intent.symbol), 1.0))

