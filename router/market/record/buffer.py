"""One symbol's recorded messages between two flushes, parsed exactly at arrival, turned into a MarketTape.

Why parse at arrival: a price string the exchange sends malformed is reported with the message that
carried it, instead of failing a whole chunk at flush time. Values are kept as exact (digits, decimals)
pairs (``router.market.binance.parse_decimals``) and brought to one integer scale per chunk
(``rescale_decimals``), so no float ever touches a recorded price.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from router_tuner.router.market.binance import BadDecimalError, parse_decimals, rescale_decimals
from router_tuner.router.market.record.fields import RawQuoteFields, RawTradeFields
from router_tuner.router.market.tape import MarketTape

_NS_PER_MS = 1_000_000


class RecordingError(ValueError):
    """A live message or recording cannot be stored as documented; the message says which and why."""


@dataclass(slots=True)
class SymbolBuffer:
    """Quotes, trades and gap markers of one symbol since the last flush (exchange times, ns).

    Quotes whose bid is not below the ask, and quotes or trades with a zero price, are not stored: a tape
    cannot hold them. They are counted in ``rejected`` so the recorder reports them.
    """

    symbol: str
    quote_ts_ns: list[int] = field(default_factory=list)
    quote_px: list[tuple[int, int]] = field(default_factory=list)  # (digits, decimals), bid then ask
    quote_qty: list[tuple[int, int]] = field(default_factory=list)
    trade_ts_ns: list[int] = field(default_factory=list)
    trade_px: list[tuple[int, int]] = field(default_factory=list)
    trade_qty: list[tuple[int, int]] = field(default_factory=list)
    trade_buyer_maker: list[bool] = field(default_factory=list)
    gap_ts_ns: list[int] = field(default_factory=list)
    rejected: int = 0

    def add_quote(self, info: Mapping[str, Any], fields: RawQuoteFields) -> bool:
        """Store one raw top-of-book message; False (and counted) when it cannot be on a tape."""
        ts_ns = _ts_ns(self.symbol, info, fields.ts_ms)
        bid, ask = _decimals(self.symbol, info, (fields.bid_px, fields.ask_px))
        bid_qty, ask_qty = _decimals(self.symbol, info, (fields.bid_qty, fields.ask_qty))
        if bid[0] == 0 or _compare(bid, ask) >= 0:
            self.rejected += 1
            return False
        self.quote_ts_ns.append(ts_ns)
        self.quote_px += (bid, ask)
        self.quote_qty += (bid_qty, ask_qty)
        return True

    def add_trade(self, info: Mapping[str, Any], fields: RawTradeFields) -> bool:
        """Store one raw trade message; False (and counted) when it cannot be on a tape."""
        ts_ns = _ts_ns(self.symbol, info, fields.ts_ms)
        px, qty = _decimals(self.symbol, info, (fields.px, fields.qty))
        buyer_maker = info.get(fields.buyer_maker)
        if not isinstance(buyer_maker, bool):
            raise RecordingError(f"{self.symbol}: trade field {fields.buyer_maker!r} must be a boolean, "
                                 f"got {buyer_maker!r} in {dict(info)!r}")
        if px[0] == 0:
            self.rejected += 1
            return False
        self.trade_ts_ns.append(ts_ns)
        self.trade_px.append(px)
        self.trade_qty.append(qty)
        self.trade_buyer_maker.append(buyer_maker)
        return True

    def add_gap(self, ts_ns: int) -> None:
        """Mark that messages after ``ts_ns`` (until the next stored one) may be missing."""
        self.gap_ts_ns.append(ts_ns)

    @property
    def n_events(self) -> int:
        return len(self.quote_ts_ns) + len(self.trade_ts_ns)

    def is_empty(self) -> bool:
        return not (self.quote_ts_ns or self.trade_ts_ns or self.gap_ts_ns)

    def drain(self) -> SymbolBuffer:
        """Move everything stored so far into a new buffer (to flush) and start empty (rejected count kept)."""
        out = SymbolBuffer(self.symbol, self.quote_ts_ns, self.quote_px, self.quote_qty, self.trade_ts_ns,
                           self.trade_px, self.trade_qty, self.trade_buyer_maker, self.gap_ts_ns)
        self.quote_ts_ns, self.quote_px, self.quote_qty = [], [], []
        self.trade_ts_ns, self.trade_px, self.trade_qty, self.trade_buyer_maker = [], [], [], []
        self.gap_ts_ns = []
        return out

    def to_tape(self, market: str, tick_size: float) -> MarketTape:
        """The buffered events as a validated tape, each stream sorted by exchange time (stable)."""
        price_cols, price_scale, _ = rescale_decimals(
            [_pairs(self.quote_px), _pairs(self.trade_px)], "price", self.symbol)
        qty_cols, qty_scale, _ = rescale_decimals(
            [_pairs(self.quote_qty), _pairs(self.trade_qty)], "size", self.symbol)
        quote_ts = np.array(self.quote_ts_ns, dtype=np.int64)
        q = np.argsort(quote_ts, kind="stable")
        trade_ts = np.array(self.trade_ts_ns, dtype=np.int64)
        t = np.argsort(trade_ts, kind="stable")
        empty = np.empty(0, dtype=np.int64)
        return MarketTape(
            symbol=self.symbol, market=market, price_scale=price_scale, qty_scale=qty_scale, tick_size=tick_size,
            quote_ts_ns=quote_ts[q], bid_px=price_cols[0][0::2][q], bid_qty=qty_cols[0][0::2][q],
            ask_px=price_cols[0][1::2][q], ask_qty=qty_cols[0][1::2][q],
            trade_ts_ns=trade_ts[t], trade_px=price_cols[1][t], trade_qty=qty_cols[1][t],
            trade_buyer_maker=np.array(self.trade_buyer_maker, dtype=np.bool_)[t],
            depth_ts_ns=empty, depth_side=np.empty(0, dtype=np.int8), depth_px=empty.copy(),
            depth_qty=empty.copy(), depth_gap_ts_ns=np.array(sorted(self.gap_ts_ns), dtype=np.int64),
        ).validate()


def _ts_ns(symbol: str, info: Mapping[str, Any], name: str) -> int:
    value = info.get(name)
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise RecordingError(f"{symbol}: time field {name!r} must be a positive integer (ms), "
                             f"got {value!r} in {dict(info)!r}")
    return value * _NS_PER_MS


def _decimals(symbol: str, info: Mapping[str, Any], names: tuple[str, ...]) -> list[tuple[int, int]]:
    texts = [info.get(name) for name in names]
    for name, text in zip(names, texts, strict=True):
        if not isinstance(text, str) or not text.isascii():
            raise RecordingError(f"{symbol}: field {name!r} must be the exchange's decimal string, "
                                 f"got {text!r} in {dict(info)!r}")
    try:
        digits, decimals = parse_decimals(texts)
    except BadDecimalError as exc:
        raise RecordingError(f"{symbol}: field {names[exc.index]!r}: {exc} in {dict(info)!r}") from exc
    return [(int(d), int(e)) for d, e in zip(digits, decimals, strict=True)]


def _compare(x: tuple[int, int], y: tuple[int, int]) -> int:
    """Sign of x - y for exact (digits, decimals) values."""
    dec = max(x[1], y[1])
    a, b = x[0] * 10 ** (dec - x[1]), y[0] * 10 ** (dec - y[1])
    return (a > b) - (a < b)


def _pairs(values: list[tuple[int, int]]) -> tuple[np.ndarray, np.ndarray]:
    arr = np.array(values, dtype=np.int64).reshape(-1, 2)
    return arr[:, 0].copy(), arr[:, 1].copy()
