"""Load throughput of the Binance loader against a same-run baseline.

Baseline: gunzip every line and ``json.loads`` its payload (no schema, no exact decimals, no book
procedure), i.e. the least a reader must do. Also shown: the gunzip-and-split floor alone. Each figure
is the best of ``--repeats`` runs, in lines per second.

Run: ``python -m experiments.bench.market_load [--data-dir DIR] [--repeats N]``
"""

from __future__ import annotations

import argparse
import gzip
import json
from pathlib import Path

from experiments.bench.timing import best_of
from router_tuner.router.market.binance import discover, load_binance, resolve_data_dir


def _count_lines(path: Path) -> int:
    with gzip.open(path, "rb") as fh:
        return sum(1 for line in fh if line.strip())


def _gunzip_split(path: Path) -> None:
    with gzip.open(path, "rb") as fh:
        for line in fh:
            line.partition(b" ")


def _json_loads(path: Path) -> None:
    with gzip.open(path, "rb") as fh:
        for line in fh:
            raw_ts, _, payload = line.partition(b" ")
            int(raw_ts)
            json.loads(payload)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", help="recorded data folder (default: $ROUTER_TUNER_DATA or ../shared)")
    parser.add_argument("--repeats", type=int, default=3, help="runs per figure, best kept (default 3)")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error("--repeats must be >= 1")
    data_dir = resolve_data_dir(args.data_dir)
    if data_dir is None:
        parser.error("no market data folder: pass --data-dir or set ROUTER_TUNER_DATA")
    print(f"data: {data_dir}  (best of {args.repeats})")
    print(f"{'file':<18} {'lines':>7} {'loader l/s':>11} {'json.loads l/s':>15} {'gunzip l/s':>11} "
          f"{'loader/json':>11}")
    totals = {"lines": 0, "loader": 0.0, "json": 0.0, "gunzip": 0.0}
    for key, files in discover(data_dir).items():
        lines = sum(_count_lines(p) for p in files)
        loader_s, _ = best_of(args.repeats, lambda files=files: load_binance(files))
        json_s, _ = best_of(args.repeats, lambda files=files: [_json_loads(p) for p in files])
        gunzip_s, _ = best_of(args.repeats, lambda files=files: [_gunzip_split(p) for p in files])
        for name, value in (("lines", lines), ("loader", loader_s), ("json", json_s), ("gunzip", gunzip_s)):
            totals[name] += value
        print(f"{key:<18} {lines:>7} {lines / loader_s:>11,.0f} {lines / json_s:>15,.0f} "
              f"{lines / gunzip_s:>11,.0f} {json_s / loader_s:>11.2f}")
    n = totals["lines"]
    print(f"{'all':<18} {n:>7} {n / totals['loader']:>11,.0f} {n / totals['json']:>15,.0f} "
          f"{n / totals['gunzip']:>11,.0f} {totals['json'] / totals['loader']:>11.2f}")
    print("loader/json > 1 means the loader (exact decimals, depth procedure, validated tape) is faster than "
          "a bare json.loads of the same lines")


if __name__ == "__main__":
    main()
