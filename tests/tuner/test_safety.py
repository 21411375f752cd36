"""Per-arm safety bounds: an arm breaking a limit is excluded (and journaled), and re-opens after a drift."""

from __future__ import annotations

import doctest
import importlib
import itertools
from pathlib import Path
from statistics import NormalDist

import msgspec
import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from router_tuner.config.models import ConfigBundle
from router_tuner.executor.journal import Journal
from router_tuner.router.events import ArmSafetyEvent
from router_tuner.tuner.arms import Arm
from router_tuner.tuner.safety import ArmSafety, SafetyLimits, SafetyState, wilson_lower_bound
from tests.tuner.test_service import SYMBOL, event_for, new_service, tuned_bundle

BAD_ARM = "o2.00_b0.00"
REPROBE = {"reprobe_after_outcomes": 1000, "max_reprobe_after_outcomes": 1000, "reprobe_min_outcomes": 1,
           "regime_fill_rate_change": 1.0, "fallback_confidence": 0.5,
           "spare_fallbacks_cheaper_than_crossing": False}
"""Re-probing and regime re-opening out of the way, and the fallback ratio judged as it is (no confidence bound),
for tests of the limits themselves."""


def safety_bundle(**safety: float) -> ConfigBundle:
    bundle = tuned_bundle(min_outcomes=10_000, every_n=10_000)
    deployment = bundle.tuner.deployment
    limits = msgspec.structs.replace(deployment.safety, **{**REPROBE, **safety})
    budget = msgspec.structs.replace(deployment.budget, max_extra_cost_bps_per_order=1e6,
                                     max_extra_cost_usd_per_day=1e9)
    deployment = msgspec.structs.replace(deployment, safety=limits, budget=budget)
    return msgspec.structs.replace(bundle, tuner=msgspec.structs.replace(bundle.tuner, deployment=deployment))


def test_an_unsafe_arm_is_excluded_journaled_and_reopened_after_drift(tmp_path: Path) -> None:
    service, _ = new_service(safety_bundle(window=10, min_outcomes=3, max_cost_bps=8.0))
    tuner = service.tuner(SYMBOL)
    rng = np.random.default_rng(5)
    records: list[ArmSafetyEvent] = []
    ids = itertools.count()

    def route(cost_of: dict[str, float], orders: int) -> list[str]:
        arms = []
        for _ in range(orders):
            policy = service.decide(SYMBOL, None)
            arm = Arm(policy.maker_offset_bps, policy.taker_bias).arm_id
            arms.append(arm)
            event = msgspec.structs.replace(event_for(policy, cost_of.get(arm, 2.0) + rng.normal(0.0, 1.0)),
                                            intent_id=f"i{next(ids)}")
            result = service.observe(event, None)
            if result.safety is not None:
                records.append(result.safety)
        return arms

    route({BAD_ARM: 14.0}, 600)
    assert BAD_ARM in tuner.excluded_arms
    exclusion = tuner.excluded_arms[BAD_ARM]
    assert (exclusion.reason, exclusion.threshold) == ("cost_bps_gt(8)", 8.0) and exclusion.observed > 8.0
    assert [c.arm for r in records for c in r.changes] == [BAD_ARM]
    assert BAD_ARM not in route({BAD_ARM: 14.0}, 300), "an excluded arm is never routed"

    # the market changes: the excluded arm is now the cheapest, every other arm costs more
    route({BAD_ARM: 1.0, **{a: 6.0 for a in tuner.learner.grid.arm_ids if a != BAD_ARM}}, 600)
    assert tuner.drifts_detected >= 1 and BAD_ARM not in tuner.excluded_arms
    reopened = [c for r in records for c in r.changes if c.action == "reopened"]
    assert [c.arm for c in reopened] == [BAD_ARM] and reopened[0].reason == "drift"
    assert BAD_ARM in route({BAD_ARM: 1.0}, 300), "a re-opened arm is routed again"
    health = service.health(SYMBOL)
    assert health.mode == "live" and health.excluded_arms == tuner.excluded_arms and health.budget.orders == 1800

    with Journal(tmp_path / "journal.sqlite") as journal:
        journal.append_many(records)
        assert list(journal.read("arm_safety", symbol=SYMBOL)) == records


