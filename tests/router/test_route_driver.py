"""The routing machine is sans-IO and one machine runs under any driver; ``ClockDriver`` overlaps many
routes on one simulated venue (discrete events: each route runs until it waits, the clock jumps to the
earliest wake)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from router_tuner.config.loader import load_config
from router_tuner.router.contract import Contract
from router_tuner.router.events import RouterEvent
from router_tuner.router.market.synthetic import SyntheticMarketSpec, generate
from router_tuner.router.policy import RouterPolicy
from router_tuner.router.routing.calls import ContractOf, Now, Place, Touch
from router_tuner.router.routing.drive import ClockDriver
from router_tuner.router.routing.machine import route_machine
from router_tuner.router.routing.order import RouteOrder, RouteRefused, RouteSettings
from router_tuner.router.venue import InvalidOrder, OrderState, TopOfBook
from router_tuner.router.venues.sim.config import SimVenueConfig
from router_tuner.router.venues.sim.queue import RiskAverseQueue
from router_tuner.router.venues.sim.venue import SimVenue

S = 1_000_000_000


def settings() -> RouteSettings:
    return RouteSettings.from_config(load_config().router, poll_interval_ms=100.0, max_venue_retries=2,
                                     rate_limit_backoff_ms=50.0, max_retry_after_ms=5000.0)


def order(intent_id: str, side: str = "buy", symbol: str = "BTCUSDT", position_side: str = "LONG") -> RouteOrder:
    return RouteOrder(intent_id=intent_id, symbol=symbol, side=side, qty=0.01, reduce_only=False,  # type: ignore
                      close_position=False, position_side=position_side, quote="USDT", tick_size=0.1,  # type: ignore
                      qty_step=0.001)


def policy(symbol: str = "BTCUSDT", **knobs: object) -> RouterPolicy:
    return dataclasses.replace(RouterPolicy.from_static(symbol, load_config().router), **knobs)


def sim_venue(duration_s: float = 120.0) -> SimVenue:
    tape = generate(SyntheticMarketSpec(
        symbol="BTCUSDT", start_ns=0, duration_s=duration_s, mid0=50_000.0, tick_size=0.1, spread_ticks=1,
        volatility_bps_per_sqrt_s=2.0, quote_interval_ms=100.0, trade_rate_per_s=20.0, mean_trade_qty=0.05,
        qty_step=0.001, touch_qty=1.0, sweep_decay_per_bps=0.5, seed=3))
    config = SimVenueConfig(name="sim", maker_fee_bps=-1.0, taker_fee_bps=4.0,
                            contracts={"BTCUSDT": Contract("linear", 1.0)}, order_entry_latency_ms=5.0,
                            cancel_latency_ms=5.0, latency_jitter_ms=0.0, queue_model=RiskAverseQueue(),
                            no_depth_level_qty_ratio=1.0, max_taker_walk_levels=50, seed=7,
                            position_mode="hedge")
    return SimVenue([tape], config, start_ns=0)


def test_the_machine_does_no_io_and_validates_once_when_made() -> None:
    with pytest.raises(RouteRefused, match="one-way"):
        route_machine(order("bad", position_side="LONG"), policy(),
                      dataclasses.replace(settings(), position_mode="one_way"), rng=np.random.default_rng(0))
    machine = route_machine(order("t1"), policy(maker_first=False), settings(), rng=np.random.default_rng(0))
    assert next(machine) == ContractOf("BTCUSDT")
    assert machine.send(Contract("linear", 1.0)) == Now()
    assert machine.send(1_000) == Touch("BTCUSDT")
    call = machine.send(TopOfBook("BTCUSDT", 100.0, 1.0, 100.1, 1.0, 1_000))
    assert isinstance(call, Place) and call.request.time_in_force == "IOC" and call.request.side == "buy"
    assert machine.send(OrderState(call.request.client_order_id, "BTCUSDT", "expired", 0.01, 0.0,
                                   call.request.price, ())) == Now()
    with pytest.raises(StopIteration) as stop:
        machine.send(2_000)
    event: RouterEvent = stop.value.value
    assert (event.outcome, event.arrival_ts_ns, event.finished_ts_ns) == ("unfilled", 1_000, 2_000)
    assert event.error is not None and event.error.startswith("taker_leg_unfilled_within_slippage_cap")


def test_many_routes_overlap_on_one_replay_each_ending_in_one_event() -> None:
    venue = sim_venue()
    driver: ClockDriver[str, RouterEvent] = ClockDriver(venue)
    rng = np.random.default_rng(1)
    machines = {f"r{i}": route_machine(order(f"r{i}", side="buy" if i % 2 else "sell",
                                             position_side="LONG" if i % 2 else "SHORT"),
                                       policy(maker_ttl_ms=2_000.0, taker_bias=0.0), settings(), rng=rng)
                for i in range(12)}
    for key, machine in machines.items():
        driver.start(key, machine)
    assert driver.waiting == 12  # every route posted and now rests: all in flight at once
    while driver.waiting:
        driver.step()
    done = {f.key: f for f in driver.finished}
    assert set(done) == set(machines) and len(driver.finished) == 12
    events = [done[key].result for key in machines]
    assert all(e is not None for e in events)
    spans = [(e.arrival_ts_ns, e.finished_ts_ns) for e in events if e is not None]
    latest_arrival, earliest_finish = max(a for a, _ in spans), min(f for _, f in spans)
    assert latest_arrival < earliest_finish  # all twelve were working at one moment
    fills = [(e.intent_id, f) for e in events if e is not None for f in e.fills]
    assert len({f.trade_id for _, f in fills}) == len(fills)
    assert all(f.client_order_id.startswith(intent + "-") for intent, f in fills)
    assert venue.open_orders(None) == ()


def test_an_error_escaping_one_machine_is_reported_under_its_key_and_the_others_go_on() -> None:
    driver: ClockDriver[str, RouterEvent] = ClockDriver(sim_venue())
    driver.start("unknown", route_machine(order("u1", symbol="ETHUSDT"), policy("ETHUSDT"), settings(),
                                          rng=np.random.default_rng(0)))
    driver.start("ok", route_machine(order("k1"), policy(taker_bias=0.0), settings(),
                                     rng=np.random.default_rng(0)))
    while driver.waiting:
        driver.step()
    done = {f.key: f for f in driver.finished}
    assert isinstance(done["unknown"].error, InvalidOrder) and done["unknown"].result is None
    assert done["ok"].error is None and done["ok"].result is not None
