"""Why a probe ended differently in the two engines, read from the tape rather than guessed.

For every probe whose outcome differs, the market around it is looked up on the tape (``[arrival, cancel
effective]``, arrival = send + latency) and the first matching cause is named:

- ``reject: depth crossed, bookTicker did not`` / ``reject: bookTicker crossed, depth did not``: the post-only
  check at arrival. Ours checks the level-1 quote (``bookTicker``), hftbacktest its depth book; the two
  streams are published separately and disagree for a few ms (spot depth only every 100 ms).
- ``fill: opposite-side trade at our price``: a trade at our price by an aggressor on *our* side (a buy at
  our bid) means the other side's book reached our price; ours counts it as a cross (filled),
  hftbacktest's exchange looks at a trade only for orders on the side it hits.
- ``fill: bookTicker crossed our price``: ours fills when the quote's other side reaches our price;
  hftbacktest only when its depth book's best does.
- ``fill: hftbacktest log-model queue reset``: under ``ProbQueueModel(LogProbQueueFunc)`` hftbacktest's
  size ahead may go below zero (its estimate is not clamped at 0); at the next depth row of the level that
  is not an increase it evaluates ``log(1 + front)`` of a front below -1 lot, a NaN, and
  ``f64::min(NaN, level)`` puts the order back at the end of the level. Named when ours filled, hftbacktest
  did not, and replaying hftbacktest's ``ProbQueueModel`` arithmetic (:func:`replay_log_model`) on the
  probe's level events in the unit it was fed hits that NaN (ours clamps the front at 0 and keeps it).
- ``fill: log(1 + size) in the asset's unit``: a ``LogProb`` row (hftbacktest fed the asset's own unit, e.g.
  BTC) where replaying hftbacktest's arithmetic on those sizes leaves the order in the queue while ours,
  computing ``log(1 + x)`` on the tape's integer units, filled it: ``log(1 + x)`` is not scale-free.
- ``fill: queue at entry`` : the size ahead at arrival differs: ours takes the depth level, or the
  bookTicker touch size when depth does not show the level; hftbacktest takes the depth level (0 if absent).
- ``fill: queue updates``: same start, same crossings; the queue estimates moved apart (cancel attribution,
  trade/depth ordering within one ms).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Protocol

import numpy as np

from experiments.peer.probes import FILLED, REJECTED, ProbeOutcome, ProbeSchedule
from router_tuner.router.market.tape import MarketTape
from router_tuner.router.venues.sim.book import TapeBook

_DEPTH_SCAN_TICKS = 1000  # how far below/above our price the depth book is searched for a crossing level


class PairedRow(Protocol):
    market: str
    theirs_model: str
    tape_units: bool
    schedule: ProbeSchedule
    ours_out: ProbeOutcome | None
    theirs_out: ProbeOutcome


def _log_unit(row: PairedRow, qty_scale: int) -> int | None:
    if "LogProbQueueFunc" not in row.theirs_model:
        return None
    return 1 if row.tape_units else qty_scale


def _depth_crossed(book: TapeBook, is_buy: bool, px: int, ts_ns: int) -> bool:
    """Whether the depth book's other side holds size at or through ``px`` at ``ts_ns``."""
    span = _DEPTH_SCAN_TICKS * book.tick_px
    if is_buy:  # any ask level in (px - span, px]
        return next(book.levels_beyond(False, px - span, ts_ns, _DEPTH_SCAN_TICKS), None) is not None
    return next(book.levels_beyond(True, px + span, ts_ns, _DEPTH_SCAN_TICKS), None) is not None


def _quote_crossed(tape: MarketTape, is_buy: bool, px: int, t0: int, t1: int) -> bool:
    """Whether the bookTicker's other side reached ``px`` at any quote in force during [t0, t1]."""
    q0 = max(int(np.searchsorted(tape.quote_ts_ns, t0, side="right")) - 1, 0)
    q1 = int(np.searchsorted(tape.quote_ts_ns, t1, side="right"))
    other = tape.ask_px[q0:q1] if is_buy else tape.bid_px[q0:q1]
    return bool((other <= px).any() if is_buy else (other >= px).any())