@pytest.mark.parametrize(("cost_bps", "excluded"), [(5.0, False), (7.0, True)])
def test_fallbacks_cheaper_than_crossing_are_spared_when_configured(cost_bps: float, excluded: bool) -> None:
    """Every order falls back; crossing at arrival costs the taker fee (5 bps) and half the 2 bps spread, 6 bps. At 5
    bps an order the arms still pay for themselves and stay; at 7 they are excluded for their fallbacks."""
    bundle = safety_bundle(window=10, min_outcomes=5, max_fallback_ratio=0.5,
                           spare_fallbacks_cheaper_than_crossing=True)
    assert bundle.router.sim_venue.fees[bundle.strategy.universe[SYMBOL].market].taker_fee_bps == 5.0
    service, _ = new_service(bundle)
    tuner = service.tuner(SYMBOL)
    for _ in range(200):
        service.observe(event_for(service.decide(SYMBOL, None), cost_bps, maker=False), None)
    assert bool(tuner.excluded_arms) == excluded
    assert {c.reason for c in tuner.excluded_arms.values()} <= {"fallback_ratio_gt(0.5)"}


@pytest.mark.parametrize(("bid", "ask", "mid"), [(0.0, 100.0, 50.0), (101.0, 99.0, 100.0), (1.0, 1e300, 1e-300)])
def test_an_arrival_book_that_prices_no_crossing_leaves_the_order_unspared_without_raising(
        bid: float, ask: float, mid: float) -> None:
    """A one-sided or crossed arrival book, or one whose half spread over its mid is not a finite number of bps, gives
    no crossing cost: the order counts for the fallback ratio and spares nothing (it raised on a non-finite one)."""
    service, _ = new_service(safety_bundle(window=10, min_outcomes=5, max_fallback_ratio=0.5,
                                           spare_fallbacks_cheaper_than_crossing=True))
    for _ in range(20):
        event = event_for(service.decide(SYMBOL, None), 1.0, maker=False)
        service.observe(msgspec.structs.replace(event, arrival_bid=bid, arrival_ask=ask, arrival_mid=mid), None)
    tuner = service.tuner(SYMBOL)
    assert tuner.excluded_arms and {c.reason for c in tuner.excluded_arms.values()} == {"fallback_ratio_gt(0.5)"}


def test_a_state_saved_before_crossing_costs_were_kept_loads_and_spares_only_on_new_evidence() -> None:
    """Windows saved as three-element outcomes (before the cost over crossing was kept) load; their orders count for
    the fallback ratio, and an arm is spared only once ``min_outcomes`` of its window carry a crossing cost."""
    saved = b'{"recent": {"a": [' + b", ".join([b"[true, null, 5.0]"] * 4) + b'], "b": []}, "excluded": {}}'
    limits = SafetyLimits(window=10, min_outcomes=5, max_fallback_ratio=0.5, max_slippage_bps=50.0, max_cost_bps=50.0,
                          **{**REPROBE, "spare_fallbacks_cheaper_than_crossing": True})
    safety = ArmSafety(limits, msgspec.json.decode(saved, type=SafetyState))
    for _ in range(5):  # cheaper than crossing (6 bps), every order a fallback
        for arm in ("a", "b"):
            safety.observe_outcome(arm, used_fallback=True, slippage_bps=None, cost_bps=5.0, crossing_cost_bps=6.0)
    assert safety.excluded["a"].reason == "fallback_ratio_gt(0.5)", "judged at 5 outcomes, 1 with a crossing cost"
    assert "b" not in safety.excluded, "5 outcomes, each with a crossing cost"


def test_fallback_ratio_excludes_and_excluding_everything_falls_back_to_the_published_arm() -> None:
    service, _ = new_service(safety_bundle(window=10, min_outcomes=5, max_fallback_ratio=0.5))
    tuner = service.tuner(SYMBOL)
    for _ in range(400):
        policy = service.decide(SYMBOL, None)
        service.observe(event_for(policy, 2.0, maker=False), None)  # every order fell back to taker
    assert set(tuner.excluded_arms) == set(tuner.allowed_arm_ids)
    assert {c.reason for c in tuner.excluded_arms.values()} == {"fallback_ratio_gt(0.5)"}
    policy = service.decide(SYMBOL, None)
    assert (policy.maker_offset_bps, policy.taker_bias) == (tuner.policy.maker_offset_bps, tuner.policy.taker_bias)
    assert tuner.safety_fallbacks >= 1 and service.health(SYMBOL).safety_fallbacks == tuner.safety_fallbacks


def test_slippage_limit_and_unfilled_orders() -> None:
    safety = ArmSafety(SafetyLimits(window=5, min_outcomes=3, max_fallback_ratio=1.0, max_slippage_bps=4.0,
                                    max_cost_bps=100.0, **REPROBE))
    for _ in range(4):
        assert safety.observe_outcome("a", used_fallback=False, slippage_bps=None, cost_bps=None) is None
    assert safety.choosable(["a"]) == ("a",), "unfilled orders say nothing about slippage or cost"
    changes = [safety.observe_outcome("a", used_fallback=False, slippage_bps=5.0, cost_bps=5.0) for _ in range(3)]
    assert changes[:2] == [None, None] and changes[2] is not None
    assert (changes[2].reason, changes[2].observed) == ("slippage_bps_gt(4)", 5.0)


