"""Mapping of ccxt exceptions into the ``router.venue`` error hierarchy, once, with secrets masked.

Native error codes (from the quirks table) win over ccxt's classes, because ccxt maps several distinct
exchange answers (post-only reject, min notional, bad precision) onto the same ``InvalidOrder``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import ccxt

from router_tuner.router.venue import (
    InsufficientMargin,
    OrderNotFound,
    RateLimited,
    VenueError,
    VenueTimeout,
    VenueUnavailable,
)
from router_tuner.router.venues.ccxt.quirks import ExchangeQuirks
from router_tuner.router.venues.ccxt.redact import SecretRedactor

_CODE_RE = re.compile(r'"code"\s*:\s*"?(-?\d+)')


def native_error_code(text: str) -> str | None:
    """The exchange's numeric error code in a ccxt message (which embeds the response body), if any."""
    match = _CODE_RE.search(text)
    return match.group(1) if match else None


def is_rate_limit(exc: BaseException) -> bool:
    """ccxt raises DDoSProtection for 418/429 on Binance and RateLimitExceeded (its subclass) elsewhere."""
    return isinstance(exc, ccxt.DDoSProtection)


def retry_after_s(headers: Mapping[str, str] | None, header_name: str) -> float | None:
    """The venue's ``Retry-After`` hint in seconds, when the last response carried a numeric one."""
    if not headers:
        return None
    value = headers.get(header_name)
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if seconds >= 0 else None


def map_ccxt_error(
    exc: ccxt.BaseError,
    quirks: ExchangeQuirks,
    redactor: SecretRedactor,
    retry_after: float | None,
) -> VenueError:
    """The venue error for ``exc``; its message is redacted and names the ccxt class for diagnosis."""
    text = redactor.redact(f"{type(exc).__name__}: {exc}")
    code = native_error_code(text)
    if code is not None and code in quirks.error_codes:
        return quirks.error_codes[code](text)
    if is_rate_limit(exc):
        return RateLimited(text, retry_after_s=retry_after)
    if isinstance(exc, ccxt.RequestTimeout):
        return VenueTimeout(text)
    if isinstance(exc, ccxt.OrderNotFound):
        return OrderNotFound(text)
    if isinstance(exc, ccxt.InsufficientFunds):
        return InsufficientMargin(text)
    if isinstance(exc, ccxt.NetworkError) and not isinstance(exc, ccxt.InvalidNonce):
        return VenueUnavailable(text)
    return VenueError(text)
