"""The one event schema: what producers (risk, router, executor) write and every consumer reads.

Every struct is strict: decoding a record with an unknown field, a missing field or a wrong type is an
error, never a silent default (DESIGN rule 2). Optional values are explicit ``None`` and still required
in the encoded form, so a consumer can tell "not applicable" from "forgotten".

Units are in the names: ``_bps`` basis points, ``_usd`` quote currency, ``_ns`` nanoseconds since the
epoch, ``_ms`` milliseconds. Costs are signed so that positive is worse for us.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any, Literal

import msgspec

Side = Literal["buy", "sell"]
PositionSide = Literal["BOTH", "LONG", "SHORT"]
Liquidity = Literal["maker", "taker"]
RoutedAs = Literal["maker", "taker", "mixed", "unfilled"]
Outcome = Literal["filled", "partial", "unfilled", "rejected"]

SCHEMA_VERSION = 2
"""2: ``TradeRecord`` gained strategy, size hint and multiplier, binding limit and the lots it closed (issue 16)."""

VENUE_ANOMALY = "venue_anomaly"
"""Opens the part of ``RouterEvent.error`` that lists fills the venue's own rules rule out (``venue_anomaly(...)``,
``router.routing.anomaly``): the fills count as reported, the tuner does not learn from the event."""


FEE_UNPRICED = "fee_unpriced"
"""Opens the part of ``RouterEvent.error`` that lists fills whose fee the venue charged in an asset nothing it lists
prices in the quote (``fee_unpriced(...)``, ``router.venue.UnpricedFee``; BNB on a USDC-quoted symbol): the fills
count, their ``fee_usd`` leaves that fee out, so ``fees_bps`` and ``cost_bps`` understate the cost and the tuner does
not learn from the event (``tuner.reward``)."""

FLAGS = (VENUE_ANOMALY, FEE_UNPRICED)
"""The flags an event's ``error`` may carry, in the order consumers rank them (an event with both counts as
``venue_anomaly``: its cost is not the arm's whatever its fee)."""


def error_flags(error: str | None) -> tuple[str, ...]:
    """The flags (:data:`FLAGS`, in that order) ``error`` carries as the event's own markers.

    A flag is a part of the error that opens with its name and a parenthesis, at the error's start or right after
    the ``"; "`` that joins the parts (:func:`with_flag` writes them so, for the route ledger and the executor:
    ``"taker leg x rejected by the venue; venue_anomaly(fill T1 ...)"``). The name anywhere else is text, not the
    flag: an exchange's message quoted in the error that happens to say ``venue_anomaly`` flags nothing.

    >>> error_flags("settled on restart; venue_anomaly(fill T1 of o-1 at 101, worse than its buy limit 100)")
    ('venue_anomaly',)
    >>> error_flags("binance {'msg': 'venue_anomaly fee_unpriced(x)'}")
    ()
    """
    if not error:
        return ()
    return tuple(flag for flag in FLAGS if re.search(flag_pattern(flag), error))


def flag_pattern(flag: str) -> str:
    """The regular expression (Python's and RE2's, so Arrow's too) that finds ``flag`` as :func:`error_flags` reads
    it: its name and a parenthesis at the error's start or after ``"; "``."""
    return rf"(^|; ){re.escape(flag)}\("


def _parts(error: str) -> list[tuple[str | None, str]]:
    """``error``'s parts in order: ``(flag, what is inside its parentheses)`` for a flag, ``(None, text)`` for the rest.

    A flag part runs from its name to its closing parenthesis (counted, so a parenthesis inside it is kept); the
    other parts are split at ``"; "``."""
    parts: list[tuple[str | None, str]] = []
    at = 0
    while at < len(error):
        flag = next((f for f in FLAGS if error.startswith(f"{f}(", at)), None)
        if flag is None:
            end = error.find("; ", at)
            end = len(error) if end < 0 else end
            parts.append((None, error[at:end]))
        else:
            depth, end = 0, at + len(flag)
            while end < len(error):
                depth += {"(": 1, ")": -1}.get(error[end], 0)
                end += 1
                if depth == 0:
                    break
            parts.append((flag, error[at + len(flag) + 1:end - 1 if error[end - 1] == ")" else end]))
        at = end + 2 if error.startswith("; ", end) else end
    return parts


def unflagged_error(error: str | None) -> str | None:
    """``error`` without its flags (:func:`error_flags`'s parts, each from its name to its closing parenthesis),
    the other parts joined as they were; ``None`` when nothing else is left: what the route itself reported.

    >>> unflagged_error("taker leg x-2 rejected by the venue; venue_anomaly(fill T1 of x-1 at 101 (limit 100); "
    ...                 "fill T2 of x-1 at 102); settled: 2 orders found, 0 cancelled")
    'taker leg x-2 rejected by the venue; settled: 2 orders found, 0 cancelled'
    >>> unflagged_error("fee_unpriced(fill t9 of s-1: fee 0.1 BNB not priced in USDC (no BNB/USDC market))") is None
    True
    """
    if not error:
        return None
    rest = "; ".join(text for flag, text in _parts(error) if flag is None and text)
    return rest or None


