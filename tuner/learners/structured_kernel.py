"""The structured learner's refit as one compiled loop: every replica's expected cost of every arm.

Why compiled: the refit runs after every outcome over (replicas x offsets) small arrays; as numpy expressions
it was about forty calls of about a microsecond each, so an update cost ~45 us, while the arithmetic is a few
thousand flops. numba compiles these functions ahead of their first use (explicit signatures, cached on
disk), so importing the learner never compiles inside a decision. An outcome is one call (:func:`learn`: add it,
refit, the replicas' choices of the allowed sets decisions use), since each array argument of a compiled call costs
about 60 ns to pass; ``error_model="numpy"`` drops the zero checks Python semantics would put on every division
(no denominator here can be zero: each holds a prior's positive weight or is checked first). The maths is
:mod:`tuner.learners.structured`'s (documented there); this module only evaluates it.
"""

from __future__ import annotations

import math

import numba
import numpy as np

_EMPIRICAL_LOGIT_HALF = 0.5
"""Haldane's correction: the empirical logit of f fills in n posts is log((f + 1/2) / (n - f + 1/2))."""
_EXP_MINUS_ONE = math.exp(-1.0)
_POISSON_MAX = 30
"""Poisson(1) puts 1e-33 beyond 30: the inversion stops there (the CDF's rounding never reaches 1)."""

_F8_1D = numba.float64[::1]
_F8_2D = numba.float64[:, ::1]
_F8_3D = numba.float64[:, :, ::1]
_I8_1D = numba.int64[::1]
_I8_2D = numba.int64[:, ::1]


_REFIT_ARGS = (_F8_3D, _F8_2D, numba.float64, numba.float64, numba.float64, _F8_2D, _F8_1D, numba.float64, _I8_1D,
               _F8_1D, _F8_2D, _F8_2D)
_SLOT_ARGS = (_I8_2D, _I8_1D, numba.int64, _I8_2D, _I8_2D)


@numba.njit(inline="always", error_model="numpy")
def _add_point(moments: np.ndarray, x: float, w: float, wy: float) -> None:
    """One offset's point (x, y) with weight w in a line's normal equations (sum w, w x, w x^2, w y, w x y)."""
    moments[0] += w
    moments[1] += w * x
    moments[2] += w * x * x
    moments[3] += wy
    moments[4] += wy * x


@numba.njit(inline="always", error_model="numpy")
def _shrunk(total: float, count: float, curve: float, shrinkage: float) -> float:
    """An offset's own mean (``total`` over ``count``) shrunk towards the fitted ``curve`` by ``shrinkage``
    pseudo-observations; the curve itself without either."""
    denominator = count + shrinkage
    if shrinkage > 0.0 or denominator > 0.0:
        return (total + shrinkage * curve) / denominator
    return curve


@numba.njit(numba.void(*_REFIT_ARGS), cache=True, nogil=True, error_model="numpy")
def refit(stats: np.ndarray, taker_stats: np.ndarray, scale: float, prior_strength: float, taker_fee: float,
          prior_rows: np.ndarray, offsets: np.ndarray, shrinkage: float, arm_column: np.ndarray, arm_bias: np.ndarray,
          costs: np.ndarray, p_fill: np.ndarray) -> None:
    """Fill ``costs`` (replicas, arms) and ``p_fill`` (replicas, offsets) from the statistics.

    ``stats`` has the rows posted, filled, fill cost, fallback cost per replica and offset,
    stored divided by the pending forgetting factor ``scale``; ``taker_stats`` the taker legs' count and total
    cost per replica. ``prior_rows`` (pieces, 5) is what each piece's prior line adds to its normal equations
    (sum w, sum w x, sum w x^2, sum w y, sum w x y).
    """
    replicas, n_offsets = p_fill.shape
    slopes = np.empty(3)
    intercepts = np.empty(3)
    maker = np.empty(max(n_offsets, 1))
    moments = np.empty((3, 5))
    for r in range(replicas):
        taker = (scale * taker_stats[1, r] + prior_strength * taker_fee) / (scale * taker_stats[0, r] + prior_strength)
        moments[:, :] = prior_rows
        for j in range(n_offsets):
            x = offsets[j]
            posted, filled = scale * stats[0, r, j], scale * stats[1, r, j]
            p_hat = (filled + _EMPIRICAL_LOGIT_HALF) / (posted + 2.0 * _EMPIRICAL_LOGIT_HALF)
            w0 = posted * p_hat * (1.0 - p_hat)
            _add_point(moments[0], x, w0, w0 * math.log(p_hat / (1.0 - p_hat)))
            _add_point(moments[1], x, filled, scale * stats[2, r, j])
            _add_point(moments[2], x, posted - filled, scale * stats[3, r, j])
        for k in range(3):  # each piece's weighted least-squares line across offsets
            sw, sx, sxx, sy, sxy = moments[k, 0], moments[k, 1], moments[k, 2], moments[k, 3], moments[k, 4]
            slope = (sw * sxy - sx * sy) / (sw * sxx - sx * sx)
            intercepts[k] = (sy - slope * sx) / sw
            slopes[k] = min(slope, 0.0) if k == 0 else slope
        for j in range(n_offsets):
            x = offsets[j]
            posted, filled = scale * stats[0, r, j], scale * stats[1, r, j]
            fill = _shrunk(filled, posted, 1.0 / (1.0 + math.exp(-(intercepts[0] + slopes[0] * x))), shrinkage)
            fill_cost = _shrunk(scale * stats[2, r, j], filled, intercepts[1] + slopes[1] * x, shrinkage)
            fallback_cost = _shrunk(scale * stats[3, r, j], posted - filled, intercepts[2] + slopes[2] * x, shrinkage)
            p_fill[r, j] = fill
            maker[j] = fallback_cost + fill * (fill_cost - fallback_cost)
        for a in range(arm_bias.size):
            bias = arm_bias[a]
            cost = taker * bias
            if bias < 1.0 and n_offsets > 0:
                cost += (1.0 - bias) * maker[arm_column[a]]
            costs[r, a] = cost


