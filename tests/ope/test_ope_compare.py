"""Candidate against baseline: cost sign everywhere, the paired difference interval, and the trust warnings."""

from __future__ import annotations

import json
import math

import msgspec
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from router_tuner.config import load_config
from router_tuner.router.events import RouterEvent
from router_tuner.tuner.ope.bootstrap import BlockBootstrap, BootstrapConfig
from router_tuner.tuner.ope.compare import compare
from router_tuner.tuner.ope.cost import CostInterval, cost_view
from router_tuner.tuner.ope.estimators import (
    IPS,
    SNIPS,
    evaluate_with_components,
    on_policy_components,
    paired_interval,
)
from router_tuner.tuner.ope.log import LoggedBandit
from router_tuner.tuner.ope.policy import fixed_arm_policy
from router_tuner.tuner.ope.run import evaluate_candidate
from tests.factories import fill, routed

OPE = load_config(None).tuner.ope
BOOT = BootstrapConfig(n_resamples=300, ci_level=0.95, seed=3, max_blocks=10_000)
ARMS = ("o0.00_b0.00", "o1.00_b0.00", "o2.00_b0.00")


def _event(i: int, arm: str, cost_bps: float, propensity: float, symbol: str = "BTCUSDT") -> RouterEvent:
    price = 100.0 * (1 + cost_bps / 1e4)
    return routed(intent_id=f"{symbol}-{i}", symbol=symbol, arm=arm, propensity=propensity,
                  arrival_ts_ns=i * 1_000_000_000, fills=(fill(price, 1.0, trade_id=f"t{i}"),))


def _uniform_log(n: int, costs: dict[str, float], seed: int = 1, noise: float = 1.0) -> list[RouterEvent]:
    rng = np.random.default_rng(seed)
    arms = list(costs)
    return [_event(i, arm, costs[arm] + float(rng.normal(0.0, noise)), 1 / len(arms))
            for i, arm in enumerate(arms[int(k)] for k in rng.integers(len(arms), size=n))]


def test_cost_view_negates_and_swaps_bounds() -> None:
    log = LoggedBandit(actions=np.array([0, 1, 0, 1]), propensities=np.full(4, 0.5),
                       rewards=np.array([-2.0, -5.0, -1.0, -4.0]), arm_ids=("a", "b"))
    est = evaluate_with_components(log, fixed_arm_policy(log, "a"), [IPS()], bootstrap=BOOT, reward_model=None,
                                   weight_quantiles=(0.5,))[0]["ips"]
    view = cost_view(est)
    assert view["cost_bps"] == 1.5 and view["logging_cost_bps"] == 3.0
    assert (view["ci_low_bps"], view["ci_high_bps"]) == (-est.ci_high, -est.ci_low)
    assert not {"value", "ci_low", "ci_high", "logging_value"} & set(view)
    assert view["ess"] == est.ess and view["notes"] == []


def test_a_zero_reward_bound_is_a_plain_zero_cost_never_minus_zero() -> None:
    """A 5-order simulation's IPS bound was a reward of 0.0 (no resample weighted an event): the report and
    --json showed its cost as -0.00 / -0.0."""
    interval = CostInterval.from_reward(-13.7, -33.2, 0.0)
    assert math.copysign(1.0, interval.ci_low_bps) == 1.0 and f"{interval.ci_low_bps:.2f}" == "0.00"
    assert CostInterval.from_reward(0.0, -1.0, 1.0).cost_bps == 0.0
    assert json.dumps(CostInterval.from_reward(-0.0, 0.0, -0.0).to_dict()).count("-") == 0


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**31), n=st.integers(20, 300))
def test_paired_difference_is_the_difference_on_every_resample(seed: int, n: int) -> None:
    """Point value is cand - base; a policy against itself differs by exactly 0; the paired interval is the
    percentile interval of the per-resample differences, never wider than the two intervals' spread."""
    rng = np.random.default_rng(seed)
    actions = rng.integers(0, 2, size=n)
    if len(set(actions.tolist())) < 2:
        actions[:2] = (0, 1)
    log = LoggedBandit(actions=actions, propensities=np.full(n, 0.5), rewards=rng.normal(-3.0, 1.0, size=n),
                       arm_ids=("a", "b"))
    estimates, components = evaluate_with_components(log, fixed_arm_policy(log, "a"), [IPS(), SNIPS()],
                                                     bootstrap=BOOT, reward_model=None, weight_quantiles=())
    resamples = BlockBootstrap(n, BOOT)
    for name in ("ips", "snips"):
        value, low, high = paired_interval(components[name], on_policy_components(log), resamples)
        assert value == pytest.approx(estimates[name].value - float(log.rewards.mean()))
        assert low <= value <= high or np.isnan(low)
        assert paired_interval(components[name], components[name], resamples) == (0.0, 0.0, 0.0)


