"""The asyncio driver: routes run as tasks on the wall clock, awaiting venue calls (a blocking venue through
``ThreadedVenue``) and waking at their deadline or on news of their order (``OrderUpdates``)."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections import defaultdict

import msgspec
import numpy as np
import pytest

from router_tuner.config.loader import load_config
from router_tuner.router.contract import Contract, ContractSpec
from router_tuner.router.events import Fill, RouterEvent
from router_tuner.router.policy import RouterPolicy
from router_tuner.router.routing.aio import PollingOrderUpdates, ThreadedVenue, drive_async
from router_tuner.router.routing.calls import Steps
from router_tuner.router.routing.machine import route_machine
from router_tuner.router.routing.order import RouteOrder, RouteSettings
from router_tuner.router.venue import OrderNotFound, OrderRequest, OrderState, TopOfBook, VenueTimeout

TTL_MS = 2_000.0


class WallClock:
    def now_ns(self) -> int:
        return time.time_ns()

    def sleep_until(self, ts_ns: int) -> None:
        raise AssertionError("the asyncio driver never blocks on the clock")


class WallVenue:
    """A blocking venue on the wall clock: post-only orders rest until ``fill`` is called, IOCs take the ask."""

    name = "wall"

    def __init__(self) -> None:
        self._clock = WallClock()
        self.orders: dict[str, OrderState] = {}
        self.calls: dict[str, int] = defaultdict(int)
        self.max_resting = 0
        self.listeners: list = []
        self.fail_fetches = 0

    @property
    def clock(self) -> WallClock:
        return self._clock

    def contract(self, symbol: str) -> ContractSpec:
        return Contract("linear", 1.0)

    def top_of_book(self, symbol: str) -> TopOfBook:
        return TopOfBook(symbol, 100.0, 5.0, 100.1, 5.0, time.time_ns())

    def place_order(self, request: OrderRequest) -> OrderState:
        self.calls["place"] += 1
        if request.time_in_force == "IOC":
            fill = Fill(trade_id=f"t-{request.client_order_id}", client_order_id=request.client_order_id,
                        price=100.1, qty=request.qty, fee_usd=0.0, liquidity="taker", ts_ns=time.time_ns())
            state = OrderState(request.client_order_id, request.symbol, "filled", request.qty, request.qty,
                               request.price, (fill,))
        else:
            state = OrderState(request.client_order_id, request.symbol, "open", request.qty, 0.0, request.price, ())
        self.orders[request.client_order_id] = state
        self.max_resting = max(self.max_resting, sum(not s.is_terminal for s in self.orders.values()))
        return state

    def fetch_order(self, symbol: str, client_order_id: str) -> OrderState:
        self.calls["fetch"] += 1
        if self.fail_fetches:
            self.fail_fetches -= 1
            raise VenueTimeout("no answer")
        if client_order_id not in self.orders:
            raise OrderNotFound(client_order_id)
        return self.orders[client_order_id]

    def cancel_order(self, symbol: str, client_order_id: str) -> OrderState:
        self.calls["cancel"] += 1
        state = self.orders[client_order_id]
        if not state.is_terminal:
            state = msgspec.structs.replace(state, status="canceled")
            self.orders[client_order_id] = state
        return state

    def open_orders(self, symbol: str | None) -> tuple[OrderState, ...]:
        return tuple(s for s in self.orders.values() if not s.is_terminal)

    def fill(self, client_order_id: str) -> OrderState:
        """The market fills a resting order completely (maker); listeners hear of it."""
        state = self.orders[client_order_id]
        fill = Fill(trade_id=f"t-{client_order_id}", client_order_id=client_order_id, price=state.price or 0.0,
                    qty=state.qty, fee_usd=0.0, liquidity="maker", ts_ns=time.time_ns())
        state = msgspec.structs.replace(state, status="filled", filled_qty=state.qty, fills=(fill,))
        self.orders[client_order_id] = state
        for listener in self.listeners:
            listener(state)
        return state


class PushedUpdates:
    """``OrderUpdates`` fed by the venue (what a stream does): ``wait`` ends on the order's next update."""

    def __init__(self) -> None:
        self.events: dict[str, asyncio.Event] = defaultdict(asyncio.Event)
        self.latest: dict[str, OrderState] = {}

    def push(self, state: OrderState) -> None:
        self.latest[state.client_order_id] = state
        self.events[state.client_order_id].set()

    async def wait(self, symbol: str, client_order_id: str, until_ns: int) -> OrderState | None:
        event = self.events[client_order_id]
        try:
            await asyncio.wait_for(event.wait(), max(0.0, (until_ns - time.time_ns()) / 1e9))
        except TimeoutError:
            return None
        event.clear()
        return self.latest[client_order_id]


