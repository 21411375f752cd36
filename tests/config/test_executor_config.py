"""executor.json: strict like the other files, cross-checked against the universe and the route retries."""

from __future__ import annotations

from pathlib import Path

import pytest

from router_tuner.config import load_config, snapshot
from tests.conftest import config_issues, edit_config


def test_defaults_load_with_executor_section_in_the_snapshot() -> None:
    bundle = load_config()
    assert bundle.executor.prometheus.host == "127.0.0.1"
    assert snapshot(bundle)["executor"]["alerts"]["veto_storm_count"] == bundle.executor.alerts.veto_storm_count


def test_missing_executor_file_is_named(config_dir: Path) -> None:
    (config_dir / "executor.json").unlink()
    [issue] = config_issues(config_dir)
    assert issue.startswith("executor.json: $: missing file")


def test_instrument_outside_the_universe_is_refused(config_dir: Path) -> None:
    edit_config(config_dir, "executor.json",
                lambda d: d["instruments"].update(DOGEUSDT={"tick_size": 0.0001, "qty_step": 1.0}))
    assert config_issues(config_dir) == [
        "executor.json: $.instruments.DOGEUSDT: DOGEUSDT is not in strategy_config.json universe"]


def test_inverse_instrument_is_refused_by_the_executor(config_dir: Path) -> None:
    edit_config(config_dir, "executor.json",
                lambda d: d["instruments"].update(BTCUSD_PERP={"tick_size": 0.1, "qty_step": 1.0}))
    [issue] = config_issues(config_dir)
    assert issue.startswith("executor.json: $.instruments.BTCUSD_PERP: BTCUSD_PERP is an inverse contract")


def test_instrument_traded_under_another_venue_name_is_refused(config_dir: Path) -> None:
    edit_config(config_dir, "executor.json",
                lambda d: d["instruments"].update(BTCUSDT_SPOT={"tick_size": 0.01, "qty_step": 0.0001}))
    [issue] = config_issues(config_dir)
    assert "BTCUSDT_SPOT is BTCUSDT at the venue" in issue


def test_probe_gap_must_outrun_route_retries(config_dir: Path) -> None:
    edit_config(config_dir, "executor.json", lambda d: d["reconcile"].update(probe_gap_legs=4))
    [issue] = config_issues(config_dir)
    assert issue.startswith("executor.json: $.reconcile.probe_gap_legs: must exceed route.max_venue_retries + 1 = 4")


def test_per_symbol_routes_may_not_exceed_routes_in_flight(config_dir: Path) -> None:
    edit_config(config_dir, "executor.json",
                lambda d: d["engine"].update(max_routes_in_flight=4, max_routes_per_symbol=5))
    [issue] = config_issues(config_dir)
    assert issue == "executor.json: $.engine.max_routes_per_symbol: must be at most engine.max_routes_in_flight (4)"


def test_routes_in_flight_must_be_a_sane_positive_count(config_dir: Path) -> None:
    edit_config(config_dir, "executor.json", lambda d: d["engine"].update(max_routes_in_flight=0))
    [issue] = config_issues(config_dir)
    assert issue.startswith("executor.json: $.engine.max_routes_in_flight:")


def test_unknown_and_out_of_range_keys_are_named(config_dir: Path) -> None:
    def edit(data: dict) -> None:
        data["alerts"]["fallback_ratio"] = 1.5
        data["health"]["interval_sec"] = 5
    edit_config(config_dir, "executor.json", edit)
    issues = config_issues(config_dir)
    assert any(i.startswith("executor.json: $.alerts.fallback_ratio:") for i in issues)
    assert any(i.startswith("executor.json: $.health:") and "interval_sec" in i for i in issues)


def test_histogram_buckets_must_be_strictly_increasing_and_not_empty(config_dir: Path) -> None:
    edit_config(config_dir, "executor.json", lambda d: d["prometheus"].update(cost_buckets_bps=[1.0, 1.0, 2.0]))
    [issue] = config_issues(config_dir)
    assert issue.startswith("executor.json: $.prometheus") and "cost_buckets_bps must be a non-empty, strictly" in issue
    edit_config(config_dir, "executor.json", lambda d: d["prometheus"].update(cost_buckets_bps=[],
                                                                               max_label_values=0))
    issues = config_issues(config_dir)
    assert any("max_label_values" in issue for issue in issues)


