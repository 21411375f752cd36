"""The command line: exit codes and messages a user and a CI script can rely on."""

from __future__ import annotations

import errno
import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from router_tuner.cli.main import main
from router_tuner.simulation import recording
from tests.conftest import edit_config


def test_config_check_accepts_the_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", "check"]) == 0
    assert "OK" in capsys.readouterr().out


def test_config_check_lists_every_problem_and_fails(config_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    edit_config(config_dir, "risk_limits.json", lambda d: d.update(max_concurrent_positions=0, surprise=1))
    assert main(["config", "check", str(config_dir)]) == 2
    err = capsys.readouterr().err
    assert "2 problem(s)" in err
    assert "risk_limits.json: $.max_concurrent_positions: Expected `int` >= 1" in err
    assert "risk_limits.json: $: Object contains unknown field `surprise`" in err


def test_python_dash_m_cli_is_the_same_entry_point() -> None:
    done = subprocess.run([sys.executable, "-m", "router_tuner.cli", "config", "check"], capture_output=True, text=True,
                          check=False)
    assert done.returncode == 0, done.stderr
    assert "OK" in done.stdout


def test_only_the_chosen_command_is_imported() -> None:
    """`config check` must not pay for river, MLflow or ccxt: only the chosen command's module loads."""
    probe = ("import sys; from cli.main import main; code = main(['config', 'check']); "
             "print(code, sorted(m for m in ('river', 'mlflow', 'ccxt', 'cli.live') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "0 []"


def test_help_lists_every_command_without_importing_them(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert all(name in out for name in ("config", "policy", "record", "journal", "ope", "simulate", "live", "health"))


@pytest.mark.parametrize("typed", [["BTCUSDT", "ETHUSDT"], ["BTCUSDT,ETHUSDT"], ["btcusdt,", "ethusdt"],
                                   ["BTCUSDT, ETHUSDT"]])
def test_symbols_are_space_or_comma_separated_in_every_command(typed: list[str]) -> None:
    from router_tuner.cli.main import build_parser

    for command in (["simulate"], ["record", "--venue", "binanceusdm"], ["sweep"]):
        args = build_parser(command[0]).parse_args([*command, "--symbols", *typed])
        assert args.symbols == ["BTCUSDT", "ETHUSDT"]
    shadow = build_parser("simulate").parse_args(["simulate", "--shadow-symbols", "ethusdt,BTCUSDT"])
    assert shadow.shadow_symbols == ["ETHUSDT", "BTCUSDT"]
    assert build_parser("simulate").parse_args(["simulate", "--shadow-symbols"]).shadow_symbols == []


def test_symbols_without_a_name_are_one_line_and_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["record", "--venue", "binanceusdm", "--symbols", ",", "--out", "unused"])
    assert exit_info.value.code == 2
    [line] = capsys.readouterr().err.splitlines()
    assert line == "router-tuner record: --symbols: no symbol name in ',' (see router-tuner record --help)"


def test_config_check_json_gives_the_verdict_and_the_problems(config_dir: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", "check", "--json"]) == 0
    verdict = json.loads(capsys.readouterr().out)
    assert verdict["ok"] is True and verdict["problems"] == [] and "BTCUSDT" in verdict["symbols"]
    edit_config(config_dir, "risk_limits.json", lambda d: d.update(max_concurrent_positions=0, surprise=1))
    assert main(["config", "check", str(config_dir), "--json"]) == 2
    captured = capsys.readouterr()
    verdict = json.loads(captured.out)
    assert verdict["ok"] is False and verdict["config"] == str(config_dir)
    assert {(p["file"], p["path"]) for p in verdict["problems"]} == {
        ("risk_limits.json", "$.max_concurrent_positions"), ("risk_limits.json", "$")}
    assert "2 problem(s)" in captured.err  # a person at the terminal still reads them


@pytest.mark.parametrize("command", [["config", "check"], ["record"], ["live"], ["health"], ["simulate"],
                                     ["policy", "rollback"]])
def test_every_json_flag_says_failures_stay_one_plain_line(command: list[str],
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main([*command, "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--json" in text and "a failure is still one plain line on stderr" in text


def test_config_init_writes_the_defaults_to_edit_and_never_overwrites(tmp_path: Path,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "mine"
    assert main(["config", "init", str(target)]) == 0
    assert main(["config", "check", str(target)]) == 0
    edit_config(target, "tuner.json", lambda d: d.update(seed=11))
    capsys.readouterr()
    assert main(["config", "init", str(target)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"router-tuner config: init: {target} already holds risk_limits.json, ")
    assert json.loads((target / "tuner.json").read_text())["seed"] == 11   # the edit is kept
    (tmp_path / "file").write_text("x")
    assert main(["config", "init", str(tmp_path / "file")]) == 2
    assert "exists and is not a directory" in capsys.readouterr().err


def test_a_recorded_market_outside_the_universe_says_what_to_add_and_works_once_added(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Another market's recording (here SOLUSDT) is refused with the entry to paste; pasted, it simulates."""
    from tests.market.test_market_binance import _snapshot, _ticker, _write

    data = tmp_path / "data"
    data.mkdir()
    messages = [_snapshot(0, 100, [["20.00", "300"]], [["20.01", "400"]])]
    messages += [_ticker("solusdt", 1 + 50 * k, "20.00", "20.01") for k in range(1200)]
    _write(data / "usdm_solusdt_20240809.jsonl.gz", messages)
    argv = ["simulate", "--data", str(data), "--no-mlflow", "--workers", "1", "--learners", "ucb", "--orders", "5",
            "--out", str(tmp_path / "out")]
    assert main(argv) == 2
    line = capsys.readouterr().err.strip()
    entry = ('"SOLUSDT": {"venue_symbol": "SOLUSDT", "tier": "CORE", "quote": "USDT", "market": "usdm", '
             '"contract_type": "linear", "contract_size": 1.0}')
    assert entry in line and "config init DIR" in line
    config = tmp_path / "config"
    assert main(["config", "init", str(config)]) == 0
    edit_config(config, "strategy_config.json", lambda d: d["universe"].update(json.loads("{" + entry + "}")))
    assert main([*argv, "--config", str(config)]) == 0
    assert "SOLUSDT" in capsys.readouterr().out


def test_a_market_where_nothing_fills_ends_in_one_line_naming_the_symbol(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A recording without trades, post-only legs cancelled after their TTL and no taker arm: no policy's order
    ever fills, so there is no cost to compare. The run used to end in "unexpected ValueError" (exit 1)."""
    from tests.market.test_market_binance import _snapshot, _ticker, _write

    data = tmp_path / "data"
    data.mkdir()
    messages = [_snapshot(0, 100, [["60000.00", "3"]], [["60000.10", "4"]])]
    messages += [_ticker("btcusdt", 1 + 50 * k, "60000.00", "60000.10") for k in range(1200)]
    _write(data / "usdm_btcusdt_20240809.jsonl.gz", messages)
    config = tmp_path / "config"
    assert main(["config", "init", str(config)]) == 0
    edit_config(config, "router.json",
                lambda d: d["static_policy"].update(maker_ttl_ms=100.0, fallback_mode="cancel"))
    edit_config(config, "tuner.json", lambda d: d["arms"].update(taker_biases=[0.0]))
    capsys.readouterr()
    argv = ["simulate", "--data", str(data), "--config", str(config), "--no-mlflow", "--workers", "1", "--learners",
            "structured", "--orders", "5", "--shadow-symbols", "--out", str(tmp_path / "out")]
    assert main(argv) == 2
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert line.startswith("router-tuner simulate: BTCUSDT: no order of any fixed arm filled")
    assert "fallback_mode" in line


def test_config_init_leaves_nothing_behind_when_a_write_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    """All or nothing: a half-written directory would make every later init refuse it."""
    import builtins

    real_open = builtins.open
    target = tmp_path / "mine"

    def full_disk(file: object, mode: str = "r", *args: object, **kwargs: object) -> object:
        if Path(str(file)).name.startswith((".tuner.json.", "tuner.json")) and "w" in mode:
            raise OSError(28, "No space left on device", str(file))
        return real_open(file, mode, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", full_disk)
    assert main(["config", "init", str(target)]) != 0
    monkeypatch.undo()
    assert "No space left on device" in capsys.readouterr().err
    assert list(target.iterdir()) == []
    with pytest.raises(SystemExit) as stop:
        main(["config", "init", ""])
    assert stop.value.code == 2 and "empty: name" in capsys.readouterr().err


# simulate writes its journal and its report side by side in two forked processes: the same files as one process
# writes, and a failure in either is the command's one line, with the previous journal kept.
_RUN = ["simulate", "--no-mlflow", "--learners", "ucb", "--orders", "20", "--symbols",
        "BTCUSDT", "--shadow-symbols"]


def _rows(journal: Path) -> list[tuple[str, str, str]]:
    with sqlite3.connect(journal) as db:
        return db.execute("SELECT kind, intent_id, payload FROM events ORDER BY kind, intent_id").fetchall()


def _report_text(out: Path) -> str:
    return (out / "report" / "report.md").read_text().replace(str(out), "OUT")


def test_two_processes_write_what_one_writes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    one, two = tmp_path / "one", tmp_path / "two"
    assert main([*_RUN, "--workers", "1", "--out", str(one)]) == 0
    assert main([*_RUN, "--workers", "2", "--out", str(two)]) == 0
    capsys.readouterr()
    rows = _rows(two / recording.JOURNAL_NAME)
    assert len(rows) > 100 and rows == _rows(one / recording.JOURNAL_NAME)
    assert _report_text(two) == _report_text(one)
    assert (two / "report" / "report.html").stat().st_size > 0


def test_a_journal_that_fails_in_its_process_is_one_line_and_keeps_the_previous_journal(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    assert main([*_RUN, "--workers", "2", "--out", str(out)]) == 0
    before = _rows(out / recording.JOURNAL_NAME)
    capsys.readouterr()

    def full_disk(result: object, out_dir: Path) -> Path:
        raise OSError(errno.ENOSPC, "No space left on device", str(out_dir / recording.JOURNAL_NAME))

    monkeypatch.setattr(recording, "write_journal", full_disk)  # inherited by the forked writer
    assert main([*_RUN, "--workers", "2", "--out", str(out)]) == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines[-1].startswith("router-tuner simulate: No space left on device")
    assert "Traceback" not in "\n".join(lines)
    assert _rows(out / recording.JOURNAL_NAME) == before


@pytest.mark.parametrize("command", [["simulate"], ["sweep"], ["ope"], ["policy", "list"]])
def test_every_command_that_logs_to_mlflow_takes_the_same_tracking_uri_option(
        command: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    """sweep logged to MLflow without a --tracking-uri (only MLFLOW_TRACKING_URI or tuner.json could move it)."""
    with pytest.raises(SystemExit) as stopped:
        main([*command, "--help"])
    assert stopped.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    assert ("--tracking-uri TRACKING_URI MLflow tracking URI (overrides MLFLOW_TRACKING_URI and tuner.json "
            "mlflow.tracking_uri; default: sqlite:///var/mlflow.db in the current folder)") in text
