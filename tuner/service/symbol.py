"""One symbol's tuner: decides the acting policy per order and learns from the outcome, within guardrails.

Two verbs, as everywhere in the tuner:

* :meth:`SymbolTuner.decide` ``(context) -> RouterPolicy``: the learner picks an arm among the arms the
  guardrails allow (inside the bounds; within one step of the published version too, unless the learner
  prices untried arms, whose exploration the budget then charges at the posterior's expected extra cost),
  and the result is the published policy carrying that arm and its propensity; ``route()`` logs both.
* :meth:`SymbolTuner.observe` ``(event, context) -> ObserveResult``: the reward filter (absurd or
  unfilled outcomes are counted, never learned), the drift monitor (re-opens exploration), the learner
  update, the rollback monitor and the publishing rule.

Publishing: a new version is considered every ``every_n_outcomes`` learned outcomes (the schedule) or as
soon as the learner's best arm is expected to beat the published arm by ``min_improvement_bps`` (a
significant change), never before ``min_outcomes_before_move`` outcomes since the last version, and
always clamped to one step. A version is on probation while a :class:`RollbackMonitor` compares its
rolling live cost with the last good version's mean cost; when worse by more than the margin, the tuner
publishes a new version carrying the last good version's knobs (reason ``rollback``). Version numbers only
grow, so every RouterEvent's (policy id, version) names exactly one set of knobs.

Deployment (see :mod:`tuner.shadow`, :mod:`tuner.budget`, :mod:`tuner.safety`): a tuner is ``live`` (its
choices are routed) or in ``shadow`` mode (the caller routes with the champion and :meth:`SymbolTuner.shadow`
journals what the learner would have chosen). Both modes learn from every routed order, on the arm that
was taken; a shadow tuner neither publishes nor rolls back (its versions would not act) and goes live by
:meth:`SymbolTuner.go_live` or when its gate passes. Every choice is made among the arms the guardrails
allow minus those the safety bounds exclude (the published arm when that leaves none); a live choice is
further limited to the arms the exploration budget can pay for. A drift re-opens excluded arms.

Hot path: what a live decision may choose among (the safety, budget and posterior filters above) changes
only when an outcome is observed, a version published or a state loaded, so it is computed then, off the
route's clock, and kept in a :class:`DecisionOptions` until the next such change; the policy of every
in-bounds arm is built and validated once per published version. :meth:`SymbolTuner.decide` is then the
learner's choice and that arm's policy carrying the choice's propensity (a policy is a frozen value: the
same (arm, propensity) of one version is one shared instance).

Not thread-safe: one caller (the executor loop or the simulation) drives a tuner.
"""

from __future__ import annotations

import dataclasses
import math
from collections import Counter
from dataclasses import dataclass
from typing import Literal, TypeVar

import msgspec

from router_tuner.config.models import PolicyBounds
from router_tuner.router.contract import ContractSpec, check_spec, notional_usd
from router_tuner.router.events import SCHEMA_VERSION, ArmSafetyChange, ArmSafetyEvent, RouterEvent, ShadowDecision
from router_tuner.router.policy import STATIC_ARM, RouterPolicy
from router_tuner.tuner.arms import Arm, ArmGrid, arm_id_of
from router_tuner.tuner.budget import BudgetReport, BudgetState, ExplorationBudget
from router_tuner.tuner.guardrails import DriftMonitor, Guardrails, RollbackMonitor, allowed_arm_ids, should_publish
from router_tuner.tuner.learners import Choice, Context, Learner, RouteOutcome
from router_tuner.tuner.reward import RewardFilter
from router_tuner.tuner.reward_adjustment import MarketAfter, RewardAdjustment, WaitingDrift, WaitingDriftState
from router_tuner.tuner.safety import ArmSafety, SafetyState
from router_tuner.tuner.service.period import PeriodStats
from router_tuner.tuner.service.publish import PolicyPublisher, PolicyRecord, PublishReason, VersionMetrics
from router_tuner.tuner.shadow import ShadowEvaluation, ShadowMonitor, ShadowState

TunerMode = Literal["shadow", "live"]
_ACTING_CACHE_SIZE = 4096
"""Acting policies (arm, propensity) kept per version: a learner's propensities mostly repeat (replica shares,
1.0, 1 - epsilon + epsilon / k); a learner whose never do only refills the cache, which is then cleared."""
_S = TypeVar("_S", bound=msgspec.Struct)


