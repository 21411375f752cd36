"""The routing state machine on a scripted venue: every scenario of issue 4 with known truth."""

from __future__ import annotations

import dataclasses
import doctest
import importlib
import math

import msgspec
import numpy as np
import pytest

from router_tuner.config.loader import load_config
from router_tuner.config.models import RouterConfig
from router_tuner.router.codec import from_json, to_json
from router_tuner.router.contract import Contract, ContractSpec
from router_tuner.router.events import Intent, PositionSide, RouterEvent, Side
from router_tuner.router.policy import RouterPolicy
from router_tuner.router.routing.ledger import RouteLedger
from router_tuner.router.routing.machine import maker_price, route, taker_limit_price
from router_tuner.router.routing.order import RouteOrder, RouteRefused, RouteSettings, client_order_id
from router_tuner.router.routing.scripted import Fault, Quote, ScriptedClock, ScriptedFill, ScriptedVenue
from router_tuner.router.venue import (
    BelowMinNotional,
    InsufficientMargin,
    OrderNotFound,
    OrderRequest,
    OrderState,
    RateLimited,
    TopOfBook,
    VenueError,
    VenueTimeout,
    VenueUnavailable,
)

MS = 1_000_000
LATENCY_NS = 10 * MS
BASE_QUOTE = Quote(0, 100.00, 100.10, 5.0, 5.0)
LINEAR = Contract("linear", 1.0)


@pytest.fixture(scope="module")
def router_config() -> RouterConfig:
    return load_config().router


def policy(router_config: RouterConfig, symbol: str = "BTCUSDT", **knobs: object) -> RouterPolicy:
    base = RouterPolicy.from_static(symbol, router_config)
    return dataclasses.replace(base, **knobs).validate(router_config.policy_bounds)


def settings(router_config: RouterConfig, **overrides: object) -> RouteSettings:
    made = RouteSettings.from_config(router_config, poll_interval_ms=100.0, max_venue_retries=2,
                                     rate_limit_backoff_ms=50.0, max_retry_after_ms=5000.0)
    return dataclasses.replace(made, **overrides)


def order(symbol: str = "BTCUSDT", side: Side = "buy", qty: float = 1.0, *, reduce_only: bool = False,
          close_position: bool = False, position_side: PositionSide = "LONG", quote: str = "USDT",
          intent_id: str = "i1", qty_step: float = 0.001) -> RouteOrder:
    return RouteOrder(intent_id=intent_id, symbol=symbol, side=side, qty=qty, reduce_only=reduce_only,
                      close_position=close_position, position_side=position_side, quote=quote, tick_size=0.01,
                      qty_step=qty_step)


def venue(quotes: list[Quote] | None = None, fills: list[ScriptedFill] | None = None,
          faults: list[Fault] | None = None, symbol: str = "BTCUSDT") -> ScriptedVenue:
    return ScriptedVenue(symbol, quotes or [BASE_QUOTE], contract=LINEAR, fills=fills or [], faults=faults or [],
                         maker_fee_bps=2.0, taker_fee_bps=5.0, entry_latency_ns=LATENCY_NS,
                         cancel_latency_ns=LATENCY_NS)


def run(router_config: RouterConfig, v: ScriptedVenue, pol: RouterPolicy | None = None,
        o: RouteOrder | None = None, seed: int = 0, **setting_overrides: object) -> RouterEvent:
    return route(o or order(), pol or policy(router_config), v, rng=np.random.default_rng(seed),
                 settings=settings(router_config, **setting_overrides))


def assert_complete(event: RouterEvent, v: ScriptedVenue) -> None:
    """Invariants every event must satisfy, whatever happened."""
    assert event.filled_qty == math.fsum(f.qty for f in event.fills)
    assert event.filled_qty <= event.qty + 1e-12
    assert len({f.trade_id for f in event.fills}) == len(event.fills)
    ids = [r.client_order_id for r in v.requests]
    assert len(set(ids)) == len({(r.client_order_id, r) for r in v.requests})  # an id never names two orders
    assert event.is_maker_final == (bool(event.fills) and all(f.liquidity == "maker" for f in event.fills))
    assert (event.avg_price is None) == (event.filled_qty == 0.0) == (event.cost_bps is None)


# --- the scenarios of the issue -----------------------------------------------------------------------


def test_maker_fill(router_config: RouterConfig) -> None:
    v = venue(fills=[ScriptedFill(500 * MS, 1.0)])
    event = run(router_config, v)
    assert_complete(event, v)
    assert (event.outcome, event.routed_as, event.started_maker, event.is_maker_final, event.used_fallback) == (
        "filled", "maker", True, True, False)
    assert (event.reprice_count, event.cancel_count, event.post_only_reject_count) == (0, 0, 0)
    (only,) = v.requests
    assert only.post_only and only.order_type == "limit" and only.price == 99.99  # 1 bp behind 100.00
    assert event.avg_price == 99.99 and event.arrival_mid == pytest.approx(100.05)
    assert event.slippage_bps == pytest.approx((99.99 - 100.05) / 100.05 * 1e4)  # negative: better than mid
    assert event.fees_bps == pytest.approx(2.0)
    assert event.cost_bps == pytest.approx(event.slippage_bps + 2.0)
    assert event.time_to_fill_ms == pytest.approx(500.0)
    assert (event.route_propensity, event.propensity, event.arm) == (1.0, 1.0, "static")
    assert event.realized_pnl_usd is None and event.error is None


