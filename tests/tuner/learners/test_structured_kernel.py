"""The compiled refit of the structured learner computes the model its docstring states.

The reference below is the model written as plain numpy expressions (the learner's implementation before it
was compiled): per replica, each offset's own evidence shrunk towards lines fitted across offsets (the fill
probability in the empirical logit with a non-positive slope), and the arms' costs from the three pieces.
"""

from __future__ import annotations

import ast
import hashlib
import math
from pathlib import Path

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.special import expit, logit

from router_tuner.tuner.arms import ArmGrid
from router_tuner.tuner.learners import RouteOutcome, StructuredThompson, structured_kernel

OFFSETS = [0.0, 0.5, 1.0, 2.0, 4.0]


def reference_costs(learner: StructuredThompson, grid: ArmGrid, *, shrinkage: float, maker_fee: float,
                    taker_fee: float, drift: float, prior_fill: float, spread: float, strength: float) -> np.ndarray:
    """Every replica's expected cost of every arm, from the learner's saved statistics, in numpy."""
    state = learner.to_state()
    replicas = len(state.taker)
    offsets = np.array(sorted({a.maker_offset_bps for a in grid if a.taker_bias < 1.0}))
    shape = (replicas, offsets.size)
    posted, filled, fill_cost, fallback_cost = (np.array(getattr(state, n)).reshape(shape)
                                                for n in ("posted", "filled", "fill_cost", "fallback_cost"))
    p_hat = (filled + 0.5) / (posted + 1.0)
    counts = np.stack((posted, filled, posted - filled))
    totals = np.stack((filled, fill_cost, fallback_cost))
    weight = counts.copy()
    weight[0] = posted * p_hat * (1.0 - p_hat)
    weighted_y = totals.copy()
    weighted_y[0] = weight[0] * logit(p_hat)
    pieces = np.empty((3, *shape))
    for r in range(replicas):
        # replica r's prior fill logit: the r-th of evenly spaced points over the spread either side of the prior's
        prior_logit = math.log(prior_fill / (1.0 - prior_fill)) + spread * ((2 * r + 1) / replicas - 1.0)
        p0 = expit(prior_logit)
        priors = [(prior_logit, 0.0), (maker_fee, -1.0), (taker_fee + drift, 0.0)]
        strengths = [strength * p0 * (1.0 - p0), strength, strength]
        for k, ((a0, b0), s) in enumerate(zip(priors, strengths, strict=True)):
            x = np.concatenate((offsets, [0.0, 1.0]))   # the prior line as s pseudo-observations at 0 and 1
            w = np.concatenate((weight[k, r], [s, s]))
            y_w = np.concatenate((weighted_y[k, r], [s * a0, s * (a0 + b0)]))
            sw, sx, sxx, sy, sxy = w.sum(), (w * x).sum(), (w * x * x).sum(), y_w.sum(), (y_w * x).sum()
            slope = (sw * sxy - sx * sy) / (sw * sxx - sx * sx)
            intercept = (sy - slope * sx) / sw
            curve = intercept + (min(slope, 0.0) if k == 0 else slope) * offsets
            if k == 0:
                curve = expit(curve)
            denominator = counts[k, r] + shrinkage
            safe = np.where(denominator > 0.0, denominator, 1.0)
            pieces[k, r] = np.where(denominator > 0.0, (totals[k, r] + shrinkage * curve) / safe, curve)
    taker = (np.array(state.taker_cost) + strength * taker_fee) / (np.array(state.taker) + strength)
    maker = pieces[2] + pieces[0] * (pieces[1] - pieces[2])
    column = {d: j for j, d in enumerate(offsets.tolist())}
    costs = np.empty((replicas, len(grid)))
    for a, arm in enumerate(grid):
        costs[:, a] = taker * arm.taker_bias
        if arm.taker_bias < 1.0:
            costs[:, a] += (1.0 - arm.taker_bias) * maker[:, column[arm.maker_offset_bps]]
    return costs


