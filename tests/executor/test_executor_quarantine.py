"""Malformed intent lines: quarantined (dead letter, alert, counter) in ``--follow`` mode while the loop goes on,
a stop before anything past the line without it, and never quarantined or routed twice across restarts."""

from __future__ import annotations

import signal
import sqlite3
import time
from pathlib import Path

import msgspec
import pytest

from router_tuner.executor.intents import IntentFormatError, JsonlIntentSource
from router_tuner.executor.journal import Journal
from router_tuner.executor.loop import Executor
from router_tuner.executor.quarantine import ALERT_CODE
from router_tuner.executor.store import ExecutorStore
from tests.executor.test_executor_support import (
    build_executor,
    executor_config,
    intent,
    journaled_trades,
    kill9,
    make_paper_venue,
    paper_config_dir,
    start_live,
    wait_for,
)

BAD = b'{"intent_id": "x"}'
GARBAGE = b"\xff\xfe not json"


def _line(intent_id: str) -> bytes:
    return msgspec.json.encode(intent(intent_id, size_hint_usd=300.0, ts_ns=time.time_ns())) + b"\n"


def _run(executor: Executor, path: Path, *, follow: bool, until_trades: int | None = None) -> int:
    """Run ``path`` through the loop; a followed file is run until ``until_trades`` are journaled."""
    source = JsonlIntentSource(path, follow=follow)
    try:
        def done() -> bool:
            return until_trades is not None and executor.journal.count("trade") >= until_trades
        return executor.run(source, idle_poll_s=0.01, should_stop=done, on_idle=None, quarantine_malformed=follow)
    finally:
        source.close()


def _alerts(store: ExecutorStore) -> list[str]:
    return [a.detail for a in store.alerts() if a.code == ALERT_CODE]


def _counted(executor: Executor, result: str) -> float:
    return executor.telemetry.metrics.registry.get_sample_value("executor_intents_total", {"result": result}) or 0.0


def test_follow_mode_quarantines_bad_lines_and_routes_the_ones_after(tmp_path: Path) -> None:
    config = executor_config()
    venue = make_paper_venue(config)
    executor, journal, store = build_executor(config, venue, tmp_path)
    executor.start()
    path = tmp_path / "intents.jsonl"
    path.write_bytes(_line("g1") + BAD + b"\n" + GARBAGE + b"\n" + _line("g2"))
    assert _run(executor, path, follow=True, until_trades=2) == 2
    assert [t.intent_id for t in journal.read("trade")] == ["g1", "g2"]
    letters = journal.dead_letters()
    assert [(d.file, d.line_no) for d in letters] == [(str(path.resolve()), 2), (str(path.resolve()), 3)]
    assert letters[0].raw == BAD.decode() and "missing required field `symbol`" in letters[0].error
    assert letters[1].raw == r"\xff\xfe not json" and letters[1].ts_ns > 0
    alerts = _alerts(store)
    assert len(alerts) == 2 and alerts[0].startswith(f"{path.resolve()}:2: malformed intent quarantined (")
    assert _counted(executor, "quarantined") == 2
    assert executor.telemetry.metrics.registry.get_sample_value("executor_alerts_total", {"code": ALERT_CODE}) == 2

    journal.close()
    store.close()
    for follow in (True, False):  # a restart, with or without --follow, skips what was handled
        executor, journal, store = build_executor(config, venue, tmp_path)
        executor.start()
        assert _run(executor, path, follow=follow, until_trades=2 if follow else None) == 0
        assert len(journal.dead_letters()) == 2 and len(_alerts(store)) == 2
        assert _counted(executor, "quarantined") == 0 and journal.count("trade") == 2
        journal.close()
        store.close()


def _started_on_a_bad_file(tmp_path: Path) -> tuple[Executor, Journal, ExecutorStore, Path]:
    """A started executor and an intents file whose second of three lines is malformed."""
    config = executor_config()
    executor, journal, store = build_executor(config, make_paper_venue(config), tmp_path)
    executor.start()
    path = tmp_path / "intents.jsonl"
    path.write_bytes(_line("g1") + BAD + b"\n" + _line("g2"))
    return executor, journal, store, path


def test_without_follow_a_new_bad_line_stops_the_run_before_the_lines_after(tmp_path: Path) -> None:
    executor, journal, store, path = _started_on_a_bad_file(tmp_path)
    with pytest.raises(IntentFormatError, match=r"intents\.jsonl:2: "):
        _run(executor, path, follow=False)
    assert [t.intent_id for t in journal.read("trade")] == ["g1"]
    assert journal.dead_letters() == [] and _alerts(store) == []


def test_other_content_on_a_quarantined_line_number_is_a_new_bad_line(tmp_path: Path) -> None:
    executor, journal, _, path = _started_on_a_bad_file(tmp_path)
    _run(executor, path, follow=True, until_trades=2)
    path.write_bytes(_line("g1") + GARBAGE + b"\n" + _line("g2"))  # the file was rewritten: line 2 changed
    with pytest.raises(IntentFormatError, match=r"intents\.jsonl:2: "):
        _run(executor, path, follow=False)
    assert [d.raw for d in journal.dead_letters()] == [BAD.decode()]


def test_a_reader_of_a_journal_without_dead_letters_sees_none(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite"
    Journal(path).close()
    with sqlite3.connect(path) as conn:
        conn.execute("DROP TABLE dead_letters")  # a journal written before the table existed
    with Journal(path, readonly=True) as reader:
        assert reader.dead_letters() == []
    with Journal(path) as writer:  # a writer adds it
        assert writer.dead_letters() == []
    with Journal(path, readonly=True) as reader:
        assert reader.dead_letters() == []


def test_live_follow_quarantines_a_bad_line_and_a_restart_does_not_repeat_it(config_dir: Path,
                                                                             tmp_path: Path) -> None:
    paper_config_dir(config_dir)
    intents = tmp_path / "intents.jsonl"
    intents.write_bytes(_line("g1") + BAD + b"\n" + _line("g2"))
    journal_path = tmp_path / "journal.sqlite"
    for run, expected in ((1, 2), (2, 3)):
        proc, out, err = start_live(tmp_path, config_dir, run, "--follow")
        try:
            wait_for("intents journaled", lambda: journaled_trades(journal_path) == expected, proc)  # noqa: B023
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=30) == 0, err.read_text()
        finally:
            kill9(proc)
        assert "Traceback" not in err.read_text()
        said = "  quarantined 1 malformed intent lines (journal " in out.read_text()
        assert said == (run == 1)  # the restart quarantines nothing
        if run == 1:
            with intents.open("ab") as handle:
                handle.write(_line("g3"))  # read by the restart only after it passed the quarantined line
    with Journal(journal_path, readonly=True) as journal:
        assert [t.intent_id for t in journal.read("trade")] == ["g1", "g2", "g3"]
        assert [(d.line_no, d.raw) for d in journal.dead_letters()] == [(2, BAD.decode())]
    with ExecutorStore(tmp_path / "executor.sqlite", readonly=True) as store:
        assert len(_alerts(store)) == 1