def test_post_only_reject_then_fill_from_the_new_touch(router_config: RouterConfig) -> None:
    # The ask drops through our price while the order is in flight: rejected at arrival, re-priced.
    quotes = [BASE_QUOTE, Quote(5 * MS, 99.90, 99.98, 5.0, 5.0)]
    v = venue(quotes, fills=[ScriptedFill(300 * MS, 1.0)])
    event = run(router_config, v)
    assert_complete(event, v)
    first, second = v.requests
    assert first.price == 99.99 and second.price == 99.89  # 1 bp behind the new bid 99.90, floored
    assert first.client_order_id != second.client_order_id
    assert (event.post_only_reject_count, event.outcome, event.routed_as, event.used_fallback) == (
        1, "filled", "maker", False)


def test_post_only_rejections_beyond_the_limit_fall_back(router_config: RouterConfig) -> None:
    # Every post-only arrival crosses: the touch keeps dropping 10 ms after each read.
    quotes = [Quote(max(i * 10 * MS - 5 * MS, 0), 100.0 - 0.2 * i, 100.1 - 0.2 * i, 5.0, 5.0)
              for i in range(10)]
    v = venue(quotes)
    event = run(router_config, v, policy(router_config, post_only_retry_limit=1, reprice_attempts=0))
    assert_complete(event, v)
    assert event.post_only_reject_count == 2
    assert [r.post_only for r in v.requests] == [True, True, False]
    assert event.used_fallback and event.routed_as == "taker" and event.started_maker


def test_ttl_expiry_then_taker_fallback(router_config: RouterConfig) -> None:
    v = venue()
    pol = policy(router_config, reprice_attempts=0, maker_ttl_ms=1000.0)
    event = run(router_config, v, pol)
    assert_complete(event, v)
    maker, taker = v.requests
    assert maker.post_only and not taker.post_only and taker.qty == 1.0
    assert taker.price == taker_limit_price(order(), 100.05, 15.0) == 100.2  # mid + 15 bps, floored
    assert v.cancels == [maker.client_order_id]
    assert (event.outcome, event.routed_as, event.used_fallback, event.is_maker_final, event.cancel_count) == (
        "filled", "taker", True, False, 1)
    assert event.avg_price == 100.10 and event.fees_bps == pytest.approx(5.0)
    # entry 10 ms + TTL 1000 ms + cancel 10 ms + entry 10 ms
    assert event.time_to_fill_ms == pytest.approx(1030.0)


def test_reprices_move_toward_the_touch_then_fall_back(router_config: RouterConfig) -> None:
    v = venue([Quote(0, 100.00, 100.20, 5.0, 5.0)])
    pol = policy(router_config, reprice_attempts=2, reprice_step_bps=5.0, maker_offset_bps=1.0)
    event = run(router_config, v, pol)
    prices = [r.price for r in v.requests if r.post_only]
    assert prices == [99.99, 100.04, 100.09]  # +1 bp, -4 bp, -9 bp: toward and past the touch, post-only
    assert event.reprice_count == 2 and event.cancel_count == 3 and event.used_fallback


def test_partial_fill_then_fallback_of_the_remainder(router_config: RouterConfig) -> None:
    v = venue(fills=[ScriptedFill(200 * MS, 0.3)])
    event = run(router_config, v, policy(router_config, reprice_attempts=0))
    assert_complete(event, v)
    _maker, taker = v.requests
    assert taker.qty == pytest.approx(0.7)
    assert (event.outcome, event.routed_as, event.used_fallback, event.is_maker_final) == (
        "filled", "mixed", True, False)
    assert [f.liquidity for f in event.fills] == ["maker", "taker"]
    assert event.avg_price == pytest.approx(0.3 * 99.99 + 0.7 * 100.10)


def test_cancel_fill_race_counts_the_fill_once_and_never_reorders_it(router_config: RouterConfig) -> None:
    # A poll sees 0.2; 0.5 more lands while the cancel is in flight (TTL 2000 ms + entry 10 ms, +5 ms).
    v = venue(fills=[ScriptedFill(150 * MS, 0.2), ScriptedFill(2015 * MS, 0.5)])
    event = run(router_config, v, policy(router_config, reprice_attempts=0))
    assert_complete(event, v)
    _maker, taker = v.requests
    assert taker.qty == pytest.approx(0.3)  # from the cancel's final state, not from the last poll
    assert [f.qty for f in event.fills] == pytest.approx([0.2, 0.5, 0.3])
    assert event.filled_qty == pytest.approx(1.0) and event.outcome == "filled"


