"""The project's Parquet format for a MarketTape: one file per tape, exact round trip.

Layout (format version 2): one table whose ``stream`` column (``"quote"``, ``"trade"``, ``"depth"`` or
``"mark"``) says which columns of a row are set; the others are null. Rows are the quotes in tape order,
then the trades, the depth rows and the mark prices, so each stream reads back in its own order without
sorting. Columns: ``stream``, ``ts_ns``, ``bid_px``, ``bid_qty``, ``ask_px``, ``ask_qty`` (quotes),
``trade_px``, ``trade_qty``, ``trade_buyer_maker`` (trades), ``depth_side``, ``depth_px``, ``depth_qty``
(depth), ``mark_px`` (marks, float64 price units). Version 1 files (no marks, no ``mark_px`` column) are
still read, with an empty mark series.
The schema metadata key ``router_tuner.market_tape`` holds JSON: format_version, symbol, market,
price_scale, qty_scale, tick_size, depth_snapshot_idx, depth_gap_ts_ns.
Why one file with a stream column: one artifact per tape to move, hash and log, and Parquet's null
encoding makes the unused columns nearly free.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from router_tuner.router.atomic_file import atomic_path
from router_tuner.router.market.tape import MarketTape

FORMAT_VERSION = 2
METADATA_KEY = b"router_tuner.market_tape"
_STREAMS = ("quote", "trade", "depth", "mark")
_SCHEMA_V1 = pa.schema([
    ("stream", pa.string()),
    ("ts_ns", pa.int64()),
    ("bid_px", pa.int64()), ("bid_qty", pa.int64()), ("ask_px", pa.int64()), ("ask_qty", pa.int64()),
    ("trade_px", pa.int64()), ("trade_qty", pa.int64()), ("trade_buyer_maker", pa.bool_()),
    ("depth_side", pa.int8()), ("depth_px", pa.int64()), ("depth_qty", pa.int64()),
])
_SCHEMA = _SCHEMA_V1.append(pa.field("mark_px", pa.float64()))
_STREAMS_BY_VERSION = {1: _STREAMS[:3], 2: _STREAMS}
_SCHEMA_BY_VERSION = {1: _SCHEMA_V1, 2: _SCHEMA}
_COLUMNS_BY_STREAM = {
    "quote": ("bid_px", "bid_qty", "ask_px", "ask_qty"),
    "trade": ("trade_px", "trade_qty", "trade_buyer_maker"),
    "depth": ("depth_side", "depth_px", "depth_qty"),
    "mark": ("mark_px",),
}
_TS_BY_STREAM = {"quote": "quote_ts_ns", "trade": "trade_ts_ns", "depth": "depth_ts_ns", "mark": "mark_ts_ns"}


class TapeFormatError(ValueError):
    """A file is not a MarketTape in this project's Parquet format (or not of a version we read)."""


def write_tape(tape: MarketTape, path: Path) -> None:
    """Validate ``tape`` and write it to ``path`` atomically (temp file in the same folder + os.replace)."""
    tape.validate()
    counts = {s: len(getattr(tape, _TS_BY_STREAM[s])) for s in _STREAMS}
    n = sum(counts.values())
    columns: dict[str, pa.Array] = {
        "stream": pa.array(np.repeat(np.array(_STREAMS, dtype=object), list(counts.values())), pa.string()),
        "ts_ns": pa.array(np.concatenate([getattr(tape, _TS_BY_STREAM[s]) for s in _STREAMS]), pa.int64()),
    }
    offset = 0
    for stream in _STREAMS:
        for name in _COLUMNS_BY_STREAM[stream]:
            dtype = _SCHEMA.field(name).type
            values = np.zeros(n, dtype=dtype.to_pandas_dtype())
            mask = np.ones(n, dtype=bool)
            values[offset:offset + counts[stream]] = getattr(tape, name)
            mask[offset:offset + counts[stream]] = False
            columns[name] = pa.array(values, type=dtype, mask=mask)
        offset += counts[stream]
    meta = {
        "format_version": FORMAT_VERSION, "symbol": tape.symbol, "market": tape.market,
        "price_scale": int(tape.price_scale), "qty_scale": int(tape.qty_scale),
        "tick_size": float(tape.tick_size),
        "depth_snapshot_idx": tape.depth_snapshot_idx.tolist(),
        "depth_gap_ts_ns": tape.depth_gap_ts_ns.tolist(),
    }
    table = pa.table(columns, schema=_SCHEMA.with_metadata({METADATA_KEY: json.dumps(meta).encode()}))
    with atomic_path(path) as temporary:
        pq.write_table(table, temporary)


