"""Thompson sampling's propensity by quadrature: checked against a large Monte-Carlo reference (OPE relies on it)."""

from __future__ import annotations

import math
from collections import Counter

import msgspec
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import integrate
from scipy.special import ndtr, stdtrit

from router_tuner.tuner.arms import ArmGrid
from router_tuner.tuner.learners import NormalThompson, thompson_kernel
from router_tuner.tuner.learners.thompson import (
    _STANDARD_QUANTILES,
    MIN_PRIOR_NOISE_STD,
    MIN_PRIOR_PSEUDO_COUNT,
    t_quantile,
)
from router_tuner.tuner.learners.thompson_kernel import PROPENSITY_ERROR_BOUND

GRID = ArmGrid.from_values([0.0, 1.0, 2.0, 4.0], [0.0, 0.5], min_offset_bps=0.0, max_offset_bps=5.0)
MC_DRAWS = 1_000_000


def with_evidence(counts: list[float], means: list[float], variances: list[float]) -> NormalThompson:
    """A learner whose arms hold exactly this evidence (count, mean reward, reward variance per arm)."""
    ts = NormalThompson(GRID, prior_mean_reward=-3.0, prior_mean_pseudo_count=1.0, prior_noise_std=3.0,
                        prior_noise_pseudo_count=2.0, burn_in=0, seed=1)
    m2 = [n * v for n, v in zip(counts, variances, strict=True)]
    ts.load_state(msgspec.structs.replace(ts.to_state(), counts=tuple(counts), means=tuple(means), m2=tuple(m2)))
    return ts


def monte_carlo(ts: NormalThompson, arm_ids: list[str], seed: int) -> np.ndarray:
    """Win frequencies of ``arm_ids`` over ``MC_DRAWS`` joint draws from the posterior the learner samples."""
    idx = [GRID.index(a) for a in arm_ids]
    loc, scale = np.array([ts.sampling_distribution(i) for i in idx]).T
    draws = loc + scale * np.random.default_rng(seed).standard_normal((MC_DRAWS, len(idx)))
    return np.bincount(draws.argmax(axis=1), minlength=len(idx)) / MC_DRAWS


CASES = {
    # arm counts from 1 to 5000: posterior scales differing by ~100x, the steep case for a quadrature
    "disparate scales": ([1, 5000, 3, 1000, 10, 100, 5000, 2], [-3.2, -3.0, -2.5, -3.1, -2.9, -3.3, -3.05, -4.0],
                         [30.0, 10.0, 5.0, 8.0, 20.0, 1.0, 12.0, 25.0]),
    "two close leaders": ([400, 400, 50, 50, 50, 50, 50, 50], [-2.0, -2.05, -3.0, -3.0, -3.5, -4.0, -3.2, -3.3],
                          [4.0] * 8),
    "one clear winner": ([2000] * 8, [-1.0, -3.0, -3.0, -3.1, -3.2, -3.3, -3.4, -3.5], [4.0] * 8),
}


@pytest.mark.parametrize("case", CASES)
def test_propensities_match_a_large_monte_carlo_reference(case: str) -> None:
    ts = with_evidence(*CASES[case])
    exact = ts.choice_probabilities()
    reference = monte_carlo(ts, list(exact), seed=3)
    # 1M draws: Monte-Carlo standard error <= 0.0005; the quadrature itself is within 1/1024
    assert np.abs(np.array(list(exact.values())) - reference).max() < 2e-3
    assert sum(exact.values()) == pytest.approx(1.0, abs=2e-3)


def test_propensities_on_an_allowed_subset_match_monte_carlo() -> None:
    ts = with_evidence(*CASES["disparate scales"])
    allowed = ["o0.00_b0.00", "o1.00_b0.00", "o2.00_b0.50"]
    exact = ts.choice_probabilities(allowed)
    assert list(exact) == allowed
    assert np.abs(np.array(list(exact.values())) - monte_carlo(ts, allowed, seed=4)).max() < 2e-3