def test_bad_limits_and_values_are_refused() -> None:
    with pytest.raises(ValueError, match="min_outcomes <= window"):
        SafetyLimits(window=3, min_outcomes=4, max_fallback_ratio=0.5, max_slippage_bps=1.0, max_cost_bps=1.0,
                     **REPROBE)
    with pytest.raises(ValueError, match="max_fallback_ratio"):
        SafetyLimits(window=3, min_outcomes=2, max_fallback_ratio=1.5, max_slippage_bps=1.0, max_cost_bps=1.0,
                     **REPROBE)
    safety = ArmSafety(SafetyLimits(window=3, min_outcomes=2, max_fallback_ratio=0.5, max_slippage_bps=1.0,
                                    max_cost_bps=1.0, **REPROBE))
    with pytest.raises(ValueError, match="cost_bps must be finite"):
        safety.observe_outcome("a", used_fallback=False, slippage_bps=0.0, cost_bps=float("nan"))


def test_an_exclusion_expires_and_doubles_when_the_arm_fails_its_reprobe() -> None:
    safety = ArmSafety(SafetyLimits(window=4, min_outcomes=2, max_fallback_ratio=0.5, max_slippage_bps=50.0,
                                    max_cost_bps=50.0, reprobe_after_outcomes=10, max_reprobe_after_outcomes=25,
                                    reprobe_min_outcomes=1, regime_fill_rate_change=1.0, fallback_confidence=0.5,
                                    spare_fallbacks_cheaper_than_crossing=False))

    def fail(arm: str) -> None:
        for _ in range(2):
            safety.observe_outcome(arm, used_fallback=True, slippage_bps=1.0, cost_bps=5.0)

    def wait(outcomes: int) -> list[str]:
        reopened = []
        for _ in range(outcomes):
            safety.observe_outcome("b", used_fallback=False, slippage_bps=0.0, cost_bps=1.0)
            reopened += [(c.arm, c.reason) for c in safety.reopen_due()]
        return reopened

    fail("a")
    assert safety.choosable(["a", "b"]) == ("b",)
    assert wait(9) == [] and wait(1) == [("a", "reprobe")], "re-probed after 10 outcomes of the symbol"
    safety.observe_outcome("a", used_fallback=True, slippage_bps=1.0, cost_bps=5.0)
    assert "a" in safety.excluded, "on its trial one outcome over the limit excludes the arm again"
    assert wait(19) == [] and wait(1) == [("a", "reprobe")], "failing the probe doubles the wait"
    safety.observe_outcome("a", used_fallback=True, slippage_bps=1.0, cost_bps=5.0)
    assert wait(24) == [] and wait(1) == [("a", "reprobe")], "the wait is capped"


def test_a_change_of_the_maker_fill_rate_reopens_every_exclusion_without_a_drift_alarm() -> None:
    safety = ArmSafety(SafetyLimits(window=20, min_outcomes=5, max_fallback_ratio=0.8, max_slippage_bps=50.0,
                                    max_cost_bps=50.0, reprobe_after_outcomes=10_000, max_reprobe_after_outcomes=10_000,
                                    reprobe_min_outcomes=5, regime_fill_rate_change=0.3, fallback_confidence=0.5,
                                    spare_fallbacks_cheaper_than_crossing=False))
    for arm in ("deep", "touch"):  # a quiet market: every maker leg falls back
        for _ in range(5):
            safety.observe_outcome(arm, used_fallback=True, slippage_bps=1.0, cost_bps=5.0, maker_filled=False)
            assert safety.reopen_due() == []
    assert set(safety.excluded) == {"deep", "touch"} and safety.maker_fill_rate() == 0.0
    reopened = []
    for _ in range(20):  # activity returns: the arms still open fill on the maker leg again
        safety.observe_outcome("near", used_fallback=False, slippage_bps=0.0, cost_bps=1.0, maker_filled=True)
        reopened += safety.reopen_due()
    assert sorted(c.arm for c in reopened) == ["deep", "touch"] and {c.reason for c in reopened} == {"regime"}
    assert safety.excluded == {}


@pytest.mark.parametrize("name", ["router_tuner.tuner.safety", "router_tuner.tuner.budget"])
def test_docstring_examples_run(name: str) -> None:
    result = doctest.testmod(importlib.import_module(name))
    assert result.attempted > 0 and result.failed == 0


