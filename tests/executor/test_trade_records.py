"""The per-trade feedback record (issue 16): strategy, size hint, the binding limit and the link from an
opening trade to the PnL realised when it is closed, in the journal, across a restart and in the Parquet
export; and the opening-lot ledger's invariants under any fill sequence."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pandas as pd
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from router_tuner.executor.positions import HELD_FLAT, AppliedOrder, OpeningLots, apply_order, held_flat, hold_flat
from router_tuner.risk.portfolio import PortfolioState
from router_tuner.router.arrow_events import from_arrow
from router_tuner.router.events import Fill, Intent, TradeRecord
from tests.executor.test_executor_support import build_executor, executor_config, intent, make_paper_venue
from tests.factories import routed

STEP = 0.001


def _as(strategy: str, base: Intent) -> Intent:
    return msgspec.structs.replace(base, strategy=strategy)


def _trades(journal: object) -> dict[str, TradeRecord]:
    return {t.intent_id: t for t in journal.read("trade")}


def test_paper_run_records_strategy_size_hint_binding_limit_and_links_closes_to_openings(tmp_path: Path) -> None:
    config = executor_config()
    executor, journal, _ = build_executor(config, make_paper_venue(config), tmp_path)
    executor.start()
    nav_cap = config.strategy.sizing.base_nav_pct * config.executor.starting_wallet_usd
    executor.process(_as("momentum", intent("small", size_hint_usd=nav_cap * 0.6)))
    executor.process(_as("carry", intent("large", size_hint_usd=nav_cap * 3)))
    executor.process(_as("exit", intent("close", side="sell", close_position=True, size_hint_usd=0.0)))
    executor.process(_as("carry", intent("veto", symbol="DOGEUSDT")))
    trades = _trades(journal)
    small, large, close, veto = (trades[k] for k in ("small", "large", "close", "veto"))
    assert (small.strategy, small.size_hint_usd, small.binding_limit) == ("momentum", nav_cap * 0.6, None)
    assert (large.strategy, large.binding_limit) == ("carry", "base_nav_pct")
    assert large.suggested_gross_usd == pytest.approx(nav_cap) and nav_cap < large.size_hint_usd
    assert close.binding_limit == "position" and (veto.strategy, veto.binding_limit) == ("carry", None)
    assert small.filled_qty > 0 and large.filled_qty > 0, "the paper market filled both openings"
    # the close names both openings, oldest first, with their quantities and the PnL realised on each
    assert [lot.opening_intent_id for lot in close.closed_lots] == ["small", "large"]
    assert [lot.qty for lot in close.closed_lots] == pytest.approx([small.filled_qty, large.filled_qty])
    assert sum(lot.realized_pnl_usd for lot in close.closed_lots) == pytest.approx(close.realized_pnl_usd)
    assert small.closed_lots == () and small.realized_pnl_usd is None


def test_a_close_after_a_restart_still_names_the_opening_trade(tmp_path: Path) -> None:
    config = executor_config()
    venue = make_paper_venue(config)  # the venue outlives the executor process, and keeps the position
    executor, journal, store = build_executor(config, venue, tmp_path)
    executor.start()
    executor.process(_as("momentum", intent("open", size_hint_usd=150.0)))
    journal.close()
    store.close()
    again, journal, _ = build_executor(config, venue, tmp_path)
    again.start()
    again.process(_as("exit", intent("close", side="sell", close_position=True, size_hint_usd=0.0)))
    (lot,) = _trades(journal)["close"].closed_lots
    assert lot.opening_intent_id == "open" and lot.qty == pytest.approx(_trades(journal)["open"].filled_qty)


def test_trade_records_export_to_parquet_with_the_feedback_fields(tmp_path: Path) -> None:
    config = executor_config()
    executor, journal, _ = build_executor(config, make_paper_venue(config), tmp_path)
    executor.start()
    executor.process(_as("momentum", intent("open", size_hint_usd=900.0)))
    executor.process(_as("exit", intent("close", side="sell", close_position=True, size_hint_usd=0.0)))
    out = tmp_path / "trades.parquet"
    assert journal.export_parquet("trade", out) == 2
    frame = pd.read_parquet(out)
    assert {"strategy", "size_hint_usd", "binding_limit", "closed_lots"} <= set(frame.columns)
    assert frame["strategy"].tolist() == ["momentum", "exit"]
    assert frame["binding_limit"].tolist() == ["base_nav_pct", "position"]
    assert frame["closed_lots"][1][0]["opening_strategy"] == "momentum"  # a list of structs, not JSON text
    assert from_arrow(pq.read_table(out), "trade") == list(journal.read("trade"))


def _fill(k: int, qty_lots: int, price: float) -> Fill:
    return Fill(trade_id=f"t{k}", client_order_id=f"c{k}", price=price, qty=qty_lots * STEP, fee_usd=0.01,
                liquidity="maker", ts_ns=k)


@settings(max_examples=150, deadline=None)
@given(orders=st.lists(st.tuples(st.sampled_from(["buy", "sell"]), st.integers(1, 9),
                                 st.floats(90.0, 110.0)), min_size=1, max_size=25))
def test_opening_lots_match_the_leg_and_split_realized_pnl_exactly(orders: list[tuple[str, int, float]]) -> None:
    """One-way mode, any order sequence (through zero included): the lots sum to the leg, no opening is
    closed beyond what it opened, and each order's lot PnL sums to its realized PnL."""
    portfolio, lots = PortfolioState(wallet_balance_usd=10_000.0, nav_ts_ns=0), OpeningLots()
    opened: dict[str, float] = {}
    closed: dict[str, float] = {}
    for k, (side, qty_lots, price) in enumerate(orders):
        fills = (_fill(k, qty_lots, price),)
        order = intent(f"i{k}", symbol="X", side=side, position_side="BOTH")
        realized, closed_lots, past_flat = apply_order(portfolio, lots, intent=order, fills=fills, qty_step=STEP)
        assert past_flat == ()  # one-way mode: a fill through zero opens the other direction
        assert apply_order(portfolio, lots, intent=order, fills=fills, qty_step=STEP) == (None, (), ()), "a repeat"
        for lot in closed_lots:
            closed[lot.opening_intent_id] = closed.get(lot.opening_intent_id, 0.0) + lot.qty
        if closed_lots:
            assert realized is not None
            assert sum(lot.realized_pnl_usd for lot in closed_lots) == pytest.approx(realized)
        leg = portfolio.legs.get(("X", "BOTH"))
        held = sum(lot.qty for lot in lots.lots(("X", "BOTH")))
        assert held == pytest.approx(0.0 if leg is None else leg.qty, abs=STEP / 2)
        opened[f"i{k}"] = qty_lots * STEP - sum(lot.qty for lot in closed_lots)  # what it added to the leg
    assert all(qty <= opened[intent_id] + STEP / 2 for intent_id, qty in closed.items())


