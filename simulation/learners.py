"""The adaptive tuner inside the main job: one ``TunerService`` per learner, driven through ``PolicySource``.

Each learner named on the command line gets its own service (``tuner.json`` with ``learner`` and ``seed``
replaced), publishing into an :class:`InMemoryPublisher` while the simulation runs: MLflow stays off the
routing path, and the final versions are registered afterwards (``simulation.recording``). After a run the
learner's *greedy arm* (highest expected reward among arms it has evidence on; a contextual learner at the
mean arrival context) is the candidate that OPE scores on the learner's own log.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import get_args

import msgspec
import numpy as np

from router_tuner.config.loader import ConfigError
from router_tuner.config.models import ConfigBundle, LearnerName, TunerConfig
from router_tuner.router.events import RouterEvent
from router_tuner.router.policy import RouterPolicy
from router_tuner.simulation.markets import SimMarket
from router_tuner.simulation.policies import LEARNER_PREFIX
from router_tuner.simulation.runner import market_after
from router_tuner.tuner.factory import grid_issue, learner_problem, structured_prior_issue
from router_tuner.tuner.learners import Context, Learner
from router_tuner.tuner.service.publish import InMemoryPublisher
from router_tuner.tuner.service.tuner_service import TunerService

LEARNERS: tuple[str, ...] = get_args(LearnerName)
"""Every learner ``tuner.json`` can name (``config.models.LearnerName``), in the order the report shows them."""


def parse_learners(text: str) -> tuple[str, ...]:
    """``"thompson,ucb"`` -> ``("thompson", "ucb")``; unknown, empty or repeated names are an error."""
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    if not names:
        raise ValueError(f"no learner named in {text!r}; choose from {', '.join(LEARNERS)}")
    unknown = [n for n in names if n not in LEARNERS]
    if unknown:
        raise ValueError(f"unknown learner(s) {unknown}; choose from {', '.join(LEARNERS)}")
    if len(set(names)) != len(names):
        raise ValueError(f"learner named twice in {text!r}")
    return names


def refuse_unrunnable(config: ConfigBundle, learners: Sequence[str], symbols: Sequence[str] | None = None) -> None:
    """Raise ``ValueError`` naming each learner the configured arm grid cannot carry, before any market is loaded
    (robbins_monro without two maker offsets at taker bias 0 used to stop the run at its first order), and a
    structured prior that would never post on the markets of ``symbols`` (default: every universe symbol)."""
    if (grid := grid_issue(config)) is not None:  # the configuration's fault, whichever learners run
        raise ConfigError([grid])
    problems = [f"{learner}: {problem}" for learner in learners
                if (problem := learner_problem(config, learner)) is not None]
    if problems:
        raise ValueError(f"{'; '.join(problems)} (tuner.json arms): change the arms or leave the learner out")
    if "structured" in learners and (prior := structured_prior_issue(
            config, symbols or config.strategy.universe)) is not None:
        raise ValueError(f"structured: {prior}; or leave the learner out")


def unrunnable_reason(config: ConfigBundle, learner: str, symbols: Sequence[str] | None = None) -> str | None:
    """Why ``learner`` cannot run here, or None: the arm grid cannot carry it, or its structured prior would never
    post on the markets of ``symbols`` (default: every universe symbol). One learner's view of
    :func:`refuse_unrunnable`, for a run that uses a learner it was not asked for (the shadow scenario's)."""
    problem = learner_problem(config, learner)
    if problem is None and learner == "structured":
        prior = structured_prior_issue(config, symbols or config.strategy.universe)
        problem = None if prior is None else str(prior)
    return problem


def learner_policy_name(learner: str) -> str:
    """The report's name of a learner's policy (``learner:thompson``)."""
    return f"{LEARNER_PREFIX}{learner}"


class LearnerSource:
    """One symbol's tuner as a :class:`~simulation.policies.PolicySource`.

    When ``tuner.json`` adjusts the reward (markout charged, the mid's move to the route's end taken out), what the
    market did after each order's arrival is read from the replayed market and learned with it
    (:func:`~simulation.runner.market_after`). The learner sees a markout when the route ends rather than a
    horizon later (a replay knows the future mid): a live learner would learn it with that delay. The learner is told
    the market's tick (:meth:`~tuner.learners.base.Learner.set_tick_bps`), so a structured model knows where each
    offset rests.
    """

    def __init__(self, service: TunerService, market: SimMarket, tuner: TunerConfig) -> None:
        self._service = service
        self._market = market
        self._tuner = tuner
        service.tuner(market.symbol).learner.set_tick_bps(market.tick_bps())

    def decide(self, context: Context) -> RouterPolicy:
        return self._service.decide(self._market.symbol, context)

    def observe(self, event: RouterEvent, context: Context) -> None:
        self._service.observe(event, context, market_after(self._market, event, self._tuner))


@dataclass(frozen=True, slots=True)
class LearnerRun:
    """One learner's tuners over every simulated symbol and the versions they published."""

    learner: str
    service: TunerService
    publisher: InMemoryPublisher

    def source(self, market: SimMarket, tuner: TunerConfig) -> LearnerSource:
        return LearnerSource(self.service, market, tuner)


def merge_learner_runs(parts: Sequence[Sequence[LearnerRun]]) -> list[LearnerRun]:
    """One run per learner from per-symbol runs (each part: the learners of one or more other symbols, in the
    same order): the tuners side by side in one service, the published versions in part order."""
    if not parts:
        return []
    merged = []
    for column in zip(*parts, strict=True):
        publisher = InMemoryPublisher()
        for part in column:
            for record in part.publisher.records:
                publisher.publish(record)
        tuners = {symbol: part.service.tuner(symbol) for part in column for symbol in part.service.symbols}
        merged.append(LearnerRun(learner=column[0].learner, service=TunerService(tuners, state_path=None),
                                 publisher=publisher))
    return merged


def learner_runs(config: ConfigBundle, learners: Sequence[str], symbols: Sequence[str], seed: int) -> list[LearnerRun]:
    """A fresh service per learner over ``symbols``; the simulation seed replaces ``tuner.json`` ``seed``."""
    runs = []
    for learner in learners:
        tuner = msgspec.structs.replace(config.tuner, learner=learner, seed=seed)
        bundle = msgspec.structs.replace(config, tuner=tuner)
        publisher = InMemoryPublisher()
        # its own policy id (learner-thompson-BTCUSDT, as fixed-o1.00_b0.00-BTCUSDT): the learners journaled side
        # by side are scored apart with ope --logging-policy
        service = TunerService.from_config(bundle, symbols, publisher, state_path=None,
                                           policy_name=learner_policy_name(learner).replace(":", "-"))
        runs.append(LearnerRun(learner=learner, service=service, publisher=publisher))
    return runs


def mean_context(contexts: Sequence[Context]) -> Context:
    """Field-wise mean of arrival contexts (the point a contextual learner's greedy arm is read at)."""
    if not contexts:
        raise ValueError("no contexts to average")
    fields = ("spread_bps", "volatility_bps", "book_imbalance", "hour", "size_vs_touch")
    means = {name: float(np.mean([getattr(c, name) for c in contexts])) for name in fields}
    return Context(**means)


NO_GREEDY_ARM = "none (it learned nothing)"
"""How a report names the greedy arm of a learner without evidence (``LearnerOutcome.greedy_arm`` is ``None``)."""


def greedy_arm(learner: Learner, context: Context | None) -> str | None:
    """The arm with the highest expected reward among arms with evidence (ties: the first in grid order); ``None``
    when the learner learned nothing (no order's cost was accepted: e.g. no maker leg ever filled and the
    fallback cancels)."""
    counts = learner.counts()
    ctx = context if learner.requires_context else None
    best_id, best_value = None, -np.inf
    for arm_id in learner.grid.arm_ids:
        if counts[arm_id] <= 0:
            continue
        value = learner.expected_reward(arm_id, ctx)
        if value is not None and value > best_value:
            best_id, best_value = arm_id, value
    return best_id


def arm_shares(events: Sequence[RouterEvent], arm_ids: Sequence[str]) -> dict[str, float]:
    """Share of orders routed with each arm (arms never chosen get 0.0)."""
    if not events:
        raise ValueError("no events to count arm choices in")
    counts = {arm: 0 for arm in arm_ids}
    for event in events:
        if event.arm not in counts:
            raise ValueError(f"event {event.intent_id} has arm {event.arm!r} outside the grid")
        counts[event.arm] += 1
    return {arm: n / len(events) for arm, n in counts.items()}


@dataclass(frozen=True, slots=True)
class LearnerOutcome:
    """What one learner ended with on one symbol.

    ``greedy_arm`` is what the learner believes best at the end (the OPE candidate; ``None`` when it learned
    nothing, and then there is no OPE of it); ``final_arm`` and
    ``final_version`` are the last published version's (``static`` / 0 when it never published: the
    guardrails move a version at most one step at a time, so the two can differ). ``arm_shares`` is the
    share of orders routed with each arm, exploration included. ``safety_changes`` counts arm exclusions and
    re-openings by kind (``excluded``, ``reopened:reprobe``, ``reopened:regime``, ``reopened:drift``).
    ``waiting_drift_bps_per_s``: the mid's drift against the orders the tuner learned (``reward_mid`` ``route_end``;
    ``None`` otherwise): near zero for intents that know nothing of the price.
    """

    learner: str
    policy: str
    greedy_arm: str | None
    final_arm: str
    final_version: int
    versions_published: int
    rollbacks: int
    drifts_detected: int
    safety_changes: dict[str, int]
    rejections: dict[str, int]
    arm_shares: dict[str, float]
    waiting_drift_bps_per_s: float | None

    def to_dict(self) -> dict[str, object]:
        return {"greedy_arm": self.greedy_arm, "final_arm": self.final_arm, "final_version": self.final_version,
                "versions_published": self.versions_published, "rollbacks": self.rollbacks,
                "drifts_detected": self.drifts_detected, "safety_changes": dict(self.safety_changes),
                "rejections": dict(self.rejections), "arm_shares": dict(self.arm_shares),
                "waiting_drift_bps_per_s": self.waiting_drift_bps_per_s}


def learner_outcome(run: LearnerRun, symbol: str, events: Sequence[RouterEvent], arm_ids: Sequence[str],
                    context: Context) -> LearnerOutcome:
    """Summarise ``run``'s tuner of ``symbol`` after it routed ``events`` (``context``: the mean arrival)."""
    tuner = run.service.tuner(symbol)
    records = [r for r in run.publisher.records if r.policy.symbol == symbol]
    return LearnerOutcome(
        learner=run.learner, policy=learner_policy_name(run.learner), greedy_arm=greedy_arm(tuner.learner, context),
        final_arm=tuner.policy.arm, final_version=tuner.policy.version, versions_published=len(records),
        rollbacks=sum(r.reason == "rollback" for r in records), drifts_detected=tuner.drifts_detected,
        safety_changes=tuner.safety_changes, rejections=tuner.rejections, arm_shares=arm_shares(events, arm_ids),
        waiting_drift_bps_per_s=tuner.waiting_drift_bps_per_s)
