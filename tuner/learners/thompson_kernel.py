"""Thompson sampling's decision as one compiled loop: the best of one Normal draw per arm, and its propensity.

Why compiled: the propensity is a quadrature of a product of Normal CDFs, one per competing arm, against the
chosen arm's Normal. As numpy expressions it built a (competitors x nodes) array and cost ~15 us a decision, most
of it per-call overhead and ``ndtr`` on a few hundred numbers. Here the integrand is evaluated node by node, with the
CDF interpolated from a table. Two rules:

- When no competitor's Normal is narrower than the chosen arm's (every ratio of scales <= 1: the usual case once
  the chosen arm is the one with the most evidence), each factor is no steeper than the weight itself and the
  integrand is smooth on its scale: Gauss-Hermite on ``_HERMITE_NODES`` nodes, within 1e-4 of the exact integral
  (the worst case found is 24 arms with one posterior, off by 7.7e-5, where the product of their CDFs turns
  steeply; random posteriors of up to 24 arms stay below 1e-6; checked against scipy's adaptive quadrature in the
  tests), about a fifth of the midpoint rule's work and more exact than it (up to ~1e-3 off on such posteriors).
- Otherwise a narrow competitor makes a factor nearly a step, where Gauss-Hermite has no useful bound: the midpoint
  rule on ``nodes`` (equal-mass quantiles of the chosen arm's Normal), whose error is at most 1/len(nodes) for
  any posteriors because the integrand is monotone in the node. It runs from the highest node down and stops once
  the rest cannot add more than ``_TAIL_TOLERANCE`` (the skipped nodes sum to at most (nodes left) x (the last
  value)).

The maths is :mod:`tuner.learners.thompson`'s (documented there); numba compiles ahead of first use with explicit
signatures, cached on disk.
"""

from __future__ import annotations

import math

import numba
import numpy as np
from numpy.polynomial.hermite_e import hermegauss
from scipy.special import ndtr

_CDF_IS_ONE = 8.5
"""``Phi(x)`` rounds to exactly 1.0 for x above about 8.3: such a competitor leaves the product unchanged."""
_TABLE_LOW = -8.5
"""Below this (Phi(x) < 1e-17) the CDF is computed exactly by ``erfc``: rare, and the table's absolute error would
swamp such values (a product of them must stay positive while it is representable)."""
_SQRT_HALF = math.sqrt(0.5)
_TAIL_TOLERANCE = 1e-12
"""Most the skipped lower nodes may add to a propensity, far below the quadrature's own error (< 1e-3)."""
_STEP = 1.0 / 32.0
_GRID = np.arange(_TABLE_LOW, _CDF_IS_ONE + 2.0 * _STEP, _STEP)
_CDF = ndtr(_GRID)
_PDF_STEP = np.exp(-0.5 * _GRID**2) / math.sqrt(2.0 * math.pi) * _STEP
"""Phi and phi * _STEP on a grid of step 1/32. The cubic Hermite interpolant between two grid points is within
_STEP**4 / 384 * max|Phi''''| < 4e-9 of Phi (checked against scipy in the tests), at a quarter of the cost of
``erfc``, which dominated the loop."""

_HERMITE_NODES = 20
_HERMITE_Z, _HERMITE_W = hermegauss(_HERMITE_NODES)
_HERMITE_W = _HERMITE_W / math.sqrt(2.0 * math.pi)
"""Gauss-Hermite nodes and weights for the standard Normal density (the weights sum to one)."""

_F8_1D = numba.float64[::1]
_I8_1D = numba.int64[::1]


@numba.njit(numba.float64(numba.float64), cache=True, nogil=True)
def normal_cdf(x: float) -> float:
    """Phi(x) by cubic Hermite interpolation on the tabulated grid (exact below it, 1 above; NaN stays NaN, never
    an index outside the table: numba does not check bounds)."""
    if x >= _CDF_IS_ONE:
        return 1.0
    if not x > _TABLE_LOW:
        return 0.5 * math.erfc(-x * _SQRT_HALF)
    t = (x - _TABLE_LOW) / _STEP
    k = int(t)
    f = t - k
    g = 1.0 - f
    return (_CDF[k] * (1.0 + 2.0 * f) * g * g + _PDF_STEP[k] * f * g * g
            + _CDF[k + 1] * f * f * (3.0 - 2.0 * f) - _PDF_STEP[k + 1] * f * f * g)


@numba.njit(inline="always")
def _competitors(loc: np.ndarray, scale: np.ndarray, idx: np.ndarray, a: int,
                 lowest_node: float) -> tuple[np.ndarray, np.ndarray, int]:
    """Each competitor's (shift, ratio), leaving out those whose CDF is 1 at every node (they change nothing)."""
    shifts = np.empty(idx.size)
    ratios = np.empty(idx.size)
    competitors = 0
    for b in idx:
        if b != a:
            shift, ratio = (loc[a] - loc[b]) / scale[b], scale[a] / scale[b]
            if shift + ratio * lowest_node < _CDF_IS_ONE:
                shifts[competitors], ratios[competitors] = shift, ratio
                competitors += 1
    return shifts, ratios, competitors


