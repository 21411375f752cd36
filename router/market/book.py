"""Rebuild the price-level book from a MarketTape's depth rows.

Why here: the tape stores depth as absolute level changes plus snapshot and gap markers; this rebuilds
the book row by row, the plain reference the loader tests check tapes against. The simulated venue does
not replay rows: :class:`router.venues.sim.book.TapeBook` answers the same questions by ``searchsorted``
under the same tape contract.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from router_tuner.router.market.tape import MarketTape


@dataclass(slots=True)
class LevelBook:
    """Price levels per side (scaled integer prices and sizes) with O(log n) best bid / ask."""

    bids: dict[int, int] = field(default_factory=dict)
    asks: dict[int, int] = field(default_factory=dict)
    _bid_heap: list[int] = field(default_factory=list)  # negated prices, lazily pruned
    _ask_heap: list[int] = field(default_factory=list)

    def clear(self) -> None:
        self.bids.clear()
        self.asks.clear()
        self._bid_heap.clear()
        self._ask_heap.clear()

    def apply(self, side: int, px: int, qty: int) -> None:
        """Set the size at a level (``side`` +1 bid, -1 ask); size 0 removes the level."""
        levels, heap, key = (self.bids, self._bid_heap, -px) if side > 0 else (self.asks, self._ask_heap, px)
        if qty == 0:
            levels.pop(px, None)
            return
        if px not in levels:
            heapq.heappush(heap, key)
        levels[px] = qty

    def best_bid(self) -> int | None:
        while self._bid_heap and -self._bid_heap[0] not in self.bids:
            heapq.heappop(self._bid_heap)
        return -self._bid_heap[0] if self._bid_heap else None

    def best_ask(self) -> int | None:
        while self._ask_heap and self._ask_heap[0] not in self.asks:
            heapq.heappop(self._ask_heap)
        return self._ask_heap[0] if self._ask_heap else None


def iter_book_tops(tape: MarketTape) -> Iterator[tuple[int, int | None, int | None]]:
    """Yield ``(ts_ns, best_bid_px, best_ask_px)`` after all depth rows of each distinct time.

    The book is cleared at each snapshot start and at each gap (then yields ``None`` tops until the next
    snapshot rebuilds it).
    """
    if len(tape.depth_ts_ns) == 0:
        return
    book = LevelBook()
    ts, side, px, qty = tape.depth_ts_ns, tape.depth_side, tape.depth_px, tape.depth_qty
    snapshots = set(tape.depth_snapshot_idx.tolist())
    gaps = tape.depth_gap_ts_ns.tolist()
    gap_i = 0
    bounds = np.flatnonzero(np.diff(ts)) + 1
    starts = [0, *bounds.tolist()]
    ends = [*bounds.tolist(), len(ts)]
    for start, end in zip(starts, ends, strict=True):
        t = int(ts[start])
        while gap_i < len(gaps) and gaps[gap_i] <= t:
            book.clear()
            gap_i += 1
        for i in range(start, end):
            if i in snapshots:
                book.clear()
            book.apply(int(side[i]), int(px[i]), int(qty[i]))
        yield t, book.best_bid(), book.best_ask()
