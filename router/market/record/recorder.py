"""Live recording of top-of-book quotes and trades through ccxt.pro into the project's Parquet tapes.

Why: users should simulate on the market they trade, recorded the same way as the shipped files.

How it runs: one asyncio task per (symbol, stream) calls ccxt.pro's ``watch_bids_asks`` / ``watch_trades``
in a loop and stores the exchange's raw strings from each result's ``info`` (field names per exchange in
``router.market.record.fields``), parsed exactly; times are the exchange's event times. A flush task writes each
symbol's buffer as a new chunk every ``flush_interval_s`` (``router.market.record.chunks``: atomic files, so a crash
loses at most one flush interval); stopping (signal, duration, fatal error) flushes once more.

Disconnects: a ccxt ``NetworkError`` (connection dropped or dial failed) is retried with exponential
back-off (``reconnect_initial_ms * 2**n``, capped at ``reconnect_max_ms``; ccxt re-subscribes on the new
connection), and ``max_consecutive_failures`` failures in a row without a message end the recording.
Each interruption is a gap marker in the tape's ``depth_gap_ts_ns``: *messages after this exchange time
(the last one stored for the symbol before the drop) until the next stored one may be missing*. Resuming
into a folder with chunks marks a gap at the previous session's last event.

Known limit (ccxt): a ticker watcher returns the latest quote per wake-up, so book-ticker updates that
reach the client in one network read are conflated (the last is kept; every stored quote is a real one,
in order). Trades are not conflated: ccxt's trade cache returns every trade since the previous call.
"""

from __future__ import annotations

import asyncio
import math
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TextIO

import ccxt
import ccxt.pro

from router_tuner.router.market.record.buffer import RecordingError, SymbolBuffer
from router_tuner.router.market.record.chunks import ChunkWriter, last_chunk
from router_tuner.router.market.record.fields import RecordFields, record_fields_for
from router_tuner.router.venue import VenueError
from router_tuner.router.venues.ccxt.parse import price_tick

StreamKind = Literal["quotes", "trades"]
_MARKET_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")
_STREAMS: tuple[StreamKind, ...] = ("quotes", "trades")


