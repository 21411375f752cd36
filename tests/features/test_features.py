"""Features: hand-computed KPIs, expectancy, scores, quality bands and decision contexts."""

from __future__ import annotations

import msgspec
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from router_tuner.config import load_config
from router_tuner.features.context import Context, decision_context, hour_from_circle, hour_on_circle
from router_tuner.features.effectiveness import router_effectiveness
from router_tuner.features.expectancy import NS_PER_HOUR, hourly_expectancy
from router_tuner.features.quality import QualityThresholds, router_quality
from router_tuner.features.scores import SlippageRegimes, symbol_scores
from router_tuner.router.events import Fill, RouterEvent
from tests.factories import fill, routed

UNIVERSE = load_config().strategy.universe
OLD_SYSTEM = QualityThresholds(broken_fallback_ratio=0.9, broken_slippage_bps=20.0, degraded_fallback_ratio=0.6,
                               degraded_slippage_bps=8.0, good_maker_ratio=0.7, good_fallback_ratio=0.4,
                               good_slippage_bps=4.0)


def _window():
    maker = routed(fills=(fill(99.99, 1.0, "maker", fee_bps=2.0),))
    fallback = routed(fills=(fill(99.99, 0.5, "maker", fee_bps=2.0), fill(100.02, 0.5, "taker", fee_bps=5.0)),
                      used_fallback=True, reprice_count=2)
    taker = routed(fills=(fill(100.01, 1.0, "taker", fee_bps=5.0),), started_maker=False)
    missed = routed(fills=(), used_fallback=False)
    return [maker, fallback, taker, missed]


def test_effectiveness_by_hand() -> None:
    kpis = router_effectiveness(_window(), contracts=UNIVERSE, window=None, reprice_loop_min=2)
    assert kpis.orders == 4 and kpis.filled_orders == 3 and kpis.maker_started == 3
    assert kpis.maker_fill_ratio == pytest.approx(1 / 2)
    assert kpis.fallback_ratio == pytest.approx(1 / 3)
    slippages = sorted([-1.0, 0.5, 1.0])
    assert kpis.slippage_p50_bps == pytest.approx(slippages[1])
    assert kpis.reprice_loop_ratio == pytest.approx(1 / 4)
    notional = np.array([99.99, 99.99 * 0.5 + 100.02 * 0.5, 100.01])
    fees = np.array([2.0, (99.99 * 0.5 * 2 + 100.02 * 0.5 * 5) / notional[1], 5.0])
    assert kpis.fee_drag_bps == pytest.approx(float((fees * notional).sum() / notional.sum()))


def test_empty_sets_give_none_not_zero() -> None:
    kpis = router_effectiveness([routed(fills=(), started_maker=False)], contracts=UNIVERSE, window=None,
                                reprice_loop_min=1)
    assert kpis.maker_fill_ratio is None and kpis.fallback_ratio is None and kpis.slippage_p50_bps is None
    assert kpis.mean_cost_bps is None and kpis.fee_drag_bps is None


def test_window_and_symbol_filter() -> None:
    events = [*_window(), routed(symbol="ETHUSDT", fills=(fill(100.0, 1.0),))]
    assert router_effectiveness(events, contracts=UNIVERSE, window=2, reprice_loop_min=1).orders == 2
    assert router_effectiveness(events, contracts=UNIVERSE, window=None, reprice_loop_min=1,
                                symbol="ETHUSDT").orders == 1
    with pytest.raises(ValueError, match="window"):
        router_effectiveness(events, contracts=UNIVERSE, window=0, reprice_loop_min=1)


def test_hourly_expectancy_groups_closing_orders_by_utc_hour() -> None:
    events = [
        routed(fills=(fill(100.0, 1.0),), realized_pnl_usd=1.0, finished_ts_ns=3 * NS_PER_HOUR + 5),
        routed(fills=(fill(100.0, 1.0),), realized_pnl_usd=-0.5, finished_ts_ns=27 * NS_PER_HOUR),
        routed(fills=(fill(100.0, 1.0),), realized_pnl_usd=None, finished_ts_ns=4 * NS_PER_HOUR),
    ]
    [hour] = hourly_expectancy(events, contracts=UNIVERSE)
    assert (hour.hour, hour.trades) == (3, 2)
    assert hour.expectancy_bps == pytest.approx(0.5 / 200.0 * 1e4)


def test_symbol_scores_sharpe_and_regime() -> None:
    pnl = [1.0, 2.0, -0.5, 1.5]
    events = [routed(fills=(fill(100.0, 1.0, fee_bps=1.0),), realized_pnl_usd=p) for p in pnl]
    [score] = symbol_scores(events, contracts=UNIVERSE, window=10, regimes=SlippageRegimes(1.0, 5.0),
                            reprice_loop_min=1)
    returns = np.array(pnl) / 100.0
    assert score.sharpe_per_trade == pytest.approx(returns.mean() / returns.std(ddof=1) * 2.0)
    assert score.slippage_regime == "calm" and score.fee_drag_bps == pytest.approx(1.0)
    with pytest.raises(ValueError):
        SlippageRegimes(5.0, 1.0)


@pytest.mark.parametrize(("fallback_fills", "expected"), [(0, "good"), (2, "degraded"), (3, "broken")])
def test_quality_bands_follow_the_thresholds(fallback_fills: int, expected: str) -> None:
    events = [routed(fills=(fill(99.99, 1.0),)) for _ in range(3 - fallback_fills)]
    events += [routed(fills=(fill(100.0, 1.0, "taker"),), used_fallback=True) for _ in range(fallback_fills)]
    kpis = router_effectiveness(events, contracts=UNIVERSE, window=None, reprice_loop_min=1)
    assert router_quality(kpis, OLD_SYSTEM) == expected