def test_the_concurrent_engine_is_the_default() -> None:
    engine = load_config().executor.engine
    assert (engine.max_routes_in_flight, engine.max_routes_per_symbol) == (8, 4)


def test_live_order_updates_are_stream_or_polling(config_dir: Path) -> None:
    edit_config(config_dir, "executor.json", lambda d: d["live"].update(order_updates="push"))
    [issue] = config_issues(config_dir)
    assert issue == "executor.json: $.live.order_updates: Invalid enum value 'push'"


def test_the_websocket_base_must_be_a_ws_url_without_credentials(config_dir: Path) -> None:
    edit_config(config_dir, "executor.json", lambda d: d["live"].update(ws_base_url="https://fstream.example"))
    [issue] = config_issues(config_dir)
    assert issue.startswith("executor.json: $.live.ws_base_url:") and "wss?://" in issue
    edit_config(config_dir, "executor.json", lambda d: d["live"].update(ws_base_url="wss://x.example/?token=1"))
    [issue] = config_issues(config_dir)
    assert issue.startswith("executor.json: $.live.ws_base_url: is a URL with a credential in its query (token)")


def test_stream_reconnect_back_off_must_not_shrink(config_dir: Path) -> None:
    edit_config(config_dir, "executor.json",
                lambda d: d["live"].update(stream_reconnect_initial_ms=2000.0, stream_reconnect_max_ms=1000.0))
    [issue] = config_issues(config_dir)
    assert issue == ("executor.json: $.live.stream_reconnect_initial_ms: 2000.0 must be at most "
                     "stream_reconnect_max_ms 1000.0")


def test_listen_key_refresh_and_the_polling_alert_are_bounded(config_dir: Path) -> None:
    edit_config(config_dir, "executor.json", lambda d: d["live"].update(listen_key_refresh_ms=10))
    edit_config(config_dir, "executor.json", lambda d: d["alerts"].update(order_feed_polling_s=-1.0,
                                                                           book_feed_rest_s=-0.5))
    issues = config_issues(config_dir)
    assert sorted(i.split(":")[1].strip() for i in issues) == ["$.alerts.book_feed_rest_s",
                                                                "$.alerts.order_feed_polling_s",
                                                                "$.live.listen_key_refresh_ms"]


def test_the_streamed_touch_keys_are_validated(config_dir: Path) -> None:
    edit_config(config_dir, "executor.json", lambda d: d["live"].update(book_updates="push", book_max_age_ms=0.0))
    assert config_issues(config_dir) == ["executor.json: $.live.book_updates: Invalid enum value 'push'",
                                         "executor.json: $.live.book_max_age_ms: Expected `float` > 0.0"]
    edit_config(config_dir, "executor.json", lambda d: d["live"].update(book_updates="rest", book_max_age_ms=4e6))
    assert config_issues(config_dir) == ["executor.json: $.live.book_max_age_ms: Expected `float` <= 3600000.0"]
    edit_config(config_dir, "executor.json", lambda d: d["live"].pop("book_max_age_ms"))
    # a file written before the key existed is told the line to add (the embedded default's)
    assert config_issues(config_dir) == ["executor.json: $.live: Object missing required field `book_max_age_ms`; add "
                                         'it, e.g. "book_max_age_ms": 1000.0 (the embedded default; README '
                                         "Configuration says what it sets)"]


