"""Thompson sampling with a Normal-Inverse-Gamma posterior per arm, for a continuous cost reward."""

from __future__ import annotations

import math

import numpy as np

from features.context import Context
from tuner.arms import ArmGrid
from tuner.learners.base import MomentsLearner, MomentsState


class ThompsonState(MomentsState, frozen=True, tag="thompson"):
    pass


class NormalThompson(MomentsLearner):
    """Thompson sampling on the posterior of each arm's *mean* reward (Normal-Inverse-Gamma prior).

    river's ``ThompsonSampling(proba.Gaussian())`` samples from the spread of the rewards rather than
    from the uncertainty about their mean, so its exploration never shrinks, and an untried arm samples
    0.0, which beats every arm when rewards are negative costs (LIBRARY-NOTES, pitfall 2). Here each
    arm's mean reward has a conjugate Normal-Inverse-Gamma posterior with unknown noise variance; its
    marginal is a Student-t whose scale shrinks like 1/sqrt(n), so exploration fades as evidence grows.
    The prior is centred on ``prior_mean_reward`` (minus the cost expected of the static policy).

    The propensity has no closed form: it is a Monte-Carlo estimate over ``propensity_draws`` joint
    posterior draws, the acting draw included, i.e. (wins + 1) / propensity_draws with wins counted
    over the other draws. It is never zero for the arm taken, is biased upward by at most
    1 / propensity_draws, and has a standard error of about sqrt(p (1 - p) / propensity_draws).

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
    propensity_draws
        Posterior draws per decision for the propensity estimate (>= 2; includes the acting draw).
    seed
        Seed of the learner's one random generator.

    Examples
    --------
    >>> from tuner.arms import ArmGrid
    >>> grid = ArmGrid.from_values([0.0, 2.0], [0.0], min_offset_bps=0.0, max_offset_bps=5.0)
    >>> ts = NormalThompson(grid, prior_mean_reward=-3.0, prior_mean_pseudo_count=1.0, prior_noise_std=2.0,
    ...                     prior_noise_pseudo_count=2.0, burn_in=1, propensity_draws=500, seed=7)
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
        propensity_draws: int,
        seed: int,
    ) -> None:
        super().__init__(grid, burn_in=burn_in, seed=seed)
        if not math.isfinite(prior_mean_reward):
            raise ValueError("prior_mean_reward must be finite")
        for name, value in (
            ("prior_mean_pseudo_count", prior_mean_pseudo_count),
            ("prior_noise_std", prior_noise_std),
            ("prior_noise_pseudo_count", prior_noise_pseudo_count),
        ):
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be finite and > 0, got {value!r}")
        if propensity_draws < 2:
            raise ValueError(f"propensity_draws must be >= 2, got {propensity_draws}")
        self._mu0 = float(prior_mean_reward)
        self._kappa0 = float(prior_mean_pseudo_count)
        self._sigma0 = float(prior_noise_std)
        self._nu0 = float(prior_noise_pseudo_count)
        self._propensity_draws = propensity_draws

    def params(self) -> dict[str, float]:
        return {
            "prior_mean_reward": self._mu0,
            "prior_mean_pseudo_count": self._kappa0,
            "prior_noise_std": self._sigma0,
            "prior_noise_pseudo_count": self._nu0,
            "burn_in": float(self._burn_in),
            "propensity_draws": float(self._propensity_draws),
        }

    def posterior(self, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Student-t marginal of the mean reward of arms ``idx``: (location, scale, degrees of freedom)."""
        n = np.array(self._counts)[idx]
        mean = np.array(self._moments.means)[idx]
        kappa_n = self._kappa0 + n
        mu_n = (self._kappa0 * self._mu0 + n * mean) / kappa_n
        alpha_n = self._nu0 / 2.0 + n / 2.0
        beta_n = (
            self._nu0 * self._sigma0**2 / 2.0
            + np.array(self._moments.m2)[idx] / 2.0
            + self._kappa0 * n * (mean - self._mu0) ** 2 / (2.0 * kappa_n)
        )
        return mu_n, np.sqrt(beta_n / (alpha_n * kappa_n)), 2.0 * alpha_n

    def _choose(self, idx: tuple[int, ...], context: Context | None) -> tuple[int, float]:
        loc, scale, dof = self.posterior(np.array(idx))
        draws = loc + scale * self._rng.standard_t(dof, size=(self._propensity_draws, len(idx)))
        winners = draws.argmax(axis=1)
        acting = int(winners[0])
        propensity = float(np.count_nonzero(winners == acting)) / self._propensity_draws
        return int(idx[acting]), propensity

    def _expected_reward(self, i: int, context: Context | None) -> float | None:
        """The posterior mean (the prior mean before any evidence)."""
        loc, _, _ = self.posterior(np.array([i]))
        return float(loc[0])

    def to_state(self) -> ThompsonState:
        return ThompsonState(**self._moments_state())
