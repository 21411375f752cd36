"""Exchange-side protective stops in the executor (paper venue in process): placed when a leg opens, replaced
when its entry moves, cancelled when it closes; a trigger (while running or while down) is journaled
exactly once as its own intent with its realized PnL, and positions agree with the venue after a restart."""

from __future__ import annotations

import dataclasses
import json
import signal
from pathlib import Path

import msgspec
import pytest

from router_tuner.config.models import ConfigBundle
from router_tuner.executor.journal import Journal
from router_tuner.executor.protection import desired_triggers
from router_tuner.executor.store import ExecutorStore
from router_tuner.risk.portfolio import Leg
from router_tuner.risk.units import NS_PER_S
from router_tuner.router.venue import UnpricedFee
from router_tuner.router.venues.sim.venue import SimVenue
from tests.conftest import config_issues, edit_config
from tests.executor.test_executor_support import (
    T0_NS,
    build_executor,
    executor_config,
    intent,
    kill9,
    make_paper_venue,
    paper_config_dir,
    start_live,
    static_policies,
    wait_for,
)


def protected_config(stop_loss_bps: float | None, take_profit_bps: float | None,
                     position_mode: str = "hedge") -> ConfigBundle:
    config = executor_config(duration_s=3_600.0, health_interval_s=1.0, position_mode=position_mode)
    stops = msgspec.structs.replace(config.executor.protective_stops, stop_loss_bps=stop_loss_bps,
                                    take_profit_bps=take_profit_bps)
    return msgspec.structs.replace(config, executor=msgspec.structs.replace(config.executor, protective_stops=stops))


def start(config: ConfigBundle, venue: SimVenue, tmp_path: Path):
    executor, journal, store = build_executor(config, venue, tmp_path,
                                              policy_for=static_policies(config, taker_bias=1.0))
    executor.start()
    return executor, journal, store


def stops_by_kind(venue: SimVenue) -> dict[str, float]:
    return {s.kind: s.trigger_price for s in venue.open_stops("BTCUSDT")}


def test_desired_triggers_sit_outward_from_the_entry_on_the_tick() -> None:
    settings = protected_config(50.0, 100.0).executor.protective_stops
    assert desired_triggers(settings, Leg(qty=0.01, entry_price=60_000.05), 0.1) == {
        "stop_market": 59_700.0, "take_profit_market": 60_600.1}
    assert desired_triggers(settings, Leg(qty=-0.01, entry_price=60_000.05), 0.1) == {
        "stop_market": 60_300.1, "take_profit_market": 59_400.0}
    assert desired_triggers(settings, None, 0.1) == {}
    off = protected_config(None, None).executor.protective_stops
    assert not off.enabled and desired_triggers(off, Leg(qty=1.0, entry_price=10.0), 0.1) == {}


def test_stops_follow_the_leg_placed_replaced_and_cancelled(tmp_path: Path) -> None:
    config = protected_config(50.0, 50.0)
    venue = make_paper_venue(config)
    executor, _journal, store = start(config, venue, tmp_path)
    executor.process(intent("open", size_hint_usd=300.0))
    leg = executor.portfolio.legs[("BTCUSDT", "LONG")]
    first = stops_by_kind(venue)
    assert first == desired_triggers(config.executor.protective_stops, leg, 0.1) and len(first) == 2
    first_ids = {s.client_order_id for s in venue.open_stops(None)}
    assert all(cid.startswith(("psl-BTCUSDT-L-", "ptp-BTCUSDT-L-")) for cid in first_ids)

    venue.clock.sleep_until(venue.clock.now_ns() + 20 * NS_PER_S)  # the price moves: the next add moves the entry
    executor.process(intent("add", size_hint_usd=300.0))
    leg = executor.portfolio.legs[("BTCUSDT", "LONG")]
    moved = stops_by_kind(venue)
    assert moved == desired_triggers(config.executor.protective_stops, leg, 0.1) and moved != first
    assert all(venue.fetch_stop("BTCUSDT", cid).status == "canceled" for cid in first_ids)

    ids = {s.client_order_id for s in venue.open_stops(None)}
    executor.process(intent("trim", side="sell", size_hint_usd=100.0, reduce_only=True))
    assert {s.client_order_id for s in venue.open_stops(None)} == ids  # a reduce keeps the entry: same stops

    executor.process(intent("close", side="sell", size_hint_usd=10_000.0, close_position=True))
    assert ("BTCUSDT", "LONG") not in executor.portfolio.legs
    assert venue.open_stops(None) == () and store.working_stops() == []