def settings(poll_ms: float = 20.0) -> RouteSettings:
    return RouteSettings.from_config(load_config().router, poll_interval_ms=poll_ms, max_venue_retries=2,
                                     rate_limit_backoff_ms=5.0, max_retry_after_ms=5000.0)


def machine(intent_id: str, settings_: RouteSettings, **knobs: object) -> Steps[RouterEvent]:
    order = RouteOrder(intent_id=intent_id, symbol="BTCUSDT", side="buy", qty=1.0, reduce_only=False,
                       close_position=False, position_side="LONG", quote="USDT", tick_size=0.1, qty_step=0.001)
    knobs = {"taker_bias": 0.0, "maker_ttl_ms": TTL_MS, "reprice_attempts": 0, "fallback_mode": "taker", **knobs}
    policy = dataclasses.replace(RouterPolicy.from_static("BTCUSDT", load_config().router), **knobs)
    return route_machine(order, policy, settings_, rng=np.random.default_rng(0))


def test_a_pushed_fill_wakes_the_route_before_its_ttl_and_nothing_polls() -> None:
    venue = WallVenue()
    updates = PushedUpdates()
    venue.listeners.append(updates.push)

    async def scenario() -> RouterEvent:
        task = asyncio.create_task(drive_async(machine("p1", settings(poll_ms=10_000.0)), ThreadedVenue(venue),
                                               updates))
        while "p1-1" not in venue.orders:
            await asyncio.sleep(0.005)
        venue.fill("p1-1")
        return await task

    event = asyncio.run(scenario())
    assert (event.outcome, event.routed_as, event.used_fallback) == ("filled", "maker", False)
    assert (event.finished_ts_ns - event.arrival_ts_ns) / 1e6 < TTL_MS  # woken by the fill, not the deadline
    assert venue.calls["fetch"] == 0 and venue.calls["cancel"] == 0


def test_many_routes_work_at_once_polled_each_ending_in_one_event() -> None:
    venue = WallVenue()
    threaded = ThreadedVenue(venue)
    updates = PollingOrderUpdates(threaded, poll_interval_ms=10.0)
    venue.fail_fetches = 3  # failed polls answer None: the route fetches with its own retries
    ids = [f"m{i}" for i in range(16)]

    async def scenario() -> list[RouterEvent]:
        tasks = [asyncio.create_task(drive_async(machine(i, settings(), maker_ttl_ms=300.0), threaded, updates))
                 for i in ids]
        while sum(f"{i}-1" in venue.orders for i in ids) < len(ids):
            await asyncio.sleep(0.005)
        for i in ids[::2]:
            venue.fill(f"{i}-1")
        return list(await asyncio.gather(*tasks))

    events = asyncio.run(scenario())
    assert [e.intent_id for e in events] == ids
    assert venue.max_resting == len(ids)  # all sixteen rested at the same time
    filled_by_maker = {e.intent_id for e in events if e.routed_as == "maker"}
    assert filled_by_maker == set(ids[::2])
    assert all(e.outcome == "filled" and e.used_fallback and e.routed_as == "taker"
               for e in events if e.intent_id not in filled_by_maker)
    assert venue.calls["fetch"] > 0 and venue.calls["cancel"] == len(ids) // 2


def test_polling_updates_refuse_a_non_positive_interval() -> None:
    with pytest.raises(ValueError, match="poll_interval_ms"):
        PollingOrderUpdates(ThreadedVenue(WallVenue()), poll_interval_ms=0.0)
