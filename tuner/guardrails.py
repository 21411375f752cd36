"""Guardrails between the learners and a published policy: bounds, step limits, rollback and drift.

The learners explore per order; what the router runs by default is a published arm, and these rules
decide how far and how often that can move. Every threshold comes from a :class:`Guardrails` instance
built from config; none has a default here.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from river import drift

from router_tuner.features.context import Context
from router_tuner.tuner.arms import Arm, ArmGrid
from router_tuner.tuner.learners.base import Learner, RouteOutcome

_FLOAT_TOLERANCE = 1e-9
"""Numerical slack for comparing grid values (0.3 - 0.1 != 0.2 in floats); not a trading threshold."""


class GuardrailError(ValueError):
    """The guardrails leave no arm to run (e.g. the current arm is outside newly tightened bounds)."""


@dataclass(frozen=True, slots=True)
class PageHinkleyParams:
    """Parameters of ``river.drift.PageHinkley`` on cost residuals (bps); detects shifts both ways."""

    min_instances: int
    delta: float
    threshold: float
    alpha: float

    def __post_init__(self) -> None:
        _require(self.min_instances >= 1, f"min_instances must be >= 1, got {self.min_instances}")
        _require(_finite_pos(self.delta), f"delta must be finite and > 0, got {self.delta}")
        _require(_finite_pos(self.threshold), f"threshold must be finite and > 0, got {self.threshold}")
        _require(0.0 < self.alpha <= 1.0, f"alpha must be in (0, 1], got {self.alpha}")

    def build(self) -> drift.PageHinkley:
        return drift.PageHinkley(min_instances=self.min_instances, delta=self.delta,
                                 threshold=self.threshold, alpha=self.alpha, mode="both")


@dataclass(frozen=True, slots=True)
class AdwinParams:
    """Parameters of ``river.drift.ADWIN`` on cost residuals (bps)."""

    delta: float
    clock: int
    grace_period: int
    min_window_length: int

    def __post_init__(self) -> None:
        _require(0.0 < self.delta < 1.0, f"delta must be in (0, 1), got {self.delta}")
        for name in ("clock", "grace_period", "min_window_length"):
            _require(getattr(self, name) >= 1, f"{name} must be >= 1, got {getattr(self, name)}")

    def build(self) -> drift.ADWIN:
        return drift.ADWIN(delta=self.delta, clock=self.clock, grace_period=self.grace_period,
                           min_window_length=self.min_window_length)


@dataclass(frozen=True, slots=True)
class Guardrails:
    """Every limit on how a symbol's published policy may move. All fields are required.

    ``max_step_*`` bound the change between two published versions; ``min_outcomes_before_move`` is
    the number of learned outcomes since the last version before another may be published;
    the rollback fires when the mean live cost over ``rollback_window`` outcomes exceeds the last good
    version's baseline by more than ``rollback_margin_bps``; on drift, learners keep
    ``drift_keep_fraction`` of their evidence. ``drift`` watches cost residuals; ``fill_drift`` watches
    the maker-fill residuals of a learner that predicts fills (the regime signal: activity at the touch).
    """

    min_offset_bps: float
    max_offset_bps: float
    min_taker_bias: float
    max_taker_bias: float
    max_step_offset_bps: float
    max_step_taker_bias: float
    min_outcomes_before_move: int
    rollback_window: int
    rollback_margin_bps: float
    drift: PageHinkleyParams | AdwinParams
    fill_drift: PageHinkleyParams | AdwinParams
    drift_keep_fraction: float

    def __post_init__(self) -> None:
        _require(
            math.isfinite(self.min_offset_bps) and math.isfinite(self.max_offset_bps)
            and self.min_offset_bps <= self.max_offset_bps,
            f"offset bounds must be finite and ordered: [{self.min_offset_bps}, {self.max_offset_bps}]",
        )
        _require(
            0.0 <= self.min_taker_bias <= self.max_taker_bias <= 1.0,
            f"taker bias bounds must satisfy 0 <= min <= max <= 1: [{self.min_taker_bias}, {self.max_taker_bias}]",
        )
        _require(_finite_pos(self.max_step_offset_bps), "max_step_offset_bps must be finite and > 0")
        _require(_finite_pos(self.max_step_taker_bias), "max_step_taker_bias must be finite and > 0")
        _require(self.min_outcomes_before_move >= 0, "min_outcomes_before_move must be >= 0")
        _require(self.rollback_window >= 1, "rollback_window must be >= 1")
        _require(math.isfinite(self.rollback_margin_bps) and self.rollback_margin_bps >= 0,
                 "rollback_margin_bps must be finite and >= 0")
        _require(0.0 < self.drift_keep_fraction <= 1.0, "drift_keep_fraction must be in (0, 1]")

    def in_bounds(self, arm: Arm) -> bool:
        return (
            self.min_offset_bps - _FLOAT_TOLERANCE <= arm.maker_offset_bps <= self.max_offset_bps + _FLOAT_TOLERANCE
            and self.min_taker_bias - _FLOAT_TOLERANCE <= arm.taker_bias <= self.max_taker_bias + _FLOAT_TOLERANCE
        )

    def within_step(self, current: Arm, other: Arm) -> bool:
        return (
            abs(other.maker_offset_bps - current.maker_offset_bps) <= self.max_step_offset_bps + _FLOAT_TOLERANCE
            and abs(other.taker_bias - current.taker_bias) <= self.max_step_taker_bias + _FLOAT_TOLERANCE
        )


def allowed_arm_ids(grid: ArmGrid, guardrails: Guardrails, current: Arm | None) -> tuple[str, ...]:
    """Grid arms inside the bounds and, when ``current`` is given, within one step of it.

    Pass the result as ``allowed`` to a learner's ``choose`` so exploration respects the guardrails.
    """
    ids = tuple(
        a.arm_id for a in grid
        if guardrails.in_bounds(a) and (current is None or guardrails.within_step(current, a))
    )
    if not ids:
        where = "inside the bounds" if current is None else f"inside the bounds within a step of {current.arm_id}"
        raise GuardrailError(f"no grid arm is {where}")
    return ids


def clamp_step(current_arm: Arm, proposed_arm: Arm, grid: ArmGrid, guardrails: Guardrails) -> Arm:
    """The grid arm nearest to ``proposed_arm`` that is in bounds and within one step of ``current_arm``.

    Distance is measured in units of the maximum step of each coordinate; among equally near arms the
    smallest move from ``current_arm`` wins, then grid order. Raises :class:`GuardrailError` when no
    arm qualifies (only possible when ``current_arm`` itself is out of bounds).
    """
    candidates = [grid.get(a) for a in allowed_arm_ids(grid, guardrails, current_arm)]

    def distance(a: Arm, b: Arm) -> float:
        return math.hypot((a.maker_offset_bps - b.maker_offset_bps) / guardrails.max_step_offset_bps,
                          (a.taker_bias - b.taker_bias) / guardrails.max_step_taker_bias)

    return min(candidates, key=lambda a: (round(distance(a, proposed_arm), 9), distance(a, current_arm)))


@dataclass(frozen=True, slots=True)
class PublishDecision:
    """Whether to publish a new version, which arm it would carry, and why."""

    publish: bool
    arm: Arm
    reason: Literal["insufficient_outcomes", "unchanged", "proposed", "step_clamped"]


def should_publish(
    current_arm: Arm,
    proposed_arm: Arm,
    outcomes_since_publish: int,
    grid: ArmGrid,
    guardrails: Guardrails,
) -> PublishDecision:
    """Decide whether the learner's proposal becomes a new version, clamped to one step."""
    if outcomes_since_publish < 0:
        raise ValueError(f"outcomes_since_publish must be >= 0, got {outcomes_since_publish}")
    if outcomes_since_publish < guardrails.min_outcomes_before_move:
        return PublishDecision(False, current_arm, "insufficient_outcomes")
    arm = clamp_step(current_arm, proposed_arm, grid, guardrails)
    if arm == current_arm:
        return PublishDecision(False, current_arm, "unchanged")
    return PublishDecision(True, arm, "proposed" if arm == proposed_arm else "step_clamped")


