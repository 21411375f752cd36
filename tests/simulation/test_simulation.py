"""The main job on a small synthetic market: deterministic, learners and OPE included, the JSON line schema,
baselines and bad input."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import msgspec
import numpy as np
import pytest

from router_tuner.cli.main import main
from router_tuner.config.loader import load_config
from router_tuner.config.models import UniverseEntry
from router_tuner.simulation.intents import intent_stream, lane_count
from router_tuner.simulation.job import SimulationOptions, _OpeTasks, load_markets, simulate
from router_tuner.simulation.learners import LEARNERS, NO_GREEDY_ARM, arm_shares, greedy_arm, parse_learners
from router_tuner.simulation.markets import synthetic_markets, universe_entry_hint
from router_tuner.simulation.policies import ALWAYS_TAKER, FIXED_PREFIX, RULE, STATIC
from router_tuner.simulation.report.page import _learner_rows, summary_dict
from router_tuner.simulation.results import captured_share, ope_vs_truth
from router_tuner.tuner.factory import build_grid, build_learner

ORDERS = 40


@pytest.fixture(scope="module")
def config():
    return load_config()


@pytest.fixture(scope="module")
def result(config):
    options = SimulationOptions(symbols=("BTCUSDT",), orders_per_symbol=ORDERS, seed=3, data_dir=None,
                                learners=LEARNERS)
    markets = synthetic_markets(config, options.symbols, options.seed)
    return simulate(config, markets, options, build_grid(config.tuner, config.router), data_source="synthetic")


def test_same_seed_same_results(config, result) -> None:
    options = result.options
    again = simulate(config, synthetic_markets(config, options.symbols, options.seed), options,
                     build_grid(config.tuner, config.router), data_source="synthetic")
    assert summary_dict(again) == summary_dict(result)


def test_every_policy_routes_the_same_intents(result) -> None:
    sym = result.symbols["BTCUSDT"]
    assert {STATIC, ALWAYS_TAKER, RULE} <= set(sym.runs)
    assert len(sym.runs) == 3 + len(result.arm_ids) + len(LEARNERS)
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


def test_learners_route_with_logged_propensities(result) -> None:
    sym = result.symbols["BTCUSDT"]
    assert list(sym.learners) == list(LEARNERS)
    for name, outcome in sym.learners.items():
        events = sym.runs[outcome.policy].events
        assert len(events) == ORDERS and all(0.0 < e.propensity <= 1.0 for e in events)
        assert all(e.arm in result.arm_ids for e in events)
        assert sum(outcome.arm_shares.values()) == pytest.approx(1.0)
        assert outcome.arm_shares[outcome.greedy_arm] > 0.0  # the greedy arm has evidence in the log
        assert outcome.policy == f"learner:{name}" and outcome.final_version >= 0


def test_every_policy_journals_its_own_policy_id(result) -> None:
    """The learners route side by side in one journal: each under its own id (they all logged as tuner-BTCUSDT, so
    ``ope --logging-policy`` could not score one of them), named as the fixed arms' are."""
    runs = result.symbols["BTCUSDT"].runs
    ids = {policy: {e.policy_id for e in run.events} for policy, run in runs.items()}
    assert all(len(one) == 1 for one in ids.values()) and len({i for one in ids.values() for i in one}) == len(runs)
    assert ids["learner:structured"] == {"learner-structured-BTCUSDT"}
    assert ids["fixed:o1.00_b0.00"] == {"fixed-o1.00_b0.00-BTCUSDT"}


