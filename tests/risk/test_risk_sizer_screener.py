"""The sizer's outcomes and bindings, and each stage of the screener."""

from __future__ import annotations

import msgspec
import pytest

from router_tuner.risk import MarketView, check_order, suggest_gross_usd, would_emit
from router_tuner.router.venue import TopOfBook
from tests.risk.test_risk_support import BUNDLE, LIMITS, NOW_NS, leg, limits_with, make_ctx, make_intent

SIZING = BUNDLE.strategy.sizing


def bundle_with(*, risk=None, gate=None, require=None):
    strategy = BUNDLE.strategy
    if gate is not None or require is not None:
        screener = msgspec.structs.replace(
            strategy.screener,
            orderbook_imbalance_gate=strategy.screener.orderbook_imbalance_gate if gate is None else gate,
            require_imbalance_alignment=(strategy.screener.require_imbalance_alignment if require is None
                                         else require))
        strategy = msgspec.structs.replace(strategy, screener=screener)
    return msgspec.structs.replace(BUNDLE, strategy=strategy, risk=risk or BUNDLE.risk)


# --- sizer --------------------------------------------------------------------------------------

def test_size_hint_binds_when_smallest() -> None:
    size = suggest_gross_usd(make_intent(size_hint_usd=700.0), make_ctx(), BUNDLE)
    assert (size.outcome, size.gross_usd, size.binding) == ("sized", 700.0, "size_hint")


def test_base_nav_pct_and_bucket_cap() -> None:
    size = suggest_gross_usd(make_intent(size_hint_usd=1e9), make_ctx(), BUNDLE)
    assert (size.gross_usd, size.binding) == (SIZING.base_nav_pct * 100_000.0, "base_nav_pct")
    rich = make_ctx(nav_usd=10_000_000.0, equity_usd=10_000_000.0)
    size = suggest_gross_usd(make_intent(size_hint_usd=1e9), rich, BUNDLE)
    assert (size.gross_usd, size.binding) == (SIZING.buckets["CORE"].cap_usd, "bucket_cap")


def test_bucket_floor_lifts_a_small_nav_share() -> None:
    ctx = make_ctx(nav_usd=2_000.0, equity_usd=2_000.0)
    size = suggest_gross_usd(make_intent(size_hint_usd=1e9), ctx, BUNDLE)
    assert size.candidates_usd["base_nav_pct"] == SIZING.buckets["CORE"].floor_usd
    assert (size.outcome, size.binding, size.gross_usd) == ("sized", "base_nav_pct", 100.0)  # 2 % of 2k = 40


def test_headroom_under_the_symbol_cap_binds() -> None:
    ctx = make_ctx((leg(gross_usd=24_500.0),))
    size = suggest_gross_usd(make_intent(size_hint_usd=1e9), ctx, BUNDLE)
    assert (size.gross_usd, size.binding) == (500.0, "symbol_gt_nav_cap")
    assert not check_order(make_intent(), size.gross_usd, ctx, LIMITS).veto


def test_too_small_for_venue_instead_of_a_doomed_order() -> None:
    ctx = make_ctx(nav_usd=900.0, equity_usd=900.0)  # 10 % of 900 = 90 < BTCUSDT floor 100
    size = suggest_gross_usd(make_intent(size_hint_usd=1e9), ctx, BUNDLE)
    assert (size.outcome, size.gross_usd) == ("too_small_for_venue", None)
    assert size.largest_allowed_usd == 90.0 and size.min_notional_usd == 100.0


def test_full_caps_and_tiny_hints_are_too_small() -> None:
    assert suggest_gross_usd(make_intent(size_hint_usd=0.0), make_ctx(), BUNDLE).outcome == "too_small_for_venue"
    full = make_ctx((leg(gross_usd=25_000.0),))
    assert suggest_gross_usd(make_intent(), full, BUNDLE).outcome == "too_small_for_venue"


