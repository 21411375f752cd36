"""MarketTape invariants: validate() names the first broken one."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from router_tuner.router.market.tape import MarketTape


def _i64(*xs: int) -> np.ndarray:
    return np.array(xs, dtype=np.int64)


def make_tape(**overrides: object) -> MarketTape:
    base: dict[str, object] = dict(
        symbol="TESTUSDT", market="synthetic", price_scale=100, qty_scale=1000, tick_size=0.01,
        quote_ts_ns=_i64(10, 20, 20), bid_px=_i64(10000, 10001, 10001), bid_qty=_i64(5, 6, 7),
        ask_px=_i64(10002, 10003, 10002), ask_qty=_i64(1, 2, 3),
        trade_ts_ns=_i64(15, 25), trade_px=_i64(10002, 10001), trade_qty=_i64(4, 9),
        trade_buyer_maker=np.array([False, True]),
        depth_ts_ns=_i64(5, 5, 30), depth_side=np.array([1, -1, 1], dtype=np.int8),
        depth_px=_i64(10000, 10002, 9999), depth_qty=_i64(5, 1, 0),
        depth_snapshot_idx=_i64(0), depth_gap_ts_ns=_i64(),
    )
    base.update(overrides)
    return MarketTape(**base)  # type: ignore[arg-type]


def test_valid_tape_and_helpers() -> None:
    tape = make_tape().validate()
    assert tape.start_ns == 5 and tape.end_ns == 30 and tape.n_events == 8
    assert tape.price(10001) == pytest.approx(100.01)
    assert tape.qty(np.array([1500]))[0] == pytest.approx(1.5)


def test_markers_default_to_empty() -> None:
    fields = {f.name for f in dataclasses.fields(MarketTape)}
    kwargs = {k: v for k, v in dataclasses.asdict(make_tape()).items()
              if k in fields and not k.startswith("depth_snapshot") and not k.startswith("depth_gap")}
    tape = MarketTape(**kwargs).validate()
    assert len(tape.depth_snapshot_idx) == 0 and len(tape.depth_gap_ts_ns) == 0


@pytest.mark.parametrize(("overrides", "message"), [
    ({"quote_ts_ns": _i64(10, 30, 20)}, "quote times not sorted at index 2"),
    ({"trade_ts_ns": _i64(25, 15)}, "trade times not sorted"),
    ({"depth_ts_ns": _i64(5, 40, 30)}, "depth times not sorted"),
    ({"ask_px": _i64(10002, 10001, 10002)}, "crossed quote at index 1"),
    ({"bid_qty": _i64(5, -1, 7)}, "negative size in bid_qty at index 1"),
    ({"depth_qty": _i64(5, 1, -3)}, "negative size in depth_qty"),
    ({"trade_px": _i64(10002)}, "trade_px has 1 rows but trade_ts_ns has 2"),
    ({"bid_px": np.array([1.0, 2.0, 3.0])}, "bid_px must have dtype int64"),
    ({"depth_side": np.array([1, 0, 1], dtype=np.int8)}, r"depth_side must be \+1 or -1"),
    ({"trade_px": _i64(0, 10001)}, "non-positive price"),
    ({"price_scale": 0}, "price_scale must be a positive integer"),
    ({"tick_size": 0.0}, "tick_size must be > 0"),
    ({"symbol": ""}, "symbol is empty"),
    ({"depth_snapshot_idx": _i64(3)}, "depth_snapshot_idx out of range"),
    ({"depth_gap_ts_ns": _i64(9, 3)}, "depth_gap_ts_ns is not sorted"),
])
def test_validate_rejects(overrides: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make_tape(**overrides).validate()


def test_empty_tape_has_no_start() -> None:
    empty = _i64()
    tape = make_tape(quote_ts_ns=empty, bid_px=empty, bid_qty=empty, ask_px=empty, ask_qty=empty,
                     trade_ts_ns=empty, trade_px=empty, trade_qty=empty,
                     trade_buyer_maker=np.empty(0, dtype=bool), depth_ts_ns=empty,
                     depth_side=np.empty(0, dtype=np.int8), depth_px=empty, depth_qty=empty,
                     depth_snapshot_idx=empty)
    assert tape.validate().n_events == 0
    with pytest.raises(ValueError, match="no events"):
        _ = tape.start_ns