def test_a_stop_triggering_while_running_is_journaled_once_with_its_pnl(tmp_path: Path) -> None:
    config = protected_config(2.0, 2.0)  # tight: the synthetic market reaches one side within a minute
    venue = make_paper_venue(config)
    executor, journal, store = start(config, venue, tmp_path)
    executor.process(intent("open", size_hint_usd=300.0))
    (opened,) = journal.read("router")
    entry = executor.portfolio.legs[("BTCUSDT", "LONG")].entry_price
    venue.clock.sleep_until(venue.clock.now_ns() + 60 * NS_PER_S)
    assert venue.positions("BTCUSDT")["LONG"] == 0.0  # the venue closed it while we were not looking
    executor.publish_if_due()  # the health timer polls the stops

    stop_event = next(e for e in journal.read("router") if e.intent_id != "open")
    assert stop_event.intent_id.startswith(("psl-", "ptp-")) and stop_event.filled_qty == opened.filled_qty
    fill = stop_event.fills[0]
    expected = (fill.price - entry) * fill.qty - sum(f.fee_usd for f in stop_event.fills)
    assert stop_event.realized_pnl_usd == pytest.approx(expected)
    trade = next(t for t in journal.read("trade") if t.intent_id == stop_event.intent_id)
    assert trade.strategy == "protective_stop" and [lot.opening_intent_id for lot in trade.closed_lots] == ["open"]
    assert executor.portfolio.legs == {} and executor.portfolio.last_stop_ns["BTCUSDT"] == fill.ts_ns
    assert venue.open_stops(None) == () and store.working_stops() == []  # the sibling was cancelled
    executor.publish_now()
    executor.publish_if_due()
    assert journal.count("router") == 2  # polled again: nothing journaled twice


@pytest.mark.parametrize(("mode", "leg"), [("hedge", "LONG"), ("one_way", "BOTH")])
def test_a_stop_triggering_while_down_is_journaled_once_at_restart(tmp_path: Path, mode: str, leg: str) -> None:
    config = protected_config(2.0, None, position_mode=mode)
    venue = make_paper_venue(config)  # the venue outlives the executor, as an exchange does
    executor, journal, store = start(config, venue, tmp_path)
    executor.process(intent("open", size_hint_usd=300.0, position_side=leg))
    (working,) = venue.open_stops(None)
    assert working.client_order_id == f"psl-BTCUSDT-{leg[0]}-1" and working.position_side == leg
    journal.close()
    store.close()  # the executor is gone; the stop works on
    venue.clock.sleep_until(venue.clock.now_ns() + 300 * NS_PER_S)
    assert venue.fetch_stop("BTCUSDT", working.client_order_id).status == "triggered"

    for restart in range(2):
        executor, journal, store = start(config, venue, tmp_path)  # positions are checked against the venue
        ids = [e.intent_id for e in journal.read("router")]
        assert ids == ["open", working.client_order_id], f"restart {restart}"
        assert executor.portfolio.legs == {} and store.working_stops() == []
        journal.close()
        store.close()


def test_a_crash_between_the_stops_submission_and_its_journal_batch_is_finished_not_probed(tmp_path: Path) -> None:
    config = protected_config(2.0, None)
    venue = make_paper_venue(config)
    executor, journal, store = start(config, venue, tmp_path)
    executor.process(intent("open", size_hint_usd=300.0))
    (working,) = venue.open_stops(None)
    venue.clock.sleep_until(venue.clock.now_ns() + 300 * NS_PER_S)
    (record,) = store.working_stops()
    state = venue.fetch_stop("BTCUSDT", record.client_order_id)
    _, _, submission = executor.protection.outcome(record, state, policy=executor.policy_for("BTCUSDT"),
                                                   contract=venue.contract("BTCUSDT"), journal_intents=1)
    store.record_submission(submission, decision=None)  # ... and the process died before journaling
    journal.close()
    store.close()
    executor, journal, store = start(config, venue, tmp_path)
    (stop_event,) = [e for e in journal.read("router") if e.intent_id == working.client_order_id]
    assert stop_event.error is None and stop_event.filled_qty > 0  # the stop's fills, not a "recovered" probe
    assert store.working_stops() == [] and executor.portfolio.legs == {}


