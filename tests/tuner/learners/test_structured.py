"""The structured learner on markets whose optimal offset is known in closed form."""

from __future__ import annotations

import math
import pickle
from dataclasses import dataclass

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from router_tuner.router.routing.order import posted_offset_bps
from router_tuner.tuner.arms import Arm, ArmGrid
from router_tuner.tuner.learners import RouteOutcome, StructuredThompson
from router_tuner.tuner.learners.structured import (
    MAX_PRIOR_LOGIT_SPREAD,
    MAX_PRIOR_STRENGTH,
    MIN_PRIOR_FILL_PROBABILITY,
    MIN_PRIOR_STRENGTH,
)

GRID = ArmGrid.from_values([0.0, 0.5, 1.0, 2.0, 4.0], [0.0, 1.0], min_offset_bps=-1.0, max_offset_bps=10.0)
TAKER = "o0.00_b1.00"


@dataclass(frozen=True)
class KnownMarket:
    """Posting d bps behind the touch fills within the TTL with p(d) = 1 - exp(-rate * exp(-decay * d));
    a fill costs ``maker_fee - d``, a fallback ``taker_fee + drift``, a straight taker ``taker_fee``
    (plus noise): the expected cost of every arm, hence the optimal one, is known exactly."""

    rate: float
    decay: float = 0.8
    maker_fee: float = 2.0
    taker_fee: float = 5.0
    drift: float = 1.5
    noise: float = 1.0

    def fill_probability(self, d: float) -> float:
        return 1.0 - math.exp(-self.rate * math.exp(-self.decay * d))

    def expected_cost(self, arm: Arm) -> float:
        p = self.fill_probability(arm.maker_offset_bps)
        maker = p * (self.maker_fee - arm.maker_offset_bps) + (1 - p) * (self.taker_fee + self.drift)
        return arm.taker_bias * self.taker_fee + (1 - arm.taker_bias) * maker

    def best_arm(self) -> str:
        return min(GRID, key=self.expected_cost).arm_id

    def route(self, arm: Arm, rng: np.random.Generator) -> tuple[float, RouteOutcome]:
        if rng.random() < arm.taker_bias:
            return self.taker_fee + rng.normal(0, self.noise), RouteOutcome(started_maker=False, maker_filled=False)
        filled = bool(rng.random() < self.fill_probability(arm.maker_offset_bps))
        cost = (self.maker_fee - arm.maker_offset_bps) if filled else (self.taker_fee + self.drift)
        return cost + rng.normal(0, self.noise), RouteOutcome(started_maker=True, maker_filled=filled)


ACTIVE = KnownMarket(rate=1.5)   # the touch fills 78% of the time: posting wins
QUIET = KnownMarket(rate=0.05)   # almost nothing fills: every maker leg pays the fallback, taker wins


PRIORS = {"maker_fee_bps": 2.0, "taker_fee_bps": 5.0, "prior_fallback_drift_bps": 1.0,
          "prior_fill_probability": 0.5, "prior_fill_logit_spread": 0.0, "prior_strength": 1.0}


def make(*, window: float = 600.0, seed: int = 3, burn_in: int = 3) -> StructuredThompson:
    return StructuredThompson(GRID, replicas=32, forgetting_window=window, shrinkage=10.0, burn_in=burn_in, seed=seed,
                              **PRIORS)


def drive(learner: StructuredThompson, market: KnownMarket, orders: int, rng: np.random.Generator,
          allowed: list[str] | None = None) -> list[str]:
    chosen = []
    for _ in range(orders):
        arm = learner.choose(None, allowed).arm
        cost, outcome = market.route(arm, rng)
        learner.update(arm.arm_id, -cost, None, outcome)
        chosen.append(arm.arm_id)
    return chosen


def test_the_known_markets_have_different_optimal_arms() -> None:
    assert ACTIVE.best_arm() != QUIET.best_arm() and QUIET.best_arm() == TAKER
    costs = sorted(ACTIVE.expected_cost(a) for a in GRID)
    assert costs[1] - costs[0] > 0.1, "the optimum is distinct enough to be learned in a test"


