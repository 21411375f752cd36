"""Careless inputs at the executor: a reused intent id with other content, an intent time that is not
nanoseconds since the epoch, a paper venue the project cannot trade. Each is refused with a record or a
one-line exit 2, never routed and never dropped silently."""

from __future__ import annotations

import math
import time
from pathlib import Path

import msgspec
import pytest

from router_tuner.cli.main import main as cli_main
from router_tuner.config.loader import DEFAULTS_DIR
from router_tuner.executor.intents import JsonlIntentSource
from router_tuner.executor.journal import Journal
from tests.executor.test_executor import SpyVenue
from tests.executor.test_executor_support import (
    build_executor,
    executor_config,
    intent,
    make_paper_venue,
    paper_config_dir,
)


def _vetoes(journal) -> dict[str, list[str]]:
    return {v.intent.intent_id: [r.code for r in v.reasons] for v in journal.read("veto")}


def test_a_reused_id_with_other_content_is_a_journaled_duplicate_veto(tmp_path: Path) -> None:
    config = executor_config()
    venue = SpyVenue(make_paper_venue(config), {})
    executor, journal, store = build_executor(config, venue, tmp_path)
    executor.start()
    executor.process(intent("d1", size_hint_usd=300.0))
    placed = len(venue.placed)
    assert executor.process(intent("d1", size_hint_usd=300.0)) is None  # same content: idempotent
    record = executor.process(intent("d1", size_hint_usd=900.0, side="sell", position_side="SHORT"))
    assert record is not None and record.intent_id.startswith("d1~dup-") and record.filled_qty == 0
    assert len(venue.placed) == placed
    [veto] = list(journal.read("veto"))
    [reason] = veto.reasons
    assert reason.code == "duplicate_intent_id" and reason.threshold == "d1"
    assert veto.intent.size_hint_usd == 900.0 and veto.intent.intent_id == record.intent_id
    assert executor.process(intent("d1", size_hint_usd=900.0, side="sell", position_side="SHORT")) is None
    assert journal.count("veto") == 1 and journal.count("trade") == 2

    journal.close()
    store.close()
    executor, journal, store = build_executor(config, venue, tmp_path)  # a restart re-reading the same file
    executor.start()
    assert executor.process(intent("d1", size_hint_usd=300.0)) is None
    assert executor.process(intent("d1", size_hint_usd=900.0, side="sell", position_side="SHORT")) is None
    executor.process(intent("d1", size_hint_usd=301.0))
    assert journal.count("veto") == 2 and journal.count("trade") == 3


def test_a_vetoed_id_reused_with_other_content_is_a_duplicate_veto_too(tmp_path: Path) -> None:
    config = executor_config()
    executor, journal, _ = build_executor(config, make_paper_venue(config), tmp_path)
    executor.start()
    executor.process(intent("v1", symbol="DOGEUSDT"))
    executor.process(intent("v1", size_hint_usd=300.0))
    codes = _vetoes(journal)
    assert codes.pop("v1") == ["symbol_not_tradable"]
    assert list(codes.values()) == [["duplicate_intent_id"]]
    assert journal.count("router") == 0


@pytest.mark.parametrize("ts_ns", [-5, 0, 9 * 10**18, 1_700_000_000, 1_700_000_000_000, 4_102_444_800 * 10**9])
def test_an_intent_time_that_is_not_epoch_nanoseconds_is_vetoed(tmp_path: Path, ts_ns: int) -> None:
    config = executor_config()
    venue = SpyVenue(make_paper_venue(config), {})
    executor, journal, _ = build_executor(config, venue, tmp_path)
    executor.start()
    executor.process(intent("t1", size_hint_usd=300.0, ts_ns=ts_ns))
    assert venue.placed == []
    [veto] = list(journal.read("veto"))
    assert [r.code for r in veto.reasons] == ["intent_ts_out_of_range"]
    assert veto.reasons[0].observed == str(ts_ns) and veto.context["stage"] == "intent"


def test_an_intent_older_than_the_configured_age_is_a_journaled_veto_and_a_fresh_one_routes(tmp_path: Path) -> None:
    """The executor's clock here is the paper venue's (the synthetic market starts at ``T0_NS``): with
    ``intent_max_age_s`` 60 an intent decided an hour before it, or an hour ahead, is vetoed with its age; one
    decided at the venue's time routes. A month-old intents file pointed at a fresh journal used to route line by
    line."""
    base = executor_config()
    config = msgspec.structs.replace(base, risk=msgspec.structs.replace(base.risk, intent_max_age_s=60.0))
    venue = SpyVenue(make_paper_venue(config), {})
    executor, journal, _ = build_executor(config, venue, tmp_path)
    executor.start()
    now_ns = venue.clock.now_ns()
    executor.process(intent("old", size_hint_usd=300.0, ts_ns=now_ns - 3_600 * 10**9))
    executor.process(intent("ahead", size_hint_usd=300.0, ts_ns=now_ns + 3_600 * 10**9))
    assert venue.placed == []
    vetoes = {v.intent.intent_id: v for v in journal.read("veto")}
    assert [r.code for r in vetoes["old"].reasons] == ["intent_stale"]
    assert [r.code for r in vetoes["ahead"].reasons] == ["intent_from_future"]
    assert vetoes["old"].reasons[0].threshold == 60.0 and vetoes["old"].reasons[0].observed >= 3_600.0
    executor.process(intent("fresh", size_hint_usd=300.0, ts_ns=venue.clock.now_ns()))
    assert len(venue.placed) >= 1 and journal.count("router") == 1