def test_a_triggered_stop_with_a_fee_not_priced_in_the_quote_is_journaled_flagged(tmp_path: Path) -> None:
    """A stop's fill whose fee the venue could not price in the quote (``StopState.unpriced_fees``, the live venue's
    BNB fee on a USDC symbol) counts, and the stop's event says so: the tuner does not learn it."""
    config = protected_config(2.0, None)
    venue = make_paper_venue(config)
    executor, journal, store = start(config, venue, tmp_path)
    executor.process(intent("open", size_hint_usd=300.0))
    venue.clock.sleep_until(venue.clock.now_ns() + 300 * NS_PER_S)
    (record,) = store.working_stops()
    state = venue.fetch_stop("BTCUSDT", record.client_order_id)
    (fill,) = state.fills
    fee = UnpricedFee(trade_id=fill.trade_id, amount=0.0002, currency="BNB", quote="USDT", reason="test")
    _, event, _ = executor.protection.outcome(record, dataclasses.replace(state, unpriced_fees=(fee,)),
                                              policy=executor.policy_for("BTCUSDT"),
                                              contract=venue.contract("BTCUSDT"), journal_intents=1)
    assert event.fills == state.fills and event.filled_qty == fill.qty
    assert event.error == f"fee_unpriced({fee.describe(record.client_order_id)})"
    journal.close()
    store.close()


def test_stops_off_by_default_place_nothing(tmp_path: Path) -> None:
    config = protected_config(None, None)
    venue = make_paper_venue(config)
    executor, _journal, store = start(config, venue, tmp_path)
    executor.process(intent("open", size_hint_usd=300.0))
    assert venue.open_stops(None) == () and store.working_stops() == []
    with ExecutorStore(tmp_path / "other.sqlite") as other:
        assert other.working_stops() == [] and other.next_stop_seq() == 1
    with Journal(tmp_path / "journal.sqlite", readonly=True) as reader:
        assert reader.count("router") == 1


def test_paper_kill9_after_a_stop_triggered_unseen_then_restart_journals_it_once(config_dir: Path,
                                                                                 tmp_path: Path) -> None:
    """The paper venue fills the stop while the executor idles (its health timer, the stop poll, is an hour
    away); kill -9 before it notices; the paper account kept the stop's fills, the restart journals them."""
    paper_config_dir(config_dir)

    def executor_json(d: dict) -> None:
        d["protective_stops"].update(stop_loss_bps=2.0)
        d["health"]["interval_s"] = 3600.0

    edit_config(config_dir, "executor.json", executor_json)
    edit_config(config_dir, "router.json", lambda d: d["static_policy"].update(taker_bias=1.0))
    (tmp_path / "intents.jsonl").write_bytes(msgspec.json.encode(intent("o1", size_hint_usd=300.0)) + b"\n")
    account = tmp_path / "executor.paper.json"

    def account_stops() -> list[dict]:
        try:
            return json.loads(account.read_text()).get("stops", [])
        except (FileNotFoundError, json.JSONDecodeError):
            return []

    proc, _, err = start_live(tmp_path, config_dir, 1, "--follow")
    try:
        wait_for("the stop triggered at the paper venue",
                 lambda: any(s["status"] == "triggered" for s in account_stops()), proc, 60.0)
    finally:
        kill9(proc)
    assert proc.returncode == -signal.SIGKILL, err.read_text()
    (triggered,) = [s for s in account_stops() if s["status"] == "triggered"]
    with Journal(tmp_path / "journal.sqlite", readonly=True) as journal:
        assert [e.intent_id for e in journal.read("router")] == ["o1"]  # not noticed before the kill

    for run in (2, 3):
        proc, out, err = start_live(tmp_path, config_dir, run)
        try:
            assert proc.wait(timeout=60) == 0, err.read_text()
        finally:
            kill9(proc)
        assert "positions checked against the venue" in out.read_text()
        with Journal(tmp_path / "journal.sqlite", readonly=True) as journal:
            events = {e.intent_id: e for e in journal.read("router")}
        assert sorted(events) == ["o1", triggered["client_order_id"]], f"run {run}"
    stop_event = events[triggered["client_order_id"]]
    assert stop_event.filled_qty == events["o1"].filled_qty
    assert [f.trade_id for f in stop_event.fills] == [f["trade_id"] for f in triggered["fills"]]
    assert stop_event.realized_pnl_usd == pytest.approx(
        (stop_event.avg_price - events["o1"].avg_price) * stop_event.filled_qty
        - sum(f.fee_usd for f in stop_event.fills))


