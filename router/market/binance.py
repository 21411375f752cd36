"""Loader for recorded Binance public streams (``<local recv ns> <json>`` lines, gzip) into a MarketTape.

Why it is careful: a simulation is only as honest as its book. Depth is rebuilt with Binance's documented
snapshot-plus-diff procedure (diffs older than the snapshot dropped, the first kept diff must straddle the
snapshot's ``lastUpdateId``, then each diff must continue the previous one), and a break in the update ids
is recorded as a gap instead of being papered over. Prices and sizes are parsed from their strings into
exact scaled integers; no float ever touches a price.

Streams: ``bookTicker``, ``depth`` diffs (and the REST snapshot line) and ``trade`` build the book and
the trades; ``markPrice`` is kept as the tape's mark series. ``aggTrade`` and ``forceOrder`` (per symbol
or the all-market ``!forceOrder@arr``) are counted and skipped: trades already come from ``trade`` and
liquidations are not replayed. A stream this loader does not know is counted, skipped and warned about
rather than refused: it cannot change a book built from the streams above, and a capture with one more
stream should still load; a load that finds no ``bookTicker`` at all is refused, so a capture missing
what the simulator needs never passes silently. :class:`router.market.summary.LoadSummary` says what was
used and skipped per stream. Skipped streams never feed the clock-offset estimate, so a tape is the
same with or without them. Lines are the combined-stream envelope ``{"stream": ..., "data": ...}`` or, as
a single-stream connection records them, the bare payload (its stream named by ``e`` and ``s``; the reply
to a SUBSCRIBE request is counted and skipped). Receive times are ns since the epoch, or another tool's us, ms
or s, told apart by their number of digits (one unit per file, named in the summary).

A file is read for the symbol its name says, other symbols' messages counted (one capture of several symbols
is read once per name, e.g. through symlinks; its REST snapshot lines, which name no symbol, are then not
replayed). What no capture of a live market holds is refused, naming file and line: a file without a message
of the symbol its name says, two files of the same hours, a stream's event time going back, a crossed or locked quote,
more than 15 minutes without a quote. A message whose update or trade id is not after its stream's last
(a line recorded twice) is dropped and counted. A depth book that stops while the quotes go on (a snapshot
without its diff stream) is unknown from the first quote it missed: a gap, counted as such.

Also read as other tools and connections write them: the all-market ``!bookTicker`` (its messages of the file's
symbol), a trailing run of NUL bytes (a writer that died: a cut), a UTF-8 byte order mark, two files that overlap
briefly (recorders handing over: the messages in both read once), a reconnection's new REST snapshot recorded while
the old diff chain still held (the book resumes from it at the break). Futures trades that are not market trades
(``X`` ``INSURANCE_FUND``, ``ADL``, ``NA``) are skipped and counted; a depth stream of one fixed 5/10/20-level shape
that never removes a level is partial books, not diffs, and is not replayed. Refused: a spot capture under a futures
name or the reverse (told by ``E`` on bookTicker, ``pu`` on depth, ``X`` on trades), prices as JSON numbers.

Times: every stream is timed by the exchange event time ``E`` (ms, or us as spot streams send them with
``timeUnit=MICROSECOND``, told apart by their digits). Spot bookTicker and the spot REST
snapshot carry no exchange time: they are timed by the local receive time plus the clock offset of that
file, estimated as the median of ``E - local receive`` over the file's messages that have ``E``; a local
clock that jumps within the file (the offset of a block of messages moving more than a second) is refused.
"""

from __future__ import annotations

import logging
import os
import re
import zlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO

import msgspec
import numpy as np

from router_tuner.router.market.summary import KNOWN_SKIPPED_STREAMS, LoadSummary
from router_tuner.router.market.tape import MarketTape

logger = logging.getLogger(__name__)

DATA_DIR_ENV = "ROUTER_TUNER_DATA"
_REPO_ROOT = Path(__file__).resolve().parents[2]
_DEFAULT_DATA_DIR = _REPO_ROOT.parent / "shared" / "data" / "binance"
_FILE_RE = re.compile(r"^(?P<market>usdm|spot|cm)_(?P<symbol>[a-z0-9_]+?)_(?P<day>\d{8})\.jsonl(?:\.gz)?$",
                      re.IGNORECASE)  # USDM_BTCUSDT_20240808.JSONL.GZ is the same file to a person
_FUTURES_MARKETS = frozenset({"usdm", "cm"})
_MAX_QUIET_NS = 15 * 60 * 1_000_000_000  # no quote for longer: the recorder stopped, it is no market's quiet spell
_LONG_QUIET_NS = 60 * 1_000_000_000  # no quote for longer (and up to _MAX_QUIET_NS): replayed, said in the data line
_MAX_CLOCK_STEP_NS = 1_000_000_000  # the local clock moving further against the exchange's within a file: a jump
_CLOCK_BLOCK = 500  # messages whose median offset is compared with the first block's
_MAX_DEPTH_LAG_NS = 5_000_000_000  # a quote with no depth message this long after it: the depth book stopped
_MAX_TIME_BACK_NS = 1_000_000_000  # a stream's event time going back further: lines spliced out of order
_MAX_DIGITS = 18  # every 18-digit decimal fits int64
_READ_BLOCK_BYTES = 1 << 22  # I/O block size; affects speed only
_LEVEL = rb'\[\s*"[^"\\]*"\s*,\s*"[^"\\]*"\s*\]'  # ["price", "size"]
_LEVELS = re.compile(rb"\[\s*(?:" + _LEVEL + rb"(?:\s*,\s*" + _LEVEL + rb")*)?\s*\]")
_QUOTED = re.compile(rb'"([^"]*)"')
_ZERO_SIZE = re.compile(rb',\s*"0*(?:\.0*)?"\s*\]')   # a level's size of zero: the level removed
_PARTIAL_DEPTHS = frozenset({5, 10, 20})   # levels a side of Binance's partial book streams (depth5/10/20)
_MIN_PARTIAL_MESSAGES = 20   # depth messages of one shape, none removing a level: partial books, not diffs
_GZIP_MAGIC = b"\x1f\x8b"
_BOM = b"\xef\xbb\xbf"


class MarketDataError(ValueError):
    """A recorded market-data file cannot be read as documented; the message names file and line."""


# --- wire schemas (unknown fields are ignored: Binance adds fields over time) -------------------------
class _Line(msgspec.Struct):
    stream: str | None = None
    data: msgspec.Raw = msgspec.Raw(b"")
    lastUpdateId: int | None = None
    bids: msgspec.Raw = msgspec.Raw(b"")
    asks: msgspec.Raw = msgspec.Raw(b"")
    E: int | None = None
    symbol: str | None = None
    # a stream's payload recorded without the envelope (a single-stream connection, or SUBSCRIBE on /ws)
    e: str | None = None
    s: str | None = None
    u: int | None = None
    A: str | None = None
    id: int | str | None = None  # the reply to a SUBSCRIBE request


class _BookTicker(msgspec.Struct):
    u: int  # the book's update id: increases from one message to the next
    b: str
    B: str
    a: str
    A: str
    E: int | None = None


