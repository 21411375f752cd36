"""Does the default learner hold up on a coarse-tick market? The recordings re-quoted on a tick of several bps.

Run: ``.venv/bin/python -m experiments.bench.learner_ticks [--tick-bps 2,5] [--fees usdm|rebate|zero]
[--part holdout] [--seeds 3,4,5] [--orders 800] [--learners structured] [--symbols BTCUSDT,ETHUSDT]
[--set tuner.KEY=VALUE ...]``.

The bundled recordings are BTC and ETH, whose tick is a hundredth of a bp or less; many markets (a coin at 0.05 USDT
with a tick of 0.00001) quote on a tick of 1-10 bps, where the grid's sub-tick offsets post at one price, the spread
is one tick most of the time and the queue at the touch is long. :func:`coarsen_tick` derives such a market from a
recording without inventing events: prices are divided by a power of ten (the coin's price level; quantities
multiplied by it, so every trade's notional is kept; COIN-M tapes, whose sizes are USD contracts, keep their
prices) and re-quoted on a tick of ``tick_bps`` of the recording's median mid: a bid (and a depth level on the bid
side, and a trade a sell hit) falls to the coarse tick at or below it, an ask to the one at or above it. A coarse
level's size is the sum of the recorded levels it gathers, so the queue at the touch is what the recording held
within a tick of it. Every policy then routes the same intents, as ``learner_eval`` does, optionally under another
fee schedule (``--fees rebate``: a maker rebate of 1 bp against a 4 bps taker fee; ``zero``: no fees at all).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys

import msgspec
import numpy as np

from experiments.bench.learner_eval import (
    add_run_arguments,
    configured,
    part_intents,
    print_scores,
    run_arguments,
    score,
)
from router_tuner.config.models import ConfigBundle, FeeSchedule
from router_tuner.router.market.binance import MarketDataError, resolve_data_dir
from router_tuner.router.market.tape import MarketTape
from router_tuner.router.routing.order import check_tick_bps
from router_tuner.simulation.intents import TapeTooShort
from router_tuner.simulation.markets import SimMarket, recorded_markets, synthetic_market_from_tape

FEES: dict[str, FeeSchedule | None] = {
    "venue": None,
    "rebate": FeeSchedule(maker_fee_bps=-1.0, taker_fee_bps=4.0),
    "zero": FeeSchedule(maker_fee_bps=0.0, taker_fee_bps=0.0),
}
"""Fee schedules the derived markets may trade under (``venue``: the configured one of each market)."""
PRICE_DIVISOR = 1_000_000
"""Prices of linear and spot tapes are divided by this (BTC at 0.06, ETH at 0.003: an altcoin's price level)."""


def coarsen_tick(tape: MarketTape, tick_bps: float, price_divisor: int = 1) -> MarketTape:
    """``tape`` re-quoted on a tick of ``tick_bps`` of its median mid, its prices divided by ``price_divisor`` (a
    positive integer; quantities are multiplied by it so notionals are kept; a COIN-M tape keeps its prices).
    Raises ``ValueError`` on a tick that is not positive and finite or not coarser than the recording's own."""
    check_tick_bps(tick_bps)
    if price_divisor < 1:
        raise ValueError(f"price_divisor must be a positive integer, got {price_divisor!r}")
    tick = round(tick_bps * 1e-4 * tape.median_mid())
    fine_tick = round(tape.tick_size * tape.price_scale)
    if tick <= fine_tick:
        raise ValueError(f"{tape.symbol}: a tick of {tick_bps} bps is {tick} price units, not coarser than the "
                         f"recording's {fine_tick}")
    bid_px, ask_px = tape.bid_px // tick * tick, -(-tape.ask_px // tick) * tick
    bid_qty, ask_qty, depth_px, depth_qty = _coarse_levels(tape, tick)
    trade_px = np.where(tape.trade_buyer_maker, tape.trade_px // tick * tick, -(-tape.trade_px // tick) * tick)
    div = 1 if tape.market == "cm" else price_divisor  # a COIN-M size is USD contracts: its price level is kept
    return dataclasses.replace(
        tape, price_scale=tape.price_scale * div, tick_size=tick / (tape.price_scale * div),
        bid_px=bid_px, ask_px=ask_px, bid_qty=bid_qty * div, ask_qty=ask_qty * div, trade_px=trade_px,
        trade_qty=tape.trade_qty * div, depth_px=depth_px, depth_qty=depth_qty * div,
        mark_px=tape.mark_px / div).validate()


def _coarse_levels(tape: MarketTape, tick: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The touch sizes and depth rows on the coarse tick: one depth row per recorded row, carrying the coarse
    level's new total (the recorded levels it gathers); a touch's size is its coarse level's total, the recorded
    touch's own size standing in for that level's depth."""
    fine: tuple[dict[int, int], dict[int, int]] = ({}, {})  # per side (0: asks, 1: bids), recorded level -> size
    coarse: tuple[dict[int, int], dict[int, int]] = ({}, {})
    depth_px, depth_qty = np.empty_like(tape.depth_px), np.empty_like(tape.depth_qty)
    bid_qty, ask_qty = np.empty_like(tape.bid_qty), np.empty_like(tape.ask_qty)
    snapshots = set(tape.depth_snapshot_idx.tolist())
    d_ts, d_side, d_px, d_qty = (a.tolist() for a in (tape.depth_ts_ns, tape.depth_side, tape.depth_px,
                                                        tape.depth_qty))

    def level_of(side: int, px: int) -> int:
        return px // tick * tick if side else -(-px // tick) * tick

    def fold(r: int) -> None:
        if r in snapshots:
            for book in (*fine, *coarse):
                book.clear()
        side, px = int(d_side[r] > 0), d_px[r]
        level = level_of(side, px)
        coarse[side][level] = coarse[side].get(level, 0) + d_qty[r] - fine[side].get(px, 0)
        fine[side][px] = d_qty[r]
        depth_px[r], depth_qty[r] = level, coarse[side][level]

    row = 0
    for q, ts in enumerate(tape.quote_ts_ns.tolist()):
        while row < len(d_ts) and d_ts[row] <= ts:
            fold(row)
            row += 1
        for side, px, size, out in ((1, int(tape.bid_px[q]), int(tape.bid_qty[q]), bid_qty),
                                    (0, int(tape.ask_px[q]), int(tape.ask_qty[q]), ask_qty)):
            level = level_of(side, px)
            out[q] = coarse[side].get(level, 0) - fine[side].get(px, 0) + size
    for r in range(row, len(d_ts)):  # depth after the last quote: no touch left to size
        fold(r)
    return bid_qty, ask_qty, depth_px, depth_qty


def with_fee_schedule(config: ConfigBundle, fees: FeeSchedule | None) -> ConfigBundle:
    """``config`` with every market of ``router.json`` ``sim_venue.fees`` on ``fees`` (``None``: unchanged)."""
    if fees is None:
        return config
    venue = config.router.sim_venue
    venue = msgspec.structs.replace(venue, fees={market: fees for market in venue.fees})
    return msgspec.structs.replace(config, router=msgspec.structs.replace(config.router, sim_venue=venue))


def coarse_markets(config: ConfigBundle, markets: list[SimMarket], tick_bps: float) -> list[SimMarket]:
    """Each of ``markets`` on a tick of ``tick_bps`` (linear and spot prices divided by ``PRICE_DIVISOR``)."""
    return [synthetic_market_from_tape(config, m.symbol, coarsen_tick(m.tape, tick_bps, PRICE_DIVISOR),
                                       source=f"{m.source} on a {tick_bps:g} bps tick") for m in markets]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tick-bps", default="2,5", help="coarse ticks to derive, bps of the median mid")
    parser.add_argument("--fees", choices=list(FEES), default="venue")
    parser.add_argument("--part", choices=("tune", "holdout", "all"), default="holdout")
    add_run_arguments(parser, learners="structured", seeds="3,4,5")
    parser.add_argument("--symbols", default=None, help="recorded symbols (our names; default: all six)")
    parser.add_argument("--data", default=None, help="recorded data directory (default: the bundled one)")
    args = parser.parse_args(argv)
    learners, seeds = run_arguments(parser, args)
    try:
        ticks = [float(t) for t in args.tick_bps.split(",")]
    except ValueError as error:
        parser.error(f"--tick-bps {args.tick_bps}: {error}")
    config = with_fee_schedule(configured(args.set), FEES[args.fees])
    try:
        data_dir = resolve_data_dir(args.data)
        if data_dir is None:
            raise FileNotFoundError("no recorded data found (../shared/data/binance); --data DIR names a folder")
        recorded = recorded_markets(config, data_dir, None if args.symbols is None else args.symbols.split(","))
        named = [(m, tick) for tick in ticks for m in coarse_markets(config, recorded, tick)]
    except (MarketDataError, FileNotFoundError, ValueError) as error:
        print(f"learner_ticks: {error}", file=sys.stderr)
        return 2
    scores = []
    for seed in seeds:
        for market, tick in named:
            try:
                intents = part_intents(market, args.orders, config, seed, args.part)
            except TapeTooShort as error:  # a recording too short to hold the intents: bad input, as in learner_eval
                print(f"learner_ticks: {error}", file=sys.stderr)
                return 2
            scores.append(score(market, intents, config, learners, seed, f"{market.symbol}@{tick:g}/s{seed}"))
            print(f"  done {scores[-1].label}", file=sys.stderr, flush=True)
    print_scores(scores, learners)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
