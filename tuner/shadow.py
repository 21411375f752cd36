"""Shadow ("apprentice") mode of one symbol: the champion acts, the learner proposes, agreement is tracked.

In shadow mode a :class:`~tuner.service.symbol.SymbolTuner` never chooses what is routed. For every order
the caller routes with the acting (champion) policy, and the tuner's learner makes the choice it would
have made live; :class:`ShadowMonitor` turns the two into a :class:`~router.events.ShadowDecision` for
the journal and keeps the agreement over the last ``agreement_window`` orders.

Learning is off-policy and one-sided: each routed order's reward is known only for the arm the champion
took, so the learner updates that arm only (``SymbolTuner.observe`` learns ``event.arm``, never the
proposed one). For the non-contextual learners a per-arm mean is unbiased whatever chose the arm; a
deterministic champion therefore teaches the learner about its own arm only, and the OPE gate below
refuses arms the log never took.

The go-live gate (every ``gate_every_n_outcomes`` learned outcomes, after ``min_outcomes``) asks that
the agreement over a full window reach ``min_agreement`` and that the OPE cost upper bound (the
configured ``gate_estimator``, via :func:`tuner.ope.run.evaluate_candidate`) of the learner's best arm on
the last ``ope_window_events`` routed orders be at most ``max_shortfall_bps`` above the acting policy's
own cost on the same orders (reasons in cost bps, lower is better). The learner's best arm is the knob
set it would publish: the candidate going live. The event window lives in memory; after a restart it
refills before the gate can pass.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import msgspec

from router_tuner.config.models import ConfigBundle, DeploymentConfig, OpeConfig
from router_tuner.router.events import SCHEMA_VERSION, RouterEvent, ShadowDecision
from router_tuner.router.policy import RouterPolicy
from router_tuner.tuner.arms import arm_id_of
from router_tuner.tuner.learners import Choice
from router_tuner.tuner.ope.cost import CostInterval
from router_tuner.tuner.ope.estimators import OpeEstimate
from router_tuner.tuner.ope.run import estimators_from_config, evaluate_candidate


@dataclass(frozen=True, slots=True)
class ShadowRule:
    """``tuner.json`` ``deployment.shadow`` plus the gate estimator (see the module docstring)."""

    agreement_window: int
    min_agreement: float
    min_outcomes: int
    gate_every_n_outcomes: int
    ope_window_events: int
    max_shortfall_bps: float
    gate_estimator: str

    def __post_init__(self) -> None:
        for name in ("agreement_window", "min_outcomes", "gate_every_n_outcomes"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.ope_window_events < 2:
            raise ValueError(f"ope_window_events must be >= 2, got {self.ope_window_events}")
        if not 0.0 < self.min_agreement <= 1.0:
            raise ValueError(f"min_agreement must be in (0, 1], got {self.min_agreement!r}")
        if not self.max_shortfall_bps >= 0.0:
            raise ValueError(f"max_shortfall_bps must be >= 0, got {self.max_shortfall_bps!r}")

    @classmethod
    def from_config(cls, deployment: DeploymentConfig) -> ShadowRule:
        s = deployment.shadow
        return cls(agreement_window=s.agreement_window, min_agreement=s.min_agreement, min_outcomes=s.min_outcomes,
                   gate_every_n_outcomes=s.gate_every_n_outcomes, ope_window_events=s.ope_window_events,
                   max_shortfall_bps=s.max_shortfall_bps, gate_estimator=deployment.gate_estimator)


class ShadowState(msgspec.Struct, forbid_unknown_fields=True):
    """Agreement of the last proposals (newest last) and totals, saved with the tuner's state."""

    recent_agreement: list[bool]
    proposals: int
    agreed: int

    @classmethod
    def empty(cls) -> ShadowState:
        return cls(recent_agreement=[], proposals=0, agreed=0)


@dataclass(frozen=True, slots=True)
class ShadowEvaluation:
    """One go-live check: agreement, the candidate's OPE estimate next to the acting value, the verdict.

    ``estimate`` and ``acting_value`` are ``None`` when OPE could not score the candidate (``reason``
    says why: no support, no filled orders); values are rewards (minus cost in bps), higher is better.
    """

    agreement: float | None
    proposals_in_window: int
    candidate_arm: str
    estimate: OpeEstimate | None
    acting_value: OpeEstimate | None
    passes: bool
    reason: str


def pick_estimate(estimates: dict[str, OpeEstimate], estimator: str) -> OpeEstimate:
    """The gate estimator's entry of an OPE report; a name the report lacks is a configuration error."""
    try:
        return estimates[estimator]
    except KeyError:
        raise ValueError(f"gate estimator {estimator!r} is not among the evaluated {sorted(estimates)}; "
                         "list it in tuner.json ope.estimators") from None