def test_stops_on_a_spot_instrument_are_refused_at_load(config_dir: Path) -> None:
    def strategy(d: dict) -> None:
        d["universe"]["XRPUSDT"] = {**d["universe"]["BTCUSDT_SPOT"], "venue_symbol": "XRPUSDT"}

    def executor_json(d: dict) -> None:  # an executor trades one market: the spot pair alone, on the spot exchange
        d["instruments"] = {"XRPUSDT": {"tick_size": 0.0001, "qty_step": 0.1}}
        d["paper"]["synthetic"] = {}
        d["live"]["exchange_id"] = "binance"
        d["protective_stops"]["stop_loss_bps"] = 50.0

    edit_config(config_dir, "strategy_config.json", strategy)
    edit_config(config_dir, "executor.json", executor_json)
    assert config_issues(config_dir) == [
        "executor.json: $.protective_stops: closePosition stops exist on futures only, and XRPUSDT is spot: set "
        "both distances to null or trade futures"]


def test_a_stop_that_closed_fills_of_routes_still_in_flight_waits_for_them(config_dir: Path, tmp_path: Path,
                                                                          capsys: pytest.CaptureFixture[str]) -> None:
    """A 1 bp stop closes the venue's whole leg, fills of the leg's routes still in flight included; journaled when
    another route of the leg landed, before them, it flipped the leg in the books and paper `live` stopped in
    "unexpected ValueError: fill … would flip the LONG leg of BTCUSDT", exit 1. It is journaled once they land."""
    from router_tuner.cli.main import main

    edit_config(config_dir, "strategy_config.json", lambda d: d["screener"].update(require_imbalance_alignment=False))
    edit_config(config_dir, "executor.json", lambda d: (d["protective_stops"].update(stop_loss_bps=1.0),
                                                        d["prometheus"].update(enabled=False)))
    lines = []
    for k in range(30):  # four routes a symbol at once, both legs of both symbols
        side, leg = ("sell", "SHORT") if k % 2 else ("buy", "LONG")
        lines.append(msgspec.json.encode(intent(f"k{k}", symbol="BTCUSDT" if k % 4 < 2 else "ETHUSDT", side=side,
                                                position_side=leg, size_hint_usd=300.0, ts_ns=T0_NS + k * NS_PER_S)))
    (tmp_path / "intents.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    (tmp_path / "none.jsonl").write_bytes(b"")
    files = ["--journal", str(tmp_path / "j.sqlite"), "--store", str(tmp_path / "s.sqlite"), "--idle-poll-s", "0.05"]
    for intents in ("intents.jsonl", "none.jsonl"):  # the restart reconciles the books with the paper account
        assert main(["live", "--venue", "binanceusdm", "--config", str(config_dir), "--intents",
                     str(tmp_path / intents), *files]) == 0, capsys.readouterr().err
        assert "positions checked against the venue" in capsys.readouterr().out
    with Journal(tmp_path / "j.sqlite", readonly=True) as journal:
        routed = list(journal.read("router"))
        vetoes = list(journal.read("veto"))
    stops = [e for e in routed if e.intent_id.startswith("psl-")]
    assert stops and all(e.close_position and e.filled_qty > 0 for e in stops)
    # no new exposure on a stopped symbol from its stop's fill until its cooldown ends, though the stop was journaled
    # only once its leg's routes landed (opening intents admitted meanwhile were routed)
    cooldown_ns = 900 * NS_PER_S
    for stop in stops:
        stopped_ns = max(f.ts_ns for f in stop.fills)
        opened = [e.intent_id for e in routed if e.symbol == stop.symbol and not e.intent_id.startswith("p")
                  and (e.side == "buy") == (e.position_side == "LONG")
                  and stopped_ns < e.arrival_ts_ns < stopped_ns + cooldown_ns]
        assert opened == [], f"{stop.intent_id} stopped {stop.symbol} at {stopped_ns}: then opened {opened}"
    assert any(v.reasons[0].code == "cooldown_after_stop" for v in vetoes)
