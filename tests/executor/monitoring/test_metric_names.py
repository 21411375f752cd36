"""The operator surface follows Prometheus conventions: walked from the registry, not listed by hand.

Names carry a namespace and end in their unit (``_seconds``, never ``_s``); counters are counters (served as
``_total``) and nothing else ends in ``_total``; cost, slippage and time to fill are histograms; labels come
from a closed list and each keeps at most ``prometheus.max_label_values`` values. The health gauges follow
every intent, not the publish timer (issue 16: 10 s after 27 orders ``orders_in_window`` read 0).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry
from prometheus_client.core import Metric

from router_tuner.executor.adaptive.records import ExcludedArm, TunerHealth, TunerSymbolHealth
from router_tuner.executor.loop import Executor
from router_tuner.executor.monitoring.series import OVERFLOW, LabelBudget
from tests.executor.test_executor_support import build_executor, executor_config, intent, make_paper_venue

NAME = re.compile(r"^(router|executor|tuner)_[a-z][a-z0-9_]*[a-z0-9]$")
UNITS = ("seconds", "usd", "bps", "ratio")
NOT_BASE_UNITS = {"s", "ms", "ns", "us", "sec", "secs", "millis", "milliseconds", "minutes", "hours", "pct",
                  "percent"}
LABELS = {"symbol", "arm", "routed_as", "outcome", "liquidity", "sign", "code", "result", "quantile", "quality",
          "policy_id", "hour", "reason", "scope", "name"}
"""Every label the executor may export; each is a closed set or goes through ``LabelBudget``."""
COUNTERS_BY_ISSUE = ("tuner_learned_outcomes", "tuner_drifts_detected", "tuner_rejected_outcomes",
                     "tuner_budget_blocked_decisions")
HISTOGRAMS_BY_ISSUE = ("router_cost_bps", "router_slippage_bps", "router_time_to_fill_seconds")


def tuner_block(symbol: str = "BTCUSDT") -> TunerHealth:
    row = TunerSymbolHealth(
        symbol=symbol, mode="live", agreement=0.5, shadow_proposals=4, policy_id=f"tuner-{symbol}", policy_version=2,
        published_arm="o0.00_b0.00", last_arm="o0.50_b0.00", learned_outcomes=27, budget_orders=27,
        budget_charged_bps_per_order=0.2, budget_max_bps_per_order=1.0, budget_charged_usd_today=0.5,
        budget_max_usd_per_day=10.0, budget_blocked_decisions=1, allowed_arms=9,
        excluded_arms=(ExcludedArm(arm="o4.00_b0.00", reason="max_cost_bps", threshold=20.0, observed=25.0),),
        all_arms_excluded=False, safety_fallbacks=0, drifts_detected=1, rejections={"non_finite": 2})
    return TunerHealth(ts_ns=1, router_events_learned=27, checkpoint_generation=1, symbols=(row,))


def exercised_executor(tmp_path: Path) -> Executor:
    """An executor after opening and closing orders, a veto, a publish and a tuner block: every family fed."""
    config = executor_config()
    executor, _, _ = build_executor(config, make_paper_venue(config), tmp_path)
    executor.start()
    for k in range(4):
        executor.process(intent(f"o{k}", size_hint_usd=300.0))
    executor.process(intent("close", side="sell", close_position=True, size_hint_usd=0.0))
    executor.process(intent("veto", symbol="DOGEUSDT"))
    executor.telemetry.metrics.observe_tuner_health(tuner_block())
    executor.publish_now()
    return executor


def families(registry: CollectorRegistry) -> Iterator[Metric]:
    yield from registry.collect()


def served_names(registry: CollectorRegistry) -> set[str]:
    """The sample names a scrape can show: counters as ``_total``, histograms as bucket/sum/count."""
    names: set[str] = set()
    for family in families(registry):
        if family.type == "counter":
            names.add(f"{family.name}_total")
        elif family.type == "histogram":
            names.update(f"{family.name}{suffix}" for suffix in ("_bucket", "_sum", "_count"))
        else:
            names.add(family.name)
    return names


def test_every_metric_follows_the_naming_conventions(tmp_path: Path) -> None:
    executor = exercised_executor(tmp_path)
    seen = {}
    for family in families(executor.telemetry.metrics.registry):
        name, tokens = family.name, family.name.split("_")
        seen[name] = family.type
        assert NAME.match(name), f"{name}: namespace router_/executor_/tuner_, lower snake case"
        assert family.documentation.strip(), f"{name}: no help text"
        assert not NOT_BASE_UNITS & set(tokens), f"{name}: a unit that is not a base unit (use _seconds)"
        for unit in UNITS:
            assert unit not in tokens[:-1], f"{name}: the unit {unit} must end the name"
        assert not name.endswith("_total"), f"{name}: only counters are served with _total (added by the client)"
        if family.type == "histogram":
            assert tokens[-1] in UNITS, f"{name}: a histogram names its unit"
        for sample in family.samples:
            labels = set(sample.labels) - {"le"}
            assert labels <= LABELS, f"{name}: labels outside the closed list: {labels - LABELS}"
            if family.type == "counter":
                assert sample.name in (f"{name}_total", f"{name}_created")
    assert all(seen[name] == "counter" for name in COUNTERS_BY_ISSUE), "cumulative tuner figures are counters"
    assert all(seen[name] == "histogram" for name in HISTOGRAMS_BY_ISSUE)
    assert "executor_nav_age_seconds" in seen and "router_last_cost_bps" not in seen


def test_label_values_stay_within_the_budget(tmp_path: Path) -> None:
    executor = exercised_executor(tmp_path)
    metrics = executor.telemetry.metrics
    cap = executor.config.executor.prometheus.max_label_values
    event = next(executor.journal.read("router"))
    for k in range(cap + 10):  # a policy source inventing arms
        metrics.observe_router_event(msgspec.structs.replace(event, arm=f"invented{k}"))
    values: dict[tuple[str, str], set[str]] = {}
    for family in families(metrics.registry):
        for sample in family.samples:
            for label, value in sample.labels.items():
                values.setdefault((family.name, label), set()).add(value)
    arms = values[("router_orders", "arm")]
    assert len(arms) == cap + 1 and OVERFLOW in arms  # the first `cap` arms, then "other"
    assert all(len(v) <= cap + 1 for (_, label), v in values.items() if label not in ("le",))


@given(max_values=st.integers(1, 8), values=st.lists(st.text(min_size=1, max_size=4), max_size=60))
def test_label_budget_keeps_the_first_values_and_maps_the_rest_to_other(max_values: int, values: list[str]) -> None:
    budget = LabelBudget(max_values)
    exported = [budget.value("arm", v) for v in values]
    kept = list(dict.fromkeys(values))[:max_values]
    assert set(exported) - {OVERFLOW} <= set(kept) and len(set(exported) - {OVERFLOW}) <= max_values
    assert all(e == v for e, v in zip(exported, values, strict=True) if v in kept)


def test_label_budget_refuses_a_budget_of_nothing() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        LabelBudget(0)


def test_health_gauges_follow_every_intent_not_the_publish_timer(tmp_path: Path) -> None:
    """27 routed orders, no publish due (interval 60 s): the gauges count them, the store has no new row."""
    config = executor_config(health_interval_s=3600.0)
    executor, journal, store = build_executor(config, make_paper_venue(config), tmp_path)
    executor.start()
    rows = store.health_count()

    class Once:
        exhausted = False
        sent = 0

        def next_intent(self, _poll_s: float):
            if self.sent == 27:
                self.exhausted = True
                return None
            self.sent += 1
            if self.sent % 2:  # open, then close: no exposure cap vetoes any of the 27
                return intent(f"g{self.sent}", size_hint_usd=300.0)
            return intent(f"g{self.sent}", side="sell", close_position=True, size_hint_usd=0.0)

    executor.run(Once(), idle_poll_s=0.0, should_stop=lambda: False, on_idle=None)
    sample = executor.telemetry.metrics.registry.get_sample_value
    assert store.health_count() == rows, "no publish was due"
    assert sample("executor_orders_in_window") == journal.count("router") == 27
    assert sample("executor_symbol_orders_in_window", {"symbol": "BTCUSDT"}) == 27
    events = list(journal.read("router"))
    maker_filled = [e for e in events if e.started_maker and e.filled_qty > 0]
    maker_ratio = sample("executor_maker_ratio")
    if maker_filled:
        assert maker_ratio == pytest.approx(sum(e.is_maker_final for e in maker_filled) / len(maker_filled))
    else:
        assert math.isnan(maker_ratio)
    assert sample("router_cost_bps_count", {"symbol": "BTCUSDT", "routed_as": events[0].routed_as}) >= 1
