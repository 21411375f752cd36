"""Cross-references and ordered pairs: a name outside the universe or a low end above its high end is refused."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import config_issues, edit_config


def _set(*keys: str, value: Any) -> Callable[[Any], None]:
    def edit(data: Any) -> None:
        for key in keys[:-1]:
            data = data[key]
        data[keys[-1]] = value
    return edit


@pytest.mark.parametrize(("file", "keys", "value", "expected"), [
    ("risk_limits.json", ("restricted_symbols",), ["BTCUSDT", "DOGEUSDT"],
     "risk_limits.json: $.restricted_symbols[1]: DOGEUSDT is not in strategy_config.json universe"),
    ("router.json", ("simulation", "synthetic_market", "symbols"), {"BTCUSDT": 60000.0, "XRPUSDT": 0.5},
     "router.json: $.simulation.synthetic_market.symbols.XRPUSDT: XRPUSDT is not in strategy_config.json universe"),
    ("risk_limits.json", ("min_notional", "per_symbol_usd", "SOLUSDT"), 5.0,
     "risk_limits.json: $.min_notional.per_symbol_usd.SOLUSDT: SOLUSDT is not in strategy_config.json universe"),
])
def test_a_symbol_outside_the_universe_is_named(config_dir: Path, file: str, keys: tuple[str, ...], value: Any,
                                                 expected: str) -> None:
    edit_config(config_dir, file, _set(*keys, value=value))
    assert config_issues(config_dir) == [expected]


@pytest.mark.parametrize(("file", "keys", "value", "expected"), [
    ("risk_limits.json", ("circuit_breakers", "daily_loss_pct"), 0.5,
     "risk_limits.json: $.circuit_breakers.daily_loss_pct: 0.5 must be at most weekly_loss_pct 0.07"),
    ("strategy_config.json", ("sizing", "buckets", "SPOT", "floor_usd"), 3000.0,
     "strategy_config.json: $.sizing.buckets.SPOT.floor_usd: 3000.0 must be at most cap_usd 2000.0"),
    ("router.json", ("simulation", "rule_policy", "base_offset_bps"), 9.0,
     "router.json: $.simulation.rule_policy.base_offset_bps: 9.0 must be at most max_offset_bps 8.0"),
    ("router.json", ("simulation", "intents", "notional_min_usd"), 500.0,
     "router.json: $.simulation.intents.notional_min_usd: 500.0 must be at most notional_max_usd 400.0"),
    ("tuner.json", ("reward_band", "min_cost_bps"), 200.0,
     "tuner.json: $.reward_band.min_cost_bps: 200.0 must be below max_cost_bps 200.0"),
    ("executor.json", ("live", "backoff_initial_ms"), 9000.0,
     "executor.json: $.live.backoff_initial_ms: 9000.0 must be at most backoff_max_ms 5000.0"),
])
def test_a_low_end_above_its_high_end_is_named(config_dir: Path, file: str, keys: tuple[str, ...], value: Any,
                                                expected: str) -> None:
    edit_config(config_dir, file, _set(*keys, value=value))
    assert config_issues(config_dir) == [expected]


@pytest.mark.parametrize(("knob", "band", "expected"), [
    ("reprice_attempts", {"min": 0, "max": 500},
     "[0.0, 500.0] is outside the range static_policy.reprice_attempts may take [0, 100]"),
    ("taker_bias", {"min": -0.5, "max": 1.0},
     "[-0.5, 1.0] is outside the range static_policy.taker_bias may take [0.0, 1.0]"),
])
def test_policy_bounds_stay_inside_what_the_static_policy_may_take(config_dir: Path, knob: str,
                                                                   band: dict[str, float], expected: str) -> None:
    """A learned policy inside the bounds must be a valid static policy: the bounds cannot widen a range."""
    edit_config(config_dir, "router.json", _set("policy_bounds", knob, value=band))
    assert config_issues(config_dir) == [f"router.json: $.policy_bounds.{knob}: {expected}"]
