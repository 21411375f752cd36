"""Restart reconciliation refuses what it must not trade through, and leaves foreign orders alone; a journal
and store that are not each other's (a lost, emptied or older journal, a deleted -wal, a deleted store) are
refused with exit 2 instead of fabricating "recovered" history."""

from __future__ import annotations

import re
import signal
import time
from pathlib import Path

import msgspec
import pytest

from router_tuner.cli.main import main as cli_main
from router_tuner.executor.journal import Journal
from router_tuner.executor.reconcile import JournalStoreMismatch, ReconcileError, replay_journal
from router_tuner.router.events import Fill, RouterEvent
from router_tuner.router.venue import OrderRequest
from tests.executor.test_executor_support import (
    build_executor,
    executor_config,
    intent,
    journaled_trades,
    kill9,
    make_paper_venue,
    paper_config_dir,
    start_live,
    submit_unjournaled,
    wait_for,
)


def _restart(config, venue, tmp_path: Path, journal, store):
    journal.close()
    store.close()
    return build_executor(config, venue, tmp_path)


def _started(tmp_path: Path):
    """A started executor on the paper venue with the test config, and its parts."""
    config = executor_config()
    venue = make_paper_venue(config)
    executor, journal, store = build_executor(config, venue, tmp_path)
    executor.start()
    return config, venue, executor, journal, store


def _manual(venue, cid: str, *, price: float | None) -> None:
    venue.place_order(OrderRequest(client_order_id=cid, symbol="BTCUSDT", side="buy", qty=0.002,
                                   order_type="limit" if price is not None else "market", price=price,
                                   post_only=price is not None, reduce_only=False, close_position=False,
                                   position_side="LONG", time_in_force="GTC" if price is not None else "IOC"))


def test_restart_refuses_positions_the_journal_does_not_explain(tmp_path: Path) -> None:
    config, venue, executor, journal, store = _started(tmp_path)
    executor.process(intent("a1", size_hint_usd=300.0))
    _manual(venue, "manual-1", price=None)  # someone traded on the account behind our back
    executor, journal, store = _restart(config, venue, tmp_path, journal, store)
    with pytest.raises(ReconcileError, match=r"positions differ.*BTCUSDT LONG"):
        executor.start()
    with pytest.raises(RuntimeError, match="start"):
        executor.process(intent("a2"))


def test_foreign_open_orders_are_reported_and_left_alone(tmp_path: Path) -> None:
    config, venue, executor, journal, store = _started(tmp_path)
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


# --- the journal must cover the store: only the intent in flight at a crash may be unjournaled ---------------

def test_the_one_intent_in_flight_at_a_crash_is_recovered(tmp_path: Path) -> None:
    config, venue, executor, journal, store = _started(tmp_path)
    executor.process(intent("a1", size_hint_usd=300.0))
    submit_unjournaled(executor, "a2")
    executor, journal, store = _restart(config, venue, tmp_path, journal, store)
    report = executor.start()
    assert report.recovered_intent_ids == ("a2",)
    assert report.done_intents == 1  # a1 only: a2 was counted in both ("2 intents already done, 1 … recovered")


def test_a_journal_older_than_the_store_is_refused_naming_both_files(tmp_path: Path) -> None:
    """More intents lack their outcome than routes can work at once: the journal is older than the store."""
    config, venue, executor, journal, store = _started(tmp_path)
    in_flight = config.executor.engine.max_routes_in_flight
    assert in_flight > 1  # the concurrent engine's default; the sequential case is below
    executor.process(intent("a1", size_hint_usd=300.0))
    journal.close()
    backup = (tmp_path / "journal.sqlite").read_bytes()  # a cleanly closed journal: no -wal file
    executor, journal, store = _restart(config, venue, tmp_path, journal, store)
    executor.start()
    for k in range(2, in_flight + 2):
        executor.process(intent(f"a{k}", size_hint_usd=300.0))
    submit_unjournaled(executor, f"a{in_flight + 2}")  # may be in flight; the ones before it may not
    journal.close()
    (tmp_path / "journal.sqlite").write_bytes(backup)
    executor, journal, store = _restart(config, venue, tmp_path, journal, store)
    with pytest.raises(JournalStoreMismatch) as refused:
        executor.start()
    message = str(refused.value)
    assert f"journal {tmp_path / 'journal.sqlite'} and executor store {tmp_path / 'executor.sqlite'}" in message
    assert (f"{in_flight + 1} submitted intents without an outcome in the journal (a2, a3, a4, ...), at most "
            f"{in_flight} may be in flight") in message
    assert journal.count("router") == 1  # nothing recovered, nothing journaled


