"""Every benchmark still runs (tiny sizes, no timing asserted): a benchmark that rots is not measured."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from experiments.bench.timing import best_of
from router_tuner.router.market.binance import resolve_data_dir

REPO = Path(__file__).resolve().parents[2]
HAS_DATA = resolve_data_dir(None) is not None

# (benchmark, tiny arguments, needs the recorded data, a line its ratio report must contain)
CASES = [
    ("route", ["--routes", "200"], False, "full garbage collection with live's modules loaded"),
    ("journal_encode", ["--events", "50", "--repeats", "1"], False, "ratio to_json / encode"),
    ("learners", ["--decisions", "200", "--warmup", "50"], False, "x rate = our pull+update/s over river's"),
    ("ope", ["--events", "20000", "--resamples", "50", "--max-blocks", "100", "--repeats", "1"], False,
     "all 8 estimators in one evaluate call"),
    ("ope_partitioned", ["--events", "20000", "--symbols", "2", "--days", "2", "--resamples", "50", "--buckets",
                         "100"], False, "partitioned vs single-process estimators"),
    ("sweep", ["--learners", "ucb", "--seeds", "1", "--symbols", "BTCUSDT", "--orders", "20", "--data", "synthetic"],
     False, "identical tables: True"),
    ("sim_replay", ["--repeats", "1"], True, "ratio to baseline"),
    ("sim_stops", ["--repeats", "1", "--step-ms", "1000"], True, "stops / none:"),
    ("market_load", ["--repeats", "1"], True, "loader/json"),
    ("simulate", ["--orders", "20", "--learners", "thompson", "--symbols", "BTCUSDT"], True,
     "job and single process results identical: True"),
    ("learner_eval", ["--orders", "40", "--no-recorded", "--learners", "structured"], False,
     "learner:structured: mean vs best fixed"),
    ("learner_eval", ["--orders", "40", "--no-recorded", "--learners", "ucb", "--engine", "concurrent"], False,
     "learner:ucb: mean vs best fixed"),
    ("learner_stress", ["--orders", "40", "--seeds", "1", "--markets", "volatile,maker_rebate"], False,
     "learner:structured: mean gap to the best fixed arm over the markets"),
    ("learner_ticks", ["--orders", "40", "--seeds", "3", "--symbols", "BTCUSDT", "--tick-bps", "5"], True,
     "learner:structured: mean vs best fixed"),
    ("sim_engines", ["--orders", "30", "--symbols", "BTCUSDT", "--workers", "1"], False,
     "static routes working at once (concurrent)"),
    ("fill_detection", ["--fills", "2", "--poll-ms", "40"], False, "ratio polling/stream"),
    ("engine", ["--intents", "16", "--routes", "8", "--repeats", "1"], False, "ratio concurrent/sequential"),
    ("intent_wake", ["--intents", "5", "--gap-ms", "10"], False, "ratio default / baseline"),
]


@pytest.mark.parametrize(("name", "args", "needs_data", "ratio_line"), CASES, ids=[c[0] for c in CASES])
def test_benchmark_runs_and_prints_its_ratio(name: str, args: list[str], needs_data: bool, ratio_line: str,
                                             tmp_path: Path) -> None:
    if needs_data and not HAS_DATA:
        pytest.skip("recorded market data not found (../shared/data/binance or ROUTER_TUNER_DATA)")
    done = subprocess.run([sys.executable, "-m", f"experiments.bench.{name}", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=240, check=False,
                          env={**os.environ, "PYTHONPATH": str(REPO), "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path}/m.db"})
    assert done.returncode == 0, done.stderr[-2000:]
    assert ratio_line in done.stdout, done.stdout[-2000:]


def test_best_of_times_only_the_run_and_returns_its_result() -> None:
    calls: list[str] = []

    def setup() -> int:
        calls.append("setup")
        return 7

    seconds, out = best_of(3, lambda x: calls.append("run") or x * 2, setup=setup)
    assert out == 14 and seconds >= 0.0 and calls == ["setup", "run"] * 3
    assert best_of(1, lambda: "plain")[1] == "plain"
    with pytest.raises(ValueError, match="repeats must be >= 1"):
        best_of(0, lambda: None)