class RollbackMonitor:
    """Rolling mean of live cost against the last good version's baseline; latches when worse by > margin.

    Once triggered it stays triggered until :meth:`rebase` (after the rollback, or when a new version
    starts with its own baseline), so one degradation causes one rollback.

    Examples
    --------
    >>> m = RollbackMonitor(window=3, margin_bps=1.0, baseline_cost_bps=2.0)
    >>> [m.observe(c) for c in (2.5, 3.5, 3.4, 3.3)]
    [False, False, True, True]
    """

    def __init__(self, window: int, margin_bps: float, baseline_cost_bps: float) -> None:
        if window < 1:
            raise ValueError(f"window must be >= 1, got {window}")
        if not (math.isfinite(margin_bps) and margin_bps >= 0):
            raise ValueError(f"margin_bps must be finite and >= 0, got {margin_bps}")
        self._window = window
        self._margin_bps = margin_bps
        self._costs: deque[float] = deque(maxlen=window)
        self._baseline_cost_bps = 0.0
        self._triggered = False
        self.rebase(baseline_cost_bps)

    @classmethod
    def from_guardrails(cls, guardrails: Guardrails, baseline_cost_bps: float) -> RollbackMonitor:
        return cls(guardrails.rollback_window, guardrails.rollback_margin_bps, baseline_cost_bps)

    @property
    def triggered(self) -> bool:
        return self._triggered

    @property
    def live_mean_cost_bps(self) -> float | None:
        """Mean cost over the current window, ``None`` until the window is full."""
        return sum(self._costs) / len(self._costs) if len(self._costs) == self._window else None

    def observe(self, cost_bps: float) -> bool:
        """Add one live outcome's cost; returns whether a rollback is due."""
        if not math.isfinite(cost_bps):
            raise ValueError(f"cost_bps must be finite, got {cost_bps!r}")
        self._costs.append(cost_bps)
        live = self.live_mean_cost_bps
        if live is not None and live > self._baseline_cost_bps + self._margin_bps:
            self._triggered = True
        return self._triggered

    @property
    def costs(self) -> tuple[float, ...]:
        """The window's costs, oldest first (saved with the tuner's state)."""
        return tuple(self._costs)

    def restore(self, costs: Sequence[float]) -> None:
        """Refill the window with saved ``costs`` (the last ``window`` kept); the next :meth:`observe` judges it."""
        if not all(math.isfinite(cost) for cost in costs):
            raise ValueError(f"saved rollback window costs must be finite, got {list(costs)!r}")
        self._costs.extend(costs)

    def rebase(self, baseline_cost_bps: float) -> None:
        """Start over against a new baseline: clears the window and the latch."""
        if not math.isfinite(baseline_cost_bps):
            raise ValueError(f"baseline_cost_bps must be finite, got {baseline_cost_bps!r}")
        self._baseline_cost_bps = baseline_cost_bps
        self._costs.clear()
        self._triggered = False


