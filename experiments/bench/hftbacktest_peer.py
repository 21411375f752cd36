"""hftbacktest as a peer: the same post-only-at-touch probe through its queue models and ours, same tapes.

Run: ``.venv/bin/python -m experiments.bench.hftbacktest_peer [--markets usdm_btcusdt,spot_ethusdt]
[--period-s 1.0] [--ttl-s 0.8] [--latency-ms 5] [--tolerance 0.05] [--window-s SECONDS] [--repeats 3]``

Needs hftbacktest 2.4.4 (a peer for comparison, not a runtime dependency), installed without its numpy pin
(it asks numpy<2.3; the project pins 2.4.6, with which it runs): ``pip install --no-deps -r
requirements-peer.txt``.

Every recorded market is loaded by our loader, converted row for row to hftbacktest's event array
(``experiments.peer.events`` documents the mapping) and probed (``experiments.peer.probes``): one lot
posted post-only at the ``bookTicker`` touch every ``--period-s``, cancelled ``--ttl-s`` later, same
order-entry latency in both engines. Each of our queue models runs against its hftbacktest counterpart:

===============================  ==========================================
ours (``router.venues.sim``)      hftbacktest
===============================  ==========================================
``RiskAverseQueue``              ``RiskAdverseQueueModel``
``LogProbQueue``                 ``ProbQueueModel(LogProbQueueFunc)``
``LogProbQueue``                 the same, fed sizes in the tape's units (row ``LogProb@units``)
``PowerProbQueue(2)``            ``ProbQueueModel(PowerProbQueueFunc(2))``
(none)                           ``ProbQueueModel(PowerProbQueueFunc3(3))``
===============================  ==========================================

``log(1 + x)`` is not scale-free: our venue applies it to sizes in the tape's integer units
(``1 / qty_scale``: 343 for 0.343 BTC), hftbacktest to the asset's own unit; the ``LogProb@units`` row gives
hftbacktest our units, so the remaining difference is not that one.

The table gives per market and model the fill rate over the probes sent with its Wilson 95% interval in
each engine, whether the two rates agree within ``--tolerance`` (absolute), the rejects (post-only
crossing at arrival), the median time to fill and the share of probes with the same outcome. Replay speed:
the best of ``--repeats`` runs of the whole probe replay in each engine (each on a fresh venue / backtest,
built outside the timing; hftbacktest's numba compilation is paid once before any timing), as market
events of the probed window per second, and the ratio ours/theirs. The differences are then broken down
from the data: ``experiments.peer.diagnose``.

Exit codes: 0 done; 1 a value, the data or hftbacktest is missing or unusable (one line on stderr); 2 bad
arguments.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

from experiments.bench.sim_replay import with_contract
from experiments.bench.timing import best_of
from experiments.peer import sim_engine
from experiments.peer.probes import FillStats, ProbeOutcome, ProbeSchedule, build_schedule, fill_stats
from router_tuner.router.market.binance import discover, load_binance, resolve_data_dir
from router_tuner.router.market.tape import MarketTape
from router_tuner.router.venues.sim import LogProbQueue, PowerProbQueue, RiskAverseQueue
from router_tuner.router.venues.sim.book import TapeBook
from router_tuner.router.venues.sim.queue import QueueModel

PAIRS: tuple[tuple[str, QueueModel | None, str, bool], ...] = (
    ("RiskAverse", RiskAverseQueue(), "RiskAdverseQueueModel", False),
    ("LogProb", LogProbQueue(), "ProbQueueModel(LogProbQueueFunc)", False),
    ("LogProb@units", LogProbQueue(), "ProbQueueModel(LogProbQueueFunc)", True),
    ("PowerProb(2)", PowerProbQueue(power=2.0), "ProbQueueModel(PowerProbQueueFunc(2))", False),
    ("PowerProb3(3)", None, "ProbQueueModel(PowerProbQueueFunc3(3))", False),
)
"""(row label, our queue model or None where we have no counterpart, hftbacktest's queue model, whether
hftbacktest gets sizes in the tape's integer units as our models do instead of the asset's own unit)"""


@dataclass(frozen=True, slots=True)
class Row:
    """One market and model: both engines' statistics, outcomes and best replay times."""

    market: str
    label: str
    theirs_model: str
    tape_units: bool
    schedule: ProbeSchedule
    theirs: FillStats
    theirs_out: ProbeOutcome
    theirs_s: float
    ours: FillStats | None
    ours_out: ProbeOutcome | None
    ours_s: float | None


