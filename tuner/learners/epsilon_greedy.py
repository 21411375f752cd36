"""Epsilon-greedy with a decaying, floored exploration rate and a closed-form propensity."""

from __future__ import annotations

import math

from router_tuner.features.context import Context
from router_tuner.tuner.arms import ArmGrid
from router_tuner.tuner.learners.base import MomentsLearner, MomentsState, RouteOutcome


class EpsilonGreedyState(MomentsState, frozen=True, tag="epsilon_greedy"):
    decay_steps: float


class EpsilonGreedy(MomentsLearner):
    """With probability epsilon a uniformly random allowed arm, otherwise the best mean (ties at random).

    epsilon = max(``min_epsilon``, ``epsilon`` * exp(-``decay`` * steps)) as in river's
    ``EpsilonGreedy`` plus a floor, the per-symbol exploration budget. The propensity is exact:
    epsilon / k + (1 - epsilon) / t for one of the t tied greedy arms among k allowed, epsilon / k
    otherwise. river's policy would do the same job but breaks greedy ties by list order, exposes no
    propensity and keeps its statistics in private attributes that our JSON state would have to reach
    into; the logic is a dozen lines, so it is owned here. ``discount_evidence`` also scales the decay
    step count, which raises epsilon again after a drift.

    Parameters
    ----------
    grid
        The arms.
    epsilon
        Initial exploration rate in [0, 1].
    decay
        Exponential decay per learned reward (>= 0; 0 keeps epsilon constant).
    min_epsilon
        Floor of the exploration rate in [0, ``epsilon``].
    burn_in
        Rewards per arm before the greedy rule is used (arms below are tried first).
    seed
        Seed of the learner's one random generator.

    Examples
    --------
    >>> from router_tuner.tuner.arms import ArmGrid
    >>> grid = ArmGrid.from_values([0.0, 2.0], [0.0], min_offset_bps=0.0, max_offset_bps=5.0)
    >>> eg = EpsilonGreedy(grid, epsilon=0.2, decay=0.0, min_epsilon=0.2, burn_in=1, seed=1)
    >>> eg.update("o0.00_b0.00", -4.0); eg.update("o2.00_b0.00", -1.0)
    >>> [round(eg.choose(allowed=[a]).propensity, 3) for a in ("o2.00_b0.00",)]
    [1.0]
    >>> sorted({(c.arm.arm_id, round(c.propensity, 3)) for c in (eg.choose() for _ in range(50))})
    [('o0.00_b0.00', 0.1), ('o2.00_b0.00', 0.9)]
    """

    state_type = EpsilonGreedyState
    kind = "epsilon_greedy"

    def __init__(
        self, grid: ArmGrid, *, epsilon: float, decay: float, min_epsilon: float, burn_in: int, seed: int
    ) -> None:
        super().__init__(grid, burn_in=burn_in, seed=seed)
        if not (math.isfinite(epsilon) and 0.0 <= epsilon <= 1.0):
            raise ValueError(f"epsilon must be in [0, 1], got {epsilon!r}")
        if not (math.isfinite(decay) and decay >= 0.0):
            raise ValueError(f"decay must be finite and >= 0, got {decay!r}")
        if not (math.isfinite(min_epsilon) and 0.0 <= min_epsilon <= epsilon):
            raise ValueError(f"min_epsilon must be in [0, epsilon], got {min_epsilon!r}")
        self._epsilon = float(epsilon)
        self._decay = float(decay)
        self._min_epsilon = float(min_epsilon)
        self._decay_steps = 0.0
        # the decay steps from which epsilon is its floor: past them no exp is needed (7% of a pull+update)
        self._floor_steps = (math.log(epsilon / min_epsilon) / decay if decay > 0.0 and min_epsilon > 0.0
                             else math.inf)

    def params(self) -> dict[str, float]:
        return {
            "epsilon": self._epsilon,
            "decay": self._decay,
            "min_epsilon": self._min_epsilon,
            "burn_in": float(self._burn_in),
        }

    @property
    def current_epsilon(self) -> float:
        if self._decay_steps >= self._floor_steps:
            return self._min_epsilon
        return max(self._min_epsilon, self._epsilon * math.exp(-self._decay * self._decay_steps))

    def _choose(self, idx: tuple[int, ...], context: Context | None) -> tuple[int, float]:
        eps = self._min_epsilon if self._decay_steps >= self._floor_steps else self.current_epsilon
        counts, means = self._counts, self._moments.means
        # one pass (an arm without rewards scores +inf, so it is greedy): half the cost of scoring, max and filter
        best, greedy = -math.inf, []
        for i in idx:
            score = means[i] if counts[i] > 0 else math.inf
            if score > best:
                best, greedy = score, [i]
            elif score == best:
                greedy.append(i)
        if self._uniform() < eps:
            i = idx[self._draw_index(len(idx))]
        else:
            i = greedy[self._draw_index(len(greedy))] if len(greedy) > 1 else greedy[0]
        propensity = eps / len(idx) + ((1.0 - eps) / len(greedy) if i in greedy else 0.0)
        return i, propensity

    def _update(self, i: int, reward: float, context: Context | None, outcome: RouteOutcome | None) -> None:
        self._moments.add(i, reward, self._counts[i] + 1.0)  # MomentsLearner's update, without super()'s cost
        self._decay_steps += 1.0

    def _discount(self, keep_fraction: float) -> None:
        super()._discount(keep_fraction)
        self._decay_steps *= keep_fraction

    def to_state(self) -> EpsilonGreedyState:
        return EpsilonGreedyState(**self._moments_state(), decay_steps=self._decay_steps)

    def _apply_own_state(self, state: EpsilonGreedyState) -> None:
        super()._apply_own_state(state)
        self._decay_steps = state.decay_steps
