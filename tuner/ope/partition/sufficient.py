"""What one partition contributes to partitioned OPE: sums that add up exactly across partitions.

Every estimator in :mod:`tuner.ope.estimators` is a sum of ratios of per-event sums (its bootstrap
components), once the reward model is fixed. The per-arm mean model is itself a ratio of per-arm sums. So
OPE over any partitioning is two passes of additions:

1. :func:`arm_totals`: per arm, the number of filled events and the sum of their rewards (the model);
2. :func:`partition_tables`: with the model fixed at the combined means, each estimator's own ``terms``
   on the partition's events, summed per bootstrap bucket (:mod:`tuner.ope.partition.event_hash`): a
   (G, 2m) table of numerator and denominator sums per component, plus the weight diagnostics' sums.

Tables add; the combined table's column sums are the single-process sums and its rows are what a bucket
bootstrap resamples, so point values and intervals do not depend on how the log was partitioned.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from router_tuner.router.events import FLAGS, flag_pattern
from router_tuner.tuner.ope.bootstrap import Component
from router_tuner.tuner.ope.estimators import Estimator, OpeInputs, on_policy_components
from router_tuner.tuner.ope.log import LoggedBandit
from router_tuner.tuner.ope.partition.event_hash import buckets
from router_tuner.tuner.ope.partition.layout import read_ope_columns
from router_tuner.tuner.ope.policy import fixed_arm_policy
from router_tuner.tuner.ope.reward_model import PerArmMeanModel

ON_POLICY = "on_policy"


@dataclass(frozen=True, slots=True)
class ArmTotals:
    """Pass 1: per arm, filled events and their summed reward (``-cost_bps``); rows read, filled or not; and the
    filled rows left out for a flag, by flag (``tuner.ope.log.skip_reason``)."""

    counts: dict[str, int]
    reward_sums: dict[str, float]
    rows: int
    flagged: dict[str, int] = field(default_factory=lambda: dict.fromkeys(FLAGS, 0))
    policy_spans: dict[str, tuple[int, int]] = field(default_factory=dict)
    """Per logging policy, its first and last arrival (ns): policies that routed over the same time are a warning."""

    def merge(self, other: ArmTotals) -> ArmTotals:
        arms = sorted(set(self.counts) | set(other.counts))
        return ArmTotals(counts={a: self.counts.get(a, 0) + other.counts.get(a, 0) for a in arms},
                         reward_sums={a: self.reward_sums.get(a, 0.0) + other.reward_sums.get(a, 0.0) for a in arms},
                         rows=self.rows + other.rows,
                         flagged={f: self.flagged.get(f, 0) + other.flagged.get(f, 0) for f in FLAGS},
                         policy_spans=merge_spans(self.policy_spans, other.policy_spans))

    @property
    def arm_ids(self) -> tuple[str, ...]:
        """Arms with at least one filled event, sorted: the arms ``tuner.ope.run`` evaluates over."""
        return tuple(sorted(a for a, count in self.counts.items() if count > 0))

    @property
    def filled(self) -> int:
        return sum(self.counts.values())


def combine_totals(parts: Sequence[ArmTotals]) -> ArmTotals:
    """Pass 1 combined, in the given order (so the float sums are reproducible)."""
    total = ArmTotals(counts={}, reward_sums={}, rows=0)
    for part in parts:
        total = total.merge(part)
    return total


@dataclass(frozen=True, slots=True)
class FilledEvents:
    """The filled events of one partition as arrays: arm labels, arm codes into them, propensities,
    rewards and intent ids."""

    arm_labels: tuple[str, ...]
    arm_codes: np.ndarray
    propensities: np.ndarray
    rewards: np.ndarray
    intent_ids: pa.Array


def read_filled(path: Path) -> FilledEvents:
    """One partition's filled events (a null ``cost_bps`` means nothing filled: no reward, skipped; a flagged one
    is skipped too)."""
    table = read_ope_columns(path)
    filled, _ = _filled(table)
    labels, codes = _arm_codes(filled)
    return FilledEvents(arm_labels=labels, arm_codes=codes,
                        propensities=filled.column("propensity").to_numpy().astype(float, copy=False),
                        rewards=-filled.column("cost_bps").to_numpy().astype(float, copy=False),
                        intent_ids=filled.column("intent_id").combine_chunks())


def arm_totals(path: Path) -> ArmTotals:
    """Pass 1 on one partition file (reads only the arm, cost and error columns, and the logging policy and arrival
    time where the file has them)."""
    table = read_ope_columns(path, ("arm", "cost_bps", "error"), optional=("policy_id", "arrival_ts_ns"))
    filled, flagged = _filled(table)
    labels, codes = _arm_codes(filled)
    counts = np.bincount(codes, minlength=len(labels))
    sums = np.bincount(codes, weights=-filled.column("cost_bps").to_numpy(), minlength=len(labels))
    return ArmTotals(counts={a: int(counts[i]) for i, a in enumerate(labels)},
                     reward_sums={a: float(sums[i]) for i, a in enumerate(labels)}, rows=table.num_rows,
                     flagged=flagged, policy_spans=_policy_spans(table))


def _policy_spans(table: pa.Table) -> dict[str, tuple[int, int]]:
    """Each logging policy's first and last arrival in ``table`` (every row, filled or not, as ``ope`` counts
    them); empty when the file has no such columns."""
    if "policy_id" not in table.column_names or "arrival_ts_ns" not in table.column_names:
        return {}
    grouped = pa.table({"policy": table.column("policy_id"),
                        "ts": pc.cast(table.column("arrival_ts_ns"), pa.int64())}).group_by("policy").aggregate(
        [("ts", "min"), ("ts", "max")])
    return {policy: (low, high) for policy, low, high in zip(grouped.column("policy").to_pylist(),
                                                               grouped.column("ts_min").to_pylist(),
                                                               grouped.column("ts_max").to_pylist(), strict=True)}


def merge_spans(a: Mapping[str, tuple[int, int]], b: Mapping[str, tuple[int, int]]) -> dict[str, tuple[int, int]]:
    """Two maps of (first, last) times per key, combined: the earliest first and the latest last."""
    out = dict(a)
    for key, (low, high) in b.items():
        known = out.get(key)
        out[key] = (low, high) if known is None else (min(known[0], low), max(known[1], high))
    return out


def _filled(table: pa.Table) -> tuple[pa.Table, dict[str, int]]:
    """The rows with a cost and no flag, and the rows with a cost left out per flag (an error with both flags
    counts as ``venue_anomaly``, as ``tuner.ope.log.skip_reason`` ranks them): the regular expressions are
    ``router.events.flag_pattern``'s, the very test ``error_flags`` makes."""
    with_cost = table.filter(pc.is_valid(table.column("cost_bps")))
    error = with_cost.column("error")
    left_out = pa.array(np.zeros(with_cost.num_rows, dtype=bool))
    flagged: dict[str, int] = {}
    for flag in FLAGS:
        found = pc.and_(pc.fill_null(pc.match_substring_regex(error, flag_pattern(flag)), False), pc.invert(left_out))
        flagged[flag] = pc.sum(found).as_py() or 0
        left_out = pc.or_(left_out, found)
    return with_cost.filter(pc.invert(left_out)), flagged


