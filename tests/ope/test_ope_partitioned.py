"""Partitioned OPE equals single-process OPE: point values to float rounding, intervals whatever the partitioning
(one core or Ray), and every bad dataset ends in one clear error."""

from __future__ import annotations

import doctest
import tempfile
from pathlib import Path

import msgspec
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from router_tuner.config import load_config
from router_tuner.config.models import OpeConfig
from router_tuner.tuner.cluster import LocalRunner, TaskRunner
from router_tuner.tuner.ope.bootstrap import BlockBootstrap
from router_tuner.tuner.ope.estimators import evaluate
from router_tuner.tuner.ope.log import LoggedBandit
from router_tuner.tuner.ope.partition import event_hash
from router_tuner.tuner.ope.partition.evaluate import PartitionedReport, evaluate_partitions
from router_tuner.tuner.ope.partition.layout import (
    DatasetError,
    Partition,
    list_partitions,
    read_ope_columns,
    write_dataset,
    write_router_events,
)
from router_tuner.tuner.ope.partition.synthetic import SyntheticLog, partition_table, write_synthetic_log
from router_tuner.tuner.ope.policy import fixed_arm_policy
from router_tuner.tuner.ope.reward_model import PerArmMeanModel
from router_tuner.tuner.ope.run import bootstrap_from_config, estimators_from_config, evaluate_candidate
from tests.factories import fill, routed

CANDIDATE = "o1.00_b0.00"
SPEC = SyntheticLog(n_events=6_000, symbols=("BTCUSDT", "ETHUSDT"), days=3, seed=3)
SYNTH_SMALL = SyntheticLog(n_events=2_000, symbols=("BTCUSDT",), days=2, seed=9)


def _config(resamples: int = 200, buckets: int = 64) -> OpeConfig:
    return msgspec.structs.replace(load_config().tuner.ope, bootstrap_resamples=resamples,
                                   bootstrap_max_blocks=buckets)


def _all_events(spec: SyntheticLog) -> pa.Table:
    per_partition = spec.n_events // (spec.days * len(spec.symbols))
    tables = [partition_table(spec, d, s, per_partition) for d in range(spec.days) for s in spec.symbols]
    return pa.concat_tables(tables)


def _regrouped(root: Path, events: pa.Table, labels: np.ndarray) -> list[Partition]:
    """The same events cut into partitions by ``labels`` (one synthetic day per label)."""
    write_dataset(root, ((f"2026-02-{label + 1:02d}", "ALL", events.filter(pa.array(labels == label)))
                         for label in np.unique(labels)))
    return list_partitions(root)


def _reference(events: pa.Table, config: OpeConfig, seed: int) -> dict:
    filled = events.filter(pc.is_valid(events["cost_bps"]))
    arms = tuple(sorted(set(filled["arm"].to_pylist())))
    log = LoggedBandit(actions=np.array([arms.index(a) for a in filled["arm"].to_pylist()]),
                       propensities=filled["propensity"].to_numpy(), rewards=-filled["cost_bps"].to_numpy(),
                       arm_ids=arms)
    return evaluate(log, fixed_arm_policy(log, CANDIDATE), estimators_from_config(config),
                    bootstrap=bootstrap_from_config(config, seed), reward_model=PerArmMeanModel(),
                    weight_quantiles=())


def _same_report(a: PartitionedReport, b: PartitionedReport) -> None:
    for name in a.estimates:
        got, want = a.estimates[name], b.estimates[name]
        assert got.value == pytest.approx(want.value, rel=1e-12, abs=1e-12), name
        assert (got.ci_low, got.ci_high) == pytest.approx((want.ci_low, want.ci_high), rel=1e-9, abs=1e-12), name
        assert got.ess == pytest.approx(want.ess, rel=1e-12)
    assert a.logging.value == pytest.approx(b.logging.value, rel=1e-12)
    assert (a.n_events, a.rows, a.arm_ids) == (b.n_events, b.rows, b.arm_ids)


