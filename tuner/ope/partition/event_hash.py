"""A stable 64-bit hash of event ids, vectorised over an Arrow string column: the bootstrap bucket of an event.

The bucket must depend on the event alone (never on its row, file or partition) so that every partitioning of
a log draws the same resamples. Python's ``hash`` is salted per process and pandas' SipHash costs about 1 s
per million strings; this is a polynomial hash over the UTF-8 bytes (mod 2^64) with a splitmix64 finaliser,
computed by Horner's rule one byte position at a time over the column's data buffer (about 2x faster).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

_BASE = np.uint64(0x100000001B3)  # the FNV-1a 64-bit prime: odd, so multiplication mod 2^64 is a bijection


def _splitmix64(x: np.ndarray) -> np.ndarray:
    """Mix every bit of the polynomial hash into every other (the low bits pick the bucket)."""
    x = x + np.uint64(0x9E3779B97F4A7C15)
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def hash_ids(ids: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """uint64 hash of each string in ``ids`` (same string, same hash, in any process or machine).

    Examples
    --------
    >>> a = hash_ids(pa.array(["BTCUSDT:1", "BTCUSDT:2", "BTCUSDT:1"]))
    >>> bool(a[0] == a[2]), bool(a[0] == a[1])
    (True, False)
    """
    if isinstance(ids, pa.ChunkedArray):
        ids = ids.combine_chunks()
    if not pa.types.is_string(ids.type) and not pa.types.is_large_string(ids.type):
        raise TypeError(f"event ids must be strings, got {ids.type}")
    if ids.null_count:
        raise ValueError(f"{ids.null_count} event ids are missing")
    offsets_type = np.int64 if pa.types.is_large_string(ids.type) else np.int32
    _, offsets_buffer, data_buffer = ids.buffers()
    offsets = np.frombuffer(offsets_buffer, dtype=offsets_type)[ids.offset: ids.offset + len(ids) + 1]
    offsets = offsets.astype(np.int64)
    data = np.frombuffer(data_buffer, dtype=np.uint8) if data_buffer is not None else np.empty(0, np.uint8)
    starts, lengths = offsets[:-1], np.diff(offsets)
    hashed = np.zeros(len(ids), dtype=np.uint64)
    for k in range(int(lengths.max(initial=0))):  # Horner's rule, one byte position of every id at a time
        if k < lengths.min():
            hashed = hashed * _BASE + data[starts + k] + np.uint64(1)  # +1: a zero byte still counts
        else:
            rows = np.flatnonzero(lengths > k)
            hashed[rows] = hashed[rows] * _BASE + data[starts[rows] + k] + np.uint64(1)
    return _splitmix64(hashed + lengths.astype(np.uint64))


def buckets(ids: pa.Array | pa.ChunkedArray, n_buckets: int) -> np.ndarray:
    """Each event's bootstrap bucket in ``[0, n_buckets)`` (int64), from its id alone."""
    if n_buckets < 1:
        raise ValueError(f"n_buckets must be >= 1, got {n_buckets}")
    return (hash_ids(ids) % np.uint64(n_buckets)).astype(np.int64)
