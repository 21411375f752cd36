"""Where the structured learner keeps its arrays: two flat buffers (floats and integers), every array a view.

Why: the learner's compiled update reads and writes about fifteen arrays, and a compiled call costs about 55 ns per
array passed (0.8 us of a 7 us update); two buffers cost two. The integer buffer starts with a header holding the
sizes and where each array starts, so :func:`buffer_views` rebuilds every view from the two buffers alone. It is
plain numpy, called here when a workspace is built or unpickled (a process that only reads a learner never imports
numba), and the kernels compile this same function (:mod:`tuner.learners.structured_kernel`; an edit of this file
must update that module's ``COMPILED_IN_SHA256``, so the kernels compiled from the old one are not loaded again).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np

PIECES = 3
"""The fitted pieces: the fill probability (in the logit), the cost of a fill and the cost of a fallback."""
MOMENTS = 5
"""A weighted least-squares line's normal equations: sum w, sum w x, sum w x^2, sum w y, sum w x y."""
MAKER_STATS = 4
"""Per replica and offset: posts, fills, the total cost of the fills and of the fallbacks."""
FILL_SPEED_ROWS = 4
"""Per offset: first-post fills and exposure in the long memory, then in the short one."""

# The float buffer starts with the learner's constants, the fill-speed memories' keep factors per outcome (0: no
# fill speed) and the fill level (1: the curve as fitted; see tuner.learners.fill_speed); the integer buffer with
# the sizes, the number of allowed sets in use, then where each float array starts (and the last ends), then the
# same for the integer arrays.
PRIOR_STRENGTH, TAKER_FEE, SHRINKAGE, KEEP_SLOW, KEEP_FAST, FILL_LEVEL, FLOAT_HEADER = range(7)
REPLICAS, STAT_COLUMNS, OFFSETS, ARMS, SLOTS, SLOTS_USED, FLOAT_STARTS = range(7)
_FLOAT_ARRAYS = 10
INT_STARTS = FLOAT_STARTS + _FLOAT_ARRAYS + 1
_INT_ARRAYS = 5
INT_HEADER = INT_STARTS + _INT_ARRAYS + 1


class Workspace(NamedTuple):
    """The learner's arrays, views into ``floats`` and ``ints``.

    ``stats`` (posted, filled, fill cost, fallback cost per replica and offset) and ``taker_stats`` (the taker legs'
    count and total cost per replica) are stored divided by the pending forgetting factor; ``costs`` (replicas,
    arms), ``p_fill`` (replicas, offsets) and ``maker_costs`` (replicas, offsets) are the refit's output;
    ``uniforms`` the learner's next uniform draws, drawn ahead in one call (an outcome's bootstrap weights read
    ``replicas`` of them from a position the learner passes); ``prior_rows`` (replicas, pieces, moments) what each
    piece's prior line adds to a replica's normal equations; ``fill_speed`` the fill-speed tallies (rows: long-memory
    fills and exposure, short-memory fills and exposure; one column per offset). ``slot_*``: per allowed set the
    decisions use, its arms, its size, each replica's cheapest arm and how many replicas pick each arm.
    """

    floats: np.ndarray
    ints: np.ndarray
    stats: np.ndarray
    taker_stats: np.ndarray
    costs: np.ndarray
    p_fill: np.ndarray
    maker_costs: np.ndarray
    uniforms: np.ndarray
    prior_rows: np.ndarray
    offsets: np.ndarray
    arm_bias: np.ndarray
    fill_speed: np.ndarray
    arm_column: np.ndarray
    slot_arms: np.ndarray
    slot_sizes: np.ndarray
    slot_best: np.ndarray
    slot_shares: np.ndarray

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickled as its two buffers: unpickled views would be copies, no longer seeing what the kernels write."""
        return _rebuild, (self.floats, self.ints)


def _rebuild(floats: np.ndarray, ints: np.ndarray) -> Workspace:
    return Workspace(floats, ints, *buffer_views(floats, ints))


def workspace(*, replicas: int, offsets: np.ndarray, arm_column: Sequence[int], arm_bias: np.ndarray,
              prior_rows: np.ndarray, slots: int, prior_strength: float, taker_fee: float,
              shrinkage: float, uniforms: int, keep_slow: float = 0.0, keep_fast: float = 0.0) -> Workspace:
    """The buffers for a learner of this shape: its constants written in, every statistic zero, no allowed set
    (``keep_slow``, ``keep_fast``: the fill-speed memories' keep factors, 0 without fill speed)."""
    n_offsets, n_arms = offsets.size, arm_bias.size
    stat_columns = max(1, n_offsets)
    float_sizes = (MAKER_STATS * replicas * stat_columns, 2 * replicas, replicas * n_arms, replicas * n_offsets,
                   replicas * stat_columns, uniforms, replicas * PIECES * MOMENTS, n_offsets, n_arms,
                   FILL_SPEED_ROWS * stat_columns)
    int_sizes = (n_arms, slots * n_arms, slots, slots * replicas, slots * n_arms)
    float_starts = np.cumsum((FLOAT_HEADER, *float_sizes))
    int_starts = np.cumsum((INT_HEADER, *int_sizes))
    floats = np.zeros(int(float_starts[-1]))
    ints = np.zeros(int(int_starts[-1]), dtype=np.int64)
    ints[:FLOAT_STARTS] = replicas, stat_columns, n_offsets, n_arms, slots, 0
    ints[FLOAT_STARTS:INT_STARTS] = float_starts
    ints[INT_STARTS:INT_HEADER] = int_starts
    floats[:FLOAT_HEADER] = prior_strength, taker_fee, shrinkage, keep_slow, keep_fast, 1.0
    space = _rebuild(floats, ints)
    space.prior_rows[:] = prior_rows
    space.offsets[:] = offsets
    space.arm_bias[:] = arm_bias
    space.arm_column[:] = arm_column
    return space


def buffer_views(floats: np.ndarray, ints: np.ndarray) -> tuple[np.ndarray, ...]:
    """The arrays of :class:`Workspace` after its buffers, in its order, as views (laid out by :func:`workspace`)."""
    replicas, stat_columns, n_offsets, n_arms, slots = (ints[REPLICAS], ints[STAT_COLUMNS], ints[OFFSETS],
                                                        ints[ARMS], ints[SLOTS])
    f, i = FLOAT_STARTS, INT_STARTS
    return (floats[ints[f]:ints[f + 1]].reshape((MAKER_STATS, replicas, stat_columns)),
            floats[ints[f + 1]:ints[f + 2]].reshape((2, replicas)),
            floats[ints[f + 2]:ints[f + 3]].reshape((replicas, n_arms)),
            floats[ints[f + 3]:ints[f + 4]].reshape((replicas, n_offsets)),
            floats[ints[f + 4]:ints[f + 5]].reshape((replicas, stat_columns)),
            floats[ints[f + 5]:ints[f + 6]],
            floats[ints[f + 6]:ints[f + 7]].reshape((replicas, PIECES, MOMENTS)),
            floats[ints[f + 7]:ints[f + 8]],
            floats[ints[f + 8]:ints[f + 9]],
            floats[ints[f + 9]:ints[f + 10]].reshape((FILL_SPEED_ROWS, stat_columns)),
            ints[ints[i]:ints[i + 1]],
            ints[ints[i + 1]:ints[i + 2]].reshape((slots, n_arms)),
            ints[ints[i + 2]:ints[i + 3]],
            ints[ints[i + 3]:ints[i + 4]].reshape((slots, replicas)),
            ints[ints[i + 4]:ints[i + 5]].reshape((slots, n_arms)))
