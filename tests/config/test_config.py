"""The strict loader: every kind of bad config fails with the file and the key path named."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from router_tuner.config import ConfigError, load_config, snapshot
from tests.conftest import config_issues, edit_config


def test_defaults_load_and_snapshot_round_trips_to_plain_data() -> None:
    bundle = load_config()
    assert bundle.risk.max_concurrent_positions >= 1
    snap = snapshot(bundle)
    assert set(snap) == {"risk_limits", "strategy_config", "router", "tuner", "executor"}
    json.dumps(snap)


def test_duplicate_key_deep_inside_names_file_and_path(config_dir: Path) -> None:
    path = config_dir / "risk_limits.json"
    text = path.read_text().replace('"max_nav_pct": 0.25,', '"max_nav_pct": 0.25, "max_nav_pct": 0.5,')
    path.write_text(text)
    assert config_issues(config_dir) == ["risk_limits.json: $.symbol_caps.max_nav_pct: duplicate key"]


def test_duplicate_key_at_top_level_is_found(config_dir: Path) -> None:
    path = config_dir / "tuner.json"
    doubled = path.read_text().replace('"learner": "structured",', '"learner": "structured", "learner": "ucb",')
    path.write_text(doubled)
    assert config_issues(config_dir) == ["tuner.json: $.learner: duplicate key"]


def test_unknown_key_is_named(config_dir: Path) -> None:
    edit_config(config_dir, "router.json", lambda d: d["static_policy"].update(maker_ofset_bps=1.0))
    [issue] = config_issues(config_dir)
    assert issue.startswith("router.json: $.static_policy:") and "maker_ofset_bps" in issue


def test_missing_key_is_named(config_dir: Path) -> None:
    edit_config(config_dir, "risk_limits.json", lambda d: d["nav"].pop("max_age_s"))
    [issue] = config_issues(config_dir)
    assert issue.startswith("risk_limits.json: $.nav:") and "max_age_s" in issue


def test_wrong_type_names_the_key_path(config_dir: Path) -> None:
    edit_config(config_dir, "risk_limits.json", lambda d: d.update(max_concurrent_positions="4"))
    assert config_issues(config_dir) == [
        "risk_limits.json: $.max_concurrent_positions: Expected `int`, got `str`"]


def test_wrong_type_inside_a_map_names_the_entry(config_dir: Path) -> None:
    edit_config(config_dir, "risk_limits.json", lambda d: d["min_notional"]["per_symbol_usd"].update(ETHUSDT="20"))
    assert config_issues(config_dir) == [
        "risk_limits.json: $.min_notional.per_symbol_usd.ETHUSDT: Expected `float`, got `str`"]


def test_out_of_range_value(config_dir: Path) -> None:
    edit_config(config_dir, "risk_limits.json", lambda d: d.update(trade_equity_cap_pct=1.5))
    [issue] = config_issues(config_dir)
    assert issue.startswith("risk_limits.json: $.trade_equity_cap_pct:") and "<= 1.0" in issue


def test_sizing_floor_under_min_notional_names_both_files(config_dir: Path) -> None:
    edit_config(config_dir, "strategy_config.json", lambda d: d["sizing"]["buckets"]["CORE"].update(floor_usd=50.0))
    issues = config_issues(config_dir)
    assert "strategy_config.json: $.sizing.buckets.CORE.floor_usd: sizing floor 50.0 USD is below the " \
           "min_notional 100.0 USD that applies to BTCUSDT (risk_limits.json)" in issues


def test_concurrency_outside_its_home_is_refused(config_dir: Path) -> None:
    edit_config(config_dir, "strategy_config.json", lambda d: d["sizing"].update(max_concurrent_positions=8))
    issues = config_issues(config_dir)
    assert any(i.startswith("strategy_config.json: $.sizing.max_concurrent_positions: concurrency is "
                            "defined in one place only") for i in issues)


def test_errors_from_several_files_are_all_reported(config_dir: Path) -> None:
    edit_config(config_dir, "tuner.json", lambda d: d.update(learner="magic"))
    edit_config(config_dir, "router.json", lambda d: d.update(position_mode="both"))
    issues = config_issues(config_dir)
    assert [i.split(":")[0] for i in issues] == ["router.json", "tuner.json"]


def test_cross_file_arm_outside_policy_bounds(config_dir: Path) -> None:
    edit_config(config_dir, "tuner.json", lambda d: d["arms"].update(maker_offsets_bps=[0.0, 12.0]))
    assert config_issues(config_dir) == [
        "tuner.json: $.arms.maker_offsets_bps[1]: 12.0 is outside router.json policy_bounds [-1.0, 10.0]"]


def test_static_policy_outside_bounds(config_dir: Path) -> None:
    edit_config(config_dir, "router.json", lambda d: d["static_policy"].update(maker_ttl_ms=50.0))
    assert config_issues(config_dir) == [
        "router.json: $.static_policy.maker_ttl_ms: 50.0 is outside policy_bounds [100.0, 30000.0]"]


def test_quote_without_close_position_support(config_dir: Path) -> None:
    edit_config(config_dir, "router.json", lambda d: d.update(close_position_quotes=["USDT", "USD"]))
    issues = config_issues(config_dir)
    assert any("BTCUSDC is quoted in USDC" in i for i in issues)


def test_tier_without_cap_or_bucket(config_dir: Path) -> None:
    edit_config(config_dir, "strategy_config.json", lambda d: d["universe"]["BTCUSDT"].update(tier="ALT"))
    issues = config_issues(config_dir)
    assert "strategy_config.json: $.universe.BTCUSDT.tier: tier 'ALT' has no entry in risk_limits.json " \
           "tier_caps" in issues


def test_override_for_symbol_outside_universe(config_dir: Path) -> None:
    edit_config(config_dir, "risk_limits.json", lambda d: d["leverage"]["per_symbol"].update(DOGEUSDT=2.0))
    assert config_issues(config_dir) == [
        "risk_limits.json: $.leverage.per_symbol.DOGEUSDT: DOGEUSDT is not in strategy_config.json universe"]


def test_missing_file_and_invalid_json(config_dir: Path) -> None:
    (config_dir / "tuner.json").unlink()
    (config_dir / "router.json").write_text("{not json")
    issues = config_issues(config_dir)
    assert issues[0].startswith("router.json: $: not valid JSON")
    assert issues[1].startswith("tuner.json: $: missing file")


def test_json_the_parser_cannot_hold_is_an_issue_not_a_crash(config_dir: Path) -> None:
    """Nesting past the recursion limit and an integer of thousands of digits are a file's problem."""
    (config_dir / "tuner.json").write_text("[" * 100_000 + "]" * 100_000)
    (config_dir / "router.json").write_text('{"simulation": ' + "9" * 5000 + "}")
    issues = config_issues(config_dir)
    assert issues[0] == "router.json: $: not valid JSON: a number literal of thousands of digits"
    assert issues[1] == "tuner.json: $: not valid JSON: nested too deeply for a configuration file"