def test_ope_scores_each_greedy_arm_beside_its_fixed_run(config, result) -> None:
    sym = result.symbols["BTCUSDT"]
    assert [c.learner for c in sym.ope] == [f"learner:{n}" for n in LEARNERS]
    for comp in sym.ope:
        truth = sym.summaries[f"{FIXED_PREFIX}{comp.arm}"]
        assert comp.truth_cost_bps == truth.mean_cost_bps and comp.arm == sym.learners[
            comp.learner.removeprefix("learner:")].greedy_arm
        estimates = comp.estimates_bps()
        assert {"ips", "snips", "dm", "dr"} <= set(estimates)
        for est in estimates.values():
            assert np.isfinite(est["cost_bps"]) and est["ci_low_bps"] <= est["ci_high_bps"]
            assert est["covers_truth"] == (est["ci_low_bps"] <= comp.truth_cost_bps <= est["ci_high_bps"])
        # the learner's own value from the log is its measured mean cost
        assert comp.report.logging.value == pytest.approx(-sym.summaries[comp.learner].mean_cost_bps)


def test_ope_refuses_an_arm_without_truth_or_support(config, result) -> None:
    sym = result.symbols["BTCUSDT"]
    comp = sym.ope[0]
    run, truth = sym.runs[comp.learner], sym.summaries[f"{FIXED_PREFIX}{comp.arm}"]
    with pytest.raises(ValueError, match="filled nothing"):
        ope_vs_truth(run, comp.arm, replace(truth, mean_cost_bps=None), config.tuner.ope, seed=1)
    never = comp.arm  # the learner's log without that arm's orders has no support for it
    kept = [i for i, e in enumerate(run.events) if e.arm != never]
    unsupported = replace(run, events=tuple(run.events[i] for i in kept), markout_bps=run.markout_bps[kept])
    with pytest.raises(ValueError, match="no support"):
        ope_vs_truth(unsupported, never, sym.summaries[f"{FIXED_PREFIX}{never}"], config.tuner.ope, seed=1)


def test_learner_helpers_refuse_bad_input(config, result) -> None:
    assert parse_learners(" ucb,thompson ") == ("ucb", "thompson")
    for bad, match in (("", "no learner"), ("ucb,sarsa", "unknown"), ("ucb,ucb", "twice")):
        with pytest.raises(ValueError, match=match):
            parse_learners(bad)
    with pytest.raises(ValueError, match="learners must be"):
        SimulationOptions(symbols=None, orders_per_symbol=5, seed=1, data_dir=None, learners=("sarsa",))
    grid = build_grid(config.tuner, config.router)
    events = result.symbols["BTCUSDT"].runs[STATIC].events
    with pytest.raises(ValueError, match="outside the grid"):
        arm_shares(events, grid.arm_ids)
    with pytest.raises(ValueError, match="no events"):
        arm_shares([], grid.arm_ids)


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


def test_informed_intents_trade_in_the_direction_of_the_mid_their_horizon_later(config) -> None:
    market = synthetic_markets(config, ("ETHUSDT",), 1)[0]
    stream = config.router.simulation.intents
    uninformed = intent_stream(market, 300, stream, seed=5)
    informed = intent_stream(market, 300, msgspec.structs.replace(stream, informed_share=1.0), seed=5)
    horizon_ns = round(stream.informed_horizon_ms * 1e6)
    arrivals = np.array([i.arrival_ns for i in informed])
    now, later = market.mid_at(arrivals), market.mid_at(arrivals + horizon_ns)
    moved = later != now
    assert moved.mean() > 0.9
    assert all((i.side == "buy") == bool(up) for i, up, m in zip(informed, later > now, moved, strict=True) if m)
    assert [i.arrival_ns for i in informed] == [i.arrival_ns for i in uninformed], "only the sides change"
    assert sum(i.side != u.side for i, u in zip(informed, uninformed, strict=True)) > 100
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert({**msgspec.to_builtins(stream), "informed_share": 1.5}, type(stream))


