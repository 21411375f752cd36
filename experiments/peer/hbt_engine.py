"""The probe through hftbacktest 2.4.4 (``HashMapMarketDepthBacktest``, ``NoPartialFillExchange``).

The probe loop is a numba ``njit`` function, as hftbacktest strategies are; it is compiled on first use
(the benchmark pays for that on a short slice first, so replay timings leave it out). Latency is
``ConstantLatency(entry, response)`` with both equal to the probe's latency: a request reaches the matching
engine ``latency`` after it is sent, like our venue's round trip. Orders are ``GTX`` (post-only) limit
orders; a probe is filled when hftbacktest's local copy of the order ends ``FILLED`` (its ``exch_timestamp``
is the fill time), rejected when it ends ``EXPIRED`` (GTX crossing at arrival).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from hftbacktest import EXPIRED, FILLED, GTX, LIMIT, BacktestAsset, HashMapMarketDepthBacktest
from numba import njit

from experiments.peer.probes import ProbeOutcome, ProbeSchedule
from router_tuner.router.market.tape import MarketTape

# name -> how it configures the asset's queue model (hftbacktest's own builders)
QUEUE_MODELS: dict[str, Callable[[BacktestAsset], BacktestAsset]] = {
    "RiskAdverseQueueModel": lambda asset: asset.risk_adverse_queue_model(),
    "ProbQueueModel(LogProbQueueFunc)": lambda asset: asset.log_prob_queue_model(),
    "ProbQueueModel(PowerProbQueueFunc(2))": lambda asset: asset.power_prob_queue_model(2.0),
    "ProbQueueModel(PowerProbQueueFunc3(3))": lambda asset: asset.power_prob_queue_model3(3.0),
}


@dataclass(frozen=True, slots=True)
class PeerBacktest:
    """hftbacktest's backtest (a numba jitclass instance) with the event array it reads.

    ``BacktestAsset.data`` keeps a raw pointer into the array, not a copy: the array must live as long as
    the backtest, or the replay reads freed memory (a segmentation fault). Holding both here ties them.
    """

    hbt: Any
    events: np.ndarray
    qty_scale: int


def build_backtest(tape: MarketTape, events: np.ndarray, queue_model: str, latency_ns: int,
                   tape_units: bool = False) -> PeerBacktest:
    """A one-asset backtest over ``events`` (see ``experiments.peer.events``) with the named queue model.

    ``tape_units`` feeds sizes in the tape's integer units (``1 / qty_scale``, lot 1) instead of the asset's
    own unit: what our venue's queue models see. A queue function that is not scale-free (``log(1 + x)``)
    then computes what ours computes; the power functions and the risk-averse model do not change.
    """
    qty_scale = 1 if tape_units else tape.qty_scale
    if tape_units:
        events = events.copy()
        events["qty"] = np.round(events["qty"] * tape.qty_scale)
    asset = (BacktestAsset().data(events).linear_asset(1.0).constant_order_latency(latency_ns, latency_ns)
             .no_partial_fill_exchange().trading_value_fee_model(0.0, 0.0)
             .tick_size(tape.tick_size).lot_size(1.0 / qty_scale).last_trades_capacity(0))
    return PeerBacktest(hbt=HashMapMarketDepthBacktest([QUEUE_MODELS[queue_model](asset)]), events=events,
                        qty_scale=qty_scale)


@njit
def _probe_loop(hbt: Any, submit_ns: np.ndarray, is_buy: np.ndarray, px: np.ndarray, qty: float, ttl_ns: int,
                latency_ns: int, status: np.ndarray, fill_ns: np.ndarray) -> int:
    """The probes in order (send, wait ``ttl``, cancel unless done), then each order's end; probes done."""
    n = len(submit_ns)
    # A fresh backtest's clock reads i64::MAX until it has read an event: step to the first feed event, or
    # the first ``elapse`` (a duration from "now") would overflow and the first probe go out at a wrong time.
    hbt.wait_next_feed(False, 1)
    if hbt.current_timestamp > submit_ns[0]:
        return 0
    for i in range(n):
        now = hbt.current_timestamp
        if submit_ns[i] > now and hbt.elapse(submit_ns[i] - now) != 0:
            return i
        if is_buy[i]:
            hbt.submit_buy_order(0, i + 1, px[i], qty, GTX, LIMIT, False)
        else:
            hbt.submit_sell_order(0, i + 1, px[i], qty, GTX, LIMIT, False)
        if hbt.elapse(ttl_ns) != 0:
            return i
        order = hbt.orders(0).get(i + 1)
        if order is not None and order.cancellable:
            hbt.cancel(0, i + 1, False)
    # let the last cancel reach the exchange and its answer come back
    hbt.elapse(2 * latency_ns + 1)
    orders = hbt.orders(0)
    for i in range(n):
        order = orders.get(i + 1)
        if order is None:
            continue  # status stays -1: the backtest has no such order
        status[i] = 0
        if order.status == FILLED:
            status[i] = 1  # probes.FILLED
            fill_ns[i] = order.exch_timestamp
        elif order.status == EXPIRED:
            status[i] = 2  # probes.REJECTED
    return n


def run_hbt(backtest: PeerBacktest, tape: MarketTape, schedule: ProbeSchedule) -> ProbeOutcome:
    """Run the probes through a fresh backtest from :func:`build_backtest`; RuntimeError if its data ends early."""
    hbt = backtest.hbt
    status = np.full(len(schedule), -1, dtype=np.int8)
    fill_ns = np.full(len(schedule), -1, dtype=np.int64)
    done = _probe_loop(hbt, schedule.submit_ns, schedule.is_buy, schedule.px / tape.price_scale,
                       schedule.qty_units / backtest.qty_scale, schedule.ttl_ns, schedule.latency_ns, status, fill_ns)
    hbt.close()
    if done != len(schedule):
        raise RuntimeError(f"{tape.symbol}: hftbacktest's data ended at probe {done} of {len(schedule)}")
    sent = int((status >= 0).sum())
    if sent != len(schedule):
        raise RuntimeError(f"{tape.symbol}: hftbacktest has {sent} of the {len(schedule)} probe orders")
    return ProbeOutcome(status=status, fill_ns=fill_ns, sent=sent)
