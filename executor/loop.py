"""The executor loop: intent -> screener -> sizer -> check_order -> router -> positions -> journal.

The one place where risk, router, journal and positions meet (DESIGN: the executor holds no routing or
risk logic). For each intent, one ``RiskContext`` is built by ``RiskContext.from_state`` from the live
portfolio, and the screener (``would_emit``) judges it: its last two stages are the sizer and
``check_order`` on that same context, so only an intent that passed ``check_order`` is submitted; its
quantity on the lot grid comes from ``risk.lot.fit_to_lot`` (never under the venue floor nor over a cap).
Before the first order of an intent leaves, a ``Submission`` is committed to the executor store, so a
restart finds orders that were in flight
(``start`` reconciles before anything is sent). Each intent ends in one journal batch: a VetoEvent or a
RouterEvent (with ``realized_pnl_usd`` when it reduced exposure, see ``executor.positions``), plus its
TradeRecord; an intent with a TradeRecord is never processed again. A stop intent (``is_stop``) must be
``reduce_only`` or ``close_position``; its fills start the symbol's ``cooldowns.after_stop_s``, which
``check_order`` enforces.

With adaptive routing (``adaptive``, ``--policy-source tuner``) the tuner decides each intent's policy
with the decision context at arrival, the decision is stored with the Submission, and the RouterEvent
is learned before its batch is journaled, the shadow proposal and arm-safety changes in the same batch;
``start`` re-learns journaled events the tuner's last checkpoint does not include before it recovers
in-flight intents (``executor.adaptive.routing`` documents the ordering that keeps learning exactly-once).

Routes work concurrently (``Executor.run``): each admitted intent's route is a machine
(``router.routing.machine``) run as an asyncio task on the engine's event loop (``executor.engine.routes``),
beside this thread, up to ``engine.max_routes_in_flight`` at once and ``engine.max_routes_per_symbol`` per
symbol; an intent that does not fit stays in its source (backpressure), and a reducing intent runs alone on
its leg. A live venue pushes order updates to the routes (``executor.engine.live``); a venue on a simulated
clock (paper) has its clock moved only while this thread waits for a route (``router.routing.timeline``). Each intent
goes through the same phases whatever the concurrency (1 is the sequential engine): admit (screen, size,
``check_order`` against the portfolio and the exposure working routes reserve, ``risk.context``), submit
(the Submission record committed, then the route started), finish (settle, positions, learn, one journal
batch). ``process`` is the same phases for one intent.

Exchange-side protective stops (``executor.protection``, ``executor.json`` ``protective_stops``): after each
routed intent the leg it touched gets the stops the config asks for; before each intent (for its symbol),
on the health timer and at ``start`` the working stops are polled, and one that triggered at the venue is
journaled as its own intent, exactly once, through the same path as a route.

A route that ended with an error may leave an order resting: its legs are settled by client order id
(cancelled, fills counted) before the outcome is journaled. When that is impossible (venue unreachable)
the loop raises ``ExecutorHalted``; a restart settles the intent. A failed write to the journal or the
store (disk full, read-only, busy) halts the same way, and the executor refuses further intents until
``start`` reconciles again (``executor.halt``).
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any

import msgspec
import numpy as np

from router_tuner.config.models import ConfigBundle, ContractType
from router_tuner.executor.adaptive.records import DecisionRecord, TunerHealth
from router_tuner.executor.adaptive.routing import AdaptiveRouting, CatchUp
from router_tuner.executor.duplicates import conflict_id, conflicting_duplicate, intent_digest
from router_tuner.executor.engine.routes import RouteLoop
from router_tuner.executor.halt import ExecutorHalted, halt_on_write_failure
from router_tuner.executor.intents import FOLLOW_POLL_S, IntentFormatError, IntentSource, MalformedLine
from router_tuner.executor.journal import Journal
from router_tuner.executor.monitoring.health import book_feed_health, order_feed_health
from router_tuner.executor.monitoring.telemetry import Telemetry
from router_tuner.executor.outcomes import binding_limit, reason, routed_trade, veto_outcome
from router_tuner.executor.positions import HELD_FLAT, apply_order, hold_flat
from router_tuner.executor.protection import RESERVED_ID_PREFIXES, ProtectiveStops, TriggeredStop
from router_tuner.executor.quarantine import quarantine_line
from router_tuner.executor.reconcile import (
    JournalStoreMismatch,
    PositionReader,
    ReconcileError,
    check_journal_covers_store,
    check_positions,
    classify_open_orders,
    mismatch_message,
    record_stop_fills,
    replay_journal,
)
from router_tuner.executor.records import Submission
from router_tuner.executor.route_config import route_settings
from router_tuner.executor.settle import SettleError, Settlement, SettleRetry, settle_orders, settled_event
from router_tuner.executor.store import ExecutorStore
from router_tuner.risk.context import RiskContext, WorkingRoute
from router_tuner.risk.exposure import is_reducing
from router_tuner.risk.lot import fit_to_lot, unreachable_floor
from router_tuner.risk.screener import MarketView, would_emit
from router_tuner.risk.sizer import opening_unsizable
from router_tuner.router.contract import ContractSpec, notional_usd, venue_contract
from router_tuner.router.events import (
    VENUE_ANOMALY,
    Event,
    Intent,
    PositionSide,
    RouterEvent,
    TradeRecord,
    VetoEvent,
    VetoReason,
    settled_note,
    with_flag,
)
from router_tuner.router.policy import RouterPolicy
from router_tuner.router.routing.calls import Steps
from router_tuner.router.routing.drive import Finished
from router_tuner.router.routing.machine import route_machine
from router_tuner.router.routing.order import RouteOrder, RouteRefused
from router_tuner.router.venue import TopOfBook, Venue, VenueError

logger = logging.getLogger(__name__)

PolicyFor = Callable[[str], RouterPolicy]
LINEAR_SIZED: tuple[ContractType, ...] = ("linear", "spot")
"""Contract types whose quantity the executor sizes as gross USD over the unit's USD value."""


