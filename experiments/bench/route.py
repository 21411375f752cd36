"""Routing decision latency and routes per second of the state machine, on the scripted venue.

Run: ``python -m experiments.bench.route [--routes N] [--seed S] [--poll-ms P] [--learner NAME]``.

Decision latency is the wall time from calling ``route`` to the first ``place_order`` reaching the
venue (arrival touch read, policy checks, maker/taker draw, pricing, request building). The baseline,
measured in the same run, is pricing and building that first ``OrderRequest`` alone (``maker_price`` +
``request``), so the ratio shows what the state machine adds on top of the unavoidable work. The same
latency with the tuner deciding (``TunerService.decide`` then ``route``, the tuner learning from every
order off the clock, after a warm-up past its burn-in) is shown against the fixed-policy ``route()`` of the
same run, and again with the garbage collector off. A full collection's time with ``live``'s modules loaded is
shown before and after ``executor.engine.collection.freeze_startup``. Routes per
second are whole routes end to end in three shapes: a maker fill found at the first poll, a TTL expiry
with a taker fallback (every poll of the TTL included), and a straight taker; the baseline there is the
same scripted venue driven through the same calls by hand, without the router.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import time
from collections.abc import Callable
from typing import get_args

import msgspec
import numpy as np

from router_tuner.config.loader import load_config
from router_tuner.config.models import ConfigBundle, LearnerName
from router_tuner.executor.engine.collection import freeze_startup, thaw
from router_tuner.features.context import Context
from router_tuner.router.contract import Contract
from router_tuner.router.policy import RouterPolicy
from router_tuner.router.routing.machine import maker_price, route, taker_limit_price
from router_tuner.router.routing.order import RouteOrder, RouteSettings, client_order_id, request
from router_tuner.router.routing.scripted import Quote, ScriptedFill, ScriptedVenue
from router_tuner.router.venue import OrderRequest, OrderState
from router_tuner.tuner.reward_adjustment import MarketAfter, move_against_bps
from router_tuner.tuner.service.publish import InMemoryPublisher
from router_tuner.tuner.service.tuner_service import TunerService

MS = 1_000_000
QUOTE = Quote(0, 100.00, 100.10, 5.0, 5.0)


class _TimedVenue(ScriptedVenue):
    """Notes the wall time of the first order request."""

    first_request_ns: int | None = None

    def place_order(self, request: OrderRequest) -> OrderState:
        if self.first_request_ns is None:
            self.first_request_ns = time.perf_counter_ns()
        return super().place_order(request)


def _venue(fills: list[ScriptedFill]) -> _TimedVenue:
    return _TimedVenue("BTCUSDT", [QUOTE], fills=fills, faults=[], maker_fee_bps=2.0, taker_fee_bps=5.0,
                       entry_latency_ns=10 * MS, cancel_latency_ns=10 * MS, contract=Contract("linear", 1.0))


def _order(index: int) -> RouteOrder:
    return RouteOrder(intent_id=f"bench{index}", symbol="BTCUSDT", side="buy", qty=1.0, reduce_only=False,
                      close_position=False, position_side="LONG", quote="USDT", tick_size=0.01, qty_step=0.001)


def _pct(values_ns: list[int]) -> tuple[float, float]:
    arr = np.asarray(values_ns, dtype=np.float64) / 1e3
    return float(np.percentile(arr, 50)), float(np.percentile(arr, 99))


def _decision_latency(policy: RouterPolicy, settings: RouteSettings, n: int, seed: int) -> list[int]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        venue = _venue([ScriptedFill(50 * MS, 1.0)])
        start = time.perf_counter_ns()
        route(_order(i), policy, venue, rng=rng, settings=settings)
        assert venue.first_request_ns is not None
        out.append(venue.first_request_ns - start)
    return out


def _tuner(bundle: ConfigBundle, learner: str) -> TunerService:
    """A live BTCUSDT tuner with ``learner`` (publishing in memory), as the executor builds it."""
    tuner = msgspec.structs.replace(bundle.tuner, learner=learner, deployment=msgspec.structs.replace(
        bundle.tuner.deployment, shadow_symbols=[]))
    return TunerService.from_config(msgspec.structs.replace(bundle, tuner=tuner), ["BTCUSDT"], InMemoryPublisher())


def _tuner_decision_latency(service: TunerService, settings: RouteSettings, n: int, seed: int) -> list[int]:
    """Intent -> first order request with the tuner deciding; the outcome is learned after the clock stops."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        context = Context(spread_bps=float(rng.uniform(0.5, 5.0)), volatility_bps=float(rng.uniform(0.5, 20.0)),
                          book_imbalance=float(rng.uniform(-1.0, 1.0)), hour=float(rng.uniform(0.0, 24.0)),
                          size_vs_touch=float(rng.uniform(0.0, 2.0)))
        venue = _venue([ScriptedFill(int(rng.integers(10, 400)) * MS, 1.0)])
        start = time.perf_counter_ns()
        policy = service.decide("BTCUSDT", context)
        event = route(_order(i), policy, venue, rng=rng, settings=settings)
        assert venue.first_request_ns is not None
        out.append(venue.first_request_ns - start)
        end_mid = venue.top_of_book("BTCUSDT").mid   # what the executor reads when a route ends (reward_mid route_end)
        service.observe(event, context, MarketAfter(markout_bps=None, move_to_end_bps=move_against_bps(
            event.side, event.arrival_mid, end_mid)))
    return out


