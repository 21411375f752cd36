"""The structured learner's refit as compiled loops: every replica's expected cost of every arm.

Why compiled: the refit runs after every outcome over (replicas x offsets) small arrays; as numpy expressions
it was about forty calls of about a microsecond each, so an update cost ~45 us, while the arithmetic is a few
thousand flops. numba compiles these functions ahead of their first use (explicit signatures, cached on
disk), so importing the learner never compiles inside a decision. An outcome is one call (:func:`learn`), given
the learner's two buffers (:mod:`tuner.learners.structured_layout`: a compiled call costs about 55 ns per array
passed). ``error_model="numpy"`` drops the zero checks Python semantics would put on every division (no
denominator here can be zero: each holds a prior's positive weight or is checked first). The maths is
:mod:`tuner.learners.structured`'s (documented there); this module only evaluates it.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from router_tuner.tuner.learners import fill_speed
from router_tuner.tuner.learners import structured_layout as layout

COMPILED_IN = ("fill_speed.py", "structured_layout.py")
"""The modules of this folder compiled into these kernels: ``fill_speed``'s constants, ``structured_layout``'s
``buffer_views``."""
COMPILED_IN_SHA256 = "3c5612ea179b19adf0e90041a1b4c9cd32540adc5b1bf7176f444680026b7416"
"""sha256 of the ``COMPILED_IN`` files' bytes, one after the other. numba's disk cache keys a kernel on the content
of this file alone (numba 0.68 hashes the source file; touching it changes nothing), so after an edit of a module
compiled in, the stale kernel was loaded: a ``PSEUDO_FILLS`` changed in fill_speed.py kept the old value, and a
``buffer_views`` changed would read the buffers with the old layout. Their digest written here makes every such
edit change this file too, which recompiles the kernels; tests/tuner/learners/test_structured_kernel.py checks it
(and prints the new value when it is stale)."""

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
_BUFFERS = (_F8_1D, _I8_1D)

_views = numba.njit(numba.types.Tuple((_F8_3D, _F8_2D, _F8_2D, _F8_2D, _F8_2D, _F8_1D, _F8_3D, _F8_1D, _F8_1D,
                                       _F8_2D, _I8_1D, _I8_2D, _I8_1D, _I8_2D, _I8_2D))(*_BUFFERS),
                    cache=True, nogil=True, inline="always")(layout.buffer_views)


@numba.njit(inline="always", error_model="numpy")
def _shrunk(total: float, count: float, curve: float, shrinkage: float) -> float:
    """An offset's own mean (``total`` over ``count``) shrunk towards the fitted ``curve`` by ``shrinkage``
    pseudo-observations; the curve itself without either."""
    denominator = count + shrinkage
    if shrinkage > 0.0 or denominator > 0.0:
        return (total + shrinkage * curve) / denominator
    return curve


Moments = tuple[float, float, float, float, float]
"""A weighted least-squares line's normal equations: (sum w, sum w x, sum w x^2, sum w y, sum w x y)."""


@numba.njit(inline="always")
def _row(prior_rows: np.ndarray, r: int, piece: int) -> Moments:
    """What ``piece``'s prior line adds to replica ``r``'s normal equations."""
    row = prior_rows[r, piece]
    return row[0], row[1], row[2], row[3], row[4]


@numba.njit(inline="always", error_model="numpy")
def _add_point(moments: Moments, x: float, w: float, wy: float) -> Moments:
    """The normal equations with the point (x, y) of weight w added (``wy`` = w y)."""
    sw, sx, sxx, sy, sxy = moments
    return sw + w, sx + w * x, sxx + w * x * x, sy + wy, sxy + wy * x


@numba.njit(inline="always", error_model="numpy")
def _line(moments: Moments) -> tuple[float, float]:
    """The weighted least-squares line (intercept, slope) from its normal equations."""
    sw, sx, sxx, sy, sxy = moments
    slope = (sw * sxy - sx * sy) / (sw * sxx - sx * sx)
    return (sy - slope * sx) / sw, slope


