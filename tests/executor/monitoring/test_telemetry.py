"""Telemetry: health on a timer (idle too), alerts from config thresholds, the Prometheus endpoint scraped
over HTTP, the store, and the health CLI."""

from __future__ import annotations

import json
import math
import shutil
import urllib.request
from pathlib import Path

import msgspec
import pytest

from router_tuner.cli.health import render
from router_tuner.cli.main import main as cli_main
from router_tuner.config.loader import DEFAULTS_DIR, load_config
from router_tuner.executor.journal import Journal
from router_tuner.executor.monitoring.alerts import evaluate_alerts
from router_tuner.executor.monitoring.health import rolling_sharpe
from router_tuner.executor.records import HealthSnapshot
from router_tuner.executor.store import ExecutorStore, StoreLocked
from router_tuner.features.effectiveness import router_effectiveness
from router_tuner.risk.units import NS_PER_S
from tests.executor.test_executor_support import build_executor, executor_config, intent, make_paper_venue


def _health(**changes: object) -> HealthSnapshot:
    base = HealthSnapshot(
        ts_ns=1, nav_usd=10_000.0, wallet_balance_usd=10_000.0, nav_age_s=1.0, open_positions=0,
        gross_exposure_usd=0.0, orders_in_window=100, maker_ratio=0.8, fallback_ratio=0.1, reprice_loop_ratio=0.0,
        slippage_p25_bps=-1.0,
        slippage_p50_bps=0.0, slippage_p75_bps=1.0, fee_drag_bps=2.0, rolling_sharpe=None,
        window_realized_pnl_usd=0.0, vetoes_in_storm_window=0, symbols=(), expectancy=(), allocations=(),
        allocator_applied=False)
    return msgspec.structs.replace(base, **changes)


def test_alerts_fire_at_the_configured_thresholds_and_name_them() -> None:
    limits = load_config().executor.alerts
    assert evaluate_alerts(_health(), limits) == ()
    fired = evaluate_alerts(_health(nav_age_s=limits.stale_nav_s + 1, fallback_ratio=limits.fallback_ratio + 0.01,
                                    slippage_p50_bps=limits.slippage_p50_bps + 1,
                                    vetoes_in_storm_window=limits.veto_storm_count), limits)
    assert [a.code for a in fired] == ["stale_nav", "fallback_ratio", "slippage", "veto_storm"]
    assert fired[0].threshold == limits.stale_nav_s and fired[0].detail.startswith("executor.alerts.stale_nav_s")
    at_limit = _health(nav_age_s=limits.stale_nav_s, fallback_ratio=limits.fallback_ratio,
                       vetoes_in_storm_window=limits.veto_storm_count - 1)
    assert evaluate_alerts(at_limit, limits) == ()
    few = _health(orders_in_window=limits.min_orders - 1, fallback_ratio=1.0, slippage_p50_bps=1e3)
    assert evaluate_alerts(few, limits) == ()  # ratio alerts wait for enough orders


def test_rolling_sharpe_needs_two_closing_orders() -> None:
    assert rolling_sharpe((), 10, {}) is None


def test_health_publishes_on_a_timer_even_when_idle(tmp_path: Path) -> None:
    config = executor_config(health_interval_s=30.0)
    venue = make_paper_venue(config)
    executor, _, store = build_executor(config, venue, tmp_path)
    executor.start()
    assert store.health_count() == 1  # published at start
    executor.publish_if_due()
    assert store.health_count() == 1
    for _ in range(4):  # four idle half-minutes on the replay clock, no intents
        venue.clock.sleep_until(venue.clock.now_ns() + 30 * NS_PER_S)
        executor.publish_if_due()
    assert store.health_count() == 5
    latest = store.latest_health()
    assert latest is not None and latest.ts_ns == venue.clock.now_ns() and latest.orders_in_window == 0
    assert {row.symbol for row in latest.symbols} == set(config.executor.instruments)


