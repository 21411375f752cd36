"""How soon a followed intents file's new line is read (``live --follow``), and what the waiting costs.

Run: ``python -m experiments.bench.intent_wake [--intents N] [--gap-ms G] [--baseline-poll-ms B]``.

A writer thread appends one intent line at a time to a file, a random 0.5-1.5 x ``--gap-ms`` apart, noting the
wall time after each flush; the reader (``JsonlIntentSource(follow=True)``) waits for each with
``next_intent(1.0)``, as the executor does with no route working, and notes when it gets it. Latency is the
difference. The reader's CPU time (``time.thread_time``) over the wall time is what polling costs a core. The
baseline, measured in the same run, is the same source polling every ``--baseline-poll-ms`` (50 ms: the interval
before ``FOLLOW_POLL_S``); the ratio shows what the default interval buys and costs.
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import msgspec
import numpy as np

from router_tuner.cli.main import finite_number, whole_number
from router_tuner.executor.intents import FOLLOW_POLL_S, JsonlIntentSource
from router_tuner.router.events import Intent


@dataclass(frozen=True, slots=True)
class Result:
    poll_ms: float
    p50_ms: float
    p99_ms: float
    cpu_share: float
    """Reader thread CPU seconds per wall second while waiting."""


def _line(index: int) -> bytes:
    intent = Intent(intent_id=f"wake{index}", symbol="BTCUSDT", side="buy", size_hint_usd=100.0, tier="CORE",
                    strategy="bench", reduce_only=False, close_position=False, position_side="LONG", is_stop=False,
                    ts_ns=1_700_000_000_000_000_000 + index)
    return msgspec.json.encode(intent) + b"\n"


def measure(poll_s: float, n: int, gap_s: float, seed: int) -> Result:
    """``n`` lines written ``gap_s`` apart on average, read by a source polling every ``poll_s``."""
    gaps = np.random.default_rng(seed).uniform(0.5 * gap_s, 1.5 * gap_s, n).tolist()
    lines = [_line(i) for i in range(n)]
    written = [0.0] * n
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "intents.jsonl"
        path.touch()
        source = JsonlIntentSource(path, follow=True, poll_s=poll_s)

        def write() -> None:
            with path.open("ab") as handle:
                for i, (gap, line) in enumerate(zip(gaps, lines, strict=True)):
                    time.sleep(gap)
                    handle.write(line)
                    handle.flush()
                    written[i] = time.perf_counter()

        writer = threading.Thread(target=write, daemon=True)
        latencies = []
        wall, cpu = time.perf_counter(), time.thread_time()
        writer.start()
        for i in range(n):
            intent = source.next_intent(1.0)
            while intent is None:
                intent = source.next_intent(1.0)
            got = time.perf_counter()
            if intent.intent_id != f"wake{i}":
                raise RuntimeError(f"read {intent.intent_id}, expected wake{i}")
            latencies.append(got - written[i])
        cpu, wall = time.thread_time() - cpu, time.perf_counter() - wall
        writer.join()
        source.close()
    ms = np.array(latencies) * 1e3
    return Result(poll_s * 1e3, float(np.percentile(ms, 50)), float(np.percentile(ms, 99)), cpu / wall)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--intents", type=whole_number(1, 1_000_000), default=200, help="lines written per measurement")
    parser.add_argument("--gap-ms", type=finite_number(0.0, 60_000.0, above_low=True), default=40.0,
                        help="mean time between two lines")
    parser.add_argument("--baseline-poll-ms", type=finite_number(0.0, 60_000.0, above_low=True), default=50.0)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    baseline = measure(args.baseline_poll_ms / 1e3, args.intents, args.gap_ms / 1e3, args.seed)
    default = measure(FOLLOW_POLL_S, args.intents, args.gap_ms / 1e3, args.seed)
    print(f"followed intents file, {args.intents} lines {args.gap_ms:g} ms apart on average; latency = read - written")
    for name, r in (("baseline", baseline), ("FOLLOW_POLL_S", default)):
        print(f"  {name:14s} poll {r.poll_ms:5.1f} ms: p50 {r.p50_ms:6.2f} ms  p99 {r.p99_ms:6.2f} ms  "
              f"reader CPU {100 * r.cpu_share:5.2f}% of a core")
    print(f"  ratio default / baseline: p50 {default.p50_ms / baseline.p50_ms:5.3f}x  "
          f"p99 {default.p99_ms / baseline.p99_ms:5.3f}x  CPU {default.cpu_share / baseline.cpu_share:5.2f}x")


if __name__ == "__main__":
    main()
