"""Where each exchange keeps the raw strings the recorder stores, as data: the recorder never names an exchange.

ccxt's unified tickers and trades carry floats; the exchange's own message rides along in ``info``, with
prices and sizes as the exchange sent them (strings on Binance). The recorder parses those strings
exactly, so it must know each exchange's field names. Adding an exchange is adding an entry, after
checking its stream payloads (and the stream ccxt subscribes to) against the exchange's docs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType


@dataclass(frozen=True, slots=True)
class RawQuoteFields:
    """Field names of a top-of-book message (``info`` of a ccxt bid/ask ticker); times are in ms."""

    bid_px: str
    bid_qty: str
    ask_px: str
    ask_qty: str
    ts_ms: str


@dataclass(frozen=True, slots=True)
class RawTradeFields:
    """Field names of a public trade message (``info`` of a ccxt trade); times are in ms.

    ``buyer_maker`` is a JSON boolean: true when the buyer was the resting order (the aggressor sold).
    """

    px: str
    qty: str
    ts_ms: str
    buyer_maker: str


@dataclass(frozen=True, slots=True)
class RecordFields:
    """One exchange's raw payload layout and the ccxt watch parameters that select those payloads.

    ``watch_trades_params`` pins the stream the trade fields were checked against (ccxt could otherwise be
    configured to subscribe to another stream with other fields).
    """

    quote: RawQuoteFields
    trade: RawTradeFields
    watch_trades_params: Mapping[str, str]


# Binance USDⓈ-M: ``<symbol>@bookTicker`` {e,u,s,b,B,a,A,T,E} and ``<symbol>@trade`` {e,E,T,s,t,p,q,X,m}.
# Both are timed by the event time E, as the recorded-file loader (router.market.binance) times them.
BINANCE_USDM = RecordFields(
    quote=RawQuoteFields(bid_px="b", bid_qty="B", ask_px="a", ask_qty="A", ts_ms="E"),
    trade=RawTradeFields(px="p", qty="q", ts_ms="E", buyer_maker="m"),
    watch_trades_params=MappingProxyType({"name": "trade"}),
)

RECORD_FIELDS: Mapping[str, RecordFields] = MappingProxyType({"binanceusdm": BINANCE_USDM})


def record_fields_for(exchange_id: str) -> RecordFields:
    """The raw-field entry of ``exchange_id``; an exchange without one is refused, not guessed."""
    try:
        return RECORD_FIELDS[exchange_id]
    except KeyError:
        raise ValueError(f"recording from {exchange_id!r} is not supported (no raw-field mapping); "
                         f"supported: {', '.join(sorted(RECORD_FIELDS))}") from None
