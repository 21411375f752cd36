"""Risk core: size intents, veto what breaks a limit. Pure functions of (intent, context, config).

Flow: ``RiskContext.from_state`` -> ``would_emit`` (screener) / ``suggest_gross_usd`` (sizer) ->
``check_order``. No clocks, files or network: time and NAV arrive in the context.
"""

from router_tuner.risk.caps import SIZE_CAP_CODES, SIZE_CAPS, SizeCap
from router_tuner.risk.checks import CHECKS, RiskDecision, check_order
from router_tuner.risk.context import LegExposure, RiskContext
from router_tuner.risk.portfolio import PortfolioState
from router_tuner.risk.screener import MarketView, ScreenDecision, would_emit
from router_tuner.risk.sizer import SizeSuggestion, suggest_gross_usd

__all__ = [
    "CHECKS", "SIZE_CAPS", "SIZE_CAP_CODES", "LegExposure", "MarketView", "PortfolioState", "RiskContext",
    "RiskDecision", "ScreenDecision", "SizeCap", "SizeSuggestion", "check_order", "suggest_gross_usd",
    "would_emit",
]
