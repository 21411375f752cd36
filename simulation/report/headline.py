"""The report's first lines: what the tuner saves against the static policy and against always-taker, in bps
and in USD per 1M notional, and why those figures are not a forecast."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from router_tuner.simulation.job import SimulationResult
from router_tuner.simulation.policies import ALWAYS_TAKER, STATIC
from router_tuner.simulation.report import breakdown


@dataclass(frozen=True, slots=True)
class Headline:
    """``lead``: the one-sentence answer; ``per_symbol``: one line per symbol; ``caveat``: how far to trust it."""

    lead: str
    per_symbol: list[str]
    caveat: str


def _signed(bps: float) -> str:
    verb = "saves" if bps >= 0 else "costs an extra"
    return f"{verb} {abs(bps):.2f} bps ({abs(bps) * breakdown.USD_PER_BPS_PER_MILLION:,.0f} USD per 1M notional)"


def headline(result: SimulationResult) -> Headline:
    """The headline of ``result``; without a learner it says there is no tuner to judge."""
    caveat = (
        "Read with care: these are in-sample figures. "
        + ("On recorded data the whole recordings are replayed, and the default learner's settings were chosen on "
           "their first halves; the held-out comparison (README, 'The tuner') is the one to expect on new data. "
           if result.data_source.startswith("recorded") else
           "The market is synthetic (no recording was found): the figures exercise the code, not a real market. ")
        + "Savings are differences of mean cost per filled order (1 bps of 1M USD notional is 100 USD) and carry "
          "no interval of their own: each policy's 95% interval is in the symbol's drill-down, and a saving "
          "smaller than those intervals is not shown to be one.")
    tuner = breakdown.tuner_policy(result)
    if tuner is None:
        return Headline(lead="No learner ran in this simulation: there is no tuner to compare with the baselines.",
                        per_symbol=[], caveat=caveat)
    found = breakdown.savings(result)
    static_rows, taker_rows = found[STATIC], found[ALWAYS_TAKER]
    if not static_rows or not taker_rows:
        return Headline(lead=f"The tuner ({tuner}) or a baseline filled no order: no saving to report.",
                        per_symbol=[], caveat=caveat)
    lead = (f"Over {len(static_rows)} symbol(s), the tuner ({tuner}) "
            f"{_signed(float(np.mean([r.bps for r in static_rows])))} per order against the static policy and "
            f"{_signed(float(np.mean([r.bps for r in taker_rows])))} against always-taker "
            "(plain mean over symbols).")
    by_symbol = {r.symbol: r for r in taker_rows}
    per_symbol = [f"{r.symbol}: {r.tuner_cost_bps:.2f} bps per order; against static {_signed(r.bps)}"
                  + (f"; against always-taker {_signed(by_symbol[r.symbol].bps)}" if r.symbol in by_symbol else "")
                  for r in static_rows]
    return Headline(lead=lead, per_symbol=per_symbol, caveat=caveat)