def test_fill_winning_the_cancel_race_needs_no_fallback(router_config: RouterConfig) -> None:
    v = venue(fills=[ScriptedFill(2015 * MS, 1.0)])
    event = run(router_config, v, policy(router_config, reprice_attempts=0))
    assert len(v.requests) == 1 and event.cancel_count == 1
    assert (event.outcome, event.routed_as, event.used_fallback) == ("filled", "maker", False)


class _DuplicatingVenue(ScriptedVenue):
    """Reports every fill twice across calls, as a venue may after a reconnect."""

    def fetch_order(self, symbol: str, client_order_id: str) -> OrderState:
        state = super().fetch_order(symbol, client_order_id)
        return msgspec.structs.replace(state, fills=state.fills + state.fills)


def test_duplicate_fill_reports_are_counted_once(router_config: RouterConfig) -> None:
    v = _DuplicatingVenue("BTCUSDT", [BASE_QUOTE], contract=LINEAR,
                          fills=[ScriptedFill(150 * MS, 0.4), ScriptedFill(400 * MS, 0.6)], faults=[],
                          maker_fee_bps=2.0, taker_fee_bps=5.0, entry_latency_ns=LATENCY_NS,
                          cancel_latency_ns=LATENCY_NS)
    event = run(router_config, v)
    assert [f.trade_id for f in event.fills] == ["T1", "T2"] and event.filled_qty == pytest.approx(1.0)


# --- venue errors -----------------------------------------------------------------------------------


def test_rate_limit_backs_off_on_the_clock_and_retries_the_same_request(router_config: RouterConfig) -> None:
    faults = [Fault("place", 1, RateLimited("429", retry_after_s=0.2), applied=False),
              Fault("place", 2, RateLimited("429"), applied=False)]
    v = venue(fills=[ScriptedFill(900 * MS, 1.0)], faults=faults)
    event = run(router_config, v)
    assert_complete(event, v)
    assert [r.client_order_id for r in v.requests] == ["i1-1"] * 3  # same request, accepted on the third try
    assert event.outcome == "filled" and event.error is None
    # 200 ms hint + 100 ms (50 ms doubled) back-off happened before the order reached the venue
    assert event.fills[0].ts_ns == 900 * MS


def test_a_retry_after_longer_than_the_loop_waits_ends_the_call_at_once(router_config: RouterConfig) -> None:
    v = venue(fills=[ScriptedFill(900 * MS, 1.0)],
              faults=[Fault("place", 1, RateLimited("429", retry_after_s=120.0), applied=False)])
    start_ns = v.clock.now_ns()
    event = run(router_config, v)
    assert (event.outcome, event.fills) == ("unfilled", ()) and "RateLimited" in (event.error or "")
    assert len(v.requests) == 1, "not sent again"
    assert v.clock.now_ns() - start_ns < 5 * 10**9, "the 120 s penalty was not waited out (max_retry_after_ms 5 s)"


def test_a_zero_retry_after_still_backs_off(router_config: RouterConfig) -> None:
    sent_at: list[int] = []
    faults = [Fault("place", 1, RateLimited("429", retry_after_s=0.0), applied=False)]
    v = venue(fills=[ScriptedFill(900 * MS, 1.0)], faults=faults)
    place = v.place_order
    v.place_order = lambda request: (sent_at.append(v.clock.now_ns()), place(request))[1]  # type: ignore[method-assign]
    event = run(router_config, v)
    assert event.outcome == "filled" and [r.client_order_id for r in v.requests] == ["i1-1"] * 2
    assert sent_at[1] - sent_at[0] >= 50 * MS, "the configured back-off, not an immediate retry"


def test_rate_limit_beyond_the_retry_budget_ends_unfilled_with_the_error(router_config: RouterConfig) -> None:
    v = venue(faults=[Fault("place", call, RateLimited("429"), applied=False) for call in (1, 2, 3)])
    event = run(router_config, v)
    assert (event.outcome, event.filled_qty, event.fills) == ("unfilled", 0.0, ())
    assert event.error is not None and "RateLimited" in event.error
    assert type(event.filled_qty) is float, "an int 0 would be refused by the journal's strict codec"
    assert from_json(to_json(event), "router") == event


def test_timeout_on_an_accepted_order_is_resolved_by_client_id(router_config: RouterConfig) -> None:
    v = venue(fills=[ScriptedFill(300 * MS, 1.0)], faults=[Fault("place", 1, VenueTimeout("no answer"), applied=True)])
    event = run(router_config, v)
    assert [r.client_order_id for r in v.requests] == ["i1-1"]  # found by id, never sent twice
    assert event.outcome == "filled" and event.routed_as == "maker"


