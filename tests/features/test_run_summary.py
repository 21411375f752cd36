"""The run summary: every journaled outcome of a run counted once, vetoes by reason, cost over filled orders."""

from __future__ import annotations

import doctest

import msgspec

import router_tuner.features.run_summary as run_summary_module
from router_tuner.features.run_summary import RunSummary, summarize_run
from router_tuner.router.events import VetoReason
from tests.executor.test_journal import routed, trade, vetoed


def test_docstring_example_runs() -> None:
    assert doctest.testmod(run_summary_module).failed == 0


def test_counts_routes_fills_and_vetoes_by_reason() -> None:
    filled = msgspec.structs.replace(routed("r1"), cost_bps=1.0)
    dearer = msgspec.structs.replace(routed("r2"), cost_bps=3.0)
    unfilled = msgspec.structs.replace(routed("r3"), fills=(), filled_qty=0.0, cost_bps=None, outcome="unfilled",
                                       error="VenueError: timeout")
    two_reasons = msgspec.structs.replace(vetoed("v2"), reasons=(
        *vetoed("v2").reasons, VetoReason(code="cooldown", threshold=900.0, observed=10.0, detail="after_stop_s")))
    summary = summarize_run([filled, vetoed("v1"), dearer, unfilled, two_reasons, trade("t1")])  # type: ignore[list-item]
    assert summary == RunSummary(routed=3, filled_orders=2, fills=2, maker_fills=2, errors=1, vetoed=2,
                                 veto_reasons={"symbol_notional_cap": 2, "cooldown": 1}, mean_cost_bps=2.0,
                                 cost_orders=2)
    lines = summary.lines()
    assert lines[0] == "routed 3 orders: 2 filled with 2 fills (2 maker), 1 ended in an error"
    assert lines[2] == "vetoed 2 intents: symbol_notional_cap 2, cooldown 1"


def test_an_empty_run_says_nothing_filled() -> None:
    summary = summarize_run([])
    assert summary.as_dict() == {"routed": 0, "filled_orders": 0, "fills": 0, "maker_fills": 0, "errors": 0,
                                 "vetoed": 0, "veto_reasons": {}, "mean_cost_bps": None, "cost_orders": 0,
                                 "flagged": {"venue_anomaly": 0, "fee_unpriced": 0}}
    assert summary.lines()[1:] == ["no order filled", "vetoed 0 intents"]


def test_flagged_orders_are_counted_per_flag_not_as_errors_and_unpriced_fees_stay_out_of_the_mean() -> None:
    """The fills are real money: every flagged order counts as routed and filled, a venue_anomaly cost is in the mean
    (it is what was paid); a fee_unpriced cost leaves a fee out, so it is not, and the summary says so. A flag, and
    the executor's settlement note after it, is not an error; a route's own error beside a flag is."""
    anomaly = "venue_anomaly(fill T1 of r-1 reported as taker on a post-only order)"
    unpriced = "fee_unpriced(fill T2 of r-1: fee 0.0002 BNB not priced in USDC (no BNB/USDC market))"
    settled = "settled: 1 orders found, 0 cancelled"
    events = [
        msgspec.structs.replace(routed("plain"), cost_bps=1.0),
        msgspec.structs.replace(routed("anomaly"), cost_bps=5.0, error=f"{anomaly}; {settled}"),
        msgspec.structs.replace(routed("unpriced"), cost_bps=-20.0, error=f"{unpriced}; {settled}"),
        msgspec.structs.replace(routed("both"), cost_bps=-9.0, error=f"{anomaly}; {unpriced}"),
        msgspec.structs.replace(routed("error"), cost_bps=3.0, error=f"taker leg r-2 rejected by the venue; {anomaly}"
                                                                     f"; settled: 2 orders found, 1 cancelled"),
        msgspec.structs.replace(routed("text"), cost_bps=2.0, error="VenueError: binance says venue_anomaly"),
    ]
    summary = summarize_run(events)
    assert (summary.routed, summary.filled_orders, summary.errors) == (6, 6, 2)
    assert summary.flagged == {"venue_anomaly": 3, "fee_unpriced": 2}
    assert summary.cost_orders == 4 and summary.mean_cost_bps == (1.0 + 5.0 + 3.0 + 2.0) / 4
    assert summary.as_dict()["flagged"] == summary.flagged and summary.as_dict()["cost_orders"] == 4
    assert summary.lines()[:3] == [
        "routed 6 orders: 6 filled with 6 fills (6 maker), 2 ended in an error",
        "flagged 3 venue_anomaly (fills the venue's own rules rule out, counted as reported), 2 fee_unpriced (a fee "
        "not priced in the quote)",
        "mean cost 2.750 bps per filled order (vs arrival mid, fees included) over 4 orders; 2 fee_unpriced orders "
        "left out (their cost leaves out a fee not priced in the quote)"]
    only_unpriced = summarize_run(events[2:3])
    assert only_unpriced.mean_cost_bps is None and only_unpriced.lines()[2] == (
        "no mean cost: 1 fee_unpriced orders left out (their cost leaves out a fee not priced in the quote)")
