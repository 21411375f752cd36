"""Routing decision latency and routes per second of the state machine, on the scripted venue.

Run: ``python -m experiments.bench.route [--routes N] [--seed S] [--poll-ms P] [--learner NAME]``.

Decision latency is the wall time from calling ``route`` to the first ``place_order`` reaching the
venue (arrival touch read, policy checks, maker/taker draw, pricing, request building). The baseline,
measured in the same run, is pricing and building that first ``OrderRequest`` alone (``maker_price`` +
``request``), so the ratio shows what the state machine adds on top of the unavoidable work. The same
latency with the tuner deciding (``TunerService.decide`` then ``route``, the tuner learning from every
order off the clock, after a warm-up past its burn-in) is shown against the fixed-policy ``route()`` of the
same run. Both are measured twice: under CPython's automatic garbage collector, and as ``router-tuner live``
runs (start-up frozen, the collector run between orders: ``executor.engine.collection``). Routes per
second are whole routes end to end in three shapes: a maker fill found at the first poll, a TTL expiry
with a taker fallback (every poll of the TTL included), and a straight taker; the baseline there is the
same scripted venue driven through the same calls by hand, without the router.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import get_args

import msgspec
import numpy as np

from router_tuner.config.loader import load_config
from router_tuner.config.models import ConfigBundle, LearnerName
from router_tuner.executor.engine.collection import collect_if_due, freeze_startup, thaw
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


def _no_collection() -> None:
    """Between orders under CPython's automatic collector: nothing."""


def _decision_latency(policy: RouterPolicy, settings: RouteSettings, n: int, seed: int,
                      between: Callable[[], object] = _no_collection) -> list[int]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        venue = _venue([ScriptedFill(50 * MS, 1.0)])
        start = time.perf_counter_ns()
        route(_order(i), policy, venue, rng=rng, settings=settings)
        assert venue.first_request_ns is not None
        out.append(venue.first_request_ns - start)
        between()
    return out


def _tuner(bundle: ConfigBundle, learner: str) -> TunerService:
    """A live BTCUSDT tuner with ``learner`` (publishing in memory), as the executor builds it."""
    tuner = msgspec.structs.replace(bundle.tuner, learner=learner, deployment=msgspec.structs.replace(
        bundle.tuner.deployment, shadow_symbols=[]))
    return TunerService.from_config(msgspec.structs.replace(bundle, tuner=tuner), ["BTCUSDT"], InMemoryPublisher())


def _tuner_decision_latency(service: TunerService, settings: RouteSettings, n: int, seed: int,
                            between: Callable[[], object] = _no_collection) -> list[int]:
    """Intent -> first order request with the tuner deciding; the outcome is learned after the clock stops, and
    ``between`` runs after it, as the executor runs its garbage collection when a route has landed."""
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
        between()
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
    baseline = _pct(_baseline_request(maker_policy, n))
    learner = args.learner or bundle.tuner.learner
    service = _tuner(bundle, learner)
    _tuner_decision_latency(service, settings, min(n, 1000), args.seed + 1)  # warm-up past the burn-in
    print(f"routing decision latency, intent -> first order request, n={n} (scripted venue, wall clock)")
    print(f"  baseline (touch + price + OrderRequest only): p50 {baseline[0]:6.1f} us   p99 {baseline[1]:6.1f} us")
    fixed: dict[str, tuple[float, float]] = {}
    tuned: dict[str, tuple[float, float]] = {}
    for regime, between in (("CPython's automatic collector", _no_collection),
                            ("start-up frozen, collected between orders (as `live` runs)", collect_if_due)):
        if between is collect_if_due:
            freeze_startup()
        fixed[regime] = _pct(_decision_latency(maker_policy, settings, n, args.seed, between))
        tuned[regime] = _pct(_tuner_decision_latency(service, settings, n, args.seed + 2, between))
        print(f" {regime}:")
        print(f"  route() of a fixed policy:  p50 {fixed[regime][0]:8.1f} us   p99 {fixed[regime][1]:8.1f} us   "
              f"({fixed[regime][0] / baseline[0]:.2f}x / {fixed[regime][1] / baseline[1]:.2f}x the baseline)")
        print(f"  tuner deciding ({learner}), decide() + route(): p50 {tuned[regime][0]:8.1f} us   "
              f"p99 {tuned[regime][1]:8.1f} us   ({tuned[regime][0] / fixed[regime][0]:.2f}x / "
              f"{tuned[regime][1] / fixed[regime][1]:.2f}x the fixed route)")
    thaw()
    automatic, paced = (tuned[regime] for regime in tuned)
    print(f"  tuner deciding, paced collection / automatic: p50 {paced[0] / automatic[0]:5.2f}x  "
          f"p99 {paced[1] / automatic[1]:5.2f}x")

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
