"""Alerts: health compared with the thresholds of ``executor.json`` ``alerts``; each names its config path."""

from __future__ import annotations

from config.models import AlertThresholds
from executor.records import Alert, HealthSnapshot


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
    if health.vetoes_in_storm_window >= limits.veto_storm_count:
        raise_alert("veto_storm", float(limits.veto_storm_count), float(health.vetoes_in_storm_window),
                    f"executor.alerts.veto_storm_count: {health.vetoes_in_storm_window} vetoes in "
                    f"{limits.veto_storm_window_s:.6g} s")
    return tuple(alerts)
