"""Positions of the simulated venue: hedge and one-way mode, reduce-only, close_position, as Binance USDⓈ-M."""

from __future__ import annotations

import contextlib
import dataclasses

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from router_tuner.config.models import PositionMode
from router_tuner.router.events import PositionSide
from router_tuner.router.venue import InvalidOrder, OrderNotFound, OrderRequest
from router_tuner.router.venues.sim import ReduceOnlyRejected, SimVenue, SimVenueConfig
from tests.venues.test_sim_venue_support import MS, config, make_tape

FLAT = [(0, 99, 5, 101, 5), (1000 * MS, 99, 5, 101, 5)]
USDC_FLAT = [(0, 49, 5, 51, 5), (1000 * MS, 49, 5, 51, 5)]


def order(coid: str, side: str, qty: float, *, position_side: PositionSide = "BOTH", price: float | None = None,
          reduce_only: bool = False, close_position: bool = False, symbol: str = "BTCUSDT") -> OrderRequest:
    """A market order, or a plain (not post-only) limit order when ``price`` is given."""
    return OrderRequest(client_order_id=coid, symbol=symbol, side=side, qty=qty,  # type: ignore[arg-type]
                        order_type="market" if price is None else "limit", price=price,
                        time_in_force="IOC" if price is None else "GTC", post_only=False,
                        reduce_only=reduce_only, close_position=close_position, position_side=position_side)


def venue_for(mode: PositionMode, trades: list[tuple[int, int, int, bool]] | None = None) -> SimVenue:
    """BTCUSDT (a USDT perp) and BTCUSDC (a USDC perp) on one venue in ``mode``."""
    usdt = make_tape(FLAT, trades or [], symbol="BTCUSDT")
    usdc = make_tape(USDC_FLAT, symbol="BTCUSDC")
    return SimVenue([usdt, usdc], config(position_mode=mode), start_ns=0)


# ---- hedge mode -----------------------------------------------------------------------------------


def test_hedge_reduce_only_close_of_usdt_and_usdc_perps() -> None:
    venue = venue_for("hedge")
    venue.place_order(order("l1", "buy", 3, position_side="LONG"))
    venue.place_order(order("s1", "sell", 1, position_side="SHORT"))
    venue.place_order(order("c1", "sell", 4, position_side="SHORT", symbol="BTCUSDC"))
    assert venue.positions("BTCUSDT") == {"LONG": 3.0, "SHORT": -1.0}
    assert venue.positions("BTCUSDC") == {"LONG": 0.0, "SHORT": -4.0}

    # USDT perp: closing the LONG is a sell on position side LONG; the SHORT is untouched.
    state = venue.place_order(order("l2", "sell", 3, position_side="LONG", reduce_only=True))
    assert state.status == "filled" and state.filled_qty == 3
    assert [(f.price, f.liquidity) for f in state.fills] == [(99.0, "taker")]
    assert venue.positions("BTCUSDT") == {"LONG": 0.0, "SHORT": -1.0}
    # USDC perp: a buy on position side SHORT closes without any reduce_only flag (the pair decides).
    state = venue.place_order(order("c2", "buy", 4, position_side="SHORT", symbol="BTCUSDC"))
    assert state.status == "filled" and [f.price for f in state.fills] == [51.0]
    assert venue.positions("BTCUSDC") == {"LONG": 0.0, "SHORT": 0.0}
    assert venue.positions("BTCUSDT") == {"LONG": 0.0, "SHORT": -1.0}


def test_hedge_mode_position_side_rules() -> None:
    venue = venue_for("hedge")
    with pytest.raises(InvalidOrder, match="position_side BOTH is not allowed in hedge position mode"):
        venue.place_order(order("b", "buy", 1))
    with pytest.raises(InvalidOrder, match="reduce_only on position_side LONG needs side sell, got buy"):
        venue.place_order(order("r", "buy", 1, position_side="LONG", reduce_only=True))
    with pytest.raises(InvalidOrder, match="close_position on position_side SHORT needs side buy, got sell"):
        venue.place_order(order("c", "sell", 1, position_side="SHORT", close_position=True))
    with pytest.raises(InvalidOrder, match="position_side must be BOTH, LONG or SHORT"):
        venue.place_order(order("x", "buy", 1, position_side="NET"))  # type: ignore[arg-type]
    for coid in "brcx":
        with pytest.raises(OrderNotFound):
            venue.fetch_order("BTCUSDT", coid)  # malformed requests are never registered


