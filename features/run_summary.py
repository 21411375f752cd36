"""What one run of the executor did, from the events it journaled: routed, vetoed by reason, fills, cost.

Why: a run that vetoes every intent must not look like a run that traded. ``router-tuner live`` ends
every run with this summary, so "40 intents processed" always says what became of them.

Flagged orders (``router.events.event_flags``) are real money, so they count in the orders, fills and
(``venue_anomaly``) the mean cost, and are said per flag; they are not orders that "ended in an error" unless the
route reported an error of its own beside the flag. A ``fee_unpriced`` order's cost leaves out a fee nothing
priced in the quote, so it is left out of the mean cost, and the summary says how many were.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from router_tuner.router.events import (
    FEE_UNPRICED,
    FLAGS,
    RouterEvent,
    VetoEvent,
    event_flags,
    is_settled_note,
    unflagged_error,
)


@dataclass(frozen=True, slots=True)
class RunSummary:
    """Counts of one run's outcomes; ``mean_cost_bps`` is over the ``cost_orders`` filled orders whose every fee was
    priced in the quote (``None``: none).

    Cost is the router's ``cost_bps``: against the arrival mid, fees included (rebates negative). A veto
    with several reasons counts once in ``vetoed`` and once under each of its reason codes. ``flagged`` counts the
    routed orders carrying each flag (an order with both counts under both); ``errors`` the orders whose route
    reported an error besides its flags.
    """

    routed: int = 0
    filled_orders: int = 0
    fills: int = 0
    maker_fills: int = 0
    errors: int = 0
    vetoed: int = 0
    veto_reasons: dict[str, int] = field(default_factory=dict)
    mean_cost_bps: float | None = None
    cost_orders: int = 0
    flagged: dict[str, int] = field(default_factory=lambda: dict.fromkeys(FLAGS, 0))

    def as_dict(self) -> dict[str, Any]:
        return {"routed": self.routed, "filled_orders": self.filled_orders, "fills": self.fills,
                "maker_fills": self.maker_fills, "errors": self.errors, "vetoed": self.vetoed,
                "veto_reasons": dict(self.veto_reasons), "mean_cost_bps": self.mean_cost_bps,
                "cost_orders": self.cost_orders, "flagged": dict(self.flagged)}

    def lines(self) -> list[str]:
        """The summary as a few readable lines (the most frequent veto reason first).

        Examples
        --------
        >>> print("\\n".join(RunSummary(routed=3, filled_orders=2, fills=4, maker_fills=3, vetoed=1,
        ...                             veto_reasons={"cooldown": 1}, mean_cost_bps=0.51234, cost_orders=2).lines()))
        routed 3 orders: 2 filled with 4 fills (3 maker), 0 ended in an error
        mean cost 0.512 bps per filled order (vs arrival mid, fees included)
        vetoed 1 intents: cooldown 1
        >>> print("\\n".join(RunSummary(routed=3, filled_orders=3, fills=3, maker_fills=3, mean_cost_bps=1.5,
        ...                             cost_orders=2, flagged={"venue_anomaly": 1, "fee_unpriced": 1}).lines()))
        routed 3 orders: 3 filled with 3 fills (3 maker), 0 ended in an error
        flagged 1 venue_anomaly (fills the venue's own rules rule out, counted as reported), 1 fee_unpriced (a fee not priced in the quote)
        mean cost 1.500 bps per filled order (vs arrival mid, fees included) over 2 orders; 1 fee_unpriced orders left out (their cost leaves out a fee not priced in the quote)
        vetoed 0 intents
        """  # noqa: E501
        unpriced = self.flagged.get(FEE_UNPRICED, 0)
        why = f"{unpriced} {FEE_UNPRICED} orders left out (their cost leaves out a fee not priced in the quote)"
        if self.mean_cost_bps is None:
            cost = "no order filled" if not unpriced else f"no mean cost: {why}"
        else:
            cost = f"mean cost {self.mean_cost_bps:.3f} bps per filled order (vs arrival mid, fees included)"
            cost += f" over {self.cost_orders} orders; {why}" if unpriced else ""
        reasons = ", ".join(f"{code} {count}" for code, count in
                            sorted(self.veto_reasons.items(), key=lambda item: (-item[1], item[0])))
        lines = [f"routed {self.routed} orders: {self.filled_orders} filled with {self.fills} fills "
                 f"({self.maker_fills} maker), {self.errors} ended in an error"]
        if any(self.flagged.values()):
            said = {"venue_anomaly": "fills the venue's own rules rule out, counted as reported",
                    "fee_unpriced": "a fee not priced in the quote"}
            lines.append("flagged " + ", ".join(f"{n} {flag} ({said[flag]})" for flag, n in self.flagged.items() if n))
        return [*lines, cost, f"vetoed {self.vetoed} intents" + (f": {reasons}" if reasons else "")]


def ended_in_error(event: RouterEvent) -> bool:
    """The route reported an error of its own: its ``error`` less its flags, and less the executor's settlement
    note when the flags were all there was."""
    rest = unflagged_error(event.error)
    if rest is None:
        return False
    return not (event_flags(event) and all(is_settled_note(part) for part in rest.split("; ")))


def summarize_run(events: Iterable[RouterEvent | VetoEvent]) -> RunSummary:
    """Fold one run's router and veto events into a :class:`RunSummary` (other records are ignored)."""
    routed = filled = fills = maker = errors = vetoed = 0
    reasons: Counter[str] = Counter()
    flagged: Counter[str] = Counter(dict.fromkeys(FLAGS, 0))
    costs: list[float] = []
    for event in events:
        if isinstance(event, VetoEvent):
            vetoed += 1
            reasons.update({reason.code for reason in event.reasons})
        elif isinstance(event, RouterEvent):
            routed += 1
            fills += len(event.fills)
            maker += sum(fill.liquidity == "maker" for fill in event.fills)
            errors += ended_in_error(event)
            flags = event_flags(event)
            flagged.update(flags)
            if event.filled_qty > 0:
                filled += 1
                if event.cost_bps is not None and FEE_UNPRICED not in flags:
                    costs.append(event.cost_bps)
    return RunSummary(routed=routed, filled_orders=filled, fills=fills, maker_fills=maker, errors=errors,
                      vetoed=vetoed, veto_reasons=dict(reasons),
                      mean_cost_bps=sum(costs) / len(costs) if costs else None, cost_orders=len(costs),
                      flagged={flag: flagged[flag] for flag in FLAGS})
