"""Stochastic approximation of the posting distance (Robbins–Monro), a baseline from the literature.

Laruelle, Lehalle & Pagès learn the distance at which to post a limit order by a stochastic algorithm:
keep one distance, post there, move it against a noisy estimate of the cost's slope with steps that
shrink like ``1/n^a``. Here the distance ``delta`` is continuous between the grid's maker offsets; each
order posts at one of the two grid offsets around it, the farther one with probability equal to how far
``delta`` lies towards it (randomised rounding, so the expected offset is ``delta`` and the propensity is
exact), mixed with ``exploration`` so both neighbours keep being tried. The slope between the two
neighbours is estimated without a model, by importance weighting the cost (minus a running baseline, to
cut the variance) with the rounding probabilities. It never takes the taker arm: it learns where to post.

References
----------
Laruelle, S., Lehalle, C.-A. & Pagès, G. (2013). Optimal posting price of limit orders: learning by
trading. Mathematics and Financial Economics 7(3), 359–403 (HAL 00650314).
Robbins, H. & Monro, S. (1951). A stochastic approximation method. Annals of Mathematical Statistics 22(3).
"""

from __future__ import annotations

import bisect
import math
from typing import Any

from router_tuner.features.context import Context
from router_tuner.tuner.arms import ArmGrid
from router_tuner.tuner.learners.base import Learner, LearnerState, RouteOutcome, StateMismatchError


class RobbinsMonroState(LearnerState, frozen=True, tag="robbins_monro"):
    delta_bps: float
    steps: float
    baseline_cost_bps: float | None
    last_upper_probability: float
    last_lower: int
    last_upper: int


