"""A recording on disk: one folder per symbol, one Parquet tape per flush, merged back into one tape.

Layout: ``<out>/<SYMBOL>/chunk-<NNNNNN>.parquet``, numbered in flush order, each a complete tape in the
project's format (``router.market.parquet``) written atomically (temp file + rename). A crash therefore
loses only what was not yet flushed, at most one flush interval; a half-written temp file (``.chunk-*``)
is never read. ``read_recording`` merges a symbol's chunks: one integer scale (the finest of the chunks),
each stream sorted by exchange time, gap markers kept; ``recorded_tapes`` reads a tape file or a recording's
folder (what paper ``live --tape`` replays).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from router_tuner.router.market.parquet import TapeFormatError, read_tape, write_tape
from router_tuner.router.market.record.buffer import RecordingError
from router_tuner.router.market.tape import MarketTape

_CHUNK_RE = re.compile(r"^chunk-(\d{6,})\.parquet$")
_STREAM_COLUMNS = {
    "quote_ts_ns": ("bid_px", "bid_qty", "ask_px", "ask_qty"),
    "trade_ts_ns": ("trade_px", "trade_qty", "trade_buyer_maker"),
}
_PRICE_COLUMNS = frozenset({"bid_px", "ask_px", "trade_px"})
_QTY_COLUMNS = frozenset({"bid_qty", "ask_qty", "trade_qty"})


def chunk_paths(symbol_dir: Path) -> list[Path]:
    """The chunk files of one symbol's folder, in flush order (empty when the folder does not exist)."""
    if not symbol_dir.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in symbol_dir.iterdir() if (m := _CHUNK_RE.match(p.name))]
    return [p for _, p in sorted(found)]


class ChunkWriter:
    """Writes one symbol's chunks, continuing the numbering of chunks already in its folder."""

    def __init__(self, out_dir: Path, symbol: str) -> None:
        self.dir = Path(out_dir) / symbol
        self.dir.mkdir(parents=True, exist_ok=True)
        existing = chunk_paths(self.dir)
        self.resumed = bool(existing)
        self._next = int(_CHUNK_RE.match(existing[-1].name).group(1)) + 1 if existing else 0  # type: ignore[union-attr]

    def write(self, tape: MarketTape) -> Path:
        """Write ``tape`` as the next chunk (atomically) and return its path."""
        path = self.dir / f"chunk-{self._next:06d}.parquet"
        write_tape(tape, path)
        self._next += 1
        return path


def last_chunk(symbol_dir: Path, symbol: str) -> MarketTape | None:
    """The last chunk of ``symbol``'s folder, which a resumed recording continues after (None: no chunk yet).

    RecordingError naming the file when it is not a tape of ``symbol`` (empty, another tool's Parquet, a tape of
    another symbol copied in): a resume read it only once connected, and the damage ended ``record`` as an
    "unexpected TapeFormatError", exit 1; the recording command checks it first, as bad input.
    """
    paths = chunk_paths(symbol_dir)
    if not paths:
        return None
    try:
        tape = read_tape(paths[-1])
    except TapeFormatError as error:
        raise RecordingError(f"{error}; a recording resumes after the last chunk of its folder: move this file "
                             "out of the folder, or record into another --out") from error
    if tape.symbol != symbol:
        raise RecordingError(f"{paths[-1]}: a chunk of {tape.market}/{tape.symbol} in the folder of {symbol}: move "
                             "it to its own symbol's folder, or record into another --out")
    return tape


def read_recording(out_dir: Path, symbol: str) -> MarketTape:
    """Merge the chunks of ``symbol`` under ``out_dir`` into one validated tape.

    RecordingError when there are no chunks or the chunks disagree on symbol or market.
    """
    symbol_dir = Path(out_dir) / symbol
    paths = chunk_paths(symbol_dir)
    if not paths:
        raise RecordingError(f"no recorded chunks for {symbol!r} in {symbol_dir}")
    tapes = [read_tape(p) for p in paths]
    for path, tape in zip(paths, tapes, strict=True):
        if (tape.symbol, tape.market) != (symbol, tapes[0].market):
            raise RecordingError(f"{path}: chunk holds {tape.market}/{tape.symbol}, "
                                 f"expected {tapes[0].market}/{symbol}")
        if len(tape.depth_ts_ns):
            raise RecordingError(f"{path}: chunk has depth rows; recordings hold quotes and trades only")
    price_scale = max(t.price_scale for t in tapes)
    qty_scale = max(t.qty_scale for t in tapes)
    for path, tape in zip(paths, tapes, strict=True):
        if price_scale % tape.price_scale or qty_scale % tape.qty_scale:
            raise RecordingError(f"{path}: scales {tape.price_scale}/{tape.qty_scale} do not divide the "
                                 f"recording's {price_scale}/{qty_scale}")
    merged: dict[str, np.ndarray] = {}
    for ts_name, cols in _STREAM_COLUMNS.items():
        ts = np.concatenate([getattr(t, ts_name) for t in tapes])
        order = np.argsort(ts, kind="stable")
        merged[ts_name] = ts[order]
        for col in cols:
            parts = [_rescaled(t, col, price_scale, qty_scale) for t in tapes]
            merged[col] = np.concatenate(parts)[order]
    empty = np.empty(0, dtype=np.int64)
    return MarketTape(
        symbol=symbol, market=tapes[0].market, price_scale=price_scale, qty_scale=qty_scale,
        # A tick change during the recording: the finest tick is the one every recorded price is on.
        tick_size=min(t.tick_size for t in tapes),
        depth_ts_ns=empty, depth_side=np.empty(0, dtype=np.int8), depth_px=empty.copy(), depth_qty=empty.copy(),
        depth_gap_ts_ns=np.sort(np.concatenate([t.depth_gap_ts_ns for t in tapes])),
        **merged,
    ).validate()


def recorded_tapes(path: Path) -> list[MarketTape]:
    """The tapes at ``path``: a Parquet tape file; a symbol's chunk folder (``OUT/SYMBOL``), its chunks merged
    (:func:`read_recording`); or a ``record --out`` folder, each symbol's chunks merged.

    Why folders: a recording longer than one flush is several chunks of one symbol, which paper ``live --tape``
    refused chunk by chunk as two tapes of one symbol, so only a recording's first flush could be replayed.
    RecordingError when a folder holds no chunk; TapeFormatError or RecordingError for a damaged chunk.
    """
    path = Path(path)
    if not path.is_dir():
        return [read_tape(path)]
    if chunk_paths(path):
        return [read_recording(path.parent, path.name)]
    symbols = sorted(sub.name for sub in path.iterdir() if sub.is_dir() and chunk_paths(sub))
    if not symbols:
        raise RecordingError(f"{path}: a folder without recorded chunks (chunk-NNNNNN.parquet) nor symbol folders "
                             "holding them: give a Parquet tape, a symbol's chunk folder (OUT/SYMBOL) or the --out "
                             "folder of `router-tuner record`")
    return [read_recording(path, symbol) for symbol in symbols]


def _rescaled(tape: MarketTape, col: str, price_scale: int, qty_scale: int) -> np.ndarray:
    values = getattr(tape, col)
    if col in _PRICE_COLUMNS:
        return values * (price_scale // tape.price_scale)
    if col in _QTY_COLUMNS:
        return values * (qty_scale // tape.qty_scale)
    return values
