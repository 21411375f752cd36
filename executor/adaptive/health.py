"""The tuner block of health: what each tuned symbol's deployment looks like now, and its text rendering.

Read-only over the tuner service (mode, agreement, exploration budget, excluded arms with reasons,
published version, drifts, rejected outcomes), so health, alerts and Prometheus show one set of numbers.
"""

from __future__ import annotations

from collections.abc import Mapping

from router_tuner.executor.adaptive.records import ExcludedArm, TunerHealth, TunerSymbolHealth
from router_tuner.tuner.service.tuner_service import TunerService


def tuner_health(service: TunerService, *, last_arms: Mapping[str, str], now_ns: int, router_events_learned: int,
                 checkpoint_generation: int) -> TunerHealth:
    """Every tuned symbol's deployment at ``now_ns``; ``last_arms`` is the arm each symbol last routed."""
    rows = []
    for symbol in service.symbols:
        tuner = service.tuner(symbol)
        deployment = service.health(symbol)
        state = tuner.to_state()
        budget = deployment.budget
        excluded = tuple(ExcludedArm(arm=arm, reason=change.reason, threshold=change.threshold,
                                     observed=change.observed)
                         for arm, change in sorted(deployment.excluded_arms.items()))
        allowed = tuner.allowed_arm_ids
        rows.append(TunerSymbolHealth(
            symbol=symbol, mode=deployment.mode, agreement=deployment.agreement,
            shadow_proposals=state.shadow.proposals, policy_id=tuner.policy.policy_id,
            policy_version=tuner.policy.version, published_arm=tuner.policy.arm, last_arm=last_arms.get(symbol),
            learned_outcomes=sum(state.budget.cost_n.values()), budget_orders=budget.orders,
            budget_charged_bps_per_order=budget.charged_bps_per_order,
            budget_max_bps_per_order=budget.max_extra_cost_bps_per_order,
            budget_charged_usd_today=budget.charged_usd_today,
            budget_max_usd_per_day=budget.max_extra_cost_usd_per_day,
            budget_blocked_decisions=budget.blocked_decisions, allowed_arms=len(allowed), excluded_arms=excluded,
            all_arms_excluded=bool(allowed) and all(arm in deployment.excluded_arms for arm in allowed),
            safety_fallbacks=deployment.safety_fallbacks, drifts_detected=tuner.drifts_detected,
            rejections=dict(sorted(tuner.rejections.items()))))
    return TunerHealth(ts_ns=now_ns, router_events_learned=router_events_learned,
                       checkpoint_generation=checkpoint_generation, symbols=tuple(rows))


def render_tuner_health(health: TunerHealth) -> str:
    """One line per tuned symbol plus one per excluded arm, for ``router-tuner health``."""
    def fmt(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.4g}"

    lines = [f"tuner learned {health.router_events_learned} router events, checkpoint g{health.checkpoint_generation}"]
    for row in health.symbols:
        rejected = ", ".join(f"{k}={v}" for k, v in row.rejections.items()) or "none"
        lines.append(
            f"tuner {row.symbol:<13}mode {row.mode} agreement {fmt(row.agreement)} ({row.shadow_proposals} proposals) "
            f"policy {row.policy_id} v{row.policy_version} arm {row.published_arm} last {row.last_arm or 'n/a'} "
            f"learned {row.learned_outcomes} budget {row.budget_charged_bps_per_order:.3g}/"
            f"{row.budget_max_bps_per_order:g} bps/order {row.budget_charged_usd_today:.2f}/"
            f"{row.budget_max_usd_per_day:g} USD today (blocked {row.budget_blocked_decisions}) "
            f"excluded {len(row.excluded_arms)}/{row.allowed_arms} drifts {row.drifts_detected} rejected {rejected}")
        for arm in row.excluded_arms:
            lines.append(f"tuner {row.symbol:<13}excluded {arm.arm}: {arm.reason} (observed {fmt(arm.observed)})")
    return "\n".join(lines)