class RobbinsMonro(Learner):
    """One posting distance moved by stochastic approximation; see the module docstring.

    Parameters
    ----------
    grid
        The arms; only its maker arms (taker bias 0) are used, at least two offsets.
    initial_offset_bps
        Where ``delta`` starts (clipped into the maker offsets' range), e.g. the static policy's offset.
    step_bps
        Size of the first step per bps of slope (gamma_0); step n is ``step_bps / n**step_decay``.
    step_decay
        Exponent ``a`` in (0.5, 1]: the classical conditions sum(gamma) = inf, sum(gamma^2) < inf.
    exploration
        Probability mass kept on each neighbour (0 < e < 0.5), so their slope stays estimable.
    baseline_window
        Memory of the running cost baseline, in outcomes.
    burn_in
        Outcomes per maker arm before the rule is used (arms below are tried first).
    seed
        Seed of the learner's one random generator.

    Examples
    --------
    >>> import numpy as np
    >>> from router_tuner.tuner.arms import ArmGrid
    >>> grid = ArmGrid.from_values([0.0, 1.0, 2.0, 4.0], [0.0], min_offset_bps=0.0, max_offset_bps=5.0)
    >>> rm = RobbinsMonro(grid, initial_offset_bps=0.0, step_bps=0.5, step_decay=0.7, exploration=0.1,
    ...                   baseline_window=50.0, burn_in=0, seed=3)
    >>> rng = np.random.default_rng(0)
    >>> for _ in range(3000):   # expected cost (d - 2)^2 + 1: best posted 2 bps behind the touch
    ...     arm = rm.choose().arm
    ...     rm.update(arm.arm_id, -((arm.maker_offset_bps - 2.0) ** 2 + 1.0 + rng.normal(0.0, 1.0)))
    >>> round(rm.delta_bps, 1)
    2.0
    """

    kind = "robbins_monro"
    state_type = RobbinsMonroState

    def __init__(self, grid: ArmGrid, *, initial_offset_bps: float, step_bps: float, step_decay: float,
                 exploration: float, baseline_window: float, burn_in: int, seed: int) -> None:
        super().__init__(grid, burn_in=burn_in, seed=seed)
        maker = [i for i, a in enumerate(grid) if a.taker_bias == 0.0]
        offsets = [grid.arms[i].maker_offset_bps for i in maker]
        if len(offsets) < 2:
            raise ValueError("robbins_monro needs at least two maker offsets (taker bias 0) in the grid")
        if not (math.isfinite(step_bps) and step_bps > 0):
            raise ValueError(f"step_bps must be finite and > 0, got {step_bps!r}")
        if not 0.5 < step_decay <= 1.0:
            raise ValueError(f"step_decay must be in (0.5, 1], got {step_decay!r}")
        if not 0.0 < exploration < 0.5:
            raise ValueError(f"exploration must be in (0, 0.5), got {exploration!r}")
        if not (math.isfinite(baseline_window) and baseline_window >= 1.0):
            raise ValueError(f"baseline_window must be finite and >= 1, got {baseline_window!r}")
        if not math.isfinite(initial_offset_bps):
            raise ValueError(f"initial_offset_bps must be finite, got {initial_offset_bps!r}")
        order = sorted(range(len(offsets)), key=offsets.__getitem__)
        # plain Python sequences: every use is a scalar lookup, where numpy's per-call overhead would dominate
        self._maker = tuple(maker[k] for k in order)
        self._offsets = tuple(float(offsets[k]) for k in order)
        self._initial = float(initial_offset_bps)
        self._delta = _clip(float(initial_offset_bps), self._offsets[0], self._offsets[-1])
        self._step, self._decay, self._exploration = float(step_bps), float(step_decay), float(exploration)
        self._window = float(baseline_window)
        self._last = len(self._offsets) - 1
        self._steps = 0.0
        self._baseline: float | None = None
        self._baseline_full = False  # the baseline's divisor has reached its window (until evidence is discounted)
        self._pending: tuple[int, int, float] | None = None  # neighbours and P(upper) of the last choice

    @property
    def delta_bps(self) -> float:
        """The current posting distance (bps behind the touch)."""
        return self._delta

    def params(self) -> dict[str, float]:
        return {"initial_offset_bps": self._initial, "step_bps": self._step, "step_decay": self._decay,
                "exploration": self._exploration, "baseline_window": self._window, "burn_in": float(self._burn_in)}

    def _neighbours(self) -> tuple[int, int, float]:
        """Grid positions (in ``_offsets``) around delta and the probability of the upper one. Delta stays within
        the offsets' range, so its position between the two is in [0, 1] (a bisect from 1 on; the last offset itself
        is the top of the last interval)."""
        offsets, delta = self._offsets, self._delta
        upper = bisect.bisect_right(offsets, delta, 1)
        if upper > self._last:
            upper = self._last
        lower = upper - 1
        e = self._exploration
        return lower, upper, e + (1.0 - 2.0 * e) * (delta - offsets[lower]) / (offsets[upper] - offsets[lower])

    def _choose(self, idx: tuple[int, ...], context: Context | None) -> tuple[int, float]:
        lower, upper, p_upper = self._neighbours()
        if self._maker[lower] in idx and self._maker[upper] in idx:
            take_upper = self._rng.random() < p_upper
            self._pending = (lower, upper, p_upper)
            return self._maker[upper if take_upper else lower], p_upper if take_upper else 1.0 - p_upper
        # a neighbour is not allowed (budget, safety): the allowed maker arm nearest delta, deterministically
        self._pending = None
        allowed_maker = [k for k, i in enumerate(self._maker) if i in idx]
        if not allowed_maker:
            return int(idx[0]), 1.0
        k = min(allowed_maker, key=lambda k: abs(self._offsets[k] - self._delta))
        return self._maker[k], 1.0

    def _update(self, i: int, reward: float, context: Context | None, outcome: RouteOutcome | None) -> None:
        cost = -reward
        baseline = cost if self._baseline is None else self._baseline
        if self._baseline_full:  # the counts only grow until a discount: summed only until they reach the window
            divisor = self._window
        else:
            divisor = min(self._window, sum(self._counts) + 1.0)
            self._baseline_full = divisor == self._window
        self._baseline = baseline + (cost - baseline) / divisor
        pending, self._pending = self._pending, None
        if pending is None:
            return
        lower, upper, p_upper = pending
        if i not in (self._maker[lower], self._maker[upper]):
            return  # an outcome of another arm (e.g. logged by a champion): nothing about this slope
        weight = 1.0 / p_upper if i == self._maker[upper] else -1.0 / (1.0 - p_upper)
        slope = (cost - baseline) * weight / (self._offsets[upper] - self._offsets[lower])
        self._steps += 1.0
        delta = self._delta - self._step / self._steps**self._decay * slope
        offsets = self._offsets
        self._delta = offsets[0] if delta < offsets[0] else offsets[-1] if delta > offsets[-1] else delta

    def _expected_reward(self, i: int, context: Context | None) -> float | None:
        """Minus the running cost baseline for the arms around delta (this learner keeps no per-arm values)."""
        if self._baseline is None or i not in self._maker:
            return None
        lower, upper, _ = self._neighbours()
        return -self._baseline if i in (self._maker[lower], self._maker[upper]) else None

    def _discount(self, keep_fraction: float) -> None:
        self._steps *= keep_fraction  # larger steps again: the distance moves faster after a drift
        self._baseline_full = False

    def to_state(self) -> RobbinsMonroState:
        lower, upper, p_upper = self._pending if self._pending is not None else (-1, -1, -1.0)
        return RobbinsMonroState(**self._base_state(), delta_bps=self._delta, steps=self._steps,
                                 baseline_cost_bps=self._baseline,
                                 last_upper_probability=p_upper, last_lower=lower, last_upper=upper)

    def _check_own_state(self, state: Any) -> None:
        if not self._offsets[0] <= state.delta_bps <= self._offsets[-1]:
            raise StateMismatchError(f"saved delta {state.delta_bps} is outside the maker offsets")

    def _apply_own_state(self, state: Any) -> None:
        self._delta, self._steps = state.delta_bps, state.steps
        self._baseline = state.baseline_cost_bps
        self._baseline_full = False
        self._pending = (None if state.last_lower < 0
                         else (state.last_lower, state.last_upper, state.last_upper_probability))


def _clip(value: float, low: float, high: float) -> float:
    return min(max(value, low), high)
