"""The main job's shadow scenario: the tuner watches an exploring champion, goes live, then acts itself.

On one symbol the acting champion is the static policy mixed with a configured share of uniform
exploration over the arms the tuner may choose from the static policy (``router.json``
``simulation.shadow_scenario``), each decision logged with its propensity. Why explore: a champion
that always takes one arm teaches the shadow learner nothing about the arms it proposes, so agreement
stays near zero and OPE cannot score any other arm (no support). The exploration is drawn per intent
from its own seeded stream, so the champion takes the same arm for the same intent in every run.

The scenario drives :class:`~tuner.service.tuner_service.TunerService` exactly as the live loop does: in shadow mode
the champion's policy is routed and ``service.shadow`` journals the learner's proposal; every outcome
is observed (``res.gate`` is the go-live check, ``res.went_live`` the automatic switch). When the gate
has not passed after ``command_go_live_after_share`` of the orders, the go-live command switches it, the
gate evaluated at that moment being what the report calls the OPE value at go-live. From then on the
same tuner's ``decide`` routes. A champion-only run on the same intents is the proof that shadow mode
sends exactly what the champion alone sends, and the champion's cost on the live phase's orders.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import msgspec
import numpy as np

from router_tuner.config.models import ConfigBundle, RouterConfig, TunerConfig
from router_tuner.router.events import ArmSafetyEvent, RouterEvent, ShadowDecision
from router_tuner.router.policy import RouterPolicy
from router_tuner.router.routing.order import RouteOrder
from router_tuner.simulation.intents import SimIntent
from router_tuner.simulation.markets import SimMarket
from router_tuner.simulation.results import PolicySummary, as_cost, summarize
from router_tuner.simulation.runner import (
    PolicyRun,
    intent_index,
    intent_seed,
    market_after,
    replay_of,
    route_intents,
)
from router_tuner.tuner.arms import Arm, arm_id_of
from router_tuner.tuner.budget import BudgetReport
from router_tuner.tuner.factory import build_grid, build_guardrails
from router_tuner.tuner.guardrails import allowed_arm_ids
from router_tuner.tuner.ope.bootstrap import BootstrapConfig
from router_tuner.tuner.service.publish import InMemoryPublisher
from router_tuner.tuner.service.tuner_service import TunerService
from router_tuner.tuner.shadow import ShadowEvaluation, with_shadow_symbols

CHAMPION = "champion"
SHADOW_PREFIX = "shadow:"
CHAMPION_STREAM = 1
"""Extra seed word of the champion's exploration draws: a stream apart from the route's maker/taker draw."""

GoLiveBy = Literal["gate", "command"]


class ExploringChampion:
    """The static policy, mixed with ``explore_share`` uniform exploration over ``explore_arms``.

    ``propensity`` is the exact probability of the arm taken: ``(1 - share) + share / K`` for the static
    arm when it is among the K explored arms, ``share / K`` for another explored arm. Arms are labelled
    with their grid id (not ``static``) so OPE sees one action per set of knobs.

    Examples
    --------
    >>> from router_tuner.config.loader import load_config
    >>> config = load_config()
    >>> champ = ExploringChampion("BTCUSDT", config.router, [Arm(1.0, 0.0), Arm(2.0, 0.0)], 0.2, seed=1)
    >>> sorted({(p.arm, round(p.propensity, 2)) for p in (champ.decide(i) for i in range(200))})
    [('o1.00_b0.00', 0.9), ('o2.00_b0.00', 0.1)]
    """

    def __init__(self, symbol: str, router: RouterConfig, explore_arms: Sequence[Arm], explore_share: float, *,
                 seed: int) -> None:
        if not 0.0 < explore_share < 1.0:
            raise ValueError(f"explore_share must be in (0, 1), got {explore_share!r}")
        if not explore_arms:
            raise ValueError("an exploring champion needs at least one arm to explore")
        self._base = RouterPolicy.from_static(symbol, router, policy_id=f"{CHAMPION}-{symbol}")
        self._bounds = router.policy_bounds
        self._arms = tuple(explore_arms)
        self._share = explore_share
        self._seed = seed
        self.symbol = symbol
        self.static_arm = Arm(self._base.maker_offset_bps, self._base.taker_bias)

    def propensity(self, arm: Arm) -> float:
        """Probability that one decision takes ``arm``."""
        explore = self._share / len(self._arms) if arm in self._arms else 0.0
        return explore + (1.0 - self._share if arm == self.static_arm else 0.0)

    def decide(self, index: int) -> RouterPolicy:
        """The champion's policy for intent ``index`` (the same draw in every run of this seed)."""
        rng = np.random.default_rng([*intent_seed(self._seed, self.symbol, index), CHAMPION_STREAM])
        arm = self._arms[int(rng.integers(len(self._arms)))] if rng.random() < self._share else self.static_arm
        return dataclasses.replace(self._base, arm=arm_id_of(arm.maker_offset_bps, arm.taker_bias),
                                   maker_offset_bps=arm.maker_offset_bps, taker_bias=arm.taker_bias,
                                   propensity=self.propensity(arm)).validate(self._bounds)


