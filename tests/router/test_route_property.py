"""Property: every routed order yields exactly one complete, self-consistent RouterEvent.

Random policies inside the configured bounds, on two venues: the scripted venue (random touch walks,
scripted fills and venue faults) and the simulated venue replaying random synthetic markets (queue
model, latencies), where the events must also agree with the venue's own positions.
"""

from __future__ import annotations

import math

import msgspec
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from router_tuner.config.loader import load_config
from router_tuner.router.contract import Contract, ContractSpec
from router_tuner.router.events import RouterEvent
from router_tuner.router.market.synthetic import SyntheticMarketSpec, generate
from router_tuner.router.policy import RouterPolicy
from router_tuner.router.routing.machine import maker_price, route
from router_tuner.router.routing.order import RouteOrder, RouteSettings, posted_offset_bps
from router_tuner.router.routing.scripted import Fault, Quote, ScriptedFill, ScriptedVenue
from router_tuner.router.venue import (
    BelowMinNotional,
    InsufficientMargin,
    OrderNotFound,
    OrderRequest,
    OrderState,
    RateLimited,
    TopOfBook,
    VenueError,
    VenueTimeout,
    VenueUnavailable,
)
from router_tuner.router.venues.sim.config import SimVenueConfig
from router_tuner.router.venues.sim.queue import RiskAverseQueue
from router_tuner.router.venues.sim.venue import SimClock, SimVenue

MS = 1_000_000
TICK = 0.01
STEP = 0.001
LINEAR = Contract("linear", 1.0)
CONFIG = load_config().router
BOUNDS = CONFIG.policy_bounds
SETTINGS = RouteSettings.from_config(CONFIG, poll_interval_ms=50.0, max_venue_retries=2, rate_limit_backoff_ms=20.0,
                                     max_retry_after_ms=5000.0)


def _in(band_min: float, band_max: float) -> st.SearchStrategy[float]:
    return st.floats(band_min, band_max, allow_nan=False, allow_infinity=False)


@st.composite
def policies(draw: st.DrawFn) -> RouterPolicy:
    min_spread = draw(_in(0.0, 5.0))
    return RouterPolicy(
        policy_id="p", version=draw(st.integers(0, 9)), symbol="BTCUSDT", maker_first=draw(st.booleans()),
        maker_offset_bps=draw(_in(BOUNDS.maker_offset_bps.min, BOUNDS.maker_offset_bps.max)),
        taker_bias=draw(_in(BOUNDS.taker_bias.min, BOUNDS.taker_bias.max)),
        maker_ttl_ms=draw(_in(BOUNDS.maker_ttl_ms.min, 3000.0)),
        reprice_attempts=draw(st.integers(int(BOUNDS.reprice_attempts.min), int(BOUNDS.reprice_attempts.max))),
        reprice_step_bps=draw(_in(BOUNDS.reprice_step_bps.min, BOUNDS.reprice_step_bps.max)),
        post_only_retry_limit=draw(st.integers(0, 3)),
        fallback_mode=draw(st.sampled_from(["taker", "repost", "cancel"])),
        max_taker_slippage_bps=draw(_in(BOUNDS.max_taker_slippage_bps.min, BOUNDS.max_taker_slippage_bps.max)),
        min_spread_bps=min_spread, max_spread_bps=draw(_in(min_spread + 1.0, 60.0)),
        arm=draw(st.sampled_from(["static", "a1", "a2"])), propensity=draw(_in(0.01, 1.0)),
    ).validate(BOUNDS)