outcome_steps = st.lists(st.tuples(st.integers(0, len(OFFSETS)), st.booleans(), st.floats(-20.0, 40.0)),
                         min_size=0, max_size=60)


@settings(max_examples=60, deadline=None)
@given(steps=outcome_steps, shrinkage=st.sampled_from([0.0, 3.0, 10.0]), window=st.sampled_from([50.0, math.inf]),
       strength=st.sampled_from([0.5, 1.0, 4.0]), spread=st.sampled_from([0.0, 2.0, 10.0]),
       seed=st.integers(0, 2**16))
def test_the_compiled_refit_equals_the_model_in_numpy(steps: list[tuple[int, bool, float]], shrinkage: float,
                                                      window: float, strength: float, spread: float, seed: int) -> None:
    grid = ArmGrid.from_values(OFFSETS, [0.0, 0.5, 1.0], min_offset_bps=0.0, max_offset_bps=5.0)
    priors = {"maker_fee_bps": 2.0, "taker_fee_bps": 5.0, "prior_fallback_drift_bps": 1.0,
              "prior_fill_probability": 0.4, "prior_fill_logit_spread": spread, "prior_strength": strength}
    learner = StructuredThompson(grid, replicas=8, forgetting_window=window, shrinkage=shrinkage, burn_in=0,
                                 seed=seed, **priors)
    maker_arms = [a.arm_id for a in grid if a.taker_bias == 0.0]
    taker_arm = next(a.arm_id for a in grid if a.taker_bias == 1.0)
    for which, filled, cost in steps:
        if which == len(OFFSETS):
            learner.update(taker_arm, -cost, outcome=RouteOutcome(started_maker=False, maker_filled=False))
        else:
            learner.update(maker_arms[which], -cost, outcome=RouteOutcome(started_maker=True, maker_filled=filled))
    expected = reference_costs(learner, grid, shrinkage=shrinkage, maker_fee=2.0, taker_fee=5.0, drift=1.0,
                               prior_fill=0.4, spread=spread, strength=strength)
    np.testing.assert_allclose(learner.expected_costs_bps(), expected, rtol=1e-9, atol=1e-9)


def test_the_bootstrap_weight_from_one_uniform_is_poisson_1() -> None:
    """``poisson_one`` inverts the Poisson(1) CDF: over uniforms evenly spread on [0, 1) every count's share is its
    probability e^-1 / k! (to the grid's resolution), and no draw exceeds the cap."""
    from router_tuner.tuner.learners.structured_kernel import poisson_one

    n = 200_000
    counts = np.bincount([poisson_one((i + 0.5) / n) for i in range(n)], minlength=12)
    pmf = np.array([math.exp(-1.0) / math.factorial(k) for k in range(counts.size)])
    assert np.abs(counts / n - pmf).max() < 2.0 / n
    assert poisson_one(np.nextafter(1.0, 0.0)) <= 30


def test_the_kernels_are_recompiled_when_a_module_compiled_into_them_changes() -> None:
    """numba's disk cache keys a kernel on its own file's content only: the digest of the modules compiled in, written
    in that file, is what makes an edit of them recompile (a stale kernel kept an old fill-speed constant)."""
    folder = Path(structured_kernel.__file__).parent
    digest = hashlib.sha256(b"".join((folder / name).read_bytes() for name in structured_kernel.COMPILED_IN))
    assert digest.hexdigest() == structured_kernel.COMPILED_IN_SHA256, (
        f"{', '.join(structured_kernel.COMPILED_IN)} changed: set structured_kernel.COMPILED_IN_SHA256 to "
        f"{digest.hexdigest()!r}")
    compiled_in = {name.removesuffix(".py") for name in structured_kernel.COMPILED_IN}
    imported = {alias.name for node in ast.parse(Path(structured_kernel.__file__).read_text()).body
                if isinstance(node, ast.ImportFrom) and node.module == "router_tuner.tuner.learners"
                for alias in node.names}
    assert imported == compiled_in  # every module of the project the kernels import is in the digest
