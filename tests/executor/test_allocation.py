"""The feedback allocator in the executor: shadow by default (proposals in health and Prometheus, sizes
untouched), applied only when configured (hints scaled before the risk core, which still caps them;
reducing intents never scaled), and its multipliers carried across a restart."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import pytest

from router_tuner.cli.health import render
from router_tuner.config.models import ConfigBundle
from router_tuner.router.events import SCHEMA_VERSION, ClosedLot, TradeRecord
from tests.executor.test_executor_support import build_executor, executor_config, intent, make_paper_venue

LOSER = "loser"


def _config(*, apply: bool) -> ConfigBundle:
    base = executor_config()
    allocator = msgspec.structs.replace(base.executor.allocator, apply=apply)
    return msgspec.structs.replace(base, executor=msgspec.structs.replace(base.executor, allocator=allocator))


def losing_stream(n: int, seed: int = 5) -> list[TradeRecord]:
    """Closes of ``loser``'s openings that lose about 5 bps each (seeded), as the journal would hold them."""
    rng = np.random.default_rng(seed)
    records = []
    for k in range(n):
        pnl = 0.001 * 50_000.0 * rng.normal(-5e-4, 2e-4)
        lot = ClosedLot(opening_intent_id=f"open{k}", opening_strategy=LOSER, qty=0.001, realized_pnl_usd=pnl)
        records.append(TradeRecord(
            schema_version=SCHEMA_VERSION, intent_id=f"close{k}", symbol="BTCUSDT", tier="CORE", strategy="exit",
            size_hint_usd=0.0, size_multiplier=1.0, suggested_gross_usd=50.0, clamped_gross_usd=50.0,
            binding_limit="position", veto_reasons=(), filled_qty=0.001, avg_price=50_000.0, fees_usd=0.0,
            realized_pnl_usd=pnl, closed_lots=(lot,), ts_ns=k))
    return records


def _run(config: ConfigBundle, tmp_path: Path, publishes: int) -> tuple[Any, Any, Any]:
    executor, journal, store = build_executor(config, make_paper_venue(config), tmp_path)
    executor.start()
    for record in losing_stream(config.executor.allocator.min_lots):
        executor.telemetry.observe_trade(record)
    for _ in range(publishes):
        executor.publish_now()
    return executor, journal, store


def _loser(allocations: tuple) -> Any:
    return next(a for a in allocations if (a.scope, a.name) == ("strategy", LOSER))


def test_shadow_mode_shows_the_proposals_and_sizes_nothing_with_them(tmp_path: Path) -> None:
    config = _config(apply=False)
    settings = config.executor.allocator
    executor, journal, store = _run(config, tmp_path, publishes=3)
    proposal = _loser(store.latest_health().allocations)
    assert proposal.reason == "losing" and not store.latest_health().allocator_applied
    assert proposal.proposed == pytest.approx(1.0 - 3 * settings.max_step)
    sample = executor.telemetry.metrics.registry.get_sample_value
    assert sample("executor_allocator_multiplier", {"scope": "strategy", "name": LOSER}) == proposal.proposed
    assert sample("executor_allocator_applied") == 0.0
    assert f"allocator strategy {LOSER:<16}{proposal.current:.3g} -> {proposal.proposed:.3g} losing" in render(
        store.latest_health())
    executor.process(msgspec.structs.replace(intent("o1", size_hint_usd=150.0), strategy=LOSER))
    (trade,) = journal.read("trade")
    assert (trade.size_multiplier, trade.suggested_gross_usd) == (1.0, 150.0)


def test_applied_multipliers_scale_growing_hints_and_the_risk_core_still_caps(tmp_path: Path) -> None:
    config = _config(apply=True)
    executor, journal, store = _run(config, tmp_path, publishes=2)
    allocations = {(a.scope, a.name): a for a in store.latest_health().allocations}
    assert store.latest_health().allocator_applied
    # the stream lost on BTCUSDT too: the strategy's and the symbol's multipliers both apply
    multiplier = allocations[("strategy", LOSER)].proposed * allocations[("symbol", "BTCUSDT")].proposed
    assert multiplier < 1.0
    nav_cap = config.strategy.sizing.base_nav_pct * config.executor.starting_wallet_usd
    executor.process(msgspec.structs.replace(intent("small", size_hint_usd=190.0), strategy=LOSER))
    executor.process(msgspec.structs.replace(intent("huge", size_hint_usd=nav_cap * 10), strategy=LOSER))
    executor.process(msgspec.structs.replace(intent("close", side="sell", close_position=True, size_hint_usd=0.0),
                                             strategy=LOSER))
    trades = {t.intent_id: t for t in journal.read("trade")}
    assert trades["small"].size_multiplier == multiplier and trades["small"].size_hint_usd == 190.0
    assert trades["small"].suggested_gross_usd == pytest.approx(190.0 * multiplier)
    assert trades["small"].filled_qty > 0
    assert trades["huge"].suggested_gross_usd == pytest.approx(nav_cap)  # the risk core has the last word
    assert trades["huge"].binding_limit == "base_nav_pct"
    assert trades["close"].size_multiplier == 1.0, "a reducing intent is never scaled"
    assert executor.telemetry.metrics.registry.get_sample_value("executor_allocator_applied") == 1.0


def test_multipliers_come_back_after_a_restart(tmp_path: Path) -> None:
    config = _config(apply=True)
    executor, journal, store = _run(config, tmp_path, publishes=2)
    before = executor.telemetry.allocation.multipliers
    journal.close()
    store.close()
    again, _, _ = build_executor(config, make_paper_venue(config), tmp_path, with_positions=False)
    again.start()
    assert again.telemetry.allocation.multipliers == before
    order = msgspec.structs.replace(intent("next", size_hint_usd=150.0), strategy=LOSER)
    assert again.telemetry.allocation.multiplier(order) == before[("strategy", LOSER)] * before[("symbol", "BTCUSDT")]
