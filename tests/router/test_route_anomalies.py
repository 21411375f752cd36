"""Fills the venue's own rules rule out (``router.routing.anomaly``): counted as reported, flagged, not learned."""

from __future__ import annotations

import logging
from collections.abc import Callable

import msgspec
import pytest

from router_tuner.config.loader import load_config
from router_tuner.config.models import RouterConfig
from router_tuner.router.events import Fill
from router_tuner.router.routing.scripted import ScriptedFill, ScriptedVenue
from router_tuner.router.venue import OrderRequest, OrderState
from router_tuner.tuner.reward import RewardFilter
from tests.router.test_route import BASE_QUOTE, LATENCY_NS, LINEAR, MS, assert_complete, policy, run

Rewrite = Callable[[Fill], Fill]


@pytest.fixture(scope="module")
def router_config() -> RouterConfig:
    return load_config().router


class _MisreportingVenue(ScriptedVenue):
    """Reports every fill of the orders it answers for rewritten by ``rewrite`` (a venue that misreports)."""

    def __init__(self, rewrite: Rewrite, fills: list[ScriptedFill]) -> None:
        super().__init__("BTCUSDT", [BASE_QUOTE], contract=LINEAR, fills=fills, faults=[], maker_fee_bps=2.0,
                         taker_fee_bps=5.0, entry_latency_ns=LATENCY_NS, cancel_latency_ns=LATENCY_NS)
        self._rewrite = rewrite

    def _misreported(self, state: OrderState) -> OrderState:
        fills = tuple(self._rewrite(f) for f in state.fills)
        return msgspec.structs.replace(state, fills=fills, filled_qty=sum(f.qty for f in fills))

    def place_order(self, request: OrderRequest) -> OrderState:
        return self._misreported(super().place_order(request))

    def fetch_order(self, symbol: str, client_order_id: str) -> OrderState:
        return self._misreported(super().fetch_order(symbol, client_order_id))

    def cancel_order(self, symbol: str, client_order_id: str) -> OrderState:
        return self._misreported(super().cancel_order(symbol, client_order_id))


def _anomaly_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "venue_anomaly" in r.getMessage()]


def test_a_post_only_fill_reported_as_taker_counts_but_is_flagged_once_and_not_learned(
    router_config: RouterConfig, caplog: pytest.LogCaptureFixture
) -> None:
    v = _MisreportingVenue(lambda f: msgspec.structs.replace(f, liquidity="taker"), [ScriptedFill(300 * MS, 1.0)])
    with caplog.at_level(logging.WARNING):
        event = run(router_config, v)
    assert_complete(event, v)
    assert (event.outcome, event.routed_as, event.filled_qty) == ("filled", "taker", 1.0)  # the money moved
    assert event.error == "venue_anomaly(fill T1 of i1-1 reported as taker on a post-only order)"
    assert _anomaly_lines(caplog) == [
        "i1 BTCUSDT: venue_anomaly: fill T1 of i1-1 reported as taker on a post-only order; counted as reported, "
        "not learned"]
    reward = RewardFilter(min_cost_bps=-50.0, max_cost_bps=50.0)
    assert reward.reward_from_event(event) is None and reward.rejections == {"venue_anomaly": 1}


def test_a_fill_worse_than_the_limit_is_flagged_with_both_prices(router_config: RouterConfig) -> None:
    v = _MisreportingVenue(lambda f: msgspec.structs.replace(f, price=100.5), [ScriptedFill(300 * MS, 1.0)])
    event = run(router_config, v)
    limit = v.requests[0].price
    assert event.avg_price == 100.5 and event.cost_bps is not None and event.cost_bps > 40.0  # cost as charged
    assert event.error == f"venue_anomaly(fill T1 of i1-1 at 100.5, worse than its buy limit {limit:.12g})"


def test_an_ioc_fill_reported_as_maker_is_flagged(router_config: RouterConfig) -> None:
    v = _MisreportingVenue(lambda f: msgspec.structs.replace(f, liquidity="maker"), [])
    event = run(router_config, v, policy(router_config, taker_bias=1.0))
    assert event.outcome == "filled" and event.error is not None
    assert event.error.startswith("venue_anomaly(fill ") and event.error.endswith(" of i1-1 reported as maker on "
                                                                                  "an IOC order)")


def test_an_overfill_is_counted_in_full_flagged_once_and_orders_nothing_more(
    router_config: RouterConfig, caplog: pytest.LogCaptureFixture
) -> None:
    v = _MisreportingVenue(lambda f: msgspec.structs.replace(f, qty=f.qty * 1.5), [ScriptedFill(300 * MS, 1.0)])
    with caplog.at_level(logging.WARNING):
        event = run(router_config, v)
    assert len(v.requests) == 1 and event.filled_qty == 1.5 and event.outcome == "filled"
    assert event.error == "venue_anomaly(i1-1 filled 1.5, more than its quantity 1)"
    assert len(_anomaly_lines(caplog)) == 1


def test_a_route_error_and_an_anomaly_are_both_kept(router_config: RouterConfig) -> None:
    def maker_leg_as_taker(fill: Fill) -> Fill:
        return msgspec.structs.replace(fill, liquidity="taker") if fill.client_order_id == "i1-1" else fill

    v = _MisreportingVenue(maker_leg_as_taker, [ScriptedFill(300 * MS, 0.6)])
    event = run(router_config, v, policy(router_config, reprice_attempts=0, max_taker_slippage_bps=1.0))
    assert event.outcome == "partial" and len(v.requests) == 2
    assert event.error == ("taker_leg_unfilled_within_slippage_cap(1.0bps); "
                           "venue_anomaly(fill T1 of i1-1 reported as taker on a post-only order)")