@numba.njit(inline="always", error_model="numpy")
def _refit_replica(r: int, scale: float, floats: np.ndarray, stats: np.ndarray, taker_stats: np.ndarray,
                   costs: np.ndarray, p_fill: np.ndarray, maker_costs: np.ndarray, prior_rows: np.ndarray,
                   offsets: np.ndarray, arm_bias: np.ndarray, arm_column: np.ndarray) -> None:
    """Replica ``r``'s row of ``costs``, ``p_fill`` and ``maker_costs`` from its statistics (stored divided by the
    pending forgetting factor ``scale``)."""
    prior_strength = floats[layout.PRIOR_STRENGTH]
    shrinkage = floats[layout.SHRINKAGE]
    level = floats[layout.FILL_LEVEL]
    taker = ((scale * taker_stats[1, r] + prior_strength * floats[layout.TAKER_FEE])
             / (scale * taker_stats[0, r] + prior_strength))
    # each piece's normal equations: its prior line's, then each offset's point (x, y) with weight w
    fill, fill_cost, fallback = _row(prior_rows, r, 0), _row(prior_rows, r, 1), _row(prior_rows, r, 2)
    n_offsets = offsets.size
    for j in range(n_offsets):
        x = offsets[j]
        posted, filled = scale * stats[0, r, j], scale * stats[1, r, j]
        p_hat = (filled + _EMPIRICAL_LOGIT_HALF) / (posted + 2.0 * _EMPIRICAL_LOGIT_HALF)
        w = posted * p_hat * (1.0 - p_hat)
        fill = _add_point(fill, x, w, w * math.log(p_hat / (1.0 - p_hat)))
        fill_cost = _add_point(fill_cost, x, filled, scale * stats[2, r, j])
        fallback = _add_point(fallback, x, posted - filled, scale * stats[3, r, j])
    fill_at, fill_slope = _line(fill)
    fill_slope = min(fill_slope, 0.0)  # a post further from the touch never fills more often
    fill_cost_at, fill_cost_slope = _line(fill_cost)
    fallback_at, fallback_slope = _line(fallback)
    for j in range(n_offsets):
        x = offsets[j]
        posted, filled = scale * stats[0, r, j], scale * stats[1, r, j]
        curve = 1.0 / (1.0 + math.exp(-(fill_at + fill_slope * x)))
        if level != 1.0:  # the curve under a fill hazard ``level`` times its own (tuner.learners.fill_speed)
            curve = 1.0 - (1.0 - curve) ** level
        fill = _shrunk(filled, posted, curve, shrinkage)
        fill_cost = _shrunk(scale * stats[2, r, j], filled, fill_cost_at + fill_cost_slope * x, shrinkage)
        fallback_cost = _shrunk(scale * stats[3, r, j], posted - filled, fallback_at + fallback_slope * x, shrinkage)
        p_fill[r, j] = fill
        maker_costs[r, j] = fallback_cost + fill * (fill_cost - fallback_cost)
    for a in range(arm_bias.size):
        bias = arm_bias[a]
        cost = taker * bias
        if bias < 1.0 and n_offsets > 0:
            cost += (1.0 - bias) * maker_costs[r, arm_column[a]]
        costs[r, a] = cost


@numba.njit(inline="always", error_model="numpy")
def _cheapest(r: int, slot: int, costs: np.ndarray, slot_arms: np.ndarray, slot_sizes: np.ndarray) -> int:
    """Replica ``r``'s cheapest arm of the allowed set in row ``slot`` (the first on a tie)."""
    choice = slot_arms[slot, 0]
    lowest = costs[r, choice]
    for k in range(1, slot_sizes[slot]):
        c = slot_arms[slot, k]
        if costs[r, c] < lowest:
            choice, lowest = c, costs[r, c]
    return choice


@numba.njit(inline="always", error_model="numpy")
def _choose_all(slot: int, costs: np.ndarray, slot_arms: np.ndarray, slot_sizes: np.ndarray, best: np.ndarray,
                shares: np.ndarray) -> None:
    """Every replica's cheapest arm of the allowed set in row ``slot`` into ``best[slot]``, and how many replicas
    pick each arm into ``shares[slot]`` (indexed by arm)."""
    shares[slot, :] = 0
    for r in range(costs.shape[0]):
        choice = _cheapest(r, slot, costs, slot_arms, slot_sizes)
        best[slot, r] = choice
        shares[slot, choice] += 1


@numba.njit(inline="always", error_model="numpy")
def _fill_level(tallies: np.ndarray, keep_slow: float, keep_fast: float, column: int, filled: float,
                exposure: float) -> float:
    """Age the fill-speed ``tallies`` (rows: long-memory fills and exposure, short-memory fills and exposure) by
    ``keep_slow`` and ``keep_fast``, add a post at ``column`` (-1: none, a taker leg) and return the level
    (:mod:`tuner.learners.fill_speed`, whose model this evaluates)."""
    observed = 0.0
    expected = 0.0
    for j in range(tallies.shape[1]):
        tallies[0, j] *= keep_slow
        tallies[1, j] *= keep_slow
        tallies[2, j] *= keep_fast
        tallies[3, j] *= keep_fast
        if j == column:
            tallies[0, j] += filled
            tallies[1, j] += exposure
            tallies[2, j] += filled
            tallies[3, j] += exposure
        observed += tallies[2, j]
        expected += tallies[3, j] * (tallies[0, j] + fill_speed.PRIOR_EXPOSURE) / (tallies[1, j]
                                                                                 + fill_speed.PRIOR_EXPOSURE)
    log_level = math.log((observed + fill_speed.PSEUDO_FILLS) / (expected + fill_speed.PSEUDO_FILLS))
    return math.exp(min(max(log_level, -fill_speed.MAX_LOG_LEVEL), fill_speed.MAX_LOG_LEVEL))


