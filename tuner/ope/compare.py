"""A candidate against a baseline on one symbol's logged events: both scored, their paired difference, warnings.

Why a module of its own: the question people bring to OPE is "is this policy cheaper than that one here",
and two separate intervals do not answer it (they overlap long after the paired difference is clear, and
the estimates share every event). The difference is drawn on the very resamples the estimates were, and
the warnings say when the numbers should not be trusted at all: too few effective events, a log that
never explored, or IPS and SNIPS telling different stories. Everything here is in cost bps.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from router_tuner.config.models import OpeConfig
from router_tuner.router.events import RouterEvent
from router_tuner.tuner.ope.cost import CostInterval
from router_tuner.tuner.ope.estimators import MIN_WEIGHTED_EVENTS_FOR_INTERVAL, OpeEstimate, paired_interval
from router_tuner.tuner.ope.run import CandidateReport, evaluate_candidate

ON_POLICY = "on_policy"


@dataclass(frozen=True, slots=True)
class Comparison:
    """``candidate`` and ``baseline`` (``None``: the logging policy's own value) on ``symbol``'s events.

    ``differences`` is candidate minus baseline per estimator, in cost bps with its paired interval
    (negative: the candidate is cheaper). ``warnings`` are reasons to distrust the numbers.
    """

    symbol: str
    candidate: CandidateReport
    baseline: CandidateReport | None
    differences: dict[str, CostInterval]
    warnings: tuple[str, ...]

    @property
    def baseline_label(self) -> str:
        return self.baseline.candidate_arm if self.baseline is not None else ON_POLICY

    def to_dict(self) -> dict[str, Any]:
        return {"symbol": self.symbol, "cost_unit": "bps", "candidate": self.candidate.to_dict(),
                "baseline": self.baseline.to_dict() if self.baseline is not None else None,
                "baseline_label": self.baseline_label,
                "difference": {name: diff.to_dict() for name, diff in self.differences.items()},
                "warnings": list(self.warnings)}


def compare(events: Sequence[RouterEvent], candidate_arm: str, baseline_arm: str | None, config: OpeConfig, *,
            seed: int, symbol: str, min_effective_sample_size: float) -> Comparison:
    """Score ``candidate_arm`` (and ``baseline_arm``) on ``symbol``'s events; ValueError when either cannot be.

    Without a baseline arm the difference is against the logging policy's on-policy value.
    """
    candidate = evaluate_candidate(events, candidate_arm, config, seed=seed, symbol=symbol)
    baseline = (evaluate_candidate(events, baseline_arm, config, seed=seed, symbol=symbol,
                                   resamples=candidate.resamples) if baseline_arm is not None else None)
    differences = {}
    for name in candidate.estimates:
        against = baseline.components[name] if baseline is not None else candidate.components[ON_POLICY]
        differences[name] = CostInterval.from_reward(*paired_interval(candidate.components[name], against,
                                                                      candidate.resamples))
    warnings = log_warnings(candidate) + arm_warnings(candidate, min_effective_sample_size)
    if baseline is not None:
        warnings += [f"baseline {w}" for w in arm_warnings(baseline, min_effective_sample_size)]
    return Comparison(symbol=symbol, candidate=candidate, baseline=baseline, differences=differences,
                      warnings=tuple(warnings))


def log_warnings(report: CandidateReport) -> list[str]:
    """What makes every estimate on this log doubtful, whatever arm is scored."""
    if not report.deterministic_log:
        return []
    return ["deterministic log: every logged propensity is 1, so at each event the other arms had no support; "
            "an arm's estimates rest on the events that happened to choose it and their intervals are too narrow"]


class ScoredArm(Protocol):
    """What :func:`arm_warnings` reads of a scored arm: one journal's report or a partitioned dataset's."""

    @property
    def candidate_arm(self) -> str: ...

    @property
    def estimates(self) -> Mapping[str, OpeEstimate]: ...


def arm_warnings(report: ScoredArm, min_effective_sample_size: float) -> list[str]:
    """Why the numbers of ``report``'s arm may not mean what they say (empty when we see nothing wrong); the
    same for ``ope`` and ``ope-dataset``, so one log scored either way is trusted or doubted alike."""
    out = []
    ess = min(est.ess for est in report.estimates.values())
    if ess < min_effective_sample_size:
        out.append(f"low effective sample size for {report.candidate_arm}: ESS {ess:.1f} < "
                   f"{min_effective_sample_size:g} (tuner.json deployment.promotion.min_effective_sample_size); "
                   "few logged events look like this candidate's choices")
    carrying = min(est.n_nonzero_weight for est in report.estimates.values())
    if carrying < MIN_WEIGHTED_EVENTS_FOR_INTERVAL:  # a journal of one event printed [x, x] intervals
        out.append(f"the estimates for {report.candidate_arm} rest on {carrying} logged event(s) carrying weight: "
                   "bootstrap intervals cannot measure the uncertainty of a single event (where they have zero width, "
                   "[x, x], the cost is not known exactly); score a longer log")
    ips, snips = report.estimates.get("ips"), report.estimates.get("snips")
    if (carrying >= MIN_WEIGHTED_EVENTS_FOR_INTERVAL  # with one event they differ by its weight
            and ips is not None and snips is not None and (ips.ci_high < snips.ci_low or snips.ci_high < ips.ci_low)):
        a, b = CostInterval.of(ips), CostInterval.of(snips)
        out.append(f"IPS and SNIPS disagree beyond their intervals for {report.candidate_arm}: IPS "
                   f"{a.cost_bps:.3f} [{a.ci_low_bps:.3f}, {a.ci_high_bps:.3f}] vs SNIPS {b.cost_bps:.3f} "
                   f"[{b.ci_low_bps:.3f}, {b.ci_high_bps:.3f}] bps: the importance weights are unstable")
    return out


def policy_spans(events: Sequence[RouterEvent]) -> dict[str, tuple[int, int]]:
    """Each logging policy's first and last arrival (ns) in ``events``."""
    spans: dict[str, tuple[int, int]] = {}
    for event in events:
        low, high = spans.get(event.policy_id, (event.arrival_ts_ns, event.arrival_ts_ns))
        spans[event.policy_id] = (min(low, event.arrival_ts_ns), max(high, event.arrival_ts_ns))
    return spans


def concurrent_policies_warning(spans: Mapping[str, tuple[int, int]], how_to_pick: str) -> str | None:
    """A warning when logging policies routed over the same time (a simulation's journal, where every policy
    routes the same intents): on_policy is then their mixture and one intent counts once per policy. Policies
    that took over from one another (static, then a tuner) are one log, as live writes it. ``how_to_pick``
    says how the command at hand scores one of them."""
    ordered = sorted(spans.values())
    if not any(later[0] <= earlier[1] for earlier, later in itertools.pairwise(ordered)):
        return None
    return (f"the log holds {len(spans)} logging policies routing over the same time (a simulation's journal "
            "routes the same intents with every policy): on_policy is their mixture and each intent counts once per "
            f"policy; {how_to_pick} ({', '.join(sorted(spans))})")