def test_a_take_profit_inside_the_taker_fee_is_refused(config_dir: Path) -> None:
    """0.01 bps loaded: paper `live` closed every position at once, at a loss (the close is a market order), and the
    stop cooldown then vetoed the symbol's next intents."""
    edit_config(config_dir, "executor.json",
                lambda d: d["protective_stops"].update(stop_loss_bps=50.0, take_profit_bps=5.0))
    assert config_issues(config_dir) == [
        "executor.json: $.protective_stops.take_profit_bps: 5 bps is no more than the taker fee of BTCUSDT (usdm taker "
        "fee 5 bps), ETHUSDT (usdm taker fee 5 bps) (router.json sim_venue.fees): the take-profit closes with a market "
        "order, so every one would close at a loss; set it above the fee, or null"]
    edit_config(config_dir, "executor.json", lambda d: d["protective_stops"].update(take_profit_bps=5.5))
    load_config(config_dir)


def test_no_instrument_at_all_is_refused(config_dir: Path) -> None:
    """{} passed `config check`, and `live` stopped with "policy source not started: ValueError: a policy source needs
    at least one symbol", exit 1."""
    edit_config(config_dir, "executor.json", lambda d: (d.update(instruments={}), d["paper"].update(synthetic={})))
    assert config_issues(config_dir) == [
        "executor.json: $.instruments: lists no symbol, so the executor would trade nothing; list the universe "
        "symbols to trade with their tick_size and qty_step"]


def test_a_reconciliation_tolerance_of_a_lot_or_more_is_refused(config_dir: Path) -> None:
    """1.0 loaded: a paper account 0.5 BTC long beyond its journal restarted as reconciled, where the default refuses
    "positions differ from the journal: BTCUSDT LONG: venue 0.521, journal 0.021"."""
    edit_config(config_dir, "executor.json", lambda d: d["reconcile"].update(position_qty_tolerance=1.0))
    assert config_issues(config_dir) == [
        "executor.json: $.reconcile.position_qty_tolerance: 1 is not under instruments.BTCUSDT.qty_step 0.001: a "
        "position a whole lot off the journal's (a fill never journaled, an order not ours) would pass the restart's "
        "reconciliation unnoticed; keep it far below a lot (default 1e-9)"]
    edit_config(config_dir, "executor.json", lambda d: d["reconcile"].update(position_qty_tolerance=0.0009))
    load_config(config_dir)



@pytest.mark.parametrize(("section", "key", "url"), [
    ("push", "url", "http://127.0.0.1:99999/x"),     # every push "Connection refused" until dropped
    ("push", "url", "http://127.0.0.1:0/x"),
    ("live", "api_base_url", "https://host:abc/"),
    ("live", "ws_base_url", "wss://host:70000/ws"),
])
def test_a_url_port_no_connection_can_reach_is_refused(config_dir: Path, section: str, key: str, url: str) -> None:
    edit_config(config_dir, "executor.json", lambda d: d[section].update({key: url}))
    assert config_issues(config_dir) == [
        f"executor.json: $.{section}.{key}: {url}: has no port a connection can reach (1 to 65535 after the host's "
        "colon): fix the port, or leave it out for the scheme's own"]
    edit_config(config_dir, "executor.json", lambda d: d[section].update({key: url.replace(url.split("/")[2],
                                                                                           "host:8443")}))
    load_config(config_dir)


def test_instruments_of_two_markets_are_refused(config_dir: Path) -> None:
    """A spot instrument beside the perpetuals passed `config check`, and `live` stopped with "venue not started:
    ValueError: paper venue needs tapes of one market in the universe", exit 1."""
    spot = {"venue_symbol": "SOLUSDT", "tier": "SPOT", "quote": "USDT", "market": "spot", "contract_type": "spot",
            "contract_size": 1.0}
    edit_config(config_dir, "strategy_config.json", lambda d: d["universe"].update(SOLUSDT=spot))
    edit_config(config_dir, "executor.json",
                lambda d: d["instruments"].update(SOLUSDT={"tick_size": 0.01, "qty_step": 0.01}))
    assert config_issues(config_dir) == [
        "executor.json: $.instruments: lists instruments of 2 markets (spot: SOLUSDT; usdm: BTCUSDT ETHUSDT): one "
        "executor trades one venue, so one market; keep one market's symbols here and run the others from another "
        "config directory"]