def _arm_codes(table: pa.Table) -> tuple[tuple[str, ...], np.ndarray]:
    """The arm labels present in ``table`` and each row's index into them."""
    if table.num_rows == 0:
        return (), np.empty(0, dtype=np.int64)
    arm = table.column("arm").unify_dictionaries().combine_chunks()
    return tuple(arm.dictionary.to_pylist()), arm.indices.to_numpy(zero_copy_only=False).astype(np.int64)


@dataclass(frozen=True, slots=True)
class PassTwo:
    """What every partition's second pass needs: the arms, the fixed per-arm mean model, the candidate
    arm, the estimators and the number of bootstrap buckets."""

    arm_ids: tuple[str, ...]
    arm_means: np.ndarray
    candidate_arm: str
    estimators: tuple[Estimator, ...]
    n_buckets: int


@dataclass(frozen=True, slots=True)
class Tables:
    """Pass 2 sums: per estimator (and ``on_policy``) a (G, 2m) table of bucket sums, each component's
    numerator then denominator (event counts for a plain mean); events above each estimator's weight cut
    (``thresholds``: the cut, the same in every partition); and the importance weights' count, non-zeros,
    sum, sum of squares and max."""

    tables: dict[str, np.ndarray]
    above_threshold: dict[str, int]
    n: int
    n_nonzero_weight: int
    weight_sum: float
    weight_sq_sum: float
    weight_max: float
    thresholds: dict[str, float | None]

    def merge(self, other: Tables) -> Tables:
        return Tables(
            tables={k: self.tables[k] + other.tables[k] for k in self.tables},
            above_threshold={k: self.above_threshold[k] + other.above_threshold[k] for k in self.above_threshold},
            n=self.n + other.n, n_nonzero_weight=self.n_nonzero_weight + other.n_nonzero_weight,
            weight_sum=self.weight_sum + other.weight_sum, weight_sq_sum=self.weight_sq_sum + other.weight_sq_sum,
            weight_max=max(self.weight_max, other.weight_max), thresholds=self.thresholds)


