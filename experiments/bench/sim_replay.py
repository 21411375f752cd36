"""Replay throughput of the simulated venue (market events per second) against a plain numpy pass.

Run: ``.venv/bin/python -m experiments.bench.sim_replay [--tape usdm_btcusdt] [--step-ms 100]
[--resting 4] [--repeats 3]``

The venue advances through the whole recorded tape in steps of ``--step-ms`` of market time (a router
polling the book), reading the touch at each step, first with no order resting and then keeping
``--resting`` post-only orders resting near the touch (re-placed when one completes). The baseline, in
the same run, is one plain numpy pass over the same arrays: ``np.searchsorted`` of the step grid on
every stream's times plus a sum of every size column. Both rates count the tape's market events
(quotes + trades + depth rows) in the replayed window; the printed ratio is venue / baseline.
"""

from __future__ import annotations

import argparse
import dataclasses

import numpy as np

from experiments.bench.timing import best_of
from router_tuner.config import load_config
from router_tuner.router.market.binance import discover, load_binance, resolve_data_dir
from router_tuner.router.market.tape import MarketTape
from router_tuner.router.venue import OrderRequest, PostOnlyRejected
from router_tuner.router.venues.sim import PowerProbQueue, SimVenue, SimVenueConfig

CONFIG = SimVenueConfig(name="bench", maker_fee_bps=-0.5, taker_fee_bps=4.5, contracts={},
                        order_entry_latency_ms=5.0, cancel_latency_ms=5.0, latency_jitter_ms=1.0,
                        queue_model=PowerProbQueue(power=2.0), no_depth_level_qty_ratio=1.0,
                        max_taker_walk_levels=200, seed=11, position_mode="one_way")


def with_contract(tape: MarketTape) -> SimVenueConfig:
    """``CONFIG`` with the contract spec of the recorded tape's universe entry (its venue symbol and market)."""
    [entry] = [e for e in load_config().strategy.universe.values()
               if e.venue_symbol == tape.symbol and e.market == tape.market]
    return dataclasses.replace(CONFIG, contracts={tape.symbol: entry})


def step_grid(tape: MarketTape, start_ns: int, end_ns: int, step_ms: float) -> np.ndarray:
    return np.arange(start_ns, end_ns, round(step_ms * 1e6), dtype=np.int64)[1:]


def baseline_pass(tape: MarketTape, grid: np.ndarray) -> int:
    """Plain numpy over the same arrays: where each step falls in each stream, and a sum of the sizes."""
    total = 0
    for ts in (tape.quote_ts_ns, tape.trade_ts_ns, tape.depth_ts_ns):
        total += int(np.searchsorted(ts, grid, side="right").sum())
    for qty in (tape.bid_qty, tape.ask_qty, tape.trade_qty, tape.depth_qty):
        total += int(qty.sum())
    return total


def venue_pass(venue: SimVenue, tape: MarketTape, grid: np.ndarray, resting: int) -> tuple[int, int, int]:
    """Step a fresh venue through ``grid`` keeping ``resting`` orders working; (sent, rejected, fills)."""
    tick = tape.tick_size
    working: dict[int, str] = {}
    sent = rejected = 0
    for t in grid.tolist():
        if t <= venue.clock.now_ns():
            continue
        venue.clock.sleep_until(t)
        tob = venue.top_of_book(tape.symbol)
        for slot in range(resting):
            coid = working.get(slot)
            if coid is not None and not venue.fetch_order(tape.symbol, coid).is_terminal:
                continue
            if venue.clock.now_ns() + 2 * round(CONFIG.order_entry_latency_ms * 1e6) > grid[-1]:
                continue
            side = "buy" if slot % 2 == 0 else "sell"
            offset = (slot // 2) * tick
            price = round((tob.bid - offset) if side == "buy" else (tob.ask + offset), 8)
            sent += 1
            working[slot] = coid = f"o{sent}"
            try:
                venue.place_order(OrderRequest(client_order_id=coid, symbol=tape.symbol, side=side, qty=0.001,
                                               order_type="limit", price=price, time_in_force="GTC",
                                               post_only=True, reduce_only=False,
                                               close_position=False, position_side="BOTH"))
            except PostOnlyRejected:
                rejected += 1
    fills = sum(len(venue.fetch_order(tape.symbol, f"o{n}").fills) for n in range(1, sent + 1))
    return sent, rejected, fills


def tape_parser(description: str) -> argparse.ArgumentParser:
    """The arguments every replay benchmark takes: which recording, where, the step and the repeats."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--tape", default="usdm_btcusdt", help="<market>_<symbol> of a recorded file set")
    parser.add_argument("--data-dir", default=None, help="recorded data folder (default: see binance loader)")
    parser.add_argument("--step-ms", type=float, default=100.0)
    parser.add_argument("--repeats", type=int, default=3)
    return parser


def load_tape(args: argparse.Namespace) -> tuple[MarketTape, SimVenueConfig]:
    """The recording ``--tape`` names and a venue config with its contract; exits with one line when absent."""
    data_dir = resolve_data_dir(args.data_dir)
    if data_dir is None:
        raise SystemExit("no recorded data folder found; pass --data-dir")
    tape = load_binance(discover(data_dir)[args.tape])
    return tape, with_contract(tape)


def main() -> None:
    parser = tape_parser(__doc__.splitlines()[0])
    parser.add_argument("--resting", type=int, default=4)
    args = parser.parse_args()
    tape, config = load_tape(args)
    start_ns, end_ns = int(tape.quote_ts_ns[0]), tape.end_ns
    grid = step_grid(tape, start_ns, end_ns, args.step_ms)
    n_events = sum(int(((ts > start_ns) & (ts <= int(grid[-1]))).sum())
                   for ts in (tape.quote_ts_ns, tape.trade_ts_ns, tape.depth_ts_ns))
    print(f"tape {tape.symbol} ({tape.market}): {n_events:,} market events over "
          f"{(int(grid[-1]) - start_ns) / 1e9:.0f} s, {len(grid):,} steps of {args.step_ms:g} ms")
    base_s, _ = best_of(args.repeats, lambda: baseline_pass(tape, grid))
    base_rate = n_events / base_s
    print(f"baseline numpy pass            {base_rate / 1e6:10.1f} M events/s")
    build_s, _ = best_of(args.repeats, lambda: SimVenue([tape], config, start_ns=start_ns))
    print(f"venue precompute (per tape)    {build_s * 1e3:10.1f} ms (not in the rates below)")
    for resting in (0, args.resting):
        secs, (sent, rejected, fills) = best_of(args.repeats, lambda v, r=resting: venue_pass(v, tape, grid, r),
                                                setup=lambda: SimVenue([tape], config, start_ns=start_ns))
        rate = n_events / secs
        print(f"venue, {resting} resting orders      {rate / 1e6:10.2f} M events/s  ratio to baseline "
              f"{rate / base_rate:.4f}  ({secs * 1e3:.0f} ms; {sent} orders sent, {rejected} post-only "
              f"rejects, {fills} fills)")


if __name__ == "__main__":
    main()