def flag_items(error: str | None, flag: str) -> tuple[str, ...]:
    """What ``error``'s ``flag`` parts list (each joined by ``"; "`` inside its parentheses), in order.

    >>> flag_items("venue_anomaly(a (x; y); b); settled; venue_anomaly(c)", VENUE_ANOMALY)
    ('a (x; y)', 'b', 'c')
    """
    if not error:
        return ()
    items: list[str] = []
    for name, text in _parts(error):
        if name != flag:
            continue
        depth, start = 0, 0
        for i, char in enumerate(text):
            depth += {"(": 1, ")": -1}.get(char, 0)
            if depth == 0 and text.startswith("; ", i):
                items.append(text[start:i])
                start = i + 2
        items.append(text[start:])
    return tuple(item for item in items if item)


def with_flag(error: str | None, flag: str, items: Iterable[str]) -> str:
    """``error`` followed by ``flag`` listing ``items``, written as :func:`error_flags` and :func:`flag_items` read it.

    >>> with_flag("taker leg x rejected by the venue", VENUE_ANOMALY, ["fill T1 of x-1 at 101", "fill T2 of x-1"])
    'taker leg x rejected by the venue; venue_anomaly(fill T1 of x-1 at 101; fill T2 of x-1)'
    """
    part = f"{flag}({'; '.join(items)})"
    return part if error is None else f"{error}; {part}"


_SETTLED_NOTE = re.compile(r"settled: \d+ orders found, \d+ cancelled")


def settled_note(found: int, cancelled: int) -> str:
    """The note the executor adds to the error of a route it settled (re-read the venue for) after the route reported
    an error or a flag: how many of the intent's orders it found and how many it cancelled."""
    return f"settled: {found} orders found, {cancelled} cancelled"


def is_settled_note(text: str) -> bool:
    """Whether ``text`` (one ``"; "``-joined part of an error) is a :func:`settled_note`.

    >>> is_settled_note(settled_note(2, 0)), is_settled_note("settled: two orders")
    (True, False)
    """
    return _SETTLED_NOTE.fullmatch(text) is not None


def event_flags(event: RouterEvent) -> tuple[str, ...]:
    """The flags ``event`` carries (:func:`error_flags` of its ``error``)."""
    return error_flags(event.error)


