"""Shared builders for the executor tests (no tests here): config, a paper venue, an executor on tmp files."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import msgspec
import numpy as np

from config.loader import load_config
from config.models import ConfigBundle
from executor.journal import Journal
from executor.loop import Executor
from executor.metrics import ExecutorMetrics
from executor.store import ExecutorStore
from executor.telemetry import Telemetry
from executor.venues import paper_venue, synthetic_tapes
from router.events import Intent
from router.policy import RouterPolicy
from router.venues.sim.venue import SimVenue

T0_NS = 1_700_000_000_000_000_000


def _replace(struct: Any, **changes: Any) -> Any:
    return msgspec.structs.replace(struct, **changes)


def executor_config(*, position_mode: str = "hedge", duration_s: float = 900.0, max_positions: int = 4,
                    trades_per_hour: int = 10_000, health_interval_s: float = 60.0,
                    veto_storm_count: int = 50, route_retries: int = 3) -> ConfigBundle:
    """Defaults with no imbalance gate (synthetic books are symmetric), a short paper market, port 0."""
    base = load_config()
    strategy = _replace(base.strategy, screener=_replace(base.strategy.screener, require_imbalance_alignment=False))
    risk = _replace(base.risk, max_concurrent_positions=max_positions, max_trades_per_symbol_per_hour=trades_per_hour)
    ex = base.executor
    executor = _replace(ex, paper=_replace(ex.paper, duration_s=duration_s),
                        prometheus=_replace(ex.prometheus, port=0),
                        health=_replace(ex.health, interval_s=health_interval_s),
                        alerts=_replace(ex.alerts, veto_storm_count=veto_storm_count),
                        route=_replace(ex.route, max_venue_retries=route_retries))
    router = _replace(base.router, position_mode=position_mode)
    return _replace(base, strategy=strategy, risk=risk, executor=executor, router=router)


def static_policies(config: ConfigBundle, **knobs: Any) -> Callable[[str], RouterPolicy]:
    """``policy_for``: the static policy of router.json, with ``knobs`` overridden (e.g. a short TTL)."""
    def policy_for(symbol: str) -> RouterPolicy:
        return replace(RouterPolicy.from_static(symbol, config.router), **knobs)
    return policy_for


def make_paper_venue(config: ConfigBundle) -> SimVenue:
    return paper_venue(config, synthetic_tapes(config, start_ns=T0_NS), name="sim-test")


def build_executor(config: ConfigBundle, venue: Any, tmp_path: Path, *, seed: int = 3,
                   policy_for: Callable[[str], RouterPolicy] | None = None,
                   with_positions: bool = True) -> tuple[Executor, Journal, ExecutorStore]:
    journal = Journal(tmp_path / "journal.sqlite")
    store = ExecutorStore(tmp_path / "executor.sqlite")
    universe = config.strategy.universe
    telemetry = Telemetry(config=config.executor, store=store, metrics=ExecutorMetrics(universe), contracts=universe)
    executor = Executor(config=config, venue=venue, journal=journal, store=store,
                        policy_for=policy_for or static_policies(config, maker_ttl_ms=500.0),
                        rng=np.random.default_rng(seed),
                        venue_positions=venue.positions if with_positions else None,
                        telemetry=telemetry, adaptive=None)
    return executor, journal, store


def intent(intent_id: str, *, symbol: str = "BTCUSDT", side: str = "buy", size_hint_usd: float = 500.0,
           position_side: str = "LONG", reduce_only: bool = False, close_position: bool = False,
           is_stop: bool = False, ts_ns: int = T0_NS) -> Intent:
    return Intent(intent_id=intent_id, symbol=symbol, side=side, size_hint_usd=size_hint_usd, tier="CORE",
                  strategy="test", reduce_only=reduce_only, close_position=close_position,
                  position_side=position_side, is_stop=is_stop, ts_ns=ts_ns)
