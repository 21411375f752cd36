"""Builders shared by the risk tests (no tests here): intents, contexts and limit variants."""

from __future__ import annotations

from typing import Any

import msgspec

from router_tuner.config import ConfigBundle, load_config
from router_tuner.config.models import RiskLimits
from router_tuner.risk.context import LegExposure, RiskContext
from router_tuner.router.events import Intent

BUNDLE: ConfigBundle = load_config()
LIMITS: RiskLimits = BUNDLE.risk
NOW_NS = 1_780_000_000_000_000_000


def make_intent(**changes: Any) -> Intent:
    fields: dict[str, Any] = {
        "intent_id": "i-1", "symbol": "BTCUSDT", "side": "buy", "size_hint_usd": 1_000.0, "tier": "CORE",
        "strategy": "test", "reduce_only": False, "close_position": False, "position_side": "BOTH",
        "is_stop": False, "ts_ns": NOW_NS,
    }
    fields.update(changes)
    return Intent(**fields)


def make_ctx(legs: tuple[LegExposure, ...] = (), **changes: Any) -> RiskContext:
    """A context on BTCUSDT with NAV = equity = 100k, fresh NAV, no losses; aggregates follow ``legs``."""
    symbol = changes.get("symbol", "BTCUSDT")
    symbol_gross = sum(leg.gross_notional_usd for leg in legs if leg.symbol == symbol)
    gross = sum(leg.gross_notional_usd for leg in legs)
    fields: dict[str, Any] = {
        "symbol": symbol, "now_ns": NOW_NS, "nav_usd": 100_000.0, "nav_age_s": 1.0, "equity_usd": 100_000.0,
        "positions": legs, "open_positions_count": len(legs), "symbol_gross_notional_usd": symbol_gross,
        "tier_name": "CORE", "current_tier_gross_notional": gross, "gross_exposure_usd": gross,
        "daily_realized_loss_usd": 0.0, "weekly_realized_loss_usd": 0.0, "symbol_drawdown_usd": 0.0,
        "last_stop_ns": None, "trades_last_hour": 0, "pending_gross_usd": 0.0, "working_routes": 0,
        "opening_legs": frozenset(),
    }
    fields.update(changes)
    return RiskContext(**fields)


def leg(symbol: str = "BTCUSDT", qty: float = 1.0, gross_usd: float = 10_000.0,
        position_side: str = "BOTH") -> LegExposure:
    return LegExposure(symbol=symbol, position_side=position_side, qty=qty, gross_notional_usd=gross_usd)


def replace_path(struct: Any, path: str, value: Any) -> Any:
    """Copy of a frozen config struct with the dotted ``path`` set to ``value`` (dict keys allowed)."""
    head, _, rest = path.partition(".")
    if isinstance(struct, dict):
        current = struct[head]
        return {**struct, head: replace_path(current, rest, value) if rest else value}
    current = getattr(struct, head)
    return msgspec.structs.replace(struct, **{head: replace_path(current, rest, value) if rest else value})


def limits_with(**paths: Any) -> RiskLimits:
    """``limits_with(symbol_caps__max_nav_pct=0.5)``: the default limits with dotted-path overrides."""
    limits = LIMITS
    for key, value in paths.items():
        limits = replace_path(limits, key.replace("__", "."), value)
    return limits


def resolve_path(limits: RiskLimits, path: str) -> Any:
    """The configured value at ``risk_limits.<path>``, as named in a VetoReason's detail."""
    node: Any = limits
    for part in path.removeprefix("risk_limits.").split("."):
        node = node[part] if isinstance(node, dict) else getattr(node, part)
    return node
