"""``router-tuner policy list|show|promote|rollback`` against a temporary SQLite MLflow store.

Promotion here is forced; the OPE gate is tested in ``test_promotion``.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from router_tuner.cli.main import BAD_INPUT, main
from router_tuner.config.loader import load_config
from router_tuner.router.policy import RouterPolicy
from tests.cli.test_cli_failures import one_line_failure
from tests.conftest import default_registry

BUNDLE = load_config()


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A store with two BTCUSDT versions, published under tuner.json's experiment and model prefix."""
    uri = f"sqlite:///{tmp_path_factory.mktemp('mlflow')}/store.db"
    registry = default_registry(uri)
    base = RouterPolicy.from_static("BTCUSDT", BUNDLE.router, policy_id="tuner-BTCUSDT")
    for n, offset in ((1, 1.0), (2, 2.0)):
        policy = replace(base, version=n, arm=f"o{offset:.2f}_b0.00", maker_offset_bps=offset)
        registry.publish(policy, params={"learner": "thompson"},
                         metrics={"cost_bps": 3.0 - offset}, config_snapshot={})
    return uri


def _json(capsys: pytest.CaptureFixture[str], argv: list[str]) -> list[dict]:
    assert main(argv) == 0
    return json.loads(capsys.readouterr().out)


def test_list_show_promote_rollback(store: str, capsys: pytest.CaptureFixture[str],
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:////nonexistent/ignored.db")  # --tracking-uri wins
    common = ["--tracking-uri", store, "--json"]
    listed = _json(capsys, ["policy", "list", *common])
    assert [(v["symbol"], v["version"], v["aliases"]) for v in listed] == [
        ("BTCUSDT", 2, ["challenger"]), ("BTCUSDT", 1, ["champion"])], "list shows the aliases that are set"
    assert main(["policy", "list", "--tracking-uri", store]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("BTCUSDT v2 [challenger]") and lines[1].startswith("BTCUSDT v1 [champion]")
    assert lines[0].endswith("model router-policy-BTCUSDT")
    [champion] = _json(capsys, ["policy", "show", "--symbol", "BTCUSDT", *common])
    assert champion["version"] == 1 and "champion" in champion["aliases"]
    [second] = _json(capsys, ["policy", "show", "--symbol", "BTCUSDT", "--version", "2", *common])
    assert second["policy"]["maker_offset_bps"] == 2.0 and second["metrics"] == {"cost_bps": 1.0}
    [promoted] = _json(capsys, ["policy", "promote", "--symbol", "BTCUSDT", "--force", "--who", "test",
                                "--why", "alias move", *common])
    assert promoted["version"] == 2 and "champion" in promoted["aliases"]
    [back] = _json(capsys, ["policy", "rollback", "--symbol", "BTCUSDT", *common])
    assert back["version"] == 1
    assert main(["policy", "show", "--symbol", "BTCUSDT", "--tracking-uri", store]) == 0
    text = capsys.readouterr().out
    assert text.startswith("BTCUSDT v1 [champion] policy tuner-BTCUSDT v1 arm o1.00_b0.00") and "cost_bps=2" in text
    import os

    assert os.environ["MLFLOW_TRACKING_URI"] == "sqlite:////nonexistent/ignored.db", "environment restored"


def test_errors_exit_non_zero_with_the_reason(store: str, capsys: pytest.CaptureFixture[str]) -> None:
    # a version, symbol or prefix the store does not hold is bad input pointing at `policy list`, not exit 1
    # "check the MLflow store" (the store is fine)
    assert main(["policy", "show", "--symbol", "ETHUSDT", "--tracking-uri", store]) == 2
    err = capsys.readouterr().err
    assert "ETHUSDT: no policy version 'champion'" in err and "policy list" in err and "check the" not in err
    assert main(["policy", "show", "--symbol", "BTCUSDT", "--version", "7", "--tracking-uri", store]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "BTCUSDT: no policy version '7'" in err and "policy list" in err
    assert main(["policy", "rollback", "--symbol", "ETHUSDT", "--tracking-uri", store]) == 2
    assert "ETHUSDT: no registered policy" in capsys.readouterr().err
    assert main(["policy", "promote", "--symbol", "BTCUSDT", "--version", "1", "--tracking-uri", store,
                 "--force", "--who", "test", "--why", "already champion"]) == 1
    err = capsys.readouterr().err
    assert "already the champion" in err and "check the MLflow store" not in err
    with pytest.raises(SystemExit):
        main(["policy", "show", "--tracking-uri", store])  # --symbol is required
    assert main(["policy", "list", "--config", "/nonexistent", "--tracking-uri", store]) == 2
    assert "not a directory" in capsys.readouterr().err


def test_default_uri_comes_from_the_environment(store: str, capsys: pytest.CaptureFixture[str],
                                                monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store)
    listed = _json(capsys, ["policy", "list", "--symbol", "BTCUSDT", "--json"])
    assert len(listed) == 2


def test_a_second_rollback_goes_further_back_never_forward(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    uri = f"sqlite:///{tmp_path}/store.db"
    registry = default_registry(uri)
    base = RouterPolicy.from_static("ETHUSDT", BUNDLE.router, policy_id="tuner-ETHUSDT")
    for n in (1, 2, 3):
        policy = replace(base, version=n, arm=f"o{float(n):.2f}_b0.00", maker_offset_bps=float(n))
        registry.publish(policy, params={}, metrics={}, config_snapshot={})
    common = ["--symbol", "ETHUSDT", "--tracking-uri", uri]
    for version in (2, 3):
        assert main(["policy", "promote", *common, "--version", str(version), "--force", "--who", "t",
                     "--why", "test"]) == 0
    capsys.readouterr()
    [back] = _json(capsys, ["policy", "rollback", *common, "--json"])
    assert back["version"] == 2
    assert main(["policy", "rollback", *common]) == 0
    captured = capsys.readouterr()
    assert captured.out.startswith("ETHUSDT v1 [champion]") and "champion v2 -> v1" in captured.err
    assert main(["policy", "rollback", *common, "--json"]) == 1
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.strip().splitlines() == [
        "router-tuner policy: ETHUSDT: no previous champion to roll back to; the champion is unchanged (rollback "
        "steps back one promotion at a time, never forward); `router-tuner policy list` shows each version's "
        "aliases"]  # it said "check the MLflow store": the store is fine
    assert registry.champion_version("ETHUSDT") == 1


def test_go_live_on_a_live_symbol_says_so_and_changes_nothing(tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    uri = f"sqlite:///{tmp_path}/store.db"
    registry = default_registry(uri)
    policy = replace(RouterPolicy.from_static("BTCUSDT", BUNDLE.router, policy_id="tuner-BTCUSDT"), version=1)
    registry.publish(policy, params={}, metrics={}, config_snapshot={})
    common = ["policy", "go-live", "--symbol", "BTCUSDT", "--tracking-uri", uri]
    assert main([*common, "--who", "alice", "--why", "agreement 0.95"]) == 0
    assert "BTCUSDT requested live by alice" in capsys.readouterr().err
    assert main([*common, "--who", "bob", "--why", "again", "--json"]) == 0
    captured = capsys.readouterr()
    assert captured.err.strip() == "policy go-live: BTCUSDT is already live; nothing changed"
    assert json.loads(captured.out)[0]["symbol"] == "BTCUSDT"
    assert registry.deployment_mode("BTCUSDT") == "live"
    tags = registry._client.get_registered_model(registry.model_name("BTCUSDT")).tags
    assert (tags["go_live_by"], tags["go_live_why"]) == ("alice", "agreement 0.95")


def test_list_finds_the_simulation_models_with_a_flag(store: str, capsys: pytest.CaptureFixture[str]) -> None:
    prefix = BUNDLE.router.simulation.registered_model_prefix
    from router_tuner.tuner.registry import PolicyRegistry

    simulated = PolicyRegistry(None, experiment=BUNDLE.tuner.mlflow.experiment, model_prefix=f"{prefix}-ucb",
                               override_uri=store)
    policy = replace(RouterPolicy.from_static("ETHUSDT", BUNDLE.router, policy_id="tuner-ETHUSDT"), version=1,
                     arm="o0.50_b0.00", maker_offset_bps=0.5)
    simulated.publish(policy, params={}, metrics={}, config_snapshot={})
    assert [v["model"] for v in _json(capsys, ["policy", "list", "--tracking-uri", store, "--json"])] == [
        "router-policy-BTCUSDT"] * 2, "the live prefix by default"
    [found] = _json(capsys, ["policy", "list", "--simulation", "--tracking-uri", store, "--json"])
    assert (found["model"], found["symbol"], found["aliases"]) == (f"{prefix}-ucb-ETHUSDT", "ETHUSDT",
                                                                  ["challenger", "champion"])
    # --symbol with --simulation: every learner's model of that symbol (it looked for <prefix>-ETHUSDT: none)
    [by_symbol] = _json(capsys, ["policy", "list", "--simulation", "--symbol", "ETHUSDT", "--tracking-uri", store,
                                 "--json"])
    assert by_symbol["model"] == f"{prefix}-ucb-ETHUSDT"
    assert main(["policy", "list", "--simulation", "--symbol", "BTCUSDT", "--tracking-uri", store]) == 0
    assert "no policy versions of BTCUSDT named" in capsys.readouterr().err
    [same] = _json(capsys, ["policy", "list", "--prefix", f"{prefix}-ucb", "--tracking-uri", store, "--json"])
    assert same["model"] == found["model"]
    [shown] = _json(capsys, ["policy", "show", "--symbol", "ETHUSDT", "--prefix", f"{prefix}-ucb",
                             "--tracking-uri", store, "--json"])
    assert shown["version"] == 1
    assert main(["policy", "list", "--prefix", "nothing-here", "--tracking-uri", store]) == 0
    assert "no policy versions named nothing-here-*" in capsys.readouterr().err
    assert main(["policy", "list", "--prefix", "x'y", "--tracking-uri", store]) == 2
    assert "not a registered model name prefix" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["policy", "list", "--prefix", "a", "--simulation", "--tracking-uri", store])


def test_a_champion_moved_in_the_ui_shows_and_a_forced_override_accepts_it(
        store: str, capsys: pytest.CaptureFixture[str]) -> None:
    from mlflow import MlflowClient

    from router_tuner.tuner.registry import PolicyRegistry

    registry = PolicyRegistry(None, experiment=BUNDLE.tuner.mlflow.experiment, model_prefix="ui", override_uri=store)
    base = RouterPolicy.from_static("BTCUSDT", BUNDLE.router, policy_id="tuner-BTCUSDT")
    for n in (1, 2):
        registry.publish(replace(base, version=n, arm=f"o{n:.2f}_b0.00", maker_offset_bps=float(n)), params={},
                         metrics={}, config_snapshot={})
    MlflowClient(tracking_uri=store).set_registered_model_alias("ui-BTCUSDT", "champion", "2")
    common = ["--prefix", "ui", "--tracking-uri", store]
    assert main(["policy", "list", *common]) == 0
    assert "(champion NOT ACTED ON: no gate record" in capsys.readouterr().out.splitlines()[0]
    assert main(["policy", "show", "--symbol", "BTCUSDT", *common]) == 0
    assert "\n  gate none that entitles it to act: no gate record" in capsys.readouterr().out
    [accepted] = _json(capsys, ["policy", "promote", "--symbol", "BTCUSDT", "--version", "2", "--force", "--who",
                                "alice", "--why", "reviewed the UI move", "--json", *common])
    assert accepted["version"] == 2 and accepted["gate"] == {"record": "forced", "problem": None}
    [first] = _json(capsys, ["policy", "show", "--symbol", "BTCUSDT", "--version", "1", "--json", *common])
    assert first["gate"] == {"record": "initial", "problem": None}


def test_symbol_names_are_read_like_symbols_everywhere(store: str, capsys: pytest.CaptureFixture[str]) -> None:
    """``--symbol btcusdt`` used to find nothing: --symbols upper-cased its names, --symbol did not."""
    common = ["--tracking-uri", store, "--json"]
    assert _json(capsys, ["policy", "show", "--symbol", " btcusdt", *common]) == _json(
        capsys, ["policy", "show", "--symbol", "BTCUSDT", *common])
    line = one_line_failure(["policy", "show", "--symbol", "BTCUSDT,ETHUSDT", *common], capsys, BAD_INPUT)
    assert "argument --symbol: one symbol name, e.g. BTCUSDT, got 'BTCUSDT,ETHUSDT'" in line


def test_a_tracking_uri_naming_a_journal_or_a_text_file_is_refused_and_left_untouched(
        journal_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``--tracking-uri sqlite:///JOURNAL`` (a journal, an executor store, another program's SQLite file): MLflow
    "migrated" it, writing its thirty tables into the journal, and `policy list` said "no policy versions", exit 0;
    a text file failed as "file is not a database", exit 1, as if the store were down."""
    import sqlite3

    def tables(path: Path) -> list[str]:
        with sqlite3.connect(path) as connection:
            return sorted(name for (name,) in connection.execute("SELECT name FROM sqlite_schema WHERE type='table'"))

    before, data = tables(journal_path), journal_path.read_bytes()
    line = one_line_failure(["policy", "list", "--tracking-uri", f"sqlite:///{journal_path}", "--json"], capsys,
                            BAD_INPUT)
    assert line.startswith(f"router-tuner policy: MLflow tracking URI sqlite:///{journal_path}: {journal_path} holds "
                           "tables (dead_letters, events, journal_schema) but not MLflow's (alembic_version): not an "
                           "MLflow store")
    assert tables(journal_path) == before and journal_path.read_bytes() == data, "the journal is not written into"
    notes = tmp_path / "notes.db"
    notes.write_text("my notes\n")
    line = one_line_failure(["policy", "show", "--symbol", "BTCUSDT", "--tracking-uri", f"sqlite:///{notes}"],
                            capsys, BAD_INPUT)
    assert f"{notes} is not a readable SQLite database (file is not a database)" in line
    assert notes.read_text() == "my notes\n"


def test_policy_and_journal_refuse_a_closed_stdout_before_they_change_anything(
        tmp_path: Path, journal_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Started with stdout closed (`>&-`: Python's sys.stdout is None), `policy promote --force` moved the champion
    and `journal count` counted, each printing nothing and exiting 0."""
    import sys

    uri = f"sqlite:///{tmp_path}/store.db"
    registry = default_registry(uri)
    base = RouterPolicy.from_static("BTCUSDT", BUNDLE.router, policy_id="tuner-BTCUSDT")
    for n in (1, 2):
        registry.publish(replace(base, version=n), params={}, metrics={}, config_snapshot={})
    capsys.readouterr()  # MLflow's lines creating the store
    monkeypatch.setattr(sys, "stdout", None)
    for argv, command in ((["policy", "promote", "--symbol", "BTCUSDT", "--force", "--who", "ops", "--why", "x",
                            "--tracking-uri", uri], "policy"),
                          (["journal", "count", "--journal", str(journal_path)], "journal")):
        assert main(argv) == BAD_INPUT
        assert capsys.readouterr().err == (f"router-tuner {command}: standard output is closed (started with >&-), "
                                           "so no result could be shown; give it somewhere to write (> /dev/null "
                                           "to discard it)\n")
    monkeypatch.undo()
    assert registry.champion_version("BTCUSDT") == 1, "the champion did not move"


@pytest.mark.parametrize("argv", [["list"], ["show", "--symbol", "BTCUSDT"], ["rollback", "--symbol", "BTCUSDT"],
                                  ["go-live", "--symbol", "BTCUSDT", "--who", "ops", "--why", "x"]])
def test_a_store_that_does_not_exist_is_refused_and_not_created(
        argv: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """A typo in --tracking-uri, or the default store from the wrong folder: each policy action created a new
    empty store there (folders too), then `list` said "no policy versions … add --simulation", exit 0, and the
    others "no policy version", the new store left behind."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    typo = tmp_path / "tpyo" / "store.db"
    line = one_line_failure(["policy", *argv, "--tracking-uri", f"sqlite:///{typo}", "--json"], capsys, BAD_INPUT)
    assert line.startswith(f"router-tuner policy: MLflow store sqlite:///{typo}: {typo} does not exist, so no policy "
                           "was ever registered there (nothing was created); point --tracking-uri")
    line = one_line_failure(["policy", *argv], capsys, BAD_INPUT)  # the default, from a folder without one
    assert "MLflow store sqlite:///var/mlflow.db: var/mlflow.db does not exist" in line
    (tmp_path / "empty.db").touch()
    line = one_line_failure(["policy", *argv, "--tracking-uri", f"sqlite:///{tmp_path}/empty.db"], capsys, BAD_INPUT)
    assert "empty.db is empty, so no policy was ever registered there" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty.db"], "nothing is created"
    assert (tmp_path / "empty.db").stat().st_size == 0


@pytest.mark.parametrize(("prefix", "says"), [
    ("router-policy\n", "holds a control character (U+000A, character 14 of 14) that does not show as written"),
    (" router-policy", "starts or ends with whitespace, which would be kept as part of the value"),
    ("router-policy\u200b", "holds an invisible format character (U+200B, character 14 of 14)"),
])
def test_a_prefix_with_a_hidden_character_is_refused(store: str, prefix: str, says: str,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    """`--prefix $'router-policy\\n'` listed "no policy versions named router-policy" and "-* in …" on two stderr
    lines, exit 0; a leading space or a zero-width space named models nobody registered, and did not show."""
    line = one_line_failure(["policy", "list", "--prefix", prefix, "--tracking-uri", store, "--json"], capsys,
                            BAD_INPUT)
    assert line.startswith(f"router-tuner policy: --prefix {prefix!r}: {says}")


def test_a_forced_reason_longer_than_mlflow_keeps_is_refused_before_anything_moves(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`promote --force --why <10,000 characters>` moved the champion and said "gate record forced", while MLflow
    kept only the first 8000 characters of the run's tag (a log WARNING in the middle of the output)."""
    uri = f"sqlite:///{tmp_path}/store.db"
    registry = default_registry(uri)
    base = RouterPolicy.from_static("BTCUSDT", BUNDLE.router, policy_id="tuner-BTCUSDT")
    for n in (1, 2):
        registry.publish(replace(base, version=n), params={}, metrics={}, config_snapshot={})
    capsys.readouterr()
    line = one_line_failure(["policy", "promote", "--symbol", "BTCUSDT", "--force", "--who", "ops", "--why", "x" * 8001,
                             "--tracking-uri", uri], capsys, BAD_INPUT)
    assert line == ("router-tuner policy: promote --who and --why: at most 8000 characters each (got 3 and 8001): "
                    "MLflow cuts a longer run tag short; write a shorter reason (link to a longer one)")
    assert registry.champion_version("BTCUSDT") == 1
    assert main(["policy", "promote", "--symbol", "BTCUSDT", "--force", "--who", "ops", "--why", "x" * 8000,
                 "--tracking-uri", uri, "--json"]) == 0
    assert registry.champion_version("BTCUSDT") == 2
    run_id = registry.show("BTCUSDT", "2").run_id
    assert registry._client.get_run(run_id).data.tags["promotion_forced_why"] == "x" * 8000


def test_a_locked_mlflow_store_says_to_retry() -> None:
    """A SQLite MLflow store another process held (`BEGIN EXCLUSIVE` while `policy list` ran: MLflow waits, then
    SQLAlchemy raises) ended "MLflow store: database is locked; check the MLflow store", exit 1, sending the user
    to look for a fault in a sound store; a locked journal says to retry."""
    import sqlite3

    from sqlalchemy.exc import OperationalError

    from router_tuner.cli.main import describe_failure

    locked = OperationalError("SELECT 1", {}, sqlite3.OperationalError("database is locked"))
    assert describe_failure(locked) == (1, "MLflow store: database is locked: another process is writing it (a "
                                           "simulate or sweep registering, a live tuner publishing); retry when it "
                                           "is done")
    damaged = OperationalError("SELECT 1", {}, sqlite3.OperationalError("disk I/O error"))
    assert describe_failure(damaged)[1].startswith("MLflow store: disk I/O error; check the MLflow store")


def test_rollback_to_a_deleted_version_or_through_a_hand_edited_history_says_what_is_wrong(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The version a rollback returns to deleted in the MLflow UI: MLflow's "Model Version (…, version=1) not
    found; check the MLflow store", exit 1. The model's champion_history tag edited to `x`: "unexpected
    ValueError: invalid literal for int()", for rollback and promote alike."""
    uri = f"sqlite:///{tmp_path}/store.db"
    registry = default_registry(uri)
    base = RouterPolicy.from_static("BTCUSDT", BUNDLE.router, policy_id="tuner-BTCUSDT")
    for n in (1, 2, 3):
        registry.publish(replace(base, version=n), params={}, metrics={}, config_snapshot={})
    common = ["--symbol", "BTCUSDT", "--tracking-uri", uri]
    assert main(["policy", "promote", *common, "--version", "2", "--force", "--who", "t", "--why", "x"]) == 0
    registry._client.delete_model_version("router-policy-BTCUSDT", "1")
    capsys.readouterr()
    line = one_line_failure(["policy", "rollback", *common, "--json"], capsys, 1)
    assert line.startswith("router-tuner policy: BTCUSDT: v1, the champion before v2 (model tag champion_history of "
                           "router-policy-BTCUSDT), is no longer registered (deleted in MLflow?), so there is nothing "
                           "to roll back to")
    assert registry.champion_version("BTCUSDT") == 2
    registry._client.set_registered_model_tag("router-policy-BTCUSDT", "champion_history", "x")
    for argv in (["rollback"], ["promote", "--version", "3", "--force", "--who", "t", "--why", "x"]):
        line = one_line_failure(["policy", *argv, *common], capsys, 1)
        assert line.startswith("router-tuner policy: router-policy-BTCUSDT: model tag champion_history 'x' is not a "
                               "comma-separated list of version numbers (edited by hand?)")
    assert registry.champion_version("BTCUSDT") == 2


def test_json_stays_valid_json_with_a_nan_or_infinite_metric(tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    """A version logged with a NaN metric (a learner's estimate with no data): `policy show --json` printed
    `"cost_bps": NaN`, which jq and every strict JSON parser refuse; ±inf came back from MLflow's SQL store as
    ±1.8e308 and was shown as a cost of that many bps."""
    uri = f"sqlite:///{tmp_path}/store.db"
    registry = default_registry(uri)
    base = RouterPolicy.from_static("BTCUSDT", BUNDLE.router, policy_id="tuner-BTCUSDT")
    registry.publish(replace(base, version=1), params={}, config_snapshot={},
                     metrics={"cost_bps": float("nan"), "hi": float("inf"), "lo": -float("inf"), "ok": 1.5})
    capsys.readouterr()
    assert main(["policy", "show", "--symbol", "BTCUSDT", "--tracking-uri", uri, "--json"]) == 0

    def refuse(constant: str) -> None:
        raise ValueError(f"not JSON: {constant}")

    [shown] = json.loads(capsys.readouterr().out, parse_constant=refuse)
    assert shown["metrics"] == {"cost_bps": None, "hi": None, "lo": None, "ok": 1.5}
    assert main(["policy", "show", "--symbol", "BTCUSDT", "--tracking-uri", uri]) == 0
    assert "metrics cost_bps=nan hi=inf lo=-inf ok=1.5" in capsys.readouterr().out


def test_tags_edited_in_the_mlflow_ui_cannot_write_control_characters_to_the_terminal(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A version's symbol tag set in the MLflow UI to `BTC\\x1b[2J\\nFAKE v9 [champion]`: `policy list` cleared the
    screen and listed a forged version on a line of its own."""
    uri = f"sqlite:///{tmp_path}/store.db"
    registry = default_registry(uri)
    base = RouterPolicy.from_static("BTCUSDT", BUNDLE.router, policy_id="tuner-BTCUSDT")
    registry.publish(replace(base, version=1), params={}, metrics={}, config_snapshot={})
    registry._client.set_model_version_tag("router-policy-BTCUSDT", "1", "symbol", "BTC\x1b[2J\nFAKE v9 [champion]")
    capsys.readouterr()
    assert main(["policy", "list", "--tracking-uri", uri]) == 0
    [line] = capsys.readouterr().out.splitlines()
    assert line.startswith("BTC\\x1b[2J\\nFAKE v9 [champion] v1 [challenger,champion] policy tuner-BTCUSDT")
    assert main(["policy", "show", "--symbol", "BTCUSDT", "--tracking-uri", uri]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and len(out.splitlines()) == 4


@pytest.mark.parametrize(("uri", "says"), [
    ("sqlite:///", "names no SQLite file (an in-memory database, gone when the command ends): give sqlite:///PATH.db"),
    ("sqlite://", "names no SQLite file"),
    ("sqlite:///:memory:", "names no SQLite file"),
    ("postgresql://127.0.0.1:1/x", "MLflow's postgresql store needs the Python module psycopg, which is not installed"),
])
def test_a_tracking_uri_naming_no_file_or_a_missing_driver_is_one_line(
        uri: str, says: str, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """`sqlite:///` ended "unexpected ValueError: PosixPath('.') has an empty name"; `sqlite://` and `:memory:`
    listed "no policy versions" of an in-memory store gone at exit (and left `:memory:.create.lock` in the working
    folder); postgresql:// without psycopg was "unexpected ModuleNotFoundError", exit 1."""
    import importlib.util

    if uri.startswith("postgresql") and importlib.util.find_spec("psycopg") is not None:
        pytest.skip("psycopg is installed here")
    monkeypatch.chdir(tmp_path)
    line = one_line_failure(["policy", "list", "--tracking-uri", uri, "--json"], capsys, BAD_INPUT)
    assert line.startswith(f"router-tuner policy: MLflow tracking URI {uri}: {says}")
    assert not any(tmp_path.iterdir()), "nothing is created"
