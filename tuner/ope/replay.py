"""The replay method: run a learner over the log, keep the events where it agrees with the log.

The learner is shown each event's context in log order; when its choice equals the logged action the
event is kept, the logged reward is counted and the learner learns it; other events are skipped and
the learner learns nothing. This is the only estimator here that loops over events in Python: the
learner's next choice depends on what it learned, so the loop is the method itself.

It is unbiased only when the log's actions were drawn uniformly at random, and keeps about n/K events.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np

from router_tuner.tuner.ope.bootstrap import BlockBootstrap, BootstrapConfig
from router_tuner.tuner.ope.estimators import OpeEstimate
from router_tuner.tuner.ope.log import LoggedBandit

UNIFORM_PROPENSITY_RTOL = 1e-9
"""Relative tolerance when checking that every logged propensity equals 1/K (float rounding)."""


@runtime_checkable
class ReplayLearner(Protocol):
    """What replay needs from a learner (``tuner.learners.base.Learner`` satisfies it).

    ``choose`` returns a choice with ``.arm`` (an object with ``.arm_id``, an arm id or an arm index),
    an arm id, or an arm index.
    """

    def choose(self, context: Any) -> Any: ...

    def update(self, arm_id: str, reward: float, context: Any) -> None: ...


def replay(
    log: LoggedBandit,
    learner: ReplayLearner | Callable[[Any], Any],
    *,
    bootstrap: BootstrapConfig,
    contexts: Sequence[Any] | None = None,
) -> OpeEstimate:
    """Replay ``learner`` (mutated: it learns the kept events) or a stateless policy callable over ``log``.

    ``contexts`` are the objects handed to the learner, one per event (``None`` for every event when
    omitted). The interval bootstraps the kept rewards; it ignores that the learner's path depends on
    them, so treat it as a lower bound on the real uncertainty.
    """
    if contexts is not None and len(contexts) != log.n:
        raise ValueError(f"need one context per event ({log.n}), got {len(contexts)}")
    index = {arm_id: i for i, arm_id in enumerate(log.arm_ids)}
    is_learner = isinstance(learner, ReplayLearner)
    kept = np.zeros(log.n, dtype=bool)
    actions = log.actions.tolist()
    rewards = log.rewards.tolist()
    for i in range(log.n):
        context = None if contexts is None else contexts[i]
        choice = learner.choose(context) if is_learner else learner(context)
        if _arm_index(choice, index, log.n_arms) != actions[i]:
            continue
        kept[i] = True
        if is_learner:
            learner.update(log.arm_ids[actions[i]], rewards[i], context)
    n_kept = int(kept.sum())
    notes = ["replay is unbiased only when the logged actions were drawn uniformly at random"]
    uniform = np.allclose(log.propensities, 1.0 / log.n_arms, rtol=UNIFORM_PROPENSITY_RTOL, atol=0.0)
    if not uniform:
        notes.append("the logged propensities are not uniform (1/K): this replay value is biased")
    if n_kept == 0:
        raise ValueError("the learner never agreed with the logged action: replay has no events to score")
    kept_rewards = log.rewards[kept]
    low, high = BlockBootstrap(n_kept, bootstrap).interval([(kept_rewards, None)])
    return OpeEstimate(
        estimator="replay",
        value=float(kept_rewards.mean()),
        ci_low=low,
        ci_high=high,
        ci_level=bootstrap.ci_level,
        n=log.n,
        n_nonzero_weight=n_kept,
        ess=float(n_kept),
        weight_max=None,
        weight_mean=None,
        weight_quantiles=None,
        weight_threshold=None,
        share_above_threshold=None,
        support_basis=None,
        support_gap_share=None,
        support_gap_mass=None,
        logging_value=float(log.rewards.mean()),
        reward_model=None,
        notes=tuple(notes),
    )


def _arm_index(choice: Any, index: dict[str, int], n_arms: int) -> int:
    arm = getattr(choice, "arm", choice)
    arm = getattr(arm, "arm_id", arm)
    if isinstance(arm, str):
        if arm not in index:
            raise ValueError(f"learner chose arm {arm!r}, not in the log's arms")
        return index[arm]
    if isinstance(arm, int | np.integer) and not isinstance(arm, bool) and 0 <= arm < n_arms:
        return int(arm)
    raise ValueError(
        f"learner returned {choice!r}: expected an arm, an arm id or an index in 0..{n_arms - 1}"
    )