def test_reducing_is_clamped_to_the_position_and_close_takes_all() -> None:
    ctx = make_ctx((leg(gross_usd=3_000.0),))
    size = suggest_gross_usd(make_intent(side="sell", reduce_only=True, size_hint_usd=5_000.0), ctx, BUNDLE)
    assert (size.outcome, size.gross_usd, size.binding) == ("sized", 3_000.0, "position")
    close = make_intent(side="sell", close_position=True, size_hint_usd=0.0)
    assert suggest_gross_usd(close, ctx, BUNDLE).gross_usd == 3_000.0
    tiny = suggest_gross_usd(make_intent(side="sell", reduce_only=True, size_hint_usd=2.0), ctx, BUNDLE)
    assert tiny.gross_usd == 2.0  # below min notional: reduce-only is exempt at the venue


def test_nothing_to_reduce_and_not_in_universe() -> None:
    flat = suggest_gross_usd(make_intent(side="sell", reduce_only=True), make_ctx(), BUNDLE)
    assert (flat.outcome, flat.gross_usd) == ("nothing_to_reduce", None)
    assert suggest_gross_usd(make_intent(), make_ctx(tier_name=None), BUNDLE).outcome == "not_in_universe"


@pytest.mark.parametrize("hint", [float("nan"), -1.0, float("inf")])
def test_sizer_refuses_bad_hints(hint: float) -> None:
    with pytest.raises(ValueError, match="size_hint_usd"):
        suggest_gross_usd(make_intent(size_hint_usd=hint), make_ctx(), BUNDLE)
    with pytest.raises(ValueError, match="built for"):
        suggest_gross_usd(make_intent(symbol="ETHUSDT"), make_ctx(), BUNDLE)


# --- screener -----------------------------------------------------------------------------------

def market(bid_qty: float = 6.0, ask_qty: float = 4.0, *, symbol: str = "BTCUSDT", listed: bool = True):
    return MarketView(book=TopOfBook(symbol=symbol, bid=100.0, bid_qty=bid_qty, ask=100.1, ask_qty=ask_qty,
                                     ts_ns=NOW_NS), listed=listed)


def test_emit_with_sized_gross_and_structured_detail() -> None:
    decision = would_emit(make_intent(), market(), make_ctx(), BUNDLE)
    assert decision.emit and decision.stage == "emit" and decision.gross_usd == 1_000.0
    assert decision.detail["book_lean"] == pytest.approx(0.2)
    assert decision.detail["sizing"]["binding"] == "size_hint"
    assert decision.detail["check_order"]["gross_usd"] == 1_000.0


def test_listing_stage() -> None:
    outside = would_emit(make_intent(symbol="DOGEUSDT"), market(), make_ctx(symbol="DOGEUSDT", tier_name=None),
                         BUNDLE)
    assert (outside.stage, outside.reasons[0].code) == ("listing", "symbol_not_in_universe")
    wrong = would_emit(make_intent(), market(symbol="ETHUSDT", listed=False), make_ctx(), BUNDLE)
    assert [r.code for r in wrong.reasons] == ["book_symbol_mismatch", "symbol_not_listed"]
    spot = would_emit(make_intent(symbol="BTCUSDT_SPOT", tier="SPOT"), market(symbol="BTCUSDT"),
                      make_ctx(symbol="BTCUSDT_SPOT", tier_name="SPOT"), BUNDLE)
    assert spot.emit  # the spot pair's venue symbol is BTCUSDT


def test_imbalance_gate_both_sides_and_for_sells() -> None:
    against = would_emit(make_intent(), market(4.0, 6.0), make_ctx(), BUNDLE)
    reason = against.reasons[0]
    assert (against.stage, reason.code, reason.threshold) == ("imbalance", "orderbook_imbalance_below_gate", 0.2)
    assert reason.observed == pytest.approx(-0.2)
    assert would_emit(make_intent(side="sell"), market(4.0, 6.0), make_ctx(), BUNDLE).emit
    assert not would_emit(make_intent(), market(5.9, 4.1), make_ctx(), BUNDLE).emit


def test_imbalance_gate_off_empty_book_and_closes() -> None:
    assert would_emit(make_intent(), market(1.0, 9.0), make_ctx(), bundle_with(require=False)).emit
    empty = would_emit(make_intent(), market(0.0, 0.0), make_ctx(), BUNDLE)
    assert empty.reasons[0].code == "orderbook_empty"
    close = make_intent(side="sell", reduce_only=True)
    assert would_emit(close, market(9.0, 1.0), make_ctx((leg(gross_usd=500.0),)), BUNDLE).emit