def test_stale_nav_alert_reaches_store_and_metrics(tmp_path: Path) -> None:
    config = executor_config()
    venue = make_paper_venue(config)
    executor, _, store = build_executor(config, venue, tmp_path)
    executor.start()
    executor.process(intent("open", size_hint_usd=300.0))
    stale_s = config.executor.alerts.stale_nav_s
    venue.clock.sleep_until(venue.clock.now_ns() + int((stale_s + 5) * NS_PER_S))
    health = executor.telemetry.publish(venue.clock.now_ns(), executor.portfolio, executor.policies, None)
    assert health.nav_age_s > stale_s
    assert [a.code for a in store.alerts()] == ["stale_nav"]
    registry = executor.telemetry.metrics.registry
    assert registry.get_sample_value("executor_alert_active", {"code": "stale_nav"}) == 1.0
    executor.publish_now()  # marks refreshed: the alert clears
    assert registry.get_sample_value("executor_alert_active", {"code": "stale_nav"}) is None


def test_veto_storm_alert(tmp_path: Path) -> None:
    config = executor_config(veto_storm_count=5)
    executor, _, store = build_executor(config, make_paper_venue(config), tmp_path)
    executor.start()
    for k in range(6):
        executor.process(intent(f"v{k}", symbol="DOGEUSDT"))
    executor.publish_now()
    assert "veto_storm" in {a.code for a in store.alerts()}


def test_a_veto_storm_early_in_a_long_health_interval_still_alerts(tmp_path: Path) -> None:
    """Alerts are evaluated at a publish, once a ``health.interval_s``: with a 10 s storm window under a 60 s
    interval, a storm 50 s before the publish was out of the window by then and never alerted."""
    config = executor_config(veto_storm_count=5, health_interval_s=60.0)
    alerts = msgspec.structs.replace(config.executor.alerts, veto_storm_window_s=10.0)
    config = msgspec.structs.replace(config, executor=msgspec.structs.replace(config.executor, alerts=alerts))
    venue = make_paper_venue(config)
    executor, _, store = build_executor(config, venue, tmp_path)
    executor.start()
    for k in range(5):
        executor.process(intent(f"v{k}", symbol="DOGEUSDT"))
    venue.clock.sleep_until(venue.clock.now_ns() + 50 * NS_PER_S)
    executor.process(intent("late", symbol="DOGEUSDT"))  # the window now holds this one only
    venue.clock.sleep_until(venue.clock.now_ns() + 11 * NS_PER_S)
    executor.publish_if_due()
    [storm] = [a for a in store.alerts() if a.code == "veto_storm"]
    assert storm.observed == 5.0
    venue.clock.sleep_until(venue.clock.now_ns() + 61 * NS_PER_S)
    executor.publish_if_due()
    assert len([a for a in store.alerts() if a.code == "veto_storm"]) == 1  # counted for one publish only


def test_prometheus_endpoint_serves_router_mirror_health_and_intel(tmp_path: Path) -> None:
    config = executor_config()
    executor, journal, _ = build_executor(config, make_paper_venue(config), tmp_path)
    executor.start()
    for k in range(6):
        executor.process(intent(f"p{k}", size_hint_usd=300.0))
    executor.process(intent("close", side="sell", close_position=True, size_hint_usd=0.0))
    executor.process(intent("veto", symbol="DOGEUSDT"))
    executor.publish_now()
    port, server = executor.telemetry.metrics.serve("127.0.0.1", 0)
    try:
        assert server.server_address[0] == "127.0.0.1" and port > 0
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    finally:
        server.shutdown()
    routed = journal.count("router")
    samples = {line.split(" ")[0]: float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line and not line.startswith("#")}
    assert sum(v for k, v in samples.items() if k.startswith("router_orders_total{")) == routed
    assert samples['executor_vetoes_total{code="symbol_not_tradable"}'] == 1.0
    assert samples['executor_intents_total{result="routed"}'] == routed
    assert 'executor_policy_version{arm="static",policy_id="static-BTCUSDT",symbol="BTCUSDT"}' in samples
    assert any(k.startswith("executor_policy_quality{") for k in samples)
    assert any(k.startswith("executor_expectancy_bps{") for k in samples)
    assert samples["executor_nav_usd"] == pytest.approx(executor.portfolio.nav_usd)
    assert samples["executor_orders_in_window"] == routed
    fills = sum(len(e.fills) for e in journal.read("router"))
    assert sum(v for k, v in samples.items() if k.startswith("router_fills_total{")) == fills