def _arrival_touch(symbol: str, bid: float, ask: float, ts_ns: int) -> TopOfBook:
    """The arrival touch a settled event is measured against; its sizes were not recorded (zero)."""
    return TopOfBook(symbol=symbol, bid=bid, bid_qty=0.0, ask=ask, ask_qty=0.0, ts_ns=ts_ns)


@dataclass(frozen=True, slots=True)
class Admission:
    """An intent that passed risk: its validated route, the Submission to commit before the first send,
    and the exposure its working route reserves."""

    order: RouteOrder
    policy: RouterPolicy
    decision: DecisionRecord | None
    submission: Submission
    machine: Steps[RouterEvent]
    working: WorkingRoute
    now_ns: int


@dataclass(slots=True)
class Flight:
    """A submitted intent: working until its batch is journaled (``trade`` then set)."""

    admission: Admission
    trade: TradeRecord | None = field(default=None)


@dataclass(frozen=True, slots=True)
class StartReport:
    """What ``Executor.start`` found: replayed events, recovered in-flight intents, foreign orders.

    ``done_intents`` are the intents done before the recovery; ``recovered_intent_ids`` are not among them.
    """

    replayed_router_events: int
    done_intents: int
    recovered_intent_ids: tuple[str, ...]
    cancelled_orders: int
    foreign_open_orders: tuple[str, ...]
    positions_checked: bool
    tuner_catch_up: CatchUp | None
    lot_warnings: tuple[str, ...]