class ShadowModeError(RuntimeError):
    """A live-only call on a tuner in shadow mode (or the reverse): its choices are not routed."""


@dataclass(frozen=True, slots=True)
class ObserveResult:
    """What one outcome did: learned or not, drift, the version it caused to be published, if any.

    ``safety`` holds the arm exclusions and re-openings the outcome caused (journal it);
    ``gate`` the shadow go-live check it triggered, and ``went_live`` whether that check passed.
    """

    learned: bool
    drift_detected: bool
    rolled_back: bool
    published: RouterPolicy | None
    safety: ArmSafetyEvent | None
    gate: ShadowEvaluation | None
    went_live: bool


class SymbolTunerState(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A tuner's own state (the learner's is saved by ``tuner.state``): versions, counters, baselines, and the
    waiting drift of a tuner learning against the route-end mid (``None`` in states saved before it was kept: it
    then starts at zero; a tuner learning the journaled cost keeps the one it loaded, for a return to route_end),
    and the costs in the rollback window of a version on probation (``None`` in states saved before it was kept:
    the window then starts empty; a restart used to, so a rollback a kill cut off waited for a whole window)."""

    policy: RouterPolicy
    last_good: RouterPolicy | None
    last_good_cost_bps: float | None
    on_probation: bool
    outcomes_since_publish: int
    outcomes_since_review: int
    period: PeriodStats
    mode: TunerMode
    shadow_outcomes: int
    shadow: ShadowState
    budget: BudgetState
    safety: SafetyState
    waiting_drift: WaitingDriftState | None = None
    rollback_costs: list[float] | None = None


@dataclass(frozen=True, slots=True)
class DecisionOptions:
    """What a live decision may choose among until the tuner's state next changes.

    ``affordable``: the arms the learner picks from; ``exploit`` and ``priced``: the budget's exploited arm
    and the learner's posterior costs (``None`` unless it prices untried arms), which the outcome's charge
    reuses; ``safety_fallback``: the safety bounds left no allowed arm (the published arm stands in);
    ``budget_blocked``: the budget removed arms.
    """

    affordable: tuple[str, ...]
    exploit: str
    priced: dict[str, float] | None
    safety_fallback: bool
    budget_blocked: bool


@dataclass(frozen=True, slots=True)
class PublishRule:
    """When to consider a new version: every ``every_n_outcomes`` or on ``min_improvement_bps`` gain."""

    every_n_outcomes: int
    min_improvement_bps: float

    def __post_init__(self) -> None:
        if self.every_n_outcomes < 1:
            raise ValueError(f"every_n_outcomes must be >= 1, got {self.every_n_outcomes}")
        if not (math.isfinite(self.min_improvement_bps) and self.min_improvement_bps > 0):
            raise ValueError(f"min_improvement_bps must be finite and > 0, got {self.min_improvement_bps}")


class SymbolTuner:
    """Per-symbol learner, guardrails and published version; see the module docstring for the rules.

    Parameters
    ----------
    policy
        The version to start from (the static policy as version 0, or a restored version); its
        ``symbol`` is the tuner's symbol.
    bounds
        ``router.json`` policy bounds; every acting and published policy is validated against them.
    learner, guardrails, reward_filter
        Built by :mod:`tuner.factory` from ``tuner.json``; the learner's grid is the arm grid.
    publish_rule
        Schedule and significance of new versions.
    publisher
        Receives every new version (:class:`~tuner.service.publish.PolicyPublisher`).
    budget, safety, shadow
        Exploration budget, per-arm safety bounds and shadow monitor of this symbol.
    mode
        ``shadow`` (the champion acts) or ``live`` (this tuner's choices are routed).
    contract
        The symbol's contract spec (its ``strategy_config.json`` universe entry): the budget charges each
        order its USD notional, which on inverse contracts is contracts x USD per contract, not qty x price.
    taker_fee_bps
        The symbol's taker fee (``router.json`` ``sim_venue.fees`` of its market): with half the arrival spread, what
        crossing at an order's arrival costs, which the safety bounds weigh an arm's fallbacks against.
    reward_adjustment
        What is added to each cost before it is learned (markout charged, the mid's move to the route's end taken
        out and the waiting drift put back; ``tuner.json`` ``reward_markout_horizon_ms``, ``reward_mid``), or
        ``None`` to learn the journaled cost: :meth:`observe` then needs what the market did after each order.
    """

    def __init__(
        self,
        policy: RouterPolicy,
        *,
        bounds: PolicyBounds,
        learner: Learner,
        guardrails: Guardrails,
        reward_filter: RewardFilter,
        publish_rule: PublishRule,
        publisher: PolicyPublisher,
        budget: ExplorationBudget,
        safety: ArmSafety,
        shadow: ShadowMonitor,
        mode: TunerMode,
        contract: ContractSpec,
        taker_fee_bps: float,
        reward_adjustment: RewardAdjustment | None,
    ) -> None:
        if mode not in ("shadow", "live"):
            raise ValueError(f"mode must be 'shadow' or 'live', got {mode!r}")
        if shadow.symbol != policy.symbol:
            raise ValueError(f"shadow monitor of {shadow.symbol} given to the {policy.symbol} tuner")
        policy.validate(bounds)
        check_spec(contract, where=f"{policy.symbol} tuner")
        self.symbol = policy.symbol
        self._contract = contract
        self._taker_fee_bps = taker_fee_bps
        self._adjustment = reward_adjustment
        self._kept_drift: WaitingDriftState | None = None  # loaded while the journaled cost is learned: saved again
        self._bounds = bounds
        self._learner = learner
        self._grid: ArmGrid = learner.grid
        self._guardrails = guardrails
        self._reward_filter = reward_filter
        self._rule = publish_rule
        self._publisher = publisher
        self._drift = DriftMonitor.from_guardrails(guardrails, learner)
        self._in_bounds = allowed_arm_ids(self._grid, guardrails, None)
        self._in_bounds_set = frozenset(self._in_bounds)
        self._off_grid = 0
        self._last_good: RouterPolicy | None = None
        self._last_good_cost_bps: float | None = None
        self._rollback: RollbackMonitor | None = None
        self._outcomes_since_publish = 0
        self._outcomes_since_review = 0
        self._period = PeriodStats.empty()
        self._estimate_cache: dict[str, float] | None = None
        self._budget = budget
        self._safety = safety
        self._shadow = shadow
        self._mode: TunerMode = mode
        self._shadow_outcomes = 0
        self._safety_fallbacks = 0
        self._safety_changes: Counter[str] = Counter()
        self._options: DecisionOptions | None = None
        self._arm_policies: dict[str, RouterPolicy] = {}
        self._acting: dict[tuple[str, float], RouterPolicy] = {}
        self._set_policy(policy)

    # --- the two verbs ---------------------------------------------------------------------------

    def decide(self, context: Context | None) -> RouterPolicy:
        """The policy to route one order with: the published version carrying the learner's arm.

        ``context`` is required by a contextual learner and ignored by the others. Raises
        :class:`ShadowModeError` in shadow mode: route with the champion and call :meth:`shadow`.
        """
        if self._mode != "live":
            raise ShadowModeError(f"{self.symbol} is in shadow mode: route with the champion and call shadow()")
        options = self._decision_options()
        self._safety_fallbacks += int(options.safety_fallback)
        self._budget.count_decision(options.budget_blocked)
        choice = self._learner.choose(context, options.affordable)
        key = (choice.arm.arm_id, choice.propensity)
        acting = self._acting.get(key)
        if acting is None:
            if len(self._acting) >= _ACTING_CACHE_SIZE:
                self._acting.clear()
            acting = self._acting[key] = self._arm_policy(choice.arm).with_propensity(choice.propensity)
        return acting

    def shadow(self, context: Context | None, acting: RouterPolicy, *, intent_id: str,
               ts_ns: int) -> ShadowDecision:
        """What the learner would route for this order, beside ``acting`` (which the caller routes, unchanged).

        The proposal is chosen among the arms the guardrails and safety bounds allow (no budget: a
        shadow proposal spends nothing); journal the returned record. Raises :class:`ShadowModeError`
        when the tuner is live.
        """
        if self._mode != "shadow":
            raise ShadowModeError(f"{self.symbol} is live: its own decide() routes")
        choosable, fallback = self._choosable()
        self._safety_fallbacks += int(fallback)
        proposal: Choice = self._learner.choose(context, choosable)
        return self._shadow.record(proposal, acting, learner=self._learner.kind, intent_id=intent_id, ts_ns=ts_ns)

    def go_live(self) -> None:
        """Switch from shadow to live: from the next order this tuner's choices are routed.

        The period counters restart, so the first live version's metrics are live ones only.
        """
        if self._mode == "live":
            raise ShadowModeError(f"{self.symbol} is live already")
        self._mode = "live"
        self._options = None
        self._period = PeriodStats.empty()
        self._outcomes_since_review = 0

    def evaluate_shadow(self, candidate_arm: str | None = None) -> ShadowEvaluation:
        """The go-live gate now: agreement and the OPE value of ``candidate_arm`` on the recent log.

        ``None`` scores the learner's best arm, the one the automatic gate uses.
        """
        return self._shadow.evaluate(self.best_arm_id() if candidate_arm is None else candidate_arm)

    def observe(self, event: RouterEvent, context: Context | None,
                after: MarketAfter | None = None) -> ObserveResult:
        """Learn from one routed order (with the context it was decided in) and publish when due.

        ``after``, what the market did after the order's arrival, adjusts the cost learned when the tuner adjusts
        its reward (``reward_adjustment``), and is required then for a filled order; it is ignored otherwise.
        Raises ``ValueError`` for another symbol's event or an event whose arm id does not match its
        knobs. A publisher error propagates; the outcome is learned already and the version is
        considered again on the next outcome. A live tuner then prepares the next decision's options.
        """
        try:
            result = self._learn(event, context, after)
        finally:
            self._options = None  # the outcome may have moved what the next decision can choose
        if self._mode == "live":
            self._options = self._prepare_options()
        return result

    def _learn(self, event: RouterEvent, context: Context | None, after: MarketAfter | None) -> ObserveResult:
        if event.symbol != self.symbol:
            raise ValueError(f"{self.symbol} tuner got an event of {event.symbol} ({event.intent_id})")
        arm_id = self._learnable_arm(event)
        adjustment_bps = None if self._adjustment is None else self._adjustment.adjust(self.symbol, event, after)
        self._period.add_event(event)
        if arm_id is None:
            self._off_grid += 1
            return _nothing_learned()
        changes: list[ArmSafetyChange] = []
        if self._mode == "live":
            options = self._decision_options()
            self._budget.charge(arm_id, options.exploit, options.priced,
                                notional_usd=notional_usd(self._contract, event.arrival_mid, event.qty),
                                ts_ns=event.finished_ts_ns)
        else:
            self._shadow.add_event(event)
        reward = self._reward_filter.reward_from_event(event)
        if reward is not None and adjustment_bps is not None:
            reward -= adjustment_bps
        slippage_bps = event.slippage_bps if reward is not None and event.slippage_bps is not None else None
        outcome = route_outcome(event, self._policy.maker_ttl_ms)
        excluded = self._safety.observe_outcome(arm_id, used_fallback=event.used_fallback, slippage_bps=slippage_bps,
                                                cost_bps=-reward if reward is not None else None,
                                                maker_filled=outcome.maker_filled if outcome.started_maker else None,
                                                crossing_cost_bps=self._crossing_cost_bps(event))
        if excluded is not None:
            changes.append(excluded)
        changes.extend(self._safety.reopen_due())
        if reward is None:
            return dataclasses.replace(_nothing_learned(), safety=self._safety_event(event, changes))
        drift = self._drift.observe(arm_id, reward, context, outcome)
        if drift:
            changes.extend(self._safety.reopen_all())
        self._learner.update(arm_id, reward, context, outcome)
        self._refresh_estimate(arm_id, drift)
        cost_bps = -reward
        self._budget.record_cost(arm_id, cost_bps)
        self._period.add_learned(arm_id, cost_bps, context)
        safety = self._safety_event(event, changes)
        if self._mode == "shadow":
            return self._observe_shadow(drift, safety)
        self._outcomes_since_publish += 1
        self._outcomes_since_review += 1
        if self._rollback is not None and self._rollback.observe(cost_bps):
            return ObserveResult(learned=True, drift_detected=drift, rolled_back=True, published=self._roll_back(),
                                 safety=safety, gate=None, went_live=False)
        return ObserveResult(learned=True, drift_detected=drift, rolled_back=False, published=self._maybe_publish(),
                             safety=safety, gate=None, went_live=False)

    def _crossing_cost_bps(self, event: RouterEvent) -> float | None:
        """What taking at the order's arrival would have cost: the taker fee and half the arrival spread (None when
        the arrival book is not a two-sided one)."""
        bid, ask, mid = event.arrival_bid, event.arrival_ask, event.arrival_mid
        if not (0.0 < bid <= ask and mid > 0.0 and math.isfinite(ask)):
            return None
        crossing = self._taker_fee_bps + (ask - bid) / (2.0 * mid) * 1e4
        return crossing if math.isfinite(crossing) else None

    # --- read-only views -------------------------------------------------------------------------

    @property
    def mode(self) -> TunerMode:
        return self._mode

    @property
    def agreement(self) -> float | None:
        """Shadow agreement over the last window of proposals (``None`` before the first)."""
        return self._shadow.agreement

    @property
    def excluded_arms(self) -> dict[str, ArmSafetyChange]:
        """Arms the safety bounds exclude now, each with its reason, limit and observed value."""
        return self._safety.excluded

    @property
    def safety_changes(self) -> dict[str, int]:
        """Arm exclusions and re-openings since start, by kind (``excluded``, ``reopened:reprobe``, ...)."""
        return dict(self._safety_changes)

    @property
    def safety_fallbacks(self) -> int:
        """Choices made on the published arm because the safety bounds excluded every allowed arm."""
        return self._safety_fallbacks

    def budget_report(self) -> BudgetReport:
        """The exploration budget: caps, charged bps per order and USD today, how often it bound."""
        return self._budget.report()

    def exploit_arm_id(self) -> str:
        """The arm the budget treats as exploitation now (its charge is zero)."""
        return self._decision_options().exploit

    def best_arm_id(self) -> str:
        """The learner's best in-bounds arm by expected reward (the published arm before any evidence)."""
        estimates = self._estimates()
        return max(estimates, key=estimates.__getitem__) if estimates else self._current_arm.arm_id

    @property
    def policy(self) -> RouterPolicy:
        """The published version the tuner explores around (propensity 1.0: its default arm)."""
        return self._policy

    @property
    def learner(self) -> Learner:
        return self._learner

    @property
    def allowed_arm_ids(self) -> tuple[str, ...]:
        """Arms :meth:`decide` may choose now: inside the bounds, within one step of the published arm."""
        return self._allowed

    @property
    def rejections(self) -> dict[str, int]:
        """Outcomes not learned, by reason: the reward filter's plus ``off_grid`` (arm not in the grid)."""
        out = dict(self._reward_filter.rejections)
        if self._off_grid:
            out["off_grid"] = self._off_grid
        return out

    @property
    def drifts_detected(self) -> int:
        return self._drift.drifts_detected

    @property
    def waiting_drift_bps_per_s(self) -> float | None:
        """The mid's learned drift against this symbol's orders per second waited (``reward_mid`` ``route_end``;
        ``None`` when the journaled cost is learned): how much the strategy's intents know of the price."""
        if self._adjustment is None or not self._adjustment.to_route_end:
            return None
        return self._adjustment.drift.rate_bps_per_s

    @property
    def outcomes_since_publish(self) -> int:
        return self._outcomes_since_publish

    # --- persistence -----------------------------------------------------------------------------

    def to_state(self) -> SymbolTunerState:
        """The tuner's own state, with its rollback window's costs; the drift windows are not kept (they warm up
        again)."""
        return SymbolTunerState(
            policy=self._policy, last_good=self._last_good, last_good_cost_bps=self._last_good_cost_bps,
            on_probation=self._rollback is not None,
            outcomes_since_publish=self._outcomes_since_publish,
            outcomes_since_review=self._outcomes_since_review,
            period=msgspec.structs.replace(self._period, pulls=dict(self._period.pulls),
                                           context_sums=list(self._period.context_sums)),
            mode=self._mode, shadow_outcomes=self._shadow_outcomes,
            shadow=_copy(self._shadow.state, ShadowState),
            budget=_copy(self._budget.state, BudgetState),
            safety=_copy(self._safety.state, SafetyState),
            waiting_drift=self._kept_drift if self._adjustment is None else self._adjustment.drift.state,
            rollback_costs=None if self._rollback is None else list(self._rollback.costs),
        )

    def load_state(self, state: SymbolTunerState) -> None:
        """Continue from ``state`` (saved by :meth:`to_state` for the same symbol and bounds)."""
        for policy in (state.policy, state.last_good):
            if policy is not None:
                if policy.symbol != self.symbol:
                    raise ValueError(f"{self.symbol} tuner cannot load a state of {policy.symbol}")
                policy.validate(self._bounds)
        if (state.last_good is None) != (state.last_good_cost_bps is None):
            raise ValueError(f"{self.symbol}: last good version and its cost must be saved together")
        if state.on_probation and state.last_good_cost_bps is None:
            raise ValueError(f"{self.symbol}: a version on probation needs a last good version to return to")
        self._set_policy(state.policy)
        self._last_good = state.last_good
        self._last_good_cost_bps = state.last_good_cost_bps
        self._rollback = (RollbackMonitor.from_guardrails(self._guardrails, state.last_good_cost_bps)
                          if state.on_probation and state.last_good_cost_bps is not None else None)
        if self._rollback is not None and state.rollback_costs:
            self._rollback.restore(state.rollback_costs)
        self._outcomes_since_publish = state.outcomes_since_publish
        self._outcomes_since_review = state.outcomes_since_review
        self._period = msgspec.structs.replace(state.period, pulls=dict(state.period.pulls),
                                               context_sums=list(state.period.context_sums))
        self._estimate_cache = None
        self._options = None
        self._mode = state.mode  # the saved mode wins over the configured start mode: going live is one-way
        self._shadow_outcomes = state.shadow_outcomes
        self._shadow = ShadowMonitor(self.symbol, self._shadow.rule, self._shadow.ope_config, seed=self._shadow.seed,
                                     state=_copy(state.shadow, ShadowState))
        self._budget = ExplorationBudget(self._budget.limits, _copy(state.budget, BudgetState))
        self._safety = ArmSafety(self._safety.limits, _copy(state.safety, SafetyState))
        if self._adjustment is None:
            self._kept_drift = state.waiting_drift  # a run learning the journaled cost must not erase it
        else:
            self._adjustment.drift = WaitingDrift(self._adjustment.drift.window, state.waiting_drift)

    # --- internals -------------------------------------------------------------------------------

    def _choosable(self) -> tuple[tuple[str, ...], bool]:
        """Allowed arms the safety bounds leave, or a stand-in alone (and True) when they leave none."""
        choosable = self._safety.choosable(self._allowed)
        if choosable:
            return choosable, False
        return (self._stand_in_arm_id(),), True

    def _stand_in_arm_id(self) -> str:
        """The published arm, or while the published policy is off the grid (the static policy of a grid without
        its offset, before the first version) the allowed arm nearest it: the learner chooses among grid arms only
        (the static arm made every decision a KeyError once safety had excluded the allowed arms)."""
        current = self._current_arm
        if current.arm_id in self._grid:
            return current.arm_id
        return min(self._allowed, key=lambda arm_id: _distance(self._grid.get(arm_id), current))

    def _decision_options(self) -> DecisionOptions:
        """The options of the next decision: kept since the last change of state, else prepared now."""
        if self._options is None:
            self._options = self._prepare_options()
        return self._options

    def _prepare_options(self) -> DecisionOptions:
        choosable, fallback = self._choosable()
        priced = self._posterior_costs()
        exploit = self._budget.exploit_arm(choosable, self._current_arm.arm_id, priced)
        affordable = self._budget.affordable(choosable, exploit, priced)
        return DecisionOptions(affordable=affordable, exploit=exploit, priced=priced, safety_fallback=fallback,
                               budget_blocked=len(affordable) < len(choosable))

    def _arm_policy(self, arm: Arm) -> RouterPolicy:
        """The published version carrying ``arm`` (propensity 1.0), validated once per version."""
        policy = self._arm_policies.get(arm.arm_id)
        if policy is None:
            policy = dataclasses.replace(self._policy, arm=arm.arm_id, maker_offset_bps=arm.maker_offset_bps,
                                         taker_bias=arm.taker_bias, propensity=1.0).validate(self._bounds)
            self._arm_policies[arm.arm_id] = policy
        return policy

    def _posterior_costs(self) -> dict[str, float] | None:
        """Expected cost of every in-bounds arm under a learner that prices untried arms (else ``None``):
        the budget then charges exploring by what it is expected to cost, not by a flat bound."""
        if not self._learner.prices_untried_arms:
            return None
        return {arm_id: -value for arm_id, value in self._compute_estimates(None, require_evidence=False).items()}

    def _safety_event(self, event: RouterEvent, changes: list[ArmSafetyChange]) -> ArmSafetyEvent | None:
        if not changes:
            return None
        self._safety_changes.update(c.action if c.action == "excluded" else f"{c.action}:{c.reason}" for c in changes)
        return ArmSafetyEvent(schema_version=SCHEMA_VERSION, intent_id=event.intent_id, symbol=self.symbol,
                              ts_ns=event.finished_ts_ns, changes=tuple(changes))

    def _observe_shadow(self, drift: bool, safety: ArmSafetyEvent | None) -> ObserveResult:
        """After a learned outcome in shadow mode: no publishing, no rollback; the go-live gate when due."""
        self._shadow_outcomes += 1
        gate = None
        if self._shadow.gate_due(self._shadow_outcomes):
            gate = self.evaluate_shadow()
            if gate.passes:
                self.go_live()
        return ObserveResult(learned=True, drift_detected=drift, rolled_back=False, published=None, safety=safety,
                             gate=gate, went_live=gate is not None and gate.passes)

    def _set_policy(self, policy: RouterPolicy) -> None:
        self._policy = policy
        self._current_arm = Arm(policy.maker_offset_bps, policy.taker_bias)
        # a learner whose exploration the budget prices by its own posterior explores every in-bounds arm
        # (the budget bounds what that costs); the others explore within one step of the published arm
        near = None if self._learner.prices_untried_arms else self._current_arm
        self._allowed = allowed_arm_ids(self._grid, self._guardrails, near)
        self._options = None
        self._arm_policies = {}
        self._acting = {}
        for arm_id in self._in_bounds:
            self._arm_policy(self._grid.get(arm_id))

    def _learnable_arm(self, event: RouterEvent) -> str | None:
        arm_id = arm_id_of(event.maker_offset_bps, event.taker_bias)
        if event.arm not in (arm_id, STATIC_ARM):
            raise ValueError(f"{self.symbol} event {event.intent_id}: arm {event.arm!r} does not match its "
                             f"knobs (maker_offset_bps={event.maker_offset_bps}, taker_bias={event.taker_bias})")
        return arm_id if arm_id in self._grid else None

    def _estimates(self) -> dict[str, float]:
        """Expected reward of every in-bounds arm with evidence (contextual: at the period's mean context).

        A non-contextual learner's estimates are cached: refreshed per arm when an update changes only the
        updated arm's estimate, all of them after a drift discount or when the learner prices every arm from
        one shared model (an outcome at one offset moves its neighbours); a contextual learner's estimates
        move with the mean context and are recomputed.
        """
        if not self._learner.requires_context:
            if self._estimate_cache is None:
                self._estimate_cache = self._compute_estimates(None)
            return self._estimate_cache
        context = self._period.mean_context()
        return {} if context is None else self._compute_estimates(context)

    def _compute_estimates(self, context: Context | None, *, require_evidence: bool = True) -> dict[str, float]:
        return self._learner.expected_rewards(self._in_bounds, context, with_evidence=require_evidence)

    def _refresh_estimate(self, arm_id: str, drift: bool) -> None:
        if drift or self._learner.prices_untried_arms:
            self._estimate_cache = None
        elif self._estimate_cache is not None and arm_id in self._in_bounds_set:
            value = self._learner.expected_reward(arm_id, None)
            if value is not None:
                self._estimate_cache[arm_id] = value

    def _maybe_publish(self) -> RouterPolicy | None:
        if self._outcomes_since_publish < self._guardrails.min_outcomes_before_move:
            return None
        estimates = self._estimates()
        if not estimates:
            return None
        best_id = max(estimates, key=estimates.__getitem__)
        current = estimates.get(self._current_arm.arm_id)
        reason: PublishReason | None = None
        if self._outcomes_since_review >= self._rule.every_n_outcomes:
            reason = "schedule"
            self._outcomes_since_review = 0
        elif current is not None and estimates[best_id] - current >= self._rule.min_improvement_bps:
            reason = "significant_change"
        if reason is None:
            return None
        decision = should_publish(self._current_arm, self._grid.get(best_id), self._outcomes_since_publish,
                                  self._grid, self._guardrails)
        if not decision.publish:
            return None
        return self._publish(decision.arm, decision.arm.arm_id, reason, estimates)

    def _roll_back(self) -> RouterPolicy:
        if self._last_good is None:
            raise RuntimeError(f"{self.symbol}: rollback monitor active without a last good version")
        target = self._last_good
        arm = Arm(target.maker_offset_bps, target.taker_bias)
        return self._publish(arm, target.arm, "rollback", self._estimates())

    def _publish(self, arm: Arm, arm_label: str, reason: PublishReason, estimates: dict[str, float]) -> RouterPolicy:
        new = self._policy.with_arm(arm_label, maker_offset_bps=arm.maker_offset_bps, taker_bias=arm.taker_bias,
                                    propensity=1.0, version=self._policy.version + 1).validate(self._bounds)
        record = PolicyRecord(policy=new, reason=reason, previous_version=self._policy.version,
                              learner=self._learner.kind, learner_params=self._learner.params(), grid=self._grid,
                              guardrails=self._guardrails, metrics=self._metrics(arm, estimates), previous=self._policy)
        rolling_back = reason == "rollback"
        adopted = self._publisher.publish(record)
        if adopted is not None:  # the registry's version, published by a killed run of this tuner, stands
            new, reason = self._adopted(adopted.policy, new), adopted.reason
        if reason == "rollback":
            self._last_good, self._last_good_cost_bps, self._rollback = None, None, None
        else:
            # the outgoing version is not a good one to return to when this tuner was rolling back from it
            if not rolling_back and (self._rollback is None or self._rollback.live_mean_cost_bps is not None):
                # the outgoing version proved itself (initial, restored by a rollback, or a full clean window)
                self._last_good, self._last_good_cost_bps = self._policy, self._period.mean_cost_bps
            if self._last_good_cost_bps is not None:
                self._rollback = RollbackMonitor.from_guardrails(self._guardrails, self._last_good_cost_bps)
        self._set_policy(new)
        self._outcomes_since_publish = 0
        self._outcomes_since_review = 0
        self._period = PeriodStats.empty()
        return new

    def _adopted(self, registered: RouterPolicy, derived: RouterPolicy) -> RouterPolicy:
        """``registered``, the version the publisher adopted in place of ``derived``, checked to be one this tuner
        could have published: its symbol and number, inside the bounds. The rollback monitor then watches it as the
        version that acts (:meth:`_publish`), and the next version is its number + 1."""
        if (registered.symbol, registered.version) != (self.symbol, derived.version):
            raise ValueError(f"{self.symbol}: the publisher adopted {registered.symbol} version {registered.version} "
                             f"in place of version {derived.version}")
        return dataclasses.replace(registered, propensity=1.0).validate(self._bounds)

    def _metrics(self, arm: Arm, estimates: dict[str, float]) -> VersionMetrics:
        period = self._period
        best = max(estimates.values()) if estimates else math.nan
        pulled = [(estimates[a], n) for a, n in period.pulls.items() if a in estimates]
        n_pulled = sum(n for _, n in pulled)
        regret = sum((best - value) * n for value, n in pulled) / n_pulled if n_pulled else math.nan
        expected = estimates.get(arm.arm_id)
        return VersionMetrics(
            outcomes=period.learned, events=period.events,
            learned_cost_bps=period.mean_cost_bps if period.mean_cost_bps is not None else math.nan,
            maker_ratio=period.maker_ratio, fallback_ratio=period.fallback_ratio, regret_bps=regret,
            expected_cost_bps=-expected if expected is not None else math.nan,
        )


