"""Does a learner beat the static policy on data it was not tuned on? A held-out evaluation of the tuner.

Run: ``.venv/bin/python -m experiments.bench.learner_eval [--part holdout|tune|all] [--orders 800]
[--learners structured,thompson] [--seeds 7,8] [--no-regimes] [--set tuner.KEY=VALUE ...]
[--engine staggered|concurrent] [--informed SHARE] [--active-speed S]`` (``--engine``: ``router.json``
``simulation.engine`` for this run; ``--informed``: ``router.json`` ``simulation.intents.informed_share``, the
share of intents that know where the mid goes, so that waiting to post costs them the drift; ``--active-speed``:
the recorded regime markets' active third played S times faster).

How the data is split, so that tuning is honest: hyper-parameters are chosen on the synthetic market
and on the FIRST half of each bundled recording (``--part tune``); the figures quoted in the README are
from the SECOND half (``--part holdout``), where every policy routes the same ``--orders`` intents, and
from regime-switching markets, the shape real markets take within hours: each recording with each half played
quiet, active, quiet (its ends slowed ``QUIET_SLOWDOWN`` times: real data, :func:`recorded_regime_market`), and a
synthetic market through quiet, active and quiet regimes drawn anew for each seed and part. Each part
routes the same intents under always-taker, the static policy, every fixed arm of the grid (the best one is
chosen in hindsight on these very intents: an oracle) and each learner; per market it prints mean cost (bps,
fees and fallback included), the gap of each learner to the best fixed arm and to static, and the share of the
taker -> best-fixed gap the learner captures.

Baselines measured in the same run: always-taker and static are the reference points, so no figure
depends on the speed or noise of the machine.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys
from dataclasses import dataclass
from fractions import Fraction
from typing import get_args

import msgspec
import numpy as np

from router_tuner.config.loader import ConfigError, load_config
from router_tuner.config.models import ConfigBundle, SimulationEngine
from router_tuner.router.market.binance import MarketDataError, resolve_data_dir
from router_tuner.router.market.synthetic import generate_regimes
from router_tuner.router.market.warp import warp_time
from router_tuner.simulation.intents import SimIntent, TapeTooShort, intent_stream
from router_tuner.simulation.job import baseline_sources
from router_tuner.simulation.learners import learner_policy_name, learner_runs, parse_learners
from router_tuner.simulation.markets import (
    SimMarket,
    configured_synthetic_spec,
    recorded_markets,
    synthetic_market_from_tape,
)
from router_tuner.simulation.policies import ALWAYS_TAKER, FIXED_PREFIX, STATIC
from router_tuner.simulation.results import captured_share, segment_oracle_cost_bps
from router_tuner.simulation.results import costs as run_costs
from router_tuner.simulation.runner import run_policy, with_engine
from router_tuner.simulation.sweep.grid import GridError, parse_axis, with_settings
from router_tuner.tuner.factory import build_grid

REGIMES = (("quiet", 0.1, 300.0), ("active", 8.0, 300.0), ("quiet", 0.1, 300.0))
"""(name, trade rate as a multiple of the configured synthetic market's, duration in s) of each regime."""
REGIME_SYMBOL = "BTCUSDT"
QUIET_SLOWDOWN = 4.0
"""A recording's quiet regime is the recording slowed this many times: a quarter of its trades per second, half
its volatility per square-root second."""
PARTS = ("tune", "holdout", "all")


@dataclass(frozen=True, slots=True)
class MarketScore:
    """Mean cost per policy on one market part, and the learners' standing against the baselines."""

    label: str
    costs: dict[str, float]
    oracle_cost: float
    """The per-segment oracle: the best fixed arm of each third of the intents, in hindsight."""
    drifts: dict[str, int]
    """Drift alarms (cost or fill-rate detector) per learner policy."""

    @property
    def best_fixed(self) -> str:
        fixed = {k: v for k, v in self.costs.items() if k.startswith(FIXED_PREFIX)}
        return min(sorted(fixed), key=fixed.__getitem__)

    def captured(self, policy: str) -> float | None:
        """Share of the always-taker -> best-fixed gap that ``policy`` captures (1.0 = as good as the best)."""
        return captured_share(self.costs[policy], self.costs[ALWAYS_TAKER], self.costs[self.best_fixed])


def part_intents(market: SimMarket, orders: int, config: ConfigBundle, seed: int, part: str) -> list[SimIntent]:
    """``orders`` intents over the whole tape (``all``) or over its first (``tune``) / second half (``holdout``)."""
    stream = config.router.simulation.intents
    if part == "all":
        return intent_stream(market, orders, stream, seed=seed)
    both = intent_stream(market, 2 * orders, stream, seed=seed)
    split_ns = both[orders].arrival_ns
    return [i for i in both if (i.arrival_ns < split_ns) == (part == "tune")]


def with_informed_share(config: ConfigBundle, share: float) -> ConfigBundle:
    """``config`` with ``router.json`` ``simulation.intents.informed_share`` replaced."""
    simulation = config.router.simulation
    simulation = msgspec.structs.replace(simulation, intents=msgspec.structs.replace(simulation.intents,
                                                                                     informed_share=share))
    return msgspec.structs.replace(config, router=msgspec.structs.replace(config.router, simulation=simulation))


def regime_market(config: ConfigBundle, seed: int, part: str) -> SimMarket:
    """The configured synthetic market of ``REGIME_SYMBOL`` going through ``REGIMES`` in turn; its tape is drawn
    from ``seed`` and ``part``, so a seed scored in both parts is scored on different regime markets."""
    specs = []
    for k, (_, rate, duration) in enumerate(REGIMES):
        base = configured_synthetic_spec(
            config, REGIME_SYMBOL, seed=int(np.random.SeedSequence([seed, PARTS.index(part), k]).generate_state(1)[0]))
        specs.append(dataclasses.replace(base, duration_s=duration, trade_rate_per_s=base.trade_rate_per_s * rate))
    return synthetic_market_from_tape(config, REGIME_SYMBOL, generate_regimes(specs), source="regimes")


def recorded_regime_market(config: ConfigBundle, market: SimMarket, active_speed: float = 1.0) -> SimMarket:
    """``market``'s recording with each half played quiet, active, quiet (``warp_time``): the ends of a half slowed
    ``QUIET_SLOWDOWN`` times, the middle played ``active_speed`` times faster (1: at its own speed), cut so each
    regime lasts as long as the others (with 1, a sixth of the half at each end). Each part (first half: ``tune``,
    second half: ``holdout``) then has the three regimes of real data in equal shares of its intents, and the book
    stays continuous across them."""
    if not (math.isfinite(active_speed) and active_speed > 0.0):
        raise ValueError(f"active_speed must be positive and finite, got {active_speed!r}")
    tape = market.tape
    start, half = int(tape.quote_ts_ns[0]), (int(tape.quote_ts_ns[-1]) - int(tape.quote_ts_ns[0])) // 2
    # a quiet end of length q lasts QUIET_SLOWDOWN * q, the middle (half - 2q) / active_speed: equal when
    quiet_ns = int(Fraction(half) / Fraction(QUIET_SLOWDOWN * active_speed + 2.0))  # exact: half // 6 at speed 1
    cuts = [0, quiet_ns, half - quiet_ns, half, half + quiet_ns, 2 * half - quiet_ns, 2 * half]
    quiet = 1.0 / QUIET_SLOWDOWN
    warped = warp_time(tape, [start + c for c in cuts], [quiet, active_speed, quiet, quiet, active_speed, quiet])
    return synthetic_market_from_tape(config, market.symbol, warped, source=f"regimes of {market.source}")


def score(market: SimMarket, intents: list[SimIntent], config: ConfigBundle, learners: tuple[str, ...], seed: int,
          label: str) -> MarketScore:
    """Route ``intents`` under the baselines, every fixed arm and each learner (fresh tuners)."""
    grid = build_grid(config.tuner, config.router)
    sources = {k: v for k, v in baseline_sources(market.symbol, config, grid).items() if k != "rule"}
    tuners = learner_runs(config, learners, [market.symbol], seed)
    for run in tuners:
        sources[learner_policy_name(run.learner)] = run.source(market, config.tuner)
    runs = {name: run_policy(market, intents, source, name, config=config, seed=seed)
            for name, source in sources.items()}
    costs = {name: float(np.nanmean(run_costs(run.events))) for name, run in runs.items()}
    drifts = {learner_policy_name(t.learner): t.service.tuner(market.symbol).drifts_detected for t in tuners}
    return MarketScore(label=label, costs=costs, oracle_cost=segment_oracle_cost_bps(runs, len(REGIMES)),
                       drifts=drifts)


def print_hindsight_optimism(scores: list[MarketScore]) -> None:
    """How much the best fixed arm owes to hindsight: per market run, the fixed arm that was cheapest on the
    market's OTHER seeds (other intents, same data) scored on this run's intents, against this run's best.
    A learner cannot pick the arm that won by chance on the intents it is scored on; this gap is the part of
    'within X bps of the best fixed arm' that no learning can close."""
    by_market: dict[str, list[MarketScore]] = {}
    for s in scores:
        by_market.setdefault(s.label.split("/")[0], []).append(s)
    gaps = []
    for market, runs in by_market.items():
        if len(runs) < 2:
            continue
        for s in runs:
            others = [o for o in runs if o is not s]
            fixed = [k for k in s.costs if k.startswith(FIXED_PREFIX)]
            chosen = min(sorted(fixed), key=lambda k: float(np.mean([o.costs[k] for o in others])))
            gaps.append((market, s.costs[chosen] - s.costs[s.best_fixed]))
    if gaps:
        per_market = {m: float(np.mean([g for mm, g in gaps if mm == m])) for m in by_market if len(by_market[m]) > 1}
        print("best fixed arm chosen on the other seeds, minus the hindsight best (bps): mean "
              f"{np.mean([g for _, g in gaps]):+.3f}; " + ", ".join(f"{m} {v:+.3f}" for m, v in per_market.items()))


def configured(settings: list[str], directory: str | None = None) -> ConfigBundle:
    """The configuration in ``directory`` (the embedded one by default) with ``tuner.KEY=VALUE`` overrides (the
    sweep's syntax, one value each), checked as a loaded ``tuner.json`` would be; a bad one ends the run with one
    line."""
    try:
        overrides = []
        for text in settings:
            path, values = parse_axis(text)
            if len(values) != 1:
                raise GridError(f"--set {text!r}: one value per key here (the sweep takes several)")
            overrides.append((path, values[0]))
        return with_settings(load_config(directory), overrides)
    # bad input: exit 2, as argparse ends a bad flag (SystemExit of a text exits 1)
    except (GridError, ConfigError) as error:
        print(f"learner_eval: {error}", file=sys.stderr)
        raise SystemExit(2) from None


def print_scores(scores: list[MarketScore], learners: tuple[str, ...]) -> None:
    names = [learner_policy_name(n) for n in learners]
    print(f"{'market':>26} {'taker':>6} {'static':>6} {'oracle':>6} {'best':>6} {'best arm':>12} "
          + " ".join(f"{n.split(':')[1][:10]:>10} {'-best':>6} {'-stat':>6} {'capt':>5}" for n in names))
    for s in scores:
        c = s.costs
        row = (f"{s.label:>26} {c[ALWAYS_TAKER]:6.2f} {c[STATIC]:6.2f} {s.oracle_cost:6.2f} {c[s.best_fixed]:6.2f} "
               f"{s.best_fixed[6:]:>12} ")
        row += " ".join(f"{c[n]:10.2f} {c[n] - c[s.best_fixed]:+6.2f} {c[n] - c[STATIC]:+6.2f} {_share(s.captured(n))}"
                        for n in names)
        print(row)
    print_hindsight_optimism(scores)
    for n in names:
        vs_best = np.array([s.costs[n] - s.costs[s.best_fixed] for s in scores])
        vs_static = np.array([s.costs[n] - s.costs[STATIC] for s in scores])
        print(f"{n}: mean vs best fixed {vs_best.mean():+.3f} bps (worst {vs_best.max():+.3f}); mean vs static "
              f"{vs_static.mean():+.3f} bps (worst {vs_static.max():+.3f}); drift alarms "
              + ", ".join(f"{s.label} {s.drifts[n]}" for s in scores if s.drifts[n]))


def _share(share: float | None) -> str:
    return "  n/a" if share is None else f"{share:5.0%}"


def add_run_arguments(parser: argparse.ArgumentParser, *, learners: str, seeds: str) -> None:
    """The options every learner benchmark over markets shares: orders per run, learners, seeds, tuner overrides."""
    parser.add_argument("--orders", type=int, default=800)
    parser.add_argument("--learners", default=learners)
    parser.add_argument("--seeds", default=seeds)
    parser.add_argument("--set", action="append", default=[],
                        help="tuner.json override, tuner.KEY=VALUE (e.g. tuner.learner_params.structured.shrinkage=3)")


def run_arguments(parser: argparse.ArgumentParser,
                  args: argparse.Namespace) -> tuple[tuple[str, ...], list[int]]:
    """The learners and seeds of :func:`add_run_arguments`' options, each bad value refused by ``parser`` (one line,
    exit 2) before any market loads: a bad seed used to end in a traceback after the loading."""
    if args.orders < 1:
        parser.error(f"--orders {args.orders}: at least 1")
    try:
        seeds = [int(s) for s in args.seeds.split(",")]
    except ValueError as error:
        parser.error(f"--seeds {args.seeds}: {error}")
    try:
        learners = parse_learners(args.learners)
    except ValueError as error:
        parser.error(f"--learners {args.learners}: {error}")
    if any(seed < 0 for seed in seeds):
        parser.error(f"--seeds {args.seeds}: seeds are at least 0")
    return learners, seeds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--part", choices=PARTS, default="holdout")
    add_run_arguments(parser, learners="structured,thompson", seeds="7")
    parser.add_argument("--no-regimes", action="store_true", help="skip the regime-switching markets")
    parser.add_argument("--no-recorded", action="store_true", help="only the synthetic regime-switching market")
    parser.add_argument("--active-speed", type=float, default=1.0,
                        help="the recorded regime markets' active third played this many times faster (default 1: "
                             "at its own speed; 4 makes the quiet/active contrast 16x in trades per second)")
    parser.add_argument("--engine", choices=get_args(SimulationEngine), default=None,
                        help="router.json simulation.engine for this run (default: the configured one)")
    parser.add_argument("--informed", type=float, default=None,
                        help="router.json simulation.intents.informed_share for this run (0..1)")
    parser.add_argument("--data", default=None,
                        help="recorded data directory (default: $ROUTER_TUNER_DATA, then ../shared/data/binance)")
    parser.add_argument("--config", default=None,
                        help="configuration directory, e.g. one whose universe lists other recorded symbols "
                             "(default: the embedded defaults)")
    args = parser.parse_args(argv)
    if args.no_recorded and args.no_regimes:
        parser.error("--no-recorded with --no-regimes leaves no market to score: drop one of them")
    if not (math.isfinite(args.active_speed) and args.active_speed > 0.0):
        parser.error(f"--active-speed {args.active_speed}: a speed-up factor, positive and finite")
    learners, seeds = run_arguments(parser, args)
    config = configured(args.set, args.config)
    if args.engine is not None:
        config = with_engine(config, args.engine)
    if args.informed is not None:
        if not 0.0 <= args.informed <= 1.0:
            parser.error(f"--informed {args.informed}: a share, between 0 and 1")
        config = with_informed_share(config, args.informed)
    try:
        return evaluate(args, config, learners, seeds)
    except TapeTooShort as error:   # a recording too short to hold the intents: bad input, as in simulate
        print(f"learner_eval: {error}", file=sys.stderr)
        return 2


def evaluate(args: argparse.Namespace, config: ConfigBundle, learners: tuple[str, ...], seeds: list[int]) -> int:
    """Score ``learners`` on the markets ``args`` asks for and print the table."""
    markets = []
    if not args.no_recorded:
        try:
            data_dir = resolve_data_dir(args.data)
            if data_dir is None:
                raise FileNotFoundError("no recorded data found (../shared/data/binance); --data DIR names a folder, "
                                        "--no-recorded runs the regime market alone")
            markets = recorded_markets(config, data_dir, None)
        except (MarketDataError, FileNotFoundError, ValueError) as error:   # damaged, or outside the universe
            print(f"learner_eval: {error}", file=sys.stderr)
            return 2
    named = [(market, market.symbol) for market in markets]
    if not args.no_regimes:
        named += [(recorded_regime_market(config, market, args.active_speed), f"{market.symbol}~regimes")
                  for market in markets]
    scores = []
    for seed in seeds:
        for market, name in named:
            intents = part_intents(market, args.orders, config, seed, args.part)
            scores.append(score(market, intents, config, learners, seed, f"{name}/{args.part}/s{seed}"))
            print(f"  done {scores[-1].label}", file=sys.stderr, flush=True)
        if not args.no_regimes:
            market = regime_market(config, seed, args.part)
            intents = part_intents(market, args.orders, config, seed, "all")
            scores.append(score(market, intents, config, learners, seed, f"regimes/{args.part}/s{seed}"))
    print_scores(scores, learners)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
