"""``live --live`` as a real process on the local Binance USDⓈ-M fakes (REST and user-data stream, ccxt and
ccxt.pro signing and parsing for real): several routes rest at once on one event loop, their fills come by the
stream, the stream drops mid-run and the routes go on by REST polling, it comes back and the routes go on by
the stream again; health shows each mode (and the alert on polling); every fill is journaled once, nothing is
sent twice."""

from __future__ import annotations

import itertools
import shutil
import threading
import time
from decimal import Decimal
from pathlib import Path

import msgspec
import pytest

from router_tuner.config.loader import DEFAULTS_DIR
from router_tuner.executor.journal import Journal
from router_tuner.executor.records import BookFeedHealth, HealthSnapshot, OrderFeedHealth
from router_tuner.executor.store import ExecutorStore
from router_tuner.router.events import RouterEvent
from router_tuner.router.routing.order import client_order_id
from tests.conftest import edit_config
from tests.executor.test_executor_support import intent, kill9, start_live, wait_for
from tests.fakes.binance_usdm import FakeBinanceUsdm
from tests.fakes.binance_user_ws import FakeUserDataStream
from tests.fakes.binance_ws import book_ticker

API_KEY = "PLANTEDkeyStream8Kq2Wx6Zt0Rv4Ny8Pb2Hd6Lf0Jg"
API_SECRET = "PLANTEDsecretStream4Mn8Bv2Cx6Zl0Kj4Hg8Fd2Sa"
ENV = {"RT_STREAM_KEY": API_KEY, "RT_STREAM_SECRET": API_SECRET}
ROUTES = 6
STEP = Decimal("0.001")

pytestmark = pytest.mark.timeout(120)


def stream_config_dir(tmp_path: Path, rest: FakeBinanceUsdm, stream: FakeUserDataStream) -> Path:
    """BTCUSDT on the fakes, ``ROUTES`` routes at once, maker orders that rest until the test fills them."""
    target = tmp_path / "cfg"
    shutil.copytree(DEFAULTS_DIR, target)

    def executor(d: dict) -> None:
        d["instruments"] = {"BTCUSDT": {"tick_size": 0.1, "qty_step": 0.001}}
        d["paper"]["synthetic"] = {"BTCUSDT": d["paper"]["synthetic"]["BTCUSDT"]}
        d["prometheus"]["enabled"] = False
        d["health"]["interval_s"] = 0.2
        d["route"]["poll_interval_ms"] = 100.0
        d["engine"] = {"max_routes_in_flight": ROUTES, "max_routes_per_symbol": ROUTES}
        d["starting_wallet_usd"] = 1_000_000.0
        d["alerts"]["order_feed_polling_s"] = 0.0
        d["live"].update(api_base_url=rest.base_url, ws_base_url=stream.ws_url, api_key_env="RT_STREAM_KEY",
                         api_secret_env="RT_STREAM_SECRET", ccxt_rate_limiter=False, request_timeout_ms=3000,
                         top_of_book_source="order_book", order_updates="stream",
                         stream_reconnect_initial_ms=50.0, stream_reconnect_max_ms=200.0)

    edit_config(target, "executor.json", executor)
    edit_config(target, "risk_limits.json",
                lambda d: d.update(max_trades_per_symbol_per_hour=100_000, max_concurrent_positions=8))
    edit_config(target, "router.json", lambda d: d["static_policy"].update(
        maker_ttl_ms=30_000.0, reprice_attempts=0, fallback_mode="cancel", taker_bias=0.0))
    edit_config(target, "strategy_config.json", lambda d: d["screener"].update(require_imbalance_alignment=False))
    return target


def _resting(rest: FakeBinanceUsdm) -> list[str]:
    with rest.state.lock:
        return sorted(o.client_order_id for o in rest.state.orders.values() if o.status == "NEW")


def _health(store_path: Path) -> HealthSnapshot | None:
    """The latest health snapshot (``None`` before the first)."""
    if not store_path.exists():
        return None
    with ExecutorStore(store_path, readonly=True) as store:
        return store.latest_health()


def _feed(store_path: Path) -> OrderFeedHealth | None:
    """The order feed in the latest health snapshot (``None`` before the first)."""
    health = _health(store_path)
    return health.order_feed if health is not None else None


def _book(store_path: Path) -> BookFeedHealth | None:
    """The streamed touch in the latest health snapshot (``None`` before the first)."""
    health = _health(store_path)
    return health.book_feed if health is not None else None


def _alert_codes(store_path: Path) -> list[str]:
    with ExecutorStore(store_path, readonly=True) as store:
        return [a.code for a in store.alerts()]


def _router_events(path: Path) -> list[RouterEvent]:
    with Journal(path, readonly=True) as journal:
        return list(journal.read("router"))


