"""A ``MarketTape`` as hftbacktest's event array (``hftbacktest.types.event_dtype``), row for row.

Why convert the tape rather than run hftbacktest's own Binance converter on the raw files: both engines must
replay the *same* market. The tape is the book our loader rebuilt (snapshot plus diffs with update-id
checks, exact scaled prices, exchange time); feeding hftbacktest the rows of that tape means a difference
in fills comes from the fill models, not from two parsers. hftbacktest's converter
(``hftbacktest.data.utils.binancefutures.convert``) also reads only the futures layout (``T`` and ``X``
fields), so it could not convert the spot files.

Mapping (one output row per input row; ``ev`` always carries ``EXCH_EVENT | LOCAL_EVENT``):

======================================  ======================================================================
tape                                    hftbacktest row
======================================  ======================================================================
each ``depth_snapshot_idx`` row          a ``DEPTH_CLEAR_EVENT`` (no side: both sides cleared) just before it,
                                         as its converter clears before a REST snapshot
depth row, ``depth_side`` +1 / -1        ``DEPTH_EVENT | BUY_EVENT`` / ``DEPTH_EVENT | SELL_EVENT``,
                                         ``px`` = level price, ``qty`` = absolute level size (0 removes it)
trade, ``trade_buyer_maker`` False/True  ``TRADE_EVENT | BUY_EVENT`` / ``TRADE_EVENT | SELL_EVENT``
                                         (the initiator's side, as its converter sets from ``m``)
quote (``bookTicker``)                   not converted: hftbacktest builds the touch from depth, as with its
                                         converter's default ``opt=''``
mark prices                              not converted (not replayed by either engine)
======================================  ======================================================================

Times: ``exch_ts`` = ``local_ts`` = the tape's exchange time in ns (no feed latency: our venue has none, so
both engines see the market when it happens). Rows are merged by time with trades before depth rows at
equal times, the order our venue applies them in (``router.venues.sim.book.LevelCursor``). Prices and sizes
become floats ``int / scale``; hftbacktest rounds prices back to ticks with ``tick_size`` = the tape's.
"""

from __future__ import annotations

import numpy as np
from hftbacktest.types import (
    BUY_EVENT,
    DEPTH_CLEAR_EVENT,
    DEPTH_EVENT,
    EXCH_EVENT,
    LOCAL_EVENT,
    SELL_EVENT,
    TRADE_EVENT,
    event_dtype,
)

from router_tuner.router.market.tape import MarketTape

_BOTH = EXCH_EVENT | LOCAL_EVENT


def tape_events(tape: MarketTape) -> np.ndarray:
    """The tape's depth rows and trades as one time-ordered hftbacktest event array (see the module table)."""
    n_snap, n_depth, n_trade = len(tape.depth_snapshot_idx), len(tape.depth_ts_ns), len(tape.trade_ts_ns)
    out = np.zeros(n_snap + n_depth + n_trade, dtype=event_dtype)
    # at equal times trades (kind 0) come first, then depth (kind 1) in tape order, each clear just before
    # the snapshot row it precedes (sequence 2 * row - 1 against the row's 2 * row)
    ts = np.concatenate((tape.trade_ts_ns, tape.depth_ts_ns[tape.depth_snapshot_idx], tape.depth_ts_ns))
    kind = np.concatenate((np.zeros(n_trade, np.int64), np.ones(n_snap + n_depth, np.int64)))
    seq = np.concatenate((np.arange(n_trade), 2 * tape.depth_snapshot_idx - 1, 2 * np.arange(n_depth)))
    trade_ev = np.where(tape.trade_buyer_maker, TRADE_EVENT | SELL_EVENT, TRADE_EVENT | BUY_EVENT)
    depth_ev = np.where(tape.depth_side > 0, DEPTH_EVENT | BUY_EVENT, DEPTH_EVENT | SELL_EVENT)
    ev = np.concatenate((trade_ev, np.full(n_snap, DEPTH_CLEAR_EVENT), depth_ev)).astype(np.uint64) | _BOTH
    px = np.concatenate((tape.trade_px, np.zeros(n_snap, np.int64), tape.depth_px)) / tape.price_scale
    qty = np.concatenate((tape.trade_qty, np.zeros(n_snap, np.int64), tape.depth_qty)) / tape.qty_scale
    order = np.lexsort((seq, kind, ts))
    out["ev"], out["exch_ts"], out["local_ts"] = ev[order], ts[order], ts[order]
    out["px"], out["qty"] = px[order], qty[order]
    return out
