"""A careless user against the tuner's numeric settings: values that passed ``config check`` and broke a run.

Each test is a case that went wrong before its fix: ``linucb_ridge`` 1e-300 or a ``linucb_context_scales`` value of
1e-300 passed ``config check``, made every LinUCB score NaN and ended ``simulate`` in "unexpected IndexError";
Thompson's prior pseudo-counts at 1e-300 both (or its prior noise at 1e-300 with ``burn_in_per_arm`` 0) ended it in
"unexpected ZeroDivisionError"; a prior cost outside the reward band and a structured memory shorter than the grid
loaded and made the learners explore for ever.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import msgspec
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from router_tuner.cli.main import BAD_INPUT, main
from router_tuner.config.loader import load_config
from router_tuner.config.models import ConfigBundle, ContextScalesConfig, LearnerParams
from router_tuner.features.context import Context
from router_tuner.tuner.arms import Arm
from router_tuner.tuner.factory import build_grid, build_learner
from router_tuner.tuner.learners.base import Learner
from router_tuner.tuner.learners.context import MIN_FEATURE_SCALE
from router_tuner.tuner.learners.linucb import MIN_RIDGE
from router_tuner.tuner.learners.thompson import MIN_PRIOR_NOISE_STD, MIN_PRIOR_PSEUDO_COUNT
from tests.conftest import DEFAULTS_DIR, edit_config
from tests.tuner.test_safety import safety_bundle
from tests.tuner.test_service import SYMBOL, event_for, new_service


def _lower_bound(model: type[msgspec.Struct], name: str) -> float:
    info = next(f.type for f in msgspec.inspect.type_info(model).fields if f.name == name)
    assert isinstance(info, msgspec.inspect.FloatType) and info.ge is not None
    return info.ge


@pytest.mark.parametrize(("key", "line"), [
    ("linucb_ridge", "tuner.json: $.learner_params.linucb_ridge: Expected `float` >= 1e-06"),
    ("linucb_context_scales.spread_scale_bps",
     "tuner.json: $.learner_params.linucb_context_scales.spread_scale_bps: Expected `float` >= 0.001"),
    ("linucb_context_scales.volatility_scale_bps",
     "tuner.json: $.learner_params.linucb_context_scales.volatility_scale_bps: Expected `float` >= 0.001"),
    ("linucb_context_scales.size_vs_touch_scale",
     "tuner.json: $.learner_params.linucb_context_scales.size_vs_touch_scale: Expected `float` >= 0.001"),
])
def test_a_linucb_value_that_made_every_score_nan_is_refused_by_config_check(
        config_dir: Path, capsys: pytest.CaptureFixture[str], key: str, line: str) -> None:
    def tiny(doc: dict) -> None:
        *parents, leaf = key.split(".")
        node = doc["learner_params"]
        for parent in parents:
            node = node[parent]
        node[leaf] = 1e-300
    edit_config(config_dir, "tuner.json", tiny)
    assert main(["config", "check", str(config_dir)]) == BAD_INPUT
    assert line in capsys.readouterr().err


def test_the_config_states_the_learners_linucb_bounds() -> None:
    """config does not import the tuner, so the bounds are literals there: they are the learner's."""
    assert _lower_bound(LearnerParams, "linucb_ridge") == MIN_RIDGE
    for name in ("spread_scale_bps", "volatility_scale_bps", "size_vs_touch_scale"):
        assert _lower_bound(ContextScalesConfig, name) == MIN_FEATURE_SCALE


def _linucb_at_its_bounds() -> Learner:
    """The configured LinUCB with the smallest ridge and scales the config accepts, and the widest bonus."""
    tuner = load_config(DEFAULTS_DIR).tuner
    scales = ContextScalesConfig(spread_scale_bps=MIN_FEATURE_SCALE, volatility_scale_bps=MIN_FEATURE_SCALE,
                                 size_vs_touch_scale=MIN_FEATURE_SCALE)
    params = msgspec.structs.replace(tuner.learner_params, linucb_ridge=MIN_RIDGE, linucb_alpha=1e6,
                                     linucb_context_scales=scales)
    tuner = msgspec.structs.replace(tuner, learner="linucb", learner_params=params)
    bundle = load_config(DEFAULTS_DIR)
    return build_learner(tuner, build_grid(tuner, bundle.router), 1, bundle.router.sim_venue.fees["usdm"],
                         static_offset_bps=1.0)