def test_hedge_closing_order_with_no_position_is_rejected_at_arrival() -> None:
    venue = venue_for("hedge")
    venue.place_order(order("s1", "sell", 2, position_side="SHORT"))
    with pytest.raises(ReduceOnlyRejected, match=r"position is 0\.0"):
        venue.place_order(order("l1", "sell", 1, position_side="LONG"))
    assert venue.fetch_order("BTCUSDT", "l1").status == "rejected"
    assert venue.positions("BTCUSDT") == {"LONG": 0.0, "SHORT": -2.0}


# ---- one-way mode ---------------------------------------------------------------------------------


def test_one_way_reduce_only_close_resting_and_taker() -> None:
    venue = venue_for("one_way", trades=[(5 * MS, 101, 9, False)])  # lifts 9 at the ask: 5 ahead of us
    venue.place_order(order("o1", "buy", 3))
    assert venue.positions("BTCUSDT") == {"BOTH": 3.0}
    state = venue.place_order(order("r1", "sell", 2, price=101, reduce_only=True))
    assert state.status == "open"
    venue.clock.sleep_until(6 * MS)
    state = venue.fetch_order("BTCUSDT", "r1")
    assert state.status == "filled" and [(f.qty, f.liquidity) for f in state.fills] == [(2.0, "maker")]
    assert venue.positions("BTCUSDT") == {"BOTH": 1.0}
    with pytest.raises(ReduceOnlyRejected, match=r"rejected at arrival: the position is 1\.0"):
        venue.place_order(order("r2", "buy", 1, reduce_only=True))  # would increase the long
    state = venue.place_order(order("r3", "sell", 1, reduce_only=True, symbol="BTCUSDT"))
    assert state.status == "filled" and venue.positions("BTCUSDT") == {"BOTH": 0.0}
    assert venue.positions("BTCUSDC") == {"BOTH": 0.0}


def test_one_way_mode_refuses_hedge_position_sides() -> None:
    venue = venue_for("one_way")
    for side in ("LONG", "SHORT"):
        with pytest.raises(InvalidOrder, match=f"position_side {side} is not allowed in one-way position mode"):
            venue.place_order(order(side, "buy", 1, position_side=side))  # type: ignore[arg-type]


def test_reduce_only_with_no_position_is_rejected() -> None:
    venue = venue_for("one_way")
    with pytest.raises(ReduceOnlyRejected, match="reducing sell on position_side BOTH rejected at arrival"):
        venue.place_order(order("r", "sell", 1, reduce_only=True))
    state = venue.fetch_order("BTCUSDT", "r")
    assert state.status == "rejected" and state.fills == ()
    assert venue.clock.now_ns() == MS  # judged at arrival, after the entry latency
    with pytest.raises(InvalidOrder, match="duplicate"):
        venue.place_order(order("r", "sell", 1, reduce_only=True))


def test_reduce_only_larger_than_the_position_is_capped() -> None:
    venue = venue_for("one_way")
    venue.place_order(order("o", "sell", 2))
    state = venue.place_order(order("r", "buy", 5, reduce_only=True))
    assert state.status == "expired" and state.filled_qty == 2 and state.qty == 5
    assert sum(f.qty for f in state.fills) == 2
    assert venue.positions("BTCUSDT") == {"BOTH": 0.0}
    # A marketable reduce-only limit caps the same way and does not rest its excess.
    venue.place_order(order("o2", "buy", 1))
    state = venue.place_order(order("r2", "sell", 4, price=99, reduce_only=True))
    assert state.status == "expired" and state.filled_qty == 1 and venue.open_orders(None) == ()
    assert venue.positions("BTCUSDT") == {"BOTH": 0.0}


def test_resting_reduce_only_capped_at_fill_then_expires() -> None:
    # Our sell rests at 101 behind 5; a lift of 20 would fill it all, but the long is only 2 by then.
    venue = venue_for("one_way", trades=[(5 * MS, 101, 20, False)])
    venue.place_order(order("o", "buy", 3))
    venue.place_order(order("r", "sell", 6, price=101, reduce_only=True))
    venue.place_order(order("o2", "sell", 1))  # the position shrinks to 2 while r rests
    venue.clock.sleep_until(6 * MS)
    state = venue.fetch_order("BTCUSDT", "r")
    assert state.status == "expired" and state.filled_qty == 2
    assert venue.positions("BTCUSDT") == {"BOTH": 0.0} and venue.open_orders(None) == ()


