"""The logged bandit data that off-policy evaluation reads: one column per field, one row per decision.

Built from :class:`router.events.RouterEvent` (arm, propensity, ``cost_bps``; reward = ``-cost_bps``).
Columns are numpy arrays so every estimator is a handful of vector operations over the whole log.

The events it leaves out are the ones the tuner's reward filter (:mod:`tuner.reward`) does not learn from, for
the same reasons, and each is counted by reason (:func:`skip_reason`): unfilled (no cost), ``venue_anomaly``
(fills the venue's own rules rule out: their cost is real money but not the arm's) and ``fee_unpriced`` (a fee
nothing prices in the quote: the cost understates it). Scored, a flagged event would credit a candidate arm with
a cost it did not cause or a fee it did not show.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from router_tuner.router.events import FLAGS, RouterEvent, event_flags

PROBABILITY_ROW_SUM_ATOL = 1e-6
"""How far a row of action probabilities may sum from 1 (float rounding, not a tunable)."""

MIN_PROPENSITY = 1e-150
"""The smallest logged propensity the estimators take: its importance weight 1/p, squared (the effective sample
size, the shrinkage of DR-OS) and summed over a log of up to 1e8 events, stays a finite float. A journal row with
1e-300 ended ``ope`` in "unexpected OverflowError", and one just above would print a 300-digit IPS cost; no logging
policy of this project posts such a probability in practice, so the event is named instead."""


SkipReason = Literal["unfilled", "venue_anomaly", "fee_unpriced"]


class LogError(ValueError):
    """The log cannot be evaluated: bad propensities, unknown arms, misaligned columns."""


def skip_reason(event: RouterEvent) -> SkipReason | None:
    """Why OPE leaves ``event`` out, or ``None`` when it is scored: ``unfilled`` (no cost), else its first flag
    (``router.events.event_flags``: ``venue_anomaly`` before ``fee_unpriced``, as ``tuner.reward`` ranks them)."""
    if event.cost_bps is None:
        return "unfilled"
    flags = event_flags(event)
    if not flags:
        return None
    return "venue_anomaly" if flags[0] == "venue_anomaly" else "fee_unpriced"


def flagged_note(skipped_flagged: Mapping[str, int]) -> str | None:
    """One sentence on the flagged events left out (``None`` when there were none), for reports and tables."""
    counts = {flag: skipped_flagged.get(flag, 0) for flag in FLAGS}
    if not any(counts.values()):
        return None
    parts = ", ".join(f"{n} {flag}" for flag, n in counts.items() if n)
    return (f"{sum(counts.values())} filled events left out as the tuner's reward filter leaves them out ({parts}): "
            "a venue_anomaly cost is not the arm's, a fee_unpriced cost understates the fee")


@dataclass(frozen=True, slots=True, eq=False)
class LoggedBandit:
    """Columnar log of bandit decisions: what was chosen, with which probability, and what it earned.

    ``actions[i]`` indexes ``arm_ids``; ``propensities[i]`` is the logging policy's probability of that
    action, in (0, 1]; ``rewards[i]`` is ``-cost_bps``. ``contexts`` (n, d) feeds contextual reward
    models and candidate policies. ``logging_pi`` (n, K), when known, is the logging policy's full
    action distribution per event; it makes the support check per event instead of per log.
    ``symbols`` and ``time_slices`` (slice start in ns) are grouping keys. ``skipped_unfilled`` counts
    events dropped by :meth:`from_events` because nothing filled (no cost, so no reward); ``skipped_flagged``
    those it dropped for a flag, by flag (:func:`skip_reason`).

    Examples
    --------
    >>> log = LoggedBandit(
    ...     actions=np.array([0, 1]), propensities=np.array([0.5, 0.5]), rewards=np.array([-1.0, -3.0]),
    ...     arm_ids=("a", "b"))
    >>> log.n, log.n_arms
    (2, 2)
    """

    actions: np.ndarray
    propensities: np.ndarray
    rewards: np.ndarray
    arm_ids: tuple[str, ...]
    contexts: np.ndarray | None = None
    logging_pi: np.ndarray | None = None
    symbols: np.ndarray | None = None
    time_slices: np.ndarray | None = None
    skipped_unfilled: int = 0
    skipped_flagged: Mapping[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if len(self.arm_ids) == 0:
            raise LogError("arm_ids is empty")
        if len(set(self.arm_ids)) != len(self.arm_ids):
            raise LogError(f"arm_ids has duplicates: {self.arm_ids}")
        actions = np.asarray(self.actions)
        if actions.ndim != 1 or not np.issubdtype(actions.dtype, np.integer):
            raise LogError(
                f"actions must be a 1-d integer array, got dtype {actions.dtype} ndim {actions.ndim}"
            )
        n = actions.size
        if n == 0:
            raise LogError("the log is empty: nothing to evaluate")
        if actions.min() < 0 or actions.max() >= len(self.arm_ids):
            raise LogError(f"actions must index arm_ids (0..{len(self.arm_ids) - 1})")
        propensities = self._float_column("propensities", self.propensities, n)
        bad = ~((propensities > 0.0) & (propensities <= 1.0))
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise LogError(
                f"propensities must be in (0, 1]: {int(bad.sum())} bad, first at row {i}: {propensities[i]!r}"
            )
        if (tiny := propensities < MIN_PROPENSITY).any():
            i = int(np.flatnonzero(tiny)[0])
            raise LogError(f"propensities under {MIN_PROPENSITY:g} make importance weights the estimators cannot sum: "
                           f"{int(tiny.sum())} such, first at row {i}: {float(propensities[i])!r}")
        rewards = self._float_column("rewards", self.rewards, n)
        object.__setattr__(self, "actions", actions.astype(np.int64, copy=False))
        object.__setattr__(self, "propensities", propensities)
        object.__setattr__(self, "rewards", rewards)
        if self.contexts is not None:
            contexts = np.asarray(self.contexts, dtype=float)
            if contexts.ndim != 2 or contexts.shape[0] != n:
                raise LogError(f"contexts must have shape ({n}, d), got {contexts.shape}")
            if not np.isfinite(contexts).all():
                raise LogError("contexts contain non-finite values")
            object.__setattr__(self, "contexts", contexts)
        if self.logging_pi is not None:
            object.__setattr__(self, "logging_pi", self._checked_logging_pi(self.logging_pi, n))
        for name in ("symbols", "time_slices"):
            keys = getattr(self, name)
            if keys is not None and np.shape(keys) != (n,):
                raise LogError(f"{name} must have shape ({n},), got {np.shape(keys)}")
        if self.skipped_unfilled < 0:
            raise LogError(f"skipped_unfilled must be >= 0, got {self.skipped_unfilled}")
        if any(flag not in FLAGS or count < 0 for flag, count in self.skipped_flagged.items()):
            raise LogError(f"skipped_flagged must count flags of {FLAGS} (>= 0), got {dict(self.skipped_flagged)}")
        object.__setattr__(self, "skipped_flagged", {flag: self.skipped_flagged.get(flag, 0) for flag in FLAGS})

    @property
    def n(self) -> int:
        return int(self.actions.size)

    @property
    def n_arms(self) -> int:
        return len(self.arm_ids)

    def subset(self, mask: np.ndarray) -> LoggedBandit:
        """The rows where ``mask`` is true (a boolean array of length n), e.g. one symbol's events."""
        mask = np.asarray(mask)
        if mask.dtype != bool or mask.shape != (self.n,):
            raise LogError(f"mask must be a boolean array of shape ({self.n},)")
        return LoggedBandit(
            actions=self.actions[mask],
            propensities=self.propensities[mask],
            rewards=self.rewards[mask],
            arm_ids=self.arm_ids,
            contexts=None if self.contexts is None else self.contexts[mask],
            logging_pi=None if self.logging_pi is None else self.logging_pi[mask],
            symbols=None if self.symbols is None else self.symbols[mask],
            time_slices=None if self.time_slices is None else self.time_slices[mask],
            skipped_unfilled=0,
            skipped_flagged={},
        )

    @classmethod
    def from_events(
        cls,
        events: Iterable[RouterEvent],
        arm_ids: Sequence[str],
        *,
        contexts: np.ndarray | None = None,
        time_slice_ns: int | None = None,
    ) -> LoggedBandit:
        """Columns from router events; events without a cost (nothing filled) and flagged events (``venue_anomaly``,
        ``fee_unpriced``: :func:`skip_reason`) are skipped and counted by reason.

        ``contexts``, when given, has one row per input event (skipped ones included) and is aligned
        by position. ``time_slice_ns`` buckets ``arrival_ts_ns`` into slices for per-slice reports.
        """
        if time_slice_ns is not None and time_slice_ns <= 0:
            raise LogError(f"time_slice_ns must be > 0, got {time_slice_ns}")
        index = {arm_id: i for i, arm_id in enumerate(arm_ids)}
        kept_rows: list[int] = []
        actions: list[int] = []
        propensities: list[float] = []
        rewards: list[float] = []
        symbols: list[str] = []
        arrivals_ns: list[int] = []
        n_events = 0
        skipped: dict[str, int] = dict.fromkeys(("unfilled", *FLAGS), 0)
        for row, event in enumerate(events):
            n_events += 1
            reason, cost_bps = skip_reason(event), event.cost_bps
            if reason is not None or cost_bps is None:
                skipped[reason or "unfilled"] += 1
                continue
            if event.arm not in index:
                raise LogError(f"event {event.intent_id} has arm {event.arm!r}, not in arm_ids")
            if not math.isfinite(cost_bps):
                raise LogError(f"event {event.intent_id} has non-finite cost_bps {cost_bps!r}")
            if not (math.isfinite(event.propensity) and 0.0 < event.propensity <= 1.0):
                raise LogError(f"event {event.intent_id} has propensity {event.propensity!r}, not in (0, 1]")
            if event.propensity < MIN_PROPENSITY:
                weight = 1 / event.propensity
                raise LogError(f"event {event.intent_id} has propensity {event.propensity!r}, under "
                               f"{MIN_PROPENSITY:g}: its importance weight {weight:.3g} is beyond what the "
                               "estimators can sum; check that journal row and the policy that logged it")
            kept_rows.append(row)
            actions.append(index[event.arm])
            propensities.append(event.propensity)
            rewards.append(-cost_bps)
            symbols.append(event.symbol)
            arrivals_ns.append(event.arrival_ts_ns)
        kept_contexts = None
        if contexts is not None:
            contexts = np.asarray(contexts, dtype=float)
            if contexts.ndim != 2 or contexts.shape[0] != n_events:
                raise LogError(
                    f"contexts must have one row per event ({n_events}), got shape {contexts.shape}"
                )
            kept_contexts = contexts[np.array(kept_rows, dtype=np.int64)]
        if not actions:
            flagged = flagged_note({flag: skipped[flag] for flag in FLAGS})
            raise LogError(f"no filled events among {n_events}{f' ({flagged})' if flagged else ''}: "
                           "nothing to evaluate")
        slices = None
        if time_slice_ns is not None:
            slices = np.array(arrivals_ns, dtype=np.int64) // time_slice_ns * time_slice_ns
        return cls(
            actions=np.array(actions, dtype=np.int64),
            propensities=np.array(propensities, dtype=float),
            rewards=np.array(rewards, dtype=float),
            arm_ids=tuple(arm_ids),
            contexts=kept_contexts,
            symbols=np.array(symbols, dtype=object),
            time_slices=slices,
            skipped_unfilled=skipped["unfilled"],
            skipped_flagged={flag: skipped[flag] for flag in FLAGS},
        )

    @staticmethod
    def _float_column(name: str, values: np.ndarray, n: int) -> np.ndarray:
        column = np.asarray(values, dtype=float)
        if column.shape != (n,):
            raise LogError(f"{name} must have shape ({n},), got {column.shape}")
        if not np.isfinite(column).all():
            raise LogError(f"{name} contain {int((~np.isfinite(column)).sum())} non-finite values")
        return column

    def _checked_logging_pi(self, logging_pi: np.ndarray, n: int) -> np.ndarray:
        pi = np.asarray(logging_pi, dtype=float)
        if pi.shape != (n, self.n_arms):
            raise LogError(f"logging_pi must have shape ({n}, {self.n_arms}), got {pi.shape}")
        if not np.isfinite(pi).all() or (pi < 0).any():
            raise LogError("logging_pi must be finite and >= 0")
        if not np.allclose(pi.sum(axis=1), 1.0, rtol=0.0, atol=PROBABILITY_ROW_SUM_ATOL):
            raise LogError("logging_pi rows must sum to 1")
        at_logged = pi[np.arange(n), self.actions]
        mismatch = ~np.isclose(at_logged, self.propensities, rtol=0.0, atol=PROBABILITY_ROW_SUM_ATOL)
        if mismatch.any():
            i = int(np.flatnonzero(mismatch)[0])
            raise LogError(
                f"logging_pi disagrees with the logged propensity at {int(mismatch.sum())} rows, "
                f"first row {i}: {at_logged[i]!r} vs {self.propensities[i]!r}"
            )
        return pi
