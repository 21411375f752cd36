"""The structured learner's refit as one compiled loop: every replica's expected cost of every arm.

Why compiled: the refit runs after every outcome over (replicas x offsets) small arrays; as numpy expressions
it was about forty calls of about a microsecond each, so an update cost ~45 us, while the arithmetic is a few
thousand flops. numba compiles this one function ahead of its first use (an explicit signature, cached on
disk), so importing the learner never compiles inside a decision. The maths is :mod:`tuner.learners.structured`'s
(documented there); this module only evaluates it.
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


@numba.njit(numba.void(_F8_3D, _F8_2D, numba.float64, numba.float64, numba.float64, _F8_2D, _F8_2D, _F8_1D,
                       numba.float64, _I8_1D, _F8_1D, _F8_2D, _F8_2D), cache=True, nogil=True)
def refit(stats: np.ndarray, taker_stats: np.ndarray, scale: float, prior_strength: float, taker_fee: float,
          prior_moments: np.ndarray, prior_y_moments: np.ndarray, offsets: np.ndarray, shrinkage: float,
          arm_column: np.ndarray, arm_bias: np.ndarray, costs: np.ndarray, p_fill: np.ndarray) -> None:
    """Fill ``costs`` (replicas, arms) and ``p_fill`` (replicas, offsets) from the statistics.

    ``stats`` has the rows posted, filled, fill cost, fallback cost per replica and offset,
    stored divided by the pending forgetting factor ``scale``; ``taker_stats`` the taker legs' count and total
    cost per replica. ``prior_moments`` (pieces, 3) and ``prior_y_moments`` (pieces, 2) are what each piece's
    prior line adds to its normal equations (sum w, sum w x, sum w x^2; sum w y, sum w x y).
    """
    replicas, n_offsets = p_fill.shape
    count = np.empty(3)
    total = np.empty(3)
    pieces = np.empty(3)
    slopes = np.empty(3)
    intercepts = np.empty(3)
    maker = np.empty(max(n_offsets, 1))
    moments = np.empty((3, 5))
    for r in range(replicas):
        taker = (scale * taker_stats[1, r] + prior_strength * taker_fee) / (scale * taker_stats[0, r] + prior_strength)
        for k in range(3):
            for m in range(3):
                moments[k, m] = prior_moments[k, m]
            moments[k, 3] = prior_y_moments[k, 0]
            moments[k, 4] = prior_y_moments[k, 1]
        for j in range(n_offsets):
            x = offsets[j]
            posted, filled = scale * stats[0, r, j], scale * stats[1, r, j]
            p_hat = (filled + _EMPIRICAL_LOGIT_HALF) / (posted + 2.0 * _EMPIRICAL_LOGIT_HALF)
            w0 = posted * p_hat * (1.0 - p_hat)
            weights = (w0, filled, posted - filled)
            weighted_y = (w0 * math.log(p_hat / (1.0 - p_hat)), scale * stats[2, r, j], scale * stats[3, r, j])
            for k in range(3):
                w, wy = weights[k], weighted_y[k]
                moments[k, 0] += w
                moments[k, 1] += w * x
                moments[k, 2] += w * x * x
                moments[k, 3] += wy
                moments[k, 4] += wy * x
        for k in range(3):  # each piece's weighted least-squares line across offsets
            sw, sx, sxx, sy, sxy = moments[k, 0], moments[k, 1], moments[k, 2], moments[k, 3], moments[k, 4]
            slope = (sw * sxy - sx * sy) / (sw * sxx - sx * sx)
            intercepts[k] = (sy - slope * sx) / sw
            slopes[k] = min(slope, 0.0) if k == 0 else slope
        for j in range(n_offsets):
            x = offsets[j]
            posted, filled = scale * stats[0, r, j], scale * stats[1, r, j]
            count[0], count[1], count[2] = posted, filled, posted - filled
            total[0], total[1], total[2] = filled, scale * stats[2, r, j], scale * stats[3, r, j]
            for k in range(3):
                curve = intercepts[k] + slopes[k] * x
                if k == 0:
                    curve = 1.0 / (1.0 + math.exp(-curve))
                denominator = count[k] + shrinkage
                if shrinkage > 0.0 or denominator > 0.0:
                    pieces[k] = (total[k] + shrinkage * curve) / denominator
                else:
                    pieces[k] = curve
            p_fill[r, j] = pieces[0]
            maker[j] = pieces[2] + pieces[0] * (pieces[1] - pieces[2])
        for a in range(arm_bias.size):
            bias = arm_bias[a]
            cost = taker * bias
            if bias < 1.0 and n_offsets > 0:
                cost += (1.0 - bias) * maker[arm_column[a]]
            costs[r, a] = cost


@numba.njit(numba.int64(numba.float64), cache=True, nogil=True)
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
                       numba.float64), cache=True, nogil=True)
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


@numba.njit(numba.void(_F8_2D, _I8_1D, _I8_1D, _I8_1D), cache=True, nogil=True)
def replica_choices(costs: np.ndarray, columns: np.ndarray, best: np.ndarray, shares: np.ndarray) -> None:
    """Each replica's cheapest arm among ``columns`` (the first on a tie) into ``best``, and how many replicas
    pick each arm into ``shares`` (indexed by arm)."""
    shares[:] = 0
    for r in range(costs.shape[0]):
        choice, lowest = columns[0], costs[r, columns[0]]
        for c in columns[1:]:
            if costs[r, c] < lowest:
                choice, lowest = c, costs[r, c]
        best[r] = choice
        shares[choice] += 1
