"""Fills first seen when the executor settles an intent's legs are checked as the route checks its own."""

from __future__ import annotations

import msgspec

from router_tuner.config.loader import load_config
from router_tuner.executor.settle import settled_event
from router_tuner.router.events import Fill
from router_tuner.router.venue import OrderState, TopOfBook, UnpricedFee
from router_tuner.tuner.reward import RewardFilter
from tests.router.test_route import LINEAR, order, policy

ARRIVAL = TopOfBook(symbol="BTCUSDT", bid=100.0, ask=100.1, bid_qty=5.0, ask_qty=5.0, ts_ns=0)


def _leg(client_order_id: str, *, qty: float, price: float | None, fills: tuple[Fill, ...]) -> OrderState:
    return OrderState(client_order_id=client_order_id, symbol="BTCUSDT", status="filled", qty=qty,
                      filled_qty=sum(f.qty for f in fills), price=price, fills=fills)


def _fill(trade_id: str, client_order_id: str, price: float, qty: float) -> Fill:
    return Fill(trade_id=trade_id, client_order_id=client_order_id, price=price, qty=qty, fee_usd=0.0,
                liquidity="maker", ts_ns=1)


def test_a_fill_worse_than_its_legs_limit_or_beyond_its_quantity_found_at_settlement_is_flagged_not_learned() -> None:
    """Settlement (a route that ended with an order that may still rest, or a restart after a kill) built its event
    from the venue's states without checking them: such a fill was learned as the arm's cost."""
    config = load_config().router
    worse = _leg("s-1-1", qty=1.0, price=100.0, fills=(_fill("t1", "s-1-1", 100.5, 1.0),))  # a buy limit of 100
    beyond = _leg("s-1-2", qty=0.5, price=None, fills=(_fill("t2", "s-1-2", 100.1, 0.8),))  # more than its 0.5
    event = settled_event(order=order(intent_id="s-1"), policy=policy(config), arrival=ARRIVAL, arrival_ts_ns=0,
                          states=(worse, beyond), finished_ts_ns=2, note="settled on restart", routed=None,
                          contract=LINEAR)
    assert event.filled_qty == 1.8  # counted as reported
    assert event.error is not None and event.error.startswith("settled on restart; venue_anomaly(")
    assert "worse than its buy limit 100" in event.error and "more than its quantity 0.5" in event.error
    assert RewardFilter(min_cost_bps=-20.0, max_cost_bps=50.0).reward_from_event(event) is None
    clean = settled_event(order=order(intent_id="s-2"), policy=policy(config), arrival=ARRIVAL, arrival_ts_ns=0,
                          states=(_leg("s-2-1", qty=1.0, price=100.0, fills=(_fill("t3", "s-2-1", 99.9, 1.0),)),),
                          finished_ts_ns=2, note="settled on restart", routed=None, contract=LINEAR)
    assert clean.error == "settled on restart"


def test_a_fill_whose_fee_was_not_priced_found_at_settlement_counts_and_is_flagged_not_learned() -> None:
    """The venue charged the fee in an asset nothing prices in the quote (``OrderState.unpriced_fees``): settling on
    restart counts the fill (positions and filled quantity) and flags the event, once per fill."""
    config = load_config().router
    fill = _fill("t9", "s-3-1", 99.9, 1.0)
    fee = UnpricedFee(trade_id="t9", amount=0.0002, currency="BNB", quote="USDC", reason="no BNB/USDC market")
    leg = msgspec.structs.replace(_leg("s-3-1", qty=1.0, price=100.0, fills=(fill,)), unpriced_fees=(fee,))
    event = settled_event(order=order(intent_id="s-3"), policy=policy(config), arrival=ARRIVAL, arrival_ts_ns=0,
                          states=(leg, leg), finished_ts_ns=2, note="settled on restart", routed=None, contract=LINEAR)
    assert (event.filled_qty, event.fills, event.fees_bps) == (1.0, (fill,), 0.0)
    assert event.error == ("settled on restart; fee_unpriced(fill t9 of s-3-1: fee 0.0002 BNB not priced in USDC (no "
                           "BNB/USDC market), left out of fee_usd)")
    reward = RewardFilter(min_cost_bps=-20.0, max_cost_bps=50.0)
    assert reward.reward_from_event(event) is None and reward.rejections == {"fee_unpriced": 1}
