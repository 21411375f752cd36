"""SymbolTuner / TunerService: decide and observe on a synthetic maker/taker bandit, within guardrails.

The market is the exponential-fill model of ``learners.test_convergence`` (imported, not copied): a
maker order ``o`` bps behind the touch fills with probability a * exp(-k * o), else it falls back to
taker. The helpers here (``tuned_bundle``, ``event_for``, ``drive``) are shared with the other
``test_service_*`` files.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Callable

import msgspec
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from router_tuner.config.loader import load_config
from router_tuner.config.models import ConfigBundle
from router_tuner.router.events import RouterEvent
from router_tuner.router.policy import RouterPolicy
from router_tuner.tuner.arms import Arm, arm_id_of
from router_tuner.tuner.learners import Context
from router_tuner.tuner.reward_adjustment import MarketAfter
from router_tuner.tuner.service.period import PeriodStats
from router_tuner.tuner.service.publish import InMemoryPublisher
from router_tuner.tuner.service.tuner_service import TunerService
from tests.factories import fill, routed
from tests.tuner.learners.test_convergence import MODEL

SYMBOL = "BTCUSDT"
TEMPLATE = routed(symbol=SYMBOL, fills=(fill(100.0, 1.0),))
CostFn = Callable[[Arm, np.random.Generator], float]


def tuned_bundle(*, learner: str = "thompson", min_outcomes: int = 40, every_n: int = 150,
                 min_improvement_bps: float = 1.0, rollback_window: int = 40, rollback_margin_bps: float = 1.5,
                 seed: int = 7) -> ConfigBundle:
    """The default configuration with the tuner's cadence shortened for tests, learning the journaled cost
    (``reward_mid`` ``arrival``): these tests drive tuners with costs alone; the default route-end reward, which
    also needs the mid's move, is tested in ``test_reward_adjustment`` and the main job's tests."""
    bundle = load_config()
    t = bundle.tuner
    guardrails = msgspec.structs.replace(
        t.guardrails, min_outcomes_before_move=min_outcomes, rollback_window=rollback_window,
        rollback_margin_bps=rollback_margin_bps)
    publish = msgspec.structs.replace(t.publish, every_n_outcomes=every_n, min_improvement_bps=min_improvement_bps)
    tuner = msgspec.structs.replace(t, learner=learner, seed=seed, guardrails=guardrails, publish=publish,
                                    reward_mid="arrival")
    return msgspec.structs.replace(bundle, tuner=tuner)


def event_for(policy: RouterPolicy, cost_bps: float | None, *, maker: bool = True, symbol: str = SYMBOL,
              arm: str | None = None) -> RouterEvent:
    """A filled (or, with ``cost_bps=None``, unfilled) event routed on ``policy``'s acting arm."""
    return msgspec.structs.replace(
        TEMPLATE, symbol=symbol, policy_id=policy.policy_id, policy_version=policy.version,
        arm=policy.arm if arm is None else arm, maker_offset_bps=policy.maker_offset_bps,
        taker_bias=policy.taker_bias, propensity=policy.propensity, cost_bps=cost_bps,
        outcome="filled" if cost_bps is not None else "unfilled", is_maker_final=maker, used_fallback=not maker)


def model_cost(arm: Arm, rng: np.random.Generator) -> float:
    return MODEL.sample_cost_bps(arm, rng)


def drive(service: TunerService, steps: int, cost: CostFn, rng: np.random.Generator,
          context: Context | None = None) -> list[RouterPolicy]:
    """Decide, route (draw a cost) and observe ``steps`` orders; returns the acting policies."""
    acted = []
    for _ in range(steps):
        policy = service.decide(SYMBOL, context)
        acted.append(policy)
        arm = Arm(policy.maker_offset_bps, policy.taker_bias)
        service.observe(event_for(policy, cost(arm, rng)), context)
    return acted


def new_service(bundle: ConfigBundle | None = None) -> tuple[TunerService, InMemoryPublisher]:
    publisher = InMemoryPublisher()
    return TunerService.from_config(bundle or tuned_bundle(), [SYMBOL], publisher), publisher