def champion_for(symbol: str, config: ConfigBundle, *, seed: int) -> ExploringChampion:
    """The scenario's champion: exploring the arms the tuner may choose from the static policy."""
    grid = build_grid(config.tuner, config.router)
    static = config.router.static_policy
    neighbours = allowed_arm_ids(grid, build_guardrails(config.tuner, config.router),
                                 Arm(static.maker_offset_bps, static.taker_bias))
    return ExploringChampion(symbol, config.router, [grid.get(a) for a in neighbours],
                             config.router.simulation.shadow_scenario.champion_explore_share, seed=seed)


@dataclass(frozen=True, slots=True)
class GateCheck:
    """One go-live check, after ``after_orders`` orders of the scenario had been routed."""

    after_orders: int
    evaluation: ShadowEvaluation


@dataclass(frozen=True, slots=True)
class ShadowScenario:
    """Everything one symbol's shadow-then-live run did.

    ``run`` holds every order the scenario routed (intent order); the first ``shadow_orders`` in
    arrival order were routed by the champion (``shadow_intents`` are their intent indices), the rest
    by the tuner. ``untouched_intents`` are the shadow-phase intents whose route ended before any live-phase
    route started on its replay: up to then the scenario and the champion-only run made the same venue calls,
    so these must match exactly (with the concurrent engine a shadow route still working when the tuner's
    first route starts shares the replay with it and may end differently). ``at_go_live`` is the gate
    evaluated when the switch happened (the passing check, or the check made just before the command); all three
    are ``None`` when the tuner never went live.
    """

    symbol: str
    learner: str
    run: PolicyRun
    champion_run: PolicyRun
    decisions: tuple[ShadowDecision, ...]
    safety_events: tuple[ArmSafetyEvent, ...]
    gate_checks: tuple[GateCheck, ...]
    shadow_intents: frozenset[int]
    untouched_intents: frozenset[int]
    went_live_by: GoLiveBy | None
    at_go_live: ShadowEvaluation | None
    versions_published: int
    agreement_window: int
    min_agreement: float
    gate_estimator: str
    budget: BudgetReport
    champion_explore_share: float
    command_go_live_after_orders: int | None

    @property
    def shadow_orders(self) -> int:
        return len(self.shadow_intents)

    def phase_events(self, run: PolicyRun, *, live: bool) -> tuple[RouterEvent, ...]:
        """``run``'s events on the live phase's intents (``live``) or the shadow phase's."""
        return tuple(e for e in run.events if (intent_index(e) in self.shadow_intents) != live)