def test_point_values_and_diagnostics_equal_the_single_process_estimators(tmp_path: Path) -> None:
    config = _config()
    events = _all_events(SPEC)
    report = evaluate_partitions(_regrouped(tmp_path / "ds", events, np.arange(events.num_rows) % 5), CANDIDATE,
                                 config, seed=11, runner=LocalRunner())
    reference = _reference(events, config, seed=11)
    assert set(report.estimates) == set(reference)
    for name, want in reference.items():
        got = report.estimates[name]
        assert got.value == pytest.approx(want.value, rel=1e-12), name
        for field in ("n", "n_nonzero_weight", "ess", "weight_max", "weight_mean", "share_above_threshold",
                      "weight_threshold", "logging_value"):
            expected = getattr(want, field)
            assert getattr(got, field) == (expected if expected is None else pytest.approx(expected, rel=1e-12)), (
                name, field)
        # a different resampling scheme (buckets, not contiguous blocks), the same doubt to within noise
        assert got.ci_high - got.ci_low == pytest.approx(want.ci_high - want.ci_low, rel=0.35), name
    assert report.rows == events.num_rows and report.n_events == report.estimates["ips"].n


@settings(max_examples=8, deadline=None)
@given(st.integers(1, 9), st.integers(0, 2**16))
def test_intervals_do_not_depend_on_the_partitioning(n_parts: int, shuffle_seed: int) -> None:
    config = _config()
    events = _all_events(SYNTH_SMALL)
    labels = np.random.default_rng(shuffle_seed).integers(0, n_parts, size=events.num_rows)
    with tempfile.TemporaryDirectory() as folder:
        whole = evaluate_partitions(_regrouped(Path(folder) / "one", events, np.zeros(events.num_rows, int)),
                                    CANDIDATE, config, seed=5, runner=LocalRunner())
        cut = evaluate_partitions(_regrouped(Path(folder) / "cut", events, labels), CANDIDATE, config, seed=5,
                                  runner=LocalRunner())
    _same_report(cut, whole)


def test_interval_is_the_bucket_bootstrap_of_the_whole_log(tmp_path: Path) -> None:
    """Brute force: every event weighted by its bucket's resample count, the IPS ratio recomputed per resample."""
    config = _config(resamples=50, buckets=16)
    events = _all_events(SYNTH_SMALL)
    report = evaluate_partitions(_regrouped(tmp_path / "ds", events, np.arange(events.num_rows) % 3), CANDIDATE,
                                 config, seed=2, runner=LocalRunner())
    filled = events.filter(pc.is_valid(events["cost_bps"]))
    counts = BlockBootstrap(16, bootstrap_from_config(config, 2))._weights  # (B, G) resample counts per bucket
    per_event = counts[:, event_hash.buckets(filled["intent_id"], 16)]
    taken = np.array([a == CANDIDATE for a in filled["arm"].to_pylist()], dtype=float)
    terms = taken / filled["propensity"].to_numpy() * -filled["cost_bps"].to_numpy()
    values = (per_event @ terms) / per_event.sum(axis=1)
    low, high = np.quantile(values, [0.025, 0.975])
    assert (report.estimates["ips"].ci_low, report.estimates["ips"].ci_high) == pytest.approx((low, high), rel=1e-12)


def test_ray_tasks_give_the_one_core_numbers(tmp_path: Path, ray_runner: TaskRunner) -> None:
    config = _config()
    write_synthetic_log(tmp_path / "ds", SPEC)
    partitions = list_partitions(tmp_path / "ds")
    assert len(partitions) == SPEC.days * len(SPEC.symbols)
    on_ray = evaluate_partitions(partitions, CANDIDATE, config, seed=4, runner=ray_runner)
    local = evaluate_partitions(partitions, CANDIDATE, config, seed=4, runner=LocalRunner())
    _same_report(on_ray, local)
    assert on_ray.to_dict()["estimates"]["ips"]["cost_bps"] == -on_ray.estimates["ips"].value


