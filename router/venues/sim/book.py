"""Read-only, precomputed views of one ``MarketTape`` that the simulated venue queries by time.

A :class:`TapeBook` is built once per tape and is immutable: every array it holds is read-only
(``flags.writeable = False``) and it keeps no per-venue state, so one book is shared by every venue that
replays the tape (each lane and each policy of the main job). What belongs to one venue (orders, cursors,
positions, clock, the memo of the last window asked for) lives in the venue, never here.

Nothing here replays event by event: the book at time ``t`` is found by ``searchsorted``, the depth
at one price by a per-level view (depth rows sorted by level, then by arrival), and a resting order's
relevant events by a vectorised scan of the window it has not seen yet. The venue therefore pays for
time only where an order of ours rests, and then only for the events at or through its price.

Depth semantics follow the tape's contract: the book is cleared at each ``depth_snapshot_idx`` row and
unknown from each ``depth_gap_ts_ns`` until the next snapshot; while unknown the venue falls back to
level-1 quotes.
"""

from __future__ import annotations

import dataclasses
import operator
from collections.abc import Iterator
from typing import NamedTuple

import numpy as np

from router_tuner.router.market.tape import MarketTape


class Quote(NamedTuple):
    """Level-1 state as scaled integers (a named tuple: built at every touch read, at C speed)."""

    bid_px: int
    bid_qty: int
    ask_px: int
    ask_qty: int


class Window(NamedTuple):
    """Quotes [q0, q1) and trades [r0, r1) with time in (t0, t1], and the price extremes that matter to
    a resting order of one side (``is_buy``); None where the window has nothing to take them from (a named
    tuple: one is built at every step of a resting order).

    ``cross_touch_px``: the other side's most aggressive touch (lowest ask for a buy, highest bid for a
    sell); ``cross_trade_px``: the most aggressive trade price (lowest for a buy, highest for a sell);
    ``own_touch_px``: our side's least aggressive touch (lowest bid for a buy, highest ask for a sell),
    only on a tape without depth, where level-1 quotes stand in for the level (None with depth).
    """

    t0_ns: int
    t1_ns: int
    is_buy: bool
    q0: int
    q1: int
    r0: int
    r1: int
    cross_touch_px: int | None
    cross_trade_px: int | None
    own_touch_px: int | None


class LevelCursor:
    """The events at one price that can move a resting order's queue, read forward in time.

    Holds the trades at the price that take our side and the depth rows of the level (both already
    cut out of the tape), plus read positions, so a step with nothing at our price costs two compares.
    """

    __slots__ = ("_book", "_i_level", "_i_snap", "_i_trade", "_is_buy", "_level_qty", "_level_ts", "_px",
                 "_trade_qty", "_trade_ts")

    def __init__(self, book: TapeBook, is_buy: bool, px: int, trade_ts: np.ndarray, trade_qty: np.ndarray,
                 level_ts: np.ndarray, level_qty: np.ndarray, after_ns: int) -> None:
        self._book, self._is_buy, self._px = book, is_buy, px
        self._trade_ts, self._trade_qty = trade_ts, trade_qty
        self._level_ts, self._level_qty = level_ts, level_qty
        self._i_trade = int(trade_ts.searchsorted(after_ns, side="right"))
        self._i_level = int(level_ts.searchsorted(after_ns, side="right"))
        self._i_snap = int(book.snapshot_ts.searchsorted(after_ns, side="right"))

    def take_until(self, t1_ns: int, win: Window) -> tuple[list[int], list[int], list[int]] | None:
        """Events in (last read, t1] as parallel lists (time, kind 0=trade 1=level, size), trades first
        at equal times; None when there are none. Depth rows where the tape has depth, else L1."""
        book = self._book
        i, j = self._i_trade, self._i_level
        trade_due = i < len(self._trade_ts) and self._trade_ts[i] <= t1_ns
        if book.has_depth:
            level_due = j < len(self._level_ts) and self._level_ts[j] <= t1_ns
            resyncs = self._take_resyncs(t1_ns)
        else:
            resyncs = []
            # L1 speaks about our level only when our side's touch is at or worse than our price.
            own = win.own_touch_px
            level_due = own is not None and (own <= self._px if self._is_buy else own >= self._px)
        if not (trade_due or level_due or resyncs):
            return None
        i1 = int(self._trade_ts.searchsorted(t1_ns, side="right")) if trade_due else i
        self._i_trade = i1
        if book.has_depth:
            j1 = int(self._level_ts.searchsorted(t1_ns, side="right")) if level_due else j
            self._i_level = j1
            levels = list(zip(self._level_ts[j:j1].tolist(), self._level_qty[j:j1].tolist(), strict=True))
            if resyncs:  # a resync sorts after the depth rows at its own time (the sort is stable)
                levels = sorted(levels + resyncs, key=_time)
        elif level_due:
            level_ts, level_qty = book.l1_level_events(self._is_buy, self._px, win)
            keep = level_ts <= t1_ns  # the window may run past a cross that ends the order's queue
            levels = list(zip(level_ts[keep].tolist(), level_qty[keep].tolist(), strict=True))
        else:
            levels = []
        if i1 == i and not levels:
            return None
        trade_ts, trade_qty = self._trade_ts[i:i1].tolist(), self._trade_qty[i:i1].tolist()
        if not levels:  # trades only: already in time order
            return trade_ts, [TRADE_EVENT] * len(trade_ts), trade_qty
        # a handful of events per step: merged in Python, trades first at equal times (the sort is stable)
        events = sorted([(t, TRADE_EVENT, q) for t, q in zip(trade_ts, trade_qty, strict=True)]
                        + [(t, LEVEL_EVENT, q) for t, q in levels], key=_time_then_kind)
        return [e[0] for e in events], [e[1] for e in events], [e[2] for e in events]

    def _take_resyncs(self, t1_ns: int) -> list[tuple[int, int]]:
        """(time, size of the level) right after each depth snapshot up to t1: a snapshot that does not
        list the level clears it without a row for it."""
        snap_ts = self._book.snapshot_ts
        k = self._i_snap
        if k == len(snap_ts) or snap_ts[k] > t1_ns:
            return []
        k1 = int(snap_ts.searchsorted(t1_ns, side="right"))
        self._i_snap = k1
        return [(int(t), self._book.level_qty_at(self._is_buy, self._px, int(t))) for t in snap_ts[k:k1]]


