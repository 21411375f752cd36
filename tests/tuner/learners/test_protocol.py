"""Learner protocol: masks, burn-in, propensities, validation, evidence discounting."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from router_tuner.tuner.arms import ArmGrid
from router_tuner.tuner.learners import UCB, Context, ContextScales, EpsilonGreedy, Learner, LinUCB, NormalThompson

GRID = ArmGrid.from_values([0.0, 1.0, 2.0, 4.0], [0.0, 0.5], min_offset_bps=0.0, max_offset_bps=5.0)
CTX = Context(spread_bps=2.0, volatility_bps=6.0, book_imbalance=0.2, hour=13.5, size_vs_touch=0.3)
SCALES = ContextScales(spread_scale_bps=5.0, volatility_scale_bps=10.0, size_vs_touch_scale=1.0)


def make(kind: str, *, burn_in: int = 1, seed: int = 11) -> Learner:
    if kind == "thompson":
        return NormalThompson(GRID, prior_mean_reward=-3.0, prior_mean_pseudo_count=1.0, prior_noise_std=3.0,
                              prior_noise_pseudo_count=2.0, burn_in=burn_in, seed=seed)
    if kind == "ucb":
        return UCB(GRID, delta=1.0, min_noise_std=1.0, burn_in=burn_in, seed=seed)
    if kind == "epsilon_greedy":
        return EpsilonGreedy(GRID, epsilon=0.3, decay=0.01, min_epsilon=0.05, burn_in=burn_in, seed=seed)
    return LinUCB(GRID, scales=SCALES, alpha=1.0, ridge=1.0, prior_mean_reward=-3.0, burn_in=burn_in, seed=seed)


KINDS = ["thompson", "ucb", "epsilon_greedy", "linucb"]


def feed(learner: Learner, n: int, seed: int = 0) -> None:
    """Rewards that favour larger offsets, with noise."""
    rng = np.random.default_rng(seed)
    for _ in range(n):
        arm = learner.choose(CTX).arm
        learner.update(arm.arm_id, -3.0 + 0.5 * arm.maker_offset_bps + rng.normal(0.0, 1.0), CTX)


@pytest.mark.parametrize("kind", KINDS)
def test_burn_in_tries_every_arm_first_with_uniform_propensity(kind: str) -> None:
    learner = make(kind, burn_in=2)
    seen: Counter[str] = Counter()
    for _ in range(2 * len(GRID)):
        under = sum(1 for a in GRID.arm_ids if seen[a] < 2)
        choice = learner.choose(CTX)
        assert seen[choice.arm.arm_id] < 2
        assert choice.propensity == pytest.approx(1.0 / under)
        seen[choice.arm.arm_id] += 1
        learner.update(choice.arm.arm_id, -1.0, CTX)
    assert all(seen[a] == 2 for a in GRID.arm_ids)


@pytest.mark.parametrize("kind", KINDS)
def test_choices_stay_inside_the_allowed_mask(kind: str) -> None:
    learner = make(kind)
    feed(learner, 200)
    allowed = {"o0.00_b0.00", "o1.00_b0.50"}  # excludes the arms the learner prefers
    for _ in range(100):
        choice = learner.choose(CTX, allowed=allowed)
        assert choice.arm.arm_id in allowed
        assert 0.0 < choice.propensity <= 1.0
    only = learner.choose(CTX, allowed=["o2.00_b0.00"])
    assert only.arm.arm_id == "o2.00_b0.00" and only.propensity == pytest.approx(1.0)
    prepared = ("o0.00_b0.00", "o1.00_b0.50")  # the same tuple decision after decision, as the tuner passes it
    assert {learner.choose(CTX, allowed=prepared).arm.arm_id for _ in range(50)} <= set(prepared)
    with pytest.raises(ValueError, match="empty"):  # an empty tuple after it is still refused, never a cached set
        learner.choose(CTX, allowed=())
    assert learner.choose(CTX, allowed=("o2.00_b0.00",)).arm.arm_id == "o2.00_b0.00"


@pytest.mark.parametrize("kind", KINDS)
def test_bad_inputs_are_refused(kind: str) -> None:
    learner = make(kind)
    with pytest.raises(ValueError, match="empty"):
        learner.choose(CTX, allowed=[])
    with pytest.raises(KeyError):
        learner.choose(CTX, allowed=["o9.00_b0.00"])
    with pytest.raises(KeyError):
        learner.update("o9.00_b0.00", -1.0, CTX)
    for bad in (math.nan, math.inf):
        with pytest.raises(ValueError, match="finite"):
            learner.update("o1.00_b0.00", bad, CTX)
    with pytest.raises(ValueError):
        learner.discount_evidence(0.0)
    with pytest.raises(ValueError):
        learner.discount_evidence(1.5)
    assert sum(learner.counts().values()) == 0


@pytest.mark.parametrize("kind", KINDS)
def test_expected_rewards_are_each_arms_expected_reward_with_or_without_evidence(kind: str) -> None:
    learner = make(kind)
    for arm_id in GRID.arm_ids[:3]:
        learner.update(arm_id, -2.0, CTX)
    each = {a: learner.expected_reward(a, CTX) for a in GRID.arm_ids}
    assert learner.expected_rewards(GRID.arm_ids, CTX) == {a: v for a, v in each.items() if v is not None}
    assert learner.expected_rewards(GRID.arm_ids, CTX, with_evidence=True) == {a: each[a] for a in GRID.arm_ids[:3]}
    with pytest.raises(KeyError):
        learner.expected_rewards(["o9.00_b0.00"], CTX)


def test_linucb_needs_a_context() -> None:
    learner = make("linucb")
    with pytest.raises(ValueError, match="context"):
        learner.choose()
    with pytest.raises(ValueError, match="context"):
        learner.update("o1.00_b0.00", -1.0)


@pytest.mark.parametrize(
    "build",
    [
        lambda: NormalThompson(GRID, prior_mean_reward=math.nan, prior_mean_pseudo_count=1.0, prior_noise_std=1.0,
                               prior_noise_pseudo_count=1.0, burn_in=1, seed=0),
        lambda: NormalThompson(GRID, prior_mean_reward=0.0, prior_mean_pseudo_count=0.0, prior_noise_std=1.0,
                               prior_noise_pseudo_count=1.0, burn_in=1, seed=0),
        lambda: UCB(GRID, delta=0.0, min_noise_std=1.0, burn_in=1, seed=0),
        lambda: UCB(GRID, delta=1.0, min_noise_std=-1.0, burn_in=1, seed=0),
        lambda: UCB(GRID, delta=1.0, min_noise_std=1.0, burn_in=-1, seed=0),
        lambda: EpsilonGreedy(GRID, epsilon=1.5, decay=0.0, min_epsilon=0.0, burn_in=1, seed=0),
        lambda: EpsilonGreedy(GRID, epsilon=0.1, decay=-1.0, min_epsilon=0.0, burn_in=1, seed=0),
        lambda: EpsilonGreedy(GRID, epsilon=0.1, decay=0.0, min_epsilon=0.2, burn_in=1, seed=0),
        lambda: LinUCB(GRID, scales=SCALES, alpha=0.0, ridge=1.0, prior_mean_reward=0.0, burn_in=1, seed=0),
        lambda: LinUCB(GRID, scales=SCALES, alpha=1.0, ridge=0.0, prior_mean_reward=0.0, burn_in=1, seed=0),
        lambda: ContextScales(0.0, 1.0, 1.0),
        lambda: Context(spread_bps=-1.0, volatility_bps=1.0, book_imbalance=0.0, hour=1.0, size_vs_touch=1.0),
        lambda: Context(spread_bps=1.0, volatility_bps=1.0, book_imbalance=2.0, hour=1.0, size_vs_touch=1.0),
        lambda: Context(spread_bps=1.0, volatility_bps=1.0, book_imbalance=0.0, hour=24.0, size_vs_touch=1.0),
        lambda: Context(spread_bps=math.nan, volatility_bps=1.0, book_imbalance=0.0, hour=1.0, size_vs_touch=1.0),
    ],
)
def test_bad_parameters_are_refused(build: object) -> None:
    with pytest.raises(ValueError):
        build()  # type: ignore[operator]


def test_epsilon_greedy_propensity_is_exact_and_matches_frequencies() -> None:
    learner = EpsilonGreedy(GRID, epsilon=0.4, decay=0.0, min_epsilon=0.4, burn_in=1, seed=5)
    for arm_id in GRID.arm_ids:
        learner.update(arm_id, -2.0, None)
    learner.update("o4.00_b0.00", -1.0, None)  # mean -1.5: the single greedy arm
    allowed = ["o0.00_b0.00", "o1.00_b0.00", "o4.00_b0.00", "o4.00_b0.50"]
    n = 20_000
    picks = Counter()
    props: dict[str, float] = {}
    for _ in range(n):
        c = learner.choose(allowed=allowed)
        picks[c.arm.arm_id] += 1
        props[c.arm.arm_id] = c.propensity
    assert props["o4.00_b0.00"] == pytest.approx(0.4 / 4 + 0.6)
    assert props["o0.00_b0.00"] == pytest.approx(0.1)
    assert sum(props.values()) == pytest.approx(1.0)
    for arm_id, p in props.items():
        assert picks[arm_id] / n == pytest.approx(p, abs=0.015)


def test_epsilon_greedy_tied_greedy_arms_share_the_exploit_mass() -> None:
    learner = EpsilonGreedy(GRID, epsilon=0.2, decay=0.0, min_epsilon=0.2, burn_in=1, seed=5)
    for arm_id in GRID.arm_ids:
        learner.update(arm_id, -2.0, None)
    props = {c.arm.arm_id: c.propensity for c in (learner.choose() for _ in range(2000))}
    assert set(props) == set(GRID.arm_ids)
    assert all(p == pytest.approx(0.2 / 8 + 0.8 / 8) for p in props.values())


def test_epsilon_decays_to_its_floor_and_reopens_after_discount() -> None:
    learner = EpsilonGreedy(GRID, epsilon=0.5, decay=0.01, min_epsilon=0.05, burn_in=1, seed=5)
    feed(learner, 1000)
    assert learner.current_epsilon == pytest.approx(0.05)
    learner.discount_evidence(0.1)
    assert learner.current_epsilon == pytest.approx(0.5 * math.exp(-0.01 * 100))


@given(epsilon=st.floats(0.0, 1.0), floor_share=st.floats(0.0, 1.0), decay=st.floats(0.0, 10.0),
       steps=st.floats(0.0, 1e7))
def test_epsilon_is_the_decay_formula_at_any_step_count(epsilon: float, floor_share: float, decay: float,
                                                       steps: float) -> None:
    """Past the floor the exp is skipped: the value must stay max(floor, epsilon * exp(-decay * steps))."""
    min_epsilon = epsilon * floor_share
    learner = EpsilonGreedy(GRID, epsilon=epsilon, decay=decay, min_epsilon=min_epsilon, burn_in=1, seed=5)
    learner._decay_steps = steps
    assert learner.current_epsilon == pytest.approx(max(min_epsilon, epsilon * math.exp(-decay * steps)),
                                                    rel=1e-12, abs=1e-300)


def test_thompson_propensity_matches_choice_frequencies() -> None:
    learner = make("thompson")
    feed(learner, 40)
    n = 3000
    picks: Counter[str] = Counter()
    reported: dict[str, list[float]] = {}
    for _ in range(n):
        c = learner.choose()
        picks[c.arm.arm_id] += 1
        reported.setdefault(c.arm.arm_id, []).append(c.propensity)
    for arm_id, props in reported.items():
        if picks[arm_id] > 100:
            assert float(np.mean(props)) == pytest.approx(picks[arm_id] / n, abs=0.05)


def test_thompson_posterior_is_the_conjugate_update() -> None:
    grid = ArmGrid.from_values([1.0], [0.0], min_offset_bps=0.0, max_offset_bps=5.0)
    ts = NormalThompson(grid, prior_mean_reward=-2.0, prior_mean_pseudo_count=2.0, prior_noise_std=1.5,
                        prior_noise_pseudo_count=4.0, burn_in=0, seed=0)
    xs = [-1.0, -3.0, -0.5]
    for x in xs:
        ts.update("o1.00_b0.00", x)
    n, xbar = 3, float(np.mean(xs))
    kappa, mu = 2.0 + n, (2.0 * -2.0 + n * xbar) / (2.0 + n)
    alpha = 2.0 + n / 2
    beta = 4.0 * 1.5**2 / 2 + float(np.sum((np.array(xs) - xbar) ** 2)) / 2 + 2.0 * n * (xbar + 2.0) ** 2 / (2 * kappa)
    loc, scale, dof = ts.posterior(0)
    assert loc == pytest.approx(mu) and dof == pytest.approx(2 * alpha)
    assert scale == pytest.approx(math.sqrt(beta / (alpha * kappa)))
    assert ts.expected_reward("o1.00_b0.00") == pytest.approx(mu)


def test_thompson_exploration_shrinks_with_evidence_and_widens_after_discount() -> None:
    learner = make("thompson")

    def scales() -> np.ndarray:
        return np.array([learner.posterior(i)[1] for i in range(len(GRID))])

    before = scales()
    feed(learner, 400)
    after = scales()
    learner.discount_evidence(0.05)
    reopened = scales()
    assert np.all(after < before) and np.all(reopened > after)


def test_ucb_breaks_ties_at_random_with_propensity_one_over_k() -> None:
    learner = make("ucb")
    for arm_id in GRID.arm_ids:
        learner.update(arm_id, -2.0, None)
    choices = [learner.choose(allowed=["o1.00_b0.00", "o2.00_b0.00"]) for _ in range(200)]
    assert {c.arm.arm_id for c in choices} == {"o1.00_b0.00", "o2.00_b0.00"}
    assert all(c.propensity == 0.5 for c in choices)
    learner.update("o2.00_b0.00", 0.0, None)
    assert learner.choose(allowed=["o1.00_b0.00", "o2.00_b0.00"]).propensity == 1.0


def test_ucb_expected_reward_is_the_mean_and_none_before_data() -> None:
    learner = make("ucb")
    assert learner.expected_reward("o1.00_b0.00") is None
    learner.update("o1.00_b0.00", -1.0)
    learner.update("o1.00_b0.00", -3.0)
    assert learner.expected_reward("o1.00_b0.00") == pytest.approx(-2.0)
    assert learner.noise_std() == pytest.approx(max(math.sqrt(2.0), 1.0))


def test_linucb_sherman_morrison_matches_explicit_inverse() -> None:
    learner = make("linucb")
    rng = np.random.default_rng(3)
    for _ in range(60):
        ctx = Context(float(rng.uniform(0, 10)), float(rng.uniform(0, 30)), float(rng.uniform(-1, 1)),
                      float(rng.uniform(0, 24)), float(rng.uniform(0, 2)))
        learner.update(GRID.arm_ids[int(rng.integers(len(GRID)))], float(rng.normal(-3, 1)), ctx)
    state = learner.to_state()
    for a, a_inv in zip(state.a, state.a_inv, strict=True):
        np.testing.assert_allclose(np.array(a_inv), np.linalg.inv(np.array(a)), atol=1e-9)


def test_linucb_first_choice_is_a_full_tie() -> None:
    learner = make("linucb", burn_in=0)
    choice = learner.choose(CTX)
    assert choice.propensity == pytest.approx(1.0 / len(GRID))
    assert learner.expected_reward("o1.00_b0.00", CTX) == pytest.approx(-3.0)


@pytest.mark.parametrize("kind", KINDS)
def test_discount_scales_counts(kind: str) -> None:
    learner = make(kind)
    feed(learner, 80)
    before = learner.counts()
    learner.discount_evidence(0.25)
    after = learner.counts()
    assert all(after[a] == pytest.approx(0.25 * before[a]) for a in before)


contexts = st.builds(Context, st.floats(0.1, 10.0), st.floats(0.5, 40.0), st.floats(-1.0, 1.0),
                     st.floats(0.0, 24.0, exclude_max=True),
                     st.floats(0.0, 3.0))


@settings(max_examples=60, deadline=None)
@given(steps=st.lists(st.tuples(st.integers(0, len(GRID) - 1), st.floats(-20.0, 20.0), contexts), max_size=40),
       probe=contexts)
def test_linucb_learns_and_scores_as_its_model_written_in_numpy(steps: list[tuple[int, float, Context]],
                                                               probe: Context) -> None:
    """The compiled kernels (linucb_kernel) against the ridge regressions written as numpy expressions: A_a = ridge I
    + sum x x', b_a = sum (reward - prior mean) x, theta_a = A_a^-1 b_a, score x . theta_a + alpha sqrt(x' A_a^-1 x)."""
    alpha, ridge, prior = 1.5, 2.0, -3.0
    learner = LinUCB(GRID, scales=SCALES, alpha=alpha, ridge=ridge, prior_mean_reward=prior, burn_in=0, seed=1)
    a = np.tile(np.eye(7) * ridge, (len(GRID), 1, 1))
    b = np.zeros((len(GRID), 7))
    for arm, reward, context in steps:
        learner.update(GRID.arm_ids[arm], reward, context)
        x = SCALES.encode(context)
        a[arm] += np.outer(x, x)
        b[arm] += (reward - prior) * x
    state = learner.to_state()
    np.testing.assert_allclose(np.array(state.a), a, rtol=1e-12)
    np.testing.assert_allclose(np.array(state.a_inv), np.linalg.inv(a), rtol=1e-7, atol=1e-9)
    x = SCALES.encode(probe)
    theta = np.einsum("kij,kj->ki", np.linalg.inv(a), b)
    for arm_id, expected in zip(GRID.arm_ids, theta @ x + prior, strict=True):
        assert learner.expected_reward(arm_id, probe) == pytest.approx(expected, rel=1e-7, abs=1e-7)
    scores = theta @ x + alpha * np.sqrt(np.einsum("i,kij,j->k", x, np.linalg.inv(a), x))
    best = np.sort(scores)[::-1]
    if best[0] - best[1] > 1e-6:  # a near tie may go either way by rounding
        assert learner.choose(probe).arm.arm_id == GRID.arm_ids[int(np.argmax(scores))]
