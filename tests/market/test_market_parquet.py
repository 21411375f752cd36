"""Parquet format for MarketTape: exact round trip, atomic write, clear errors on foreign files."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from router_tuner.router.market.binance import discover, load_binance, resolve_data_dir
from router_tuner.router.market.parquet import METADATA_KEY, TapeFormatError, read_tape, write_tape
from router_tuner.router.market.synthetic import SyntheticMarketSpec, generate
from router_tuner.router.market.tape import MarketTape


def _assert_equal(a: MarketTape, b: MarketTape) -> None:
    for f in dataclasses.fields(MarketTape):
        x, y = getattr(a, f.name), getattr(b, f.name)
        if isinstance(x, np.ndarray):
            assert x.dtype == y.dtype and np.array_equal(x, y), f.name
        else:
            assert x == y, f.name


specs = st.builds(
    SyntheticMarketSpec, symbol=st.sampled_from(["BTCUSDT", "ETHUSD_PERP"]),
    start_ns=st.integers(0, 2**60), duration_s=st.floats(0.05, 30.0), mid0=st.floats(1.0, 1e5),
    tick_size=st.sampled_from([1.0, 0.5, 0.1, 0.01, 1e-8]), spread_ticks=st.integers(1, 20),
    volatility_bps_per_sqrt_s=st.floats(0.0, 20.0), quote_interval_ms=st.floats(1.0, 1000.0),
    trade_rate_per_s=st.floats(0.0, 50.0), mean_trade_qty=st.floats(0.001, 10.0),
    qty_step=st.sampled_from([1.0, 0.001, 1e-8]), touch_qty=st.floats(0.001, 100.0),
    sweep_decay_per_bps=st.floats(0.05, 5.0), seed=st.integers(0, 2**32),
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(spec=specs)
def test_round_trip_synthetic(spec: SyntheticMarketSpec, tmp_path: Path) -> None:
    try:
        tape = generate(spec)
    except ValueError as exc:  # a tiny mid with a wide spread cannot be quoted: rejected, never written
        assert "fell to zero" in str(exc)
        assume(False)
    path = tmp_path / "tape.parquet"
    write_tape(tape, path)
    _assert_equal(tape, read_tape(path))


def test_round_trip_real_tape_with_depth(tmp_path: Path) -> None:
    data_dir = resolve_data_dir(None)
    if data_dir is None:
        pytest.skip("recorded Binance data not present")
    tape = load_binance(discover(data_dir)["spot_ethusdt"])
    path = tmp_path / "spot.parquet"
    write_tape(tape, path)
    _assert_equal(tape, read_tape(path))


def _small_tape() -> MarketTape:
    spec = SyntheticMarketSpec(
        symbol="SYN", start_ns=0, duration_s=1.0, mid0=100.0, tick_size=0.01, spread_ticks=2,
        volatility_bps_per_sqrt_s=1.0, quote_interval_ms=100.0, trade_rate_per_s=10.0, mean_trade_qty=1.0,
        qty_step=0.01, touch_qty=5.0, sweep_decay_per_bps=1.0, seed=1)
    tape = generate(spec)
    return dataclasses.replace(
        tape, depth_ts_ns=np.array([5, 5, 9], dtype=np.int64), depth_side=np.array([1, -1, 1], dtype=np.int8),
        depth_px=np.array([9999, 10001, 9998], dtype=np.int64), depth_qty=np.array([3, 4, 0], dtype=np.int64),
        depth_snapshot_idx=np.array([0], dtype=np.int64), depth_gap_ts_ns=np.array([7], dtype=np.int64))


def test_write_is_atomic_and_leaves_no_temp_files(tmp_path: Path) -> None:
    path = tmp_path / "t.parquet"
    write_tape(_small_tape(), path)
    write_tape(_small_tape(), path)  # replace in place
    assert [p.name for p in tmp_path.iterdir()] == ["t.parquet"]
    bad = dataclasses.replace(_small_tape(), bid_px=_small_tape().ask_px)
    with pytest.raises(ValueError, match="crossed"):
        write_tape(bad, path)
    _assert_equal(read_tape(path), _small_tape())
    assert [p.name for p in tmp_path.iterdir()] == ["t.parquet"]


def _rewrite(dst: Path, table: pa.Table) -> Path:
    pq.write_table(table, dst)
    return dst


def test_foreign_or_damaged_files_are_rejected(tmp_path: Path) -> None:
    good = tmp_path / "good.parquet"
    write_tape(_small_tape(), good)
    table = pq.read_table(good)
    meta = json.loads(table.schema.metadata[METADATA_KEY])

    (tmp_path / "junk.parquet").write_bytes(b"not parquet")
    with pytest.raises(TapeFormatError, match="not a readable Parquet"):
        read_tape(tmp_path / "junk.parquet")
    with pytest.raises(TapeFormatError, match="not a MarketTape file"):
        read_tape(_rewrite(tmp_path / "nometa.parquet", table.replace_schema_metadata({})))
    future = table.replace_schema_metadata({METADATA_KEY: json.dumps(meta | {"format_version": 3})})
    with pytest.raises(TapeFormatError, match="format version 3, this reader reads 1, 2"):
        read_tape(_rewrite(tmp_path / "v3.parquet", future))
    no_scale = {k: v for k, v in meta.items() if k != "qty_scale"}
    with pytest.raises(TapeFormatError, match="'qty_scale' missing"):
        read_tape(_rewrite(tmp_path / "noscale.parquet",
                           table.replace_schema_metadata({METADATA_KEY: json.dumps(no_scale)})))
    for name, raw in (("cutmeta", json.dumps(meta)[:40]), ("listmeta", "[1, 2]")):  # "unexpected" errors before
        with pytest.raises(TapeFormatError, match=r"router_tuner\.market_tape metadata is not (JSON|a JSON object)"):
            read_tape(_rewrite(tmp_path / f"{name}.parquet", table.replace_schema_metadata({METADATA_KEY: raw})))
    with pytest.raises(TapeFormatError, match="do not match format"):
        read_tape(_rewrite(tmp_path / "dropcol.parquet", table.drop_columns(["depth_qty"])))
    nulls = table.set_column(table.schema.get_field_index("bid_px"), "bid_px",
                             pa.array([None] * table.num_rows, pa.int64()))
    with pytest.raises(TapeFormatError, match="null bid_px values in quote rows"):
        read_tape(_rewrite(tmp_path / "nulls.parquet", nulls))
    stream = table.column("stream").to_pylist()
    stream[0] = "news"
    with pytest.raises(TapeFormatError, match="unknown stream values"):
        read_tape(_rewrite(tmp_path / "stream.parquet",
                           table.set_column(0, "stream", pa.array(stream, pa.string()))))
    leaked = table.column("trade_px").to_pylist()
    leaked[0] = 5
    with pytest.raises(TapeFormatError, match="quote rows carry trade column trade_px"):
        read_tape(_rewrite(tmp_path / "leak.parquet",
                           table.set_column(table.schema.get_field_index("trade_px"), "trade_px",
                                            pa.array(leaked, pa.int64()))))
    crossed = table.column("ask_px").to_pylist()
    crossed[0] = 1
    with pytest.raises(TapeFormatError, match="stored tape is invalid"):
        read_tape(_rewrite(tmp_path / "crossed.parquet",
                           table.set_column(table.schema.get_field_index("ask_px"), "ask_px",
                                            pa.array(crossed, pa.int64()))))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(marks=st.lists(st.tuples(st.integers(0, 2**62), st.floats(1e-8, 1e7, allow_nan=False)), max_size=30))
def test_mark_prices_round_trip_exactly(marks: list[tuple[int, float]], tmp_path: Path) -> None:
    marks.sort(key=lambda m: m[0])
    tape = dataclasses.replace(_small_tape(), mark_ts_ns=np.array([t for t, _ in marks], dtype=np.int64),
                               mark_px=np.array([p for _, p in marks], dtype=np.float64))
    write_tape(tape, tmp_path / "marks.parquet")
    _assert_equal(read_tape(tmp_path / "marks.parquet"), tape)


def test_format_1_files_are_still_read_with_no_marks(tmp_path: Path) -> None:
    """A tape written before marks existed (format 1: no mark_px column, no mark rows) reads unchanged."""
    tape = _small_tape()
    write_tape(tape, tmp_path / "v2.parquet")
    table = pq.read_table(tmp_path / "v2.parquet")
    meta = json.loads(table.schema.metadata[METADATA_KEY]) | {"format_version": 1}
    old = table.drop_columns(["mark_px"]).replace_schema_metadata({METADATA_KEY: json.dumps(meta)})
    _assert_equal(read_tape(_rewrite(tmp_path / "v1.parquet", old)), tape)
    stream = old.column("stream").to_pylist()
    stream[0] = "mark"
    with pytest.raises(TapeFormatError, match=r"unknown stream values \['mark'\]"):
        read_tape(_rewrite(tmp_path / "v1mark.parquet", old.set_column(0, "stream", pa.array(stream, pa.string()))))