class Executor:
    """Runs intents through risk and the router on one venue, journaling every outcome.

    Parameters
    ----------
    config:
        The loaded configuration bundle (risk limits, universe, router, executor).
    venue:
        Where orders go (simulated or live); its clock is the loop's clock. Without ``routes`` the routes run
        on it under a simulated timeline (``RouteLoop.clocked``) and the executor calls it under that lock.
    journal, store:
        The event journal and the executor store, both opened for writing by this process only.
    policy_for:
        The symbol's current ``RouterPolicy`` (static or the tuner's), asked once per intent.
    rng:
        Draws the router's maker/taker start; seed it for reproducible runs.
    venue_positions:
        Reads the venue's positions per symbol for the restart check, or ``None`` when the venue
        cannot report them (then positions come from the journal alone, and ``start`` says so).
    telemetry:
        The health/alerts publisher.
    adaptive:
        The tuner deciding and learning each intent's policy (``policy_for`` then only names the acting
        version in health before a symbol's first order), or ``None`` to route with ``policy_for``.
    routes:
        The route engine (``executor.engine``) whose ``venue`` is ``venue`` (the live venue on ccxt.pro with
        its order stream, ``executor.engine.live``); ``None`` builds the simulated-clock one. ``close()``
        releases it.
    """

    def __init__(self, *, config: ConfigBundle, venue: Venue, journal: Journal, store: ExecutorStore,
                 policy_for: PolicyFor, rng: np.random.Generator, venue_positions: PositionReader | None,
                 telemetry: Telemetry, adaptive: AdaptiveRouting | None, routes: RouteLoop | None = None) -> None:
        self.config = config
        ex = config.executor
        if routes is None:
            routes = RouteLoop.clocked(venue, poll_interval_ms=ex.route.poll_interval_ms)
        elif routes.venue is not venue:
            raise ValueError("Executor: venue must be routes.venue (the executor calls the venue its routes run on)")
        self._routes = routes
        self.venue: Venue = routes.venue
        telemetry.order_feed = lambda: order_feed_health(routes.feed_status())
        telemetry.book_feed = lambda: book_feed_health(routes.book_status())
        self.journal = journal
        self.store = store
        self.policy_for = policy_for
        self.rng = rng
        self.venue_positions = venue_positions
        self.telemetry = telemetry
        self.adaptive = adaptive
        self.route_settings = route_settings(config)
        empty = replay_journal(router_events=(), vetoes=(), trades=(), submissions={},
                               wallet_balance_usd=ex.starting_wallet_usd, now_ns=0)
        self.portfolio, self.lots = empty.portfolio, empty.lots
        self._settle_retry = SettleRetry(retries=ex.route.max_venue_retries, backoff_ms=ex.route.rate_limit_backoff_ms)
        self.policies: dict[str, RouterPolicy] = {}
        self._flights: dict[str, Flight] = {}
        self._per_symbol: Counter[str] = Counter()
        self._done: set[str] = set()
        self._digests: dict[str, bytes] = {}
        self._started = False
        # Built whenever the venue keeps stops (off in config, it cancels stops left from an earlier run);
        # asked for on a venue that keeps none, it refuses (ValueError naming the config key).
        keeps_stops = callable(getattr(self.venue, "place_stop", None))
        self.protection = ProtectiveStops(
            settings=ex.protective_stops, venue=self.venue, store=store,  # type: ignore[arg-type]
            instruments=ex.instruments, universe=config.strategy.universe,
        ) if keeps_stops or ex.protective_stops.enabled else None
        self.on_outcome: Callable[[RouterEvent | VetoEvent], None] | None = None
        """Called with each intent's RouterEvent or VetoEvent once its batch is journaled (``executor.embed``)."""

    def close(self) -> None:
        """Release the route engine (its loop thread and venue connections). Call it once ``run`` returned:
        a route still working then (after a halt) is cancelled, and its orders are settled on restart."""
        self._routes.close()

    def knows(self, intent_id: str) -> bool:
        """True when ``intent_id`` is journaled or routing now: submitting it again is a duplicate."""
        return intent_id in self._done or intent_id in self._flights

    # --- start ------------------------------------------------------------------------------------

    def start(self) -> StartReport:
        """Reconcile journal, store and venue (see ``executor.reconcile``); nothing is sent before this."""
        ex = self.config.executor
        now_ns = self.venue.clock.now_ns()
        submissions = self.store.submissions()
        try:
            replayed = replay_journal(router_events=self.journal.read("router"), vetoes=self.journal.read("veto"),
                                      trades=self.journal.read("trade"), submissions=submissions,
                                      wallet_balance_usd=ex.starting_wallet_usd, now_ns=now_ns)
        except JournalStoreMismatch as exc:
            raise JournalStoreMismatch(mismatch_message(str(exc), journal=self.journal.path,
                                                        store=self.store.path)) from exc
        check_journal_covers_store(submissions, replayed.done_intent_ids,
                                   max_in_flight=ex.engine.max_routes_in_flight, journal=self.journal.path,
                                   store=self.store.path)
        self.portfolio, self.lots = replayed.portfolio, replayed.lots
        self._done = set(replayed.done_intent_ids)
        self._digests = replayed.intent_digests
        self.telemetry.seed(replayed.router_events, replayed.veto_ts_ns, replayed.closing_trades)
        decisions = self.store.decisions() if self.adaptive is not None else {}
        catch_up = None
        if self.adaptive is not None:
            catch_up = self.adaptive.catch_up(replayed.router_events, decisions)
            logger.info("tuner caught up with the journal: %s", catch_up)
        recovered: list[str] = []
        cancelled = 0
        for intent_id, submission in submissions.items():
            if intent_id not in self._done and not (self.protection and self.protection.owns(intent_id)):
                cancelled += self._recover(submission, decisions.get(intent_id))
                recovered.append(intent_id)
        if self.protection is not None:  # stops that triggered while we were down, journaled once
            try:
                for triggered in self.protection.poll(None):
                    self._journal_stop(triggered)
            except VenueError as exc:
                raise ReconcileError(f"protective stops unavailable: {type(exc).__name__}: {exc}") from exc
        try:
            open_orders = self.venue.open_orders(None)
        except VenueError as exc:
            raise ReconcileError(f"open orders unavailable: {type(exc).__name__}: {exc}") from exc
        foreign = classify_open_orders(open_orders, submissions=submissions,
                                       done_intent_ids=frozenset(self._done))
        for state in foreign:
            logger.warning("foreign open order %s on %s left alone", state.client_order_id, state.symbol)
        if self.venue_positions is not None:
            check_positions(self.portfolio, self.venue_positions, ex.instruments,
                            tolerance=ex.reconcile.position_qty_tolerance)
        else:
            logger.warning("venue %s reports no positions: positions rebuilt from the journal only", self.venue.name)
        self._started = True
        for symbol in ex.instruments:
            self.policies[symbol] = self.policy_for(symbol)
        if self.protection is not None:
            legs = {*self.portfolio.legs, *((r.symbol, r.position_side) for r in self.store.working_stops())}
            for symbol, position_side in sorted(legs):
                self._sync_stops(symbol, position_side)
        self._refresh_marks(self.venue.clock.now_ns(), None)
        lot_warnings = self._lot_warnings()
        now_ns = self.venue.clock.now_ns()
        with self._halting(f"executor store {self.store.path}", "health not stored"):
            self.telemetry.maybe_publish(now_ns, self.portfolio, self.policies, self._tuner_health(now_ns))
        # the recovered intents are counted apart: "48 intents already done, 2 in-flight intents recovered" counted 48
        return StartReport(replayed_router_events=len(replayed.router_events),
                           done_intents=len(self._done) - len(recovered),
                           recovered_intent_ids=tuple(recovered), cancelled_orders=cancelled,
                           foreign_open_orders=tuple(s.client_order_id for s in foreign),
                           positions_checked=self.venue_positions is not None, tuner_catch_up=catch_up,
                           lot_warnings=lot_warnings)

    def _lot_warnings(self) -> tuple[str, ...]:
        """Symbols where, at today's price, no opening order fits between the venue floor and the caps, or where
        the account's NAV is too small for any cap to allow the floor."""
        warnings = []
        now_ns = self.venue.clock.now_ns()
        for symbol, instrument in sorted(self.config.executor.instruments.items()):
            ctx = RiskContext.from_state(self.portfolio, symbol=symbol, universe=self.config.strategy.universe,
                                         now_ns=now_ns, working=())
            if (too_small := opening_unsizable(symbol, ctx, self.config)) is not None:
                warnings.append(too_small)
                continue
            try:
                mid = self.venue.top_of_book(symbol).mid
            except VenueError as exc:
                logger.warning("%s: lot check skipped, no touch: %s: %s", symbol, type(exc).__name__, exc)
                continue
            contract = venue_contract(self.venue, symbol)
            if contract.contract_type not in LINEAR_SIZED or not (math.isfinite(mid) and mid > 0):
                continue
            message = unreachable_floor(symbol, unit_usd=notional_usd(contract, mid, 1.0),
                                        qty_step=instrument.qty_step, config=self.config)
            if message is not None:
                warnings.append(message)
        return tuple(warnings)

    def _recover(self, submission: Submission, decision: DecisionRecord | None) -> int:
        """Settle an intent that was in flight at the crash and journal what it did; returns cancels."""
        intent = submission.intent
        try:
            settlement = self._settle(intent.symbol, intent.intent_id)
        except SettleError as exc:
            raise ReconcileError(str(exc)) from exc
        order = self._route_order(intent, submission.qty, submission.quote, submission.tick_size, submission.qty_step)
        arrival = _arrival_touch(intent.symbol, submission.arrival_bid, submission.arrival_ask,
                                 submission.arrival_ts_ns)
        event = settled_event(order=order, policy=RouterPolicy(**submission.policy), arrival=arrival,
                              arrival_ts_ns=submission.arrival_ts_ns, states=settlement.states,
                              finished_ts_ns=self.venue.clock.now_ns(), routed=None,
                              contract=venue_contract(self.venue, intent.symbol),
                              note=(f"recovered_after_restart: {len(settlement.states)} orders found, "
                                    f"{settlement.cancelled} cancelled; route counters unknown"))
        self._finish_routed(intent, event, submission, decision, route_ended_now=False)
        logger.info("recovered in-flight intent %s: %d orders, filled %s", intent.intent_id,
                    len(settlement.states), event.filled_qty)
        return settlement.cancelled

    # --- the loop ---------------------------------------------------------------------------------

    def run(self, source: IntentSource, *, idle_poll_s: float, should_stop: Callable[[], bool],
            on_idle: Callable[[], None] | None, quarantine_malformed: bool = False) -> int:
        """Process intents until the source is exhausted or ``should_stop()``; returns how many were new.

        Up to ``engine.max_routes_in_flight`` routes work at once, at most ``engine.max_routes_per_symbol``
        on one symbol. While every slot is taken, or the next intent's symbol is full, no further intent is
        read (backpressure) until a route finishes. With routes in flight and a slot free, the source is
        polled every ``FOLLOW_POLL_S`` (or as soon as a route finishes); with none it waits ``idle_poll_s``.
        While routes work, the thread also wakes when health is due (the health timer polls protective stops).
        ``should_stop()`` stops admitting; the routes in flight are finished and journaled before return.

        Health is published on the timer between steps and on idle polls (and the gauges refreshed in
        between); with adaptive routing the same timer polls the registry for go-live requests.

        ``on_idle`` runs after a poll that brought nothing while no route works (paper mode advances the
        replay clock there; a live venue's wall clock moves by itself, so live passes ``None``).

        A malformed line (``IntentFormatError``) already in the journal's dead letters is skipped; a new
        one is quarantined and the loop goes on with ``quarantine_malformed`` (``--follow``), else the
        error ends the run before anything past the line is routed (``executor.quarantine``); routes
        already in flight are finished first.
        """
        engine = self.config.executor.engine
        processed = 0
        held: Intent | None = None  # read, but its symbol had no free slot
        while self._flights or held is not None or not (should_stop() or source.exhausted):
            if should_stop():
                held = None  # never admitted: the source gives it again on the next run
            while len(self._flights) < engine.max_routes_in_flight and not should_stop():
                if held is None:
                    if source.exhausted:
                        break
                    try:
                        held = source.next_intent(0.0 if self._flights else idle_poll_s)
                    except IntentFormatError as error:
                        if not (self.journal.is_quarantined(error.line) or quarantine_malformed):
                            self._drain()
                            raise
                        self._quarantine(error.line)
                        continue
                    if held is None:
                        if not self._flights and on_idle is not None:
                            on_idle()
                        break
                if self._per_symbol[held.symbol] >= engine.max_routes_per_symbol or self._leg_busy(held):
                    break
                intent, held = held, None
                processed += self._begin(intent) is not None
                self.publish_if_due()
            if self._flights:
                can_admit = (held is None and len(self._flights) < engine.max_routes_in_flight
                             and not (should_stop() or source.exhausted))
                until_health_s = self.telemetry.seconds_until_due(self.venue.clock.now_ns())
                self._step(min(idle_poll_s, FOLLOW_POLL_S, until_health_s) if can_admit else until_health_s)
                self.publish_if_due()
            elif held is not None:
                raise RuntimeError(f"intent {held.intent_id} held with no route in flight")
            else:
                self.publish_if_due()
        return processed

    def _leg_busy(self, intent: Intent) -> bool:
        """A reducing intent runs alone on its leg (symbol, position side), and nothing joins a leg being
        reduced: positions apply fills route by route at the finish, so a reduce finishing before the
        open it closes would flip the leg in the executor's books while the venue saw them in order."""
        leg = (intent.symbol, intent.position_side)
        reducing = is_reducing(intent)
        return any((f.admission.working.symbol, f.admission.working.position_side) == leg
                   and (reducing or is_reducing(f.admission.submission.intent)) for f in self._flights.values())

    def _leg_in_flight(self, symbol: str, position_side: PositionSide) -> bool:
        """A route of the leg (symbol, position side) is working: its fills are not in the books yet."""
        return any((f.admission.working.symbol, f.admission.working.position_side) == (symbol, position_side)
                   for f in self._flights.values())

    def _drain(self) -> None:
        """Run every route in flight to its journaled end."""
        while self._flights:
            self._step(None)

    def _quarantine(self, line: MalformedLine) -> None:
        """Dead-letter a malformed line (a no-op for one quarantined before); a failed write halts."""
        with self._halting(f"journal {self.journal.path} or executor store {self.store.path}",
                           f"line {line.line_no} not quarantined: it is on restart"):
            quarantine_line(line, journal=self.journal, store=self.store, metrics=self.telemetry.metrics,
                            ts_ns=self.venue.clock.now_ns())

    def publish_now(self) -> None:
        """Refresh marks and publish health regardless of the timer (e.g. at shutdown)."""
        now_ns = self.venue.clock.now_ns()
        self._refresh_marks(now_ns, None)
        with self._halting(f"executor store {self.store.path}", "health not stored"):
            self.telemetry.publish(now_ns, self.portfolio, self.policies, self._tuner_health(now_ns))

    def publish_if_due(self) -> None:
        """Publish health if the timer is due (called on idle polls too), with marks refreshed first.

        With adaptive routing, shadow symbols marked ``live`` in the registry go live first, so the
        snapshot shows the move.
        """
        now_ns = self.venue.clock.now_ns()
        if self.telemetry.due(now_ns):
            self._poll_stops(None)
            if self.adaptive is not None:
                for symbol in self.adaptive.poll_go_live():
                    self.policies[symbol] = self.adaptive.current(symbol)
            self._refresh_marks(now_ns, None)
            with self._halting(f"executor store {self.store.path}", "health not stored"):
                self.telemetry.publish(now_ns, self.portfolio, self.policies, self._tuner_health(now_ns))
        else:  # the gauges follow every intent; the marks are the ones read at the last arrival
            self.telemetry.refresh(now_ns, self.portfolio, self.policies)

    def process(self, intent: Intent) -> TradeRecord | None:
        """Run one intent to its journaled outcome; ``None`` if it was already processed.

        The sequential use of the engine: admitted, submitted, then routed to its end (any routes
        already in flight keep working meanwhile). An id already processed with other content is vetoed
        under a derived id (``executor.duplicates``).
        """
        began = self._begin(intent)
        if not isinstance(began, Flight):
            return began
        while began.trade is None:
            self._step(None)
        return began.trade

    @property
    def routes_in_flight(self) -> int:
        return len(self._flights)

    def _begin(self, intent: Intent) -> TradeRecord | Flight | None:
        """Admit, then submit: a veto (journaled), ``None`` for a duplicate, or the flight now working."""
        admitted = self._admit(intent)
        if not isinstance(admitted, Admission):
            return admitted
        return self._submit(admitted)

    def _admit(self, intent: Intent) -> TradeRecord | Admission | None:
        """Screen, size and check the intent against the portfolio and the routes working now.

        Returns the veto's TradeRecord (journaled), ``None`` for a duplicate, or what to submit: the
        order, validated once here (``route_machine``), and the Submission record to commit before it.
        """
        if not self._started:
            raise RuntimeError("Executor.start() must reconcile with the venue before any intent is processed")
        self._poll_stops(intent.symbol)  # a stop that triggered moved the leg this intent may act on
        now_ns = self.venue.clock.now_ns()
        if intent.intent_id in self._done or intent.intent_id in self._flights:
            if self._digests.get(intent.intent_id) == intent_digest(intent) or conflict_id(intent) in self._done:
                self.telemetry.metrics.intents.labels("duplicate").inc()
                return None
            journaled, why = conflicting_duplicate(intent)
            return self._veto(journaled, (why,), {"stage": "executor"}, now_ns, 0.0)
        if not intent.intent_id or not intent.intent_id.isprintable():  # a newline or NUL splits log lines naming it
            return self._veto(intent, (reason("invalid_intent_id", "printable, non-empty", repr(intent.intent_id),
                                              "an intent id names the intent in logs, journals and order ids: give "
                                              "it one without control characters"),),
                              {"stage": "executor"}, now_ns, 0.0)
        if intent.intent_id.startswith(RESERVED_ID_PREFIXES):  # a stop's own id: a restart would skip it as one
            return self._veto(intent, (reason("reserved_intent_id", "/".join(RESERVED_ID_PREFIXES), intent.intent_id,
                                              "ids starting psl- or ptp- name the executor's protective stops: "
                                              "give the intent another id"),),
                              {"stage": "executor"}, now_ns, 0.0)
        instrument = self.config.executor.instruments.get(intent.symbol)
        if instrument is None:
            return self._veto(intent, (reason("symbol_not_tradable", "executor.instruments", intent.symbol,
                                              f"executor.instruments: no tick/lot for {intent.symbol}"),),
                              {"stage": "executor"}, now_ns, 0.0)
        if intent.is_stop and not (intent.reduce_only or intent.close_position):
            return self._veto(intent, (reason("stop_not_reducing", None, f"{intent.side} {intent.position_side}",
                                              "a stop must take exposure off: mark it reduce_only or "
                                              "close_position"),),
                              {"stage": "executor"}, now_ns, 0.0)
        try:
            book = self.venue.top_of_book(intent.symbol)
        except VenueError as exc:
            return self._veto(intent, (reason("book_unavailable", None, type(exc).__name__, str(exc)),),
                              {"stage": "executor"}, now_ns, 0.0)
        self._refresh_marks(now_ns, book)
        ctx = RiskContext.from_state(self.portfolio, symbol=intent.symbol, universe=self.config.strategy.universe,
                                     now_ns=now_ns, working=tuple(f.admission.working for f in self._flights.values()))
        multiplier = self.telemetry.allocation.multiplier(intent)  # 1 in shadow mode; risk caps still bind
        sized = intent if multiplier == 1.0 else msgspec.structs.replace(
            intent, size_hint_usd=intent.size_hint_usd * multiplier)
        screen = would_emit(sized, MarketView(book=book, listed=True), ctx, self.config)
        if not screen.emit:
            return self._veto(intent, screen.reasons, {"stage": screen.stage, **screen.detail}, now_ns,
                              screen.gross_usd or 0.0)
        gross_usd = screen.gross_usd  # sized by suggest_gross_usd and passed by check_order inside would_emit
        if gross_usd is None:
            raise RuntimeError(f"would_emit emitted {intent.intent_id} without a size (ScreenDecision contract)")
        contract = self.config.strategy.universe[intent.symbol]
        lot = fit_to_lot(sized, gross_usd, unit_usd=self._unit_usd(intent, book, contract),
                         qty_step=instrument.qty_step, ctx=ctx, config=self.config)
        if lot.reason is not None:
            return self._veto(intent, (lot.reason,), {"stage": "lot", "gross_usd": gross_usd, **lot.detail},
                              now_ns, gross_usd)
        qty = lot.qty
        if qty < instrument.qty_step:
            return self._veto(intent, (reason("qty_below_lot_step", instrument.qty_step, qty,
                                              f"executor.instruments.{intent.symbol}.qty_step"),),
                              {"stage": "lot", "gross_usd": gross_usd}, now_ns, gross_usd)
        quote = contract.quote
        decision: DecisionRecord | None = None
        try:
            order = self._route_order(intent, qty, quote, instrument.tick_size, instrument.qty_step)
            if self.adaptive is None:
                policy = self.policy_for(intent.symbol)
            else:
                try:
                    policy, decision = self.adaptive.decide(intent, book, order_qty=qty,
                                                            tick_size=instrument.tick_size, now_ns=now_ns)
                except ValueError as exc:  # a touch without size on a side, or crossed: no context to decide in
                    return self._veto(intent, (reason("decision_context_unavailable", None, None, str(exc)),),
                                      {"stage": "tuner"}, now_ns, gross_usd)
            machine = route_machine(order, policy, self.route_settings, rng=self.rng)
        except RouteRefused as exc:
            return self._veto(intent, (reason("route_refused", None, None, str(exc)),), {"stage": "route"},
                              now_ns, gross_usd)
        # health shows the acting version (published or champion), never the arm explored for this one order
        self.policies[intent.symbol] = policy if self.adaptive is None else self.adaptive.current(intent.symbol)
        clamped_usd = notional_usd(contract, book.mid, qty)
        submission = Submission(
            intent=intent, qty=qty, suggested_gross_usd=gross_usd, clamped_gross_usd=clamped_usd,
            binding_limit=binding_limit(screen.detail), size_multiplier=multiplier, quote=quote,
            tick_size=instrument.tick_size, qty_step=instrument.qty_step, policy=asdict(policy), arrival_bid=book.bid,
            arrival_ask=book.ask, arrival_ts_ns=book.ts_ns, ts_ns=now_ns, journal_intents=len(self._done),
            max_routes_in_flight=self.config.executor.engine.max_routes_in_flight)
        working = WorkingRoute(symbol=intent.symbol, position_side=intent.position_side,
                               reserved_usd=0.0 if is_reducing(intent) else clamped_usd)
        return Admission(order=order, policy=policy, decision=decision, submission=submission, machine=machine,
                         working=working, now_ns=now_ns)

    def _submit(self, admitted: Admission) -> Flight:
        """Commit the Submission (a restart then finds the intent), reserve its exposure, start its route."""
        intent = admitted.submission.intent
        with self._halting(f"executor store {self.store.path}",
                           f"nothing was sent for intent {intent.intent_id}: it is routed on restart"):
            self.store.record_submission(admitted.submission, decision=admitted.decision)
        flight = Flight(admission=admitted)
        self._flights[intent.intent_id] = flight
        # a resent line while this route works is the same intent, not a conflicting one (as after a restart)
        self._digests[intent.intent_id] = intent_digest(intent)
        self._per_symbol[intent.symbol] += 1
        self._routes.start(intent.intent_id, admitted.machine)
        self._land()
        return flight

    def _step(self, timeout_s: float | None) -> None:
        """Wait until a route finishes (at most ``timeout_s``, ``None``: no limit); journal what finished."""
        self._routes.wait(timeout_s)
        self._land()

    def _land(self) -> None:
        """Finish every route that ended: settle, positions, learn, one journal batch each."""
        while self._routes.finished:
            self._finish(self._routes.finished.popleft())

    def _finish(self, finished: Finished[str, RouterEvent]) -> None:
        flight = self._flights.pop(finished.key)
        admitted = flight.admission
        intent = admitted.submission.intent
        self._per_symbol[intent.symbol] -= 1
        if isinstance(finished.error, VenueError):  # the contract or arrival touch read failed: nothing was sent
            exc = finished.error
            flight.trade = self._veto(intent, (reason("venue_error_before_send", None, type(exc).__name__,
                                                      str(exc)),),
                                      {"stage": "route"}, admitted.now_ns, admitted.submission.suggested_gross_usd)
            return
        if finished.error is not None:
            raise finished.error
        event = finished.result
        if event is None:
            raise RuntimeError(f"route of {intent.intent_id} ended with neither an event nor an error")
        if event.error is not None:
            event = self._settle_after_error(admitted.order, admitted.policy, event)
        flight.trade = self._finish_routed(intent, event, admitted.submission, admitted.decision,
                                           route_ended_now=True)
        self._sync_stops(intent.symbol, intent.position_side)

    # --- protective stops (executor.protection) -------------------------------------------------------

    def _poll_stops(self, symbol: str | None) -> None:
        """Journal the stops that triggered at the venue, then re-sync their legs (cancels the sibling stop)."""
        if self.protection is None:
            return
        try:
            triggered = self.protection.poll(symbol)
        except VenueError as exc:
            logger.warning("protective stops not polled: %s: %s", type(exc).__name__, exc)
            return
        for record, state in triggered:
            if self._leg_in_flight(record.symbol, record.position_side):
                self._start_stop_cooldown((record, state))
                continue  # journaled once the leg's routes have landed (see _sync_stops)
            self._journal_stop((record, state))
            self._sync_stops(record.symbol, record.position_side)

    def _sync_stops(self, symbol: str, position_side: PositionSide) -> None:
        """Give the leg the stops the config asks for; a stop found triggered on the way is journaled first."""
        if self.protection is None:
            return
        for _ in range(3):  # a stop ending under us changes the leg; the next round sees the new one
            try:
                triggered = self.protection.sync(self.portfolio.legs.get((symbol, position_side)), symbol,
                                                 position_side, self.venue.clock.now_ns())
            except VenueError as exc:
                logger.warning("protective stops of %s %s not synced (next intent retries): %s: %s", symbol,
                               position_side, type(exc).__name__, exc)
                return
            if not triggered:
                return
            if self._leg_in_flight(symbol, position_side):
                # The stop closed the venue's whole leg, fills of the leg's routes in flight included, which the
                # books apply only when each route lands: journaled now, it flipped the leg ("unexpected
                # ValueError: fill ... would flip the LONG leg", the run stopped). The stop stays working in the
                # store, so the sync after the leg's last route lands (or a poll) journals it.
                for stop in triggered:
                    self._start_stop_cooldown(stop)
                return
            for stop in triggered:
                self._journal_stop(stop)

    def _journal_stop(self, triggered: TriggeredStop) -> None:
        """Journal a triggered stop as its own intent, exactly once, then close it in the store."""
        assert self.protection is not None
        record, state = triggered
        policy = self.policies.get(record.symbol) or self.policy_for(record.symbol)
        intent, event, submission = self.protection.outcome(record, state, policy=policy,
                                                            contract=venue_contract(self.venue, record.symbol),
                                                            journal_intents=len(self._done))
        if intent.intent_id not in self._done:
            with self._halting(f"executor store {self.store.path}", f"stop {intent.intent_id} journaled on restart"):
                if intent.intent_id not in self._digests:  # submitted before a crash: its record stands
                    self.store.record_submission(submission, decision=None)
            self._finish_routed(intent, event, submission, None, route_ended_now=False)
        with self._halting(f"executor store {self.store.path}", f"stop {intent.intent_id} closed on restart"):
            self.store.close_stop(record.client_order_id)

    def _start_stop_cooldown(self, triggered: TriggeredStop) -> None:
        """Start the symbol's stop cooldown from a triggered stop's fills before the stop is journaled: one waiting
        for its leg's routes to land left opening intents admitted meanwhile (a paper run with a 1 bp stop routed six
        opening BTCUSDT intents inside the 900 s cooldown). Journaling it later records the same time again."""
        record, state = triggered
        self.portfolio.record_stop(record.symbol, max(fill.ts_ns for fill in state.fills))

    # --- helpers ----------------------------------------------------------------------------------

    @contextmanager
    def _halting(self, where: str, consequence: str) -> Iterator[None]:
        """A failed write inside halts the executor (``executor.halt``): no intent until ``start`` again."""
        try:
            with halt_on_write_failure(where, consequence):
                yield
        except ExecutorHalted:
            self._started = False
            raise

    def _settle(self, symbol: str, intent_id: str) -> Settlement:
        """Settle every leg of ``intent_id`` under ``executor.reconcile`` (raises ``SettleError``)."""
        reconcile = self.config.executor.reconcile
        return settle_orders(self.venue, symbol=symbol, intent_id=intent_id,
                             probe_gap_legs=reconcile.probe_gap_legs, max_legs=reconcile.max_legs_per_intent,
                             retry=self._settle_retry)

    def _settle_after_error(self, order: RouteOrder, policy: RouterPolicy, event: RouterEvent) -> RouterEvent:
        try:
            settlement = self._settle(order.symbol, order.intent_id)
        except SettleError as exc:
            self._started = False
            raise ExecutorHalted(f"intent {order.intent_id} left unsettled after a route error "
                                 f"({event.error}): {exc}") from exc
        arrival = _arrival_touch(event.symbol, event.arrival_bid, event.arrival_ask, event.arrival_ts_ns)
        return settled_event(order=order, policy=policy, arrival=arrival, arrival_ts_ns=event.arrival_ts_ns,
                             states=settlement.states, finished_ts_ns=self.venue.clock.now_ns(), routed=event,
                             contract=venue_contract(self.venue, order.symbol),
                             note=settled_note(len(settlement.states), settlement.cancelled))

    def _route_end_mid(self, symbol: str) -> float | None:
        """The mid now, for a tuner learning against the mid at the route's end (``None`` when it does not, or
        the read failed: the event is then learned at its journaled cost, logged)."""
        if self.adaptive is None or not self.adaptive.reads_route_end_mid:
            return None
        try:
            mid = self.venue.top_of_book(symbol).mid
        except VenueError as exc:
            logger.warning("%s: touch not read at the route's end (learned at its journaled cost): %s: %s",
                           symbol, type(exc).__name__, exc)
            return None
        if not (math.isfinite(mid) and mid > 0):
            logger.warning("%s: touch at the route's end has mid %r (learned at its journaled cost)", symbol, mid)
            return None
        return mid

    def _finish_routed(self, intent: Intent, event: RouterEvent, submission: Submission,
                       decision: DecisionRecord | None, *, route_ended_now: bool) -> TradeRecord:
        """Apply fills, learn (adaptive), journal event, trade and the tuner's records in one batch.

        ``route_ended_now``: the touch now is the route's end (a route just finished); an intent recovered or a
        stop journaled on restart ended while the process was down, and the mid now would charge the downtime's
        move (on a paper venue, another run's market) as the route's: it is learned at its journaled cost."""
        realized, closed_lots, past_flat = apply_order(self.portfolio, self.lots, intent=intent, fills=event.fills,
                                                       qty_step=submission.qty_step)
        record_stop_fills(self.portfolio, intent, event.fills)
        event = msgspec.structs.replace(event, realized_pnl_usd=realized)
        leg_differs = None
        if past_flat:
            event, leg_differs = self._flag_past_flat(intent, event, past_flat)
        trade = routed_trade(intent, event, suggested_gross_usd=submission.suggested_gross_usd,
                             clamped_gross_usd=submission.clamped_gross_usd, binding=submission.binding_limit,
                             size_multiplier=submission.size_multiplier, closed_lots=closed_lots)
        consequence = f"intent {intent.intent_id} not journaled: its orders are settled and journaled once on restart"
        if self.adaptive is None:
            self._journal_batch((event, trade), consequence)
        else:
            end_mid = self._route_end_mid(intent.symbol) if route_ended_now else None
            pending = self.adaptive.learn(event, decision, end_mid=end_mid)
            try:
                self._journal_batch((event, trade, *pending.records), consequence)
            except BaseException:
                self.adaptive.journal_failed()
                raise
            self.adaptive.committed(pending)
            self.policies[intent.symbol] = self.adaptive.current(intent.symbol)  # learning may have published
        self._done.add(intent.intent_id)
        self._digests[intent.intent_id] = intent_digest(intent)
        self.telemetry.observe_router_event(event)
        self.telemetry.observe_trade(trade)
        self.telemetry.metrics.intents.labels("routed").inc()
        if self.on_outcome is not None:
            self.on_outcome(event)
        if leg_differs is not None:
            self._started = False
            raise ExecutorHalted(leg_differs)
        return trade

    def _flag_past_flat(self, intent: Intent, event: RouterEvent,
                        past_flat: tuple[str, ...]) -> tuple[RouterEvent, str | None]:
        """Fills that took a leg past flat (``executor.positions.AppliedOrder``): the fills count as the venue
        reported them; the event is flagged ``venue_anomaly`` (not learned) and the books checked against the venue's
        position, all on one log line. Hedge mode: the leg closed. One-way mode (a reduce-only order): the books
        applied the flip the fills report; a venue that holds that flip agrees, a venue that is flat is followed (the
        books hold flat, ``executor.positions.hold_flat``, and the flag says so, :data:`~executor.positions.HELD_FLAT`,
        for the journal's replay). Returns the flagged event and, when the venue holds a position neither explains
        (one the journal cannot explain), the halt's message: the batch is journaled first, so a restart does not
        recover the intent again; it refuses at the position check until the account is reconciled
        (``executor.reconcile.check_positions``)."""
        key = (intent.symbol, intent.position_side)
        leg = f"{intent.symbol} {intent.position_side}"
        what = "position" if intent.position_side == "BOTH" else "leg"
        ours = self.portfolio.legs.get(key)
        our_qty = 0.0 if ours is None else ours.qty
        halt = None
        items = list(past_flat)
        tolerance = self.config.executor.reconcile.position_qty_tolerance
        if self.venue_positions is None:
            verdict = "the venue reports no positions: not checked"
        else:
            try:
                venue_qty = self.venue_positions(intent.symbol).get(intent.position_side, 0.0)
            except VenueError as exc:
                verdict = f"the venue's {what} not read ({type(exc).__name__}: {exc}): the restart checks it"
            else:
                if abs(venue_qty - our_qty) <= tolerance:
                    verdict = f"the venue's {intent.position_side} {what} is {venue_qty:.12g}: the books agree"
                elif intent.position_side == "BOTH" and abs(venue_qty) <= tolerance:
                    hold_flat(self.portfolio, self.lots, key)
                    verdict = HELD_FLAT
                    items.append(HELD_FLAT)
                else:
                    verdict = (f"the venue's {intent.position_side} {what} is {venue_qty:.12g}, the books' "
                               f"{our_qty:.12g}: halting")
                    halt = (f"{leg}: the venue holds {venue_qty:.12g}, the journal {our_qty:.12g} after intent "
                            f"{intent.intent_id} filled past flat ({'; '.join(past_flat)}); reconcile the account "
                            "with the journal, then restart")
        event = msgspec.structs.replace(event, error=with_flag(event.error, VENUE_ANOMALY, items))
        logger.warning("%s %s: %s: %s; %s", intent.intent_id, leg, VENUE_ANOMALY, "; ".join(past_flat), verdict)
        return event, halt

    def _journal_batch(self, records: tuple[Event, ...], consequence: str) -> None:
        """Append one intent's batch; a failed write halts, saying what becomes of the intent (``consequence``)."""
        with self._halting(f"journal {self.journal.path}", consequence):
            self.journal.append_many(records)

    def _veto(self, intent: Intent, reasons: tuple[VetoReason, ...], context: dict[str, Any], now_ns: int,
              suggested_usd: float) -> TradeRecord:
        veto, trade = veto_outcome(intent, reasons, context, ts_ns=now_ns, suggested_gross_usd=suggested_usd,
                                   size_multiplier=self.telemetry.allocation.multiplier(intent))
        self._journal_batch((veto, trade), f"veto of intent {intent.intent_id} not journaled (nothing was sent): "
                                           "it is judged again on restart")
        self._done.add(intent.intent_id)
        self._digests[intent.intent_id] = intent_digest(intent)
        self.telemetry.observe_veto(veto)
        self.telemetry.metrics.intents.labels("vetoed").inc()
        if self.on_outcome is not None:
            self.on_outcome(veto)
        return trade

    def _unit_usd(self, intent: Intent, book: TopOfBook, contract: ContractSpec) -> float:
        """USD value of one unit of quantity at the mid (``risk.lot.fit_to_lot`` sizes on it).

        Linear and spot only: one unit is worth ``notional_usd(contract, mid, 1)`` USD (the mid on a
        contract of one base unit). The executor's positions and PnL are linear too, which is why the config
        refuses inverse instruments for it (``config.loader``); an inverse spec here is a bug.
        """
        if contract.contract_type not in LINEAR_SIZED:
            raise ValueError(f"{intent.symbol}: the executor sizes {LINEAR_SIZED} contracts only, got "
                             f"{contract.contract_type!r} (the config must refuse it)")
        return notional_usd(contract, book.mid, 1.0)

    def _route_order(self, intent: Intent, qty: float, quote: str, tick_size: float, qty_step: float) -> RouteOrder:
        return RouteOrder.from_intent(intent, qty=qty, quote=quote, tick_size=tick_size, qty_step=qty_step)

    def _tuner_health(self, now_ns: int) -> TunerHealth | None:
        return self.adaptive.health(now_ns) if self.adaptive is not None else None

    def _refresh_marks(self, now_ns: int, book: TopOfBook | None) -> None:
        """Mark every open leg (and the book just read) at the mid; on a failed read NAV ages instead.

        The mids read here also feed the tuner's decision context (recent mids) with adaptive routing.
        """
        symbols = {symbol for symbol, _ in self.portfolio.legs}
        prices: dict[str, float] = {}
        if book is not None:
            prices[book.symbol] = book.mid
        try:
            for symbol in sorted(symbols - prices.keys()):
                prices[symbol] = self.venue.top_of_book(symbol).mid
        except VenueError as exc:
            logger.warning("marks not refreshed (NAV ages): %s: %s", type(exc).__name__, exc)
            return
        if all(math.isfinite(p) and p > 0 for p in prices.values()):
            self.portfolio.mark_to_market(prices, now_ns)
            if self.adaptive is not None:
                arrival = book.symbol if book is not None else None
                for symbol, mid in sorted(prices.items()):
                    if symbol != arrival:  # decide() notes the arrival mid itself
                        self.adaptive.note_mid(symbol, mid)
