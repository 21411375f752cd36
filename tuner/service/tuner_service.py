"""The tuner service: one :class:`SymbolTuner` per symbol, built from configuration, with saved state.

Usage, from the executor loop or a simulation::

    service = TunerService.from_config(bundle, ["BTCUSDT"], InMemoryPublisher(), state_path=Path("var/tuner.json"))
    policy = service.decide("BTCUSDT", context)          # RouterPolicy with arm, offset, bias, propensity
    event = route(..., policy, ...)                       # the RouterEvent logs arm and propensity
    service.observe(event, context)                       # learn, guard, maybe publish a new version
    service.save()                                        # also done after every published version

A symbol listed in ``tuner.json`` ``deployment.shadow_symbols`` starts in shadow mode: the caller routes
with the champion (e.g. a :class:`~tuner.policy_source.RegistryPolicySource`) and journals what the
learner would have done::

    if service.mode(symbol) == "shadow":
        policy = champion.current(symbol)
        journal.append(service.shadow(symbol, context, policy, intent_id=intent.intent_id, ts_ns=now_ns))
    else:
        policy = service.decide(symbol, context)
    event = route(..., policy, ...)
    result = service.observe(event, context)             # learns the arm taken, in both modes
    if result.safety is not None:
        journal.append(result.safety)                    # arm exclusions / re-openings

State is two files written atomically: the learners' evidence at ``state_path`` (:mod:`tuner.state`)
and the tuners' versions and counters next to it (``<stem>.tuners.json``). They are written learners
first; a crash between the two writes leaves the learners at most one save ahead of the counters,
which only shifts when the next version is considered. A restart with ``state_path`` pointing at
existing files continues where the saved run stopped; without files it starts from the static policy.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import msgspec

from router_tuner.config.models import ConfigBundle
from router_tuner.router.atomic_file import write_bytes_atomic
from router_tuner.router.events import ArmSafetyChange, RouterEvent, ShadowDecision
from router_tuner.router.policy import RouterPolicy
from router_tuner.tuner.budget import BudgetLimits, BudgetReport, ExplorationBudget
from router_tuner.tuner.factory import (
    build_grid,
    build_guardrails,
    build_learner,
    build_reward_adjustment,
    build_reward_filter,
    symbol_seed,
)
from router_tuner.tuner.learners import Context
from router_tuner.tuner.reward_adjustment import MarketAfter
from router_tuner.tuner.safety import ArmSafety, SafetyLimits
from router_tuner.tuner.service.publish import PolicyPublisher
from router_tuner.tuner.service.symbol import ObserveResult, PublishRule, SymbolTuner, SymbolTunerState, TunerMode
from router_tuner.tuner.shadow import ShadowEvaluation, ShadowMonitor, ShadowRule
from router_tuner.tuner.state import StateFileError, read_versioned, restore_state, save_state

TUNERS_FORMAT_VERSION = 2
"""2: mode, shadow agreement, exploration budget and arm safety state per symbol."""


@dataclass(frozen=True, slots=True)
class DeploymentHealth:
    """What health shows of one symbol's deployment: mode, shadow agreement, budget, excluded arms."""

    symbol: str
    mode: TunerMode
    agreement: float | None
    budget: BudgetReport
    excluded_arms: dict[str, ArmSafetyChange]
    safety_fallbacks: int


class ModeSource(Protocol):
    """Where a person's go-live request is read from (the policy registry's model tag)."""

    def deployment_mode(self, symbol: str) -> str | None: ...


