"""Seeded synthetic markets with a known fill-probability curve, for tests that need ground truth.

Why: a bandit or a fill model can only be checked against truth it could not have fitted. The generator
draws a mid path, quotes a fixed spread around it, and prints trades whose *sweep depth* beyond the touch
is exponential, so the chance that a passive order resting ``offset_bps`` behind the touch is traded
through within ``ttl_ms`` has a closed form (``fill_probability``).

Model (all parameters in ``SyntheticMarketSpec``):
- quotes every ``quote_interval_ms``; the mid is geometric Brownian motion with
  ``volatility_bps_per_sqrt_s``; bid = mid rounded to the tick minus half the spread, ask = bid +
  ``spread_ticks`` ticks, both sides showing ``touch_qty``;
- trades are a Poisson process of rate ``trade_rate_per_s``; each is a buy or a sell aggressor with
  probability 1/2; its size is exponential with mean ``mean_trade_qty`` (at least one ``qty_step``);
  it prints ``d`` bps through the touch it hits (ask for buys, bid for sells), rounded down to the tick,
  where ``d`` is exponential with rate ``sweep_decay_per_bps`` (mean ``1 / sweep_decay_per_bps`` bps).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from router_tuner.config.models import is_unit_fraction
from router_tuner.router.market.tape import MarketTape

_NS_PER_S = 1_000_000_000


@dataclass(frozen=True, slots=True)
class SyntheticMarketSpec:
    """Everything that defines a synthetic market; the same spec (seed included) gives the same tape."""

    symbol: str
    start_ns: int
    duration_s: float
    mid0: float
    tick_size: float
    spread_ticks: int
    volatility_bps_per_sqrt_s: float
    quote_interval_ms: float
    trade_rate_per_s: float
    mean_trade_qty: float
    qty_step: float
    touch_qty: float
    sweep_decay_per_bps: float
    seed: int

    def __post_init__(self) -> None:
        if not self.symbol:
            raise ValueError("symbol must not be empty")
        positive = ("duration_s", "mid0", "tick_size", "quote_interval_ms", "mean_trade_qty", "qty_step",
                    "touch_qty", "sweep_decay_per_bps")
        for name in positive:
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)!r}")
        for name in ("volatility_bps_per_sqrt_s", "trade_rate_per_s"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)!r}")
        if self.spread_ticks < 1:
            raise ValueError(f"spread_ticks must be >= 1, got {self.spread_ticks}")
        for name in ("tick_size", "qty_step"):
            if not is_unit_fraction(getattr(self, name)):
                raise ValueError(f"{name} must be 1/n for an integer n, got {getattr(self, name)!r}")
        if self.start_ns < 0:
            raise ValueError(f"start_ns must be >= 0, got {self.start_ns}")

    @property
    def price_scale(self) -> int:
        return round(1 / self.tick_size)

    @property
    def qty_scale(self) -> int:
        return round(1 / self.qty_step)

    @property
    def fill_rate_at_touch_per_s(self) -> float:
        """Rate of aggressors hitting one side: half the trade rate."""
        return self.trade_rate_per_s / 2

    def fill_probability(self, offset_bps: float, ttl_ms: float) -> float:
        """Chance that a passive order ``offset_bps`` behind its touch is traded through within ``ttl_ms``.

        Trades reaching ``offset_bps`` arrive at rate ``a * exp(-k * offset_bps)`` with
        ``a = fill_rate_at_touch_per_s`` and ``k = sweep_decay_per_bps`` (Poisson thinning), so
        ``P = 1 - exp(-ttl_s * a * exp(-k * offset_bps))``, which is ``≈ ttl_s * a * exp(-k * offset_bps)``
        when small. Exact for a trade-through fill (no queue ahead), a still mid
        (``volatility_bps_per_sqrt_s = 0``) and offsets that are whole ticks; otherwise an approximation.
        """
        if offset_bps < 0 or ttl_ms < 0:
            raise ValueError(f"offset_bps and ttl_ms must be >= 0, got {offset_bps}, {ttl_ms}")
        rate = self.fill_rate_at_touch_per_s * math.exp(-self.sweep_decay_per_bps * offset_bps)
        return -math.expm1(-rate * ttl_ms / 1000)


def generate(spec: SyntheticMarketSpec) -> MarketTape:
    """Draw one synthetic tape (quotes and trades, no depth) from ``spec``; deterministic for its seed.

    Prices are in ticks (``price_scale = 1 / tick_size``), sizes in ``qty_step`` lots.
    """
    rng = np.random.default_rng(spec.seed)
    interval_ns = round(spec.quote_interval_ms * 1_000_000)
    duration_ns = round(spec.duration_s * _NS_PER_S)
    n_quotes = duration_ns // interval_ns + 1
    quote_ts = spec.start_ns + np.arange(n_quotes, dtype=np.int64) * interval_ns

    step_sd = spec.volatility_bps_per_sqrt_s / 1e4 * math.sqrt(interval_ns / _NS_PER_S)
    log_steps = rng.normal(0.0, step_sd, n_quotes - 1)
    mid = spec.mid0 * np.exp(np.concatenate([[0.0], np.cumsum(log_steps)]))
    bid_ticks = np.round(mid / spec.tick_size - spec.spread_ticks / 2).astype(np.int64)
    if bid_ticks.min() < 1:
        raise ValueError(f"{spec.symbol}: the mid path fell to zero; lower volatility or duration")
    ask_ticks = bid_ticks + spec.spread_ticks
    touch_lots = max(1, round(spec.touch_qty / spec.qty_step))

    n_trades = int(rng.poisson(spec.trade_rate_per_s * spec.duration_s))
    trade_ts = np.sort(spec.start_ns + rng.integers(0, duration_ns, n_trades, dtype=np.int64))
    seller_aggressor = rng.random(n_trades) < 0.5
    sweep_bps = rng.exponential(1 / spec.sweep_decay_per_bps, n_trades)
    sizes = np.maximum(1, np.round(rng.exponential(spec.mean_trade_qty, n_trades) / spec.qty_step))
    at = np.searchsorted(quote_ts, trade_ts, side="right") - 1
    touch = np.where(seller_aggressor, bid_ticks[at], ask_ticks[at])
    through_ticks = np.floor(touch * sweep_bps / 1e4).astype(np.int64)
    trade_ticks = np.where(seller_aggressor, np.maximum(1, touch - through_ticks), touch + through_ticks)

    empty = np.empty(0, dtype=np.int64)
    return MarketTape(
        symbol=spec.symbol, market="synthetic", price_scale=spec.price_scale, qty_scale=spec.qty_scale,
        tick_size=spec.tick_size,
        quote_ts_ns=quote_ts, bid_px=bid_ticks, bid_qty=np.full(n_quotes, touch_lots, dtype=np.int64),
        ask_px=ask_ticks, ask_qty=np.full(n_quotes, touch_lots, dtype=np.int64),
        trade_ts_ns=trade_ts, trade_px=trade_ticks, trade_qty=sizes.astype(np.int64),
        trade_buyer_maker=seller_aggressor,
        depth_ts_ns=empty, depth_side=np.empty(0, dtype=np.int8), depth_px=empty.copy(),
        depth_qty=empty.copy(),
    ).validate()


def generate_regimes(specs: Sequence[SyntheticMarketSpec]) -> MarketTape:
    """One tape through several regimes in turn (e.g. quiet, active, quiet): each spec's segment starts where
    the previous one ended, at its last mid, so only the regime's activity and volatility change.

    The specs must agree on symbol, tick size and lot; each segment is drawn from its own seed.
    """
    if not specs:
        raise ValueError("need at least one regime")
    first = specs[0]
    for spec in specs[1:]:
        if (spec.symbol, spec.tick_size, spec.qty_step) != (first.symbol, first.tick_size, first.qty_step):
            raise ValueError("regimes must share symbol, tick_size and qty_step")
    segments: list[MarketTape] = []
    start_ns, mid0 = first.start_ns, first.mid0
    for spec in specs:
        tape = generate(dataclasses.replace(spec, start_ns=start_ns, mid0=mid0))
        segments.append(tape)
        start_ns = int(tape.quote_ts_ns[-1]) + round(spec.quote_interval_ms * 1_000_000)
        mid0 = float(tape.bid_px[-1] + tape.ask_px[-1]) / (2.0 * tape.price_scale)
    columns = ("quote_ts_ns", "bid_px", "bid_qty", "ask_px", "ask_qty", "trade_ts_ns", "trade_px", "trade_qty",
               "trade_buyer_maker", "depth_ts_ns", "depth_side", "depth_px", "depth_qty")
    joined = {name: np.concatenate([getattr(t, name) for t in segments]) for name in columns}
    return dataclasses.replace(segments[0], **joined).validate()