class _DepthUpdate(msgspec.Struct):
    E: int
    U: int
    u: int
    b: msgspec.Raw  # [[price, size], ...]: parsed in bulk for the diffs that are kept
    a: msgspec.Raw
    pu: int | None = None


class _Trade(msgspec.Struct):
    E: int
    p: str
    q: str
    m: bool
    t: int | None = None  # trade id: increases from one trade to the next
    X: str | None = None  # futures: MARKET, or INSURANCE_FUND / ADL / NA, which no resting order meets


class _AggTrade(msgspec.Struct):
    E: int
    p: str
    q: str
    m: bool
    a: int | None = None  # aggregate trade id: increases from one to the next


class _MarkPrice(msgspec.Struct):
    E: int
    p: str


class _Timed(msgspec.Struct):
    """The part of a skipped stream's message we check: it is a timed event, as documented."""

    E: int


class _Symbol(msgspec.Struct):
    s: str


class _ForceOrderDetail(msgspec.Struct):
    s: str


class _ForceOrder(msgspec.Struct):
    E: int
    o: _ForceOrderDetail


_LINE = msgspec.json.Decoder(_Line)
_SYMBOL = msgspec.json.Decoder(_Symbol)
_MARK_PRICE = msgspec.json.Decoder(_MarkPrice)
_AGG_TRADE = msgspec.json.Decoder(_AggTrade)
_TIMED = msgspec.json.Decoder(_Timed)
_FORCE_ORDER = msgspec.json.Decoder(_ForceOrder)
_BOOK_TICKER = msgspec.json.Decoder(_BookTicker)
_DEPTH = msgspec.json.Decoder(_DepthUpdate)
_TRADE = msgspec.json.Decoder(_Trade)


# --- public API --------------------------------------------------------------------------------------
def resolve_data_dir(cli_value: str | None) -> Path | None:
    """The recorded-data folder: explicit value > ``$ROUTER_TUNER_DATA`` > ``../shared/data/binance``
    beside the repository root when it exists > None. An explicit or env path that is missing is an error."""
    for source, value in (("argument", cli_value), (DATA_DIR_ENV, os.environ.get(DATA_DIR_ENV))):
        if value:
            path = Path(value).expanduser()
            if not path.is_dir():
                problem = "is not a directory" if path.exists() else "does not exist"
                raise FileNotFoundError(f"market data directory from {source} {problem}: {path}")
            return path
    return _DEFAULT_DATA_DIR if _DEFAULT_DATA_DIR.is_dir() else None


def discover(data_dir: Path) -> dict[str, list[Path]]:
    """Map ``"<market>_<symbol>"`` (e.g. ``"usdm_btcusdt"``) to its recorded files, oldest day first."""
    if not data_dir.is_dir():
        raise FileNotFoundError(f"market data directory does not exist: {data_dir}")
    found: dict[str, list[tuple[str, Path]]] = {}
    for path in data_dir.iterdir():
        match = _FILE_RE.match(path.name)
        if match and path.is_file():
            key = f"{match['market']}_{match['symbol']}".lower()
            found.setdefault(key, []).append((match["day"], path))
    return {key: [p for _, p in sorted(days)] for key, days in sorted(found.items())}


@dataclass(frozen=True, slots=True)
class LoadedRecording:
    """A validated tape and what its load read, used and skipped per stream."""

    tape: MarketTape
    summary: LoadSummary


def load_binance(paths: Sequence[Path], *, symbol: str | None = None) -> MarketTape:
    """Read one symbol's recorded files (one market) as one stream in time order into a validated tape.

    ``symbol`` (e.g. ``"BTCUSDT"``) selects one symbol when the files hold several; without it the files
    must hold exactly one. Files are ordered by their first receive time, whatever order they are given in.
    The load summary is logged (INFO; WARNING when unknown streams were skipped); :func:`read_binance`
    returns it.
    """
    loaded = read_binance(paths, symbol=symbol)
    if loaded.summary.unknown or loaded.summary.cut:
        logger.warning("%s", loaded.summary.describe())
    else:
        logger.info("%s", loaded.summary.describe())
    return loaded.tape


def read_binance(paths: Sequence[Path], *, symbol: str | None = None) -> LoadedRecording:
    """:func:`load_binance` with its :class:`LoadSummary`."""
    if not paths:
        raise ValueError("load_binance needs at least one file")
    markets = {_market_of(Path(p)) for p in paths}
    if len(markets) != 1:
        raise MarketDataError(f"files mix markets {sorted(markets)}: load one market per tape")
    market = markets.pop()
    state = _LoadState(market=market, symbol=symbol.upper() if symbol else None, symbol_given=bool(symbol))
    for path in sorted((Path(p) for p in paths), key=_first_recv_ns):
        _read_file(path, state)
    _check_files_do_not_overlap(state)
    return LoadedRecording(state.build(), state.summarise())


# --- internals ---------------------------------------------------------------------------------------
def _market_of(path: Path) -> str:
    match = _FILE_RE.match(path.name)
    if match is None:
        raise MarketDataError(
            f"{path}: file name does not match <usdm|spot|cm>_<symbol>_<YYYYMMDD>.jsonl[.gz]")
    return match["market"].lower()


def _symbol_of(path: Path) -> str:
    """The symbol a file's name says it holds, as the exchange spells it (``BTCUSDT``)."""
    match = _FILE_RE.match(path.name)
    return match["symbol"].upper() if match else ""


def _check_files_do_not_overlap(state: _LoadState) -> None:
    """Files read one after another must follow one another in time: two that overlap for most of either are the same
    hours recorded twice (a day file beside its copy, a ``.jsonl`` beside its ``.jsonl.gz``), and are refused. A short
    overlap (less than half of each file: two recorders handing over, each with its own connection) is read: the
    messages recorded in both are dropped by their update or trade id (counted as repeated) and the summary says so."""
    for i in range(1, len(state.files)):
        (prev_start, prev_end), (start, end) = state.file_spans[i - 1], state.file_spans[i]
        if start <= prev_end:
            early_s = (prev_end - start) / 1e9
            if 2 * (prev_end - start) < min(prev_end - prev_start, end - start):
                state.summary.overlaps.append(f"{state.files[i].name} starts {early_s:.1f} s before "
                                              f"{state.files[i - 1].name} ends")
                continue
            raise MarketDataError(
                f"{state.files[i]} overlaps {state.files[i - 1].name} in time (it starts {early_s:.1f} s before "
                "the other ends): the same hours recorded twice; keep one of them in the data directory")


@contextmanager
def _damage_named(path: Path) -> Iterator[None]:
    """A corrupt ``.gz`` (not gzip, bad data) is the file's problem (MarketDataError naming it), not a crash."""
    try:
        yield
    except zlib.error as error:
        raise MarketDataError(f"{path}: damaged gzip file ({error}); copy it again "
                              "or move it out of the data directory") from error


def _first_recv_ns(path: Path) -> int:
    for lineno, line, _ in _lines(path, LoadSummary()):   # a cut is reported by the read itself
        value = _recv_ns(line.partition(b" ")[0], path, lineno)
        return value * _recv_unit(value, path, lineno)[0]
    raise MarketDataError(f"{path}: file is empty: a recorder that never wrote; move it out of the data directory")


