"""The tuner block of health as Prometheus metrics: gauges for state, counters for what only grows.

Why a collector rather than Gauges: learned outcomes, drifts, rejected outcomes, budget-blocked decisions
and learned router events are running totals the tuner keeps (and checkpoints across restarts); they are
exported as counters with the tuner's own value, read at scrape time from the last ``TunerHealth``, so a
``rate()`` over them is right and nothing is counted twice.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from router_tuner.executor.adaptive.records import TunerHealth, TunerSymbolHealth
from router_tuner.executor.monitoring.series import LabelBudget

_PER_SYMBOL_GAUGES: tuple[tuple[str, str], ...] = (
    ("tuner_live", "1 when the tuner routes the symbol, 0 in shadow mode"),
    ("tuner_shadow_agreement_ratio", "shadow agreement over the window (NaN before any proposal)"),
    ("tuner_budget_charged_per_order_bps", "exploration cost charged per order"),
    ("tuner_budget_cap_per_order_bps", "exploration budget cap per order (tuner.json deployment.budget)"),
    ("tuner_budget_charged_today_usd", "exploration cost charged today"),
    ("tuner_budget_cap_per_day_usd", "exploration budget cap per day (tuner.json deployment.budget)"),
    ("tuner_all_arms_excluded", "1 when every allowed arm is excluded by the safety bounds"),
)
_PER_SYMBOL_COUNTERS: tuple[tuple[str, str], ...] = (
    ("tuner_learned_outcomes", "outcomes the tuner learned"),
    ("tuner_drifts_detected", "drifts detected"),
    ("tuner_budget_blocked_decisions", "decisions where the exploration budget removed arms"),
)


def _symbol_values(row: TunerSymbolHealth) -> dict[str, float]:
    return {
        "tuner_live": 1.0 if row.mode == "live" else 0.0,
        "tuner_shadow_agreement_ratio": float("nan") if row.agreement is None else row.agreement,
        "tuner_budget_charged_per_order_bps": row.budget_charged_bps_per_order,
        "tuner_budget_cap_per_order_bps": row.budget_max_bps_per_order,
        "tuner_budget_charged_today_usd": row.budget_charged_usd_today,
        "tuner_budget_cap_per_day_usd": row.budget_max_usd_per_day,
        "tuner_all_arms_excluded": 1.0 if row.all_arms_excluded else 0.0,
        "tuner_learned_outcomes": float(row.learned_outcomes),
        "tuner_drifts_detected": float(row.drifts_detected),
        "tuner_budget_blocked_decisions": float(row.budget_blocked_decisions),
    }


class TunerCollector(Collector):
    """Serves the last :class:`TunerHealth` given to :meth:`observe`; nothing before the first."""

    def __init__(self, labels: LabelBudget) -> None:
        self._labels = labels
        self._last: TunerHealth | None = None

    def observe(self, tuner: TunerHealth) -> None:
        self._last = tuner  # one reference swap: a concurrent scrape sees the old block or the new one

    def describe(self) -> Iterator[Metric]:
        """The families without samples, so the registry knows the names before the first publish."""
        return self._families(None)

    def collect(self) -> Iterator[Metric]:
        return self._families(self._last)

    def _families(self, tuner: TunerHealth | None) -> Iterator[Metric]:
        rows = tuner.symbols if tuner is not None else ()
        values = {row.symbol: _symbol_values(row) for row in rows}
        for kind, table in ((GaugeMetricFamily, _PER_SYMBOL_GAUGES), (CounterMetricFamily, _PER_SYMBOL_COUNTERS)):
            for name, text in table:
                family = kind(name, text, labels=("symbol",))
                for symbol, row_values in values.items():
                    family.add_metric((symbol,), row_values[name])
                yield family
        label = self._labels.value
        versions: dict[tuple[str, ...], float] = {}
        excluded: dict[tuple[str, ...], float] = {}
        rejected: dict[tuple[str, ...], float] = {}
        for row in rows:  # summed per label set: two values past the label budget share ``other``
            versions[(row.symbol, label("policy_id", row.policy_id), label("arm", row.published_arm))] = float(
                row.policy_version)
            for arm in row.excluded_arms:
                excluded[(row.symbol, label("arm", arm.arm), label("reason", arm.reason))] = 1.0
            for reason, count in row.rejections.items():
                key = (row.symbol, label("reason", reason))
                rejected[key] = rejected.get(key, 0.0) + float(count)
        for family, series in (
                (GaugeMetricFamily("tuner_policy_version", "the tuner's published version",
                                   labels=("symbol", "policy_id", "arm")), versions),
                (GaugeMetricFamily("tuner_excluded_arm", "1 per arm excluded by the safety bounds",
                                   labels=("symbol", "arm", "reason")), excluded),
                (CounterMetricFamily("tuner_rejected_outcomes", "outcomes not learned, by reason",
                                     labels=("symbol", "reason")), rejected)):
            for labels, value in series.items():
                family.add_metric(labels, value)
            yield family
        learned = CounterMetricFamily("tuner_router_events_learned", "journal position the tuner learned up to")
        if tuner is not None:
            learned.add_metric((), float(tuner.router_events_learned))
        yield learned