def test_resting_reduce_only_expires_when_another_order_closes_the_position() -> None:
    venue = venue_for("one_way")
    venue.place_order(order("o", "buy", 2))
    venue.place_order(order("r", "sell", 2, price=101, reduce_only=True))
    venue.place_order(order("x", "sell", 3))  # flips the position to -1: r has nothing left to reduce
    assert venue.fetch_order("BTCUSDT", "r").status == "expired"
    assert venue.open_orders("BTCUSDT") == ()
    assert venue.positions("BTCUSDT") == {"BOTH": -1.0}


def test_fills_of_one_step_settle_in_time_order() -> None:
    # Long 1. In one replay step our reduce-only sell (placed first) is filled at 8 ms and our buy at
    # 6 ms: the buy must count first, so the sell reduces a long of 3 and fills completely.
    trades = [(6 * MS, 99, 10, True), (8 * MS, 101, 10, False)]
    venue = venue_for("one_way", trades=trades)
    venue.place_order(order("o", "buy", 1))
    venue.place_order(order("r", "sell", 2, price=101, reduce_only=True))
    venue.place_order(order("b", "buy", 2, price=99))
    venue.clock.sleep_until(10 * MS)
    assert venue.fetch_order("BTCUSDT", "b").status == "filled"
    state = venue.fetch_order("BTCUSDT", "r")
    assert state.status == "filled" and state.filled_qty == 2
    assert venue.positions("BTCUSDT") == {"BOTH": 1.0}


# ---- close_position -------------------------------------------------------------------------------


def test_close_position_closes_exactly_in_one_way_mode() -> None:
    venue = venue_for("one_way")
    venue.place_order(order("o", "buy", 3))
    state = venue.place_order(order("c", "sell", 0.0, close_position=True))
    assert state.status == "filled" and state.qty == 3 and state.filled_qty == 3  # qty is the position's
    assert venue.positions("BTCUSDT") == {"BOTH": 0.0}
    with pytest.raises(ReduceOnlyRejected, match="close_position: no open BOTH position in BTCUSDT"):
        venue.place_order(order("c2", "sell", 1, close_position=True))
    with pytest.raises(OrderNotFound):
        venue.fetch_order("BTCUSDT", "c2")  # like the live venue: nothing was sent


def test_close_position_closes_exactly_in_hedge_mode_per_side_and_quote() -> None:
    venue = venue_for("hedge")
    venue.place_order(order("l", "buy", 2, position_side="LONG"))
    venue.place_order(order("s", "sell", 5, position_side="SHORT"))
    venue.place_order(order("u", "sell", 3, position_side="SHORT", symbol="BTCUSDC"))
    state = venue.place_order(order("cs", "buy", 99, position_side="SHORT", close_position=True))
    assert state.status == "filled" and state.qty == 5 and state.filled_qty == 5
    assert venue.positions("BTCUSDT") == {"LONG": 2.0, "SHORT": 0.0}
    state = venue.place_order(order("cu", "buy", 1, position_side="SHORT", close_position=True, symbol="BTCUSDC"))
    assert state.filled_qty == 3 and venue.positions("BTCUSDC") == {"LONG": 0.0, "SHORT": 0.0}
    state = venue.place_order(order("cl", "sell", 1, position_side="LONG", close_position=True, price=101))
    assert state.status == "open" and state.qty == 2  # a resting close of the whole long
    assert venue.positions("BTCUSDT") == {"LONG": 2.0, "SHORT": 0.0}


def test_close_position_request_errors_name_the_field() -> None:
    venue = venue_for("one_way")
    venue.place_order(order("o", "sell", 2))
    with pytest.raises(InvalidOrder, match=r"side sell cannot close_position: the BOTH position is -2\.0"):
        venue.place_order(order("c1", "sell", 0, close_position=True))
    for bad in (float("nan"), -1.0):
        with pytest.raises(InvalidOrder, match="qty must be a finite number >= 0"):
            venue.place_order(order(f"c{bad}", "buy", bad, close_position=True))
    assert venue.positions("BTCUSDT") == {"BOTH": -2.0}


def test_config_position_mode_is_required_and_validated() -> None:
    with pytest.raises(ValueError, match="position_mode must be one of"):
        config(position_mode="dual")
    fields = {f.name for f in dataclasses.fields(SimVenueConfig)}
    assert "position_mode" in fields
    with pytest.raises(TypeError, match="position_mode"):
        SimVenueConfig(**{f: getattr(config(), f) for f in fields - {"position_mode"}})  # type: ignore[arg-type]


# ---- property: reduce-only never flips, and positions reconcile with fills --------------------------

