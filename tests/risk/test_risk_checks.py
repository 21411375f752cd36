"""Every check and reason code of ``check_order``, on both sides of its boundary, plus bad inputs."""

from __future__ import annotations

import dataclasses

import pytest

from router_tuner.risk import check_order
from router_tuner.risk.caps import SYMBOL_LEVERAGE_CAP
from router_tuner.risk.checks import CHECKS
from tests.risk.test_risk_support import LIMITS, NOW_NS, leg, limits_with, make_ctx, make_intent


def codes(intent, gross_usd, ctx, limits=LIMITS) -> list[str]:
    return [reason.code for reason in check_order(intent, gross_usd, ctx, limits).reasons]


def only(intent, gross_usd, ctx, limits=LIMITS):
    [reason] = check_order(intent, gross_usd, ctx, limits).reasons
    return reason


BUY = make_intent()
REDUCE_SELL = make_intent(side="sell", reduce_only=True)
LONG_10K = (leg(qty=0.1, gross_usd=10_000.0),)


def test_a_plain_order_passes_with_full_detail() -> None:
    decision = check_order(BUY, 1_000.0, make_ctx(), LIMITS)
    assert not decision.veto and decision.reasons == ()
    assert decision.detail["checks_run"] == len(CHECKS) and decision.detail["open_positions_count"] == 0
    assert decision.detail["warnings"] == []


# --- universe and labels ------------------------------------------------------------------------

def test_symbol_not_in_universe() -> None:
    reason = only(BUY, 1_000.0, make_ctx(tier_name=None))
    assert (reason.code, reason.observed) == ("symbol_not_in_universe", "BTCUSDT")


def test_tier_without_cap() -> None:
    reason = only(make_intent(tier="ALT"), 1_000.0, make_ctx(tier_name="ALT"))
    assert reason.code == "tier_without_cap" and reason.observed == "ALT" and reason.threshold == "CORE,SPOT"


def test_intent_tier_mismatch() -> None:
    reason = only(make_intent(tier="SPOT"), 1_000.0, make_ctx())
    assert (reason.code, reason.threshold, reason.observed) == ("intent_tier_mismatch", "CORE", "SPOT")


def test_restricted_symbol_blocks_opening_not_closing() -> None:
    limits = limits_with(restricted_symbols=("BTCUSDT",))
    assert only(BUY, 1_000.0, make_ctx(), limits).code == "restricted_symbol"
    assert codes(REDUCE_SELL, 1_000.0, make_ctx(LONG_10K), limits) == []


# --- NAV freshness ------------------------------------------------------------------------------

def test_nav_age_exactly_at_max_passes_and_beyond_fails_closed() -> None:
    max_age = LIMITS.nav.max_age_s
    assert codes(BUY, 1_000.0, make_ctx(nav_age_s=max_age)) == []
    reason = only(BUY, 1_000.0, make_ctx(nav_age_s=max_age + 0.001))
    assert (reason.code, reason.threshold, reason.observed) == ("nav_stale", max_age, max_age + 0.001)


def test_stale_nav_only_warns_when_not_fail_closed() -> None:
    limits = limits_with(nav__fail_closed_when_stale=False)
    decision = check_order(BUY, 1_000.0, make_ctx(nav_age_s=1e6), limits)
    assert not decision.veto and decision.detail["warnings"] == ["nav_stale"]


def test_stale_nav_never_blocks_a_reduce_only_close() -> None:
    assert codes(REDUCE_SELL, 10_000.0, make_ctx(LONG_10K, nav_age_s=1e6)) == []


# --- circuit breakers, drawdown, cooldown, trade rate --------------------------------------------

@pytest.mark.parametrize(("field", "code", "limit"), [
    ("daily_realized_loss_usd", "daily_loss_circuit_breaker", LIMITS.circuit_breakers.daily_loss_pct),
    ("weekly_realized_loss_usd", "weekly_loss_circuit_breaker", LIMITS.circuit_breakers.weekly_loss_pct),
    ("symbol_drawdown_usd", "symbol_drawdown_cap", LIMITS.symbol_caps.max_drawdown_pct),
])
def test_loss_limits_at_the_limit_pass_and_beyond_veto(field: str, code: str, limit: float) -> None:
    at_limit_usd = limit * 100_000.0
    assert codes(BUY, 1_000.0, make_ctx(**{field: at_limit_usd})) == []
    reason = only(BUY, 1_000.0, make_ctx(**{field: at_limit_usd + 1.0}))
    assert reason.code == code and reason.threshold == limit
    assert reason.observed == pytest.approx((at_limit_usd + 1.0) / 100_000.0)
    assert codes(REDUCE_SELL, 1_000.0, make_ctx(LONG_10K, **{field: 1e9})) == []


