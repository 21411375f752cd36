"""Replay keeps exactly the events where the learner agrees with the log, teaches it only those, and
says when the log was not uniformly random."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

from router_tuner.tuner.arms import ArmGrid
from router_tuner.tuner.learners.epsilon_greedy import EpsilonGreedy
from router_tuner.tuner.ope.bootstrap import BootstrapConfig
from router_tuner.tuner.ope.log import LoggedBandit
from router_tuner.tuner.ope.replay import ReplayLearner, replay

GRID = ArmGrid.from_values([0.0, 2.0, 4.0], [0.0], min_offset_bps=0.0, max_offset_bps=5.0)
ARMS = GRID.arm_ids
ARM_MEANS = np.array([-3.0, -1.0, -2.0])
BOOT = BootstrapConfig(n_resamples=400, ci_level=0.95, seed=3, max_blocks=10_000)


def uniform_log(seed: int, n: int) -> LoggedBandit:
    rng = np.random.default_rng(seed)
    actions = rng.integers(0, len(ARMS), size=n)
    return LoggedBandit(
        actions=actions,
        propensities=np.full(n, 1.0 / len(ARMS)),
        rewards=ARM_MEANS[actions] + rng.normal(size=n),
        arm_ids=ARMS,
    )


@dataclass
class _Arm:
    arm_id: str


@dataclass
class _Choice:
    arm: _Arm
    propensity: float


class RecordingLearner:
    """Chooses arms in a fixed cycle and records what it was taught."""

    def __init__(self) -> None:
        self.step = 0
        self.seen_contexts: list[Any] = []
        self.updates: list[tuple[str, float, Any]] = []

    def choose(self, context: Any) -> _Choice:
        self.seen_contexts.append(context)
        arm = ARMS[self.step % len(ARMS)]
        self.step += 1
        return _Choice(_Arm(arm), 1.0)

    def update(self, arm_id: str, reward: float, context: Any) -> None:
        self.updates.append((arm_id, reward, context))


def test_fixed_policy_keeps_its_arm_and_scores_its_rewards() -> None:
    log = uniform_log(0, 600)
    est = replay(log, lambda context: 1, bootstrap=BOOT)
    kept = log.actions == 1
    assert est.estimator == "replay"
    assert est.n == 600 and est.n_nonzero_weight == int(kept.sum()) == est.ess
    assert est.value == pytest.approx(log.rewards[kept].mean())
    assert est.ci_low < est.value < est.ci_high
    assert est.logging_value == pytest.approx(log.rewards.mean())
    assert est.notes == ("replay is unbiased only when the logged actions were drawn uniformly at random",)
    assert est.weight_max is None and est.support_gap_share is None


def test_learner_is_taught_only_the_matching_events_in_order() -> None:
    log = uniform_log(1, 90)
    contexts = [f"ctx{i}" for i in range(log.n)]
    learner = RecordingLearner()
    assert isinstance(learner, ReplayLearner)
    est = replay(log, learner, bootstrap=BOOT, contexts=contexts)
    matches = [i for i in range(log.n) if log.actions[i] == i % len(ARMS)]
    assert learner.seen_contexts == contexts
    assert learner.updates == [(ARMS[log.actions[i]], log.rewards[i], contexts[i]) for i in matches]
    assert est.n_nonzero_weight == len(matches)


def test_a_real_tuner_learner_replays_and_learns() -> None:
    log = uniform_log(2, 3000)
    learner = EpsilonGreedy(GRID, epsilon=0.1, decay=0.0, min_epsilon=0.1, burn_in=5, seed=4)
    est = replay(log, learner, bootstrap=BOOT)
    assert sum(learner.counts().values()) == est.n_nonzero_weight
    assert est.value > log.rewards.mean() + 0.5  # it finds the best arm (-1) against the uniform mean (-2)


def test_replay_of_a_fixed_arm_covers_its_mean_on_uniform_logs() -> None:
    covered = 0
    for seed in range(20):
        est = replay(uniform_log(100 + seed, 1500), lambda context: ARMS[2], bootstrap=BOOT)
        covered += est.ci_low <= ARM_MEANS[2] <= est.ci_high
    assert covered >= 17


def test_non_uniform_log_is_flagged_as_biased() -> None:
    log = uniform_log(3, 100)
    skewed = LoggedBandit(
        actions=log.actions,
        propensities=np.where(log.actions == 0, 0.5, 0.25),
        rewards=log.rewards,
        arm_ids=ARMS,
    )
    est = replay(skewed, lambda context: 0, bootstrap=BOOT)
    assert any("not uniform" in note for note in est.notes)


@pytest.mark.parametrize(
    ("policy", "message"),
    [
        (lambda context: "o9.00_b0.00", "not in the log's arms"),
        (lambda context: 3, "expected an arm"),
        (lambda context: True, "expected an arm"),
        (lambda context: 1.0, "expected an arm"),
    ],
)
def test_bad_choices_are_refused(policy: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        replay(uniform_log(4, 20), policy, bootstrap=BOOT)


def test_bad_inputs_are_refused() -> None:
    log = LoggedBandit(
        actions=np.zeros(5, dtype=int), propensities=np.full(5, 1 / 3), rewards=np.zeros(5), arm_ids=ARMS
    )
    with pytest.raises(ValueError, match="never agreed"):
        replay(log, lambda context: 1, bootstrap=BOOT)
    with pytest.raises(ValueError, match="one context per event"):
        replay(log, lambda context: 0, bootstrap=BOOT, contexts=[None])