def replay_log_model(tape: MarketTape, is_buy: bool, px: int, t0: int, t1: int, unit: int) -> str:
    """hftbacktest's ``ProbQueueModel`` with ``LogProbQueueFunc`` (its ``new_order``/``trade``/``depth``/
    ``is_filled``, from its source) replayed on our level's events in (t0, t1], sizes in units of ``1 / unit``
    (lot: one tape unit). ``"filled"`` when a trade fills the order first, ``"reset"`` when a depth row meets
    a front below -1 first (``log(1 + front)`` is NaN there), else ``"open"``."""
    side = 1 if is_buy else -1
    rows = np.flatnonzero((tape.depth_px == px) & (tape.depth_side == side) & (tape.depth_ts_ns <= t1))
    before = rows[tape.depth_ts_ns[rows] <= t0]
    level = float(tape.depth_qty[before[-1]]) / unit if len(before) else 0.0
    r0, r1 = np.searchsorted(tape.trade_ts_ns, (t0, t1), side="right").tolist()
    hits_us = tape.trade_buyer_maker[r0:r1] if is_buy else ~tape.trade_buyer_maker[r0:r1]
    trades = [(int(t), 0, float(q) / unit) for t, p, q, h in zip(tape.trade_ts_ns[r0:r1], tape.trade_px[r0:r1],
                                                                   tape.trade_qty[r0:r1], hits_us, strict=True)
              if p == px and h]
    depth = [(int(tape.depth_ts_ns[r]), 1, float(tape.depth_qty[r]) / unit) for r in rows[len(before):]]
    front, traded = level, 0.0
    for _t, kind, qty in sorted(trades + depth):
        if kind == 0:
            front, traded = front - qty, traded + qty
            if front * unit < -0.5:  # is_filled: round(front / lot) < 0
                return "filled"
            continue
        change, traded = level - qty - traded, 0.0
        if change >= 0 and front < -1:
            return "reset"
        if change < 0:
            front = min(front, qty)
        else:
            back = level - front
            behind = np.log1p(back) / (np.log1p(back) + np.log1p(front))
            front = min(front - (1 - behind) * change + min(back - behind * change, 0.0), qty)
        level = qty
    return "open"


def classify(book: TapeBook, schedule: ProbeSchedule, i: int, ours: ProbeOutcome, theirs: ProbeOutcome,
             log_unit: int | None = None) -> str:
    """The first cause (module docstring) that the tape shows for probe ``i``'s differing outcome.

    ``log_unit``: the row ran hftbacktest's ``LogProbQueueFunc`` with sizes in units of ``1 / log_unit``
    (``qty_scale`` for the asset's own unit, 1 for the tape's units); None for other models.
    """
    tape = book.tape
    is_buy, px = bool(schedule.is_buy[i]), int(schedule.px[i])
    arrival = int(schedule.submit_ns[i]) + schedule.latency_ns
    end = arrival + schedule.ttl_ns  # the cancel takes effect one latency after it is sent, ttl after sending
    if REJECTED in (ours.status[i], theirs.status[i]):
        if _depth_crossed(book, is_buy, px, arrival) and not _quote_crossed(tape, is_buy, px, arrival, arrival):
            return "reject: depth crossed, bookTicker did not"
        if _quote_crossed(tape, is_buy, px, arrival, arrival):
            return "reject: bookTicker crossed, depth did not"
        return "reject: other"
    r0, r1 = np.searchsorted(tape.trade_ts_ns, (arrival, end), side="right").tolist()
    at_px = tape.trade_px[r0:r1] == px
    ours_side_aggressor = ~tape.trade_buyer_maker[r0:r1] if is_buy else tape.trade_buyer_maker[r0:r1]
    if (at_px & ours_side_aggressor).any() and ours.status[i] == FILLED:
        return "fill: opposite-side trade at our price"
    if _quote_crossed(tape, is_buy, px, arrival, end) and ours.status[i] == FILLED:
        return "fill: bookTicker crossed our price"
    if log_unit is not None and ours.status[i] == FILLED:
        replayed = replay_log_model(tape, is_buy, px, arrival, end, log_unit)
        if replayed == "reset":
            return "fill: hftbacktest log-model queue reset"
        if replayed == "open" and log_unit != 1:
            return "fill: log(1 + size) in the asset's unit"
    quote = book.quote_at(arrival)
    touch_px, touch_qty = (quote.bid_px, quote.bid_qty) if is_buy else (quote.ask_px, quote.ask_qty)
    depth_qty = book.level_qty_at(is_buy, px, arrival)
    if depth_qty == 0 and touch_px == px and touch_qty > 0:
        return "fill: queue at entry"
    return "fill: queue updates"


def diagnose(rows: Sequence[PairedRow], tapes: dict[str, MarketTape]) -> dict[str, Counter[str]]:
    """Per market, the causes of every differing outcome over its paired rows (all models together)."""
    books: dict[str, TapeBook] = {}
    causes: dict[str, Counter[str]] = {}
    for row in rows:
        if row.ours_out is None:
            continue
        book = books.setdefault(row.market, TapeBook(tapes[row.market]))
        counter = causes.setdefault(row.market, Counter())
        for i in np.flatnonzero(row.ours_out.status != row.theirs_out.status).tolist():
            won = "ours filled" if row.ours_out.status[i] == FILLED else (
                "theirs filled" if row.theirs_out.status[i] == FILLED else "neither filled")
            cause = classify(book, row.schedule, i, row.ours_out, row.theirs_out, _log_unit(row, book.tape.qty_scale))
            counter[f"{cause} ({won})"] += 1
    return causes


def print_diagnosis(rows: Sequence[PairedRow], tapes: dict[str, MarketTape]) -> None:
    print("\nprobes ending differently, by cause read from the tape (all paired models of a market together):")
    for market, counter in diagnose(rows, tapes).items():
        total = sum(counter.values())
        print(f"  {market}: {total} probe outcomes differ" + ("" if total else " (none)"))
        for cause, n in counter.most_common():
            print(f"    {n:4d}  {cause}")
