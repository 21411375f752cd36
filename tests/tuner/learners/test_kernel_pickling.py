"""Learners holding numba kernels pickle without them (numba would recompile each one in the receiving process) and
carry on, once unpickled, exactly as the original does."""

from __future__ import annotations

import pickle
import subprocess
import sys
from collections.abc import Callable

import numpy as np
import pytest

from router_tuner.tuner.arms import ArmGrid
from router_tuner.tuner.learners import (
    Context,
    ContextScales,
    Learner,
    LinUCB,
    NormalThompson,
    RouteOutcome,
    StructuredThompson,
    linucb_kernel,
    structured_kernel,
    thompson_kernel,
)
from router_tuner.tuner.learners.kernels import CompiledKernels, entry_point

GRID = ArmGrid.from_values([0.0, 1.0, 2.0], [0.0, 1.0], min_offset_bps=0.0, max_offset_bps=5.0)


def structured() -> StructuredThompson:
    return StructuredThompson(GRID, replicas=16, forgetting_window=300.0, shrinkage=5.0, maker_fee_bps=2.0,
                              taker_fee_bps=5.0, prior_fallback_drift_bps=1.0, prior_fill_probability=0.5,
                              prior_fill_logit_spread=2.0, prior_strength=1.0, burn_in=2, seed=11,
                              fill_speed_window=20.0)


def thompson() -> NormalThompson:
    return NormalThompson(GRID, prior_mean_reward=-3.0, prior_mean_pseudo_count=1.0, prior_noise_std=3.0,
                          prior_noise_pseudo_count=2.0, burn_in=2, seed=12)


def linucb() -> LinUCB:
    return LinUCB(GRID, scales=ContextScales(5.0, 10.0, 1.0), alpha=1.0, ridge=1.0, prior_mean_reward=-3.0, burn_in=2,
                  seed=13)


def drive(learner: Learner, steps: int, seed: int) -> list[tuple[str, float]]:
    """Choose and learn ``steps`` times from a seeded market; returns (arm, propensity) per decision."""
    rng = np.random.default_rng(seed)
    chosen = []
    for _ in range(steps):
        context = Context(float(rng.uniform(0.5, 5.0)), float(rng.uniform(1.0, 30.0)), 0.0, 12.0, 0.5)
        choice = learner.choose(context)
        maker = choice.arm.taker_bias < 1.0
        filled = maker and bool(rng.random() < 0.8 - 0.2 * choice.arm.maker_offset_bps)
        outcome = RouteOutcome(started_maker=maker, maker_filled=filled,
                               fill_wait_share=float(rng.random()) if filled else None)  # the structured fill speed
        learner.update(choice.arm.arm_id, -3.0 + choice.arm.maker_offset_bps + float(rng.normal()), context,
                       outcome=outcome)
        chosen.append((choice.arm.arm_id, choice.propensity))
    return chosen


@pytest.mark.parametrize("make, kernels", [
    (structured, {"_learn": entry_point(structured_kernel.learn), "_refit": entry_point(structured_kernel.refresh),
                  "_add_slot": entry_point(structured_kernel.add_slot)}),  # called without numba's dispatch
    (thompson, {"_kernel_choose": thompson_kernel.choose,
                "_kernel_propensity": thompson_kernel.max_draw_probability}),
    (linucb, {"_scores": linucb_kernel.scores, "_learn": linucb_kernel.learn}),
])
def test_an_unpickled_learner_binds_the_module_kernels_and_continues_like_the_original(
        make: Callable[[], Learner], kernels: dict[str, object]) -> None:
    original = make()
    drive(original, 40, seed=1)
    data = pickle.dumps(original)
    assert b"numba" not in data, "a compiled kernel was pickled by value"
    copy = pickle.loads(data)
    assert isinstance(copy, CompiledKernels) and set(copy._KERNELS) == set(kernels)
    assert not set(kernels) & set(vars(copy)), "bound when first used, not when unpickled"
    for name, kernel in kernels.items():
        assert getattr(copy, name) is kernel
    with pytest.raises(AttributeError, match="no attribute '_no_such_kernel'"):
        copy._no_such_kernel  # noqa: B018
    assert drive(copy, 60, seed=2) == drive(original, 60, seed=2)
    assert copy.to_state() == original.to_state()


def test_a_process_that_only_reads_an_unpickled_learner_never_imports_numba() -> None:
    """The main job's parent reads the learners its workers send back (counts, expected rewards); numba, half a
    second to import, is imported there only when a kernel is used."""
    learner = structured()
    drive(learner, 20, seed=3)
    script = ("import pickle, sys\n"
              "learner = pickle.loads(sys.stdin.buffer.read())\n"
              "learner.expected_reward(learner.grid.arm_ids[0]); learner.counts()\n"
              "print('numba' in sys.modules)\n"
              "learner.discount_evidence(0.5)\n"
              "print('numba' in sys.modules)\n")
    done = subprocess.run([sys.executable, "-c", script], input=pickle.dumps(learner), capture_output=True,
                          check=True)
    assert done.stdout.split() == [b"False", b"True"]


def test_a_learner_with_kernels_must_say_how_to_bind_them() -> None:
    class Unbound(CompiledKernels):
        _KERNELS = ("_kernel",)

    with pytest.raises(TypeError, match="_bind_kernels"):
        Unbound()  # type: ignore[abstract]