def test_journal_events_round_trip_through_the_layout(tmp_path: Path) -> None:
    day_ns = 86_400 * 10**9
    events = [routed(symbol=s, arm=arm, propensity=0.5, intent_id=f"{s}:{i}", arrival_ts_ns=(i % 2) * day_ns,
                     fills=(fill(100.0 + 0.01 * (i % 3), 1.0),) if i % 4 else ())
              for s in ("BTCUSDT", "ETHUSDT") for i, arm in enumerate(["maker", "taker"] * 6)]
    written = write_router_events(tmp_path / "ds", events)
    assert written == {(d, s): 6 for d in ("1970-01-01", "1970-01-02") for s in ("BTCUSDT", "ETHUSDT")}
    frame = pd.read_parquet(tmp_path / "ds")  # the Hive layout: day and symbol come back from the paths
    assert len(frame) == 24 and sorted(frame["symbol"].astype(str).unique()) == ["BTCUSDT", "ETHUSDT"]
    report = evaluate_partitions(list_partitions(tmp_path / "ds"), "maker", _config(), seed=0, runner=LocalRunner())
    assert report.rows == 24 and report.n_events == 18
    assert report.estimates["snips"].value == pytest.approx(-np.mean([e.cost_bps for e in events if e.cost_bps
                                                                     is not None and e.arm == "maker"]), rel=1e-9)


def test_flagged_events_are_left_out_and_counted_as_one_journals_ope_does(tmp_path: Path) -> None:
    """A journal exported with venue_anomaly and fee_unpriced events: the partitioned estimate leaves them out and
    equals the single-journal one (tuner.ope.run), with the same counts per flag; a message that merely names a flag
    is not one. Scored, the flagged -50 bps fills made the maker arm look cheaper than it was."""
    day_ns = 86_400 * 10**9
    anomaly = "venue_anomaly(fill x of y reported as taker on a post-only order)"
    unpriced = "fee_unpriced(fill x of y: fee 0.0002 BNB not priced in USDT)"
    errors = [None, None, f"settled; {anomaly}", unpriced, f"{anomaly}; {unpriced}", "binance: venue_anomaly(?)"]
    events = [msgspec.structs.replace(
        routed(symbol="BTCUSDT", arm=arm, propensity=0.5, intent_id=f"e{i}", arrival_ts_ns=(i % 2) * day_ns,
               fills=(fill(99.5 if errors[i % 6] in (errors[2], errors[3], errors[4]) else 100.0 + 0.01 * (i % 3),
                           1.0, trade_id=f"t{i}"),)), error=errors[i % 6])
        for i, arm in enumerate(["maker", "taker"] * 12)]
    write_router_events(tmp_path / "ds", events)
    report = evaluate_partitions(list_partitions(tmp_path / "ds"), "maker", _config(), seed=0, runner=LocalRunner())
    single = evaluate_candidate(events, "maker", _config(), seed=0, symbol="BTCUSDT")
    assert report.skipped_flagged == single.skipped_flagged == {"venue_anomaly": 8, "fee_unpriced": 4}
    assert (report.rows, report.n_events, single.n_events) == (24, 12, 12)
    assert report.estimates["snips"].value == pytest.approx(single.estimates["snips"].value, rel=1e-9)
    assert report.estimates["snips"].value == pytest.approx(-np.mean(
        [e.cost_bps for e in events if e.arm == "maker" and e.error in (None, errors[5])]), rel=1e-9)
    as_dict = report.to_dict()
    assert as_dict["skipped_unfilled"] == 0 and as_dict["skipped_flagged"] == {"venue_anomaly": 8, "fee_unpriced": 4}
    assert as_dict["notes"] == list(single.notes) and "12 filled events left out" in as_dict["notes"][0]


def test_existing_or_half_written_datasets_are_refused(tmp_path: Path) -> None:
    write_synthetic_log(tmp_path / "ds", SYNTH_SMALL)
    with pytest.raises(DatasetError, match="already exists"):
        write_synthetic_log(tmp_path / "ds", SYNTH_SMALL)

    def interrupted():
        yield "2026-01-01", "BTCUSDT", partition_table(SYNTH_SMALL, 0, "BTCUSDT", 10)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_dataset(tmp_path / "half", interrupted())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"]  # no dataset, no staging folder left


