"""``fit_to_lot`` over random states, limits, prices and lots: a growing order on the lot grid clears the
venue floor and passes ``check_order`` at its rounded notional, or is vetoed naming the floor; a reducing
order never exceeds its leg."""

from __future__ import annotations

import math

import msgspec
from hypothesis import event, given
from hypothesis import strategies as st

from router_tuner.config.models import RiskLimits
from router_tuner.risk import RiskContext, check_order, suggest_gross_usd
from router_tuner.risk.exposure import is_reducing
from router_tuner.risk.lot import VenueMinimum, fit_to_lot, floor_under_venue, unreachable_floor
from router_tuner.risk.sizer import opening_unsizable
from router_tuner.router.events import Intent
from tests.risk.test_risk_properties import PROPERTY, bundle_for, limits_st, scene_st
from tests.risk.test_risk_support import BUNDLE, leg, make_ctx, make_intent


@PROPERTY
@given(scene=scene_st(), limits=limits_st(), unit_usd=st.sampled_from([60_000.0, 3_000.0, 0.7]) | st.floats(0.5, 1e5),
       qty_step=st.sampled_from([0.001, 0.01, 0.1, 1.0]))
def test_a_lot_fit_clears_the_floor_and_every_cap_or_is_a_named_veto(
        scene: tuple[Intent, RiskContext], limits: RiskLimits, unit_usd: float, qty_step: float) -> None:
    intent, ctx = scene
    config = bundle_for(limits)
    size = suggest_gross_usd(intent, ctx, config)
    if size.gross_usd is None or check_order(intent, size.gross_usd, ctx, limits).veto:
        return
    fit = fit_to_lot(intent, size.gross_usd, unit_usd=unit_usd, qty_step=qty_step, ctx=ctx, config=config)
    event(f"lot: {fit.detail['rounding']} {'veto' if fit.reason else 'ok'}")
    if fit.reason is not None:
        assert fit.qty == 0.0 and fit.reason.code == "lot_rounding_below_min_notional"
        assert fit.reason.threshold == limits.min_notional_usd(intent.symbol) > fit.reason.observed
        assert fit.detail["blocked_by"]
        return
    assert math.isclose(fit.qty / qty_step, round(fit.qty / qty_step), abs_tol=1e-6)
    notional = fit.qty * unit_usd
    leg = ctx.leg(intent.position_side)
    if is_reducing(intent):
        assert leg is None or fit.qty <= abs(leg.qty)
        return
    if fit.qty == 0.0:  # the executor vetoes qty_below_lot_step
        return
    assert notional >= limits.min_notional_usd(intent.symbol)
    assert not check_order(intent, notional, ctx, limits).veto
    assert notional <= config.strategy.sizing.buckets[ctx.tier_name].cap_usd


def test_the_floor_rounds_up_to_the_next_lot_when_the_caps_allow() -> None:
    intent, ctx = make_intent(size_hint_usd=115.0), make_ctx()
    fit = fit_to_lot(intent, 115.0, unit_usd=60_000.0, qty_step=0.001, ctx=ctx, config=BUNDLE)
    assert fit.reason is None and fit.qty == 0.002 and fit.detail["up_usd"] == 120.0
    above = fit_to_lot(intent, 130.0, unit_usd=60_000.0, qty_step=0.001, ctx=ctx, config=BUNDLE)
    assert above.qty == 0.002 and above.detail == {"rounding": "down"}


def test_rounding_up_past_the_sizing_bucket_cap_is_a_veto() -> None:
    buckets = {**BUNDLE.strategy.sizing.buckets}
    buckets["CORE"] = type(buckets["CORE"])(floor_usd=100.0, cap_usd=110.0)
    sizing = type(BUNDLE.strategy.sizing)(base_nav_pct=BUNDLE.strategy.sizing.base_nav_pct, buckets=buckets)
    config = msgspec.structs.replace(BUNDLE, strategy=msgspec.structs.replace(BUNDLE.strategy, sizing=sizing))
    fit = fit_to_lot(make_intent(), 110.0, unit_usd=60_000.0, qty_step=0.001, ctx=make_ctx(), config=config)
    assert fit.reason is not None and fit.detail["blocked_by"] == ["sizing_bucket_cap"]


@PROPERTY
@given(limits=limits_st(), unit_usd=st.floats(0.5, 1e5), qty_step=st.sampled_from([0.001, 0.01, 0.1, 1.0]),
       symbol=st.sampled_from(sorted(BUNDLE.strategy.universe)))
def test_the_start_up_lot_check_warns_exactly_when_no_grid_order_fits_between_floor_and_caps(
        limits: RiskLimits, unit_usd: float, qty_step: float, symbol: str) -> None:
    config = bundle_for(limits)
    cap_usd = min(limits.max_order_notional_usd,
                  config.strategy.sizing.buckets[config.strategy.universe[symbol].tier].cap_usd)
    floor_usd = limits.min_notional_usd(symbol)
    lots = math.ceil(floor_usd / unit_usd / qty_step - 1e-9)
    fits = lots * qty_step * unit_usd <= cap_usd
    message = unreachable_floor(symbol, unit_usd=unit_usd, qty_step=qty_step, config=config)
    assert (message is None) == fits
    if message is not None:
        assert message.startswith(f"{symbol}: ") and "every opening intent will be vetoed" in message