def _with_slots(in_flight: int):
    base = executor_config()
    engine = msgspec.structs.replace(base.executor.engine, max_routes_in_flight=in_flight,
                                     max_routes_per_symbol=min(in_flight, base.executor.engine.max_routes_per_symbol))
    return msgspec.structs.replace(base, executor=msgspec.structs.replace(base.executor, engine=engine))


def _unjournaled_then_restarted(config, workdir: Path, count: int):
    """``count`` submissions a crash left without their outcome, and a fresh executor on the same files."""
    workdir.mkdir()
    venue = make_paper_venue(config)
    executor, journal, store = build_executor(config, venue, workdir)
    executor.start()
    for k in range(count):
        submit_unjournaled(executor, f"a{k}")
    return _restart(config, venue, workdir, journal, store)


@pytest.mark.parametrize("in_flight", [1, executor_config().executor.engine.max_routes_in_flight])
def test_more_unjournaled_submissions_than_routes_in_flight_are_more_than_a_crash_leaves(tmp_path: Path,
                                                                                          in_flight: int) -> None:
    """A crash leaves at most ``max_routes_in_flight`` intents without their outcome: that many are recovered,
    one more is refused (1 is the sequential engine's case of two, the concurrent default's of N + 1)."""
    config = _with_slots(in_flight)
    executor, _, _ = _unjournaled_then_restarted(config, tmp_path / "at_limit", in_flight)
    assert executor.start().recovered_intent_ids == tuple(f"a{k}" for k in range(in_flight))
    executor, journal, _ = _unjournaled_then_restarted(config, tmp_path / "over_limit", in_flight + 1)
    shown = ", ".join(f"a{k}" for k in range(min(3, in_flight + 1))) + (", ..." if in_flight + 1 > 3 else "")
    with pytest.raises(JournalStoreMismatch, match=re.escape(
            f"{in_flight + 1} submitted intents without an outcome in the journal ({shown}), at most {in_flight} "
            "may be in flight")):
        executor.start()
    assert journal.count("router") == 0  # nothing recovered, nothing journaled


def test_routes_cut_off_by_a_crash_are_recovered_after_the_limit_is_lowered(tmp_path: Path) -> None:
    """An operator lowering engine.max_routes_in_flight (8 to 1) before restarting got the crash's routes refused as
    "the journal is behind the store … restore the journal", though journal and store were fine: the limit the
    routes were submitted under counts."""
    wide = executor_config()
    venue = make_paper_venue(wide)
    executor, journal, store = build_executor(wide, venue, tmp_path)
    executor.start()
    executor.process(intent("routed", size_hint_usd=300.0))  # the executor's own submissions record the limit
    assert store.submissions()["routed"].max_routes_in_flight == wide.executor.engine.max_routes_in_flight == 8
    for k in range(3):
        submit_unjournaled(executor, f"a{k}")
    executor, journal, store = _restart(_with_slots(1), venue, tmp_path, journal, store)
    assert executor.start().recovered_intent_ids == ("a0", "a1", "a2")
    assert journal.count("router") == 4


def _live(config_dir: Path, tmp_path: Path) -> int:
    return cli_main(["live", "--venue", "binanceusdm", "--config", str(config_dir), "--intents",
                     str(tmp_path / "intents.jsonl"), "--journal", str(tmp_path / "journal.sqlite"), "--store",
                     str(tmp_path / "executor.sqlite"), "--idle-poll-s", "0.05"])


def _round_trips(path: Path, count: int) -> None:
    """Buys each closed by the next intent, so a paper restart finds the account flat (see issue 13 item 2)."""
    with path.open("wb") as handle:
        for k in range(count):
            opening = intent(f"o{k}", size_hint_usd=300.0, ts_ns=time.time_ns())
            closing = intent(f"c{k}", side="sell", close_position=True, size_hint_usd=0.0, ts_ns=time.time_ns())
            handle.write(msgspec.json.encode(opening) + b"\n" + msgspec.json.encode(closing) + b"\n")


