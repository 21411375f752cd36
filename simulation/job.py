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

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from router_tuner.config.models import ConfigBundle, SimulationEngine
from router_tuner.router.market.binance import resolve_data_dir
from router_tuner.simulation.intents import SimIntent, intent_stream
from router_tuner.simulation.learners import (
    LEARNERS,
    LearnerOutcome,
    LearnerRun,
    learner_outcome,
    learner_policy_name,
    learner_runs,
    mean_context,
    merge_learner_runs,
)
from router_tuner.simulation.markets import (
    SimMarket,
    check_simulation_config,
    recorded_markets,
    synthetic_markets,
)
from router_tuner.simulation.policies import (
    ALWAYS_TAKER,
    FIXED_PREFIX,
    LEARNER_PREFIX,
    RULE,
    STATIC,
    PolicySource,
    RulePolicy,
    always_taker,
    fixed_arm,
    static,
)
from router_tuner.simulation.results import (
    NothingFilled,
    OpeComparison,
    PolicySummary,
    best_fixed_arm,
    bootstrap_config,
    ope_vs_truth,
    summarize,
)
from router_tuner.simulation.runner import PolicyRun, replay_of, run_policy
from router_tuner.simulation.shadow import ShadowOutcome, ShadowScenario, run_shadow_scenario, shadow_outcome
from router_tuner.simulation.workers import run_forked
from router_tuner.tuner.arms import ArmGrid


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
    replays: int
    """Venue replays each policy routed the intents on (lanes when staggered, 1 when concurrent)."""
    runs: dict[str, PolicyRun] = field(default_factory=dict)
    summaries: dict[str, PolicySummary] = field(default_factory=dict)
    best_fixed: str = ""
    learners: dict[str, LearnerOutcome] = field(default_factory=dict)
    ope: list[OpeComparison] = field(default_factory=list)
    shadow: ShadowOutcome | None = None


@dataclass(frozen=True, slots=True)
class SimulationResult:
    """Everything the journal, MLflow and the report need (``learner_runs``: the tuners and their versions;
    ``default_learner``: the one ``tuner.json`` names, which ``live --policy-source tuner`` runs; ``engine``:
    ``router.json`` ``simulation.engine``, how the routes were replayed).

    Shadow scenario symbols that were not simulated are ``shadow_not_simulated``: the report says so.
    """

    options: SimulationOptions
    data_source: str
    symbols: dict[str, SymbolResult]
    arm_ids: tuple[str, ...]
    learner_runs: tuple[LearnerRun, ...]
    default_learner: str
    oracle_segments: int
    engine: SimulationEngine

    @property
    def shadow_not_simulated(self) -> tuple[str, ...]:
        return tuple(s for s in self.options.shadow_symbols if s not in self.symbols)


def load_markets(config: ConfigBundle, options: SimulationOptions) -> tuple[list[SimMarket], str]:
    """Recorded markets when a data directory is found, else the synthetic market (the caller warns)."""
    data_dir = resolve_data_dir(options.data_dir)
    if data_dir is None:
        return synthetic_markets(config, options.symbols, options.seed), "synthetic"
    return recorded_markets(config, data_dir, options.symbols), f"recorded:{Path(data_dir).resolve()}"


def baseline_names(grid: ArmGrid) -> list[str]:
    """The report names of the non-learning policies, in :func:`baseline_sources` order."""
    return [ALWAYS_TAKER, STATIC, RULE, *(f"{FIXED_PREFIX}{arm.arm_id}" for arm in grid)]


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

    Every (symbol, policy) run is independent (its own intents, venue replays and per-symbol seeded tuner),
    and so is each learner's OPE once the runs are in: with ``options.workers`` > 1 both sets run in that
    many forked processes that read the parent's tape tables (copy-on-write, never copied), the heaviest
    first, and the results are identical to one process's.
    """
    sim = config.router.simulation
    band = config.router.policy_bounds.maker_offset_bps
    check_simulation_config(sim, band.min, band.max)
    intents = [intent_stream(market, options.orders_per_symbol, sim.intents, seed=options.seed) for market in markets]
    runs = _RunTasks.of(config, markets, intents, options, grid)
    ran = dict(zip(runs.pieces, _in_workers(runs.run, len(runs.pieces), options.workers, progress), strict=True))
    boot = bootstrap_config(sim.bootstrap, options.seed)
    results: dict[str, SymbolResult] = {}
    for index, market in enumerate(markets):
        result = SymbolResult(market=market, intents=intents[index],
                              replays=len({replay_of(intent, config) for intent in intents[index]}))
        for piece in runs.policies(index):
            summary = ran[piece].summary
            assert summary is not None
            result.runs[piece.name], result.summaries[piece.name] = ran[piece].run, summary
        try:
            result.best_fixed = best_fixed_arm(result.summaries)
        except NothingFilled as error:
            error.add_note(market.symbol)
            raise
        context = mean_context([i.context for i in result.intents])
        for piece in runs.learners(index):
            tuner = ran[piece].learner
            assert tuner is not None
            result.learners[tuner.learner] = learner_outcome(tuner, market.symbol, ran[piece].run.events,
                                                             grid.arm_ids, context)
        scenario = ran.get(_Piece(index, _SHADOW))
        if scenario is not None:
            assert scenario.shadow is not None
            result.shadow = shadow_outcome(scenario.shadow, result.runs[STATIC], boot)
        results[market.symbol] = result
    opes = _OpeTasks(config=config, results=tuple(results.values()), seed=options.seed)
    logged = sum(len(r.runs[o.policy].events) for r in results.values() for o in r.learners.values())
    ope_workers = options.workers if logged >= _OPE_EVENTS_PER_FORK else 1
    for (symbol, _), comparison in zip(opes.pieces, _in_workers(opes.run, len(opes.pieces), ope_workers, None),
                                       strict=True):
        results[symbol].ope.append(comparison)
    tuners = merge_learner_runs([[ran[piece].learner for piece in runs.learners(i)]  # type: ignore[misc]
                                 for i in range(len(markets))])
    return SimulationResult(options=options, data_source=data_source, symbols=results, arm_ids=grid.arm_ids,
                            learner_runs=tuple(tuners), default_learner=config.tuner.learner,
                            oracle_segments=sim.oracle_segments, engine=sim.engine)


_T = TypeVar("_T")
_OPE_EVENTS_PER_FORK = 200_000
"""Below this many logged learner events the OPE runs in this process: forking a pool of workers from a parent
holding every run costs ~1.4 s, against ~0.3 s for the whole OPE of 36 learner runs of 800 orders (measured on
the bundled data); above it, with bootstrap CIs growing linearly in the events, the workers win."""
_SHADOW = "shadow scenario"
"""The piece name of a symbol's shadow scenario (no policy carries it: ``:`` ends every policy prefix)."""


