"""PortfolioState bookkeeping and the one builder, ``RiskContext.from_state``."""

from __future__ import annotations

import dataclasses

import pytest

from router_tuner.risk import PortfolioState, RiskContext
from router_tuner.risk.context import WorkingRoute
from router_tuner.router.events import Fill
from tests.risk.test_risk_support import BUNDLE, NOW_NS, leg, make_ctx

S = 1_000_000_000
UNIVERSE = BUNDLE.strategy.universe


def fill(trade_id: str, price: float, qty: float, *, fee: float = 0.0, ts_ns: int = NOW_NS,
         order: str = "o-1") -> Fill:
    return Fill(trade_id=trade_id, client_order_id=order, price=price, qty=qty, fee_usd=fee,
                liquidity="maker", ts_ns=ts_ns)


def state(balance: float = 100_000.0) -> PortfolioState:
    return PortfolioState(wallet_balance_usd=balance, nav_ts_ns=NOW_NS)


def test_open_add_reduce_and_flip_realize_pnl_net_of_fees() -> None:
    p = state()
    p.apply_fill(symbol="BTCUSDT", side="buy", position_side="BOTH", fill=fill("t1", 100.0, 1.0))
    p.apply_fill(symbol="BTCUSDT", side="buy", position_side="BOTH", fill=fill("t2", 200.0, 1.0))
    assert p.legs[("BTCUSDT", "BOTH")].entry_price == 150.0
    net = p.apply_fill(symbol="BTCUSDT", side="sell", position_side="BOTH", fill=fill("t3", 170.0, 1.0, fee=2.0))
    assert net == pytest.approx(18.0)
    net = p.apply_fill(symbol="BTCUSDT", side="sell", position_side="BOTH", fill=fill("t4", 160.0, 3.0))
    assert net == pytest.approx(10.0)
    assert p.legs[("BTCUSDT", "BOTH")].qty == -2.0 and p.legs[("BTCUSDT", "BOTH")].entry_price == 160.0
    assert p.wallet_balance_usd == pytest.approx(100_028.0)
    p.mark_to_market({"BTCUSDT": 150.0}, NOW_NS)
    assert p.nav_usd == pytest.approx(100_028.0 + 20.0)


def test_closing_a_leg_removes_it_and_duplicate_trade_ids_count_once() -> None:
    p = state()
    p.apply_fill(symbol="ETHUSDT", side="buy", position_side="LONG", fill=fill("t1", 10.0, 2.0))
    assert p.apply_fill(symbol="ETHUSDT", side="buy", position_side="LONG", fill=fill("t1", 10.0, 2.0)) is None
    p.apply_fill(symbol="ETHUSDT", side="sell", position_side="LONG", fill=fill("t2", 11.0, 2.0))
    assert p.legs == {} and p.wallet_balance_usd == pytest.approx(100_002.0)


def test_a_fill_beyond_a_hedge_leg_closes_it_and_opens_nothing_past_flat() -> None:
    """A hedge-mode venue holds no LONG leg below zero (nor SHORT above): a reducing fill beyond the leg (an overfill,
    a fill after the leg closed) closes it, realises PnL on what closed and charges its whole fee. It was a
    ValueError, which stopped the run and every restart that recovered the intent."""
    p = state()
    p.apply_fill(symbol="ETHUSDT", side="buy", position_side="LONG", fill=fill("t1", 10.0, 1.0))
    net = p.apply_fill(symbol="ETHUSDT", side="sell", position_side="LONG", fill=fill("t2", 12.0, 2.0, fee=0.5))
    assert net == pytest.approx(2.0 - 0.5) and p.legs == {}
    late = fill("t3", 12.0, 1.0, fee=0.5)  # after the leg closed: only its fee
    assert p.apply_fill(symbol="ETHUSDT", side="sell", position_side="LONG", fill=late) == -0.5
    p.apply_fill(symbol="ETHUSDT", side="sell", position_side="SHORT", fill=fill("t4", 10.0, 1.0))
    assert p.apply_fill(symbol="ETHUSDT", side="buy", position_side="SHORT", fill=fill("t5", 9.0, 3.0)) == 1.0
    assert p.legs == {} and p.wallet_balance_usd == pytest.approx(100_000.0 + 1.5 - 0.5 + 1.0)


def test_bad_fills_are_refused() -> None:
    p = state()
    p.apply_fill(symbol="ETHUSDT", side="buy", position_side="LONG", fill=fill("t1", 10.0, 1.0))
    with pytest.raises(ValueError, match="positive"):
        p.apply_fill(symbol="ETHUSDT", side="buy", position_side="LONG", fill=fill("t3", 0.0, 1.0))
    with pytest.raises(ValueError, match="finite"):
        p.apply_fill(symbol="ETHUSDT", side="buy", position_side="LONG", fill=fill("t4", float("nan"), 1.0))
    with pytest.raises(ValueError, match="positive finite price"):
        p.mark_to_market({"ETHUSDT": -1.0}, NOW_NS)


