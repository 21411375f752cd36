"""The portfolio as the risk core sees it: legs, marks, wallet balance, stops and a short trade log.

Why here: ``RiskContext.from_state`` derives every risk input from this one object, so the screener and
the executor cannot compute them differently. The executor owns the instance and feeds it fills, marks
and stops; nothing here reads a clock (every timestamp comes in with the data).

Conventions: a leg is keyed by ``(symbol, position_side)``; in one-way mode the side is ``BOTH`` and the
signed quantity may be long or short, in hedge mode ``LONG`` legs are never short and ``SHORT`` legs
never long. PnL is marked the same way for perps and spot (``qty * (mark - entry)``), which for spot equals
cash plus holdings at the mark when the wallet balance excludes the spot cost.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from router_tuner.risk.units import NS_PER_S, S_PER_HOUR, S_PER_WEEK
from router_tuner.router.events import Fill, PositionSide, Side


@dataclass(slots=True)
class Leg:
    """One open position leg: signed quantity (long > 0) and its average entry price."""

    qty: float
    entry_price: float


_AHEAD_OF_CLOCK_NS = S_PER_HOUR * NS_PER_S
"""How far ahead of the executor's clock a fill may be stamped and logged at its stamp: routes end seconds to minutes
after the clock's last reading; a stamp beyond this is a venue clock or a unit slip, logged this far ahead."""


@dataclass(frozen=True, slots=True)
class LoggedFill:
    """One applied fill, kept for a week for loss windows, drawdowns and trade counts."""

    ts_ns: int
    symbol: str
    client_order_id: str
    trade_id: str
    realized_pnl_usd: float


def _require_finite(name: str, value: float) -> None:
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value!r}")