def test_the_start_up_lot_check_names_the_cap_that_leaves_no_room() -> None:
    limits = msgspec.structs.replace(BUNDLE.risk, max_order_notional_usd=110.0)
    config = bundle_for(limits)
    message = unreachable_floor("BTCUSDT", unit_usd=60_000.0, qty_step=0.001, config=config)
    assert message is not None
    assert "is 120 USD, over risk_limits.max_order_notional_usd 110 USD" in message
    assert unreachable_floor("BTCUSDT", unit_usd=50_000.0, qty_step=0.001, config=config) is None


def test_the_start_up_sizing_check_blames_the_positions_held_when_they_fill_the_caps() -> None:
    """A restart (after a kill) with positions at their caps warned "every opening intent will be vetoed; raise
    executor.json starting_wallet_usd or that limit": advice to raise a risk limit, when reducing them is what frees
    the room. The account's own size is still named when it is the cause."""
    full = make_ctx((leg(gross_usd=1e9),))
    message = opening_unsizable("BTCUSDT", full, BUNDLE)
    assert message is not None and message.startswith("BTCUSDT: with the positions held (1e+09 USD of BTCUSDT, 1e+09 "
                                                      "USD gross) the largest opening order ")
    assert "opening intents are vetoed until positions are reduced (with none held, up to " in message
    assert "starting_wallet_usd" not in message
    assert opening_unsizable("BTCUSDT", make_ctx(), BUNDLE) is None
    tiny = make_ctx((leg(gross_usd=1e9),), nav_usd=1.0, equity_usd=1.0)
    assert "raise executor.json starting_wallet_usd or that limit" in (opening_unsizable("BTCUSDT", tiny, BUNDLE) or "")


def _usdm(notional: float | None, rejected_as: str = "-4164") -> VenueMinimum:
    return VenueMinimum(venue="binanceusdm", market="BTC/USDT:USDT", quote="USDT", notional=notional,
                        rejected_as=rejected_as)


def _floors(default_usd: float, **per_symbol_usd: float) -> RiskLimits:
    return msgspec.structs.replace(BUNDLE.risk, min_notional=msgspec.structs.replace(
        BUNDLE.risk.min_notional, default_usd=default_usd, per_symbol_usd=per_symbol_usd))


def test_a_floor_under_the_venues_minimum_names_its_own_key_and_the_value_needed() -> None:
    config = bundle_for(_floors(5.0, BTCUSDT=20.0))
    assert floor_under_venue("BTCUSDT", _usdm(100.0), config) == (
        "risk_limits.json min_notional.per_symbol_usd.BTCUSDT is 20 USD, under binanceusdm's minimum notional 100 USDT "
        "for BTC/USDT:USDT: set it to at least 100 (opening orders under it are rejected by the venue, -4164)")
    # at or above the venue's minimum: nothing to say (the floor is the operator's, above is stricter)
    assert floor_under_venue("BTCUSDT", _usdm(20.0), config) is None
    assert floor_under_venue("BTCUSDT", _usdm(5.0), config) is None


def test_a_default_floor_under_the_venues_minimum_asks_for_the_symbols_own_entry() -> None:
    """Raising ``default_usd`` would raise every other symbol's floor: the fix named is an entry for the symbol."""
    config = bundle_for(_floors(5.0))
    assert floor_under_venue("BTCUSDT", _usdm(100.0), config) == (
        "risk_limits.json min_notional.default_usd is 5 USD for BTCUSDT, under binanceusdm's minimum notional 100 USDT "
        "for BTC/USDT:USDT: add min_notional.per_symbol_usd.BTCUSDT of at least 100 (or raise default_usd) (opening "
        "orders under it are rejected by the venue, -4164)")
    assert floor_under_venue("BTCUSDT", _usdm(5.0), config) is None
    # the symbol's own entry wins over the default, both ways
    assert floor_under_venue("BTCUSDT", _usdm(100.0), bundle_for(_floors(500.0, BTCUSDT=100.0))) is None
    message = floor_under_venue("BTCUSDT", _usdm(100.0), bundle_for(_floors(500.0, BTCUSDT=99.5)))
    assert message is not None
    assert message.startswith("risk_limits.json min_notional.per_symbol_usd.BTCUSDT is 99.5 USD")


def test_a_venue_without_a_minimum_or_an_unknown_reject_code_is_handled() -> None:
    """COIN-M publishes no minimum notional (ccxt's ``limits.cost.min`` is None): there is nothing to compare with.
    A venue whose reject code for it is not mapped is named without one."""
    config = bundle_for(_floors(5.0, BTCUSDT=1.0))
    assert floor_under_venue("BTCUSDT", _usdm(None), config) is None
    message = floor_under_venue("BTCUSDT", _usdm(5.0, rejected_as=""), config)
    assert message is not None and message.endswith("set it to at least 5 (opening orders under it are rejected by "
                                                    "the venue)")
    message = floor_under_venue("BTCUSDT", _usdm(1234564.5), config)  # every digit of "at least": none rounded down
    assert message is not None and "minimum notional 1234564.5 USDT" in message
    assert "set it to at least 1234564.5 (" in message
