"""The partitioned dataset of router events: ``ROOT/day=YYYY-MM-DD/symbol=SYM/part-0.parquet`` (Hive layout).

One folder per UTC day of arrival and symbol, so a month on 50 symbols is 1,500 files that tasks read
independently, and pandas, pyarrow, Spark or DuckDB read the whole tree as one table with ``day`` and
``symbol`` columns taken from the paths (the files do not repeat ``symbol``). The files hold the Arrow layout
of every export (:mod:`router.arrow_events`: nested fills, UTC timestamps); OPE reads only :data:`OPE_COLUMNS`.

A dataset appears whole or not at all: it is written into a hidden sibling folder and renamed into place,
and an existing ``ROOT`` is never written into (two exports mixed in one tree would double-count events).
"""

from __future__ import annotations

import datetime as dt
import fcntl
import os
import re
import shutil
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from router_tuner.router.arrow_events import to_arrow
from router_tuner.router.atomic_file import abandoned, atomic_path
from router_tuner.router.events import RouterEvent

OPE_COLUMNS = ("intent_id", "arm", "propensity", "cost_bps", "error")
"""What partitioned OPE reads from each file: the event id (bootstrap bucket), the logged arm and its
propensity, the cost (null when nothing filled) and the error, whose flags leave an event out as one journal's OPE
leaves it out (``tuner.ope.log.skip_reason``)."""

PART_FILE = "part-0.parquet"
NS_PER_DAY = 86_400 * 10**9


class DatasetError(ValueError):
    """The folder is not a partitioned dataset, or a dataset cannot be written there."""


@dataclass(frozen=True, slots=True, order=True)
class Partition:
    """One file of the dataset: its day (``YYYY-MM-DD``), symbol and path."""

    day: str
    symbol: str
    path: Path


def partition_dir(root: Path, day: str, symbol: str) -> Path:
    return root / f"day={day}" / f"symbol={symbol}"


def utc_day(ts_ns: np.ndarray) -> np.ndarray:
    """``YYYY-MM-DD`` of each nanosecond UTC timestamp."""
    return np.datetime_as_string(np.asarray(ts_ns, dtype=np.int64).astype("datetime64[ns]"), unit="D")


def write_dataset(root: Path, tables: Iterable[tuple[str, str, pa.Table]]) -> dict[tuple[str, str], int]:
    """Write one table per ``(day, symbol)`` under ``root`` (which must not exist); rows per partition.

    Everything is written into a hidden folder beside ``root`` and renamed to ``root`` only when every
    file is complete, so an interrupted export leaves no dataset rather than part of one. The writer holds an
    ``flock`` on that folder until the rename, so the next export to ``root`` deletes the folders killed
    writers left (kill -9 leaves one per run, as large as the part written) and never a live writer's.
    """
    root = Path(root)
    if root.exists():
        raise DatasetError(f"{root} already exists: choose a new folder (exports are never merged)")
    root.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{root.name}.", dir=root.parent))
    held = os.open(staging, os.O_RDONLY)
    fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)  # a new folder: nobody else holds it
    written: dict[tuple[str, str], int] = {}
    try:
        _remove_stale_staging(root)
        for day, symbol, table in tables:
            if (day, symbol) in written:
                raise DatasetError(f"partition day={day} symbol={symbol} given twice")
            with atomic_path(partition_dir(staging, day, symbol) / PART_FILE) as temporary:
                pq.write_table(table, temporary)
            written[(day, symbol)] = table.num_rows
        os.rename(staging, root)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    finally:
        os.close(held)
    return written


def _remove_stale_staging(root: Path) -> None:
    """Delete the hidden ``.<root name>.<8 chars>`` folders of exports to ``root`` whose writer died (their
    ``flock`` is free); a live writer's is held and stays."""
    pattern = re.compile(re.escape(f".{root.name}.") + r"[a-z0-9_]{8}")
    for candidate in root.parent.iterdir():
        if not pattern.fullmatch(candidate.name) or candidate.is_symlink() or not candidate.is_dir():
            continue
        with abandoned(candidate) as dead:  # a live export holds its folder's lock
            if dead:
                shutil.rmtree(candidate, ignore_errors=True)


def write_router_events(root: Path, events: Sequence[RouterEvent]) -> dict[tuple[str, str], int]:
    """Router events as a partitioned dataset, by UTC day of arrival and symbol; rows per partition."""
    if not events:
        raise DatasetError("no router events to export")
    table = to_arrow(list(events), kind="router")
    days = utc_day(np.array([e.arrival_ts_ns for e in events], dtype=np.int64))
    return write_dataset(root, _split(table, days, [e.symbol for e in events]))


def _split(table: pa.Table, days: np.ndarray, symbols: list[str]) -> Iterable[tuple[str, str, pa.Table]]:
    keys = pd.DataFrame({"day": days, "symbol": symbols})
    for (day, symbol), rows in keys.groupby(["day", "symbol"], sort=True).indices.items():
        yield str(day), str(symbol), table.take(pa.array(rows)).drop_columns(["symbol"])


def _is_day(text: str) -> bool:
    try:
        return dt.date.fromisoformat(text).isoformat() == text
    except ValueError:
        return False


def list_partitions(root: Path) -> list[Partition]:
    """Every partition under ``root``, sorted by day then symbol; DatasetError when there are none."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"no dataset folder at {root}")
    found: list[Partition] = []
    for path in root.glob(f"day=*/symbol=*/{PART_FILE}"):
        day = path.parent.parent.name.removeprefix("day=")
        symbol = path.parent.name.removeprefix("symbol=")
        if not (_is_day(day) and re.fullmatch(r"[A-Z0-9_]+", symbol)):  # "day=2024-08-08 copy": counted twice
            raise DatasetError(f"{path.parent}: not a day=YYYY-MM-DD/symbol=SYMBOL folder (a copy, or another "
                               f"tool's?): move it out of {root}")
        found.append(Partition(day=day, symbol=symbol, path=path))
    if not found:
        raise DatasetError(f"{root} holds no day=*/symbol=*/{PART_FILE} files: not a partitioned dataset")
    return sorted(found)


def read_ope_columns(path: Path, columns: Sequence[str] = OPE_COLUMNS, optional: Sequence[str] = ()) -> pa.Table:
    """``columns`` (of :data:`OPE_COLUMNS`) of one partition file, the arm dictionary-encoded (few arms), and those
    of ``optional`` the file has (what only a warning needs: a dataset written by other code may lack them)."""
    try:
        names = pq.read_schema(path).names
        if "symbol" in names:  # a partition's symbol is its folder's, never a column
            raise DatasetError(f"{path}: holds a symbol column, so it is not a partition file (a `journal export "
                               "--out` file copied in?); its rows would be scored as the folder's symbol: move it out")
        if missing := [c for c in columns if c not in names]:
            raise KeyError(f"no column {', '.join(missing)}")
        table = pq.read_table(path, columns=[*columns, *(c for c in optional if c in names)], read_dictionary=["arm"])
    except (OSError, pa.ArrowInvalid, KeyError) as error:
        raise DatasetError(f"{path}: cannot read the OPE columns {tuple(columns)}: {error}") from error
    return table
