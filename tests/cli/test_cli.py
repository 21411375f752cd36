"""The command line: exit codes and messages a user and a CI script can rely on."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from router_tuner.cli.main import main
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
