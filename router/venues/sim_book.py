"""Read-only, precomputed views of one ``MarketTape`` that the simulated venue queries by time.

Nothing here replays event by event: the book at time ``t`` is found by ``searchsorted``, the depth
at one price by a per-level view (depth rows sorted by level, then by arrival), and a resting order's
relevant events by a vectorised scan of the window it has not seen yet. The venue therefore pays for
time only where an order of ours rests, and then only for the events at or through its price.

Depth semantics follow the tape's contract: the book is cleared at each ``depth_snapshot_idx`` row and
unknown from each ``depth_gap_ts_ns`` until the next snapshot; while unknown the venue falls back to
level-1 quotes.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from router.market.tape import MarketTape


@dataclass(frozen=True, slots=True)
class Quote:
    """Level-1 state as scaled integers."""

    bid_px: int
    bid_qty: int
    ask_px: int
    ask_qty: int


class TapeBook:
    """Time-indexed queries over one validated tape (prices and sizes as the tape's scaled integers)."""

    def __init__(self, tape: MarketTape) -> None:
        tape.validate()
        if len(tape.quote_ts_ns) == 0:
            raise ValueError(f"{tape.symbol}: the simulated venue needs level-1 quotes; the tape has none")
        tick_px = round(tape.tick_size * tape.price_scale)
        if tick_px < 1 or abs(tick_px - tape.tick_size * tape.price_scale) > 1e-6 * tick_px:
            raise ValueError(f"{tape.symbol}: tick_size {tape.tick_size} is not a whole number of "
                             f"1/{tape.price_scale} price units")
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

    # ---- precomputation -------------------------------------------------------------------------

    def _init_trades_by_price(self) -> None:
        order = np.lexsort((np.arange(len(self.trade_ts)), self.trade_px))
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
        self._lvl_key = key[order]
        self._lvl_row = order.astype(np.int64)
        self._lvl_ts = tape.depth_ts_ns[order]
        self._lvl_qty = tape.depth_qty[order]
        keys, starts = np.unique(self._lvl_key, return_index=True)
        ends = np.append(starts[1:], len(self._lvl_key))
        is_bid = (keys & 1) == 1
        # Per side: level prices ascending with their segment bounds in the level view.
        self._side_px = {True: keys[is_bid] >> 1, False: keys[~is_bid] >> 1}
        self._side_seg = {True: (starts[is_bid], ends[is_bid]), False: (starts[~is_bid], ends[~is_bid])}
        self._snap_idx = tape.depth_snapshot_idx
        self._snap_ts = tape.depth_ts_ns[self._snap_idx] if len(self._snap_idx) else self._snap_idx
        self._gap_ts = tape.depth_gap_ts_ns

    # ---- level 1 --------------------------------------------------------------------------------

    def quote_at(self, ts_ns: int) -> Quote:
        """The last quote with time <= ``ts_ns``; ValueError before the first quote."""
        i = int(np.searchsorted(self.quote_ts, ts_ns, side="right")) - 1
        if i < 0:
            raise ValueError(f"{self.symbol}: no quote at or before {ts_ns} (first quote at "
                             f"{int(self.quote_ts[0])})")
        return Quote(int(self.bid_px[i]), int(self.bid_qty[i]), int(self.ask_px[i]), int(self.ask_qty[i]))

    def first_cross_ns(self, is_buy: bool, px: int, t0_ns: int, t1_ns: int) -> int | None:
        """Earliest time in (t0, t1] at which the market went through a resting order at ``px``.

        For a buy: the best ask at or below ``px``, a trade below ``px``, or a buyer-initiated trade at
        ``px`` (it lifted an ask at our bid, so the seller would have hit us first). Mirrored for a sell.
        """
        q0, q1 = np.searchsorted(self.quote_ts, (t0_ns, t1_ns), side="right")
        t0, t1 = np.searchsorted(self.trade_ts, (t0_ns, t1_ns), side="right")
        best: int | None = None
        if q1 > q0:
            hit = self.ask_px[q0:q1] <= px if is_buy else self.bid_px[q0:q1] >= px
            k = int(hit.argmax())
            if hit[k]:
                best = int(self.quote_ts[q0 + k])
        if t1 > t0:
            tpx = self.trade_px[t0:t1]
            if is_buy:
                hit = (tpx < px) | ((tpx == px) & ~self.trade_buyer_maker[t0:t1])
            else:
                hit = (tpx > px) | ((tpx == px) & self.trade_buyer_maker[t0:t1])
            k = int(hit.argmax())
            if hit[k]:
                ts = int(self.trade_ts[t0 + k])
                best = ts if best is None else min(best, ts)
        return best

    def queue_trades(self, is_buy: bool, px: int, t0_ns: int, t1_ns: int) -> tuple[np.ndarray, np.ndarray]:
        """(times, sizes) of trades in (t0, t1] at ``px`` that took resting orders on our side."""
        a, b = np.searchsorted(self._tp_px, (px, px + 1), side="left")
        if a == b:
            return self._tp_ts[:0], self._tp_qty[:0]
        ts = self._tp_ts[a:b]
        i, j = np.searchsorted(ts, (t0_ns, t1_ns), side="right")
        # A sell aggressor (buyer is maker) takes bids; a buy aggressor takes asks.
        ours = self._tp_buyer_maker[a + i:a + j] == is_buy
        return ts[i:j][ours], self._tp_qty[a + i:a + j][ours]

    def l1_level_events(self, is_buy: bool, px: int, t0_ns: int,
                        t1_ns: int) -> tuple[np.ndarray, np.ndarray]:
        """(times, displayed size at ``px``) from level-1 quotes in (t0, t1], where L1 tells it.

        When our side's best price is at ``px`` the size is the quoted one; when it is worse than
        ``px`` nobody else is left at ``px`` (size 0); when it is better, L1 says nothing about ``px``.
        """
        q0, q1 = np.searchsorted(self.quote_ts, (t0_ns, t1_ns), side="right")
        side_px = self.bid_px[q0:q1] if is_buy else self.ask_px[q0:q1]
        idx = np.flatnonzero(side_px <= px if is_buy else side_px >= px)
        side_qty = (self.bid_qty if is_buy else self.ask_qty)[q0:q1][idx]
        return self.quote_ts[q0:q1][idx], np.where(side_px[idx] == px, side_qty, 0)

    # ---- depth ----------------------------------------------------------------------------------

    def depth_known_at(self, ts_ns: int) -> bool:
        """True when the tape has a usable depth book at ``ts_ns`` (after its start, not in a gap)."""
        if not self.has_depth or ts_ns < int(self._depth_ts[0]):
            return False
        g = int(np.searchsorted(self._gap_ts, ts_ns, side="right")) - 1
        if g < 0:
            return True
        s = int(np.searchsorted(self._snap_ts, ts_ns, side="right")) - 1
        return s >= 0 and int(self._snap_ts[s]) >= int(self._gap_ts[g])

    def level_qty_at(self, is_bid: bool, px: int, ts_ns: int) -> int:
        """Displayed depth size at one level after every depth row with time <= ``ts_ns``."""
        r = int(np.searchsorted(self._depth_ts, ts_ns, side="right"))
        seg = self._segment(is_bid, px)
        if seg is None:
            return 0
        return self._segment_qty_before_row(seg[0], seg[1], r)

    def depth_level_events(self, is_bid: bool, px: int, t0_ns: int,
                           t1_ns: int) -> tuple[np.ndarray, np.ndarray]:
        """(times, new size) of one level in (t0, t1]: its depth rows, plus a resync after each snapshot."""
        seg = self._segment(is_bid, px)
        if seg is None:
            ts, qty = self._lvl_ts[:0], self._lvl_qty[:0]
        else:
            a, b = seg
            i, j = np.searchsorted(self._lvl_ts[a:b], (t0_ns, t1_ns), side="right")
            ts, qty = self._lvl_ts[a + i:a + j], self._lvl_qty[a + i:a + j]
        s0, s1 = np.searchsorted(self._snap_ts, (t0_ns, t1_ns), side="right")
        if s1 == s0:
            return ts, qty
        snap_ts = self._snap_ts[s0:s1]
        snap_qty = np.array([self.level_qty_at(is_bid, px, int(t)) for t in snap_ts], dtype=np.int64)
        all_ts = np.concatenate((ts, snap_ts))
        order = np.argsort(all_ts, kind="stable")  # a resync sorts after the rows at its own time
        return all_ts[order], np.concatenate((qty, snap_qty))[order]

    def levels_beyond(self, is_bid: bool, px: int, ts_ns: int, max_px_steps: int) -> Iterator[tuple[int, int]]:
        """Non-empty depth levels on one side strictly worse than ``px``, best first, at ``ts_ns``.

        Worse is lower for bids and higher for asks; only levels within ``max_px_steps`` ticks are
        looked at, which bounds the work of a walk.
        """
        prices = self._side_px[is_bid]
        starts, ends = self._side_seg[is_bid]
        r = int(np.searchsorted(self._depth_ts, ts_ns, side="right"))
        span = max_px_steps * self.tick_px
        if is_bid:
            hi = int(np.searchsorted(prices, px, side="left"))
            lo = int(np.searchsorted(prices, px - span, side="left"))
            candidates = range(hi - 1, lo - 1, -1)
        else:
            lo = int(np.searchsorted(prices, px, side="right"))
            hi = int(np.searchsorted(prices, px + span, side="right"))
            candidates = range(lo, hi)
        for k in candidates:
            qty = self._segment_qty_before_row(int(starts[k]), int(ends[k]), r)
            if qty > 0:
                yield int(prices[k]), qty

    def _segment(self, is_bid: bool, px: int) -> tuple[int, int] | None:
        prices = self._side_px[is_bid]
        k = int(np.searchsorted(prices, px))
        if k == len(prices) or int(prices[k]) != px:
            return None
        starts, ends = self._side_seg[is_bid]
        return int(starts[k]), int(ends[k])

    def _segment_qty_before_row(self, a: int, b: int, row_end: int) -> int:
        """Size of the level whose view segment is [a, b) after depth rows [0, row_end), snapshots applied."""
        last = a + int(np.searchsorted(self._lvl_row[a:b], row_end, side="left")) - 1
        if last < a:
            return 0
        s = int(np.searchsorted(self._snap_idx, row_end - 1, side="right")) - 1
        if s >= 0 and int(self._lvl_row[last]) < int(self._snap_idx[s]):
            return 0  # the level was cleared by a later snapshot that did not list it
        return int(self._lvl_qty[last])


def _level_key(px: np.ndarray, is_bid: np.ndarray) -> np.ndarray:
    return (px.astype(np.int64) << 1) | is_bid.astype(np.int64)
