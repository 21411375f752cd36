"""Embedding the router in a strategy process: hand intents in, get each one's RouterEvent or VetoEvent.

Run: ``python -m experiments.examples.embed --out DIR [--intents N] [--routes-in-flight K]``.

A paper engine over the synthetic market of ``executor.json`` (journal, store and paper account in
``DIR``); ``N`` intents alternating BTCUSDT/ETHUSDT are submitted at once with ``asyncio.gather``, and up
to ``K`` of them route at the same time. Prints one line per intent and a summary.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from pathlib import Path

import msgspec

from router_tuner.config.loader import load_config
from router_tuner.config.models import ConfigBundle
from router_tuner.executor.embed import EmbeddedEngine
from router_tuner.router.events import Intent, RouterEvent, VetoEvent


def with_routes_in_flight(config: ConfigBundle, routes: int) -> ConfigBundle:
    engine = msgspec.structs.replace(config.executor.engine, max_routes_in_flight=routes,
                                     max_routes_per_symbol=routes)
    return msgspec.structs.replace(config, executor=msgspec.structs.replace(config.executor, engine=engine))


def intents(count: int) -> list[Intent]:
    now_ns = time.time_ns()
    return [Intent(intent_id=f"embed-{i}", symbol="BTCUSDT" if i % 2 == 0 else "ETHUSDT", side="buy",
                   size_hint_usd=200.0, tier="CORE", strategy="embed-example", reduce_only=False,
                   close_position=False, position_side="LONG", is_stop=False, ts_ns=now_ns) for i in range(count)]


async def submit_all(engine: EmbeddedEngine, batch: list[Intent]) -> list[RouterEvent | VetoEvent]:
    return list(await asyncio.gather(*(engine.submit(intent) for intent in batch)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="directory for journal, store and paper account")
    parser.add_argument("--intents", type=int, default=8)
    parser.add_argument("--routes-in-flight", type=int, default=4)
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    config = with_routes_in_flight(load_config(), args.routes_in_flight)
    with EmbeddedEngine.paper(config, journal_path=args.out / "journal.sqlite",
                              store_path=args.out / "executor.sqlite") as engine:
        outcomes = asyncio.run(submit_all(engine, intents(args.intents)))
    routed = [o for o in outcomes if isinstance(o, RouterEvent)]
    for outcome in outcomes:
        if isinstance(outcome, VetoEvent):
            print(f"{outcome.intent.intent_id}: vetoed {[r.code for r in outcome.reasons]}")
        else:
            print(f"{outcome.intent_id}: routed {outcome.outcome} {outcome.filled_qty} as {outcome.routed_as}")
    print(f"{len(outcomes)} intents: {len(routed)} routed, {len(outcomes) - len(routed)} vetoed")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
