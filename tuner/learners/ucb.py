"""UCB1 with a self-scaling bonus: means in bps, exploration width from the pooled reward noise."""

from __future__ import annotations

import math

from router_tuner.features.context import Context
from router_tuner.tuner.arms import ArmGrid
from router_tuner.tuner.learners.base import MomentsLearner, MomentsState


class UCBState(MomentsState, frozen=True, tag="ucb"):
    pass


class UCB(MomentsLearner):
    """Upper confidence bound: the arm with the best mean plus ``delta * noise * sqrt(2 ln N / n)``.

    Why not ``river.bandit.UCB``: with a ``proba`` reward object it has no exploration bonus, and with
    ``stats.Mean`` plus a ``reward_scaler`` each arm's mean mixes rewards scaled by whatever the running
    scaler was at the time, so means of arms pulled at different times are on different scales. Here
    means stay in raw reward units (bps) and the bonus is scaled by the pooled within-arm standard
    deviation of the rewards, floored at ``min_noise_std`` so the first samples cannot switch
    exploration off. Owning the index also gives the exact propensity (1, or 1/k for a k-way tie broken
    at random), which river does not expose, and a state that serialises without private attributes.

    Parameters
    ----------
    grid
        The arms.
    delta
        Width of the confidence bonus in noise standard deviations (> 0).
    min_noise_std
        Floor of the pooled reward standard deviation used in the bonus (> 0, reward units).
    burn_in
        Rewards per arm before the index is used (arms below are tried first; use >= 1).
    seed
        Seed of the learner's one random generator (tie-breaking).

    Examples
    --------
    >>> from router_tuner.tuner.arms import ArmGrid
    >>> grid = ArmGrid.from_values([0.0, 2.0], [0.0], min_offset_bps=0.0, max_offset_bps=5.0)
    >>> ucb = UCB(grid, delta=1.0, min_noise_std=0.5, burn_in=1, seed=3)
    >>> for _ in range(300):
    ...     choice = ucb.choose()
    ...     ucb.update(choice.arm.arm_id, -1.0 if choice.arm.maker_offset_bps == 2.0 else -4.0)
    >>> ucb.choose()
    Choice(arm=Arm(maker_offset_bps=2.0, taker_bias=0.0, arm_id='o2.00_b0.00'), propensity=1.0)

    References
    ----------
    Auer, P., Cesa-Bianchi, N., Fischer, P. (2002). Finite-time analysis of the multiarmed bandit
    problem. Machine Learning 47, 235-256.
    """

    state_type = UCBState
    kind = "ucb"

    def __init__(self, grid: ArmGrid, *, delta: float, min_noise_std: float, burn_in: int, seed: int) -> None:
        super().__init__(grid, burn_in=burn_in, seed=seed)
        for name, value in (("delta", delta), ("min_noise_std", min_noise_std)):
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be finite and > 0, got {value!r}")
        self._delta = float(delta)
        self._min_noise_std = float(min_noise_std)

    def params(self) -> dict[str, float]:
        return {"delta": self._delta, "min_noise_std": self._min_noise_std, "burn_in": float(self._burn_in)}

    def noise_std(self) -> float:
        """Pooled within-arm standard deviation of the rewards, floored at ``min_noise_std``."""
        dof = sum(c - 1.0 for c in self._counts if c > 1.0)
        pooled = math.sqrt(sum(self._moments.m2) / dof) if dof > 0 else 0.0
        return max(pooled, self._min_noise_std)

    def _choose(self, idx: tuple[int, ...], context: Context | None) -> tuple[int, float]:
        counts, means = self._counts, self._moments.means
        width = self._delta * self.noise_std() * math.sqrt(2.0 * math.log(max(sum(counts), 1.0)))
        scores = [means[i] + width / math.sqrt(counts[i]) if counts[i] > 0 else math.inf for i in idx]
        i, ties = self._argmax_ties(idx, scores)
        return i, 1.0 / ties

    def to_state(self) -> UCBState:
        return UCBState(**self._moments_state())
