"""Behaviour of the simulated venue on small hand-built tapes: latency, post-only, queue, fills, fees."""

from __future__ import annotations

import math

import pytest

from router_tuner.router.venue import InvalidOrder, OrderNotFound, PostOnlyRejected
from router_tuner.router.venues.sim import (
    PowerProbQueue,
    ReplayExhausted,
    RiskAverseQueue,
    SimVenue,
    TakerWalkTooDeep,
)
from tests.venues.test_sim_venue_support import MS, config, limit, make_tape, market

FLAT = [(0, 99, 5, 101, 5), (100 * MS, 99, 5, 101, 5)]


def test_post_only_judged_at_arrival_after_latency() -> None:
    # The ask drops to 100 half a millisecond after we send; our bid at 100 arrives 1 ms later.
    tape = make_tape([(0, 99, 5, 101, 5), (MS // 2, 99, 5, 100, 3), (100 * MS, 99, 5, 100, 3)])
    venue = SimVenue([tape], config(order_entry_latency_ms=1.0), start_ns=0)
    assert venue.top_of_book("BTCUSDT").ask == 101.0  # looked fine when sent
    with pytest.raises(PostOnlyRejected, match="cross the ask 100"):
        venue.place_order(limit("a", "buy", 1, 100))
    assert venue.clock.now_ns() == MS
    state = venue.fetch_order("BTCUSDT", "a")
    assert state.status == "rejected" and state.is_terminal and state.fills == ()
    assert venue.open_orders("BTCUSDT") == ()

    fast = SimVenue([tape], config(order_entry_latency_ms=0.2), start_ns=0)
    assert fast.place_order(limit("a", "buy", 1, 100)).status == "open"


def test_queue_advances_on_trades_then_partial_then_full_fill() -> None:
    trades = [(2 * MS, 99, 3, True), (3 * MS, 99, 3, True), (4 * MS, 99, 4, True),
              (3 * MS + 1, 101, 9, False)]  # a buy at the ask does not move a bid queue
    trades.sort()
    venue = SimVenue([make_tape(FLAT, trades)], config(), start_ns=0)
    state = venue.place_order(limit("b", "buy", 2, 99))
    assert state.status == "open"  # 5 displayed ahead of us at the touch
    venue.clock.sleep_until(2 * MS)
    assert venue.fetch_order("BTCUSDT", "b").filled_qty == 0  # 2 still ahead
    venue.clock.sleep_until(3 * MS + 1)
    state = venue.fetch_order("BTCUSDT", "b")
    assert state.status == "partially_filled" and state.filled_qty == 1
    assert [(f.price, f.qty, f.ts_ns, f.liquidity) for f in state.fills] == [(99.0, 1.0, 3 * MS, "maker")]
    venue.clock.sleep_until(5 * MS)
    state = venue.fetch_order("BTCUSDT", "b")
    assert state.status == "filled" and state.filled_qty == 2
    assert [f.ts_ns for f in state.fills] == [3 * MS, 4 * MS]
    assert venue.open_orders(None) == ()


def test_cross_fills_everything_left_at_our_price() -> None:
    quotes = [*FLAT[:1], (6 * MS, 97, 4, 98, 2), (100 * MS, 97, 4, 98, 2)]
    venue = SimVenue([make_tape(quotes)], config(), start_ns=0)
    venue.place_order(limit("c", "buy", 3, 99))
    venue.clock.sleep_until(5 * MS)
    assert venue.fetch_order("BTCUSDT", "c").status == "open"
    venue.clock.sleep_until(7 * MS)
    state = venue.fetch_order("BTCUSDT", "c")
    assert state.status == "filled"
    assert [(f.price, f.qty, f.ts_ns) for f in state.fills] == [(99.0, 3.0, 6 * MS)]


def test_trade_through_our_price_fills_a_sell() -> None:
    venue = SimVenue([make_tape(FLAT, [(3 * MS, 102, 1, False)])], config(), start_ns=0)
    venue.place_order(limit("s", "sell", 2, 101))
    venue.clock.sleep_until(4 * MS)
    state = venue.fetch_order("BTCUSDT", "s")
    assert state.status == "filled" and [(f.price, f.ts_ns) for f in state.fills] == [(101.0, 3 * MS)]


def _cancel_then_trade_venue(queue_model: PowerProbQueue | RiskAverseQueue) -> SimVenue:
    # Depth at our bid 99: 10 when we join, 20 after others join behind, back to 10 (10 cancelled),
    # then a sell of 6 at 99.
    depth = [(0, 1, 99, 10), (0, -1, 101, 5), (2 * MS, 1, 99, 20), (3 * MS, 1, 99, 10), (4 * MS + 1, 1, 99, 4)]
    tape = make_tape(FLAT, [(4 * MS, 99, 6, True)], depth, snapshot_idx=[0])
    venue = SimVenue([tape], config(queue_model), start_ns=0)
    venue.place_order(limit("q", "buy", 3, 99))
    venue.clock.sleep_until(5 * MS)
    return venue


def test_cancels_move_queue_by_the_configured_model() -> None:
    # Proportional model: half the cancelled 10 was ahead of us -> 5 ahead -> the sell of 6 fills 1.
    state = _cancel_then_trade_venue(PowerProbQueue(power=1.0)).fetch_order("BTCUSDT", "q")
    assert state.filled_qty == 1 and state.status == "partially_filled"
    # Risk-averse: cancels were all behind us -> 10 ahead -> the sell of 6 does not reach us.
    assert _cancel_then_trade_venue(RiskAverseQueue()).fetch_order("BTCUSDT", "q").filled_qty == 0


def test_price_inside_the_spread_has_no_queue() -> None:
    venue = SimVenue([make_tape(FLAT, [(3 * MS, 100, 2, True)])], config(), start_ns=0)
    venue.place_order(limit("i", "buy", 5, 100))
    venue.clock.sleep_until(4 * MS)
    assert venue.fetch_order("BTCUSDT", "i").filled_qty == 2


def test_taker_walks_depth_with_taker_fees() -> None:
    depth = [(0, -1, 101, 2), (0, -1, 102, 3), (0, -1, 103, 10), (0, -1, 104, 0), (0, 1, 99, 5)]
    venue = SimVenue([make_tape([(0, 99, 5, 101, 2), (100 * MS, 99, 5, 101, 2)], depth=depth,
                                snapshot_idx=[0])], config(taker_fee_bps=5.0), start_ns=0)
    state = venue.place_order(market("m", "buy", 6))
    assert state.status == "filled" and state.filled_qty == 6
    assert [(f.price, f.qty, f.liquidity) for f in state.fills] == [(101.0, 2.0, "taker"), (102.0, 3.0, "taker"),
                                                                     (103.0, 1.0, "taker")]
    for f in state.fills:
        assert math.isclose(f.fee_usd, f.price * f.qty * 5.0 / 1e4)
    assert len({f.trade_id for f in state.fills}) == 3


def test_taker_without_depth_uses_the_impact_assumption() -> None:
    venue = SimVenue([make_tape([(0, 99, 4, 101, 2), (100 * MS, 99, 4, 101, 2)])],
                     config(no_depth_level_qty_ratio=0.5), start_ns=0)
    state = venue.place_order(market("m", "sell", 7))
    assert [(f.price, f.qty) for f in state.fills] == [(99.0, 4.0), (98.0, 2.0), (97.0, 1.0)]


def test_marketable_limit_takes_to_its_price_and_rests_the_rest() -> None:
    venue = SimVenue([make_tape(FLAT, [(5 * MS, 102, 1, True)])], config(no_depth_level_qty_ratio=0.2),
                     start_ns=0)
    state = venue.place_order(limit("l", "buy", 10, 102, post_only=False))
    assert [(f.price, f.qty) for f in state.fills] == [(101.0, 5.0), (102.0, 1.0)]
    assert state.status == "partially_filled" and state.filled_qty == 6
    assert [s.client_order_id for s in venue.open_orders("BTCUSDT")] == ["l"]
    venue.clock.sleep_until(6 * MS)  # it now leads the bid at 102: a sell of 1 there is ours
    state = venue.fetch_order("BTCUSDT", "l")
    assert state.filled_qty == 7 and state.fills[-1].liquidity == "maker"


def test_taker_walk_too_deep_is_rejected_before_any_fill() -> None:
    venue = SimVenue([make_tape(FLAT)], config(max_taker_walk_levels=3), start_ns=0)
    with pytest.raises(TakerWalkTooDeep, match="max_taker_walk_levels=3"):
        venue.place_order(market("m", "buy", 100))
    assert venue.fetch_order("BTCUSDT", "m").status == "rejected"
    assert venue.fetch_order("BTCUSDT", "m").fills == ()


def test_maker_rebate_has_negative_fee() -> None:
    venue = SimVenue([make_tape(FLAT, [(3 * MS, 100, 2, True)])], config(maker_fee_bps=-1.5), start_ns=0)
    venue.place_order(limit("r", "buy", 2, 100))
    venue.clock.sleep_until(4 * MS)
    (fill,) = venue.fetch_order("BTCUSDT", "r").fills
    assert fill.liquidity == "maker" and fill.fee_usd < 0
    assert math.isclose(fill.fee_usd, -1.5e-4 * 100 * 2)


def test_cancel_fill_race_fill_inside_cancel_latency_is_reported_once() -> None:
    trades = [(3 * MS, 100, 1, True), (4 * MS, 100, 1, True)]  # the second lands exactly at the cancel
    venue = SimVenue([make_tape(FLAT, trades)], config(cancel_latency_ms=2.0), start_ns=0)
    venue.place_order(limit("x", "buy", 3, 100))  # arrives at 1 ms, improves the bid: nothing ahead
    venue.clock.sleep_until(2 * MS)
    state = venue.cancel_order("BTCUSDT", "x")  # sent at 2 ms, effective at 4 ms
    assert venue.clock.now_ns() == 4 * MS
    assert state.status == "canceled" and state.filled_qty == 2
    assert [f.ts_ns for f in state.fills] == [3 * MS, 4 * MS]
    venue.clock.sleep_until(10 * MS)
    again = venue.fetch_order("BTCUSDT", "x")
    assert again.fills == state.fills and again.status == "canceled"
    assert len({f.trade_id for f in again.fills}) == 2


def test_cancel_of_an_order_filled_during_the_latency_returns_filled() -> None:
    venue = SimVenue([make_tape(FLAT, [(3 * MS, 100, 5, True)])], config(cancel_latency_ms=2.0), start_ns=0)
    venue.place_order(limit("x", "buy", 3, 100))
    venue.clock.sleep_until(2 * MS)
    state = venue.cancel_order("BTCUSDT", "x")
    assert state.status == "filled" and state.filled_qty == 3 and len(state.fills) == 1


def _jittered_run(seed: int) -> list[tuple[str, float, float, int]]:
    trades = [(k * MS, 100 if k % 2 else 99, 1, True) for k in range(2, 60)]
    venue = SimVenue([make_tape(FLAT, trades)], config(latency_jitter_ms=3.0, seed=seed), start_ns=0)
    for n in range(6):
        venue.place_order(limit(f"o{n}", "buy", 2, 100 if n % 2 else 99))
        venue.clock.sleep_until(venue.clock.now_ns() + 2 * MS)
        if n % 3 == 2:
            venue.cancel_order("BTCUSDT", f"o{n - 1}")
    venue.clock.sleep_until(90 * MS)
    states = [venue.fetch_order("BTCUSDT", f"o{n}") for n in range(6)]
    return [(f.trade_id, f.price, f.qty, f.ts_ns) for s in states for f in s.fills]


def test_deterministic_for_a_seed() -> None:
    assert _jittered_run(3) == _jittered_run(3)
    assert _jittered_run(3) != _jittered_run(4)


def test_multiple_symbols_share_one_clock() -> None:
    eth = make_tape([(0, 10, 1, 11, 1), (100 * MS, 10, 1, 11, 1)], [(5 * MS, 10, 2, True)], symbol="ETHUSDT")
    venue = SimVenue([make_tape(FLAT), eth], config(), start_ns=0)
    venue.place_order(limit("e", "buy", 1, 10, symbol="ETHUSDT"))
    venue.clock.sleep_until(6 * MS)
    assert venue.fetch_order("ETHUSDT", "e").status == "filled"
    assert venue.top_of_book("BTCUSDT").ts_ns == 6 * MS
    with pytest.raises(OrderNotFound):
        venue.fetch_order("BTCUSDT", "e")


def test_request_errors() -> None:
    venue = SimVenue([make_tape(FLAT)], config(), start_ns=0)
    with pytest.raises(InvalidOrder, match="is unknown"):
        venue.top_of_book("XRPUSDT")
    with pytest.raises(InvalidOrder, match="is unknown"):
        venue.place_order(limit("u", "buy", 1, 99, symbol="XRPUSDT"))
    with pytest.raises(InvalidOrder, match="is unknown"):
        venue.open_orders("XRPUSDT")
    with pytest.raises(OrderNotFound):
        venue.fetch_order("BTCUSDT", "nope")
    with pytest.raises(OrderNotFound):
        venue.cancel_order("BTCUSDT", "nope")
    venue.place_order(limit("d", "buy", 1, 99))
    with pytest.raises(InvalidOrder, match="client_order_id 'd' is a duplicate"):
        venue.place_order(limit("d", "buy", 1, 98))
    for bad_qty in (0, -1, float("nan"), float("inf"), 0.5):
        with pytest.raises(InvalidOrder, match="qty"):
            venue.place_order(limit(f"q{bad_qty}", "buy", bad_qty, 99))
    with pytest.raises(InvalidOrder, match=r"price 99\.5 is not a whole number"):
        venue.place_order(limit("p1", "buy", 1, 99.5))
    with pytest.raises(InvalidOrder, match="price must be a finite number > 0"):
        venue.place_order(limit("p2", "buy", 1, -99))
    with pytest.raises(InvalidOrder, match="side must be 'buy' or 'sell'"):
        venue.place_order(limit("p3", "hold", 1, 99))
    req = market("m1", "buy", 1)
    with pytest.raises(InvalidOrder, match="price must be None for a market order"):
        venue.place_order(type(req)(**{**_fields(req), "price": 100.0}))
    with pytest.raises(InvalidOrder, match="post_only needs a limit order"):
        venue.place_order(type(req)(**{**_fields(req), "post_only": True}))
    with pytest.raises(InvalidOrder, match="price is required for a limit order"):
        venue.place_order(type(req)(**{**_fields(req), "order_type": "limit"}))
    with pytest.raises(InvalidOrder, match="order_type must be 'limit' or 'market'"):
        venue.place_order(type(req)(**{**_fields(req), "order_type": "stop"}))
    with pytest.raises(InvalidOrder, match="reduce_only must be a bool"):
        venue.place_order(type(req)(**{**_fields(req), "reduce_only": 1}))
    with pytest.raises(InvalidOrder, match="position_side LONG is not allowed in one-way"):
        venue.place_order(type(req)(**{**_fields(req), "position_side": "LONG"}))
    assert [s.client_order_id for s in venue.open_orders(None)] == ["d"]  # nothing bad was registered


def _fields(req: object) -> dict[str, object]:
    return {name: getattr(req, name) for name in req.__slots__}  # type: ignore[attr-defined]


def test_replay_end_and_start_errors() -> None:
    tape = make_tape(FLAT)
    with pytest.raises(ValueError, match="before the first quote"):
        SimVenue([tape], config(), start_ns=-1)
    with pytest.raises(ValueError, match="after the end"):
        SimVenue([tape], config(), start_ns=101 * MS)
    with pytest.raises(ValueError, match="two tapes"):
        SimVenue([tape, tape], config(), start_ns=0)
    with pytest.raises(ValueError, match="at least one tape"):
        SimVenue([], config(), start_ns=0)
    venue = SimVenue([tape], config(), start_ns=0)
    venue.clock.sleep_until(-5)  # the past: no-op
    assert venue.clock.now_ns() == 0
    venue.clock.sleep_until(100 * MS)  # the last instant with data
    assert not venue.exhausted
    with pytest.raises(ReplayExhausted):
        venue.clock.sleep_until(101 * MS)
    assert venue.exhausted  # asked past its end: the paper loop admits no further intent
    venue.clock.sleep_until(99 * MS + MS // 2)
    with pytest.raises(ReplayExhausted):
        venue.place_order(limit("late", "buy", 1, 99))
    with pytest.raises(OrderNotFound):
        venue.fetch_order("BTCUSDT", "late")


def test_tapes_without_quotes_or_with_bad_ticks_are_refused() -> None:
    with pytest.raises(ValueError, match="needs level-1 quotes"):
        SimVenue([make_tape([], [(0, 100, 1, True)])], config(), start_ns=0)
    broken = make_tape([(0, 101, 1, 101, 1)])
    with pytest.raises(ValueError, match="crossed quote"):
        SimVenue([broken], config(), start_ns=0)
