"""Executor-side records: the submission written before anything is sent, health snapshots and alerts.

They live in the executor's own store (``executor.store``), not in the event journal: the journal holds
one outcome per intent (router, veto, trade), while these are the executor's bookkeeping (what may exist
at the venue) and its telemetry (many snapshots per day, none tied to an intent).
"""

from __future__ import annotations

from typing import Any

import msgspec

from router_tuner.features.allocator import Proposal
from router_tuner.router.events import Intent, PositionSide, Side
from router_tuner.router.venue import StopKind, WorkingType


class _Record(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Immutable, keyword-only, unknown fields rejected (same discipline as ``router.events``)."""


class Submission(_Record):
    """An intent that passed the risk core and is about to be routed, written durably before any send.

    After a crash, a submission without a trade record in the journal names an intent whose orders may
    exist at the venue: their client order ids are ``client_order_id(intent_id, 1..)``. ``policy`` is the
    ``RouterPolicy`` the route ran under (as plain fields), the arrival touch is the executor's read;
    ``binding_limit`` the sizer limit that clamped the gross (``executor.outcomes.binding_limit``),
    ``size_multiplier`` the allocator's factor on the size hint (``executor.allocation``). ``journal_intents``
    is how many intents the journal held when this one was submitted: a journal holding fewer at restart lost
    records that were written before it (``executor.reconcile.check_journal_covers_store``); ``None`` on
    submissions stored before the field existed. ``max_routes_in_flight`` is ``engine.max_routes_in_flight`` at
    submission: how many routes a crash then could cut off, whatever the configuration at restart says.
    """

    intent: Intent
    qty: float
    suggested_gross_usd: float
    clamped_gross_usd: float
    binding_limit: str | None
    size_multiplier: float
    quote: str
    tick_size: float
    qty_step: float
    policy: dict[str, Any]
    arrival_bid: float
    arrival_ask: float
    arrival_ts_ns: int
    ts_ns: int
    journal_intents: int | None = None
    max_routes_in_flight: int | None = None


class SymbolHealth(_Record):
    """One symbol's acting policy and its router KPIs and score over its last events of the health window.

    ``arm`` is the acting version's arm (the published or champion one), never an arm explored for one
    order. The KPIs follow ``features.effectiveness`` (``None`` when there is nothing to compute them from).
    """

    symbol: str
    policy_id: str
    policy_version: int
    arm: str
    quality: str
    orders: int
    maker_ratio: float | None
    fallback_ratio: float | None
    reprice_loop_ratio: float | None
    slippage_p25_bps: float | None
    slippage_p50_bps: float | None
    slippage_p75_bps: float | None
    sharpe_per_trade: float | None
    fee_drag_bps: float | None
    slippage_regime: str | None


class OrderFeedHealth(_Record):
    """How the live venue's order updates arrive (``router.venues.ccxt.order_feed.FeedStatus``): ``mode``
    ``stream`` (the user-data stream) or ``polling`` (REST, while the stream is down) since ``since_ns``
    (wall ns), the stream's reconnects, the reports it did not believe, and its last error."""

    mode: str
    since_ns: int
    reconnects: int
    protocol_violations: int
    last_error: str | None


class BookFeedHealth(_Record):
    """How the live venue's touch is read (``router.venues.ccxt.book_feed.BookStatus``): ``mode`` ``stream``
    (every instrument's book ticker streamed) or ``rest`` since ``since_ns`` (wall ns), the times a streamed
    symbol's watch failed, the reads answered by the stream and by REST, the crossed or empty touches not used,
    and the last error."""

    mode: str
    since_ns: int
    reconnects: int
    streamed_reads: int
    rest_reads: int
    ignored: int
    last_error: str | None


class ChampionGate(_Record):
    """A registry-served symbol: the version acting, the registry's ``champion`` and why they differ.

    ``problem`` is set while the champion alias names a version without a gate record (moved by hand in
    the MLflow UI) or no version at all: the router keeps the last gated champion (``tuner.policy_source``).
    """

    symbol: str
    served_version: int
    champion_version: int | None
    problem: str | None


class HourExpectancy(_Record):
    """Realized PnL per notional of closing orders in one UTC hour (``features.expectancy``)."""

    hour: int
    trades: int
    expectancy_bps: float


class HealthSnapshot(_Record):
    """Execution health at ``ts_ns``: NAV and its age, router KPIs over the window, intel per symbol.

    Ratios and quartiles are ``None`` when the window has nothing to compute them from (never 0);
    ``reprice_loop_ratio`` is the share of orders that re-priced at least ``health.reprice_loop_min`` times.
    ``rolling_sharpe`` is per closing order over the last ``health.sharpe_window`` closing orders (the
    definition of ``features.scores``); ``window_realized_pnl_usd`` sums the window's router events;
    ``allocations`` are the feedback allocator's proposals of the last publish, sized with only when
    ``allocator_applied`` (``executor.json`` ``allocator.apply``; false is shadow mode).
    """

    ts_ns: int
    nav_usd: float
    wallet_balance_usd: float
    nav_age_s: float
    open_positions: int
    gross_exposure_usd: float
    orders_in_window: int
    maker_ratio: float | None
    fallback_ratio: float | None
    reprice_loop_ratio: float | None
    slippage_p25_bps: float | None
    slippage_p50_bps: float | None
    slippage_p75_bps: float | None
    fee_drag_bps: float | None
    rolling_sharpe: float | None
    window_realized_pnl_usd: float
    vetoes_in_storm_window: int
    symbols: tuple[SymbolHealth, ...]
    expectancy: tuple[HourExpectancy, ...]
    allocations: tuple[Proposal, ...]
    allocator_applied: bool
    champion_gates: tuple[ChampionGate, ...] = ()
    """Registry policy source only: one row per served symbol (empty with a static policy)."""
    order_feed: OrderFeedHealth | None = None
    """Live with ``live.order_updates`` ``stream`` only: the order stream's status (``None`` otherwise)."""
    book_feed: BookFeedHealth | None = None
    """Live with ``live.book_updates`` ``stream`` only: the streamed touch's status (``None`` otherwise)."""


class Alert(_Record):
    """A threshold from ``executor.json`` that health crossed: the config path, the limit and the value."""

    code: str
    threshold: float
    observed: float
    detail: str
    ts_ns: int


class ProtectiveStopRecord(_Record):
    """An exchange-side stop the executor sent (or is about to send) for one leg (``executor.protection``).

    Written before the stop is sent, so a restart knows every stop that may work at the venue; closed once
    the venue reports it ended (cancelled, expired, rejected) or its trigger's fills are journaled.
    """

    client_order_id: str
    symbol: str
    position_side: PositionSide
    kind: StopKind
    side: Side
    trigger_price: float
    working_type: WorkingType
    ts_ns: int
