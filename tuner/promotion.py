"""OPE-gated promotion: the challenger becomes champion only when the logs say it is better, or a person says so.

The gate reads the symbol's recent routed orders (those that finished within ``recent_window_s`` of the
latest one: a replay of an old journal judges as of its own end), scores the challenger's arm on them
with :func:`tuner.ope.run.evaluate_candidate`, and passes when the configured ``gate_estimator``'s lower
confidence bound beats the acting policy's on-policy value on the same orders by ``margin_bps``, with
at least ``min_effective_sample_size`` effective events behind the estimate. The acting policy's value
is the log's own mean reward: what the champion (with any exploration around it) actually earned.
Reasons and tags speak cost in bps (lower is better), as every OPE output does: the rule reads "the
challenger's cost upper bound is below the champion's cost minus the margin" (:mod:`tuner.ope.cost`).

Every promotion leaves its reason on the promoted model version and its run as MLflow tags: the gate's
numbers when it passed, or who forced it and why. A refused promotion changes nothing in the registry.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from router_tuner.config.models import DeploymentConfig, OpeConfig
from router_tuner.risk.units import NS_PER_S
from router_tuner.router.events import RouterEvent
from router_tuner.tuner.arms import arm_id_of_policy
from router_tuner.tuner.gate_record import OPE_GATE, PROMOTION_TAG, forced_tags, gate_problem
from router_tuner.tuner.ope.cost import CostInterval
from router_tuner.tuner.ope.estimators import OpeEstimate
from router_tuner.tuner.ope.run import evaluate_candidate
from router_tuner.tuner.registry_aliases import CHALLENGER
from router_tuner.tuner.shadow import pick_estimate

if TYPE_CHECKING:
    from router_tuner.tuner.registry import PolicyRegistry, PolicyVersion


@dataclass(frozen=True, slots=True)
class PromotionRule:
    """``tuner.json`` ``deployment.promotion`` plus the gate estimator."""

    recent_window_s: float
    margin_bps: float
    min_effective_sample_size: float
    gate_estimator: str

    def __post_init__(self) -> None:
        if not self.recent_window_s > 0:
            raise ValueError(f"recent_window_s must be > 0, got {self.recent_window_s!r}")
        if not self.margin_bps >= 0:
            raise ValueError(f"margin_bps must be >= 0, got {self.margin_bps!r}")
        if not self.min_effective_sample_size > 0:
            raise ValueError(f"min_effective_sample_size must be > 0, got {self.min_effective_sample_size!r}")

    @classmethod
    def from_config(cls, deployment: DeploymentConfig) -> PromotionRule:
        p = deployment.promotion
        return cls(recent_window_s=p.recent_window_s, margin_bps=p.margin_bps,
                   min_effective_sample_size=p.min_effective_sample_size, gate_estimator=deployment.gate_estimator)


@dataclass(frozen=True, slots=True)
class PromotionVerdict:
    """The gate's decision on one candidate arm, with the estimates it was made on (``OpeEstimate`` holds
    rewards; ``reason`` and ``tags`` state them as costs in bps)."""

    symbol: str
    candidate_arm: str
    n_events: int
    estimate: OpeEstimate | None
    champion_value: OpeEstimate | None
    margin_bps: float
    passes: bool
    reason: str

    def tags(self) -> dict[str, str]:
        """MLflow tags recording the decision on the promoted version."""
        out = {PROMOTION_TAG: OPE_GATE, "promotion_reason": self.reason, "promotion_events": str(self.n_events),
               "promotion_margin_bps": f"{self.margin_bps:g}"}
        if self.estimate is not None and self.champion_value is not None:
            cost = CostInterval.of(self.estimate)
            out |= {"promotion_estimator": self.estimate.estimator,
                    "promotion_cost_bps": f"{cost.cost_bps:.6g}",
                    "promotion_cost_ci_high_bps": f"{cost.ci_high_bps:.6g}",
                    "promotion_champion_cost_bps": f"{-self.champion_value.value:.6g}"}
        return out


def recent_events(events: Iterable[RouterEvent], symbol: str, window_s: float) -> list[RouterEvent]:
    """``symbol``'s events that finished within ``window_s`` of its latest one, in their order."""
    mine = [e for e in events if e.symbol == symbol]
    if not mine:
        return []
    since_ns = max(e.finished_ts_ns for e in mine) - int(window_s * NS_PER_S)
    return [e for e in mine if e.finished_ts_ns >= since_ns]