def combine_tables(parts: Sequence[Tables | None]) -> Tables:
    """Pass 2 combined, in the given order (so the float sums are reproducible); ``None`` (a partition
    without a filled event) adds nothing."""
    present = [part for part in parts if part is not None]
    if not present:
        raise ValueError("no partition holds a filled event")
    total = present[0]
    for part in present[1:]:
        total = total.merge(part)
    return total


def partition_tables(path: Path, spec: PassTwo) -> Tables | None:
    """Pass 2 on one partition file: every estimator's terms under the fixed model, summed per bucket
    (``None`` when nothing in it filled)."""
    part = read_filled(path)
    names = [e.name for e in spec.estimators]
    if part.rewards.size == 0:
        return None
    index = {a: i for i, a in enumerate(spec.arm_ids)}
    unknown = sorted(set(part.arm_labels) - set(index))
    if unknown:
        raise ValueError(f"{path}: arms {unknown} were not seen in the first pass")
    recode = np.array([index[a] for a in part.arm_labels], dtype=np.int64)
    log = LoggedBandit(actions=recode[part.arm_codes], propensities=part.propensities, rewards=part.rewards,
                       arm_ids=spec.arm_ids)
    pi = fixed_arm_policy(log, spec.candidate_arm)
    weights = pi[np.arange(log.n), log.actions] / log.propensities
    no_missing_arm = np.zeros(log.n_arms, dtype=bool)
    inputs = OpeInputs(weights=weights, rewards=log.rewards, q_hat_logged=spec.arm_means[log.actions],
                       q_hat_pi=pi @ spec.arm_means,
                       dm_components=PerArmMeanModel._dm_components(log, pi, no_missing_arm))
    bucket = buckets(part.intent_ids, spec.n_buckets)
    tables: dict[str, np.ndarray] = {}
    above: dict[str, int] = {}
    thresholds: dict[str, float | None] = {}
    for name, estimator in zip(names, spec.estimators, strict=True):
        terms = estimator.terms(inputs)
        tables[name] = _bucket_sums(terms.components, bucket, spec.n_buckets)
        above[name] = 0 if terms.share_above_threshold is None else round(terms.share_above_threshold * log.n)
        thresholds[name] = terms.weight_threshold
    tables[ON_POLICY] = _bucket_sums(on_policy_components(log), bucket, spec.n_buckets)
    return Tables(tables=tables, above_threshold=above, n=log.n, n_nonzero_weight=int(np.count_nonzero(weights)),
                  weight_sum=float(weights.sum()), weight_sq_sum=float(np.dot(weights, weights)),
                  weight_max=float(weights.max()), thresholds=thresholds)


def _bucket_sums(components: Sequence[Component], bucket: np.ndarray, n_buckets: int) -> np.ndarray:
    columns: list[np.ndarray] = []
    for num, den in components:
        columns.append(np.bincount(bucket, weights=num, minlength=n_buckets))
        columns.append(np.bincount(bucket, minlength=n_buckets).astype(float) if den is None
                       else np.bincount(bucket, weights=den, minlength=n_buckets))
    return np.column_stack(columns)
