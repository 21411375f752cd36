"""Small hand-built tapes and configs for the simulated-venue tests (prices and sizes in whole units)."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from router_tuner.router.contract import Contract
from router_tuner.router.market.tape import MarketTape
from router_tuner.router.venue import OrderRequest, TimeInForce
from router_tuner.router.venues.sim import PowerProbQueue, QueueModel, SimVenueConfig

MS = 1_000_000


def i64(values: Sequence[int]) -> np.ndarray:
    return np.array(values, dtype=np.int64)


def make_tape(quotes: Sequence[tuple[int, int, int, int, int]],
              trades: Sequence[tuple[int, int, int, bool]] = (),
              depth: Sequence[tuple[int, int, int, int]] = (),
              snapshot_idx: Sequence[int] = (), gap_ts: Sequence[int] = (),
              symbol: str = "BTCUSDT") -> MarketTape:
    """quotes (ts, bid, bid_qty, ask, ask_qty); trades (ts, px, qty, buyer_maker); depth (ts, side, px, qty)."""
    q = list(zip(*quotes, strict=True)) if quotes else [()] * 5
    t = list(zip(*trades, strict=True)) if trades else [()] * 4
    d = list(zip(*depth, strict=True)) if depth else [()] * 4
    return MarketTape(symbol=symbol, market="synthetic", price_scale=1, qty_scale=1, tick_size=1.0,
                      quote_ts_ns=i64(q[0]), bid_px=i64(q[1]), bid_qty=i64(q[2]), ask_px=i64(q[3]),
                      ask_qty=i64(q[4]), trade_ts_ns=i64(t[0]), trade_px=i64(t[1]), trade_qty=i64(t[2]),
                      trade_buyer_maker=np.array(t[3], dtype=bool), depth_ts_ns=i64(d[0]),
                      depth_side=np.array(d[1], dtype=np.int8), depth_px=i64(d[2]), depth_qty=i64(d[3]),
                      depth_snapshot_idx=i64(snapshot_idx), depth_gap_ts_ns=i64(gap_ts))


LINEAR = Contract("linear", 1.0)
BASE_CONFIG = SimVenueConfig(name="sim", maker_fee_bps=-1.0, taker_fee_bps=5.0,
                             contracts={"BTCUSDT": LINEAR, "BTCUSDC": LINEAR, "ETHUSDT": LINEAR},
                             order_entry_latency_ms=1.0,
                             cancel_latency_ms=1.0, latency_jitter_ms=0.0, queue_model=PowerProbQueue(power=1.0),
                             no_depth_level_qty_ratio=1.0, max_taker_walk_levels=20, seed=1,
                             position_mode="one_way")


def config(queue_model: QueueModel | None = None, **changes: object) -> SimVenueConfig:
    if queue_model is not None:
        changes["queue_model"] = queue_model
    return dataclasses.replace(BASE_CONFIG, **changes)


def limit(coid: str, side: str, qty: float, price: float, post_only: bool = True,
          symbol: str = "BTCUSDT", time_in_force: TimeInForce = "GTC") -> OrderRequest:
    return OrderRequest(client_order_id=coid, symbol=symbol, side=side, qty=qty,  # type: ignore[arg-type]
                        order_type="limit", price=price, time_in_force=time_in_force, post_only=post_only,
                        reduce_only=False,
                        close_position=False, position_side="BOTH")


def market(coid: str, side: str, qty: float, symbol: str = "BTCUSDT") -> OrderRequest:
    return OrderRequest(client_order_id=coid, symbol=symbol, side=side, qty=qty,  # type: ignore[arg-type]
                        order_type="market", price=None, time_in_force="IOC", post_only=False, reduce_only=False,
                        close_position=False, position_side="BOTH")