def window_events(tape: MarketTape, schedule: ProbeSchedule) -> int:
    """Market events (quotes + trades + depth rows) from the first probe to the last probe's cancel."""
    t0, t1 = int(schedule.submit_ns[0]), int(schedule.submit_ns[-1]) + schedule.ttl_ns + 2 * schedule.latency_ns
    return sum(int(((ts >= t0) & (ts <= t1)).sum()) for ts in (tape.quote_ts_ns, tape.trade_ts_ns, tape.depth_ts_ns))


def probe_market(market: str, tape: MarketTape, args: argparse.Namespace) -> list[Row]:
    """Every model pair on one tape; each engine's replay timed as the best of ``args.repeats``."""
    from experiments.peer.events import tape_events
    from experiments.peer.hbt_engine import build_backtest, run_hbt

    schedule = build_schedule(tape, args.period_s, args.ttl_s, args.latency_ms, args.window_s)
    events = tape_events(tape)
    book = TapeBook(tape)
    base = with_contract(tape)
    rows = []
    for label, ours_model, theirs_model, tape_units in PAIRS:
        theirs_s, theirs_out = best_of(
            args.repeats, lambda backtest: run_hbt(backtest, tape, schedule),
            setup=lambda m=theirs_model, u=tape_units: build_backtest(tape, events, m, schedule.latency_ns, u))
        ours_s = ours_out = None
        if ours_model is not None:
            config = sim_engine.probe_config(base, ours_model, schedule.latency_ns)
            ours_s, ours_out = best_of(args.repeats, lambda c=config: sim_engine.run_sim(book, c, schedule))
        rows.append(Row(market=market, label=label, theirs_model=theirs_model, tape_units=tape_units,
                        schedule=schedule, theirs=fill_stats(schedule, theirs_out), theirs_out=theirs_out,
                        theirs_s=theirs_s,
                        ours=fill_stats(schedule, ours_out) if ours_out is not None else None, ours_out=ours_out,
                        ours_s=ours_s))
    return rows


def _rate(s: FillStats | None) -> str:
    return "-" if s is None else f"{s.rate:.3f} [{s.low:.3f}, {s.high:.3f}]"


def _ms(s: FillStats | None) -> str:
    return "-" if s is None or s.median_fill_ms is None else f"{s.median_fill_ms:.0f}"


def print_table(rows: list[Row], tolerance: float, events: dict[str, int]) -> None:
    head = (f"{'market':<15} {'model':<13} {'probes':>6}  {'ours fill rate [95% CI]':<24} "
            f"{'hftbacktest [95% CI]':<24} {'diff':>6} {'agree':>5}  {'rejects o/h':>11}  "
            f"{'ttf ms o/h':>10}  {'same':>5}  {'speed o/h':>9}")
    print(head)
    print("-" * len(head))
    for r in rows:
        same = agree = diff = speed = "-"
        rejects = f"-/{r.theirs.rejected}"
        if r.ours is not None and r.ours_out is not None and r.ours_s is not None:
            delta = r.ours.rate - r.theirs.rate
            diff, agree = f"{delta:+.3f}", ("yes" if abs(delta) <= tolerance else "NO")
            same = f"{(r.ours_out.status == r.theirs_out.status).mean():.3f}"
            rejects = f"{r.ours.rejected}/{r.theirs.rejected}"
            speed = f"{r.theirs_s / r.ours_s:.2f}x"
        print(f"{r.market:<15} {r.label:<13} {r.theirs.probes:>6}  {_rate(r.ours):<24} {_rate(r.theirs):<24} "
              f"{diff:>6} {agree:>5}  {rejects:>11}  {_ms(r.ours) + '/' + _ms(r.theirs):>10}  {same:>5}  {speed:>9}")
    paired = [r for r in rows if r.ours_s is not None]
    print()
    for r in paired:
        held = r.ours_out.sent if r.ours_out else 0
        print(f"probes {r.market} {r.label}: scheduled {len(r.schedule)}, our venue holds {held} "
              f"orders, hftbacktest {r.theirs_out.sent}; replay of {events[r.market]:,} events: ours "
              f"{(r.ours_s or 0.0) * 1e3:.0f} ms, hftbacktest {r.theirs_s * 1e3:.0f} ms")
    ours_s = sum(r.ours_s for r in paired if r.ours_s is not None)
    theirs_s = sum(r.theirs_s for r in paired)
    n_events = sum(events[r.market] for r in paired)
    print(f"replay speed over {len(paired)} paired runs: ours {n_events / ours_s / 1e6:.2f} M events/s, hftbacktest "
          f"{n_events / theirs_s / 1e6:.2f} M events/s, ratio ours/theirs {theirs_s / ours_s:.2f}x")
    agreeing = sum(1 for r in paired if r.ours is not None and abs(r.ours.rate - r.theirs.rate) <= tolerance)
    print(f"fill rates within {tolerance:.3f}: {agreeing} of {len(paired)} market x model pairs")


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--markets", default=None, help="comma-separated <market>_<symbol> (default: every recording)")
    parser.add_argument("--data-dir", default=None, help="recorded data folder (default: see the binance loader)")
    parser.add_argument("--period-s", type=float, default=1.0, help="seconds between probes")
    parser.add_argument("--ttl-s", type=float, default=0.8, help="seconds from sending a probe to cancelling it")
    parser.add_argument("--latency-ms", type=float, default=5.0, help="order entry (and cancel) latency")
    parser.add_argument("--tolerance", type=float, default=0.05, help="absolute fill-rate difference that agrees")
    parser.add_argument("--window-s", type=float, default=None, help="probe only the first seconds of each tape")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per engine and model (best is kept)")
    return parser.parse_args(argv)


