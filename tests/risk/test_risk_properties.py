"""Properties of the risk core over random states, intents and limits (hypothesis, 2,000 examples each).

- parity: the sizer's suggestion is never vetoed for a size cap by ``check_order`` on the same context;
- every veto names the configured threshold (read back from the limits at the path in its detail) and
  an observed value that breaks it;
- random streams of intents and fills, each passed through sizer and ``check_order`` and applied to a
  ``PortfolioState``, never exceed concurrency, tier, symbol, gross or leverage caps;
- screener and executor path, each building its context from the same state, reach the same decision.
"""

from __future__ import annotations

import math
import random
from typing import Any

import msgspec
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from router_tuner.config import ConfigBundle
from router_tuner.config.models import RiskLimits
from router_tuner.risk import (
    SIZE_CAP_CODES,
    SIZE_CAPS,
    MarketView,
    PortfolioState,
    RiskContext,
    check_order,
    suggest_gross_usd,
    would_emit,
)
from router_tuner.risk.exposure import is_reducing, reducible_usd
from router_tuner.router.codec import from_json, to_json
from router_tuner.router.events import SCHEMA_VERSION, Fill, Intent, VetoEvent
from router_tuner.router.venue import TopOfBook
from tests.risk.test_risk_support import BUNDLE, NOW_NS, leg, make_ctx, make_intent, replace_path, resolve_path