@pytest.mark.parametrize("market", [ACTIVE, QUIET], ids=["active", "quiet"])
def test_it_converges_to_the_optimal_arm_and_its_cost(market: KnownMarket) -> None:
    learner = make(window=math.inf)
    chosen = drive(learner, market, 1500, np.random.default_rng(1))
    best = market.best_arm()
    assert chosen[-500:].count(best) / 500 > 0.7
    estimate = -learner.expected_reward(best)
    assert estimate == pytest.approx(market.expected_cost(GRID.get(best)), abs=0.3)


def test_an_offset_never_tried_is_priced_by_its_neighbours() -> None:
    """Over eight runs (one run's estimate has a standard deviation of about 0.4 bps): on average right."""
    untried = GRID.get("o1.00_b0.00")
    costs, fills = [], []
    for seed in range(8):
        learner = make(window=math.inf, burn_in=5)
        drive(learner, ACTIVE, 1500, np.random.default_rng(seed), allowed=["o0.00_b0.00", "o2.00_b0.00"])
        assert learner.counts()[untried.arm_id] == 0 and learner.prices_untried_arms
        costs.append(-learner.expected_reward(untried.arm_id))
        fills.append(learner.fill_probability(1.0))
    assert np.mean(costs) == pytest.approx(ACTIVE.expected_cost(untried), abs=0.35)
    assert max(abs(c - ACTIVE.expected_cost(untried)) for c in costs) < 1.0
    assert np.mean(fills) == pytest.approx(ACTIVE.fill_probability(1.0), abs=0.1)


def test_it_follows_a_market_that_goes_quiet() -> None:
    learner = make(window=300.0)
    rng = np.random.default_rng(4)
    drive(learner, ACTIVE, 1000, rng)
    assert learner.choice_probabilities()[ACTIVE.best_arm()] > 0.5
    after = drive(learner, QUIET, 800, rng)
    assert after[-300:].count(TAKER) / 300 > 0.7, "old evidence is forgotten: the learner moves to taking"


def test_propensities_sum_to_one_and_match_the_empirical_choice_rate() -> None:
    learner = make()
    drive(learner, ACTIVE, 60, np.random.default_rng(5))
    allowed = ["o0.00_b0.00", "o0.50_b0.00", "o1.00_b0.00", TAKER]
    probabilities = learner.choice_probabilities(allowed)
    assert set(probabilities) == set(allowed) and sum(probabilities.values()) == pytest.approx(1.0)
    draws = [learner.choose(None, allowed) for _ in range(6000)]
    for arm_id, p in probabilities.items():
        share = sum(c.arm.arm_id == arm_id for c in draws) / len(draws)
        assert share == pytest.approx(p, abs=0.025)
    assert all(c.propensity == probabilities[c.arm.arm_id] for c in draws), "the logged propensity is exact"


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**16), steps=st.lists(st.tuples(st.floats(-20, 60), st.booleans(), st.booleans()),
                                                  min_size=1, max_size=60),
       allowed=st.sets(st.sampled_from(GRID.arm_ids), min_size=1))
def test_every_choice_is_allowed_with_a_propensity_in_0_1(seed: int, steps: list[tuple[float, bool, bool]],
                                                          allowed: set[str]) -> None:
    learner = make(seed=seed, burn_in=1)
    for cost, maker, filled in steps:
        choice = learner.choose(None, allowed)
        assert choice.arm.arm_id in allowed and 0.0 < choice.propensity <= 1.0
        started_maker = maker and choice.arm.taker_bias < 1.0
        learner.update(choice.arm.arm_id, -cost, None,
                       RouteOutcome(started_maker=started_maker, maker_filled=started_maker and filled))
    costs = learner.expected_costs_bps()
    assert costs.shape == (32, len(GRID)) and np.isfinite(costs).all()


def test_a_restored_state_continues_exactly() -> None:
    first = make(seed=9)
    rng = np.random.default_rng(6)
    drive(first, ACTIVE, 300, rng)
    second = make(seed=1)
    second.load_state(first.to_state())
    a = drive(first, ACTIVE, 100, np.random.default_rng(7))
    b = drive(second, ACTIVE, 100, np.random.default_rng(7))
    assert a == b and np.array_equal(first.expected_costs_bps(), second.expected_costs_bps())