@pytest.mark.parametrize("error", [VenueTimeout("no answer"), VenueUnavailable("reset")])
@pytest.mark.parametrize("taker_bias", [0.0, 1.0])
def test_an_order_of_unknown_outcome_that_the_venue_does_not_know_is_never_sent_again(
        router_config: RouterConfig, error: Exception, taker_bias: float) -> None:
    """A post-only leg may rest, and an IOC leg may have filled, at a venue whose order query lags its matching: a
    second order would rest as an orphan or fill twice, so the route ends with the error (the executor settles the
    intent's legs) instead of sending another under a new id."""
    v = venue(fills=[ScriptedFill(300 * MS, 1.0)], faults=[Fault("place", 1, error, applied=False)])
    event = run(router_config, v, policy(router_config, taker_bias=taker_bias))
    assert [r.client_order_id for r in v.requests] == ["i1-1"]
    assert (event.outcome, event.fills) == ("unfilled", ()) and not event.is_maker_final
    assert event.error is not None and "i1-1: outcome unknown" in event.error and "not sent again" in event.error


def test_timeouts_while_polling_and_cancelling_are_resolved(router_config: RouterConfig) -> None:
    faults = [Fault("fetch", 1, VenueTimeout("slow"), applied=False),
              Fault("cancel", 1, VenueTimeout("slow"), applied=True)]
    v = venue(fills=[ScriptedFill(150 * MS, 0.25)], faults=faults)
    event = run(router_config, v, policy(router_config, reprice_attempts=0))
    assert_complete(event, v)
    assert event.outcome == "filled" and event.cancel_count == 1 and v.requests[-1].qty == pytest.approx(0.75)


def test_unresolvable_timeout_ends_with_the_error(router_config: RouterConfig) -> None:
    faults = [Fault("place", 1, VenueTimeout("no answer"), applied=True)] + [
        Fault("fetch", call, VenueTimeout("still no answer"), applied=False) for call in (1, 2, 3)]
    v = venue(faults=faults)
    event = run(router_config, v)
    assert event.outcome == "unfilled" and event.error is not None and "unresolved" in event.error


@pytest.mark.parametrize("error", [InsufficientMargin("margin is insufficient"),
                                   BelowMinNotional("notional must be >= 5")])
def test_refusals_end_rejected_with_the_error_text(router_config: RouterConfig, error: Exception) -> None:
    v = venue(faults=[Fault("place", 1, error, applied=False)])
    event = run(router_config, v)
    assert (event.outcome, event.fills, event.routed_as) == ("rejected", (), "unfilled")
    assert event.error is not None and str(error) in event.error and type(error).__name__ in event.error


def test_refusal_of_the_fallback_keeps_the_partial_fill(router_config: RouterConfig) -> None:
    faults = [Fault("place", 2, BelowMinNotional("dust"), applied=False),  # the fallback leg
              Fault("touch", 1, VenueTimeout("x"), applied=False)]  # the arrival read is retried
    v = venue(fills=[ScriptedFill(200 * MS, 0.999)], faults=faults)
    event = run(router_config, v, policy(router_config, reprice_attempts=0))
    assert event.outcome == "partial" and event.error is not None and "BelowMinNotional" in event.error
    assert event.filled_qty == pytest.approx(0.999) and event.used_fallback


def test_arrival_touch_failure_raises_and_sends_nothing(router_config: RouterConfig) -> None:
    v = venue(faults=[Fault("touch", call, VenueUnavailable("down"), applied=False) for call in (1, 2, 3)])
    with pytest.raises(VenueUnavailable):
        run(router_config, v)
    assert v.requests == []


# --- decisions ----------------------------------------------------------------------------------------


def test_taker_bias_one_goes_straight_to_taker(router_config: RouterConfig) -> None:
    v = venue()
    event = run(router_config, v, policy(router_config, taker_bias=1.0))
    (only,) = v.requests
    assert not only.post_only and only.price == 100.2
    assert (event.started_maker, event.used_fallback, event.routed_as, event.route_propensity) == (
        False, False, "taker", 1.0)


def test_taker_bias_draw_is_seeded_and_logs_its_propensity(router_config: RouterConfig) -> None:
    pol = policy(router_config, taker_bias=0.3)
    starts = []
    for seed in range(40):
        event = run(router_config, venue(fills=[ScriptedFill(100 * MS, 1.0)]), pol, seed=seed)
        draw = np.random.default_rng(seed).random()
        assert event.started_maker == (draw >= 0.3)
        assert event.route_propensity == pytest.approx(0.7 if event.started_maker else 0.3)
        starts.append(event.started_maker)
    assert any(starts) and not all(starts)


def test_maker_first_false_is_always_taker(router_config: RouterConfig) -> None:
    event = run(router_config, venue(), policy(router_config, maker_first=False))
    assert not event.started_maker and event.route_propensity == 1.0 and event.routed_as == "taker"


def test_spread_too_wide_beyond_the_taker_cap_is_skipped(router_config: RouterConfig) -> None:
    v = venue([Quote(0, 100.0, 100.5, 5.0, 5.0)])  # ~50 bp spread, half of it beyond the 15 bp cap
    event = run(router_config, v)
    assert v.requests == [] and event.outcome == "unfilled" and not event.started_maker
    assert event.error is not None and "spread_too_wide" in event.error and "max_spread_bps=25.0" in event.error


