"""Building the tuner's parts from configuration: the arm grid, a learner, the guardrails, the reward filter.

Every value comes from ``tuner.json`` (learner, grid, hyper-parameters, steps, drift) or ``router.json``
(the policy bounds the guardrails enforce), so the same files always build the same tuner. Each symbol's
learner gets its own seed, derived from the configured seed and the symbol name, so symbols explore
independently and a run is reproducible.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable
from typing import TYPE_CHECKING

import msgspec
import numpy as np

from router_tuner.config.loader import ConfigIssue
from router_tuner.config.models import (
    ConfigBundle,
    DriftConfig,
    FeeSchedule,
    PageHinkleyDrift,
    RouterConfig,
    TunerConfig,
)
from router_tuner.tuner.arms import ArmError, ArmGrid
from router_tuner.tuner.learners import (
    UCB,
    ContextScales,
    EpsilonGreedy,
    Learner,
    LinUCB,
    NormalThompson,
    RobbinsMonro,
    StructuredThompson,
)
from router_tuner.tuner.reward import RewardFilter
from router_tuner.tuner.reward_adjustment import RewardAdjustment

if TYPE_CHECKING:  # imported where used: guardrails load river, which `config check` (learner_issue) needs not
    from router_tuner.tuner.guardrails import AdwinParams, Guardrails, PageHinkleyParams


def build_grid(tuner: TunerConfig, router: RouterConfig) -> ArmGrid:
    """The configured arms, inside ``router.json``'s maker offset bounds."""
    band = router.policy_bounds.maker_offset_bps
    return ArmGrid.from_values(tuner.arms.maker_offsets_bps, tuner.arms.taker_biases,
                               min_offset_bps=band.min, max_offset_bps=band.max)


def symbol_seed(seed: int, symbol: str) -> int:
    """A per-symbol seed: the configured seed mixed with a stable hash of the symbol (not ``hash()``)."""
    if not symbol:
        raise ValueError("symbol must be a non-empty string")
    return int(np.random.SeedSequence([seed & 0xFFFFFFFF, zlib.crc32(symbol.encode())]).generate_state(1)[0])


def build_learner(tuner: TunerConfig, grid: ArmGrid, seed: int, fees: FeeSchedule, static_offset_bps: float) -> Learner:
    """The learner named by ``tuner.learner`` with its hyper-parameters; rewards are ``-cost_bps``.

    ``fees`` is the symbol's market fee schedule, from which the structured learner's priors follow;
    the Robbins-Monro distance starts at the static policy's ``static_offset_bps``.
    """
    p = tuner.learner_params
    burn_in = p.burn_in_per_arm
    if tuner.learner == "structured":
        s = p.structured
        return StructuredThompson(grid, replicas=s.replicas, forgetting_window=s.forgetting_window,
                                  shrinkage=s.shrinkage, maker_fee_bps=fees.maker_fee_bps,
                                  taker_fee_bps=fees.taker_fee_bps, prior_fallback_drift_bps=s.prior_fallback_drift_bps,
                                  prior_fill_probability=s.prior_fill_probability,
                                  prior_fill_logit_spread=s.prior_fill_logit_spread, prior_strength=s.prior_strength,
                                  burn_in=s.burn_in_per_arm, seed=seed,
                                  fill_speed_window=s.fill_speed_window if s.fill_speed_window > 0.0 else None)
    if tuner.learner == "robbins_monro":
        r = p.robbins_monro
        return RobbinsMonro(grid, initial_offset_bps=static_offset_bps, step_bps=r.step_bps, step_decay=r.step_decay,
                            exploration=r.exploration, baseline_window=r.baseline_window, burn_in=burn_in, seed=seed)
    if tuner.learner == "thompson":
        return NormalThompson(grid, prior_mean_reward=-p.thompson_prior_mean_cost_bps,
                              prior_mean_pseudo_count=p.thompson_prior_strength,
                              prior_noise_std=p.thompson_prior_noise_std_bps,
                              prior_noise_pseudo_count=p.thompson_prior_noise_pseudo_count,
                              burn_in=burn_in, seed=seed)
    if tuner.learner == "ucb":
        return UCB(grid, delta=p.ucb_delta, min_noise_std=p.ucb_min_noise_std_bps, burn_in=burn_in, seed=seed)
    if tuner.learner == "epsilon_greedy":
        return EpsilonGreedy(grid, epsilon=p.epsilon, decay=p.epsilon_decay, min_epsilon=p.epsilon_min,
                             burn_in=burn_in, seed=seed)
    if tuner.learner == "linucb":
        s = p.linucb_context_scales
        scales = ContextScales(spread_scale_bps=s.spread_scale_bps, volatility_scale_bps=s.volatility_scale_bps,
                               size_vs_touch_scale=s.size_vs_touch_scale)
        return LinUCB(grid, scales=scales, alpha=p.linucb_alpha, ridge=p.linucb_ridge,
                      prior_mean_reward=-p.linucb_prior_mean_cost_bps, burn_in=burn_in, seed=seed)
    raise ValueError(f"unknown learner {tuner.learner!r}")


