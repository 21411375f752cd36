"""The routing scenarios of issue 4 on the simulated venue (queue-position fills) with hand-built tapes.

Prices are in cents (tick 0.01), sizes in thousandths. Latencies are 10 ms each way, so an order sent at
``t`` arrives at ``t + 10 ms`` and a cancel sent at ``t`` takes effect at ``t + 10 ms``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import numpy as np
import pytest

from router_tuner.config.loader import load_config
from router_tuner.config.models import PositionMode, RouterConfig
from router_tuner.router.contract import Contract
from router_tuner.router.events import PositionSide, RouterEvent, Side
from router_tuner.router.market.tape import MarketTape
from router_tuner.router.policy import RouterPolicy
from router_tuner.router.routing.machine import route
from router_tuner.router.routing.order import RouteOrder, RouteSettings
from router_tuner.router.venues.sim.config import SimVenueConfig
from router_tuner.router.venues.sim.queue import RiskAverseQueue
from router_tuner.router.venues.sim.venue import SimVenue

MS = 1_000_000
END_MS = 20_000
QuoteRow = tuple[int, float, float, float, float]  # ts_ms, bid, bid_qty, ask, ask_qty
TradeRow = tuple[int, float, float, bool]  # ts_ms, price, qty, buyer_is_maker (a seller hit the bid)


@pytest.fixture(scope="module")
def router_config() -> RouterConfig:
    return load_config().router


def tape(quotes: list[QuoteRow], trades: Sequence[TradeRow] = (), end_ms: int = END_MS,
         symbol: str = "BTCUSDT") -> MarketTape:
    quotes = [*quotes, (end_ms, *quotes[-1][1:])]
    i64 = lambda values: np.array(values, dtype=np.int64)  # noqa: E731
    return MarketTape(
        symbol=symbol, market="synthetic", price_scale=100, qty_scale=1000, tick_size=0.01,
        quote_ts_ns=i64([q[0] * MS for q in quotes]), bid_px=i64([round(q[1] * 100) for q in quotes]),
        bid_qty=i64([round(q[2] * 1000) for q in quotes]), ask_px=i64([round(q[3] * 100) for q in quotes]),
        ask_qty=i64([round(q[4] * 1000) for q in quotes]),
        trade_ts_ns=i64([t[0] * MS for t in trades]), trade_px=i64([round(t[1] * 100) for t in trades]),
        trade_qty=i64([round(t[2] * 1000) for t in trades]),
        trade_buyer_maker=np.array([t[3] for t in trades], dtype=bool),
        depth_ts_ns=i64([]), depth_side=np.array([], dtype=np.int8), depth_px=i64([]), depth_qty=i64([]),
    ).validate()


def sim(market: MarketTape, position_mode: PositionMode = "hedge") -> SimVenue:
    config = SimVenueConfig(name="sim", maker_fee_bps=2.0, taker_fee_bps=5.0,
                            contracts={market.symbol: Contract("linear", 1.0)}, order_entry_latency_ms=10.0,
                            cancel_latency_ms=10.0, latency_jitter_ms=0.0, queue_model=RiskAverseQueue(),
                            no_depth_level_qty_ratio=1.0, max_taker_walk_levels=50, seed=7,
                            position_mode=position_mode)
    return SimVenue([market], config, start_ns=0)


def run(router_config: RouterConfig, venue: SimVenue, order: RouteOrder | None = None,
        position_mode: PositionMode = "hedge", **knobs: object) -> RouterEvent:
    order = order or RouteOrder(intent_id="s1", symbol="BTCUSDT", side="buy", qty=1.0, reduce_only=False,
                                close_position=False, position_side="LONG", quote="USDT", tick_size=0.01,
                                qty_step=0.001)
    policy = dataclasses.replace(RouterPolicy.from_static(order.symbol, router_config), **knobs)
    policy.validate(router_config.policy_bounds)
    settings = dataclasses.replace(RouteSettings.from_config(
        router_config, poll_interval_ms=100.0, max_venue_retries=2, rate_limit_backoff_ms=50.0,
        max_retry_after_ms=5000.0),
        position_mode=position_mode)
    event = route(order, policy, venue, rng=np.random.default_rng(0), settings=settings)
    assert event.filled_qty == math.fsum(f.qty for f in event.fills) <= order.qty + 1e-12
    assert len({f.trade_id for f in event.fills}) == len(event.fills)
    return event


FLAT: list[QuoteRow] = [(0, 100.00, 1.0, 100.10, 5.0)]


def test_maker_fill_behind_the_queue(router_config: RouterConfig) -> None:
    # Join the bid behind 1.0; a seller hits 100.00 for 2.5 at 300 ms: 1.0 clears the queue, we get 1.0.
    venue = sim(tape(FLAT, [(300, 100.00, 2.5, True)]))
    event = run(router_config, venue, maker_offset_bps=0.0)
    assert (event.outcome, event.routed_as, event.is_maker_final, event.used_fallback) == (
        "filled", "maker", True, False)
    assert event.avg_price == 100.00 and event.fees_bps == pytest.approx(2.0)
    assert event.time_to_fill_ms == pytest.approx(300.0)


def test_post_only_reject_then_fill(router_config: RouterConfig) -> None:
    # The ask drops to our 99.99 before arrival (10 ms): rejected; re-priced 1 bp behind 99.95 -> 99.94,
    # filled when the ask later trades down through it.
    quotes = [*FLAT, (5, 99.95, 1.0, 99.99, 5.0), (400, 99.90, 1.0, 99.94, 5.0)]
    event = run(router_config, sim(tape(quotes)))
    assert event.post_only_reject_count == 1 and event.outcome == "filled" and event.routed_as == "maker"
    assert event.avg_price == 99.94 and event.fills[0].client_order_id == "s1-2"


def test_ttl_expiry_then_taker_fallback(router_config: RouterConfig) -> None:
    event = run(router_config, sim(tape(FLAT)), reprice_attempts=0)
    assert (event.outcome, event.routed_as, event.used_fallback, event.started_maker, event.cancel_count) == (
        "filled", "taker", True, True, 1)
    assert event.avg_price == 100.10 and event.fees_bps == pytest.approx(5.0)
    assert event.time_to_fill_ms == pytest.approx(10 + 2000 + 10 + 10)


def test_partial_fill_then_fallback_of_the_remainder(router_config: RouterConfig) -> None:
    venue = sim(tape(FLAT, [(200, 100.00, 1.3, True)]))
    event = run(router_config, venue, maker_offset_bps=0.0, reprice_attempts=0)
    assert [(f.liquidity, f.qty) for f in event.fills] == [("maker", pytest.approx(0.3)),
                                                          ("taker", pytest.approx(0.7))]
    assert (event.outcome, event.routed_as, event.used_fallback) == ("filled", "mixed", True)


def test_cancel_fill_race(router_config: RouterConfig) -> None:
    # TTL ends at 2010 ms; the cancel takes effect at 2020 ms; a trade at 2015 ms fills 0.5 in between.
    venue = sim(tape(FLAT, [(2015, 100.00, 1.5, True)]))
    event = run(router_config, venue, maker_offset_bps=0.0, reprice_attempts=0)
    maker_fill, taker_fill = event.fills
    assert maker_fill.qty == pytest.approx(0.5) and maker_fill.ts_ns == 2015 * MS
    assert taker_fill.qty == pytest.approx(0.5)  # only the cancel's final remainder, never re-ordered
    assert event.outcome == "filled" and event.cancel_count == 1


def test_taker_leg_is_capped_when_the_market_runs_away(router_config: RouterConfig) -> None:
    quotes = [*FLAT, (1000, 100.50, 1.0, 100.60, 5.0)]
    venue = sim(tape(quotes))
    event = run(router_config, venue, reprice_attempts=0)
    assert event.outcome == "unfilled" and event.used_fallback and event.cancel_count == 1  # the maker leg only
    assert event.error == "taker_leg_unfilled_within_slippage_cap(15.0bps)"
    taker = venue.fetch_order("BTCUSDT", "s1-2")
    assert (taker.status, taker.price, taker.fills) == ("expired", 100.2, ())
    assert venue.open_orders(None) == ()


def test_straight_taker_is_one_ioc_that_walks_up_to_the_cap(router_config: RouterConfig) -> None:
    # Thin touch (0.4) and no depth: each tick beyond holds 0.4 (ratio 1.0); the 15 bp cap is 100.20.
    venue = sim(tape([(0, 100.00, 1.0, 100.10, 0.4)]))
    event = run(router_config, venue, taker_bias=1.0)
    assert [(f.price, f.qty) for f in event.fills] == [(100.10, 0.4), (100.11, 0.4), (100.12, pytest.approx(0.2))]
    assert (event.outcome, event.routed_as, event.cancel_count, event.error) == ("filled", "taker", 0, None)
    assert venue.fetch_order("BTCUSDT", "s1-1").status == "filled" and venue.open_orders(None) == ()


def test_taker_ioc_capped_at_the_touch_fills_it_and_expires_the_rest(router_config: RouterConfig) -> None:
    # A 5 bp cap puts the limit at 100.10 (100.05 * 1.0005, floored): only the touch's 0.4 is within it.
    venue = sim(tape([(0, 100.00, 1.0, 100.10, 0.4)]))
    event = run(router_config, venue, taker_bias=1.0, max_taker_slippage_bps=5.0)
    assert [(f.price, f.qty, f.liquidity) for f in event.fills] == [(100.10, 0.4, "taker")]
    assert (event.outcome, event.cancel_count, event.error) == ("partial", 0, None)
    assert venue.fetch_order("BTCUSDT", "s1-1").status == "expired" and venue.open_orders(None) == ()


def test_replay_ending_mid_route_still_yields_one_event(router_config: RouterConfig) -> None:
    event = run(router_config, sim(tape(FLAT, end_ms=500)), reprice_attempts=0)
    assert event.outcome == "unfilled" and event.error is not None and "ReplayExhausted" in event.error


def _close_order(symbol: str, quote: str, side: Side, position_side: PositionSide, *, close_position: bool,
                 intent_id: str) -> RouteOrder:
    return RouteOrder(intent_id=intent_id, symbol=symbol, side=side, qty=1.0, reduce_only=not close_position,
                      close_position=close_position, position_side=position_side, quote=quote, tick_size=0.01,
                      qty_step=0.001)


@pytest.mark.parametrize(("symbol", "quote"), [("BTCUSDC", "USDC"), ("BTCUSDT", "USDT")])
@pytest.mark.parametrize(("position_side", "open_side", "close_side"), [("LONG", "buy", "sell"),
                                                                       ("SHORT", "sell", "buy")])
@pytest.mark.parametrize("close_position", [False, True])
def test_close_in_hedge_mode(router_config: RouterConfig, symbol: str, quote: str, position_side: PositionSide,
                             open_side: Side, close_side: Side, close_position: bool) -> None:
    venue = sim(tape(FLAT, symbol=symbol))
    opened = run(router_config, venue, RouteOrder(
        intent_id="open", symbol=symbol, side=open_side, qty=1.0, reduce_only=False, close_position=False,
        position_side=position_side, quote=quote, tick_size=0.01, qty_step=0.001), taker_bias=1.0)
    assert opened.outcome == "filled"
    assert abs(venue.positions(symbol)[position_side]) == pytest.approx(1.0)
    # maker-first close: rests a TTL, then the taker fallback closes the rest
    closed = run(router_config, venue, _close_order(symbol, quote, close_side, position_side,
                                                    close_position=close_position, intent_id="close"),
                 reprice_attempts=0)
    assert closed.outcome == "filled" and closed.reduce_only == (not close_position)
    assert (closed.close_position, closed.position_side) == (close_position, position_side)
    assert (opened.reduce_only, opened.close_position, opened.position_side) == (False, False, position_side)
    assert closed.started_maker and closed.used_fallback and closed.routed_as == "taker"
    assert venue.positions(symbol)[position_side] == 0.0


def test_reduce_only_close_in_one_way_mode(router_config: RouterConfig) -> None:
    venue = sim(tape(FLAT), position_mode="one_way")
    short = RouteOrder(intent_id="open", symbol="BTCUSDT", side="sell", qty=1.0, reduce_only=False,
                       close_position=False, position_side="BOTH", quote="USDT", tick_size=0.01, qty_step=0.001)
    run(router_config, venue, short, position_mode="one_way", taker_bias=1.0)
    assert venue.positions("BTCUSDT") == {"BOTH": pytest.approx(-1.0)}
    closed = run(router_config, venue, _close_order("BTCUSDT", "USDT", "buy", "BOTH", close_position=False,
                                                    intent_id="close"), position_mode="one_way")
    assert closed.outcome == "filled" and venue.positions("BTCUSDT") == {"BOTH": 0.0}


def test_reduce_only_with_nothing_to_reduce_is_rejected_with_the_venue_error(router_config: RouterConfig) -> None:
    venue = sim(tape(FLAT))
    event = run(router_config, venue, _close_order("BTCUSDT", "USDT", "sell", "LONG", close_position=False,
                                                   intent_id="close"))
    assert event.outcome == "rejected" and event.error is not None and "ReduceOnlyRejected" in event.error
