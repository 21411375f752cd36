"""The main job's core: replay every market, route the same intents under every policy, collect results.

Data flow: markets (recorded, else synthetic) -> one seeded intent stream per symbol -> for each policy
(always-taker, static, rule, every fixed arm of the tuner grid, the tuner with each learner) a
``PolicyRun`` on fresh venue replays -> summaries, the best fixed arm in hindsight, regret against it, and
OPE of each learner's greedy arm on that learner's own log beside the arm's fixed-run value (known
truth); on the shadow scenario's symbols, the tuner watching an exploring champion and then acting live.
Journal and MLflow logging, and the report, are separate steps (``simulation.recording``, ``simulation.report``)
so this part stays a pure function of its inputs and is testable without either.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from config.models import ConfigBundle
from router.market.binance import resolve_data_dir
from simulation.intents import SimIntent, intent_stream
from simulation.learners import (
    LEARNERS,
    LearnerOutcome,
    LearnerRun,
    learner_outcome,
    learner_policy_name,
    learner_runs,
    mean_context,
    merge_learner_runs,
)
from simulation.markets import (
    SimMarket,
    check_simulation_config,
    recorded_markets,
    synthetic_markets,
)
from simulation.policies import (
    ALWAYS_TAKER,
    FIXED_PREFIX,
    RULE,
    STATIC,
    PolicySource,
    RulePolicy,
    always_taker,
    fixed_arm,
    static,
)
from simulation.results import (
    OpeComparison,
    PolicySummary,
    best_fixed_arm,
    bootstrap_config,
    ope_vs_truth,
    summarize,
)
from simulation.runner import PolicyRun, run_policy
from simulation.shadow import ShadowOutcome, run_shadow_scenario, shadow_outcome
from simulation.workers import run_forked
from tuner.arms import ArmGrid


@dataclass(frozen=True, slots=True)
class SimulationOptions:
    """What to simulate: symbols (None = all found), orders per symbol, seed, data directory, learners, the
    symbols that also run the shadow scenario (``simulation.shadow``; empty: no scenario) and how many
    processes share the symbols (``workers``; the results do not depend on it)."""

    symbols: tuple[str, ...] | None
    orders_per_symbol: int
    seed: int
    data_dir: str | None
    learners: tuple[str, ...]
    shadow_symbols: tuple[str, ...] = ()
    workers: int = 1

    def __post_init__(self) -> None:
        if self.workers < 1:
            raise ValueError(f"workers must be >= 1, got {self.workers}")
        if self.orders_per_symbol < 1:
            raise ValueError(f"orders per symbol must be >= 1, got {self.orders_per_symbol}")
        if self.seed < 0:
            raise ValueError(f"seed must be >= 0, got {self.seed}")
        unknown = sorted(set(self.learners) - set(LEARNERS))
        if unknown or len(set(self.learners)) != len(self.learners):
            raise ValueError(f"learners must be distinct names from {LEARNERS}, got {self.learners}")
        if len(set(self.shadow_symbols)) != len(self.shadow_symbols):
            raise ValueError(f"shadow scenario symbols must be distinct, got {self.shadow_symbols}")


@dataclass(slots=True)
class SymbolResult:
    """One symbol: its intents, every policy's run and summary, the best fixed arm in hindsight, and per
    learner its outcome (greedy arm, versions, arm shares) and the OPE of its greedy arm; ``shadow`` is the
    shadow scenario's outcome when this symbol ran it."""

    market: SimMarket
    intents: list[SimIntent]
    runs: dict[str, PolicyRun] = field(default_factory=dict)
    summaries: dict[str, PolicySummary] = field(default_factory=dict)
    best_fixed: str = ""
    learners: dict[str, LearnerOutcome] = field(default_factory=dict)
    ope: list[OpeComparison] = field(default_factory=list)
    shadow: ShadowOutcome | None = None

    @property
    def lanes(self) -> int:
        return max(i.lane for i in self.intents) + 1


@dataclass(frozen=True, slots=True)
class SimulationResult:
    """Everything the journal, MLflow and the report need (``learner_runs``: the tuners and their versions;
    ``default_learner``: the one ``tuner.json`` names, which ``live --policy-source tuner`` runs).

    Shadow scenario symbols that were not simulated are ``shadow_not_simulated``: the report says so.
    """

    options: SimulationOptions
    data_source: str
    symbols: dict[str, SymbolResult]
    arm_ids: tuple[str, ...]
    learner_runs: tuple[LearnerRun, ...]
    default_learner: str
    oracle_segments: int

    @property
    def shadow_not_simulated(self) -> tuple[str, ...]:
        return tuple(s for s in self.options.shadow_symbols if s not in self.symbols)


def load_markets(config: ConfigBundle, options: SimulationOptions) -> tuple[list[SimMarket], str]:
    """Recorded markets when a data directory is found, else the synthetic market (the caller warns)."""
    data_dir = resolve_data_dir(options.data_dir)
    if data_dir is None:
        return synthetic_markets(config, options.symbols, options.seed), "synthetic"
    return recorded_markets(config, data_dir, options.symbols), f"recorded:{Path(data_dir).resolve()}"