class _Driver:
    """The scenario's decide/observe pair: shadow mode with the champion acting, then the tuner live."""

    def __init__(self, market: SimMarket, service: TunerService, champion: ExploringChampion,
                 command_after: int | None, tuner: TunerConfig):
        self.market = market
        self.tuner_config = tuner
        self.symbol = market.symbol
        self.service = service
        self.champion = champion
        self.command_after = command_after
        self.routed = 0
        self.decisions: list[ShadowDecision] = []
        self.safety: list[ArmSafetyEvent] = []
        self.gates: list[GateCheck] = []
        self.shadow_intents: set[int] = set()
        self.went_live_by: GoLiveBy | None = None
        self.at_go_live: ShadowEvaluation | None = None

    def decide(self, intent: SimIntent, order: RouteOrder, now_ns: int) -> RouterPolicy:
        if self.service.mode(self.symbol) == "shadow" and self.command_after is not None \
                and self.routed >= self.command_after:
            self.at_go_live = self.service.evaluate_shadow(self.symbol)
            self.service.go_live(self.symbol)
            self.went_live_by = "command"
        if self.service.mode(self.symbol) == "live":
            return self.service.decide(self.symbol, intent.context)
        policy = self.champion.decide(intent.index)
        self.decisions.append(self.service.shadow(self.symbol, intent.context, policy, intent_id=order.intent_id,
                                                  ts_ns=now_ns))
        self.shadow_intents.add(intent.index)
        return policy

    def observe(self, intent: SimIntent, event: RouterEvent) -> None:
        result = self.service.observe(event, intent.context, market_after(self.market, event, self.tuner_config))
        self.routed += 1
        if result.safety is not None:
            self.safety.append(result.safety)
        if result.gate is not None:
            self.gates.append(GateCheck(after_orders=self.routed, evaluation=result.gate))
        if result.went_live:
            self.went_live_by, self.at_go_live = "gate", result.gate


def run_shadow_scenario(market: SimMarket, intents: Sequence[SimIntent], config: ConfigBundle, *, seed: int,
                        progress: Callable[[int], None] | None = None) -> ShadowScenario:
    """Route ``intents`` with the tuner in shadow mode, then live; and the champion alone on the same intents."""
    symbol = market.symbol
    scenario = config.router.simulation.shadow_scenario
    tuner = msgspec.structs.replace(config.tuner, seed=seed)
    bundle = with_shadow_symbols(msgspec.structs.replace(config, tuner=tuner), (symbol,))
    publisher = InMemoryPublisher()
    service = TunerService.from_config(bundle, [symbol], publisher, state_path=None,
                                       policy_name=f"{SHADOW_PREFIX}{tuner.learner}".replace(":", "-"))
    champion = champion_for(symbol, config, seed=seed)
    share = scenario.command_go_live_after_share
    driver = _Driver(market, service, champion, None if share is None else math.ceil(share * len(intents)),
                     config.tuner)
    run = route_intents(market, intents, f"{SHADOW_PREFIX}{tuner.learner}", decide=driver.decide,
                        observe=driver.observe, config=config, seed=seed, progress=progress)
    champion_run = route_intents(market, intents, CHAMPION,
                                 decide=lambda intent, order, now_ns: champion.decide(intent.index),
                                 observe=lambda intent, event: None, config=config, seed=seed, progress=progress)
    return ShadowScenario(
        symbol=symbol, learner=tuner.learner, run=run, champion_run=champion_run, decisions=tuple(driver.decisions),
        safety_events=tuple(driver.safety), gate_checks=tuple(driver.gates),
        shadow_intents=frozenset(driver.shadow_intents),
        untouched_intents=untouched_by_live(run, intents, driver.shadow_intents, config),
        went_live_by=driver.went_live_by,
        at_go_live=driver.at_go_live, versions_published=len(publisher.records),
        agreement_window=tuner.deployment.shadow.agreement_window,
        min_agreement=tuner.deployment.shadow.min_agreement, gate_estimator=tuner.deployment.gate_estimator,
        budget=service.budget_report(symbol), champion_explore_share=scenario.champion_explore_share,
        command_go_live_after_orders=driver.command_after)


