"""Candidate policies as action-probability matrices ``pi[n, K]``, the form every estimator reads.

A row is the candidate's distribution over arms at one logged event (one-hot for a deterministic
policy). Fixed and context-free policies are read-only broadcast views, so they cost no memory.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from router_tuner.tuner.ope.log import PROBABILITY_ROW_SUM_ATOL, LoggedBandit


class PolicyError(ValueError):
    """A candidate policy matrix is malformed (shape, negative or non-finite mass, rows not summing to 1)."""


def fixed_arm_policy(log: LoggedBandit, arm_id: str) -> np.ndarray:
    """Always ``arm_id``: a one-hot row broadcast over the log."""
    if arm_id not in log.arm_ids:
        raise PolicyError(f"arm {arm_id!r} is not in the log's arms {log.arm_ids}")
    row = np.zeros(log.n_arms)
    row[log.arm_ids.index(arm_id)] = 1.0
    return np.broadcast_to(row, (log.n, log.n_arms))


def stochastic_policy(log: LoggedBandit, probabilities: dict[str, float]) -> np.ndarray:
    """A context-free distribution over arms (arms not named get 0), broadcast over the log."""
    unknown = sorted(set(probabilities) - set(log.arm_ids))
    if unknown:
        raise PolicyError(f"arms {unknown} are not in the log's arms {log.arm_ids}")
    row = np.array([probabilities.get(arm_id, 0.0) for arm_id in log.arm_ids], dtype=float)
    return check_policy(np.broadcast_to(row, (log.n, log.n_arms)), log)


def policy_from_callable(log: LoggedBandit, policy: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """Apply a vectorised policy to the log's contexts (n, d).

    ``policy`` returns either probabilities (n, K) or arm indices (n,), the latter made one-hot.
    """
    if log.contexts is None:
        raise PolicyError("the log has no contexts to evaluate a contextual policy on")
    out = np.asarray(policy(log.contexts))
    if out.shape == (log.n,):
        if not np.issubdtype(out.dtype, np.integer) or out.min() < 0 or out.max() >= log.n_arms:
            raise PolicyError(
                f"a policy returning actions must return integer arm indices in 0..{log.n_arms - 1}"
            )
        pi = np.zeros((log.n, log.n_arms))
        pi[np.arange(log.n), out] = 1.0
        return pi
    return check_policy(out, log)


def policy_from_actions(log: LoggedBandit, arm_ids: Sequence[str]) -> np.ndarray:
    """One-hot matrix of a deterministic candidate's arm per event, given by arm id."""
    index = {a: i for i, a in enumerate(log.arm_ids)}
    if len(arm_ids) != log.n:
        raise PolicyError(f"need one arm per event ({log.n}), got {len(arm_ids)}")
    try:
        chosen = np.fromiter((index[a] for a in arm_ids), dtype=np.int64, count=log.n)
    except KeyError as exc:
        raise PolicyError(f"arm {exc.args[0]!r} is not in the log's arms {log.arm_ids}") from None
    pi = np.zeros((log.n, log.n_arms))
    pi[np.arange(log.n), chosen] = 1.0
    return pi


def check_policy(pi: np.ndarray, log: LoggedBandit) -> np.ndarray:
    """Validate ``pi`` against ``log``: shape (n, K), finite, non-negative, rows summing to 1."""
    pi = np.asarray(pi, dtype=float)
    if pi.shape != (log.n, log.n_arms):
        raise PolicyError(f"policy matrix must have shape ({log.n}, {log.n_arms}), got {pi.shape}")
    if not np.isfinite(pi).all() or (pi < 0.0).any():
        raise PolicyError("policy probabilities must be finite and >= 0")
    row_sums = pi.sum(axis=1)
    off = np.abs(row_sums - 1.0) > PROBABILITY_ROW_SUM_ATOL
    if off.any():
        i = int(np.flatnonzero(off)[0])
        raise PolicyError(
            f"policy rows must sum to 1: {int(off.sum())} do not, first row {i} sums to {row_sums[i]!r}"
        )
    return pi
