"""The double-order safety path of the live venue: a new order whose outcome is unknown (the reply timed out, the
connection dropped, or a 5xx said the execution status is unknown), before or after the fake's matching engine took
it, with the fake's order query lagging behind it. Whatever happens, the fake creates at most one order per client
order id, and what the venue answers is that order or an error saying the outcome is still unknown. A cancel whose
outcome is unknown while the order filled ends its route with the fill, and nothing more is sent."""

from __future__ import annotations

import itertools
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from router_tuner.config.loader import load_config
from router_tuner.executor.engine.live import LoopVenue
from router_tuner.router.policy import RouterPolicy
from router_tuner.router.venue import OrderNotFound, VenueTimeout
from tests.fakes.binance_usdm import ORDER_PATH, BinanceUsdmError, Drop, ErrorReply, FakeBinanceUsdm, Fault, Stall
from tests.venues.ccxt_support import STALL_S, Connect, buy_order, request, route_event, start_route

UNKNOWN_5XX = ErrorReply(-1000, "An unknown error occured while processing the request.", 500)
LOST_BEFORE: tuple[Fault, ...] = (Stall(STALL_S, create_first=False), Drop(create_first=False), UNKNOWN_5XX)
LOST_AFTER: tuple[Fault, ...] = (Stall(STALL_S, create_first=True), Drop(create_first=True))


def order_calls(fake: FakeBinanceUsdm, cid: str) -> list[str]:
    """The methods of the requests the fake saw on its order endpoint for ``cid``, in order."""
    with fake.state.lock:
        return [method for method, path, p in fake.state.requests
                if path == ORDER_PATH and cid in (p.get("newClientOrderId"), p.get("origClientOrderId"))]


@pytest.mark.parametrize("lost", LOST_AFTER, ids=type)
def test_a_lost_reply_to_an_accepted_order_is_answered_by_a_query_not_a_resend(
    fake: FakeBinanceUsdm, venue: LoopVenue, lost: Fault
) -> None:
    fake.fail_next("POST", ORDER_PATH, lost)
    state = venue.place_order(request("lost-after"))
    assert (state.client_order_id, state.status) == ("lost-after", "open")
    assert order_calls(fake, "lost-after") == ["POST", "GET"]
    assert fake.created_for("lost-after") == 1


@pytest.mark.parametrize("lost", LOST_BEFORE, ids=type)
def test_a_send_lost_before_the_venue_took_it_is_resent_once_under_the_same_id(
    fake: FakeBinanceUsdm, venue: LoopVenue, lost: Fault
) -> None:
    fake.fail_next("POST", ORDER_PATH, lost)
    state = venue.place_order(request("lost-before"))
    assert (state.client_order_id, state.status) == ("lost-before", "open")
    assert order_calls(fake, "lost-before") == ["POST", "GET", "POST"]
    assert fake.created_for("lost-before") == 1


@pytest.mark.parametrize("second", LOST_BEFORE, ids=type)
def test_a_resend_whose_outcome_is_unknown_too_ends_in_venue_timeout(
    fake: FakeBinanceUsdm, venue: LoopVenue, second: Fault
) -> None:
    fake.fail_next("POST", ORDER_PATH, Drop(create_first=False))
    fake.fail_next("POST", ORDER_PATH, second)
    with pytest.raises(VenueTimeout, match=r"twice-lost: outcome unknown after one resend.*not resending again"):
        venue.place_order(request("twice-lost"))
    assert order_calls(fake, "twice-lost") == ["POST", "GET", "POST", "GET"]
    assert fake.created_for("twice-lost") == 0


@pytest.mark.parametrize("second", LOST_AFTER, ids=type)
def test_a_resend_lost_after_the_venue_took_it_is_found_by_the_last_query(
    fake: FakeBinanceUsdm, venue: LoopVenue, second: Fault
) -> None:
    fake.fail_next("POST", ORDER_PATH, Stall(STALL_S, create_first=False))
    fake.fail_next("POST", ORDER_PATH, second)
    state = venue.place_order(request("late"))
    assert (state.client_order_id, state.status) == ("late", "open")
    assert order_calls(fake, "late") == ["POST", "GET", "POST", "GET"]
    assert fake.created_for("late") == 1


def test_a_query_lagging_behind_an_accepted_order_makes_the_resend_a_duplicate_that_resolves_to_it(
    fake: FakeBinanceUsdm, venue: LoopVenue
) -> None:
    # The order exists, the query does not see it yet: the resend is refused by the venue (-4116, the same client
    # id is live) and the query after that refusal finds the one order.
    fake.fail_next("POST", ORDER_PATH, Drop(create_first=True))
    fake.lag_queries("lagged", 1)
    state = venue.place_order(request("lagged"))
    assert (state.client_order_id, state.status, state.qty) == ("lagged", "open", 0.002)
    assert order_calls(fake, "lagged") == ["POST", "GET", "POST", "GET"]
    assert fake.created_for("lagged") == 1


