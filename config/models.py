"""Typed models of the five configuration files: every threshold the system trades on lives here.

Each model is strict (unknown keys rejected, every key required, ranges declared next to the field),
so a typo or a forgotten knob is a load error rather than a silent default. Fractions are written as
fractions (0.15 means 15 %), basis points carry ``_bps``, money ``_usd``, durations ``_s`` / ``_ms``.
"""

from __future__ import annotations

from itertools import pairwise
from typing import Annotated, Literal
from urllib.parse import urlsplit

import msgspec

# Every number has a finite range declared with its type, so a typo (``1e30``, ``Infinity``, ``NaN``) is a
# load error instead of a limit switched off; tests/config/test_ranges.py walks every numeric field and fails
# on one without both bounds. The bounds are "absurd beyond this", not tuning advice.
MAX_USD = 1e9
MAX_BPS = 1000.0
MAX_SECONDS = 30 * 86_400.0
MAX_MS = 3_600_000.0
MAX_COUNT = 1_000_000
MAX_RETRIES = 100
SEED_MAX = 2**32 - 1
"""The largest seed every random generator here takes (NumPy's legacy seeding stops there)."""
MAX_SCALE = 1e6

Fraction = Annotated[float, msgspec.Meta(gt=0.0, le=1.0)]
Probability = Annotated[float, msgspec.Meta(ge=0.0, le=1.0)]
OpenFraction = Annotated[float, msgspec.Meta(gt=0.0, lt=1.0)]
PositiveUsd = Annotated[float, msgspec.Meta(gt=0.0, le=MAX_USD)]
NonNegativeUsd = Annotated[float, msgspec.Meta(ge=0.0, le=MAX_USD)]
Bps = Annotated[float, msgspec.Meta(ge=-MAX_BPS, le=MAX_BPS)]
PositiveBps = Annotated[float, msgspec.Meta(gt=0.0, le=MAX_BPS)]
NonNegativeBps = Annotated[float, msgspec.Meta(ge=0.0, le=MAX_BPS)]
Seconds = Annotated[float, msgspec.Meta(gt=0.0, le=MAX_SECONDS)]
NonNegativeSeconds = Annotated[float, msgspec.Meta(ge=0.0, le=MAX_SECONDS)]
Millis = Annotated[float, msgspec.Meta(gt=0.0, le=MAX_MS)]
NonNegativeMillis = Annotated[float, msgspec.Meta(ge=0.0, le=MAX_MS)]
BackoffMillis = Annotated[float, msgspec.Meta(ge=1.0, le=MAX_MS)]
"""The first wait of a back-off that doubles: at least 1 ms (0 or 1e-300 retried a venue that asked us to slow down,
or reconnected a dropped stream, hundreds of times at once: the way to an IP ban)."""
PositiveInt = Annotated[int, msgspec.Meta(ge=1, le=MAX_COUNT)]
NonNegativeInt = Annotated[int, msgspec.Meta(ge=0, le=MAX_COUNT)]
SampleCount = Annotated[int, msgspec.Meta(ge=2, le=MAX_COUNT)]
Retries = Annotated[int, msgspec.Meta(ge=0, le=MAX_RETRIES)]
Seed = Annotated[int, msgspec.Meta(ge=0, le=SEED_MAX)]
Scale = Annotated[float, msgspec.Meta(gt=0.0, le=MAX_SCALE)]
"""A positive dimensionless hyper-parameter (prior strength, ridge, clip threshold)."""
Price = Annotated[float, msgspec.Meta(gt=0.0, le=1e7)]
Quantity = Annotated[float, msgspec.Meta(gt=0.0, le=1e9)]
RatePerS = Annotated[float, msgspec.Meta(ge=0.0, le=1e5)]
TickSize = Annotated[float, msgspec.Meta(ge=1e-12, le=1e4)]
QtyStep = Annotated[float, msgspec.Meta(ge=1e-12, le=1e6)]
"""Tick sizes and quantity steps must also be 1/n for a whole n (checked at load, :func:`is_unit_fraction`)."""
LevelQtyRatio = Annotated[float, msgspec.Meta(gt=0.0, le=1000.0)]
SweepDecay = Annotated[float, msgspec.Meta(ge=1e-3, le=1000.0)]
"""Trades sweep an exponential number of bps past the touch, 1/decay on average: at least 1e-3 (a mean sweep of 10%;
1e-300 drew sweeps past any price, and a synthetic market's trades overflowed to non-positive prices)."""
PolicyKnob = Annotated[float, msgspec.Meta(ge=-MAX_SCALE, le=MAX_SCALE)]
"""A ``policy_bounds`` end; each static-policy knob's own range is tighter (checked at load)."""
Symbol = Annotated[str, msgspec.Meta(pattern=r"^[A-Z0-9_]+$")]
Leverage = Annotated[float, msgspec.Meta(ge=1.0, le=125.0)]
Name = Annotated[str, msgspec.Meta(pattern=r"^\S+$")]
"""A name (tier, quote, venue symbol, exchange, host): not empty, no spaces (``""`` or ``"USDT "`` is a typo)."""
ModelPrefix = Annotated[str, msgspec.Meta(min_length=1, pattern=r"^[A-Za-z0-9_.\-]+$")]
"""The start of MLflow registered model names (``<prefix>-<SYMBOL>``): an empty one would name ``-BTCUSDT``."""
EnvVarName = Annotated[str, msgspec.Meta(pattern=r"^[A-Z_][A-Z0-9_]*$", max_length=64)]
"""The *name* of an environment variable holding a secret, never the secret itself."""


def is_unit_fraction(step: float) -> bool:
    """Whether ``step`` is 1/n for a whole n (0.5, 0.1, 0.001, 1): market tapes keep prices and quantities as whole
    numbers of it, so a tick of 0.3 or 5 cannot be replayed."""
    inverse = 1 / step
    return abs(inverse - round(inverse)) <= 1e-9 * inverse