@numba.njit(numba.int64(numba.float64), cache=True, nogil=True, error_model="numpy")
def poisson_one(u: float) -> int:
    """A Poisson(1) draw from one uniform ``u`` in [0, 1) by inversion of the CDF (the bootstrap's weight)."""
    k = 0
    term = _EXP_MINUS_ONE
    cdf = term
    while u >= cdf and k < _POISSON_MAX:
        k += 1
        term /= k
        cdf += term
    return k


@numba.njit(numba.void(_F8_3D, _F8_2D, _F8_1D, numba.float64, numba.int64, numba.boolean, numba.boolean,
                       numba.float64), cache=True, nogil=True, error_model="numpy")
def add_outcome(stats: np.ndarray, taker_stats: np.ndarray, uniforms: np.ndarray, inverse_scale: float, column: int,
                started_maker: bool, filled: bool, cost: float) -> None:
    """Add one outcome to the statistics :func:`refit` reads: a taker leg, or a post at offset ``column`` that
    filled or fell back. Replica r counts it ``poisson_one(uniforms[r])`` times (the online bootstrap), divided
    by the pending forgetting factor (times ``inverse_scale``)."""
    for r in range(uniforms.size):
        w = poisson_one(uniforms[r]) * inverse_scale
        if w == 0.0:
            continue
        if not started_maker:
            taker_stats[0, r] += w
            taker_stats[1, r] += w * cost
        else:
            stats[0, r, column] += w
            if filled:
                stats[1, r, column] += w
                stats[2, r, column] += w * cost
            else:
                stats[3, r, column] += w * cost


@numba.njit(numba.void(_F8_2D, *_SLOT_ARGS), cache=True, nogil=True, error_model="numpy")
def replica_choices(costs: np.ndarray, slot_arms: np.ndarray, slot_sizes: np.ndarray, slot: int, best: np.ndarray,
                    shares: np.ndarray) -> None:
    """For the allowed set in row ``slot`` (its first ``slot_sizes[slot]`` arms in ``slot_arms``): each replica's
    cheapest arm (the first on a tie) into ``best[slot]``, and how many replicas pick each arm into
    ``shares[slot]`` (indexed by arm)."""
    arms = slot_arms[slot, :slot_sizes[slot]]
    shares[slot, :] = 0
    for r in range(costs.shape[0]):
        choice, lowest = arms[0], costs[r, arms[0]]
        for c in arms[1:]:
            if costs[r, c] < lowest:
                choice, lowest = c, costs[r, c]
        best[slot, r] = choice
        shares[slot, choice] += 1


@numba.njit(numba.void(*_REFIT_ARGS, *_SLOT_ARGS), cache=True, nogil=True, error_model="numpy")
def refresh(stats: np.ndarray, taker_stats: np.ndarray, scale: float, prior_strength: float, taker_fee: float,
            prior_rows: np.ndarray, offsets: np.ndarray, shrinkage: float, arm_column: np.ndarray,
            arm_bias: np.ndarray, costs: np.ndarray, p_fill: np.ndarray, slot_arms: np.ndarray, slot_sizes: np.ndarray,
            slots: int, best: np.ndarray, shares: np.ndarray) -> None:
    """:func:`refit`, then :func:`replica_choices` for the first ``slots`` allowed sets: what a decision reads."""
    refit(stats, taker_stats, scale, prior_strength, taker_fee, prior_rows, offsets, shrinkage, arm_column, arm_bias,
          costs, p_fill)
    for slot in range(slots):
        replica_choices(costs, slot_arms, slot_sizes, slot, best, shares)


@numba.njit(numba.void(_F8_1D, numba.int64, numba.boolean, numba.boolean, numba.float64, *_REFIT_ARGS, *_SLOT_ARGS),
            cache=True, nogil=True, error_model="numpy")
def learn(uniforms: np.ndarray, column: int, started_maker: bool, filled: bool, cost: float, stats: np.ndarray,
          taker_stats: np.ndarray, scale: float, prior_strength: float, taker_fee: float, prior_rows: np.ndarray,
          offsets: np.ndarray, shrinkage: float, arm_column: np.ndarray, arm_bias: np.ndarray, costs: np.ndarray,
          p_fill: np.ndarray, slot_arms: np.ndarray, slot_sizes: np.ndarray, slots: int, best: np.ndarray,
          shares: np.ndarray) -> None:
    """One outcome in one call (:func:`add_outcome` then :func:`refresh`): calling a compiled function costs
    about 60 ns per array argument, so the three steps share their arguments."""
    add_outcome(stats, taker_stats, uniforms, 1.0 / scale, column, started_maker, filled, cost)
    refresh(stats, taker_stats, scale, prior_strength, taker_fee, prior_rows, offsets, shrinkage, arm_column,
            arm_bias, costs, p_fill, slot_arms, slot_sizes, slots, best, shares)