def test_store_is_single_writer_and_health_cli_prints_the_snapshot(tmp_path: Path, capsys) -> None:
    config = executor_config()
    executor, _, store = build_executor(config, make_paper_venue(config), tmp_path)
    with pytest.raises(StoreLocked):
        ExecutorStore(tmp_path / "executor.sqlite")
    executor.start()
    executor.process(intent("h1", size_hint_usd=300.0))
    executor.publish_now()
    assert cli_main(["health", "--store", str(tmp_path / "executor.sqlite")]) == 0
    age_line, printed = capsys.readouterr().out.split("\n", 1)  # the executor's test clock is in 2023: STALE
    assert age_line.startswith("snapshot_age_s            ")
    assert printed == render(store.latest_health()) + "\n"
    assert "orders_in_window          1" in printed and "policy static-BTCUSDT v0" in printed
    (row,) = [r for r in store.latest_health().symbols if r.symbol == "BTCUSDT"]
    assert row.orders == 1 and row.reprice_loop_ratio is not None and row.slippage_p50_bps is not None
    assert f"reprice_loop {row.reprice_loop_ratio:.6g}" in printed and "slippage_bps " in printed
    assert cli_main(["health", "--store", str(tmp_path / "executor.sqlite"), "--json"]) == 0
    decoded = msgspec.json.decode(capsys.readouterr().out)
    assert decoded["health"]["orders_in_window"] == 1
    assert cli_main(["health", "--store", str(tmp_path / "missing.sqlite")]) == 1
    (tmp_path / "not_a_store.sqlite").write_bytes(b"this is no SQLite file" * 100)
    capsys.readouterr()
    assert cli_main(["health", "--store", str(tmp_path / "not_a_store.sqlite")]) == 2  # bad input (cli.main)
    assert "not a readable SQLite database" in capsys.readouterr().err


def test_live_cli_refuses_live_without_keys_and_runs_paper(tmp_path: Path, capsys, monkeypatch) -> None:
    intents = tmp_path / "intents.jsonl"
    intents.write_bytes(msgspec.json.encode(intent("c1", size_hint_usd=300.0)) + b"\n")
    config_dir = tmp_path / "cfg"
    shutil.copytree(DEFAULTS_DIR, config_dir)
    executor_json = json.loads((config_dir / "executor.json").read_text())
    executor_json["prometheus"]["port"] = 0
    executor_json["paper"]["duration_s"] = 600.0
    (config_dir / "executor.json").write_text(json.dumps(executor_json))
    monkeypatch.delenv("BINANCE_API_KEY", raising=False)
    monkeypatch.delenv("BINANCE_API_SECRET", raising=False)
    args = ["live", "--venue", "binanceusdm", "--config", str(config_dir), "--intents", str(intents),
            "--journal", str(tmp_path / "j.sqlite"), "--store", str(tmp_path / "s.sqlite")]
    assert cli_main([*args, "--live"]) == 2  # bad input, one line (it printed "KeyError: '...'" and exited 1)
    [line] = capsys.readouterr().err.strip().splitlines()
    assert line == ("router-tuner live: live trading not started: API credentials missing: set environment "
                    "variable(s) BINANCE_API_KEY, BINANCE_API_SECRET")
    assert not (tmp_path / "j.sqlite").exists()  # nothing started
    assert cli_main(args) == 0  # paper: the simulated venue over the synthetic market
    out = capsys.readouterr().out
    assert "metrics: http://127.0.0.1:" in out and "done: 1 new intents processed" in out
    with Journal(tmp_path / "j.sqlite", readonly=True) as journal:
        assert [t.intent_id for t in journal.read("trade")] == ["c1"]