def test_from_state_aggregates_positions_tiers_and_nav() -> None:
    p = state()
    p.apply_fill(symbol="BTCUSDT", side="buy", position_side="BOTH", fill=fill("a", 100.0, 10.0))
    p.apply_fill(symbol="ETHUSDT", side="sell", position_side="BOTH", fill=fill("b", 50.0, 10.0))
    p.apply_fill(symbol="BTCUSDT_SPOT", side="buy", position_side="BOTH", fill=fill("c", 100.0, 3.0))
    p.mark_to_market({"BTCUSDT": 110.0, "ETHUSDT": 50.0, "BTCUSDT_SPOT": 110.0}, NOW_NS - 5 * S)
    ctx = RiskContext.from_state(p, symbol="BTCUSDT", universe=UNIVERSE, now_ns=NOW_NS, working=())
    assert ctx.open_positions_count == 3 and ctx.tier_name == "CORE"
    assert ctx.symbol_gross_notional_usd == pytest.approx(1_100.0)
    assert ctx.current_tier_gross_notional == pytest.approx(1_600.0)
    assert ctx.gross_exposure_usd == pytest.approx(1_930.0)
    assert ctx.nav_usd == pytest.approx(100_130.0) and ctx.equity_usd == 100_000.0
    assert ctx.nav_age_s == 5.0 and ctx.leverage_in_use == pytest.approx(1_930.0 / 100_130.0)
    spot = RiskContext.from_state(p, symbol="BTCUSDT_SPOT", universe=UNIVERSE, now_ns=NOW_NS, working=())
    assert spot.tier_name == "SPOT" and spot.current_tier_gross_notional == pytest.approx(330.0)


def test_working_routes_count_as_if_filled_in_exposure_trades_and_opening_legs() -> None:
    p = state()
    p.apply_fill(symbol="BTCUSDT", side="buy", position_side="LONG", fill=fill("a", 100.0, 10.0))
    working = (WorkingRoute(symbol="BTCUSDT", position_side="LONG", reserved_usd=500.0),  # adds to an open leg
               WorkingRoute(symbol="BTCUSDT", position_side="SHORT", reserved_usd=200.0),  # opens a leg
               WorkingRoute(symbol="ETHUSDT", position_side="LONG", reserved_usd=300.0),  # same tier
               WorkingRoute(symbol="BTCUSDT_SPOT", position_side="BOTH", reserved_usd=0.0))  # reducing
    ctx = RiskContext.from_state(p, symbol="BTCUSDT", universe=UNIVERSE, now_ns=NOW_NS, working=working)
    assert ctx.symbol_gross_notional_usd == pytest.approx(1_000.0 + 700.0)
    assert ctx.current_tier_gross_notional == pytest.approx(1_000.0 + 1_000.0)
    assert ctx.gross_exposure_usd == pytest.approx(2_000.0) and ctx.pending_gross_usd == pytest.approx(1_000.0)
    assert ctx.working_routes == 4 and ctx.trades_last_hour == 3  # the three BTCUSDT routes
    assert ctx.opening_legs == frozenset({("BTCUSDT", "SHORT"), ("ETHUSDT", "LONG")})
    idle = RiskContext.from_state(p, symbol="BTCUSDT", universe=UNIVERSE, now_ns=NOW_NS, working=())
    assert (idle.gross_exposure_usd, idle.working_routes, idle.opening_legs) == (1_000.0, 0, frozenset())


def test_working_route_reservations_and_counts_are_checked() -> None:
    with pytest.raises(ValueError, match="reserved_usd"):
        WorkingRoute(symbol="BTCUSDT", position_side="LONG", reserved_usd=-1.0)
    with pytest.raises(ValueError, match="opening legs"):
        make_ctx(working_routes=0, opening_legs=frozenset({("BTCUSDT", "LONG")}))
    with pytest.raises(ValueError, match="pending_gross_usd"):
        make_ctx(pending_gross_usd=1.0)