class ShadowMonitor:
    """Shadow records, agreement and the go-live gate for one symbol (see the module docstring)."""

    def __init__(self, symbol: str, rule: ShadowRule, ope: OpeConfig, *, seed: int,
                 state: ShadowState | None = None) -> None:
        names = {e.name for e in estimators_from_config(ope)}
        if rule.gate_estimator not in names:
            raise ValueError(f"gate estimator {rule.gate_estimator!r} is not configured in ope.estimators "
                             f"({sorted(names)})")
        self.symbol = symbol
        self.rule = rule
        self.ope_config = ope
        self.seed = seed
        self._s = state if state is not None else ShadowState.empty()
        self._events: deque[RouterEvent] = deque(maxlen=rule.ope_window_events)

    @property
    def state(self) -> ShadowState:
        return self._s

    @property
    def agreement(self) -> float | None:
        """Share of the last ``agreement_window`` proposals that matched the acting arm (``None``: none yet)."""
        recent = self._s.recent_agreement
        return sum(recent) / len(recent) if recent else None

    def record(self, proposal: Choice, acting: RouterPolicy, *, learner: str, intent_id: str,
               ts_ns: int) -> ShadowDecision:
        """The journal record of one proposal beside the acting policy; updates the agreement window."""
        if acting.symbol != self.symbol:
            raise ValueError(f"{self.symbol} shadow got an acting policy of {acting.symbol}")
        acting_arm = arm_id_of(acting.maker_offset_bps, acting.taker_bias)
        agrees = proposal.arm.arm_id == acting_arm
        recent = self._s.recent_agreement
        recent.append(agrees)
        del recent[:-self.rule.agreement_window]
        self._s.proposals += 1
        self._s.agreed += int(agrees)
        return ShadowDecision(schema_version=SCHEMA_VERSION, intent_id=intent_id, symbol=self.symbol, ts_ns=ts_ns,
                              acting_policy_id=acting.policy_id, acting_policy_version=acting.version,
                              acting_arm=acting_arm, acting_propensity=acting.propensity,
                              proposed_arm=proposal.arm.arm_id, proposed_propensity=proposal.propensity,
                              agrees=agrees, learner=learner)

    def add_event(self, event: RouterEvent) -> None:
        """Keep one routed order of the acting policy for the OPE window."""
        self._events.append(event)

    def gate_due(self, learned_outcomes: int) -> bool:
        """Whether the go-live gate is checked after this many learned outcomes in shadow mode."""
        return learned_outcomes >= self.rule.min_outcomes and learned_outcomes % self.rule.gate_every_n_outcomes == 0

    def evaluate(self, candidate_arm: str) -> ShadowEvaluation:
        """Check the go-live gate for ``candidate_arm`` (the learner's best arm) on the event window."""
        agreement = self.agreement
        window = len(self._s.recent_agreement)

        def verdict(passes: bool, reason: str, estimate: OpeEstimate | None = None,
                    acting: OpeEstimate | None = None) -> ShadowEvaluation:
            return ShadowEvaluation(agreement=agreement, proposals_in_window=window, candidate_arm=candidate_arm,
                                    estimate=estimate, acting_value=acting, passes=passes, reason=reason)

        try:
            report = evaluate_candidate(list(self._events), candidate_arm, self.ope_config, seed=self.seed,
                                        symbol=self.symbol)
        except ValueError as error:
            return verdict(False, f"ope: {error}")
        estimate = pick_estimate(report.estimates, self.rule.gate_estimator)
        acting = report.logging
        if window < self.rule.agreement_window or agreement is None:
            return verdict(False, f"agreement window {window}/{self.rule.agreement_window} not full", estimate, acting)
        if agreement < self.rule.min_agreement:
            return verdict(False, f"agreement {agreement:.3f} < {self.rule.min_agreement:g}", estimate, acting)
        upper_bps, acting_bps = CostInterval.of(estimate).ci_high_bps, CostInterval.of(acting).cost_bps
        ceiling_bps = acting_bps + self.rule.max_shortfall_bps
        versus = (f"the acting policy's {acting_bps:.3f} bps + {self.rule.max_shortfall_bps:g} bps allowed shortfall "
                  f"= {ceiling_bps:.3f} bps (cost, lower is better)")
        if upper_bps > ceiling_bps:
            return verdict(False, f"{estimate.estimator} cost upper bound {upper_bps:.3f} bps > {versus}",
                           estimate, acting)
        return verdict(True, f"agreement {agreement:.3f} >= {self.rule.min_agreement:g} and {estimate.estimator} "
                             f"cost upper bound {upper_bps:.3f} bps <= {versus}", estimate, acting)


def with_shadow_symbols(bundle: ConfigBundle, symbols: tuple[str, ...]) -> ConfigBundle:
    """``bundle`` with ``deployment.shadow_symbols`` replaced: how a simulation runs a scenario in shadow."""
    deployment = msgspec.structs.replace(bundle.tuner.deployment, shadow_symbols=tuple(symbols))
    tuner = msgspec.structs.replace(bundle.tuner, deployment=deployment)
    return msgspec.structs.replace(bundle, tuner=tuner)
