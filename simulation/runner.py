"""Route one market's intent stream under one policy on the simulated venue, lane by lane in time order.

Each lane is its own ``SimVenue`` replay started at its first intent, over the market's shared
``TapeBook`` (built once per market, never per lane or policy). Intents are routed in arrival order
across lanes and every outcome is fed back to the policy before its next decision. A route that ends
after the next intent of its lane should arrive makes that intent start late; late starts are counted
(``late_starts``) and the gap in config is chosen so that it does not happen with the default policies.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from router_tuner.config.models import ConfigBundle
from router_tuner.executor.route_config import route_settings
from router_tuner.router.events import RouterEvent
from router_tuner.router.policy import RouterPolicy
from router_tuner.router.routing.machine import route
from router_tuner.router.routing.order import RouteOrder
from router_tuner.router.venues.sim.venue import SimVenue
from router_tuner.simulation.intents import NS_PER_MS, SimIntent
from router_tuner.simulation.markets import SimMarket, venue_config
from router_tuner.simulation.policies import PolicySource


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


def sim_intent_id(policy_tag: str, symbol: str, index: int) -> str:
    """A simulated order's intent id, ``<policy>:<symbol>:<index>`` (:func:`intent_index` reads it back)."""
    return f"{policy_tag}:{symbol}:{index}"


def intent_index(event: RouterEvent) -> int:
    """The index of the simulated intent ``event`` routed (the last field of its intent id)."""
    return int(event.intent_id.rsplit(":", 1)[1])


Decide = Callable[[SimIntent, RouteOrder, int], RouterPolicy]
"""``(intent, order, now_ns) -> policy``: the policy to route one order with, decided at ``now_ns``."""
Observe = Callable[[SimIntent, RouterEvent], None]
"""``(intent, event)``: one routed order's outcome, fed back before the next decision."""


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
    """Route every intent in arrival order with ``decide``, calling ``observe`` after each order.

    The lower-level form of :func:`run_policy` for callers that need the order (intent id) and the
    decision time, e.g. a shadow proposal journaled beside the acting policy.
    """
    settings = route_settings(config)
    venues: dict[int, SimVenue] = {}
    events: list[RouterEvent] = []
    late = 0
    tag = policy_name.replace(":", "_")
    for intent in sorted(intents, key=lambda x: x.arrival_ns):
        venue = venues.get(intent.lane)
        if venue is None:
            venue = SimVenue([market.book], venue_config(config, market, seed=seed * 1009 + intent.lane),
                             start_ns=intent.arrival_ns)
            venues[intent.lane] = venue
        if venue.now_ns > intent.arrival_ns:
            late += 1
        else:
            venue.clock.sleep_until(intent.arrival_ns)
        order = RouteOrder(intent_id=sim_intent_id(tag, market.symbol, intent.index), symbol=market.symbol,
                           side=intent.side, qty=intent.qty, reduce_only=False, close_position=False,
                           position_side=_opening_side(intent, config), quote=market.quote,
                           tick_size=market.tape.tick_size, qty_step=market.qty_step)
        policy = decide(intent, order, venue.now_ns)
        event = route(order, policy, venue, rng=np.random.default_rng(intent_seed(seed, market.symbol, intent.index)),
                      settings=settings)
        observe(intent, event)
        events.append(event)
        if progress is not None:
            progress(1)
    events.sort(key=intent_index)
    horizon_ns = round(config.router.simulation.markout_horizon_ms * NS_PER_MS)
    return PolicyRun(symbol=market.symbol, policy=policy_name, events=tuple(events),
                     markout_bps=markouts(market, events, horizon_ns), late_starts=late)


def _opening_side(intent: SimIntent, config: ConfigBundle) -> str:
    """Simulated intents open exposure: LONG for buys and SHORT for sells in hedge mode, BOTH in one-way."""
    if config.router.position_mode == "one_way":
        return "BOTH"
    return "LONG" if intent.side == "buy" else "SHORT"


def charged_markout(market: SimMarket, event: RouterEvent, horizon_ms: float) -> float | None:
    """The markout a tuner charging it learns with ``event`` (``tuner.json reward_markout_horizon_ms``);
    ``None`` when nothing filled or the horizon is 0 (markout not charged)."""
    if horizon_ms <= 0 or not event.fills:
        return None
    return float(markouts(market, [event], round(horizon_ms * NS_PER_MS))[0])


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