def test_spread_too_wide_within_the_taker_cap_crosses(router_config: RouterConfig) -> None:
    v = venue([Quote(0, 100.0, 100.3, 5.0, 5.0)])  # ~30 bp: above 25, half spread 15 bp within the cap
    event = run(router_config, v)
    assert [r.post_only for r in v.requests] == [False] and event.routed_as == "taker"


def test_spread_below_the_minimum_crosses(router_config: RouterConfig) -> None:
    event = run(router_config, venue(), policy(router_config, min_spread_bps=20.0))
    assert not event.started_maker and event.routed_as == "taker" and event.route_propensity == 1.0


def test_crossed_book_is_never_traded(router_config: RouterConfig) -> None:
    v = venue([Quote(0, 100.1, 100.0, 5.0, 5.0)])
    event = run(router_config, v)
    assert v.requests == [] and event.outcome == "unfilled" and "crossed_or_locked_book" in (event.error or "")


def test_taker_leg_never_pays_beyond_the_cap_and_says_why_it_is_unfilled(router_config: RouterConfig) -> None:
    # The market runs away during the maker TTL: the capped IOC taker limit fills nothing and expires.
    v = venue([BASE_QUOTE, Quote(500 * MS, 100.5, 100.6, 5.0, 5.0)])
    event = run(router_config, v, policy(router_config, reprice_attempts=0))
    maker, taker = v.requests
    assert (taker.price, taker.time_in_force, taker.post_only) == (100.2, "IOC", False)
    assert v.fetch_order("BTCUSDT", taker.client_order_id).status == "expired"
    assert event.outcome == "unfilled" and event.used_fallback and event.fills == ()
    assert v.cancels == [maker.client_order_id] and event.cancel_count == 1  # only the maker leg's real cancel
    assert event.error == "taker_leg_unfilled_within_slippage_cap(15.0bps)"


def test_unfilled_taker_reason_names_the_configured_cap(router_config: RouterConfig) -> None:
    # Straight taker; the ask jumps beyond mid + 8 bps while the order is in flight.
    v = venue([BASE_QUOTE, Quote(5 * MS, 100.3, 100.4, 5.0, 5.0)])
    event = run(router_config, v, policy(router_config, taker_bias=1.0, max_taker_slippage_bps=8.0))
    (taker,) = v.requests
    assert (taker.price, taker.time_in_force) == (100.13, "IOC")  # 100.05 * 1.0008 = 100.130..., floored
    assert (event.outcome, event.started_maker, event.cancel_count, event.filled_qty) == ("unfilled", False, 0, 0.0)
    assert event.error == "taker_leg_unfilled_within_slippage_cap(8.0bps)"


def test_taker_leg_partial_from_thin_touch_expires_the_rest(router_config: RouterConfig) -> None:
    v = venue([Quote(0, 100.0, 100.1, 5.0, 0.4)])
    event = run(router_config, v, policy(router_config, taker_bias=1.0))
    (taker,) = v.requests
    assert taker.time_in_force == "IOC" and v.cancels == []
    assert v.fetch_order("BTCUSDT", taker.client_order_id).status == "expired"
    assert event.outcome == "partial" and event.filled_qty == pytest.approx(0.4) and event.cancel_count == 0
    assert event.error is None  # something filled: the outcome says partial


def test_maker_legs_are_gtc_post_only_and_taker_legs_ioc(router_config: RouterConfig) -> None:
    v = venue(fills=[ScriptedFill(200 * MS, 0.3)])
    event = run(router_config, v, policy(router_config, reprice_attempts=1))
    assert [(r.post_only, r.time_in_force) for r in v.requests] == [(True, "GTC"), (True, "GTC"), (False, "IOC")]
    assert event.cancel_count == 2 and v.cancels == [r.client_order_id for r in v.requests[:2]]


