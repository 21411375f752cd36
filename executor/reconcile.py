"""Restart reconciliation: rebuild the portfolio from the journal, then settle with the venue before sending.

Order of work (``Executor.start``): (0) the journal must cover the store: only the intent in flight at a
crash may lack its outcome (``check_journal_covers_store``); (1) replay every journaled RouterEvent's fills,
in journal order, onto a fresh ``PortfolioState`` (the submission record gives each intent's position side,
and whether it was a stop whose fills start a cooldown); (2) every submitted intent without a trade record
was in flight when the process died: its legs are found by
client order id, cancelled if still resting, and its fills journaled as a RouterEvent with
``error="recovered_after_restart..."`` — it is never sent again; (3) open orders at the venue are
matched to intents by client order id prefix: one of ours that is already journaled is an error, a
foreign one is reported and left alone; (4) when the venue reports positions, each leg must equal the
journal's within ``reconcile.position_qty_tolerance``, else the executor refuses to start. Between (2) and
(3), every protective stop the store lists as working is asked of the venue (``executor.protection``): one
that triggered while we were down is journaled as its own intent with its fills and realized PnL (an
intent of a stop is never recovered by (2)'s leg probe), so (4) sees the position the stop left.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from router_tuner.executor.duplicates import intent_digest
from router_tuner.executor.outcomes import original_intent
from router_tuner.executor.positions import OpeningLots, apply_order, held_flat, hold_flat
from router_tuner.executor.records import Submission
from router_tuner.risk.portfolio import PortfolioState
from router_tuner.router.events import Fill, Intent, PositionSide, RouterEvent, TradeRecord, VetoEvent
from router_tuner.router.routing.order import client_order_id
from router_tuner.router.venue import OrderState, VenueError

PositionReader = Callable[[str], Mapping[PositionSide, float]]


class ReconcileError(RuntimeError):
    """Journal, store and venue disagree in a way the executor must not trade through."""


class JournalStoreMismatch(ReconcileError):
    """The journal and the executor store are not each other's: one was emptied, replaced or lost writes.

    A bad input, not a runtime failure: the operator must restore the right pair of files.
    """


def check_journal_covers_store(submissions: Mapping[str, Submission], done_intent_ids: frozenset[str], *,
                               max_in_flight: int, journal: Path, store: Path) -> None:
    """At most ``max_in_flight`` submissions may lack their journaled outcome; else refuse.

    ``max_in_flight`` is ``engine.max_routes_in_flight``: that many routes work at once, so that many can
    be cut off by a crash. The limit a missing submission was made under counts when it is larger (a restart
    whose configuration lowered it used to refuse the routes the crash cut off as a journal that lost records, and
    tell the operator to restore files that were fine). The sequential engine (1) also requires the one missing to
    be the last submitted; with routes working at once an older one may outlive later ones, and what tells lost
    records apart is the journal size each submission saw (``_check_journal_not_shorter``).

    Why: recovering an unjournaled submission settles it with the venue and journals what it finds. For an
    intent in flight at a crash that is right; for hundreds of intents whose outcomes the journal lost (an
    emptied or replaced journal, its ``-wal`` file deleted after a kill) it would journal "recovered"
    events in place of the real ones (zero fills on a paper venue, which keeps no history).
    """
    missing = [(i, intent_id) for i, intent_id in enumerate(submissions) if intent_id not in done_intent_ids]
    max_in_flight = max([max_in_flight, *(limit for _, intent_id in missing
                                          if (limit := submissions[intent_id].max_routes_in_flight) is not None)])
    last_journaled = max((i for i, intent_id in enumerate(submissions) if intent_id in done_intent_ids), default=-1)
    if not missing or (len(missing) <= max_in_flight and (max_in_flight > 1 or missing[0][0] > last_journaled)):
        _check_journal_not_shorter(submissions, done_intent_ids, journal=journal, store=store)
        return
    missing_ids = [intent_id for _, intent_id in missing]
    shown = ", ".join(missing_ids[:3]) + (", ..." if len(missing_ids) > 3 else "")
    raise JournalStoreMismatch(mismatch_message(
        f"the store holds {len(missing_ids)} submitted intents without an outcome in the journal ({shown}), at most "
        f"{max_in_flight} may be in flight; the journal is behind the store (emptied, replaced, or its "
        "-wal file deleted after a kill)", journal=journal, store=store))


def _check_journal_not_shorter(submissions: Mapping[str, Submission], done_intent_ids: frozenset[str], *,
                               journal: Path, store: Path) -> None:
    """Every submission recorded how many intents the journal held when it was made; the journal never shrinks.

    This is what tells a journal that lost records from routes cut off by a crash when several work at once:
    a lost record written before any later submission shows as a journal shorter than that submission saw.
    """
    counted = [(s.journal_intents, intent_id) for intent_id, s in submissions.items() if s.journal_intents is not None]
    if not counted:
        return
    seen, intent_id = max(counted)
    if len(done_intent_ids) < seen:
        raise JournalStoreMismatch(mismatch_message(
            f"the journal holds {len(done_intent_ids)} intents, but it held {seen} when intent {intent_id} was "
            "submitted: it lost records (emptied, replaced, or its -wal file deleted after a kill)",
            journal=journal, store=store))


def mismatch_message(detail: str, *, journal: Path, store: Path) -> str:
    """One refusal text for every journal/store disagreement: both files, what is wrong, what to do."""
    return (f"journal {journal} and executor store {store} do not belong together: {detail}. Nothing was sent. "
            f"Restore the journal of this store (with its -wal file), or move both files away to start afresh")


@dataclass(frozen=True, slots=True)
class ReplayedJournal:
    """What the journal says: the rebuilt portfolio and opening lots, finished intents, recent events and veto times.

    ``intent_digests`` holds the content digest of every journaled or submitted intent by id, so a later
    intent of the same id is told apart from a repeat (``executor.duplicates``); ``closing_trades`` the
    trade records that closed lots (the feedback allocator's evidence), in journal order.
    """

    portfolio: PortfolioState
    lots: OpeningLots
    done_intent_ids: frozenset[str]
    intent_digests: dict[str, bytes]
    router_events: tuple[RouterEvent, ...]
    veto_ts_ns: tuple[int, ...]
    closing_trades: tuple[TradeRecord, ...]


def replay_journal(*, router_events: Iterable[RouterEvent], vetoes: Iterable[VetoEvent],
                   trades: Iterable[TradeRecord], submissions: Mapping[str, Submission],
                   wallet_balance_usd: float, now_ns: int) -> ReplayedJournal:
    """Rebuild positions, realized PnL and opening lots by applying every journaled fill in journal order."""
    portfolio = PortfolioState(wallet_balance_usd=wallet_balance_usd, nav_ts_ns=now_ns)
    lots = OpeningLots()
    events = tuple(router_events)
    for event in events:
        submission = submissions.get(event.intent_id)
        if submission is None:
            raise JournalStoreMismatch(f"journaled router event {event.intent_id} has no submission record in "
                                       "the store, so its position side is unknown")
        apply_order(portfolio, lots, intent=submission.intent, fills=event.fills, qty_step=submission.qty_step)
        if held_flat(event):  # the run followed a flat venue after a one-way reduce-only order's fills past flat
            hold_flat(portfolio, lots, (event.symbol, submission.intent.position_side))
        record_stop_fills(portfolio, submission.intent, event.fills)
    digests = {intent_id: intent_digest(s.intent) for intent_id, s in submissions.items()}
    veto_ts_ns = []
    for veto in vetoes:
        digests[veto.intent.intent_id] = intent_digest(original_intent(veto.intent, veto.context))
        veto_ts_ns.append(veto.ts_ns)
    trades = tuple(trades)
    return ReplayedJournal(portfolio=portfolio, lots=lots, done_intent_ids=frozenset(t.intent_id for t in trades),
                           intent_digests=digests, router_events=events, veto_ts_ns=tuple(veto_ts_ns),
                           closing_trades=tuple(t for t in trades if t.closed_lots))


def record_stop_fills(portfolio: PortfolioState, intent: Intent, fills: Sequence[Fill]) -> None:
    """A stop intent that filled starts its symbol's cooldown at its last fill (none without a fill).

    Shared by the loop and the journal replay, so a restart inside ``cooldowns.after_stop_s`` keeps it.
    """
    if intent.is_stop and fills:
        portfolio.record_stop(intent.symbol, max(fill.ts_ns for fill in fills))


def intent_prefix(intent_id: str) -> str:
    """The part of every client order id of ``intent_id`` before ``-<leg>``."""
    return client_order_id(intent_id, 1).rsplit("-", 1)[0]


def classify_open_orders(open_orders: Iterable[OrderState], *, submissions: Mapping[str, Submission],
                         done_intent_ids: frozenset[str]) -> tuple[OrderState, ...]:
    """Foreign open orders (not ours); raises ``ReconcileError`` for an open order of a finished intent."""
    by_prefix = {intent_prefix(intent_id): intent_id for intent_id in submissions}
    foreign = []
    for state in open_orders:
        intent_id = by_prefix.get(state.client_order_id.rsplit("-", 1)[0])
        if intent_id is None:
            foreign.append(state)
        elif intent_id in done_intent_ids:
            raise ReconcileError(f"order {state.client_order_id} of finished intent {intent_id} is still "
                                 f"{state.status} at the venue: its fills would escape the journal")
    return tuple(foreign)


def check_positions(portfolio: PortfolioState, read: PositionReader, symbols: Iterable[str], *,
                    tolerance: float) -> None:
    """Every leg the venue reports must equal the journal's; raises ``ReconcileError`` listing mismatches.

    A venue that cannot report a symbol's positions is a ``ReconcileError`` too: unchecked is not equal.
    """
    mismatches = []
    for symbol in sorted(set(symbols) | {s for s, _ in portfolio.legs}):
        try:
            venue_legs = read(symbol)
        except VenueError as exc:
            raise ReconcileError(f"{symbol} positions unavailable: {type(exc).__name__}: {exc}") from exc
        ours = {side: leg.qty for (s, side), leg in portfolio.legs.items() if s == symbol}
        for side in sorted(set(venue_legs) | set(ours)):
            venue_qty, our_qty = venue_legs.get(side, 0.0), ours.get(side, 0.0)
            if abs(venue_qty - our_qty) > tolerance:
                mismatches.append(f"{symbol} {side}: venue {venue_qty!r}, journal {our_qty!r}")
    if mismatches:
        raise ReconcileError("positions differ from the journal: " + "; ".join(mismatches))