PAST_FLAT_FILLS = (Fill(trade_id="t2", client_order_id="close-1", price=110.0, qty=0.005, fee_usd=0.01,
                        liquidity="maker", ts_ns=2),
                   Fill(trade_id="t3", client_order_id="close-1", price=110.0, qty=0.002, fee_usd=0.01,
                        liquidity="maker", ts_ns=3))
"""A reduce-only sell of 0.007 at 110 against a long of 0.004 opened at 100: 0.001 then 0.002 past flat."""


def _open_then_close_past_flat(position_side: str) -> tuple[PortfolioState, OpeningLots, AppliedOrder]:
    """Fresh books with a long of 0.004 opened at 100 on ``position_side``, then ``PAST_FLAT_FILLS`` applied by a
    reduce-only sell: the books and what the close applied."""
    portfolio, lots = PortfolioState(wallet_balance_usd=1_000.0, nav_ts_ns=0), OpeningLots()
    opening = _as("momentum", intent("open", position_side=position_side))
    apply_order(portfolio, lots, intent=opening, fills=(Fill(trade_id="t1", client_order_id="open-1", price=100.0,
                                                             qty=0.004, fee_usd=0.0, liquidity="maker", ts_ns=1),),
                qty_step=STEP)
    closing = intent("close", side="sell", position_side=position_side, reduce_only=True)
    return portfolio, lots, apply_order(portfolio, lots, intent=closing, fills=PAST_FLAT_FILLS, qty_step=STEP)


