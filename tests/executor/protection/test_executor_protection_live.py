"""Protective stops through the real ``live`` process on the Binance USDⓈ-M fake (ccxt signs and parses for real):
kill -9 while the stops work, the stop loss triggers while the executor is down, and the restart journals it
once with its realized PnL, cancels the take profit and agrees with the venue's positions."""

from __future__ import annotations

import signal
from decimal import Decimal
from pathlib import Path

import msgspec
import pytest

from router_tuner.cli.main import main as cli_main
from router_tuner.executor.journal import Journal
from tests.executor.test_executor_live import API_KEY, API_SECRET, edit_json, fake, live_args, live_config_dir
from tests.executor.test_executor_support import intent, kill9, start_live, wait_for
from tests.fakes.binance_usdm import FakeBinanceUsdm

__all__ = ["fake"]  # the fixture, imported for pytest
pytestmark = pytest.mark.timeout(120)


def working_algo_orders(fake: FakeBinanceUsdm) -> list[str]:
    with fake.state.lock:
        return sorted(a.client_algo_id for a in fake.state.algo_orders.values() if a.status == "NEW")


def test_kill9_while_stops_work_then_a_trigger_while_down_is_journaled_once(
        fake: FakeBinanceUsdm, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = live_config_dir(tmp_path, fake.base_url)
    edit_json(cfg / "executor.json", lambda d: d["protective_stops"].update(stop_loss_bps=50.0, take_profit_bps=50.0))
    intents = tmp_path / "intents.jsonl"
    intents.write_bytes(msgspec.json.encode(intent("o1", size_hint_usd=300.0)) + b"\n")
    env = {"RT_LIVE_KEY": API_KEY, "RT_LIVE_SECRET": API_SECRET}

    proc, _, err = start_live(tmp_path, cfg, 1, "--live", "--follow", env=env)
    try:
        wait_for("both stops working at the venue", lambda: len(working_algo_orders(fake)) == 2, proc, 60.0)
    finally:
        kill9(proc)
    assert proc.returncode == -signal.SIGKILL, err.read_text()
    assert working_algo_orders(fake) == ["psl-BTCUSDT-L-1", "ptp-BTCUSDT-L-2"]
    with fake.state.lock:
        opened = fake.state.positions[("BTCUSDT", "LONG")]
        stop = fake.state.algo_orders["psl-BTCUSDT-L-1"]
        assert stop.trigger_price < Decimal("60000.0") and stop.working_type == "CONTRACT_PRICE"

    fake.set_book("BTCUSDT", "59600.0", "5", "59600.1", "5")  # through the stop while nobody watches
    with fake.state.lock:
        assert fake.state.positions[("BTCUSDT", "LONG")] == 0 and stop.status == "FINISHED"

    args = live_args(tmp_path, cfg, intents)
    for run in (2, 3):
        assert cli_main(args) == 0, capsys.readouterr().err
        assert "positions checked against the venue" in capsys.readouterr().out
        with Journal(tmp_path / "journal.sqlite", readonly=True) as journal:
            events = {e.intent_id: e for e in journal.read("router")}
            trades = {t.intent_id: t for t in journal.read("trade")}
        assert sorted(events) == ["o1", "psl-BTCUSDT-L-1"], f"run {run}"
    entry = events["o1"].avg_price
    closed = events["psl-BTCUSDT-L-1"]
    assert closed.filled_qty == float(opened) and closed.avg_price == 59600.0
    fee = 59600.0 * float(opened) * 0.0005
    assert closed.realized_pnl_usd == pytest.approx((59600.0 - entry) * float(opened) - fee)
    assert trades["psl-BTCUSDT-L-1"].closed_lots[0].opening_intent_id == "o1"
    assert trades["psl-BTCUSDT-L-1"].strategy == "protective_stop"
    with fake.state.lock:  # the take profit of the closed leg was cancelled at the restart
        assert fake.state.algo_orders["ptp-BTCUSDT-L-2"].status == "CANCELED"
