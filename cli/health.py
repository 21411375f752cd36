"""``router-tuner health``: print the latest health snapshot and recent alerts from the executor store.

Reads the store read-only, so it runs while the executor writes. ``--json`` prints the snapshot as JSON
(for scripts); the default is one aligned line per figure, after the snapshot's age (``snapshot_age_s``; a
warning on stderr when it is older than ``--stale-after-s``, or that far ahead of this clock: a stopped executor's
last snapshot is not its current health). Exit 1 when no snapshot was published yet (no
store, or an empty one) or the store is locked, 2 when it is not an executor store or a snapshot in it does
not read (one line, ``cli.main``).
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC, datetime

import msgspec

from router_tuner.cli.main import BadInput, RunFailure, finite_number, path_argument, print_result, reading
from router_tuner.config.encoding import escape_controls
from router_tuner.executor.adaptive.health import render_tuner_health
from router_tuner.executor.records import BookFeedHealth, HealthSnapshot, OrderFeedHealth
from router_tuner.executor.store import DEFAULT_STORE, ExecutorStore
from router_tuner.risk.units import NS_PER_S

MAX_ALERTS_SINCE_S = 10 * 365 * 86_400.0
"""Ten years: an alert older than the store is not worth a larger number."""
DEFAULT_STALE_AFTER_S = 300.0
"""Five times ``executor.json`` ``health.interval_s``'s default 60 s: a running executor publishes at least that
often, so an older latest snapshot means it stopped (or cannot write its store)."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--store", type=path_argument, default=DEFAULT_STORE,
                        help=f"executor store (default {DEFAULT_STORE})")
    parser.add_argument("--alerts-since-s", type=finite_number(0.0, MAX_ALERTS_SINCE_S), default=86_400.0,
                        help=f"show alerts raised this many seconds before the snapshot (0 to {MAX_ALERTS_SINCE_S:g}; "
                             "default 86400, a day)")
    parser.add_argument("--stale-after-s", type=finite_number(0.0, MAX_ALERTS_SINCE_S),
                        default=DEFAULT_STALE_AFTER_S,
                        help="warn (stderr) when the latest snapshot is older than this, or this far ahead of this "
                             f"machine's clock (default {DEFAULT_STALE_AFTER_S:g}; a running executor publishes "
                             "every executor.json health.interval_s)")
    parser.add_argument("--json", action="store_true",
                        help="print the snapshot as JSON (a failure is still one plain line on stderr)")


def render(health: HealthSnapshot) -> str:
    """The snapshot as aligned ``name  value`` lines; symbols, allocator proposals and expectancy below."""
    def fmt(value: object) -> str:
        if value is None:
            return "n/a"
        return f"{value:.6g}" if isinstance(value, float) else str(value)

    lines = [f"{name:<26}{fmt(getattr(health, name))}" for name in health.__struct_fields__
             if name not in ("symbols", "expectancy", "allocations", "allocator_applied", "champion_gates",
                             "order_feed", "book_feed")]
    feed, book = health.order_feed, health.book_feed
    if feed is not None:
        lines.append(_stream_line("order_feed", feed, health.ts_ns,
                                  f"{feed.protocol_violations} reports not believed"))
    if book is not None:
        lines.append(_stream_line("book_feed", book, health.ts_ns, f"{book.streamed_reads} streamed / "
                                  f"{book.rest_reads} REST reads, {book.ignored} touches not used"))
    for row in health.symbols:
        lines.append(f"symbol {row.symbol:<19}policy {row.policy_id} v{row.policy_version} arm {row.arm} "
                     f"quality {row.quality} orders {row.orders} maker {fmt(row.maker_ratio)} "
                     f"fallback {fmt(row.fallback_ratio)} reprice_loop {fmt(row.reprice_loop_ratio)} "
                     f"slippage_bps {fmt(row.slippage_p25_bps)}/{fmt(row.slippage_p50_bps)}/"
                     f"{fmt(row.slippage_p75_bps)} sharpe {fmt(row.sharpe_per_trade)} "
                     f"fee_drag_bps {fmt(row.fee_drag_bps)} regime {fmt(row.slippage_regime)}")
    mode = "applied" if health.allocator_applied else "shadow"
    for a in health.allocations:
        lines.append(f"allocator {a.scope} {a.name:<16}{a.current:.3g} -> {a.proposed:.3g} {a.reason} "
                     f"({a.lots} lots, sharpe {fmt(a.sharpe_per_trade)}, {mode})")
    for gate in health.champion_gates:
        state = "ok" if gate.problem is None else f"NOT ACTED ON: {gate.problem}"
        lines.append(f"champion {gate.symbol:<17}serving v{gate.served_version}, registry champion "
                     f"v{fmt(gate.champion_version)}: {state}")
    for hour in health.expectancy:
        lines.append(f"expectancy hour {hour.hour:02d}         {hour.trades} trades, {hour.expectancy_bps:.3f} bps")
    return "\n".join(escape_controls(line) for line in lines)  # strategy names come from intents, errors from venues