def _nothing_learned() -> ObserveResult:
    return ObserveResult(learned=False, drift_detected=False, rolled_back=False, published=None, safety=None,
                         gate=None, went_live=False)


def _copy(state: msgspec.Struct, kind: type[_S]) -> _S:
    """A deep copy of a saved sub-state, so the tuner never mutates the struct it was given."""
    return msgspec.json.decode(msgspec.json.encode(state), type=kind)


def route_outcome(event: RouterEvent, ttl_ms: float) -> RouteOutcome:
    """How ``event``'s order ended, for a learner that splits cost by it: a maker start, whether the post-only leg
    filled it all (no taker fallback), and when the first post (no re-price) did, the share of the ``ttl_ms`` it
    waited (a fill stamped before the arrival, the venue's clock ahead of ours, counts as waiting 0)."""
    maker_filled = event.started_maker and event.is_maker_final and not event.used_fallback
    wait = None
    if maker_filled and event.reprice_count == 0 and event.time_to_fill_ms is not None and ttl_ms > 0.0:
        wait = min(max(event.time_to_fill_ms / ttl_ms, 0.0), 1.0)
    return RouteOutcome(started_maker=event.started_maker, maker_filled=maker_filled, fill_wait_share=wait)


def _distance(arm: Arm, target: Arm) -> tuple[float, float, float]:
    """How far ``arm`` is from ``target``: taker bias first, then offset (the nearer the touch on a tie)."""
    return abs(arm.taker_bias - target.taker_bias), abs(arm.maker_offset_bps - target.maker_offset_bps), \
        abs(arm.maker_offset_bps)
