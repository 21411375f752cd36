"""Route one market's intent stream under one policy on the simulated venue, in time order.

Two engines (``router.json`` ``simulation.engine``), both over the market's shared ``TapeBook`` (built once
per market, never per replay or policy), both deciding each order at its start with the intent's arrival
context and observing each outcome when its route ends:

- ``staggered``: each lane is its own ``SimVenue`` replay started at its first intent, and a lane routes one
  order at a time (the blocking ``route``). A route that ends after the next intent of its lane should arrive
  makes that intent start late; the gap in config is chosen so that it does not happen with the default
  policies. Intents are routed in arrival order across lanes, so every outcome is observed before the next
  decision.
- ``concurrent``: every intent on ONE replay, as the executor's engine runs them: each route is a
  ``route_machine`` stepped by one ``ClockDriver`` on the venue's clock and starts at its arrival while
  earlier routes still work, so our orders share the queue and the displayed liquidity. The driver's venue
  calls are blocking round trips in one connection, so an intent arriving while another route's request is
  on the wire starts when it returns (a late start). A decision sees exactly the outcomes of the routes
  that ended before it, as live.

Late starts are counted (``late_starts``) either way.
"""

from __future__ import annotations

import functools
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import get_args

import msgspec
import numpy as np

from router_tuner.config.models import ConfigBundle, SimulationEngine, TunerConfig
from router_tuner.executor.route_config import route_settings
from router_tuner.router.events import RouterEvent
from router_tuner.router.policy import RouterPolicy
from router_tuner.router.routing.calls import Steps
from router_tuner.router.routing.drive import ClockDriver, Finished, drive
from router_tuner.router.routing.machine import route_machine
from router_tuner.router.routing.order import RouteOrder, RouteSettings
from router_tuner.router.venues.sim.venue import SimVenue
from router_tuner.simulation.intents import NS_PER_MS, SimIntent
from router_tuner.simulation.markets import SimMarket, venue_config
from router_tuner.simulation.policies import PolicySource
from router_tuner.tuner.reward_adjustment import MarketAfter, move_against_bps


@dataclass(frozen=True, slots=True)
class PolicyRun:
    """Everything one policy did on one symbol: its events (in intent order) and their markouts.

    ``markout_bps[i]`` is how far the mid moved against us ``markout_horizon_ms`` after the last fill of
    order ``i`` (positive = adverse selection), NaN when nothing filled.
    """

    symbol: str
    policy: str
    events: tuple[RouterEvent, ...]
    markout_bps: np.ndarray
    late_starts: int


def intent_seed(seed: int, symbol: str, index: int) -> list[int]:
    """Seed of one intent's maker/taker draw: the same for every policy (common random numbers)."""
    return [seed, zlib.crc32(symbol.encode()), index]


@dataclass(frozen=True, slots=True)
class StartDraw:
    """One intent's maker/taker draw as the route machine reads it (``random()``)."""

    value: float

    def random(self) -> float:
        return self.value


@functools.lru_cache(maxsize=1 << 16)
def start_draw(seed: int, symbol: str, index: int) -> StartDraw:
    """The first uniform of the intent's seeded generator (:func:`intent_seed`): the same for every policy, so
    seeding a generator (tens of µs) is paid once per intent and process, not once per policy."""
    return StartDraw(float(np.random.default_rng(intent_seed(seed, symbol, index)).random()))


def sim_intent_id(policy_tag: str, symbol: str, index: int) -> str:
    """A simulated order's intent id, ``<policy>:<symbol>:<index>`` (:func:`intent_index` reads it back)."""
    return f"{policy_tag}:{symbol}:{index}"


def intent_index(event: RouterEvent) -> int:
    """The index of the simulated intent ``event`` routed (the last field of its intent id)."""
    return int(event.intent_id.rsplit(":", 1)[1])


Decide = Callable[[SimIntent, RouteOrder, int], RouterPolicy]
"""``(intent, order, now_ns) -> policy``: the policy to route one order with, decided at ``now_ns``."""
Observe = Callable[[SimIntent, RouterEvent], None]
"""``(intent, event)``: one routed order's outcome, fed back when its route ends."""