def _baseline_request(policy: RouterPolicy, n: int) -> list[int]:
    out = []
    for i in range(n):
        venue = _venue([])
        order = _order(i)
        start = time.perf_counter_ns()
        touch = venue.top_of_book(order.symbol)
        request(order, client_id=client_order_id(order.intent_id, 1), qty=order.qty, order_type="limit",
                price=maker_price(order, touch, policy.maker_offset_bps), time_in_force="GTC", post_only=True)
        out.append(time.perf_counter_ns() - start)
    return out


def _routes_per_s(run_one: Callable[[int], None], n: int) -> float:
    start = time.perf_counter()
    for i in range(n):
        run_one(i)
    return n / (time.perf_counter() - start)


def _by_hand_taker_fallback(policy: RouterPolicy, settings: RouteSettings, index: int) -> None:
    """The venue calls a TTL-expiry route makes, without the router: the venue's own share of the cost."""
    venue = _venue([])
    order = _order(index)
    touch = venue.top_of_book(order.symbol)
    maker = request(order, client_id=client_order_id(order.intent_id, 1), qty=order.qty, order_type="limit",
                    price=maker_price(order, touch, policy.maker_offset_bps), time_in_force="GTC", post_only=True)
    venue.place_order(maker)
    deadline = venue.clock.now_ns() + int(policy.maker_ttl_ms * MS)
    while venue.clock.now_ns() < deadline:
        venue.clock.sleep_until(min(venue.clock.now_ns() + int(settings.poll_interval_ms * MS), deadline))
        venue.fetch_order(order.symbol, maker.client_order_id)
    venue.cancel_order(order.symbol, maker.client_order_id)
    taker = request(order, client_id=client_order_id(order.intent_id, 2), qty=order.qty, order_type="limit",
                    price=taker_limit_price(order, touch.mid, policy.max_taker_slippage_bps), time_in_force="IOC",
                    post_only=False)
    venue.place_order(taker)