def judge(events: Sequence[RouterEvent], candidate_arm: str, symbol: str, rule: PromotionRule, ope: OpeConfig,
          *, seed: int) -> PromotionVerdict:
    """Whether ``candidate_arm`` clears the gate on ``events`` (already the recent window of ``symbol``)."""

    def verdict(passes: bool, reason: str, estimate: OpeEstimate | None = None,
                champion: OpeEstimate | None = None, n: int = 0) -> PromotionVerdict:
        return PromotionVerdict(symbol=symbol, candidate_arm=candidate_arm, n_events=n, estimate=estimate,
                                champion_value=champion, margin_bps=rule.margin_bps, passes=passes, reason=reason)

    try:
        report = evaluate_candidate(events, candidate_arm, ope, seed=seed, symbol=symbol)
    except ValueError as error:
        return verdict(False, f"ope: {error}")
    estimate = pick_estimate(report.estimates, rule.gate_estimator)
    champion, n = report.logging, report.n_events
    if estimate.ess < rule.min_effective_sample_size:
        return verdict(False, f"effective sample size {estimate.ess:.1f} < {rule.min_effective_sample_size:g}",
                       estimate, champion, n)
    upper_bps, champion_bps = CostInterval.of(estimate).ci_high_bps, CostInterval.of(champion).cost_bps
    needed_bps = champion_bps - rule.margin_bps
    versus = (f"the champion's {champion_bps:.3f} bps - {rule.margin_bps:g} bps margin = {needed_bps:.3f} bps "
              f"(cost, lower is better)")
    if upper_bps >= needed_bps:
        return verdict(False, f"{estimate.estimator} cost upper bound {upper_bps:.3f} bps does not beat {versus}",
                       estimate, champion, n)
    return verdict(True, f"{estimate.estimator} cost upper bound {upper_bps:.3f} bps < {versus}", estimate, champion, n)


def candidate_arm_of(version: PolicyVersion) -> str:
    """The grid arm id of a registered version's knobs (a rollback version is labelled ``static``)."""
    return arm_id_of_policy(version.policy, f"{version.symbol} policy version {version.version}")


def promote_if_better(registry: PolicyRegistry, symbol: str, events: Iterable[RouterEvent], rule: PromotionRule,
                      ope: OpeConfig, *, seed: int, version: int | None = None
                      ) -> tuple[PromotionVerdict, PolicyVersion | None]:
    """Promote the challenger (or ``version``) when it clears the gate on ``events``; tags the decision.

    Returns the verdict and the new champion, or ``None`` when refused (the registry is unchanged). A target that
    is the champion already without a gate record is what a promotion killed between moving the alias and
    recording the gate left: when it passes, the same command records the gate (it used to refuse, "already the
    champion", and the champion was not acted on).
    """
    target = registry.show(symbol, str(version) if version is not None else CHALLENGER)
    window = recent_events(events, symbol, rule.recent_window_s)
    decision = judge(window, candidate_arm_of(target), symbol, rule, ope, seed=seed)
    if not decision.passes:
        return decision, None
    if target.version == registry.champion_version(symbol) and gate_problem(target.tags) is not None:
        registry.tag_version(symbol, target.version, decision.tags())
        return decision, registry.show(symbol, str(target.version))
    promoted = registry.promote(symbol, target.version)
    registry.tag_version(symbol, promoted.version, decision.tags())
    return decision, registry.show(symbol, str(promoted.version))  # with its gate record, as for force_promote


def force_promote(registry: PolicyRegistry, symbol: str, *, who: str, why: str,
                  version: int | None = None) -> PolicyVersion:
    """Promote without the gate; who and why are recorded as tags on the version and its run.

    ``version`` may be the champion already when it has no gate record (an alias moved in the MLflow UI):
    the tags then accept it, and a router following the registry starts acting on it. Without ``version``, a
    challenger that is the champion already without a gate record is what a forced promotion killed between
    moving the alias and recording who and why left: the same command records them.
    """
    from router_tuner.tuner.registry import ChampionStays  # MLflow is loaded already: the caller holds a registry

    _require_text(who=who, why=why)
    tags = forced_tags(who=who, why=why)
    champion = registry.champion_version(symbol)
    if version is None and champion is not None and champion == registry.challenger_version(symbol) \
            and gate_problem(registry.version_tags(symbol, champion)) is not None:
        version = champion  # a promotion killed after moving the alias, before its record: the same command ends it
    if version is not None and version == champion:
        if gate_problem(registry.version_tags(symbol, version)) is None:
            raise ChampionStays(f"{symbol}: version {version} is already the champion, with a gate record")
        registry.tag_version(symbol, version, tags)
        return registry.show(symbol, str(version))
    promoted = registry.promote(symbol, version)
    registry.tag_version(symbol, promoted.version, tags)
    return registry.show(symbol, str(promoted.version))  # with its gate record (``promoted`` predates the tags)


def _require_text(**values: str) -> None:
    for name, value in values.items():
        if not value.strip():
            raise ValueError(f"{name} must name a person and a reason, got {value!r}")