def grid_issue(config: ConfigBundle) -> ConfigIssue | None:
    """Arms the grid cannot tell apart, as a configuration problem, or None: an offset of 1e-300 beside 0 loaded, and
    every learner was refused for it in turn, at ``$.learner`` ("change $.arms or the learner")."""
    try:
        build_grid(config.tuner, config.router)
    except ArmError as error:
        return ConfigIssue("tuner.json", "$.arms", f"{error}: arms are told apart to two decimals (o1.00_b0.00), so "
                                                   "values less than 0.005 apart are one arm; keep one of them")
    return None


def learner_problem(config: ConfigBundle, learner: str) -> str | None:
    """Why ``learner`` cannot run on the configured arm grid (robbins_monro needs two maker offsets at taker bias
    0), or None: asked before a run starts, so the refusal is not an error on the first order."""
    tuner = msgspec.structs.replace(config.tuner, learner=learner)
    fees = next(iter(config.router.sim_venue.fees.values()), FeeSchedule(maker_fee_bps=0.0, taker_fee_bps=0.0))
    try:
        build_learner(tuner, build_grid(tuner, config.router), seed=0, fees=fees,
                      static_offset_bps=config.router.static_policy.maker_offset_bps)
    except ValueError as error:
        return str(error)
    return None


def learner_issue(config: ConfigBundle) -> ConfigIssue | None:
    """``tuner.json`` ``learner`` on its arm grid: why it cannot run, as a configuration problem, or None."""
    problem = learner_problem(config, config.tuner.learner)
    return None if problem is None else ConfigIssue("tuner.json", "$.learner",
                                                    f"{problem}: change $.arms or the learner")


def structured_prior_issue(config: ConfigBundle, symbols: Iterable[str] | None = None) -> ConfigIssue | None:
    """The structured learner's prior, before any evidence, on the market of each of ``symbols`` (default: the
    instruments the executor trades; unknown names are skipped, refused elsewhere): a prior that prices
    every maker arm above the taker arm makes every replica choose the taker, and the learner learns only the arms
    it routes, so it never posts (``prior_fallback_drift_bps`` 100: the learner was always-taker, 5.00 bps against
    3.79 with the defaults, and nothing said so). A burn-in tries every arm first, so it learns anyway."""
    structured = config.tuner.learner_params.structured
    if structured.burn_in_per_arm > 0:
        return None
    tuner = msgspec.structs.replace(config.tuner, learner="structured")
    grid = build_grid(tuner, config.router)
    if all(arm.taker_bias >= 1.0 for arm in grid.arms) or not any(arm.taker_bias >= 1.0 for arm in grid.arms):
        return None  # nothing to post, or no taker arm to prefer
    universe = config.strategy.universe
    names = config.executor.instruments if symbols is None else symbols
    markets = sorted({universe[name].market for name in names if name in universe} & set(config.router.sim_venue.fees))
    stuck = []
    for market in markets:
        fees = config.router.sim_venue.fees[market]
        if not any(fees.maker_fee_bps - arm.maker_offset_bps < fees.taker_fee_bps
                   for arm in grid.arms if arm.taker_bias < 1.0):
            continue  # no post could beat the taker even when it fills: never posting is right, not the prior's doing
        learner = build_learner(tuner, grid, seed=0, fees=fees,
                                static_offset_bps=config.router.static_policy.maker_offset_bps)
        shares = learner.choice_probabilities()
        if sum(share for arm_id, share in shares.items() if grid.get(arm_id).taker_bias < 1.0) == 0.0:
            stuck.append(f"{market} (maker {fees.maker_fee_bps:g}, taker {fees.taker_fee_bps:g} bps)")
    if not stuck:
        return None
    return ConfigIssue("tuner.json", "$.learner_params.structured.prior_fallback_drift_bps",
                      f"{structured.prior_fallback_drift_bps:g} bps with prior_fill_probability "
                      f"{structured.prior_fill_probability:g}: before any evidence the structured learner's prior "
                      f"prices every maker arm above the taker arm on {', '.join(stuck)}, and it learns only the "
                      "arms it routes, so it would never post; lower it, raise prior_fill_probability or "
                      "prior_fill_logit_spread, or set structured.burn_in_per_arm to 1 or more")


def frozen_budget_warning(config: ConfigBundle, learners: Iterable[str]) -> str | None:
    """A zero exploration budget, with learners that explore to learn: no exploration fits it, so they route only
    the arm they exploit (the static policy's at first, where they start) and never try another (every learner but
    structured routed the static arm for a whole `simulate` run, 3.92 bps each, without a word). Legitimate to
    freeze a tuner that has learned, so a warning, not a refusal."""
    budget = config.tuner.deployment.budget
    zero = [key for key, value in (("max_extra_cost_bps_per_order", budget.max_extra_cost_bps_per_order),
                                   ("max_extra_cost_usd_per_day", budget.max_extra_cost_usd_per_day)) if value == 0]
    frozen = [learner for learner in learners if learner != "structured"]  # its exploited arm follows its fit
    if not zero or not frozen:
        return None
    return (f"tuner.json deployment.budget.{zero[0]} is 0: no exploration fits the budget, so the learner(s) "
            f"{', '.join(frozen)} route only the arm they exploit (at first the static policy's) and never learn "
            "another; raise it, or keep 0 only to freeze a tuner that has already learned")


