"""Exchange-side protective stops: a closePosition stop-loss and take-profit on every open leg, at the venue.

Why at the venue: a stop the executor runs itself (``Intent.is_stop``) works only while the executor runs;
one kept by the exchange (Binance's algo service) closes the leg while we are down. With
``executor.json`` ``protective_stops`` distances set, after every routed intent the leg it touched gets
the stops its average entry asks for (``desired_triggers``): a working stop at another trigger is
cancelled and replaced, a flat leg's stops are cancelled. Each stop is noted in the executor store before
it is sent, so a restart knows every stop that may work at the venue.

A stop that triggered (while we ran or while we were down) shows up at the venue as a finished stop with
the fills of the market order it placed. ``outcome`` turns it into what a routed intent leaves: an intent
of its own (id = the stop's client order id, ``close_position``, ``is_stop`` so the stop cooldown starts),
its submission and its RouterEvent (arrival = the trigger price, so its slippage is the stop's
slippage); the loop journals them through the same path as any route (realized PnL against the opening
lots), then closes the stop in the store. Exactly once: the journal refuses a second batch of the same
intent id, and a stop journaled but not yet closed at a crash is only closed at the next start.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import asdict
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

from router_tuner.config.models import Instrument, ProtectiveStopSettings, UniverseEntry
from router_tuner.executor.records import ProtectiveStopRecord, Submission
from router_tuner.executor.store import ExecutorStore
from router_tuner.risk.portfolio import Leg
from router_tuner.router.contract import ContractSpec, notional_usd
from router_tuner.router.events import Intent, PositionSide, RouterEvent, Side
from router_tuner.router.policy import RouterPolicy
from router_tuner.router.routing.ledger import RouteLedger
from router_tuner.router.routing.order import RouteOrder
from router_tuner.router.venue import (
    OrderNotFound,
    OrderState,
    ReduceOnlyRejected,
    StopKind,
    StopRequest,
    StopState,
    StopVenue,
    StopWouldTrigger,
    TopOfBook,
)

logger = logging.getLogger(__name__)

STOP_ID_PREFIX = {"stop_market": "psl", "take_profit_market": "ptp"}
"""Client order ids of protective stops start ``psl-`` / ``ptp-``: intent ids of that form are reserved."""
RESERVED_ID_PREFIXES = tuple(f"{prefix}-" for prefix in STOP_ID_PREFIX.values())
"""Intent ids the executor vetoes (``reserved_intent_id``): a stop is journaled under its client order id."""
STRATEGY = "protective_stop"
MAX_CLIENT_ID_LEN = 36  # Binance clientAlgoId: ^[.A-Z:/a-z0-9_-]{1,36}$

TriggeredStop = tuple[ProtectiveStopRecord, StopState]


def desired_triggers(settings: ProtectiveStopSettings, leg: Leg | None, tick_size: float) -> dict[StopKind, float]:
    """The stops a leg asks for: kind -> trigger price on the tick, outward from the entry (none when flat)."""
    if leg is None or leg.qty == 0.0:
        return {}
    long = leg.qty > 0
    wanted: dict[StopKind, float] = {}
    for kind, bps in (("stop_market", settings.stop_loss_bps), ("take_profit_market", settings.take_profit_bps)):
        if bps is None:
            continue
        below = (kind == "stop_market") == long  # a long's stop loss and a short's take profit sit below
        raw = Decimal(repr(leg.entry_price)) * (1 - Decimal(repr(bps)) / 10_000 if below else
                                                1 + Decimal(repr(bps)) / 10_000)
        tick = Decimal(repr(tick_size))
        ticks = (raw / tick).to_integral_value(rounding=ROUND_FLOOR if below else ROUND_CEILING)
        if ticks > 0:
            wanted[kind] = float(ticks * tick)
    return wanted


class ProtectiveStops:
    """Keeps each open leg's exchange-side stops as ``settings`` ask (see the module docstring)."""

    def __init__(self, *, settings: ProtectiveStopSettings, venue: StopVenue, store: ExecutorStore,
                 instruments: Mapping[str, Instrument], universe: Mapping[str, UniverseEntry]) -> None:
        for method in ("place_stop", "cancel_stop", "fetch_stop", "open_stops"):
            if not callable(getattr(venue, method, None)):
                raise ValueError(f"executor.json protective_stops are set but venue {venue.name} keeps no "
                                 "exchange-side stops: set both distances to null or use a venue that does")
        self.settings = settings
        self.venue = venue
        self.store = store
        self.instruments = instruments
        self.universe = universe

    def owns(self, intent_id: str) -> bool:
        """Whether ``intent_id`` is a stop of ours still open in the store (its outcome is journaled here)."""
        return any(r.client_order_id == intent_id for r in self.store.working_stops())

    def poll(self, symbol: str | None) -> list[TriggeredStop]:
        """Ask the venue about every working stop (of ``symbol``); close the ones that ended without fills and
        return the ones that triggered with fills, for the loop to journal (then it closes them)."""
        triggered = []
        for record in self.store.working_stops():
            if symbol is not None and record.symbol != symbol:
                continue
            try:
                state = self.venue.fetch_stop(record.symbol, record.client_order_id)
            except OrderNotFound:  # noted but never accepted (the send failed before reaching the venue)
                self.store.close_stop(record.client_order_id)
                continue
            triggered.extend(self._ended(record, state))
        return triggered

    def sync(self, leg: Leg | None, symbol: str, position_side: PositionSide, now_ns: int) -> list[TriggeredStop]:
        """Make the leg's working stops the desired ones; returns stops found triggered on the way."""
        wanted = desired_triggers(self.settings, leg, self.instruments[symbol].tick_size)
        triggered: list[TriggeredStop] = []
        for record in self.store.working_stops():
            if (record.symbol, record.position_side) != (symbol, position_side):
                continue
            if wanted.get(record.kind) == record.trigger_price:
                del wanted[record.kind]  # already working where it should
                continue
            state = self.venue.cancel_stop(symbol, record.client_order_id)
            triggered.extend(self._ended(record, state))
        if triggered or leg is None:
            return triggered  # a stop ended under us: journal it first, then sync again on the new leg
        for kind, trigger in sorted(wanted.items()):
            self._place(kind, trigger, "sell" if leg.qty > 0 else "buy", symbol, position_side, now_ns)
        return []

    def outcome(self, record: ProtectiveStopRecord, state: StopState, *, policy: RouterPolicy,
                contract: ContractSpec, journal_intents: int) -> tuple[Intent, RouterEvent, Submission]:
        """What a triggered stop leaves in the journal: its intent, its submission and its RouterEvent.

        ``journal_intents``: how many intents the journal holds now (the submission records it)."""
        qty = sum(f.qty for f in state.fills)
        avg = sum(f.price * f.qty for f in state.fills) / qty
        done_ns = max(f.ts_ns for f in state.fills)
        trigger_ns = state.triggered_ts_ns if state.triggered_ts_ns is not None else done_ns
        entry = self.universe[record.symbol]
        instrument = self.instruments[record.symbol]
        intent = Intent(intent_id=record.client_order_id, symbol=record.symbol, side=record.side,
                        size_hint_usd=notional_usd(contract, avg, qty), tier=entry.tier, strategy=STRATEGY,
                        reduce_only=False, close_position=True, position_side=record.position_side, is_stop=True,
                        ts_ns=trigger_ns)
        order = RouteOrder.from_intent(intent, qty=qty, quote=entry.quote, tick_size=instrument.tick_size,
                                       qty_step=instrument.qty_step)
        arrival = TopOfBook(symbol=record.symbol, bid=record.trigger_price, bid_qty=0.0, ask=record.trigger_price,
                            ask_qty=0.0, ts_ns=trigger_ns)
        ledger = RouteLedger(order=order, arrival=arrival, arrival_ts_ns=trigger_ns, contract=contract)
        ledger.observe(OrderState(client_order_id=record.client_order_id, symbol=record.symbol, status="filled",
                                  qty=qty, filled_qty=qty, price=None, fills=state.fills,
                                  unpriced_fees=state.unpriced_fees))
        event = ledger.to_event(policy, done_ns)
        notional = notional_usd(contract, avg, qty)
        submission = Submission(intent=intent, qty=qty, suggested_gross_usd=notional, clamped_gross_usd=notional,
                                binding_limit=None, size_multiplier=1.0, quote=entry.quote,
                                tick_size=instrument.tick_size, qty_step=instrument.qty_step,
                                policy=asdict(policy), arrival_bid=record.trigger_price,
                                arrival_ask=record.trigger_price, arrival_ts_ns=trigger_ns, ts_ns=trigger_ns,
                                journal_intents=journal_intents)
        return intent, event, submission

    # --- helpers ----------------------------------------------------------------------------------

    def _ended(self, record: ProtectiveStopRecord, state: StopState) -> list[TriggeredStop]:
        if not state.is_terminal:
            return []
        if state.fills:
            logger.warning("protective %s %s on %s %s triggered at the venue: %d fills", record.kind,
                           record.client_order_id, record.symbol, record.position_side, len(state.fills))
            return [(record, state)]
        self.store.close_stop(record.client_order_id)
        return []

    def _place(self, kind: StopKind, trigger: float, side: Side, symbol: str, position_side: PositionSide,
               now_ns: int) -> None:
        seq = self.store.next_stop_seq()
        cid = f"{STOP_ID_PREFIX[kind]}-{symbol}-{position_side[0]}-{seq}"
        if len(cid) > MAX_CLIENT_ID_LEN:
            raise ValueError(f"{symbol}: protective stop id {cid!r} is longer than {MAX_CLIENT_ID_LEN} characters")
        record = ProtectiveStopRecord(client_order_id=cid, symbol=symbol, position_side=position_side, kind=kind,
                                      side=side, trigger_price=trigger,
                                      working_type=self.settings.working_type, ts_ns=now_ns)
        self.store.record_stop(record, seq)
        request = StopRequest(client_order_id=cid, symbol=symbol, kind=kind, side=record.side,
                              position_side=position_side, trigger_price=trigger,
                              working_type=record.working_type)
        try:
            self.venue.place_stop(request)
        except (StopWouldTrigger, ReduceOnlyRejected) as exc:
            # Beyond its stop already, or flat at the venue: nothing to protect with this order.
            logger.warning("protective %s for %s %s not placed: %s", kind, symbol, position_side, exc)
            self.store.close_stop(cid)
