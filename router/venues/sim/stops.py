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

from router_tuner.router.events import Fill
from router_tuner.router.venue import StopRequest, StopState, StopStatus
from router_tuner.router.venues.sim.book import TapeBook


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

    def first_trigger_ns(self, t0_ns: int, t1_ns: int, windows: PriceWindows) -> int | None:
        """Earliest time in (t0, t1] at which the working price meets the condition, if any.

        The window's extremes (shared by every stop on the book and working type) answer "no trigger"
        without scanning, the common case.
        """
        win = windows.window(self.book, self.request.working_type, t0_ns, t1_ns)
        if win is None or not self.met_by(win.low_x2 if self.falls_through else win.high_x2):
            return None
        hit = np.asarray(self.met_by(win.prices_x2))
        return int(win.times[int(hit.argmax())])

    def state(self) -> StopState:
        req = self.request
        return StopState(client_order_id=req.client_order_id, symbol=req.symbol, kind=req.kind, side=req.side,
                         position_side=req.position_side, trigger_price=req.trigger_price, status=self.status,
                         triggered_ts_ns=self.triggered_ts_ns, fills=tuple(self.fills))


@dataclass(frozen=True, slots=True)
class PriceWindow:
    """The working prices (at twice their value) in one time window, their times and extremes."""

    times: np.ndarray
    prices_x2: np.ndarray
    low_x2: int
    high_x2: int


class PriceWindows:
    """One venue's memo of the last window per book and working type: every stop of a step asks the same."""

    __slots__ = ("_last",)

    def __init__(self) -> None:
        self._last: dict[tuple[str, str], tuple[int, int, PriceWindow | None]] = {}

    def window(self, book: TapeBook, working_type: str, t0_ns: int, t1_ns: int) -> PriceWindow | None:
        """The working prices in (t0, t1]: trades for CONTRACT_PRICE, quote mids for MARK_PRICE; None if empty."""
        key = (book.symbol, working_type)
        last = self._last.get(key)
        if last is not None and last[0] == t0_ns and last[1] == t1_ns:
            return last[2]
        times = book.trade_ts if working_type == "CONTRACT_PRICE" else book.quote_ts
        a, b = times.searchsorted((t0_ns, t1_ns), side="right").tolist()
        win = None
        if b > a:
            prices_x2 = 2 * book.trade_px[a:b] if working_type == "CONTRACT_PRICE" else \
                book.bid_px[a:b] + book.ask_px[a:b]
            win = PriceWindow(times=times[a:b], prices_x2=prices_x2, low_x2=int(prices_x2.min()),
                              high_x2=int(prices_x2.max()))
        self._last[key] = (t0_ns, t1_ns, win)
        return win
