"""The main job's shadow scenario on a small synthetic market: the shadow phase sends exactly what the
champion alone sends, the switch to live (command or gate), the JSON line's shadow block, the journal,
the plots, and bad input."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import msgspec
import pytest

from router_tuner.cli.main import main
from router_tuner.config.loader import load_config
from router_tuner.config.models import ConfigBundle
from router_tuner.executor.journal import Journal
from router_tuner.router.events import ShadowDecision
from router_tuner.simulation.intents import intent_stream
from router_tuner.simulation.job import SimulationOptions, simulate
from router_tuner.simulation.markets import synthetic_markets
from router_tuner.simulation.report.page import summary_dict, write_report
from router_tuner.simulation.runner import intent_index, route_intents
from router_tuner.simulation.shadow import (
    CHAMPION_ALL_ORDERS,
    CHAMPION_SAME_ORDERS,
    LIVE_PHASE,
    STATIC_SAME_ORDERS,
    ExploringChampion,
    champion_for,
    rolling_agreement,
    run_shadow_scenario,
    sent_fingerprint,
    shadow_phase_matches_champion,
)
from router_tuner.tuner.arms import Arm
from router_tuner.tuner.factory import build_grid
from tests.simulation.page_parts import axis_titles, parse_page

ORDERS = 120
SYMBOL = "BTCUSDT"


def _with_scenario(config: ConfigBundle, **changes: object) -> ConfigBundle:
    scenario = msgspec.structs.replace(config.router.simulation.shadow_scenario, **changes)
    simulation = msgspec.structs.replace(config.router.simulation, shadow_scenario=scenario)
    return msgspec.structs.replace(config, router=msgspec.structs.replace(config.router, simulation=simulation))


def _with_gate(config: ConfigBundle, **changes: object) -> ConfigBundle:
    shadow = msgspec.structs.replace(config.tuner.deployment.shadow, **changes)
    deployment = msgspec.structs.replace(config.tuner.deployment, shadow=shadow)
    return msgspec.structs.replace(config, tuner=msgspec.structs.replace(config.tuner, deployment=deployment))


@pytest.fixture(scope="module")
def config() -> ConfigBundle:
    return load_config()


@pytest.fixture(scope="module")
def market(config):
    return synthetic_markets(config, (SYMBOL,), 5)[0]


@pytest.fixture(scope="module")
def intents(config, market):
    return intent_stream(market, ORDERS, config.router.simulation.intents, seed=5)


@pytest.fixture(scope="module")
def scenario(config, market, intents):
    return run_shadow_scenario(market, intents, config, seed=5)


def test_shadow_phase_sends_exactly_what_the_champion_alone_sends(config, market, intents, scenario) -> None:
    champion = champion_for(SYMBOL, config, seed=5)
    alone = route_intents(market, intents, "alone", decide=lambda intent, order, now_ns: champion.decide(intent.index),
                          observe=lambda intent, event: None, config=config, seed=5)
    by_index = {intent_index(e): e for e in alone.events}
    shadow = [e for e in scenario.run.events if intent_index(e) in scenario.shadow_intents]
    assert len(shadow) == scenario.shadow_orders > 0
    for event in shadow:
        other = by_index[intent_index(event)]
        assert (event.arm, event.propensity, event.maker_offset_bps, event.taker_bias) == (
            other.arm, other.propensity, other.maker_offset_bps, other.taker_bias)
        assert [(f.price, f.qty, f.liquidity, f.ts_ns) for f in event.fills] == [
            (f.price, f.qty, f.liquidity, f.ts_ns) for f in other.fills]
        assert sent_fingerprint(event) == sent_fingerprint(other)
    assert shadow_phase_matches_champion(scenario)
    # the champion explored: more than one arm in the shadow phase, each with its exact propensity
    assert len({e.arm for e in shadow}) > 1
    assert all(e.propensity == pytest.approx(champion.propensity(Arm(e.maker_offset_bps, e.taker_bias)))
               for e in shadow)


def test_switch_by_command_then_the_tuner_routes(config, scenario) -> None:
    assert scenario.went_live_by == "command"  # 120 orders: the gate (min 300 outcomes) is never due
    assert scenario.command_go_live_after_orders == ORDERS // 2 == scenario.shadow_orders
    assert scenario.at_go_live is not None and scenario.at_go_live.candidate_arm in build_grid(config.tuner,
                                                                                               config.router)
    assert len(scenario.decisions) == scenario.shadow_orders
    assert all(isinstance(d, ShadowDecision) and d.symbol == SYMBOL for d in scenario.decisions)
    live = scenario.phase_events(scenario.run, live=True)
    assert len(live) == ORDERS - scenario.shadow_orders
    assert all(e.policy_id == f"shadow-{scenario.learner}-{SYMBOL}" for e in live)
    assert all(e.policy_id == f"champion-{SYMBOL}" for e in scenario.phase_events(scenario.run, live=False))


def test_gate_switches_automatically_when_it_passes(config, market, intents) -> None:
    easy = _with_gate(_with_scenario(config, command_go_live_after_share=None), min_agreement=0.01,
                      agreement_window=10, min_outcomes=20, gate_every_n_outcomes=10, max_shortfall_bps=50.0)
    scenario = run_shadow_scenario(market, intents, easy, seed=5)
    assert scenario.went_live_by == "gate" and scenario.at_go_live is not None and scenario.at_go_live.passes
    assert scenario.gate_checks[-1].evaluation is scenario.at_go_live
    assert scenario.gate_checks[-1].after_orders == scenario.shadow_orders
    assert shadow_phase_matches_champion(scenario)


def test_never_live_without_command_when_the_gate_cannot_pass(config, market, intents) -> None:
    scenario = run_shadow_scenario(market, intents, _with_scenario(config, command_go_live_after_share=None), seed=5)
    assert scenario.went_live_by is None and scenario.at_go_live is None
    assert scenario.shadow_orders == ORDERS and not scenario.phase_events(scenario.run, live=True)


def test_rolling_agreement_matches_the_gate_window() -> None:
    decisions = [msgspec.structs.replace(_decision(), agrees=a) for a in (True, False, True, True, False)]
    assert rolling_agreement(decisions, 2).tolist() == [1.0, 0.5, 0.5, 1.0, 0.5]
    assert rolling_agreement(decisions, 10).tolist() == pytest.approx([1.0, 0.5, 2 / 3, 0.75, 0.6])
    assert rolling_agreement([], 3).size == 0
    with pytest.raises(ValueError, match="window"):
        rolling_agreement(decisions, 0)


def _decision() -> ShadowDecision:
    return ShadowDecision(schema_version=1, intent_id="x:1", symbol=SYMBOL, ts_ns=1, acting_policy_id="c",
                          acting_policy_version=0, acting_arm="o1.00_b0.00", acting_propensity=0.9,
                          proposed_arm="o1.00_b0.00", proposed_propensity=0.5, agrees=True, learner="thompson")


def test_exploring_champion_refuses_bad_input(config) -> None:
    arms = [Arm(1.0, 0.0)]
    for share in (0.0, 1.0, -0.1):
        with pytest.raises(ValueError, match="explore_share"):
            ExploringChampion(SYMBOL, config.router, arms, share, seed=1)
    with pytest.raises(ValueError, match="at least one arm"):
        ExploringChampion(SYMBOL, config.router, [], 0.2, seed=1)
    champ = ExploringChampion(SYMBOL, config.router, [Arm(2.0, 0.0), Arm(4.0, 0.0)], 0.2, seed=1)
    assert champ.propensity(Arm(1.0, 0.0)) == pytest.approx(0.8)  # the static arm is not explored here
    assert champ.propensity(Arm(2.0, 0.0)) == pytest.approx(0.1) and champ.propensity(Arm(0.0, 0.0)) == 0.0
    assert champ.decide(3) == champ.decide(3)


def test_unknown_scenario_symbol_is_refused(config, market, intents) -> None:
    with pytest.raises(ValueError, match="distinct"):
        SimulationOptions(symbols=None, orders_per_symbol=5, seed=1, data_dir=None, learners=(),
                          shadow_symbols=(SYMBOL, SYMBOL))
    stranger = dataclasses.replace(market, symbol="DOGEUSDT")
    with pytest.raises(ValueError, match="universe"):
        run_shadow_scenario(stranger, intents, config, seed=5)


@pytest.fixture()
def no_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ROUTER_TUNER_DATA", "")
    monkeypatch.setattr("router_tuner.router.market.binance._DEFAULT_DATA_DIR", tmp_path / "none")


def test_cli_json_line_shadow_block(tmp_path: Path, no_data: None, capsys) -> None:
    code = main(["simulate", "--orders", "40", "--symbols", "ETHUSDT", "--seed", "4", "--out", str(tmp_path),
                 "--no-mlflow", "--json", "--learners", "thompson", "--shadow-symbols", "ETHUSDT", "BTCUSD_PERP"])
    captured = capsys.readouterr()
    assert code == 0
    line = json.loads(captured.out.strip().splitlines()[-1])
    shadow = line["shadow"]
    assert shadow["not_simulated"] == ["BTCUSD_PERP"] and set(shadow["symbols"]) == {"ETHUSDT"}
    block = shadow["symbols"]["ETHUSDT"]
    assert block["learner"] == line["default_learner"] == "structured" and block["orders"] == 40
    assert block["went_live_by"] == "command" and block["went_live_after_orders"] == block["shadow_orders"] == 20
    assert block["live_orders"] == 20 and block["shadow_records"] == 20
    assert block["shadow_phase_matches_champion"] is True
    assert 0.0 <= block["agreement_at_go_live"] <= 1.0 and block["agreement_window"] >= 1
    at = block["at_go_live"]
    assert {"candidate_arm", "agreement", "passes", "reason", "estimate", "acting"} <= set(at)
    for key in ("estimate", "acting"):
        if at[key] is not None:
            assert at[key]["ci_low_bps"] <= at[key]["ci_high_bps"] and "ess" in at[key]
    assert set(block["costs"]) == {LIVE_PHASE, CHAMPION_SAME_ORDERS, STATIC_SAME_ORDERS, CHAMPION_ALL_ORDERS}
    for name, row in block["costs"].items():
        assert row["orders"] == (40 if name == CHAMPION_ALL_ORDERS else 20)
        assert row["ci_low_bps"] <= row["mean_cost_bps"] <= row["ci_high_bps"]
    assert {"blocked_decisions", "charged_bps_per_order", "max_extra_cost_usd_per_day"} <= set(block["budget"])
    assert "shadow scenario ETHUSDT: live after 20 orders by command" in captured.out
    assert "not simulated: BTCUSD_PERP" in captured.out
    with Journal(tmp_path / "simulation.sqlite", readonly=True) as journal:
        assert journal.count("shadow") == 20
        intent_ids = {e.intent_id for e in journal.read("router", symbol="ETHUSDT")}
    assert sum(i.startswith("shadow_structured:") for i in intent_ids) == 40
    assert sum(i.startswith("champion:") for i in intent_ids) == 40


def test_report_shows_the_scenario_with_real_charts(config, tmp_path: Path) -> None:
    options = SimulationOptions(symbols=(SYMBOL,), orders_per_symbol=60, seed=2, data_dir=None, learners=(),
                                shadow_symbols=(SYMBOL,))
    result = simulate(config, synthetic_markets(config, options.symbols, options.seed), options,
                      build_grid(config.tuner, config.router), data_source="synthetic")
    report = write_report(result, tmp_path)
    parts = parse_page(report.html.read_text())
    agreement, costs = parts.figures[f"{SYMBOL}-shadow-agreement"], parts.figures[f"{SYMBOL}-shadow-costs"]
    records = summary_dict(result)["shadow"]["symbols"][SYMBOL]["shadow_records"]
    assert len(agreement["data"][0]["x"]) == records > 0 and max(agreement["data"][0]["y"]) <= 1.0
    assert "learner live" in costs["data"][1]["y"] and "champion, same orders" in costs["data"][1]["y"]
    assert all(axis_titles(agreement).values()) and all(axis_titles(costs).values())
    markdown = report.markdown.read_text()
    assert "Shadow scenario: shadow first, then live" in markdown and "OPE at go-live" in markdown
    assert "20% uniform exploration" in markdown and "by the go-live command after 30 orders" in markdown
    assert summary_dict(result)["shadow"]["symbols"][SYMBOL]["went_live_by"] == "command"


def test_report_without_scenario_says_so(config, tmp_path: Path) -> None:
    options = SimulationOptions(symbols=(SYMBOL,), orders_per_symbol=20, seed=2, data_dir=None, learners=(),
                                shadow_symbols=("BTCUSD_PERP",))
    result = simulate(config, synthetic_markets(config, options.symbols, options.seed), options,
                      build_grid(config.tuner, config.router), data_source="synthetic")
    report = write_report(result, tmp_path)
    assert not [c for c in parse_page(report.html.read_text()).ids("chart") if "shadow" in c]
    text = report.markdown.read_text()
    assert "No shadow scenario ran" in text and "not simulated in this run: BTCUSD_PERP" in text
    assert summary_dict(result)["shadow"] == {"symbols": {}, "not_simulated": ["BTCUSD_PERP"]}


def test_an_ope_value_on_one_event_is_shown_without_an_interval() -> None:
    """The gate's OPE value at go-live resting on a single logged event carrying weight (a short run: 40 orders,
    ESS 1) was printed, and tabled in the report, as `0.18 [0.18, 0.18]`, as if the cost were known exactly."""
    from router_tuner.cli.simulate import _shadow_line
    from router_tuner.simulation.report.page import ope_estimate_text

    one = {"cost_bps": 0.1805, "ci_low_bps": 0.1805, "ci_high_bps": 0.1805, "ess": 1.0, "n_nonzero_weight": 1}
    many = {**one, "ci_low_bps": 0.1, "ci_high_bps": 0.3, "ess": 19.0, "n_nonzero_weight": 19}
    assert ope_estimate_text(one) == "0.18 [no interval: 1 logged event carrying weight]"
    assert ope_estimate_text(many) == "0.18 [0.10, 0.30]" and ope_estimate_text(None) == "n/a"
    cost = {"orders": 20, "mean_cost_bps": 3.0}
    block = {"went_live_by": "command", "went_live_after_orders": 20, "shadow_orders": 20,
             "at_go_live": {"candidate_arm": "o2.00_b0.00", "agreement": 0.25, "estimate": one},
             "costs": {LIVE_PHASE: cost, CHAMPION_SAME_ORDERS: cost}}
    assert "OPE of o2.00_b0.00 then 0.18 [no interval: 1 logged event carrying weight] bps" in _shadow_line(block)
    assert "[0.18, 0.18]" not in _shadow_line(block)
