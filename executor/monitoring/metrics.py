"""Prometheus metrics: a mirror of every RouterEvent and veto, the current health, alerts and the tuner block.

Conventions (``tests/executor/test_metric_names.py`` walks the registry and enforces them): names start with
``router_``, ``executor_`` or ``tuner_`` and end in their unit (``_seconds``, ``_usd``, ``_bps``, ``_ratio``;
bps, not a ratio, because every threshold in config and on the dashboard is in bps); counters are Counters
(exposed as ``..._total``); cost, slippage and time to fill are histograms per symbol and routed_as, not a
last value; open-ended label values (arm, policy id, codes, reasons) go through a :class:`LabelBudget`.

Each executor has its own ``CollectorRegistry`` (no process-global state, so tests can run several).
``serve`` binds the configured host (127.0.0.1 by default) on the configured port (0: any free port)
and returns the bound port.
"""

from __future__ import annotations

from collections.abc import Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from router_tuner.config.models import PrometheusSettings
from router_tuner.executor.adaptive.metrics import TunerCollector
from router_tuner.executor.adaptive.records import TunerHealth
from router_tuner.executor.monitoring.series import GaugeSeries, LabelBudget
from router_tuner.executor.records import Alert, BookFeedHealth, HealthSnapshot, OrderFeedHealth
from router_tuner.features.run_summary import ended_in_error
from router_tuner.risk.units import NS_PER_S
from router_tuner.router.contract import ContractSpec, contract_of, notional_usd
from router_tuner.router.events import FEE_UNPRICED, RouterEvent, VetoEvent, event_flags

NAN = float("nan")
QUARTILES: tuple[tuple[str, str], ...] = (("0.25", "slippage_p25_bps"), ("0.5", "slippage_p50_bps"),
                                          ("0.75", "slippage_p75_bps"))
"""(quantile label, field of the health snapshot and of its symbol rows) of the window's slippage quartiles."""

_HEALTH_GAUGES: tuple[tuple[str, str, str], ...] = (
    ("nav_usd", "executor_nav_usd", "NAV: wallet balance plus unrealized PnL at the marks"),
    ("wallet_balance_usd", "executor_wallet_balance_usd", "wallet balance (realized equity)"),
    ("nav_age_s", "executor_nav_age_seconds", "age of the NAV marks"),
    ("open_positions", "executor_open_positions", "open position legs"),
    ("gross_exposure_usd", "executor_gross_exposure_usd", "gross exposure at the marks"),
    ("orders_in_window", "executor_orders_in_window", "router events in the health window"),
    ("maker_ratio", "executor_maker_ratio", "share of maker-started filled orders that filled entirely as maker"),
    ("fallback_ratio", "executor_fallback_ratio", "share of maker-started orders that used the fallback"),
    ("reprice_loop_ratio", "executor_reprice_loop_ratio",
     "share of orders that re-priced at least health.reprice_loop_min times"),
    ("fee_drag_bps", "executor_fee_drag_bps", "fees over filled notional"),
    ("rolling_sharpe", "executor_rolling_sharpe", "per-trade Sharpe over the last closing orders"),
    ("window_realized_pnl_usd", "executor_window_realized_pnl_usd", "realized PnL of the health window"),
    ("vetoes_in_storm_window", "executor_vetoes_in_storm_window", "vetoes in the veto-storm window"),
)
"""(health snapshot field, metric name, help) of the unlabelled health gauges."""

_SYMBOL_GAUGES: tuple[tuple[str, str, str], ...] = (
    ("orders", "executor_symbol_orders_in_window", "the symbol's router events in the health window"),
    ("maker_ratio", "executor_symbol_maker_ratio", "the symbol's maker ratio over the health window"),
    ("fallback_ratio", "executor_symbol_fallback_ratio", "the symbol's fallback ratio over the health window"),
    ("reprice_loop_ratio", "executor_symbol_reprice_loop_ratio",
     "the symbol's share of orders that re-priced at least health.reprice_loop_min times"),
    ("fee_drag_bps", "executor_symbol_fee_drag_bps", "the symbol's fees over filled notional"),
    ("sharpe_per_trade", "executor_symbol_sharpe", "per-trade Sharpe of the symbol's closing orders"),
)
"""(symbol row field, metric name, help) of the per-symbol health gauges."""


def _value(value: float | None) -> float:
    return NAN if value is None else float(value)