def test_decide_starts_from_the_static_policy_and_explores_one_step_around_it() -> None:
    bundle = tuned_bundle()
    service, _ = new_service(bundle)
    tuner = service.tuner(SYMBOL)
    static = bundle.router.static_policy
    assert (tuner.policy.version, tuner.policy.policy_id) == (0, f"tuner-{SYMBOL}")
    assert (tuner.policy.maker_offset_bps, tuner.policy.taker_bias) == (static.maker_offset_bps, static.taker_bias)
    acted = drive(service, 60, model_cost, np.random.default_rng(0))
    step_o, step_b = bundle.tuner.guardrails.max_offset_step_bps, bundle.tuner.guardrails.max_bias_step
    for policy in acted:
        assert policy.arm in tuner.allowed_arm_ids or policy.version > 0
        assert 0.0 < policy.propensity <= 1.0
        assert policy.symbol == SYMBOL and policy.policy_id == f"tuner-{SYMBOL}"
    first = [p for p in acted if p.version == 0]
    assert first and all(abs(p.maker_offset_bps - static.maker_offset_bps) <= step_o
                         and abs(p.taker_bias - static.taker_bias) <= step_b for p in first)
    assert len({p.arm for p in first}) > 1, "burn-in tries several arms"


def test_no_version_before_min_outcomes_then_one_step_towards_the_better_arm() -> None:
    service, publisher = new_service(tuned_bundle(min_outcomes=60, every_n=60))
    rng = np.random.default_rng(1)
    drive(service, 59, model_cost, rng)
    assert publisher.records == []
    drive(service, 1000, model_cost, rng)
    assert publisher.records, "a clearly better arm must be published"
    first = publisher.records[0]
    assert first.metrics.outcomes >= 60 and first.previous_version == 0 and first.policy.version == 1
    assert first.reason in ("schedule", "significant_change")
    assert service.tuner(SYMBOL).policy.maker_offset_bps >= 2.0, "the model pays for posting behind the touch"
    versions = [r.policy.version for r in publisher.records]
    assert versions == list(range(1, len(versions) + 1))


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000), learner=st.sampled_from(["thompson", "ucb", "epsilon_greedy"]),
       means=st.lists(st.floats(-8.0, 12.0), min_size=15, max_size=15))
def test_every_published_version_stays_in_bounds_within_one_step(seed: int, learner: str, means: list[float]) -> None:
    bundle = tuned_bundle(learner=learner, min_outcomes=20, every_n=30, min_improvement_bps=0.5, seed=seed)
    service, publisher = new_service(bundle)
    grid_ids = service.tuner(SYMBOL).learner.grid.arm_ids
    assert len(grid_ids) <= len(means)
    mean_of = dict(zip(grid_ids, means[:len(grid_ids)], strict=True))
    acted = drive(service, 600, lambda arm, rng: mean_of[arm.arm_id] + rng.normal(0.0, 2.0),
                  np.random.default_rng(seed))
    bounds, g = bundle.router.policy_bounds, bundle.tuner.guardrails
    chain = [RouterPolicy.from_static(SYMBOL, bundle.router)] + [r.policy for r in publisher.records]
    for before, after in itertools.pairwise(chain):
        assert bounds.maker_offset_bps.min <= after.maker_offset_bps <= bounds.maker_offset_bps.max
        assert bounds.taker_bias.min <= after.taker_bias <= bounds.taker_bias.max
        assert abs(after.maker_offset_bps - before.maker_offset_bps) <= g.max_offset_step_bps + 1e-9
        assert abs(after.taker_bias - before.taker_bias) <= g.max_bias_step + 1e-9
        assert after.version == before.version + 1
    for record in publisher.records:
        assert record.reason == "rollback" or record.metrics.outcomes >= g.min_outcomes_before_move
    for policy in acted:
        policy.validate(bounds)


def test_rollback_to_the_static_knobs_when_live_cost_degrades() -> None:
    bundle = tuned_bundle(min_outcomes=40, every_n=40, rollback_window=40, rollback_margin_bps=1.5)
    service, publisher = new_service(bundle)
    rng = np.random.default_rng(2)
    while not publisher.records:
        drive(service, 1, model_cost, rng)
    assert publisher.records[0].reason != "rollback"
    rolled: list[RouterPolicy] = []
    for _ in range(200):
        policy = service.decide(SYMBOL, None)
        arm = Arm(policy.maker_offset_bps, policy.taker_bias)
        result = service.observe(event_for(policy, model_cost(arm, rng) + 10.0), None)
        if result.rolled_back:
            assert result.published is not None
            rolled.append(result.published)
            break
    assert rolled, "a 10 bps degradation over the window must roll back"
    record = publisher.records[-1]
    static = bundle.router.static_policy
    assert record.reason == "rollback" and record.policy == rolled[0]
    assert (rolled[0].maker_offset_bps, rolled[0].taker_bias) == (static.maker_offset_bps, static.taker_bias)
    assert rolled[0].arm == "static" and rolled[0].version == record.previous_version + 1
    assert publisher.champion(SYMBOL) == rolled[0]
    assert record.metrics.learned_cost_bps > publisher.records[0].metrics.learned_cost_bps + 1.5