def live_tuner_issues(config: ConfigBundle) -> list[ConfigIssue]:
    """What ``live --policy-source tuner`` refuses in a configuration that loads: a reward charging markout
    (learning it live needs the mid a horizon after each fill, and live learns when the route ends; the
    simulation replays the future mid), a reward measured against the route-end mid that assumes intents know
    nothing of the price (``reward_mid_drift_window`` 0: a strategy's intents do), a shadow symbol the executor does
    not trade (a typo left the symbol meant live), a learner the arm grid cannot carry and a structured prior that
    never posts. One list, so ``config check`` refuses exactly what ``live`` does (it used to pass the markout
    setting live then refused)."""
    issues = []
    if config.tuner.reward_markout_horizon_ms > 0:
        issues.append(ConfigIssue("tuner.json", "$.reward_markout_horizon_ms",
                                  f"{config.tuner.reward_markout_horizon_ms:g} charges markout in the reward, which "
                                  "only `simulate` can learn; set it to 0 for live adaptive routing"))
    if config.tuner.reward_mid == "route_end" and config.tuner.reward_mid_drift_window == 0:
        issues.append(ConfigIssue("tuner.json", "$.reward_mid_drift_window",
                                  "0 assumes intents that know nothing of the price, which would hide what waiting "
                                  "to post costs a strategy's orders; set it to a number of routes (e.g. 2000) for "
                                  "live adaptive routing"))
    traded = config.executor.instruments
    issues.extend(ConfigIssue("tuner.json", f"$.deployment.shadow_symbols[{index}]",
                              f"{symbol} is not traded by the executor (executor.json instruments: "
                              f"{' '.join(sorted(traded))}), so it would be in shadow mode for nothing, and the "
                              "symbol meant (a typo?) would route live, its learner exploring; name a traded symbol")
                  for index, symbol in enumerate(config.tuner.deployment.shadow_symbols) if symbol not in traded)
    if (grid := grid_issue(config)) is not None:
        issues.append(grid)
    elif (learner := learner_issue(config)) is not None:
        issues.append(learner)
    elif config.tuner.learner == "structured" and (prior := structured_prior_issue(config)) is not None:
        issues.append(prior)
    return issues


def build_guardrails(tuner: TunerConfig, router: RouterConfig) -> Guardrails:
    """Bounds from ``router.json``'s policy bounds; steps, rollback and drift from ``tuner.json``."""
    from router_tuner.tuner.guardrails import Guardrails

    g = tuner.guardrails
    offsets, biases = router.policy_bounds.maker_offset_bps, router.policy_bounds.taker_bias
    return Guardrails(
        min_offset_bps=offsets.min, max_offset_bps=offsets.max,
        min_taker_bias=biases.min, max_taker_bias=biases.max,
        max_step_offset_bps=g.max_offset_step_bps, max_step_taker_bias=g.max_bias_step,
        min_outcomes_before_move=g.min_outcomes_before_move, rollback_window=g.rollback_window,
        rollback_margin_bps=g.rollback_margin_bps, drift=drift_params(g.drift), fill_drift=drift_params(g.fill_drift),
        drift_keep_fraction=g.drift_keep_fraction,
    )


def drift_params(config: DriftConfig) -> PageHinkleyParams | AdwinParams:
    """The river detector a ``tuner.json`` drift block names, with its parameters."""
    from router_tuner.tuner.guardrails import AdwinParams, PageHinkleyParams

    if isinstance(config, PageHinkleyDrift):
        return PageHinkleyParams(min_instances=config.min_instances, delta=config.delta,
                                 threshold=config.threshold, alpha=config.alpha)
    return AdwinParams(delta=config.delta, clock=config.clock, grace_period=config.grace_period,
                       min_window_length=config.min_window_length)


def build_reward_filter(tuner: TunerConfig) -> RewardFilter:
    """A fresh filter over the configured plausible cost band (its counters start at zero)."""
    return RewardFilter(min_cost_bps=tuner.reward_band.min_cost_bps, max_cost_bps=tuner.reward_band.max_cost_bps)


def build_reward_adjustment(tuner: TunerConfig) -> RewardAdjustment | None:
    """A fresh adjustment of the learned cost (its waiting drift at zero), or ``None`` when the journaled cost is
    learned as it is."""
    if not tuner.adjusts_reward:
        return None
    return RewardAdjustment(markout=tuner.reward_markout_horizon_ms > 0, to_route_end=tuner.reward_mid == "route_end",
                            drift_window=tuner.reward_mid_drift_window)