def test_capacity_stage_concurrency_and_tier() -> None:
    others = tuple(leg(symbol=f"S{i}", gross_usd=10.0) for i in range(LIMITS.max_concurrent_positions))
    full = would_emit(make_intent(), market(), make_ctx(others), BUNDLE)
    assert (full.stage, full.reasons[0].code) == ("capacity", "max_concurrent_positions")
    tier_full = make_ctx(current_tier_gross_notional=80_000.0)
    decision = would_emit(make_intent(), market(), tier_full, BUNDLE)
    assert (decision.stage, decision.reasons[0].code) == ("capacity", "tier_gt_nav_cap")


def test_sizing_and_check_order_stages() -> None:
    small = would_emit(make_intent(), market(), make_ctx(nav_usd=900.0, equity_usd=900.0), BUNDLE)
    assert (small.stage, small.reasons[0].code, small.reasons[0].threshold) == ("sizing", "too_small_for_venue",
                                                                                100.0)
    stale = would_emit(make_intent(), market(), make_ctx(nav_age_s=1e6), BUNDLE)
    assert (stale.stage, stale.gross_usd, stale.reasons[0].code) == ("check_order", 1_000.0, "nav_stale")
    restricted = bundle_with(risk=limits_with(restricted_symbols=("BTCUSDT",)))
    assert would_emit(make_intent(), market(), make_ctx(), restricted).reasons[0].code == "restricted_symbol"


@pytest.mark.parametrize("hint", [-500.0, float("nan"), float("inf"), float("-inf")])
def test_a_size_hint_the_sizer_cannot_take_is_an_intent_veto(hint: float) -> None:
    decision = would_emit(make_intent(size_hint_usd=hint), market(), make_ctx(), BUNDLE)
    assert (decision.emit, decision.stage, [r.code for r in decision.reasons]) == (
        False, "intent", ["invalid_size_hint"])


@pytest.mark.parametrize(("held", "asked"), [("LONG", "BOTH"), ("BOTH", "LONG"), ("SHORT", "BOTH")])
def test_a_position_side_of_the_other_position_mode_is_an_intent_veto(held: str, asked: str) -> None:
    ctx = make_ctx((leg(position_side=held),))
    decision = would_emit(make_intent(position_side=asked), market(), ctx, BUNDLE)
    assert (decision.emit, decision.stage, [r.code for r in decision.reasons]) == (
        False, "intent", ["position_mode_mismatch"])
    assert decision.reasons[0].observed == asked


@pytest.mark.parametrize(("ts_offset_s", "limit_s", "code"), [
    (-61.0, 60.0, "intent_stale"), (61.0, 60.0, "intent_from_future"), (-59.0, 60.0, None), (59.0, 60.0, None),
    (-30 * 86_400.0, None, None),  # null: a month-old intent is routed (replays on a clock of their own)
])
def test_an_intent_further_from_the_executors_clock_than_the_age_limit_is_an_intent_veto(
        ts_offset_s: float, limit_s: float | None, code: str | None) -> None:
    """A month-old intents file pointed at a fresh journal was routed line by line: with ``intent_max_age_s`` an
    intent decided longer ago than the limit, or as far ahead of the executor's clock, is vetoed, opening or not."""
    bundle = bundle_with(risk=limits_with(intent_max_age_s=limit_s))
    for intent, ctx in ((make_intent(ts_ns=NOW_NS + int(ts_offset_s * 1e9)), make_ctx()),
                        (make_intent(ts_ns=NOW_NS + int(ts_offset_s * 1e9), reduce_only=True, side="sell"),
                         make_ctx((leg(gross_usd=500.0),)))):
        decision = would_emit(intent, market(), ctx, bundle)
        if code is None:
            assert decision.emit, decision.reasons
            continue
        assert (decision.emit, decision.stage, [r.code for r in decision.reasons]) == (False, "intent", [code])
        assert (decision.reasons[0].threshold, decision.reasons[0].observed) == (limit_s, pytest.approx(61.0))