def test_rollback_from_a_restored_probation_state_returns_to_the_last_good_knobs() -> None:
    bundle = tuned_bundle(rollback_window=10, rollback_margin_bps=1.0)
    service, publisher = new_service(bundle)
    tuner = service.tuner(SYMBOL)
    base = tuner.policy
    good = base.with_arm("o2.00_b0.00", maker_offset_bps=2.0, taker_bias=0.0, propensity=1.0, version=3)
    bad = good.with_arm("o4.00_b0.00", maker_offset_bps=4.0, taker_bias=0.0, propensity=1.0, version=4)
    tuner.load_state(msgspec.structs.replace(tuner.to_state(), policy=bad, last_good=good, last_good_cost_bps=1.0,
                                             on_probation=True, outcomes_since_publish=0, outcomes_since_review=0,
                                             period=PeriodStats.empty()))
    results = [service.observe(event_for(service.decide(SYMBOL, None), 1.9), None) for _ in range(10)]
    assert not any(r.rolled_back for r in results), "0.9 bps worse is inside the 1.0 bps margin"
    results = [service.observe(event_for(service.decide(SYMBOL, None), 3.0), None) for _ in range(10)]
    assert [r.rolled_back for r in results].count(True) == 1
    back = publisher.records[-1].policy
    assert (back.version, back.arm, back.maker_offset_bps, back.taker_bias) == (5, "o2.00_b0.00", 2.0, 0.0)
    assert tuner.policy == back


def test_drift_reopens_exploration() -> None:
    service, _ = new_service(tuned_bundle(min_outcomes=10_000, every_n=10_000))
    tuner = service.tuner(SYMBOL)
    rng = np.random.default_rng(3)
    drive(service, 2000, lambda arm, r: 2.0 - 0.5 * arm.maker_offset_bps + r.normal(0.0, 3.0), rng)
    before = sum(tuner.learner.counts().values())
    assert tuner.drifts_detected == 0, "no false alarm on 2000 stationary outcomes with 3 bps noise"
    flags = []
    for _ in range(300):
        policy = service.decide(SYMBOL, None)
        cost = 2.0 + 6.0 * policy.maker_offset_bps + rng.normal(0.0, 3.0)  # posting far now costs dearly
        flags.append(service.observe(event_for(policy, cost), None).drift_detected)
        if flags[-1]:
            break
    assert any(flags) and tuner.drifts_detected == 1
    after = sum(tuner.learner.counts().values())
    assert after < 0.5 * before, f"evidence kept {after:.0f} of {before:.0f}"


def test_absurd_unfilled_and_off_grid_outcomes_are_counted_not_learned() -> None:
    service, _ = new_service()
    tuner = service.tuner(SYMBOL)
    policy = service.decide(SYMBOL, None)
    counts = tuner.learner.counts()
    results = [service.observe(event_for(policy, cost), None) for cost in (float("nan"), 1e6, -1e6, None)]
    off_grid = event_for(policy, 1.0, arm="o3.30_b0.00")
    off_grid = msgspec.structs.replace(off_grid, maker_offset_bps=3.3)
    results.append(service.observe(off_grid, None))
    assert not any(r.learned for r in results)
    assert tuner.learner.counts() == counts
    assert tuner.rejections == {"non_finite": 1, "above_max": 1, "below_min": 1, "unfilled": 1, "off_grid": 1}
    assert service.observe(event_for(policy, 2.0), None).learned
    assert sum(tuner.learner.counts().values()) == sum(counts.values()) + 1


def test_inconsistent_or_foreign_events_are_refused() -> None:
    service, _ = new_service(tuned_bundle())
    policy = service.decide(SYMBOL, None)
    with pytest.raises(ValueError, match="does not match its knobs"):
        service.observe(event_for(policy, 1.0, arm="o9.00_b0.00"), None)
    with pytest.raises(ValueError, match="got an event of ETHUSDT"):
        service.tuner(SYMBOL).observe(event_for(policy, 1.0, symbol="ETHUSDT"), None)
    with pytest.raises(KeyError, match="no tuner for ETHUSDT"):
        service.observe(event_for(policy, 1.0, symbol="ETHUSDT"), None)
    with pytest.raises(ValueError, match=r"not in strategy_config\.json universe"):
        TunerService.from_config(tuned_bundle(), ["NOPEUSDT"], InMemoryPublisher())
    with pytest.raises(ValueError, match="duplicate symbols"):
        TunerService.from_config(tuned_bundle(), [SYMBOL, SYMBOL], InMemoryPublisher())


