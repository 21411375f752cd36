"""Paper ``live`` on the concurrent engine (``engine.max_routes_in_flight`` > 1), as a real process: routes
overlap on the replay, every intent ends in exactly one journal record, and a kill -9 with 20+ routes
working loses no fill and re-sends nothing."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from router_tuner.executor.journal import Journal, JournalError
from router_tuner.executor.store import ExecutorStore
from router_tuner.router.events import RouterEvent
from tests.conftest import edit_config
from tests.executor.test_executor_support import kill9, paper_config_dir, start_live, wait_for

T0_NS = 1_700_000_000_000_000_000


def concurrent_config_dir(config_dir: Path, *, in_flight: int, per_symbol: int) -> Path:
    """Two symbols of synthetic market, a large wallet (caps far away) and the engine's slots."""
    paper_config_dir(config_dir)

    def executor(d: dict) -> None:
        for symbol in ("ETHUSDT",):
            d["instruments"][symbol] = {"tick_size": 0.01, "qty_step": 0.001}
            d["paper"]["synthetic"][symbol] = {
                "mid0": 3000.0, "spread_ticks": 1, "volatility_bps_per_sqrt_s": 1.0, "quote_interval_ms": 100.0,
                "trade_rate_per_s": 5.0, "mean_trade_qty": 1.0, "touch_qty": 20.0, "sweep_decay_per_bps": 0.5,
                "touch_imbalance_sd": 1.0, "touch_imbalance_half_life_s": 5.0}
        d["starting_wallet_usd"] = 10_000_000.0
        d["engine"] = {"max_routes_in_flight": in_flight, "max_routes_per_symbol": per_symbol}

    edit_config(config_dir, "executor.json", executor)
    return config_dir


def write_intents(path: Path, count: int) -> list[str]:
    """Opening intents alternating symbols and legs (hedge mode: LONG buys, SHORT sells): none reduces."""
    ids = []
    with path.open("w") as out:
        for i in range(count):
            symbol = "BTCUSDT" if i % 2 == 0 else "ETHUSDT"
            long_leg = i % 4 < 2
            ids.append(f"c{i}")
            out.write(json.dumps({
                "intent_id": f"c{i}", "symbol": symbol, "side": "buy" if long_leg else "sell", "size_hint_usd": 300.0,
                "tier": "CORE", "strategy": "test", "reduce_only": False, "close_position": False,
                "position_side": "LONG" if long_leg else "SHORT", "is_stop": False, "ts_ns": T0_NS}) + "\n")
    return ids


def journal_records(path: Path) -> tuple[list[RouterEvent], list[str], list[str]]:
    """Router events, vetoed intent ids and trade-record intent ids in the journal now."""
    with Journal(path, readonly=True) as journal:
        return (list(journal.read("router")), [v.intent_id for v in journal.read("veto")],
                [t.intent_id for t in journal.read("trade")])


def most_at_once(events: list[RouterEvent]) -> int:
    """The largest number of routes working at one instant (arrival to finish, from the journal)."""
    edges = sorted([(e.arrival_ts_ns, 1) for e in events] + [(e.finished_ts_ns, -1) for e in events],
                   key=lambda edge: (edge[0], edge[1]))
    running = best = 0
    for _, step in edges:
        running += step
        best = max(best, running)
    return best


def in_flight_now(tmp_path: Path) -> int:
    """Submitted intents without a journaled outcome, as another process sees the files now."""
    try:
        with ExecutorStore(tmp_path / "executor.sqlite", readonly=True) as store:
            submitted = set(store.submissions())
        with Journal(tmp_path / "journal.sqlite", readonly=True) as journal:
            done = {t.intent_id for t in journal.read("trade")}
    except (FileNotFoundError, JournalError, sqlite3.Error):  # the writer has not created its files yet
        return 0
    return len(submitted - done)


def test_paper_live_keeps_many_routes_in_flight_and_journals_every_intent_once(config_dir: Path,
                                                                               tmp_path: Path) -> None:
    config = concurrent_config_dir(config_dir, in_flight=16, per_symbol=8)
    ids = write_intents(tmp_path / "intents.jsonl", 240)
    proc, _, err = start_live(tmp_path, config, 1)
    assert proc.wait(timeout=240) == 0, err.read_text()
    events, vetoed, trades = journal_records(tmp_path / "journal.sqlite")
    assert sorted(trades) == sorted(ids)  # one TradeRecord per intent
    assert sorted([e.intent_id for e in events] + vetoed) == sorted(ids)  # one outcome each
    assert len(events) >= 200, f"only {len(events)} routed: the caps should be far away"
    assert most_at_once(events) >= 8
    assert all(e.error is None or not e.error.startswith("clock stopped") for e in events)


def test_kill9_with_twenty_routes_working_loses_no_fill_and_resends_nothing(config_dir: Path,
                                                                          tmp_path: Path) -> None:
    config = concurrent_config_dir(config_dir, in_flight=32, per_symbol=16)
    ids = write_intents(tmp_path / "intents.jsonl", 400)
    proc, _, err1 = start_live(tmp_path, config, 1)
    try:
        wait_for("20 routes working", lambda: in_flight_now(tmp_path) >= 20, proc, timeout_s=120.0)
    finally:
        kill9(proc)
    cut_off = in_flight_now(tmp_path)
    assert cut_off >= 20, err1.read_text()
    before, _, done_before = journal_records(tmp_path / "journal.sqlite")
    proc2, out2, err2 = start_live(tmp_path, config, 2, "--json")
    assert proc2.wait(timeout=240) == 0, err2.read_text()  # the restart's position check passed
    started = next(json.loads(line) for line in out2.read_text().splitlines() if '"started"' in line)
    recovered = set(started["recovered_intent_ids"])
    assert len(recovered) == cut_off >= 20
    events, vetoed, trades = journal_records(tmp_path / "journal.sqlite")
    assert sorted(trades) == sorted(ids)  # each intent journaled exactly once, across both runs
    assert sorted([e.intent_id for e in events] + vetoed) == sorted(ids)
    assert {e.intent_id: e for e in events if e.intent_id in done_before} == \
        {e.intent_id: e for e in before}  # nothing journaled before the kill changed
    by_id = {e.intent_id: e for e in events}
    for intent_id in recovered:  # settled from the venue's account, never routed again
        assert by_id[intent_id].error is not None and "recovered_after_restart" in by_id[intent_id].error
    fills = [f for e in events for f in e.fills]
    assert len({f.trade_id for f in fills}) == len(fills)
    assert sum(len(by_id[i].fills) for i in recovered) > 0  # fills made before the kill were found, not lost