contexts = st.builds(Context, spread_bps=st.floats(0.0, 1000.0), volatility_bps=st.floats(0.0, 1e4),
                     book_imbalance=st.floats(-1.0, 1.0), hour=st.floats(0.0, 23.99),
                     size_vs_touch=st.floats(0.0, 1e4))


@settings(max_examples=40, deadline=None)
@given(steps=st.lists(st.tuples(contexts, st.floats(-50.0, 200.0)), min_size=1, max_size=60),
       keep=st.floats(0.01, 1.0))
@example(steps=[(Context(0.0, 0.0, 0.0, 0.0, 0.0), 0.0)] * 19 + [(Context(0.0, 246.3828125, 0.0, 14.5, 93.0), 0.0)],
         keep=1.0)  # the discount after it inverted a matrix float64 holds as singular: LinAlgError (found in CI)
def test_linucb_at_its_smallest_ridge_and_scales_keeps_every_choice_defined(
        steps: list[tuple[Context, float]], keep: float) -> None:
    learner = _linucb_at_its_bounds()
    for index, (context, cost) in enumerate(steps):
        choice = learner.choose(context)
        assert 0.0 < choice.propensity <= 1.0
        learner.update(choice.arm.arm_id, -cost, context)
        if index % 20 == 19:
            learner.discount_evidence(keep)
    assert all(math.isfinite(learner.expected_reward(arm.arm_id, steps[-1][0]) or 0.0) for arm in learner.grid)


@pytest.mark.parametrize("key", ["thompson_prior_mean_cost_bps", "linucb_prior_mean_cost_bps"])
@pytest.mark.parametrize("value", [-1000.0, 1000.0])
def test_a_prior_cost_outside_the_reward_band_is_refused_by_config_check(
        config_dir: Path, capsys: pytest.CaptureFixture[str], key: str, value: float) -> None:
    """-1000 or 1000 loaded: every outcome surprised the learner by hundreds of bps and its drift detector fired
    again and again, discounting the evidence (six drifts in 200 simulated orders, none with the defaults)."""
    edit_config(config_dir, "tuner.json", lambda d: d["learner_params"].update({key: value}))
    assert main(["config", "check", str(config_dir)]) == BAD_INPUT
    assert (f"tuner.json: $.learner_params.{key}: {value:g} bps is outside reward_band [-50, 200]: a prior cost "
            "the learner would reject as absurd if it were observed; set it within the band") in capsys.readouterr().err


@pytest.mark.parametrize("value", [-50.0, 200.0])
def test_a_prior_cost_at_the_reward_bands_ends_loads(config_dir: Path, value: float) -> None:
    edit_config(config_dir, "tuner.json", lambda d: d["learner_params"].update(
        thompson_prior_mean_cost_bps=value, linucb_prior_mean_cost_bps=value))
    assert main(["config", "check", str(config_dir)]) == 0


@pytest.mark.parametrize(("window", "arms", "biases"), [(1.0000001, 6, [0.0, 1.0]), (5.9, 6, [0.0, 1.0]),
                                                         (9.0, 10, [0.0, 0.5])])
def test_a_structured_memory_shorter_than_the_grid_is_refused_by_config_check(
        config_dir: Path, capsys: pytest.CaptureFixture[str], window: float, arms: int, biases: list[float]) -> None:
    """1.0000001 loaded: every outcome erased all the evidence before it and the learner explored for ever."""
    # fill speed off: its short memory must be shorter than this one (a check of its own)
    edit_config(config_dir, "tuner.json", lambda d: (d["learner_params"]["structured"].update(forgetting_window=window,
                                                                                              fill_speed_window=0),
                                                     d["arms"].update(taker_biases=biases)))
    assert main(["config", "check", str(config_dir)]) == BAD_INPUT
    assert (f"tuner.json: $.learner_params.structured.forgetting_window: {window:.10g} outcomes is shorter than the "
            f"{arms} arms of $.arms: the learner would forget an arm's evidence before it had tried the others and "
            f"explore for ever; set it to at least {arms}") in capsys.readouterr().err


