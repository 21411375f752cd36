"""The concurrent engine against the sequential one, in paper mode, in the same run.

Run: ``python -m experiments.bench.engine [--intents N] [--routes R] [--per-symbol P] [--repeats K] [--seed S]``.

Both engines are the same ``Executor`` on the paper venue ``live`` uses (the simulated venue over the
synthetic market of ``executor.json``, its account saved to a file after every call, journal and store
in a temporary directory), its routes asyncio tasks on the engine's loop thread (``executor.engine.routes``,
the paper clock moved by ``router.routing.timeline``), fed ``N`` opening intents queued up front on two
symbols (a wallet large enough that no cap vetoes them): the baseline with ``engine.max_routes_in_flight``
= 1 (the sequential engine), the candidate with ``R`` routes in flight (``P`` per symbol, default ``R / 2``).
Reported per engine:

- sustained intents per wall-clock second (all ``N`` journaled) and per second of simulated market time
  (how much market time the intents took: routes that overlap share it);
- intent-to-first-order latency (wall clock, p50/p99) two ways: from the engine reading the intent from
  its source (``read``: includes the wait of an intent read while its symbol's slots were all taken, which
  the engine holds until a route of that symbol ends), and from the engine starting its admission
  (``admit``: risk, sizing, the Submission record, the route's first steps) to its first order request
  reaching the venue; time an intent waits in the source while every slot is taken is in neither;
- process CPU time per intent (the rest of the wall time is waiting on the disk: the store, journal and
  paper account are fsynced on every Submission, batch and order);
- the most routes working at one instant (from the journal).

The two engines run alternately ``K`` times each; each figure is the best of its ``K`` runs (the most intents
per second, the least CPU and latency), the rule of ``experiments.bench.timing``. Ratios are concurrent /
sequential.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
import numpy as np

from router_tuner.config.loader import load_config
from router_tuner.config.models import ConfigBundle
from router_tuner.executor.intents import QueueIntentSource
from router_tuner.executor.journal import Journal
from router_tuner.executor.loop import Executor
from router_tuner.executor.monitoring.metrics import ExecutorMetrics
from router_tuner.executor.monitoring.telemetry import Telemetry
from router_tuner.executor.store import ExecutorStore
from router_tuner.executor.venues import paper_account, synthetic_tapes
from router_tuner.router.events import Intent
from router_tuner.router.policy import RouterPolicy
from router_tuner.router.venue import OrderRequest, OrderState

T0_NS = 1_700_000_000_000_000_000


class _TimedVenue:
    """The paper venue, noting the wall time of each intent's first order request."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self.first_order_ns: dict[str, int] = {}

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def place_order(self, request: OrderRequest) -> OrderState:
        intent_id = request.client_order_id.rsplit("-", 1)[0]
        self.first_order_ns.setdefault(intent_id, time.perf_counter_ns())
        return self._inner.place_order(request)


class _TimedExecutor(Executor):
    """The executor, noting the wall time each intent's admission starts (after any wait for a slot)."""

    admit_ns: dict[str, int]

    def _begin(self, intent: Intent) -> Any:
        self.admit_ns.setdefault(intent.intent_id, time.perf_counter_ns())
        return super()._begin(intent)


class _TimedSource(QueueIntentSource):
    """A queue of intents, noting the wall time each one is read by the engine."""

    def __init__(self) -> None:
        super().__init__()
        self.read_ns: dict[str, int] = {}

    def next_intent(self, timeout_s: float) -> Intent | None:
        intent = super().next_intent(timeout_s)
        if intent is not None:
            self.read_ns[intent.intent_id] = time.perf_counter_ns()
        return intent


def bench_config(routes: int, per_symbol: int) -> ConfigBundle:
    base = load_config()
    ex = base.executor
    executor = msgspec.structs.replace(
        ex, starting_wallet_usd=1e9, paper=msgspec.structs.replace(ex.paper, duration_s=3600.0),
        engine=msgspec.structs.replace(ex.engine, max_routes_in_flight=routes,
                                       max_routes_per_symbol=per_symbol))
    risk = msgspec.structs.replace(base.risk, max_trades_per_symbol_per_hour=100_000)
    strategy = msgspec.structs.replace(base.strategy, screener=msgspec.structs.replace(
        base.strategy.screener, require_imbalance_alignment=False))
    return msgspec.structs.replace(base, executor=executor, risk=risk, strategy=strategy)


def intents(count: int) -> list[Intent]:
    out = []
    for i in range(count):
        long_leg = i % 4 < 2
        out.append(Intent(intent_id=f"b{i}", symbol="BTCUSDT" if i % 2 == 0 else "ETHUSDT",
                          side="buy" if long_leg else "sell", size_hint_usd=300.0, tier="CORE", strategy="bench",
                          reduce_only=False, close_position=False, position_side="LONG" if long_leg else "SHORT",
                          is_stop=False, ts_ns=T0_NS))
    return out