def _run_file(tmp_path: Path, intents: list):
    """Route ``intents`` as a JSONL file through a started executor; returns its journal."""
    config = executor_config()
    executor, journal, _ = build_executor(config, make_paper_venue(config), tmp_path)
    executor.start()
    path = tmp_path / "intents.jsonl"
    path.write_bytes(b"".join(msgspec.json.encode(item) + b"\n" for item in intents))
    source = JsonlIntentSource(path, follow=False)
    assert executor.run(source, idle_poll_s=0.0, should_stop=lambda: False, on_idle=None) == len(intents)
    source.close()
    return journal


def test_a_decoded_file_with_bad_times_is_vetoed_line_by_line(tmp_path: Path) -> None:
    journal = _run_file(tmp_path, [intent(f"f{k}", size_hint_usd=300.0, ts_ns=ts)
                                   for k, ts in enumerate([-5, 9 * 10**18, 1_700_000_000_000_000_000])])
    assert _vetoes(journal) == {"f0": ["intent_ts_out_of_range"], "f1": ["intent_ts_out_of_range"]}
    assert journal.count("router") == 1


def test_an_unknown_paper_venue_is_exit_2_listing_the_supported_ones(tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli_main(["live", "--venue", "kraken", "--config", str(DEFAULTS_DIR), "--intents", str(tmp_path / "i"),
                  "--journal", str(tmp_path / "j.sqlite"), "--store", str(tmp_path / "s.sqlite")])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "argument --venue: invalid choice: 'kraken' (choose from 'binanceusdm')" in err
    assert "Traceback" not in err and not (tmp_path / "j.sqlite").exists()


@pytest.mark.parametrize(("changes", "field", "text", "code"), [
    ({"ts_ns": 2**63}, "ts_ns", str(2**63), "intent_ts_out_of_range"),
    ({"ts_ns": -(10**40)}, "ts_ns", str(-(10**40)), "intent_ts_out_of_range"),
    ({"size_hint_usd": math.nan}, "size_hint_usd", "nan", "invalid_size_hint"),
    ({"size_hint_usd": -math.inf}, "size_hint_usd", "-inf", "invalid_size_hint"),
])
def test_an_intent_the_journal_cannot_hold_is_still_a_journaled_veto(tmp_path: Path, changes: dict, field: str,
                                                                     text: str, code: str) -> None:
    config = executor_config()
    venue = make_paper_venue(config)
    executor, journal, store = build_executor(config, venue, tmp_path)
    executor.start()
    poison = msgspec.structs.replace(intent("p1", size_hint_usd=300.0), **changes)
    executor.process(poison)
    [veto] = list(journal.read("veto"))
    assert veto.reasons[0].code == code and str(veto.reasons[0].observed) == text
    assert getattr(veto.intent, field) == 0 and veto.context["unjournalable_intent_fields"] == {field: text}
    journal.close()
    store.close()
    executor, journal, store = build_executor(config, venue, tmp_path)
    executor.start()
    assert executor.process(poison) is None  # the same intent again: its original content is known
    assert journal.count("veto") == 1


def test_a_jsonl_time_beyond_int64_is_a_veto_not_a_crash(tmp_path: Path) -> None:
    journal = _run_file(tmp_path, [intent("big", ts_ns=9_223_372_036_854_775_808)])
    assert _vetoes(journal) == {"big": ["intent_ts_out_of_range"]}


def test_a_malformed_intent_line_stops_live_with_exit_2_naming_the_line(config_dir: Path, tmp_path: Path,
                                                                          capsys: pytest.CaptureFixture[str]) -> None:
    paper_config_dir(config_dir)
    good = msgspec.json.encode(intent("g1", size_hint_usd=300.0, ts_ns=time.time_ns()))
    (tmp_path / "intents.jsonl").write_bytes(good + b"\n" + b'{"intent_id": "x"}\n' + good.replace(b"g1", b"g2"))
    args = ["live", "--venue", "binanceusdm", "--config", str(config_dir), "--intents", str(tmp_path / "intents.jsonl"),
            "--journal", str(tmp_path / "journal.sqlite"), "--store", str(tmp_path / "executor.sqlite")]
    assert cli_main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith(f"router-tuner live: stopped at a malformed intent: {tmp_path / 'intents.jsonl'}:2: ")
    assert "Traceback" not in err
    with Journal(tmp_path / "journal.sqlite", readonly=True) as journal:
        assert [t.intent_id for t in journal.read("trade")] == ["g1"]  # nothing past the bad line


def test_a_close_takes_the_whole_leg_whatever_its_hint_and_a_reduction_of_nothing_is_vetoed(tmp_path: Path) -> None:
    """close_position with a hint of 1e-300 closes the whole leg, as Binance's closePosition does; a reduce-only or
    close with the opening side, or on a flat leg, is a journaled veto, never routed."""
    config = executor_config()
    venue = SpyVenue(make_paper_venue(config), {})
    executor, journal, _store = build_executor(config, venue, tmp_path)
    executor.start()
    opened = executor.process(intent("o1", size_hint_usd=300.0))
    assert opened is not None and opened.filled_qty > 0
    executor.process(intent("r1", reduce_only=True))                        # a buy reduces no long
    executor.process(intent("c1", close_position=True))                     # nor closes it
    executor.process(intent("s1", side="sell", position_side="SHORT", reduce_only=True))  # no short to reduce
    closed = executor.process(intent("c2", side="sell", close_position=True, size_hint_usd=1e-300))
    assert closed is not None and closed.filled_qty == opened.filled_qty
    [event] = [e for e in journal.read("router") if e.intent_id == "c2"]
    assert event.close_position and event.qty == opened.filled_qty
    executor.process(intent("c3", side="sell", close_position=True))       # the leg is flat now
    assert _vetoes(journal) == {"r1": ["nothing_to_reduce"], "c1": ["nothing_to_reduce"],
                                "s1": ["nothing_to_reduce"], "c3": ["nothing_to_reduce"]}
