"""``router-tuner journal count|export`` on a small journal."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from router_tuner.cli.main import main
from router_tuner.executor.journal import Journal
from router_tuner.router.arrow_events import from_arrow
from router_tuner.router.events import EVENT_TYPES
from tests.factories import fill, routed


def test_count_and_export_round_trip(journal_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["journal", "count", "--journal", str(journal_path)]) == 0
    counts = dict(line.split() for line in capsys.readouterr().out.splitlines())
    assert counts["router"] == "3" and counts["veto"] == "0"
    out = tmp_path / "router.parquet"
    assert main(["journal", "export", "--journal", str(journal_path), "--kind", "router", "--out", str(out)]) == 0
    assert "wrote 3 router records" in capsys.readouterr().out
    with Journal(journal_path, readonly=True) as journal:
        assert from_arrow(pq.read_table(out), "router") == list(journal.read("router"))


def test_count_and_export_print_json_on_request(journal_path: Path, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["journal", "count", "--journal", str(journal_path), "--json"]) == 0
    counts = json.loads(capsys.readouterr().out)
    assert counts["router"] == 3 and counts["veto"] == 0 and set(counts) == set(EVENT_TYPES)
    out = tmp_path / "router.parquet"
    argv = ["journal", "export", "--journal", str(journal_path), "--kind", "router", "--json"]
    assert main([*argv, "--out", str(out)]) == 0
    assert json.loads(capsys.readouterr().out) == {"kind": "router", "rows": 3, "out": str(out)}
    assert main([*argv, "--partitioned", str(tmp_path / "dataset")]) == 0
    written = json.loads(capsys.readouterr().out)
    assert written["rows"] == 3 and sum(p["rows"] for p in written["partitions"]) == 3
    assert {p["symbol"] for p in written["partitions"]} == {"BTCUSDT"}
    # a failure under --json is still one plain line on stderr, and stdout stays empty
    assert main(["journal", "count", "--journal", str(tmp_path / "none.sqlite"), "--json"]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and len(captured.err.splitlines()) == 1 and "no journal at" in captured.err


def test_missing_journal_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["journal", "count", "--journal", str(tmp_path / "none.sqlite")]) == 2
    assert "no journal at" in capsys.readouterr().err


def test_partitioned_export_writes_one_file_per_day_and_symbol(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "two_days.sqlite"
    day_ns = 86_400 * 10**9
    with Journal(path) as journal:
        journal.append_many([routed(symbol=symbol, intent_id=f"{symbol}{i}", arrival_ts_ns=i * day_ns,
                                    fills=(fill(100.0, 1.0, trade_id=f"{symbol}{i}"),))
                             for symbol in ("BTCUSDT", "ETHUSDT") for i in range(2)])
    out = tmp_path / "dataset"
    assert main(["journal", "export", "--journal", str(path), "--kind", "router", "--partitioned", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "wrote 4 router records" in printed and "in 4 partitions" in printed
    files = sorted(str(p.relative_to(out)) for p in out.rglob("*.parquet"))
    assert files == [f"day=1970-01-0{d}/symbol={s}/part-0.parquet" for d in (1, 2) for s in ("BTCUSDT", "ETHUSDT")]
    frame = pd.read_parquet(out)
    assert len(frame) == 4 and set(frame["symbol"].astype(str)) == {"BTCUSDT", "ETHUSDT"}
    assert str(frame["arrival_ts_ns"].dtype) == "datetime64[ns, UTC]"  # Arrow timestamps, fills nested
    assert all(len(fills) == 1 and fills[0]["price"] == 100.0 for fills in frame["fills"])
    # the same folder again is refused before reading anything: exports are never merged
    assert main(["journal", "export", "--journal", str(path), "--kind", "router", "--partitioned", str(out)]) == 2
    assert "already exists" in capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["--kind", "veto", "--partitioned", "DIR"], "router events only"),
    (["--kind", "router", "--partitioned", "EMPTY"], "no router events"),
])
def test_partitioned_export_bad_input_is_one_line_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                         argv: list[str], message: str) -> None:
    path = tmp_path / "empty.sqlite"
    Journal(path).close()
    argv = [a.replace("DIR", str(tmp_path / "d")).replace("EMPTY", str(tmp_path / "e")) for a in argv]
    assert main(["journal", "export", "--journal", str(path), *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "d").exists() and not (tmp_path / "e").exists()


def test_export_needs_exactly_one_target(journal_path: Path, tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["journal", "export", "--journal", str(journal_path), "--kind", "router"])
    assert exited.value.code == 2
    with pytest.raises(SystemExit) as exited:
        main(["journal", "export", "--journal", str(journal_path), "--kind", "router", "--out", "a",
              "--partitioned", str(tmp_path / "b")])
    assert exited.value.code == 2


def test_count_says_how_many_intent_lines_were_quarantined(journal_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    """Malformed intents lines `live --follow` quarantined (the journal's dead_letters) were in none of the counts and
    named nowhere: 3 router events read as everything the journal saw. Now a note on stderr; stdout keeps the counts
    (one JSON object under --json)."""
    from router_tuner.executor.intents import MalformedLine

    with Journal(journal_path) as journal:
        for n in (4, 7):
            journal.quarantine(MalformedLine("/in/intents.jsonl", n, b"{not json", "bad line"), ts_ns=n)
    assert main(["journal", "count", "--journal", str(journal_path), "--json"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["router"] == 3
    assert captured.err == (f"router-tuner journal: note: {journal_path} also holds 2 quarantined intent line(s), not "
                            "counted above: malformed lines `live --follow` set aside (its dead_letters table), never "
                            "routed\n")
    assert main(["journal", "count", "--journal", str(journal_path)]) == 0
    assert "router               3" in capsys.readouterr().out


@pytest.mark.parametrize("extra", [[], ["--json"]])
def test_count_onto_a_full_device_names_standard_output_not_the_journal(
        journal_path: Path, extra: list[str], capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """`journal count J > /dev/full` ended "journal J: No space left on device", exit 1: the counts were printed
    inside the journal's reading, so stdout's failure blamed the journal (and its disk)."""
    import contextlib
    import sys

    full = open("/dev/full", "w", buffering=1)  # noqa: SIM115  line-buffered: the print's newline writes to it
    monkeypatch.setattr(sys, "stdout", full)
    code = main(["journal", "count", "--journal", str(journal_path), *extra])
    monkeypatch.undo()
    with contextlib.suppress(OSError):  # the unwritten counts are still in its buffer
        full.close()
    assert code == 1
    assert capsys.readouterr().err == ("router-tuner journal: standard output: No space left on device: the disk is "
                                       "full; free space and rerun\n")


@pytest.mark.parametrize("kind", ["folder", "fifo"])
def test_a_folder_or_fifo_given_as_the_journal_is_named_as_such(tmp_path: Path, kind: str,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    """`journal count --journal DIR` said "no journal at DIR: check the path", though DIR exists: the line named
    no cause (a folder where the journal file belongs)."""
    import os

    path = tmp_path / "var"
    path.mkdir() if kind == "folder" else os.mkfifo(path)
    said = "a folder" if kind == "folder" else "a FIFO or device"
    out = str(tmp_path / "o.parquet")
    for argv in (["journal", "count", "--journal", str(path), "--json"],
                 ["journal", "export", "--journal", str(path), "--kind", "router", "--out", out]):
        assert main(argv) == 2
        captured = capsys.readouterr()
        assert captured.out == "" and captured.err == (
            f"router-tuner journal: journal {path}: {path} is {said}, not a journal file; point at a journal written "
            "by router-tuner\n")


def test_partitioned_export_onto_a_dangling_link_is_refused_naming_the_link(
        journal_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`--partitioned LINK` (a symbolic link to nothing: `exists()` is False) ended "journal J: Not a directory:
    .LINK.x.tmp: choose a location that can be written", blaming the journal being read."""
    link = tmp_path / "dataset"
    link.symlink_to(tmp_path / "gone")
    assert main(["journal", "export", "--journal", str(journal_path), "--kind", "router", "--partitioned",
                 str(link)]) == 2
    assert capsys.readouterr().err == (
        f"router-tuner journal: --partitioned {link}: is a symbolic link (to {tmp_path / 'gone'}, which does not "
        "exist): choose a new folder (a dataset is written as a new folder, not through a link)\n")
    assert link.is_symlink() and not (tmp_path / "gone").exists()
    assert not [p.name for p in tmp_path.iterdir() if not p.name.startswith("journal.sqlite") and p != link]
