"""Score a candidate arm on a partitioned dataset: two passes of per-partition tasks, combined exactly.

The estimators are ``tuner.json``'s (:func:`tuner.ope.run.estimators_from_config`) with the per-arm mean
reward model, as ``router-tuner ope`` runs them on one journal; point values equal the single-process ones
to float rounding (sums taken in another order). All eight combine exactly because the per-arm mean model
is itself a ratio of sums: a contextual model (the ridge) would too, from per-arm X'X and X'y, but is not
offered here. What does not combine exactly is left out rather than approximated: weight quantiles
(``weight_quantiles`` is ``None``) and per-event support (the check is per log, over the arms logged).

Intervals: a bucket bootstrap. Events fall into ``bootstrap_max_blocks`` buckets by a hash of their intent
id and buckets are resampled with replacement (seeded by ``seed``), so an event carries the same resample
weights whichever partition it sits in, and the intervals are the same for any partitioning and any number
of workers. Buckets mix events from all times (unlike the single-journal block bootstrap's contiguous
blocks), so short-range serial dependence between consecutive orders is not kept in a resample: at the
sizes this is meant for, each bucket holds thousands of orders from many days and symbols.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np

from router_tuner.config.models import OpeConfig
from router_tuner.tuner.cluster import TaskRunner
from router_tuner.tuner.ope.bootstrap import BlockBootstrap, Component, point_value
from router_tuner.tuner.ope.cost import cost_view
from router_tuner.tuner.ope.estimators import DirectMethod, OpeEstimate
from router_tuner.tuner.ope.log import flagged_note
from router_tuner.tuner.ope.partition.layout import Partition
from router_tuner.tuner.ope.partition.sufficient import (
    ON_POLICY,
    PassTwo,
    Tables,
    arm_totals,
    combine_tables,
    combine_totals,
    partition_tables,
)
from router_tuner.tuner.ope.reward_model import PerArmMeanModel
from router_tuner.tuner.ope.run import bootstrap_from_config, estimators_from_config


@dataclass(frozen=True, slots=True)
class PartitionedReport:
    """A candidate arm's estimates and the logging policy's value over every partition, and how many
    partitions, rows and scored events they hold, and the filled events left out for a flag, by flag
    (``tuner.ope.log.skip_reason``: as one journal's OPE leaves them out); ``policy_spans``: each logging policy's
    first and last arrival (ns), empty when the files do not name them."""

    candidate_arm: str
    n_partitions: int
    rows: int
    n_events: int
    arm_ids: tuple[str, ...]
    n_buckets: int
    logging: OpeEstimate
    estimates: dict[str, OpeEstimate]
    skipped_flagged: dict[str, int]
    policy_spans: dict[str, tuple[int, int]]

    @property
    def notes(self) -> tuple[str, ...]:
        note = flagged_note(self.skipped_flagged)
        return () if note is None else (note,)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, in cost bps (lower is better)."""
        flagged = sum(self.skipped_flagged.values())
        return {"candidate_arm": self.candidate_arm, "n_partitions": self.n_partitions, "rows": self.rows,
                "n_events": self.n_events, "skipped_unfilled": self.rows - self.n_events - flagged,
                "skipped_flagged": dict(self.skipped_flagged), "notes": list(self.notes),
                "arm_ids": list(self.arm_ids), "logging_policies": sorted(self.policy_spans),
                "bootstrap_buckets": self.n_buckets,
                "logging": cost_view(self.logging),
                "estimates": {name: cost_view(est) for name, est in self.estimates.items()}}


def evaluate_partitions(partitions: Sequence[Partition], candidate_arm: str, config: OpeConfig, *, seed: int,
                        runner: TaskRunner) -> PartitionedReport:
    """Every configured estimator's value of always choosing ``candidate_arm``, over ``partitions``.

    Two rounds of one task per partition on ``runner`` (pass 1: the per-arm model; pass 2: the bucket
    tables). A candidate arm never taken with a fill has no support and is an error, as for one journal.
    """
    if not partitions:
        raise ValueError("no partitions to evaluate")
    paths = [p.path for p in partitions]
    totals = combine_totals(runner.map(arm_totals, paths))
    arm_ids = totals.arm_ids
    if candidate_arm not in arm_ids:
        flagged = sum(totals.flagged.values())
        left_out = (f" ({flagged} filled events of the dataset are flagged venue_anomaly or fee_unpriced and left "
                    "out, as the tuner's reward filter leaves them out)" if flagged else "")
        raise ValueError(f"candidate arm {candidate_arm} was never taken with a fill in this dataset{left_out}, so "
                         f"it has no support and cannot be scored; arms logged: {', '.join(arm_ids) or 'none'}")
    means = np.array([totals.reward_sums[a] / totals.counts[a] for a in arm_ids])
    estimators = tuple(estimators_from_config(config))
    bootstrap = bootstrap_from_config(config, seed)
    spec = PassTwo(arm_ids=arm_ids, arm_means=means, candidate_arm=candidate_arm, estimators=estimators,
                   n_buckets=bootstrap.max_blocks)
    tables = combine_tables(runner.map(partial(partition_tables, spec=spec), paths))
    resampler = BlockBootstrap(bootstrap.max_blocks, bootstrap)
    model = PerArmMeanModel()
    estimates: dict[str, OpeEstimate] = {}
    for estimator in estimators:
        notes = [f"{estimator.name} interval holds the {model.name} reward model fixed: it leaves out the "
                 "model's own estimation error"] if estimator.needs_reward_model and not isinstance(
                     estimator, DirectMethod) else []
        estimates[estimator.name] = _estimate(estimator.name, tables, resampler, notes=tuple(notes),
                                              reward_model=model.name if estimator.needs_reward_model else None)
    logging = _estimate(ON_POLICY, tables, resampler, notes=(), reward_model=None)
    return PartitionedReport(candidate_arm=candidate_arm, n_partitions=len(partitions), rows=totals.rows,
                             n_events=tables.n, arm_ids=arm_ids, n_buckets=bootstrap.max_blocks,
                             logging=logging, estimates=estimates, skipped_flagged=dict(totals.flagged),
                             policy_spans=dict(totals.policy_spans))


def table_components(table: np.ndarray) -> list[Component]:
    """A (G, 2m) bucket table as bootstrap components over buckets: (numerator, denominator) column pairs."""
    return [(table[:, 2 * j], table[:, 2 * j + 1]) for j in range(table.shape[1] // 2)]


def _estimate(key: str, tables: Tables, resampler: BlockBootstrap, *, notes: tuple[str, ...],
              reward_model: str | None) -> OpeEstimate:
    components = table_components(tables.tables[key])
    low, high = resampler.interval(components)
    on_policy = point_value(table_components(tables.tables[ON_POLICY]))
    is_logging = key == ON_POLICY
    threshold = None if is_logging else tables.thresholds.get(key)
    return OpeEstimate(
        estimator=key, value=point_value(components), ci_low=low, ci_high=high,
        ci_level=resampler.config.ci_level, n=tables.n,
        n_nonzero_weight=tables.n if is_logging else tables.n_nonzero_weight,
        ess=float(tables.n) if is_logging else _ess(tables),
        weight_max=1.0 if is_logging else tables.weight_max,
        weight_mean=1.0 if is_logging else tables.weight_sum / tables.n,
        weight_quantiles=None, weight_threshold=threshold,
        share_above_threshold=None if threshold is None else tables.above_threshold[key] / tables.n,
        support_basis=None if is_logging else "arms_logged", support_gap_share=0.0, support_gap_mass=0.0,
        logging_value=on_policy, reward_model=reward_model, notes=notes)


def _ess(tables: Tables) -> float:
    return 0.0 if tables.weight_sq_sum == 0.0 else tables.weight_sum ** 2 / tables.weight_sq_sum
