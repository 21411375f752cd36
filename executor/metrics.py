"""Prometheus metrics: a mirror of every RouterEvent and veto, plus the health snapshot and alerts.

Each executor has its own ``CollectorRegistry`` (no process-global state, so tests can run several).
``serve`` binds the configured host (127.0.0.1 by default) on the configured port (0: any free port)
and returns the bound port. Label values are symbols, reason codes and policy ids: bounded sets.
"""

from __future__ import annotations

from collections.abc import Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server

from executor.adaptive.records import TunerHealth
from executor.records import Alert, HealthSnapshot
from router.contract import ContractSpec, contract_of, notional_usd
from router.events import RouterEvent, VetoEvent

_HEALTH_GAUGES: tuple[tuple[str, str], ...] = (
    ("nav_usd", "NAV: wallet balance plus unrealized PnL at the marks"),
    ("wallet_balance_usd", "wallet balance (realized equity)"),
    ("nav_age_s", "age of the NAV marks in seconds"),
    ("open_positions", "open position legs"),
    ("gross_exposure_usd", "gross exposure at the marks"),
    ("orders_in_window", "router events in the health window"),
    ("maker_ratio", "share of maker-started filled orders that filled entirely as maker"),
    ("fallback_ratio", "share of maker-started orders that used the fallback"),
    ("slippage_p25_bps", "slippage vs arrival mid, 25th percentile"),
    ("slippage_p50_bps", "slippage vs arrival mid, median"),
    ("slippage_p75_bps", "slippage vs arrival mid, 75th percentile"),
    ("fee_drag_bps", "fees over filled notional"),
    ("rolling_sharpe", "per-trade Sharpe over the last closing orders"),
    ("window_realized_pnl_usd", "realized PnL of the health window"),
    ("vetoes_in_storm_window", "vetoes in the veto-storm window"),
)


