"""``RiskContext``: every input a risk decision needs, all required, built by one function.

Why: the audit found an executor that called the risk check without the concurrency inputs, and the
check quietly treated them as zero. Here a missing field is a ``TypeError`` at construction, and the
screener and the executor both call ``RiskContext.from_state`` on the same ``PortfolioState``.

NAV vs equity: ``nav_usd`` is the marked account value (wallet balance plus unrealized PnL); every
exposure, leverage, loss and drawdown cap is a fraction of it. ``equity_usd`` is the wallet balance alone
(realized equity); only the trade-equity clamp uses it, so an unrealized gain does not inflate the next
trade. Leverage in use is gross exposure over NAV (``leverage_in_use``), derived so it cannot disagree.

Working orders: with many routes in flight, a cap judged on positions alone could be passed by orders
that are still working. ``from_state`` takes the executor's working routes (``WorkingRoute``, reserved
at admission, released when the route is journaled) and counts each growing one as if it filled
completely: its notional is in the symbol, tier and gross exposure, its route in the symbol's trades of
the hour, and a leg it would open counts toward the concurrent positions (``opening_legs``). Reducing
routes reserve nothing (they can only take exposure off).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from router_tuner.config.models import UniverseEntry
from router_tuner.risk.portfolio import PortfolioState
from router_tuner.risk.units import NS_PER_S, S_PER_DAY, S_PER_WEEK
from router_tuner.router.events import PositionSide


@dataclass(frozen=True, slots=True, kw_only=True)
class LegExposure:
    """One open leg: signed quantity (long > 0), its gross notional at the mark and its position side."""

    symbol: str
    position_side: PositionSide
    qty: float
    gross_notional_usd: float


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkingRoute:
    """A route of ours still working: what it adds to exposure if it fills completely (0 when reducing)."""

    symbol: str
    position_side: PositionSide
    reserved_usd: float

    def __post_init__(self) -> None:
        if not (math.isfinite(self.reserved_usd) and self.reserved_usd >= 0):
            raise ValueError(f"WorkingRoute.reserved_usd must be finite and >= 0, got {self.reserved_usd!r}")


@dataclass(frozen=True, slots=True, kw_only=True)
class RiskContext:
    """The state one intent on ``symbol`` is judged against. Every field is required.

    Symbol-scoped fields (``symbol_*``, ``last_stop_ns``, ``trades_last_hour``, ``tier_name``,
    ``current_tier_gross_notional``) are about ``symbol``; ``tier_name`` is ``None`` when the symbol
    is not in the configured universe. Losses and drawdowns are positive USD amounts over trailing
    windows (day: 24 h, week: 7 days).

    Exposure aggregates include the reservations of working routes (``pending_gross_usd`` of
    ``gross_exposure_usd`` is reserved, not filled); ``working_routes`` counts them all, and
    ``opening_legs`` are the (symbol, position side) legs flat now that a working route would open.
    """

    symbol: str
    now_ns: int
    nav_usd: float
    nav_age_s: float
    equity_usd: float
    positions: tuple[LegExposure, ...]
    open_positions_count: int
    symbol_gross_notional_usd: float
    tier_name: str | None
    current_tier_gross_notional: float
    gross_exposure_usd: float
    daily_realized_loss_usd: float
    weekly_realized_loss_usd: float
    symbol_drawdown_usd: float
    last_stop_ns: int | None
    trades_last_hour: int
    pending_gross_usd: float
    working_routes: int
    opening_legs: frozenset[tuple[str, PositionSide]]

    def __post_init__(self) -> None:
        for name in ("nav_usd", "nav_age_s", "equity_usd", "symbol_gross_notional_usd",
                     "current_tier_gross_notional", "gross_exposure_usd", "daily_realized_loss_usd",
                     "weekly_realized_loss_usd", "symbol_drawdown_usd", "pending_gross_usd"):
            value = getattr(self, name)
            if not math.isfinite(value):
                raise ValueError(f"RiskContext.{name} must be finite, got {value!r}")
            if name != "nav_usd" and name != "equity_usd" and value < 0:
                raise ValueError(f"RiskContext.{name} must be >= 0, got {value!r}")
        if self.open_positions_count != len(self.positions):
            raise ValueError(
                f"open_positions_count {self.open_positions_count} != {len(self.positions)} legs")
        if self.trades_last_hour < 0:
            raise ValueError("trades_last_hour must be >= 0")
        if self.working_routes < 0 or len(self.opening_legs) > self.working_routes:
            raise ValueError(f"working_routes {self.working_routes} must be >= 0 and cover the "
                             f"{len(self.opening_legs)} opening legs")
        if self.pending_gross_usd > self.gross_exposure_usd:
            raise ValueError(f"pending_gross_usd {self.pending_gross_usd} exceeds gross_exposure_usd "
                             f"{self.gross_exposure_usd}, which includes it")
        modes = {leg.position_side == "BOTH" for leg in self.positions if leg.symbol == self.symbol}
        if len(modes) > 1:
            raise ValueError(f"{self.symbol} has both one-way and hedge-mode legs")

    @property
    def leverage_in_use(self) -> float:
        """Gross exposure over NAV; infinite when NAV is not positive and anything is open."""
        if self.nav_usd > 0:
            return self.gross_exposure_usd / self.nav_usd
        return math.inf if self.gross_exposure_usd > 0 else 0.0

    def leg(self, position_side: PositionSide) -> LegExposure | None:
        """The intent symbol's leg on ``position_side``, if open."""
        for leg in self.positions:
            if leg.symbol == self.symbol and leg.position_side == position_side:
                return leg
        return None

    @classmethod
    def from_state(cls, state: PortfolioState, *, symbol: str, universe: Mapping[str, UniverseEntry],
                   now_ns: int, working: Sequence[WorkingRoute]) -> RiskContext:
        """The one builder: screener and executor derive the context from the same portfolio state and the
        same working routes (``()`` when nothing is in flight)."""
        positions = tuple(
            LegExposure(symbol=leg_symbol, position_side=side, qty=leg.qty,
                        gross_notional_usd=abs(leg.qty) * state.mark(leg_symbol))
            for (leg_symbol, side), leg in sorted(state.legs.items()))
        entry = universe.get(symbol)
        tier_name = None if entry is None else entry.tier
        def in_tier(leg_symbol: str) -> bool:
            return tier_name is not None and leg_symbol in universe and universe[leg_symbol].tier == tier_name

        tier_gross = sum(p.gross_notional_usd for p in positions if in_tier(p.symbol)) \
            + sum(w.reserved_usd for w in working if in_tier(w.symbol))
        pending = sum(w.reserved_usd for w in working)
        open_legs = {(p.symbol, p.position_side) for p in positions}
        opening = frozenset((w.symbol, w.position_side) for w in working
                            if w.reserved_usd > 0 and (w.symbol, w.position_side) not in open_legs)
        day_start_ns = now_ns - S_PER_DAY * NS_PER_S
        return cls(
            symbol=symbol,
            now_ns=now_ns,
            nav_usd=state.nav_usd,
            nav_age_s=max(0, now_ns - state.nav_ts_ns) / NS_PER_S,
            equity_usd=state.wallet_balance_usd,
            positions=positions,
            open_positions_count=len(positions),
            symbol_gross_notional_usd=sum(p.gross_notional_usd for p in positions if p.symbol == symbol)
            + sum(w.reserved_usd for w in working if w.symbol == symbol),
            tier_name=tier_name,
            current_tier_gross_notional=tier_gross,
            gross_exposure_usd=sum(p.gross_notional_usd for p in positions) + pending,
            daily_realized_loss_usd=state.realized_loss_usd(since_ns=day_start_ns),
            weekly_realized_loss_usd=state.realized_loss_usd(since_ns=now_ns - S_PER_WEEK * NS_PER_S),
            symbol_drawdown_usd=state.symbol_drawdown_usd(symbol, since_ns=day_start_ns),
            last_stop_ns=state.last_stop_ns.get(symbol),
            trades_last_hour=state.trades_in_last_hour(symbol, now_ns=now_ns)
            + sum(w.symbol == symbol for w in working),
            pending_gross_usd=pending,
            working_routes=len(working),
            opening_legs=opening,
        )