def test_a_route_end_tuner_learns_that_informed_orders_pay_a_drift_while_waiting(config) -> None:
    """Every intent informed: the mid moves against each order after its arrival (it buys before a rise), and a
    route-end tuner's waiting drift comes out positive; uninformed, it stays near zero."""
    rates = {}
    for share in (0.0, 1.0):
        stream = msgspec.structs.replace(config.router.simulation.intents, informed_share=share)
        bundle = msgspec.structs.replace(replace_tuner(config, reward_mid="route_end"), router=msgspec.structs.replace(
            config.router, simulation=msgspec.structs.replace(config.router.simulation, intents=stream)))
        options = SimulationOptions(symbols=("BTCUSDT",), orders_per_symbol=120, seed=5, data_dir=None,
                                    learners=("structured",))
        run = simulate(bundle, synthetic_markets(bundle, options.symbols, options.seed), options,
                       build_grid(bundle.tuner, bundle.router), data_source="synthetic").learner_runs[0]
        drift = run.service.tuner("BTCUSDT").to_state().waiting_drift
        assert drift is not None and drift.routes == 120
        rates[share] = drift.move_bps / drift.seconds
    assert rates[1.0] > 0.1 and abs(rates[0.0]) < 0.5 * rates[1.0], rates


def test_bad_input_is_refused(config) -> None:
    with pytest.raises(ValueError, match="orders per symbol"):
        SimulationOptions(symbols=None, orders_per_symbol=0, seed=1, data_dir=None, learners=LEARNERS)
    with pytest.raises(ValueError, match="no synthetic market"):
        synthetic_markets(config, ("DOGEUSDT",), 1)
    with pytest.raises(FileNotFoundError):
        load_markets(config, SimulationOptions(symbols=None, orders_per_symbol=5, seed=1, data_dir="/nonexistent",
                                               learners=LEARNERS))
    market = synthetic_markets(config, ("BTCUSDT",), 1)[0]
    with pytest.raises(ValueError, match="n_orders"):
        intent_stream(market, 0, config.router.simulation.intents, seed=1)


@pytest.fixture()
def no_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ROUTER_TUNER_DATA", "")
    monkeypatch.setattr("router_tuner.router.market.binance._DEFAULT_DATA_DIR", tmp_path / "none")


def test_cli_json_line_schema(tmp_path: Path, no_data: None, capsys) -> None:
    code = main(["simulate", "--orders", "30", "--symbols", "ETHUSDT", "--seed", "4", "--out", str(tmp_path),
                 "--no-mlflow", "--json", "--learners", "thompson,linucb"])
    captured = capsys.readouterr()
    assert code == 0 and "SYNTHETIC" in captured.err
    line = json.loads(captured.out.strip().splitlines()[-1])
    assert line["seed"] == 4 and line["data_source"] == "synthetic" and line["learners"] == ["thompson", "linucb"]
    assert "mlflow_run_id" not in line
    sym = line["symbols"]["ETHUSDT"]
    policies = sym["policies"]
    for name in (STATIC, ALWAYS_TAKER, RULE, sym["best_fixed_arm"], "learner:thompson", "learner:linucb"):
        row = policies[name]
        assert row["orders"] == 30
        for key in ("mean_cost_bps", "cost_ci_low_bps", "cost_ci_high_bps", "maker_ratio", "fallback_ratio",
                    "cumulative_regret_vs_best_fixed_bps"):
            assert key in row
    assert policies[sym["best_fixed_arm"]]["cumulative_regret_vs_best_fixed_bps"] == 0.0
    assert set(sym["learners"]) == {"thompson", "linucb"}
    assert {"greedy_arm", "final_arm", "versions_published", "arm_shares"} <= set(sym["learners"]["thompson"])
    drift = sym["learners"]["thompson"]["waiting_drift_bps_per_s"]   # the default reward learns it: a finite rate
    assert isinstance(drift, float) and abs(drift) < 5.0
    assert [row["learner"] for row in line["ope"]] == ["learner:thompson", "learner:linucb"]
    for row in line["ope"]:
        assert row["symbol"] == "ETHUSDT" and row["arm"] == sym["learners"][row["learner"][8:]]["greedy_arm"]
        assert row["truth_cost_bps"] == policies[f"{FIXED_PREFIX}{row['arm']}"]["mean_cost_bps"]
        assert row["truth_ci_low_bps"] <= row["truth_cost_bps"] <= row["truth_ci_high_bps"]
        assert {"ips", "snips", "dm", "dr"} <= set(row["estimates"])
        for est in row["estimates"].values():
            assert {"cost_bps", "ci_low_bps", "ci_high_bps", "ess", "covers_truth"} <= set(est)
        assert "cost_bps" in row["logging_cost_bps"]
    assert "learner:thompson" in captured.out.splitlines()[1]  # the printed per-symbol table
    assert (tmp_path / "simulation.sqlite").stat().st_size > 0
    assert (tmp_path / "report" / "report.html").exists()