def _full_collections(repeats: int = 3) -> None:
    """A full garbage collection's time with ``live``'s modules loaded, then after ``freeze_startup`` (as ``live``
    runs): CPython starts one by itself, inside whatever runs, whenever long-lived objects have grown by a quarter."""
    importlib.import_module("router_tuner.cli.live")  # ccxt, MLflow, pandas: what a live process holds

    def median_ms() -> float:
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            gc.collect()
            times.append((time.perf_counter() - start) * 1e3)
        return float(np.median(times))

    tracked = len(gc.get_objects())
    unfrozen = median_ms()
    freeze_startup()
    try:
        frozen = median_ms()
    finally:
        thaw()
    print(f"\nfull garbage collection with live's modules loaded ({tracked} tracked objects), median of {repeats}: "
          f"{unfrozen:.1f} ms; after freeze_startup (as `live` runs): {frozen:.3f} ms")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--routes", type=int, default=5000, help="routes per measurement")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--poll-ms", type=float, default=100.0, help="status poll cadence (simulated ms)")
    parser.add_argument("--learner", choices=get_args(LearnerName), default=None,
                        help="the deciding tuner's learner (default: tuner.json's)")
    args = parser.parse_args(argv)
    bundle = load_config()
    config = bundle.router
    settings = RouteSettings.from_config(config, poll_interval_ms=args.poll_ms, max_venue_retries=2,
                                         rate_limit_backoff_ms=50.0, max_retry_after_ms=5000.0)
    maker_policy = RouterPolicy.from_static("BTCUSDT", config)
    fallback_policy = RouterPolicy(**{**maker_policy.as_params(), "reprice_attempts": 0})  # type: ignore[arg-type]
    taker_policy = RouterPolicy(**{**maker_policy.as_params(), "taker_bias": 1.0})  # type: ignore[arg-type]
    n = args.routes

    _decision_latency(maker_policy, settings, min(n, 500), args.seed)  # warm-up
    decision = _pct(_decision_latency(maker_policy, settings, n, args.seed))
    baseline = _pct(_baseline_request(maker_policy, n))
    print(f"routing decision latency, intent -> first order request, n={n} (scripted venue, wall clock)")
    print(f"  route():               p50 {decision[0]:8.1f} us   p99 {decision[1]:8.1f} us")
    print(f"  baseline (touch + price + OrderRequest only): p50 {baseline[0]:6.1f} us   p99 {baseline[1]:6.1f} us")
    print(f"  ratio route/baseline:  p50 {decision[0] / baseline[0]:6.2f}x  p99 {decision[1] / baseline[1]:6.2f}x")

    learner = args.learner or bundle.tuner.learner
    service = _tuner(bundle, learner)
    _tuner_decision_latency(service, settings, min(n, 1000), args.seed + 1)  # warm-up past the burn-in
    tuned = _pct(_tuner_decision_latency(service, settings, n, args.seed + 2))
    print(f"  tuner deciding ({learner}), decide() + route(): p50 {tuned[0]:8.1f} us   p99 {tuned[1]:8.1f} us")
    print(f"  ratio tuner deciding / fixed-policy route(): p50 {tuned[0] / decision[0]:6.2f}x  "
          f"p99 {tuned[1] / decision[1]:6.2f}x")
    gc.disable()
    try:
        untouched = _pct(_tuner_decision_latency(service, settings, n, args.seed + 3))
    finally:
        gc.enable()
    print(f"  the same with the garbage collector off: p50 {untouched[0]:8.1f} us   p99 {untouched[1]:8.1f} us "
          f"(collector on / off: p50 {tuned[0] / untouched[0]:.2f}x, p99 {tuned[1] / untouched[1]:.2f}x)")
    _full_collections()

    rng = np.random.default_rng(args.seed)
    shapes = {
        "maker fill at first poll": lambda i: route(_order(i), maker_policy, _venue([ScriptedFill(50 * MS, 1.0)]),
                                                    rng=rng, settings=settings),
        "TTL expiry -> taker fallback": lambda i: route(_order(i), fallback_policy, _venue([]), rng=rng,
                                                        settings=settings),
        "straight taker": lambda i: route(_order(i), taker_policy, _venue([]), rng=rng, settings=settings),
    }
    hand = _routes_per_s(lambda i: _by_hand_taker_fallback(fallback_policy, settings, i), n)
    polls = int(fallback_policy.maker_ttl_ms / args.poll_ms)
    print(f"\nroutes per second, n={n} each (TTL {fallback_policy.maker_ttl_ms:.0f} ms, poll {args.poll_ms:.0f} ms "
          f"-> {polls} polls per expiry)")
    for name, run_one in shapes.items():
        print(f"  {name:30s} {_routes_per_s(run_one, n):10.0f} routes/s")
    fallback_rate = _routes_per_s(shapes["TTL expiry -> taker fallback"], n)
    print(f"  baseline: same venue calls by hand   {hand:10.0f} routes/s")
    print(f"  ratio TTL-expiry route / by-hand calls: {fallback_rate / hand:5.2f}x throughput")


if __name__ == "__main__":
    main()
