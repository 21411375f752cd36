"""Score one candidate arm on logged RouterEvents with the configured estimators, beside the log's own value.

This is the one place that turns ``tuner.json``'s ``ope`` section into estimator objects, so the
``ope`` command, the simulation and promotion gates all report the same numbers the same way.
Values are rewards (minus cost in bps): higher is better; ``to_dict`` and everything shown to people is
in cost bps (:mod:`tuner.ope.cost`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from router_tuner.config.models import OpeConfig
from router_tuner.router.events import RouterEvent
from router_tuner.tuner.ope.bootstrap import BlockBootstrap, BootstrapConfig, Component
from router_tuner.tuner.ope.cost import cost_view
from router_tuner.tuner.ope.estimators import (
    IPS,
    SNIPS,
    DirectMethod,
    DoublyRobust,
    DRShrinkage,
    Estimator,
    OpeEstimate,
    SelfNormalizedDR,
    SwitchDR,
    evaluate_with_components,
    on_policy_components,
    on_policy_value,
)
from router_tuner.tuner.ope.log import LoggedBandit, flagged_note, skip_reason
from router_tuner.tuner.ope.policy import fixed_arm_policy
from router_tuner.tuner.ope.reward_model import PerArmMeanModel


def estimators_from_config(config: OpeConfig) -> list[Estimator]:
    """The configured estimators; a clipped IPS is added beside the plain one when clipping is set."""
    built: dict[str, Estimator] = {
        "ips": IPS(), "snips": SNIPS(), "dm": DirectMethod(), "dr": DoublyRobust(), "sndr": SelfNormalizedDR(),
        "switch_dr": SwitchDR(config.switch_tau), "dr_shrinkage": DRShrinkage(config.shrinkage_lambda),
    }
    chosen = [built[name] for name in config.estimators]
    if config.clip_threshold is not None and "ips" in config.estimators:
        chosen.append(IPS(clip_threshold=config.clip_threshold))
    return chosen


def bootstrap_from_config(config: OpeConfig, seed: int) -> BootstrapConfig:
    return BootstrapConfig(n_resamples=config.bootstrap_resamples, ci_level=config.ci_level, seed=seed,
                           max_blocks=config.bootstrap_max_blocks)


@dataclass(frozen=True, slots=True)
class CandidateReport:
    """A candidate arm's estimates and the logging policy's on-policy value on the same events.

    ``deterministic_log`` is true when every logged propensity is 1 (the logging policy never explored).
    ``skipped_flagged`` counts the filled events left out for a flag, by flag (:func:`tuner.ope.log.skip_reason`:
    what the tuner's reward filter does not learn from is not scored either); ``notes`` says so in words.
    ``components`` are each estimator's per-event terms (``"on_policy"`` for the log's own value) and
    ``resamples`` the bootstrap every interval was drawn on, kept to draw paired intervals of differences
    (:mod:`tuner.ope.compare`); they are not part of the report.
    """

    candidate_arm: str
    symbol: str | None
    n_events: int
    skipped_unfilled: int
    skipped_flagged: dict[str, int]
    arm_ids: tuple[str, ...]
    logging: OpeEstimate
    estimates: dict[str, OpeEstimate]
    deterministic_log: bool
    components: dict[str, list[Component]] = field(compare=False, repr=False)
    resamples: BlockBootstrap = field(compare=False, repr=False)

    @property
    def notes(self) -> tuple[str, ...]:
        """What the report leaves out of the log and why (empty when nothing but unfilled events)."""
        note = flagged_note(self.skipped_flagged)
        return () if note is None else (note,)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, in cost bps (lower is better)."""
        return {"candidate_arm": self.candidate_arm, "symbol": self.symbol, "n_events": self.n_events,
                "skipped_unfilled": self.skipped_unfilled, "skipped_flagged": dict(self.skipped_flagged),
                "notes": list(self.notes), "arm_ids": list(self.arm_ids), "deterministic_log": self.deterministic_log,
                "logging": cost_view(self.logging),
                "estimates": {name: cost_view(est) for name, est in self.estimates.items()}}


def evaluate_candidate(
    events: Sequence[RouterEvent], candidate_arm: str, config: OpeConfig, *, seed: int, symbol: str | None,
    resamples: BlockBootstrap | None = None,
) -> CandidateReport:
    """Every configured estimator's value of always choosing ``candidate_arm`` on ``events``.

    ``resamples`` (another report's, on the same events) makes both reports' intervals paired without
    drawing the bootstrap twice.

    A candidate arm the log never took has no support: no estimator can score it from this log, and
    that is an error that names the arms the log does hold.
    """
    chosen = [e for e in events if symbol is None or e.symbol == symbol]
    if not chosen:
        raise ValueError(f"no router events{f' for {symbol}' if symbol else ''} to evaluate on")
    arm_ids = tuple(sorted({e.arm for e in chosen if skip_reason(e) is None}))
    if candidate_arm not in arm_ids:
        flagged = sum(1 for e in chosen if e.arm == candidate_arm and skip_reason(e) not in (None, "unfilled"))
        left_out = (f" ({flagged} of its filled events are flagged venue_anomaly or fee_unpriced and left out, as "
                    "the tuner's reward filter leaves them out)" if flagged else "")
        raise ValueError(f"candidate arm {candidate_arm} was never taken with a fill in this log{left_out}, so it "
                         f"has no support and cannot be scored; arms logged: {', '.join(arm_ids) or 'none'}")
    log = LoggedBandit.from_events(chosen, arm_ids)
    bootstrap = bootstrap_from_config(config, seed)
    resamples = BlockBootstrap.shared(log.n, bootstrap, resamples)
    estimates, components = evaluate_with_components(
        log, fixed_arm_policy(log, candidate_arm), estimators_from_config(config), bootstrap=bootstrap,
        reward_model=PerArmMeanModel(), weight_quantiles=config.weight_quantiles, resamples=resamples)
    return CandidateReport(candidate_arm=candidate_arm, symbol=symbol, n_events=log.n,
                           skipped_unfilled=log.skipped_unfilled, skipped_flagged=dict(log.skipped_flagged),
                           arm_ids=arm_ids,
                           logging=on_policy_value(log, bootstrap=bootstrap, resamples=resamples),
                           estimates=estimates, deterministic_log=bool((log.propensities == 1.0).all()),
                           components={**components, "on_policy": on_policy_components(log)}, resamples=resamples)