def test_a_decision_logs_the_propensity_of_the_arm_it_took_and_frequencies_follow() -> None:
    ts = with_evidence(*CASES["two close leaders"])
    exact = ts.choice_probabilities()
    picks: Counter[str] = Counter()
    n = 4000
    for _ in range(n):
        choice = ts.choose()
        assert choice.propensity == pytest.approx(exact[choice.arm.arm_id])
        picks[choice.arm.arm_id] += 1
    for arm_id, p in exact.items():
        assert picks[arm_id] / n == pytest.approx(p, abs=0.03)


def test_an_update_moves_the_propensities() -> None:
    ts = with_evidence(*CASES["two close leaders"])
    before = ts.choice_probabilities()["o0.00_b0.00"]
    for _ in range(50):
        ts.update("o0.00_b0.00", -4.0)  # the leader turns out worse
    assert ts.choice_probabilities()["o0.00_b0.00"] < before - 0.1


@settings(max_examples=60, deadline=None)
@given(
    counts=st.lists(st.floats(0.5, 1e4), min_size=len(GRID), max_size=len(GRID)),
    means=st.lists(st.floats(-10.0, 5.0), min_size=len(GRID), max_size=len(GRID)),
    variances=st.lists(st.floats(0.01, 100.0), min_size=len(GRID), max_size=len(GRID)),
)
def test_propensities_are_probabilities_that_sum_to_one(counts: list[float], means: list[float],
                                                          variances: list[float]) -> None:
    probabilities = with_evidence(counts, means, variances).choice_probabilities().values()
    assert all(0.0 <= p <= 1.0 for p in probabilities)
    # each is within PROPENSITY_ERROR_BOUND of its exact value whatever the posteriors (the monotone-integrand bound)
    assert sum(probabilities) == pytest.approx(1.0, abs=len(GRID) * PROPENSITY_ERROR_BOUND)


def exact_probability(loc: np.ndarray, scale: np.ndarray, idx: list[int], a: int) -> float:
    """The integral by scipy's adaptive quadrature, told where each competitor's CDF turns and, for a narrower one
    (nearly a step), where its turn starts and ends: told only the middle, quad's first nodes on the wide
    intervals beside it missed a turn of width 1/770 and converged 2.3e-5 off, silently. Rounded to 1e-9, since
    points closer than that would leave quad empty intervals."""
    others = [b for b in idx if b != a]
    shifts, ratios = (loc[a] - loc[others]) / scale[others], scale[a] / scale[others]

    def integrand(z: float) -> float:
        return float(np.prod(ndtr(shifts + ratios * z)) * math.exp(-0.5 * z * z) / math.sqrt(2.0 * math.pi))

    widths = np.where(ratios > 1.0, 1.0 / ratios, 0.0)
    turns = (-shifts / ratios)[:, None] + np.multiply.outer(widths, [-8.0, -4.0, -2.0, -1.0, 0.0, 1.0, 2.0, 4.0, 8.0])
    turns = sorted({float(t) for t in np.round(np.clip(turns.ravel(), -14.0, 14.0), 9)})
    return integrate.quad(integrand, -14.0, 14.0, points=turns, limit=2000, epsabs=1e-13, epsrel=1e-12)[0]


def assert_within_the_bound(loc: np.ndarray, scale: np.ndarray) -> None:
    """Every arm's propensity by the trapezoid rule is within its bound of scipy's, whatever the scales (plus the
    tabulated CDF's 4e-9 per factor and quad's own tolerance), and the production rule's propensities (Gauss-Hermite
    for the narrowest arm) sum to one within n_arms times the bound."""
    idx = list(range(len(loc)))
    index = np.array(idx, dtype=np.int64)
    for a in idx:
        trapezoid = thompson_kernel.trapezoid_probability(loc, scale, index, a, _STANDARD_QUANTILES)
        assert trapezoid == pytest.approx(exact_probability(loc, scale, idx, a), abs=PROPENSITY_ERROR_BOUND + 1e-7)
    total = sum(thompson_kernel.max_draw_probability(loc, scale, index, a, _STANDARD_QUANTILES) for a in idx)
    assert total == pytest.approx(1.0, abs=len(idx) * PROPENSITY_ERROR_BOUND)


