"""The live streamed touch in health: its mode (stream or rest), since when, its reconnects and its read counts
go into every snapshot, the ``health`` command and the Prometheus gauges; REST for ``alerts.book_feed_rest_s`` or
longer raises ``book_feed_rest`` (property: ``test_order_feed_health``). (End to end against the fakes:
``tests/executor/engine/test_live_stream.py``; the feed itself: ``tests/venues/test_book_feed.py``.)"""

from __future__ import annotations

from collections.abc import Callable

import msgspec

from router_tuner.cli.health import render
from router_tuner.config.loader import load_config
from router_tuner.executor.monitoring.alerts import evaluate_alerts
from router_tuner.executor.monitoring.health import book_feed_health
from router_tuner.executor.monitoring.metrics import ExecutorMetrics
from router_tuner.executor.records import BookFeedHealth
from router_tuner.features.allocator import Proposal
from router_tuner.risk.units import NS_PER_S
from router_tuner.router.venues.ccxt.book_feed import BookMode, BookStatus
from tests.executor.monitoring.test_telemetry import _health

NOW_NS = 1_700_000_000 * NS_PER_S


def book(mode: BookMode, age_s: float = 4.0) -> BookFeedHealth | None:
    return book_feed_health(BookStatus(mode=mode, since_ns=NOW_NS - int(age_s * NS_PER_S), reconnects=2,
                                       streamed_reads=90, rest_reads=10, ignored=1,
                                       last_error="NetworkError: closed" if mode == "rest" else None))


def test_without_a_streamed_touch_there_is_no_rest_alert() -> None:
    limits = msgspec.structs.replace(load_config().executor.alerts, book_feed_rest_s=0.0)
    assert all(a.code != "book_feed_rest" for a in evaluate_alerts(_health(ts_ns=NOW_NS), limits))


def test_the_status_becomes_the_snapshot_field_and_none_without_a_stream() -> None:
    assert book("stream") == BookFeedHealth(mode="stream", since_ns=NOW_NS - 4 * NS_PER_S, reconnects=2,
                                            streamed_reads=90, rest_reads=10, ignored=1, last_error=None)
    assert book_feed_health(None) is None


def test_the_health_command_shows_the_mode_its_age_and_the_reads() -> None:
    text = render(_health(ts_ns=NOW_NS, book_feed=book("rest")))
    (line,) = [line for line in text.splitlines() if line.startswith("book_feed")]
    assert line.endswith("rest for 4 s, 2 reconnects, 90 streamed / 10 REST reads, 1 touches not used, "
                         "last error: NetworkError: closed")
    assert not any(line.startswith("book_feed") for line in render(_health(ts_ns=NOW_NS)).splitlines())


def sampled_metrics() -> tuple[ExecutorMetrics, Callable[[str], float]]:
    """The executor's metrics on the default config, and a reader of one sample (which must exist)."""
    config = load_config()
    metrics = ExecutorMetrics(config.strategy.universe, config.executor.prometheus)

    def sample(name: str) -> float:
        value = metrics.registry.get_sample_value(name)
        assert value is not None, name
        return value

    return metrics, sample


def test_the_gauges_follow_the_mode_and_its_age() -> None:
    metrics, sample = sampled_metrics()
    metrics.observe_book_feed(book("stream"), NOW_NS)
    assert sample("executor_book_feed_streaming") == 1.0 and sample("executor_book_feed_mode_age_seconds") == 4.0
    metrics.observe_book_feed(book("rest", 9.0), NOW_NS)
    assert sample("executor_book_feed_streaming") == 0.0 and sample("executor_book_feed_mode_age_seconds") == 9.0
    metrics.observe_health(_health(ts_ns=NOW_NS, book_feed=book("stream")))
    assert sample("executor_book_feed_streaming") == 1.0
    metrics.observe_book_feed(None, NOW_NS)
    streaming, age = sample("executor_book_feed_streaming"), sample("executor_book_feed_mode_age_seconds")
    assert streaming != streaming and age != age  # NaN: the touch is read by REST only


def test_the_health_command_shows_control_characters_as_escapes() -> None:
    """A strategy name comes from the intents file and a feed's last error from the venue: an ESC sequence in either
    reached the operator's terminal as written (``\\x1b[2J`` clears it)."""
    proposal = Proposal(scope="strategy", name="s\x1b[2J", lots=3, sharpe_per_trade=None, current=1.0,
                        proposed=1.0, reason="too_few_lots")
    feed = msgspec.structs.replace(book("rest"), last_error="NetworkError: \x07closed")  # type: ignore[type-var]
    lines = render(_health(ts_ns=NOW_NS, allocations=(proposal,), book_feed=feed)).splitlines()
    assert all(line.isprintable() for line in lines)
    assert any("allocator strategy s\\x1b[2J" in line for line in lines)
    assert any(line.endswith("last error: NetworkError: \\x07closed") for line in lines)