def test_draws_made_ahead_are_the_sequence_drawn_one_at_a_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """The bootstrap weights and decisions read uniforms drawn ahead; a learner drawing for one outcome at a time
    (and so refilling around every decision) makes the same choices and has the same model, before and after a
    save and restore taken in the middle of its draws."""
    from router_tuner.tuner.learners import structured

    ahead = make(seed=5)
    monkeypatch.setattr(structured, "_UPDATES_DRAWN_AHEAD", 1)
    one_at_a_time = make(seed=5)
    assert one_at_a_time._space.uniforms.size == 32 < ahead._space.uniforms.size
    assert drive(ahead, ACTIVE, 237, np.random.default_rng(2)) == drive(one_at_a_time, ACTIVE, 237,
                                                                        np.random.default_rng(2))
    assert np.array_equal(ahead.expected_costs_bps(), one_at_a_time.expected_costs_bps())
    restored = make(seed=8)
    restored.load_state(ahead.to_state())
    assert restored.to_state() == one_at_a_time.to_state(), "the saved generator is where the next draw comes from"
    runs = [drive(learner, QUIET, 150, np.random.default_rng(4)) for learner in (ahead, one_at_a_time, restored)]
    assert runs[0] == runs[1] == runs[2]


def test_bad_parameters_and_outcomes_are_refused() -> None:
    with pytest.raises(ValueError, match="replicas"):
        StructuredThompson(GRID, replicas=1, forgetting_window=10.0, shrinkage=1.0, burn_in=0, seed=1, **PRIORS)
    with pytest.raises(ValueError, match="forgetting_window"):
        StructuredThompson(GRID, replicas=4, forgetting_window=1.0, shrinkage=1.0, burn_in=0, seed=1, **PRIORS)
    learner = make()
    with pytest.raises(ValueError, match="RouteOutcome"):
        learner.update("o0.00_b0.00", -2.0)
    with pytest.raises(ValueError, match="taker only"):
        learner.update(TAKER, -5.0, None, RouteOutcome(started_maker=True, maker_filled=False))
    with pytest.raises(ValueError, match="started as taker"):
        RouteOutcome(started_maker=False, maker_filled=True)


@settings(max_examples=60, deadline=None)
@given(strength=st.sampled_from([MIN_PRIOR_STRENGTH, 1e-3, 0.05, 1.0, MAX_PRIOR_STRENGTH]),
       fill=st.sampled_from([MIN_PRIOR_FILL_PROBABILITY, 0.01, 0.5, 0.99, 1.0 - MIN_PRIOR_FILL_PROBABILITY]),
       spread=st.sampled_from([0.0, 2.0, MAX_PRIOR_LOGIT_SPREAD]),
       steps=st.lists(st.tuples(st.integers(0, len(GRID) - 1), st.booleans(), st.floats(-20.0, 40.0)), max_size=30))
def test_every_expected_cost_is_finite_at_the_priors_bounds(strength: float, fill: float, spread: float,
                                                            steps: list[tuple[int, bool, float]]) -> None:
    """Before any evidence a line is its prior's alone; at 1e-200 the fit's determinant underflowed and every maker
    arm's expected cost was NaN (the learner then routed the first arm it met, logged with propensity 1)."""
    learner = StructuredThompson(GRID, replicas=8, forgetting_window=50.0, shrinkage=10.0, burn_in=0, seed=1,
                                 **{**PRIORS, "prior_strength": strength, "prior_fill_probability": fill,
                                    "prior_fill_logit_spread": spread})
    for position, filled, cost in steps:
        arm = GRID.arms[position]
        taker = arm.taker_bias == 1.0
        outcome = RouteOutcome(started_maker=not taker, maker_filled=filled and not taker)
        learner.update(arm.arm_id, -cost, None, outcome)
    assert np.isfinite(learner.expected_costs_bps()).all()


@pytest.mark.parametrize(("name", "value"), [("prior_strength", 1e-200), ("prior_strength", 1e7),
                                             ("prior_fill_probability", 1e-300), ("prior_fill_probability", 1.0),
                                             ("prior_fill_logit_spread", -0.1), ("prior_fill_logit_spread", 10.5),
                                             ("prior_fill_logit_spread", math.nan)])
