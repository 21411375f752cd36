"""Per-arm safety bounds of one symbol: arms whose recent outcomes break a configured limit are excluded.

A learner keeps exploring an arm that looks bad only until its posterior says so; a desk wants a hard
stop sooner when an arm falls back to taker too often, slips too far or costs too much. Over each arm's
last ``window`` routed orders (once ``min_outcomes`` are in), the arm is excluded when

* its fallback ratio (share of orders that used the taker fallback) exceeds ``max_fallback_ratio``,
* the mean slippage of its filled orders exceeds ``max_slippage_bps``, or
* the mean cost of its filled orders exceeds ``max_cost_bps``

(slippage and cost only with ``min_outcomes`` filled orders). An excluded arm stays out until the
drift detector fires (the market changed, the evidence is stale): then every excluded arm re-opens with
an empty window. Each exclusion and re-opening is an :class:`~router.events.ArmSafetyChange` whose
reason names the configured limit, for the journal and for health.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import msgspec

from config.models import SafetyConfig
from router.events import ArmSafetyChange


@dataclass(frozen=True, slots=True)
class SafetyLimits:
    """``tuner.json`` ``deployment.safety``."""

    window: int
    min_outcomes: int
    max_fallback_ratio: float
    max_slippage_bps: float
    max_cost_bps: float

    def __post_init__(self) -> None:
        if not 1 <= self.min_outcomes <= self.window:
            raise ValueError(f"need 1 <= min_outcomes <= window, got {self.min_outcomes} and {self.window}")
        if not 0.0 <= self.max_fallback_ratio <= 1.0:
            raise ValueError(f"max_fallback_ratio must be in [0, 1], got {self.max_fallback_ratio!r}")
        for name in ("max_slippage_bps", "max_cost_bps"):
            if not math.isfinite(getattr(self, name)):
                raise ValueError(f"{name} must be finite, got {getattr(self, name)!r}")

    @classmethod
    def from_config(cls, config: SafetyConfig) -> SafetyLimits:
        return cls(window=config.window, min_outcomes=config.min_outcomes,
                   max_fallback_ratio=config.max_fallback_ratio, max_slippage_bps=config.max_slippage_bps,
                   max_cost_bps=config.max_cost_bps)


class ArmOutcome(msgspec.Struct, frozen=True, array_like=True, forbid_unknown_fields=True):
    """What one routed order of an arm showed: fallback used, slippage and cost (``None`` when unfilled)."""

    used_fallback: bool
    slippage_bps: float | None
    cost_bps: float | None


class SafetyState(msgspec.Struct, forbid_unknown_fields=True):
    """Recent outcomes per arm and the arms excluded now (with the change that excluded them)."""

    recent: dict[str, list[ArmOutcome]]
    excluded: dict[str, ArmSafetyChange]

    @classmethod
    def empty(cls) -> SafetyState:
        return cls(recent={}, excluded={})


class ArmSafety:
    """Watches each arm's recent outcomes against :class:`SafetyLimits`; see the module docstring.

    Examples
    --------
    >>> limits = SafetyLimits(window=4, min_outcomes=2, max_fallback_ratio=0.5, max_slippage_bps=5.0,
    ...                       max_cost_bps=8.0)
    >>> safety = ArmSafety(limits)
    >>> safety.observe_outcome("a", used_fallback=True, slippage_bps=1.0, cost_bps=2.0)
    >>> change = safety.observe_outcome("a", used_fallback=True, slippage_bps=1.0, cost_bps=2.0)
    >>> change.reason, change.observed, safety.choosable(["a", "b"])
    ('fallback_ratio_gt(0.5)', 1.0, ('b',))
    >>> [c.arm for c in safety.reopen_all()], safety.choosable(["a", "b"])
    (['a'], ('a', 'b'))
    """

    def __init__(self, limits: SafetyLimits, state: SafetyState | None = None) -> None:
        self.limits = limits
        self._s = state if state is not None else SafetyState.empty()

    @property
    def state(self) -> SafetyState:
        return self._s

    @property
    def excluded(self) -> dict[str, ArmSafetyChange]:
        """Arms excluded now, each with the change (limit, observed value) that excluded it."""
        return dict(self._s.excluded)

    def choosable(self, allowed: Iterable[str]) -> tuple[str, ...]:
        """``allowed`` without the excluded arms, in order."""
        return tuple(a for a in allowed if a not in self._s.excluded)

    def observe_outcome(self, arm: str, *, used_fallback: bool, slippage_bps: float | None,
                        cost_bps: float | None) -> ArmSafetyChange | None:
        """Add one routed order of ``arm``; returns the exclusion it caused, if any.

        Pass slippage and cost only for orders whose reward was accepted (``None`` otherwise), so an
        absurd or unfilled outcome counts for the fallback ratio only.
        """
        for name, value in (("slippage_bps", slippage_bps), ("cost_bps", cost_bps)):
            if value is not None and not math.isfinite(value):
                raise ValueError(f"{name} must be finite or None, got {value!r}")
        recent = self._s.recent.setdefault(arm, [])
        recent.append(ArmOutcome(used_fallback=used_fallback, slippage_bps=slippage_bps, cost_bps=cost_bps))
        del recent[:-self.limits.window]
        if arm in self._s.excluded or len(recent) < self.limits.min_outcomes:
            return None
        change = self._breach(arm, recent)
        if change is not None:
            self._s.excluded[arm] = change
        return change

    def reopen_all(self) -> list[ArmSafetyChange]:
        """Re-open every excluded arm with an empty window (call when drift is detected)."""
        changes = [ArmSafetyChange(arm=arm, action="reopened", reason="drift", threshold=None, observed=None)
                   for arm in self._s.excluded]
        for change in changes:
            self._s.recent.pop(change.arm, None)
        self._s.excluded.clear()
        return changes

    def _breach(self, arm: str, recent: list[ArmOutcome]) -> ArmSafetyChange | None:
        limits = self.limits
        fallback_ratio = sum(o.used_fallback for o in recent) / len(recent)
        checks: list[tuple[str, float, float]] = [("fallback_ratio", fallback_ratio, limits.max_fallback_ratio)]
        slippages = [o.slippage_bps for o in recent if o.slippage_bps is not None]
        costs = [o.cost_bps for o in recent if o.cost_bps is not None]
        if len(slippages) >= limits.min_outcomes:
            checks.append(("slippage_bps", sum(slippages) / len(slippages), limits.max_slippage_bps))
        if len(costs) >= limits.min_outcomes:
            checks.append(("cost_bps", sum(costs) / len(costs), limits.max_cost_bps))
        for name, observed, threshold in checks:
            if observed > threshold:
                return ArmSafetyChange(arm=arm, action="excluded", reason=f"{name}_gt({threshold:g})",
                                       threshold=threshold, observed=observed)
        return None