def untouched_by_live(run: PolicyRun, intents: Sequence[SimIntent], shadow_intents: set[int],
                      config: ConfigBundle) -> frozenset[int]:
    """The shadow-phase intents of ``run`` whose route ended before the first live-phase route on the same
    replay started (every shadow intent when no live route shares its replay)."""
    replay = {intent.index: replay_of(intent, config) for intent in intents}
    first_live: dict[int, int] = {}
    for event in run.events:
        index = intent_index(event)
        if index not in shadow_intents:
            first_live[replay[index]] = min(first_live.get(replay[index], event.arrival_ts_ns), event.arrival_ts_ns)
    return frozenset(index for event in run.events if (index := intent_index(event)) in shadow_intents
                     and event.finished_ts_ns < first_live.get(replay[index], event.finished_ts_ns + 1))


def sent_fingerprint(event: RouterEvent) -> tuple[object, ...]:
    """What an order sent and got, without its intent id: side, qty, arm, knobs, propensity, route, fills."""
    fills = tuple((f.price, f.qty, f.liquidity, f.ts_ns, f.fee_usd) for f in event.fills)
    return (event.side, event.qty, event.arm, event.maker_offset_bps, event.taker_bias, event.propensity,
            event.started_maker, event.routed_as, event.outcome, event.reprice_count, event.cancel_count,
            event.post_only_reject_count, fills, event.avg_price, event.cost_bps, event.finished_ts_ns)


def shadow_phase_matches_champion(scenario: ShadowScenario) -> bool:
    """Whether every shadow-phase order the live phase left untouched (``ShadowScenario.untouched_intents``) sent
    and got exactly what the champion alone did on that intent, and the champion chose every shadow-phase arm."""
    champion = {intent_index(e): e for e in scenario.champion_run.events}
    shadow = [e for e in scenario.run.events if intent_index(e) in scenario.shadow_intents]
    return all((e.arm, e.propensity) == (champion[intent_index(e)].arm, champion[intent_index(e)].propensity)
               for e in shadow) \
        and all(sent_fingerprint(e) == sent_fingerprint(champion[intent_index(e)]) for e in shadow
                if intent_index(e) in scenario.untouched_intents)


def rolling_agreement(decisions: Sequence[ShadowDecision], window: int) -> np.ndarray:
    """Agreement over the last ``window`` proposals after each proposal (fewer at the start), as the gate sees it."""
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    agrees = np.array([d.agrees for d in decisions], dtype=float)
    sums = np.cumsum(agrees)
    lagged = np.concatenate([np.zeros(min(window, agrees.size)), sums[:-window]]) if agrees.size else sums
    return (sums - lagged) / np.minimum(np.arange(1, agrees.size + 1), window)


LIVE_PHASE = "learner_live"
CHAMPION_SAME_ORDERS = "champion_same_orders"
STATIC_SAME_ORDERS = "static_same_orders"
CHAMPION_ALL_ORDERS = "champion_all_orders"


def phase_run(run: PolicyRun, keep: Sequence[RouterEvent], name: str) -> PolicyRun:
    """``run`` restricted to the events in ``keep`` (markouts kept aligned), renamed ``name``."""
    wanted = {e.intent_id for e in keep}
    mask = np.array([e.intent_id in wanted for e in run.events], dtype=bool)
    return PolicyRun(symbol=run.symbol, policy=name, events=tuple(e for e in run.events if e.intent_id in wanted),
                     markout_bps=run.markout_bps[mask], late_starts=run.late_starts)