def run(args: argparse.Namespace) -> int:
    if args.store.exists() and not args.store.is_file():
        raise BadInput(f"--store {args.store}: not a file (a directory?); point --store at the executor store")
    if not args.store.is_file():  # like an empty store: the executor has not published anything here yet
        raise RunFailure(f"no executor store at {args.store} yet: run `router-tuner live --store {args.store}` "
                         "first, or point --store at its store")  # one line, as every failure (a path with a newline)
    with reading("executor store", args.store), ExecutorStore(args.store, readonly=True) as store:
        try:
            health = store.latest_health()
            if health is None:
                print(f"router-tuner health: {args.store} has no health snapshot yet", file=sys.stderr)
                return 1
            alerts = list(store.alerts(since_ns=health.ts_ns - int(args.alerts_since_s * NS_PER_S)))
            tuner = store.latest_tuner_health()
        except msgspec.DecodeError as error:  # a row edited by hand, or written by another version
            raise BadInput(f"its latest health snapshot or an alert does not read ({error}): the store is damaged "
                           "or of another router-tuner version; restore it from a copy") from error
    age_s = (time.time_ns() - health.ts_ns) / NS_PER_S
    stale = abs(age_s) > args.stale_after_s
    if stale:
        problem = snapshot_age_problem(args.store, health.ts_ns, age_s, args.stale_after_s)
        print(escape_controls(f"router-tuner health: warning: {problem}; every figure is as of then"), file=sys.stderr)
    if args.json:
        print_result(msgspec.json.encode({"health": health, "tuner": tuner, "alerts": alerts,
                                          "snapshot_age_s": age_s, "stale": stale}).decode())
        return 0
    print_result(f"{'snapshot_age_s':<26}{age_s:.6g} (taken {_utc(health.ts_ns)}{', STALE' if stale else ''})")
    print_result(render(health))
    if tuner is not None:
        print_result(render_tuner_health(tuner))
    for alert in alerts:
        print_result(escape_controls(f"ALERT {alert.code}: {alert.observed:.6g} vs {alert.threshold:.6g} "
                                     f"({alert.detail})"))
    return 0


def snapshot_age_problem(store: object, ts_ns: int, age_s: float, limit_s: float) -> str:
    """What is wrong with a snapshot taken ``age_s`` before now (negative: after). Why: ``health`` printed a
    snapshot of an executor stopped days ago as the current health (its ``nav_age_s`` is the NAV's age at the
    snapshot, not the snapshot's), and one stamped in the future alike, with no word of either."""
    if age_s >= 0:
        return (f"the latest snapshot in {store} was taken {age_s:.6g} s ago ({_utc(ts_ns)}), more than "
                f"--stale-after-s {limit_s:g}: the executor writing it has stopped, or cannot publish")
    return (f"the latest snapshot in {store} is stamped {-age_s:.6g} s ahead of this machine's clock ({_utc(ts_ns)}): "
            "the clocks of this machine and the executor's disagree, or the store was written on another one")


def _utc(ts_ns: int) -> str:
    """``ts_ns`` as an ISO UTC time to the second (a time beyond the calendar's range as the raw number)."""
    try:
        return datetime.fromtimestamp(ts_ns / NS_PER_S, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    except (OverflowError, OSError, ValueError):
        return f"ts_ns {ts_ns}"


def _stream_line(name: str, stream: OrderFeedHealth | BookFeedHealth, ts_ns: int, counters: str) -> str:
    """One health line of a venue stream (the order feed, the streamed touch): mode, for how long, its counters."""
    since_s = max(0, ts_ns - stream.since_ns) / NS_PER_S
    return (f"{name:<26}{stream.mode} for {since_s:.6g} s, {stream.reconnects} reconnects, {counters}"
            + (f", last error: {stream.last_error}" if stream.last_error else ""))