def test_contextual_learner_needs_a_context_and_publishes_with_one() -> None:
    service, publisher = new_service(tuned_bundle(learner="linucb", min_outcomes=30, every_n=60))
    with pytest.raises(ValueError, match="needs a context"):
        service.decide(SYMBOL, None)
    ctx = Context(spread_bps=2.0, volatility_bps=10.0, book_imbalance=0.1, hour=23.5, size_vs_touch=0.4)
    drive(service, 300, model_cost, np.random.default_rng(4), context=ctx)
    assert publisher.records and all(math.isfinite(r.metrics.expected_cost_bps) for r in publisher.records)


@pytest.mark.parametrize(("setting", "after", "learned"), [
    ({"reward_markout_horizon_ms": 5000.0}, MarketAfter(markout_bps=1.5, move_to_end_bps=0.4), 3.5),  # + markout
    ({"reward_mid": "route_end"}, MarketAfter(markout_bps=None, move_to_end_bps=0.75), 1.25),  # - the move to the end
])
def test_a_tuner_adjusting_its_reward_learns_the_adjusted_cost_and_needs_what_the_market_did(
        setting: dict[str, object], after: MarketAfter, learned: float) -> None:
    bundle = tuned_bundle()
    adjusted = msgspec.structs.replace(bundle, tuner=msgspec.structs.replace(bundle.tuner, **setting))
    service, _ = new_service(adjusted)
    policy = service.decide(SYMBOL, None)
    with pytest.raises(ValueError, match="needs what the market did after its arrival"):
        service.observe(event_for(policy, 2.0), None)
    with pytest.raises(ValueError, match="must be finite"):
        service.observe(event_for(policy, 2.0), None, MarketAfter(markout_bps=1.0, move_to_end_bps=math.nan))
    service.observe(msgspec.structs.replace(event_for(policy, 2.0), intent_id="m1"), None, after)
    assert service.tuner(SYMBOL).budget_report().orders == 1, "a refused outcome changes nothing"
    state = service.tuner(SYMBOL).to_state()
    assert state.period.learned == 1 and state.period.mean_cost_bps == pytest.approx(learned)
    plain, _ = new_service(bundle)
    plain_policy = plain.decide(SYMBOL, None)
    plain.observe(event_for(plain_policy, 2.0), None, after)  # the reward is not adjusted: ignored
    assert plain.tuner(SYMBOL).to_state().period.mean_cost_bps == pytest.approx(2.0)


def test_a_markout_charging_tuner_needs_a_finite_markout_for_a_filled_order() -> None:
    bundle = tuned_bundle()
    service, _ = new_service(msgspec.structs.replace(
        bundle, tuner=msgspec.structs.replace(bundle.tuner, reward_markout_horizon_ms=5000.0)))
    policy = service.decide(SYMBOL, None)
    with pytest.raises(ValueError, match="needs a finite markout, got None"):
        service.observe(event_for(policy, 2.0), None, MarketAfter(markout_bps=None, move_to_end_bps=0.0))
    assert service.tuner(SYMBOL).budget_report().orders == 0


def test_a_shared_model_learner_has_every_arm_estimate_current_after_each_outcome() -> None:
    """The structured learner prices every offset from one model: an outcome at one offset moves its neighbours'
    expected costs too, so what a published version says it expects must be the learner's estimate now."""
    service, publisher = new_service(tuned_bundle(learner="structured"))
    tuner = service.tuner(SYMBOL)
    policy = service.decide(SYMBOL, None)
    at = {offset: dataclasses.replace(policy, arm=arm_id_of(offset, 0.0), maker_offset_bps=offset, taker_bias=0.0)
          for offset in (1.0, 2.0)}
    for _ in range(40):   # posts 2 bps behind the touch fill cheaply...
        service.observe(event_for(at[2.0], 0.5), None)
    published = None
    while published is None:   # ...then posts 1 bp behind fall back, which the shared curve carries to 2 bps
        published = service.observe(event_for(at[1.0], 9.0, maker=False), None).published
    assert published.arm == "o2.00_b0.00"
    expected = -tuner.learner.expected_reward(published.arm, None)
    assert publisher.records[-1].metrics.expected_cost_bps == pytest.approx(expected, rel=1e-12)
