"""Kill the executor process (SIGKILL, a real subprocess) while an order rests at the venue, fill it while
the process is dead, restart: the in-flight order is found by client order id and settled, not re-sent;
positions match the venue; every event committed before the kill is still there; a planted API key
never appears in logs, journal, store or the scraped metrics. In paper mode the paper account (positions,
recent orders) survives kills the same way."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import time
import urllib.request
from decimal import Decimal
from pathlib import Path

import msgspec
import pytest

from router_tuner.config.loader import DEFAULTS_DIR
from router_tuner.executor.journal import Journal
from router_tuner.executor.paper_account import PaperAccount, PaperAccountError
from router_tuner.executor.store import ExecutorStore
from router_tuner.executor.venues import paper_account, paper_venue, synthetic_tapes
from router_tuner.router.codec import to_json
from router_tuner.router.routing.order import client_order_id
from router_tuner.router.venue import (
    InvalidOrder,
    OrderNotFound,
    OrderRequest,
    PostOnlyRejected,
    StopRequest,
    StopWouldTrigger,
)
from tests.conftest import edit_config
from tests.executor.test_executor_support import (
    T0_NS,
    build_executor,
    executor_config,
    intent,
    journaled_trades,
    kill9,
    paper_config_dir,
    start_live,
    submit_unjournaled,
    wait_for,
)
from tests.fakes.binance_usdm import FakeBinanceUsdm, Stall

API_KEY = "PLANTEDkeyQ7x2Lk9Vw3Rt5Yu8Io0Pa1Sd4Fg6Hj"
API_SECRET = "PLANTEDsecretM3n5B7v9C1x3Z5l7K9j1H3g5F7d9S1a3"
INTENTS = 4
QTY = "0.003"
ENV = {"RT_TEST_KEY": API_KEY, "RT_TEST_SECRET": API_SECRET}

pytestmark = pytest.mark.timeout(120)


def _config_dir(tmp_path: Path, base_url: str) -> Path:
    target = tmp_path / "cfg"
    shutil.copytree(DEFAULTS_DIR, target)

    def executor(d: dict) -> None:
        d["instruments"] = {"BTCUSDT": {"tick_size": 0.1, "qty_step": 0.001}}
        d["paper"]["synthetic"] = {"BTCUSDT": d["paper"]["synthetic"]["BTCUSDT"]}
        d["prometheus"]["port"] = 0
        d["health"]["interval_s"] = 0.2
        d["route"]["poll_interval_ms"] = 50.0
        d["live"].update(api_base_url=base_url, api_key_env="RT_TEST_KEY", api_secret_env="RT_TEST_SECRET",
                         ccxt_rate_limiter=False, request_timeout_ms=3000, top_of_book_source="order_book",
                         order_updates="polling", book_updates="rest")  # REST only: no websocket fake here

    def router(d: dict) -> None:
        d["static_policy"].update(maker_ttl_ms=30000.0, reprice_attempts=0, fallback_mode="cancel")

    edit_config(target, "executor.json", executor)
    edit_config(target, "router.json", router)
    edit_config(target, "strategy_config.json", lambda d: d["screener"].update(require_imbalance_alignment=False))
    return target


def _has_order(fake: FakeBinanceUsdm, cid: str) -> bool:
    with fake.state.lock:
        return cid in fake.state.orders


def _committed(journal_path: Path) -> dict[str, bytes]:
    if not journal_path.exists():
        return {}
    with Journal(journal_path, readonly=True) as journal:
        return {f"{kind}:{e.intent_id}": to_json(e) for kind in ("router", "trade") for e in journal.read(kind)}


def test_sigkill_mid_order_then_restart_settles_without_resending(tmp_path: Path) -> None:
    """Four routes rest at once (the concurrent engine); one filled and journaled, one half filled, two open
    at the kill. While the process is dead one of those fills and the half-filled one trades again: the restart
    finds the three in flight by client order id, journals each once with its fills, re-sends nothing."""
    with FakeBinanceUsdm(API_KEY, API_SECRET) as fake:
        fake.state.hedge_mode = True
        fake.set_book("BTCUSDT", "60000.0", "5", "60000.1", "5")
        cfg = _config_dir(tmp_path, fake.base_url)
        with (tmp_path / "intents.jsonl").open("wb") as handle:
            for k in range(INTENTS):
                handle.write(msgspec.json.encode(intent(f"r{k}", size_hint_usd=300.0)) + b"\n")

        proc, out1, _ = start_live(tmp_path, cfg, 1, "--live", env=ENV)
        try:
            wait_for("metrics URL", lambda: b"metrics: " in out1.read_bytes(), proc)
            url = out1.read_text().split("metrics: ", 1)[1].split()[0]
            wait_for("every order resting at once", lambda: all(_has_order(fake, f"r{k}-1") for k in range(INTENTS)),
                     proc)
            with fake.state.lock:
                assert {str(fake.state.orders[f"r{k}-1"].orig_qty) for k in range(INTENTS)} == {QTY}
            fake.fill("r0-1", QTY)
            wait_for("r0 journaled", lambda: "trade:r0" in _committed(tmp_path / "journal.sqlite"), proc)
            fake.fill("r1-1", "0.001")
            time.sleep(0.2)  # let the executor poll the partial fill
            metrics_text = urllib.request.urlopen(url, timeout=5).read().decode()
            before = _committed(tmp_path / "journal.sqlite")
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        assert proc.returncode == -signal.SIGKILL
        fake.fill("r1-1", "0.001")  # the orders keep trading while the executor is dead
        fake.fill("r2-1", QTY)

        proc2, out2, err2 = start_live(tmp_path, cfg, 2, "--live", env=ENV)
        try:
            assert proc2.wait(timeout=60) == 0, err2.read_text()
        finally:
            kill9(proc2)

    assert "3 in-flight intents recovered (r1, r2, r3)" in out2.read_text()
    with fake.state.lock:
        posts = dict(fake.state.order_posts)
        orders = dict(fake.state.orders)
        long_position = fake.state.positions.get(("BTCUSDT", "LONG"), Decimal(0))
    # nothing sent twice; the in-flight orders were found, not re-sent under another leg id
    assert set(posts.values()) == {1}
    assert set(posts) == {f"r{k}-1" for k in range(INTENTS)}
    assert not [o for o in orders.values() if o.status in ("NEW", "PARTIALLY_FILLED")]
    # every committed event survived, each intent journaled once
    after = _committed(tmp_path / "journal.sqlite")
    assert before.items() <= after.items()
    assert sorted(k for k in after if k.startswith("trade:")) == [f"trade:r{k}" for k in range(INTENTS)]
    with Journal(tmp_path / "journal.sqlite", readonly=True) as journal:
        events = {e.intent_id: e for e in journal.read("router")}
    for intent_id, filled, fills in (("r1", 0.002, 2), ("r2", float(QTY), 1), ("r3", 0.0, 0)):
        recovered = events[intent_id]
        assert recovered.error is not None and recovered.error.startswith("recovered_after_restart")
        assert recovered.filled_qty == pytest.approx(filled) and len(recovered.fills) == fills, intent_id
    journal_qty = sum(f.qty for e in events.values() for f in e.fills)
    assert float(long_position) == pytest.approx(journal_qty)
    assert journal_qty == pytest.approx(float(QTY) * 2 + 0.002)
    # the planted key and secret appear nowhere we write or serve
    with ExecutorStore(tmp_path / "executor.sqlite", readonly=True) as store:
        assert store.health_count() >= 2
    written = [p.read_bytes() for p in tmp_path.iterdir() if p.is_file()]
    for secret in (API_KEY, API_SECRET):
        assert all(secret.encode() not in blob for blob in written)
        assert secret not in metrics_text
    assert "router_orders_total" in metrics_text and "executor_nav_usd" in metrics_text


# --- paper mode: the paper account survives the process, as a real venue's does --------------------------------

def _paper(config, tmp_path: Path, start_ns: int) -> PaperAccount:
    """A new paper market (as each run of ``live`` builds one) on the account file in ``tmp_path``."""
    return paper_account(config, synthetic_tapes(config, start_ns=start_ns), name=f"paper-{start_ns}",
                         path=tmp_path / "executor.paper.json")


def _leg(intent_id: str, leg: int, *, order_type: str, price: float | None) -> OrderRequest:
    return OrderRequest(client_order_id=client_order_id(intent_id, leg), symbol="BTCUSDT", side="buy", qty=0.002,
                        order_type=order_type, price=price, time_in_force="IOC" if price is None else "GTC",
                        post_only=price is not None, reduce_only=False, close_position=False, position_side="LONG")


def test_a_paper_restart_after_a_crash_mid_route_recovers_the_fills_and_reconciles(tmp_path: Path) -> None:
    config = executor_config()
    venue = _paper(config, tmp_path, T0_NS)
    executor, journal, store = build_executor(config, venue, tmp_path)
    executor.start()
    executor.process(intent("a1", size_hint_usd=300.0))
    submit_unjournaled(executor, "a2", qty=0.004)  # a2 was being routed when the process died:
    venue.place_order(_leg("a2", 1, order_type="market", price=None))  # its taker leg filled,
    bid = venue.top_of_book("BTCUSDT").bid
    venue.place_order(_leg("a2", 2, order_type="limit", price=round(bid * 0.99, 1)))  # its maker leg rests
    held = venue.positions("BTCUSDT")["LONG"]
    journal.close()
    store.close()
    del executor, venue  # the paper market dies with the process; its account file stays

    restarted = _paper(config, tmp_path, T0_NS + 3_600 * 10**9)
    assert restarted.positions("BTCUSDT")["LONG"] == held and [o.client_order_id for o in restarted.open_orders(None)] \
        == ["a2-2"]
    executor, journal, store = build_executor(config, restarted, tmp_path)
    report = executor.start()  # positions checked against the venue: equal
    assert report.recovered_intent_ids == ("a2",) and report.cancelled_orders == 1 and report.positions_checked
    recovered = next(e for e in journal.read("router") if e.intent_id == "a2")
    assert recovered.filled_qty == pytest.approx(0.002) and recovered.error.startswith("recovered_after_restart")
    assert restarted.open_orders(None) == ()
    assert executor.portfolio.legs[("BTCUSDT", "LONG")].qty == pytest.approx(held)
    executor.process(intent("a3", size_hint_usd=300.0))  # trading goes on from the restored account
    assert restarted.fetch_order("BTCUSDT", "a2-2").status == "canceled"
    with pytest.raises(InvalidOrder, match="duplicate"):
        restarted.place_order(_leg("a2", 1, order_type="market", price=None))


def test_a_corrupt_paper_account_is_refused_naming_the_file(tmp_path: Path) -> None:
    config = executor_config()
    (tmp_path / "executor.paper.json").write_text('{"version": 1, "positions": {"BTCUSDT": {"LONG": -1.0}}, '
                                                  '"orders": []}')
    with pytest.raises(PaperAccountError, match=r"executor\.paper\.json: BTCUSDT: a LONG position cannot hold"):
        _paper(config, tmp_path, T0_NS)
    (tmp_path / "executor.paper.json").write_text("{")
    with pytest.raises(PaperAccountError, match=r"executor\.paper\.json: not a paper account file"):
        _paper(config, tmp_path, T0_NS)


def test_paper_live_survives_repeated_sigkills_with_open_positions(config_dir: Path, tmp_path: Path) -> None:
    paper_config_dir(config_dir)
    rng = random.Random(5)
    total = 0
    journal_path = tmp_path / "journal.sqlite"
    outs = []
    for run in range(1, 6):
        with (tmp_path / "intents.jsonl").open("ab") as handle:  # buys mostly, some closes: positions stay open
            for k in range(total, total + 12):
                closing = k % 4 == 1
                handle.write(msgspec.json.encode(intent(
                    f"k{k}", side="sell" if closing else "buy", close_position=closing,
                    size_hint_usd=0.0 if closing else rng.uniform(120.0, 400.0), ts_ns=time.time_ns())) + b"\n")
        total += 12
        proc, out, err = start_live(tmp_path, config_dir, run, "--follow")
        try:
            at_least = total - 12 + rng.randint(1, 8)
            wait_for("trading", lambda: journaled_trades(journal_path) >= at_least, proc)  # noqa: B023
            time.sleep(rng.uniform(0.0, 0.05))
        finally:
            kill9(proc)
        assert proc.returncode == -signal.SIGKILL, err.read_text()
        outs.append(out.read_text())
    # the last run, not killed, opens a position: with routes working at once, every open of the last killed run
    # may have been resting at the kill and been cancelled unfilled on restart, leaving the account flat
    with (tmp_path / "intents.jsonl").open("ab") as handle:
        for k in range(total, total + 4):
            handle.write(msgspec.json.encode(intent(f"k{k}", size_hint_usd=rng.uniform(120.0, 400.0),
                                                    ts_ns=time.time_ns())) + b"\n")
    total += 4
    final, out, err = start_live(tmp_path, config_dir, 9)
    try:
        assert final.wait(timeout=60) == 0, err.read_text()
    finally:
        kill9(final)
    assert all("started: " in text for text in outs)  # every restart reconciled with the venue
    with Journal(journal_path, readonly=True) as journal:
        trades = [t.intent_id for t in journal.read("trade")]
        long_qty = sum(f.qty if e.side == "buy" else -f.qty for e in journal.read("router") for f in e.fills)
    assert sorted(trades) == sorted(f"k{k}" for k in range(total))  # each intent journaled once
    account = json.loads((tmp_path / "executor.paper.json").read_text())
    assert long_qty > 0 and account["positions"]["BTCUSDT"]["LONG"] == pytest.approx(long_qty)


def test_the_paper_account_keeps_resting_orders_and_the_latest_legs_only(tmp_path: Path) -> None:
    config = executor_config()
    account = PaperAccount(paper_venue(config, synthetic_tapes(config, start_ns=T0_NS), name="p"), tmp_path / "a.json",
                           symbols=["BTCUSDT", "ETHUSDT"], keep_orders=2)
    bid = account.top_of_book("BTCUSDT").bid
    account.place_order(_leg("r", 1, order_type="limit", price=round(bid * 0.99, 1)))  # rests: kept
    for k in range(4):
        account.place_order(_leg(f"m{k}", 1, order_type="market", price=None))
    saved = json.loads((tmp_path / "a.json").read_text())
    assert [o["client_order_id"] for o in saved["orders"]] == ["r-1", "m2-1", "m3-1"]
    assert saved["positions"] == {"BTCUSDT": {"LONG": pytest.approx(0.008)}}
    before = (tmp_path / "a.json").stat().st_mtime_ns
    account.top_of_book("BTCUSDT")
    account.fetch_order("BTCUSDT", "m3-1")
    assert (tmp_path / "a.json").stat().st_mtime_ns == before  # reads do not rewrite the file


def _account(config, path: Path, start_ns: int, keep_orders: int = 2) -> PaperAccount:
    return PaperAccount(paper_venue(config, synthetic_tapes(config, start_ns=start_ns), name=f"p-{start_ns}"), path,
                        symbols=["BTCUSDT", "ETHUSDT"], keep_orders=keep_orders)


def _sell_stop(cid: str, trigger_price: float) -> StopRequest:
    return StopRequest(client_order_id=cid, symbol="BTCUSDT", kind="stop_market", side="sell", position_side="LONG",
                       trigger_price=trigger_price, working_type="CONTRACT_PRICE")


def test_a_working_stop_of_the_paper_account_survives_a_restart_and_ends_once(tmp_path: Path) -> None:
    config = executor_config()
    path = tmp_path / "a.json"
    account = _account(config, path, T0_NS)
    account.place_order(_leg("m", 1, order_type="market", price=None))
    bid = account.top_of_book("BTCUSDT").bid
    assert account.place_stop(_sell_stop("sl", round(bid * 0.5, 1))).status == "working"
    with pytest.raises(InvalidOrder, match="'sl' is a duplicate"):
        account.place_stop(_sell_stop("sl", round(bid * 0.5, 1)))
    assert [s["client_order_id"] for s in json.loads(path.read_text())["working_stops"]] == ["sl"]
    restarted = _account(config, path, T0_NS + 1_000_000_000)  # the next run's market, the same account
    assert restarted.fetch_stop("BTCUSDT", "sl").status == "working"
    assert [s.client_order_id for s in restarted.open_stops("BTCUSDT")] == ["sl"]
    assert restarted.cancel_stop("BTCUSDT", "sl").status == "canceled"
    saved = json.loads(path.read_text())
    assert (saved["working_stops"], [s["status"] for s in saved["stops"]]) == ([], ["canceled"])
    assert restarted.cancel_stop("BTCUSDT", "sl").status == "canceled"  # ended: its kept state, nothing sent
    with pytest.raises(OrderNotFound, match="no stop 'sl' on ETHUSDT"):
        restarted.fetch_stop("ETHUSDT", "sl")


def test_refused_orders_and_stops_of_the_paper_account_are_kept_and_the_oldest_ended_pruned(tmp_path: Path) -> None:
    config = executor_config()
    path = tmp_path / "a.json"
    account = _account(config, path, T0_NS, keep_orders=2)
    account.place_order(_leg("m", 1, order_type="market", price=None))
    ask = account.top_of_book("BTCUSDT").ask
    with pytest.raises(PostOnlyRejected):
        account.place_order(_leg("x", 1, order_type="limit", price=round(ask * 1.01, 1)))  # crosses: refused
    assert account.fetch_order("BTCUSDT", "x-1").status == "rejected"
    for k in range(3):  # a sell stop above the market would trigger at once: refused, registered
        with pytest.raises(StopWouldTrigger):
            account.place_stop(_sell_stop(f"up{k}", round(ask * 1.5, 1)))
        assert account.fetch_stop("BTCUSDT", f"up{k}").status == "rejected"
    assert [s["client_order_id"] for s in json.loads(path.read_text())["stops"]] == ["up1", "up2"]
    with pytest.raises(OrderNotFound):
        account.cancel_order("BTCUSDT", "never-sent")
    restarted = _account(config, path, T0_NS + 1_000_000_000)
    assert restarted.fetch_order("BTCUSDT", "x-1").status == "rejected"
    with pytest.raises(OrderNotFound, match="no order 'x-1' on ETHUSDT"):
        restarted.fetch_order("ETHUSDT", "x-1")


def test_a_paper_account_file_the_replay_cannot_take_is_refused_naming_it(tmp_path: Path) -> None:
    config = executor_config()
    path = tmp_path / "a.json"
    with pytest.raises(ValueError, match="keep_orders must be >= 1, got 0"):
        _account(config, path, T0_NS, keep_orders=0)
    account = _account(config, path, T0_NS)
    account.place_order(_leg("m", 1, order_type="market", price=None))
    account.place_stop(_sell_stop("sl", round(account.top_of_book("BTCUSDT").bid * 0.5, 1)))
    saved = json.loads(path.read_text())
    path.write_text(json.dumps({**saved, "version": saved["version"] + 1}))
    with pytest.raises(PaperAccountError, match=rf"a\.json: paper account version {saved['version'] + 1}"):
        _account(config, path, T0_NS)
    saved["working_stops"][0]["trigger_price"] = 30000.05  # off the 0.1 tick: a stop the venue would refuse
    path.write_text(json.dumps(saved))
    with pytest.raises(PaperAccountError, match=r"a\.json: stop sl: .*trigger_price 30000\.05 is not a whole number"):
        _account(config, path, T0_NS)


def test_a_paper_stop_met_while_the_process_was_down_fires_when_the_account_is_restored(tmp_path: Path) -> None:
    config = executor_config()
    path = tmp_path / "a.json"
    account = _account(config, path, T0_NS)
    account.place_order(_leg("m", 1, order_type="market", price=None))
    account.place_stop(_sell_stop("sl", round(account.top_of_book("BTCUSDT").bid * 0.5, 1)))
    saved = json.loads(path.read_text())
    saved["working_stops"][0]["trigger_price"] = 1e9  # a sell stop at 1e9: met by any price of the next run
    path.write_text(json.dumps(saved))
    restarted = _account(config, path, T0_NS + 1_000_000_000)
    fired = restarted.fetch_stop("BTCUSDT", "sl")
    assert fired.status == "triggered" and sum(f.qty for f in fired.fills) == pytest.approx(0.002)
    assert restarted.positions("BTCUSDT").get("LONG", 0.0) == 0.0


def _cancel_processed(fake: FakeBinanceUsdm, cid: str) -> bool:
    with fake.state.lock:
        return fake.state.orders[cid].status == "CANCELED"


def test_sigkill_during_restart_reconciliation_then_restart_recovers_once(tmp_path: Path) -> None:
    """The restart itself is killed after its cancel of the first in-flight leg reached the venue and before it
    journaled the recovery: the next restart finds the cancelled leg and the other route's open one, journals
    each intent once (the first with its fill), and re-sends nothing."""
    with FakeBinanceUsdm(API_KEY, API_SECRET) as fake:
        fake.state.hedge_mode = True
        fake.set_book("BTCUSDT", "60000.0", "5", "60000.1", "5")
        cfg = _config_dir(tmp_path, fake.base_url)
        with (tmp_path / "intents.jsonl").open("wb") as handle:
            for k in range(2):
                handle.write(msgspec.json.encode(intent(f"r{k}", size_hint_usd=300.0)) + b"\n")
        proc1, _, _ = start_live(tmp_path, cfg, 1, "--live", env=ENV)
        try:
            wait_for("both orders resting", lambda: _has_order(fake, "r0-1") and _has_order(fake, "r1-1"), proc1)
            fake.fill("r0-1", "0.001")
            time.sleep(0.2)  # let the executor poll the partial fill
        finally:
            kill9(proc1)
        # the restart's cancel is executed by the venue, whose answer never comes back before the kill
        fake.fail_next("DELETE", "/fapi/v1/order", Stall(seconds=20.0, create_first=True))
        proc2, _, _ = start_live(tmp_path, cfg, 2, "--live", env=ENV)
        try:
            wait_for("the reconciliation's cancel", lambda: _cancel_processed(fake, "r0-1"), proc2)
        finally:
            kill9(proc2)
        assert proc2.returncode == -signal.SIGKILL
        assert journaled_trades(tmp_path / "journal.sqlite") == 0
        with fake.state.lock:
            fake.state.faults.clear()

        proc3, out3, err3 = start_live(tmp_path, cfg, 3, "--live", env=ENV)
        try:
            assert proc3.wait(timeout=60) == 0, err3.read_text()
        finally:
            kill9(proc3)
        with fake.state.lock:
            posts = dict(fake.state.order_posts)
            long_position = fake.state.positions.get(("BTCUSDT", "LONG"), Decimal(0))

    assert "2 in-flight intents recovered (r0, r1)" in out3.read_text()
    assert posts == {"r0-1": 1, "r1-1": 1}
    with Journal(tmp_path / "journal.sqlite", readonly=True) as journal:
        trades = [t.intent_id for t in journal.read("trade")]
        events = {e.intent_id: e for e in journal.read("router")}
    assert sorted(trades) == ["r0", "r1"]
    for intent_id, filled in (("r0", 0.001), ("r1", 0.0)):
        assert events[intent_id].error is not None and events[intent_id].error.startswith("recovered_after_restart")
        assert events[intent_id].filled_qty == pytest.approx(filled)
    assert len(events["r0"].fills) == 1
    assert float(long_position) == pytest.approx(sum(f.qty for e in events.values() for f in e.fills))


@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_or_sigterm_while_the_live_venue_connects_ends_in_one_line(tmp_path: Path,
                                                                          stop_signal: signal.Signals) -> None:
    """Ctrl-C while ``live --live`` loads the venue's markets: exit 130 and the one line "interrupted". The wait was
    interrupted but the connection went on under a loop then stopped: asyncio's "Task was destroyed but it is
    pending!", a traceback ending "RuntimeError: Event loop is closed" and "Unclosed client session" followed the
    line. The opening is now cancelled and closes its client. SIGTERM before the executor runs is taken as Ctrl-C
    is (it killed the process silently, exit 143: no line said why it ended)."""
    with FakeBinanceUsdm(API_KEY, API_SECRET) as fake:
        config_dir = _config_dir(tmp_path, fake.base_url)
        (tmp_path / "intents.jsonl").write_bytes(msgspec.json.encode(intent("c1", size_hint_usd=300.0)) + b"\n")
        fake.fail_next("GET", "/fapi/v1/exchangeInfo", Stall(seconds=4.0, create_first=False))
        proc, _out, err = start_live(tmp_path, config_dir, 1, "--live", env=ENV)
        try:
            def markets_asked() -> bool:
                with fake.state.lock:
                    return any(path == "/fapi/v1/exchangeInfo" for _, path, _ in fake.state.requests)

            wait_for("the venue's markets to be asked", markets_asked, proc)
            time.sleep(0.2)
            proc.send_signal(stop_signal)
            assert proc.wait(timeout=30) == 130
        finally:
            kill9(proc)
        assert err.read_text() == "router-tuner live: interrupted\n"
        assert not fake.order_requests("POST")
