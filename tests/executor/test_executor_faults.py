"""A long random run against a venue that times out, rate-limits, rejects post-only orders, disconnects and
loses cancel answers: no fill lost, no order sent twice, positions equal the sum of fills, the journal
equals what happened at the venue. A halted executor is restarted on the same journal, store and venue."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest

from router_tuner.executor.loop import Executor, ExecutorHalted
from router_tuner.executor.reconcile import ReconcileError
from router_tuner.router.events import Intent
from tests.executor.test_executor_support import T0_NS, build_executor, executor_config, make_paper_venue
from tests.fakes.faulty_venue import FaultRates, FaultyVenue

RATES = FaultRates(rate_limit=0.04, timeout_before=0.03, timeout_after=0.04, post_only_reject=0.08,
                   disconnect=0.03, cancel_answer_lost=0.06)
HARSH = FaultRates(rate_limit=0.1, timeout_before=0.05, timeout_after=0.1, post_only_reject=0.1, disconnect=0.2,
                   cancel_answer_lost=0.2)
"""With one venue retry, routes end in errors that leave orders resting, and settling them can fail too:
this exercises settlement after a route error, the halt, and the restart that recovers in-flight intents."""
STALE = FaultRates(rate_limit=0.02, timeout_before=0.02, timeout_after=0.02, post_only_reject=0.05, disconnect=0.02,
                   cancel_answer_lost=0.05, stale_state=0.3, fetch_timeout=0.1)
"""Order fetches answered with an earlier state (fewer fills, still open) a third of the time, or timing out."""
SYMBOLS = ("BTCUSDT", "ETHUSDT")


def random_intents(rng: np.random.Generator, n: int, position_mode: str) -> list[Intent]:
    intents = []
    for k in range(n):
        side = "buy" if rng.random() < 0.5 else "sell"
        if position_mode == "hedge":
            position_side = "LONG" if rng.random() < 0.5 else "SHORT"
            reducing = (position_side == "LONG") == (side == "sell")
            close = reducing and rng.random() < 0.3
            reduce_only = reducing and not close
        else:
            position_side = "BOTH"
            close = False
            reduce_only = bool(rng.random() < 0.2)
        intents.append(Intent(intent_id=f"r{k}", symbol=SYMBOLS[int(rng.integers(2))], side=side,
                              size_hint_usd=float(rng.uniform(120.0, 600.0)), tier="CORE", strategy="random",
                              reduce_only=reduce_only, close_position=close, position_side=position_side,
                              is_stop=False, ts_ns=T0_NS + k))
    return intents


def _started(executor: Executor, attempts: int = 20) -> None:
    for _ in range(attempts):
        try:
            executor.start()
            return
        except ReconcileError as exc:
            if "positions differ" in str(exc) or "finished intent" in str(exc):
                raise
    raise AssertionError(f"start did not reconcile in {attempts} attempts")


@pytest.mark.parametrize(("position_mode", "seed", "n_intents", "rates", "route_retries"), [
    ("hedge", 11, 300, RATES, 3), ("one_way", 12, 200, RATES, 3), ("hedge", 13, 200, HARSH, 1),
    ("one_way", 14, 200, HARSH, 1), ("hedge", 15, 200, STALE, 3), ("one_way", 16, 200, STALE, 1)])
def test_long_random_run_under_faults_loses_nothing(tmp_path: Path, position_mode: str, seed: int, n_intents: int,
                                                     rates: FaultRates, route_retries: int) -> None:
    config = executor_config(position_mode=position_mode, duration_s=4 * 3600.0, max_positions=4,
                             route_retries=route_retries)
    inner = make_paper_venue(config)
    venue = FaultyVenue(inner, rates, seed=seed)
    rng = np.random.default_rng(seed)
    executor, journal, store = build_executor(config, venue, tmp_path, seed=seed)
    _started(executor)
    restarts = 0
    for intent in random_intents(rng, n_intents, position_mode):
        try:
            executor.process(intent)
        except ExecutorHalted:
            restarts += 1
            journal.close()
            store.close()
            executor, journal, store = build_executor(config, venue, tmp_path, seed=seed + restarts)
            _started(executor)
            executor.process(intent)  # already settled and journaled by start: skipped, not re-sent
    venue.enabled = False

    # no order sent twice
    assert len(venue.sent) == len(set(venue.sent))
    # no fill lost, none counted twice: the journal's fills are exactly the venue's fills
    venue_fills = {f.trade_id: f for cid in venue.sent
                   for f in inner.fetch_order(venue.sent_symbol[cid], cid).fills}
    journal_fills = [f for e in journal.read("router") for f in e.fills]
    assert len(journal_fills) == len({f.trade_id for f in journal_fills})
    assert {f.trade_id: f for f in journal_fills} == venue_fills
    # nothing left resting
    assert inner.open_orders(None) == ()
    # positions: executor == venue == sum of journaled fills
    submissions = store.submissions()
    from_fills: dict[tuple[str, str], float] = defaultdict(float)
    for event in journal.read("router"):
        side = submissions[event.intent_id].intent.position_side
        for fill in event.fills:
            from_fills[(event.symbol, side)] += fill.qty if event.side == "buy" else -fill.qty
    for symbol in SYMBOLS:
        for side, qty in inner.positions(symbol).items():
            assert qty == pytest.approx(from_fills.get((symbol, side), 0.0), abs=1e-9)
            leg = executor.portfolio.legs.get((symbol, side))
            assert qty == pytest.approx(0.0 if leg is None else leg.qty, abs=1e-9)
    # the journal equals what happened: one outcome per intent, orders only for routed intents
    trades = [t.intent_id for t in journal.read("trade")]
    assert sorted(trades) == sorted(f"r{k}" for k in range(n_intents))
    routed = {e.intent_id for e in journal.read("router")}
    vetoed = {v.intent.intent_id for v in journal.read("veto")}
    assert routed.isdisjoint(vetoed) and routed | vetoed == set(trades)
    assert {cid.rsplit("-", 1)[0] for cid in venue.sent} <= routed
    for event in journal.read("router"):
        assert all(f.client_order_id.rsplit("-", 1)[0] == event.intent_id for f in event.fills)
    # the run exercised every fault and real fills
    assert set(venue.faults) == {fault for fault, rate in asdict(rates).items() if rate > 0}
    assert len(journal_fills) > 50
    if rates is HARSH:
        errors = [e.error or "" for e in journal.read("router")]
        assert restarts > 0 and any("recovered_after_restart" in e for e in errors)
        assert any("settled:" in e for e in errors)
