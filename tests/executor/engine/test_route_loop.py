"""``RouteLoop``: routes as asyncio tasks on their own loop. On a simulated clock (``RouteLoop.clocked``, the
paper venue) the timeline moves the clock as ``ClockDriver`` does, so the same routes give the same events
under either (a property over random route sets); a clock that cannot go on ends the route that waited; an
error escaping one machine is reported under its key while the others go on."""

from __future__ import annotations

import gc
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from router_tuner.executor.engine.routes import RouteLoop
from router_tuner.executor.journal import Journal
from router_tuner.executor.loop import Executor
from router_tuner.executor.monitoring.metrics import ExecutorMetrics
from router_tuner.executor.monitoring.telemetry import Telemetry
from router_tuner.executor.store import ExecutorStore
from router_tuner.router.events import RouterEvent
from router_tuner.router.routing.drive import ClockDriver, Finished
from router_tuner.router.routing.machine import route_machine
from router_tuner.router.venue import InvalidOrder
from tests.executor.test_executor_support import executor_config, make_paper_venue, static_policies
from tests.router.test_route_driver import order, policy, sim_venue
from tests.router.test_route_driver import settings as route_settings

POLL_MS = 100.0  # route_settings()' poll interval

RouteSpec = tuple[bool, float, float, int]  # buy?, maker TTL ms, taker bias, reprice attempts
route_specs = st.lists(st.tuples(st.booleans(), st.sampled_from([300.0, 1_000.0, 3_000.0]),
                                 st.sampled_from([0.0, 0.5, 1.0]), st.integers(0, 2)), min_size=1, max_size=10)


def machines(specs: list[RouteSpec], seed: int) -> dict[str, object]:
    rng = np.random.default_rng(seed)
    return {f"r{i}": route_machine(order(f"r{i}", side="buy" if buy else "sell",
                                         position_side="LONG" if buy else "SHORT"),
                                   policy(maker_ttl_ms=ttl, taker_bias=bias, reprice_attempts=reprices),
                                   route_settings(), rng=rng)
            for i, (buy, ttl, bias, reprices) in enumerate(specs)}


def under_clock_driver(specs: list[RouteSpec], seed: int, duration_s: float) -> dict[str, Finished]:
    driver: ClockDriver[str, RouterEvent] = ClockDriver(sim_venue(duration_s))
    for key, machine in machines(specs, seed).items():
        driver.start(key, machine)  # type: ignore[arg-type]
    while driver.waiting:
        driver.step()
    return {f.key: f for f in driver.finished}


def under_route_loop(specs: list[RouteSpec], seed: int, duration_s: float) -> dict[str, Finished]:
    routes = RouteLoop.clocked(sim_venue(duration_s), poll_interval_ms=POLL_MS)
    try:
        for key, machine in machines(specs, seed).items():
            routes.start(key, machine)  # type: ignore[arg-type]
        done: dict[str, Finished] = {}
        while len(done) < len(specs):
            routes.wait(None)
            while routes.finished:
                finished = routes.finished.popleft()
                done[finished.key] = finished
        return done
    finally:
        routes.close()


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(specs=route_specs, seed=st.integers(0, 1_000))
def test_on_a_simulated_clock_the_loop_routes_exactly_as_the_clock_driver(specs: list[RouteSpec], seed: int) -> None:
    expected = under_clock_driver(specs, seed, 120.0)
    got = under_route_loop(specs, seed, 120.0)
    assert got.keys() == expected.keys()
    for key, finished in expected.items():
        assert finished.error is None and got[key].error is None
        assert got[key].result == finished.result, key