class DriftMonitor:
    """Watches a learner's residuals with river drift detectors; on drift, re-opens exploration.

    The cost residual is the observed reward minus the learner's current estimate for that arm (and
    context), so it is centred on zero while the world matches the learner. For a learner that predicts
    maker fills (:meth:`~tuner.learners.base.Learner.fill_residual`), a second detector watches whether the
    post-only leg filled minus the predicted probability: a market going quiet or busy moves that long
    before the noisy costs do. A detected shift means the evidence is stale: the learner keeps only
    ``keep_fraction`` of it (wider posteriors, higher epsilon, larger UCB bonuses), and both detectors
    restart. Call :meth:`observe` *before* the learner's ``update`` with the same reward. The detectors are
    not persisted: after a restart they warm up again.
    """

    def __init__(self, params: PageHinkleyParams | AdwinParams, learner: Learner, keep_fraction: float,
                 fill_params: PageHinkleyParams | AdwinParams | None = None) -> None:
        if not (math.isfinite(keep_fraction) and 0.0 < keep_fraction <= 1.0):
            raise ValueError(f"keep_fraction must be in (0, 1], got {keep_fraction!r}")
        self._params = params
        self._fill_params = fill_params
        self._learner = learner
        self._keep_fraction = keep_fraction
        self._detector = params.build()
        self._fill_detector = fill_params.build() if fill_params is not None else None
        self.drifts_detected = 0

    @classmethod
    def from_guardrails(cls, guardrails: Guardrails, learner: Learner) -> DriftMonitor:
        return cls(guardrails.drift, learner, guardrails.drift_keep_fraction, guardrails.fill_drift)

    def observe(self, arm_id: str, reward: float, context: Context | None = None,
                outcome: RouteOutcome | None = None) -> bool:
        """Feed one outcome's residuals; returns ``True`` when a drift was detected (and acted on)."""
        if not math.isfinite(reward):
            raise ValueError(f"reward must be finite, got {reward!r}")
        fill_residual = self._learner.fill_residual(arm_id, outcome) if outcome is not None else None
        if fill_residual is not None and self._fill_detector is not None:
            self._fill_detector.update(fill_residual)
            if self._fill_detector.drift_detected:
                return self._drifted()
        if self._learner.counts()[arm_id] <= 0:
            return False
        expected = self._learner.expected_reward(arm_id, context)
        if expected is None:
            return False
        self._detector.update(reward - expected)
        return self._drifted() if self._detector.drift_detected else False

    def _drifted(self) -> bool:
        self._learner.discount_evidence(self._keep_fraction)
        self._detector = self._params.build()
        self._fill_detector = self._fill_params.build() if self._fill_params is not None else None
        self.drifts_detected += 1
        return True


def _finite_pos(value: float) -> bool:
    return math.isfinite(value) and value > 0


def _require(ok: bool, message: str) -> None:
    if not ok:
        raise ValueError(message)
