"""A seventh careless pass: router, risk, strategy and executor settings at their extremes, odd intents files for
``live``, and paper ``live`` runs killed and restarted.

Each test is a case that went wrong before its fix.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import msgspec
import pytest

from router_tuner.cli.main import BAD_INPUT, main
from router_tuner.executor.journal import Journal
from router_tuner.router.events import Intent
from tests.cli.test_cli_failures import _damaged, one_line_failure
from tests.conftest import edit_config


def _intent(intent_id: str = "i0", **fields: object) -> Intent:
    base = {"intent_id": intent_id, "symbol": "BTCUSDT", "side": "buy", "size_hint_usd": 300.0, "tier": "CORE",
            "strategy": "s", "reduce_only": False, "close_position": False, "position_side": "LONG",
            "is_stop": False, "ts_ns": time.time_ns()}
    return Intent(**{**base, **fields})


def _routing_config(config: Path) -> Path:
    """The quiet defaults with the screener's book gate off, so every sound intent is routed."""
    edit_config(config, "strategy_config.json",
                lambda d: d["screener"].update(orderbook_imbalance_gate=0.0, require_imbalance_alignment=False))
    return config


def _live(tmp_path: Path, config: Path, intents: Path, *extra: str) -> list[str]:
    return ["live", "--venue", "binanceusdm", "--config", str(config), "--idle-poll-s", "0.05",
            "--intents", str(intents), "--journal", str(tmp_path / "journal.sqlite"),
            "--store", str(tmp_path / "store.sqlite"), *extra]