_NEVER_POSTS = ("before any evidence the structured learner's prior prices every maker arm above the taker arm on {}, "
                "and it learns only the arms it routes, so it would never post; lower it, raise "
                "prior_fill_probability or prior_fill_logit_spread, or set structured.burn_in_per_arm to 1 or more")


def test_a_structured_prior_that_never_posts_is_refused_by_config_check_and_simulate(
        config_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``prior_fallback_drift_bps`` 100 passed: every replica chose the taker arm, the learner learned only that arm,
    and `simulate` reported an always-taker learner (5.00 bps against 3.79 with the defaults) without a word."""
    edit_config(config_dir, "tuner.json",
                lambda d: d["learner_params"]["structured"].update(prior_fallback_drift_bps=100.0))
    assert main(["config", "check", str(config_dir)]) == BAD_INPUT
    assert ("tuner.json: $.learner_params.structured.prior_fallback_drift_bps: 100 bps with prior_fill_probability "
            "0.5: " + _NEVER_POSTS.format("usdm (maker 2, taker 5 bps)")) in capsys.readouterr().err
    args = ["simulate", "--config", str(config_dir), "--symbols", "BTCUSDT", "--no-mlflow",
            "--out", str(config_dir.parent / "out")]
    assert main(args) == BAD_INPUT
    [line] = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("router-tuner simulate: --learners structured: tuner.json: "
                           "$.learner_params.structured.prior_fallback_drift_bps: 100 bps")
    assert line.endswith("; or leave the learner out")
    assert not (config_dir.parent / "out" / "simulation.sqlite").exists()


def test_a_structured_prior_is_judged_on_the_markets_that_are_traded(config_dir: Path) -> None:
    """A 35 bps drift never posts at spot's equal fees (10/10), not even for the replica whose prior fill probability is
    the highest (0.87 at a spread of 2 logit units), but does on USD-M (2/5): the executor trades USD-M only."""
    from router_tuner.simulation.learners import refuse_unrunnable

    edit_config(config_dir, "tuner.json",
                lambda d: d["learner_params"]["structured"].update(prior_fallback_drift_bps=35.0))
    assert main(["config", "check", str(config_dir)]) == 0
    bundle = load_config(config_dir)
    refuse_unrunnable(bundle, ["structured"], ["BTCUSDT"])
    with pytest.raises(ValueError, match=r"on spot \(maker 10, taker 10 bps\)"):
        refuse_unrunnable(bundle, ["structured"], ["BTCUSDT_SPOT"])
    refuse_unrunnable(bundle, ["thompson"], ["BTCUSDT_SPOT"])
    edit_config(config_dir, "tuner.json", lambda d: d["learner_params"]["structured"].update(burn_in_per_arm=1))
    refuse_unrunnable(load_config(config_dir), ["structured"], ["BTCUSDT_SPOT"])  # a burn-in tries every arm first


def test_a_structured_prior_that_never_posts_where_no_fill_beats_the_taker_loads(config_dir: Path) -> None:
    """A maker fee of 10 against a taker fee of 2: a fill at the 4 bps offset still costs 6, so never posting is the
    fees' answer, not the prior's."""
    edit_config(config_dir, "router.json",
                lambda d: d["sim_venue"]["fees"]["usdm"].update(maker_fee_bps=10.0, taker_fee_bps=2.0))
    assert main(["config", "check", str(config_dir)]) == 0


_FROZEN = ("tuner.json deployment.budget.max_extra_cost_bps_per_order is 0: no exploration fits the budget, so the "
           "learner(s) {} route only the arm they exploit (at first the static policy's) and never learn another; "
           "raise it, or keep 0 only to freeze a tuner that has already learned")


def test_a_zero_exploration_budget_is_warned_by_simulate_and_live(config_dir: Path, tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    """It passed silently: every learner but structured routed the static arm for the whole run (3.92 bps each, the
    static policy's). A warning, not a refusal: 0 is how a tuner that has learned is frozen."""
    import json

    from router_tuner.tuner.factory import frozen_budget_warning

    edit_config(config_dir, "tuner.json", lambda d: (d["deployment"]["budget"].update(max_extra_cost_bps_per_order=0.0),
                                                     d.update(learner="thompson")))
    bundle = load_config(config_dir)
    assert frozen_budget_warning(bundle, ["structured"]) is None  # its exploited arm follows its fitted curves
    assert frozen_budget_warning(load_config(DEFAULTS_DIR), ["thompson"]) is None
    assert main(["config", "check", str(config_dir)]) == 0
    capsys.readouterr()
    assert main(["simulate", "--config", str(config_dir), "--symbols", "BTCUSDT", "--orders", "4", "--learners",
                 "thompson,structured", "--shadow-symbols", "--workers", "1", "--no-mlflow", "--json",
                 "--out", str(tmp_path / "sim")]) == 0
    captured = capsys.readouterr()
    assert f"WARNING: {_FROZEN.format('thompson')}" in captured.err.splitlines()
    assert json.loads(captured.out.splitlines()[-1])["warnings"] == [_FROZEN.format("thompson")]
    now = 1_764_800_000_000_000_000
    (tmp_path / "intents.jsonl").write_text(json.dumps(
        {"intent_id": "i0", "symbol": "BTCUSDT", "side": "buy", "size_hint_usd": 300.0, "tier": "CORE", "strategy": "s",
         "reduce_only": False, "close_position": False, "position_side": "LONG", "is_stop": False,
         "ts_ns": now}) + "\n")
    edit_config(config_dir, "executor.json", lambda d: d["prometheus"].update(enabled=False))  # no port to share
    assert main(["live", "--venue", "binanceusdm", "--config", str(config_dir), "--intents",
                 str(tmp_path / "intents.jsonl"), "--journal", str(tmp_path / "j.sqlite"), "--store",
                 str(tmp_path / "s.sqlite"), "--policy-source", "tuner", "--no-mlflow", "--tuner-state",
                 str(tmp_path / "tuner"), "--idle-poll-s", "0.05"]) == 0
    assert f"router-tuner live: warning: {_FROZEN.format('thompson')}" in capsys.readouterr().err.splitlines()


def test_a_structured_memory_of_one_outcome_per_arm_loads(config_dir: Path) -> None:
    edit_config(config_dir, "tuner.json", lambda d: d["learner_params"]["structured"].update(forgetting_window=6.0,
                                                                                             fill_speed_window=3.0))
    assert main(["config", "check", str(config_dir)]) == 0
    bundle = load_config(config_dir)
    assert len(build_grid(bundle.tuner, bundle.router)) == 6


@pytest.mark.parametrize(("values", "line"), [
    ({"thompson_prior_strength": 1e-300},
     "tuner.json: $.learner_params.thompson_prior_strength: Expected `float` >= 1e-06"),
    ({"thompson_prior_noise_pseudo_count": 1e-300},
     "tuner.json: $.learner_params.thompson_prior_noise_pseudo_count: Expected `float` >= 1e-06"),
    ({"thompson_prior_noise_std_bps": 1e-300, "burn_in_per_arm": 0},
     "tuner.json: $.learner_params.thompson_prior_noise_std_bps: Expected `float` >= 0.001"),
])
def test_a_thompson_prior_that_divided_by_zero_is_refused_by_config_check(
        config_dir: Path, capsys: pytest.CaptureFixture[str], values: dict[str, float], line: str) -> None:
    edit_config(config_dir, "tuner.json", lambda d: d["learner_params"].update(values))
    assert main(["config", "check", str(config_dir)]) == BAD_INPUT
    assert line in capsys.readouterr().err


def test_the_config_states_the_learners_thompson_bounds() -> None:
    assert _lower_bound(LearnerParams, "thompson_prior_strength") == MIN_PRIOR_PSEUDO_COUNT
    assert _lower_bound(LearnerParams, "thompson_prior_noise_pseudo_count") == MIN_PRIOR_PSEUDO_COUNT
    assert _lower_bound(LearnerParams, "thompson_prior_noise_std_bps") == MIN_PRIOR_NOISE_STD


@settings(max_examples=30, deadline=None)
@given(strength=st.sampled_from([MIN_PRIOR_PSEUDO_COUNT, 1e6]),
       pseudo_count=st.sampled_from([MIN_PRIOR_PSEUDO_COUNT, 1e6]),
       costs=st.lists(st.sampled_from([-50.0, 0.0, 5.0, 200.0]), min_size=1, max_size=40))
def test_thompson_at_its_weakest_priors_keeps_every_choice_defined(strength: float, pseudo_count: float,
                                                                   costs: list[float]) -> None:
    """The smallest noise the config accepts, no burn-in (the first decision samples the priors), and costs that
    repeat exactly (no spread for the posterior to learn)."""
    tuner = load_config(DEFAULTS_DIR).tuner
    params = msgspec.structs.replace(tuner.learner_params, thompson_prior_strength=strength,
                                     thompson_prior_noise_pseudo_count=pseudo_count,
                                     thompson_prior_noise_std_bps=MIN_PRIOR_NOISE_STD, burn_in_per_arm=0)
    tuner = msgspec.structs.replace(tuner, learner="thompson", learner_params=params)
    router = load_config(DEFAULTS_DIR).router
    learner = build_learner(tuner, build_grid(tuner, router), 1, router.sim_venue.fees["usdm"], static_offset_bps=1.0)
    for cost in costs:
        choice = learner.choose()
        assert 0.0 < choice.propensity <= 1.0
        learner.update(choice.arm.arm_id, -cost)
    assert math.isclose(sum(learner.choice_probabilities().values()), 1.0, abs_tol=0.02)


def _off_grid_bundle(*, shadow: bool) -> ConfigBundle:
    """The static policy's offset (1 bps) left off the grid, and a safety bound every order breaks (each falls back)."""
    bundle = safety_bundle(window=10, min_outcomes=5, max_fallback_ratio=0.5)
    deployment = msgspec.structs.replace(bundle.tuner.deployment, shadow_symbols=(SYMBOL,) if shadow else ())
    arms = msgspec.structs.replace(bundle.tuner.arms, maker_offsets_bps=(0.0, 0.5, 2.0, 4.0))
    return msgspec.structs.replace(bundle, tuner=msgspec.structs.replace(bundle.tuner, arms=arms,
                                                                         deployment=deployment))


def test_a_tuner_whose_static_arm_is_off_the_grid_routes_a_grid_arm_once_safety_excludes_them_all() -> None:
    """tuner.json arms [0, 0.5, 2, 4] with the static offset 1 (one step from the grid, so it loads), and a safety
    bound the arms break: every decision after the last exclusion was "unexpected KeyError: 'o1.00_b0.00'" (the
    published static arm stood in, and the learner chooses among grid arms only)."""
    service, _ = new_service(_off_grid_bundle(shadow=False))
    tuner = service.tuner(SYMBOL)
    assert tuner.policy.arm == "static" and tuner.policy.maker_offset_bps == 1.0
    for _ in range(200):
        policy = service.decide(SYMBOL, None)
        assert 0.0 < policy.propensity <= 1.0
        service.observe(event_for(policy, 2.0, maker=False), None)
    assert tuner.policy.arm == "static", "no version was published: the static policy is still the published one"
    assert set(tuner.excluded_arms) == set(tuner.allowed_arm_ids)
    policy = service.decide(SYMBOL, None)
    assert (policy.arm, policy.propensity) == ("o0.50_b0.00", 1.0), "the allowed arm nearest the static policy"
    assert tuner.safety_fallbacks >= 1


GRID_ARMS = (*(Arm(offset, 0.0) for offset in (0.0, 0.5, 2.0, 4.0)), Arm(0.0, 1.0))


def test_a_shadow_tuner_whose_static_arm_is_off_the_grid_proposes_a_grid_arm_once_safety_excludes_them_all() -> None:
    service, _ = new_service(_off_grid_bundle(shadow=True))
    tuner = service.tuner(SYMBOL)
    static = tuner.policy
    for step in range(200):  # the champion explores the grid arms, as the shadow scenario's does
        arm = GRID_ARMS[step % len(GRID_ARMS)]
        acting = dataclasses.replace(static, arm=arm.arm_id, maker_offset_bps=arm.maker_offset_bps,
                                     taker_bias=arm.taker_bias)
        record = service.shadow(SYMBOL, None, acting, intent_id=f"i{step}", ts_ns=step)
        assert 0.0 < record.proposed_propensity <= 1.0
        service.observe(event_for(acting, 2.0, maker=False), None)
    assert set(tuner.allowed_arm_ids) <= set(tuner.excluded_arms)
    record = service.shadow(SYMBOL, None, static, intent_id="last", ts_ns=200)
    assert record.proposed_arm == "o0.50_b0.00"
