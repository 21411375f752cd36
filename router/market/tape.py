"""The ``MarketTape``: one symbol's recorded or generated market, columnar and exact.

Prices and sizes are integers in units of ``1/price_scale`` and ``1/qty_scale`` so that a replay never
moves a price off its tick through float rounding; ``price()`` / ``qty()`` convert for analytics.
Each stream (level-1 quotes, trades, depth changes, mark prices) is its own set of equal-length arrays
sorted by time. Times are nanoseconds since the epoch on the exchange clock where the source message has one.
Mark prices are the one exception to integer prices: an exchange's mark is an index-derived number that is
not on the tick (``"61800.12345678"``), never a venue price, so it is a float in price units.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

_EMPTY_I64 = np.empty(0, dtype=np.int64)


def _empty_i64() -> np.ndarray:
    return _EMPTY_I64.copy()


def _empty_f64() -> np.ndarray:
    return np.empty(0, dtype=np.float64)


@dataclass(frozen=True, slots=True)
class MarketTape:
    """One symbol's market, columnar, sorted by time (exchange time where the message has one).

    Depth rows are absolute level sizes (0 removes the level). A consumer rebuilding the book clears it
    before the row at each index in ``depth_snapshot_idx`` (the rows of a full snapshot start there) and
    treats the book as unknown from each time in ``depth_gap_ts_ns`` until the next snapshot (a gap in the
    exchange's update ids: the diffs after it cannot be applied and are not on the tape).

    ``mark_ts_ns`` / ``mark_px`` are the exchange's mark prices (futures ``markPrice`` stream), empty when
    the source has none. They are kept for marking positions, not replayed: ``start_ns``, ``end_ns`` and
    ``n_events`` count quotes, trades and depth only, so a tape with marks replays like one without.
    """

    symbol: str
    market: str
    price_scale: int
    qty_scale: int
    tick_size: float
    quote_ts_ns: np.ndarray
    bid_px: np.ndarray
    bid_qty: np.ndarray
    ask_px: np.ndarray
    ask_qty: np.ndarray
    trade_ts_ns: np.ndarray
    trade_px: np.ndarray
    trade_qty: np.ndarray
    trade_buyer_maker: np.ndarray
    depth_ts_ns: np.ndarray
    depth_side: np.ndarray
    depth_px: np.ndarray
    depth_qty: np.ndarray
    depth_snapshot_idx: np.ndarray = field(default_factory=_empty_i64)
    depth_gap_ts_ns: np.ndarray = field(default_factory=_empty_i64)
    mark_ts_ns: np.ndarray = field(default_factory=_empty_i64)
    mark_px: np.ndarray = field(default_factory=_empty_f64)

    def price(self, x: int | np.ndarray) -> float | np.ndarray:
        """Scaled integer price(s) to float price units (analytics only)."""
        return x / self.price_scale

    def qty(self, x: int | np.ndarray) -> float | np.ndarray:
        """Scaled integer size(s) to float size units (analytics only)."""
        return x / self.qty_scale

    def median_mid(self) -> float:
        """The median of the quotes' mids, in scaled integer price units: the tape's price level."""
        return float(np.median((self.bid_px + self.ask_px) / 2.0))

    @property
    def start_ns(self) -> int:
        """Earliest event time over all streams; ValueError on an empty tape."""
        firsts = [int(a[0]) for a in (self.quote_ts_ns, self.trade_ts_ns, self.depth_ts_ns) if len(a)]
        if not firsts:
            raise ValueError(f"tape {self.symbol!r} has no events")
        return min(firsts)

    @property
    def end_ns(self) -> int:
        """Latest event time over all streams; ValueError on an empty tape."""
        lasts = [int(a[-1]) for a in (self.quote_ts_ns, self.trade_ts_ns, self.depth_ts_ns) if len(a)]
        if not lasts:
            raise ValueError(f"tape {self.symbol!r} has no events")
        return max(lasts)

    @property
    def n_events(self) -> int:
        """Quotes + trades + depth rows."""
        return len(self.quote_ts_ns) + len(self.trade_ts_ns) + len(self.depth_ts_ns)

    def validate(self) -> MarketTape:
        """Raise ValueError naming the first broken invariant; return self so calls can chain."""
        if not self.symbol:
            raise ValueError("tape symbol is empty")
        for name, scale in (("price_scale", self.price_scale), ("qty_scale", self.qty_scale)):
            if not isinstance(scale, int | np.integer) or scale < 1:
                raise ValueError(f"{self.symbol}: {name} must be a positive integer, got {scale!r}")
        if not self.tick_size > 0:
            raise ValueError(f"{self.symbol}: tick_size must be > 0, got {self.tick_size!r}")
        _check_group(self.symbol, "quote", self.quote_ts_ns,
                     {"bid_px": self.bid_px, "bid_qty": self.bid_qty,
                      "ask_px": self.ask_px, "ask_qty": self.ask_qty}, np.int64)
        _check_group(self.symbol, "trade", self.trade_ts_ns,
                     {"trade_px": self.trade_px, "trade_qty": self.trade_qty}, np.int64)
        _check_group(self.symbol, "trade", self.trade_ts_ns,
                     {"trade_buyer_maker": self.trade_buyer_maker}, np.bool_)
        _check_group(self.symbol, "depth", self.depth_ts_ns,
                     {"depth_px": self.depth_px, "depth_qty": self.depth_qty}, np.int64)
        _check_group(self.symbol, "depth", self.depth_ts_ns, {"depth_side": self.depth_side}, np.int8)
        _check_group(self.symbol, "mark", self.mark_ts_ns, {"mark_px": self.mark_px}, np.float64)
        if len(self.mark_px) and not (np.isfinite(self.mark_px) & (self.mark_px > 0)).all():
            raise ValueError(f"{self.symbol}: mark_px has a non-positive or non-finite price at index "
                             f"{int(np.argmin(np.isfinite(self.mark_px) & (self.mark_px > 0)))}")
        for name, arr in (("bid_qty", self.bid_qty), ("ask_qty", self.ask_qty),
                          ("trade_qty", self.trade_qty), ("depth_qty", self.depth_qty)):
            _check_nonnegative(self.symbol, name, arr)
        for name, arr in (("bid_px", self.bid_px), ("ask_px", self.ask_px), ("trade_px", self.trade_px),
                          ("depth_px", self.depth_px)):
            if len(arr) and int(arr.min()) <= 0:
                raise ValueError(f"{self.symbol}: {name} has a non-positive price at index "
                                 f"{int(np.argmax(arr <= 0))}")
        crossed = np.flatnonzero(self.bid_px >= self.ask_px)
        if len(crossed):
            i = int(crossed[0])
            raise ValueError(f"{self.symbol}: crossed quote at index {i} (ts {int(self.quote_ts_ns[i])}): "
                             f"bid {int(self.bid_px[i])} >= ask {int(self.ask_px[i])}")
        if len(self.depth_side) and not np.isin(self.depth_side, (1, -1)).all():
            raise ValueError(f"{self.symbol}: depth_side must be +1 or -1")
        self._validate_depth_markers()
        return self

    def _validate_depth_markers(self) -> None:
        for name, arr in (("depth_snapshot_idx", self.depth_snapshot_idx),
                          ("depth_gap_ts_ns", self.depth_gap_ts_ns)):
            if not isinstance(arr, np.ndarray) or arr.ndim != 1 or arr.dtype != np.int64:
                raise ValueError(f"{self.symbol}: {name} must be a 1-d int64 array")
            if len(arr) > 1 and (np.diff(arr) < 0).any():
                raise ValueError(f"{self.symbol}: {name} is not sorted")
        idx = self.depth_snapshot_idx
        if len(idx) and (int(idx[0]) < 0 or int(idx[-1]) >= len(self.depth_ts_ns)):
            raise ValueError(f"{self.symbol}: depth_snapshot_idx out of range [0, {len(self.depth_ts_ns)})")


def _check_group(symbol: str, group: str, ts: np.ndarray, cols: dict[str, np.ndarray], dtype: type) -> None:
    if not isinstance(ts, np.ndarray) or ts.ndim != 1 or ts.dtype != np.int64:
        raise ValueError(f"{symbol}: {group}_ts_ns must be a 1-d int64 array")
    if len(ts) > 1:
        back = np.flatnonzero(np.diff(ts) < 0)
        if len(back):
            i = int(back[0]) + 1
            raise ValueError(f"{symbol}: {group} times not sorted at index {i}: "
                             f"{int(ts[i - 1])} then {int(ts[i])}")
    for name, arr in cols.items():
        if not isinstance(arr, np.ndarray) or arr.ndim != 1:
            raise ValueError(f"{symbol}: {name} must be a 1-d numpy array")
        if arr.dtype != dtype:
            raise ValueError(f"{symbol}: {name} must have dtype {np.dtype(dtype)}, got {arr.dtype}")
        if len(arr) != len(ts):
            raise ValueError(f"{symbol}: {name} has {len(arr)} rows but {group}_ts_ns has {len(ts)}")


def _check_nonnegative(symbol: str, name: str, arr: np.ndarray) -> None:
    if len(arr) and int(arr.min()) < 0:
        raise ValueError(f"{symbol}: negative size in {name} at index {int(np.argmax(arr < 0))}")