class _Record(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Base of every journaled type: immutable, keyword-only, unknown fields rejected."""


class Intent(_Record):
    """An order intent from the trading system, before sizing.

    ``size_hint_usd`` is what the strategy would like; the sizer decides the gross. ``position_side``
    is ``BOTH`` in one-way mode and ``LONG``/``SHORT`` in hedge mode. ``is_stop`` says the strategy's
    stop fired: the order takes exposure off, and once it fills the symbol accepts no new exposure for
    ``risk_limits.cooldowns.after_stop_s`` (always stated, so a stop cannot go unnoticed by default).
    ``close_position`` closes the whole leg whatever ``size_hint_usd`` says (Binance's closePosition).
    """

    intent_id: str
    symbol: str
    side: Side
    size_hint_usd: float
    tier: str
    strategy: str
    reduce_only: bool
    close_position: bool
    position_side: PositionSide
    is_stop: bool
    ts_ns: int


class Fill(_Record):
    """One execution, as the venue reported it; ``trade_id`` makes a fill countable exactly once."""

    trade_id: str
    client_order_id: str
    price: float
    qty: float
    fee_usd: float
    liquidity: Liquidity
    ts_ns: int


class RouterEvent(_Record):
    """The single outcome of routing one order: what was decided, by which policy, and what it cost.

    ``arm`` and ``propensity`` are the logging policy's choice and the probability it had of making it
    (1.0 for a deterministic policy); ``route_propensity`` is the probability of the maker/taker start
    given the arm (taker bias). Without them there is no off-policy evaluation.
    ``slippage_bps`` is the signed distance of the average fill price from the arrival mid (positive =
    paid more than mid when buying, received less when selling); ``cost_bps`` adds fees (rebates
    negative). All three are ``None`` only when nothing filled.
    ``reduce_only``, ``close_position`` and ``position_side`` are the flags the order was routed with,
    so a consumer never infers a close or a hedge side from the fills.
    """

    schema_version: int
    intent_id: str
    symbol: str
    side: Side
    qty: float
    reduce_only: bool
    close_position: bool
    position_side: PositionSide
    arrival_bid: float
    arrival_ask: float
    arrival_mid: float
    arrival_ts_ns: int
    policy_id: str
    policy_version: int
    arm: str
    maker_offset_bps: float
    taker_bias: float
    propensity: float
    route_propensity: float
    started_maker: bool
    is_maker_final: bool
    used_fallback: bool
    routed_as: RoutedAs
    outcome: Outcome
    reprice_count: int
    cancel_count: int
    post_only_reject_count: int
    fills: tuple[Fill, ...]
    filled_qty: float
    avg_price: float | None
    slippage_bps: float | None
    fees_bps: float | None
    cost_bps: float | None
    time_to_fill_ms: float | None
    realized_pnl_usd: float | None
    error: str | None
    finished_ts_ns: int


class VetoReason(_Record):
    """Why a check refused an order: a stable code, the configured threshold and what was observed.

    ``threshold`` is read from config at the moment of the check, never typed into the code, so the
    message always matches the limit in force (``trade_gt_equity_cap`` with 0.15 and 0.18).
    """

    code: str
    threshold: float | str | None
    observed: float | str | None
    detail: str


class VetoEvent(_Record):
    """An intent refused before routing, with every reason and the context the decision saw."""

    schema_version: int
    intent: Intent
    reasons: tuple[VetoReason, ...]
    context: dict[str, Any]
    ts_ns: int


class ClosedLot(_Record):
    """The part of an earlier opening trade that a trade closed, and the PnL realised on that part.

    ``realized_pnl_usd`` is the closing order's realized PnL (net of its fees) split over the lots it closed
    by quantity; under average-cost accounting every closed unit realises the same, so the split is exact.
    """

    opening_intent_id: str
    opening_strategy: str
    qty: float
    realized_pnl_usd: float


class TradeRecord(_Record):
    """One line per intent for per-trade review and feedback allocators: from size hint to realized PnL.

    ``size_hint_usd`` is the strategy's own hint; ``size_multiplier`` the feedback allocator's factor the
    risk core sized ``size_hint_usd * size_multiplier`` with (1.0 unless the allocator is applied, and
    never on a reducing intent). ``binding_limit`` names the sizer limit that cut the gross below that
    (``bucket_cap``, ``base_nav_pct``, a risk cap code, ``position`` for a reduce), ``None`` when the hint
    itself was the size or the intent never reached the sizer. ``closed_lots`` links this trade to the
    opening trades whose exposure it closed (oldest first); an opening trade's realised PnL is the sum over
    the later records that name it.
    """

    schema_version: int
    intent_id: str
    symbol: str
    tier: str
    strategy: str
    size_hint_usd: float
    size_multiplier: float
    suggested_gross_usd: float
    clamped_gross_usd: float
    binding_limit: str | None
    veto_reasons: tuple[VetoReason, ...]
    filled_qty: float
    avg_price: float | None
    fees_usd: float
    realized_pnl_usd: float | None
    closed_lots: tuple[ClosedLot, ...]
    ts_ns: int


class ShadowDecision(_Record):
    """What a symbol's tuner in shadow mode would have done for one order, beside what was done.

    The acting policy (the champion) routes the order; the learner only proposes. ``proposed_arm`` and
    ``proposed_propensity`` are the learner's choice and its probability among the arms it may
    choose; ``acting_arm`` is the grid arm of the acting policy's knobs and ``agrees`` whether the two
    match. ``ts_ns`` is when the proposal was made (before routing).
    """

    schema_version: int
    intent_id: str
    symbol: str
    ts_ns: int
    acting_policy_id: str
    acting_policy_version: int
    acting_arm: str
    acting_propensity: float
    proposed_arm: str
    proposed_propensity: float
    agrees: bool
    learner: str


ArmSafetyAction = Literal["excluded", "reopened"]


class ArmSafetyChange(_Record):
    """One arm leaving or re-entering the set a tuner may choose from, and why.

    ``reason`` is a stable code naming the configured limit (``fallback_ratio_gt(0.6)``) or ``drift``;
    ``threshold`` and ``observed`` are the limit in force and the arm's observed value (``None`` for
    a re-opening).
    """

    arm: str
    action: ArmSafetyAction
    reason: str
    threshold: float | None
    observed: float | None


class ArmSafetyEvent(_Record):
    """The arm exclusions and re-openings that one routed order's outcome caused in its symbol's tuner.

    ``intent_id`` is the order whose outcome triggered the changes (one record per outcome at most).
    """

    schema_version: int
    intent_id: str
    symbol: str
    ts_ns: int
    changes: tuple[ArmSafetyChange, ...]


Event = RouterEvent | VetoEvent | TradeRecord | ShadowDecision | ArmSafetyEvent
EVENT_TYPES: dict[
    str, type[RouterEvent] | type[VetoEvent] | type[TradeRecord] | type[ShadowDecision] | type[ArmSafetyEvent]
] = {
    "router": RouterEvent,
    "veto": VetoEvent,
    "trade": TradeRecord,
    "shadow": ShadowDecision,
    "arm_safety": ArmSafetyEvent,
}