def test_priors_beyond_their_bounds_are_refused(name: str, value: float) -> None:
    with pytest.raises(ValueError, match=name):
        StructuredThompson(GRID, replicas=4, forgetting_window=10.0, shrinkage=1.0, burn_in=0, seed=1,
                           **{**PRIORS, name: value})


def test_the_grid_has_one_taker_arm_whatever_the_offsets() -> None:
    grid = ArmGrid.from_values([-0.5, 0.5, 2.0], [0.0, 1.0], min_offset_bps=-1.0, max_offset_bps=5.0)
    assert [a.arm_id for a in grid if a.taker_bias == 1.0] == ["o-0.50_b1.00"]
    assert len(grid) == 4


def test_pending_forgetting_gives_the_model_of_statistics_scaled_at_every_outcome() -> None:
    """Forgetting is kept as one pending factor (folded into the statistics when small, or when saved): the
    statistics are the same as multiplying every one at every outcome, whenever the factor is folded, and so is
    the model once saved (saving refits every replica)."""
    folded_often, folded_rarely = make(window=2.0, seed=4), make(window=2.0, seed=4)
    rng = np.random.default_rng(8)
    for step in range(121):  # keep = 0.5: the pending factor falls below 1e-6 and is folded every 20 outcomes
        arm = GRID.arms[step % len(GRID)]
        cost, outcome = ACTIVE.route(arm, rng)
        for learner in (folded_often, folded_rarely):
            learner.update(arm.arm_id, -cost, None, outcome)
        state = folded_often.to_state()  # saving folds the pending factor
    rarely = folded_rarely.to_state()
    for name in ("posted", "filled", "fill_cost", "fallback_cost", "taker", "taker_cost"):
        np.testing.assert_allclose(getattr(state, name), getattr(rarely, name), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(folded_often.expected_costs_bps(), folded_rarely.expected_costs_bps(), rtol=1e-9)
    posted = np.array(state.posted).reshape(32, -1)
    assert posted.max() < 3.0 * 2.0, "with a 2-outcome memory no offset holds more than a few weighted posts"


@pytest.mark.parametrize("window", [50.0, math.inf])
def test_an_outcome_refits_the_replicas_it_reaches_and_the_others_keep_their_fit(window: float) -> None:
    """An outcome counted by a replica (a non-zero bootstrap weight) refits it from its statistics; a replica it
    does not reach keeps its fit (its statistics only shrank by the forgetting factor), exactly current when
    nothing is forgotten. Saving refits them all."""
    learner = make(window=window, seed=11, burn_in=0)
    rng = np.random.default_rng(12)
    drive(learner, ACTIVE, 60, rng)
    arm = GRID.get("o1.00_b0.00")
    column, keep = 2, 1.0 - 1.0 / window
    for _ in range(5):
        before_costs = learner.expected_costs_bps()
        before = np.array(pickle.loads(pickle.dumps(learner)).to_state().posted).reshape(32, -1)[:, column]
        cost, outcome = ACTIVE.route(arm, rng)
        learner.update(arm.arm_id, -cost, None, outcome)
        lazy = learner.expected_costs_bps()
        refitted = pickle.loads(pickle.dumps(learner))
        after = np.array(refitted.to_state().posted).reshape(32, -1)[:, column]
        reached = after - keep * before > 1e-9
        assert 0 < reached.sum() < 32
        np.testing.assert_allclose(lazy[reached], refitted.expected_costs_bps()[reached], rtol=1e-9)
        assert np.array_equal(lazy[~reached], before_costs[~reached])
        if window == math.inf:
            np.testing.assert_allclose(lazy, refitted.expected_costs_bps(), rtol=1e-12)


def test_a_decision_after_an_update_uses_the_refitted_model_for_every_allowed_set() -> None:
    """Six allowed sets in turn, more than the learner keeps ready after a refit (four): the ones it dropped are
    computed again when asked, the others follow every refit, and a set decided in twice in a row is not looked up
    again (its row is remembered until a new set takes a row)."""
    learner = make(burn_in=0)
    subsets = [None, ["o0.00_b0.00", TAKER], ["o1.00_b0.00", "o2.00_b0.00", "o4.00_b0.00"],
               ["o0.00_b0.00", "o0.50_b0.00"], ["o2.00_b0.00", TAKER], ["o0.50_b0.00", "o1.00_b0.00", "o4.00_b0.00"]]
    rng = np.random.default_rng(9)
    for _ in range(30):
        for allowed in subsets:  # the cached per-replica choices of each set must follow every refit
            ids = list(GRID.arm_ids) if allowed is None else allowed
            columns = [GRID.index(a) for a in ids]
            cheapest = learner.expected_costs_bps()[:, columns].argmin(axis=1)  # from the refitted model itself
            expected = {a: float(np.mean(cheapest == k)) for k, a in enumerate(ids)}
            assert learner.choice_probabilities(allowed) == pytest.approx(expected)
            for _ in range(2):  # the second decision in the same set reads the row the first one found
                choice = learner.choose(None, allowed)
                assert choice.propensity == pytest.approx(expected[choice.arm.arm_id])
            cost, outcome = ACTIVE.route(choice.arm, rng)
            learner.update(choice.arm.arm_id, -cost, None, outcome)


@dataclass(frozen=True)
class CoarseTickMarket(KnownMarket):
    """``KnownMarket`` quoted on a tick of ``tick_bps``: an order rests at its offset rounded up to whole ticks
    (``posted_offset_bps``), so on a 5 bps tick every offset of the grid above zero rests one tick behind."""

    tick_bps: float = 5.0
    decay: float = 0.33  # the touch fills 45%, one tick behind 9%

    def fill_probability(self, d: float) -> float:
        return super().fill_probability(posted_offset_bps(d, self.tick_bps))

    def route(self, arm: Arm, rng: np.random.Generator) -> tuple[float, RouteOutcome]:
        rested = Arm(posted_offset_bps(arm.maker_offset_bps, self.tick_bps), arm.taker_bias)
        return super().route(rested, rng)


COARSE = CoarseTickMarket(rate=0.6)


def test_on_a_coarse_tick_an_untried_offset_is_priced_where_it_rests() -> None:
    """Taught at the touch and 4 bps (one 5 bps tick behind), the learner prices 1 bp, never tried, at one tick
    behind once it knows the tick; at the nominal offsets it drew a line from the touch to 4 bps and put 1 bp a
    quarter of the way down (recording BTCUSDT re-quoted on a 5 bps tick priced the touch at 0.16, measured 0.44)."""
    truth = COARSE.fill_probability(1.0)
    fills = {}
    for tick in (None, COARSE.tick_bps):
        estimates = []
        for seed in range(4):
            learner = make(window=math.inf, burn_in=5)
            if tick is not None:
                learner.set_tick_bps(tick)
            drive(learner, COARSE, 800, np.random.default_rng(seed), allowed=["o0.00_b0.00", "o4.00_b0.00"])
            estimates.append(learner.fill_probability(1.0))
        fills[tick] = float(np.mean(estimates))
    assert fills[COARSE.tick_bps] == pytest.approx(truth, abs=0.03)
    assert fills[None] - truth > 0.1, "the defect this guards against: the nominal offset misplaces the order"


@pytest.mark.parametrize("tick_bps", [0.02, 0.037, 0.099])
def test_a_fine_tick_changes_nothing_and_a_bad_tick_is_refused(tick_bps: float) -> None:
    """A recording's fine tick (BTC's 0.02 bps, ETH's 0.04 which moves 1 bp to 1.02) leaves every grid offset where
    it is: the fit is the one without it."""
    plain, told = make(), make()
    told.set_tick_bps(tick_bps)
    rng_a, rng_b = np.random.default_rng(2), np.random.default_rng(2)
    drive(plain, ACTIVE, 200, rng_a)
    drive(told, ACTIVE, 200, rng_b)
    np.testing.assert_array_equal(plain.expected_costs_bps(), told.expected_costs_bps())
    for bad in (0.0, -1.0, math.nan, math.inf):
        with pytest.raises(ValueError, match="tick_bps must be positive and finite"):
            told.set_tick_bps(bad)
