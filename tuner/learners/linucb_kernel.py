"""LinUCB's decision scores and its rank-one update as compiled loops over its (arms, 7, 7) arrays.

Why compiled: as numpy expressions a decision was five calls (two matrix products, a maximum, a square root and a
sum) and an update eight (two outer products among them), each about a microsecond of call overhead on 7-element
arithmetic: ~18 us a decision and its update, 41-55k a second. The maths is :mod:`tuner.learners.linucb`'s
(documented there); numba compiles ahead of first use with explicit signatures, cached on disk.
"""

from __future__ import annotations

import math

import numba
import numpy as np

_F8_1D = numba.float64[::1]
_F8_2D = numba.float64[:, ::1]
_F8_3D = numba.float64[:, :, ::1]


@numba.njit(numba.void(_F8_3D, _F8_2D, _F8_1D, numba.float64, _F8_1D), cache=True, nogil=True,
            error_model="numpy")
def scores(a_inv: np.ndarray, theta: np.ndarray, x: np.ndarray, alpha: float, out: np.ndarray) -> None:
    """``out[k] = theta[k] . x + alpha sqrt(max(x' a_inv[k] x, 0))`` for every arm k."""
    n_arms, d = theta.shape
    for k in range(n_arms):
        mean = 0.0
        quadratic = 0.0
        for i in range(d):
            mean += theta[k, i] * x[i]
            row = 0.0
            for j in range(d):
                row += a_inv[k, i, j] * x[j]
            quadratic += row * x[i]
        out[k] = mean + alpha * math.sqrt(max(quadratic, 0.0))


@numba.njit(numba.void(_F8_3D, _F8_3D, _F8_2D, _F8_2D, _F8_1D, numba.int64, numba.float64, _F8_1D), cache=True,
            nogil=True, error_model="numpy")
def learn(a_inv: np.ndarray, a: np.ndarray, b: np.ndarray, theta: np.ndarray, x: np.ndarray, k: int,
          centred_reward: float, work: np.ndarray) -> None:
    """Arm ``k`` learns ``centred_reward`` at ``x``: A += x x', its inverse by Sherman-Morrison (no inversion),
    b += reward x, theta = A^-1 b. ``work`` is scratch of length d."""
    d = x.size
    a_inv_x = work
    denominator = 1.0
    for i in range(d):
        row = 0.0
        for j in range(d):
            row += a_inv[k, i, j] * x[j]
        a_inv_x[i] = row
        denominator += x[i] * row
    for i in range(d):
        for j in range(d):
            a_inv[k, i, j] -= a_inv_x[i] * a_inv_x[j] / denominator
            a[k, i, j] += x[i] * x[j]
        b[k, i] += centred_reward * x[i]
    for i in range(d):
        row = 0.0
        for j in range(d):
            row += a_inv[k, i, j] * b[k, j]
        theta[k, i] = row
