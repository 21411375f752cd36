"""Property: however the venue repeats, reorders or drops an order's reports, the merged state only moves
forward, counts each fill once and keeps the first terminal status (``router.venues.ccxt.order_feed``)."""

from __future__ import annotations

import asyncio
import math

from hypothesis import given
from hypothesis import strategies as st

from router_tuner.router.events import Fill
from router_tuner.router.venue import OrderState
from router_tuner.router.venues.ccxt.order_feed import TrackedOrder, merge_status

QTY = 1.0


def history(fill_qtys: list[float], ending: str) -> list[OrderState]:
    """The reports a venue gives of one order in order: new, each fill, then the ending if not filled."""
    states = [OrderState("c1", "BTCUSDT", "open", QTY, 0.0, 100.0, ())]
    fills: list[Fill] = []
    for i, qty in enumerate(fill_qtys):
        fills.append(Fill(trade_id=f"t{i}", client_order_id="c1", price=100.0, qty=qty, fee_usd=0.01,
                          liquidity="maker", ts_ns=1_000 + i))
        filled = math.fsum(f.qty for f in fills)
        status = "filled" if math.isclose(filled, QTY) else "partially_filled"
        states.append(OrderState("c1", "BTCUSDT", status, QTY, filled, 100.0, tuple(fills)))
    if states[-1].status != "filled":
        last = states[-1]
        states.append(OrderState("c1", "BTCUSDT", ending, QTY, last.filled_qty, 100.0, last.fills))  # type: ignore[arg-type]
    return states


@given(
    fill_count=st.integers(min_value=0, max_value=5),
    complete=st.booleans(),
    ending=st.sampled_from(["canceled", "expired"]),
    picks=st.lists(st.integers(min_value=0, max_value=20), min_size=1, max_size=25),
    from_rest=st.lists(st.booleans(), min_size=25, max_size=25),
)
def test_merged_state_only_moves_forward_whatever_the_report_order(
    fill_count: int, complete: bool, ending: str, picks: list[int], from_rest: list[bool]
) -> None:
    qtys = [QTY / fill_count] * fill_count if complete and fill_count else [0.1] * fill_count
    states = history(qtys, ending)
    reports = [states[p % len(states)] for p in picks]
    tracked = TrackedOrder("BTCUSDT", changed=asyncio.Event())
    previous: OrderState | None = None
    for report, rest in zip(reports, from_rest, strict=False):
        tracked.merge(report, from_rest=rest)
        merged = tracked.state
        assert merged is not None
        ids = [f.trade_id for f in merged.fills]
        assert len(ids) == len(set(ids))
        if previous is not None:
            assert merged.filled_qty >= previous.filled_qty
            assert set(f.trade_id for f in previous.fills) <= set(ids)
            if previous.is_terminal:
                assert merged.status == previous.status
        previous = merged
    assert tracked.state is not None
    assert tracked.state.filled_qty == max(r.filled_qty for r in reports)
    assert {f.trade_id for f in tracked.state.fills} == {f.trade_id for r in reports for f in r.fills}
    first_terminal = next((r.status for r in reports if r.is_terminal), None)
    if first_terminal is not None:
        assert tracked.state.status == first_terminal


def test_a_repeated_report_changes_nothing_and_wakes_no_one() -> None:
    tracked = TrackedOrder("BTCUSDT", changed=asyncio.Event())
    report = history([0.4], "canceled")[1]
    assert tracked.merge(report, from_rest=False) and tracked.version == 1
    tracked.changed.clear()
    assert not tracked.merge(report, from_rest=True)
    assert tracked.version == 1 and not tracked.changed.is_set()


def test_status_merge_table() -> None:
    assert merge_status("open", "partially_filled") == "partially_filled"
    assert merge_status("partially_filled", "open") == "partially_filled"
    assert merge_status("canceled", "filled") == "canceled"
    assert merge_status("partially_filled", "expired") == "expired"
