"""Records of adaptive routing (``--policy-source tuner``): the decision kept before an order leaves, and
the tuner block of health.

``DecisionRecord`` is written to the executor store in the same transaction as the intent's
``Submission`` (before the first order is sent): it holds the decision context the tuner chose in and,
for a shadow symbol, the learner's proposal. After a crash the executor needs both to learn the
intent's outcome exactly once (see ``executor.adaptive.routing``): the context to observe with, the proposal
to journal beside a recovered RouterEvent. ``TunerHealth`` is what health shows of every tuned symbol.
"""

from __future__ import annotations

import msgspec

from router_tuner.features.context import Context
from router_tuner.router.events import ShadowDecision


class _Record(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Immutable, keyword-only, unknown fields rejected (same discipline as ``router.events``)."""


class DecisionRecord(_Record):
    """How the tuner decided one intent: its mode then, the context, and the shadow proposal if any."""

    intent_id: str
    symbol: str
    mode: str
    context: Context
    shadow: ShadowDecision | None


class ExcludedArm(_Record):
    """An arm the safety bounds exclude now, with the configured limit it broke and the observed value."""

    arm: str
    reason: str
    threshold: float | None
    observed: float | None


class TunerSymbolHealth(_Record):
    """One tuned symbol: mode, shadow agreement, exploration budget against its caps, arm safety, versions.

    ``policy_version``/``published_arm`` are the tuner's published version; ``last_arm`` is the arm the
    last order of the symbol was routed with (the champion's in shadow mode), ``None`` before one.
    ``all_arms_excluded`` is true when the safety bounds leave none of the arms the guardrails allow
    (the tuner then routes the published arm, counted in ``safety_fallbacks``).
    """

    symbol: str
    mode: str
    agreement: float | None
    shadow_proposals: int
    policy_id: str
    policy_version: int
    published_arm: str
    last_arm: str | None
    learned_outcomes: int
    budget_orders: int
    budget_charged_bps_per_order: float
    budget_max_bps_per_order: float
    budget_charged_usd_today: float
    budget_max_usd_per_day: float
    budget_blocked_decisions: int
    allowed_arms: int
    excluded_arms: tuple[ExcludedArm, ...]
    all_arms_excluded: bool
    safety_fallbacks: int
    drifts_detected: int
    rejections: dict[str, int]


class TunerHealth(_Record):
    """The tuner block of one health publish: every tuned symbol, and the journal position learned up to."""

    ts_ns: int
    router_events_learned: int
    checkpoint_generation: int
    symbols: tuple[TunerSymbolHealth, ...]