def test_from_state_windows_losses_drawdown_trades_and_stops() -> None:
    p = state()
    day_ago = NOW_NS - 86_400 * S
    sym = {"symbol": "BTCUSDT", "position_side": "BOTH"}
    p.apply_fill(side="buy", fill=fill("w1", 100.0, 1.0, ts_ns=day_ago - 3_600 * S, order="o1"), **sym)
    p.apply_fill(side="sell", fill=fill("w2", 50.0, 1.0, ts_ns=day_ago - 60 * S, order="o2"), **sym)
    p.apply_fill(side="buy", fill=fill("d1", 100.0, 1.0, ts_ns=NOW_NS - 7_200 * S, order="o3"), **sym)
    p.apply_fill(side="sell", fill=fill("d2", 130.0, 1.0, ts_ns=NOW_NS - 3_000 * S, order="o4"), **sym)
    p.apply_fill(side="buy", fill=fill("d3", 100.0, 1.0, ts_ns=NOW_NS - 60 * S, order="o5"), **sym)
    p.apply_fill(side="sell", fill=fill("d4", 95.0, 0.5, ts_ns=NOW_NS - 30 * S, order="o6"), **sym)
    p.apply_fill(side="sell", fill=fill("d5", 95.0, 0.5, ts_ns=NOW_NS - 20 * S, order="o6"), **sym)
    p.record_stop("BTCUSDT", NOW_NS - 10 * S)
    p.mark_to_market({"BTCUSDT": 100.0}, NOW_NS)
    ctx = RiskContext.from_state(p, symbol="BTCUSDT", universe=UNIVERSE, now_ns=NOW_NS, working=())
    assert ctx.weekly_realized_loss_usd == pytest.approx(25.0)  # -50 + 30 - 5 over the week
    assert ctx.daily_realized_loss_usd == 0.0  # +30 - 5 over the day
    assert ctx.symbol_drawdown_usd == pytest.approx(5.0)  # peak +30, now +25
    assert ctx.trades_last_hour == 3  # o4, o5, o6 (two fills, one order)
    assert ctx.last_stop_ns == NOW_NS - 10 * S and ctx.open_positions_count == 0


def test_from_state_needs_marks_and_flags_symbols_outside_the_universe() -> None:
    p = state()
    p.apply_fill(symbol="BTCUSDT", side="buy", position_side="BOTH", fill=fill("a", 100.0, 1.0))
    p.marks.clear()
    with pytest.raises(ValueError, match="no mark for BTCUSDT"):
        RiskContext.from_state(p, symbol="BTCUSDT", universe=UNIVERSE, now_ns=NOW_NS, working=())
    ctx = RiskContext.from_state(state(), symbol="DOGEUSDT", universe=UNIVERSE, now_ns=NOW_NS, working=())
    assert ctx.tier_name is None and ctx.current_tier_gross_notional == 0.0


def test_every_context_field_is_required() -> None:
    full = dataclasses.asdict(make_ctx())
    full["positions"] = ()
    for name in full:
        partial = {k: v for k, v in full.items() if k != name}
        with pytest.raises(TypeError, match=name):
            RiskContext(**partial)