class ExecutorMetrics:
    """All executor metrics on one registry.

    ``contracts`` maps each symbol to its contract spec (the config universe): the filled-notional counter
    counts USD (:func:`router.contract.notional_usd`), not ``price * qty``. ``settings`` gives the histogram
    buckets and the label budget.
    """

    def __init__(self, contracts: Mapping[str, ContractSpec], settings: PrometheusSettings) -> None:
        self._contracts = contracts
        self.labels = LabelBudget(settings.max_label_values)
        self.registry = CollectorRegistry()
        r = self.registry
        by_symbol = ("symbol",)
        self.router_orders = Counter("router_orders", "router events by arm, routing and outcome",
                                     ("symbol", "arm", "routed_as", "outcome"), registry=r)
        self.router_fills = Counter("router_fills", "fills by liquidity", ("symbol", "liquidity"), registry=r)
        self.router_filled_notional = Counter("router_filled_notional_usd", "filled USD notional", by_symbol,
                                              registry=r)
        self.router_fees = Counter("router_fees_usd", "fees paid", by_symbol, registry=r)
        self.router_rebates = Counter("router_rebates_usd", "rebates received", by_symbol, registry=r)
        self.router_reprices = Counter("router_reprices", "maker re-prices", by_symbol, registry=r)
        self.router_cancels = Counter("router_cancels", "cancels sent", by_symbol, registry=r)
        self.router_post_only_rejects = Counter("router_post_only_rejects", "post-only rejections", by_symbol,
                                                registry=r)
        self.router_fallbacks = Counter("router_fallbacks", "orders that used the fallback", by_symbol, registry=r)
        self.router_errors = Counter("router_errors", "router events whose route reported an error of its own (a flag "
                                     "alone is not one: router_flagged_orders)", by_symbol, registry=r)
        self.router_flagged = Counter("router_flagged_orders", "routed orders carrying a flag (venue_anomaly, "
                                      "fee_unpriced): their fills count, the tuner does not learn them",
                                      ("symbol", "reason"), registry=r)
        routed = ("symbol", "routed_as")
        self.router_cost = Histogram("router_cost_bps", "cost of filled orders vs the arrival mid, fees included "
                                     "(fee_unpriced orders left out: their cost leaves a fee out)",
                                     routed, buckets=settings.cost_buckets_bps, registry=r)
        self.router_slippage = Histogram("router_slippage_bps", "slippage of filled orders vs the arrival mid",
                                         routed, buckets=settings.slippage_buckets_bps, registry=r)
        self.router_time_to_fill = Histogram("router_time_to_fill_seconds", "arrival to last fill of filled orders",
                                             routed, buckets=settings.time_to_fill_buckets_s, registry=r)
        self.realized_pnl = Counter("executor_realized_pnl_usd", "realized PnL net of fees, gains and losses apart",
                                    ("symbol", "sign"), registry=r)
        self.vetoes = Counter("executor_vetoes", "veto reasons", ("code",), registry=r)
        self.intents = Counter("executor_intents", "intents by result", ("result",), registry=r)
        self.health = {field: Gauge(name, text, registry=r) for field, name, text in _HEALTH_GAUGES}
        self.window_slippage = Gauge("executor_window_slippage_bps", "slippage quartiles over the health window",
                                     ("quantile",), registry=r)
        self.symbol_health = {field: GaugeSeries(Gauge(name, text, by_symbol, registry=r))
                              for field, name, text in _SYMBOL_GAUGES}
        self.symbol_slippage = GaugeSeries(Gauge("executor_symbol_slippage_bps",
                                                 "the symbol's slippage quartiles over the health window",
                                                 ("symbol", "quantile"), registry=r))
        self.health_ts = Gauge("executor_health_timestamp_seconds", "when health was last computed", registry=r)
        self.policy_version = GaugeSeries(Gauge("executor_policy_version", "the acting policy version per symbol",
                                                ("symbol", "policy_id", "arm"), registry=r))
        self.policy_quality = GaugeSeries(Gauge("executor_policy_quality", "1 for the symbol's current quality band",
                                                ("symbol", "quality"), registry=r))
        self.expectancy = GaugeSeries(Gauge("executor_expectancy_bps", "realized PnL per notional by UTC hour",
                                            ("hour",), registry=r))
        self.alert_active = GaugeSeries(Gauge("executor_alert_active", "1 while the alert holds", ("code",),
                                              registry=r))
        self.alerts_raised = Counter("executor_alerts", "alerts raised", ("code",), registry=r)
        self.allocator_multiplier = GaugeSeries(Gauge(
            "executor_allocator_multiplier", "the feedback allocator's size multiplier per strategy and per symbol",
            ("scope", "name"), registry=r))
        self.order_feed_streaming = Gauge(
            "executor_order_feed_streaming",
            "1 while live order updates come by the user-data stream, 0 while by REST polling (NaN: no stream)",
            registry=r)
        self.order_feed_mode_age = Gauge("executor_order_feed_mode_age_seconds",
                                         "how long the order feed has been in its current mode", registry=r)
        self.order_feed_reconnects = Counter("executor_order_feed_reconnects", "user-data stream reconnects",
                                             registry=r)
        self.order_feed_violations = Counter("executor_order_feed_protocol_violations",
                                             "stream reports not believed (re-read by REST)", registry=r)
        self._order_feed_counts = (0, 0)
        self.book_feed_streaming = Gauge(
            "executor_book_feed_streaming",
            "1 while every live instrument's touch is streamed, 0 while some are read by REST (NaN: no stream)",
            registry=r)
        self.book_feed_mode_age = Gauge("executor_book_feed_mode_age_seconds",
                                        "how long the streamed touch has been in its current mode", registry=r)
        self.allocator_applied = Gauge("executor_allocator_applied",
                                       "1 when the executor sizes with the allocator's multipliers, 0 in shadow mode",
                                       registry=r)
        self.tuner = TunerCollector(self.labels)
        r.register(self.tuner)

    def observe_router_event(self, event: RouterEvent) -> None:
        s = event.symbol
        self.router_orders.labels(s, self.labels.value("arm", event.arm), event.routed_as, event.outcome).inc()
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
        flags = event_flags(event)
        if ended_in_error(event):
            self.router_errors.labels(s).inc()
        for flag in flags:
            self.router_flagged.labels(s, flag).inc()
        if event.cost_bps is not None and FEE_UNPRICED not in flags:
            self.router_cost.labels(s, event.routed_as).observe(event.cost_bps)
        if event.slippage_bps is not None:
            self.router_slippage.labels(s, event.routed_as).observe(event.slippage_bps)
        if event.time_to_fill_ms is not None:
            self.router_time_to_fill.labels(s, event.routed_as).observe(event.time_to_fill_ms / 1e3)
        if event.realized_pnl_usd is not None:
            sign = "gain" if event.realized_pnl_usd >= 0 else "loss"
            self.realized_pnl.labels(s, sign).inc(abs(event.realized_pnl_usd))

    def observe_veto(self, veto: VetoEvent) -> None:
        for reason in veto.reasons:
            self.vetoes.labels(self.labels.value("code", reason.code)).inc()

    def observe_health(self, health: HealthSnapshot) -> None:
        """Set every health gauge from ``health`` (called on each refresh, not only on the publish timer)."""
        for field, gauge in self.health.items():
            gauge.set(_value(getattr(health, field)))
        for quantile, field in QUARTILES:
            self.window_slippage.labels(quantile).set(_value(getattr(health, field)))
        self.health_ts.set(health.ts_ns / NS_PER_S)
        for field, series in self.symbol_health.items():
            series.publish({(row.symbol,): _value(getattr(row, field)) for row in health.symbols})
        self.symbol_slippage.publish({(row.symbol, quantile): _value(getattr(row, field))
                                      for row in health.symbols for quantile, field in QUARTILES})
        self.policy_version.publish({(row.symbol, self.labels.value("policy_id", row.policy_id),
                                      self.labels.value("arm", row.arm)): float(row.policy_version)
                                     for row in health.symbols})
        self.policy_quality.publish({(row.symbol, row.quality): 1.0 for row in health.symbols})
        self.expectancy.publish({(str(hour.hour),): hour.expectancy_bps for hour in health.expectancy})
        self.allocator_multiplier.publish({(a.scope, self.labels.value("name", a.name)): a.proposed
                                           for a in health.allocations})
        self.observe_order_feed(health.order_feed, health.ts_ns)
        self.observe_book_feed(health.book_feed, health.ts_ns)

    def observe_order_feed(self, feed: OrderFeedHealth | None, now_ns: int) -> None:
        """The order feed's mode and its age; its cumulative counts as counters (by their growth)."""
        if feed is None:
            self.order_feed_streaming.set(NAN)
            self.order_feed_mode_age.set(NAN)
            return
        self.order_feed_streaming.set(1.0 if feed.mode == "stream" else 0.0)
        self.order_feed_mode_age.set(max(0, now_ns - feed.since_ns) / NS_PER_S)
        reconnects, violations = self._order_feed_counts
        self.order_feed_reconnects.inc(max(0, feed.reconnects - reconnects))
        self.order_feed_violations.inc(max(0, feed.protocol_violations - violations))
        self._order_feed_counts = (max(reconnects, feed.reconnects), max(violations, feed.protocol_violations))

    def observe_book_feed(self, feed: BookFeedHealth | None, now_ns: int) -> None:
        """Whether the touch is streamed and since when (its counts are in the health snapshot)."""
        self.book_feed_streaming.set(NAN if feed is None else 1.0 if feed.mode == "stream" else 0.0)
        self.book_feed_mode_age.set(NAN if feed is None else max(0, now_ns - feed.since_ns) / NS_PER_S)

    def observe_nav_age(self, age_s: float) -> None:
        """The NAV age alone, between two health computations (it grows while nothing else changes)."""
        self.health["nav_age_s"].set(age_s)

    def observe_alerts(self, alerts: tuple[Alert, ...]) -> None:
        """The alerts of one publish: the active set, and one count per alert raised."""
        codes = [self.labels.value("code", alert.code) for alert in alerts]
        self.alert_active.publish({(code,): 1.0 for code in codes})
        for code in codes:
            self.alerts_raised.labels(code).inc()

    def observe_tuner_health(self, tuner: TunerHealth) -> None:
        """The tuner block of one health publish (served by :class:`TunerCollector`)."""
        self.tuner.observe(tuner)

    def serve(self, host: str, port: int) -> tuple[int, object]:
        """Start the HTTP endpoint; returns (bound port, server). ``server.shutdown()`` stops it."""
        server, _thread = start_http_server(port, addr=host, registry=self.registry)
        return int(server.server_port), server