class TapeBook:
    """Time-indexed queries over one validated tape (prices and sizes as the tape's scaled integers).

    Immutable once built, so it may be shared by any number of venues. ``tape`` is the same tape with
    read-only views of its columns (no copy): build the book from a tape nobody writes into afterwards.
    """

    def __init__(self, tape: MarketTape) -> None:
        tape.validate()
        if len(tape.quote_ts_ns) == 0:
            raise ValueError(f"{tape.symbol}: the simulated venue needs level-1 quotes; the tape has none")
        tick_px = round(tape.tick_size * tape.price_scale)
        if tick_px < 1 or abs(tick_px - tape.tick_size * tape.price_scale) > 1e-6 * tick_px:
            raise ValueError(f"{tape.symbol}: tick_size {tape.tick_size} is not a whole number of "
                             f"1/{tape.price_scale} price units")
        tape = _read_only_tape(tape)
        self.tape = tape
        self.symbol = tape.symbol
        self.tick_px = int(tick_px)
        self.quote_ts = tape.quote_ts_ns
        self.bid_px, self.bid_qty = tape.bid_px, tape.bid_qty
        self.ask_px, self.ask_qty = tape.ask_px, tape.ask_qty
        self.trade_ts, self.trade_px = tape.trade_ts_ns, tape.trade_px
        self.trade_qty, self.trade_buyer_maker = tape.trade_qty, tape.trade_buyer_maker
        self._init_trades_by_price()
        self._init_depth_levels()
        for value in vars(self).values():
            _freeze(value)

    # ---- precomputation -------------------------------------------------------------------------

    def _init_trades_by_price(self) -> None:
        # by price, then aggressor side, then time: the trades that take one side at one price are one slice
        order = np.lexsort((np.arange(len(self.trade_ts)), self.trade_buyer_maker, self.trade_px))
        self._tp_px = self.trade_px[order]
        self._tp_ts = self.trade_ts[order]
        self._tp_qty = self.trade_qty[order]
        self._tp_buyer_maker = self.trade_buyer_maker[order]

    def _init_depth_levels(self) -> None:
        tape = self.tape
        self.has_depth = len(tape.depth_ts_ns) > 0
        self._depth_ts = tape.depth_ts_ns
        key = _level_key(tape.depth_px, tape.depth_side > 0)
        order = np.lexsort((np.arange(len(key)), key))
        self._lvl_row = order.astype(np.int64, copy=False)
        self._lvl_ts = tape.depth_ts_ns[order]
        self._lvl_qty = tape.depth_qty[order]
        keys, starts = np.unique(key[order], return_index=True)  # the sorted keys are not kept: segments say it
        ends = np.append(starts[1:], len(order))
        is_bid = (keys & 1) == 1
        # Per side, indexed by is_bid (False: asks, True: bids): level prices ascending with their
        # segment bounds in the level view.
        self._side_px = (keys[~is_bid] >> 1, keys[is_bid] >> 1)
        self._side_seg = ((starts[~is_bid], ends[~is_bid]), (starts[is_bid], ends[is_bid]))
        self._snap_idx = tape.depth_snapshot_idx
        self.snapshot_ts = tape.depth_ts_ns[self._snap_idx] if len(self._snap_idx) else self._snap_idx
        self._gap_ts = tape.depth_gap_ts_ns

    # ---- level 1 --------------------------------------------------------------------------------

    def quote_at(self, ts_ns: int) -> Quote:
        """The last quote with time <= ``ts_ns``; ValueError before the first quote."""
        i = int(self.quote_ts.searchsorted(ts_ns, side="right")) - 1
        if i < 0:
            raise ValueError(f"{self.symbol}: no quote at or before {ts_ns} (first quote at "
                             f"{int(self.quote_ts[0])})")
        return Quote(self.bid_px.item(i), self.bid_qty.item(i), self.ask_px.item(i), self.ask_qty.item(i))

    def window(self, t0_ns: int, t1_ns: int, is_buy: bool) -> Window:
        """Index bounds of the quotes and trades in (t0, t1] and the extremes a resting order of that
        side needs (only those: this runs at every step of every resting order). A venue memoises the
        last one per book and side in its :class:`WindowMemo`."""
        q0, q1 = self.quote_ts.searchsorted((t0_ns, t1_ns), side="right").tolist()
        r0, r1 = self.trade_ts.searchsorted((t0_ns, t1_ns), side="right").tolist()
        cross_touch = own_touch = cross_trade = None
        if q1 > q0:
            cross_touch = _lowest(self.ask_px, q0, q1) if is_buy else _highest(self.bid_px, q0, q1)
            if not self.has_depth:
                own_touch = _lowest(self.bid_px, q0, q1) if is_buy else _highest(self.ask_px, q0, q1)
        if r1 > r0:
            cross_trade = _lowest(self.trade_px, r0, r1) if is_buy else _highest(self.trade_px, r0, r1)
        return Window(t0_ns=t0_ns, t1_ns=t1_ns, is_buy=is_buy, q0=q0, q1=q1, r0=r0, r1=r1,
                      cross_touch_px=cross_touch, cross_trade_px=cross_trade, own_touch_px=own_touch)

    def first_cross_ns(self, is_buy: bool, px: int, win: Window) -> int | None:
        """Earliest time in the window at which the market went through a resting order at ``px``.

        For a buy: the best ask at or below ``px``, a trade below ``px``, or a buyer-initiated trade at
        ``px`` (it lifted an ask at our bid, so the seller would have hit us first). Mirrored for a sell.
        The window's extremes answer "no cross" without touching the arrays, the common case.
        """
        if win.is_buy != is_buy:
            raise ValueError(f"{self.symbol}: a {'buy' if win.is_buy else 'sell'} window asked about a "
                             f"{'buy' if is_buy else 'sell'} order")
        best: int | None = None
        q0, q1, r0, r1 = win.q0, win.q1, win.r0, win.r1
        touch, trade = win.cross_touch_px, win.cross_trade_px
        quote_may_cross = touch is not None and (touch <= px if is_buy else touch >= px)
        if quote_may_cross:
            hit = self.ask_px[q0:q1] <= px if is_buy else self.bid_px[q0:q1] >= px
            best = int(self.quote_ts[q0 + int(hit.argmax())])
        trade_may_cross = trade is not None and (trade <= px if is_buy else trade >= px)
        if trade_may_cross:
            tpx = self.trade_px[r0:r1]
            if is_buy:
                hit = (tpx < px) | ((tpx == px) & ~self.trade_buyer_maker[r0:r1])
            else:
                hit = (tpx > px) | ((tpx == px) & self.trade_buyer_maker[r0:r1])
            k = int(hit.argmax())
            if hit[k]:
                ts = int(self.trade_ts[r0 + k])
                best = ts if best is None else min(best, ts)
        return best

    def quiet_until(self, is_buy: bool, px: int, after_ns: int) -> int:
        """The latest time ``T`` such that nothing in (after_ns, T] can fill a resting order at ``px``: no trade
        at or through it (a trade at it may reach us through the queue), no other-side touch at or through it
        (:meth:`first_cross_ns`). Looks at most ``QUIET_SCAN`` rows of each ahead, so ``T`` may stop short of
        the next such event; ``NEVER`` when the tape has none left.
        """
        q = int(self.quote_ts.searchsorted(after_ns, side="right"))
        q_end = min(q + QUIET_SCAN, len(self.quote_ts))
        hit = self.ask_px[q:q_end] <= px if is_buy else self.bid_px[q:q_end] >= px
        until = _before_first(self.quote_ts, q, q_end, hit)
        r = int(self.trade_ts.searchsorted(after_ns, side="right"))
        r_end = min(r + QUIET_SCAN, len(self.trade_ts))
        hit = self.trade_px[r:r_end] <= px if is_buy else self.trade_px[r:r_end] >= px
        return min(until, _before_first(self.trade_ts, r, r_end, hit))

    def level_cursor(self, is_buy: bool, px: int, after_ns: int) -> LevelCursor:
        """A forward-only reader of the events at one of our prices after ``after_ns``."""
        a, b = self._tp_px.searchsorted((px, px + 1), side="left").tolist()
        # A sell aggressor (buyer is maker) takes bids; a buy aggressor takes asks. At one price the trades of
        # buy aggressors come first (buyer_maker False), each side in time order.
        split = a + int(self._tp_buyer_maker[a:b].searchsorted(True))
        lo, hi = (split, b) if is_buy else (a, split)
        trade_ts, trade_qty = self._tp_ts[lo:hi], self._tp_qty[lo:hi]
        seg = self._segment(is_buy, px) if self.has_depth else None
        level_ts, level_qty = (self._lvl_ts[seg[0]:seg[1]], self._lvl_qty[seg[0]:seg[1]]) if seg else \
            (self._lvl_ts[:0], self._lvl_qty[:0])
        return LevelCursor(self, is_buy, px, trade_ts, trade_qty, level_ts, level_qty, after_ns)

    def l1_level_events(self, is_buy: bool, px: int, win: Window) -> tuple[np.ndarray, np.ndarray]:
        """(times, displayed size at ``px``) from the window's level-1 quotes, where L1 tells it.

        When our side's best price is at ``px`` the size is the quoted one; when it is worse than
        ``px`` nobody else is left at ``px`` (size 0); when it is better, L1 says nothing about ``px``.
        """
        q0, q1 = win.q0, win.q1
        side_px = self.bid_px[q0:q1] if is_buy else self.ask_px[q0:q1]
        idx = np.flatnonzero(side_px <= px if is_buy else side_px >= px)
        side_qty = (self.bid_qty if is_buy else self.ask_qty)[q0:q1][idx]
        return self.quote_ts[q0:q1][idx], np.where(side_px[idx] == px, side_qty, 0)

    # ---- depth ----------------------------------------------------------------------------------

    def depth_known_at(self, ts_ns: int) -> bool:
        """True when the tape has a usable depth book at ``ts_ns`` (after its start, not in a gap)."""
        if not self.has_depth or ts_ns < int(self._depth_ts[0]):
            return False
        g = int(self._gap_ts.searchsorted(ts_ns, side="right")) - 1
        if g < 0:
            return True
        s = int(self.snapshot_ts.searchsorted(ts_ns, side="right")) - 1
        return s >= 0 and int(self.snapshot_ts[s]) >= int(self._gap_ts[g])

    def level_qty_at(self, is_bid: bool, px: int, ts_ns: int) -> int:
        """Displayed depth size at one level after every depth row with time <= ``ts_ns``."""
        r = int(self._depth_ts.searchsorted(ts_ns, side="right"))
        seg = self._segment(is_bid, px)
        if seg is None:
            return 0
        return self._segment_qty_before_row(seg[0], seg[1], r)

    def levels_beyond(self, is_bid: bool, px: int, ts_ns: int, max_px_steps: int) -> Iterator[tuple[int, int]]:
        """Non-empty depth levels on one side strictly worse than ``px``, best first, at ``ts_ns``.

        Worse is lower for bids and higher for asks; only levels within ``max_px_steps`` ticks are
        looked at, which bounds the work of a walk.
        """
        prices = self._side_px[is_bid]
        starts, ends = self._side_seg[is_bid]
        r = int(self._depth_ts.searchsorted(ts_ns, side="right"))
        span = max_px_steps * self.tick_px
        if is_bid:
            hi = int(prices.searchsorted(px, side="left"))
            lo = int(prices.searchsorted(px - span, side="left"))
            candidates = range(hi - 1, lo - 1, -1)
        else:
            lo = int(prices.searchsorted(px, side="right"))
            hi = int(prices.searchsorted(px + span, side="right"))
            candidates = range(lo, hi)
        for k in candidates:
            qty = self._segment_qty_before_row(int(starts[k]), int(ends[k]), r)
            if qty > 0:
                yield int(prices[k]), qty

    def _segment(self, is_bid: bool, px: int) -> tuple[int, int] | None:
        prices = self._side_px[is_bid]
        k = int(prices.searchsorted(px))
        if k == len(prices) or int(prices[k]) != px:
            return None
        starts, ends = self._side_seg[is_bid]
        return int(starts[k]), int(ends[k])

    def _segment_qty_before_row(self, a: int, b: int, row_end: int) -> int:
        """Size of the level whose view segment is [a, b) after depth rows [0, row_end), snapshots applied."""
        last = a + int(self._lvl_row[a:b].searchsorted(row_end, side="left")) - 1
        if last < a:
            return 0
        s = int(self._snap_idx.searchsorted(row_end - 1, side="right")) - 1
        if s >= 0 and int(self._lvl_row[last]) < int(self._snap_idx[s]):
            return 0  # the level was cleared by a later snapshot that did not list it
        return int(self._lvl_qty[last])


