"""``router-tuner ope-dataset``: per-symbol scores on a partitioned dataset, equal to the library's, and one clear
line with exit 2 for bad input."""

from __future__ import annotations

import json
from pathlib import Path

import msgspec
import pytest

from router_tuner.cli.main import main
from router_tuner.config import load_config
from router_tuner.executor.journal import Journal
from router_tuner.tuner.cluster import LocalRunner
from router_tuner.tuner.ope.partition.evaluate import evaluate_partitions
from router_tuner.tuner.ope.partition.layout import list_partitions, write_router_events
from router_tuner.tuner.ope.partition.synthetic import SyntheticLog, write_synthetic_log
from tests.factories import fill, routed

SPEC = SyntheticLog(n_events=4_000, symbols=("BTCUSDT", "ETHUSDT"), days=3, seed=1)
ARM = "o1.00_b0.00"


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("ope") / "ds"
    write_synthetic_log(root, SPEC)
    return root


def test_each_symbol_is_scored_on_its_own_partitions(dataset: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ope-dataset", "--dataset", str(dataset), "--candidate", ARM, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out["symbols"]) == {"BTCUSDT", "ETHUSDT"}
    btc = [p for p in list_partitions(dataset) if p.symbol == "BTCUSDT"]
    want = evaluate_partitions(btc, ARM, load_config().tuner.ope, seed=out["seed"], runner=LocalRunner()).to_dict()
    got = out["symbols"]["BTCUSDT"]
    assert got["estimates"] == want["estimates"] and got["days"] == ["2026-01-01", "2026-01-03"]
    assert main(["ope-dataset", "--dataset", str(dataset), "--candidate", ARM]) == 0
    printed = capsys.readouterr().out
    assert "BTCUSDT: o1.00_b0.00 on" in printed and "snips" in printed and "ETHUSDT" in printed


def test_flagged_events_are_left_out_and_said(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A dataset exported from a journal with flagged fills: they are not scored, and both outputs say how many."""
    events = [msgspec.structs.replace(routed(arm=ARM, propensity=0.5, intent_id=f"e{i}", fills=(
        fill(99.5 if i % 4 == 0 else 100.01, 1.0, trade_id=f"t{i}"),)),
        error="venue_anomaly(fill x of y reported as taker on a post-only order)" if i % 4 == 0 else None)
        for i in range(40)]
    write_router_events(tmp_path / "ds", events)
    assert main(["ope-dataset", "--dataset", str(tmp_path / "ds"), "--candidate", ARM, "--json"]) == 0
    got = json.loads(capsys.readouterr().out)["symbols"]["BTCUSDT"]
    assert (got["rows"], got["n_events"], got["skipped_unfilled"]) == (40, 30, 0)
    assert got["skipped_flagged"] == {"venue_anomaly": 10, "fee_unpriced": 0}
    assert got["estimates"]["snips"]["cost_bps"] == pytest.approx(1.0, abs=1e-6)
    assert main(["ope-dataset", "--dataset", str(tmp_path / "ds"), "--candidate", ARM]) == 0
    assert ("  note: 10 filled events left out as the tuner's reward filter leaves them out (10 venue_anomaly): "
            in capsys.readouterr().out)


def test_symbol_and_day_filters(dataset: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ope-dataset", "--dataset", str(dataset), "--candidate", ARM, "--symbol", "ETHUSDT",
                 "--since-day", "2026-01-02", "--until-day", "2026-01-02", "--json"]) == 0
    (only,) = json.loads(capsys.readouterr().out)["symbols"].values()
    assert only["n_partitions"] == 1 and only["days"] == ["2026-01-02", "2026-01-02"]


@pytest.mark.parametrize("argv, message", [
    (["--dataset", "MISSING"], "no dataset folder"),
    (["--since-day", "2026-13-01"], "is not a YYYY-MM-DD day"),
    (["--symbol", "NOPE"], "no partition of"),
    # both said only "no partition … matches"; now what the dataset holds, and an empty range as ope says it
    (["--since-day", "2027-01-01"], "; it holds days 2026-01-01..2026-01-03, symbols BTCUSDT, ETHUSDT"),
    (["--since-day", "2026-01-03", "--until-day", "2026-01-01"],
     "--since-day 2026-01-03 is after --until-day 2026-01-01: the range is empty"),
    (["--candidate", "o9.00_b0.00", "--symbol", "BTCUSDT"], "no support"),
    (["--candidate", "o1_b0"],  # was scored as an arm never taken with a fill, beside o1.00_b0.00 in the log
     "--candidate 'o1_b0' is not an arm id as the journal writes them: write o1.00_b0.00"),
    (["--config", "MISSING"], "1 configuration problem(s), first: "),
])
def test_bad_input_is_one_line_and_exit_2(dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                          argv: list[str], message: str) -> None:
    base = {"--dataset": str(dataset), "--candidate": ARM}
    for flag, value in zip(argv[::2], argv[1::2], strict=True):
        base[flag] = value.replace("MISSING", str(tmp_path / "missing"))
    assert main(["ope-dataset", *[x for pair in base.items() for x in pair]]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("copy", ["day=2026-01-02 copy", "day=2026-1-2", "day=2026-01-02/symbol=btcusdt"])
def test_a_partition_folder_that_is_not_the_layouts_is_refused(dataset: Path, tmp_path: Path, copy: str,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    """A folder duplicated beside the original (``day=2026-01-02 copy``) used to be read as one more partition:
    its events counted twice, exit 0."""
    import shutil

    root = tmp_path / "ds"
    shutil.copytree(dataset, root)
    source = root / "day=2026-01-02" / "symbol=BTCUSDT"
    shutil.copytree(source, root / copy if "symbol=" in copy else root / copy / "symbol=BTCUSDT")
    assert main(["ope-dataset", "--dataset", str(root), "--candidate", ARM]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1
    assert "not a day=YYYY-MM-DD/symbol=SYMBOL folder (a copy, or another tool's?): move it out of" in err


def test_low_effective_sample_size_warns_as_ope_warns(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A candidate the log rarely took: ``ope`` warned of its ESS on a journal, ``ope-dataset`` printed the same
    numbers on the exported dataset without a word (a simulation's export: IPS 1.27 vs SNIPS 3.31 bps, silently)."""
    events = [routed(arm=ARM if i % 10 == 0 else "o0.00_b0.00", propensity=0.1 if i % 10 == 0 else 0.9,
                     intent_id=f"e{i}", arrival_ts_ns=i * 1_000_000_000, fills=(fill(100.01, 1.0, trade_id=f"t{i}"),))
              for i in range(40)]
    write_router_events(tmp_path / "ds", events)
    expected = "low effective sample size for o1.00_b0.00: ESS 4.0 < 100"
    assert main(["ope-dataset", "--dataset", str(tmp_path / "ds"), "--candidate", ARM, "--json"]) == 0
    [warning] = json.loads(capsys.readouterr().out)["symbols"]["BTCUSDT"]["warnings"]
    assert warning.startswith(expected)
    assert main(["ope-dataset", "--dataset", str(tmp_path / "ds"), "--candidate", ARM]) == 0
    assert f"  warning: {expected}" in capsys.readouterr().out
    journal = tmp_path / "journal.sqlite"
    with Journal(journal) as written:
        written.append_many(events)
    assert main(["ope", "--journal", str(journal), "--candidate", ARM]) == 0
    assert f"  warning: {expected}" in capsys.readouterr().out, "the same warning as one journal's OPE"


@pytest.mark.parametrize("b_days, warned", [((0,), True), ((1,), False)])
def test_policies_routing_over_the_same_time_warn_across_partitions(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], b_days: tuple[int, ...], warned: bool) -> None:
    """A simulation's export holds every policy routing the same intents: ``ope`` warned that on_policy is their
    mixture, ``ope-dataset`` pooled them silently. Policy A routes on both days; B beside it on day 0 (warned, the
    spans of two partitions merged), or only after it on day 1 (a takeover, one log, as live writes it)."""
    day_ns = 86_400 * 10**9
    a = [(f"a{day}-{i}", "A", day * day_ns + i * 10**9) for day in (0, 1) for i in range(20)]
    b = [(f"b{day}-{i}", "B", day * day_ns + (i + 30) * 10**9) for day in b_days for i in range(20)]
    if not warned:
        a = [row for row in a if row[2] < day_ns]
    events = [msgspec.structs.replace(routed(arm=ARM if i % 2 else "o0.00_b0.00", propensity=0.5, intent_id=intent,
                                             arrival_ts_ns=ts, fills=(fill(100.01, 1.0, trade_id=intent),)),
                                      policy_id=policy)
              for i, (intent, policy, ts) in enumerate(a + b)]
    write_router_events(tmp_path / "ds", events)
    assert main(["ope-dataset", "--dataset", str(tmp_path / "ds"), "--candidate", ARM, "--json"]) == 0
    got = json.loads(capsys.readouterr().out)["symbols"]["BTCUSDT"]
    assert got["logging_policies"] == ["A", "B"]
    mixed = [w for w in got["warnings"] if "logging policies routing over the same time" in w]
    assert bool(mixed) is warned
    if warned:
        assert mixed[0].endswith("score one of them with `ope --journal FILE --logging-policy ID` (A, B)")