def baseline_sources(symbol: str, config: ConfigBundle, grid: ArmGrid) -> dict[str, PolicySource]:
    """Every non-learning policy by report name: always-taker, static, rule, then each fixed arm."""
    sources: dict[str, PolicySource] = {
        ALWAYS_TAKER: always_taker(symbol, config.router),
        STATIC: static(symbol, config.router),
        RULE: RulePolicy(symbol, config.router, config.router.simulation.rule_policy,
                         contract=config.strategy.universe[symbol]),
    }
    for arm in grid:
        sources[f"{FIXED_PREFIX}{arm.arm_id}"] = fixed_arm(symbol, config.router, arm)
    return sources


def count_routes(markets: Sequence[SimMarket], options: SimulationOptions, grid: ArmGrid) -> int:
    """Orders the simulation will route: every symbol, every baseline and fixed arm, every learner, and per
    shadow scenario symbol the scenario and its champion-only run."""
    n_policies = 3 + len(grid) + len(options.learners)
    n_shadow = 2 * sum(m.symbol in options.shadow_symbols for m in markets)
    return (len(markets) * n_policies + n_shadow) * options.orders_per_symbol


def simulate(config: ConfigBundle, markets: Sequence[SimMarket], options: SimulationOptions, grid: ArmGrid, *,
             data_source: str, progress: Callable[[int], None] | None = None) -> SimulationResult:
    """Route every symbol's intent stream under every baseline and learner; summarise, pick, evaluate.

    Symbols are independent (each has its own intents, replays and per-symbol seeded tuners), so with
    ``options.workers`` > 1 they run in that many forked processes that read the parent's tape tables
    (copy-on-write, never copied): the results are identical to one process's.
    """
    sim = config.router.simulation
    band = config.router.policy_bounds.maker_offset_bps
    check_simulation_config(sim, band.min, band.max)
    task = _SymbolTask(config=config, markets=tuple(markets), options=options, grid=grid)
    if options.workers == 1 or len(markets) <= 1:
        parts = [task.run(i, progress) for i in range(len(markets))]
    else:
        parts = run_forked(task.run, len(markets), workers=options.workers, progress=progress)
    results = {market.symbol: SymbolResult(market=market, **fields)
               for market, (fields, _) in zip(markets, parts, strict=True)}
    tuners = merge_learner_runs([runs for _, runs in parts])
    return SimulationResult(options=options, data_source=data_source, symbols=results, arm_ids=grid.arm_ids,
                            learner_runs=tuple(tuners), default_learner=config.tuner.learner,
                            oracle_segments=sim.oracle_segments)


@dataclass(frozen=True, slots=True)
class _SymbolTask:
    """Everything one symbol's simulation needs; :meth:`run` is what a worker process executes."""

    config: ConfigBundle
    markets: tuple[SimMarket, ...]
    options: SimulationOptions
    grid: ArmGrid

    def run(self, index: int, progress: Callable[[int], None] | None) -> tuple[dict[str, Any], list[LearnerRun]]:
        """Route one symbol under every policy: the fields of its :class:`SymbolResult` but the market, which
        the caller attaches (a worker would otherwise send a 26 MB copy of the tape back), and its tuners."""
        config, options, grid, market = self.config, self.options, self.grid, self.markets[index]
        sim = config.router.simulation
        boot = bootstrap_config(sim.bootstrap, options.seed)
        tuners = learner_runs(config, options.learners, [market.symbol], options.seed)
        intents = intent_stream(market, options.orders_per_symbol, sim.intents, seed=options.seed)
        result = SymbolResult(market=market, intents=intents)
        sources: dict[str, PolicySource] = dict(baseline_sources(market.symbol, config, grid))
        sources.update({learner_policy_name(t.learner): t.source(market, config.tuner.reward_markout_horizon_ms)
                        for t in tuners})
        for name, source in sources.items():
            run = run_policy(market, intents, source, name, config=config, seed=options.seed, progress=progress)
            result.runs[name] = run
            result.summaries[name] = summarize(run, boot)
        result.best_fixed = best_fixed_arm(result.summaries)
        context = mean_context([i.context for i in intents])
        for tuner in tuners:
            outcome = learner_outcome(tuner, market.symbol, result.runs[learner_policy_name(tuner.learner)].events,
                                      grid.arm_ids, context)
            result.learners[tuner.learner] = outcome
            result.ope.append(ope_vs_truth(result.runs[outcome.policy], outcome.greedy_arm,
                                           result.summaries[f"{FIXED_PREFIX}{outcome.greedy_arm}"],
                                           config.tuner.ope, seed=options.seed))
        if market.symbol in options.shadow_symbols:
            scenario = run_shadow_scenario(market, intents, config, seed=options.seed, progress=progress)
            result.shadow = shadow_outcome(scenario, result.runs[STATIC], boot)
        return {f.name: getattr(result, f.name) for f in fields(result) if f.name != "market"}, tuners
