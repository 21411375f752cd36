"""The route's bookkeeping: fills counted once by trade id, per-order filled quantity, and the final event.

A venue may report the same fill in a poll, in the cancel's final state and again in a later poll;
``RouteLedger.observe`` keeps each ``trade_id`` once, so a fill that lands while a cancel is in flight is
counted exactly once and the remainder is computed from what really filled. Fills the venue's own rules rule
out for the order sent (``RouteLedger.expect``; ``router.routing.anomaly``) are counted as reported, logged once
each, and listed in the event's ``error`` under ``venue_anomaly(...)``; fills whose fee could not be priced in the
quote (``OrderState.unpriced_fees``) count too, each logged once and listed under ``fee_unpriced(...)``.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field

from router_tuner.router.contract import ContractSpec, check_spec, notional_usd
from router_tuner.router.events import (
    FEE_UNPRICED,
    SCHEMA_VERSION,
    VENUE_ANOMALY,
    Fill,
    Outcome,
    RoutedAs,
    RouterEvent,
    with_flag,
)
from router_tuner.router.policy import RouterPolicy
from router_tuner.router.routing.anomaly import fill_anomaly, overfill_anomaly
from router_tuner.router.routing.order import RouteOrder, floor_qty
from router_tuner.router.venue import OrderRequest, OrderState, TopOfBook, VenueProtocolError

logger = logging.getLogger(__name__)


@dataclass(slots=True)
class RouteLedger:
    """Everything a route has seen and done, in order; turned into one ``RouterEvent`` at the end.

    ``contract`` is the instrument's contract spec as the venue states it (required, validated):
    ``fees_bps`` is the fills' fees over their USD notional (:func:`~router.contract.notional_usd`), so it
    stays a ratio on inverse contracts, whose ``price * qty`` is not a notional.
    """

    order: RouteOrder
    arrival: TopOfBook
    arrival_ts_ns: int
    contract: ContractSpec
    fills: list[Fill] = field(default_factory=list)
    reprice_count: int = 0
    cancel_count: int = 0
    post_only_reject_count: int = 0
    started_maker: bool = False
    used_fallback: bool = False
    route_propensity: float = 1.0
    error: str | None = None
    rejected: bool = False
    anomalies: list[str] = field(default_factory=list)
    unpriced_fees: list[str] = field(default_factory=list)
    _requests: dict[str, OrderRequest] = field(default_factory=dict)
    _trade_ids: set[str] = field(default_factory=set)
    _filled_by_order: dict[str, float] = field(default_factory=dict)
    _whole_qty: float = field(init=False)

    def __post_init__(self) -> None:
        check_spec(self.contract, where=f"RouteLedger({self.order.symbol}).contract")
        self._whole_qty = floor_qty(self.order.qty, self.order.qty_step)

    def expect(self, request: OrderRequest) -> None:
        """Remember an order as sent (before sending it): its fills are checked against it as they arrive."""
        self._requests[request.client_order_id] = request

    def observe(self, state: OrderState) -> None:
        """Record an order state: new fills once each, and the order's filled quantity (never lowered).

        A fill or a filled quantity the sent order rules out is recorded as reported and flagged once, as is a fill
        whose fee the venue could not price in the quote."""
        client_id = state.client_order_id
        sent = self._requests.get(client_id)
        known = self._filled_by_order.get(client_id, 0.0)
        unpriced = {fee.trade_id: fee for fee in state.unpriced_fees}
        new_qty = 0.0
        for fill in state.fills:
            if fill.trade_id in self._trade_ids:
                continue
            if fill.client_order_id != client_id:
                raise VenueProtocolError(f"venue reported fill {fill.trade_id} of {fill.client_order_id} "
                                         f"under order {client_id}")
            self._trade_ids.add(fill.trade_id)
            self.fills.append(fill)
            new_qty += fill.qty
            if sent is not None:
                self._flag(fill_anomaly(sent, fill))
            if fill.trade_id in unpriced:
                self._flag_unpriced(unpriced[fill.trade_id].describe(client_id))
        if new_qty or state.filled_qty > known:
            fill_sum = sum(f.qty for f in self.fills if f.client_order_id == client_id)
            filled = self._filled_by_order[client_id] = max(known, fill_sum, state.filled_qty)
            if sent is not None and overfill_anomaly(sent, known) is None:  # flagged once, when it first overfills
                self._flag(overfill_anomaly(sent, filled))

    def _flag(self, anomaly: str | None) -> None:
        if anomaly is None:
            return
        self.anomalies.append(anomaly)
        logger.warning("%s %s: %s: %s; counted as reported, not learned", self.order.intent_id, self.order.symbol,
                       VENUE_ANOMALY, anomaly)

    def _flag_unpriced(self, what: str) -> None:
        self.unpriced_fees.append(what)
        logger.warning("%s %s: %s: %s; the fill counts, the event is not learned", self.order.intent_id,
                       self.order.symbol, FEE_UNPRICED, what)

    def remaining_qty(self) -> float:
        """What may still be ordered: the quantity less the most any order is known to have filled.

        Uses the larger of the venue's ``filled_qty`` and the fills seen per order, so a fill reported in
        the status before its trade arrives is never re-ordered. Before any fill it is the whole order on the lot
        grid, computed once (rounding to the grid is a tenth of the time to the first order request).
        """
        if not self._filled_by_order:
            return self._whole_qty
        return floor_qty(max(self.order.qty - sum(self._filled_by_order.values()), 0.0), self.order.qty_step)

    def to_event(self, policy: RouterPolicy, finished_ts_ns: int) -> RouterEvent:
        """The single outcome of this route; costs are ``None`` only when nothing filled."""
        order, arrival = self.order, self.arrival
        fills = tuple(self.fills)
        filled_qty = math.fsum(f.qty for f in fills)
        maker_qty = math.fsum(f.qty for f in fills if f.liquidity == "maker")
        avg_price = slippage_bps = fees_bps = cost_bps = time_to_fill_ms = None
        if fills:
            notional = sum(f.price * f.qty for f in fills)
            avg_price = notional / filled_qty
            sign = 1.0 if order.side == "buy" else -1.0
            slippage_bps = sign * (avg_price - arrival.mid) / arrival.mid * 1e4
            fee_base_usd = math.fsum(notional_usd(self.contract, f.price, f.qty) for f in fills)
            fees_bps = sum(f.fee_usd for f in fills) / fee_base_usd * 1e4
            cost_bps = slippage_bps + fees_bps
            time_to_fill_ms = (max(f.ts_ns for f in fills) - self.arrival_ts_ns) / 1e6
        return RouterEvent(
            schema_version=SCHEMA_VERSION, intent_id=order.intent_id, symbol=order.symbol, side=order.side,
            qty=order.qty, reduce_only=order.reduce_only, close_position=order.close_position,
            position_side=order.position_side, arrival_bid=arrival.bid, arrival_ask=arrival.ask,
            arrival_mid=arrival.mid, arrival_ts_ns=self.arrival_ts_ns, policy_id=policy.policy_id,
            policy_version=policy.version, arm=policy.arm, maker_offset_bps=policy.maker_offset_bps,
            taker_bias=policy.taker_bias, propensity=policy.propensity, route_propensity=self.route_propensity,
            started_maker=self.started_maker, is_maker_final=bool(fills) and maker_qty == filled_qty,
            used_fallback=self.used_fallback, routed_as=_routed_as(filled_qty, maker_qty),
            outcome=self._outcome(filled_qty), reprice_count=self.reprice_count, cancel_count=self.cancel_count,
            post_only_reject_count=self.post_only_reject_count, fills=fills, filled_qty=filled_qty,
            avg_price=avg_price, slippage_bps=slippage_bps, fees_bps=fees_bps, cost_bps=cost_bps,
            time_to_fill_ms=time_to_fill_ms, realized_pnl_usd=None, error=self._error(),
            finished_ts_ns=finished_ts_ns,
        )

    def _error(self) -> str | None:
        """The route's error, followed by the venue anomalies it saw (``venue_anomaly(a; b)``) and the fees it could
        not price (``fee_unpriced(c)``)."""
        error = self.error
        if self.anomalies:
            error = with_flag(error, VENUE_ANOMALY, self.anomalies)
        if self.unpriced_fees:
            error = with_flag(error, FEE_UNPRICED, self.unpriced_fees)
        return error

    def _outcome(self, filled_qty: float) -> Outcome:
        if filled_qty <= 0.0:
            return "rejected" if self.rejected else "unfilled"
        if self.order.qty - filled_qty < self.order.qty_step * (1 - 1e-9):
            return "filled"
        return "partial"


def _routed_as(filled_qty: float, maker_qty: float) -> RoutedAs:
    if filled_qty <= 0.0:
        return "unfilled"
    if maker_qty == filled_qty:
        return "maker"
    if maker_qty == 0.0:
        return "taker"
    return "mixed"