def read_tape(path: Path) -> MarketTape:
    """Read a tape written by ``write_tape``; TapeFormatError on a foreign or damaged file."""
    path = Path(path)
    try:
        table = pq.read_table(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise TapeFormatError(f"{path}: not a readable Parquet file: {exc}") from exc
    meta = _metadata(path, table.schema)
    version = int(meta["format_version"])
    schema, streams = _SCHEMA_BY_VERSION[version], _STREAMS_BY_VERSION[version]
    if table.schema.remove_metadata() != schema:
        raise TapeFormatError(f"{path}: columns {table.schema.names} with types "
                              f"{[str(t) for t in table.schema.types]} do not match format {version}: "
                              f"{schema.names}")
    stream = table.column("stream").to_numpy(zero_copy_only=False)
    unknown = set(np.unique(stream).tolist()) - set(streams)
    if unknown:
        raise TapeFormatError(f"{path}: unknown stream values {sorted(map(str, unknown))}")
    arrays: dict[str, np.ndarray] = {}
    for s in streams:
        rows = table.filter(pa.array(stream == s))
        arrays[_TS_BY_STREAM[s]] = _column(path, rows, "ts_ns", s, np.int64)
        for name in _COLUMNS_BY_STREAM[s]:
            arrays[name] = _column(path, rows, name, s, schema.field(name).type.to_pandas_dtype())
        for other in streams:
            for name in _COLUMNS_BY_STREAM[other] if other != s else ():
                if rows.column(name).null_count != rows.num_rows:
                    raise TapeFormatError(f"{path}: {s} rows carry {other} column {name}")
    tape = MarketTape(
        symbol=meta["symbol"], market=meta["market"], price_scale=meta["price_scale"],
        qty_scale=meta["qty_scale"], tick_size=meta["tick_size"],
        depth_snapshot_idx=np.array(meta["depth_snapshot_idx"], dtype=np.int64),
        depth_gap_ts_ns=np.array(meta["depth_gap_ts_ns"], dtype=np.int64), **arrays)
    try:
        return tape.validate()
    except ValueError as exc:
        raise TapeFormatError(f"{path}: stored tape is invalid: {exc}") from exc


def tape_market(path: Path) -> tuple[str, str]:
    """The (symbol, market) a tape file holds, from its metadata alone (the rows are not read); TapeFormatError on a
    foreign or damaged file."""
    path = Path(path)
    try:
        schema = pq.read_schema(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise TapeFormatError(f"{path}: not a readable Parquet file: {exc}") from exc
    meta = _metadata(path, schema)
    return str(meta["symbol"]), str(meta["market"])


def _metadata(path: Path, schema: pa.Schema) -> dict[str, object]:
    raw = (schema.metadata or {}).get(METADATA_KEY)
    if raw is None:
        raise TapeFormatError(f"{path}: no {METADATA_KEY.decode()} metadata: not a MarketTape file")
    try:  # damaged metadata is a damaged tape, said as one, not an "unexpected JSONDecodeError"
        meta = json.loads(raw)
    except ValueError as error:
        raise TapeFormatError(f"{path}: {METADATA_KEY.decode()} metadata is not JSON ({error})") from None
    if not isinstance(meta, dict):
        raise TapeFormatError(f"{path}: {METADATA_KEY.decode()} metadata is not a JSON object")
    version = meta.get("format_version")
    if version not in _SCHEMA_BY_VERSION:
        raise TapeFormatError(f"{path}: format version {version!r}, this reader reads "
                              f"{', '.join(map(str, sorted(_SCHEMA_BY_VERSION)))}")
    expected = {"format_version": int, "symbol": str, "market": str, "price_scale": int, "qty_scale": int,
                "tick_size": float, "depth_snapshot_idx": list, "depth_gap_ts_ns": list}
    for key, typ in expected.items():
        if not isinstance(meta.get(key), typ):
            raise TapeFormatError(f"{path}: metadata field {key!r} missing or not {typ.__name__}")
    return meta


def _column(path: Path, rows: pa.Table, name: str, stream: str, dtype: np.dtype) -> np.ndarray:
    col = rows.column(name)
    if col.null_count:
        raise TapeFormatError(f"{path}: {col.null_count} null {name} values in {stream} rows")
    return col.to_numpy().astype(dtype, copy=False)