def test_cli_refuses_unknown_learner(tmp_path: Path, capsys) -> None:
    code = main(["simulate", "--learners", "thompson,sarsa", "--out", str(tmp_path), "--no-mlflow"])
    assert code == 2 and "unknown learner" in capsys.readouterr().err
    assert not (tmp_path / "simulation.sqlite").exists()


def test_the_json_names_the_default_learner_and_both_oracles(config, result) -> None:
    line = summary_dict(result)
    assert line["default_learner"] == config.tuner.learner == "structured"
    block = line["symbols"]["BTCUSDT"]
    oracle = block["oracle"]
    best_fixed = block["policies"][block["best_fixed_arm"]]["mean_cost_bps"]
    assert oracle["best_fixed_cost_bps"] == best_fixed
    assert oracle["segments"] == config.router.simulation.oracle_segments
    assert oracle["segment_oracle_cost_bps"] <= best_fixed + 1e-12, "switching per segment never loses to one arm"
    assert block["data"] is None, "a synthetic market has no recording to summarise"
    taker = block["policies"][ALWAYS_TAKER]
    assert taker["captured_share_of_taker_to_best_fixed_gap"] == pytest.approx(0.0)
    assert block["policies"][block["best_fixed_arm"]]["captured_share_of_taker_to_best_fixed_gap"] == pytest.approx(1.0)
    for row in block["policies"].values():
        quarters = row["regret_per_order_by_quarter_bps"]
        total = row["cumulative_regret_vs_best_fixed_bps"]  # a sum over the orders, not a per-order number
        assert len(quarters) == 4 and np.mean(quarters) == pytest.approx(total / ORDERS)


def test_the_segment_oracle_picks_the_best_arm_of_each_block(result) -> None:
    from router_tuner.simulation.results import costs, segment_oracle_cost_bps

    sym = result.symbols["BTCUSDT"]
    fixed = {n: r for n, r in sym.runs.items() if n.startswith(FIXED_PREFIX)}
    one = segment_oracle_cost_bps(sym.runs, 1)
    assert one == pytest.approx(min(np.nanmean(costs(r.events)) for r in fixed.values()))
    per_order = segment_oracle_cost_bps(sym.runs, ORDERS)  # one order per block: the cheapest arm of each order
    stacked = np.vstack([costs(r.events) for r in fixed.values()])
    assert per_order == pytest.approx(np.nanmean(np.nanmin(stacked, axis=0)))
    with pytest.raises(ValueError, match="no fixed-arm"):
        segment_oracle_cost_bps({STATIC: sym.runs[STATIC]}, 2)


def test_a_tuner_charging_markout_learns_it_in_the_main_job_and_the_shadow_scenario(config) -> None:
    charged = replace_tuner(config, reward_markout_horizon_ms=5000.0, reward_mid="arrival")  # the markout alone
    options = SimulationOptions(symbols=("BTCUSDT",), orders_per_symbol=20, seed=5, data_dir=None,
                                learners=("structured",), shadow_symbols=("BTCUSDT",))
    markets = synthetic_markets(charged, options.symbols, options.seed)
    result = simulate(charged, markets, options, build_grid(charged.tuner, charged.router), data_source="synthetic")
    sym = result.symbols["BTCUSDT"]
    learned = result.learner_runs[0].service.tuner("BTCUSDT").to_state().period
    run = sym.runs["learner:structured"]
    filled = [i for i, e in enumerate(run.events) if e.cost_bps is not None]
    charged_cost = np.mean([run.events[i].cost_bps + run.markout_bps[i] for i in filled])
    assert learned.learned == len(filled) and learned.mean_cost_bps == pytest.approx(charged_cost)
    assert sym.shadow is not None


