"""What working protective stops cost the simulated venue's replay: steps per second with K stops working
against the same replay with none (the baseline, measured in the same run).

Run: ``.venv/bin/python -m experiments.bench.sim_stops [--tape usdm_btcusdt] [--step-ms 100] [--stops 4]
[--repeats 3]``

A fresh venue opens one long at market, then (for the measured case) places ``--stops`` closePosition stops
far from the price (half and twice the entry, on CONTRACT_PRICE and MARK_PRICE alternately), which never
trigger, and steps through the whole recorded tape reading the touch at each step, as a router polling the
book does. Every step scans each stop's window of trades or quotes for its trigger; the printed ratio is
(steps/s with stops) / (steps/s without).
"""

from __future__ import annotations

from experiments.bench.sim_replay import load_tape, step_grid, tape_parser
from experiments.bench.timing import best_of
from router_tuner.router.market.tape import MarketTape
from router_tuner.router.venue import OrderRequest, StopRequest
from router_tuner.router.venues.sim import SimVenue, SimVenueConfig


def opened_venue(tape: MarketTape, config: SimVenueConfig, start_ns: int, stops: int) -> SimVenue:
    """A venue holding one long of 0.01 with ``stops`` far stops on it (not timed)."""
    venue = SimVenue([tape], config, start_ns=start_ns)
    venue.place_order(OrderRequest(client_order_id="open", symbol=tape.symbol, side="buy", qty=0.01,
                                   order_type="market", price=None, time_in_force="IOC", post_only=False,
                                   reduce_only=False, close_position=False,
                                   position_side="BOTH"))
    mid = venue.top_of_book(tape.symbol).mid
    tick = tape.tick_size
    for k in range(stops):
        kind = "stop_market" if k % 2 == 0 else "take_profit_market"
        trigger = round(round((mid * 0.5 if kind == "stop_market" else mid * 2.0) / tick) * tick, 8)
        venue.place_stop(StopRequest(client_order_id=f"s{k}", symbol=tape.symbol, kind=kind, side="sell",
                                     position_side="BOTH", trigger_price=trigger,
                                     working_type="CONTRACT_PRICE" if k % 4 < 2 else "MARK_PRICE"))
    return venue


def step_through(venue: SimVenue, symbol: str, grid: list[int]) -> int:
    """Advance through ``grid`` reading the touch at each step; returns the steps taken."""
    steps = 0
    for t in grid:
        if t <= venue.clock.now_ns():
            continue
        venue.clock.sleep_until(t)
        venue.top_of_book(symbol)
        steps += 1
    return steps


def main() -> None:
    parser = tape_parser(__doc__.splitlines()[0])
    parser.add_argument("--stops", type=int, default=4)
    args = parser.parse_args()
    tape, config = load_tape(args)
    start_ns = int(tape.quote_ts_ns[0])
    grid = step_grid(tape, start_ns, tape.end_ns, args.step_ms).tolist()
    print(f"tape {tape.symbol} ({tape.market}): {len(grid):,} steps of {args.step_ms:g} ms")
    rates = {}
    for stops in (0, args.stops):
        secs, steps = best_of(args.repeats, lambda v: step_through(v, tape.symbol, grid),
                              setup=lambda n=stops: opened_venue(tape, config, start_ns, n))
        rates[stops] = steps / secs
        print(f"venue, {stops} working stops   {rates[stops] / 1e3:10.1f} k steps/s  ({secs * 1e3:.0f} ms)")
    print(f"ratio {args.stops} stops / none: {rates[args.stops] / rates[0]:.3f}")


if __name__ == "__main__":
    main()
