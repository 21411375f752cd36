"""Telemetry publisher: keeps the recent events health needs and publishes to the store and Prometheus.

``maybe_publish`` is called by the loop after every intent and on every idle poll; it publishes when
``health.interval_s`` has passed since the last publish, so health reports on idle days too, and every
publish writes the snapshot and its alerts to the executor store as well as the metrics. Between publishes
``refresh`` recomputes health for the gauges alone (no store row, no alert), after every intent: a scrape
shows the orders routed since the last publish, not the state of up to ``interval_s`` ago. With adaptive
routing the caller passes the tuner block (``executor.adaptive.health``): it is stored with the snapshot,
mirrored in the tuner gauges, and its alerts (budget, all arms excluded) join the snapshot's. A live run
with the user-data stream puts the order feed's mode in every snapshot (``order_feed``). The feedback
allocator (``executor.allocation``) steps on the same timer: its proposals go into the snapshot.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Mapping

import msgspec

from router_tuner.config.models import ExecutorConfig
from router_tuner.executor.adaptive.records import TunerHealth
from router_tuner.executor.allocation import Allocation
from router_tuner.executor.monitoring.alerts import (
    evaluate_alerts,
    evaluate_champion_gate_alerts,
    evaluate_tuner_alerts,
)
from router_tuner.executor.monitoring.health import compute_health, is_closing
from router_tuner.executor.monitoring.metrics import ExecutorMetrics
from router_tuner.executor.monitoring.push import PushSink
from router_tuner.executor.records import Alert, BookFeedHealth, ChampionGate, HealthSnapshot, OrderFeedHealth
from router_tuner.executor.store import ExecutorStore
from router_tuner.risk.portfolio import PortfolioState
from router_tuner.risk.units import NS_PER_S
from router_tuner.router.contract import ContractSpec
from router_tuner.router.events import RouterEvent, TradeRecord, VetoEvent
from router_tuner.router.policy import RouterPolicy
from router_tuner.tuner.policy_source import ChampionGateStatus


class Telemetry:
    """Recent router events and veto times, the publish timer, and the two sinks.

    ``contracts`` maps each symbol to its contract spec (the config universe): health's notionals use it.
    ``champion_gates`` (a registry policy source's :meth:`~tuner.policy_source.RegistryPolicySource.champion_gates`)
    puts each served symbol's champion gate in the snapshot and alerts on a champion that is not acted on.
    ``push`` (``executor.json`` ``push``, off by default) also receives every published snapshot.
    """

    def __init__(self, *, config: ExecutorConfig, store: ExecutorStore, metrics: ExecutorMetrics,
                 contracts: Mapping[str, ContractSpec],
                 champion_gates: Callable[[], Iterable[ChampionGateStatus]] | None = None,
                 push: PushSink | None = None) -> None:
        self._config = config
        self._push = push
        self._champion_gates = champion_gates
        self._contracts = contracts
        self._store = store
        self.metrics = metrics
        self._events: deque[RouterEvent] = deque(maxlen=config.health.window_events)
        self._closing: deque[RouterEvent] = deque(maxlen=config.health.sharpe_window)
        self._veto_ts_ns: deque[int] = deque()
        self._storm_window_ns = int(config.alerts.veto_storm_window_s * NS_PER_S)
        self._storm_peak = 0
        """The most vetoes in one ``alerts.veto_storm_window_s`` since the last publish: alerts are evaluated at a
        publish, once a ``health.interval_s``, and a window shorter than that saw only the storms of its last
        seconds (10 s under a 60 s interval missed one in the other 50 s)."""
        self._interval_ns = int(config.health.interval_s * NS_PER_S)
        self._next_publish_ns: int | None = None
        self._changed = True
        self.last: tuple[HealthSnapshot, tuple[Alert, ...]] | None = None
        self.last_tuner: TunerHealth | None = None
        self.allocation = Allocation(config.allocator, contracts)
        self.order_feed: Callable[[], OrderFeedHealth | None] = lambda: None
        """The live order stream's status, read at each health computation (the executor sets it)."""
        self.book_feed: Callable[[], BookFeedHealth | None] = lambda: None
        """The live streamed touch's status, read likewise."""
        metrics.allocator_applied.set(1.0 if config.allocator.apply else 0.0)

    def seed(self, events: Iterable[RouterEvent], veto_ts_ns: Iterable[int], trades: Iterable[TradeRecord]) -> None:
        """Recent history from the journal after a restart (metrics counters start from zero).

        ``events`` and ``trades`` in journal order; the windows keep what they need (the last closing orders
        may lie far before the last ``window_events`` events, so pass them all). The allocator's multipliers
        come back from the last stored snapshot.
        """
        for event in events:
            self._remember(event)
        self._veto_ts_ns.extend(sorted(veto_ts_ns))
        self.allocation.observe(trades)
        latest = self._store.latest_health()
        if latest is not None:
            self.allocation.restore(latest.allocations)

    def observe_trade(self, trade: TradeRecord) -> None:
        """A journaled trade record: its closed lots are the allocator's evidence."""
        self.allocation.observe((trade,))

    def observe_router_event(self, event: RouterEvent) -> None:
        self._remember(event)
        self.metrics.observe_router_event(event)

    def _remember(self, event: RouterEvent) -> None:
        """The health window of router events, and apart from it the last closing orders (rolling Sharpe)."""
        self._changed = True
        self._events.append(event)
        if is_closing(event):
            self._closing.append(event)

    def observe_veto(self, veto: VetoEvent) -> None:
        self._changed = True
        self._veto_ts_ns.append(veto.ts_ns)
        self._drop_vetoes_before(veto.ts_ns - self._storm_window_ns)
        self._storm_peak = max(self._storm_peak, len(self._veto_ts_ns))
        self.metrics.observe_veto(veto)

    def refresh(self, now_ns: int, portfolio: PortfolioState, policies: Mapping[str, RouterPolicy]) -> None:
        """Health at ``now_ns`` into the gauges only; the store and alerts wait for the publish timer.

        Recomputed only when an event or veto arrived since the last computation (idle polls are frequent);
        otherwise only the NAV age and the order feed's gauges move.
        """
        if self._changed:
            self.metrics.observe_health(self._compute(now_ns, portfolio, policies))
        else:
            self.metrics.observe_nav_age(max(0, now_ns - portfolio.nav_ts_ns) / NS_PER_S)
            self.metrics.observe_order_feed(self.order_feed(), now_ns)
            self.metrics.observe_book_feed(self.book_feed(), now_ns)

    def due(self, now_ns: int) -> bool:
        """True when ``health.interval_s`` has passed since the last publish (or nothing was published)."""
        return self._next_publish_ns is None or now_ns >= self._next_publish_ns

    def seconds_until_due(self, now_ns: int) -> float:
        """Clock seconds until the next publish is due (0 when due now)."""
        if self._next_publish_ns is None:
            return 0.0
        return max(0, self._next_publish_ns - now_ns) / NS_PER_S

    def maybe_publish(self, now_ns: int, portfolio: PortfolioState, policies: Mapping[str, RouterPolicy],
                      tuner: TunerHealth | None) -> HealthSnapshot | None:
        """Publish if the timer is due (always on the first call)."""
        if not self.due(now_ns):
            return None
        return self.publish(now_ns, portfolio, policies, tuner)

    def publish(self, now_ns: int, portfolio: PortfolioState, policies: Mapping[str, RouterPolicy],
                tuner: TunerHealth | None) -> HealthSnapshot:
        """Compute health (plus the tuner block when given), store it, set the gauges, raise the alerts."""
        self.allocation.update()
        health = self._compute(now_ns, portfolio, policies)
        if self._storm_peak > health.vetoes_in_storm_window:  # a storm earlier in the interval
            health = msgspec.structs.replace(health, vetoes_in_storm_window=self._storm_peak)
        self._storm_peak = 0
        if self._champion_gates is not None:
            health = msgspec.structs.replace(health, champion_gates=tuple(
                ChampionGate(symbol=g.symbol, served_version=g.served_version, champion_version=g.champion_version,
                             problem=g.problem) for g in self._champion_gates()))
        alerts = evaluate_alerts(health, self._config.alerts) + evaluate_champion_gate_alerts(health)
        if tuner is not None:
            alerts += evaluate_tuner_alerts(tuner, self._config.alerts)
            self.metrics.observe_tuner_health(tuner)
        self._store.append_health(health, alerts, tuner)
        self.metrics.observe_health(health)
        self.metrics.observe_alerts(alerts)
        if self._push is not None:
            self._push.offer(health, alerts)
        self._next_publish_ns = now_ns + self._interval_ns
        self.last = (health, alerts)
        self.last_tuner = tuner
        return health

    def _drop_vetoes_before(self, ts_ns: int) -> None:
        """Forget the vetoes older than ``ts_ns``: the storm window keeps only its own."""
        while self._veto_ts_ns and self._veto_ts_ns[0] < ts_ns:
            self._veto_ts_ns.popleft()

    def _compute(self, now_ns: int, portfolio: PortfolioState, policies: Mapping[str, RouterPolicy]) -> HealthSnapshot:
        self._changed = False
        self._drop_vetoes_before(now_ns - self._storm_window_ns)
        return compute_health(now_ns=now_ns, portfolio=portfolio, events=tuple(self._events),
                              closing_events=tuple(self._closing), veto_ts_ns=tuple(self._veto_ts_ns),
                              policies=policies, settings=self._config.health,
                              veto_storm_window_s=self._config.alerts.veto_storm_window_s, contracts=self._contracts,
                              allocations=self.allocation.last, allocator_applied=self._config.allocator.apply,
                              order_feed=self.order_feed(), book_feed=self.book_feed())