@dataclass(frozen=True, slots=True)
class ShadowOutcome:
    """A scenario and its costs: the learner's on the live phase's orders, beside the champion's and the
    static policy's on exactly those orders (and the champion's on all orders); empty when it never went live.
    """

    scenario: ShadowScenario
    summaries: dict[str, PolicySummary]
    matches_champion: bool

    def to_dict(self) -> dict[str, Any]:
        """The ``shadow`` block of one symbol in the JSON line (costs in bps, lower is better)."""
        s, budget = self.scenario, self.scenario.budget
        agreement = rolling_agreement(s.decisions, s.agreement_window)
        return {
            "learner": s.learner, "champion_explore_share": s.champion_explore_share,
            "command_go_live_after_orders": s.command_go_live_after_orders, "orders": len(s.run.events),
            "shadow_orders": s.shadow_orders, "shadow_orders_compared_with_champion": len(s.untouched_intents),
            "live_orders": len(s.run.events) - s.shadow_orders, "went_live_by": s.went_live_by,
            "went_live_after_orders": s.shadow_orders if s.went_live_by is not None else None,
            "agreement_window": s.agreement_window, "min_agreement": s.min_agreement,
            "agreement_at_go_live": float(agreement[-1]) if agreement.size else None,
            "agreement_overall": float(np.mean([d.agrees for d in s.decisions])) if s.decisions else None,
            "shadow_records": len(s.decisions), "safety_events": len(s.safety_events),
            "gate_estimator": s.gate_estimator, "gate_checks": [_gate_dict(g) for g in s.gate_checks],
            "at_go_live": None if s.at_go_live is None else _evaluation_dict(s.at_go_live),
            "costs": {name: _cost_dict(summary) for name, summary in self.summaries.items()},
            "versions_published_live": s.versions_published,
            "shadow_phase_matches_champion": self.matches_champion,
            "budget": {"orders": budget.orders, "charged_bps_per_order": budget.charged_bps_per_order,
                       "max_extra_cost_bps_per_order": budget.max_extra_cost_bps_per_order,
                       "charged_usd_today": budget.charged_usd_today,
                       "max_extra_cost_usd_per_day": budget.max_extra_cost_usd_per_day,
                       "blocked_decisions": budget.blocked_decisions},
        }


def _cost_dict(summary: PolicySummary) -> dict[str, Any]:
    return {"orders": summary.orders, "filled": summary.filled, "mean_cost_bps": summary.mean_cost_bps,
            "ci_low_bps": summary.cost_ci_low_bps, "ci_high_bps": summary.cost_ci_high_bps,
            "maker_ratio": summary.maker_ratio, "fallback_ratio": summary.fallback_ratio}


def _evaluation_dict(evaluation: ShadowEvaluation) -> dict[str, Any]:
    return {"candidate_arm": evaluation.candidate_arm, "agreement": evaluation.agreement,
            "passes": evaluation.passes, "reason": evaluation.reason,
            "estimate": None if evaluation.estimate is None else as_cost(evaluation.estimate),
            "acting": None if evaluation.acting_value is None else as_cost(evaluation.acting_value)}


def _gate_dict(check: GateCheck) -> dict[str, Any]:
    return {"after_orders": check.after_orders, **_evaluation_dict(check.evaluation)}


def shadow_outcome(scenario: ShadowScenario, static_run: PolicyRun, bootstrap: BootstrapConfig) -> ShadowOutcome:
    """Summarise ``scenario``: costs per phase with bootstrap intervals, and the shadow-phase identity check."""
    summaries = {CHAMPION_ALL_ORDERS: summarize(phase_run(scenario.champion_run, scenario.champion_run.events,
                                                          CHAMPION_ALL_ORDERS), bootstrap)}
    live = scenario.phase_events(scenario.run, live=True)
    if live:
        for name, run in ((LIVE_PHASE, scenario.run), (CHAMPION_SAME_ORDERS, scenario.champion_run),
                          (STATIC_SAME_ORDERS, static_run)):
            summaries[name] = summarize(phase_run(run, scenario.phase_events(run, live=True), name), bootstrap)
    return ShadowOutcome(scenario=scenario, summaries=summaries,
                         matches_champion=shadow_phase_matches_champion(scenario))
