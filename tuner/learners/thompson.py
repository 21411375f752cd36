"""Thompson sampling with a Normal-Inverse-Gamma posterior per arm, for a continuous cost reward."""

from __future__ import annotations

import math
from collections.abc import Collection

import numpy as np
from scipy.special import ndtri, stdtrit

from router_tuner.features.context import Context
from router_tuner.tuner.arms import ArmGrid
from router_tuner.tuner.learners.base import MomentsLearner, MomentsState, RouteOutcome
from router_tuner.tuner.learners.kernels import CompiledKernels


class ThompsonState(MomentsState, frozen=True, tag="thompson"):
    pass


_MATCHED_QUANTILE = 0.95
_QUANTILE_LEVELS = 8192
"""Levels j / _QUANTILE_LEVELS of the trapezoid rule's partition when a competitor is narrower than the chosen arm
(else Gauss-Hermite, ``thompson_kernel``): its bins are never narrower than one level, the error bound
``thompson_kernel.PROPENSITY_ERROR_BOUND`` (1/1024) holds for any posteriors, and the finest bins spend 1 / (2 x
8192) of it. On the benchmark's steep decisions 4096 levels take 10% more evaluations, 16384 5% fewer."""
_STANDARD_QUANTILES = ndtri(np.arange(1, _QUANTILE_LEVELS) / _QUANTILE_LEVELS)
"""The levels' standard-normal quantiles, the nodes of the chosen arm's Normal (0 and 1 are the integrand's limits,
never evaluated)."""
_WIDENING_CACHE_SIZE = 4096
"""Distinct small degrees of freedom whose t-to-Normal widening is remembered (a bound on memory, not a knob)."""
_EXPANSION_MIN_DOF = 20.0
"""From here on the t quantile comes from its Cornish-Fisher expansion in 1/dof (Abramowitz & Stegun 26.7.5,
four terms): within 4e-8 relative of ``stdtrit`` (checked in the tests), at a tenth of its cost, since every
update gives the learned arm new degrees of freedom."""
_Z = float(ndtri(_MATCHED_QUANTILE))
_EXPANSION = ((_Z**3 + _Z) / 4.0, (5 * _Z**5 + 16 * _Z**3 + 3 * _Z) / 96.0,
              (3 * _Z**7 + 19 * _Z**5 + 17 * _Z**3 - 15 * _Z) / 384.0,
              (79 * _Z**9 + 776 * _Z**7 + 1482 * _Z**5 - 1920 * _Z**3 - 945 * _Z) / 92160.0)


MIN_PRIOR_PSEUDO_COUNT = 1e-6
"""The weakest prior, in observations, of the mean and of the noise: an untried arm's posterior scale divides by
their product, which underflowed to 0 at 1e-300 each (``simulate`` ended in an unexpected ZeroDivisionError)."""
MIN_PRIOR_NOISE_STD = 1e-3
"""The smallest prior noise standard deviation (reward units, bps): at 1e-300 its square underflowed, every untried
arm's posterior scale was 0 and the first decision divided by it (an unexpected ZeroDivisionError)."""


def t_quantile(dof: float) -> float:
    """The Student-t's ``_MATCHED_QUANTILE`` quantile at ``dof`` degrees of freedom (expanded from 20 on)."""
    if dof < _EXPANSION_MIN_DOF:
        return float(stdtrit(dof, _MATCHED_QUANTILE))
    g1, g2, g3, g4 = _EXPANSION
    inverse = 1.0 / dof
    return _Z + inverse * (g1 + inverse * (g2 + inverse * (g3 + inverse * g4)))


