"""The push sink: health and metrics snapshots POSTed as JSON to a webhook, for teams without a scraper.

Why a thread and a buffer: the loop must never wait on a dashboard. ``offer`` encodes the document and
appends it to a bounded buffer (full: the oldest is dropped and counted); one background thread POSTs the
oldest document, retrying a failure (an error status, a refused connection, no answer within
``timeout_s``) up to ``max_attempts`` times with exponential back-off, then drops it (counted). Documents
leave in order and carry a ``seq`` number, so a receiver can tell a gap (a drop) or a repeat (a retry of
a POST whose answer was lost: delivery is at least once) from the stream. Settings: ``executor.json``
``push`` (``config.models.PushSinkSettings``).

The document: ``{"source", "seq", "ts_ns", "health": <HealthSnapshot>, "alerts": [<Alert>...],
"metrics": {<sample name>: [{"labels": {...}, "value": v}, ...]}}``; non-finite values are ``null``.
"""

from __future__ import annotations

import logging
import threading
import urllib.error
import urllib.request
from collections import deque
from collections.abc import Callable
from typing import Any

import msgspec
from prometheus_client import CollectorRegistry, Counter, Gauge

from router_tuner.config.models import PushSinkSettings
from router_tuner.executor.records import Alert, HealthSnapshot

logger = logging.getLogger(__name__)

Post = Callable[[str, bytes, float], int]
"""(url, body, timeout_s) -> HTTP status; raises ``OSError`` when no answer came."""


def http_post(url: str, body: bytes, timeout_s: float) -> int:
    """POST a JSON body; the answer's status (an error status is returned, not raised)."""
    request = urllib.request.Request(url, data=body, method="POST", headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:  # the scheme is http(s), checked at load
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


def metrics_snapshot(registry: CollectorRegistry) -> dict[str, list[dict[str, Any]]]:
    """Every sample of ``registry`` by sample name (``..._total``, ``..._bucket`` as Prometheus serves them)."""
    samples: dict[str, list[dict[str, Any]]] = {}
    for family in registry.collect():
        for sample in family.samples:
            samples.setdefault(sample.name, []).append({"labels": dict(sample.labels), "value": sample.value})
    return samples


class PushSink:
    """Buffers documents and POSTs them from one background thread (see the module docstring).

    ``post`` and ``wait`` are the network and the back-off sleep (``wait(seconds)`` returns True when the
    sink is closing); tests pass their own to observe them. Counters go on ``registry``, so the scrape (if
    any) and the pushed documents show them too.
    """

    def __init__(self, settings: PushSinkSettings, registry: CollectorRegistry, *, post: Post = http_post,
                 wait: Callable[[float], bool] | None = None) -> None:
        self.settings = settings
        self._registry = registry
        self._post = post
        self._closing = threading.Event()
        self._wait = wait if wait is not None else self._closing.wait
        self._buffer: deque[bytes] = deque()
        self._ready = threading.Condition()
        self._seq = 0
        self.delivered = Counter("executor_push_delivered", "documents the webhook accepted", registry=registry)
        self.failed_attempts = Counter("executor_push_failed_attempts", "POSTs that failed (each retry counts)",
                                       registry=registry)
        self.dropped = Counter("executor_push_dropped", "documents given up on", ("reason",), registry=registry)
        self.buffered = Gauge("executor_push_buffered", "documents waiting to be pushed", registry=registry)
        self._thread = threading.Thread(target=self._run, name="push-sink", daemon=True)

    def start(self) -> PushSink:
        self._thread.start()
        return self

    def offer(self, health: HealthSnapshot, alerts: tuple[Alert, ...]) -> None:
        """Queue the snapshot with its alerts and the current metric samples; never blocks on the network."""
        with self._ready:
            self._seq += 1
            body = msgspec.json.encode({"source": "router-tuner", "seq": self._seq, "ts_ns": health.ts_ns,
                                        "health": health, "alerts": alerts,
                                        "metrics": metrics_snapshot(self._registry)})
            if len(self._buffer) >= self.settings.max_buffered:
                self._buffer.popleft()
                self.dropped.labels("buffer_full").inc()
            self._buffer.append(body)
            self.buffered.set(len(self._buffer))
            self._ready.notify()

    def pending(self) -> int:
        with self._ready:
            return len(self._buffer)

    def close(self, drain_s: float) -> None:
        """Give the thread up to ``drain_s`` to empty the buffer, then stop it (what is left is dropped)."""
        with self._ready:
            self._ready.wait_for(lambda: not self._buffer, timeout=drain_s)
            self._closing.set()
            self._ready.notify_all()
        if self._thread.is_alive():
            self._thread.join(timeout=self.settings.timeout_s + 1.0)
        with self._ready:
            if self._buffer:
                self.dropped.labels("closed").inc(len(self._buffer))
                logger.warning("push sink closed with %d documents not delivered", len(self._buffer))

    def _run(self) -> None:
        while not self._closing.is_set():
            with self._ready:
                self._ready.wait_for(lambda: self._buffer or self._closing.is_set())
                if self._closing.is_set():
                    return
                body = self._buffer[0]
            delivered = self._deliver(body)
            if not delivered and self._closing.is_set():
                return  # interrupted by close(): the document stays, counted as dropped there
            with self._ready:
                if self._buffer and self._buffer[0] is body:  # not pushed out by a full buffer meanwhile
                    self._buffer.popleft()
                    if not delivered:
                        self.dropped.labels("retries_exhausted").inc()
                self.buffered.set(len(self._buffer))
                self._ready.notify_all()

    def _deliver(self, body: bytes) -> bool:
        """POST ``body`` until accepted or ``max_attempts`` failures; False when given up (or closing)."""
        s = self.settings
        backoff_s = s.backoff_initial_s
        for attempt in range(1, s.max_attempts + 1):
            try:
                status = self._post(s.url, body, s.timeout_s)
                problem = None if 200 <= status < 300 else f"HTTP {status}"
            except OSError as error:  # refused, reset, timed out
                problem = f"{type(error).__name__}: {error}"
            if problem is None:
                self.delivered.inc()
                return True
            self.failed_attempts.inc()
            logger.warning("push to %s failed (attempt %d/%d): %s", s.url, attempt, s.max_attempts, problem)
            if attempt < s.max_attempts:
                if self._wait(backoff_s):
                    return False
                backoff_s = min(2 * backoff_s, s.backoff_max_s)
        return False