def _load_markets(args: argparse.Namespace) -> dict[str, MarketTape]:
    data_dir = resolve_data_dir(args.data_dir)
    if data_dir is None:
        raise SystemExit("hftbacktest_peer: no recorded data folder found; pass --data-dir")
    found = discover(data_dir)
    wanted = list(found) if args.markets is None else [m.strip() for m in args.markets.split(",") if m.strip()]
    unknown = sorted(set(wanted) - set(found))
    if unknown or not wanted:
        raise SystemExit(f"hftbacktest_peer: --markets {unknown or args.markets!r} not in {data_dir} "
                         f"(recorded: {', '.join(found)})")
    return {market: load_binance(found[market]) for market in wanted}


def _warm_up(tapes: dict[str, MarketTape], args: argparse.Namespace) -> float:
    """Compile hftbacktest's numba probe loop on a short slice; seconds it took (kept out of every timing)."""
    import time

    from experiments.peer.events import tape_events
    from experiments.peer.hbt_engine import build_backtest, run_hbt

    tape = next(iter(tapes.values()))
    schedule = build_schedule(tape, args.period_s, args.ttl_s, args.latency_ms, window_s=2 * args.period_s)
    start = time.perf_counter()
    run_hbt(build_backtest(tape, tape_events(tape), PAIRS[0][2], schedule.latency_ns), tape, schedule)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> None:
    args = _parse_args(argv)
    if args.repeats < 1 or not 0 <= args.tolerance <= 1:
        raise SystemExit(f"hftbacktest_peer: --repeats must be >= 1 and --tolerance in [0, 1], got {args.repeats} "
                         f"and {args.tolerance}")
    try:
        import hftbacktest  # noqa: F401
    except ImportError:
        raise SystemExit("hftbacktest_peer: hftbacktest is not installed; run "
                         "`.venv/bin/pip install --no-deps -r requirements-peer.txt`") from None
    tapes = _load_markets(args)
    try:
        for tape in tapes.values():
            build_schedule(tape, args.period_s, args.ttl_s, args.latency_ms, args.window_s)
    except ValueError as error:
        raise SystemExit(f"hftbacktest_peer: {error}") from None
    print(f"probe: 1 lot post-only at the bookTicker touch every {args.period_s:g} s, sides alternating, cancelled "
          f"after {args.ttl_s:g} s; order entry = cancel latency {args.latency_ms:g} ms in both engines")
    print(f"hftbacktest numba compilation (once, not timed below): {_warm_up(tapes, args):.1f} s")
    rows: list[Row] = []
    events: dict[str, int] = {}
    for market, tape in tapes.items():
        market_rows = probe_market(market, tape, args)
        events[market] = window_events(tape, market_rows[0].schedule)
        rows += market_rows
    print_table(rows, args.tolerance, events)
    from experiments.peer.diagnose import print_diagnosis

    print_diagnosis(rows, tapes)


if __name__ == "__main__":
    main()
