"""Fault tests with a real writer process: SIGKILL mid-run loses no reported batch and leaves no partial one,
and a concurrent reader only ever sees whole batches."""

from __future__ import annotations

import collections
import itertools
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from router_tuner.executor.journal import Journal

REPO = Path(__file__).resolve().parents[2]
BATCH_SIZE = 200
READER_BATCH_SIZE = 20

# Appends batch after batch (batch number in ts_ns) and reports each batch once append_many has returned.
# With pause_batch >= 0 it stops forever halfway through that batch's INSERTs (inside the open transaction)
# after printing "paused", so the test can kill it at a known point mid-transaction.
WRITER = """
import sys, time
from router_tuner.executor.journal import Journal
from router_tuner.router.events import SCHEMA_VERSION, TradeRecord

path, batch_size, pause_batch = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])


class PausingConnection:
    def __init__(self, conn):
        self.conn = conn

    @property
    def in_transaction(self):
        return self.conn.in_transaction

    def execute(self, sql, *args):
        return self.conn.execute(sql, *args)

    def executemany(self, sql, rows):
        def pausing(rows):  # sqlite3 takes the rows one at a time, each INSERTed before the next is asked for
            for row in rows:
                if row[3] == f"{pause_batch}:{batch_size // 2}":
                    print("paused", flush=True)
                    time.sleep(60)
                yield row
        return self.conn.executemany(sql, pausing(rows))

    def close(self):
        self.conn.close()


with Journal(path) as journal:
    journal._conn = PausingConnection(journal._conn)
    batch = 0
    while True:
        journal.append_many([
            TradeRecord(schema_version=SCHEMA_VERSION, intent_id=f"{batch}:{i}", symbol="BTC/USDT", tier="t1",
                        strategy="s1", size_hint_usd=100.0 + i, size_multiplier=1.0, suggested_gross_usd=100.0 + i,
                        clamped_gross_usd=100.0, binding_limit=None, veto_reasons=(), filled_qty=0.001,
                        avg_price=None, fees_usd=0.01, realized_pnl_usd=None, closed_lots=(), ts_ns=batch)
            for i in range(batch_size)
        ])
        print(batch, flush=True)
        batch += 1
"""


def start_writer(path: Path, batch_size: int, pause_batch: int = -1) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", WRITER, str(path), str(batch_size), str(pause_batch)],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def reported_batches(proc: subprocess.Popen[str]) -> Iterator[int]:
    """Batch numbers the writer reported as committed, as they arrive (-1: paused mid-batch)."""
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.endswith("\n"):
            yield -1 if line == "paused\n" else int(line)
    assert proc.stderr is not None
    if proc.poll() not in (None, -signal.SIGKILL):
        pytest.fail(f"writer exited with {proc.returncode}: {proc.stderr.read()}")


def kill(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)


def batch_sizes(journal: Journal) -> dict[int, int]:
    """Events per batch number in one read snapshot."""
    return dict(collections.Counter(event.ts_ns for event in journal.read("trade")))


def assert_whole_batches(sizes: dict[int, int], batch_size: int) -> None:
    assert sorted(sizes) == list(range(len(sizes))), f"batches missing in the middle: {sorted(sizes)}"
    assert all(size == batch_size for size in sizes.values()), f"partial batch: {sizes}"


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_sigkill_loses_no_committed_batch_and_leaves_no_partial_one(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    path = tmp_path / "journal.sqlite"
    kill_after = rng.randint(3, 15)
    proc = start_writer(path, BATCH_SIZE)
    last_reported = -1
    try:
        for batch in reported_batches(proc):
            last_reported = batch
            if batch >= kill_after:
                time.sleep(rng.uniform(0.0, 0.008))  # land at a random point of the next batch
                break
    finally:
        kill(proc)
    assert proc.stdout is not None
    for line in proc.stdout.read().splitlines(keepends=True):  # reports still in the pipe when it died
        if line.endswith("\n"):
            last_reported = int(line)
    assert last_reported >= kill_after

    with Journal(path) as journal:  # the dead writer's lock is gone: a new writer may open
        sizes = batch_sizes(journal)
        assert_whole_batches(sizes, BATCH_SIZE)
        assert max(sizes) in (last_reported, last_reported + 1)  # +1: committed but not yet reported
        assert journal.count("trade") == BATCH_SIZE * len(sizes)


def test_sigkill_inside_the_transaction_leaves_no_trace_of_the_batch(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite"
    proc = start_writer(path, BATCH_SIZE, pause_batch=4)
    try:
        reports = list(itertools.takewhile(lambda batch: batch != -1, reported_batches(proc)))
        assert reports == [0, 1, 2, 3]
        with Journal(path, readonly=True) as reader:  # half of batch 4 is inserted but not committed
            assert_whole_batches(batch_sizes(reader), BATCH_SIZE)
            assert reader.count("trade") == 4 * BATCH_SIZE
    finally:
        kill(proc)
    with Journal(path) as journal:
        assert_whole_batches(batch_sizes(journal), BATCH_SIZE)
        assert journal.count("trade") == 4 * BATCH_SIZE


def test_concurrent_reader_sees_only_whole_batches(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite"
    proc = start_writer(path, READER_BATCH_SIZE)
    snapshots: list[dict[int, int]] = []
    try:
        batches = reported_batches(proc)
        next(batches)  # the journal exists
        with Journal(path, readonly=True) as reader:
            for _ in range(25):
                assert reader.count("trade") % READER_BATCH_SIZE == 0
                snapshots.append(batch_sizes(reader))
                next(batches)  # the writer is busy with its next batch while we read the next snapshot
    finally:
        kill(proc)
    previous = 0
    for sizes in snapshots:
        assert_whole_batches(sizes, READER_BATCH_SIZE)
        assert len(sizes) >= previous
        previous = len(sizes)
    assert previous > len(snapshots[0])  # the reader did see the journal grow