def test_breaker_with_non_positive_nav_is_infinitely_over() -> None:
    reasons = check_order(BUY, 1_000.0, make_ctx(nav_usd=0.0, daily_realized_loss_usd=1.0), LIMITS).reasons
    assert any(r.code == "daily_loss_circuit_breaker" and r.observed == "inf" for r in reasons)


def test_cooldown_ends_exactly_at_after_stop_s() -> None:
    after_ns = int(LIMITS.cooldowns.after_stop_s * 1_000_000_000)
    assert codes(BUY, 1_000.0, make_ctx(last_stop_ns=NOW_NS - after_ns)) == []
    reason = only(BUY, 1_000.0, make_ctx(last_stop_ns=NOW_NS - after_ns + 1))
    assert reason.code == "cooldown_after_stop" and reason.threshold == LIMITS.cooldowns.after_stop_s
    assert reason.observed < reason.threshold
    assert codes(REDUCE_SELL, 1_000.0, make_ctx(LONG_10K, last_stop_ns=NOW_NS)) == []


def test_trades_per_hour_counts_this_order() -> None:
    cap = LIMITS.max_trades_per_symbol_per_hour
    assert codes(BUY, 1_000.0, make_ctx(trades_last_hour=cap - 1)) == []
    reason = only(BUY, 1_000.0, make_ctx(trades_last_hour=cap))
    assert (reason.code, reason.threshold, reason.observed) == ("trades_per_hour_cap", cap, cap + 1)


# --- concurrency and min notional ---------------------------------------------------------------

def _others(n: int) -> tuple:
    return tuple(leg(symbol=f"S{i}", gross_usd=100.0) for i in range(n))


def test_concurrency_at_the_cap_passes_and_one_more_vetoes() -> None:
    cap = LIMITS.max_concurrent_positions
    assert codes(BUY, 1_000.0, make_ctx(_others(cap - 1))) == []
    reason = only(BUY, 1_000.0, make_ctx(_others(cap)))
    assert (reason.code, reason.threshold, reason.observed) == ("max_concurrent_positions", cap, cap + 1)


def test_adding_to_an_open_leg_does_not_count_as_a_new_position() -> None:
    legs = (*_others(LIMITS.max_concurrent_positions - 1), leg(gross_usd=1_000.0))
    assert codes(BUY, 1_000.0, make_ctx(legs)) == []


def test_hedge_mode_opposite_leg_is_a_new_position() -> None:
    cap = LIMITS.max_concurrent_positions
    legs = (*_others(cap - 1), leg(position_side="LONG", gross_usd=1_000.0))
    short = make_intent(side="sell", position_side="SHORT")
    assert only(short, 1_000.0, make_ctx(legs)).code == "max_concurrent_positions"


def test_min_notional_per_symbol_override_and_default() -> None:
    floor = LIMITS.min_notional.per_symbol_usd["BTCUSDT"]
    assert codes(BUY, floor, make_ctx()) == []
    reason = only(BUY, floor - 0.01, make_ctx())
    assert (reason.code, reason.threshold, reason.observed) == ("below_min_notional", floor, floor - 0.01)
    assert reason.detail.startswith("risk_limits.min_notional.per_symbol_usd.BTCUSDT")
    perp = make_intent(symbol="BTCUSD_PERP")
    default = LIMITS.min_notional.default_usd
    assert codes(perp, default, make_ctx(symbol="BTCUSD_PERP")) == []
    assert only(perp, default - 0.01, make_ctx(symbol="BTCUSD_PERP")).threshold == default


def test_reduce_only_is_exempt_from_min_notional() -> None:
    assert codes(REDUCE_SELL, 1.0, make_ctx(LONG_10K)) == []


# --- size caps ----------------------------------------------------------------------------------

def test_max_order_notional() -> None:
    cap = LIMITS.max_order_notional_usd
    big = make_ctx(nav_usd=10_000_000.0, equity_usd=10_000_000.0)
    assert codes(BUY, cap, big) == []
    reason = only(BUY, cap + 0.01, big)
    assert (reason.code, reason.threshold, reason.observed) == ("order_gt_max_notional", cap, cap + 0.01)