def test_a_line_resent_while_its_route_works_is_the_same_intent_not_a_conflicting_duplicate(
        tmp_path: Path, quiet_config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """An at-least-once producer writes the same line twice: the second used to be vetoed as "already processed
    with other content" (journaled as ``i0~dup-…``) whenever it came while the first was still being routed."""
    intent = _intent()
    intents = tmp_path / "intents.jsonl"
    intents.write_bytes((msgspec.json.encode(intent) + b"\n") * 3)
    assert main(_live(tmp_path, _routing_config(quiet_config), intents)) == 0
    with Journal(tmp_path / "journal.sqlite", readonly=True) as journal:
        assert [event.intent_id for event in journal.read("router")] == ["i0"]
        assert list(journal.read("veto")) == []


def _write_intents(path: Path, intents: list[Intent]) -> Path:
    path.write_bytes(b"".join(msgspec.json.encode(intent) + b"\n" for intent in intents))
    return path


def test_a_journal_that_lost_records_is_named_before_the_tuner_state_is_blamed(
        tmp_path: Path, quiet_config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The journal went back (its -wal cut after a kill, an older copy restored) while the tuner state and the
    store kept up: ``live --policy-source tuner`` said the tuner state was "of another journal?" and told the user to
    move it away, which only led to the store's refusal of the same journal (and lost a sound state)."""
    config = _routing_config(quiet_config)
    tuner = ["--policy-source", "tuner", "--no-mlflow", "--tuner-state", str(tmp_path / "tuner" / "state.json")]
    first = _write_intents(tmp_path / "first.jsonl", [_intent("a0")])
    assert main(_live(tmp_path, config, first, *tuner)) == 0
    with sqlite3.connect(tmp_path / "journal.sqlite") as live, sqlite3.connect(tmp_path / "older.sqlite") as copy:
        live.backup(copy)
    more = _write_intents(tmp_path / "more.jsonl", [_intent(f"b{i}", symbol=("BTCUSDT", "ETHUSDT")[i % 2])
                                                    for i in range(12)])
    assert main(_live(tmp_path, config, more, *tuner)) == 0
    for sidecar in ("", "-wal", "-shm"):
        (tmp_path / f"journal.sqlite{sidecar}").unlink(missing_ok=True)
    (tmp_path / "older.sqlite").rename(tmp_path / "journal.sqlite")
    capsys.readouterr()
    line = one_line_failure(_live(tmp_path, config, more, *tuner), capsys, BAD_INPUT)
    assert "do not belong together: the store holds 12 submitted intents without an outcome in the journal" in line
    assert "Restore the journal of this store (with its -wal file)" in line and "tuner state" not in line
    assert (tmp_path / "tuner" / "state.json").exists()


@pytest.mark.parametrize("kind", ["random", "text", "truncated", "page"])
@pytest.mark.parametrize(("role", "what"), [("--journal", "journal"), ("--store", "executor store")])
def test_live_names_the_journal_or_store_that_does_not_open(
        tmp_path: Path, quiet_config: Path, journal_path: Path, kind: str, role: str, what: str,
        capsys: pytest.CaptureFixture[str]) -> None:
    """A journal or store cut short (a copy interrupted, a disk that filled) ended ``live`` in "database disk image
    is malformed: not a readable SQLite database …" without saying which of the two files it was."""
    damaged = _damaged(tmp_path, journal_path, kind)
    intents = _write_intents(tmp_path / "intents.jsonl", [_intent()])
    argv = _live(tmp_path / "run", quiet_config, intents)
    argv[argv.index(role) + 1] = str(damaged)
    line = one_line_failure(argv, capsys, BAD_INPUT)
    assert line.startswith(f"router-tuner live: {what} {damaged}: ")


@pytest.mark.parametrize("kind", ["journal", "foreign"])
def test_a_journal_or_another_programs_database_given_as_the_store_is_refused_and_kept(
        tmp_path: Path, quiet_config: Path, journal_path: Path, kind: str, capsys: pytest.CaptureFixture[str]) -> None:
    """``--store`` naming another journal (or any SQLite file) used to run: the store's tables were written into
    that file beside its own, and the run went on as if on a new store."""
    damaged = journal_path if kind == "journal" else _damaged(tmp_path, journal_path, kind)
    before = damaged.read_bytes()
    intents = _write_intents(tmp_path / "intents.jsonl", [_intent()])
    argv = _live(tmp_path / "run", quiet_config, intents)
    argv[argv.index("--store") + 1] = str(damaged)
    line = one_line_failure(argv, capsys, BAD_INPUT)
    assert line.startswith(f"router-tuner live: executor store {damaged}: holds tables (")
    assert line.endswith("but no submissions table: not an executor store; point --store at the executor store "
                         "router-tuner wrote beside this journal")
    assert damaged.read_bytes() == before


@pytest.mark.parametrize("value", [0.0, 1e-300, 0.5])
@pytest.mark.parametrize(("section", "key"), [("route", "rate_limit_backoff_ms"), ("live", "backoff_initial_ms"),
                                              ("live", "stream_reconnect_initial_ms")])
def test_a_back_off_that_starts_at_nothing_is_refused_by_config_check(
        config_dir: Path, capsys: pytest.CaptureFixture[str], section: str, key: str, value: float) -> None:
    """0 (or 1e-300) passed ``config check``: a venue that answered "slow down" was retried at once up to
    ``rate_limit_max_retries`` times, and a dropped stream reconnected about a thousand times before its back-off
    reached a millisecond."""
    edit_config(config_dir, "executor.json", lambda d: d[section].update({key: value}))
    assert main(["config", "check", str(config_dir)]) == BAD_INPUT
    assert f"executor.json: $.{section}.{key}: Expected `float` >= 1.0" in capsys.readouterr().err
    edit_config(config_dir, "executor.json", lambda d: d[section].update({key: 1.0}))
    assert main(["config", "check", str(config_dir)]) == 0


@pytest.mark.parametrize("size", [10.0, 0.001, 1e-300])
def test_a_contract_size_the_executor_cannot_book_is_refused_by_config_check(
        config_dir: Path, capsys: pytest.CaptureFixture[str], size: float) -> None:
    """The executor books exposure and PnL as quantity x price: ``contract_size`` 10 on BTCUSDT passed ``config
    check`` and paper ``live`` held 3,000 USD of BTCUSDT against the 2,500 USD ``symbol_caps.max_nav_pct`` allows
    (its caps saw a tenth of it); 1e-300 sent orders for 3.3e297 units."""
    edit_config(config_dir, "strategy_config.json", lambda d: d["universe"]["BTCUSDT"].update(contract_size=size))
    assert main(["config", "check", str(config_dir)]) == BAD_INPUT
    assert (f"strategy_config.json: $.universe.BTCUSDT.contract_size: {size:g}: the executor trades BTCUSDT "
            "(executor.json instruments) and books its exposure and PnL as quantity x price, one base unit per "
            f"contract, so every risk cap would see {1 / size:g}x the true exposure; set it to 1") \
        in capsys.readouterr().err


def test_a_contract_size_off_1_still_loads_for_a_symbol_the_executor_does_not_trade(config_dir: Path) -> None:
    edit_config(config_dir, "strategy_config.json", lambda d: d["universe"]["BTCUSDC"].update(contract_size=10.0))
    assert main(["config", "check", str(config_dir)]) == 0


@pytest.mark.parametrize(("file", "edit", "line"), [
    ("executor.json", lambda d: d["paper"]["synthetic"]["BTCUSDT"].update(mid0=1e-300),
     "executor.json: $.paper.synthetic.BTCUSDT.mid0: 1e-300 is 1e-299 ticks of 0.1 (instruments.BTCUSDT.tick_size), "
     "under the half spread of 1 ticks plus one: the synthetic bid would start at zero; raise it or lower "
     "spread_ticks"),
    ("executor.json", lambda d: d["instruments"]["BTCUSDT"].update(tick_size=1e-12),
     "executor.json: $.paper.synthetic.BTCUSDT.mid0: 60000 is 6e+16 ticks of 1e-12 (instruments.BTCUSDT.tick_size), "
     "over 1e+15: prices that fine are not distinct floating-point numbers (the bid would equal the ask); use a "
     "coarser tick or a lower price"),
    ("router.json", lambda d: d["simulation"]["synthetic_market"]["symbols"].update(BTCUSDT=0.05),
     "router.json: $.simulation.synthetic_market.symbols.BTCUSDT: 0.05 is 5 ticks of 0.01 "
     "(simulation.synthetic_market.tick_size), under the half spread of 10 ticks plus one"),
])
def test_a_synthetic_first_mid_its_tick_cannot_draw_is_refused_by_config_check(
        config_dir: Path, capsys: pytest.CaptureFixture[str], file: str, edit: object, line: str) -> None:
    """They passed ``config check``: paper ``live`` then ended in "venue not started: ValueError: BTCUSDT: the mid
    path fell to zero; lower volatility or duration" (exit 1; neither was the cause), and a 1e-12 tick on a 60,000
    mid quoted bid = ask, so every BTCUSDT route ended "crossed_or_locked_book"."""
    edit_config(config_dir, file, edit)
    assert main(["config", "check", str(config_dir)]) == BAD_INPUT
    assert line in capsys.readouterr().err


def test_a_synthetic_mid_of_a_few_ticks_still_loads(config_dir: Path) -> None:
    edit_config(config_dir, "executor.json", lambda d: d["paper"]["synthetic"]["BTCUSDT"].update(mid0=0.2))
    assert main(["config", "check", str(config_dir)]) == 0


@pytest.mark.parametrize(("file", "section"), [("executor.json", ("paper", "synthetic", "BTCUSDT")),
                                               ("router.json", ("simulation", "synthetic_market"))])
def test_a_sweep_decay_that_sweeps_past_any_price_is_refused_by_config_check(
        config_dir: Path, capsys: pytest.CaptureFixture[str], file: str, section: tuple[str, ...]) -> None:
    """``sweep_decay_per_bps`` 1e-300 passed ``config check``; paper ``live`` ended in "venue not started:
    ValueError: BTCUSDT: trade_px has a non-positive price at index 2" (exit 1) under numpy overflow warnings."""
    def set_decay(value: float) -> None:
        def edit(doc: dict) -> None:
            node = doc
            for key in section:
                node = node[key]
            node["sweep_decay_per_bps"] = value
        edit_config(config_dir, file, edit)
    set_decay(1e-300)
    assert main(["config", "check", str(config_dir)]) == BAD_INPUT
    assert (f"{file}: $.{'.'.join(section)}.sweep_decay_per_bps: Expected `float` >= 0.001"
            in capsys.readouterr().err)
    set_decay(1e-3)
    assert main(["config", "check", str(config_dir)]) == 0


def test_a_synthetic_market_shorter_than_the_intents_window_is_refused_by_config_check(
        config_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``simulation.synthetic_market.duration_s`` 1e-300 passed ``config check``; ``sweep --data synthetic`` then
    failed each task as a runtime failure (exit 1): "the tape (0.0 s) is shorter than warmup_ms + tail_ms"."""
    edit_config(config_dir, "router.json", lambda d: d["simulation"]["synthetic_market"].update(duration_s=1e-300))
    assert main(["config", "check", str(config_dir)]) == BAD_INPUT
    assert ("router.json: $.simulation.synthetic_market.duration_s: 1e-300 s is no longer than simulation.intents "
            "warmup_ms 5000 + tail_ms 15000: the synthetic tape would hold no intent; lengthen it or shorten those"
            in capsys.readouterr().err)
    edit_config(config_dir, "router.json", lambda d: d["simulation"]["synthetic_market"].update(duration_s=20.001))
    assert main(["config", "check", str(config_dir)]) == 0


def test_intents_lines_ended_by_a_bare_cr_are_named_as_such(
        tmp_path: Path, quiet_config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A file saved with old Mac line endings was refused as "JSON is malformed: trailing characters (byte 234)";
    CRLF and blank lines still route."""
    intents = tmp_path / "intents.jsonl"
    intents.write_bytes(b"".join(msgspec.json.encode(_intent(f"i{i}")) + b"\r" for i in range(2)))
    line = one_line_failure(_live(tmp_path, quiet_config, intents), capsys, BAD_INPUT)
    assert line == (f"router-tuner live: stopped at a malformed intent: {intents}:1: lines end in a bare CR (old Mac "
                    "line endings), so several intents read as one: end each line with LF or CRLF; fix or remove that "
                    "line and run again (the intents before it are journaled and will not be routed twice)")
    crlf = tmp_path / "crlf.jsonl"
    crlf.write_bytes(b"\r\n".join([msgspec.json.encode(_intent("c0")), b"", b"  ", msgspec.json.encode(_intent("c1"))]))
    assert main(_live(tmp_path / "crlf", _routing_config(quiet_config), crlf)) == 0
    with Journal(tmp_path / "crlf" / "journal.sqlite", readonly=True) as journal:
        assert sorted(event.intent_id for event in journal.read("router")) == ["c0", "c1"]


def test_an_intents_line_that_is_not_utf8_names_the_byte_in_the_line(
        tmp_path: Path, quiet_config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """It read "'utf-8' codec can't decode byte 0xff in position 0: invalid start byte": the decoder counted from
    the string it was reading, not the line, and said nothing of what to do."""
    intents = tmp_path / "intents.jsonl"
    intents.write_bytes(b'{"intent_id": "\xff\xfe", "symbol": "BTCUSDT"}\n')
    line = one_line_failure(_live(tmp_path, quiet_config, intents), capsys, BAD_INPUT)
    assert line.startswith(f"router-tuner live: stopped at a malformed intent: {intents}:1: byte 15 (0xff) is not "
                           "UTF-8 text: save it as UTF-8; fix or remove that line")
