"""The live order feed in health: its mode (stream or polling), since when and its reconnects go into every
snapshot, the ``health`` command and the Prometheus gauges; polling for ``alerts.order_feed_polling_s`` or longer
raises ``order_feed_polling`` (as the streamed touch read by REST for ``alerts.book_feed_rest_s`` raises
``book_feed_rest``). (End to end against the fakes: ``tests/executor/engine/test_live_stream.py``.)"""

from __future__ import annotations

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from router_tuner.cli.health import render
from router_tuner.config.loader import load_config
from router_tuner.config.models import ConfigBundle
from router_tuner.executor.monitoring.alerts import evaluate_alerts
from router_tuner.executor.records import OrderFeedHealth
from router_tuner.risk.units import NS_PER_S
from tests.executor.monitoring.test_book_feed_health import book, sampled_metrics
from tests.executor.monitoring.test_telemetry import _health

NOW_NS = 1_700_000_000 * NS_PER_S


def feed(mode: str, age_s: float, reconnects: int = 0, violations: int = 0) -> OrderFeedHealth:
    return OrderFeedHealth(mode=mode, since_ns=NOW_NS - int(age_s * NS_PER_S), reconnects=reconnects,
                           protocol_violations=violations, last_error="NetworkError: closed" if mode == "polling"
                           else None)


def with_threshold(seconds: float) -> ConfigBundle:
    base = load_config()
    ex = base.executor
    return msgspec.structs.replace(base, executor=msgspec.structs.replace(
        ex, alerts=msgspec.structs.replace(ex.alerts, order_feed_polling_s=seconds)))


# per alert: the health field, its threshold key, a feed in a mode for a given age, the modes (up, down), the detail
FEEDS = {
    "order_feed_polling": ("order_feed", "order_feed_polling_s", lambda mode, age: feed(mode, age, reconnects=2),
                           ("stream", "polling"), "order updates by REST polling for"),
    "book_feed_rest": ("book_feed", "book_feed_rest_s", lambda mode, age: book(mode, age), ("stream", "rest"),
                       "touches read by REST for"),
}


@pytest.mark.parametrize("code", FEEDS)
@given(threshold=st.floats(0.0, 600.0), age=st.floats(0.0, 1200.0), down=st.booleans())
def test_a_feed_alert_fires_exactly_when_its_fallback_lasted_the_threshold(code: str, threshold: float, age: float,
                                                                          down: bool) -> None:
    field, key, make, modes, detail = FEEDS[code]
    limits = msgspec.structs.replace(load_config().executor.alerts, **{key: threshold})
    health = _health(ts_ns=NOW_NS, **{field: make(modes[down], age)})
    fired = [a for a in evaluate_alerts(health, limits) if a.code == code]
    observed = (NOW_NS - getattr(health, field).since_ns) / NS_PER_S
    assert bool(fired) == (down and observed >= threshold)
    if fired:
        (alert,) = fired
        assert alert.threshold == threshold and alert.observed == observed
        assert alert.detail.startswith(f"executor.alerts.{key}: {detail}") and "2 reconnects" in alert.detail


def test_without_a_stream_there_is_no_feed_and_no_alert() -> None:
    limits = with_threshold(0.0).executor.alerts
    assert all(a.code != "order_feed_polling" for a in evaluate_alerts(_health(ts_ns=NOW_NS), limits))


def test_the_health_command_shows_the_feed_mode_its_age_and_reconnects() -> None:
    text = render(_health(ts_ns=NOW_NS, order_feed=feed("polling", 12.5, reconnects=3, violations=1)))
    (line,) = [line for line in text.splitlines() if line.startswith("order_feed")]
    assert "polling for 12.5 s, 3 reconnects, 1 reports not believed, last error: NetworkError: closed" in line
    assert not any(line.startswith("order_feed") for line in render(_health(ts_ns=NOW_NS)).splitlines())


def test_the_gauges_follow_the_mode_and_the_counters_count_each_reconnect_once() -> None:
    metrics, sample = sampled_metrics()

    metrics.observe_order_feed(feed("stream", 3.0), NOW_NS)
    assert sample("executor_order_feed_streaming") == 1.0 and sample("executor_order_feed_mode_age_seconds") == 3.0
    metrics.observe_order_feed(feed("polling", 1.0, reconnects=0), NOW_NS)
    assert sample("executor_order_feed_streaming") == 0.0
    for _ in range(3):  # the same status seen on three refreshes counts once
        metrics.observe_order_feed(feed("stream", 0.5, reconnects=1, violations=2), NOW_NS)
    assert sample("executor_order_feed_reconnects_total") == 1.0
    assert sample("executor_order_feed_protocol_violations_total") == 2.0
    metrics.observe_order_feed(None, NOW_NS)
    assert sample("executor_order_feed_streaming") != sample("executor_order_feed_streaming")  # NaN: no stream