@pytest.mark.parametrize(("field", "value", "message"), [
    ("nav_usd", float("nan"), "finite"), ("gross_exposure_usd", -1.0, ">= 0"),
    ("trades_last_hour", -1, "trades_last_hour"), ("open_positions_count", 3, "open_positions_count"),
])
def test_context_refuses_inconsistent_values(field: str, value: float, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make_ctx(**{field: value})


def test_context_refuses_mixed_position_modes_on_its_symbol() -> None:
    with pytest.raises(ValueError, match="one-way and hedge"):
        make_ctx((leg(position_side="BOTH"), leg(position_side="LONG")))


def test_trade_ids_are_remembered_as_long_as_their_fills_are_logged() -> None:
    state = PortfolioState(wallet_balance_usd=10_000.0, nav_ts_ns=NOW_NS)
    week_ns = 7 * 24 * 3_600 * 1_000_000_000
    state.apply_fill(symbol="BTCUSDT", side="buy", position_side="LONG", fill=fill("old", 100.0, 1.0))
    assert state.apply_fill(symbol="BTCUSDT", side="buy", position_side="LONG", fill=fill("old", 100.0, 1.0)) is None
    later = NOW_NS + week_ns + 1
    state.mark_to_market({}, later)  # the executor's clock, a week on
    state.apply_fill(symbol="BTCUSDT", side="buy", position_side="LONG", fill=fill("new", 100.0, 1.0, ts_ns=later))
    assert [entry.trade_id for entry in state.fill_log] == ["new"]
    assert list(state._seen_trade_ids) == [("BTCUSDT", "new")], \
        "ids leave a week after they were applied: the set stays bounded"


def test_two_symbols_fills_under_one_trade_id_both_count() -> None:
    """A venue numbers trades per symbol (Binance's USDⓈ-M trade ids are each symbol's own sequence, as ``fromId``
    reads them), so a BTCUSDT fill and an ETHUSDT fill may carry the same id: both are fills, each counts. The id
    alone was the key, so the second symbol's fill was taken for a repeat and dropped: its leg stayed flat while the
    venue held it (caps counted without it, the restart refused at the position check). A repeat of one symbol's
    fill is still a no-op."""
    p = state()
    assert p.apply_fill(symbol="BTCUSDT", side="buy", position_side="LONG", fill=fill("7", 100.0, 1.0)) is not None
    assert p.apply_fill(symbol="ETHUSDT", side="sell", position_side="SHORT", fill=fill("7", 50.0, 2.0)) is not None
    assert p.legs[("BTCUSDT", "LONG")].qty == 1.0 and p.legs[("ETHUSDT", "SHORT")].qty == -2.0
    assert p.apply_fill(symbol="ETHUSDT", side="sell", position_side="SHORT", fill=fill("7", 50.0, 2.0)) is None
    assert p.legs[("ETHUSDT", "SHORT")].qty == -2.0 and len(p.fill_log) == 2


def test_a_fill_stamped_far_ahead_of_the_clock_forgets_no_loss_and_counts_as_recent() -> None:
    """The week was counted from the newest fill's own stamp: one fill stamped a year ahead (a venue clock, a unit
    slip) dropped every fill before it, the day's realized loss with them, so the daily-loss breaker saw none; and a
    fill after the clock's now never counted towards the trades of the last hour."""
    p = state()
    p.apply_fill(symbol="BTCUSDT", side="buy", position_side="BOTH", fill=fill("open", 100.0, 1.0, order="o-1"))
    p.apply_fill(symbol="BTCUSDT", side="sell", position_side="BOTH", fill=fill("loss", 60.0, 1.0, order="o-2"))
    year_ns = 365 * 24 * 3_600 * 1_000_000_000
    p.apply_fill(symbol="BTCUSDT", side="buy", position_side="BOTH",
                 fill=fill("ahead", 60.0, 1.0, ts_ns=NOW_NS + year_ns, order="o-3"))
    assert [e.trade_id for e in p.fill_log] == ["open", "loss", "ahead"]
    assert p.realized_loss_usd(since_ns=NOW_NS - 1) == pytest.approx(40.0)
    assert p.trades_in_last_hour("BTCUSDT", now_ns=NOW_NS) == 3
    hour_ns = 3_600 * 1_000_000_000
    assert p.fill_log[-1].ts_ns == NOW_NS + hour_ns, "logged an hour ahead of the clock at most, not a year"
    assert p.trades_in_last_hour("BTCUSDT", now_ns=NOW_NS + 2 * hour_ns + 1) == 0


def test_a_fill_stamped_weeks_back_is_still_caught_when_the_venue_repeats_it() -> None:
    """Pruned by the executor's clock, a fill stamped more than a week back (a unit slip) left the log at once with its
    trade id, so the same fill reported again was applied twice: the leg doubled and the fee was charged twice."""
    p = state(balance=1_000.0)
    back = NOW_NS - 30 * 24 * 3_600 * 1_000_000_000
    first = p.apply_fill(symbol="BTCUSDT", side="buy", position_side="BOTH", fill=fill("old", 100.0, 1.0, fee=0.1,
                                                                                           ts_ns=back))
    again = p.apply_fill(symbol="BTCUSDT", side="buy", position_side="BOTH", fill=fill("old", 100.0, 1.0, fee=0.1,
                                                                                           ts_ns=back))
    assert (first, again) == (pytest.approx(-0.1), None)
    assert p.legs[("BTCUSDT", "BOTH")].qty == 1.0 and p.wallet_balance_usd == pytest.approx(999.9)


def test_the_log_is_pruned_whatever_order_the_fills_were_stamped_in() -> None:
    """Only the first entry was checked for age: one stamped ahead at the front kept the older ones behind it."""
    p = state()
    minute_ns = 60 * 1_000_000_000
    p.apply_fill(symbol="BTCUSDT", side="buy", position_side="BOTH",
                 fill=fill("ahead", 100.0, 1.0, ts_ns=NOW_NS + 30 * minute_ns))
    p.apply_fill(symbol="BTCUSDT", side="buy", position_side="BOTH", fill=fill("now", 100.0, 1.0, ts_ns=NOW_NS))
    later = NOW_NS + 7 * 24 * 60 * minute_ns + 20 * minute_ns  # a week and 20 minutes on: "now" is a week old
    p.mark_to_market({}, later)
    p.apply_fill(symbol="BTCUSDT", side="buy", position_side="BOTH", fill=fill("later", 100.0, 1.0, ts_ns=later))
    assert [e.trade_id for e in p.fill_log] == ["ahead", "later"]
