"""Building the executor's venue: paper (the simulated venue over recorded tapes or the synthetic market)
or live (ccxt, keys from the environment). Only this module knows how config becomes a venue."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from router_tuner.config.models import ConfigBundle
from router_tuner.executor.paper_account import PaperAccount
from router_tuner.router.market.synthetic import SyntheticMarketSpec, generate
from router_tuner.router.market.tape import MarketTape
from router_tuner.router.market.touch_imbalance import with_touch_imbalance
from router_tuner.router.venues.sim.config import SimVenueConfig
from router_tuner.router.venues.sim.queue import LogProbQueue, QueueModel, RiskAverseQueue
from router_tuner.router.venues.sim.venue import SimVenue

if TYPE_CHECKING:
    from router_tuner.router.venues.ccxt.venue import CcxtVenue

_QUEUE_MODELS: dict[str, type[QueueModel]] = {"risk_averse": RiskAverseQueue, "log_prob": LogProbQueue}


def synthetic_tapes(config: ConfigBundle, *, start_ns: int) -> list[MarketTape]:
    """One synthetic tape per ``executor.paper.synthetic`` symbol, seeded from ``paper.seed``, its touch sizes
    leaning with a seeded, mean-reverting imbalance (a flat book would fail every imbalance gate)."""
    paper, instruments = config.executor.paper, config.executor.instruments
    tapes = []
    for index, (symbol, market) in enumerate(sorted(paper.synthetic.items())):
        instrument = instruments[symbol]
        tape = generate(SyntheticMarketSpec(
            symbol=symbol, start_ns=start_ns, duration_s=paper.duration_s, mid0=market.mid0,
            tick_size=instrument.tick_size, spread_ticks=market.spread_ticks,
            volatility_bps_per_sqrt_s=market.volatility_bps_per_sqrt_s, quote_interval_ms=market.quote_interval_ms,
            trade_rate_per_s=market.trade_rate_per_s, mean_trade_qty=market.mean_trade_qty,
            qty_step=instrument.qty_step, touch_qty=market.touch_qty,
            sweep_decay_per_bps=market.sweep_decay_per_bps, seed=paper.seed + index))
        tapes.append(with_touch_imbalance(tape, sd=market.touch_imbalance_sd,
                                          half_life_s=market.touch_imbalance_half_life_s, seed=(paper.seed, index)))
    return tapes


def paper_venue(config: ConfigBundle, tapes: Sequence[MarketTape], *, name: str) -> SimVenue:
    """The simulated venue over ``tapes`` with the fees of the tapes' market and ``executor.paper`` settings."""
    universe = config.strategy.universe
    markets = {universe[tape.symbol].market for tape in tapes if tape.symbol in universe}
    unknown = [tape.symbol for tape in tapes if tape.symbol not in universe]
    if unknown or len(markets) != 1:
        raise ValueError(f"paper venue needs tapes of one market in the universe; unknown {unknown}, "
                         f"markets {sorted(markets)}")
    fees = config.router.sim_venue.fees[markets.pop()]
    paper = config.executor.paper
    sim_config = SimVenueConfig(
        name=name, maker_fee_bps=fees.maker_fee_bps, taker_fee_bps=fees.taker_fee_bps,
        contracts={tape.symbol: universe[tape.symbol] for tape in tapes},
        order_entry_latency_ms=config.router.sim_venue.order_entry_latency_ms,
        cancel_latency_ms=config.router.sim_venue.cancel_latency_ms, latency_jitter_ms=paper.latency_jitter_ms,
        queue_model=_QUEUE_MODELS[paper.queue_model](), no_depth_level_qty_ratio=paper.no_depth_level_qty_ratio,
        max_taker_walk_levels=paper.max_taker_walk_levels, seed=paper.seed, position_mode=config.router.position_mode)
    start_ns = max(tape.start_ns for tape in tapes)
    return SimVenue(list(tapes), sim_config, start_ns=start_ns)


def paper_account(config: ConfigBundle, tapes: Sequence[MarketTape], *, name: str, path: Path) -> PaperAccount:
    """The paper venue of ``paper_venue`` with its account kept at ``path`` across restarts.

    It keeps the orders of the intents in flight at a crash: at most ``reconcile.max_legs_per_intent`` for
    each of ``engine.max_routes_in_flight`` routes.
    """
    ex = config.executor
    return PaperAccount(paper_venue(config, tapes, name=name), path, symbols=[tape.symbol for tape in tapes],
                        keep_orders=ex.reconcile.max_legs_per_intent * ex.engine.max_routes_in_flight)


def live_venue(config: ConfigBundle, environ: Mapping[str, str] = os.environ) -> CcxtVenue:
    """The ccxt venue of ``executor.live``; raises ``KeyError`` naming a missing key variable."""
    from router_tuner.router.venues.ccxt.config import CcxtVenueConfig
    from router_tuner.router.venues.ccxt.venue import CcxtVenue, WallClock

    live = config.executor.live
    venue_config = CcxtVenueConfig(
        exchange_id=live.exchange_id, api_key_env=live.api_key_env, api_secret_env=live.api_secret_env,
        api_base_url=live.api_base_url, request_timeout_ms=live.request_timeout_ms,
        ccxt_rate_limiter=live.ccxt_rate_limiter, rate_limit_max_retries=live.rate_limit_max_retries,
        backoff_initial_ms=live.backoff_initial_ms, backoff_max_ms=live.backoff_max_ms,
        retry_after_max_s=live.retry_after_max_s, top_of_book_source=live.top_of_book_source,
        order_book_depth=live.order_book_depth)
    return CcxtVenue.from_env(venue_config, WallClock(), environ)