class WindowMemo:
    """One venue's memo of the last window asked of each book per side: every resting order of a side
    asks for the same one in a step. Kept per venue so that the shared :class:`TapeBook` holds no
    mutable state."""

    __slots__ = ("_last",)

    def __init__(self) -> None:
        self._last: dict[tuple[str, bool], Window] = {}

    def window(self, book: TapeBook, t0_ns: int, t1_ns: int, is_buy: bool) -> Window:
        """``book.window(t0_ns, t1_ns, is_buy)``, computed once for consecutive asks of the same bounds."""
        key = (book.symbol, is_buy)
        last = self._last.get(key)
        if last is not None and last.t0_ns == t0_ns and last.t1_ns == t1_ns:
            return last
        win = book.window(t0_ns, t1_ns, is_buy)
        self._last[key] = win
        return win


TRADE_EVENT, LEVEL_EVENT = 0, 1
"""Event kinds of :meth:`LevelCursor.take_until`."""
_time = operator.itemgetter(0)
_time_then_kind = operator.itemgetter(0, 1)
NEVER = 2**63 - 1
"""A time after every tape's end: "no such event left"."""
QUIET_SCAN = 512
"""Rows of quotes and of trades :meth:`TapeBook.quiet_until` looks ahead at once: a few seconds of a busy tape,
about one resting period of a maker order, for the cost of a few polls' windows."""


