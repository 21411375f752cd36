"""Fill detection latency: pushed by the user-data stream vs found by REST polling, in the same run.

Run: ``python -m experiments.bench.fill_detection [--fills N] [--poll-ms P] [--seed S]``.

Both modes run the same order feed (``router.venues.ccxt.order_feed``) on the same ccxt.pro venue against
the local Binance USDⓈ-M fakes (REST + user data stream on 127.0.0.1; ccxt signs and parses for real). For
each fill a resting post-only order is placed, the feed has seen it open, and then the fake fills it; the
latency is the wall time from the fake's fill to ``OrderUpdates.wait`` returning the filled state. In
``stream`` mode the update is pushed; in ``polling`` mode the stream is refused from the start, so the feed
falls back to REST polling every ``--poll-ms`` (default: the configured ``executor.json`` route poll
interval), and each fill lands at a random phase of the poll cycle, as it does live. The baseline is
polling; the ratio is polling latency over stream latency. REST order fetches per fill are counted too
(each costs request weight against the venue's rate limit). The fakes run in-process: the figures
exclude the network, which adds about the same round trip to both modes.
"""

from __future__ import annotations

import argparse
import asyncio
import time

import numpy as np

from router_tuner.config.loader import load_config
from router_tuner.router.venue import OrderRequest
from router_tuner.router.venues.ccxt.aio import AsyncCcxtVenue
from router_tuner.router.venues.ccxt.config import ApiCredentials, CcxtVenueConfig
from router_tuner.router.venues.ccxt.order_feed import FeedSettings, StreamOrderFeed
from tests.fakes.binance_usdm import FakeBinanceUsdm
from tests.fakes.binance_user_ws import FakeUserDataStream

API_KEY, API_SECRET = "benchKey", "benchSecret"
WAIT_S = 30.0


def _config(base_url: str) -> CcxtVenueConfig:
    return CcxtVenueConfig(exchange_id="binanceusdm", api_key_env="K", api_secret_env="S", api_base_url=base_url,
                           request_timeout_ms=5000, ccxt_rate_limiter=False, rate_limit_max_retries=2,
                           backoff_initial_ms=1.0, backoff_max_ms=5.0, retry_after_max_s=1.0,
                           top_of_book_source="bids_asks", order_book_depth=5)


def _order(cid: str) -> OrderRequest:
    return OrderRequest(client_order_id=cid, symbol="BTCUSDT", side="buy", qty=0.01, order_type="limit",
                        price=59_000.0, time_in_force="GTC", post_only=True, reduce_only=False, close_position=False,
                        position_side="BOTH")


async def _measure(mode: str, fills: int, poll_ms: float, seed: int) -> tuple[list[float], int]:
    """Detection latencies in ms of ``fills`` fills, and the REST order fetches made meanwhile."""
    rng = np.random.default_rng(seed)
    with FakeBinanceUsdm(API_KEY, API_SECRET) as rest, FakeUserDataStream(rest) as stream:
        rest.set_book("BTCUSDT", "60000.0", "2", "60000.1", "2")
        stream.refuse_connections(mode == "polling")
        venue = await AsyncCcxtVenue.connect(_config(rest.base_url), ApiCredentials(API_KEY, API_SECRET),
                                             stream.ws_url, 1_200_000)
        feed = StreamOrderFeed(venue, FeedSettings(poll_interval_ms=poll_ms if mode == "polling" else 600_000.0,
                                                   reconnect_initial_ms=1000.0, reconnect_max_ms=1000.0))
        await feed.start()
        try:
            while mode == "stream" and feed.status.mode != "stream":
                await asyncio.sleep(0.005)
            latencies: list[float] = []
            fetches_before = len(rest.order_requests("GET"))
            for i in range(fills):
                cid = f"{mode}{i}"
                await venue.place_order(_order(cid))
                state = await feed.wait("BTCUSDT", cid, time.time_ns() + int(WAIT_S * 1e9))
                while state is None or state.status != "open":
                    state = await feed.wait("BTCUSDT", cid, time.time_ns() + int(WAIT_S * 1e9))
                await asyncio.sleep(float(rng.uniform(0.0, poll_ms / 1000)))  # a random phase of the poll cycle
                start = time.perf_counter_ns()
                rest.fill(cid, "0.01")
                while state is None or state.status != "filled":
                    state = await feed.wait("BTCUSDT", cid, time.time_ns() + int(WAIT_S * 1e9))
                    if state is None:
                        raise RuntimeError(f"{mode}: fill of {cid} not detected within {WAIT_S} s")
                latencies.append((time.perf_counter_ns() - start) / 1e6)
                feed.forget(cid)
            if feed.status.mode != mode:
                raise RuntimeError(f"the feed ran in {feed.status.mode} mode, not {mode}")
            return latencies, len(rest.order_requests("GET")) - fetches_before
        finally:
            await feed.close()
            await venue.close()


def _summary(name: str, latencies: list[float], fetches: int) -> tuple[float, float]:
    arr = np.asarray(latencies)
    p50, p99, mean = float(np.percentile(arr, 50)), float(np.percentile(arr, 99)), float(arr.mean())
    print(f"{name:<8} fills {len(arr):>4}  p50 {p50:9.2f} ms  p99 {p99:9.2f} ms  mean {mean:9.2f} ms  "
          f"REST order fetches/fill {fetches / len(arr):6.2f}")
    return p50, mean


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fills", type=int, default=40, help="fills measured per mode")
    parser.add_argument("--poll-ms", type=float, default=None,
                        help="REST poll interval of the baseline (default: executor.json route.poll_interval_ms)")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    if args.fills < 1:
        parser.error("--fills must be >= 1")
    poll_ms = args.poll_ms if args.poll_ms is not None else load_config().executor.route.poll_interval_ms
    if poll_ms <= 0:
        parser.error("--poll-ms must be > 0")
    print(f"fill detection against the local Binance USDⓈ-M fakes, {args.fills} fills per mode, poll {poll_ms:g} ms")
    stream = asyncio.run(_measure("stream", args.fills, poll_ms, args.seed))
    polling = asyncio.run(_measure("polling", args.fills, poll_ms, args.seed))
    stream_p50, stream_mean = _summary("stream", *stream)
    polling_p50, polling_mean = _summary("polling", *polling)
    print(f"ratio polling/stream: p50 {polling_p50 / stream_p50:.1f}x, mean {polling_mean / stream_mean:.1f}x")


if __name__ == "__main__":
    main()
