"""Alerts: health compared with the thresholds of ``executor.json`` ``alerts``; each names its config path."""

from __future__ import annotations

from router_tuner.config.models import AlertThresholds
from router_tuner.executor.adaptive.records import TunerHealth
from router_tuner.executor.records import Alert, HealthSnapshot
from router_tuner.risk.units import NS_PER_S


def evaluate_alerts(health: HealthSnapshot, limits: AlertThresholds) -> tuple[Alert, ...]:
    """Every threshold ``health`` crosses. Ratio alerts need ``min_orders`` orders in the window."""
    alerts: list[Alert] = []

    def raise_alert(code: str, threshold: float, observed: float, detail: str) -> None:
        alerts.append(Alert(code=code, threshold=threshold, observed=observed, detail=detail, ts_ns=health.ts_ns))

    if health.nav_age_s > limits.stale_nav_s:
        raise_alert("stale_nav", limits.stale_nav_s, health.nav_age_s,
                    f"executor.alerts.stale_nav_s: NAV is {health.nav_age_s:.6g} s old")
    enough = health.orders_in_window >= limits.min_orders
    if enough and health.fallback_ratio is not None and health.fallback_ratio > limits.fallback_ratio:
        raise_alert("fallback_ratio", limits.fallback_ratio, health.fallback_ratio,
                    f"executor.alerts.fallback_ratio over {health.orders_in_window} orders")
    if enough and health.slippage_p50_bps is not None and health.slippage_p50_bps > limits.slippage_p50_bps:
        raise_alert("slippage", limits.slippage_p50_bps, health.slippage_p50_bps,
                    f"executor.alerts.slippage_p50_bps over {health.orders_in_window} orders")
    for code, key, feed, down_mode, limit_s, what in (
            ("order_feed_polling", "order_feed_polling_s", health.order_feed, "polling", limits.order_feed_polling_s,
             "order updates by REST polling for {:.6g} s, the user-data stream is down"),
            ("book_feed_rest", "book_feed_rest_s", health.book_feed, "rest", limits.book_feed_rest_s,
             "touches read by REST for {:.6g} s, the market stream is down or stale")):
        if feed is not None and feed.mode == down_mode:
            down_s = max(0, health.ts_ns - feed.since_ns) / NS_PER_S
            if down_s >= limit_s:
                raise_alert(code, limit_s, down_s, f"executor.alerts.{key}: {what.format(down_s)} "
                                                   f"({feed.last_error}; {feed.reconnects} reconnects)")
    if health.vetoes_in_storm_window >= limits.veto_storm_count:
        raise_alert("veto_storm", float(limits.veto_storm_count), float(health.vetoes_in_storm_window),
                    f"executor.alerts.veto_storm_count: {health.vetoes_in_storm_window} vetoes in "
                    f"{limits.veto_storm_window_s:.6g} s")
    return tuple(alerts)


def evaluate_champion_gate_alerts(health: HealthSnapshot) -> tuple[Alert, ...]:
    """One alert per symbol whose registry champion is not acted on (no gate record, alias unset).

    No threshold: the OPE gate is the limit, so the alert names the versions instead of a config path.
    """
    return tuple(Alert(code=f"champion_not_gated:{gate.symbol}", threshold=float(gate.served_version),
                       observed=float(gate.champion_version if gate.champion_version is not None else -1),
                       detail=(f"{gate.symbol}: registry champion v{gate.champion_version} not acted on "
                               f"({gate.problem}); routing gated v{gate.served_version}"), ts_ns=health.ts_ns)
                 for gate in health.champion_gates if gate.problem is not None)


def evaluate_tuner_alerts(tuner: TunerHealth, limits: AlertThresholds) -> tuple[Alert, ...]:
    """Per tuned symbol: the exploration budget nearly spent, or every allowed arm excluded by safety bounds.

    The budget alert fires when either charge reaches ``tuner_budget_used_ratio`` of its ``tuner.json``
    cap (a cap of 0 is spent as soon as anything was charged); exclusion needs no threshold.
    """
    alerts: list[Alert] = []
    ratio = limits.tuner_budget_used_ratio
    for row in tuner.symbols:
        for name, charged, cap in (("bps_per_order", row.budget_charged_bps_per_order, row.budget_max_bps_per_order),
                                   ("usd_per_day", row.budget_charged_usd_today, row.budget_max_usd_per_day)):
            used = charged / cap if cap > 0 else (1.0 if charged > 0 else 0.0)
            if used >= ratio:
                alerts.append(Alert(code=f"tuner_budget_exhausted:{row.symbol}", threshold=ratio, observed=used,
                                    detail=(f"executor.alerts.tuner_budget_used_ratio: {row.symbol} exploration "
                                            f"budget {name} {charged:.6g} of {cap:.6g} (tuner.json "
                                            f"deployment.budget)"), ts_ns=tuner.ts_ns))
        if row.all_arms_excluded:
            reasons = ", ".join(f"{arm.arm}: {arm.reason}" for arm in row.excluded_arms)
            alerts.append(Alert(code=f"tuner_all_arms_excluded:{row.symbol}", threshold=float(row.allowed_arms),
                                observed=float(len(row.excluded_arms)),
                                detail=(f"{row.symbol}: every allowed arm excluded by tuner.json deployment.safety "
                                        f"({reasons}); routing the published arm"), ts_ns=tuner.ts_ns))
    return tuple(alerts)