def test_decision_context_values_and_bad_input() -> None:
    ctx = decision_context(bid=99.0, ask=101.0, bid_qty=3.0, ask_qty=1.0, recent_mids=np.array([100.0] * 5),
                           order_qty=1.5, side="buy", ts_ns=30 * NS_PER_HOUR + NS_PER_HOUR // 2)
    assert ctx.spread_bps == pytest.approx(200.0) and ctx.book_imbalance == pytest.approx(0.5)
    assert ctx.volatility_bps == 0.0 and ctx.size_vs_touch == pytest.approx(0.5)
    assert ctx.hour == pytest.approx(6.5)
    mids = np.array([100.0, 101.0, 100.0, 101.0])
    moving = decision_context(bid=99.0, ask=101.0, bid_qty=1.0, ask_qty=1.0, recent_mids=mids, order_qty=1.0,
                              side="sell", ts_ns=0)
    assert moving.volatility_bps == pytest.approx(float(np.std(np.diff(np.log(mids))) * 1e4))
    with pytest.raises(ValueError, match="uncrossed"):
        decision_context(bid=101.0, ask=100.0, bid_qty=1, ask_qty=1, recent_mids=np.array([]), order_qty=1,
                         side="buy", ts_ns=0)
    with pytest.raises(ValueError, match="both sides"):
        decision_context(bid=99.0, ask=100.0, bid_qty=0.0, ask_qty=1, recent_mids=np.array([]), order_qty=1,
                         side="buy", ts_ns=0)
    with pytest.raises(ValueError, match="book_imbalance"):
        Context(spread_bps=1.0, volatility_bps=0.0, book_imbalance=1.5, hour=0.0, size_vs_touch=0.1)


def _coin_m(contracts: float, price: float, fee_bps: float, pnl_usd: float | None, trade_id: str) -> RouterEvent:
    """A filled BTCUSD_PERP order (100 USD per contract) whose fee is ``fee_bps`` of its contract notional."""
    usd = contracts * 100.0
    event = routed(symbol="BTCUSD_PERP", qty=contracts, mid=price, realized_pnl_usd=pnl_usd, intent_id=trade_id,
                   fills=(Fill(trade_id=trade_id, client_order_id=f"{trade_id}-1", price=price, qty=contracts,
                               fee_usd=usd * fee_bps / 1e4, liquidity="taker", ts_ns=0),))
    return msgspec.structs.replace(event, fees_bps=fee_bps)  # the route's ratio, over the contract notional


def test_inverse_fee_drag_and_expectancy_weigh_by_contract_notional_by_hand() -> None:
    """3 BTCUSD_PERP contracts at 60,000 are 300 USD (not 180,000); 0.01 BTCUSDT at 60,000 is 600 USD."""
    inverse = _coin_m(3.0, 60_000.0, fee_bps=5.0, pnl_usd=1.5, trade_id="inv1")
    linear = routed(symbol="BTCUSDT", qty=0.01, mid=60_000.0, realized_pnl_usd=-0.6, intent_id="lin1",
                    fills=(fill(60_000.0, 0.01, "taker", fee_bps=2.0),))
    kpis = router_effectiveness([inverse, linear], contracts=UNIVERSE, window=None, reprice_loop_min=1)
    assert kpis.fee_drag_bps == pytest.approx((5.0 * 300 + 2.0 * 600) / 900)  # 3.0; price x qty would say 4.99
    [hour] = hourly_expectancy([inverse, linear], contracts=UNIVERSE)
    assert hour.notional_usd == pytest.approx(900.0)
    assert hour.expectancy_bps == pytest.approx((1.5 - 0.6) / 900 * 1e4)  # 10 bps


def test_inverse_symbol_score_returns_are_pnl_over_contract_notional_by_hand() -> None:
    events = [_coin_m(3.0, 60_000.0, 5.0, 1.5, "a"), _coin_m(2.0, 61_000.0, 5.0, -0.4, "b")]
    [score] = symbol_scores(events, contracts=UNIVERSE, window=10, regimes=SlippageRegimes(1.0, 5.0),
                            reprice_loop_min=1)
    returns = np.array([1.5 / 300.0, -0.4 / 200.0])
    assert score.closing_trades == 2 and score.fee_drag_bps == pytest.approx(5.0)
    assert score.sharpe_per_trade == pytest.approx(returns.mean() / returns.std(ddof=1) * np.sqrt(2))


def test_features_refuse_a_symbol_without_a_contract_spec() -> None:
    events = [routed(symbol="DOGEUSDT", fills=(fill(0.1, 10.0),))]
    with pytest.raises(KeyError, match="no contract spec for 'DOGEUSDT'"):
        router_effectiveness(events, contracts=UNIVERSE, window=None, reprice_loop_min=1)
    assert router_effectiveness([routed(symbol="DOGEUSDT")], contracts=UNIVERSE, window=None,
                                reprice_loop_min=1).orders == 1  # nothing filled: no notional to value


@given(hour=st.floats(min_value=0.0, max_value=24.0, exclude_max=True))
def test_hour_on_circle_round_trips(hour: float) -> None:
    back = hour_from_circle(*hour_on_circle(hour))
    assert 0.0 <= back < 24.0
    assert min(abs(back - hour), 24.0 - abs(back - hour)) < 1e-9


def test_hour_from_circle_is_the_circular_mean() -> None:
    sins, coss = zip(*(hour_on_circle(h) for h in (23.0, 1.0)), strict=True)
    assert hour_from_circle(sum(sins) / 2, sum(coss) / 2) == pytest.approx(0.0, abs=1e-9)
    assert hour_on_circle(6.0) == pytest.approx((1.0, 0.0))