def test_a_hedge_fill_beyond_its_leg_closes_the_leg_names_what_went_past_flat_and_replays_the_same() -> None:
    """A reducing fill beyond the LONG leg (the venue overfilled a reduce-only order, or filled it after the leg closed)
    closes the leg, realises PnL on the part that closed only, names the rest once, and leaves no lot open: the loop and
    the journal replay apply it alike."""
    books = []
    for _ in range(2):  # the run, then the replay of the same journal
        portfolio, lots, applied = _open_then_close_past_flat("LONG")
        books.append((portfolio.legs, portfolio.wallet_balance_usd, lots.lots(("BTCUSDT", "LONG")), applied))
    assert books[0] == books[1]
    legs, wallet, open_lots, (realized, closed_lots, past_flat) = books[0]
    assert legs == {} and open_lots == ()
    assert realized == pytest.approx(0.004 * 10.0 - 0.02) and wallet == pytest.approx(1_000.0 + realized)
    assert [(lot.opening_intent_id, lot.qty) for lot in closed_lots] == [("open", pytest.approx(0.004))]
    assert past_flat == ("fill t2 of close-1 sells 0.005 beyond the LONG leg of 0.004: the leg is flat, 0.001 past "
                         "flat held by no position",
                         "fill t3 of close-1 sells 0.002 beyond the LONG leg of 0: the leg is flat, 0.002 past flat "
                         "held by no position")


@pytest.mark.parametrize("venue_flat", [True, False])
def test_a_one_way_reduce_only_fill_past_flat_is_named_and_the_replay_follows_what_the_run_held(
        venue_flat: bool) -> None:
    """One-way mode: a reduce-only sell the venue fills 0.007 against a long of 0.004 is applied as reported (a flip
    to -0.003) and each fill past flat is named. When the venue's position is flat the run holds the books flat and
    its flag says so (``HELD_FLAT``); the replay of the journaled event reads that and ends with the same books, PnL
    realised on the 0.004 that closed only and both fees charged."""
    flag = "venue_anomaly(fill t2 of close-1 sells 0.005 beyond ...; " + (f"{HELD_FLAT})" if venue_flat else "x)")
    event = msgspec.structs.replace(routed(intent_id="close", fills=PAST_FLAT_FILLS),
                                    error=f"settled: 1 orders found; {flag}")
    books = []
    for run in (True, False):  # the run (which read the venue), then the replay of the same journal
        portfolio, lots, applied = _open_then_close_past_flat("BOTH")
        if venue_flat if run else held_flat(event):
            hold_flat(portfolio, lots, ("BTCUSDT", "BOTH"))
        books.append(({k: leg.qty for k, leg in portfolio.legs.items()}, portfolio.wallet_balance_usd,
                      [lot.qty for lot in lots.lots(("BTCUSDT", "BOTH"))], applied))
    assert books[0] == books[1]
    legs, wallet, open_lots, (realized, closed_lots, past_flat) = books[0]
    assert (legs, open_lots) == (({}, []) if venue_flat else ({("BTCUSDT", "BOTH"): -0.003},
                                                              [pytest.approx(-0.001), pytest.approx(-0.002)]))
    assert realized == pytest.approx(0.004 * 10.0 - 0.02) and wallet == pytest.approx(1_000.0 + realized)
    assert [(lot.opening_intent_id, lot.qty) for lot in closed_lots] == [("open", pytest.approx(0.004))]
    assert past_flat == ("fill t2 of close-1 sells 0.005 beyond the BOTH position of 0.004: 0.001 past flat on a "
                         "reduce-only order",
                         "fill t3 of close-1 sells 0.002 beyond the BOTH position of 0.001: 0.002 past flat on a "
                         "reduce-only order")
    assert not held_flat(msgspec.structs.replace(event, error=f"binance: {HELD_FLAT}"))  # text, not our flag