def test_rolling_sharpe_spans_sharpe_window_closing_orders_beyond_the_health_window(tmp_path: Path) -> None:
    """``health.sharpe_window`` counts closing orders, not router events: opening orders after the last
    close, more than ``window_events`` of them, must not hide the closes from the rolling Sharpe."""
    base = executor_config()
    config = msgspec.structs.replace(base, executor=msgspec.structs.replace(
        base.executor, health=msgspec.structs.replace(base.executor.health, window_events=4, sharpe_window=3)))
    venue = make_paper_venue(config)
    executor, journal, _ = build_executor(config, venue, tmp_path)
    executor.start()
    for k in range(3):
        for j in range(2):
            executor.process(intent(f"o{k}{j}", size_hint_usd=300.0))
        venue.clock.sleep_until(venue.clock.now_ns() + 20 * NS_PER_S)
        executor.process(intent(f"c{k}", side="sell", close_position=True, size_hint_usd=0.0))
    for j in range(config.executor.health.window_events):
        executor.process(intent(f"tail{j}", size_hint_usd=300.0))
    closing = [e for e in journal.read("router") if e.realized_pnl_usd is not None]
    assert len(closing) == 3
    expected = rolling_sharpe(closing, config.executor.health.sharpe_window, config.strategy.universe)
    assert expected is not None
    health = executor.telemetry.publish(venue.clock.now_ns(), executor.portfolio, executor.policies, None)
    assert health.rolling_sharpe == pytest.approx(expected)
    executor.journal.close()
    executor.store.close()
    again, _, _ = build_executor(config, make_paper_venue(config), tmp_path, with_positions=False)
    again.start()
    assert again.telemetry.last is not None
    assert again.telemetry.last[0].rolling_sharpe == pytest.approx(expected)  # seeded from the journal


def test_a_store_that_fails_to_open_releases_its_writer_lock(tmp_path: Path) -> None:
    path = tmp_path / "executor.sqlite"
    path.write_bytes(b"not a database, but long enough for SQLite to read its header" * 4)
    with pytest.raises(Exception, match="not a database"):
        ExecutorStore(path)
    path.unlink()
    with ExecutorStore(path) as store:  # the failed open left no lock behind
        assert store.health_count() == 0


def test_symbol_rows_publish_each_symbols_router_kpis(tmp_path: Path) -> None:
    """Issue 16: maker and fallback ratios, the reprice-loop ratio and slippage quartiles per symbol, in the
    snapshot and as gauges, equal to ``features.effectiveness`` over that symbol's events of the window."""
    config = executor_config()
    executor, journal, store = build_executor(config, make_paper_venue(config), tmp_path)
    executor.start()
    for k in range(6):
        executor.process(intent(f"b{k}", size_hint_usd=300.0))
        executor.process(intent(f"e{k}", symbol="ETHUSDT", size_hint_usd=300.0))
    executor.publish_now()
    events = list(journal.read("router"))
    sample = executor.telemetry.metrics.registry.get_sample_value
    health = store.latest_health()
    assert health.reprice_loop_ratio == sample("executor_reprice_loop_ratio")
    for row in health.symbols:
        kpis = router_effectiveness(events, contracts=config.strategy.universe, window=None,
                                    reprice_loop_min=config.executor.health.reprice_loop_min, symbol=row.symbol)
        assert kpis.orders == row.orders == 6
        assert (row.maker_ratio, row.fallback_ratio, row.reprice_loop_ratio) == (
            kpis.maker_fill_ratio, kpis.fallback_ratio, kpis.reprice_loop_ratio)
        assert (row.slippage_p25_bps, row.slippage_p50_bps, row.slippage_p75_bps) == (
            kpis.slippage_p25_bps, kpis.slippage_p50_bps, kpis.slippage_p75_bps)
        labels = {"symbol": row.symbol}
        assert sample("executor_symbol_reprice_loop_ratio", labels) == row.reprice_loop_ratio
        assert sample("executor_symbol_slippage_bps", {**labels, "quantile": "0.5"}) == row.slippage_p50_bps
        for name, value in (("executor_symbol_maker_ratio", row.maker_ratio),
                            ("executor_symbol_fallback_ratio", row.fallback_ratio)):
            assert (math.isnan(sample(name, labels)) if value is None else sample(name, labels) == value)
