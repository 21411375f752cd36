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
                                 veto_reasons={"symbol_notional_cap": 2, "cooldown": 1}, mean_cost_bps=2.0)
    lines = summary.lines()
    assert lines[0] == "routed 3 orders: 2 filled with 2 fills (2 maker), 1 ended in an error"
    assert lines[2] == "vetoed 2 intents: symbol_notional_cap 2, cooldown 1"


def test_an_empty_run_says_nothing_filled() -> None:
    summary = summarize_run([])
    assert summary.as_dict() == {"routed": 0, "filled_orders": 0, "fills": 0, "maker_fills": 0, "errors": 0,
                                 "vetoed": 0, "veto_reasons": {}, "mean_cost_bps": None}
    assert summary.lines()[1:] == ["no order filled", "vetoed 0 intents"]
