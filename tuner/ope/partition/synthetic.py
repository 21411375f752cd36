"""Large synthetic logs in the partitioned layout, for benchmarks and tests of partitioned OPE at scale.

Each (day, symbol) partition is drawn from its own seeded generator (so any one can be regenerated alone):
an ε-greedy logging policy over a grid of maker offsets plus taker, the logged propensity of each choice,
a cost in bps from an arm- and symbol-dependent mean plus noise, and a share of orders where nothing filled
(null cost). Intent ids are unique strings in the journal's style (``syn:SYMBOL:DAY:INDEX``), so bucket
hashing costs what it costs on real exports.
"""

from __future__ import annotations

import datetime as dt
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from router_tuner.tuner.ope.partition.layout import write_dataset

TAKER_ARM = "o0.00_b1.00"


@dataclass(frozen=True, slots=True)
class SyntheticLog:
    """Shape of a synthetic log: total events, symbols, days from ``first_day``, maker offsets (bps) of the
    arms, exploration rate ε of the logging policy, share of unfilled orders and the seed."""

    n_events: int
    symbols: tuple[str, ...]
    days: int
    offsets_bps: tuple[float, ...] = (0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0)
    epsilon: float = 0.2
    unfilled_share: float = 0.01
    seed: int = 0
    first_day: dt.date = dt.date(2026, 1, 1)

    def __post_init__(self) -> None:
        if self.n_events < self.days * len(self.symbols) or not self.symbols or self.days < 1:
            raise ValueError("need at least one symbol, one day and one event per partition")
        if not 0.0 < self.epsilon <= 1.0 or not 0.0 <= self.unfilled_share < 1.0:
            raise ValueError("epsilon must be in (0, 1] and unfilled_share in [0, 1)")

    @property
    def arm_ids(self) -> tuple[str, ...]:
        return (*(f"o{offset:.2f}_b0.00" for offset in self.offsets_bps), TAKER_ARM)

    def true_cost_bps(self, symbol: str) -> np.ndarray:
        """Each arm's expected cost on ``symbol``: maker cheapest near 1 bp from the touch, taker 5 bps."""
        shift = (zlib.crc32(symbol.encode()) % 100) / 100.0
        maker = 3.0 + shift + 0.4 * np.abs(np.asarray(self.offsets_bps) - 1.0)
        return np.append(maker, 5.0)


def partition_table(spec: SyntheticLog, day_index: int, symbol: str, n: int) -> pa.Table:
    """One partition's events (``intent_id``, ``arm``, ``propensity``, ``cost_bps``, ``arrival_ts_ns``, ``error``:
    none)."""
    rng = np.random.default_rng([spec.seed, day_index, zlib.crc32(symbol.encode())])
    arms = spec.arm_ids
    k = len(arms)
    greedy = int(rng.integers(k))
    explore = rng.random(n) < spec.epsilon
    actions = np.where(explore, rng.integers(0, k, size=n), greedy)
    propensity = np.where(actions == greedy, 1.0 - spec.epsilon + spec.epsilon / k, spec.epsilon / k)
    cost = spec.true_cost_bps(symbol)[actions] + rng.normal(0.0, 2.0, size=n)
    filled = rng.random(n) >= spec.unfilled_share
    day = spec.first_day + dt.timedelta(days=day_index)
    start_ns = int(dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC).timestamp()) * 10**9
    ids = pc.binary_join_element_wise(f"syn:{symbol}:{day.isoformat()}:", pa.array(np.arange(n)).cast(pa.string()), "")
    return pa.table({
        "intent_id": ids,
        "arm": pa.DictionaryArray.from_arrays(pa.array(actions.astype(np.int32)), pa.array(arms)),
        "propensity": propensity,
        "cost_bps": pa.array(cost, mask=~filled),
        "arrival_ts_ns": start_ns + np.sort(rng.integers(0, 86_400 * 10**9, size=n)),
        "error": pa.nulls(n, pa.string()),
    })


def write_synthetic_log(root: Path, spec: SyntheticLog) -> dict[tuple[str, str], int]:
    """Write ``spec`` under ``root`` (which must not exist), one partition at a time; rows per partition."""
    return write_dataset(root, _partitions(spec))


def _partitions(spec: SyntheticLog) -> Iterator[tuple[str, str, pa.Table]]:
    n_partitions = spec.days * len(spec.symbols)
    sizes = np.full(n_partitions, spec.n_events // n_partitions)
    sizes[: spec.n_events % n_partitions] += 1
    for i, (day_index, symbol) in enumerate((d, s) for d in range(spec.days) for s in spec.symbols):
        day = (spec.first_day + dt.timedelta(days=day_index)).isoformat()
        yield day, symbol, partition_table(spec, day_index, symbol, int(sizes[i]))