def _recv_ns(raw: bytes, path: Path, lineno: int) -> int:
    if not raw.isdigit():
        raise MarketDataError(f"{path}:{lineno}: line must start with '<receive time ns> ', got {raw[:40]!r}")
    return int(raw)


_RECV_UNITS = ((10**17, 1, "ns"), (10**14, 1_000, "us"), (10**11, 1_000_000, "ms"), (10**8, 1_000_000_000, "s"))
"""Since the epoch, each unit's times from 1973 to 2255 have their own number of digits: a file's unit is read from
its first line (other capture tools write ms or us)."""
_MAX_NS = 9 * 10**18  # 2255: later times do not fit the tape's int64 nanoseconds


def _recv_unit(value: int, path: Path, lineno: int) -> tuple[int, str, int, int]:
    """(ns per unit, its name, and the range of values in it) of a receive time."""
    for floor, scale, name in _RECV_UNITS:
        if floor <= value < min(floor * 1000, _MAX_NS // scale):
            return scale, name, floor, min(floor * 1000, _MAX_NS // scale)
    raise MarketDataError(f"{path}:{lineno}: receive time {value} is not a time since the epoch in ns, us, ms or s")


class BadDecimalError(ValueError):
    """A string is not an unsigned decimal; ``index`` is its position in the batch."""

    def __init__(self, index: int, text: str) -> None:
        super().__init__(f"not an unsigned decimal string: {text!r}")
        self.index = index


def parse_decimals(texts: Sequence[str] | Sequence[bytes]) -> tuple[np.ndarray, np.ndarray]:
    """``["61800.20", "3"]`` -> digits ``[6180020, 3]`` and decimals ``[2, 0]``, exactly, vectorised.

    The strings become rows of ASCII bytes, read column by column (Horner's rule). Lines were checked to
    be ASCII. Raises BadDecimalError at the first string that is not an unsigned decimal (digits with at
    most one '.', not leading) of at most 18 digits.
    """
    if not texts:
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64)
    raw = np.array(texts, dtype=np.bytes_)
    chars = np.ascontiguousarray(raw.view(np.uint8).reshape(len(texts), raw.dtype.itemsize).T)
    is_digit = (chars >= ord("0")) & (chars <= ord("9"))
    is_dot = chars == ord(".")
    is_pad = chars == 0
    n_digits = is_digit.sum(axis=0)
    ok = ((is_digit | is_dot | is_pad).all(axis=0) & (is_dot.sum(axis=0) <= 1) & (n_digits >= 1)
          & (n_digits <= _MAX_DIGITS) & ~is_dot[0] & (is_pad[:-1] <= is_pad[1:]).all(axis=0))
    if not ok.all():
        i = int(np.argmin(ok))
        raise BadDecimalError(i, texts[i])
    value = np.zeros(len(texts), dtype=np.int64)
    for col, digit in zip(chars, is_digit, strict=True):
        value = np.where(digit, value * 10 + (col - ord("0")), value)
    length = len(chars) - is_pad.sum(axis=0)
    decimals = np.where(is_dot.any(axis=0), length - 1 - is_dot.argmax(axis=0), 0).astype(np.int64)
    return value, decimals


@dataclass(slots=True)
class _DepthMsg:
    ts_ns: int
    first_id: int
    last_id: int
    prev_last_id: int | None
    bids: bytes  # raw JSON [[price, size], ...]
    asks: bytes
    is_snapshot: bool
    loc: int


@dataclass(slots=True)
class _LoadState:
    """Everything read so far; a location ``loc`` is ``file index << 32 | line number``."""

    market: str
    symbol: str | None
    symbol_given: bool
    files: list[Path] = field(default_factory=list)
    quote_loc: list[int] = field(default_factory=list)
    quote_recv_ns: list[int] = field(default_factory=list)
    quote_ts_ns: list[int] = field(default_factory=list)  # -1 until timed by local clock + offset
    quote_px: list[str] = field(default_factory=list)  # bid, ask interleaved
    quote_qty: list[str] = field(default_factory=list)
    trade_loc: list[int] = field(default_factory=list)
    trade_ts_ns: list[int] = field(default_factory=list)
    trade_px: list[str] = field(default_factory=list)
    trade_qty: list[str] = field(default_factory=list)
    trade_buyer_maker: list[bool] = field(default_factory=list)
    agg_trades: list[tuple[int, _AggTrade, int]] = field(default_factory=list)  # (ts, aggTrade, loc): the trades
    agg_offsets_ns: list[tuple[int, int]] = field(default_factory=list)   # this file's aggTrade (offset, loc)
    mark_loc: list[int] = field(default_factory=list)
    mark_ts_ns: list[int] = field(default_factory=list)
    mark_px: list[str] = field(default_factory=list)
    summary: LoadSummary = field(default_factory=LoadSummary)
    depth_out: list[_DepthMsg] = field(default_factory=list)
    depth_pending: list[_DepthMsg] = field(default_factory=list)
    depth_synced: bool = False
    depth_awaiting_first: bool = False
    depth_last_id: int = -1
    depth_spare: _DepthMsg | None = None  # the latest snapshot read while the diff chain held
    depth_gap_ts_ns: list[int] = field(default_factory=list)
    file_quote_start: int = 0
    file_symbol: str = ""  # the symbol the file being read is named for
    file_spans: list[tuple[int, int]] = field(default_factory=list)  # per file: first and last receive time
    last_id: dict[str, int] = field(default_factory=dict)  # per stream: the last update or trade id kept
    last_event_ns: dict[str, int] = field(default_factory=dict)  # per stream: the latest event time kept
    first_other: tuple[str, int] | None = None  # the first message of another symbol than the file's name says
    anonymous_snapshots: int = 0  # REST snapshot lines without a symbol (they say nothing of whose book they are)
    quote_last_id: int = -1   # last_id and last_event_ns of bookTicker and trade, read on every message
    quote_latest_ns: int = 0
    trade_last_id: int = -1
    trade_latest_ns: int = 0
    depth_shapes: set[tuple[int, int]] = field(default_factory=set)  # (bid levels, ask levels) of the depth messages
    depth_zero_seen: bool = False  # a depth message removed a level (size 0), as diffs do and partial books never

    def where(self, loc: int) -> str:
        return f"{self.files[loc >> 32]}:{loc & 0xFFFFFFFF}"

    @property
    def futures(self) -> bool:
        return self.market in _FUTURES_MARKETS

    def check_symbol(self, sym: str, loc: int) -> bool:
        """True when the message belongs to the selected symbol (fixing it on first sight): the one asked for, else
        the one the file's name says (a capture of several symbols in one file is read for the symbol of its name,
        the others counted)."""
        if not self.symbol_given and sym != self.file_symbol:
            self.summary.other_symbols += 1
            if self.first_other is None:
                self.first_other = (sym, loc)
            return False
        if self.symbol is None:
            self.symbol = sym
        elif sym != self.symbol:
            if not self.symbol_given:
                raise ValueError(f"several symbols ({self.symbol}, {sym}): pass symbol= to choose one")
            self.summary.other_symbols += 1
            return False
        return True

    def in_order(self, kind: str, msg_id: int | None, ts_ns: int | None) -> bool:
        """False (counted as repeated) for a message whose id is not after its stream's last; ValueError when a
        stream's event time goes back further than a clock's jitter, which the exchange's clock never does."""
        if msg_id is not None:
            if msg_id <= self.last_id.get(kind, -1):
                self.summary.repeated[kind] += 1
                return False
            self.last_id[kind] = msg_id
        if ts_ns is not None:
            latest = self.last_event_ns.get(kind, ts_ns)
            if ts_ns < latest - _MAX_TIME_BACK_NS:
                raise _time_back(kind, ts_ns, latest)
            self.last_event_ns[kind] = max(latest, ts_ns)
        return True

    def summarise(self) -> LoadSummary:
        """The summary of everything read, with the depth diffs that went on the tape."""
        summary = self.summary
        summary.symbol, summary.market, summary.files = self.symbol or "", self.market, len(self.files)
        summary.depth_applied = sum(not m.is_snapshot for m in self.depth_out)
        summary.depth_gaps = len(self.depth_gap_ts_ns)
        return summary

    # depth procedure --------------------------------------------------------------------------------
    def on_diff(self, msg: _DepthMsg) -> None:
        if not self.depth_synced:
            self.depth_pending.append(msg)
        elif self.depth_awaiting_first:
            self._apply_first(msg)
        elif (msg.prev_last_id if self.futures else msg.first_id - 1) == self.depth_last_id:
            self.depth_out.append(msg)
            self.depth_last_id = msg.last_id
        elif msg.last_id <= self.depth_last_id:
            self.summary.repeated["depth"] += 1   # already applied: a line recorded twice
        else:
            self._gap(msg)

    def on_snapshot(self, snap: _DepthMsg) -> None:
        if self.depth_synced:
            # the diff chain is unbroken: the book is already exact; the snapshot is kept for a break after it (a
            # recorder that reconnected, e.g. at midnight, took it for its new connection before its first diff)
            self.depth_spare = snap
            return
        self.depth_out.append(snap)
        self.depth_synced, self.depth_awaiting_first = True, True
        self.depth_last_id = snap.last_id
        pending, self.depth_pending = self.depth_pending, []
        for msg in pending:
            if self.depth_synced:
                self.on_diff(msg)
            else:
                self.depth_pending.append(msg)

    def _apply_first(self, msg: _DepthMsg) -> None:
        snap_id = self.depth_last_id
        if msg.last_id < snap_id or (not self.futures and msg.last_id == snap_id):
            return  # older than the snapshot: already in it
        target = snap_id if self.futures else snap_id + 1
        if msg.first_id <= target <= msg.last_id:
            self.depth_out.append(msg)
            self.depth_last_id, self.depth_awaiting_first = msg.last_id, False
        else:
            self._gap(msg)

    def _gap(self, msg: _DepthMsg) -> None:
        self.depth_gap_ts_ns.append(msg.ts_ns)
        self.depth_synced, self.depth_awaiting_first = False, False
        self.depth_pending = [msg]
        spare, self.depth_spare = self.depth_spare, None
        if spare is not None and spare.last_id >= (msg.prev_last_id if self.futures else msg.first_id - 1):
            # a snapshot read while the chain held and not older than the break: the book resumes from it there (stamped
            # at the break, as a snapshot is stamped no later than the first diff applied on it)
            self.on_snapshot(replace(spare, ts_ns=msg.ts_ns))

    def trades_from_agg_trades(self) -> None:
        """A capture of ``aggTrade`` without ``trade`` (as many tools record) has its trades in the aggregates: one
        per taker order and price, which is what a resting order meets. Used only then."""
        if self.trade_ts_ns or not self.agg_trades:
            return
        self.summary.read["aggTrade"] = self.summary.skipped.pop("aggTrade")
        for ts, agg, loc in self.agg_trades:
            if self.in_order("aggTrade", agg.a, ts):
                self.trade_ts_ns.append(ts)
                self.trade_loc.append(loc)
                self.trade_px.append(agg.p)
                self.trade_qty.append(agg.q)
                self.trade_buyer_maker.append(agg.m)

    # build ------------------------------------------------------------------------------------------
    def build(self) -> MarketTape:
        if self.symbol is None:
            if self.first_other is not None:
                sym, loc = self.first_other
                named = _symbol_of(self.files[loc >> 32])
                raise MarketDataError(
                    f"{self.where(loc)}: a {sym} message in a file named for {named}, and no {named} message in it: "
                    f"a file holds the symbol its name says; rename it (<market>_{sym.lower()}_<YYYYMMDD>.jsonl.gz) "
                    "or move it out of the data directory")
            seen = dict(self.summary.read) | dict(self.summary.skipped) | dict(self.summary.unknown)
            raise MarketDataError(
                f"{', '.join(map(str, self.files))}: no market message of any symbol in it (only "
                f"{', '.join(f'{k} {v}' for k, v in sorted(seen.items())) or 'nothing'}): a recorder that never "
                "received a stream; move the file out of the data directory")
        self.trades_from_agg_trades()
        (shape, *more) = self.depth_shapes or {(0, 0)}
        if (self.summary.read["depth"] >= _MIN_PARTIAL_MESSAGES and not more and not self.depth_zero_seen
                and shape[0] == shape[1] and shape[0] in _PARTIAL_DEPTHS):
            # bare futures partial-book payloads are "depthUpdate" events like the diffs; applied as diffs, the levels
            # that leave the top N would stay in the book for good
            self._drop_depth(f"{self.summary.read['depth']} depth messages of exactly {shape[0]} levels a side and "
                             f"none removing a level: partial-book snapshots (depth{shape[0]}), not diffs; record "
                             "the diff stream <symbol>@depth")
        elif self.summary.read["depth"] and not self.summary.read["snapshot"]:
            self.summary.depth_unused = (f"{self.summary.read['depth']} depth diffs and no REST snapshot line to start "
                                         "the book from (record the snapshot beside the diffs)")
        if not self.quote_ts_ns:
            raise MarketDataError(f"no bookTicker messages for {self.symbol} in {', '.join(map(str, self.files))}: "
                                  f"the simulator needs level-1 quotes ({self.summarise().describe()})")
        if self.anonymous_snapshots and self.summary.other_symbols and self.depth_out:
            # a capture of several symbols: a snapshot line without a symbol may be any of their books
            self._drop_depth(f"{self.anonymous_snapshots} snapshot line(s) without a symbol in a capture of several "
                             "symbols, whose book they may be")
        self._mark_stale_depth(np.sort(np.array(self.quote_ts_ns, dtype=np.int64)))
        quote_px = self._parse(self.quote_px, lambda i: self.quote_loc[i // 2])
        quote_qty = self._parse(self.quote_qty, lambda i: self.quote_loc[i // 2])
        trade_px = self._parse(self.trade_px, lambda i: self.trade_loc[i])
        trade_qty = self._parse(self.trade_qty, lambda i: self.trade_loc[i])
        for m in self.depth_out:
            if not (_LEVELS.fullmatch(m.bids) and _LEVELS.fullmatch(m.asks)):
                raise MarketDataError(
                    f"{self.where(m.loc)}: depth levels are not [[price, size], ...] strings")
        level_ends = np.cumsum([m.bids.count(b'"') // 4 + m.asks.count(b'"') // 4
                                for m in self.depth_out])

        def depth_loc(i: int) -> int:
            return self.depth_out[int(np.searchsorted(level_ends, i, side="right"))].loc

        strings = _QUOTED.findall(b",".join(raw for m in self.depth_out for raw in (m.bids, m.asks)))
        depth_px = self._parse(strings[0::2], depth_loc)
        depth_qty = self._parse(strings[1::2], depth_loc)
        price_cols, price_scale, tick = rescale_decimals([quote_px, trade_px, depth_px], "price", self.symbol)
        qty_cols, qty_scale, _ = rescale_decimals([quote_qty, trade_qty, depth_qty], "size", self.symbol)
        self._check_quotes(price_cols[0][0::2], price_cols[0][1::2], qty_cols[0][0::2], qty_cols[0][1::2])
        self._check_prices(price_cols[1], "trade", lambda i: self.trade_loc[i])
        self._check_prices(price_cols[2], "depth", depth_loc)

        quote_ts = np.array(self.quote_ts_ns, dtype=np.int64)
        q_order = np.argsort(quote_ts, kind="stable")
        trade_ts = np.array(self.trade_ts_ns, dtype=np.int64)
        t_order = np.argsort(trade_ts, kind="stable")
        d_ts, d_side, snap_idx = self._depth_rows()
        tape = MarketTape(
            symbol=self.symbol, market=self.market, price_scale=price_scale, qty_scale=qty_scale,
            tick_size=tick,
            quote_ts_ns=quote_ts[q_order],
            bid_px=price_cols[0][0::2][q_order], bid_qty=qty_cols[0][0::2][q_order],
            ask_px=price_cols[0][1::2][q_order], ask_qty=qty_cols[0][1::2][q_order],
            trade_ts_ns=trade_ts[t_order], trade_px=price_cols[1][t_order], trade_qty=qty_cols[1][t_order],
            trade_buyer_maker=np.array(self.trade_buyer_maker, dtype=np.bool_)[t_order],
            depth_ts_ns=d_ts, depth_side=d_side, depth_px=price_cols[2], depth_qty=qty_cols[2],
            depth_snapshot_idx=snap_idx,
            depth_gap_ts_ns=np.sort(np.array(self.depth_gap_ts_ns, dtype=np.int64)),
            **self._marks(),
        )
        try:
            return tape.validate()
        except ValueError as exc:
            raise MarketDataError(f"loaded tape is invalid: {exc}") from exc

    def _check_quotes(self, bid: np.ndarray, ask: np.ndarray, bid_qty: np.ndarray, ask_qty: np.ndarray) -> None:
        """Quotes that no market shows, named by file and line: a side without price or size, a crossed or locked
        touch, and a silence longer than any market's (replayed, it would be a frozen book that every order of those
        hours meets)."""
        empty = np.flatnonzero((bid == 0) | (ask == 0) | (bid_qty == 0) | (ask_qty == 0))
        if len(empty):
            i = int(empty[0])
            raise MarketDataError(
                f"{self.where(self.quote_loc[i])}: quote with an empty side, bid {self.quote_qty[2 * i]} at "
                f"{self.quote_px[2 * i]}, ask {self.quote_qty[2 * i + 1]} at {self.quote_px[2 * i + 1]} ({len(empty)} "
                "such quotes in all): there is no touch to trade at; cut that stretch out of the file or move the file "
                "out of the data directory")
        crossed = np.flatnonzero(bid >= ask)
        if len(crossed):
            i = int(crossed[0])
            raise MarketDataError(
                f"{self.where(self.quote_loc[i])}: crossed quote, bid {self.quote_px[2 * i]} >= ask "
                f"{self.quote_px[2 * i + 1]} ({len(crossed)} such quotes in all): a book never crosses, the capture is "
                "damaged there; cut the damaged stretch out of the file or move the file out of the data directory")
        ts = np.array(self.quote_ts_ns, dtype=np.int64)
        order = np.argsort(ts, kind="stable")
        quiet = np.diff(ts[order])
        for k in np.flatnonzero(quiet > _LONG_QUIET_NS)[:3]:  # a recorder's outage or a dead market: said, not hidden
            self.summary.quiet.append(f"{self.where(self.quote_loc[int(order[k + 1])])}: no quote for "
                                      f"{int(quiet[k]) / 1e9:.1f} s before this one")
        if len(quiet) and int(quiet.max()) > _MAX_QUIET_NS:
            k = int(np.argmax(quiet))
            raise MarketDataError(
                f"{self.where(self.quote_loc[int(order[k + 1])])}: no quote for {int(quiet[k]) / 6e10:.1f} min before "
                f"this one (more than {_MAX_QUIET_NS // 60_000_000_000} min: the recorder stopped, or recordings of "
                "different hours meet here); replayed, it would be a frozen market. Put the parts before and after "
                "in two data directories and simulate each")

    def _mark_stale_depth(self, quote_ts: np.ndarray) -> None:
        """A depth book that stops while the quotes go on (a capture without the diff stream, only its snapshot, or
        one whose depth subscription dropped) is unknown from the first quote it missed: every change of the touch
        comes as a diff within a second, so a quote with no depth message in the next 5 s is one the book never
        saw. Marked as gaps (the venue falls back to the quotes there) and counted; replayed, the book was frozen."""
        if not self.depth_out:
            return
        msg_ts = np.sort(np.array([m.ts_ns for m in self.depth_out], dtype=np.int64))
        after = quote_ts[quote_ts > msg_ts[0]]
        nxt = np.searchsorted(msg_ts, after, side="left")
        # past the last depth message, a quote is stale only when the tape goes on long enough for its diff to come
        tail = np.where(quote_ts[-1] - after > _MAX_DEPTH_LAG_NS, np.iinfo(np.int64).max, after)
        next_ts = np.where(nxt < len(msg_ts), msg_ts[np.minimum(nxt, len(msg_ts) - 1)], tail)
        stale = (next_ts - after) > _MAX_DEPTH_LAG_NS
        if self.depth_gap_ts_ns:   # inside a gap of the update ids the book is unknown already
            gaps = np.sort(np.array(self.depth_gap_ts_ns, dtype=np.int64))
            snaps = np.sort(np.array([m.ts_ns for m in self.depth_out if m.is_snapshot], dtype=np.int64))
            last_gap = np.searchsorted(gaps, after, side="right") - 1
            last_snap = np.searchsorted(snaps, after, side="right") - 1
            snap_ts, gap_ts = snaps[np.maximum(last_snap, 0)], gaps[np.maximum(last_gap, 0)]
            in_gap = (last_gap >= 0) & ((last_snap < 0) | (snap_ts < gap_ts))
            stale &= ~in_gap
            # a diff that broke the chain is a depth message too: the book did not stop before it, it broke there
            next_gap = np.searchsorted(gaps, after, side="left")
            gap_after = np.where(next_gap < len(gaps), gaps[np.minimum(next_gap, len(gaps) - 1)],
                                 np.iinfo(np.int64).max)
            stale &= (gap_after - after) > _MAX_DEPTH_LAG_NS
        if stale.any() and all(m.is_snapshot for m in self.depth_out):
            # snapshots and no diff on them: no depth stream to replay, the quotes alone are (as without depth)
            diffs = self.summary.read["depth"]
            self._drop_depth(
                f"{len(self.depth_out)} snapshot(s) and none of the {diffs} depth diffs continuing one (a snapshot "
                "taken before the diffs began or after they ended, or another book's)" if diffs else
                f"{len(self.depth_out)} snapshot(s) and no depth diff while the quotes went on")
        elif stale.any():
            first = np.unique(nxt[stale], return_index=True)[1]   # the first stale quote of each depth silence
            self.depth_gap_ts_ns.extend(int(t) for t in after[stale][first])
            self.summary.depth_stale = len(first)

    def _drop_depth(self, why: str) -> None:
        """Replay no depth book (the quotes alone, as a capture without depth), saying ``why`` in the summary."""
        self.summary.depth_unused = why
        self.depth_out.clear()
        self.depth_gap_ts_ns.clear()

    def _check_prices(self, px: np.ndarray, what: str, loc_of: Callable[[int], int]) -> None:
        zero = np.flatnonzero(px == 0)
        if len(zero):
            raise MarketDataError(f"{self.where(loc_of(int(zero[0])))}: {what} at price 0 ({len(zero)} in all): no "
                                  "market trades or quotes there; the capture is damaged")

    def _marks(self) -> dict[str, np.ndarray]:
        """Mark prices in time order, as floats in price units (exact digits checked, off-tick allowed)."""
        digits, decimals = self._parse(self.mark_px, lambda i: self.mark_loc[i])
        ts = np.array(self.mark_ts_ns, dtype=np.int64)
        order = np.argsort(ts, kind="stable")
        return {"mark_ts_ns": ts[order], "mark_px": (digits / 10.0 ** decimals)[order]}

    def _parse(self, texts: Sequence[str] | Sequence[bytes],
               loc_of: Callable[[int], int]) -> tuple[np.ndarray, np.ndarray]:
        try:
            return parse_decimals(texts)
        except BadDecimalError as exc:
            raise MarketDataError(f"{self.where(loc_of(exc.index))}: {exc}") from exc

    def _depth_rows(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per-level times and sides; a snapshot is stamped no later than the first diff applied on it."""
        msgs = self.depth_out
        ts = [m.ts_ns for m in msgs]
        for i, m in enumerate(msgs):
            if m.is_snapshot and i + 1 < len(msgs):
                ts[i] = min(ts[i], ts[i + 1])
            if i and ts[i] < ts[i - 1]:
                if m.is_snapshot:
                    ts[i] = ts[i - 1]
                else:
                    raise MarketDataError(f"{self.where(m.loc)}: {_time_back('depth', ts[i], ts[i - 1])}")
        per_side = np.array([(m.bids.count(b'"') // 4, m.asks.count(b'"') // 4) for m in msgs],
                            dtype=np.int64).reshape(-1)
        side = np.repeat(np.tile(np.array([1, -1], dtype=np.int8), len(msgs)), per_side)
        counts = per_side.reshape(-1, 2).sum(axis=1)
        row_ts = np.repeat(np.array(ts, dtype=np.int64), counts)
        starts = np.cumsum(counts) - counts
        snap_idx = starts[np.array([m.is_snapshot for m in msgs], dtype=bool)]
        return row_ts, side, snap_idx.astype(np.int64)


def rescale_decimals(cols: list[tuple[np.ndarray, np.ndarray]], what: str,
                     symbol: str) -> tuple[list[np.ndarray], int, float]:
    """Bring every value to one scale: the fewest decimals that represent all of them exactly.

    ``cols`` holds (digits, decimals) pairs. Returns the scaled columns, the scale, and the smallest
    increment seen (gcd of the values) in units.
    """
    max_dec = max((int(dec.max()) for _, dec in cols if len(dec)), default=0)
    scaled = []
    for digits, dec in cols:
        shift = 10 ** (max_dec - dec)
        if len(digits) and float((digits.astype(np.float64) * shift).max()) >= 2.0**62:
            raise MarketDataError(f"{symbol}: {what} values do not fit 64-bit integers at {max_dec} decimals")
        scaled.append(digits * shift)
    values = np.concatenate(scaled)
    gcd = int(np.gcd.reduce(values)) if len(values) else 0
    strip = 0
    while strip < max_dec and gcd and gcd % 10 ** (strip + 1) == 0:
        strip += 1
    div = 10**strip
    scale = 10 ** (max_dec - strip)
    tick = (gcd // div) / scale if gcd else 1 / scale
    return [col // div for col in scaled], scale, tick


def _lines(path: Path, summary: LoadSummary) -> Iterator[tuple[int, bytes, bool]]:
    """Non-blank lines with their 1-based numbers and whether a newline ended them, read in large blocks (faster
    than readline).

    A gzip stream that ends before its end marker (a recorder killed before it closed the file) ends the lines
    there: what was read is used and the summary says where the file was cut. Anything else wrong with the
    compression is the file's error.
    """
    lineno, tail = 0, b""
    with _damage_named(path), open(path, "rb") as fh:
        gzipped = path.suffix.lower() == ".gz" or fh.peek(2)[:2] == _GZIP_MAGIC   # a .jsonl another tool gzipped
        blocks = _gunzip(fh) if gzipped else iter(lambda: fh.read(_READ_BLOCK_BYTES), b"")
        try:
            for chunk in blocks:
                if lineno == 0 and not tail and chunk.startswith(_BOM):   # an editor's UTF-8 byte order mark
                    chunk = chunk[len(_BOM):]
                lines = (tail + chunk).split(b"\n")
                tail = lines.pop()
                for line in lines:
                    lineno += 1
                    if line.strip():
                        yield lineno, line, True
        except _StreamCut:   # the partial line before the cut is not a line
            summary.cut.append(f"{path.name}: gzip stream ends early, used its first {lineno} lines")
            return
    if b"\x00" in tail and not tail.strip(b"\x00 \t\r"):   # space a filesystem gave a file whose writer then died
        summary.cut.append(f"{path.name}: ends in {len(tail)} NUL bytes after line {lineno} (its writer stopped), "
                           "ignored")
    elif tail.strip():
        yield lineno + 1, tail, False


class _StreamCut(Exception):
    """Raised by :func:`_gunzip` after the last bytes of a gzip stream that ends before its end marker."""


def _gunzip(fh: IO[bytes]) -> Iterator[bytes]:
    """The decompressed bytes of every gzip member of ``fh``; :class:`_StreamCut` if the last member lacks its end.

    zlib directly rather than ``gzip.open``: the latter raises EOFError on a cut stream and loses the block it was
    decompressing, while a recorder killed mid-write leaves exactly such a file, complete up to its last line.
    """
    member = zlib.decompressobj(wbits=31)
    fed = False
    while raw := fh.read(_READ_BLOCK_BYTES // 8):   # compressed bytes: about a block once inflated
        while raw:
            fed = True
            yield member.decompress(raw, _READ_BLOCK_BYTES)
            if member.eof:
                raw = member.unused_data   # the next member of a concatenated file
                member, fed = zlib.decompressobj(wbits=31), False
            else:
                raw = member.unconsumed_tail
    if fed and not member.eof:
        yield member.flush()
        raise _StreamCut


def _read_file(path: Path, state: _LoadState) -> None:
    offsets_ns: list[tuple[int, int]] = []   # (exchange time - receive time, loc) of this file's timed messages
    local_snapshots: list[_DepthMsg] = []
    state.file_quote_start = len(state.quote_ts_ns)
    state.file_symbol = _symbol_of(path)
    state.agg_offsets_ns = []
    file_loc = len(state.files) << 32
    state.files.append(path)
    first_recv_ns = last_recv_ns = -1
    ns_per_unit, unit, low, high = 0, "", 0, 0
    for lineno, line, ended in _lines(path, state.summary):
        loc = file_loc | lineno
        raw_ts, _, payload = line.partition(b" ")
        recv_ns = _recv_ns(raw_ts, path, lineno)
        if not low <= recv_ns < high:
            if ns_per_unit:
                raise MarketDataError(f"{path}:{lineno}: receive time {recv_ns} is not in {unit}, as the file's "
                                      "first line: a file's receive times are in one unit")
            ns_per_unit, unit, low, high = _recv_unit(recv_ns, path, lineno)
            if unit != "ns":
                state.summary.recv_units[path.name] = unit
        recv_ns *= ns_per_unit
        first_recv_ns = recv_ns if first_recv_ns < 0 else first_recv_ns
        last_recv_ns = max(last_recv_ns, recv_ns)
        try:
            if not payload.isascii():
                raise ValueError("non-ASCII bytes in line")
            msg = _LINE.decode(payload)
            if msg.stream is not None and len(msg.data):
                _on_stream(msg.stream, msg.data, recv_ns, state, offsets_ns, loc)
            elif msg.lastUpdateId is not None and len(msg.bids) and len(msg.asks):
                if msg.symbol is not None and not state.check_symbol(msg.symbol.upper(), loc):
                    continue
                state.summary.read["snapshot"] += 1
                state.anonymous_snapshots += msg.symbol is None
                snap = _DepthMsg(
                    ts_ns=_event_ns(msg.E, state) if msg.E is not None else recv_ns, first_id=msg.lastUpdateId,
                    last_id=msg.lastUpdateId, prev_last_id=None, bids=bytes(msg.bids), asks=bytes(msg.asks),
                    is_snapshot=True, loc=loc)
                if msg.E is None:
                    local_snapshots.append(snap)
                state.on_snapshot(snap)
            elif (kind := _payload_kind(msg)) is not None:
                stream = f"{msg.s.lower()}@{kind}" if msg.s else f"!{kind}@arr"
                _on_stream(stream, msgspec.Raw(payload), recv_ns, state, offsets_ns, loc)
            elif msg.id is not None:
                state.summary.skipped["subscription reply"] += 1
            else:
                raise ValueError('neither a combined-stream envelope {"stream": ..., "data": ...}, a stream\'s '
                                 'payload (with its "e" and "s") nor a depth snapshot')
        except (msgspec.DecodeError, msgspec.ValidationError, ValueError) as exc:
            if isinstance(exc, MarketDataError):
                raise
            if not ended:   # the file's last line, cut short when its writer stopped: nothing after it to lose
                state.summary.cut.append(f"{path.name}: last line {lineno} is incomplete, ignored")
                continue
            if isinstance(exc, msgspec.ValidationError) and re.search(r"Expected `str`, got `(int|float)`", str(exc)):
                raise MarketDataError(
                    f"{path}:{lineno}: {exc}: a price or size written as a JSON number, where Binance sends a string "
                    "(\"61800.30\"); the tool that wrote the file converted them, and a number's decimals are not "
                    "exact: record with a tool that keeps the strings, or move the file out of the data directory"
                ) from exc
            # a ValidationError is a DecodeError too: the JSON was read, its fields are not as documented
            unreadable = isinstance(exc, msgspec.DecodeError) and not isinstance(exc, msgspec.ValidationError)
            what = "not a JSON message" if unreadable else "not as documented"
            raise MarketDataError(f"{path}:{lineno}: {exc} ({what}: cut the line out, or move the file out of the "
                                  "data directory)") from exc
    state.file_spans.append((first_recv_ns, last_recv_ns))
    _apply_clock_offset(path, state, offsets_ns, local_snapshots)


_PAYLOAD_KINDS = {"bookTicker": "bookTicker", "depthUpdate": "depth", "trade": "trade", "aggTrade": "aggTrade",
                  "markPriceUpdate": "markPrice", "forceOrder": "forceOrder"}
"""A payload's event type ``e`` -> the name of its stream (``btcusdt@<name>``)."""


def _payload_kind(msg: _Line) -> str | None:
    """The stream of a payload recorded without the combined-stream envelope, or None when the line is not one: its
    ``e`` names it (an unknown ``e`` is its own, unknown, stream); spot ``bookTicker`` has no ``e`` but its fields."""
    if msg.e is not None:
        return _PAYLOAD_KINDS.get(msg.e, msg.e)
    if msg.s is not None and msg.u is not None and msg.A is not None:
        return "bookTicker"
    return None


def _apply_clock_offset(path: Path, state: _LoadState, offsets_ns: list[tuple[int, int]],
                        local_snapshots: list[_DepthMsg]) -> None:
    """Time this file's local-clock messages on the exchange clock (see module docstring)."""
    local_quotes = [i for i in range(state.file_quote_start, len(state.quote_ts_ns))
                    if state.quote_ts_ns[i] < 0]
    if not local_quotes and not local_snapshots:
        return
    offsets_ns = offsets_ns or state.agg_offsets_ns   # aggregate trades time the quotes only when nothing else can
    if not offsets_ns:
        raise MarketDataError(f"{path}: no message with an exchange time to estimate the clock offset from (spot "
                              "bookTicker has none): record the trade or depth stream beside it")
    offsets = np.array(offsets_ns, dtype=np.int64)
    _check_local_clock(state, offsets)
    offset_ns = int(np.median(offsets[:, 0]))
    for i in local_quotes:
        state.quote_ts_ns[i] = state.quote_recv_ns[i] + offset_ns
    for snap in local_snapshots:
        snap.ts_ns += offset_ns


_MS_LOW, _MS_HIGH = 10**11, 10**14   # exchange event times in ms (1973 to 5138); in us they have 3 digits more


def _event_ns(e: int, state: _LoadState) -> int:
    """An exchange event time ``E`` in ns: ms as Binance sends by default, or us (spot streams subscribed with
    ``timeUnit=MICROSECOND``), told apart by their number of digits; the file's us are named in the summary."""
    if _MS_LOW <= e < _MS_HIGH:
        return e * 1_000_000
    if _MS_HIGH <= e < _MS_HIGH * 1000:
        state.summary.event_units.setdefault(state.files[-1].name, "us")
        return e * 1_000
    raise ValueError(f"event time E {e} is not a time since the epoch in ms or us")


def _time_back(kind: str, ts_ns: int, latest_ns: int) -> ValueError:
    """A stream's event time going back: the exchange's clock does not, a capture spliced out of order does."""
    return ValueError(f"{kind} event time goes back {(latest_ns - ts_ns) / 1e9:.1f} s here (to E "
                      f"{ts_ns // 1_000_000}): the exchange's clock never does, so lines were spliced out of "
                      "order; cut the stretch out or split the file at this line")


def _check_local_clock(state: _LoadState, offsets: np.ndarray) -> None:
    """One offset per file times its local-clock messages: refused when the local clock jumps against the exchange's
    within the file (a clock stepped by hand or by NTP), which would misplace the quotes on one side of the jump.
    Compared over blocks of messages, whose medians ignore a message delivered late."""
    blocks = np.array_split(offsets, max(1, len(offsets) // _CLOCK_BLOCK))
    medians = np.array([np.median(block[:, 0]) for block in blocks])
    moved = np.flatnonzero(np.abs(medians - medians[0]) > _MAX_CLOCK_STEP_NS)
    if len(moved):
        k = int(moved[0])
        step_s = (medians[0] - medians[k]) / 1e9   # the offset is exchange minus local time
        raise MarketDataError(
            f"{state.where(int(blocks[k][0, 1]))}: the local receive clock moved {step_s:+.1f} s against the "
            "exchange's around here; local-clock messages (spot bookTicker) are timed by one offset per "
            "file and would be misplaced: split the file at the jump")


def _on_stream(stream: str, data: msgspec.Raw, recv_ns: int, state: _LoadState,
               offsets_ns: list[tuple[int, int]], loc: int) -> None:
    sym, _, kind_full = stream.partition("@")
    kind = kind_full.partition("@")[0]
    if sym.startswith("!"):
        if sym == "!bookTicker":   # every symbol's quotes in one stream, each message naming its symbol
            _on_stream(f"{_SYMBOL.decode(data).s.lower()}@bookTicker", data, recv_ns, state, offsets_ns, loc)
            return
        _on_all_market(stream, sym[1:], data, state)
        return
    if not state.check_symbol(sym.upper(), loc):
        return
    if kind == "aggTrade":   # skipped, unless the load has no trade stream (see _LoadState.trades_from_agg_trades)
        agg = _AGG_TRADE.decode(data)
        ts = _event_ns(agg.E, state)
        state.agg_trades.append((ts, agg, loc))
        state.agg_offsets_ns.append((ts - recv_ns, loc))
        state.summary.skipped[kind] += 1
        return
    if kind in KNOWN_SKIPPED_STREAMS:
        (_FORCE_ORDER if kind == "forceOrder" else _TIMED).decode(data)
        state.summary.skipped[kind] += 1
        return
    if kind not in _USED_KINDS:
        state.summary.unknown[kind_full or stream] += 1
        return
    state.summary.read[kind] += 1
    if kind == "markPrice":
        mark = _MARK_PRICE.decode(data)
        state.mark_loc.append(loc)
        state.mark_ts_ns.append(_event_ns(mark.E, state))
        state.mark_px.append(mark.p)
    elif kind == "bookTicker":
        bt = _BOOK_TICKER.decode(data)
        if bt.u <= state.quote_last_id:   # state.in_order, written out: the loader's hottest line
            state.summary.repeated[kind] += 1
            return
        state.quote_last_id = bt.u
        state.quote_loc.append(loc)
        state.quote_recv_ns.append(recv_ns)
        if bt.E is None:
            if state.futures:
                raise _wrong_market(state, loc, "a bookTicker without an event time E", "spot")
            state.quote_ts_ns.append(-1)
        else:
            ts = bt.E * 1_000_000 if _MS_LOW <= bt.E < _MS_HIGH else _event_ns(bt.E, state)
            if ts > state.quote_latest_ns:
                state.quote_latest_ns = ts
            elif ts < state.quote_latest_ns - _MAX_TIME_BACK_NS:
                raise _time_back(kind, ts, state.quote_latest_ns)
            offsets_ns.append((ts - recv_ns, loc))
            state.quote_ts_ns.append(ts)
        state.quote_px += (bt.b, bt.a)
        state.quote_qty += (bt.B, bt.A)
    elif kind == "trade":
        tr = _TRADE.decode(data)
        if tr.X is not None and not state.futures:
            raise _wrong_market(state, loc, "a trade with a trade type X", "futures")
        if tr.X is not None and tr.X != "MARKET":   # a liquidation or deleveraging fill, not a trade on the book
            state.summary.read[kind] -= 1
            state.summary.skipped[f"trade X={tr.X}"] += 1
            return
        ts = tr.E * 1_000_000 if _MS_LOW <= tr.E < _MS_HIGH else _event_ns(tr.E, state)
        if tr.t is not None:   # state.in_order, written out
            if tr.t <= state.trade_last_id:
                state.summary.repeated[kind] += 1
                return
            state.trade_last_id = tr.t
        if ts > state.trade_latest_ns:
            state.trade_latest_ns = ts
        elif ts < state.trade_latest_ns - _MAX_TIME_BACK_NS:
            raise _time_back(kind, ts, state.trade_latest_ns)
        offsets_ns.append((ts - recv_ns, loc))
        state.trade_ts_ns.append(ts)
        state.trade_loc.append(loc)
        state.trade_px.append(tr.p)
        state.trade_qty.append(tr.q)
        state.trade_buyer_maker.append(tr.m)
    elif kind == "depth":
        du = _DEPTH.decode(data)
        if state.futures and du.pu is None:
            raise _wrong_market(state, loc, "a depth diff without 'pu'", "spot")
        if not state.futures and du.pu is not None:
            raise _wrong_market(state, loc, "a depth diff with 'pu'", "futures")
        ts = _event_ns(du.E, state)
        bids, asks = bytes(du.b), bytes(du.a)
        state.depth_shapes.add((bids.count(b'"') // 4, asks.count(b'"') // 4))
        state.depth_zero_seen = state.depth_zero_seen or bool(_ZERO_SIZE.search(bids) or _ZERO_SIZE.search(asks))
        offsets_ns.append((ts - recv_ns, loc))
        state.on_diff(_DepthMsg(ts_ns=ts, first_id=du.U, last_id=du.u, prev_last_id=du.pu, bids=bids, asks=asks,
                                is_snapshot=False, loc=loc))


def _wrong_market(state: _LoadState, loc: int, what: str, sent_by: str) -> MarketDataError:
    """A message of the other kind of market than the file's name says: replayed, it would take that market's fees,
    contract and depth rules."""
    name = ("spot_<symbol>_<YYYYMMDD>.jsonl.gz" if sent_by == "spot" else
            "usdm_<symbol>_<YYYYMMDD>.jsonl.gz (cm_... for a COIN-M contract)")
    return MarketDataError(f"{state.where(loc)}: {what}, as {sent_by} streams send it, in a file named {state.market}: "
                           f"the file holds {sent_by} data; rename it {name}")


_USED_KINDS = frozenset({"bookTicker", "trade", "depth", "markPrice"})


def _on_all_market(stream: str, name: str, data: msgspec.Raw, state: _LoadState) -> None:
    """An all-market stream (``!forceOrder@arr``): every symbol's events, none of them used; counted."""
    if name == "forceOrder":
        _FORCE_ORDER.decode(data)  # checked to be a liquidation event; its symbol may be any market's
        state.summary.skipped[stream] += 1
    else:
        state.summary.unknown[stream] += 1


__all__ = ["DATA_DIR_ENV", "BadDecimalError", "LoadedRecording", "MarketDataError", "discover", "load_binance",
           "parse_decimals", "read_binance", "rescale_decimals", "resolve_data_dir"]