def test_routes_in_flight_follow_the_stream_through_a_drop_and_count_every_fill_once(tmp_path: Path) -> None:
    ids = [f"s{i}" for i in range(ROUTES)]
    with FakeBinanceUsdm(API_KEY, API_SECRET) as rest, FakeUserDataStream(rest) as stream:
        rest.state.hedge_mode = True
        rest.set_book("BTCUSDT", "60000.0", "5", "60000.1", "5")
        (tmp_path / "intents.jsonl").write_bytes(b"".join(
            msgspec.json.encode(intent(i, size_hint_usd=300.0)) + b"\n" for i in ids))
        proc, _, err = start_live(tmp_path, stream_config_dir(tmp_path, rest, stream), 1, "--live", env=ENV)
        try:
            # every route rests at once: the engine did not wait for one route to end before the next
            wait_for(f"{ROUTES} resting orders", lambda: len(_resting(rest)) == ROUTES, proc)
            stream.wait_connected(10.0)
            store = tmp_path / "executor.sqlite"
            wait_for("health showing the stream", lambda: getattr(_feed(store), "mode", None) == "stream", proc)
            first = [client_order_id(i, 1) for i in ids]
            with rest.state.lock:
                qty = rest.state.orders[first[0]].orig_qty  # 300 USD on the lot grid
                assert all(rest.state.orders[cid].orig_qty == qty for cid in first) and qty > STEP
            rest.fill(first[0], str(STEP))  # partial, then the rest: two fills by the stream
            rest.fill(first[0], str(qty - STEP))
            rest.fill(first[1], str(qty))
            wait_for("two routes journaled", lambda: len(_router_events(tmp_path / "journal.sqlite")) == 2, proc)
            assert rest.order_requests("GET") == [], "with the stream up no order is polled"

            stream.refuse_connections(True)
            stream.drop()
            wait_for("the switch to polling", lambda: "order stream down" in err.read_text(), proc)
            wait_for("health showing polling", lambda: getattr(_feed(store), "mode", None) == "polling", proc)
            assert "order_feed_polling" in _alert_codes(store)
            rest.fill(first[2], str(STEP))  # during the gap: found by REST polling
            rest.fill(first[3], str(qty))
            wait_for("a route journaled while polling",
                     lambda: len(_router_events(tmp_path / "journal.sqlite")) == 3, proc)
            assert rest.order_requests("GET"), "while the stream is down the working orders are polled by REST"

            stream.refuse_connections(False)
            wait_for("the stream back", lambda: "order stream up (reconnects 1)" in err.read_text(), proc)
            wait_for("health showing the stream again", lambda: (getattr(_feed(store), "mode", None),
                                                                 getattr(_feed(store), "reconnects", None))
                     == ("stream", 1), proc)
            rest.fill(first[2], str(qty - STEP))  # the rest of the order partly filled during the gap
            rest.fill(first[4], str(qty))
            rest.fill(first[5], str(STEP))
            rest.fill(first[5], str(qty - STEP))
            proc.wait(timeout=60)
            assert proc.returncode == 0, err.read_text()
        finally:
            kill9(proc)
        with rest.state.lock:
            placed = sorted(o.client_order_id for o in rest.state.orders.values())
            order_ids = {o.order_id: o.client_order_id for o in rest.state.orders.values()}
            venue_trades = {cid: sorted(str(t["id"]) for t in rest.state.trades if order_ids[t["orderId"]] == cid)
                            for cid in order_ids.values()}
    assert placed == sorted(first), "each intent sent one order, none re-sent"
    events = {e.intent_id: e for e in _router_events(tmp_path / "journal.sqlite")}
    assert sorted(events) == ids
    for intent_id, event in events.items():
        assert sorted(f.trade_id for f in event.fills) == venue_trades[client_order_id(intent_id, 1)], intent_id
        assert event.outcome == "filled" and event.filled_qty == pytest.approx(float(qty)), (intent_id, event)
    log = err.read_text()
    assert log.count("order stream down") == 1 and "order stream up (reconnects 1)" in log


def test_decisions_read_the_streamed_touch_and_no_rest_touch_while_it_is_fresh(tmp_path: Path) -> None:
    """The market stream quotes a bid one tick under the REST book's: every journaled arrival shows it."""
    ids = [f"b{i}" for i in range(3)]
    with FakeBinanceUsdm(API_KEY, API_SECRET) as rest, FakeUserDataStream(rest) as stream:
        rest.state.hedge_mode = True
        rest.set_book("BTCUSDT", "60000.0", "5", "60000.1", "5")
        config_dir = stream_config_dir(tmp_path, rest, stream)
        intents = tmp_path / "intents.jsonl"
        intents.write_bytes(b"")
        stop = threading.Event()

        def quote() -> None:  # a fresh book ticker every 50 ms, as a busy symbol's
            for update_id in itertools.count(1):
                if stop.wait(0.05):
                    return
                stream.market.push("btcusdt@bookTicker", [book_ticker(
                    "BTCUSDT", update_id, "59999.9", "6", "60000.1", "6", time.time_ns() // 1_000_000)], 0.0)

        quoter = threading.Thread(target=quote, daemon=True)
        quoter.start()
        proc, _, err = start_live(tmp_path, config_dir, 1, "--live", "--follow", env=ENV)
        try:
            wait_for("the book stream up", lambda: "book stream up" in err.read_text(), proc)
            depth_reads = _depth_reads(rest)
            with intents.open("ab") as fh:
                fh.write(b"".join(msgspec.json.encode(intent(i, size_hint_usd=300.0)) + b"\n" for i in ids))
            wait_for("three routes resting", lambda: len(_resting(rest)) == 3, proc)
            for cid in _resting(rest):
                with rest.state.lock:
                    qty = rest.state.orders[cid].orig_qty
                rest.fill(cid, str(qty))
            wait_for("three routes journaled", lambda: len(_router_events(tmp_path / "journal.sqlite")) == 3, proc)
            assert _depth_reads(rest) == depth_reads, "no REST touch read while the streamed one is fresh"
            wait_for("health showing the streamed touch read", lambda: (b := _book(tmp_path / "executor.sqlite"))
                     is not None and b.mode == "stream" and b.streamed_reads >= len(ids), proc)
        finally:
            stop.set()
            quoter.join(timeout=10)
            kill9(proc)
    events = _router_events(tmp_path / "journal.sqlite")
    assert sorted(e.intent_id for e in events) == ids
    assert {(e.arrival_bid, e.arrival_ask) for e in events} == {(59_999.9, 60_000.1)}


def _depth_reads(rest: FakeBinanceUsdm) -> int:
    with rest.state.lock:
        return sum(1 for _, path, _ in rest.state.requests if path == "/fapi/v1/depth")
