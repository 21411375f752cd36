"""One sweep task, run wherever the runner puts it: load the scenario, route, summarise into a small result.

Routing reuses the main job's pieces unchanged (``simulation.job.baseline_sources``, ``simulation.runner``,
``simulation.learners``, ``simulation.results.summarize``), so a sweep row and a ``simulate`` table cell are
the same computation. A result keeps the per-order costs (what regret needs) and nothing else of the events.

A worker keeps the last two markets it loaded (tapes are read-only during routing, as in ``simulate``, where
every policy shares one): consecutive tasks on one symbol do not reload it. On a cluster the data folders
must be readable at the same path on every node.
"""

from __future__ import annotations

import functools
import math
from pathlib import Path

import msgspec
import numpy as np

from router_tuner.config.models import ConfigBundle
from router_tuner.simulation.intents import SimIntent, intent_stream
from router_tuner.simulation.job import baseline_sources
from router_tuner.simulation.learners import learner_outcome, learner_policy_name, learner_runs, mean_context
from router_tuner.simulation.markets import SimMarket, check_simulation_config, recorded_markets, synthetic_markets
from router_tuner.simulation.policies import ALWAYS_TAKER, FIXED_PREFIX
from router_tuner.simulation.results import PolicySummary, bootstrap_config, costs, summarize
from router_tuner.simulation.runner import PolicyRun, run_policy
from router_tuner.simulation.sweep.grid import (
    SYNTHETIC,
    BaselineTask,
    LearnerTask,
    Scenario,
    Setting,
    Task,
    planned_config,
    with_settings,
)
from router_tuner.tuner.factory import build_grid


class PolicyCost(msgspec.Struct, frozen=True, kw_only=True):
    """One policy on one scenario: the summary ``simulate`` reports and each order's cost (None: unfilled)."""

    summary: PolicySummary
    costs_bps: tuple[float | None, ...]

    def cost_array(self) -> np.ndarray:
        """Per-order cost in bps, NaN where nothing filled (``simulation.results.costs``' form)."""
        return np.array([np.nan if c is None else c for c in self.costs_bps], dtype=float)


class BaselineResult(msgspec.Struct, frozen=True, kw_only=True, tag="baseline"):
    """Always-taker and every fixed arm on one scenario."""

    task_id: str
    taker: PolicyCost
    fixed: tuple[PolicyCost, ...]


class LearnerResult(msgspec.Struct, frozen=True, kw_only=True, tag="learner"):
    """One learner with its settings on one scenario, and the arm it ended up believing best."""

    task_id: str
    run: PolicyCost
    greedy_arm: str | None
    """``None`` when the learner learned nothing (no order's cost was accepted)."""
    versions_published: int


TaskResult = BaselineResult | LearnerResult


def run_task(task: Task) -> TaskResult:
    """The one function the runner maps over the grid's tasks."""
    if isinstance(task, BaselineTask):
        return run_baseline(task)
    return run_learner(task)


def run_baseline(task: BaselineTask) -> BaselineResult:
    config, market, intents = _prepared(task.scenario, ())
    grid = build_grid(config.tuner, config.router)
    sources = {name: source for name, source in baseline_sources(market.symbol, config, grid).items()
               if name == ALWAYS_TAKER or name.startswith(FIXED_PREFIX)}
    seed = task.scenario.seed
    results = {name: _policy_cost(run_policy(market, intents, source, name, config=config, seed=seed), config, seed)
               for name, source in sources.items()}
    taker = results.pop(ALWAYS_TAKER)
    return BaselineResult(task_id=task.task_id, taker=taker, fixed=tuple(results.values()))


def run_learner(task: LearnerTask) -> LearnerResult:
    config, market, intents = _prepared(task.scenario, task.settings)
    grid = build_grid(config.tuner, config.router)
    (tuner,) = learner_runs(config, [task.learner], [market.symbol], task.scenario.seed)
    run = run_policy(market, intents, tuner.source(market, config.tuner),
                     learner_policy_name(task.learner), config=config, seed=task.scenario.seed)
    outcome = learner_outcome(tuner, market.symbol, run.events, grid.arm_ids,
                              mean_context([i.context for i in intents]))
    return LearnerResult(task_id=task.task_id, run=_policy_cost(run, config, task.scenario.seed),
                         greedy_arm=outcome.greedy_arm, versions_published=outcome.versions_published)


def _prepared(scenario: Scenario, settings: tuple[Setting, ...]) -> tuple[ConfigBundle, SimMarket, list[SimIntent]]:
    config = with_settings(scenario.config(), settings)
    sim = config.router.simulation
    band = config.router.policy_bounds.maker_offset_bps
    check_simulation_config(sim, band.min, band.max)
    market = _market(scenario.data, scenario.symbol, scenario.seed if scenario.data == SYNTHETIC else None,
                     scenario.config_dir, scenario.config_digest)
    return config, market, intent_stream(market, scenario.orders, sim.intents, seed=scenario.seed)


@functools.lru_cache(maxsize=2)
def _market(data: str, symbol: str, synthetic_seed: int | None, config_dir: str | None, digest: str) -> SimMarket:
    """One symbol's market (the tape seeded by ``synthetic_seed`` for the synthetic market); ``digest`` is
    part of the cache key so a worker never reuses a market built under another configuration."""
    config = planned_config(config_dir, digest)
    if data == SYNTHETIC:
        (market,) = synthetic_markets(config, [symbol], synthetic_seed or 0)
    else:
        (market,) = recorded_markets(config, Path(data), [symbol])
    return market


def _policy_cost(run: PolicyRun, config: ConfigBundle, seed: int) -> PolicyCost:
    return PolicyCost(summary=summarize(run, bootstrap_config(config.router.simulation.bootstrap, seed)),
                      costs_bps=tuple(None if math.isnan(c) else float(c) for c in costs(run.events)))