class _TunersFile(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    format_version: int
    symbols: dict[str, SymbolTunerState]


def tuners_state_path(state_path: Path) -> Path:
    """Where the tuners' own state lives next to the learners' state file."""
    return state_path.with_name(f"{state_path.stem}.tuners.json")


class TunerService:
    """Routes ``decide``/``observe`` to each symbol's tuner and saves/restores all of them together."""

    def __init__(self, tuners: Mapping[str, SymbolTuner], state_path: Path | None) -> None:
        if not tuners:
            raise ValueError("a tuner service needs at least one symbol")
        for symbol, tuner in tuners.items():
            if tuner.symbol != symbol:
                raise ValueError(f"tuner for {tuner.symbol} registered under {symbol}")
        self._tuners = dict(tuners)
        self._state_path = Path(state_path) if state_path is not None else None

    @classmethod
    def from_config(
        cls,
        bundle: ConfigBundle,
        symbols: Iterable[str],
        publisher: PolicyPublisher,
        state_path: Path | None = None,
        *,
        policy_name: str = "tuner",
    ) -> TunerService:
        """Tuners for ``symbols`` (all in the universe), starting from the static policy or saved state.

        Their events carry the policy id ``<policy_name>-<symbol>``: a simulation names each learner's own, so
        the policies it journals side by side can be told apart (``ope --logging-policy``).
        """
        wanted = list(symbols)
        unknown = sorted(set(wanted) - set(bundle.strategy.universe))
        if unknown:
            raise ValueError(f"symbols not in strategy_config.json universe: {unknown}")
        if len(set(wanted)) != len(wanted):
            raise ValueError(f"duplicate symbols: {wanted}")
        deployment = bundle.tuner.deployment
        unknown_shadow = sorted(set(deployment.shadow_symbols) - set(bundle.strategy.universe))
        if unknown_shadow:
            raise ValueError(f"tuner.json deployment.shadow_symbols not in the universe: {unknown_shadow}")
        budget_limits = BudgetLimits.from_config(deployment.budget)
        safety_limits = SafetyLimits.from_config(deployment.safety)
        shadow_rule = ShadowRule.from_config(deployment)
        tuner_config, router = bundle.tuner, bundle.router
        rule = PublishRule(every_n_outcomes=tuner_config.publish.every_n_outcomes,
                           min_improvement_bps=tuner_config.publish.min_improvement_bps)
        tuners: dict[str, SymbolTuner] = {}
        for symbol in wanted:
            grid = build_grid(tuner_config, router)
            seed = symbol_seed(tuner_config.seed, symbol)
            mode: TunerMode = "shadow" if symbol in deployment.shadow_symbols else "live"
            fees = router.sim_venue.fees[bundle.strategy.universe[symbol].market]
            tuners[symbol] = SymbolTuner(
                RouterPolicy.from_static(symbol, router, policy_id=f"{policy_name}-{symbol}"),
                bounds=router.policy_bounds,
                learner=build_learner(tuner_config, grid, seed, fees, router.static_policy.maker_offset_bps),
                guardrails=build_guardrails(tuner_config, router),
                reward_filter=build_reward_filter(tuner_config),
                publish_rule=rule,
                publisher=publisher,
                budget=ExplorationBudget(budget_limits),
                safety=ArmSafety(safety_limits),
                shadow=ShadowMonitor(symbol, shadow_rule, tuner_config.ope, seed=seed),
                mode=mode,
                contract=bundle.strategy.universe[symbol],
                taker_fee_bps=fees.taker_fee_bps,
                reward_adjustment=build_reward_adjustment(tuner_config),
            )
        service = cls(tuners, state_path)
        if state_path is not None and (Path(state_path).exists() or tuners_state_path(Path(state_path)).exists()):
            service.restore()
        return service

    @property
    def symbols(self) -> tuple[str, ...]:
        return tuple(self._tuners)

    def tuner(self, symbol: str) -> SymbolTuner:
        try:
            return self._tuners[symbol]
        except KeyError:
            raise KeyError(f"no tuner for {symbol}; tuned symbols: {sorted(self._tuners)}") from None

    def decide(self, symbol: str, context: Context | None) -> RouterPolicy:
        """The acting policy for one order of ``symbol`` (see :meth:`SymbolTuner.decide`)."""
        return self.tuner(symbol).decide(context)

    def shadow(self, symbol: str, context: Context | None, acting: RouterPolicy, *, intent_id: str,
               ts_ns: int) -> ShadowDecision:
        """The shadow record of one order routed with ``acting`` (see :meth:`SymbolTuner.shadow`)."""
        return self.tuner(symbol).shadow(context, acting, intent_id=intent_id, ts_ns=ts_ns)

    def mode(self, symbol: str) -> TunerMode:
        """``shadow`` (route with the champion, call :meth:`shadow`) or ``live`` (route :meth:`decide`)."""
        return self.tuner(symbol).mode

    def go_live(self, symbol: str) -> None:
        """Move ``symbol`` from shadow to live (the command path); saves the state when it has a path."""
        self.tuner(symbol).go_live()
        if self._state_path is not None:
            self.save()

    def follow_go_live_requests(self, modes: ModeSource) -> list[str]:
        """Take live every shadow symbol ``modes`` marks ``live`` (``policy go-live``); returns those symbols.

        Call it off the decision path (the executor's idle hook): it reads the registry once per symbol.
        """
        moved = [s for s, t in self._tuners.items() if t.mode == "shadow" and modes.deployment_mode(s) == "live"]
        for symbol in moved:
            self.go_live(symbol)
        return moved

    def evaluate_shadow(self, symbol: str) -> ShadowEvaluation:
        """The go-live gate of ``symbol`` now (agreement, OPE of the learner's best arm), without acting on it."""
        return self.tuner(symbol).evaluate_shadow()

    def budget_report(self, symbol: str) -> BudgetReport:
        """What health reads of ``symbol``'s exploration budget."""
        return self.tuner(symbol).budget_report()

    def health(self, symbol: str) -> DeploymentHealth:
        """Mode, agreement, budget and excluded arms (with reasons) of ``symbol``, for health and reports."""
        tuner = self.tuner(symbol)
        return DeploymentHealth(symbol=symbol, mode=tuner.mode, agreement=tuner.agreement,
                                budget=tuner.budget_report(), excluded_arms=tuner.excluded_arms,
                                safety_fallbacks=tuner.safety_fallbacks)

    def observe(self, event: RouterEvent, context: Context | None,
                after: MarketAfter | None = None) -> ObserveResult:
        """Learn one outcome in its symbol's tuner (``after``: see :meth:`SymbolTuner.observe`);
        saves the state when a version was published or it went live."""
        result = self.tuner(event.symbol).observe(event, context, after)
        if (result.published is not None or result.went_live) and self._state_path is not None:
            self.save()
        return result

    def save(self) -> None:
        """Write learners and tuners to the state files (atomically each); needs a ``state_path``."""
        path = self._require_path()
        save_state(path, {symbol: tuner.learner for symbol, tuner in self._tuners.items()})
        doc = _TunersFile(format_version=TUNERS_FORMAT_VERSION,
                          symbols={symbol: tuner.to_state() for symbol, tuner in self._tuners.items()})
        write_bytes_atomic(tuners_state_path(path), msgspec.json.encode(doc))

    def restore(self) -> None:
        """Load both state files; raises :class:`StateFileError` when one is missing or does not fit."""
        path = self._require_path()
        side = tuners_state_path(path)
        for needed in (path, side):
            if not needed.exists():
                raise StateFileError(f"{needed}: missing (learner and tuner state are saved together)")
        doc = read_versioned(side, _TunersFile, TUNERS_FORMAT_VERSION)
        if set(doc.symbols) != set(self._tuners):
            raise StateFileError(f"{side}: symbols {sorted(doc.symbols)} differ from {sorted(self._tuners)}")
        restore_state(path, {symbol: tuner.learner for symbol, tuner in self._tuners.items()})
        for symbol, tuner in self._tuners.items():
            tuner.load_state(doc.symbols[symbol])

    def _require_path(self) -> Path:
        if self._state_path is None:
            raise ValueError("this tuner service has no state_path")
        return self._state_path
