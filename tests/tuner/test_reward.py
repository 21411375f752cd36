"""The reward filter: -cost_bps for plausible costs, counted rejections for the rest."""

from __future__ import annotations

import math

import msgspec
import pytest

from router_tuner.router.events import RouterEvent
from router_tuner.tuner.reward import RewardFilter


def _event(outcome: str, cost_bps: float | None) -> RouterEvent:
    return RouterEvent(
        schema_version=1, intent_id="i1", symbol="BTCUSDT", side="buy", qty=1.0, reduce_only=False,
        close_position=False, position_side="BOTH",
        arrival_bid=99.0, arrival_ask=101.0, arrival_mid=100.0, arrival_ts_ns=1, policy_id="p",
        policy_version=1, arm="o1.00_b0.00", maker_offset_bps=1.0, taker_bias=0.0, propensity=0.5,
        route_propensity=1.0, started_maker=True, is_maker_final=cost_bps is not None,
        used_fallback=False, routed_as="maker" if cost_bps is not None else "unfilled",
        outcome=outcome, reprice_count=0, cancel_count=0, post_only_reject_count=0, fills=(),
        filled_qty=1.0 if cost_bps is not None else 0.0, avg_price=None, slippage_bps=None,
        fees_bps=None, cost_bps=cost_bps, time_to_fill_ms=None, realized_pnl_usd=None, error=None,
        finished_ts_ns=2,
    )


def test_reward_is_minus_cost_inside_band() -> None:
    f = RewardFilter(min_cost_bps=-10.0, max_cost_bps=30.0)
    assert f.reward_from_cost(2.5) == -2.5
    assert f.reward_from_cost(-10.0) == 10.0  # band edges are accepted
    assert f.reward_from_cost(30.0) == -30.0
    assert f.reward_from_event(_event("filled", 4.0)) == -4.0
    assert f.reward_from_event(_event("partial", 1.0)) == -1.0
    assert f.accepted == 5 and f.rejections == {}


def test_rejections_are_counted_by_reason() -> None:
    f = RewardFilter(min_cost_bps=-10.0, max_cost_bps=30.0)
    for cost in (math.nan, math.inf, -math.inf, -10.5, 31.0, 1e9):
        assert f.reward_from_cost(cost) is None
    assert f.reward_from_event(_event("unfilled", None)) is None
    assert f.reward_from_event(_event("rejected", None)) is None
    assert f.reward_from_event(_event("filled", math.nan)) is None
    assert f.rejections == {"non_finite": 4, "below_min": 1, "above_max": 2, "unfilled": 1,
                            "venue_rejected": 1}
    assert f.accepted == 0


def test_an_event_with_a_venue_anomaly_is_not_learned_whatever_its_cost() -> None:
    f = RewardFilter(min_cost_bps=-10.0, max_cost_bps=30.0)
    flagged = msgspec.structs.replace(_event("filled", 4.0), error="venue_anomaly(fill 7 of i1-1 reported as taker "
                                                                 "on a post-only order)")
    assert f.reward_from_event(flagged) is None
    assert f.rejections == {"venue_anomaly": 1} and f.accepted == 0


def test_an_event_with_a_fee_not_priced_in_the_quote_is_not_learned_at_its_understated_cost() -> None:
    """Its cost leaves out a fee the venue charged in an asset nothing prices in the quote (BNB on a USDC symbol):
    learned, it would teach the arm a cost lower than it was."""
    f = RewardFilter(min_cost_bps=-10.0, max_cost_bps=30.0)
    flagged = msgspec.structs.replace(_event("filled", 1.0), error="fee_unpriced(fill 7 of i1-1: fee 0.0002 BNB not "
                                                                 "priced in USDC (no BNB/USDC market), left out of "
                                                                 "fee_usd); settled: 1 orders found, 0 cancelled")
    assert f.reward_from_event(flagged) is None
    assert f.reward_from_event(_event("filled", 1.0)) == -1.0
    assert f.rejections == {"fee_unpriced": 1} and f.accepted == 1


@pytest.mark.parametrize("error", [
    "taker_leg_unfilled_within_slippage_cap(5bps): binance {\"msg\": \"venue_anomaly check failed\"}",
    "spread_too_wide(spread_bps=9 > max_spread_bps=8); exchange said: fee_unpriced asset",
    "binance -2010: (venue_anomaly(x) is not ours); settled: 1 orders found, 0 cancelled",
])
def test_an_error_text_that_merely_names_a_flag_is_learned(error: str) -> None:
    """The flag is the event's own marker (a part of the error opening with ``venue_anomaly(``), not the word: an
    exchange's message quoted in the error that happens to say it does not hide a genuine cost from the learner."""
    f = RewardFilter(min_cost_bps=-10.0, max_cost_bps=30.0)
    assert f.reward_from_event(msgspec.structs.replace(_event("partial", 2.0), error=error)) == -2.0
    assert f.rejections == {} and f.accepted == 1


def test_a_flag_after_the_routes_own_error_is_read() -> None:
    f = RewardFilter(min_cost_bps=-10.0, max_cost_bps=30.0)
    flagged = msgspec.structs.replace(_event("partial", 2.0), error="taker leg i1-2 rejected by the venue; "
                                      "venue_anomaly(fill 7 of i1-1 reported as taker on a post-only order); "
                                      "fee_unpriced(fill 8 of i1-1: fee 0.1 BNB not priced in USDC)")
    assert f.reward_from_event(flagged) is None
    assert f.rejections == {"venue_anomaly": 1}


def test_rejections_view_is_a_copy() -> None:
    f = RewardFilter(min_cost_bps=0.0, max_cost_bps=1.0)
    f.reward_from_cost(5.0)
    view = f.rejections
    f.reward_from_cost(5.0)
    assert view == {"above_max": 1} and f.rejections == {"above_max": 2}


@pytest.mark.parametrize(("lo", "hi"), [(1.0, 1.0), (2.0, 1.0), (math.nan, 1.0), (0.0, math.inf)])
def test_bad_band_is_refused(lo: float, hi: float) -> None:
    with pytest.raises(ValueError):
        RewardFilter(min_cost_bps=lo, max_cost_bps=hi)
