"""``would_emit``: should a strategy signal become an order? Gates in a fixed order, with full detail.

Stages: ``intent`` (the intent itself is tradeable: a finite, non-negative size hint, a ``ts_ns`` in
nanoseconds since the epoch of this century (``risk.units``) and, with ``risk_limits.intent_max_age_s``, within that
many seconds of the executor's clock, a position side of the account's position mode
on that symbol), ``listing`` (in the universe, the book is the universe's
venue symbol, the venue lists it),
``imbalance`` (the top-of-book imbalance leans with the trade by at least the configured gate),
``capacity`` (concurrency and tier caps: would even the venue's smallest order fit?), ``sizing``
(``suggest_gross_usd``) and ``check_order`` at the suggested size. The last two are exactly what the
executor runs, on a context from the same builder, so screener and executor agree for the same state.
Reducing signals skip the imbalance gate: a close does not wait for the book to agree.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from router_tuner.config.models import ConfigBundle
from router_tuner.risk.caps import TIER_NAV_CAP
from router_tuner.risk.checks import check_order, max_concurrent_positions, not_in_universe
from router_tuner.risk.context import RiskContext
from router_tuner.risk.exposure import against_position_mode, has_valid_size_hint, has_valid_ts, is_reducing
from router_tuner.risk.sizer import suggest_gross_usd
from router_tuner.risk.units import EPOCH_2000_NS, EPOCH_2100_NS, NS_PER_S
from router_tuner.router.events import Intent, VetoReason
from router_tuner.router.venue import TopOfBook

Stage = Literal["intent", "listing", "imbalance", "capacity", "sizing", "check_order", "emit"]


@dataclass(frozen=True, slots=True)
class MarketView:
    """What the screener knows of the market: the top of book and whether the venue lists the symbol."""

    book: TopOfBook
    listed: bool


@dataclass(frozen=True, slots=True)
class ScreenDecision:
    """``emit`` with the sized gross, or the stage that stopped the signal and every reason it gave."""

    emit: bool
    stage: Stage
    gross_usd: float | None
    reasons: tuple[VetoReason, ...]
    detail: dict[str, Any] = field(hash=False)


def book_lean(book: TopOfBook, intent: Intent) -> float | None:
    """Top-of-book imbalance signed toward the trade: +1 all size on our side, -1 all against.

    ``(bid_qty - ask_qty) / (bid_qty + ask_qty)`` for a buy, its negative for a sell; ``None`` when
    the book shows no size at all.
    """
    total = book.bid_qty + book.ask_qty
    if total <= 0:
        return None
    imbalance = (book.bid_qty - book.ask_qty) / total
    return imbalance if intent.side == "buy" else -imbalance


def _intent_reasons(signal: Intent, ctx: RiskContext, max_age_s: float | None) -> tuple[VetoReason, ...]:
    """What makes a decodable intent untradeable before any limit is looked at: the sizer and
    ``check_order`` refuse such input by raising, so the screener turns it into a veto first."""
    reasons = []
    if not has_valid_size_hint(signal):
        reasons.append(VetoReason(code="invalid_size_hint", threshold=0.0, observed=signal.size_hint_usd,
                                  detail="intent.size_hint_usd must be finite and >= 0"))
    if not has_valid_ts(signal):
        reasons.append(VetoReason(code="intent_ts_out_of_range", threshold=f"[{EPOCH_2000_NS}, {EPOCH_2100_NS})",
                                  observed=str(signal.ts_ns),
                                  detail="intent.ts_ns must be nanoseconds since the epoch, 2000-01-01 to "
                                         "2100-01-01 UTC (seconds or milliseconds are not)"))
    elif (age := _age_reason(signal, ctx, max_age_s)) is not None:
        reasons.append(age)
    if against_position_mode(signal, ctx):
        mode = "one-way (BOTH)" if signal.position_side != "BOTH" else "hedge (LONG/SHORT)"
        reasons.append(VetoReason(code="position_mode_mismatch", threshold=mode, observed=signal.position_side,
                                  detail=f"{ctx.symbol} is held in {mode} mode; intent.position_side must match"))
    return tuple(reasons)


def _age_reason(signal: Intent, ctx: RiskContext, max_age_s: float | None) -> VetoReason | None:
    """An intent decided longer ago than ``max_age_s`` by the executor's clock (``intent_stale``), or as far ahead of
    it (``intent_from_future``: the strategy's clock or the executor's is off); observed in seconds."""
    if max_age_s is None:
        return None
    age_s = (ctx.now_ns - signal.ts_ns) / NS_PER_S
    if age_s > max_age_s:
        return VetoReason(code="intent_stale", threshold=max_age_s, observed=age_s,
                          detail=f"risk_limits.intent_max_age_s: decided {age_s:.3g} s before the executor's clock")
    if -age_s > max_age_s:
        return VetoReason(code="intent_from_future", threshold=max_age_s, observed=-age_s,
                          detail=f"risk_limits.intent_max_age_s: ts_ns is {-age_s:.3g} s ahead of the executor's "
                                 "clock: check the strategy's clock and the executor's")
    return None


def _listing_reasons(signal: Intent, market: MarketView, config: ConfigBundle) -> tuple[VetoReason, ...]:
    entry = config.strategy.universe.get(signal.symbol)
    if entry is None:
        return (not_in_universe(signal.symbol),)
    reasons = []
    if market.book.symbol != entry.venue_symbol:
        reasons.append(VetoReason(code="book_symbol_mismatch", threshold=entry.venue_symbol,
                                  observed=market.book.symbol,
                                  detail=f"strategy_config.universe.{signal.symbol}.venue_symbol"))
    if not market.listed:
        reasons.append(VetoReason(code="symbol_not_listed", threshold=entry.venue_symbol, observed="unlisted",
                                  detail=f"venue does not list {entry.venue_symbol}"))
    return tuple(reasons)


def _imbalance_reasons(signal: Intent, market: MarketView, config: ConfigBundle,
                       detail: dict[str, Any]) -> tuple[VetoReason, ...]:
    screener = config.strategy.screener
    lean = book_lean(market.book, signal)
    detail["book_lean"] = lean
    detail["imbalance_gate"] = screener.orderbook_imbalance_gate
    if is_reducing(signal) or not screener.require_imbalance_alignment:
        return ()
    if lean is None:
        return (VetoReason(code="orderbook_empty", threshold=screener.orderbook_imbalance_gate, observed=None,
                           detail="strategy_config.screener.orderbook_imbalance_gate: no size on the book"),)
    if lean >= screener.orderbook_imbalance_gate:
        return ()
    return (VetoReason(code="orderbook_imbalance_below_gate", threshold=screener.orderbook_imbalance_gate,
                       observed=lean, detail="strategy_config.screener.orderbook_imbalance_gate: book leans "
                                             f"{lean:.4f} with the {signal.side}"),)


def would_emit(signal: Intent, market: MarketView, ctx: RiskContext, config: ConfigBundle) -> ScreenDecision:
    """Run the screener's stages on ``signal`` (an unsized intent) and say whether it becomes an order."""
    detail: dict[str, Any] = {"symbol": signal.symbol, "reducing": is_reducing(signal)}
    reasons = _intent_reasons(signal, ctx, config.risk.intent_max_age_s)
    if reasons:
        return ScreenDecision(False, "intent", None, reasons, detail)
    reasons = _listing_reasons(signal, market, config)
    if reasons:
        return ScreenDecision(False, "listing", None, reasons, detail)
    reasons = _imbalance_reasons(signal, market, config, detail)
    if reasons:
        return ScreenDecision(False, "imbalance", None, reasons, detail)
    probe_usd = config.risk.min_notional_usd(signal.symbol)
    reasons = tuple(reason for check in (max_concurrent_positions, TIER_NAV_CAP)
                    if (reason := check(signal, probe_usd, ctx, config.risk)) is not None)
    if reasons:
        return ScreenDecision(False, "capacity", None, reasons, detail)
    size = suggest_gross_usd(signal, ctx, config)
    detail["sizing"] = {"outcome": size.outcome, "binding": size.binding,
                        "largest_allowed_usd": size.largest_allowed_usd,
                        "candidates_usd": size.candidates_usd}
    if size.gross_usd is None:
        reason = VetoReason(code=size.outcome, threshold=size.min_notional_usd,
                            observed=size.largest_allowed_usd,
                            detail=f"sizer: {size.outcome} (tightest limit: {size.binding})")
        return ScreenDecision(False, "sizing", None, (reason,), detail)
    decision = check_order(signal, size.gross_usd, ctx, config.risk)
    detail["check_order"] = decision.detail
    if decision.veto:
        return ScreenDecision(False, "check_order", size.gross_usd, decision.reasons, detail)
    return ScreenDecision(True, "emit", size.gross_usd, (), detail)
