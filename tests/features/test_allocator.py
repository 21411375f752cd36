"""Feedback allocator: bounded steps, the minimum sample, lot returns from trade records, and its example."""

from __future__ import annotations

import doctest
import importlib

import msgspec
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from router_tuner.config import load_config
from router_tuner.features.allocator import LotReturn, lot_returns, propose, step
from router_tuner.router.events import SCHEMA_VERSION, ClosedLot, TradeRecord

UNIVERSE = load_config().strategy.universe
SETTINGS = load_config().executor.allocator


def _closing(lots: tuple[ClosedLot, ...], avg_price: float | None = 50_000.0) -> TradeRecord:
    return TradeRecord(schema_version=SCHEMA_VERSION, intent_id="c", symbol="BTCUSDT", tier="CORE", strategy="exit",
                       size_hint_usd=0.0, size_multiplier=1.0, suggested_gross_usd=100.0, clamped_gross_usd=100.0,
                       binding_limit="position", veto_reasons=(), filled_qty=sum(lot.qty for lot in lots),
                       avg_price=avg_price, fees_usd=0.0, realized_pnl_usd=sum(lot.realized_pnl_usd for lot in lots),
                       closed_lots=lots, ts_ns=1)


@pytest.mark.parametrize("name", ["router_tuner.features.allocator", "router_tuner.executor.monitoring.series"])
def test_docstring_examples_run(name: str) -> None:
    result = doctest.testmod(importlib.import_module(name))
    assert result.attempted > 0 and result.failed == 0


def test_lot_returns_are_pnl_over_the_lots_notional_at_the_closing_price() -> None:
    lots = (ClosedLot(opening_intent_id="a", opening_strategy="trend", qty=0.002, realized_pnl_usd=1.0),
            ClosedLot(opening_intent_id="b", opening_strategy="mean_rev", qty=0.001, realized_pnl_usd=-0.5))
    returns = lot_returns([_closing(lots), _closing(lots, avg_price=None), _closing(())], UNIVERSE)
    assert returns == [LotReturn("trend", "BTCUSDT", 1.0 / 100.0), LotReturn("mean_rev", "BTCUSDT", -0.5 / 50.0)]


@given(current=st.floats(SETTINGS.floor, SETTINGS.ceiling), sharpe=st.floats(-50.0, 50.0) | st.none(),
       lots=st.integers(0, 500))
def test_a_step_is_bounded_and_needs_the_minimum_sample(current: float, sharpe: float | None, lots: int) -> None:
    moved, reason = step(current, sharpe, lots, SETTINGS)
    assert SETTINGS.floor <= moved <= SETTINGS.ceiling
    assert abs(moved - current) <= SETTINGS.max_step + 1e-12
    if lots < SETTINGS.min_lots or sharpe is None:
        assert (moved, reason) == (current, "min_lots")
    elif sharpe < SETTINGS.down_below_sharpe:
        assert reason == "losing" and moved <= current
    elif sharpe > SETTINGS.up_above_sharpe:
        assert reason == "winning" and moved >= current
    else:
        assert reason == "neutral" and abs(moved - 1.0) <= abs(current - 1.0)


def test_a_losing_strategy_walks_down_to_the_floor_one_step_per_publish() -> None:
    rng = np.random.default_rng(11)
    stream = [LotReturn("loser", "ETHUSDT", rng.normal(-5e-4, 2e-4)) for _ in range(SETTINGS.min_lots)]
    current: dict = {}
    path = []
    for _ in range(12):
        (strategy, _symbol) = propose(stream, current, SETTINGS)
        path.append(strategy.proposed)
        current = {("strategy", "loser"): strategy.proposed}
    assert path == pytest.approx([max(SETTINGS.floor, 1.0 - SETTINGS.max_step * k) for k in range(1, 13)])


def test_fewer_lots_than_the_minimum_move_nothing_and_a_known_name_without_lots_is_kept() -> None:
    stream = [LotReturn("new", "BTCUSDT", -1e-3)] * (SETTINGS.min_lots - 1)
    proposals = propose(stream, {("strategy", "old"): 0.7}, SETTINGS)
    by_name = {(p.scope, p.name): p for p in proposals}
    assert by_name[("strategy", "new")].proposed == 1.0 and by_name[("strategy", "new")].reason == "min_lots"
    assert by_name[("strategy", "old")].proposed == 0.7 and by_name[("strategy", "old")].lots == 0


def test_only_the_last_window_of_each_strategy_counts() -> None:
    settings = msgspec.structs.replace(SETTINGS, window_lots=SETTINGS.min_lots)
    rng = np.random.default_rng(3)
    old_losses = [LotReturn("s", "BTCUSDT", rng.normal(-5e-4, 1e-4)) for _ in range(100)]
    recent_gains = [LotReturn("s", "BTCUSDT", rng.normal(5e-4, 1e-4)) for _ in range(settings.window_lots)]
    (strategy, _symbol) = propose(old_losses + recent_gains, {}, settings)
    assert strategy.lots == settings.window_lots and strategy.reason == "winning"