class Model(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Base of every config section: immutable, all keys required, unknown keys rejected."""


# --- risk_limits.json ---------------------------------------------------------------------------


class NavFreshness(Model):
    """How old the NAV may be before orders are refused (fail closed) or only flagged."""

    max_age_s: Annotated[float, msgspec.Meta(gt=0.0, le=3600.0)]
    fail_closed_when_stale: bool


class MinNotional(Model):
    """Smallest order the venue accepts, with per-symbol overrides."""

    default_usd: PositiveUsd
    per_symbol_usd: dict[Symbol, PositiveUsd]


class SymbolCaps(Model):
    """Per-symbol limits: exposure as a share of NAV and of total gross, and the drawdown cap."""

    max_nav_pct: Fraction
    notional_share_cap: Fraction
    max_drawdown_pct: Fraction


class TierCap(Model):
    """Gross exposure of all symbols of one tier, as a share of NAV."""

    max_nav_pct: Fraction


class LeverageCaps(Model):
    """Gross exposure over NAV, globally and per symbol."""

    max_global: Leverage
    per_symbol: dict[Symbol, Leverage]


class CircuitBreakers(Model):
    """Realized losses (fractions of NAV) after which no new exposure is opened."""

    daily_loss_pct: Fraction
    weekly_loss_pct: Fraction


class Cooldowns(Model):
    """How long a symbol stays closed to new exposure after a stop."""

    after_stop_s: NonNegativeSeconds


class RiskLimits(Model):
    """``risk_limits.json``: the limits ``risk.check_order`` enforces; the one home of concurrency."""

    nav: NavFreshness
    min_notional: MinNotional
    max_order_notional_usd: PositiveUsd
    trade_equity_cap_pct: Fraction
    max_trade_nav_pct: Fraction
    symbol_caps: SymbolCaps
    tier_caps: dict[Name, TierCap]
    max_concurrent_positions: Annotated[int, msgspec.Meta(ge=1, le=1000)]
    max_gross_exposure_nav: Annotated[float, msgspec.Meta(gt=0.0, le=125.0)]
    leverage: LeverageCaps
    circuit_breakers: CircuitBreakers
    cooldowns: Cooldowns
    max_trades_per_symbol_per_hour: PositiveInt
    restricted_symbols: tuple[Symbol, ...]
    intent_max_age_s: Seconds | None
    """An intent whose ``ts_ns`` is further than this from the executor's clock, behind or ahead, is vetoed: it was
    decided on a market that has moved on (a backlog, a file pointed at a fresh journal) or on a clock that is off.
    ``null`` routes intents however old (replays of historical intents on a clock of their own)."""

    def min_notional_usd(self, symbol: str) -> float:
        """The venue floor that applies to ``symbol``."""
        return self.min_notional.per_symbol_usd.get(symbol, self.min_notional.default_usd)

    def max_leverage(self, symbol: str) -> float:
        """The tighter of the global and the symbol's leverage cap."""
        return min(self.leverage.max_global, self.leverage.per_symbol.get(symbol, self.leverage.max_global))


# --- strategy_config.json -----------------------------------------------------------------------

Market = Literal["usdm", "spot", "cm"]
ContractType = Literal["linear", "inverse", "spot"]
ContractSize = Annotated[float, msgspec.Meta(gt=0.0, le=1e6)]

MARKET_CONTRACT_TYPE: dict[str, ContractType] = {"usdm": "linear", "cm": "inverse", "spot": "spot"}
"""The contract type each market trades (checked at load): Binance COIN-M is inverse, USDⓈ-M linear."""
EXCHANGE_MARKET: dict[str, Market] = {"binanceusdm": "usdm", "binance": "spot", "binancecoinm": "cm"}
"""The market each Binance ccxt exchange id trades: a venue symbol names another market's pair on another one."""


class UniverseEntry(Model):
    """A tradable instrument under our name: venue symbol, risk tier, quote, market and contract spec.

    Our names are unique across markets (``BTCUSDT`` the perpetual, ``BTCUSDT_SPOT`` the spot pair);
    ``venue_symbol`` is what the exchange calls it. The contract spec says what an order quantity is:
    for ``linear`` and ``spot`` a quantity of ``contract_size`` base-coin units per unit (usually 1.0),
    for ``inverse`` a number of contracts worth ``contract_size`` USD each (BTCUSD_PERP 100, ETHUSD_PERP
    10). USD notionals are derived from it by :func:`router.contract.notional_usd`, never as qty x price.
    """

    venue_symbol: Name
    tier: Name
    quote: Name
    market: Market
    contract_type: ContractType
    contract_size: ContractSize


class SizingBucket(Model):
    """Per-tier sizing: the floor must clear the venue's min notional (checked at load)."""

    floor_usd: PositiveUsd
    cap_usd: PositiveUsd


class Sizing(Model):
    """How the sizer turns a size hint into a gross: a share of NAV, clamped to the tier's bucket."""

    base_nav_pct: Fraction
    buckets: dict[Name, SizingBucket]


class Screener(Model):
    """Signal gates before sizing: the order book must lean with the trade by at least the gate."""

    orderbook_imbalance_gate: Probability
    require_imbalance_alignment: bool


class StrategyConfig(Model):
    """``strategy_config.json``: the universe, sizing buckets and screener gates."""

    universe: dict[Symbol, UniverseEntry]
    sizing: Sizing
    screener: Screener


# --- router.json --------------------------------------------------------------------------------

FallbackMode = Literal["taker", "repost", "cancel"]
PositionMode = Literal["hedge", "one_way"]


class Range(Model):
    """Inclusive bounds for one policy knob."""

    min: PolicyKnob
    max: PolicyKnob


class PolicyBounds(Model):
    """The box every RouterPolicy (static or learned) must stay inside."""

    maker_offset_bps: Range
    taker_bias: Range
    maker_ttl_ms: Range
    reprice_attempts: Range
    reprice_step_bps: Range
    max_taker_slippage_bps: Range


class StaticPolicy(Model):
    """The policy the router runs before (or without) the tuner."""

    maker_first: bool
    maker_offset_bps: Bps
    taker_bias: Probability
    maker_ttl_ms: Millis
    reprice_attempts: Retries
    reprice_step_bps: NonNegativeBps
    post_only_retry_limit: Retries
    fallback_mode: FallbackMode
    max_taker_slippage_bps: PositiveBps
    min_spread_bps: NonNegativeBps
    max_spread_bps: PositiveBps


class FeeSchedule(Model):
    """Maker and taker fees of one market (a rebate is a negative maker fee)."""

    maker_fee_bps: Bps
    taker_fee_bps: Bps


class SimVenueSettings(Model):
    """The simulated venue: latencies and each market's fees."""

    order_entry_latency_ms: NonNegativeMillis
    cancel_latency_ms: NonNegativeMillis
    fees: dict[Market, FeeSchedule]


# --- router.json: the main job (``router-tuner simulate``) ---------------------------------------


class SimFillModel(Model):
    """Fill-model knobs of the simulated venue that ``sim_venue`` (fees, latencies) does not hold."""

    latency_jitter_ms: NonNegativeMillis
    queue_power: Annotated[float, msgspec.Meta(gt=0.0, le=10.0)]
    no_depth_level_qty_ratio: LevelQtyRatio
    max_taker_walk_levels: PositiveInt


MIN_SIMULATED_ORDERS = 4
"""`simulate` reads each run's regret by quarter: 1 to 3 orders per symbol ended it, after the whole run, in
"unexpected ValueError: need at least 4 orders for quarters"."""


class IntentStream(Model):
    """The seeded stream of small, independent intents every simulated policy routes.

    Intents are spread evenly (with seeded jitter) over each tape after ``warmup_ms`` and before the
    last ``tail_ms``; each is routed on one of several venue replays ("lanes") started at different
    times, so that consecutive intents on one lane are at least ``lane_min_gap_ms`` apart (longer than
    any route) and every policy sees the same arrival times. An inverse contract's USD value (the unit
    its intents are sized in) is the universe entry's ``contract_size``, nowhere else.

    ``informed_share`` of the intents know the price: each is a buy when the mid ``informed_horizon_ms`` after
    its arrival is above the mid at arrival, a sell when below (the others draw their side from ``buy_share``).
    A strategy's real orders are such: waiting to post costs them the drift, and a learner must be judged on
    that too (0 makes every intent uninformed).
    """

    orders_per_symbol: Annotated[int, msgspec.Meta(ge=MIN_SIMULATED_ORDERS, le=MAX_COUNT)]
    notional_min_usd: PositiveUsd
    notional_max_usd: PositiveUsd
    buy_share: Probability
    informed_share: Probability
    informed_horizon_ms: Millis
    warmup_ms: NonNegativeMillis
    tail_ms: NonNegativeMillis
    lane_min_gap_ms: Millis
    context_quotes: Annotated[int, msgspec.Meta(ge=3, le=MAX_COUNT)]


class RulePolicyConfig(Model):
    """The old system's rule policy: router quality over a window drives maker-first, taker bias, offset.

    broken -> taker only; degraded -> ``degraded_taker_bias`` and the offset steps toward the touch;
    good -> maker-first without taker bias and the offset steps away from it; neutral/unknown keep the
    current knobs. The offset starts at ``base_offset_bps`` and stays in [min, max].
    """

    window: PositiveInt
    reprice_loop_min: PositiveInt
    broken_fallback_ratio: Probability
    broken_slippage_bps: Bps
    degraded_fallback_ratio: Probability
    degraded_slippage_bps: Bps
    good_maker_ratio: Probability
    good_fallback_ratio: Probability
    good_slippage_bps: Bps
    base_offset_bps: Bps
    min_offset_bps: Bps
    max_offset_bps: Bps
    offset_step_bps: PositiveBps
    degraded_taker_bias: Probability


class SyntheticMarketConfig(Model):
    """The synthetic market replayed when no recorded data is found (one tape per listed symbol)."""

    symbols: dict[Symbol, Price]
    duration_s: Seconds
    tick_size: TickSize
    spread_ticks: PositiveInt
    volatility_bps_per_sqrt_s: NonNegativeBps
    quote_interval_ms: Millis
    trade_rate_per_s: RatePerS
    mean_trade_qty: Quantity
    qty_step: QtyStep
    touch_qty: Quantity
    sweep_decay_per_bps: SweepDecay


class SimulationBootstrap(Model):
    """Bootstrap of the report's confidence intervals (mean cost and OPE)."""

    n_resamples: SampleCount
    ci_level: OpenFraction
    max_blocks: SampleCount


class ShadowScenarioConfig(Model):
    """``router.json`` ``simulation.shadow_scenario``: the main job runs the tuner in shadow mode, then live.

    On each listed symbol that is simulated, the acting champion is the static policy mixed with
    ``champion_explore_share`` of uniform exploration over the arms the tuner may choose from the static
    policy (its propensities logged): a champion that never explores gives the shadow learner no evidence
    on the arms it proposes, so agreement and the OPE gate could never pass. The tuner (``tuner.json``
    learner) goes live when its go-live gate passes (``tuner.json`` ``deployment.shadow``) or, when it
    has not passed after ``command_go_live_after_share`` of the symbol's orders, by the go-live command
    (``null``: by the gate only, possibly never).
    """

    symbols: tuple[Symbol, ...]
    champion_explore_share: OpenFraction
    command_go_live_after_share: OpenFraction | None


SimulationEngine = Literal["staggered", "concurrent"]
"""How ``simulation.engine`` routes each symbol's intents (see :class:`SimulationConfig`)."""


class SimulationConfig(Model):
    """``router.json`` ``simulation``: what the main job runs on besides the policies themselves.

    ``engine``: ``staggered`` routes each symbol's intents on several venue replays (lanes) started at
    different times, one route at a time per lane, so our orders never meet; ``concurrent`` routes them all on
    ONE replay per symbol and policy with the executor's engine (route machines stepped by one ``ClockDriver``),
    so routes overlap: our later post at a price queues behind our earlier one and our takers use up the
    displayed size they take. Either way a policy observes each outcome when its route ends.

    The routing loop's knobs (poll interval, retries, back-off) are ``executor.json`` ``route``: the
    simulation routes exactly as the live loop does. ``registered_model_prefix`` names the MLflow models
    the simulated learners' final policies are registered under (``<prefix>-<learner>-<SYMBOL>``): apart
    from ``tuner.json``'s live models, so a simulation never becomes a live symbol's champion.
    ``oracle_segments`` is how many consecutive blocks of intents the per-segment oracle picks its best
    fixed arm in (an upper benchmark that may switch arm with the regime).
    """

    engine: SimulationEngine
    intents: IntentStream
    fill_model: SimFillModel
    markout_horizon_ms: Millis
    oracle_segments: Annotated[int, msgspec.Meta(ge=1, le=1000)]
    rule_policy: RulePolicyConfig
    synthetic_market: SyntheticMarketConfig
    bootstrap: SimulationBootstrap
    shadow_scenario: ShadowScenarioConfig
    registered_model_prefix: ModelPrefix


class RouterConfig(Model):
    """``router.json``: policy bounds, the static policy, position mode, closable quotes, the simulation."""

    position_mode: PositionMode
    close_position_quotes: tuple[Name, ...]
    policy_bounds: PolicyBounds
    static_policy: StaticPolicy
    sim_venue: SimVenueSettings
    simulation: SimulationConfig


# --- tuner.json ---------------------------------------------------------------------------------

LearnerName = Literal["structured", "thompson", "ucb", "epsilon_greedy", "linucb", "robbins_monro"]


class ArmGridConfig(Model):
    """The arms every symbol's learner chooses among: the product of offsets and taker biases."""

    maker_offsets_bps: tuple[Bps, ...]
    taker_biases: tuple[Probability, ...]


class RewardBand(Model):
    """Costs outside this band are absurd: rejected and counted, never learned."""

    min_cost_bps: Bps
    max_cost_bps: Bps


class PageHinkleyDrift(Model, tag="page_hinkley", tag_field="detector"):
    """``river.drift.PageHinkley`` on cost residuals (bps), watching shifts both ways."""

    delta: Scale
    threshold: Scale
    min_instances: PositiveInt
    alpha: Fraction


class AdwinDrift(Model, tag="adwin", tag_field="detector"):
    """``river.drift.ADWIN`` on cost residuals (bps)."""

    delta: OpenFraction
    clock: PositiveInt
    grace_period: PositiveInt
    min_window_length: PositiveInt


DriftConfig = PageHinkleyDrift | AdwinDrift
"""River drift detector on cost residuals that re-opens exploration; ``detector`` selects the kind."""


class GuardrailConfig(Model):
    """Limits on how a learned policy may move between published versions.

    ``drift`` watches cost residuals, ``fill_drift`` the maker-fill residuals of a learner that predicts
    fills (the structured learner); either firing discounts the evidence to ``drift_keep_fraction``.
    """

    max_offset_step_bps: PositiveBps
    max_bias_step: Fraction
    min_outcomes_before_move: PositiveInt
    rollback_window: PositiveInt
    rollback_margin_bps: PositiveBps
    drift: DriftConfig
    fill_drift: DriftConfig
    drift_keep_fraction: Fraction


FeatureScale = Annotated[float, msgspec.Meta(ge=1e-3, le=MAX_SCALE)]
"""A contextual feature's scale, from ``tuner.learners.context.MIN_FEATURE_SCALE`` up (below it the features'
squares overflow and every LinUCB score is NaN)."""
FeatureScaleBps = Annotated[float, msgspec.Meta(ge=1e-3, le=MAX_BPS)]
"""A :data:`FeatureScale` in bps."""


class ContextScalesConfig(Model):
    """Typical magnitudes that bring the contextual learner's raw features to order one."""

    spread_scale_bps: FeatureScaleBps
    volatility_scale_bps: FeatureScaleBps
    size_vs_touch_scale: FeatureScale


class StructuredParams(Model):
    """The structured learner (``tuner.learners.structured``): bootstrap replicas, memory, shrinkage, priors.

    ``forgetting_window`` is the effective memory in outcomes (each outcome discounts all evidence by
    ``1 - 1/forgetting_window``); ``shrinkage`` is how many pseudo-observations of the curve shared
    across offsets each offset's own evidence is pulled towards. The cost priors follow from the symbol's
    market fees in ``router.json`` ``sim_venue.fees`` (the fee schedule the product knows), plus
    ``prior_fallback_drift_bps`` for the market's move before a fallback, each worth ``prior_strength``
    observations: a tie-breaker before evidence, kept weak (0.05) because the evidence is discounted to about
    ``forgetting_window`` outcomes spread over the offsets, and a prior written in the journaled-cost measure (a
    fill one bp further costs one bp less) pulled a sparse deep offset's extrapolated cost under the route-end
    reward (its price improvement lives in the mid's move there), which sent learners to far posts on volatile
    markets. ``burn_in_per_arm`` replaces ``learner_params.burn_in_per_arm`` for this learner: it prices an
    untried arm from the model its neighbours feed, so forced trials of every arm (a taker leg or a post far
    from the touch, 1.4 bps dearer on a perpetual) buy it little; 0 lets the posterior decide from the first order.
    ``prior_fill_logit_spread`` spreads the replicas' prior fill probability evenly over that many logit units either
    side of ``prior_fill_probability``'s (randomized priors): the bootstrap varies only what evidence says, so with one
    prior for all, evidence at one offset gave every replica the same slope through it and its neighbours were never
    tried (equal maker and taker fees: 4 bps routed for 200+ orders while 2 bps cost 0.6 bps less).
    ``fill_speed_window`` (outcomes; 0: off) is the short memory of how fast posts fill, against the
    ``forgetting_window`` one: a market whose posts fill faster lately than the learner remembers raises the fill
    probability its curve gives the offsets it has not posted at lately (``tuner.learners.fill_speed``).
    """

    burn_in_per_arm: NonNegativeInt
    replicas: Annotated[int, msgspec.Meta(ge=2, le=1024)]
    forgetting_window: Annotated[float, msgspec.Meta(gt=1.0, le=1e9)]
    shrinkage: Annotated[float, msgspec.Meta(ge=0.0, le=1e6)]
    prior_fallback_drift_bps: Annotated[float, msgspec.Meta(ge=0.0, le=100.0)]
    # the structured learner's MIN_PRIOR_FILL_PROBABILITY and MIN/MAX_PRIOR_STRENGTH: below them a prior line's fit
    # underflows and every expected cost is NaN
    prior_fill_probability: Annotated[float, msgspec.Meta(ge=1e-6, le=0.999999)]
    prior_fill_logit_spread: Annotated[float, msgspec.Meta(ge=0.0, le=10.0)]
    prior_strength: Annotated[float, msgspec.Meta(ge=1e-6, le=1e6)]
    fill_speed_window: Annotated[float, msgspec.Meta(ge=0.0, le=1e9)]

    def __post_init__(self) -> None:
        if self.fill_speed_window != 0.0 and not 1.0 < self.fill_speed_window < self.forgetting_window:
            raise ValueError(f"fill_speed_window {self.fill_speed_window:g} must be 0 (off), or above 1 and under "
                             f"forgetting_window {self.forgetting_window:g}")


class RobbinsMonroParams(Model):
    """The stochastic-approximation baseline (``tuner.learners.robbins_monro``), starting at the static offset.

    Step n moves the posting distance by ``step_bps / n**step_decay`` per bps of estimated slope;
    ``exploration`` is the probability kept on each neighbouring grid offset; the cost baseline that cuts
    the gradient's variance remembers ``baseline_window`` outcomes.
    """

    step_bps: Annotated[float, msgspec.Meta(gt=0.0, le=100.0)]
    step_decay: Annotated[float, msgspec.Meta(gt=0.5, le=1.0)]
    exploration: Annotated[float, msgspec.Meta(gt=0.0, lt=0.5)]
    baseline_window: Annotated[float, msgspec.Meta(ge=1.0, le=1e9)]


class LearnerParams(Model):
    """Hyper-parameters of every learner, so any of them can be chosen without code changes.

    ``burn_in_per_arm`` rewards are collected for each arm before a learner's own rule is used (the structured
    learner has its own, ``structured.burn_in_per_arm``).
    """

    burn_in_per_arm: NonNegativeInt
    thompson_prior_mean_cost_bps: Bps
    # tuner.learners.thompson's MIN_PRIOR_PSEUDO_COUNT and MIN_PRIOR_NOISE_STD: below them an untried arm's posterior
    # scale is 0 and the first decision divides by it
    thompson_prior_strength: Annotated[float, msgspec.Meta(ge=1e-6, le=MAX_SCALE)]
    thompson_prior_noise_std_bps: Annotated[float, msgspec.Meta(ge=1e-3, le=MAX_BPS)]
    thompson_prior_noise_pseudo_count: Annotated[float, msgspec.Meta(ge=1e-6, le=MAX_SCALE)]
    ucb_delta: Scale
    ucb_min_noise_std_bps: PositiveBps
    epsilon: Probability
    epsilon_min: Probability
    epsilon_decay: Annotated[float, msgspec.Meta(ge=0.0, lt=1.0)]
    linucb_alpha: Scale
    linucb_ridge: Annotated[float, msgspec.Meta(ge=1e-6, le=MAX_SCALE)]  # tuner.learners.linucb.MIN_RIDGE
    linucb_prior_mean_cost_bps: Bps
    linucb_context_scales: ContextScalesConfig
    structured: StructuredParams
    robbins_monro: RobbinsMonroParams

    def __post_init__(self) -> None:
        if self.epsilon_min > self.epsilon:
            raise ValueError(f"epsilon_min {self.epsilon_min} must not exceed epsilon {self.epsilon}")


class PublishConfig(Model):
    """When the tuner publishes a new policy version for a symbol.

    On schedule every ``every_n_outcomes`` learned outcomes, or earlier when the learner's best arm is
    expected to beat the published arm by at least ``min_improvement_bps`` (always within the guardrails).
    """

    every_n_outcomes: PositiveInt
    min_improvement_bps: PositiveBps


MAX_EXPERIMENT_NAME = 500
"""MLflow's longest experiment name (``mlflow.utils.validation.MAX_EXPERIMENT_NAME_LENGTH``; not imported: loading a
configuration does not load MLflow): a longer one failed `simulate` after the whole run, exit 1, blaming the store."""


class MlflowConfig(Model):
    """Where policy versions are recorded; ``tracking_uri`` null means the local default store."""

    tracking_uri: Annotated[str, msgspec.Meta(min_length=1)] | None
    experiment: Annotated[str, msgspec.Meta(pattern=r"\S", max_length=MAX_EXPERIMENT_NAME)]
    registered_model_prefix: ModelPrefix


OpeEstimatorName = Literal["ips", "snips", "dm", "dr", "sndr", "switch_dr", "dr_shrinkage"]


class OpeConfig(Model):
    """Offline policy evaluation: which estimators, how their intervals are drawn, weight clipping.

    ``clip_threshold`` null means IPS weights are not clipped; when set, the clipped IPS is reported
    next to the plain one, never instead of it.
    """

    estimators: tuple[OpeEstimatorName, ...]
    bootstrap_resamples: SampleCount
    ci_level: OpenFraction
    bootstrap_max_blocks: SampleCount
    clip_threshold: Scale | None
    switch_tau: Scale
    shrinkage_lambda: Scale
    ridge_l2: Scale
    weight_quantiles: tuple[Probability, ...]


class ShadowConfig(Model):
    """When a symbol in shadow mode may go live on its own.

    Every ``gate_every_n_outcomes`` learned outcomes, once ``min_outcomes`` are learned, the gate asks:
    did the learner's proposals agree with the acting policy on at least ``min_agreement`` of the last
    ``agreement_window`` orders, and is the OPE lower bound of the learner's best arm, on the last
    ``ope_window_events`` routed orders, at most ``max_shortfall_bps`` below the acting policy's value?
    """

    agreement_window: PositiveInt
    min_agreement: Fraction
    min_outcomes: PositiveInt
    gate_every_n_outcomes: PositiveInt
    ope_window_events: SampleCount
    max_shortfall_bps: NonNegativeBps


class BudgetConfig(Model):
    """Per-symbol cap on the expected extra cost of exploring instead of exploiting.

    An arm's extra cost is the upper bound (``confidence_z`` standard errors) of its cost minus the
    exploited arm's, from at least ``min_samples_for_bound`` outcomes (``untried_extra_cost_bps`` below
    that; per-order standard deviations are floored at ``min_cost_std_bps``). Exploring an arm is
    allowed only while the mean charge per order stays within ``max_extra_cost_bps_per_order`` and
    the day's charge in USD within ``max_extra_cost_usd_per_day``.
    """

    max_extra_cost_bps_per_order: NonNegativeBps
    max_extra_cost_usd_per_day: NonNegativeUsd
    confidence_z: Annotated[float, msgspec.Meta(gt=0.0, le=10.0)]
    min_samples_for_bound: SampleCount
    untried_extra_cost_bps: NonNegativeBps
    min_cost_std_bps: PositiveBps


class SafetyConfig(Model):
    """Per-arm limits: an arm whose last ``window`` outcomes (at least ``min_outcomes``) break one is excluded.

    ``max_fallback_ratio`` is the share of routed orders that used the taker fallback, breached when its
    Wilson lower bound at ``fallback_confidence`` (0.5: the ratio itself) is above it; slippage and
    cost are means in bps of the filled ones. An excluded arm is probed again after
    ``reprobe_after_outcomes`` outcomes of the symbol (doubling per repeated exclusion, up to
    ``max_reprobe_after_outcomes``) on a trial judged after ``reprobe_min_outcomes`` outcomes, and every
    excluded arm re-opens when the symbol's maker fill rate moves by more than ``regime_fill_rate_change`` or
    a drift detector fires. ``spare_fallbacks_cheaper_than_crossing``: the fallback ratio does not exclude an arm
    whose window costs on average no more than crossing at each order's arrival (the taker fee plus half the
    arrival spread, in the learned cost's measure).
    """

    window: PositiveInt
    min_outcomes: PositiveInt
    max_fallback_ratio: Probability
    max_slippage_bps: Bps
    max_cost_bps: Bps
    reprobe_after_outcomes: PositiveInt
    max_reprobe_after_outcomes: PositiveInt
    reprobe_min_outcomes: PositiveInt
    regime_fill_rate_change: Fraction
    fallback_confidence: Annotated[float, msgspec.Meta(ge=0.5, lt=1.0)]
    spare_fallbacks_cheaper_than_crossing: bool

    def __post_init__(self) -> None:
        if self.reprobe_min_outcomes > self.min_outcomes:
            raise ValueError(f"reprobe_min_outcomes {self.reprobe_min_outcomes} cannot exceed min_outcomes "
                             f"{self.min_outcomes}")
        if self.reprobe_after_outcomes > self.max_reprobe_after_outcomes:
            raise ValueError(f"reprobe_after_outcomes {self.reprobe_after_outcomes} cannot exceed "
                             f"max_reprobe_after_outcomes {self.max_reprobe_after_outcomes}")
        if self.min_outcomes > self.window:
            raise ValueError(f"min_outcomes {self.min_outcomes} cannot exceed window {self.window}")


class PromotionConfig(Model):
    """``policy promote``: the challenger's OPE lower bound on the last ``recent_window_s`` of routed orders
    must beat the acting policy's on-policy value by ``margin_bps``, with at least
    ``min_effective_sample_size`` effective events behind the estimate."""

    recent_window_s: Seconds
    margin_bps: NonNegativeBps
    min_effective_sample_size: Scale


class DeploymentConfig(Model):
    """How learned policies reach real orders: shadow mode, exploration budget, arm safety, promotion.

    ``shadow_symbols`` start in shadow mode (the champion acts, the learner proposes); the others start
    live. ``gate_estimator`` is the OPE estimator whose lower bound the go-live and promotion gates use.
    """

    shadow_symbols: tuple[Symbol, ...]
    gate_estimator: OpeEstimatorName
    shadow: ShadowConfig
    budget: BudgetConfig
    safety: SafetyConfig
    promotion: PromotionConfig


RewardMid = Literal["arrival", "route_end"]
"""The mid the tuner's learned cost is measured against (``tuner.json reward_mid``)."""


class TunerConfig(Model):
    """``tuner.json``: arms, learner, reward band, guardrails, publishing, MLflow, OPE and deployment.

    ``reward_markout_horizon_ms`` > 0 charges adverse selection in the reward: the learner minimises the cost
    plus the mid's move against us that long after the fill (0 learns the cost alone). ``reward_mid``
    ``route_end`` learns the cost less the mid's move against the order from its arrival to the route's end
    (``arrival``: the cost as journaled): the same expected cost for every arm while the mid is a martingale
    from the order's arrival (optional stopping: the route's end is a bounded stopping time), with the market's
    noise taken out, and the mid's expected move for the time the route took put back: the waiting drift against
    the order, learned per symbol from every route over ``reward_mid_drift_window`` routes (0 assumes intents that
    know nothing of the price, as the simulation's do by default: an evaluation setting). Both need the mid after
    the order's arrival: the simulation replays it; live adaptive routing reads the touch when a route ends (so it
    runs ``route_end``) and refuses a markout horizon and a drift window of 0.
    """

    learner: LearnerName
    seed: Seed
    arms: ArmGridConfig
    reward_band: RewardBand
    reward_markout_horizon_ms: NonNegativeMillis
    reward_mid: RewardMid
    reward_mid_drift_window: Annotated[int, msgspec.Meta(ge=0, le=MAX_COUNT)]
    learner_params: LearnerParams
    guardrails: GuardrailConfig
    publish: PublishConfig
    mlflow: MlflowConfig
    ope: OpeConfig
    deployment: DeploymentConfig

    @property
    def adjusts_reward(self) -> bool:
        """Whether the learned cost is not the journaled one: markout charged, or measured against the route-end
        mid (each needs a mid after the order's arrival)."""
        return self.reward_markout_horizon_ms > 0 or self.reward_mid != "arrival"


# --- executor.json ------------------------------------------------------------------------------

QueueModelName = Literal["risk_averse", "log_prob"]


class Instrument(Model):
    """Venue increments the executor converts a sized gross into a quantity with."""

    tick_size: TickSize
    qty_step: QtyStep


class RouteLoopSettings(Model):
    """How the router polls and retries the venue (``RouteSettings`` beyond position mode and quotes).

    ``poll_interval_ms`` is at least 1 ms: a venue answers no faster, and a paper route polls its replay every
    interval (1e-6 ms made a two-second route take two billion polls: `live` never finished its first intent).
    """

    poll_interval_ms: Annotated[float, msgspec.Meta(ge=1.0, le=MAX_MS)]
    max_venue_retries: Retries
    rate_limit_backoff_ms: BackoffMillis
    max_retry_after_ms: Millis


class ReconcileSettings(Model):
    """Restart and after-error settlement: how far past the last known leg ids are probed.

    ``probe_gap_legs`` consecutive unknown client order ids end the probe of an intent's legs; it must
    exceed ``route.max_venue_retries + 1`` (the most ids a route can skip in a row after timeouts).
    """

    probe_gap_legs: PositiveInt
    max_legs_per_intent: PositiveInt
    position_qty_tolerance: Annotated[float, msgspec.Meta(ge=0.0, le=1.0)]


class EngineSettings(Model):
    """How many routes work at once (``executor.loop``): ``max_routes_in_flight`` overall (1 is the
    sequential engine) and ``max_routes_per_symbol``. An intent that does not fit waits in its source
    (backpressure: no further intent is read until a route finishes)."""

    max_routes_in_flight: Annotated[int, msgspec.Meta(ge=1, le=256)]
    max_routes_per_symbol: Annotated[int, msgspec.Meta(ge=1, le=256)]


class QualityBands(Model):
    """Fallback ratio / median slippage bands of ``features.quality.router_quality``."""

    broken_fallback_ratio: Probability
    broken_slippage_bps: Bps
    degraded_fallback_ratio: Probability
    degraded_slippage_bps: Bps
    good_maker_ratio: Probability
    good_fallback_ratio: Probability
    good_slippage_bps: Bps


class SlippageRegimeBands(Model):
    """Median slippage limits between calm, normal and stressed (``features.scores``)."""

    calm_below_bps: Bps
    stressed_above_bps: Bps


class HealthSettings(Model):
    """What the health snapshot looks at and how often it is published when nothing happens."""

    interval_s: Seconds
    window_events: PositiveInt
    sharpe_window: SampleCount
    reprice_loop_min: PositiveInt
    quality: QualityBands
    slippage_regimes: SlippageRegimeBands


class AlertThresholds(Model):
    """When health raises an alert; ratio alerts wait for ``min_orders`` orders in the window.

    ``tuner_budget_used_ratio``: a tuned symbol's exploration budget alert fires when either charge
    (bps per order, USD today) reaches this share of its ``tuner.json`` cap. ``order_feed_polling_s``: live
    order updates fell back from the user-data stream to REST polling at least this long ago (0: at once).
    ``book_feed_rest_s``: the same for the streamed touch (some instrument's touch read by REST that long).
    """

    stale_nav_s: Seconds
    fallback_ratio: Probability
    slippage_p50_bps: Bps
    min_orders: PositiveInt
    veto_storm_count: PositiveInt
    veto_storm_window_s: Seconds
    tuner_budget_used_ratio: Annotated[float, msgspec.Meta(gt=0.0, le=1.0)]
    order_feed_polling_s: NonNegativeSeconds
    book_feed_rest_s: NonNegativeSeconds


SharpeLimit = Annotated[float, msgspec.Meta(ge=-100.0, le=100.0)]
SizeMultiplier = Annotated[float, msgspec.Meta(gt=0.0, le=10.0)]


class AllocatorSettings(Model):
    """The feedback allocator (``features.allocator``): size multipliers per strategy and per symbol.

    Proposals are computed on every health publish and shown in health; ``apply`` false (the default) is
    shadow mode, true scales each growing intent's size hint by its strategy's and symbol's multipliers
    before the risk core sizes it. Evidence is the last ``window_lots`` closed lots (``TradeRecord
    .closed_lots``); nothing moves before ``min_lots`` of them. A per-trade Sharpe below
    ``down_below_sharpe`` steps toward ``floor``, above ``up_above_sharpe`` toward ``ceiling``, else back
    toward 1, never more than ``max_step`` per publish.
    """

    apply: bool
    window_lots: PositiveInt
    min_lots: SampleCount
    floor: SizeMultiplier
    ceiling: SizeMultiplier
    max_step: SizeMultiplier
    down_below_sharpe: SharpeLimit
    up_above_sharpe: SharpeLimit

    def __post_init__(self) -> None:
        if not self.floor <= 1.0 <= self.ceiling:
            raise ValueError(f"floor {self.floor} <= 1 <= ceiling {self.ceiling} must hold (1 is no change)")
        if not self.down_below_sharpe < self.up_above_sharpe:
            raise ValueError("down_below_sharpe must be below up_above_sharpe")
        if self.min_lots > self.window_lots:
            raise ValueError(f"min_lots {self.min_lots} cannot exceed window_lots {self.window_lots}")


class PrometheusSettings(Model):
    """The metrics endpoint; ``port`` 0 asks the OS for a free port (tests).

    The bucket lists are the upper bounds of the cost, slippage and time-to-fill histograms (strictly
    increasing, ``+Inf`` is added); ``max_label_values`` caps the distinct values of each open-ended label
    (arm, policy id, reason, code): past it a value is exported as ``other``, so a misbehaving policy source
    cannot blow up the series count.
    """

    enabled: bool
    host: str
    port: Annotated[int, msgspec.Meta(ge=0, le=65535)]
    cost_buckets_bps: tuple[Bps, ...]
    slippage_buckets_bps: tuple[Bps, ...]
    time_to_fill_buckets_s: tuple[NonNegativeSeconds, ...]
    max_label_values: Annotated[int, msgspec.Meta(ge=1, le=10_000)]

    def __post_init__(self) -> None:
        for name in ("cost_buckets_bps", "slippage_buckets_bps", "time_to_fill_buckets_s"):
            bounds = getattr(self, name)
            if not bounds or any(a >= b for a, b in pairwise(bounds)):
                raise ValueError(f"{name} must be a non-empty, strictly increasing list, got {list(bounds)}")


class LiveVenueSettings(Model):
    """The live ccxt venue (``router.venues.ccxt.config.CcxtVenueConfig``); keys come from the environment.

    Order news (``executor.engine.live``): ``order_updates`` ``stream`` follows the user-data stream
    (ccxt.pro ``watch_orders``), polling REST only while it is down (reconnecting with back-off from
    ``stream_reconnect_initial_ms``, doubling up to ``stream_reconnect_max_ms``, its listen key renewed every
    ``listen_key_refresh_ms``); ``polling`` polls every working order by REST at ``route.poll_interval_ms``.
    ``ws_base_url`` re-points the websocket endpoints (a proxy, a local fake); ``null`` keeps ccxt's.
    The touch (``router.venues.ccxt.book_feed``): ``book_updates`` ``stream`` watches each instrument's book
    ticker (ccxt.pro ``watch_bids_asks``, same back-off) and reads it while younger than ``book_max_age_ms`` by
    the exchange's time, REST otherwise; ``rest`` reads every touch by REST (``top_of_book_source``).
    """

    exchange_id: Name
    api_key_env: EnvVarName
    api_secret_env: EnvVarName
    api_base_url: Annotated[str, msgspec.Meta(pattern=r"^https?://\S+$")] | None
    request_timeout_ms: Annotated[int, msgspec.Meta(ge=1, le=int(MAX_MS))]
    ccxt_rate_limiter: bool
    rate_limit_max_retries: Retries
    backoff_initial_ms: BackoffMillis
    backoff_max_ms: NonNegativeMillis
    retry_after_max_s: NonNegativeSeconds
    top_of_book_source: Literal["order_book", "bids_asks"]
    order_book_depth: PositiveInt
    order_updates: Literal["stream", "polling"]
    ws_base_url: Annotated[str, msgspec.Meta(pattern=r"^wss?://\S+$")] | None
    listen_key_refresh_ms: Annotated[int, msgspec.Meta(ge=1000, le=int(MAX_MS))]
    stream_reconnect_initial_ms: BackoffMillis
    stream_reconnect_max_ms: Millis
    book_updates: Literal["stream", "rest"]
    book_max_age_ms: Millis


class SyntheticSymbol(Model):
    """One symbol of the paper-mode synthetic market (``router.market.synthetic``).

    ``touch_imbalance_sd`` and ``touch_imbalance_half_life_s`` make the touch sizes lean one way and the
    other (``router.market.touch_imbalance``: imbalance ``tanh`` of a mean-reverting state of that standard
    deviation and half-life), so the screener's imbalance gate passes and refuses as on a real book.
    """

    mid0: Price
    spread_ticks: PositiveInt
    volatility_bps_per_sqrt_s: NonNegativeBps
    quote_interval_ms: Millis
    trade_rate_per_s: RatePerS
    mean_trade_qty: Quantity
    touch_qty: Quantity
    sweep_decay_per_bps: SweepDecay
    touch_imbalance_sd: Scale
    touch_imbalance_half_life_s: Seconds


class PolicySourceSettings(Model):
    """Where the live loop's policies come from when ``router-tuner live --policy-source registry`` is chosen.

    ``registry_refresh_s`` is the least time between two reads of a symbol's ``champion`` alias, so a
    ``policy promote`` or ``rollback`` reaches the running executor within that time, without a restart
    (0 re-reads before every order, one MLflow round trip each).
    """

    registry_refresh_s: NonNegativeSeconds


class AdaptiveSettings(Model):
    """``router-tuner live --policy-source tuner``: where the tuner's state lives and how often it is saved.

    ``tuner_state_path`` is the checkpoint manifest (the learners' and tuners' files sit beside it);
    ``checkpoint_every_n_events`` how many journaled router events may pass between two checkpoints
    (a restart re-learns the journaled events after the last checkpoint, so any value loses nothing;
    a larger one saves disk writes and replays more at start); ``context_mids`` how many recent mids
    per symbol the decision context's volatility is computed from.
    """

    tuner_state_path: Annotated[str, msgspec.Meta(pattern=r"\S")]
    checkpoint_every_n_events: PositiveInt
    context_mids: Annotated[int, msgspec.Meta(ge=3, le=MAX_COUNT)]


class PaperSettings(Model):
    """Paper mode: the simulated venue's fill model over recorded tapes or the synthetic market."""

    duration_s: Seconds
    seed: Seed
    latency_jitter_ms: NonNegativeMillis
    queue_model: QueueModelName
    no_depth_level_qty_ratio: LevelQtyRatio
    max_taker_walk_levels: PositiveInt
    synthetic: dict[Symbol, SyntheticSymbol]


class PushSinkSettings(Model):
    """An optional webhook the executor pushes each health snapshot to, for teams without a scraper
    (``executor.monitoring.push``); off by default.

    Every publish POSTs one JSON document (the snapshot, its alerts and every metric sample) to ``url``
    (``http://`` or ``https://``, no credentials in it) from a background thread, never blocking the loop.
    A failed POST (error status, refused, or no answer within ``timeout_s``) is retried up to
    ``max_attempts`` times, waiting ``backoff_initial_s`` doubling up to ``backoff_max_s``; then dropped.
    At most ``max_buffered`` documents wait; a new one beyond that drops the oldest. Drops are counted
    (``executor_push_dropped_total`` by reason).
    """

    enabled: bool
    url: str
    timeout_s: Annotated[float, msgspec.Meta(gt=0.0, le=300.0)]
    max_attempts: Annotated[int, msgspec.Meta(ge=1, le=MAX_RETRIES)]
    backoff_initial_s: Annotated[float, msgspec.Meta(gt=0.0, le=3600.0)]
    backoff_max_s: Annotated[float, msgspec.Meta(gt=0.0, le=3600.0)]
    max_buffered: Annotated[int, msgspec.Meta(ge=1, le=100_000)]

    def __post_init__(self) -> None:
        parts = urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"url must be an http:// or https:// URL with a host, got {self.url!r}")
        if parts.username or parts.password:
            raise ValueError("url must not carry credentials (user:password@)")
        if self.backoff_initial_s > self.backoff_max_s:
            raise ValueError(f"backoff_initial_s {self.backoff_initial_s} exceeds backoff_max_s {self.backoff_max_s}")