def test_a_tuner_learning_against_the_route_end_mid_learns_the_cost_less_the_markets_move(config) -> None:
    """``reward_mid`` ``route_end`` without the waiting drift (window 0): each filled order is learned at its cost
    less the mid's move against it from arrival to the route's end, which takes most of the market's noise out of a
    fallback's cost (the synthetic mid is a random walk, so the move's mean is zero for every arm and the expected
    cost is kept; the drift put back is tested in ``tests/tuner/test_reward_adjustment.py``)."""
    from router_tuner.simulation.runner import move_to_route_end_bps

    against_end = replace_tuner(config, reward_mid="route_end", reward_mid_drift_window=0)
    options = SimulationOptions(symbols=("BTCUSDT",), orders_per_symbol=60, seed=5, data_dir=None,
                                learners=("structured",), shadow_symbols=("BTCUSDT",))
    markets = synthetic_markets(against_end, options.symbols, options.seed)
    result = simulate(against_end, markets, options, build_grid(against_end.tuner, against_end.router),
                      data_source="synthetic")
    (market,), sym = markets, result.symbols["BTCUSDT"]
    learned = result.learner_runs[0].service.tuner("BTCUSDT").to_state().period
    run = sym.runs["learner:structured"]
    filled = [e for e in run.events if e.cost_bps is not None]
    moves = {e.intent_id: move_to_route_end_bps(market, e) for e in filled}
    assert learned.learned == len(filled)
    assert learned.mean_cost_bps == pytest.approx(np.mean([e.cost_bps - moves[e.intent_id] for e in filled]))
    for e in filled:  # against the order: a buy pays a rise, a sell a fall
        end_mid = float(market.mid_at(np.array([e.finished_ts_ns]))[0])
        assert moves[e.intent_id] == pytest.approx((end_mid - e.arrival_mid) / e.arrival_mid * 1e4
                                                   * (1.0 if e.side == "buy" else -1.0))
    fell_back = [e for name, r in sym.runs.items() if name.startswith(FIXED_PREFIX) for e in r.events
                 if e.cost_bps is not None and e.used_fallback]
    raw = np.array([e.cost_bps for e in fell_back])
    adjusted = raw - np.array([move_to_route_end_bps(market, e) for e in fell_back])
    assert len(fell_back) > 20 and adjusted.std() < 0.5 * raw.std(), "the move is most of a fallback's noise"


def replace_tuner(config, **fields):
    return msgspec.structs.replace(config, tuner=msgspec.structs.replace(config.tuner, **fields))