@settings(max_examples=120, deadline=None)
@given(loc=st.lists(st.floats(-3.0, 3.0), min_size=2, max_size=8), data=st.data())
def test_the_trapezoid_rule_is_within_its_bound_beside_a_very_narrow_competitor(loc: list[float],
                                                                                data: st.DataObject) -> None:
    """Wide arms (scales 0.1 to 10) and, usually, one up to 1e4 times narrower than the widest: its CDF is nearly a
    step on the wider arms' scale, where the bound is all there is."""
    scale = 10.0 ** np.array(data.draw(st.lists(st.floats(-1.0, 1.0), min_size=len(loc), max_size=len(loc))))
    if data.draw(st.booleans(), label="one narrow arm") or len(loc) == 2:
        narrow = data.draw(st.integers(0, len(loc) - 1), label="the narrow arm")
        scale[narrow] = scale.max() / 10.0 ** data.draw(st.floats(0.0, 4.0), label="log10 of its ratio")
    assert_within_the_bound(np.array(loc), scale)


@settings(max_examples=30, deadline=None)
@given(strength=st.sampled_from([MIN_PRIOR_PSEUDO_COUNT, 1e6]),
       pseudo_count=st.sampled_from([MIN_PRIOR_PSEUDO_COUNT, 1e6]),
       costs=st.lists(st.sampled_from([-50.0, 0.0, 5.0, 200.0]), max_size=12))
def test_the_trapezoid_rule_is_within_its_bound_at_the_weakest_priors(strength: float, pseudo_count: float,
                                                                      costs: list[float]) -> None:
    """The config's weakest priors: untried arms' scales near 1e150 beside tried ones near 1e-3 (ratios near 1e153),
    the shape whose six arms summed to 1.02 under the 96-node midpoint rule."""
    ts = NormalThompson(GRID, prior_mean_reward=-3.0, prior_mean_pseudo_count=strength,
                        prior_noise_std=MIN_PRIOR_NOISE_STD, prior_noise_pseudo_count=pseudo_count, burn_in=0, seed=1)
    for cost in costs:
        ts.update(ts.choose().arm.arm_id, -cost)
    loc, scale = np.array([ts.sampling_distribution(i) for i in range(len(GRID))]).T
    assert_within_the_bound(np.ascontiguousarray(loc), np.ascontiguousarray(scale))


@settings(max_examples=300, deadline=None)
@given(
    loc=st.lists(st.floats(-10.0, 5.0), min_size=len(GRID), max_size=len(GRID)),
    scale=st.lists(st.floats(0.005, 20.0), min_size=len(GRID), max_size=len(GRID)),
    subset=st.sets(st.integers(0, len(GRID) - 1), min_size=2),
)
def test_gauss_hermite_is_within_1e_4_when_no_competitor_is_narrower(loc: list[float], scale: list[float],
                                                                     subset: set[int]) -> None:
    """The usual decision: the chosen arm has the narrowest Normal. Gauss-Hermite then stands in for the trapezoid
    rule, faster and more exact than its bound."""
    idx = sorted(subset)
    loc_a, scale_a = np.array(loc), np.array(scale)
    a = min(idx, key=lambda i: scale_a[i])
    probability = thompson_kernel.max_draw_probability(loc_a, scale_a, np.array(idx, dtype=np.int64), a,
                                                       _STANDARD_QUANTILES)
    assert probability == pytest.approx(exact_probability(loc_a, scale_a, idx, a), abs=1e-4)


@pytest.mark.parametrize("arms", range(2, 26))
def test_gauss_hermite_on_equal_arms_the_steepest_case(arms: int) -> None:
    """k arms with one posterior: the integrand Phi(z)^(k-1) turns most steeply of all the cases Gauss-Hermite takes
    (no competitor narrower), and each arm's probability is exactly 1/k."""
    loc, scale = np.zeros(arms), np.ones(arms)
    probability = thompson_kernel.max_draw_probability(loc, scale, np.arange(arms, dtype=np.int64), 0,
                                                       _STANDARD_QUANTILES)
    assert probability == pytest.approx(1.0 / arms, abs=1e-4)


