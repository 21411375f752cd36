"""Building the executor's paper venue: the simulated venue over recorded tapes or the synthetic market (the
live venue is ``executor.engine.live``). Only this module knows how config becomes a paper venue."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from router_tuner.config.models import ConfigBundle
from router_tuner.executor.paper_account import PaperAccount
from router_tuner.router.market.synthetic import SyntheticMarketSpec, generate
from router_tuner.router.market.tape import MarketTape
from router_tuner.router.market.touch_imbalance import with_touch_imbalance
from router_tuner.router.venues.sim.config import SimVenueConfig
from router_tuner.router.venues.sim.queue import LogProbQueue, QueueModel, RiskAverseQueue
from router_tuner.router.venues.sim.venue import SimVenue

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
