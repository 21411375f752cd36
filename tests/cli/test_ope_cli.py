"""``router-tuner ope`` on a journal logged by a known random policy: estimates cover the true cost."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from cli.main import main
from executor.journal import Journal
from tests.factories import fill, routed

TRUE_COST_BPS = {"o0.00_b0.00": 3.0, "o1.00_b0.00": 1.0, "o2.00_b0.00": 2.0}


@pytest.fixture(scope="module")
def journal_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """2,000 orders logged by a uniform random choice over three arms, with Normal noise around each arm's cost."""
    rng = np.random.default_rng(11)
    arms = list(TRUE_COST_BPS)
    events = []
    for i in range(2000):
        arm = arms[int(rng.integers(len(arms)))]
        cost_bps = TRUE_COST_BPS[arm] + float(rng.normal(0.0, 2.0))
        price = 100.0 * (1 + cost_bps / 1e4)
        events.append(routed(intent_id=f"i{i}", arm=arm, propensity=1 / 3,
                             fills=(fill(price, 1.0, trade_id=f"t{i}"),)))
    path = tmp_path_factory.mktemp("ope") / "journal.sqlite"
    with Journal(path) as journal:
        journal.append_many(events)
    return path


def _run_json(capsys: pytest.CaptureFixture[str], *args: str) -> dict:
    assert main(["ope", *args, "--json"]) == 0
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_estimates_cover_the_true_cost_of_the_candidate(journal_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    result = _run_json(capsys, "--journal", str(journal_path), "--candidate", "o1.00_b0.00",
                       "--baseline", "o0.00_b0.00")
    for report, arm in ((result["candidate"], "o1.00_b0.00"), (result["baseline"], "o0.00_b0.00")):
        assert report["n_events"] == 2000
        for name in ("ips", "snips", "dr"):
            estimate = report["estimates"][name]
            assert estimate["ci_low"] <= -TRUE_COST_BPS[arm] <= estimate["ci_high"], (arm, name, estimate)
        assert report["logging"]["value"] == pytest.approx(-2.0, abs=0.2)
    assert "ips_clip50" in result["candidate"]["estimates"]


def test_policy_file_candidate_and_unsupported_arm(journal_path: Path, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    policy = tmp_path / "policy.json"
    policy.write_text(json.dumps({"maker_offset_bps": 2.0, "taker_bias": 0.0}))
    result = _run_json(capsys, "--journal", str(journal_path), "--candidate", str(policy))
    assert result["candidate"]["candidate_arm"] == "o2.00_b0.00"
    assert main(["ope", "--journal", str(journal_path), "--candidate", "o4.00_b0.00"]) == 2
    assert "o4.00_b0.00 was never taken with a fill in this log" in capsys.readouterr().err


def test_table_output_and_errors(journal_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ope", "--journal", str(journal_path), "--candidate", "o1.00_b0.00"]) == 0
    out = capsys.readouterr().out
    assert "on_policy" in out and "snips" in out and "cost_bps" in out
    assert main(["ope", "--journal", str(tmp_path / "none.sqlite"), "--candidate", "x"]) == 2
    assert "no journal" in capsys.readouterr().err
    assert main(["ope", "--journal", str(journal_path), "--candidate", str(tmp_path / "missing.json")]) == 2
    assert "no such policy file" in capsys.readouterr().err
    assert main(["ope", "--journal", str(journal_path), "--candidate", "o1.00_b0.00", "--symbol", "ETHUSDT"]) == 2
    assert "no router events for ETHUSDT" in capsys.readouterr().err


def test_mlflow_candidate_is_scored_and_logged_to_its_run(journal_path: Path, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    from tuner.registry import PolicyRegistry

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    registry = PolicyRegistry(uri, "router-tuner", "router-policy")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/elsewhere.db")  # --tracking-uri wins
    version = registry.publish("BTCUSDT", {"maker_offset_bps": 1.0, "taker_bias": 0.0}, params={}, metrics={},
                               config_snapshot={})
    result = _run_json(capsys, "--journal", str(journal_path), "--candidate", "BTCUSDT@champion",
                       "--tracking-uri", uri)
    assert result["candidate"]["candidate_arm"] == "o1.00_b0.00" and result["candidate"]["symbol"] == "BTCUSDT"
    logged = registry.show("BTCUSDT", str(version.version)).metrics
    assert logged["ope_dr_cost_bps"] == pytest.approx(-result["candidate"]["estimates"]["dr"]["value"])


def test_bad_config_directory_is_a_clean_error(journal_path: Path, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ope", "--journal", str(journal_path), "--candidate", "o1.00_b0.00",
                 "--config", str(tmp_path / "no-such-dir")]) == 2
    assert "ope: invalid configuration" in capsys.readouterr().err