class PortfolioState:
    """Mutable account state fed by the executor; read by ``RiskContext.from_state``.

    ``wallet_balance_usd`` is realized equity (deposits plus realized PnL net of fees); ``nav_usd`` adds the
    unrealized PnL at the marks. ``nav_ts_ns`` is when the marks were last refreshed as a whole, which
    is what NAV freshness measures.
    """

    def __init__(self, *, wallet_balance_usd: float, nav_ts_ns: int) -> None:
        _require_finite("wallet_balance_usd", wallet_balance_usd)
        self.wallet_balance_usd = wallet_balance_usd
        self.nav_ts_ns = nav_ts_ns
        self.legs: dict[tuple[str, PositionSide], Leg] = {}
        self.marks: dict[str, float] = {}
        self.last_stop_ns: dict[str, int] = {}
        self.fill_log: list[LoggedFill] = []
        self._oldest_logged_ns: int | None = None
        # each applied (symbol, trade id) with the executor's clock when it was applied (in that order: the first is
        # the oldest): duplicates are caught for a week by that clock, whatever the fill's own stamp says. Keyed by
        # symbol too: a venue numbers trades per symbol (Binance USDⓈ-M), so two symbols' fills may share an id
        self._seen_trade_ids: dict[tuple[str, str], int] = {}

    # --- inputs -----------------------------------------------------------------------------------

    def mark_to_market(self, prices: Mapping[str, float], ts_ns: int) -> None:
        """Refresh marks (a full refresh: the NAV timestamp moves to ``ts_ns``)."""
        for symbol, price in prices.items():
            if not (math.isfinite(price) and price > 0):
                raise ValueError(f"mark for {symbol} must be a positive finite price, got {price!r}")
        self.marks.update(prices)
        self.nav_ts_ns = ts_ns

    def record_stop(self, symbol: str, ts_ns: int) -> None:
        """A stop closed (part of) ``symbol``: the cooldown runs from ``ts_ns``."""
        self.last_stop_ns[symbol] = max(ts_ns, self.last_stop_ns.get(symbol, ts_ns))

    def apply_fill(self, *, symbol: str, side: Side, position_side: PositionSide, fill: Fill) -> float | None:
        """Apply one fill; returns its realized PnL net of fee, or ``None`` if ``symbol``'s ``trade_id`` was seen.

        A fill that would take a hedge-mode leg past flat (a reducing order the venue overfilled, or whose fill
        came after the leg closed) closes the leg: a hedge-mode venue holds no LONG leg below zero nor SHORT leg
        above it, so the quantity past flat is held by no position. The part that closed realises its PnL and the
        whole fee is charged; the caller flags the rest (``executor.positions``). It used to be refused with a
        ValueError, which stopped the run and every restart that recovered the same intent.
        """
        seen_key = (symbol, fill.trade_id)
        if seen_key in self._seen_trade_ids:
            return None
        for name, value in (("price", fill.price), ("qty", fill.qty), ("fee_usd", fill.fee_usd)):
            _require_finite(name, value)
        if fill.price <= 0 or fill.qty <= 0:
            raise ValueError(f"fill {fill.trade_id}: price and qty must be positive")
        signed = fill.qty if side == "buy" else -fill.qty
        key = (symbol, position_side)
        leg = self.legs.get(key, Leg(qty=0.0, entry_price=fill.price))
        new_qty = leg.qty + signed
        if (position_side == "LONG" and new_qty < 0) or (position_side == "SHORT" and new_qty > 0):
            new_qty = 0.0  # past flat: no position holds the rest
        realized = 0.0
        if leg.qty == 0 and new_qty == 0:
            pass  # a hedge-mode leg already flat: nothing to close, nothing opens
        elif leg.qty == 0 or (leg.qty > 0) == (signed > 0):
            leg.entry_price = (leg.qty * leg.entry_price + signed * fill.price) / new_qty
        else:
            closed = min(abs(signed), abs(leg.qty))
            direction = 1.0 if leg.qty > 0 else -1.0
            realized = closed * (fill.price - leg.entry_price) * direction
            if abs(signed) > abs(leg.qty) and new_qty != 0:
                leg.entry_price = fill.price
        leg.qty = new_qty
        if new_qty == 0:
            self.legs.pop(key, None)
        else:
            self.legs[key] = leg
        net = realized - fill.fee_usd
        self.wallet_balance_usd += net
        self.marks.setdefault(symbol, fill.price)
        self._seen_trade_ids[seen_key] = self.nav_ts_ns
        self._log(LoggedFill(min(fill.ts_ns, self.nav_ts_ns + _AHEAD_OF_CLOCK_NS), symbol, fill.client_order_id,
                             fill.trade_id, net))
        return net

    def _log(self, entry: LoggedFill) -> None:
        """Log ``entry``, then forget what is a week old by the executor's clock (the marks' last refresh).

        Not by the fills' own stamps: the week was counted from the newest fill's stamp, so one fill stamped far
        ahead dropped every fill before it, and with them the day's and week's realized losses the circuit breakers
        read; a fill stamped far ahead is logged an hour ahead of the clock at most (it counts, as recent, not for a
        year). Trade ids are forgotten a week after they were applied (a venue repeats a fill within seconds, never a
        week later), so the set stays bounded, and a fill stamped a week back is still caught when repeated.
        """
        self.fill_log.append(entry)
        oldest = self._oldest_logged_ns
        self._oldest_logged_ns = entry.ts_ns if oldest is None else min(oldest, entry.ts_ns)
        horizon_ns = self.nav_ts_ns - S_PER_WEEK * NS_PER_S
        if self._oldest_logged_ns < horizon_ns:
            self.fill_log = [e for e in self.fill_log if e.ts_ns >= horizon_ns]
            self._oldest_logged_ns = min((e.ts_ns for e in self.fill_log), default=None)
        if next(iter(self._seen_trade_ids.values())) < horizon_ns:
            self._seen_trade_ids = {t: at for t, at in self._seen_trade_ids.items() if at >= horizon_ns}

    # --- derived ----------------------------------------------------------------------------------

    def mark(self, symbol: str) -> float:
        """The mark of a symbol with an open leg; a missing mark is an error, never a zero."""
        try:
            return self.marks[symbol]
        except KeyError:
            raise ValueError(f"no mark for {symbol}: call mark_to_market before building a context") from None

    def unrealized_pnl_usd(self) -> float:
        return sum(leg.qty * (self.mark(symbol) - leg.entry_price) for (symbol, _), leg in self.legs.items())

    @property
    def nav_usd(self) -> float:
        """Wallet balance plus unrealized PnL at the marks."""
        return self.wallet_balance_usd + self.unrealized_pnl_usd()

    def realized_loss_usd(self, *, since_ns: int) -> float:
        """Net realized loss (positive) over fills at or after ``since_ns``; zero when net positive."""
        return max(0.0, -sum(e.realized_pnl_usd for e in self.fill_log if e.ts_ns >= since_ns))

    def symbol_drawdown_usd(self, symbol: str, *, since_ns: int) -> float:
        """Peak-to-current fall of the symbol's cumulative realized PnL over fills since ``since_ns``."""
        cumulative = peak = 0.0
        for entry in self.fill_log:
            if entry.symbol == symbol and entry.ts_ns >= since_ns:
                cumulative += entry.realized_pnl_usd
                peak = max(peak, cumulative)
        return peak - cumulative

    def trades_in_last_hour(self, symbol: str, *, now_ns: int) -> int:
        """Orders (distinct client order ids) of ``symbol`` with a fill in the hour up to ``now_ns``; a fill stamped
        after ``now_ns`` (logged at most an hour ahead of the clock) counts as recent, not never."""
        since_ns = now_ns - S_PER_HOUR * NS_PER_S
        return len({e.client_order_id for e in self.fill_log if e.symbol == symbol and since_ns < e.ts_ns})