def run_policy(market: SimMarket, intents: Sequence[SimIntent], source: PolicySource, policy_name: str, *,
               config: ConfigBundle, seed: int, progress: Callable[[int], None] | None = None) -> PolicyRun:
    """Route every intent under ``source``; ``progress(1)`` is called after each order."""
    return route_intents(market, intents, policy_name,
                         decide=lambda intent, order, now_ns: source.decide(intent.context),
                         observe=lambda intent, event: source.observe(event, intent.context),
                         config=config, seed=seed, progress=progress)


def route_intents(market: SimMarket, intents: Sequence[SimIntent], policy_name: str, *, decide: Decide,
                  observe: Observe, config: ConfigBundle, seed: int,
                  progress: Callable[[int], None] | None = None) -> PolicyRun:
    """Route every intent in arrival order with ``decide``, calling ``observe`` when each route ends, on the
    engine ``router.json`` ``simulation.engine`` names.

    The lower-level form of :func:`run_policy` for callers that need the order (intent id) and the
    decision time, e.g. a shadow proposal journaled beside the acting policy.
    """
    routes = _Routes(market=market, config=config, seed=seed, settings=route_settings(config),
                     tag=policy_name.replace(":", "_"), decide=decide, observe=observe, progress=progress)
    ordered = sorted(intents, key=lambda x: x.arrival_ns)
    if config.router.simulation.engine == "concurrent":
        late = _route_concurrent(routes, ordered)
    else:
        late = _route_staggered(routes, ordered)
    events = sorted(routes.events, key=intent_index)
    horizon_ns = round(config.router.simulation.markout_horizon_ms * NS_PER_MS)
    return PolicyRun(symbol=market.symbol, policy=policy_name, events=tuple(events),
                     markout_bps=markouts(market, events, horizon_ns), late_starts=late)


def with_engine(config: ConfigBundle, engine: str) -> ConfigBundle:
    """``config`` with ``router.json`` ``simulation.engine`` replaced (ValueError for an engine that does not exist)."""
    if engine not in get_args(SimulationEngine):
        raise ValueError(f"simulation engine must be one of {get_args(SimulationEngine)}, got {engine!r}")
    simulation = msgspec.structs.replace(config.router.simulation, engine=engine)
    return msgspec.structs.replace(config, router=msgspec.structs.replace(config.router, simulation=simulation))


def replay_of(intent: SimIntent, config: ConfigBundle) -> int:
    """The venue replay ``intent`` is routed on: its lane when staggered, the one replay (0) when concurrent."""
    return 0 if config.router.simulation.engine == "concurrent" else intent.lane


@dataclass(slots=True)
class _Routes:
    """What both engines share: one order and one machine per intent, decided at its start, observed at its end."""

    market: SimMarket
    config: ConfigBundle
    seed: int
    settings: RouteSettings
    tag: str
    decide: Decide
    observe: Observe
    progress: Callable[[int], None] | None
    events: list[RouterEvent] = field(default_factory=list)

    def venue(self, replay: int, start_ns: int) -> SimVenue:
        """A fresh replay of the market (its latency draws seeded per replay), starting at ``start_ns``."""
        return SimVenue([self.market.book], venue_config(self.config, self.market, seed=self.seed * 1009 + replay),
                        start_ns=start_ns)

    def start(self, intent: SimIntent, venue: SimVenue) -> Steps[RouterEvent]:
        """The route machine of ``intent`` under the policy decided now (validated here, before any send)."""
        market = self.market
        order = RouteOrder(intent_id=sim_intent_id(self.tag, market.symbol, intent.index), symbol=market.symbol,
                           side=intent.side, qty=intent.qty, reduce_only=False, close_position=False,
                           position_side=_opening_side(intent, self.config), quote=market.quote,
                           tick_size=market.tape.tick_size, qty_step=market.qty_step)
        policy = self.decide(intent, order, venue.now_ns)
        return route_machine(order, policy, self.settings, rng=start_draw(self.seed, market.symbol, intent.index))

    def finish(self, intent: SimIntent, event: RouterEvent) -> None:
        """One route ended: its outcome is observed now, before any later decision."""
        self.observe(intent, event)
        self.events.append(event)
        if self.progress is not None:
            self.progress(1)


def _start_at_arrival(venue: SimVenue, intent: SimIntent) -> bool:
    """Move the replay to ``intent``'s arrival; False when it is already past it (the intent starts late)."""
    if venue.now_ns > intent.arrival_ns:
        return False
    venue.clock.sleep_until(intent.arrival_ns)
    return True