def test_trade_equity_cap_names_the_configured_cap() -> None:
    ctx = make_ctx(nav_usd=1_000_000.0, equity_usd=100_000.0)
    assert codes(BUY, 15_000.0, ctx) == []
    reason = only(BUY, 18_000.0, ctx)
    assert (reason.code, reason.threshold, reason.observed) == ("trade_gt_equity_cap", 0.15, 0.18)
    assert reason.detail.startswith("risk_limits.trade_equity_cap_pct")


def test_trade_nav_cap() -> None:
    ctx = make_ctx(equity_usd=1_000_000.0)
    assert codes(BUY, 10_000.0, ctx) == []
    reason = only(BUY, 10_001.0, ctx)
    assert (reason.code, reason.threshold, reason.observed) == ("trade_gt_nav_cap", 0.10, 0.10001)


def test_symbol_nav_cap_on_projected_exposure() -> None:
    ctx = make_ctx((leg(gross_usd=20_000.0),))
    assert codes(BUY, 5_000.0, ctx) == []
    reason = only(BUY, 5_001.0, ctx)
    assert (reason.code, reason.threshold) == ("symbol_gt_nav_cap", 0.25)
    assert reason.observed == pytest.approx(0.25001)


def test_notional_share_cap_is_a_share_of_the_gross_budget() -> None:
    limits = limits_with(symbol_caps__notional_share_cap=0.1)
    ctx = make_ctx((leg(gross_usd=15_000.0),))
    assert codes(BUY, 5_000.0, ctx, limits) == []  # 20k of a 2.0 x 100k budget = 0.10
    reason = only(BUY, 5_001.0, ctx, limits)
    assert (reason.code, reason.threshold) == ("symbol_gt_notional_share_cap", 0.1)
    assert reason.observed == pytest.approx(20_001.0 / 200_000.0)


def test_tier_cap() -> None:
    spot = make_intent(symbol="BTCUSDT_SPOT", tier="SPOT")
    ctx = make_ctx(symbol="BTCUSDT_SPOT", tier_name="SPOT", current_tier_gross_notional=25_000.0)
    assert codes(spot, 5_000.0, ctx) == []
    reason = only(spot, 5_001.0, ctx)
    assert (reason.code, reason.threshold) == ("tier_gt_nav_cap", 0.30)
    assert reason.detail.startswith("risk_limits.tier_caps.SPOT.max_nav_pct")


def test_gross_exposure_cap() -> None:
    ctx = make_ctx(gross_exposure_usd=195_000.0, current_tier_gross_notional=0.0)
    assert codes(BUY, 5_000.0, ctx) == []
    reason = only(BUY, 5_001.0, ctx)
    assert (reason.code, reason.threshold) == ("gross_gt_nav_cap", LIMITS.max_gross_exposure_nav)


def test_global_leverage_cap() -> None:
    limits = limits_with(max_gross_exposure_nav=5.0, leverage__max_global=2.0)
    ctx = make_ctx(gross_exposure_usd=195_000.0, current_tier_gross_notional=0.0)
    assert codes(BUY, 5_000.0, ctx, limits) == []
    reason = only(BUY, 5_001.0, ctx, limits)
    assert (reason.code, reason.threshold) == ("leverage_gt_global_cap", 2.0)
    assert reason.observed == pytest.approx(2.00001)


def test_symbol_leverage_cap_direct() -> None:
    """Dominated by symbol_caps.max_nav_pct (<= 1) in today's ranges, so exercised on its own."""
    eth = make_intent(symbol="ETHUSDT")
    ctx = make_ctx((leg(symbol="ETHUSDT", gross_usd=150_000.0),), symbol="ETHUSDT")
    assert SYMBOL_LEVERAGE_CAP(eth, 50_000.0, ctx, LIMITS) is None
    reason = SYMBOL_LEVERAGE_CAP(eth, 50_001.0, ctx, LIMITS)
    assert reason is not None and (reason.code, reason.threshold) == ("symbol_leverage_gt_cap", 2.0)
    assert SYMBOL_LEVERAGE_CAP(BUY, 1e9, make_ctx(), LIMITS) is None  # no override for BTCUSDT
    assert "symbol_leverage_gt_cap" in codes(eth, 50_001.0, ctx)


def test_non_positive_nav_vetoes_every_growing_order() -> None:
    found = set(codes(BUY, 1_000.0, make_ctx(nav_usd=-5.0, equity_usd=-5.0)))
    assert {"trade_gt_equity_cap", "trade_gt_nav_cap", "symbol_gt_nav_cap", "gross_gt_nav_cap"} <= found