@pytest.mark.parametrize("venue_symbol, market, key, fields", [
    ("SOLUSDC", "usdm", "SOLUSDC", {"quote": "USDC", "contract_type": "linear", "contract_size": 1.0, "tier": "CORE"}),
    ("BNBFDUSD", "spot", "BNBFDUSD_SPOT", {"quote": "FDUSD", "contract_type": "spot", "tier": "SPOT"}),
    ("ETHBTC", "spot", "ETHBTC_SPOT", {"quote": "BTC", "contract_type": "spot"}),
    ("BTCTUSD", "spot", "BTCTUSD_SPOT", {"quote": "TUSD"}),   # it said "USDT", which config check refuses
    ("BTCEUR", "spot", "BTCEUR_SPOT", {"quote": "EUR"}),
    ("ETHAEUR", "spot", "ETHAEUR_SPOT", {"quote": "AEUR"}),
    ("BTCUSD_PERP", "cm", "BTCUSD_PERP", {"quote": "USD", "contract_type": "inverse", "contract_size": 100.0}),
    ("SOLUSD_PERP", "cm", "SOLUSD_PERP", {"quote": "USD", "contract_type": "inverse", "contract_size": 10.0}),
])
def test_the_universe_entry_suggested_for_an_unknown_recording_is_valid_config(
        venue_symbol: str, market: str, key: str, fields: dict[str, object]) -> None:
    hint = universe_entry_hint(venue_symbol, market)
    name, _, rest = hint.partition(": ")
    entry = json.loads(rest.split(" (check")[0])
    assert json.loads(name) == key and entry["venue_symbol"] == venue_symbol and entry["market"] == market
    assert fields.items() <= entry.items()
    msgspec.convert(entry, UniverseEntry)   # the strict loader's own type accepts it
    assert entry["venue_symbol"].split("_")[0].endswith(entry["quote"])   # as config check requires


def test_the_universe_entry_suggested_for_an_unknown_quote_says_to_set_it() -> None:
    """A pair quoted in an asset the hint does not know was given quote "USDT", an entry config check refuses."""
    assert universe_entry_hint("BTCXYZ", "spot").endswith(
        '"quote": "QUOTE", "market": "spot", "contract_type": "spot", "contract_size": 1.0} (check quote: set the '
        'asset BTCXYZ is quoted in, the end of its name)')


def test_a_learner_without_evidence_has_no_greedy_arm_no_ope_and_a_report_row(config, result) -> None:
    """A learner that learned nothing (no order's cost accepted: nothing it routed filled) is reported as such,
    not a failure of the whole run after routing; its OPE is left out, having no candidate to score."""
    grid = build_grid(config.tuner, config.router)
    fresh = build_learner(config.tuner, grid, seed=1, fees=config.router.sim_venue.fees["usdm"], static_offset_bps=1.0)
    assert greedy_arm(fresh, None) is None
    sym = result.symbols["BTCUSDT"]
    learners = {**sym.learners, "ucb": replace(sym.learners["ucb"], greedy_arm=None)}
    blind = replace(result, symbols={"BTCUSDT": replace(sym, learners=learners)})
    assert ("BTCUSDT", "ucb") not in _OpeTasks(config=config, results=tuple(blind.symbols.values()), seed=3).pieces
    assert ("BTCUSDT", "thompson") in _OpeTasks(config=config, results=(sym,), seed=3).pieces
    row = next(r for r in _learner_rows(blind) if r[1] == "ucb")
    assert row[2] == NO_GREEDY_ARM
    assert row[8] == f"{sym.learners['ucb'].waiting_drift_bps_per_s:+.3f}"
    unadjusted = {**learners, "ucb": replace(learners["ucb"], waiting_drift_bps_per_s=None)}
    row = next(r for r in _learner_rows(replace(blind, symbols={"BTCUSDT": replace(sym, learners=unadjusted)}))
               if r[1] == "ucb")
    assert row[8] == "n/a", "a tuner learning the journaled cost has no waiting drift"
    assert summary_dict(blind)["symbols"]["BTCUSDT"]["learners"]["ucb"]["greedy_arm"] is None


@pytest.mark.parametrize(("taker", "reference", "share"), [(5.0, 4.0, 0.5), (5.0, 4.8, 2.5),
                                                           (10.0, 9.97, None), (10.0, 10.0, None), (5.0, 6.0, None)])
def test_a_captured_share_is_given_only_for_a_gap_larger_than_the_runs_noise(
        taker: float, reference: float, share: float | None) -> None:
    """A policy at 4.5 bps captures half of a 1 bp gap; of a 0.03 bps gap (spot: taking is about as cheap as the best
    fixed arm) a share would measure the seed-to-seed noise (-2623% in a report), so there is none."""
    got = captured_share(4.5, taker, reference)
    assert got == (None if share is None else pytest.approx(share))

