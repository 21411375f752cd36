"""Disjoint LinUCB on the market context: one ridge regression per arm, its arrays stacked over arms."""

from __future__ import annotations

import math

import numpy as np

from router_tuner.features.context import Context
from router_tuner.tuner.arms import ArmGrid
from router_tuner.tuner.learners.base import Learner, LearnerState, RouteOutcome, StateMismatchError
from router_tuner.tuner.learners.context import N_FEATURES, ContextScales
from router_tuner.tuner.learners.kernels import CompiledKernels

MIN_RIDGE = 1e-6
"""The smallest ridge penalty: A_a starts as ridge * I and its inverse as I / ridge, so 1e-300 made that inverse
infinite and every score NaN (``simulate`` ended in an IndexError: no arm scored above -inf)."""


class LinUCBState(LearnerState, frozen=True, tag="linucb"):
    a: tuple[tuple[tuple[float, ...], ...], ...]
    a_inv: tuple[tuple[tuple[float, ...], ...], ...]
    b: tuple[tuple[float, ...], ...]


class LinUCB(CompiledKernels, Learner):
    """Disjoint LinUCB: per arm, reward ≈ x·theta_a; choose argmax x·theta_a + alpha sqrt(x' A_a^-1 x).

    The best maker offset depends on the market: wide spreads and high volatility change fill odds and
    adverse selection, so one arm per symbol leaves cost on the table. Features come from
    :class:`ContextScales` (intercept, spread, volatility, imbalance, hour on the circle, size vs touch).
    Rewards are learned relative to ``prior_mean_reward`` so the ridge penalty shrinks towards it.

    Why not ``river.bandit.LinUCBDisjoint``: it keeps one ``BayesianLinearRegression`` per arm behind
    dicts (about 6.6k pull+update/s with 8 arms, its own docstring calls it too slow), and its bound is
    mean + one predictive standard deviation, which includes the reward noise and so never shrinks.
    Here all arms' inverse Gram matrices sit in one (K, d, d) array and theta_a = A_a^-1 b_a is cached per
    arm, so a decision is one compiled pass over the arms on a context encoded once (its update reuses the
    encoding; :mod:`tuner.learners.linucb_kernel`), an update is a rank-one Sherman-Morrison correction of one arm
    (no inversion), and the bonus is the parameter uncertainty only, scaled by ``alpha`` in reward units. The
    propensity is one-hot, or 1/k for a k-way tie broken at random.

    Parameters
    ----------
    grid
        The arms.
    scales
        Feature scales (from config).
    alpha
        Width of the bonus in reward units (bps) per unit of parameter standard deviation (> 0).
    ridge
        Ridge penalty lambda (>= :data:`MIN_RIDGE`): A_a starts as lambda * I.
    prior_mean_reward
        Reward the regression is centred on (``-cost_bps`` of the static policy).
    burn_in
        Rewards per arm before the index is used.
    seed
        Seed of the learner's one random generator (tie-breaking).

    Examples
    --------
    >>> from router_tuner.tuner.arms import ArmGrid
    >>> from router_tuner.features.context import Context
    >>> from router_tuner.tuner.learners.context import ContextScales
    >>> grid = ArmGrid.from_values([0.0, 2.0], [0.0], min_offset_bps=0.0, max_offset_bps=5.0)
    >>> lin = LinUCB(grid, scales=ContextScales(5.0, 10.0, 1.0), alpha=0.5, ridge=1.0,
    ...              prior_mean_reward=-3.0, burn_in=1, seed=0)
    >>> calm, wild = Context(2.0, 2.0, 0.0, 10.0, 0.5), Context(2.0, 30.0, 0.0, 10.0, 0.5)
    >>> def reward(arm, ctx):  # passive posting pays in calm markets, costs in volatile ones
    ...     return -1.0 if (arm.maker_offset_bps == 2.0) == (ctx is calm) else -4.0
    >>> for t in range(400):
    ...     ctx = calm if t % 2 else wild
    ...     choice = lin.choose(ctx)
    ...     lin.update(choice.arm.arm_id, reward(choice.arm, ctx), ctx)
    >>> lin.choose(calm).arm.arm_id, lin.choose(wild).arm.arm_id
    ('o2.00_b0.00', 'o0.00_b0.00')

    References
    ----------
    Li, L., Chu, W., Langford, J., Schapire, R. (2010). A contextual-bandit approach to personalized
    news article recommendation. WWW '10, Algorithm 1.
    """

    state_type = LinUCBState
    kind = "linucb"
    requires_context = True
    _KERNELS = ("_scores", "_learn")

    def __init__(
        self,
        grid: ArmGrid,
        *,
        scales: ContextScales,
        alpha: float,
        ridge: float,
        prior_mean_reward: float,
        burn_in: int,
        seed: int,
    ) -> None:
        super().__init__(grid, burn_in=burn_in, seed=seed)
        if not (math.isfinite(alpha) and alpha > 0):
            raise ValueError(f"alpha must be finite and > 0, got {alpha!r}")
        if not (math.isfinite(ridge) and ridge >= MIN_RIDGE):
            raise ValueError(f"ridge must be finite and >= {MIN_RIDGE}, got {ridge!r}")
        if not math.isfinite(prior_mean_reward):
            raise ValueError("prior_mean_reward must be finite")
        self._scales = scales
        self._alpha = float(alpha)
        self._ridge = float(ridge)
        self._prior_mean = float(prior_mean_reward)
        eye = np.eye(N_FEATURES)
        self._a = np.tile(eye * self._ridge, (len(grid), 1, 1))
        self._a_inv = np.tile(eye / self._ridge, (len(grid), 1, 1))
        self._b = np.zeros((len(grid), N_FEATURES))
        self._theta = np.zeros((len(grid), N_FEATURES))
        self._encoded: tuple[Context | None, np.ndarray] = (None, np.zeros(N_FEATURES))
        self._score_buffer = np.zeros(len(grid))
        self._work = np.zeros(N_FEATURES)
        self._bind_kernels()

    def _bind_kernels(self) -> None:
        from router_tuner.tuner.learners import linucb_kernel
        self._scores, self._learn = linucb_kernel.scores, linucb_kernel.learn

    def params(self) -> dict[str, float]:
        return {
            "alpha": self._alpha,
            "ridge": self._ridge,
            "prior_mean_reward": self._prior_mean,
            "burn_in": float(self._burn_in),
            "spread_scale_bps": self._scales.spread_scale_bps,
            "volatility_scale_bps": self._scales.volatility_scale_bps,
            "size_vs_touch_scale": self._scales.size_vs_touch_scale,
        }

    def _features(self, context: Context | None) -> np.ndarray:
        """The encoded context, encoded once: the update of a decision passes the same (immutable) context."""
        if context is None:
            raise ValueError("linucb learner needs a context")
        last, x = self._encoded
        if context is not last:
            x = self._scales.encode(context)
            self._encoded = (context, x)
        return x

    def _choose(self, idx: tuple[int, ...], context: Context | None) -> tuple[int, float]:
        self._scores(self._a_inv, self._theta, self._features(context), self._alpha, self._score_buffer)
        all_scores = self._score_buffer.tolist()
        i, ties = self._argmax_ties(idx, [all_scores[i] for i in idx])
        return i, 1.0 / ties

    def _update(self, i: int, reward: float, context: Context | None, outcome: RouteOutcome | None) -> None:
        self._learn(self._a_inv, self._a, self._b, self._theta, self._features(context), i,
                    reward - self._prior_mean, self._work)

    def _expected_reward(self, i: int, context: Context | None) -> float | None:
        return float(self._features(context) @ self._theta[i]) + self._prior_mean

    def _discount(self, keep_fraction: float) -> None:
        prior = np.eye(N_FEATURES) * self._ridge
        self._a = prior + keep_fraction * (self._a - prior)
        self._a_inv = np.ascontiguousarray(_inverse(self._a))
        self._b *= keep_fraction
        self._refit()

    def _refit(self) -> None:
        """theta_a = A_a^-1 b_a for every arm, cached so a decision is two matrix products."""
        self._theta = np.ascontiguousarray(np.einsum("kij,kj->ki", self._a_inv, self._b))

    def to_state(self) -> LinUCBState:
        return LinUCBState(
            **self._base_state(),
            a=_nested(self._a),
            a_inv=_nested(self._a_inv),
            b=tuple(tuple(row) for row in self._b.tolist()),
        )

    def _check_own_state(self, state: LinUCBState) -> None:
        k = len(self._grid)
        shapes = (np.shape(state.a), np.shape(state.a_inv), np.shape(state.b))
        if shapes != ((k, N_FEATURES, N_FEATURES), (k, N_FEATURES, N_FEATURES), (k, N_FEATURES)):
            raise StateMismatchError(f"saved LinUCB matrices have shapes {shapes}")

    def _apply_own_state(self, state: LinUCBState) -> None:
        self._a = np.array(state.a, dtype=float)
        self._a_inv = np.array(state.a_inv, dtype=float)
        self._b = np.array(state.b, dtype=float)
        self._refit()


def _nested(m: np.ndarray) -> tuple[tuple[tuple[float, ...], ...], ...]:
    return tuple(tuple(tuple(row) for row in arm) for arm in m.tolist())


def _inverse(a: np.ndarray) -> np.ndarray:
    """Each arm's ``A^-1``; the pseudo-inverse where ``A`` is singular in floating point. At the config's smallest
    ridge and feature scales one context can put entries of 1e20 beside a ridge of 1e-6, which float64 cannot hold
    together: ``inv`` raised ``LinAlgError`` on a drift discount (a live run stopped). The rank-one updates never
    invert ``A``; this keeps every choice defined where it must."""
    try:
        return np.linalg.inv(a)
    except np.linalg.LinAlgError:
        return np.linalg.pinv(a, hermitian=True)