class ExecutorMetrics:
    """All executor metrics on one registry.

    ``contracts`` maps each symbol to its contract spec (the config universe): the filled-notional counter
    counts USD (:func:`router.contract.notional_usd`), not ``price * qty``.
    """

    def __init__(self, contracts: Mapping[str, ContractSpec]) -> None:
        self._contracts = contracts
        self.registry = CollectorRegistry()
        r = self.registry
        self.router_orders = Counter("router_orders", "router events by outcome",
                                     ("symbol", "routed_as", "outcome"), registry=r)
        self.router_fills = Counter("router_fills", "fills by liquidity", ("symbol", "liquidity"), registry=r)
        self.router_filled_notional = Counter("router_filled_notional_usd", "filled USD notional", ("symbol",),
                                              registry=r)
        self.router_fees = Counter("router_fees_usd", "fees paid", ("symbol",), registry=r)
        self.router_rebates = Counter("router_rebates_usd", "rebates received", ("symbol",), registry=r)
        self.router_reprices = Counter("router_reprices", "maker re-prices", ("symbol",), registry=r)
        self.router_cancels = Counter("router_cancels", "cancels sent", ("symbol",), registry=r)
        self.router_post_only_rejects = Counter("router_post_only_rejects", "post-only rejections", ("symbol",),
                                                registry=r)
        self.router_fallbacks = Counter("router_fallbacks", "orders that used the fallback", ("symbol",),
                                        registry=r)
        self.router_errors = Counter("router_errors", "router events that ended with an error", ("symbol",),
                                     registry=r)
        self.router_cost_bps = Gauge("router_last_cost_bps", "cost of the last filled order", ("symbol",),
                                     registry=r)
        self.realized_pnl = Counter("executor_realized_pnl_usd", "realized PnL net of fees (sum of signed)",
                                    ("symbol", "sign"), registry=r)
        self.vetoes = Counter("executor_vetoes", "veto reasons", ("code",), registry=r)
        self.intents = Counter("executor_intents", "intents by result", ("result",), registry=r)
        self.health = {name: Gauge(f"executor_{name}", text, registry=r) for name, text in _HEALTH_GAUGES}
        self.health_ts = Gauge("executor_health_timestamp_seconds", "when health was last published", registry=r)
        self.policy_version = Gauge("executor_policy_version", "current policy version",
                                    ("symbol", "policy_id", "arm"), registry=r)
        self.policy_quality = Gauge("executor_policy_quality", "1 for the symbol's current quality band",
                                    ("symbol", "quality"), registry=r)
        self.symbol_sharpe = Gauge("executor_symbol_sharpe", "per-trade Sharpe per symbol", ("symbol",), registry=r)
        self.expectancy = Gauge("executor_expectancy_bps", "realized PnL per notional by UTC hour", ("hour",),
                                registry=r)
        self.alert_active = Gauge("executor_alert_active", "1 while the alert holds", ("code",), registry=r)
        self.alerts_raised = Counter("executor_alerts", "alerts raised", ("code",), registry=r)
        self.tuner_live = Gauge("tuner_live", "1 when the tuner routes the symbol, 0 in shadow mode", ("symbol",),
                                registry=r)
        self.tuner_agreement = Gauge("tuner_shadow_agreement", "shadow agreement over the window (NaN before any)",
                                     ("symbol",), registry=r)
        self.tuner_policy_version = Gauge("tuner_policy_version", "the tuner's published version",
                                          ("symbol", "policy_id", "arm"), registry=r)
        self.tuner_learned = Gauge("tuner_learned_outcomes", "outcomes the tuner learned", ("symbol",), registry=r)
        self.tuner_budget = Gauge("tuner_budget", "exploration budget charged and its cap",
                                  ("symbol", "measure"), registry=r)
        self.tuner_budget_blocked = Gauge("tuner_budget_blocked_decisions", "decisions where the budget removed arms",
                                          ("symbol",), registry=r)
        self.tuner_excluded_arm = Gauge("tuner_excluded_arm", "1 per arm excluded by the safety bounds",
                                        ("symbol", "arm", "reason"), registry=r)
        self.tuner_all_excluded = Gauge("tuner_all_arms_excluded", "1 when every allowed arm is excluded",
                                        ("symbol",), registry=r)
        self.tuner_drifts = Gauge("tuner_drifts_detected", "drifts detected since start", ("symbol",), registry=r)
        self.tuner_rejections = Gauge("tuner_rejected_outcomes", "outcomes not learned, by reason",
                                      ("symbol", "reason"), registry=r)
        self.tuner_events_learned = Gauge("tuner_router_events_learned", "journal position the tuner learned up to",
                                          registry=r)

    def observe_router_event(self, event: RouterEvent) -> None:
        s = event.symbol
        self.router_orders.labels(s, event.routed_as, event.outcome).inc()
        for fill in event.fills:
            self.router_fills.labels(s, fill.liquidity).inc()
            usd = notional_usd(contract_of(self._contracts, s), fill.price, fill.qty)
            self.router_filled_notional.labels(s).inc(usd)
            if fill.fee_usd >= 0:
                self.router_fees.labels(s).inc(fill.fee_usd)
            else:
                self.router_rebates.labels(s).inc(-fill.fee_usd)
        self.router_reprices.labels(s).inc(event.reprice_count)
        self.router_cancels.labels(s).inc(event.cancel_count)
        self.router_post_only_rejects.labels(s).inc(event.post_only_reject_count)
        if event.used_fallback:
            self.router_fallbacks.labels(s).inc()
        if event.error is not None:
            self.router_errors.labels(s).inc()
        if event.cost_bps is not None:
            self.router_cost_bps.labels(s).set(event.cost_bps)
        if event.realized_pnl_usd is not None:
            sign = "gain" if event.realized_pnl_usd >= 0 else "loss"
            self.realized_pnl.labels(s, sign).inc(abs(event.realized_pnl_usd))

    def observe_veto(self, veto: VetoEvent) -> None:
        for reason in veto.reasons:
            self.vetoes.labels(reason.code).inc()

    def observe_health(self, health: HealthSnapshot, alerts: tuple[Alert, ...]) -> None:
        for name, gauge in self.health.items():
            value = getattr(health, name)
            gauge.set(float("nan") if value is None else float(value))
        self.health_ts.set(health.ts_ns / 1e9)
        self.policy_version.clear()
        self.policy_quality.clear()
        self.symbol_sharpe.clear()
        for row in health.symbols:
            self.policy_version.labels(row.symbol, row.policy_id, row.arm).set(row.policy_version)
            self.policy_quality.labels(row.symbol, row.quality).set(1)
            self.symbol_sharpe.labels(row.symbol).set(float("nan") if row.sharpe_per_trade is None
                                                      else row.sharpe_per_trade)
        self.expectancy.clear()
        for hour in health.expectancy:
            self.expectancy.labels(str(hour.hour)).set(hour.expectancy_bps)
        self.alert_active.clear()
        for alert in alerts:
            self.alert_active.labels(alert.code).set(1)
            self.alerts_raised.labels(alert.code).inc()

    def observe_tuner_health(self, tuner: TunerHealth) -> None:
        """Set the tuner gauges from the tuner block of one health publish."""
        self.tuner_events_learned.set(tuner.router_events_learned)
        for gauge in (self.tuner_policy_version, self.tuner_excluded_arm, self.tuner_rejections):
            gauge.clear()
        for row in tuner.symbols:
            s = row.symbol
            self.tuner_live.labels(s).set(1 if row.mode == "live" else 0)
            self.tuner_agreement.labels(s).set(float("nan") if row.agreement is None else row.agreement)
            self.tuner_policy_version.labels(s, row.policy_id, row.published_arm).set(row.policy_version)
            self.tuner_learned.labels(s).set(row.learned_outcomes)
            for measure, value in (("charged_bps_per_order", row.budget_charged_bps_per_order),
                                   ("max_bps_per_order", row.budget_max_bps_per_order),
                                   ("charged_usd_today", row.budget_charged_usd_today),
                                   ("max_usd_per_day", row.budget_max_usd_per_day)):
                self.tuner_budget.labels(s, measure).set(value)
            self.tuner_budget_blocked.labels(s).set(row.budget_blocked_decisions)
            for arm in row.excluded_arms:
                self.tuner_excluded_arm.labels(s, arm.arm, arm.reason).set(1)
            self.tuner_all_excluded.labels(s).set(1 if row.all_arms_excluded else 0)
            self.tuner_drifts.labels(s).set(row.drifts_detected)
            for reason, count in row.rejections.items():
                self.tuner_rejections.labels(s, reason).set(count)

    def serve(self, host: str, port: int) -> tuple[int, object]:
        """Start the HTTP endpoint; returns (bound port, server). ``server.shutdown()`` stops it."""
        server, _thread = start_http_server(port, addr=host, registry=self.registry)
        return int(server.server_port), server
