"""Kill the executor process (SIGKILL, a real subprocess) while an order rests at the venue, fill it while
the process is dead, restart: the in-flight order is found by client order id and settled, not re-sent;
positions match the venue; every event committed before the kill is still there; a planted API key
never appears in logs, journal, store or the scraped metrics."""

from __future__ import annotations

import json
import os
import shutil
import signal
import threading
import time
import urllib.request
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import msgspec
import pytest

from config.loader import DEFAULTS_DIR
from executor.journal import Journal
from executor.store import ExecutorStore
from router.codec import to_json
from tests.executor.test_executor_support import intent, start_live, wait_for
from tests.fakes.binance_usdm import FakeBinanceUsdm

API_KEY = "PLANTEDkeyQ7x2Lk9Vw3Rt5Yu8Io0Pa1Sd4Fg6Hj"
API_SECRET = "PLANTEDsecretM3n5B7v9C1x3Z5l7K9j1H3g5F7d9S1a3"
INTENTS = 4
QTY = "0.003"
ENV = {"RT_TEST_KEY": API_KEY, "RT_TEST_SECRET": API_SECRET}

pytestmark = pytest.mark.timeout(120)


def _config_dir(tmp_path: Path, base_url: str) -> Path:
    target = tmp_path / "cfg"
    shutil.copytree(DEFAULTS_DIR, target)

    def edit(file: str, change: Callable[[dict], None]) -> None:
        path = target / file
        data = json.loads(path.read_text())
        change(data)
        path.write_text(json.dumps(data))

    def executor(d: dict) -> None:
        d["instruments"] = {"BTCUSDT": {"tick_size": 0.1, "qty_step": 0.001}}
        d["paper"]["synthetic"] = {"BTCUSDT": d["paper"]["synthetic"]["BTCUSDT"]}
        d["prometheus"]["port"] = 0
        d["health"]["interval_s"] = 0.2
        d["route"]["poll_interval_ms"] = 50.0
        d["live"].update(api_base_url=base_url, api_key_env="RT_TEST_KEY", api_secret_env="RT_TEST_SECRET",
                         ccxt_rate_limiter=False, request_timeout_ms=3000, top_of_book_source="order_book")

    def router(d: dict) -> None:
        d["static_policy"].update(maker_ttl_ms=30000.0, reprice_attempts=0, fallback_mode="cancel")

    edit("executor.json", executor)
    edit("router.json", router)
    edit("strategy_config.json", lambda d: d["screener"].update(require_imbalance_alignment=False))
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
            wait_for("first order", lambda: _has_order(fake, "r0-1"), proc)
            fake.fill("r0-1", QTY)
            wait_for("r0 journaled", lambda: "trade:r0" in _committed(tmp_path / "journal.sqlite"), proc)
            wait_for("second order", lambda: _has_order(fake, "r1-1"), proc)
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
        fake.fill("r1-1", "0.001")  # the order keeps trading while the executor is dead

        stop = threading.Event()

        def fill_new_orders() -> None:  # the market fills every later order
            while not stop.is_set():
                with fake.state.lock:
                    resting = [o for o in fake.state.orders.values()
                               if o.status == "NEW" and not o.client_order_id.startswith("r1-")]
                for order in resting:
                    fake.fill(order.client_order_id, str(order.orig_qty - order.executed_qty))
                time.sleep(0.02)

        filler = threading.Thread(target=fill_new_orders, daemon=True)
        filler.start()
        proc2, out2, err2 = start_live(tmp_path, cfg, 2, "--live", env=ENV)
        try:
            assert proc2.wait(timeout=60) == 0, err2.read_text()
        finally:
            stop.set()
            filler.join(timeout=5)
            if proc2.poll() is None:
                proc2.kill()

    assert "recovered_intent_ids=('r1',)" in out2.read_text()
    with fake.state.lock:
        posts = dict(fake.state.order_posts)
        orders = dict(fake.state.orders)
        long_position = fake.state.positions.get(("BTCUSDT", "LONG"), Decimal(0))
    # nothing sent twice; the in-flight order was found, not re-sent under another leg id
    assert set(posts.values()) == {1}
    assert "r1-2" not in posts and set(posts) == {f"r{k}-1" for k in range(INTENTS)}
    assert not [o for o in orders.values() if o.status in ("NEW", "PARTIALLY_FILLED")]
    # every committed event survived, each intent journaled once
    after = _committed(tmp_path / "journal.sqlite")
    assert before.items() <= after.items()
    assert sorted(k for k in after if k.startswith("trade:")) == [f"trade:r{k}" for k in range(INTENTS)]
    with Journal(tmp_path / "journal.sqlite", readonly=True) as journal:
        events = {e.intent_id: e for e in journal.read("router")}
    recovered = events["r1"]
    assert recovered.error is not None and recovered.error.startswith("recovered_after_restart")
    assert recovered.filled_qty == pytest.approx(0.002) and len(recovered.fills) == 2
    journal_qty = sum(f.qty for e in events.values() for f in e.fills)
    assert float(long_position) == pytest.approx(journal_qty)
    assert journal_qty == pytest.approx(0.003 * (INTENTS - 1) + 0.002)
    # the planted key and secret appear nowhere we write or serve
    with ExecutorStore(tmp_path / "executor.sqlite", readonly=True) as store:
        assert store.health_count() >= 2
    written = [p.read_bytes() for p in tmp_path.iterdir() if p.is_file()]
    for secret in (API_KEY, API_SECRET):
        assert all(secret.encode() not in blob for blob in written)
        assert secret not in metrics_text
    assert "router_orders_total" in metrics_text and "executor_nav_usd" in metrics_text
