"""Building the journaled outcome of an intent: a VetoEvent or a RouterEvent, and its TradeRecord."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import msgspec

from router_tuner.router.events import (
    SCHEMA_VERSION,
    ClosedLot,
    Intent,
    RouterEvent,
    TradeRecord,
    VetoEvent,
    VetoReason,
)

UNCLAMPED = "size_hint"
"""The sizer's name for the candidate that is the intent's own size hint: nothing clamped it."""


def json_native(value: Any) -> Any:
    """A JSON-exact copy of a decision detail: tuples become lists, non-finite floats their repr."""
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)
    if isinstance(value, tuple | list):
        return [json_native(item) for item in value]
    if isinstance(value, Mapping):
        return {str(key): json_native(item) for key, item in value.items()}
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return repr(value)


INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
UNJOURNALABLE = "unjournalable_intent_fields"
"""The veto context key holding, as text, the intent's values the journal cannot hold (see ``journalable``)."""


def journalable(intent: Intent) -> tuple[Intent, dict[str, str]]:
    """``intent`` as the journal can hold it, and the fields replaced to get there, with their values as text.

    Why: a decodable intent may carry what the journal's codec refuses (an integer time beyond int64 decodes
    from JSON; an in-process intent may carry a NaN or infinite size hint), and its veto must still be
    journaled. Those fields are journaled as 0 and kept exactly in the veto context (``UNJOURNALABLE``).
    """
    replaced: dict[str, str] = {}
    if not math.isfinite(intent.size_hint_usd):
        replaced["size_hint_usd"] = repr(intent.size_hint_usd)
    if not INT64_MIN <= intent.ts_ns <= INT64_MAX:
        replaced["ts_ns"] = str(intent.ts_ns)
    if not replaced:
        return intent, replaced
    zeros = {name: 0.0 if name == "size_hint_usd" else 0 for name in replaced}
    return msgspec.structs.replace(intent, **zeros), replaced


def original_intent(journaled: Intent, context: Mapping[str, Any]) -> Intent:
    """The intent a veto was about: its journaled copy with the ``UNJOURNALABLE`` fields put back."""
    fields = context.get(UNJOURNALABLE) or {}
    if not fields:
        return journaled
    values = {name: float(text) if name == "size_hint_usd" else int(text) for name, text in fields.items()}
    return msgspec.structs.replace(journaled, **values)


def _schema_number(value: float | str | None) -> float | str | None:
    """``VetoReason`` numbers are floats in the schema: a check that reports an int (a count) is widened, a
    non-finite float (what a poison intent carries) is written as its repr, which the journal can hold."""
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)
    return float(value) if isinstance(value, int) and not isinstance(value, bool) else value


def normalized_reason(veto_reason: VetoReason) -> VetoReason:
    return VetoReason(code=veto_reason.code, threshold=_schema_number(veto_reason.threshold),
                      observed=_schema_number(veto_reason.observed), detail=veto_reason.detail)


def binding_limit(detail: Mapping[str, Any]) -> str | None:
    """The sizer limit that cut the gross below the size hint, from a screen's detail (``risk.screener``).

    ``None`` when the intent never reached the sizer or its own size hint was the tightest candidate.
    """
    sizing = detail.get("sizing")
    binding = sizing.get("binding") if isinstance(sizing, Mapping) else None
    return None if binding in (None, UNCLAMPED) else str(binding)


def veto_outcome(intent: Intent, reasons: tuple[VetoReason, ...], context: Mapping[str, Any], *, ts_ns: int,
                 suggested_gross_usd: float, size_multiplier: float) -> tuple[VetoEvent, TradeRecord]:
    """The veto and its one-line trade record (nothing filled, nothing clamped); see ``journalable``."""
    reasons = tuple(normalized_reason(r) for r in reasons)
    journaled, replaced = journalable(intent)
    context = {**context, UNJOURNALABLE: replaced} if replaced else context
    veto = VetoEvent(schema_version=SCHEMA_VERSION, intent=journaled, reasons=reasons,
                     context=json_native(dict(context)), ts_ns=ts_ns)
    trade = TradeRecord(schema_version=SCHEMA_VERSION, intent_id=intent.intent_id, symbol=intent.symbol,
                        tier=intent.tier, strategy=intent.strategy, size_hint_usd=journaled.size_hint_usd,
                        size_multiplier=size_multiplier, suggested_gross_usd=suggested_gross_usd, clamped_gross_usd=0.0,
                        binding_limit=binding_limit(context), veto_reasons=reasons, filled_qty=0.0, avg_price=None,
                        fees_usd=0.0, realized_pnl_usd=None, closed_lots=(), ts_ns=ts_ns)
    return veto, trade


def routed_trade(intent: Intent, event: RouterEvent, *, suggested_gross_usd: float, clamped_gross_usd: float,
                 binding: str | None, size_multiplier: float, closed_lots: tuple[ClosedLot, ...]) -> TradeRecord:
    """The trade record of a routed intent: sizes from the risk core, fills and PnL from its RouterEvent,
    ``closed_lots`` from ``executor.positions.apply_order``."""
    return TradeRecord(schema_version=SCHEMA_VERSION, intent_id=intent.intent_id, symbol=intent.symbol,
                       tier=intent.tier, strategy=intent.strategy, size_hint_usd=intent.size_hint_usd,
                       size_multiplier=size_multiplier, suggested_gross_usd=suggested_gross_usd,
                       clamped_gross_usd=clamped_gross_usd,
                       binding_limit=binding, veto_reasons=(), filled_qty=event.filled_qty,
                       avg_price=event.avg_price, fees_usd=float(sum(f.fee_usd for f in event.fills)),
                       realized_pnl_usd=event.realized_pnl_usd, closed_lots=closed_lots, ts_ns=event.finished_ts_ns)


def reason(code: str, threshold: float | str | None, observed: float | str | None, detail: str) -> VetoReason:
    return VetoReason(code=code, threshold=threshold, observed=observed, detail=detail)
