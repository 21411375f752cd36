"""Encoding one RouterEvent for the journal: the guarded ``to_json`` against the field-by-field check and a bare
msgspec encode, in one run.

Run: ``python -m experiments.bench.journal_encode [--events N] [--repeats R]``

The events are real: routes of the scripted venue (maker fills, re-prices, taker fallbacks), so they carry
fills like the main job's. Per event, the sum over chunks of 50 events of each chunk's best of ``--repeats``:

- ``to_json``: what the journal runs on every append (one encode, a round-trip guard in msgspec);
- ``check_exact``: the field-by-field Python check ``to_json`` falls back to when its guard trips (what every
  append used to pay);
- baseline: ``msgspec.json.encode`` alone, the least an append can do.
"""

from __future__ import annotations

import argparse

import msgspec
import numpy as np

from experiments.bench.route import MS, _order, _venue
from experiments.bench.timing import best_of
from router_tuner.config.loader import load_config
from router_tuner.router.codec import check_exact, to_json
from router_tuner.router.events import RouterEvent
from router_tuner.router.policy import RouterPolicy
from router_tuner.router.routing.machine import route
from router_tuner.router.routing.order import RouteSettings
from router_tuner.router.routing.scripted import ScriptedFill

_CHUNK = 50
"""Events timed together; each chunk's best of the repeats is kept, so a preempted repeat costs one chunk only."""


def routed_events(n: int, seed: int) -> list[RouterEvent]:
    """``n`` events of the static policy on the scripted venue, fills at random times (some after the TTL)."""
    config = load_config().router
    settings = RouteSettings.from_config(config, poll_interval_ms=100.0, max_venue_retries=2,
                                         rate_limit_backoff_ms=50.0, max_retry_after_ms=5000.0)
    policy = RouterPolicy.from_static("BTCUSDT", config)
    rng = np.random.default_rng(seed)
    events = []
    for i in range(n):
        fills = [ScriptedFill(int(rng.integers(10, 6000)) * MS, float(rng.choice([0.5, 1.0])))]
        events.append(route(_order(i), policy, _venue(fills), rng=rng, settings=settings))
    return events


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=5, help="runs per figure, best kept")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    if args.events < 1 or args.repeats < 1:
        parser.error("--events and --repeats must be >= 1")
    events = routed_events(args.events, args.seed)
    encoder = msgspec.json.Encoder()
    figures = {}
    chunks = [events[i:i + _CHUNK] for i in range(0, len(events), _CHUNK)]
    for name, encode in (("to_json (guarded)", to_json), ("check_exact (field by field)", check_exact),
                         ("baseline: msgspec encode", encoder.encode)):
        seconds = sum(best_of(args.repeats, lambda encode=encode, chunk=chunk: [encode(e) for e in chunk])[0]
                      for chunk in chunks)
        figures[name] = seconds / len(events) * 1e6
    fills = sum(len(e.fills) for e in events) / len(events)
    print(f"journal encode of one RouterEvent, {len(events)} routed events ({fills:.2f} fills each), "
          f"best of {args.repeats}")
    for name, us in figures.items():
        print(f"  {name:30s} {us:8.2f} us per event")
    base = figures["baseline: msgspec encode"]
    print(f"  ratio to_json / encode: {figures['to_json (guarded)'] / base:6.2f}x   "
          f"check_exact / encode: {figures['check_exact (field by field)'] / base:6.2f}x")


if __name__ == "__main__":
    main()