@st.composite
def quote_paths(draw: st.DrawFn) -> list[Quote]:
    mid_ticks = 10_000
    ts_ns = 0
    quotes = []
    for _ in range(draw(st.integers(1, 25))):
        spread_ticks = draw(st.integers(1, 40))
        bid = (mid_ticks - spread_ticks // 2) * TICK
        quotes.append(Quote(ts_ns, round(bid, 2), round(bid + spread_ticks * TICK, 2),
                            draw(_in(0.01, 3.0)), draw(_in(0.01, 3.0))))
        ts_ns += draw(st.integers(1, 800)) * MS
        mid_ticks += draw(st.integers(-15, 15))
    return quotes


_ERRORS = {
    "rate": lambda: RateLimited("429", retry_after_s=None),
    "timeout": lambda: VenueTimeout("no answer"),
    "down": lambda: VenueUnavailable("reset"),
    "margin": lambda: InsufficientMargin("margin"),
    "min": lambda: BelowMinNotional("min notional"),
    "missing": lambda: OrderNotFound("unknown order"),
}
faults = st.builds(Fault, op=st.sampled_from(["place", "cancel", "fetch", "touch"]), call=st.integers(1, 6),
                   error=st.sampled_from(sorted(_ERRORS)).map(lambda name: _ERRORS[name]()),
                   applied=st.booleans()).filter(lambda f: not (f.op == "touch" and f.call == 1))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(policy=policies(), quotes=quote_paths(),
       fills=st.lists(st.builds(ScriptedFill, ts_ns=st.integers(0, 12_000).map(lambda ms: ms * MS),
                                qty=st.integers(1, 2000).map(lambda n: n * STEP)), max_size=6),
       fault_list=st.lists(faults, max_size=4, unique_by=lambda f: (f.op, f.call)),
       side=st.sampled_from(["buy", "sell"]), qty_lots=st.integers(1, 3000), seed=st.integers(0, 2**32 - 1))
def test_every_routed_order_yields_one_complete_event(policy: RouterPolicy, quotes: list[Quote],
                                                      fills: list[ScriptedFill], fault_list: list[Fault],
                                                      side: str, qty_lots: int, seed: int) -> None:
    venue = ScriptedVenue("BTCUSDT", quotes, contract=LINEAR, fills=fills, faults=fault_list, maker_fee_bps=-0.5,
                          taker_fee_bps=4.0, entry_latency_ns=5 * MS, cancel_latency_ns=5 * MS)
    order = RouteOrder(intent_id=f"prop{seed}", symbol="BTCUSDT", side=side, qty=round(qty_lots * STEP, 3),  # type: ignore[arg-type]
                       reduce_only=False, close_position=False, position_side="LONG" if side == "buy" else "SHORT",
                       quote="USDT", tick_size=TICK, qty_step=STEP)
    try:
        event = route(order, policy, venue, rng=np.random.default_rng(seed), settings=SETTINGS)
    except VenueError:
        # Only a failed arrival read may raise, and then nothing was sent.
        assert venue.requests == []
        return
    _assert_complete(event, order, policy, venue)


class _Recording:
    """Delegates to a venue and records every order request, as the scripted venue does itself."""

    def __init__(self, venue: SimVenue) -> None:
        self.inner, self.name, self.requests = venue, venue.name, list[OrderRequest]()

    @property
    def clock(self) -> SimClock:
        return self.inner.clock

    def contract(self, symbol: str) -> ContractSpec:
        return self.inner.contract(symbol)

    def top_of_book(self, symbol: str) -> TopOfBook:
        return self.inner.top_of_book(symbol)

    def place_order(self, request: OrderRequest) -> OrderState:
        self.requests.append(request)
        return self.inner.place_order(request)

    def cancel_order(self, symbol: str, client_order_id: str) -> OrderState:
        return self.inner.cancel_order(symbol, client_order_id)

    def fetch_order(self, symbol: str, client_order_id: str) -> OrderState:
        return self.inner.fetch_order(symbol, client_order_id)

    def open_orders(self, symbol: str | None) -> tuple[OrderState, ...]:
        return self.inner.open_orders(symbol)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(policy=policies(), spread_ticks=st.integers(1, 30), volatility=_in(0.0, 30.0), trade_rate=_in(0.0, 20.0),
       sweep_decay=_in(0.05, 2.0), market_seed=st.integers(0, 2**31), sides=st.lists(
           st.sampled_from(["buy", "sell"]), min_size=1, max_size=4), qty_lots=st.integers(1, 3000),
       seed=st.integers(0, 2**32 - 1))
def test_every_order_on_the_simulated_venue_yields_one_complete_event(
        policy: RouterPolicy, spread_ticks: int, volatility: float, trade_rate: float, sweep_decay: float,
        market_seed: int, sides: list[str], qty_lots: int, seed: int) -> None:
    spec = SyntheticMarketSpec(symbol="BTCUSDT", start_ns=0, duration_s=120.0, mid0=100.0, tick_size=TICK,
                               spread_ticks=spread_ticks, volatility_bps_per_sqrt_s=volatility,
                               quote_interval_ms=100.0, trade_rate_per_s=trade_rate, mean_trade_qty=0.5,
                               qty_step=STEP, touch_qty=2.0, sweep_decay_per_bps=sweep_decay, seed=market_seed)
    config = SimVenueConfig(name="sim", maker_fee_bps=-0.5, taker_fee_bps=4.0,
                            contracts={"BTCUSDT": Contract("linear", 1.0)}, order_entry_latency_ms=5.0,
                            cancel_latency_ms=5.0, latency_jitter_ms=2.0, queue_model=RiskAverseQueue(),
                            no_depth_level_qty_ratio=1.0, max_taker_walk_levels=50, seed=seed % 1000,
                            position_mode="hedge")
    sim = SimVenue([generate(spec)], config, start_ns=0)
    venue = _Recording(sim)
    rng = np.random.default_rng(seed)
    bought = sold = 0.0
    for index, side in enumerate(sides):
        order = RouteOrder(intent_id=f"sim{index}", symbol="BTCUSDT", side=side,  # type: ignore[arg-type]
                           qty=round(qty_lots * STEP, 3), reduce_only=False, close_position=False,
                           position_side="LONG" if side == "buy" else "SHORT", quote="USDT", tick_size=TICK,
                           qty_step=STEP)
        venue.requests.clear()  # the checks read this route's requests
        event = route(order, policy, venue, rng=rng, settings=SETTINGS)  # type: ignore[arg-type]
        _assert_complete(event, order, policy, venue)  # type: ignore[arg-type]
        bought += event.filled_qty if side == "buy" else 0.0
        sold += event.filled_qty if side == "sell" else 0.0
    positions = sim.positions("BTCUSDT")
    assert math.isclose(positions["LONG"], bought, abs_tol=1e-9)
    assert math.isclose(positions["SHORT"], -sold, abs_tol=1e-9)
    assert sim.open_orders("BTCUSDT") == ()  # nothing left resting behind a finished route


def _assert_complete(event: RouterEvent, order: RouteOrder, policy: RouterPolicy, venue: ScriptedVenue) -> None:
    # the event survives the strict schema round trip: nothing missing, nothing extra
    assert msgspec.json.decode(msgspec.json.encode(event), type=RouterEvent) == event
    # fills: each once, each ours, summing to filled_qty <= qty
    trade_ids = [f.trade_id for f in event.fills]
    assert len(trade_ids) == len(set(trade_ids))
    sent = {r.client_order_id: r for r in venue.requests}
    assert all(f.client_order_id in sent for f in event.fills)
    assert event.filled_qty == math.fsum(f.qty for f in event.fills)  # the ledger's exactly rounded sum
    assert event.filled_qty <= order.qty + 1e-9
    # a client order id never names two different orders
    for request in venue.requests:
        assert sent[request.client_order_id] == request
    # flags agree with the fills
    maker = [f.liquidity == "maker" for f in event.fills]
    assert event.is_maker_final == (bool(maker) and all(maker))
    expected_routed = ("unfilled" if not maker else "maker" if all(maker) else "taker" if not any(maker)
                       else "mixed")
    assert event.routed_as == expected_routed
    if event.filled_qty == 0.0:
        assert event.outcome in ("unfilled", "rejected")
        assert event.avg_price is event.slippage_bps is event.cost_bps is event.time_to_fill_ms is None
    else:
        assert event.outcome == ("filled" if order.qty - event.filled_qty < STEP * (1 - 1e-9) else "partial")
        assert event.cost_bps is not None and event.slippage_bps is not None and event.fees_bps is not None
        assert math.isclose(event.cost_bps, event.slippage_bps + event.fees_bps, abs_tol=1e-9)
        assert event.time_to_fill_ms is not None and event.time_to_fill_ms >= 0.0
    if event.outcome == "rejected":
        assert event.error is not None
    # counts within the policy's budgets
    assert 0 <= event.reprice_count <= policy.reprice_attempts
    extra_post = 2 if policy.fallback_mode == "repost" else 1
    assert 0 <= event.post_only_reject_count <= policy.post_only_retry_limit + extra_post
    assert event.cancel_count <= len(sent)
    # start and fallback agree with what was sent
    if not event.started_maker:
        assert not any(r.post_only for r in venue.requests) and not event.used_fallback
    elif venue.requests:
        assert venue.requests[0].post_only
    if event.used_fallback:
        assert policy.fallback_mode != "cancel"
    assert 0.0 < event.route_propensity <= 1.0
    assert (event.policy_id, event.policy_version, event.arm, event.propensity) == (
        policy.policy_id, policy.version, policy.arm, policy.propensity)
    # no taker leg pays beyond the slippage cap against the arrival mid
    sign = 1.0 if order.side == "buy" else -1.0
    for fill in event.fills:
        if not sent[fill.client_order_id].post_only:
            assert sign * (fill.price - event.arrival_mid) / event.arrival_mid * 1e4 <= (
                policy.max_taker_slippage_bps + 1e-6)
    assert event.finished_ts_ns >= event.arrival_ts_ns
    assert all(r.qty > 0 and abs(r.qty / STEP - round(r.qty / STEP)) < 1e-6 for r in venue.requests)


@settings(max_examples=300, deadline=None)
@given(decimals=st.integers(1, 8), touch_ticks=st.integers(20, 2_000_000), offset_bps=st.floats(0.0, 30.0),
       side=st.sampled_from(["buy", "sell"]))
def test_posted_offset_is_where_maker_price_rests(decimals: int, touch_ticks: int, offset_bps: float,
                                                  side: str) -> None:
    """``posted_offset_bps`` (what a learner is told about a coarse tick) is the distance ``maker_price`` posts at,
    on any tick: a coin at 0.05 on a 0.00001 tick (2 bps) as well as BTC on 0.1; the spread is wide enough that the
    far-touch clamp does not bind."""
    tick = 10.0 ** -decimals
    touch = round(touch_ticks * tick, decimals)
    far = round((touch_ticks + (1 if side == "buy" else -1) * (touch_ticks // 10 + 2)) * tick, decimals)
    bid, ask = (touch, far) if side == "buy" else (far, touch)
    order = RouteOrder(intent_id="i", symbol="X", side=side, qty=1.0, reduce_only=False, close_position=False,
                       position_side="LONG" if side == "buy" else "SHORT", quote="USDT", tick_size=tick,
                       qty_step=1.0)
    price = maker_price(order, TopOfBook("X", bid, 1.0, ask, 1.0, 0), offset_bps)
    rested_bps = abs(price - touch) / touch * 1e4
    assert rested_bps == pytest.approx(posted_offset_bps(offset_bps, tick / touch * 1e4), rel=1e-6, abs=1e-9)
