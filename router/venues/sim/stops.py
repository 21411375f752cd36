"""Protective orders of the simulated venue: when the tape's working price reaches a stop's trigger.

The working price follows Binance's ``workingType``: ``CONTRACT_PRICE`` is the last trade, so a stop
triggers at the first tape trade that meets its condition; ``MARK_PRICE`` is the mark, which a tape does
not record: the mid of the level-1 quotes stands in for it (a documented assumption: the mark is an index
blend that follows the mid closely on a liquid perp). Prices are compared as the tape's scaled integers
(the mid as bid + ask against twice the trigger), so a trigger at the trade price itself counts.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from router.events import Fill
from router.venue import StopRequest, StopState, StopStatus
from router.venues.sim.book import TapeBook


@dataclass(slots=True)
class SimStop:
    """Venue-side state of one protective order; ``trigger_px`` in the tape's price units."""

    request: StopRequest
    book: TapeBook
    trigger_px: int
    status: StopStatus = "working"
    triggered_ts_ns: int | None = None
    fills: list[Fill] = field(default_factory=list)

    @property
    def falls_through(self) -> bool:
        """True when the condition is "price <= trigger" (stop sell, take-profit buy)."""
        return (self.request.kind == "stop_market") == (self.request.side == "sell")

    def met_by(self, price_x2: np.ndarray | int) -> np.ndarray | bool:
        """Condition on prices given at twice their value (so a mid needs no division)."""
        trigger_x2 = 2 * self.trigger_px
        return price_x2 <= trigger_x2 if self.falls_through else price_x2 >= trigger_x2

    def met_now(self, ts_ns: int) -> bool:
        """Whether the working price at ``ts_ns`` already meets the condition (Binance -2021 at arrival)."""
        book = self.book
        if self.request.working_type == "CONTRACT_PRICE":
            i = int(book.trade_ts.searchsorted(ts_ns, side="right")) - 1
            if i >= 0:
                return bool(self.met_by(2 * int(book.trade_px[i])))
        quote = book.quote_at(ts_ns)  # no trade yet: the mid is the best estimate of the last price
        return bool(self.met_by(quote.bid_px + quote.ask_px))

    def first_trigger_ns(self, t0_ns: int, t1_ns: int) -> int | None:
        """Earliest time in (t0, t1] at which the working price meets the condition, if any."""
        book = self.book
        if self.request.working_type == "CONTRACT_PRICE":
            ts, prices_x2 = _window(book.trade_ts, t0_ns, t1_ns), None
            if ts is not None:
                prices_x2 = 2 * book.trade_px[ts[0]:ts[1]]
        else:
            ts = _window(book.quote_ts, t0_ns, t1_ns)
            if ts is not None:
                prices_x2 = book.bid_px[ts[0]:ts[1]] + book.ask_px[ts[0]:ts[1]]
        if ts is None or prices_x2 is None:
            return None
        hit = np.asarray(self.met_by(prices_x2))
        k = int(hit.argmax())
        if not hit[k]:
            return None
        times = book.trade_ts if self.request.working_type == "CONTRACT_PRICE" else book.quote_ts
        return int(times[ts[0] + k])

    def state(self) -> StopState:
        req = self.request
        return StopState(client_order_id=req.client_order_id, symbol=req.symbol, kind=req.kind, side=req.side,
                         position_side=req.position_side, trigger_price=req.trigger_price, status=self.status,
                         triggered_ts_ns=self.triggered_ts_ns, fills=tuple(self.fills))


def _window(times: np.ndarray, t0_ns: int, t1_ns: int) -> tuple[int, int] | None:
    a, b = times.searchsorted((t0_ns, t1_ns), side="right").tolist()
    return (a, b) if b > a else None