@numba.njit(inline="always")
def _weighted_integrand(shifts: np.ndarray, ratios: np.ndarray, competitors: int, z: float, weight: float) -> float:
    """``weight`` times the product of the first ``competitors`` CDFs Phi(shift_b + ratio_b z) at the node ``z``."""
    value = weight
    for c in range(competitors):
        value *= normal_cdf(shifts[c] + ratios[c] * z)
        if value == 0.0:  # underflow: the remaining factors cannot raise it
            break
    return value


@numba.njit(inline="always")
def _product_quadrature(loc: np.ndarray, scale: np.ndarray, idx: np.ndarray, a: int, z: np.ndarray,
                        w: np.ndarray) -> float:
    """sum_q w[q] prod_b Phi(shift_b + ratio_b z[q]): the integral by the rule of nodes ``z``, weights ``w``."""
    shifts, ratios, competitors = _competitors(loc, scale, idx, a, z[0])
    if competitors == 0:
        return 1.0
    total = 0.0
    for q in range(z.size):
        total += _weighted_integrand(shifts, ratios, competitors, z[q], w[q])
    return total


@numba.njit(inline="always")
def _midpoint(loc: np.ndarray, scale: np.ndarray, idx: np.ndarray, a: int, nodes: np.ndarray) -> float:
    """The midpoint rule on equal-mass ``nodes``, from the highest down, stopping once the rest is negligible."""
    shifts, ratios, competitors = _competitors(loc, scale, idx, a, nodes[0])
    if competitors == 0:
        return 1.0
    total = 0.0
    for q in range(nodes.size - 1, -1, -1):
        value = _weighted_integrand(shifts, ratios, competitors, nodes[q], 1.0)
        total += value
        if value * q <= _TAIL_TOLERANCE * nodes.size:
            break
    return total / nodes.size


@numba.njit(numba.float64(_F8_1D, _F8_1D, _I8_1D, numba.int64, _F8_1D), cache=True, nogil=True)
def max_draw_probability(loc: np.ndarray, scale: np.ndarray, idx: np.ndarray, a: int, nodes: np.ndarray) -> float:
    """P(arm ``a``'s draw is the largest among arms ``idx``) when arm b draws from Normal(loc[b], scale[b]):
    Gauss-Hermite when no competitor is narrower than arm ``a``, else the midpoint rule on ``nodes``, equal-mass
    standard-normal quantiles (ascending) of arm ``a``'s Normal.

    Arm b's CDF at a's standard node z is Phi(shift_b + ratio_b z), shift_b = (loc_a - loc_b) / scale_b and
    ratio_b = scale_a / scale_b.
    """
    widest = 0.0
    for b in idx:
        if b != a:
            widest = max(widest, scale[a] / scale[b])
    if widest <= 1.0:
        return _product_quadrature(loc, scale, idx, a, _HERMITE_Z, _HERMITE_W)
    return _midpoint(loc, scale, idx, a, nodes)


@numba.njit(numba.float64(_F8_1D, _F8_1D, _I8_1D, numba.int64, _F8_1D), cache=True, nogil=True)
def midpoint_probability(loc: np.ndarray, scale: np.ndarray, idx: np.ndarray, a: int, nodes: np.ndarray) -> float:
    """:func:`max_draw_probability` by the midpoint rule alone, whatever the scales (the tests' check of it)."""
    return _midpoint(loc, scale, idx, a, nodes)


@numba.njit(numba.types.Tuple((numba.int64, numba.float64))(_F8_1D, _F8_1D, _I8_1D, _F8_1D, _F8_1D), cache=True,
            nogil=True)
def choose(loc: np.ndarray, scale: np.ndarray, idx: np.ndarray, draws: np.ndarray,
           nodes: np.ndarray) -> tuple[int, float]:
    """The arm of ``idx`` whose draw ``loc + scale * draws[k]`` is largest (the first on a tie), and its
    :func:`max_draw_probability`. That arm was drawn, so its probability is positive: an arm whose winning draws
    all lie beyond the top node (the quadrature gives 0 or an underflow) is logged at _TAIL_TOLERANCE, inside
    the quadrature's stated error, instead of an impossible zero."""
    acting, best = idx[0], -math.inf
    for k in range(idx.size):
        sample = loc[idx[k]] + scale[idx[k]] * draws[k]
        if sample > best:
            acting, best = idx[k], sample
    return acting, max(max_draw_probability(loc, scale, idx, acting, nodes), _TAIL_TOLERANCE)
