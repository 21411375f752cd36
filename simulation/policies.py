"""The non-learning policies the main job compares the tuner against, all on one small protocol.

``PolicySource`` is the per-symbol verb pair the tuner service speaks too: ``decide(context)`` returns
the ``RouterPolicy`` to route the next order with, ``observe(event, context)`` feeds its outcome back.
Baselines: always-taker, the configured static maker-first policy, each fixed arm of the tuner grid,
and the old system's rule policy (router quality over a window drives maker-first, bias and offset).
"""

from __future__ import annotations

import dataclasses
from typing import Protocol

from router_tuner.config.models import RouterConfig, RulePolicyConfig
from router_tuner.features.effectiveness import router_effectiveness
from router_tuner.features.quality import Quality, QualityThresholds, router_quality
from router_tuner.router.contract import ContractSpec
from router_tuner.router.events import RouterEvent
from router_tuner.router.policy import RouterPolicy
from router_tuner.tuner.arms import Arm
from router_tuner.tuner.learners.context import Context

ALWAYS_TAKER = "always_taker"
STATIC = "static"
RULE = "rule"
FIXED_PREFIX = "fixed:"
LEARNER_PREFIX = "learner:"


class PolicySource(Protocol):
    """One symbol's policy over a simulation: decide before each order, observe after it."""

    def decide(self, context: Context) -> RouterPolicy: ...

    def observe(self, event: RouterEvent, context: Context) -> None: ...


@dataclasses.dataclass(slots=True)
class FixedPolicy:
    """A policy that never changes (always-taker, static, one fixed arm): ``observe`` learns nothing."""

    policy: RouterPolicy

    def decide(self, context: Context) -> RouterPolicy:
        return self.policy

    def observe(self, event: RouterEvent, context: Context) -> None:
        """A fixed policy ignores outcomes by definition."""


def always_taker(symbol: str, router: RouterConfig) -> FixedPolicy:
    """Every order straight to the capped taker leg."""
    base = RouterPolicy.from_static(symbol, router, policy_id=f"{ALWAYS_TAKER}-{symbol}")
    return FixedPolicy(dataclasses.replace(base, maker_first=False, arm=ALWAYS_TAKER).validate(router.policy_bounds))


def static(symbol: str, router: RouterConfig) -> FixedPolicy:
    """The configured static maker-first policy (``router.json`` ``static_policy``)."""
    return FixedPolicy(RouterPolicy.from_static(symbol, router))


def fixed_arm(symbol: str, router: RouterConfig, arm: Arm) -> FixedPolicy:
    """The static policy with one arm's offset and taker bias, as a deterministic policy (propensity 1)."""
    base = RouterPolicy.from_static(symbol, router, policy_id=f"fixed-{arm.arm_id}-{symbol}")
    policy = base.with_arm(arm.arm_id, maker_offset_bps=arm.maker_offset_bps, taker_bias=arm.taker_bias,
                           propensity=1.0, version=1)
    return FixedPolicy(policy.validate(router.policy_bounds))


class RulePolicy:
    """The old system's rule: every ``window`` outcomes, router quality over them moves the knobs.

    broken -> taker only; degraded -> maker-first with ``degraded_taker_bias`` and the offset one step
    toward the touch; good -> maker-first, no taker bias, the offset one step away from the touch;
    neutral keeps the knobs; unknown (no maker order in the window, e.g. after broken) returns to the base
    knobs, so a broken spell is re-tested rather than kept forever. Each change is a new version.
    ``contract`` is the symbol's spec (its universe entry), for the USD notionals of the KPIs.
    """

    def __init__(self, symbol: str, router: RouterConfig, rule: RulePolicyConfig, *, contract: ContractSpec) -> None:
        self._rule = rule
        self._contracts = {symbol: contract}
        self._bounds = router.policy_bounds
        self._thresholds = QualityThresholds(
            broken_fallback_ratio=rule.broken_fallback_ratio, broken_slippage_bps=rule.broken_slippage_bps,
            degraded_fallback_ratio=rule.degraded_fallback_ratio, degraded_slippage_bps=rule.degraded_slippage_bps,
            good_maker_ratio=rule.good_maker_ratio, good_fallback_ratio=rule.good_fallback_ratio,
            good_slippage_bps=rule.good_slippage_bps)
        base = RouterPolicy.from_static(symbol, router, policy_id=f"{RULE}-{symbol}")
        self._base = base
        self._policy = self._with(base, maker_first=True, offset_bps=rule.base_offset_bps, taker_bias=0.0)
        self._window: list[RouterEvent] = []
        self.qualities: list[Quality] = []

    @property
    def policy(self) -> RouterPolicy:
        return self._policy

    def decide(self, context: Context) -> RouterPolicy:
        return self._policy

    def observe(self, event: RouterEvent, context: Context) -> None:
        self._window.append(event)
        if len(self._window) < self._rule.window:
            return
        kpis = router_effectiveness(self._window, contracts=self._contracts, window=None,
                                    reprice_loop_min=self._rule.reprice_loop_min)
        self._window = []
        quality = router_quality(kpis, self._thresholds)
        self.qualities.append(quality)
        self._policy = self._next(quality)

    def _next(self, quality: Quality) -> RouterPolicy:
        rule, current = self._rule, self._policy
        offset = current.maker_offset_bps
        if quality == "broken":
            return self._with(current, maker_first=False, offset_bps=offset, taker_bias=current.taker_bias)
        if quality == "degraded":
            return self._with(current, maker_first=True,
                              offset_bps=max(rule.min_offset_bps, offset - rule.offset_step_bps),
                              taker_bias=rule.degraded_taker_bias)
        if quality == "good":
            return self._with(current, maker_first=True,
                              offset_bps=min(rule.max_offset_bps, offset + rule.offset_step_bps),
                              taker_bias=0.0)
        if quality == "unknown":
            return self._with(current, maker_first=True, offset_bps=rule.base_offset_bps, taker_bias=0.0)
        return current

    def _with(self, current: RouterPolicy, *, maker_first: bool, offset_bps: float, taker_bias: float) -> RouterPolicy:
        arm = f"rule_o{offset_bps:.2f}_b{taker_bias:.2f}" if maker_first else f"rule_{ALWAYS_TAKER}"
        if (maker_first, offset_bps, taker_bias) == (current.maker_first, current.maker_offset_bps,
                                                     current.taker_bias) and current.arm == arm:
            return current
        version = current.version + 1 if current is not self._base else 1
        return dataclasses.replace(current, maker_first=maker_first, maker_offset_bps=offset_bps,
                                   taker_bias=taker_bias, arm=arm, propensity=1.0,
                                   version=version).validate(self._bounds)