def _in_workers(task: Callable[[int, Callable[[int], None] | None], _T], count: int, workers: int,
                progress: Callable[[int], None] | None) -> list[_T]:
    """``[task(i, progress) for i in range(count)]``, in forked workers when there are several."""
    if workers == 1 or count <= 1:
        return [task(i, progress) for i in range(count)]
    return run_forked(task, count, workers=workers, progress=progress)


@dataclass(frozen=True, slots=True)
class _Piece:
    """One independent run of the job: a policy (baseline, fixed arm, learner) or the shadow scenario of the
    symbol ``market`` (its index)."""

    market: int
    name: str


@dataclass(frozen=True, slots=True)
class _Ran:
    """What one piece sends back: its run and summary, and a learner's tuners; or a shadow scenario (its run
    is the scenario's, summarised with the static run by the caller)."""

    run: PolicyRun
    summary: PolicySummary | None
    learner: LearnerRun | None = None
    shadow: ShadowScenario | None = None


@dataclass(frozen=True, slots=True)
class _RunTasks:
    """Every (symbol, policy) run and shadow scenario; :meth:`run` is what a worker executes for one."""

    config: ConfigBundle
    markets: tuple[SimMarket, ...]
    intents: tuple[list[SimIntent], ...]
    options: SimulationOptions
    grid: ArmGrid
    pieces: tuple[_Piece, ...]
    """Heaviest first (a worker that starts one late would leave the other core idle): shadow scenarios,
    learners, then the baselines and fixed arms."""

    @classmethod
    def of(cls, config: ConfigBundle, markets: Sequence[SimMarket], intents: Sequence[list[SimIntent]],
           options: SimulationOptions, grid: ArmGrid) -> _RunTasks:
        tasks = cls(config=config, markets=tuple(markets), intents=tuple(intents), options=options, grid=grid,
                    pieces=())
        indices = range(len(markets))
        shadow = [_Piece(i, _SHADOW) for i in indices if markets[i].symbol in options.shadow_symbols]
        learners = [p for i in indices for p in tasks.learners(i)]
        baselines = [p for i in indices for p in tasks.baselines(i)]
        return dataclasses.replace(tasks, pieces=(*shadow, *learners, *baselines))

    def policies(self, index: int) -> list[_Piece]:
        """The policy runs of one symbol in report order: baselines and fixed arms, then learners."""
        return [*self.baselines(index), *self.learners(index)]

    def learners(self, index: int) -> list[_Piece]:
        return [_Piece(index, learner_policy_name(learner)) for learner in self.options.learners]

    def baselines(self, index: int) -> list[_Piece]:
        return [_Piece(index, name) for name in baseline_names(self.grid)]

    def run(self, index: int, progress: Callable[[int], None] | None) -> _Ran:
        piece = self.pieces[index]
        config, options, market = self.config, self.options, self.markets[piece.market]
        intents = self.intents[piece.market]
        if piece.name == _SHADOW:
            scenario = run_shadow_scenario(market, intents, config, seed=options.seed, progress=progress)
            return _Ran(run=scenario.run, summary=None, shadow=scenario)
        tuner = None
        if piece.name.startswith(LEARNER_PREFIX):
            (tuner,) = learner_runs(config, [piece.name.removeprefix(LEARNER_PREFIX)], [market.symbol], options.seed)
            source: PolicySource = tuner.source(market, config.tuner)
        else:
            source = baseline_sources(market.symbol, config, self.grid)[piece.name]
        run = run_policy(market, intents, source, piece.name, config=config, seed=options.seed, progress=progress)
        boot = bootstrap_config(config.router.simulation.bootstrap, options.seed)
        return _Ran(run=run, summary=summarize(run, boot), learner=tuner)


@dataclass(frozen=True, slots=True)
class _OpeTasks:
    """The OPE of each learner's greedy arm on each symbol, beside the arm's fixed run (a worker runs one)."""

    config: ConfigBundle
    results: tuple[SymbolResult, ...]
    seed: int

    @property
    def pieces(self) -> list[tuple[str, str]]:
        return [(r.market.symbol, learner) for r in self.results for learner, outcome in r.learners.items()
                if outcome.greedy_arm is not None]

    def run(self, index: int, _progress: Callable[[int], None] | None) -> OpeComparison:
        symbol, learner = self.pieces[index]
        result = next(r for r in self.results if r.market.symbol == symbol)
        outcome = result.learners[learner]
        assert outcome.greedy_arm is not None  # pieces holds the learners with one
        return ope_vs_truth(result.runs[outcome.policy], outcome.greedy_arm,
                            result.summaries[f"{FIXED_PREFIX}{outcome.greedy_arm}"], self.config.tuner.ope,
                            seed=self.seed)
