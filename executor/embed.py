"""The engine for embedding: a strategy in the same process hands intents in and gets each one's outcome.

``EmbeddedEngine`` builds, starts (reconciles with its venue, journal and store) and runs an ``Executor``
in a background thread, which owns it (SQLite connections stay in their thread), on the concurrent
engine (``engine.max_routes_in_flight`` routes at once), and feeds it from a queue.
``await engine.submit(intent)`` returns the intent's ``RouterEvent`` (it was routed) or ``VetoEvent``
(risk or the executor refused it) once its batch is journaled; ``submit_sync`` is the same for code
without an event loop. Everything the ``live`` command guarantees holds (one journal batch per intent,
Submission before the first send, restart reconciliation), because it is the same executor::

    with EmbeddedEngine.paper(load_config(), journal_path=journal, store_path=store) as engine:
        outcomes = asyncio.run(submit_all(engine, intents))  # asyncio.gather of engine.submit(i)

``experiments/examples/embed.py`` is the runnable example (exercised by ``tests/executor/engine/test_embed.py``).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import numpy as np

from router_tuner.config.models import ConfigBundle
from router_tuner.executor.intents import QueueIntentSource
from router_tuner.executor.journal import Journal
from router_tuner.executor.loop import Executor, StartReport
from router_tuner.executor.monitoring.metrics import ExecutorMetrics
from router_tuner.executor.monitoring.telemetry import Telemetry
from router_tuner.executor.store import ExecutorStore
from router_tuner.executor.venues import paper_account, synthetic_tapes
from router_tuner.risk.units import NS_PER_S
from router_tuner.router.events import Intent, RouterEvent, VetoEvent
from router_tuner.router.market.tape import MarketTape
from router_tuner.router.policy import RouterPolicy

Outcome = RouterEvent | VetoEvent


def outcome_intent_id(outcome: Outcome) -> str:
    """The intent an outcome answers."""
    return outcome.intent.intent_id if isinstance(outcome, VetoEvent) else outcome.intent_id


class DuplicateIntent(ValueError):
    """The intent id was already submitted (journaled, routing, or waiting): ids name one intent each."""


class EngineStopped(RuntimeError):
    """The engine is not running (closed, or its executor stopped on an error, given as the cause)."""


@dataclass(frozen=True, slots=True)
class Built:
    """What a builder makes in the engine's thread: the executor, the idle hook (a paper venue advances its
    replay there; ``None`` for a live venue, whose clock moves by itself) and what to close at the end."""

    executor: Executor
    on_idle: Callable[[], None] | None
    closing: tuple[Executor | Journal | ExecutorStore, ...]


class EmbeddedEngine:
    """An executor built by ``build`` and run in a background thread, fed intent by intent (see the module
    docstring). ``idle_poll_s`` is how long the thread waits for an intent while no route works."""

    def __init__(self, build: Callable[[], Built], *, idle_poll_s: float) -> None:
        if not idle_poll_s > 0:
            raise ValueError(f"idle_poll_s must be > 0, got {idle_poll_s!r}")
        self._build = build
        self.idle_poll_s = idle_poll_s
        self.executor: Executor | None = None
        self._ready = threading.Event()
        self._source = QueueIntentSource()
        self._waiting: dict[str, Future[Outcome]] = {}
        self._lock = threading.Lock()
        self._stop = False
        self._failure: BaseException | None = None
        self._thread: threading.Thread | None = None
        self.start_report: StartReport | None = None

    @classmethod
    def paper(cls, config: ConfigBundle, *, journal_path: Path, store_path: Path,
              tapes: Sequence[MarketTape] | None = None, seed: int | None = None,
              idle_poll_s: float = 0.05) -> EmbeddedEngine:
        """A paper engine as ``live`` builds it: the simulated venue over ``tapes`` (default: the synthetic
        market of ``executor.json``), its account beside the store, router.json's static policies."""
        def policy_for(symbol: str) -> RouterPolicy:
            return RouterPolicy.from_static(symbol, config.router)

        def build() -> Built:
            started_ns = time.time_ns()
            market = list(tapes) if tapes is not None else synthetic_tapes(config, start_ns=started_ns)
            venue = paper_account(config, market, name=f"paper-embed-{started_ns}",
                                  path=store_path.with_name(store_path.stem + ".paper.json"))
            journal, store = Journal(journal_path), ExecutorStore(store_path)
            universe = config.strategy.universe
            telemetry = Telemetry(config=config.executor, store=store, contracts=universe,
                                  metrics=ExecutorMetrics(universe, config.executor.prometheus))
            executor = Executor(config=config, venue=venue, journal=journal, store=store, policy_for=policy_for,
                                rng=np.random.default_rng(config.executor.paper.seed if seed is None else seed),
                                venue_positions=venue.positions, telemetry=telemetry, adaptive=None)
            step_ns = int(idle_poll_s * NS_PER_S)
            clock = executor.venue.clock  # under the route engine's lock
            return Built(executor=executor, closing=(executor, journal, store),
                         on_idle=lambda: clock.sleep_until(clock.now_ns() + step_ns))

        return cls(build, idle_poll_s=idle_poll_s)

    # --- lifecycle --------------------------------------------------------------------------------

    def start(self) -> StartReport:
        """Build, reconcile (``Executor.start``) and start routing; returns what the reconciliation found.

        An error building or reconciling is raised here (nothing was routed)."""
        if self._thread is not None:
            raise RuntimeError("EmbeddedEngine.start() called twice")
        self._thread = threading.Thread(target=self._run, name="router-engine", daemon=True)
        self._thread.start()
        self._ready.wait()
        if self.start_report is None:
            self._thread.join()
            raise EngineStopped(f"the engine did not start: {type(self._failure).__name__}: {self._failure}") \
                from self._failure
        return self.start_report

    def close(self) -> None:
        """Stop taking intents, finish and journal the routes in flight, close journal and store."""
        if self._thread is not None:
            self._source.close()
            self._thread.join()
        self._fail_waiting(EngineStopped("the engine was closed before the intent's outcome"))

    def __enter__(self) -> EmbeddedEngine:
        self.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.close()

    # --- submitting -------------------------------------------------------------------------------

    async def submit(self, intent: Intent) -> Outcome:
        """Route ``intent``; its RouterEvent or VetoEvent once journaled. Raises ``DuplicateIntent`` for an
        id seen before and ``EngineStopped`` when the engine is not running."""
        return await asyncio.wrap_future(self._enqueue(intent))

    def submit_sync(self, intent: Intent, timeout_s: float | None = None) -> Outcome:
        """``submit`` for code without an event loop: blocks until the outcome (``TimeoutError`` past
        ``timeout_s``; the intent still completes and is journaled)."""
        return self._enqueue(intent).result(timeout=timeout_s)

    def _enqueue(self, intent: Intent) -> Future[Outcome]:
        if not isinstance(intent, Intent):
            raise TypeError(f"expected an Intent, got {type(intent).__name__}")
        with self._lock:
            if self._thread is None or not self._thread.is_alive() or self._stop:
                raise EngineStopped("the engine is not running: start() it (or see the error that stopped it)") \
                    from self._failure
            if intent.intent_id in self._waiting or (self.executor is not None
                                                      and self.executor.knows(intent.intent_id)):
                raise DuplicateIntent(f"intent {intent.intent_id} was submitted before: ids name one intent each")
            future: Future[Outcome] = Future()
            self._waiting[intent.intent_id] = future
        self._source.put(intent)
        return future

    # --- the executor thread ----------------------------------------------------------------------

    def _run(self) -> None:
        built: Built | None = None
        try:
            built = self._build()
            self.executor = built.executor
            built.executor.on_outcome = self._resolve
            self.start_report = built.executor.start()
            self._ready.set()
            built.executor.run(self._source, idle_poll_s=self.idle_poll_s, should_stop=lambda: False,
                               on_idle=built.on_idle)
        except BaseException as error:  # handed to start() or to every waiting caller; the engine stops
            self._failure = error
            self._fail_waiting(EngineStopped(f"the executor stopped: {type(error).__name__}: {error}"))
            if self._ready.is_set():
                raise
        finally:
            with self._lock:
                self._stop = True
            self._ready.set()
            for resource in built.closing if built is not None else ():
                resource.close()

    def _resolve(self, outcome: Outcome) -> None:
        with self._lock:
            future = self._waiting.pop(outcome_intent_id(outcome), None)
        if future is not None:
            future.set_result(outcome)

    def _fail_waiting(self, error: EngineStopped) -> None:
        with self._lock:
            waiting, self._waiting = self._waiting, {}
        for future in waiting.values():
            if not future.done():
                future.set_exception(error)
