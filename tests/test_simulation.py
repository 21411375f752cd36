"""The main job on a small synthetic market: deterministic, the JSON line schema, baselines and bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from config.loader import load_config
from executor.report import summary_dict
from executor.simulation import SimulationOptions, load_markets, simulate
from executor.simulation_intents import intent_stream, lane_count
from executor.simulation_market import synthetic_markets
from executor.simulation_policies import ALWAYS_TAKER, RULE, STATIC
from tuner.cli import main
from tuner.factory import build_grid

ORDERS = 40


@pytest.fixture(scope="module")
def config():
    return load_config()


@pytest.fixture(scope="module")
def result(config):
    options = SimulationOptions(symbols=("BTCUSDT",), orders_per_symbol=ORDERS, seed=3, data_dir=None)
    markets = synthetic_markets(config, options.symbols, options.seed)
    return simulate(config, markets, options, build_grid(config.tuner, config.router), data_source="synthetic")


def test_same_seed_same_results(config, result) -> None:
    options = result.options
    again = simulate(config, synthetic_markets(config, options.symbols, options.seed), options,
                     build_grid(config.tuner, config.router), data_source="synthetic")
    assert summary_dict(again) == summary_dict(result)


def test_every_policy_routes_the_same_intents(result) -> None:
    sym = result.symbols["BTCUSDT"]
    assert {STATIC, ALWAYS_TAKER, RULE} <= set(sym.runs) and len(sym.runs) == 3 + len(result.arm_ids)
    arrivals = {tuple(e.arrival_ts_ns for e in run.events) for run in sym.runs.values()}
    sides = {tuple(e.side for e in run.events) for run in sym.runs.values()}
    assert len(arrivals) == 1 and len(sides) == 1
    assert all(run.late_starts == 0 for run in sym.runs.values())


def test_baselines_behave_as_named(result) -> None:
    s = result.symbols["BTCUSDT"].summaries
    assert s[ALWAYS_TAKER].maker_ratio == 0.0 and s[ALWAYS_TAKER].fallback_ratio == 0.0
    taker_fee = load_config().router.sim_venue.fees["usdm"].taker_fee_bps
    assert s[ALWAYS_TAKER].mean_cost_bps == pytest.approx(taker_fee, abs=2.0)
    best = result.symbols["BTCUSDT"].best_fixed
    fixed = [v.mean_cost_bps for k, v in s.items() if k.startswith("fixed:")]
    assert s[best].mean_cost_bps == min(fixed)
    assert s[STATIC].cost_ci_low_bps <= s[STATIC].mean_cost_bps <= s[STATIC].cost_ci_high_bps


def test_intent_stream_lanes_keep_the_minimum_gap(config) -> None:
    market = synthetic_markets(config, ("ETHUSDT",), 1)[0]
    stream = config.router.simulation.intents
    intents = intent_stream(market, 200, stream, seed=5)
    assert intents == intent_stream(market, 200, stream, seed=5)
    for lane in {i.lane for i in intents}:
        times = np.array([i.arrival_ns for i in intents if i.lane == lane])
        assert np.diff(times).min() >= stream.lane_min_gap_ms * 1e6
    assert all(i.qty > 0 and i.side in ("buy", "sell") for i in intents)
    assert lane_count(10, 100_000_000_000, 6000.0) == 2


def test_bad_input_is_refused(config) -> None:
    with pytest.raises(ValueError, match="orders per symbol"):
        SimulationOptions(symbols=None, orders_per_symbol=0, seed=1, data_dir=None)
    with pytest.raises(ValueError, match="no synthetic market"):
        synthetic_markets(config, ("DOGEUSDT",), 1)
    with pytest.raises(FileNotFoundError):
        load_markets(config, SimulationOptions(symbols=None, orders_per_symbol=5, seed=1, data_dir="/nonexistent"))
    market = synthetic_markets(config, ("BTCUSDT",), 1)[0]
    with pytest.raises(ValueError, match="n_orders"):
        intent_stream(market, 0, config.router.simulation.intents, seed=1)


def test_cli_json_line_schema(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.setenv("ROUTER_TUNER_DATA", "")
    monkeypatch.setattr("router.market.binance._DEFAULT_DATA_DIR", tmp_path / "none")
    code = main(["simulate", "--orders", "20", "--symbols", "ETHUSDT", "--seed", "4", "--out", str(tmp_path),
                 "--no-mlflow", "--json"])
    captured = capsys.readouterr()
    assert code == 0 and "SYNTHETIC" in captured.err
    line = json.loads(captured.out.strip().splitlines()[-1])
    assert line["seed"] == 4 and line["data_source"] == "synthetic" and "ope" in line
    policies = line["symbols"]["ETHUSDT"]["policies"]
    for name in (STATIC, ALWAYS_TAKER, RULE, line["symbols"]["ETHUSDT"]["best_fixed_arm"]):
        row = policies[name]
        assert row["orders"] == 20
        for key in ("mean_cost_bps", "cost_ci_low_bps", "cost_ci_high_bps", "maker_ratio", "fallback_ratio"):
            assert key in row
    assert (tmp_path / "simulation.sqlite").stat().st_size > 0
    assert (tmp_path / "report" / "report.html").exists()