def test_the_tuner_counts_exclusions_and_reopenings_by_reason() -> None:
    service, _ = new_service(safety_bundle(window=10, min_outcomes=3, max_cost_bps=8.0, reprobe_after_outcomes=20,
                                           max_reprobe_after_outcomes=20, reprobe_min_outcomes=1))
    tuner = service.tuner(SYMBOL)
    rng = np.random.default_rng(3)
    for i in range(400):
        policy = service.decide(SYMBOL, None)
        arm = Arm(policy.maker_offset_bps, policy.taker_bias).arm_id
        cost = 14.0 if arm == BAD_ARM else 2.0
        service.observe(msgspec.structs.replace(event_for(policy, cost + rng.normal(0.0, 0.5)), intent_id=f"c{i}"),
                        None)
    changes = tuner.safety_changes
    assert changes["excluded"] >= 2 and changes["reopened:reprobe"] >= 1, changes
    assert set(changes) <= {"excluded", "reopened:reprobe", "reopened:regime", "reopened:drift"}


@given(n=st.integers(1, 500), share=st.floats(0.0, 1.0), z=st.floats(0.0, 4.0))
def test_the_wilson_lower_bound_is_a_lower_bound_in_0_1_and_the_ratio_at_z_0(n: int, share: float, z: float) -> None:
    k = round(share * n)
    bound = wilson_lower_bound(k, n, z)
    assert -1e-12 <= bound <= k / n + 1e-12
    assert wilson_lower_bound(k, n, 0.0) == pytest.approx(k / n)
    assert wilson_lower_bound(k, n, z + 0.5) <= bound + 1e-12, "more confidence, a lower bound"


def test_the_fallback_ratio_excludes_an_arm_when_it_is_above_the_limit_with_confidence() -> None:
    """At 95%: five fallbacks in five (a re-probe's trial) are not yet evidence against a limit of 80% (bound 0.65),
    thirty in thirty are (0.92); judged on the ratio itself the trial already excludes."""
    def limits(confidence: float) -> SafetyLimits:
        return SafetyLimits(window=30, min_outcomes=5, max_fallback_ratio=0.8, max_slippage_bps=50.0,
                            max_cost_bps=50.0, reprobe_after_outcomes=1000, max_reprobe_after_outcomes=1000,
                            reprobe_min_outcomes=5, regime_fill_rate_change=1.0, fallback_confidence=confidence,
                            spare_fallbacks_cheaper_than_crossing=False)

    assert wilson_lower_bound(5, 5, 1.6448536) == pytest.approx(5 / (5 + 1.6448536**2))  # n / (n + z^2) at 100%
    point, bounded = ArmSafety(limits(0.5)), ArmSafety(limits(0.95))
    for outcome in range(30):
        for safety in (point, bounded):
            safety.observe_outcome("a", used_fallback=True, slippage_bps=None, cost_bps=None)
        if outcome == 4:
            assert "a" in point.excluded and "a" not in bounded.excluded
    assert "a" in bounded.excluded and bounded.excluded["a"].observed == 1.0


def test_an_arm_filling_a_quarter_of_its_posts_is_excluded_by_noise_much_later_when_judged_with_confidence() -> None:
    """The check runs after every outcome: judged on the ratio itself, the last 100 posts of an arm that fills 25% of
    the time (75% fallbacks) cross a limit of 80% after a few hundred posts (a fifth of the time at the very first
    judgement, after 30); judged on the ratio's 95% bound, after thousands. Median over 20 seeds."""
    def first_exclusion(confidence: float, seed: int) -> int:
        safety = ArmSafety(SafetyLimits(window=100, min_outcomes=30, max_fallback_ratio=0.8, max_slippage_bps=50.0,
                                        max_cost_bps=50.0, reprobe_after_outcomes=10_000,
                                        max_reprobe_after_outcomes=10_000, reprobe_min_outcomes=5,
                                        regime_fill_rate_change=1.0, fallback_confidence=confidence,
                                        spare_fallbacks_cheaper_than_crossing=False))
        rng = np.random.default_rng(seed)
        for post in range(5000):
            if safety.observe_outcome("a", used_fallback=bool(rng.random() < 0.75), slippage_bps=None,
                                      cost_bps=None) is not None:
                return post
        return 5000

    point = np.median([first_exclusion(0.5, seed) for seed in range(20)])
    bounded = np.median([first_exclusion(0.95, seed) for seed in range(20)])
    assert point < 500 and bounded > 5 * point


Window = list[tuple[bool, float | None, float | None, float | None]]
"""An arm's window in a rescan: fallback used, slippage, cost, cost over crossing."""