def test_a_duplicate_reply_while_the_query_still_lags_is_an_unknown_outcome_not_a_rejection(
    fake: FakeBinanceUsdm, venue: LoopVenue
) -> None:
    # The order rests at the venue: a rejection would tell the router nothing was placed.
    fake.fail_next("POST", ORDER_PATH, Drop(create_first=True))
    fake.lag_queries("unseen", 2)
    with pytest.raises(VenueTimeout, match=r"unseen: the resend was refused as a duplicate .*-4116.*query it later"):
        venue.place_order(request("unseen"))
    assert order_calls(fake, "unseen") == ["POST", "GET", "POST", "GET"]
    assert fake.created_for("unseen") == 1
    assert venue.fetch_order("BTCUSDT", "unseen").status == "open"  # queried later, once the query caught up


@pytest.mark.parametrize("lost", (*LOST_BEFORE, *LOST_AFTER), ids=repr)
def test_an_ioc_order_not_found_after_a_lost_reply_is_not_resent(
    fake: FakeBinanceUsdm, venue: LoopVenue, lost: Fault
) -> None:
    # Taken at once, an IOC order has already ended when the query lags behind it: the venue's duplicate check
    # (live orders only) would let a resend through as a second order.
    fake.fail_next("POST", ORDER_PATH, lost)
    fake.lag_queries("ioc-lost", 1)
    with pytest.raises(VenueTimeout, match=r"ioc-lost: outcome unknown .*an IOC order is not resent"):
        venue.place_order(request("ioc-lost", order_type="market", price=None, post_only=False))
    assert order_calls(fake, "ioc-lost") == ["POST", "GET"]
    taken = isinstance(lost, (Stall, Drop)) and lost.create_first
    assert fake.created_for("ioc-lost") == int(taken)
    if taken:
        assert venue.fetch_order("BTCUSDT", "ioc-lost").status == "filled"  # queried later: the one order


CIDS = itertools.count()
FAULTS = st.sampled_from((*LOST_BEFORE, *LOST_AFTER))


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(faults=st.lists(FAULTS, max_size=2), lag=st.integers(0, 2), ioc=st.booleans())
def test_no_script_of_lost_replies_and_lagging_queries_makes_a_second_order(
    fake: FakeBinanceUsdm, venue: LoopVenue, faults: list[Fault], lag: int, ioc: bool
) -> None:
    cid = f"prop-{next(CIDS)}"
    with fake.state.lock:
        fake.state.faults.clear()
    for fault in faults:
        fake.fail_next("POST", ORDER_PATH, fault)
    fake.lag_queries(cid, lag)
    order = request(cid, order_type="market", price=None, post_only=False) if ioc else request(cid)
    try:
        state = venue.place_order(order)
    except VenueTimeout:
        state = None
    assert fake.created_for(cid) <= 1
    assert fake.posts_for(cid) <= 2
    if state is not None:
        # What the venue answered is the fake's one order under that id.
        assert fake.created_for(cid) == 1
        assert (state.client_order_id, state.status) == (cid, "filled" if ioc else "open")
    else:
        fake.lag_queries(cid, 0)
        if fake.created_for(cid) == 0:
            with pytest.raises(OrderNotFound):
                venue.fetch_order("BTCUSDT", cid)
        else:
            assert venue.fetch_order("BTCUSDT", cid).client_order_id == cid


@pytest.mark.parametrize(("code", "http_status"), [(-1000, 500), (-1001, 500), (-1006, 500), (-1007, 503)])
def test_a_cancel_answered_5xx_while_the_order_filled_ends_the_route_with_the_fill_and_no_fallback(
    fake: FakeBinanceUsdm, connect: Connect, code: int, http_status: int
) -> None:
    def fill_then_fail(params: dict[str, str], _api_key: str | None) -> Any:
        fake.fill(params["origClientOrderId"], "0.005")  # the maker order filled as the cancel reached the venue
        raise BinanceUsdmError(code, "execution status unknown", http_status)

    live = connect()
    with fake.state.lock:
        fake.state.extra_routes[("DELETE", ORDER_PATH)] = fill_then_fail
    policy = replace(RouterPolicy.from_static("BTCUSDT", load_config().router), taker_bias=0.0, maker_ttl_ms=50.0,
                     reprice_attempts=0)
    start_route(live, buy_order("c5", 0.005), policy)
    event = route_event(live)
    assert (event.outcome, event.routed_as, event.filled_qty, event.used_fallback, event.error) == (
        "filled", "maker", 0.005, False, None)
    calls = order_calls(fake, "c5-1")  # polls, the cancel, and the query that resolved it
    assert calls.count("DELETE") == 1 and calls[-2:] == ["DELETE", "GET"]
    assert len(fake.order_requests("POST")) == 1  # no taker fallback: no second position