def test_a_replay_that_ends_under_a_resting_order_ends_that_route_as_the_clock_driver_does() -> None:
    def far_order() -> object:  # rests 50 bps behind the touch: the one-second replay never fills it
        return route_machine(order("far"), policy(maker_ttl_ms=3_000.0, taker_bias=0.0, maker_offset_bps=50.0),
                             route_settings(), rng=np.random.default_rng(0))

    driver: ClockDriver[str, RouterEvent] = ClockDriver(sim_venue(1.0))
    driver.start("far", far_order())  # type: ignore[arg-type]
    while driver.waiting:
        driver.step()
    routes = RouteLoop.clocked(sim_venue(1.0), poll_interval_ms=POLL_MS)
    try:
        routes.start("far", far_order())  # type: ignore[arg-type]
        routes.wait(None)
        got = routes.finished.popleft().result
    finally:
        routes.close()
    assert got is not None and got.error is not None and "clock stopped" in got.error
    assert got == driver.finished[0].result


def test_an_error_escaping_one_machine_is_reported_under_its_key_and_the_others_go_on() -> None:
    routes = RouteLoop.clocked(sim_venue(), poll_interval_ms=POLL_MS)
    try:
        routes.start("unknown", route_machine(order("u1", symbol="ETHUSDT"), policy("ETHUSDT"), route_settings(),
                                              rng=np.random.default_rng(0)))
        routes.start("ok", route_machine(order("k1"), policy(taker_bias=0.0), route_settings(),
                                         rng=np.random.default_rng(0)))
        done: dict[str, Finished] = {}
        while len(done) < 2:
            routes.wait(None)
            done.update((f.key, f) for f in (routes.finished.popleft() for _ in range(len(routes.finished))))
    finally:
        routes.close()
    assert isinstance(done["unknown"].error, InvalidOrder) and done["unknown"].result is None
    assert done["ok"].error is None and done["ok"].result is not None


def test_a_route_started_on_a_simulated_clock_has_sent_its_first_order_when_start_returns() -> None:
    venue = sim_venue()
    routes = RouteLoop.clocked(venue, poll_interval_ms=POLL_MS)
    try:
        routes.start("m1", route_machine(order("m1"), policy(taker_bias=0.0, maker_ttl_ms=3_000.0),
                                         route_settings(), rng=np.random.default_rng(0)))
        assert [o.client_order_id for o in venue.open_orders(None)] == ["m1-1"]
        routes.wait(0.05)  # time passes only while the engine waits
        assert not routes.finished or routes.finished[0].key == "m1"
    finally:
        routes.close()


def test_a_wait_with_a_timeout_returns_without_a_finished_route() -> None:
    routes = RouteLoop.clocked(sim_venue(), poll_interval_ms=POLL_MS)
    try:
        routes.wait(0.01)
        assert not routes.finished
    finally:
        routes.close()


def test_the_executor_refuses_a_venue_other_than_its_route_engines(tmp_path: Path) -> None:
    config = executor_config()
    venue = make_paper_venue(config)
    routes = RouteLoop.clocked(venue, poll_interval_ms=POLL_MS)
    universe = config.strategy.universe
    try:
        with Journal(tmp_path / "journal.sqlite") as journal, ExecutorStore(tmp_path / "executor.sqlite") as store:
            telemetry = Telemetry(config=config.executor, store=store, contracts=universe,
                                  metrics=ExecutorMetrics(universe, config.executor.prometheus))
            with pytest.raises(ValueError, match="venue must be routes\\.venue"):
                Executor(config=config, venue=venue, journal=journal, store=store, policy_for=static_policies(config),
                         rng=np.random.default_rng(0), venue_positions=None, telemetry=telemetry, adaptive=None,
                         routes=routes)
    finally:
        routes.close()


def test_an_engine_dropped_without_close_stops_its_thread() -> None:
    routes = RouteLoop.clocked(sim_venue(), poll_interval_ms=POLL_MS)
    thread = routes._thread
    assert thread.is_alive()
    del routes
    gc.collect()
    thread.join(timeout=5)
    assert not thread.is_alive()


def test_close_is_idempotent_and_stops_the_thread() -> None:
    routes = RouteLoop.clocked(sim_venue(), poll_interval_ms=POLL_MS)
    routes.close()
    routes.close()
    assert not routes._thread.is_alive()