@pytest.mark.parametrize("damage", ["deleted", "emptied", "store_deleted"])
def test_live_refuses_a_lost_journal_or_store_with_exit_2(config_dir: Path, tmp_path: Path, damage: str,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    paper_config_dir(config_dir)
    _round_trips(tmp_path / "intents.jsonl", 5)
    assert _live(config_dir, tmp_path) == 0
    assert _live(config_dir, tmp_path) == 0  # a healthy restart: everything already journaled
    capsys.readouterr()
    journal_path = tmp_path / "journal.sqlite"
    if damage == "deleted":
        journal_path.unlink()
    elif damage == "emptied":
        journal_path.unlink()
        Journal(journal_path).close()
    else:
        (tmp_path / "executor.sqlite").unlink()
    assert _live(config_dir, tmp_path) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith(f"router-tuner live: refused: journal {journal_path} and executor store "
                          f"{tmp_path / 'executor.sqlite'} do not belong together: ")
    assert err.endswith(f"or move both files away to start afresh (paper mode: with the paper account "
                        f"{tmp_path / 'executor.paper.json'})") and "Nothing was sent" in err
    if damage == "store_deleted":
        assert "journaled router event o0 has no submission record in the store" in err
    else:
        assert "the store holds 10 submitted intents without an outcome in the journal (o0, c0, o1, ...)" in err
        with Journal(journal_path, readonly=True) as journal:
            assert journal.count("trade") == 0  # no "recovered" history fabricated


def test_a_deleted_wal_after_sigkill_is_refused_not_recovered(config_dir: Path, tmp_path: Path) -> None:
    paper_config_dir(config_dir)
    _round_trips(tmp_path / "intents.jsonl", 10)
    journal_path = tmp_path / "journal.sqlite"
    proc, _, err1 = start_live(tmp_path, config_dir, 1, "--follow")
    try:
        wait_for("intents journaled", lambda: journaled_trades(journal_path) == 20, proc)
    finally:
        kill9(proc)
    assert proc.returncode == -signal.SIGKILL, err1.read_text()
    wal = journal_path.with_name(journal_path.name + "-wal")
    assert wal.stat().st_size > 0  # the kill left the journal's recent batches in its WAL
    wal.unlink()
    proc2, _, err2 = start_live(tmp_path, config_dir, 2)
    try:
        assert proc2.wait(timeout=30) == 2, err2.read_text()
    finally:
        kill9(proc2)
    text = err2.read_text()
    assert "live: refused: journal" in text and "its -wal file deleted after a kill" in text
    assert "Traceback" not in text


def test_with_routes_in_flight_a_journal_that_lost_its_last_records_is_refused(tmp_path: Path) -> None:
    """Four routes may work at once, so two unjournaled submissions could be a crash; but the later one was
    submitted when the journal held three intents, and the restored journal holds two: records were lost."""
    base = executor_config()
    config = msgspec.structs.replace(base, executor=msgspec.structs.replace(
        base.executor, engine=msgspec.structs.replace(base.executor.engine, max_routes_in_flight=4)))
    venue = make_paper_venue(config)
    executor, journal, store = build_executor(config, venue, tmp_path)
    executor.start()
    for k in (1, 2):
        executor.process(intent(f"a{k}", size_hint_usd=300.0))
    journal.close()
    backup = (tmp_path / "journal.sqlite").read_bytes()  # a cleanly closed journal: no -wal file
    executor, journal, store = _restart(config, venue, tmp_path, journal, store)
    executor.start()
    for k in (3, 4):
        executor.process(intent(f"a{k}", size_hint_usd=300.0))
    assert [s.journal_intents for s in store.submissions().values()] == [0, 1, 2, 3]
    journal.close()
    (tmp_path / "journal.sqlite").write_bytes(backup)
    executor, journal, store = _restart(config, venue, tmp_path, journal, store)
    with pytest.raises(JournalStoreMismatch, match=r"the journal holds 2 intents, but it held 3 when intent a4 was "
                                                   r"submitted: it lost records"):
        executor.start()
    assert journal.count("router") == 2  # nothing recovered, nothing journaled
