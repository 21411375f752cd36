"""What the concurrent simulation engine changes in the main job's cost figures, against the staggered replays.

Run: ``.venv/bin/python -m experiments.bench.sim_engines [--orders 800] [--learners structured] [--seed 7]
[--symbols S ...] [--data DIR] [--workers N]``

The main job (``simulation.job.simulate``, no shadow scenario) runs twice on the same markets, seed and
intents: with ``router.json`` ``simulation.engine`` ``staggered`` (each symbol's intents on several replays
started at different times, so our orders never meet) and ``concurrent`` (all of them on one replay, routes
overlapping: our posts queue behind our own, our takers use up the displayed size). Per symbol and policy
(always-taker, static, the best fixed arm in hindsight, each learner) it prints the mean cost in bps under
each engine, the paired difference over the orders both filled (concurrent - staggered, mean and 95% normal
interval: the intents are the same, so the pairing removes most of the noise), the maker ratio under each,
and the concurrent run's late starts (orders that started after their arrival because another route's request was
on the wire) with their mean delay. Per symbol it also prints how many routes of the static policy worked
at once (max, and mean at arrivals) under the concurrent engine. Cost figures only: no timing here.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence

import numpy as np

from router_tuner.config.loader import load_config
from router_tuner.router.events import RouterEvent
from router_tuner.simulation.job import SimulationOptions, SimulationResult, SymbolResult, load_markets, simulate
from router_tuner.simulation.learners import learner_policy_name, parse_learners
from router_tuner.simulation.policies import ALWAYS_TAKER, STATIC
from router_tuner.simulation.results import costs
from router_tuner.simulation.runner import intent_index, with_engine
from router_tuner.tuner.factory import build_grid

ENGINES = ("staggered", "concurrent")
BEST_FIXED = "best fixed"


def in_flight(events: Sequence[RouterEvent]) -> tuple[int, float]:
    """(max, mean at each arrival) of the routes working at once, from each route's start and end."""
    starts = np.sort(np.array([e.arrival_ts_ns for e in events], dtype=np.int64))
    ends = np.sort(np.array([e.finished_ts_ns for e in events], dtype=np.int64))
    # at each start: routes started at or before it less routes that ended strictly before it
    working = np.arange(1, len(starts) + 1) - np.searchsorted(ends, starts, side="left")
    return int(working.max()), float(working.mean())


def mean_lateness_ms(sym: SymbolResult, policy: str) -> float | None:
    """Mean delay (ms) between arrival and start of the orders of ``policy`` that started late; None when none did."""
    arrival = {intent.index: intent.arrival_ns for intent in sym.intents}
    late = [e.arrival_ts_ns - arrival[intent_index(e)] for e in sym.runs[policy].events
            if e.arrival_ts_ns > arrival[intent_index(e)]]
    return float(np.mean(late)) / 1e6 if late else None


def paired_difference(base: Sequence[RouterEvent], other: Sequence[RouterEvent]) -> tuple[float, float, int]:
    """Mean of ``other - base`` cost (bps) over the orders both filled, its 95% half-width, and how many."""
    diff = costs(other) - costs(base)
    diff = diff[np.isfinite(diff)]
    if diff.size < 2:
        return float("nan"), float("nan"), int(diff.size)
    return float(diff.mean()), float(1.96 * diff.std(ddof=1) / np.sqrt(diff.size)), int(diff.size)


def policy_names(result: SimulationResult, symbol: str, learners: Sequence[str]) -> dict[str, str]:
    """Row label -> policy name in ``result`` (the best fixed arm is the one in hindsight of this run)."""
    return {ALWAYS_TAKER: ALWAYS_TAKER, STATIC: STATIC, BEST_FIXED: result.symbols[symbol].best_fixed,
            **{learner: learner_policy_name(learner) for learner in learners}}


def print_comparison(results: dict[str, SimulationResult], learners: Sequence[str]) -> None:
    stag, conc = results["staggered"], results["concurrent"]
    print(f"{'symbol':<13}{'policy':<30}{'staggered':>10}{'concurrent':>11}{'paired diff [95%]':>24}{'maker stag':>11}"
          f"{'maker conc':>11}{'late conc':>10}{'late ms':>8}")
    for symbol, sym in stag.symbols.items():
        other = conc.symbols[symbol]
        for label, name in policy_names(stag, symbol, learners).items():
            other_name = policy_names(conc, symbol, learners)[label]
            a, b = sym.summaries[name], other.summaries[other_name]
            mean, half, _ = paired_difference(sym.runs[name].events, other.runs[other_name].events)
            shown = label if label != BEST_FIXED else f"best {name.split(':', 1)[1]}/{other_name.split(':', 1)[1]}"
            print(f"{symbol:<13}{shown:<30}{_f(a.mean_cost_bps):>10}{_f(b.mean_cost_bps):>11}"
                  f"{f'{mean:+.2f} [{mean - half:+.2f}, {mean + half:+.2f}]':>24}{_f(a.maker_ratio):>11}"
                  f"{_f(b.maker_ratio):>11}{b.late_starts:>10}{_f(mean_lateness_ms(other, other_name)):>8}")
        peak, mean_working = in_flight(other.runs[STATIC].events)
        print(f"{symbol:<13}static routes working at once (concurrent): max {peak}, mean at arrival {mean_working:.2f}")


def _f(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=None,
                        help="orders per symbol (default: router.json simulation.intents.orders_per_symbol)")
    parser.add_argument("--learners", default="structured", help="comma-separated learners (default: structured)")
    parser.add_argument("--seed", type=int, default=None, help="seed (default: tuner.json seed)")
    parser.add_argument("--symbols", nargs="+", default=None, help="our symbol names (default: every market)")
    parser.add_argument("--data", default=None, help="recorded data folder (default: see the binance loader)")
    parser.add_argument("--workers", type=int, default=len(os.sched_getaffinity(0)),
                        help="processes per job (default: the CPUs this process may use)")
    args = parser.parse_args(argv)
    base = load_config()
    learners = parse_learners(args.learners)
    try:
        options = SimulationOptions(symbols=tuple(args.symbols) if args.symbols else None,
                                    orders_per_symbol=args.orders or base.router.simulation.intents.orders_per_symbol,
                                    seed=base.tuner.seed if args.seed is None else args.seed, data_dir=args.data,
                                    learners=learners, workers=args.workers)
    except ValueError as error:
        raise SystemExit(f"sim_engines: {error}") from None
    markets, source = load_markets(base, options)
    grid = build_grid(base.tuner, base.router)
    results = {engine: simulate(with_engine(base, engine), markets, options, grid, data_source=source)
               for engine in ENGINES}
    print(f"data {source}; {options.orders_per_symbol} orders per symbol, seed {options.seed}, learners "
          f"{','.join(learners)}; mean cost per order in bps (fees and fallback included), lower is better")
    print_comparison(results, learners)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
