"""What one run of the executor did, from the events it journaled: routed, vetoed by reason, fills, cost.

Why: a run that vetoes every intent must not look like a run that traded. ``router-tuner live`` ends
every run with this summary, so "40 intents processed" always says what became of them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from router_tuner.router.events import RouterEvent, VetoEvent


@dataclass(frozen=True, slots=True)
class RunSummary:
    """Counts of one run's outcomes; ``mean_cost_bps`` is over the orders that filled (``None``: none did).

    Cost is the router's ``cost_bps``: against the arrival mid, fees included (rebates negative). A veto
    with several reasons counts once in ``vetoed`` and once under each of its reason codes.
    """

    routed: int = 0
    filled_orders: int = 0
    fills: int = 0
    maker_fills: int = 0
    errors: int = 0
    vetoed: int = 0
    veto_reasons: dict[str, int] = field(default_factory=dict)
    mean_cost_bps: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"routed": self.routed, "filled_orders": self.filled_orders, "fills": self.fills,
                "maker_fills": self.maker_fills, "errors": self.errors, "vetoed": self.vetoed,
                "veto_reasons": dict(self.veto_reasons), "mean_cost_bps": self.mean_cost_bps}

    def lines(self) -> list[str]:
        """The summary as a few readable lines (the most frequent veto reason first).

        Examples
        --------
        >>> print("\\n".join(RunSummary(routed=3, filled_orders=2, fills=4, maker_fills=3, vetoed=1,
        ...                             veto_reasons={"cooldown": 1}, mean_cost_bps=0.51234).lines()))
        routed 3 orders: 2 filled with 4 fills (3 maker), 0 ended in an error
        mean cost 0.512 bps per filled order (vs arrival mid, fees included)
        vetoed 1 intents: cooldown 1
        """
        cost = ("no order filled" if self.mean_cost_bps is None
                else f"mean cost {self.mean_cost_bps:.3f} bps per filled order (vs arrival mid, fees included)")
        reasons = ", ".join(f"{code} {count}" for code, count in
                            sorted(self.veto_reasons.items(), key=lambda item: (-item[1], item[0])))
        return [f"routed {self.routed} orders: {self.filled_orders} filled with {self.fills} fills "
                f"({self.maker_fills} maker), {self.errors} ended in an error",
                cost,
                f"vetoed {self.vetoed} intents" + (f": {reasons}" if reasons else "")]


def summarize_run(events: Iterable[RouterEvent | VetoEvent]) -> RunSummary:
    """Fold one run's router and veto events into a :class:`RunSummary` (other records are ignored)."""
    routed = filled = fills = maker = errors = vetoed = 0
    reasons: Counter[str] = Counter()
    costs: list[float] = []
    for event in events:
        if isinstance(event, VetoEvent):
            vetoed += 1
            reasons.update({reason.code for reason in event.reasons})
        elif isinstance(event, RouterEvent):
            routed += 1
            fills += len(event.fills)
            maker += sum(fill.liquidity == "maker" for fill in event.fills)
            errors += event.error is not None
            if event.filled_qty > 0:
                filled += 1
                if event.cost_bps is not None:
                    costs.append(event.cost_bps)
    return RunSummary(routed=routed, filled_orders=filled, fills=fills, maker_fills=maker, errors=errors,
                      vetoed=vetoed, veto_reasons=dict(reasons),
                      mean_cost_bps=sum(costs) / len(costs) if costs else None)