def test_every_reason_is_collected() -> None:
    ctx = make_ctx(_others(LIMITS.max_concurrent_positions), nav_age_s=1e6, trades_last_hour=1_000)
    assert codes(BUY, 50.0, ctx) == ["nav_stale", "trades_per_hour_cap", "max_concurrent_positions",
                                     "below_min_notional"]


# --- reducing intents ---------------------------------------------------------------------------

def test_reduce_only_up_to_the_position_passes_beyond_is_vetoed_not_clamped() -> None:
    ctx = make_ctx(LONG_10K)
    assert codes(REDUCE_SELL, 10_000.0, ctx) == []
    reason = only(REDUCE_SELL, 10_000.01, ctx)
    assert (reason.code, reason.threshold, reason.observed) == ("reduce_only_exceeds_position", 10_000.0,
                                                                10_000.01)


def test_reduce_only_on_the_wrong_side_or_flat_has_nothing_to_reduce() -> None:
    assert only(make_intent(reduce_only=True), 100.0, make_ctx(LONG_10K)).threshold == 0.0
    assert only(REDUCE_SELL, 100.0, make_ctx()).code == "reduce_only_exceeds_position"


def test_reduce_only_passes_exposure_caps_even_when_over_them() -> None:
    ctx = make_ctx(LONG_10K, nav_usd=1_000.0, equity_usd=1_000.0, gross_exposure_usd=1e7)
    assert codes(REDUCE_SELL, 10_000.0, ctx) == []


@pytest.mark.parametrize(("position_side", "side", "qty"), [("LONG", "sell", 0.1), ("SHORT", "buy", -0.1)])
def test_hedge_mode_closing_side_is_reducing(position_side: str, side: str, qty: float) -> None:
    ctx = make_ctx((leg(qty=qty, gross_usd=4_000.0, position_side=position_side),))
    intent = make_intent(side=side, position_side=position_side)
    assert codes(intent, 4_000.0, ctx) == []
    assert only(intent, 4_000.5, ctx).code == "reduce_only_exceeds_position"


@pytest.mark.parametrize("quote_symbol", ["BTCUSDT", "BTCUSDC", "BTCUSD_PERP"])
def test_close_position_works_for_every_quote(quote_symbol: str) -> None:
    ctx = make_ctx((leg(symbol=quote_symbol, qty=-0.1, gross_usd=7_000.0),), symbol=quote_symbol)
    close = make_intent(symbol=quote_symbol, side="buy", close_position=True, size_hint_usd=0.0)
    assert codes(close, 7_000.0, ctx) == []


def test_one_way_opposite_order_may_shrink_and_reopen_without_exposure_caps() -> None:
    at_cap = make_ctx((leg(gross_usd=25_000.0),))
    sell = make_intent(side="sell")
    assert codes(sell, 10_000.0, at_cap) == []  # 25k long -> 15k long
    assert only(sell, 50_000.0, make_ctx((leg(gross_usd=25_000.0),), equity_usd=1e6,
                                         nav_usd=1e6)).code in {"order_gt_max_notional"}
    reason = only(make_intent(side="buy"), 1.0 + LIMITS.min_notional_usd("BTCUSDT"), at_cap)
    assert reason.code == "symbol_gt_nav_cap"


# --- bad inputs ---------------------------------------------------------------------------------

def test_context_for_another_symbol_is_refused() -> None:
    with pytest.raises(ValueError, match="built for ETHUSDT"):
        check_order(BUY, 1_000.0, make_ctx(symbol="ETHUSDT"), LIMITS)


@pytest.mark.parametrize("gross_usd", [0.0, -1.0, float("nan"), float("inf")])
def test_gross_must_be_positive_and_finite(gross_usd: float) -> None:
    with pytest.raises(ValueError, match="gross_usd"):
        check_order(BUY, gross_usd, make_ctx(), LIMITS)


def test_position_mode_mismatch_is_refused() -> None:
    with pytest.raises(ValueError, match="position mode"):
        check_order(make_intent(position_side="LONG"), 1_000.0, make_ctx(LONG_10K), LIMITS)


def test_check_order_needs_a_context_and_limits() -> None:
    ctx_as_dict = dataclasses.asdict(make_ctx())
    with pytest.raises(TypeError, match="RiskContext"):
        check_order(BUY, 1_000.0, ctx_as_dict, LIMITS)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="RiskLimits"):
        check_order(BUY, 1_000.0, make_ctx(), {"max_concurrent_positions": 4})  # type: ignore[arg-type]
