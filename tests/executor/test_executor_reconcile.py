"""Restart reconciliation refuses what it must not trade through, and leaves foreign orders alone."""

from __future__ import annotations

from pathlib import Path

import pytest

from executor.reconcile import ReconcileError, replay_journal
from router.events import Fill, RouterEvent
from router.venue import OrderRequest
from tests.executor.test_executor_support import build_executor, executor_config, intent, make_paper_venue


def _restart(config, venue, tmp_path: Path, journal, store):
    journal.close()
    store.close()
    return build_executor(config, venue, tmp_path)


def _manual(venue, cid: str, *, price: float | None) -> None:
    venue.place_order(OrderRequest(client_order_id=cid, symbol="BTCUSDT", side="buy", qty=0.002,
                                   order_type="limit" if price is not None else "market", price=price,
                                   post_only=price is not None, reduce_only=False, close_position=False,
                                   position_side="LONG", time_in_force="GTC" if price is not None else "IOC"))


def test_restart_refuses_positions_the_journal_does_not_explain(tmp_path: Path) -> None:
    config = executor_config()
    venue = make_paper_venue(config)
    executor, journal, store = build_executor(config, venue, tmp_path)
    executor.start()
    executor.process(intent("a1", size_hint_usd=300.0))
    _manual(venue, "manual-1", price=None)  # someone traded on the account behind our back
    executor, journal, store = _restart(config, venue, tmp_path, journal, store)
    with pytest.raises(ReconcileError, match=r"positions differ.*BTCUSDT LONG"):
        executor.start()
    with pytest.raises(RuntimeError, match="start"):
        executor.process(intent("a2"))


def test_foreign_open_orders_are_reported_and_left_alone(tmp_path: Path) -> None:
    config = executor_config()
    venue = make_paper_venue(config)
    executor, journal, store = build_executor(config, venue, tmp_path)
    executor.start()
    executor.process(intent("a1", size_hint_usd=300.0))
    bid = venue.top_of_book("BTCUSDT").bid
    _manual(venue, "manual-2", price=round(bid * 0.9, 1))
    executor, journal, store = _restart(config, venue, tmp_path, journal, store)
    report = executor.start()
    assert report.foreign_open_orders == ("manual-2",) and report.recovered_intent_ids == ()
    assert report.replayed_router_events == 1 and report.positions_checked
    assert venue.fetch_order("BTCUSDT", "manual-2").status == "open"


def test_a_router_event_without_its_submission_is_refused() -> None:
    fill = Fill(trade_id="t1", client_order_id="x-1", price=100.0, qty=1.0, fee_usd=0.01, liquidity="taker",
                ts_ns=1)
    event = RouterEvent(
        schema_version=1, intent_id="x", symbol="BTCUSDT", side="buy", qty=1.0, reduce_only=False, close_position=False,
        position_side="LONG", arrival_bid=99.0,
        arrival_ask=101.0, arrival_mid=100.0, arrival_ts_ns=0, policy_id="p", policy_version=0, arm="static",
        maker_offset_bps=1.0, taker_bias=0.0, propensity=1.0, route_propensity=1.0, started_maker=False,
        is_maker_final=False, used_fallback=False, routed_as="taker", outcome="filled", reprice_count=0,
        cancel_count=0, post_only_reject_count=0, fills=(fill,), filled_qty=1.0, avg_price=100.0, slippage_bps=0.0,
        fees_bps=1.0, cost_bps=1.0, time_to_fill_ms=1.0, realized_pnl_usd=None, error=None, finished_ts_ns=2)
    with pytest.raises(ReconcileError, match="no submission record"):
        replay_journal(router_events=[event], vetoes=[], trades=[], submissions={}, wallet_balance_usd=1.0, now_ns=0)
