"""Shared builders for the executor tests (no tests here): config, a paper venue, an executor on tmp files,
and the ``live`` command as a real subprocess (to kill it) with the waits around it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import msgspec
import numpy as np

from router_tuner.config.loader import load_config
from router_tuner.config.models import ConfigBundle
from router_tuner.executor.journal import Journal, JournalError
from router_tuner.executor.loop import Executor
from router_tuner.executor.monitoring.metrics import ExecutorMetrics
from router_tuner.executor.monitoring.telemetry import Telemetry
from router_tuner.executor.records import Submission
from router_tuner.executor.store import ExecutorStore
from router_tuner.executor.venues import paper_venue, synthetic_tapes
from router_tuner.router.events import Intent
from router_tuner.router.policy import RouterPolicy
from router_tuner.router.venues.sim.venue import SimVenue
from tests.conftest import edit_config

T0_NS = 1_700_000_000_000_000_000
REPO = Path(__file__).resolve().parents[2]


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
    metrics = ExecutorMetrics(universe, config.executor.prometheus)
    telemetry = Telemetry(config=config.executor, store=store, metrics=metrics, contracts=universe)
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


def submit_unjournaled(executor: Executor, intent_id: str, *, qty: float = 0.005) -> Submission:
    """What a crash between an intent's submission record and its journal batch leaves in the store."""
    book = executor.venue.top_of_book("BTCUSDT")
    submission = Submission(
        intent=intent(intent_id, size_hint_usd=300.0), qty=qty, suggested_gross_usd=300.0, clamped_gross_usd=300.0,
        binding_limit=None, size_multiplier=1.0, quote="USDT", tick_size=0.1, qty_step=0.001,
        policy=asdict(executor.policy_for("BTCUSDT")), arrival_bid=book.bid, arrival_ask=book.ask,
        arrival_ts_ns=book.ts_ns, ts_ns=book.ts_ns,
        max_routes_in_flight=executor.config.executor.engine.max_routes_in_flight)
    executor.store.record_submission(submission, decision=None)
    return submission


def paper_config_dir(config_dir: Path, symbol: str = "BTCUSDT") -> Path:
    """Edit a copy of the defaults (the ``config_dir`` fixture) for paper runs of ``live`` on one symbol:
    an hour of synthetic market, no Prometheus endpoint, no imbalance gate, no hourly trade cap."""
    def executor(d: dict) -> None:
        d["instruments"] = {symbol: d["instruments"][symbol]}
        d["paper"]["synthetic"] = {symbol: d["paper"]["synthetic"][symbol]}
        d["paper"]["duration_s"] = 3600.0
        d["prometheus"]["enabled"] = False

    edit_config(config_dir, "executor.json", executor)
    edit_config(config_dir, "risk_limits.json", lambda d: d.update(max_trades_per_symbol_per_hour=100_000))
    edit_config(config_dir, "strategy_config.json", lambda d: d["screener"].update(require_imbalance_alignment=False))
    return config_dir


def start_live(tmp_path: Path, config_dir: Path, run: int, *extra: str,
               env: Mapping[str, str] | None = None) -> tuple[subprocess.Popen, Path, Path]:
    """``live`` as a subprocess on ``tmp_path``'s intents.jsonl, journal.sqlite and executor.sqlite.

    The same ``--venue`` in every run: the paper venue's trade ids carry the run start, so a restarted
    venue never reuses journaled ones. Returns the process and its stdout and stderr files.
    """
    out, err = tmp_path / f"out{run}.txt", tmp_path / f"err{run}.txt"
    args = [sys.executable, "-m", "router_tuner.cli.main", "live", "--venue", "binanceusdm", "--config",
            str(config_dir),
            "--intents", str(tmp_path / "intents.jsonl"), "--journal", str(tmp_path / "journal.sqlite"),
            "--store", str(tmp_path / "executor.sqlite"), "--idle-poll-s", "0.05", *extra]
    proc = subprocess.Popen(args, cwd=REPO, env={**os.environ, **(env or {}), "PYTHONPATH": str(REPO)},
                            stdout=out.open("wb"), stderr=err.open("wb"))
    return proc, out, err


def wait_for(what: str, condition: Callable[[], bool], proc: subprocess.Popen, timeout_s: float = 30.0) -> None:
    """Poll ``condition`` until true; fail when ``proc`` exits first or the time is up."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        if proc.poll() is not None:
            raise AssertionError(f"executor exited ({proc.returncode}) while waiting for {what}")
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def kill9(proc: subprocess.Popen) -> None:
    """SIGKILL ``proc`` and reap it (a test's ``finally`` may call it again harmlessly)."""
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


def journaled_trades(journal_path: Path) -> int:
    """Trade records a reader sees now; 0 before the writer created the journal and its schema."""
    try:
        with Journal(journal_path, readonly=True) as journal:
            return journal.count("trade")
    except (FileNotFoundError, JournalError):
        return 0