PROPERTY = settings(max_examples=2_000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
S = 1_000_000_000
UNIVERSE = BUNDLE.strategy.universe
SYMBOLS = sorted(UNIVERSE)
FLOOR_CODES = {"below_min_notional", "cooldown_after_stop"}
LABEL_CODES = {"symbol_not_in_universe", "tier_without_cap", "intent_tier_mismatch", "restricted_symbol"}

@st.composite
def limits_st(draw: st.DrawFn) -> RiskLimits:
    """Default limits with the caps moved at random (from a drawn seed; the failure prints them)."""
    rng = random.Random(draw(st.integers(0, 2**32)))

    def fraction() -> float:
        return rng.choice([rng.uniform(0.01, 1.0), rng.choice([0.05, 0.1, 0.15, 0.25, 1.0])])

    changes: dict[str, Any] = {
        "trade_equity_cap_pct": fraction(), "max_trade_nav_pct": fraction(),
        "symbol_caps.max_nav_pct": fraction(), "symbol_caps.notional_share_cap": fraction(),
        "tier_caps.CORE.max_nav_pct": fraction(), "tier_caps.SPOT.max_nav_pct": fraction(),
        "max_concurrent_positions": rng.randint(1, 6),
        "max_gross_exposure_nav": rng.uniform(0.1, 5.0),
        "leverage.max_global": rng.uniform(1.0, 5.0),
        "max_order_notional_usd": rng.uniform(50.0, 50_000.0),
        "restricted_symbols": tuple(rng.sample(SYMBOLS, rng.randint(0, 2))),
    }
    limits = BUNDLE.risk
    for path, value in changes.items():
        limits = replace_path(limits, path, value)
    return limits


def bundle_for(limits: RiskLimits) -> ConfigBundle:
    return msgspec.structs.replace(BUNDLE, risk=limits)


@st.composite
def scene_st(draw: st.DrawFn) -> tuple[Intent, RiskContext]:
    """A random context on a random symbol, and an intent consistent with its position mode.

    The book of other legs and the loss figures come from a drawn seed (cheap); the intent's fields and
    NAV are drawn directly so failures shrink to readable values.
    """
    rng = random.Random(draw(st.integers(0, 2**32)))
    symbol = draw(st.sampled_from([*SYMBOLS, "DOGEUSDT"]))
    hedge = draw(st.booleans())
    nav = draw(st.floats(1_000.0, 500_000.0) | st.floats(-1_000.0, 1_000.0))
    legs = []
    for other in rng.sample(SYMBOLS, rng.randint(0, 5)):
        sides = rng.choice([("LONG",), ("SHORT",), ("LONG", "SHORT")]) if hedge else ("BOTH",)
        for side in sides:
            sign = {"LONG": 1.0, "SHORT": -1.0}.get(side, rng.choice([1.0, -1.0]))
            gross_usd = rng.choice([rng.uniform(0.0, 0.3), rng.uniform(0.0, 0.02)]) * abs(nav) + 1.0
            legs.append(leg(symbol=other, qty=sign, gross_usd=gross_usd, position_side=side))
    entry = UNIVERSE.get(symbol)
    tier = None if entry is None else entry.tier
    ctx = make_ctx(
        tuple(legs), symbol=symbol, tier_name=tier, nav_usd=nav,
        equity_usd=nav * rng.uniform(0.5, 1.5), nav_age_s=rng.choice([1.0, rng.uniform(0.0, 60.0)]),
        current_tier_gross_notional=sum(p.gross_notional_usd for p in legs
                                        if tier is not None and UNIVERSE[p.symbol].tier == tier),
        daily_realized_loss_usd=rng.choice([0.0, 0.0, rng.uniform(0.0, 5_000.0)]),
        weekly_realized_loss_usd=rng.choice([0.0, 0.0, rng.uniform(0.0, 10_000.0)]),
        symbol_drawdown_usd=rng.choice([0.0, 0.0, rng.uniform(0.0, 6_000.0)]),
        last_stop_ns=rng.choice([None, None, rng.randint(NOW_NS - 2_000 * S, NOW_NS)]),
        trades_last_hour=rng.choice([0, rng.randint(0, 40)]))
    position_side = draw(st.sampled_from(["LONG", "SHORT"])) if hedge else "BOTH"
    reduce_only = draw(st.sampled_from([False, False, False, True]))
    side = draw(st.sampled_from(["buy", "sell"]))
    if hedge and draw(st.sampled_from([True, True, False])):  # mostly the opening side of a hedge leg
        position_side = "LONG" if side == "buy" else "SHORT"
    intent = make_intent(symbol=symbol, side=side,
                         position_side=position_side, reduce_only=reduce_only,
                         close_position=reduce_only and draw(st.booleans()),
                         tier=tier or "CORE",
                         size_hint_usd=draw(st.floats(100.0, 20_000.0) | st.floats(0.0, 100_000.0)))
    return intent, ctx


@PROPERTY
@given(scene=scene_st(), limits=limits_st())
def test_sizer_output_is_never_vetoed_for_size(scene: tuple[Intent, RiskContext], limits: RiskLimits) -> None:
    intent, ctx = scene
    size = suggest_gross_usd(intent, ctx, bundle_for(limits))
    event(f"sizer: {size.outcome}")
    if size.gross_usd is None:
        return
    decision = check_order(intent, size.gross_usd, ctx, limits)
    size_codes = {r.code for r in decision.reasons} & (SIZE_CAP_CODES | {"below_min_notional"})
    assert not size_codes, (size, decision.reasons)


def _assert_names_its_threshold(reason, intent: Intent, ctx: RiskContext, limits: RiskLimits) -> None:
    path = reason.detail.split(":")[0]
    if reason.code in LABEL_CODES:
        assert isinstance(reason.observed, str) and isinstance(reason.threshold, str)
        if reason.code == "restricted_symbol":
            assert reason.observed in limits.restricted_symbols
        return
    if path.startswith("risk_limits."):
        assert reason.threshold == resolve_path(limits, path), reason
    else:
        assert reason.code == "reduce_only_exceeds_position"
        assert reason.threshold == reducible_usd(intent, ctx)
    observed = math.inf if reason.observed == "inf" else reason.observed  # non-positive NAV/equity/budget
    if reason.code in FLOOR_CODES:
        assert observed < reason.threshold, reason
    else:
        assert observed > reason.threshold, reason


@PROPERTY
@given(scene=scene_st(), limits=limits_st(), how=st.sampled_from(["usd", "nav_share", "just_over_a_cap"]),
       amount=st.floats(0.0, 1.0), cap_index=st.integers(0, len(SIZE_CAPS) - 1))
def test_every_veto_names_a_configured_threshold_that_it_breaks(
        scene: tuple[Intent, RiskContext], limits: RiskLimits, how: str, amount: float, cap_index: int) -> None:
    intent, ctx = scene
    allowance = SIZE_CAPS[cap_index].allowance_usd(intent, ctx, limits)
    if how == "just_over_a_cap" and 0 < allowance < math.inf:
        gross_usd = math.nextafter(allowance, math.inf)  # one ulp beyond: the sharpest boundary
    elif how == "nav_share":
        gross_usd = max(amount * abs(ctx.nav_usd) * 0.5, 0.01)
    else:
        gross_usd = max(amount * 200_000.0, 0.01)
    decision = check_order(intent, gross_usd, ctx, limits)
    assert decision.veto == bool(decision.reasons)
    event(f"reasons: {len(decision.reasons)}")
    veto = VetoEvent(schema_version=SCHEMA_VERSION, intent=intent, reasons=decision.reasons,
                     context=decision.detail, ts_ns=ctx.now_ns)
    assert from_json(to_json(veto), "veto") == veto  # the journal's strict codec takes it as is
    for reason in decision.reasons:
        _assert_names_its_threshold(reason, intent, ctx, limits)


# --- streams of intents and fills ---------------------------------------------------------------
# Streams come from a drawn seed (one draw instead of dozens keeps 2,000 examples cheap); a failure
# prints the seed, which replays the stream exactly.

TRADED = ["BTCUSDT", "ETHUSDT", "BTCUSDC", "ETHUSDC", "BTCUSDT_SPOT", "ETHUSDT_SPOT"]


def random_steps(rng: random.Random, count: int) -> list[tuple[str, str, bool, float, str, float]]:
    """(symbol, side, reduce_only, usd, sized by "sizer" or "raw", filled share) per step."""
    return [(rng.choice(TRADED), rng.choice(["buy", "sell"]), rng.random() < 0.2,
             rng.choice([0.0, rng.uniform(1.0, 50_000.0), rng.uniform(1.0, 500.0)]),
             rng.choice(["sizer", "raw"]), rng.choice([1.0, rng.uniform(0.05, 1.0)])) for _ in range(count)]


def _assert_within_caps(state: PortfolioState, limits: RiskLimits) -> None:
    nav = state.nav_usd
    tol = 1e-9 * max(nav, 1.0)
    by_symbol: dict[str, float] = {}
    by_tier: dict[str, float] = {}
    for (symbol, _), position in state.legs.items():
        gross = abs(position.qty) * state.mark(symbol)
        by_symbol[symbol] = by_symbol.get(symbol, 0.0) + gross
        tier = UNIVERSE[symbol].tier
        by_tier[tier] = by_tier.get(tier, 0.0) + gross
    assert len(state.legs) <= limits.max_concurrent_positions
    for tier, gross in by_tier.items():
        assert gross <= limits.tier_caps[tier].max_nav_pct * nav + tol
    for symbol, gross in by_symbol.items():
        assert gross <= limits.symbol_caps.max_nav_pct * nav + tol
        assert gross <= limits.max_leverage(symbol) * nav + tol
    total = sum(by_symbol.values())
    assert total <= min(limits.max_gross_exposure_nav, limits.leverage.max_global) * nav + tol


@PROPERTY
@given(limits=limits_st(), hedge=st.booleans(), seed=st.integers(0, 2**32), count=st.integers(1, 20))
def test_streams_of_intents_and_fills_never_break_the_caps(limits: RiskLimits, hedge: bool, seed: int,
                                                           count: int) -> None:
    config = bundle_for(limits)
    rng = random.Random(seed)
    marks = {symbol: rng.uniform(0.5, 50_000.0) for symbol in TRADED}
    steps = random_steps(rng, count)
    filled = 0
    state = PortfolioState(wallet_balance_usd=100_000.0, nav_ts_ns=NOW_NS)
    for index, (symbol, side, reduce_only, raw_usd, how, filled_share) in enumerate(steps):
        now_ns = NOW_NS + index * S
        state.mark_to_market(marks, now_ns)
        position_side = ("LONG" if side == "buy" else "SHORT") if hedge and not reduce_only else "BOTH"
        if hedge and reduce_only:
            position_side = "SHORT" if side == "buy" else "LONG"
        intent = make_intent(symbol=symbol, side=side, reduce_only=reduce_only and not hedge,
                             position_side=position_side, tier=UNIVERSE[symbol].tier, size_hint_usd=raw_usd)
        ctx = RiskContext.from_state(state, symbol=symbol, universe=UNIVERSE, now_ns=now_ns, working=())
        gross = suggest_gross_usd(intent, ctx, config).gross_usd if how == "sizer" else raw_usd
        if not gross or check_order(intent, gross, ctx, limits).veto:
            continue
        qty = gross * filled_share / marks[symbol]
        open_leg = state.legs.get((symbol, position_side))
        if is_reducing(intent) and open_leg is not None:  # as the executor does: notional -> qty may
            qty = min(qty, abs(open_leg.qty))             # overshoot the leg by an ulp
        if qty <= 0:  # a subnormal gross rounds to no quantity at all
            continue
        state.apply_fill(symbol=symbol, side=side, position_side=position_side,
                         fill=Fill(trade_id=f"t{index}", client_order_id=f"o{index}", price=marks[symbol],
                                   qty=qty, fee_usd=0.0, liquidity="maker", ts_ns=now_ns))
        _assert_within_caps(state, limits)
        filled += 1
    event(f"orders filled: {filled}")


# --- screener vs executor -----------------------------------------------------------------------

@PROPERTY
@given(limits=limits_st(), seed=st.integers(0, 2**32), nav_age_s=st.integers(0, 60),
       gate=st.sampled_from([0.0, 0.1, 0.2]) | st.floats(0.0, 1.0),
       lean=st.floats(0.0, 1.0) | st.floats(-1.0, 1.0))
def test_screener_and_executor_agree_on_the_same_state(limits: RiskLimits, seed: int, nav_age_s: int,
                                                       gate: float, lean: float) -> None:
    rng = random.Random(seed)
    *steps, probe = random_steps(rng, rng.randint(1, 7))
    screener_cfg = msgspec.structs.replace(BUNDLE.strategy.screener, orderbook_imbalance_gate=gate)
    config = msgspec.structs.replace(bundle_for(limits), strategy=msgspec.structs.replace(
        BUNDLE.strategy, screener=screener_cfg))
    state = PortfolioState(wallet_balance_usd=50_000.0, nav_ts_ns=NOW_NS)
    for index, (symbol, side, _, raw_usd, _, _) in enumerate(steps):
        state.apply_fill(symbol=symbol, side=side, position_side="BOTH", fill=Fill(
            trade_id=f"t{index}", client_order_id=f"o{index}", price=100.0, qty=raw_usd / 100.0 + 0.01,
            fee_usd=1.0, liquidity="taker", ts_ns=NOW_NS))
    now_ns = NOW_NS + nav_age_s * S
    symbol, side, reduce_only, hint, _, _ = probe
    intent = make_intent(symbol=symbol, side=side, reduce_only=reduce_only, tier=UNIVERSE[symbol].tier,
                         size_hint_usd=hint)
    toward = lean if side == "buy" else -lean  # ``lean`` is toward the trade, whichever side it is
    book = TopOfBook(symbol=UNIVERSE[symbol].venue_symbol, bid=99.9, bid_qty=1.0 + toward, ask=100.1,
                     ask_qty=1.0 - toward, ts_ns=now_ns)
    screen_ctx = RiskContext.from_state(state, symbol=symbol, universe=UNIVERSE, now_ns=now_ns, working=())
    screened = would_emit(intent, MarketView(book=book, listed=True), screen_ctx, config)
    executor_ctx = RiskContext.from_state(state, symbol=symbol, universe=UNIVERSE, now_ns=now_ns, working=())
    assert executor_ctx == screen_ctx
    size = suggest_gross_usd(intent, executor_ctx, config)
    placed = size.gross_usd is not None and not check_order(intent, size.gross_usd, executor_ctx, limits).veto
    event(f"screener stage: {screened.stage}")
    if screened.stage == "imbalance":
        assert not screened.emit
        return
    assert screened.emit == placed, (screened.stage, screened.reasons, size)
    if placed:
        assert screened.gross_usd == size.gross_usd and math.isfinite(size.gross_usd)