def test_paired_interval_is_far_narrower_than_two_separate_intervals() -> None:
    """Two arms that differ by 0.3 bps on a noisy shared component: the paired interval sees it clearly."""
    rng = np.random.default_rng(5)
    n = 4000
    market = rng.normal(0.0, 5.0, size=n // 2).repeat(2)  # both arms see the same market moves, pairwise
    events = [_event(i, ARMS[i % 2], 3.0 + 0.3 * (i % 2) + float(market[i]), 0.5) for i in range(n)]
    result = compare(events, ARMS[0], ARMS[1], OPE, seed=1, symbol="BTCUSDT", min_effective_sample_size=100)
    diff = result.differences["snips"]
    cand, base = CostInterval.of(result.candidate.estimates["snips"]), CostInterval.of(
        result.baseline.estimates["snips"])
    assert diff.cost_bps == pytest.approx(cand.cost_bps - base.cost_bps)
    assert diff.ci_high_bps - diff.ci_low_bps < 0.5 * ((cand.ci_high_bps - cand.ci_low_bps)
                                                        + (base.ci_high_bps - base.ci_low_bps))


def test_well_explored_log_has_no_warnings_and_costs_are_positive() -> None:
    events = _uniform_log(3000, dict(zip(ARMS, (3.0, 1.0, 2.0), strict=True)))
    result = compare(events, ARMS[1], None, OPE, seed=1, symbol="BTCUSDT", min_effective_sample_size=100)
    assert result.warnings == () and result.baseline_label == "on_policy"
    out = result.to_dict()
    assert out["cost_unit"] == "bps" and out["baseline"] is None
    assert out["candidate"]["estimates"]["snips"]["cost_bps"] == pytest.approx(1.0, abs=0.2)
    assert out["candidate"]["logging"]["cost_bps"] == pytest.approx(2.0, abs=0.2)
    # the candidate is about 1 bps cheaper than what the log paid, and the paired interval says so
    diff = out["difference"]["snips"]
    assert diff["ci_high_bps"] < 0 and diff["cost_bps"] == pytest.approx(-1.0, abs=0.2)


def test_deterministic_log_warns_once() -> None:
    events = [_event(i, ARMS[i * 3 // 600], 1.0 + i % 3, 1.0) for i in range(600)]
    result = compare(events, ARMS[0], ARMS[1], OPE, seed=1, symbol="BTCUSDT", min_effective_sample_size=100)
    deterministic = [w for w in result.warnings if "deterministic log" in w]
    assert len(deterministic) == 1 and "every logged propensity is 1" in deterministic[0]
    assert result.candidate.deterministic_log and result.to_dict()["candidate"]["deterministic_log"]


def test_low_effective_sample_size_warns_for_candidate_and_baseline() -> None:
    rng = np.random.default_rng(2)
    rare = rng.random(1500) < 0.02
    events = [_event(i, ARMS[2] if r else ARMS[0], 2.0 + float(rng.normal()), 0.02 if r else 0.98)
              for i, r in enumerate(rare)]
    result = compare(events, ARMS[2], ARMS[0], OPE, seed=1, symbol="BTCUSDT", min_effective_sample_size=100)
    low = [w for w in result.warnings if "low effective sample size" in w]
    assert len(low) == 1 and low[0].startswith(f"low effective sample size for {ARMS[2]}: ESS")
    assert "min_effective_sample_size" in low[0]
    result = compare(events, ARMS[0], ARMS[2], OPE, seed=1, symbol="BTCUSDT", min_effective_sample_size=100)
    assert next(w for w in result.warnings if "low effective" in w).startswith(f"baseline low effective sample "
                                                                              f"size for {ARMS[2]}")


def test_ips_and_snips_disagreeing_beyond_their_intervals_warns() -> None:
    """Propensities logged as 0.5 while the arm was chosen 90% of the time: IPS scales the cost by ~1.8."""
    rng = np.random.default_rng(4)
    events = [_event(i, ARMS[0] if rng.random() < 0.9 else ARMS[1], 4.0 + 0.1 * float(rng.normal()), 0.5)
              for i in range(2000)]
    result = compare(events, ARMS[0], None, OPE, seed=1, symbol="BTCUSDT", min_effective_sample_size=100)
    (warning,) = [w for w in result.warnings if "IPS and SNIPS disagree" in w]
    assert f"for {ARMS[0]}: IPS 7." in warning and "vs SNIPS 4.0" in warning


def test_compare_scores_only_its_symbol() -> None:
    btc = _uniform_log(900, dict(zip(ARMS, (3.0, 1.0, 2.0), strict=True)))
    eth = [msgspec.structs.replace(e, symbol="ETHUSDT", cost_bps=e.cost_bps + 10.0) for e in btc]
    result = compare([*btc, *eth], ARMS[1], None, OPE, seed=1, symbol="ETHUSDT", min_effective_sample_size=100)
    assert result.candidate.n_events == 900
    assert result.to_dict()["candidate"]["estimates"]["snips"]["cost_bps"] == pytest.approx(11.0, abs=0.3)


def test_shared_resamples_are_the_ones_a_fresh_draw_would_give_and_must_fit_the_log() -> None:
    events = _uniform_log(400, dict(zip(ARMS, (3.0, 1.0, 2.0), strict=True)))
    alone = evaluate_candidate(events, ARMS[0], OPE, seed=1, symbol="BTCUSDT")
    shared = evaluate_candidate(events, ARMS[0], OPE, seed=1, symbol="BTCUSDT", resamples=alone.resamples)
    assert shared.resamples is alone.resamples and shared == alone
    with pytest.raises(ValueError, match="shared resamples were drawn for 400 events"):
        evaluate_candidate(events[:300], ARMS[0], OPE, seed=1, symbol="BTCUSDT", resamples=alone.resamples)
    with pytest.raises(ValueError, match="shared resamples"):
        evaluate_candidate(events, ARMS[0], OPE, seed=2, symbol="BTCUSDT", resamples=alone.resamples)