_TRADES = [(t * MS, 99 if t % 2 else 101, 7, t % 2 == 1) for t in range(2, 900, 3)]
_steps = st.lists(st.tuples(st.sampled_from(["market", "limit"]), st.sampled_from(["buy", "sell"]),
                            st.integers(1, 6), st.booleans(), st.sampled_from(["LONG", "SHORT"]),
                            st.booleans(), st.integers(0, 8 * MS)), min_size=1, max_size=30)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mode=st.sampled_from(["hedge", "one_way"]), steps=_steps)
def test_reducing_fills_never_flip_and_positions_reconcile(
        mode: PositionMode, steps: list[tuple[str, str, int, bool, str, bool, int]]) -> None:
    venue = venue_for(mode, trades=_TRADES)
    sent: dict[str, OrderRequest] = {}
    for k, (kind, side, qty, reduce_only, hedge_side, close, dt) in enumerate(steps):
        position_side = hedge_side if mode == "hedge" else "BOTH"
        price = None if kind == "market" else (99 if side == "buy" else 101)
        request = order(f"o{k}", side, qty, position_side=position_side,  # type: ignore[arg-type]
                        price=price, reduce_only=reduce_only, close_position=close)
        with contextlib.suppress(InvalidOrder):  # ReduceOnlyRejected, or flags on a hedge opening side
            venue.place_order(request)
        sent[request.client_order_id] = request
        venue.clock.sleep_until(venue.clock.now_ns() + dt)
        _check_positions(venue, mode, sent)


def _check_positions(venue: SimVenue, mode: PositionMode, sent: dict[str, OrderRequest]) -> None:
    """Replay every fill in venue order: a reducing fill shrinks its position without crossing zero,
    and the replayed positions are the venue's."""
    states = {}
    for coid in sent:
        try:
            states[coid] = venue.fetch_order("BTCUSDT", coid)
        except OrderNotFound:
            continue  # refused before it was registered
    fills = sorted((f for o in states.values() for f in o.fills), key=lambda f: int(f.trade_id.split("-")[1]))
    replayed: dict[str, float] = {"LONG": 0.0, "SHORT": 0.0} if mode == "hedge" else {"BOTH": 0.0}
    for fill in fills:
        req = sent[fill.client_order_id]
        before = replayed[req.position_side]
        after = before + (fill.qty if req.side == "buy" else -fill.qty)
        reducing = (req.side == "sell") == (req.position_side == "LONG") if mode == "hedge" else \
            (req.reduce_only or req.close_position)
        if reducing:
            assert abs(after) < abs(before) and after * before >= 0, (fill, before, after)
        replayed[req.position_side] = after
    assert venue.positions("BTCUSDT") == replayed
    if mode == "hedge":
        assert replayed["LONG"] >= 0 >= replayed["SHORT"]
    for state in states.values():
        assert state.filled_qty == sum(f.qty for f in state.fills) <= state.qty
        if state.status == "expired":
            assert state.client_order_id not in {o.client_order_id for o in venue.open_orders(None)}


# ---- an account carried over a restart -----------------------------------------------------------------------


def test_restored_positions_are_reduced_and_closed_like_traded_ones() -> None:
    venue = venue_for("hedge")
    venue.restore_positions({"BTCUSDT": {"LONG": 3.0, "SHORT": -1.0}})
    assert venue.positions("BTCUSDT") == {"LONG": 3.0, "SHORT": -1.0}
    state = venue.place_order(order("c1", "sell", 0, position_side="LONG", close_position=True))
    assert state.filled_qty == 3 and venue.positions("BTCUSDT") == {"LONG": 0.0, "SHORT": -1.0}
    with pytest.raises(RuntimeError, match="before the first order"):
        venue.restore_positions({"BTCUSDT": {"LONG": 1.0}})


@pytest.mark.parametrize(("mode", "amounts", "message"), [
    ("hedge", {"DOGEUSDT": {"LONG": 1.0}}, "does not replay"),
    ("hedge", {"BTCUSDT": {"BOTH": 1.0}}, r"sides \['BOTH'\] do not exist in hedge position mode"),
    ("hedge", {"BTCUSDT": {"SHORT": 2.0}}, "a SHORT position cannot hold the amount"),
    ("one_way", {"BTCUSDT": {"BOTH": 0.0001}}, r"not whole numbers of 1/\d+ units"),
])
def test_restoring_positions_this_venue_cannot_hold_is_refused(mode: PositionMode, amounts: dict,
                                                               message: str) -> None:
    with pytest.raises(ValueError, match=message):
        venue_for(mode).restore_positions(amounts)
