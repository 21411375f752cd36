"""Does the default learner hold up on markets unlike the bundled recordings? Synthetic shapes, one change each.

Run: ``.venv/bin/python -m experiments.bench.learner_stress [--seeds 4,5,6] [--orders 800] [--markets volatile,calm]
[--set tuner.KEY=VALUE ...]``.

Each market is the configured synthetic market (``router.json`` ``simulation.synthetic_market``, BTCUSDT on the USDⓈ-M
fee schedule) with one property moved far from the recordings': a one-tick or a 40-tick spread, six times the
volatility or a fifth of it, a tenth or seven times the trade rate, a maker rebate, equal maker and taker fees. Every
policy routes the same intents; per market it prints mean cost (bps) of always-taker, static, the best fixed arm (in
hindsight, on these intents) and each learner, and the learner's gap to the best fixed arm and to static, over the
seeds. A gap that is large here and small on the recordings is a learner fitted to the recordings' shape.

Seeds 1-3 were looked at when ``learner_params.structured.prior_strength`` was chosen (with the recordings' first
halves, ``learner_eval --part tune``); the README quotes seeds 4-6. Baselines are measured in the same run.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from dataclasses import dataclass

import msgspec
import numpy as np

from experiments.bench.learner_eval import add_run_arguments, configured, part_intents, run_arguments, score
from router_tuner.config.models import ConfigBundle
from router_tuner.router.market.synthetic import generate_regimes
from router_tuner.simulation.learners import learner_policy_name
from router_tuner.simulation.markets import SimMarket, configured_synthetic_spec, synthetic_market_from_tape
from router_tuner.simulation.policies import ALWAYS_TAKER, STATIC

SYMBOL = "BTCUSDT"
DURATION_S = 600.0


@dataclass(frozen=True, slots=True)
class Shape:
    """One synthetic market: the configured one with these properties replaced (``None`` keeps the configured)."""

    spread_ticks: int | None = None
    trade_rate_per_s: float | None = None
    volatility_bps_per_sqrt_s: float | None = None
    maker_fee_bps: float | None = None
    taker_fee_bps: float | None = None


SHAPES: dict[str, Shape] = {
    "configured": Shape(),
    "one_tick": Shape(spread_ticks=1),
    "wide_spread": Shape(spread_ticks=40),
    "busy": Shape(trade_rate_per_s=30.0),
    "dead": Shape(trade_rate_per_s=0.3),
    "volatile": Shape(volatility_bps_per_sqrt_s=3.0),
    "calm": Shape(volatility_bps_per_sqrt_s=0.1),
    "maker_rebate": Shape(maker_fee_bps=-0.5, taker_fee_bps=4.0),
    "flat_fees": Shape(maker_fee_bps=4.0, taker_fee_bps=4.0),
    "busy_volatile_tight": Shape(spread_ticks=2, trade_rate_per_s=30.0, volatility_bps_per_sqrt_s=1.5),
}


def with_fees(config: ConfigBundle, shape: Shape) -> ConfigBundle:
    """``config`` with the USDⓈ-M fee schedule of ``router.json`` ``sim_venue.fees`` replaced where ``shape`` says."""
    if shape.maker_fee_bps is None and shape.taker_fee_bps is None:
        return config
    venue = config.router.sim_venue
    usdm = venue.fees["usdm"]
    fees = {**venue.fees, "usdm": msgspec.structs.replace(
        usdm, maker_fee_bps=usdm.maker_fee_bps if shape.maker_fee_bps is None else shape.maker_fee_bps,
        taker_fee_bps=usdm.taker_fee_bps if shape.taker_fee_bps is None else shape.taker_fee_bps)}
    router = msgspec.structs.replace(config.router, sim_venue=msgspec.structs.replace(venue, fees=fees))
    return msgspec.structs.replace(config, router=router)


def shaped_market(config: ConfigBundle, shape: Shape, seed: int) -> SimMarket:
    """The configured synthetic market of ``SYMBOL`` with ``shape``'s properties, drawn from ``seed``."""
    base = configured_synthetic_spec(config, SYMBOL, seed=int(np.random.SeedSequence([seed, 17]).generate_state(1)[0]))
    moved = {name: value for name in ("spread_ticks", "trade_rate_per_s", "volatility_bps_per_sqrt_s")
             if (value := getattr(shape, name)) is not None}
    market = dataclasses.replace(base, duration_s=DURATION_S, **moved)
    return synthetic_market_from_tape(config, SYMBOL, generate_regimes([market]), source="stress shape")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_run_arguments(parser, learners="structured", seeds="4,5,6")
    parser.add_argument("--markets", default=",".join(SHAPES), help=f"any of {', '.join(SHAPES)}")
    args = parser.parse_args(argv)
    learners, seeds = run_arguments(parser, args)
    unknown = [m for m in args.markets.split(",") if m not in SHAPES]
    if unknown:
        parser.error(f"unknown market(s) {unknown}; choose from {', '.join(SHAPES)}")
    base = configured(args.set)
    names = [learner_policy_name(n) for n in learners]
    print(f"{'market':>20} {'taker':>6} {'static':>6} {'best':>6} " + " ".join(
        f"{n.split(':')[1][:10]:>10} {'-best':>6} {'worst':>6} {'-stat':>6}" for n in names))
    gaps: dict[str, list[float]] = {n: [] for n in names}
    for name in args.markets.split(","):
        config = with_fees(base, SHAPES[name])
        scores = []
        for seed in seeds:
            market = shaped_market(config, SHAPES[name], seed)
            scores.append(score(market, part_intents(market, args.orders, config, seed, "all"), config, learners, seed,
                                f"{name}/s{seed}"))
            print(f"  done {name}/s{seed}", file=sys.stderr, flush=True)
        mean = {k: float(np.mean([s.costs[k] for s in scores])) for k in (ALWAYS_TAKER, STATIC, *names)}
        best = float(np.mean([s.costs[s.best_fixed] for s in scores]))
        row = f"{name:>20} {mean[ALWAYS_TAKER]:6.2f} {mean[STATIC]:6.2f} {best:6.2f} "
        for n in names:
            to_best = [s.costs[n] - s.costs[s.best_fixed] for s in scores]
            gaps[n].append(float(np.mean(to_best)))
            row += f"{mean[n]:10.2f} {np.mean(to_best):+6.3f} {max(to_best):+6.3f} {mean[n] - mean[STATIC]:+6.3f} "
        print(row, flush=True)
    for n in names:
        print(f"{n}: mean gap to the best fixed arm over the markets {np.mean(gaps[n]):+.3f} bps "
              f"(largest market {max(gaps[n]):+.3f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