def test_a_narrower_competitor_takes_the_trapezoid_rule() -> None:
    """A competitor 10x narrower makes its CDF nearly a step, where Gauss-Hermite has no useful bound."""
    loc, scale = np.array([0.0, 0.1, -0.3]), np.array([1.0, 0.1, 2.0])
    idx = np.array([0, 1, 2], dtype=np.int64)
    trapezoid = thompson_kernel.trapezoid_probability(loc, scale, idx, 0, _STANDARD_QUANTILES)
    assert thompson_kernel.max_draw_probability(loc, scale, idx, 0, _STANDARD_QUANTILES) == trapezoid
    assert trapezoid == pytest.approx(exact_probability(loc, scale, [0, 1, 2], 0), abs=PROPENSITY_ERROR_BOUND)


def test_the_tabulated_normal_cdf_is_within_4e_9_of_scipys() -> None:
    xs = np.concatenate((np.linspace(-12.0, 12.0, 200_001), np.random.default_rng(5).normal(0.0, 3.0, 100_000)))
    error = np.array([thompson_kernel.normal_cdf(float(x)) for x in xs]) - ndtr(xs)
    assert np.abs(error).max() < 4e-9
    assert [thompson_kernel.normal_cdf(x) for x in (-math.inf, math.inf)] == [0.0, 1.0]
    assert math.isnan(thompson_kernel.normal_cdf(math.nan))  # not a read outside the table


def test_the_t_quantile_expansion_is_within_4e_8_of_scipys() -> None:
    dofs = np.concatenate((np.linspace(2.0, 40.0, 381), np.geomspace(40.0, 1e8, 400)))
    exact = stdtrit(dofs, 0.95)
    approx = np.array([t_quantile(float(d)) for d in dofs])
    assert np.abs(approx / exact - 1.0).max() < 4e-8


def test_an_arm_drawn_beyond_the_quadratures_reach_is_logged_with_a_positive_propensity() -> None:
    """Arm 0, the narrowest (Gauss-Hermite), wins only by a draw 500 of its standard deviations out: the quadrature
    underflows to 0, and the log must not say it was impossible (a zero propensity is refused by the policy and
    breaks every OPE weight)."""
    loc, scale = np.array([-50.0, 0.0, -1.0]), np.array([0.1, 1.0, 1.0])
    idx = np.array([0, 1, 2], dtype=np.int64)
    acting, propensity = thompson_kernel.choose(loc, scale, idx, np.array([600.0, 0.0, 0.0]), _STANDARD_QUANTILES)
    assert acting == 0 and 0.0 < propensity <= 1e-12


def test_the_trapezoid_rules_top_bin_gives_a_hopeless_arm_half_a_level() -> None:
    """Arm 0, the widest, wins only beyond its top quantile: f is 0 at every level the rule evaluates, and the top
    bin [1 - 1/M, 1], which ends at f's limit 1, gives 1 / (2 M), within the bound of the exact ~0."""
    loc, scale = np.array([-50.0, 0.0, -1.0]), np.array([1.0, 0.1, 0.1])
    idx = np.array([0, 1, 2], dtype=np.int64)
    acting, propensity = thompson_kernel.choose(loc, scale, idx, np.array([60.0, 0.0, 0.0]), _STANDARD_QUANTILES)
    assert acting == 0 and propensity == 0.5 / (len(_STANDARD_QUANTILES) + 1)
    assert thompson_kernel.max_draw_probability(loc, scale, idx, 1, _STANDARD_QUANTILES) == pytest.approx(1.0)


def test_the_quantile_levels_fit_the_trapezoid_rule_bound() -> None:
    """The bound's proof splits the levels into _COARSE_BINS equal coarse bins and spends 1 / (2 M) of the bound on
    the one-level bins: M must be a multiple of _COARSE_BINS and that share well inside the bound."""
    levels = _STANDARD_QUANTILES.size + 1
    assert levels % thompson_kernel._COARSE_BINS == 0
    assert 0.5 / levels < PROPENSITY_ERROR_BOUND / 4