def _before_first(ts: np.ndarray, lo: int, hi: int, hit: np.ndarray) -> int:
    """One before the time of the first row of ``ts[lo:hi]`` where ``hit`` holds; when none does, one before the
    first row not looked at (``NEVER`` when none is left)."""
    if hi > lo:
        k = int(hit.argmax())
        if hit[k]:
            return int(ts[lo + k]) - 1
    return int(ts[hi]) - 1 if hi < len(ts) else NEVER


_SHORT_SLICE = 64
"""Up to this many values, ``min`` of a list beats a numpy reduction (whose fixed cost is a few µs): measured
with ``experiments.bench.sim_replay``. A step's window of a router's poll is mostly a handful of rows."""


def _lowest(values: np.ndarray, lo: int, hi: int) -> int:
    """``values[lo:hi].min()`` as an int (``hi > lo``)."""
    if hi - lo <= _SHORT_SLICE:
        return min(values[lo:hi].tolist())
    return int(values[lo:hi].min())


def _highest(values: np.ndarray, lo: int, hi: int) -> int:
    """``values[lo:hi].max()`` as an int (``hi > lo``)."""
    if hi - lo <= _SHORT_SLICE:
        return max(values[lo:hi].tolist())
    return int(values[lo:hi].max())


def _read_only_tape(tape: MarketTape) -> MarketTape:
    """The tape with every column replaced by a read-only view of it (the caller's arrays are untouched)."""
    columns = {f.name: _read_only_view(getattr(tape, f.name)) for f in dataclasses.fields(tape)
               if isinstance(getattr(tape, f.name), np.ndarray)}
    return dataclasses.replace(tape, **columns)


def _read_only_view(arr: np.ndarray) -> np.ndarray:
    view = arr.view()
    view.flags.writeable = False
    return view


def _freeze(value: object) -> None:
    """Make the arrays of one book attribute read-only (arrays, and tuples of them, nested)."""
    if isinstance(value, np.ndarray):
        value.flags.writeable = False
    elif isinstance(value, tuple):
        for item in value:
            _freeze(item)


def _level_key(px: np.ndarray, is_bid: np.ndarray) -> np.ndarray:
    return (px.astype(np.int64) << 1) | is_bid.astype(np.int64)