class _AckFirstVenue(ScriptedVenue):
    """Answers an IOC order ``open`` (acknowledged, not yet matched) and shows its final state ``acks`` fetches
    later, as a live venue answering before its matching engine may."""

    def __init__(self, *args: object, acks: int, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.acks = acks

    def place_order(self, request: OrderRequest) -> OrderState:
        state = super().place_order(request)
        return msgspec.structs.replace(state, status="open", filled_qty=0.0, fills=()) if request.time_in_force == \
            "IOC" else state

    def fetch_order(self, symbol: str, client_order_id: str) -> OrderState:
        state = super().fetch_order(symbol, client_order_id)
        if state.client_order_id == self.requests[-1].client_order_id and self.acks > 0:
            self.acks -= 1
            return msgspec.structs.replace(state, status="open", filled_qty=0.0, fills=())
        return state

    def cancel_order(self, symbol: str, client_order_id: str) -> OrderState:
        self.acks = 0
        return super().cancel_order(symbol, client_order_id)


@pytest.mark.parametrize(("acks", "cancels"), [(0, 0), (1, 0), (5, 1)])
def test_an_acknowledged_ioc_is_polled_to_its_end_and_cancelled_only_if_it_lingers(
        router_config: RouterConfig, acks: int, cancels: int) -> None:
    v = _AckFirstVenue("BTCUSDT", [BASE_QUOTE], contract=LINEAR, fills=[], faults=[], maker_fee_bps=2.0,
                       taker_fee_bps=5.0, entry_latency_ns=LATENCY_NS, cancel_latency_ns=LATENCY_NS, acks=acks)
    event = run(router_config, v, policy(router_config, taker_bias=1.0))
    (taker,) = v.requests
    assert len(v.cancels) == cancels == event.cancel_count
    assert event.outcome == "filled" and event.filled_qty == 1.0
    assert event.fills[0].client_order_id == taker.client_order_id
    assert event.error is None


@pytest.mark.parametrize(("mode", "expected_requests"), [("cancel", 1), ("repost", 2)])
def test_fallback_cancel_and_repost(router_config: RouterConfig, mode: str, expected_requests: int) -> None:
    v = venue()
    event = run(router_config, v, policy(router_config, reprice_attempts=0, fallback_mode=mode))
    assert len(v.requests) == expected_requests and all(r.post_only for r in v.requests)
    assert event.outcome == "unfilled" and event.used_fallback == (mode == "repost")
    if mode == "repost":
        assert v.requests[1].price == 100.0  # joins the touch


def test_sell_prices_round_up_and_stay_off_the_bid() -> None:
    touch = TopOfBook("BTCUSDT", 100.00, 1.0, 100.03, 1.0, 0)
    sell = order(side="sell", position_side="SHORT")
    assert maker_price(sell, touch, 1.0) == 100.05  # 100.03 * 1.0001 = 100.040003 -> up to 100.05
    assert maker_price(sell, touch, -100.0) == 100.01  # inside the spread but never at the bid
    assert maker_price(order(), touch, -100.0) == 100.02  # buy: never at the ask
    assert taker_limit_price(sell, 100.015, 15.0) == 99.87  # 99.8649775 -> up to 99.87


# --- reduce-only and closePosition ----------------------------------------------------------------------


@pytest.mark.parametrize(("symbol", "quote"), [("BTCUSDC", "USDC"), ("BTCUSDT", "USDT")])
@pytest.mark.parametrize(("position_side", "side"), [("LONG", "sell"), ("SHORT", "buy")])
def test_reduce_only_close_in_hedge_mode(router_config: RouterConfig, symbol: str, quote: str,
                                         position_side: PositionSide, side: Side) -> None:
    assert router_config.position_mode == "hedge"
    v = venue(symbol=symbol, fills=[ScriptedFill(100 * MS, 0.5)])
    o = order(symbol, side, 0.5, reduce_only=True, close_position=True, position_side=position_side, quote=quote)
    event = run(router_config, v, policy(router_config, symbol), o)
    (req,) = v.requests
    assert (req.reduce_only, req.close_position, req.position_side, req.side) == (True, True, position_side, side)
    assert (event.reduce_only, event.close_position, event.position_side) == (True, True, position_side)
    assert event.outcome == "filled"


def test_reduce_only_in_one_way_mode(router_config: RouterConfig) -> None:
    v = venue(fills=[ScriptedFill(100 * MS, 1.0)])
    o = order(side="sell", reduce_only=True, position_side="BOTH")
    event = run(router_config, v, o=o, position_mode="one_way")
    (req,) = v.requests
    assert (req.reduce_only, req.close_position, req.position_side) == (True, False, "BOTH")
    assert (event.reduce_only, event.close_position, event.position_side) == (True, False, "BOTH")
    assert event.outcome == "filled"


@pytest.mark.parametrize(("kwargs", "mode", "message"), [
    ({"reduce_only": True, "quote": "EUR", "side": "sell"}, "hedge", "quote 'EUR' is not in"),
    ({"close_position": True, "quote": "BUSD", "side": "sell"}, "hedge", "close_position_quotes"),
    ({"position_side": "BOTH"}, "hedge", "needs position_side LONG or SHORT"),
    ({"position_side": "LONG"}, "one_way", "needs position_side BOTH"),
    ({"reduce_only": True, "side": "buy"}, "hedge", "close of the LONG side must sell"),
    ({"side": "sell"}, "hedge", "reduces the position; mark it reduce_only"),
])
def test_refused_orders_never_reach_the_venue(router_config: RouterConfig, kwargs: dict[str, object], mode: str,
                                              message: str) -> None:
    v = venue()
    with pytest.raises(RouteRefused, match=message):
        run(router_config, v, o=order(**kwargs), position_mode=mode)  # type: ignore[arg-type]
    assert v.requests == []


def test_policy_for_another_symbol_is_refused(router_config: RouterConfig) -> None:
    with pytest.raises(RouteRefused, match="routes ETHUSDT"):
        run(router_config, venue(), policy(router_config, "ETHUSDT"))


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"qty": 0.0}, "qty must be a finite number > 0"), ({"qty": 0.0001}, "below the lot step"),
    ({"side": "long"}, "side must be"), ({"intent_id": ""}, "non-empty"),
])
def test_bad_route_orders_are_refused(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(RouteRefused, match=message):
        order(**kwargs)  # type: ignore[arg-type]


def test_client_order_ids_are_deterministic_short_and_distinct() -> None:
    assert client_order_id("i1", 3) == "i1-3"
    long_id = "strategy/with spaces and a very long intent identifier"
    first = client_order_id(long_id, 1)
    assert first == client_order_id(long_id, 1) and len(first) <= 36 and first != client_order_id(long_id, 2)
    assert " " not in first


def test_route_settings_reject_nonsense(router_config: RouterConfig) -> None:
    with pytest.raises(ValueError, match="poll_interval_ms"):
        settings(router_config, poll_interval_ms=0.0)
    with pytest.raises(ValueError, match="max_venue_retries"):
        settings(router_config, max_venue_retries=-1)
    with pytest.raises(ValueError, match="position_mode"):
        settings(router_config, position_mode="net")


class _GtxExpiringVenue(ScriptedVenue):
    """Answers a crossing post-only order with status ``expired`` instead of an error (Binance GTX)."""

    def place_order(self, request: OrderRequest) -> OrderState:
        try:
            return super().place_order(request)
        except Exception:
            return OrderState(request.client_order_id, request.symbol, "expired", request.qty, 0.0, request.price, ())


def test_expired_post_only_counts_as_a_rejection(router_config: RouterConfig) -> None:
    quotes = [BASE_QUOTE, Quote(5 * MS, 99.90, 99.98, 5.0, 5.0)]
    v = _GtxExpiringVenue("BTCUSDT", quotes, contract=LINEAR, fills=[ScriptedFill(300 * MS, 1.0)], faults=[],
                          maker_fee_bps=2.0, taker_fee_bps=5.0, entry_latency_ns=LATENCY_NS,
                          cancel_latency_ns=LATENCY_NS)
    event = run(router_config, v)
    assert event.post_only_reject_count == 1 and event.outcome == "filled" and len(v.requests) == 2


class _EndingClock:
    """A replay clock that cannot pass ``end_ns`` (as a simulated venue's replay ends)."""

    def __init__(self, end_ns: int) -> None:
        self._now_ns, self._end_ns = 0, end_ns

    def now_ns(self) -> int:
        return self._now_ns

    def sleep_until(self, ts_ns: int) -> None:
        if ts_ns > self._end_ns:
            raise VenueError(f"replay ends at {self._end_ns}")
        self._now_ns = max(self._now_ns, ts_ns)


def test_a_clock_that_stops_ends_the_route_with_one_event(router_config: RouterConfig) -> None:
    v = venue()
    v._clock = _EndingClock(500 * MS)  # type: ignore[assignment]
    event = run(router_config, v)
    assert event.outcome == "unfilled" and event.error is not None and "clock stopped" in event.error
    assert len(v.requests) == 1


@pytest.mark.parametrize("name", ["router_tuner.router.policy", "router_tuner.router.routing.machine",
                                  "router_tuner.router.routing.scripted"])
def test_docstring_examples_run(name: str) -> None:
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0, f"{name} has no example"
    assert result.failed == 0


def test_route_order_from_intent_keeps_the_intent_flags() -> None:
    intent = Intent(intent_id="x7", symbol="BTCUSDC", side="sell", size_hint_usd=500.0, tier="CORE", strategy="s",
                    reduce_only=True, close_position=False, position_side="LONG", is_stop=False, ts_ns=1)
    built = RouteOrder.from_intent(intent, qty=0.25, quote="USDC", tick_size=0.1, qty_step=0.001)
    assert (built.intent_id, built.symbol, built.side, built.qty, built.reduce_only, built.close_position,
            built.position_side, built.quote, built.is_close) == (
        "x7", "BTCUSDC", "sell", 0.25, True, False, "LONG", "USDC", True)


# --- contract specs: every venue states one, the router refuses a venue that cannot -----------------

class _NoContractVenue:
    """A venue that implements everything but ``contract``: the router must refuse it, not guess linear."""

    def __init__(self, inner: ScriptedVenue) -> None:
        self.inner, self.name = inner, "no-contract"

    @property
    def clock(self) -> ScriptedClock:
        return self.inner.clock

    def top_of_book(self, symbol: str) -> TopOfBook:
        return self.inner.top_of_book(symbol)

    def place_order(self, request: OrderRequest) -> OrderState:
        return self.inner.place_order(request)


_RawSpec = dataclasses.make_dataclass("_RawSpec", ["contract_type", "contract_size"])
"""A spec-shaped record that skips :class:`Contract`'s validation, to hand venues bad specs."""


class _BadContractVenue(ScriptedVenue):
    """States a spec that is none (an unknown type)."""

    def contract(self, symbol: str) -> ContractSpec:
        return _RawSpec("quanto", 1.0)


def test_route_refuses_a_venue_that_states_no_contract_and_sends_nothing(router_config: RouterConfig) -> None:
    inner = venue()
    with pytest.raises(TypeError, match="does not state contract specs"):
        run(router_config, _NoContractVenue(inner))  # type: ignore[arg-type]
    assert inner.requests == []


def test_route_refuses_a_venue_that_states_an_invalid_contract(router_config: RouterConfig) -> None:
    v = _BadContractVenue("BTCUSDT", [BASE_QUOTE], contract=LINEAR, fills=[], faults=[], maker_fee_bps=2.0,
                          taker_fee_bps=5.0, entry_latency_ns=LATENCY_NS, cancel_latency_ns=LATENCY_NS)
    with pytest.raises(ValueError, match=r"contract\('BTCUSDT'\).*contract_type"):
        run(router_config, v)
    assert v.requests == []


def test_ledger_refuses_a_missing_contract() -> None:
    touch = TopOfBook(symbol="BTCUSDT", bid=100.0, bid_qty=1.0, ask=100.1, ask_qty=1.0, ts_ns=0)
    with pytest.raises(ValueError, match=r"RouteLedger\(BTCUSDT\).contract: contract_type"):
        RouteLedger(order=order(), arrival=touch, arrival_ts_ns=0, contract=None)  # type: ignore[arg-type]


def test_scripted_venue_states_its_contract_and_refuses_a_bad_one() -> None:
    assert venue().contract("BTCUSDT") is LINEAR
    with pytest.raises(OrderNotFound):
        venue().contract("ETHUSDT")
    with pytest.raises(ValueError, match="ScriptedVenue\\(BTCUSDT\\) contract: contract_size"):
        ScriptedVenue("BTCUSDT", [BASE_QUOTE], contract=_RawSpec("linear", 0.0), fills=[], faults=[],
                      maker_fee_bps=2.0, taker_fee_bps=5.0, entry_latency_ns=0, cancel_latency_ns=0)


def test_inverse_scripted_route_charges_fees_on_contract_notional(router_config: RouterConfig) -> None:
    """3 BTCUSD_PERP contracts of 100 USD crossed at 60,001: fee 3 x 100 x 5 bps = 0.15 USD, fees_bps 5."""
    quote = Quote(0, 60_000.0, 60_001.0, 50.0, 50.0)
    v = ScriptedVenue("BTCUSD_PERP", [quote], contract=Contract("inverse", 100.0), fills=[], faults=[],
                      maker_fee_bps=2.0, taker_fee_bps=5.0, entry_latency_ns=LATENCY_NS, cancel_latency_ns=LATENCY_NS)
    o = order("BTCUSD_PERP", qty=3.0, quote="USD", qty_step=1.0)
    event = run(router_config, v, policy(router_config, "BTCUSD_PERP", taker_bias=1.0), o)
    assert event.routed_as == "taker" and event.filled_qty == 3.0
    assert sum(f.fee_usd for f in event.fills) == pytest.approx(0.15)
    assert event.fees_bps == pytest.approx(5.0)


class _RejectingTakerVenue(ScriptedVenue):
    """Answers every IOC order with status ``rejected`` and no fills (a refusal reported as a state)."""

    def place_order(self, request: OrderRequest) -> OrderState:
        if request.time_in_force != "IOC":
            return super().place_order(request)
        self.requests.append(request)
        return OrderState(request.client_order_id, request.symbol, "rejected", request.qty, 0.0, request.price, ())


def test_taker_leg_the_venue_rejects_ends_the_route_rejected(router_config: RouterConfig) -> None:
    v = _RejectingTakerVenue("BTCUSDT", [BASE_QUOTE], contract=LINEAR, fills=[], faults=[], maker_fee_bps=2.0,
                             taker_fee_bps=5.0, entry_latency_ns=LATENCY_NS, cancel_latency_ns=LATENCY_NS)
    event = run(router_config, v, pol=policy(router_config, maker_first=False))
    assert_complete(event, v)
    assert (event.outcome, event.routed_as, event.started_maker) == ("rejected", "unfilled", False)
    assert event.error == "taker leg i1-1 rejected by the venue" and len(v.requests) == 1


class _MislabellingVenue(ScriptedVenue):
    """Reports every fill under a client order id that is not the order's own: a protocol violation."""

    def fetch_order(self, symbol: str, client_order_id: str) -> OrderState:
        state = super().fetch_order(symbol, client_order_id)
        fills = tuple(msgspec.structs.replace(f, client_order_id="someone-else") for f in state.fills)
        return msgspec.structs.replace(state, fills=fills)


def test_a_fill_reported_under_another_order_ends_the_route_with_one_event(router_config: RouterConfig) -> None:
    v = _MislabellingVenue("BTCUSDT", [BASE_QUOTE], contract=LINEAR, fills=[ScriptedFill(500 * MS, 1.0)], faults=[],
                           maker_fee_bps=2.0, taker_fee_bps=5.0, entry_latency_ns=LATENCY_NS,
                           cancel_latency_ns=LATENCY_NS)
    event = run(router_config, v)
    assert event.error is not None and event.error.startswith("VenueProtocolError: venue reported fill")
    assert "order may still rest" in event.error and event.fills == () and event.outcome == "unfilled"
