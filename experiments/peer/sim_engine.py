"""The probe through our simulated venue (``SimVenue``) with one of its queue models."""

from __future__ import annotations

import dataclasses

import numpy as np

from experiments.peer.probes import CANCELED, FILLED, REJECTED, ProbeOutcome, ProbeSchedule
from router_tuner.router.venue import OrderNotFound, OrderRequest, PostOnlyRejected
from router_tuner.router.venues.sim import SimVenue, SimVenueConfig
from router_tuner.router.venues.sim.book import TapeBook
from router_tuner.router.venues.sim.queue import QueueModel


def probe_config(base: SimVenueConfig, queue_model: QueueModel, latency_ns: int) -> SimVenueConfig:
    """``base`` with the queue model and the probe's latency for entry and cancel, without jitter
    (hftbacktest's ``ConstantLatency`` uses one entry latency for both requests)."""
    latency_ms = latency_ns / 1e6
    return dataclasses.replace(base, queue_model=queue_model, order_entry_latency_ms=latency_ms,
                               cancel_latency_ms=latency_ms, latency_jitter_ms=0.0)


def run_sim(book: TapeBook, config: SimVenueConfig, schedule: ProbeSchedule) -> ProbeOutcome:
    """Send every probe through a fresh venue on ``book``; cancel it ``ttl`` after sending."""
    tape = book.tape
    venue = SimVenue([book], config, start_ns=int(schedule.submit_ns[0]))
    status = np.full(len(schedule), CANCELED, dtype=np.int8)
    fill_ns = np.full(len(schedule), -1, dtype=np.int64)
    qty = schedule.qty_units / tape.qty_scale
    for i, (t, is_buy, px) in enumerate(zip(schedule.submit_ns.tolist(), schedule.is_buy.tolist(),
                                            schedule.px.tolist(), strict=True)):
        venue.clock.sleep_until(t)
        coid = f"p{i}"
        try:
            venue.place_order(OrderRequest(client_order_id=coid, symbol=tape.symbol, side="buy" if is_buy else "sell",
                                           qty=qty, order_type="limit", price=px / tape.price_scale,
                                           time_in_force="GTC", post_only=True, reduce_only=False,
                                           close_position=False, position_side="BOTH"))
        except PostOnlyRejected:
            status[i] = REJECTED
            continue
        venue.clock.sleep_until(t + schedule.ttl_ns)
        state = venue.cancel_order(tape.symbol, coid)
        if state.fills:
            status[i], fill_ns[i] = FILLED, state.fills[0].ts_ns
    return ProbeOutcome(status=status, fill_ns=fill_ns, sent=_known_orders(venue, tape.symbol, len(schedule)))


def _known_orders(venue: SimVenue, symbol: str, n: int) -> int:
    """How many of the probe ids ``p0 .. p{n-1}`` the venue has an order for (rejected ones included)."""
    known = 0
    for i in range(n):
        try:
            venue.fetch_order(symbol, f"p{i}")
        except OrderNotFound:
            continue
        known += 1
    return known