def test_a_directory_where_the_file_belongs_is_named_as_such(config_dir: Path) -> None:
    (config_dir / "tuner.json").unlink()
    (config_dir / "tuner.json").mkdir()
    assert config_issues(config_dir)[0].startswith("tuner.json: $: not a regular file")


def test_directory_that_does_not_exist(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not a directory"):
        load_config(tmp_path / "nope")


def test_every_problem_in_one_file_is_listed(config_dir: Path) -> None:
    def break_four_things(d: dict) -> None:
        d["nav"]["max_age_s"] = -1.0
        d["leverage"]["max_global"] = "3"
        d["cooldowns"]["after_stop_minutes"] = 15
        del d["restricted_symbols"]

    edit_config(config_dir, "risk_limits.json", break_four_things)
    issues = config_issues(config_dir)
    assert [i.split(": ")[1] for i in issues] == ["$.nav.max_age_s", "$.leverage.max_global", "$.cooldowns", "$"]
    assert "after_stop_minutes" in issues[2] and "restricted_symbols" in issues[3]


def test_shadow_scenario_symbols_must_be_in_the_universe(config_dir: Path) -> None:
    edit_config(config_dir, "router.json", lambda d: d["simulation"]["shadow_scenario"].update(symbols=["XRPUSDT"]))
    assert config_issues(config_dir) == [
        "router.json: $.simulation.shadow_scenario.symbols[0]: XRPUSDT is not in strategy_config.json universe"]


def test_gate_estimator_must_be_computed_and_shadow_symbols_traded(config_dir: Path) -> None:
    def edit(d: dict) -> None:
        d["ope"]["estimators"] = ["ips", "snips"]
        d["deployment"]["gate_estimator"] = "dr"
        d["deployment"]["shadow_symbols"] = ["BTCUSDT", "DOGEUSDT"]

    edit_config(config_dir, "tuner.json", edit)
    assert config_issues(config_dir) == [
        "tuner.json: $.deployment.gate_estimator: 'dr' is not among $.ope.estimators ['ips', 'snips']: "
        "the gates could not be computed",
        "tuner.json: $.deployment.shadow_symbols[1]: DOGEUSDT is not in strategy_config.json universe"]


def test_a_shadow_symbol_the_executor_does_not_trade_is_refused_for_live_adaptive_routing(
        config_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """ETHUSDC (in the universe, not an executor instrument) passed: shadow mode held nothing back, and ETHUSDT, the
    symbol meant, routed live with its learner exploring."""
    from router_tuner.cli.main import main
    from router_tuner.tuner.factory import live_tuner_issues

    edit_config(config_dir, "tuner.json", lambda d: d["deployment"].update(shadow_symbols=["ETHUSDT", "ETHUSDC"]))
    expected = ("tuner.json: $.deployment.shadow_symbols[1]: ETHUSDC is not traded by the executor (executor.json "
                "instruments: BTCUSDT ETHUSDT), so it would be in shadow mode for nothing, and the symbol meant (a "
                "typo?) would route live, its learner exploring; name a traded symbol")
    assert [str(issue) for issue in live_tuner_issues(load_config(config_dir))] == [expected]
    assert main(["config", "check", str(config_dir)]) == 2
    assert expected in capsys.readouterr().err


@pytest.mark.parametrize("command", [["config", "check"], ["simulate", "--no-mlflow", "--orders", "8"],
                                     ["sweep", "--no-mlflow", "--data", "synthetic", "--orders", "8"]])
def test_offsets_the_arm_ids_cannot_tell_apart_are_one_configuration_problem(
        config_dir: Path, tmp_path: Path, command: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    """0 beside 1e-300 (both o0.00) was refused at ``$.learner`` ("change $.arms or the learner"), and by `simulate`
    once per learner asked for."""
    from router_tuner.cli.main import main

    edit_config(config_dir, "tuner.json", lambda d: d["arms"].update(maker_offsets_bps=[0.0, 0.5, 1.0, 2.0, 1e-300]))
    argv = ([*command, str(config_dir)] if command[0] == "config"
            else [*command, "--out", str(tmp_path / "out"), "--config", str(config_dir)])
    assert main(argv) == 2
    assert ("tuner.json: $.arms: offsets_bps contains duplicates (at two-decimal precision): [0.0, 0.5, 1.0, 2.0, "
            "1e-300]: arms are told apart to two decimals (o1.00_b0.00), so values less than 0.005 apart are one arm; "
            "keep one of them") in capsys.readouterr().err


def test_universe_contract_spec_is_loaded() -> None:
    universe = load_config().strategy.universe
    assert (universe["BTCUSD_PERP"].contract_type, universe["BTCUSD_PERP"].contract_size) == ("inverse", 100.0)
    assert (universe["ETHUSD_PERP"].contract_type, universe["ETHUSD_PERP"].contract_size) == ("inverse", 10.0)
    assert (universe["BTCUSDT"].contract_type, universe["BTCUSDT_SPOT"].contract_type) == ("linear", "spot")


def test_coin_m_entry_must_be_inverse(config_dir: Path) -> None:
    edit_config(config_dir, "strategy_config.json",
                lambda d: d["universe"]["BTCUSD_PERP"].update(contract_type="linear"))
    assert config_issues(config_dir) == [
        "strategy_config.json: $.universe.BTCUSD_PERP.contract_type: market 'cm' trades inverse contracts, "
        "got 'linear'"]


def test_linear_market_cannot_be_inverse(config_dir: Path) -> None:
    """Both checks speak: the market trades linear contracts, and the executor (which lists BTCUSDT) refuses
    inverse ones."""
    edit_config(config_dir, "strategy_config.json", lambda d: d["universe"]["BTCUSDT"].update(contract_type="inverse"))
    assert config_issues(config_dir) == [
        "strategy_config.json: $.universe.BTCUSDT.contract_type: market 'usdm' trades linear contracts, "
        "got 'inverse'",
        "executor.json: $.instruments.BTCUSDT: BTCUSDT is an inverse contract: the executor sizes orders and "
        "books PnL for linear contracts only, so it refuses to trade it"]


def test_router_json_has_no_second_home_for_contract_values(config_dir: Path) -> None:
    """An inverse contract's USD value lives in the universe only (DESIGN rule 5): the old key is unknown."""
    edit_config(config_dir, "router.json", lambda d: d["simulation"]["intents"].update(
        inverse_contract_value_usd={"BTCUSD_PERP": 100.0}))
    [issue] = config_issues(config_dir)
    assert "router.json" in issue and "inverse_contract_value_usd" in issue


@pytest.mark.parametrize("size", [0.0, -100.0, 2e6])
def test_contract_size_is_ranged(config_dir: Path, size: float) -> None:
    edit_config(config_dir, "strategy_config.json", lambda d: d["universe"]["ETHUSD_PERP"].update(contract_size=size))
    [issue] = config_issues(config_dir)
    assert issue.startswith("strategy_config.json: $.universe.ETHUSD_PERP.contract_size:")


def test_contract_size_is_required(config_dir: Path) -> None:
    edit_config(config_dir, "strategy_config.json", lambda d: d["universe"]["ETHUSDT"].pop("contract_size"))
    [issue] = config_issues(config_dir)
    assert "contract_size" in issue and "ETHUSDT" in issue