def _rescanned_breach(limits: SafetyLimits, recent: Window, needed: int) -> tuple[str, float] | None:
    """The first limit ``recent`` breaks, summed over the whole window: what the running totals must agree with."""
    z = NormalDist().inv_cdf(limits.fallback_confidence)
    fallbacks = sum(o[0] for o in recent)
    over = [o[3] for o in recent if o[3] is not None]
    spared = limits.spare_fallbacks_cheaper_than_crossing and len(over) >= needed and sum(over) / len(over) <= 0.0
    if wilson_lower_bound(fallbacks, len(recent), z) > limits.max_fallback_ratio and not spared:
        return f"fallback_ratio_gt({limits.max_fallback_ratio:g})", fallbacks / len(recent)
    for index, name, threshold in ((1, "slippage_bps", limits.max_slippage_bps), (2, "cost_bps", limits.max_cost_bps)):
        values = [o[index] for o in recent if o[index] is not None]
        if len(values) >= needed and sum(values) / len(values) > threshold:
            return f"{name}_gt({threshold:g})", sum(values) / len(values)
    return None


_VALUE = st.one_of(st.none(), st.floats(-50.0, 50.0), st.sampled_from([0.1, 0.2, 0.3, 1.0 / 3.0]),
                   st.sampled_from([1e17, -1e17, 1e25, -1e25]))  # the last cancel: a plain sum of them is far off
_OUTCOME = st.tuples(st.sampled_from(["a", "b"]), st.booleans(), _VALUE, _VALUE, _VALUE)


@given(outcomes=st.lists(_OUTCOME, max_size=300), window=st.integers(1, 12), reload_at=st.integers(0, 300),
       smaller_window=st.integers(1, 12), spare=st.booleans())
@example(outcomes=[("a", False, v, None, None) for v in (-1e17, 8.06, -7.57, 1e17)], window=4, reload_at=300,
         smaller_window=4, spare=False)  # the plain sum's mean 4.0 excludes (limit 0.2), the true mean 0.1225 would not
@example(outcomes=[("a", True, None, c, 0.2) for c in (0.1, 0.3, 0.1, 0.3)], window=4, reload_at=300,
         smaller_window=4, spare=True)  # every order fell back, at a mean within a rounding of crossing's cost
def test_the_running_window_totals_exclude_exactly_as_summing_the_window_again(
        outcomes: list[tuple[str, bool, float | None, float | None, float | None]], window: int, reload_at: int,
        smaller_window: int, spare: bool) -> None:
    """Judged on totals kept as the window moves, with limits at values the outcomes' means hit exactly (0.2 as
    the mean of 0.1 and 0.3) and values whose plain sum is far from the true one (1e17 beside 9.92), every
    exclusion, its reported value and every re-opening is the one a rescan of the window gives, also across a reload
    of the state under a smaller window, with and without the fallbacks of an arm cheaper than crossing spared."""
    def limits_of(w: int) -> SafetyLimits:
        return SafetyLimits(window=w, min_outcomes=1, max_fallback_ratio=0.7, max_slippage_bps=0.2,
                            max_cost_bps=1.0 / 3.0, reprobe_after_outcomes=2, max_reprobe_after_outcomes=8,
                            reprobe_min_outcomes=1, regime_fill_rate_change=0.5, fallback_confidence=0.5,
                            spare_fallbacks_cheaper_than_crossing=spare)
    limits = limits_of(window)
    safety = ArmSafety(limits)
    reference: dict[str, Window] = {}
    for step, (arm, fallback, slippage, cost, crossing) in enumerate(outcomes):
        if step == reload_at:
            limits = limits_of(min(window, smaller_window))
            safety = ArmSafety(limits, msgspec.convert(msgspec.to_builtins(safety.state), type(safety.state)))
        change = safety.observe_outcome(arm, used_fallback=fallback, slippage_bps=slippage, cost_bps=cost,
                                        maker_filled=not fallback, crossing_cost_bps=crossing)
        window_now = reference.setdefault(arm, [])
        window_now.append((fallback, slippage, cost, None if cost is None or crossing is None else cost - crossing))
        del window_now[:-limits.window]
        expected = None
        on_trial = safety.state.strikes.get(arm, 0) > (1 if change is not None else 0)
        needed = limits.reprobe_min_outcomes if on_trial else limits.min_outcomes
        if arm not in safety.excluded or change is not None:
            expected = _rescanned_breach(limits, window_now, needed)
        assert (None if change is None else (change.reason, change.observed)) == expected
        for reopened in safety.reopen_due():
            reference.pop(reopened.arm, None)