class NormalThompson(CompiledKernels, MomentsLearner):
    """Thompson sampling on the posterior of each arm's *mean* reward (Normal-Inverse-Gamma evidence).

    river's ``ThompsonSampling(proba.Gaussian())`` samples from the spread of the rewards rather than
    from the uncertainty about their mean, so its exploration never shrinks, and an untried arm samples
    0.0, which beats every arm when rewards are negative costs (LIBRARY-NOTES, pitfall 2). Here each
    arm's mean reward has a conjugate Normal-Inverse-Gamma posterior with unknown noise variance, centred
    on ``prior_mean_reward`` (minus the cost expected of the static policy); its marginal is a Student-t
    whose scale shrinks like 1/sqrt(n), so exploration fades as evidence grows.

    A decision draws once per arm from a Normal with that marginal's location and the same central 90%
    interval (the Student-t's limit as its degrees of freedom nu_0 + n grow; while an arm has few rewards
    its scale is widened as the t's is, only its far tails are lighter) and takes the best draw. The Normal
    is what makes the propensity cheap and exact enough: the probability that arm a's draw is the largest
    is the one-dimensional integral over a's draw of the product of the other arms' Normal CDFs, computed in one
    compiled loop (:mod:`tuner.learners.thompson_kernel`, about a microsecond): by Gauss-Hermite on 20 nodes when
    no other arm's Normal is narrower than a's (within 1e-4), else by a trapezoid rule in a's probability level
    that refines where the integrand rises (error at most 1/1024 for any posteriors, since the integrand is
    monotone in that level). No Monte-Carlo noise, against the standard error of about 0.035 that 200 Monte-Carlo
    draws per decision used to give.

    Parameters
    ----------
    grid
        The arms.
    prior_mean_reward
        Prior mean of every arm's reward (``-cost_bps``).
    prior_mean_pseudo_count
        How many observations the prior mean is worth (kappa_0 > 0).
    prior_noise_std
        Prior guess of the per-order reward standard deviation (sets beta_0).
    prior_noise_pseudo_count
        How many observations that guess is worth (nu_0 > 0; alpha_0 = nu_0 / 2).
    burn_in
        Rewards per arm before sampling starts (arms below are tried first).
    seed
        Seed of the learner's one random generator.

    Examples
    --------
    >>> from router_tuner.tuner.arms import ArmGrid
    >>> grid = ArmGrid.from_values([0.0, 2.0], [0.0], min_offset_bps=0.0, max_offset_bps=5.0)
    >>> ts = NormalThompson(grid, prior_mean_reward=-3.0, prior_mean_pseudo_count=1.0, prior_noise_std=2.0,
    ...                     prior_noise_pseudo_count=2.0, burn_in=1, seed=7)
    >>> for _ in range(200):
    ...     choice = ts.choose()
    ...     ts.update(choice.arm.arm_id, -1.0 if choice.arm.maker_offset_bps == 2.0 else -4.0)
    >>> choice = ts.choose()
    >>> choice.arm.arm_id, choice.propensity > 0.9
    ('o2.00_b0.00', True)

    References
    ----------
    Murphy, K. (2007). Conjugate Bayesian analysis of the Gaussian distribution, section 3.
    Russo, D. et al. (2018). A Tutorial on Thompson Sampling. Foundations and Trends in ML 11(1).
    """

    state_type = ThompsonState
    _KERNELS = ("_kernel_choose", "_kernel_propensity")
    kind = "thompson"

    def __init__(
        self,
        grid: ArmGrid,
        *,
        prior_mean_reward: float,
        prior_mean_pseudo_count: float,
        prior_noise_std: float,
        prior_noise_pseudo_count: float,
        burn_in: int,
        seed: int,
    ) -> None:
        super().__init__(grid, burn_in=burn_in, seed=seed)
        if not math.isfinite(prior_mean_reward):
            raise ValueError("prior_mean_reward must be finite")
        if not (math.isfinite(prior_noise_std) and prior_noise_std >= MIN_PRIOR_NOISE_STD):
            raise ValueError(f"prior_noise_std must be finite and >= {MIN_PRIOR_NOISE_STD}, got {prior_noise_std!r}")
        for name, value in (("prior_mean_pseudo_count", prior_mean_pseudo_count),
                            ("prior_noise_pseudo_count", prior_noise_pseudo_count)):
            if not (math.isfinite(value) and value >= MIN_PRIOR_PSEUDO_COUNT):
                raise ValueError(f"{name} must be finite and >= {MIN_PRIOR_PSEUDO_COUNT}, got {value!r}")
        self._mu0 = float(prior_mean_reward)
        self._kappa0 = float(prior_mean_pseudo_count)
        self._sigma0 = float(prior_noise_std)
        self._nu0 = float(prior_noise_pseudo_count)
        self._loc = np.full(len(grid), self._mu0)
        self._scale = np.zeros(len(grid))
        self._widening: dict[float, float] = {}
        self._bind_kernels()
        self._refresh_posterior()

    def _bind_kernels(self) -> None:
        from router_tuner.tuner.learners import thompson_kernel
        self._kernel_choose, self._kernel_propensity = thompson_kernel.choose, thompson_kernel.max_draw_probability

    def params(self) -> dict[str, float]:
        return {
            "prior_mean_reward": self._mu0,
            "prior_mean_pseudo_count": self._kappa0,
            "prior_noise_std": self._sigma0,
            "prior_noise_pseudo_count": self._nu0,
            "burn_in": float(self._burn_in),
        }

    def posterior(self, i: int) -> tuple[float, float, float]:
        """Student-t marginal of arm ``i``'s mean reward: (location, scale, degrees of freedom)."""
        return self._posterior(i, self._counts[i])

    def _posterior(self, i: int, n: float) -> tuple[float, float, float]:
        """:meth:`posterior` with arm ``i``'s moments counted as ``n`` rewards (``update`` counts after learning)."""
        mean = self._moments.means[i]
        kappa_n = self._kappa0 + n
        alpha_n = self._nu0 / 2.0 + n / 2.0
        beta_n = (self._nu0 * self._sigma0**2 / 2.0 + self._moments.m2[i] / 2.0
                  + self._kappa0 * n * (mean - self._mu0) ** 2 / (2.0 * kappa_n))
        return (self._kappa0 * self._mu0 + n * mean) / kappa_n, math.sqrt(beta_n / (alpha_n * kappa_n)), 2.0 * alpha_n

    def sampling_distribution(self, i: int) -> tuple[float, float]:
        """The Normal (location, scale) a decision draws arm ``i``'s mean reward from."""
        return float(self._loc[i]), float(self._scale[i])

    def choice_probabilities(self, allowed: Collection[str] | None = None) -> dict[str, float]:
        """The probability of each allowed arm at the next sampled decision (after burn-in), by quadrature."""
        idx = self._all_arms if allowed is None else self._allowed_indices(allowed)
        return {self._arms[i].arm_id: self._propensity(idx, i) for i in idx}

    def _choose(self, idx: tuple[int, ...], context: Context | None) -> tuple[int, float]:
        acting, propensity = self._kernel_choose(self._loc, self._scale, self._index_array(idx),
                                                 self._rng.standard_normal(len(idx)), _STANDARD_QUANTILES)
        return int(acting), propensity

    def _propensity(self, idx: tuple[int, ...], a: int) -> float:
        """P(arm ``a``'s draw is the largest among ``idx``): ``thompson_kernel.max_draw_probability``."""
        return self._kernel_propensity(self._loc, self._scale, self._index_array(idx), a, _STANDARD_QUANTILES)

    def _update(self, i: int, reward: float, context: Context | None, outcome: RouteOutcome | None) -> None:
        super()._update(i, reward, context, outcome)
        self._set_sampling_posterior(i, *self._posterior(i, self._counts[i] + 1.0))

    def _set_sampling_posterior(self, i: int, loc: float, scale: float, dof: float) -> None:
        """The Normal arm ``i`` is sampled from: the Student-t marginal's location, and its scale widened so the
        Normal's central 90% interval is the t's (the t's heavier tails keep exploring an arm with few rewards)."""
        if dof >= _EXPANSION_MIN_DOF:
            widening = t_quantile(dof) / _Z
        else:  # few rewards: degrees of freedom nu_0 + n recur, so the exact quantile is remembered
            widening = self._widening.get(dof)
            if widening is None:
                if len(self._widening) >= _WIDENING_CACHE_SIZE:
                    self._widening.clear()
                widening = self._widening[dof] = t_quantile(dof) / _Z
        self._loc[i] = loc
        self._scale[i] = scale * widening

    def _refresh_posterior(self) -> None:
        for i in self._all_arms:
            self._set_sampling_posterior(i, *self.posterior(i))

    def _discount(self, keep_fraction: float) -> None:
        super()._discount(keep_fraction)
        self._refresh_posterior()

    def _apply_own_state(self, state: ThompsonState) -> None:
        super()._apply_own_state(state)
        self._refresh_posterior()

    def _expected_reward(self, i: int, context: Context | None) -> float | None:
        """The posterior mean (the prior mean before any evidence)."""
        return float(self._loc[i])

    def to_state(self) -> ThompsonState:
        return ThompsonState(**self._moments_state())
