"""The main job's fast paths change nothing but time: polls without news skip the route machine
(``router.routing.drive.poll``), resting orders skip quiet stretches of the tape (``TapeBook.quiet_until``), order
states are built once per change and each intent's start draw once per process. With all of them switched off
(the straightforward code they replace), routes, venue states and the job's results are the same."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from unittest import mock

import msgspec
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from router_tuner.config.loader import load_config
from router_tuner.router.policy import RouterPolicy
from router_tuner.router.routing import drive as drive_module
from router_tuner.router.routing.machine import route
from router_tuner.router.routing.order import RouteOrder
from router_tuner.router.routing.scripted import Fault, Quote, ScriptedFill, ScriptedVenue
from router_tuner.router.venue import OrderState, PostOnlyRejected, VenueError
from router_tuner.router.venues.sim import PowerProbQueue, RiskAverseQueue, SimVenue
from router_tuner.router.venues.sim.book import TapeBook
from router_tuner.router.venues.sim.order import SimOrder
from router_tuner.simulation import runner
from router_tuner.simulation.intents import intent_stream
from router_tuner.simulation.job import SimulationOptions
from router_tuner.simulation.markets import synthetic_markets
from router_tuner.simulation.policies import always_taker, fixed_arm, static
from router_tuner.tuner.arms import Arm
from tests.router.test_route_property import LINEAR, SETTINGS, STEP, TICK, faults, policies, quote_paths
from tests.simulation.synthetic_job import synthetic_job_summary
from tests.venues.test_sim_venue_props import actions, tapes
from tests.venues.test_sim_venue_support import MS, config, limit, market


def _uncached_state(order: SimOrder) -> OrderState:
    req = order.request
    return OrderState(client_order_id=req.client_order_id, symbol=req.symbol, status=order.status, qty=req.qty,
                      filled_qty=order.filled / order.book.tape.qty_scale, price=req.price, fills=tuple(order.fills))


@contextlib.contextmanager
def straightforward() -> Iterator[None]:
    """Every fast path off: the machine woken at every poll, every step of a resting order applied, a fresh
    state per fetch and a freshly seeded generator per route."""
    with mock.patch.object(drive_module, "poll", lambda wait, venue, wake_ns: None), \
            mock.patch.object(TapeBook, "quiet_until", lambda self, is_buy, px, after_ns: after_ns), \
            mock.patch.object(SimOrder, "state", _uncached_state), \
            mock.patch.object(runner, "start_draw",
                              lambda seed, symbol, index: np.random.default_rng(runner.intent_seed(seed, symbol,
                                                                                                     index))):
        yield


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(policy=policies(), quotes=quote_paths(),
       fills=st.lists(st.builds(ScriptedFill, ts_ns=st.integers(0, 12_000).map(lambda ms: ms * MS),
                                qty=st.integers(1, 2000).map(lambda n: n * STEP)), max_size=6),
       fault_list=st.lists(faults, max_size=4, unique_by=lambda f: (f.op, f.call)),
       side=st.sampled_from(["buy", "sell"]), qty_lots=st.integers(1, 3000), seed=st.integers(0, 2**32 - 1))
def test_skipping_polls_without_news_routes_exactly_as_waking_at_every_poll(
        policy: RouterPolicy, quotes: list, fills: list[ScriptedFill], fault_list: list[Fault], side: str,
        qty_lots: int, seed: int) -> None:
    # a failed fetch is retried by the machine after the driver's own poll failed: one more call, which would
    # shift a scripted fault's call count, so fetch faults are left to the fault tests
    fault_list = [f for f in fault_list if f.op != "fetch"]

    def once() -> object:
        venue = ScriptedVenue("BTCUSDT", quotes, contract=LINEAR, fills=fills, faults=fault_list,
                              maker_fee_bps=-0.5, taker_fee_bps=4.0, entry_latency_ns=5 * MS,
                              cancel_latency_ns=5 * MS)
        order = RouteOrder(intent_id=f"p{seed}", symbol="BTCUSDT", side=side, qty=round(qty_lots * STEP, 3),  # type: ignore[arg-type]
                           reduce_only=False, close_position=False,
                           position_side="LONG" if side == "buy" else "SHORT", quote="USDT", tick_size=TICK,
                           qty_step=STEP)
        try:
            return route(order, policy, venue, rng=np.random.default_rng(seed), settings=SETTINGS), venue.requests
        except VenueError as exc:
            return type(exc), venue.requests

    fast = once()
    with straightforward():
        assert once() == fast


def test_a_failed_poll_lets_the_machine_fetch_with_its_own_retries() -> None:
    venue = ScriptedVenue("BTCUSDT", _flat_quotes(), contract=LINEAR, fills=[ScriptedFill(900 * MS, 1.0)],
                          faults=[Fault("fetch", 2, VenueError("poll lost"), False)], maker_fee_bps=-0.5,
                          taker_fee_bps=4.0, entry_latency_ns=5 * MS, cancel_latency_ns=5 * MS)
    base = RouterPolicy.from_static("BTCUSDT", load_config().router)
    policy = base.with_arm("o1", maker_offset_bps=1.0, taker_bias=0.0, propensity=1.0, version=1)
    order = RouteOrder(intent_id="f1", symbol="BTCUSDT", side="buy", qty=1.0, reduce_only=False,
                       close_position=False, position_side="LONG", quote="USDT", tick_size=TICK, qty_step=STEP)
    event = route(order, policy, venue, rng=np.random.default_rng(1), settings=SETTINGS)
    assert event.routed_as == "maker" and event.filled_qty == 1.0 and event.error is None


def _flat_quotes() -> list[Quote]:
    return [Quote(0, 100.0, 100.02, 5.0, 5.0)]


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tape=tapes(), steps=actions, model=st.sampled_from([PowerProbQueue(2.0), RiskAverseQueue()]),
       poll_ms=st.integers(1, 8))
def test_skipping_quiet_stretches_replays_resting_orders_exactly(tape: object, steps: list, model: object,
                                                                 poll_ms: int) -> None:
    def replay() -> list[object]:
        venue = SimVenue([tape], config(model, cancel_latency_ms=0.5, max_taker_walk_levels=1000),  # type: ignore[list-item,arg-type]
                         start_ns=0)
        seen: list[object] = []
        sent: list[str] = []
        for k, (kind, side, qty, px, dt) in enumerate(steps):
            if venue.clock.now_ns() + 2 * MS + dt > venue.end_ns:
                break
            coid = f"o{k}"
            if kind == "sleep":  # polled in small steps, as a resting route is
                end = venue.clock.now_ns() + dt
                while venue.clock.now_ns() < end:
                    venue.clock.sleep_until(min(end, venue.clock.now_ns() + poll_ms * MS))
                    seen.append(tuple(venue.fetch_order("BTCUSDT", c) for c in sent))
            elif kind == "cancel" and sent:
                seen.append(venue.cancel_order("BTCUSDT", sent[px % len(sent)]))
            elif kind in ("limit", "post"):
                sent.append(coid)
                try:
                    seen.append(venue.place_order(limit(coid, side, qty, px, post_only=kind == "post")))
                except PostOnlyRejected:
                    seen.append("rejected")
            elif kind == "market":
                sent.append(coid)
                seen.append(venue.place_order(market(coid, side, qty)))
        seen.append(tuple(venue.fetch_order("BTCUSDT", c) for c in sent))
        return seen

    fast = replay()
    with straightforward():
        assert replay() == fast


def _with_engine(engine: str) -> object:
    return runner.with_engine(load_config(), engine)


@pytest.mark.parametrize("engine", ["staggered", "concurrent"])
def test_the_fast_paths_route_the_job_exactly_as_the_straightforward_code(engine: str) -> None:
    config = _with_engine(engine)
    (market_,) = synthetic_markets(config, ("BTCUSDT",), 11)  # type: ignore[arg-type]
    intents = intent_stream(market_, 200, config.router.simulation.intents, seed=11)  # type: ignore[attr-defined]
    router = config.router  # type: ignore[attr-defined]
    sources = {"static": static("BTCUSDT", router), "taker": always_taker("BTCUSDT", router),
               "touch": fixed_arm("BTCUSDT", router, Arm(0.0, 0.0)),
               "mixed": fixed_arm("BTCUSDT", router, Arm(2.0, 0.5))}

    def runs() -> dict[str, tuple[object, ...]]:
        return {name: runner.run_policy(market_, intents, source, name, config=config, seed=11).events  # type: ignore[arg-type]
                for name, source in sources.items()}

    fast = runs()
    with straightforward():
        assert runs() == fast


def test_the_job_results_are_the_same_with_and_without_the_fast_paths() -> None:
    config = load_config()
    options = SimulationOptions(symbols=("ETHUSDT",), orders_per_symbol=60, seed=5, data_dir=None,
                                learners=("structured", "thompson"))
    fast = synthetic_job_summary(config, options)
    with straightforward():
        assert msgspec.json.encode(synthetic_job_summary(config, options)) == msgspec.json.encode(fast)


def test_our_later_order_behind_a_cancelled_one_fills_as_with_every_step_applied() -> None:
    """A later order of ours defers its level's moves while nothing can fill it; an earlier order of ours
    leaving the queue ahead of it in between (its moves are applied first, as they happened first) leaves its
    fills exactly as when every step is applied."""
    from tests.venues.test_sim_venue_support import make_tape

    quotes = [(0, 99, 8, 101, 8), (100 * MS, 99, 8, 101, 8)]
    depth = [(0, 1, 99, 8), (0, -1, 101, 8), (10 * MS, 1, 99, 6), (20 * MS, 1, 99, 3), (35 * MS, 1, 99, 5)]
    trades = [(40 * MS, 99, 4, True), (60 * MS, 99, 3, True)]
    tape = make_tape(quotes, trades, depth, snapshot_idx=[0])

    def replay() -> list[object]:
        venue = SimVenue([tape], config(PowerProbQueue(2.0), cancel_latency_ms=0.5), start_ns=0)  # type: ignore[arg-type]
        venue.place_order(limit("a", "buy", 2, 99))
        venue.place_order(limit("b", "buy", 2, 99))
        for t in (5, 15, 25):
            venue.clock.sleep_until(t * MS)
        seen: list[object] = [venue.cancel_order("BTCUSDT", "a")]
        for t in (45, 55, 65, 80):
            venue.clock.sleep_until(t * MS)
            seen.append(venue.fetch_order("BTCUSDT", "b"))
        return seen

    fast = replay()
    assert fast[-1].fills  # type: ignore[attr-defined]  # the later order did reach the front and fill
    with straightforward():
        assert replay() == fast