@numba.njit(numba.void(*_BUFFERS, numba.float64), cache=True, nogil=True, error_model="numpy")
def refresh(floats: np.ndarray, ints: np.ndarray, scale: float) -> None:
    """Refit every replica, then every replica's choice in every allowed set in use: after a load, a discount or a
    fold of the forgetting factor ``scale`` (the statistics are stored divided by it)."""
    (stats, taker_stats, costs, p_fill, maker_costs, _, prior_rows, offsets, arm_bias, speed, arm_column, slot_arms,
     slot_sizes, best, shares) = _views(floats, ints)
    if floats[layout.KEEP_FAST] > 0.0:  # the level of the tallies as they are (restored, say)
        floats[layout.FILL_LEVEL] = _fill_level(speed, 1.0, 1.0, -1, 0.0, 0.0)
    for r in range(costs.shape[0]):
        _refit_replica(r, scale, floats, stats, taker_stats, costs, p_fill, maker_costs, prior_rows, offsets,
                       arm_bias, arm_column)
    for slot in range(ints[layout.SLOTS_USED]):
        _choose_all(slot, costs, slot_arms, slot_sizes, best, shares)


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


@numba.njit(numba.void(*_BUFFERS, numba.float64, numba.int64, numba.boolean, numba.boolean, numba.float64,
                       numba.int64, numba.float64), cache=True, nogil=True, error_model="numpy")
def learn(floats: np.ndarray, ints: np.ndarray, scale: float, column: int, started_maker: bool, filled: bool,
          cost: float, first_uniform: int, wait_share: float) -> None:
    """Add one outcome: a taker leg, or a post at offset ``column`` that filled or fell back (``wait_share``: the
    first post's fill time over the TTL, -1 when it did not fill). With fill speed the tallies are aged and the level
    set first (:func:`_fill_level`). Replica r counts the outcome ``poisson_one(uniforms[first_uniform + r])`` times
    (the online bootstrap), divided by the pending forgetting factor ``scale``; each replica that counts it is
    refitted and its choice in every allowed set in use moved (the others' fits and choices stand: their statistics
    only shrank by the forgetting factor)."""
    (stats, taker_stats, costs, p_fill, maker_costs, uniforms, prior_rows, offsets, arm_bias, speed, arm_column,
     slot_arms, slot_sizes, best, shares) = _views(floats, ints)
    if floats[layout.KEEP_FAST] > 0.0:
        exposure, first_filled = (wait_share, 1.0) if wait_share >= 0.0 else (1.0, 0.0)
        floats[layout.FILL_LEVEL] = _fill_level(speed, floats[layout.KEEP_SLOW], floats[layout.KEEP_FAST],
                                                column if started_maker else -1, first_filled, exposure)
    inverse_scale = 1.0 / scale
    for r in range(ints[layout.REPLICAS]):
        w = poisson_one(uniforms[first_uniform + r]) * inverse_scale
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
        _refit_replica(r, scale, floats, stats, taker_stats, costs, p_fill, maker_costs, prior_rows, offsets,
                       arm_bias, arm_column)
        for slot in range(ints[layout.SLOTS_USED]):
            choice = _cheapest(r, slot, costs, slot_arms, slot_sizes)
            shares[slot, best[slot, r]] -= 1
            best[slot, r] = choice
            shares[slot, choice] += 1


@numba.njit(numba.void(*_BUFFERS, numba.int64), cache=True, nogil=True, error_model="numpy")
def add_slot(floats: np.ndarray, ints: np.ndarray, slot: int) -> None:
    """Every replica's choice in the allowed set in row ``slot`` (its arms and size written there already), which
    :func:`learn` and :func:`refresh` then keep current."""
    _, _, costs, _, _, _, _, _, _, _, _, slot_arms, slot_sizes, best, shares = _views(floats, ints)
    _choose_all(slot, costs, slot_arms, slot_sizes, best, shares)
    ints[layout.SLOTS_USED] = max(ints[layout.SLOTS_USED], slot + 1)