def test_bad_datasets_and_candidates_fail_clearly(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="no dataset folder"):
        list_partitions(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="not a partitioned dataset"):
        list_partitions(tmp_path / "empty")
    write_dataset(tmp_path / "cols", [("2026-01-01", "BTCUSDT", pa.table({"intent_id": ["a"], "arm": ["x"]}))])
    with pytest.raises(DatasetError, match="cannot read the OPE columns"):
        read_ope_columns(list_partitions(tmp_path / "cols")[0].path)
    write_synthetic_log(tmp_path / "ds", SYNTH_SMALL)
    with pytest.raises(ValueError, match="no support"):
        evaluate_partitions(list_partitions(tmp_path / "ds"), "o9.00_b0.00", _config(), seed=0, runner=LocalRunner())


def test_a_partition_where_nothing_filled_adds_nothing(tmp_path: Path) -> None:
    table = partition_table(SYNTH_SMALL, 0, "BTCUSDT", 500)
    unfilled = partition_table(SYNTH_SMALL, 1, "BTCUSDT", 100).set_column(3, "cost_bps", pa.nulls(100, pa.float64()))
    write_dataset(tmp_path / "a", [("2026-01-01", "BTCUSDT", table)])
    write_dataset(tmp_path / "b", [("2026-01-01", "BTCUSDT", table), ("2026-01-02", "BTCUSDT", unfilled)])
    config = _config()
    a = evaluate_partitions(list_partitions(tmp_path / "a"), CANDIDATE, config, seed=1, runner=LocalRunner())
    b = evaluate_partitions(list_partitions(tmp_path / "b"), CANDIDATE, config, seed=1, runner=LocalRunner())
    assert b.rows == a.rows + 100 and b.n_events == a.n_events
    assert b.estimates["dr"].value == a.estimates["dr"].value


def test_synthetic_log_is_seeded_and_sized(tmp_path: Path) -> None:
    write_synthetic_log(tmp_path / "a", SPEC)
    write_synthetic_log(tmp_path / "b", SPEC)
    sizes = [pq.read_metadata(p.path).num_rows for p in list_partitions(tmp_path / "a")]
    assert sum(sizes) == SPEC.n_events and max(sizes) - min(sizes) <= 1
    for x, y in zip(list_partitions(tmp_path / "a"), list_partitions(tmp_path / "b"), strict=True):
        assert pq.read_table(x.path).equals(pq.read_table(y.path))
    with pytest.raises(ValueError):
        SyntheticLog(n_events=1, symbols=("A", "B"), days=1)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.text(min_size=0, max_size=30), min_size=1, max_size=40), st.integers(1, 5000))
def test_event_buckets_depend_on_the_id_alone(ids: list[str], n_buckets: int) -> None:
    whole = event_hash.buckets(pa.array(ids), n_buckets)
    assert ((whole >= 0) & (whole < n_buckets)).all()
    chunked = pa.chunked_array([pa.array(ids[:len(ids) // 2], pa.string()), pa.array(ids[len(ids) // 2:])])
    assert (event_hash.buckets(chunked, n_buckets) == whole).all()
    assert (event_hash.buckets(pa.array(ids[::-1]), n_buckets) == whole[::-1]).all()
    assert (event_hash.buckets(pa.array(ids, pa.large_string()), n_buckets) == whole).all()
    for i, j in zip(range(len(ids)), range(1, len(ids)), strict=False):
        if ids[i] == ids[j]:
            assert whole[i] == whole[j]


def test_event_hash_is_pinned_across_processes_and_rejects_bad_ids() -> None:
    assert event_hash.hash_ids(pa.array(["ab"])).tolist() == [16313124831855309874]  # any process, any machine
    assert event_hash.hash_ids(pa.array(["ab", "ba"])).tolist()[0] != event_hash.hash_ids(pa.array(["ba"]))[0]
    with pytest.raises(TypeError, match="strings"):
        event_hash.hash_ids(pa.array([1, 2]))
    with pytest.raises(ValueError, match="missing"):
        event_hash.hash_ids(pa.array(["a", None]))
    with pytest.raises(ValueError):
        event_hash.buckets(pa.array(["a"]), 0)


def test_docstring_examples_run() -> None:
    assert doctest.testmod(event_hash, raise_on_error=True).attempted > 0