StopWorkingType = Literal["CONTRACT_PRICE", "MARK_PRICE"]


class ProtectiveStopSettings(Model):
    """Exchange-side stops on every open leg (``executor.protection``), so a position is protected while the
    executor is down; ``null`` distances place none (the default: off).

    ``stop_loss_bps`` / ``take_profit_bps``: distance from the leg's average entry price at which a
    closePosition STOP_MARKET / TAKE_PROFIT_MARKET closes the whole leg at the venue (a long's stop below
    the entry, its take-profit above; mirrored for a short), on the tick outward. They are replaced when
    the leg's entry moves and cancelled when it closes. ``working_type`` is the price they trigger on:
    ``CONTRACT_PRICE`` (last trade) or ``MARK_PRICE``.
    """

    stop_loss_bps: PositiveBps | None
    take_profit_bps: PositiveBps | None
    working_type: StopWorkingType

    @property
    def enabled(self) -> bool:
        return self.stop_loss_bps is not None or self.take_profit_bps is not None


class ExecutorConfig(Model):
    """``executor.json``: the live loop's instruments, routing loop, reconciliation, telemetry and venues."""

    starting_wallet_usd: PositiveUsd
    instruments: dict[Symbol, Instrument]
    route: RouteLoopSettings
    engine: EngineSettings
    reconcile: ReconcileSettings
    health: HealthSettings
    alerts: AlertThresholds
    allocator: AllocatorSettings
    prometheus: PrometheusSettings
    live: LiveVenueSettings
    policy_source: PolicySourceSettings
    adaptive: AdaptiveSettings
    paper: PaperSettings
    protective_stops: ProtectiveStopSettings
    push: PushSinkSettings


class ConfigBundle(msgspec.Struct, frozen=True, kw_only=True):
    """All five files, loaded and cross-checked together."""

    risk: RiskLimits
    strategy: StrategyConfig
    router: RouterConfig
    tuner: TunerConfig
    executor: ExecutorConfig