def _route_staggered(routes: _Routes, ordered: Sequence[SimIntent]) -> int:
    """One route at a time per lane replay; returns the late starts."""
    venues: dict[int, SimVenue] = {}
    late = 0
    for intent in ordered:
        venue = venues.get(intent.lane)
        if venue is None:
            venue = venues[intent.lane] = routes.venue(intent.lane, intent.arrival_ns)
        late += not _start_at_arrival(venue, intent)
        routes.finish(intent, drive(routes.start(intent, venue), venue))
    return late


def _route_concurrent(routes: _Routes, ordered: Sequence[SimIntent]) -> int:
    """Every route on one replay, overlapping, stepped by the executor's ``ClockDriver``; returns the late starts.

    Before an intent starts, every route due to wake at or before its arrival runs, and the outcomes that
    ended are observed: the decision sees what had finished by then, nothing later.
    """
    if not ordered:
        return 0
    venue = routes.venue(0, ordered[0].arrival_ns)
    driver: ClockDriver[int, RouterEvent] = ClockDriver(venue)
    by_index = {intent.index: intent for intent in ordered}
    late = 0
    for intent in ordered:
        while (wake_ns := driver.next_wake_ns()) is not None and wake_ns <= intent.arrival_ns:
            driver.step()
            _finish_ended(routes, driver, by_index)
        late += not _start_at_arrival(venue, intent)
        driver.start(intent.index, routes.start(intent, venue))
        _finish_ended(routes, driver, by_index)
    while driver.waiting:
        driver.step()
        _finish_ended(routes, driver, by_index)
    return late


def _finish_ended(routes: _Routes, driver: ClockDriver[int, RouterEvent], by_index: dict[int, SimIntent]) -> None:
    """Observe every route that ended, in the order they ended; an error that escaped a route is raised (as the
    blocking ``route`` raises it)."""
    while driver.finished:
        ended: Finished[int, RouterEvent] = driver.finished.popleft()
        if ended.error is not None:
            raise ended.error
        assert ended.result is not None
        routes.finish(by_index[ended.key], ended.result)


def _opening_side(intent: SimIntent, config: ConfigBundle) -> str:
    """Simulated intents open exposure: LONG for buys and SHORT for sells in hedge mode, BOTH in one-way."""
    if config.router.position_mode == "one_way":
        return "BOTH"
    return "LONG" if intent.side == "buy" else "SHORT"


def market_after(market: SimMarket, event: RouterEvent, tuner: TunerConfig) -> MarketAfter | None:
    """What the replay's market did after ``event``'s arrival, for a tuner adjusting its reward (``None`` for one
    that learns the journaled cost): the markout at ``tuner.json reward_markout_horizon_ms`` after the last fill
    (when > 0 and something filled) and the mid's move against the order to the route's end."""
    if not tuner.adjusts_reward:
        return None
    markout = None
    if tuner.reward_markout_horizon_ms > 0 and event.fills:
        markout = float(markouts(market, [event], round(tuner.reward_markout_horizon_ms * NS_PER_MS))[0])
    return MarketAfter(markout_bps=markout, move_to_end_bps=move_to_route_end_bps(market, event))


def move_to_route_end_bps(market: SimMarket, event: RouterEvent) -> float:
    """The mid's move against the order (up for a buy) from its arrival to the route's end, in bps of the arrival
    mid: what the market, not the route, added to the cost of a leg sent late. Its mean is zero for every route
    while the mid is a martingale, since the route's end is a bounded stopping time (optional stopping)."""
    end_mid = float(market.mid_at(np.array([event.finished_ts_ns], dtype=np.int64))[0])
    return move_against_bps(event.side, event.arrival_mid, end_mid)


def markouts(market: SimMarket, events: Sequence[RouterEvent], horizon_ns: int) -> np.ndarray:
    """Mid move against us ``horizon_ns`` after each order's last fill, in bps of the mid at that fill."""
    out = np.full(len(events), np.nan)
    filled = [i for i, e in enumerate(events) if e.fills]
    if not filled:
        return out
    t_fill = np.array([max(f.ts_ns for f in events[i].fills) for i in filled], dtype=np.int64)
    sign = np.array([1.0 if events[i].side == "buy" else -1.0 for i in filled])
    mid_fill, mid_after = market.mid_at(t_fill), market.mid_at(t_fill + horizon_ns)
    out[filled] = sign * (mid_fill - mid_after) / mid_fill * 1e4
    return out
