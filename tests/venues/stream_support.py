"""Shared by the ccxt.pro venue and order-feed tests: the fakes' credentials, configs, orders and waiting."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

from router_tuner.router.venue import OrderRequest
from router_tuner.router.venues.ccxt.config import CcxtVenueConfig
from tests.fakes.binance_usdm import FakeBinanceUsdm
from tests.fakes.binance_user_ws import FakeUserDataStream

API_KEY = "feedKey0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUV"
API_SECRET = "feedSecret9876543210zyxwvutsrqponmlkjihgfedcbaZYXWVUTSRQPONMLKJ"
SLOW_POLL_MS = 600_000.0  # polling never runs within a test: what arrives, arrived by the stream or a re-read
DEADLINE_S = 10.0


@dataclass
class Fakes:
    rest: FakeBinanceUsdm
    stream: FakeUserDataStream


def venue_config(base_url: str) -> CcxtVenueConfig:
    return CcxtVenueConfig(exchange_id="binanceusdm", api_key_env="K", api_secret_env="S", api_base_url=base_url,
                           request_timeout_ms=2000, ccxt_rate_limiter=False, rate_limit_max_retries=2,
                           backoff_initial_ms=1.0, backoff_max_ms=5.0, retry_after_max_s=1.0,
                           top_of_book_source="bids_asks", order_book_depth=5)


def resting_buy(cid: str, qty: float = 0.01, price: float = 59_000.0) -> OrderRequest:
    return OrderRequest(client_order_id=cid, symbol="BTCUSDT", side="buy", qty=qty, order_type="limit", price=price,
                        time_in_force="GTC", post_only=True, reduce_only=False, close_position=False,
                        position_side="BOTH")


def deadline() -> int:
    return time.time_ns() + int(DEADLINE_S * 1e9)


async def eventually(check: Callable[[], bool], what: str) -> None:
    end = time.monotonic() + DEADLINE_S
    while not check():
        if time.monotonic() > end:
            raise AssertionError(f"not within {DEADLINE_S} s: {what}")
        await asyncio.sleep(0.005)