@pytest.mark.parametrize(("key", "url", "problem"), [
    ("api_base_url", "https:///", "names no host (or holds a space): write scheme://HOST[:PORT]/PATH"),
    ("ws_base_url", "ws:///", "names no host (or holds a space): write scheme://HOST[:PORT]/PATH"),
    ("api_base_url", "https://[::1", "not a URL (Invalid IPv6 URL); write scheme://HOST[:PORT]/PATH"),
])
def test_a_venue_url_without_a_host_is_refused(config_dir: Path, key: str, url: str, problem: str) -> None:
    """``https:///`` loaded as the venue's REST base URL."""
    edit_config(config_dir, "executor.json", lambda d: d["live"].update({key: url}))
    assert config_issues(config_dir) == [f"executor.json: $.live.{key}: {url}: {problem}"]


def test_a_tuner_state_path_naming_a_config_file_is_refused(config_dir: Path) -> None:
    """It loaded, and `live --policy-source tuner` refused tuner.json as "not a tuner checkpoint manifest … restore the
    files it was saved with, or move them away": advice that moved the configuration away."""
    state = config_dir / "tuner.json"
    edit_config(config_dir, "executor.json", lambda d: d["adaptive"].update(tuner_state_path=str(state)))
    assert config_issues(config_dir) == [
        f"executor.json: $.adaptive.tuner_state_path: {state} is this configuration's tuner.json: the tuner's "
        "checkpoint manifest cannot share a file with the configuration; give the tuner state a file of its own "
        "(default var/tuner_state.json)"]
    own = config_dir / "tuner_state.json"
    edit_config(config_dir, "executor.json", lambda d: d["adaptive"].update(tuner_state_path=str(own)))
    load_config(config_dir)


def test_instruments_of_another_market_than_the_exchange_are_refused(config_dir: Path) -> None:
    """A spot pair alone loaded with exchange_id binanceusdm: `live --live` would have traded the perpetual of its
    name, with the spot pair's caps and fees. On the spot exchange it loads."""
    spot = {"venue_symbol": "SOLUSDT", "tier": "SPOT", "quote": "USDT", "market": "spot", "contract_type": "spot",
            "contract_size": 1.0}
    edit_config(config_dir, "strategy_config.json", lambda d: d["universe"].update(SOLUSDT=spot))
    edit_config(config_dir, "executor.json", lambda d: (
        d.update(instruments={"SOLUSDT": {"tick_size": 0.01, "qty_step": 0.01}}), d["paper"].update(synthetic={})))
    assert config_issues(config_dir) == [
        "executor.json: $.live.exchange_id: binanceusdm trades the usdm market, and the instruments are spot "
        "(SOLUSDT): `live --live` would route each as the binanceusdm market of that name; set the exchange of the "
        "spot market (binance)"]
    edit_config(config_dir, "executor.json", lambda d: d["live"].update(exchange_id="binance"))
    load_config(config_dir)


@pytest.mark.parametrize("path", ["var/", ".", "var/.."])
def test_a_tuner_state_path_naming_a_folder_is_refused(config_dir: Path, path: str) -> None:
    """``var/`` loaded: `live --policy-source tuner` opened the default journal and store in ``var/``, then stopped
    with "Is a directory: var"; with a journal elsewhere it wrote its manifest as a file named ``var``."""
    edit_config(config_dir, "executor.json", lambda d: d["adaptive"].update(tuner_state_path=path))
    assert config_issues(config_dir) == [
        f"executor.json: $.adaptive.tuner_state_path: {path} names a folder; give the checkpoint manifest's file in it "
        "(the default is var/tuner_state.json)"]


def test_a_tracking_server_uri_no_socket_can_reach_is_refused_at_load(config_dir: Path) -> None:
    """``http://127.0.0.1:99999`` loaded, and `simulate` stopped with "did not answer … within 5 s", exit 1."""
    edit_config(config_dir, "tuner.json", lambda d: d["mlflow"].update(tracking_uri="http://127.0.0.1:99999"))
    assert config_issues(config_dir) == [
        "tuner.json: $.mlflow.tracking_uri: http://127.0.0.1:99999: has no port a connection can reach (1 to 65535 "
        "after the host's colon): fix the port, or leave it out for the scheme's own"]
