"""Reward models for the direct method and doubly robust estimators: ``q_hat[n, K]`` fitted on the log.

A model is fitted once on the whole log (no cross-fitting): with per-arm means or a ridge per arm the
in-sample bias is of order 1/n per arm, far below the bootstrap noise at the log sizes we evaluate.
Arms with no logged data are predicted by the pooled fit, and the estimate names them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from tuner.ope_log import LoggedBandit


@dataclass(frozen=True, slots=True)
class RewardPrediction:
    """Predicted reward of every arm at every logged event, and the arms the model never saw."""

    q_hat: np.ndarray
    arms_without_data: tuple[str, ...]


class RewardModel(Protocol):
    """Fits on a log and predicts every arm's reward at each of its events."""

    @property
    def name(self) -> str: ...

    def fit_predict(self, log: LoggedBandit) -> RewardPrediction: ...


@dataclass(frozen=True, slots=True)
class PerArmMeanModel:
    """Each arm's mean logged reward, ignoring context: the simplest model, biased when the logging
    policy's choices depend on a context that also moves the reward."""

    @property
    def name(self) -> str:
        return "per_arm_mean"

    def fit_predict(self, log: LoggedBandit) -> RewardPrediction:
        counts = np.bincount(log.actions, minlength=log.n_arms)
        sums = np.bincount(log.actions, weights=log.rewards, minlength=log.n_arms)
        missing = counts == 0
        means = np.where(missing, log.rewards.mean(), sums / np.maximum(counts, 1))
        return RewardPrediction(
            q_hat=np.broadcast_to(means, (log.n, log.n_arms)),
            arms_without_data=_names(log, missing),
        )


@dataclass(frozen=True, slots=True)
class PerArmRidgeModel:
    """A ridge regression of reward on context per arm, with an unpenalised intercept.

    ``l2`` is the penalty on the context coefficients (in the units of the context features); it must
    be positive so that a constant feature column (an intercept already in the contexts) stays solvable.
    """

    l2: float

    def __post_init__(self) -> None:
        if not (math.isfinite(self.l2) and self.l2 > 0.0):
            raise ValueError(f"l2 must be finite and > 0, got {self.l2!r}")

    @property
    def name(self) -> str:
        return f"per_arm_ridge(l2={self.l2:g})"

    def fit_predict(self, log: LoggedBandit) -> RewardPrediction:
        if log.contexts is None:
            raise ValueError("PerArmRidgeModel needs a log with contexts")
        features = np.hstack([np.ones((log.n, 1)), log.contexts])
        penalty = self.l2 * np.eye(features.shape[1])
        penalty[0, 0] = 0.0
        pooled = self._solve(features, log.rewards, penalty)
        order = np.argsort(log.actions, kind="stable")
        bounds = np.searchsorted(log.actions[order], np.arange(log.n_arms + 1))
        coefs = np.empty((log.n_arms, features.shape[1]))
        missing = np.zeros(log.n_arms, dtype=bool)
        for arm in range(log.n_arms):
            rows = order[bounds[arm] : bounds[arm + 1]]
            if rows.size == 0:
                missing[arm] = True
                coefs[arm] = pooled
            else:
                coefs[arm] = self._solve(features[rows], log.rewards[rows], penalty)
        return RewardPrediction(q_hat=features @ coefs.T, arms_without_data=_names(log, missing))

    @staticmethod
    def _solve(features: np.ndarray, rewards: np.ndarray, penalty: np.ndarray) -> np.ndarray:
        gram = features.T @ features + penalty
        return np.linalg.lstsq(gram, features.T @ rewards, rcond=None)[0]


def _names(log: LoggedBandit, mask: np.ndarray) -> tuple[str, ...]:
    return tuple(log.arm_ids[i] for i in np.flatnonzero(mask))