@dataclass(frozen=True, slots=True)
class RecorderConfig:
    """What to record and how to pace it; every knob is explicit (the CLI shows its defaults).

    ``symbols`` are the exchange's market ids (``BTCUSDT``). ``duration_s`` of None records until stopped.
    """

    exchange_id: str
    symbols: tuple[str, ...]
    out_dir: Path
    duration_s: float | None
    flush_interval_s: float
    progress_interval_s: float
    reconnect_initial_ms: float
    reconnect_max_ms: float
    max_consecutive_failures: int

    def __post_init__(self) -> None:
        if not self.symbols:
            raise ValueError("at least one symbol is required")
        dupes = sorted({s for s in self.symbols if self.symbols.count(s) > 1})
        if dupes:
            raise ValueError(f"symbols listed more than once: {', '.join(dupes)}")
        bad = [s for s in self.symbols if not _MARKET_ID_RE.fullmatch(s)]
        if bad:
            raise ValueError(f"symbols must be exchange market ids like BTCUSDT, got {bad!r}")
        if self.duration_s is not None and not (math.isfinite(self.duration_s) and self.duration_s > 0):
            raise ValueError(f"duration_s must be > 0 (or None for until stopped), got {self.duration_s}")
        for name in ("flush_interval_s", "progress_interval_s", "reconnect_initial_ms", "reconnect_max_ms"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be finite and > 0, got {value}")
        for name, high in _UPPER_BOUNDS.items():  # a typo's 1e308 s would never flush: a crash would lose it all
            value = getattr(self, name)
            if value is not None and value > high:
                raise ValueError(f"{name} must be at most {high:g}, got {value:g}")
        if self.reconnect_max_ms < self.reconnect_initial_ms:
            raise ValueError("reconnect_max_ms must be >= reconnect_initial_ms")
        if self.max_consecutive_failures < 1:
            raise ValueError(f"max_consecutive_failures must be >= 1, got {self.max_consecutive_failures}")


_UPPER_BOUNDS: dict[str, float] = {
    "duration_s": 366 * 86_400.0, "flush_interval_s": 86_400.0, "progress_interval_s": 86_400.0,
    "reconnect_initial_ms": 3_600_000.0, "reconnect_max_ms": 3_600_000.0, "max_consecutive_failures": 1_000_000}
"""Above these a value is a typo (a year's recording, a day between flushes, an hour between reconnects)."""


@dataclass(slots=True)
class SymbolStats:
    """Counts for one symbol over the whole run."""

    quotes: int = 0
    trades: int = 0
    gaps: int = 0
    reconnects: int = 0
    chunks: int = 0


@dataclass(slots=True)
class RecordingSummary:
    """What a run stored, per symbol, and where."""

    out_dir: Path
    elapsed_s: float
    stats: dict[str, SymbolStats] = field(default_factory=dict)
    rejected: dict[str, int] = field(default_factory=dict)


@dataclass(slots=True)
class _Symbol:
    market_id: str
    unified: str
    tick_size: float
    buffer: SymbolBuffer
    writer: ChunkWriter
    stats: SymbolStats = field(default_factory=SymbolStats)
    last_ts_ns: dict[StreamKind, int] = field(default_factory=dict)
    last_gap_ns: int | None = None
    pending_gap_ns: int | None = None  # resume marker, stored with the first message of this session


class Recorder:
    """Records ``config.symbols`` from ``exchange`` (a ccxt.pro client the caller creates and closes)."""

    def __init__(self, config: RecorderConfig, exchange: ccxt.pro.Exchange, progress: TextIO) -> None:
        self._config = config
        self._exchange = exchange
        self._fields: RecordFields = record_fields_for(config.exchange_id)
        self._progress = progress
        self._symbols: dict[str, _Symbol] = {}
        self._stopping = asyncio.Event()

    async def run(self, stop: asyncio.Event) -> RecordingSummary:
        """Record until ``stop`` is set, ``duration_s`` passes or a stream fails fatally; flush, then return.

        A fatal error (unknown symbol, malformed message, too many failed reconnects) is raised after the
        final flush, so what was recorded is kept.
        """
        started = time.monotonic()
        await self._prepare()
        streams = [asyncio.create_task(self._stream(sym, kind), name=f"record:{sym.market_id}:{kind}")
                   for sym in self._symbols.values() for kind in _STREAMS]
        flusher = asyncio.create_task(self._flush_loop(), name="record:flush")
        reporter = asyncio.create_task(self._progress_loop(), name="record:progress")
        stopper = asyncio.create_task(stop.wait(), name="record:stop")
        error: BaseException | None = None
        try:
            await asyncio.wait([*streams, stopper], timeout=self._config.duration_s,
                               return_when=asyncio.FIRST_COMPLETED)
        finally:
            self._stopping.set()
            for task in (*streams, stopper, reporter):
                task.cancel()
            results = await asyncio.gather(*streams, stopper, reporter, return_exceptions=True)
            error = next((r for r in results if isinstance(r, BaseException)
                          and not isinstance(r, asyncio.CancelledError)), None)
            try:
                await flusher  # finishes the flush in progress, if any, then exits
            finally:
                await self._flush_all()
        if error is not None:
            raise error
        summary = RecordingSummary(out_dir=self._config.out_dir, elapsed_s=time.monotonic() - started)
        for sym in self._symbols.values():
            summary.stats[sym.market_id] = sym.stats
            summary.rejected[sym.market_id] = sym.buffer.rejected
        return summary

    # ----- setup -----------------------------------------------------------------------------------
    async def _prepare(self) -> None:
        exchange = self._exchange
        await exchange.load_markets()
        markets = {market_id: _market_for(exchange, market_id) for market_id in self._config.symbols}
        for market_id, market in markets.items():
            writer = ChunkWriter(self._config.out_dir, market_id)
            sym = _Symbol(market_id=market_id, unified=market["symbol"], tick_size=_tick_size(exchange, market),
                          buffer=SymbolBuffer(market_id), writer=writer)
            if writer.resumed:
                sym.pending_gap_ns = _last_recorded_ns(writer.dir)
            self._symbols[market_id] = sym

    # ----- streams ---------------------------------------------------------------------------------
    async def _stream(self, sym: _Symbol, kind: StreamKind) -> None:
        cfg = self._config
        failures = 0
        while True:
            try:
                infos = await self._watch(sym, kind)
            except ccxt.NetworkError as exc:
                failures += 1
                sym.stats.reconnects += 1
                self._mark_gap(sym, kind)
                if failures >= cfg.max_consecutive_failures:
                    raise RecordingError(f"{sym.market_id} {kind}: {failures} connection failures in a row, "
                                         f"giving up; last: {exc}") from exc
                delay_ms = min(cfg.reconnect_initial_ms * 2 ** (failures - 1), cfg.reconnect_max_ms)
                print(f"record: {sym.market_id} {kind} disconnected ({exc}); retry {failures} in "
                      f"{delay_ms:.0f} ms", file=self._progress, flush=True)
                await asyncio.sleep(delay_ms / 1000)
                continue
            failures = 0
            self._store(sym, kind, infos)

    async def _watch(self, sym: _Symbol, kind: StreamKind) -> list[Mapping[str, Any]]:
        if kind == "quotes":
            tickers = await self._exchange.watch_bids_asks([sym.unified])
            return [tickers[sym.unified]["info"]] if sym.unified in tickers else []
        # ccxt writes into the params dict it is given: pass a fresh copy each call.
        trades = await self._exchange.watch_trades(sym.unified, None, None, dict(self._fields.watch_trades_params))
        return [t["info"] for t in trades]

    def _store(self, sym: _Symbol, kind: StreamKind, infos: list[Mapping[str, Any]]) -> None:
        for info in infos:
            if kind == "quotes":
                stored = sym.buffer.add_quote(info, self._fields.quote)
                ts_list = sym.buffer.quote_ts_ns
            else:
                stored = sym.buffer.add_trade(info, self._fields.trade)
                ts_list = sym.buffer.trade_ts_ns
            if not stored:
                continue
            if sym.pending_gap_ns is not None:
                self._add_gap(sym, sym.pending_gap_ns)
                sym.pending_gap_ns = None
            sym.last_ts_ns[kind] = ts_list[-1]
            if kind == "quotes":
                sym.stats.quotes += 1
            else:
                sym.stats.trades += 1

    def _mark_gap(self, sym: _Symbol, kind: StreamKind) -> None:
        """Mark the interruption at this stream's last stored time (else the symbol's; none before data)."""
        last = sym.last_ts_ns.get(kind, max(sym.last_ts_ns.values(), default=None))
        if last is not None:
            self._add_gap(sym, last)

    def _add_gap(self, sym: _Symbol, ts_ns: int) -> None:
        if sym.last_gap_ns != ts_ns:  # failed re-dials of one interruption are one gap
            sym.buffer.add_gap(ts_ns)
            sym.last_gap_ns = ts_ns
            sym.stats.gaps += 1

    # ----- flushing and progress -------------------------------------------------------------------
    async def _flush_loop(self) -> None:
        while not self._stopping.is_set():
            try:
                await asyncio.wait_for(self._stopping.wait(), timeout=self._config.flush_interval_s)
            except TimeoutError:
                await self._flush_all()

    async def _flush_all(self) -> None:
        for sym in self._symbols.values():
            if sym.buffer.is_empty():
                continue
            drained = sym.buffer.drain()  # in the loop thread: no message can slip between drain and write
            await asyncio.to_thread(self._write_chunk, sym, drained)

    def _write_chunk(self, sym: _Symbol, drained: SymbolBuffer) -> None:
        sym.writer.write(drained.to_tape(self._config.exchange_id, sym.tick_size))
        sym.stats.chunks += 1

    async def _progress_loop(self) -> None:
        interval = self._config.progress_interval_s
        previous = {s: (0, 0) for s in self._symbols}
        while True:
            await asyncio.sleep(interval)
            parts = []
            for name, sym in self._symbols.items():
                q0, t0 = previous[name]
                previous[name] = (sym.stats.quotes, sym.stats.trades)
                parts.append(f"{name} {(sym.stats.quotes - q0) / interval:.1f} quotes/s "
                             f"{(sym.stats.trades - t0) / interval:.1f} trades/s gaps {sym.stats.gaps}")
            chunks = sum(s.stats.chunks for s in self._symbols.values())
            print(f"record: {' | '.join(parts)} | chunks {chunks}", file=self._progress, flush=True)


def _market_for(exchange: ccxt.pro.Exchange, market_id: str) -> Mapping[str, Any]:
    """The one loaded market with exchange id ``market_id``; RecordingError naming near matches otherwise."""
    found = exchange.markets_by_id.get(market_id) or []
    if len(found) == 1:
        return found[0]
    if len(found) > 1:
        raise RecordingError(f"{exchange.id}: market id {market_id!r} is ambiguous: "
                             f"{', '.join(m['symbol'] for m in found)}")
    near = sorted(m for m in exchange.markets_by_id if m.startswith(market_id[:3]))[:5]
    hint = f"; similar: {', '.join(near)}" if near else ""
    raise RecordingError(f"{exchange.id}: unknown symbol {market_id!r} ({len(exchange.markets_by_id)} markets "
                         f"loaded{hint})")


def _tick_size(exchange: ccxt.pro.Exchange, market: Mapping[str, Any]) -> float:
    try:
        return float(price_tick(market, exchange.precisionMode))
    except VenueError as exc:
        raise RecordingError(f"{exchange.id}: {exc}") from exc


def _last_recorded_ns(symbol_dir: Path) -> int | None:
    """Exchange time of the last event (or gap) in the folder's last chunk; None when it holds neither."""
    last = last_chunk(symbol_dir, symbol_dir.name)
    if last is None:
        return None
    times = [last.end_ns] if last.n_events else []
    times += last.depth_gap_ts_ns.tolist()[-1:]
    return max(times, default=None)