def run_engine(routes: int, per_symbol: int, count: int, seed: int, workdir: Path) -> dict[str, float]:
    config = bench_config(routes, per_symbol)
    account = paper_account(config, synthetic_tapes(config, start_ns=T0_NS), name=f"bench-{routes}",
                            path=workdir / "paper.json")
    venue = _TimedVenue(account)
    universe = config.strategy.universe
    with Journal(workdir / "journal.sqlite") as journal, ExecutorStore(workdir / "executor.sqlite") as store:
        telemetry = Telemetry(config=config.executor, store=store, contracts=universe,
                              metrics=ExecutorMetrics(universe, config.executor.prometheus))
        policy_for: Callable[[str], RouterPolicy] = lambda symbol: RouterPolicy.from_static(symbol, config.router)  # noqa: E731
        executor = _TimedExecutor(config=config, venue=venue, journal=journal, store=store,  # type: ignore[arg-type]
                                  policy_for=policy_for, rng=np.random.default_rng(seed),
                                  venue_positions=account.positions, telemetry=telemetry, adaptive=None)
        executor.admit_ns = {}
        executor.start()
        source = _TimedSource()
        for intent in intents(count):
            source.put(intent)
        source.close()
        sim_start_ns = account.clock.now_ns()
        wall_start, cpu_start = time.perf_counter(), time.process_time()
        executor.run(source, idle_poll_s=0.01, should_stop=lambda: False, on_idle=None)
        wall_s, cpu_s = time.perf_counter() - wall_start, time.process_time() - cpu_start
        executor.close()
        sim_s = (account.clock.now_ns() - sim_start_ns) / 1e9
        events = list(journal.read("router"))
        assert journal.count("trade") == count, "every intent must be journaled once"
    read_us = np.array([(venue.first_order_ns[i] - source.read_ns[i]) / 1e3 for i in venue.first_order_ns])
    admit_us = np.array([(venue.first_order_ns[i] - executor.admit_ns[i]) / 1e3 for i in venue.first_order_ns])
    return {"intents_per_s": count / wall_s, "intents_per_sim_s": count / sim_s, "routed": len(events),
            "cpu_ms": cpu_s / count * 1e3,
            "p50_us": float(np.percentile(read_us, 50)), "p99_us": float(np.percentile(read_us, 99)),
            "admit_p50_us": float(np.percentile(admit_us, 50)), "admit_p99_us": float(np.percentile(admit_us, 99)),
            "most_at_once": most_at_once([(e.arrival_ts_ns, e.finished_ts_ns) for e in events])}


def best(runs: list[dict[str, float]]) -> dict[str, float]:
    """Each figure at its best over ``runs``: throughput the highest, CPU and latencies the lowest (the
    simulated figures are the same in every run)."""
    return {key: (max if key.startswith("intents_per") else min)(run[key] for run in runs) for key in runs[0]}


def most_at_once(spans: list[tuple[int, int]]) -> int:
    edges = sorted([(a, 1) for a, _ in spans] + [(f, -1) for _, f in spans])
    running = best = 0
    for _, step in edges:
        running += step
        best = max(best, running)
    return best


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--intents", type=int, default=400)
    parser.add_argument("--routes", type=int, default=50)
    parser.add_argument("--per-symbol", type=int, default=None, help="routes per symbol (default: routes / 2)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error("--repeats must be >= 1")
    per_symbol = args.per_symbol if args.per_symbol is not None else max(1, args.routes // 2)
    engines = (("sequential", 1, 1), (f"concurrent({args.routes})", args.routes, per_symbol))
    runs: dict[str, list[dict[str, float]]] = {label: [] for label, _, _ in engines}
    for _ in range(args.repeats):
        for label, routes, symbol_slots in engines:
            with tempfile.TemporaryDirectory() as tmp:
                runs[label].append(run_engine(routes, symbol_slots, args.intents, args.seed, Path(tmp)))
    results = {label: best(label_runs) for label, label_runs in runs.items()}
    print(f"{'engine':<16} {'intents/s':>10} {'intents/sim-s':>14} {'cpu ms/intent':>14} {'routed':>7} "
          f"{'read p50/p99 us':>16} {'admit p50/p99 us':>17} {'max in flight':>14}")
    for label, r in results.items():
        print(f"{label:<16} {r['intents_per_s']:>10.1f} {r['intents_per_sim_s']:>14.2f} {r['cpu_ms']:>14.2f} "
              f"{r['routed']:>7.0f} {r['p50_us']:>7.0f}/{r['p99_us']:<8.0f} "
              f"{r['admit_p50_us']:>8.0f}/{r['admit_p99_us']:<8.0f} {r['most_at_once']:>14.0f}")
    seq, con = results["sequential"], results[f"concurrent({args.routes})"]
    print(f"ratio concurrent/sequential: intents/s {con['intents_per_s'] / seq['intents_per_s']:.2f}x, "
          f"intents/sim-s {con['intents_per_sim_s'] / seq['intents_per_sim_s']:.2f}x, "
          f"read p50 latency {con['p50_us'] / seq['p50_us']:.2f}x, p99 {con['p99_us'] / seq['p99_us']:.2f}x, "
          f"admit p50 latency {con['admit_p50_us'] / seq['admit_p50_us']:.2f}x, "
          f"p99 {con['admit_p99_us'] / seq['admit_p99_us']:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
