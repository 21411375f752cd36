"""RouterPolicy: built from the static config, validated against the bounds, versioned by the tuner."""

from __future__ import annotations

import dataclasses
import math
import re

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from router_tuner.config.loader import load_config
from router_tuner.config.models import RouterConfig
from router_tuner.router.policy import STATIC_ARM, PolicyError, RouterPolicy


@pytest.fixture(scope="module")
def router_config() -> RouterConfig:
    return load_config().router


def test_from_static_copies_every_knob(router_config: RouterConfig) -> None:
    policy = RouterPolicy.from_static("ETHUSDC", router_config)
    static = router_config.static_policy
    assert policy.symbol == "ETHUSDC" and policy.policy_id == "static-ETHUSDC" and policy.version == 0
    assert (policy.arm, policy.propensity) == (STATIC_ARM, 1.0)
    for knob in ("maker_first", "maker_offset_bps", "taker_bias", "maker_ttl_ms", "reprice_attempts",
                 "reprice_step_bps", "post_only_retry_limit", "fallback_mode", "max_taker_slippage_bps",
                 "min_spread_bps", "max_spread_bps"):
        assert getattr(policy, knob) == getattr(static, knob), knob


@given(propensity=st.floats(min_value=0.0, max_value=1.0, exclude_min=True))
def test_with_propensity_is_replace_without_the_full_check(propensity: float) -> None:
    policy = RouterPolicy.from_static("BTCUSDT", load_config().router).with_arm("a", 1.0, 0.1, 1.0, 3)
    copy = policy.with_propensity(propensity)
    assert copy == dataclasses.replace(policy, propensity=propensity) and type(copy) is RouterPolicy
    assert policy.propensity == 1.0, "the original is untouched"
    with pytest.raises(dataclasses.FrozenInstanceError):
        copy.propensity = 0.5  # type: ignore[misc]


@pytest.mark.parametrize("propensity", [0.0, -0.1, 1.5, math.nan, math.inf, True, "0.5", None])
def test_with_propensity_refuses_what_is_not_a_probability(router_config: RouterConfig, propensity: object) -> None:
    policy = RouterPolicy.from_static("BTCUSDT", router_config)
    with pytest.raises(PolicyError, match="propensity must be in"):
        policy.with_propensity(propensity)  # type: ignore[arg-type]


def test_policy_is_frozen(router_config: RouterConfig) -> None:
    policy = RouterPolicy.from_static("BTCUSDT", router_config)
    with pytest.raises(dataclasses.FrozenInstanceError):
        policy.taker_bias = 0.5  # type: ignore[misc]


@pytest.mark.parametrize(("knob", "value"), [
    ("maker_offset_bps", 11.0), ("maker_offset_bps", -2.0), ("maker_ttl_ms", 50.0), ("reprice_attempts", 6),
    ("reprice_step_bps", 5.5), ("max_taker_slippage_bps", 51.0), ("taker_bias", 1.0),
])
def test_validate_names_the_knob_outside_bounds(router_config: RouterConfig, knob: str, value: float) -> None:
    policy = RouterPolicy.from_static("BTCUSDT", router_config)
    bounds = router_config.policy_bounds
    if knob == "taker_bias":  # the default bound is the whole [0, 1]; tighten it to exercise the check
        bounds = msgspec.structs.replace(bounds, taker_bias=msgspec.structs.replace(bounds.taker_bias, max=0.5))
    moved = dataclasses.replace(policy, **{knob: value})
    with pytest.raises(PolicyError, match=re.escape(f"{knob}={value} is outside policy_bounds")):
        moved.validate(bounds)


def test_validate_returns_the_policy_inside_bounds(router_config: RouterConfig) -> None:
    policy = RouterPolicy.from_static("BTCUSDT", router_config)
    assert policy.validate(router_config.policy_bounds) is policy


@pytest.mark.parametrize(("knob", "value", "message"), [
    ("taker_bias", 1.5, "taker_bias must be a probability"),
    ("propensity", 0.0, "propensity must be in"),
    ("maker_ttl_ms", 0.0, "maker_ttl_ms must be > 0"),
    ("fallback_mode", "market", "fallback_mode must be one of"),
    ("reprice_attempts", -1, "reprice_attempts must be an integer"),
    ("post_only_retry_limit", True, "post_only_retry_limit must be an integer"),
    ("maker_offset_bps", float("nan"), "maker_offset_bps must be a finite number"),
    ("min_spread_bps", 30.0, "min_spread_bps < max_spread_bps"),
    ("arm", "", "arm must be a non-empty string"),
    ("max_taker_slippage_bps", 0.0, "max_taker_slippage_bps must be > 0"),
])
def test_construction_rejects_nonsense(router_config: RouterConfig, knob: str, value: object,
                                       message: str) -> None:
    policy = RouterPolicy.from_static("BTCUSDT", router_config)
    with pytest.raises(PolicyError, match=message):
        dataclasses.replace(policy, **{knob: value})


def test_with_arm_makes_a_new_version_and_keeps_the_rest(router_config: RouterConfig) -> None:
    policy = RouterPolicy.from_static("BTCUSDT", router_config)
    tuned = policy.with_arm("o0.5_b0.2", maker_offset_bps=0.5, taker_bias=0.2, propensity=0.3, version=3)
    assert (tuned.arm, tuned.maker_offset_bps, tuned.taker_bias, tuned.propensity, tuned.version) == (
        "o0.5_b0.2", 0.5, 0.2, 0.3, 3)
    assert tuned.maker_ttl_ms == policy.maker_ttl_ms and tuned.policy_id == policy.policy_id
    assert policy.arm == STATIC_ARM  # the original is untouched
    assert tuned.validate(router_config.policy_bounds) is tuned


def test_with_arm_refuses_a_stale_version_and_bad_propensity(router_config: RouterConfig) -> None:
    policy = RouterPolicy.from_static("BTCUSDT", router_config).with_arm("a", 1.0, 0.0, 1.0, 2)
    with pytest.raises(PolicyError, match="must exceed 2"):
        policy.with_arm("b", 1.0, 0.0, 1.0, 2)
    with pytest.raises(PolicyError, match="propensity"):
        policy.with_arm("b", 1.0, 0.0, 1.5, 3)


def test_from_static_rejects_a_static_policy_outside_bounds(router_config: RouterConfig) -> None:
    bad = msgspec.structs.replace(router_config, static_policy=msgspec.structs.replace(
        router_config.static_policy, maker_offset_bps=20.0))
    with pytest.raises(PolicyError, match=re.escape("maker_offset_bps=20.0")):
        RouterPolicy.from_static("BTCUSDT", bad)


def test_as_params_lists_every_knob(router_config: RouterConfig) -> None:
    params = RouterPolicy.from_static("BTCUSDT", router_config).as_params()
    assert params["fallback_mode"] == "taker" and params["arm"] == STATIC_ARM
    assert set(params) == {f.name for f in dataclasses.fields(RouterPolicy)}
