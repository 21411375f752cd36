"""Settings and credentials of the live ccxt venue: every tunable is a required field, keys come from env.

Credentials are read from environment variables whose *names* are configured, so the key material never
passes through config files, command lines or logs. Validation happens at construction: a bad value is a
load error, not a surprise on the first order.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

TopOfBookSource = Literal["order_book", "bids_asks"]


@dataclass(frozen=True, slots=True)
class CcxtVenueConfig:
    """How to reach and pace one exchange through ccxt.

    ``exchange_id`` is a ccxt exchange id (``binanceusdm``); its quirks come from ``router.venues.ccxt.quirks``.
    ``api_base_url`` re-points every REST endpoint of the client at another host (a proxy, or the local
    fake in tests) keeping the paths; ``None`` keeps ccxt's production URLs.
    ``request_timeout_ms`` is ccxt's per-request timeout. Rate-limit answers are retried up to
    ``rate_limit_max_retries`` times with back-off ``backoff_initial_ms * 2**n`` capped at
    ``backoff_max_ms``; a venue ``Retry-After`` longer than ``retry_after_max_s`` is not waited out but
    raised. ``top_of_book_source`` picks the depth endpoint (``order_book`` with ``order_book_depth``
    levels) or the book-ticker endpoint (``bids_asks``).
    """

    exchange_id: str
    api_key_env: str
    api_secret_env: str
    api_base_url: str | None
    request_timeout_ms: int
    ccxt_rate_limiter: bool
    rate_limit_max_retries: int
    backoff_initial_ms: float
    backoff_max_ms: float
    retry_after_max_s: float
    top_of_book_source: TopOfBookSource
    order_book_depth: int

    def __post_init__(self) -> None:
        if not self.exchange_id:
            raise ValueError("exchange_id must name a ccxt exchange")
        if not self.api_key_env or not self.api_secret_env:
            raise ValueError("api_key_env and api_secret_env must name environment variables")
        if self.api_key_env == self.api_secret_env:
            raise ValueError("api_key_env and api_secret_env must differ")
        if self.request_timeout_ms <= 0:
            raise ValueError(f"request_timeout_ms must be > 0, got {self.request_timeout_ms}")
        if self.rate_limit_max_retries < 0:
            raise ValueError(f"rate_limit_max_retries must be >= 0, got {self.rate_limit_max_retries}")
        for name in ("backoff_initial_ms", "backoff_max_ms", "retry_after_max_s"):
            value = getattr(self, name)
            if not math.isfinite(value) or value < 0:
                raise ValueError(f"{name} must be finite and >= 0, got {value}")
        if self.backoff_max_ms < self.backoff_initial_ms:
            raise ValueError("backoff_max_ms must be >= backoff_initial_ms")
        if self.top_of_book_source not in ("order_book", "bids_asks"):
            raise ValueError(
                f"top_of_book_source must be order_book or bids_asks, got {self.top_of_book_source!r}"
            )
        if self.order_book_depth <= 0:
            raise ValueError(f"order_book_depth must be > 0, got {self.order_book_depth}")


class MissingCredentials(ValueError):
    """An API key variable is not set: names the variable, never a value."""


@dataclass(frozen=True, slots=True)
class ApiCredentials:
    """An API key pair. ``repr`` never shows the values."""

    api_key: str
    api_secret: str

    def __repr__(self) -> str:
        return "ApiCredentials(api_key=***, api_secret=***)"

    @classmethod
    def from_env(
        cls, key_env: str, secret_env: str, environ: Mapping[str, str] = os.environ
    ) -> ApiCredentials:
        """Read both variables; a missing or empty one is an error that names the variable, not its value."""
        missing = [name for name in (key_env, secret_env) if not environ.get(name)]
        if missing:
            raise MissingCredentials(f"API credentials missing: set environment variable(s) {', '.join(missing)}")
        return cls(api_key=environ[key_env], api_secret=environ[secret_env])


def check_stream_settings(settings: Any, first: str) -> None:
    """``first`` and the reconnect back-off (``reconnect_initial_ms``, ``reconnect_max_ms``) of a stream's settings:
    each finite and > 0, the cap not under the start."""
    for name in (first, "reconnect_initial_ms", "reconnect_max_ms"):
        value = getattr(settings, name)
        if not math.isfinite(value) or value <= 0:
            raise ValueError(f"{name} must be finite and > 0, got {value}")
    if settings.reconnect_max_ms < settings.reconnect_initial_ms:
        raise ValueError("reconnect_max_ms must be >= reconnect_initial_ms")
