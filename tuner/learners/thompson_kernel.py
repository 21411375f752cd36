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
  tests), 20 evaluations of the integrand against the rule below's ~150, and more exact than that rule's bound.
- Otherwise a narrow competitor makes a factor nearly a step, where Gauss-Hermite has no useful bound. In the
  probability level u = Phi(z) of the chosen arm's node the integrand f(u) is non-decreasing from 0 to 1, so the
  trapezoid rule on any partition of [0, 1] is off by at most half the sum of (bin width x rise of f across it),
  known exactly from the values. The rule spends its evaluations where f rises: f at the edges of
  ``_COARSE_BINS`` coarse bins first, then each coarse bin split in proportion to the square root of its rise, on
  a table of M standard-normal quantiles, so that the error is at most ``PROPENSITY_ERROR_BOUND`` (1/1024) for any
  posteriors. A linear f would take 512 evaluations, as many as the 512-node midpoint rule this replaces (whose
  bound was 1/512); f rises unevenly on the benchmark's steep decisions, where it takes 146 a call on average (p90
  287) against the midpoint rule's 326 (p90 504): 6.0 us a call instead of 11.7 (measured on 3,089 recorded
  decisions).

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
"""Most the skipped lowest bins may add to a propensity, far below the quadrature's own error bound."""
PROPENSITY_ERROR_BOUND = 1.0 / 1024.0
"""The bracketed trapezoid rule's guaranteed error, whatever the posteriors (plus the tabulated CDF's < 4e-9 per
factor and ``_TAIL_TOLERANCE``). The 512-node midpoint rule before it was bounded by 1/512: at 96 nodes (1/96 each)
six arms at the config's weakest priors, five wide beside one narrow, summed to 1.02."""
_COARSE_BINS = 16
"""Bins of the first pass, whose rises place the second pass's evaluations (on the benchmark's steep decisions
16 cost 6.0 us a call, 32 6.2 us, 64 7.0 us)."""
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
def _coarse_level(k: int, step: int, levels: int) -> int:
    """The level of coarse edge k: the k-th multiple of ``step``, but the outer edges one level inside [0, M]."""
    return 1 if k == 0 else (levels - 1 if k == _COARSE_BINS else k * step)


@numba.njit(inline="always")
def _bracketed_trapezoid(loc: np.ndarray, scale: np.ndarray, idx: np.ndarray, a: int,
                         quantiles: np.ndarray) -> float:
    """The integral of f(u) = prod_b Phi(shift_b + ratio_b Phi^-1(u)) over u in [0, 1] by the trapezoid rule on
    a partition of the levels j / M (``quantiles[j - 1]`` = Phi^-1(j / M)), within ``PROPENSITY_ERROR_BOUND``.

    f rises from 0 to 1, so a bin's integral lies between its width times its end values and the trapezoid is off
    by at most width x rise / 2. The outer bins [0, 1/M] and [1 - 1/M, 1] end at f's limits (never evaluated);
    f can be nearly flat inside them (a much wider competitor), so they are one level wide and their rises, at
    most 1 in all, add at most 1 / (2 M). Pass 1 evaluates f at the ``_COARSE_BINS`` bins' edges between them, from
    the top down (once f is below ``_TAIL_TOLERANCE`` the bins under it hold less than that). Pass 2 splits coarse
    bin k, of rise J_k, into sub-bins of ``width`` levels, bounding its error by J_k width / (2 M): sub-bins
    sqrt(J_k) times more numerous than the mean (the fewest evaluations for a given total, by Lagrange) meet
    ``target`` over the uncapped bins; bins capped at one level share the 1 / (2 M) with the outer ones.
    """
    shifts, ratios, competitors = _competitors(loc, scale, idx, a, quantiles[0])
    if competitors == 0:
        return 1.0
    levels = quantiles.size + 1
    step = levels // _COARSE_BINS
    edges = np.zeros(_COARSE_BINS + 1)
    lowest = 0
    for k in range(_COARSE_BINS, -1, -1):
        edges[k] = _weighted_integrand(shifts, ratios, competitors, quantiles[_coarse_level(k, step, levels) - 1], 1.0)
        if edges[k] <= _TAIL_TOLERANCE:
            lowest = k
            break
    root_sum = 0.0
    for k in range(lowest, _COARSE_BINS):
        root_sum += math.sqrt(max(edges[k + 1] - edges[k], 0.0))
    target = PROPENSITY_ERROR_BOUND - 0.5 / levels
    total = (1.0 + edges[_COARSE_BINS]) + (edges[0] if lowest == 0 else 0.0)
    for k in range(lowest, _COARSE_BINS):
        wanted = math.sqrt(max(edges[k + 1] - edges[k], 0.0)) * root_sum / (2.0 * _COARSE_BINS * target)
        width = step if wanted <= 1.0 else max(1, int(step / wanted))
        left_level, left = _coarse_level(k, step, levels), edges[k]
        top_level = _coarse_level(k + 1, step, levels)
        for level in range(left_level + width, top_level, width):
            value = _weighted_integrand(shifts, ratios, competitors, quantiles[level - 1], 1.0)
            total += (level - left_level) * (left + value)
            left_level, left = level, value
        total += (top_level - left_level) * (left + edges[k + 1])
    return total / (2.0 * levels)


