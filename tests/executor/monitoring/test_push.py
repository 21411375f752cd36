"""The push sink against a local webhook on 127.0.0.1: delivery in order, the server down, slow and erroring,
retries with back-off, the bounded buffer dropping the oldest (counted), and the config's checks."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import msgspec
import pytest
from prometheus_client import CollectorRegistry

from router_tuner.config.models import PushSinkSettings
from router_tuner.executor.monitoring.push import PushSink, http_post
from tests.conftest import config_issues, edit_config
from tests.executor.test_executor_support import build_executor, executor_config, intent, make_paper_venue

pytestmark = pytest.mark.timeout(60)


class Webhook:
    """A webhook on 127.0.0.1 that records bodies; ``mode`` makes it answer ok, 500, or too slowly."""

    def __init__(self, port: int = 0) -> None:
        self.bodies: list[dict] = []
        self.mode = "ok"
        self.release = threading.Event()  # a slow answer waits for this (the test sets it when done)
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                return

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if hook.mode == "slow":
                    hook.release.wait(10)
                status = 500 if hook.mode == "error" else 200
                if status == 200 and hook.mode == "ok":
                    hook.bodies.append(json.loads(body))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.02,), daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def stop(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    hook = Webhook()
    yield hook
    hook.stop()


def settings(url: str, **changes: object) -> PushSinkSettings:
    base = dict(enabled=True, url=url, timeout_s=0.2, max_attempts=3, backoff_initial_s=0.5, backoff_max_s=1.0,
                max_buffered=4)
    base.update(changes)
    return PushSinkSettings(**base)  # type: ignore[arg-type]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Waits:
    """The back-off sleep, recorded; each wait blocks until the test lets it pass (``go``)."""

    def __init__(self) -> None:
        self.asked: list[float] = []
        self.gate = threading.Semaphore(0)

    def __call__(self, seconds: float) -> bool:
        self.asked.append(seconds)
        self.gate.acquire(timeout=20)
        return False

    def go(self, n: int = 1) -> None:
        for _ in range(n):
            self.gate.release()


def until(what: str, condition: Callable[[], bool], timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


def snapshots(tmp_path: Path, n: int):
    """``n`` real health snapshots (and their alerts) from an executor that routed a few intents."""
    config = executor_config(health_interval_s=1.0)
    executor, _, _ = build_executor(config, make_paper_venue(config), tmp_path)
    executor.start()
    out = []
    for k in range(n):
        executor.process(intent(f"o{k}", size_hint_usd=300.0))
        executor.publish_now()
        out.append(executor.telemetry.last)
    return executor, out


def test_snapshots_are_delivered_in_order_with_health_alerts_and_metrics(tmp_path: Path, webhook: Webhook) -> None:
    executor, published = snapshots(tmp_path, 3)
    sink = PushSink(settings(webhook.url), executor.telemetry.metrics.registry).start()
    for health, alerts in published:
        sink.offer(health, alerts)
    until("three documents", lambda: len(webhook.bodies) == 3)
    sink.close(drain_s=5.0)
    assert [b["seq"] for b in webhook.bodies] == [1, 2, 3]
    first = webhook.bodies[0]
    assert first["source"] == "router-tuner" and first["ts_ns"] == published[0][0].ts_ns
    assert first["health"] == json.loads(msgspec.json.encode(published[0][0]))
    routed = first["metrics"]["router_orders_total"]
    assert routed and all(set(sample) == {"labels", "value"} for sample in routed)
    assert sink.delivered._value.get() == 3 and sink.pending() == 0


def test_telemetry_pushes_every_publish_when_configured(tmp_path: Path, webhook: Webhook) -> None:
    config = executor_config(health_interval_s=1.0)
    executor, _, _ = build_executor(config, make_paper_venue(config), tmp_path)
    sink = PushSink(settings(webhook.url), executor.telemetry.metrics.registry).start()
    executor.telemetry._push = sink  # what cli/live.py wires from executor.json "push"
    executor.start()  # publishes once
    executor.process(intent("o1", size_hint_usd=300.0))
    executor.publish_now()
    until("two documents", lambda: len(webhook.bodies) == 2)
    sink.close(drain_s=5.0)
    assert webhook.bodies[1]["health"]["orders_in_window"] == 1


def test_server_down_buffers_drops_the_oldest_then_delivers_the_rest_in_order(tmp_path: Path) -> None:
    _, published = snapshots(tmp_path, 1)
    port = free_port()  # nothing listens there yet: every POST is refused
    waits = Waits()
    sink = PushSink(settings(f"http://127.0.0.1:{port}/hook", max_attempts=100, max_buffered=3),
                    CollectorRegistry(), wait=waits).start()
    health, alerts = published[0]
    for _ in range(6):
        sink.offer(health, alerts)
    until("a refused attempt", lambda: len(waits.asked) >= 1)
    assert sink.pending() == 3 and sink.dropped.labels("buffer_full")._value.get() == 3
    waits.go(3)
    until("back-off grown", lambda: len(waits.asked) >= 4)
    assert waits.asked[:4] == [0.5, 1.0, 1.0, 1.0]  # doubling, capped at backoff_max_s
    hook = Webhook(port)  # the server comes back
    try:
        waits.go(100)
        until("the buffer drained", lambda: len(hook.bodies) == 3)
        sink.close(drain_s=5.0)
        assert [b["seq"] for b in hook.bodies] == [4, 5, 6]  # 1-3 were the oldest, dropped for room
        assert sink.failed_attempts._value.get() >= 4
    finally:
        hook.stop()


def test_a_slow_server_times_out_and_the_document_is_retried(tmp_path: Path, webhook: Webhook) -> None:
    _, published = snapshots(tmp_path, 1)
    waits = Waits()
    sink = PushSink(settings(webhook.url, timeout_s=0.2), CollectorRegistry(), wait=waits).start()
    webhook.mode = "slow"
    sink.offer(*published[0])
    until("a timed-out attempt", lambda: len(waits.asked) == 1)
    assert sink.failed_attempts._value.get() == 1 and sink.pending() == 1
    webhook.mode = "ok"
    waits.go()
    until("delivered on the retry", lambda: len(webhook.bodies) == 1)
    sink.close(drain_s=5.0)
    assert sink.delivered._value.get() == 1 and sink.dropped.labels("retries_exhausted")._value.get() == 0


def test_a_document_is_dropped_after_max_attempts_and_the_next_one_goes(tmp_path: Path, webhook: Webhook) -> None:
    _, published = snapshots(tmp_path, 1)
    waits = Waits()
    sink = PushSink(settings(webhook.url, max_attempts=2), CollectorRegistry(), wait=waits).start()
    webhook.mode = "error"
    sink.offer(*published[0])
    until("first failure", lambda: len(waits.asked) == 1)
    waits.go()
    until("given up", lambda: sink.dropped.labels("retries_exhausted")._value.get() == 1)
    webhook.mode = "ok"
    sink.offer(*published[0])
    until("the next document", lambda: len(webhook.bodies) == 1)
    sink.close(drain_s=5.0)
    assert webhook.bodies[0]["seq"] == 2 and sink.failed_attempts._value.get() == 2


def test_close_stops_a_sink_that_cannot_deliver_and_counts_what_is_left(tmp_path: Path) -> None:
    _, published = snapshots(tmp_path, 1)
    sink = PushSink(settings(f"http://127.0.0.1:{free_port()}/hook", max_attempts=100), CollectorRegistry()).start()
    sink.offer(*published[0])
    sink.offer(*published[0])
    sink.close(drain_s=0.1)  # the real back-off wait returns at once on close
    assert sink.dropped.labels("closed")._value.get() == 2


def test_http_post_returns_error_statuses_and_raises_when_nothing_answers(webhook: Webhook) -> None:
    webhook.mode = "error"
    assert http_post(webhook.url, b"{}", 2.0) == 500
    with pytest.raises(OSError):
        http_post(f"http://127.0.0.1:{free_port()}/hook", b"{}", 2.0)


@pytest.mark.parametrize(("change", "message"), [
    ({"url": "ftp://127.0.0.1/x"}, "url must be an http:// or https:// URL with a host"),
    ({"url": "http://user:pw@127.0.0.1/x"}, "url must not carry credentials"),
    ({"backoff_initial_s": 5.0, "backoff_max_s": 1.0}, "backoff_initial_s 5.0 exceeds backoff_max_s 1.0"),
    ({"max_buffered": 0}, "Expected `int` >= 1"),
    ({"timeout_s": float("inf")}, "inf is not a finite number"),
])
def test_bad_push_settings_are_refused_at_load(config_dir: Path, change: dict, message: str) -> None:
    edit_config(config_dir, "executor.json", lambda d: d["push"].update(change))
    issues = config_issues(config_dir)
    assert any(i.startswith("executor.json: $.push") and message in i for i in issues), issues