@numba.njit(numba.float64(_F8_1D, _F8_1D, _I8_1D, numba.int64, _F8_1D), cache=True, nogil=True)
def max_draw_probability(loc: np.ndarray, scale: np.ndarray, idx: np.ndarray, a: int,
                         quantiles: np.ndarray) -> float:
    """P(arm ``a``'s draw is the largest among arms ``idx``) when arm b draws from Normal(loc[b], scale[b]):
    Gauss-Hermite when no competitor is narrower than arm ``a``, else the bracketed trapezoid rule on
    ``quantiles``, the standard-normal quantiles of the levels j / M, j = 1..M-1 (M a multiple of
    ``_COARSE_BINS``, at least 1024).

    Arm b's CDF at a's standard node z is Phi(shift_b + ratio_b z), shift_b = (loc_a - loc_b) / scale_b and
    ratio_b = scale_a / scale_b.
    """
    widest = 0.0
    for b in idx:
        if b != a:
            widest = max(widest, scale[a] / scale[b])
    if widest <= 1.0:
        return _product_quadrature(loc, scale, idx, a, _HERMITE_Z, _HERMITE_W)
    return _bracketed_trapezoid(loc, scale, idx, a, quantiles)


@numba.njit(numba.float64(_F8_1D, _F8_1D, _I8_1D, numba.int64, _F8_1D), cache=True, nogil=True)
def trapezoid_probability(loc: np.ndarray, scale: np.ndarray, idx: np.ndarray, a: int,
                          quantiles: np.ndarray) -> float:
    """:func:`max_draw_probability` by the bracketed trapezoid rule alone, whatever the scales (the tests' check of
    its bound)."""
    return _bracketed_trapezoid(loc, scale, idx, a, quantiles)


@numba.njit(numba.types.Tuple((numba.int64, numba.float64))(_F8_1D, _F8_1D, _I8_1D, _F8_1D, _F8_1D), cache=True,
            nogil=True)
def choose(loc: np.ndarray, scale: np.ndarray, idx: np.ndarray, draws: np.ndarray,
           quantiles: np.ndarray) -> tuple[int, float]:
    """The arm of ``idx`` whose draw ``loc + scale * draws[k]`` is largest (the first on a tie), and its
    :func:`max_draw_probability`. That arm was drawn, so its probability is positive: an arm whose winning draws
    all lie beyond Gauss-Hermite's nodes (it gives 0 or an underflow) is logged at _TAIL_TOLERANCE, inside the
    quadrature's stated error, instead of an impossible zero (the trapezoid rule's top bin, which ends at f = 1,
    gives at least 1 / (2 M))."""
    acting, best = idx[0], -math.inf
    for k in range(idx.size):
        sample = loc[idx[k]] + scale[idx[k]] * draws[k]
        if sample > best:
            acting, best = idx[k], sample
    return acting, max(max_draw_probability(loc, scale, idx, acting, quantiles), _TAIL_TOLERANCE)
