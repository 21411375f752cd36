"""``router-tuner ope`` on journals logged by known random policies: per symbol, cost in bps, paired differences,
filters, warnings, and one clear line with exit 2 on every bad input."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import msgspec
import numpy as np
import pytest

from router_tuner.cli.main import main
from router_tuner.config.loader import load_config
from router_tuner.executor.journal import Journal
from router_tuner.router.policy import RouterPolicy
from tests.conftest import edit_config
from tests.factories import fill, routed

TRUE_COST_BPS = {"o0.00_b0.00": 3.0, "o1.00_b0.00": 1.0, "o2.00_b0.00": 2.0}
ETH_EXTRA_BPS = 10.0  # ETHUSDT costs 10 bps more on every arm: pooling would blur two markets into one number
N = 2000
T0_NS = 1_723_161_600_000_000_000  # 2024-08-09T00:00:00Z


@pytest.fixture(scope="module")
def journal_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """N orders per symbol logged by a uniform random choice over three arms (Normal noise around each arm's
    cost), one per second; the first half by policy ``pA`` version 1, the second half by ``pB`` version 2."""
    rng = np.random.default_rng(11)
    arms = list(TRUE_COST_BPS)
    events = []
    for symbol, extra in (("BTCUSDT", 0.0), ("ETHUSDT", ETH_EXTRA_BPS)):
        for i in range(N):
            arm = arms[int(rng.integers(len(arms)))]
            cost_bps = TRUE_COST_BPS[arm] + extra + float(rng.normal(0.0, 2.0))
            price = 100.0 * (1 + cost_bps / 1e4)
            event = routed(intent_id=f"{symbol}-{i}", symbol=symbol, arm=arm, propensity=1 / 3,
                           arrival_ts_ns=T0_NS + i * 1_000_000_000, fills=(fill(price, 1.0, trade_id=f"t{i}"),))
            policy = ("pA", 1) if i < N // 2 else ("pB", 2)
            events.append(msgspec.structs.replace(event, policy_id=policy[0], policy_version=policy[1]))
    path = tmp_path_factory.mktemp("ope") / "journal.sqlite"
    with Journal(path) as journal:
        journal.append_many(events)
    return path


def _run_json(capsys: pytest.CaptureFixture[str], *args: str) -> dict:
    assert main(["ope", *args, "--json"]) == 0
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def _by_symbol(result: dict) -> dict[str, dict]:
    return {r["symbol"]: r for r in result["results"]}


def _fails(capsys: pytest.CaptureFixture[str], *args: str, code: int = 2) -> str:
    """Run ``ope`` expecting ``code``; return its one stderr line (MLflow's own INFO logging aside)."""
    assert main(["ope", *args]) == code
    captured = capsys.readouterr()
    lines = [line for line in captured.err.strip().splitlines() if " INFO mlflow." not in line]
    assert len(lines) == 1 and "Traceback" not in captured.err, captured.err
    assert lines[0].startswith("router-tuner ope: ")
    return lines[0]


def test_estimates_cover_the_true_cost_of_the_candidate(journal_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    result = _run_json(capsys, "--journal", str(journal_path), "--candidate", "o1.00_b0.00",
                       "--baseline", "o0.00_b0.00", "--symbol", "BTCUSDT")
    (only,) = result["results"]
    assert result["cost_unit"] == "bps" and only["baseline_label"] == "o0.00_b0.00"
    for report, arm in ((only["candidate"], "o1.00_b0.00"), (only["baseline"], "o0.00_b0.00")):
        assert report["n_events"] == N
        for name in ("ips", "snips", "dr"):
            estimate = report["estimates"][name]
            assert estimate["ci_low_bps"] <= TRUE_COST_BPS[arm] <= estimate["ci_high_bps"], (arm, name, estimate)
            assert "value" not in estimate
        assert report["logging"]["cost_bps"] == pytest.approx(2.0, abs=0.2)
    assert "ips_clip50" in only["candidate"]["estimates"]
    # candidate - baseline: about -2 bps, with its own paired interval that excludes 0
    for name in ("ips", "snips", "dr"):
        diff = only["difference"][name]
        assert diff["ci_low_bps"] <= -2.0 <= diff["ci_high_bps"] < 0, (name, diff)
    assert only["warnings"] == []


def test_every_symbol_is_scored_on_its_own_by_default(journal_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    results = _by_symbol(_run_json(capsys, "--journal", str(journal_path), "--candidate", "o1.00_b0.00"))
    assert sorted(results) == ["BTCUSDT", "ETHUSDT"]
    for symbol, extra in (("BTCUSDT", 0.0), ("ETHUSDT", ETH_EXTRA_BPS)):
        report = results[symbol]["candidate"]
        assert report["n_events"] == N and report["symbol"] == symbol
        assert report["estimates"]["snips"]["cost_bps"] == pytest.approx(1.0 + extra, abs=0.3)
        assert results[symbol]["baseline"] is None and results[symbol]["baseline_label"] == "on_policy"
        assert results[symbol]["difference"]["snips"]["cost_bps"] == pytest.approx(-1.0, abs=0.3)


def test_time_window_and_logging_policy_filters(journal_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = ["--journal", str(journal_path), "--candidate", "o1.00_b0.00", "--symbol", "BTCUSDT"]
    window = _run_json(capsys, *base, "--since", "2024-08-09T00:05:00Z", "--until", "2024-08-09T00:10:00")
    (only,) = window["results"]
    assert only["candidate"]["n_events"] == 300  # [300 s, 600 s): naive times are UTC
    assert window["filters"]["since"] == "2024-08-09T00:05:00Z"
    one_micro_late = _run_json(capsys, *base, "--since", "2024-08-09T00:00:00.000001+00:00")
    assert one_micro_late["results"][0]["candidate"]["n_events"] == N - 1  # exact to the microsecond
    other_zone = _run_json(capsys, *base, "--since", "2024-08-09T02:05:00+02:00", "--until", "2024-08-09T00:10:00Z")
    assert other_zone["results"][0]["candidate"]["n_events"] == 300
    by_policy = _run_json(capsys, *base, "--logging-policy", "pB")
    assert by_policy["results"][0]["candidate"]["n_events"] == N // 2
    assert _run_json(capsys, *base, "--logging-policy", "pA:1")["results"][0]["candidate"]["n_events"] == N // 2
    assert "no router events for BTCUSDT" in _fails(capsys, *base, "--logging-policy", "pA:2")
    # the message names what the log holds (it said only "match the filters"; a simulation's journal holds 92 ids)
    assert _fails(capsys, *base, "--logging-policy", "pA:2").endswith("; pA logged version(s) 1")
    assert _fails(capsys, *base, "--logging-policy", "pa").endswith(
        "; no policy pa in the log, which holds 2 (e.g. pA, pB): the ids are the journal's policy_id")
    assert _fails(capsys, *base, "--since", "2030-01-01", "--logging-policy", "pA").endswith("before --since/--until/"
                                                                                            "--logging-policy)")
    assert "match the filters (2000 before" in _fails(capsys, *base, "--since", "2030-01-01")
    assert "not an ISO-8601 time" in _fails(capsys, *base, "--since", "yesterday")
    assert "the window is empty" in _fails(capsys, *base, "--since", "2024-08-09T01:00", "--until", "2024-08-09")


def test_policy_file_candidate_and_unsupported_arm(journal_path: Path, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    policy = tmp_path / "policy.json"
    policy.write_text(json.dumps({"symbol": "ETHUSDT", "maker_offset_bps": 2.0, "taker_bias": 0.0}))
    result = _run_json(capsys, "--journal", str(journal_path), "--candidate", str(policy))
    (only,) = result["results"]  # the file's symbol: never scored on BTCUSDT's events
    assert only["symbol"] == "ETHUSDT" and only["candidate"]["candidate_arm"] == "o2.00_b0.00"
    assert only["candidate"]["n_events"] == N
    line = _fails(capsys, "--journal", str(journal_path), "--candidate", str(policy), "--symbol", "BTCUSDT")
    assert "symbols disagree: --candidate is ETHUSDT, --symbol is BTCUSDT" in line
    line = _fails(capsys, "--journal", str(journal_path), "--candidate", "o4.00_b0.00")
    assert "nothing could be scored: BTCUSDT: candidate arm o4.00_b0.00 was never taken with a fill" in line
    for flag, loose in (("--candidate", "o2_b0"), ("--candidate", "o2.00_b0.00 "), ("--baseline", "O2.0_B0")):
        # each was "never taken with a fill" (a trailing space printed as nothing), beside o2.00_b0.00 in the log
        args = {"--candidate": "o2.00_b0.00", flag: loose}
        line = _fails(capsys, "--journal", str(journal_path), *[x for pair in args.items() for x in pair])
        assert line == (f"router-tuner ope: {flag} {loose!r} is not an arm id as the journal writes them: write "
                        "o2.00_b0.00")
    (tmp_path / "bad.json").write_text("{\n  oops")
    assert "bad.json:2: not JSON" in _fails(capsys, "--journal", str(journal_path), "--candidate",
                                            str(tmp_path / "bad.json"))
    (tmp_path / "comma.json").write_text('{"maker_offset_bps": 1.0, "taker_bias": 0.0,}')
    assert _fails(capsys, "--journal", str(journal_path), "--candidate", str(tmp_path / "comma.json")).endswith(
        "comma.json:1: not JSON (Expecting property name enclosed in double quotes); JSON allows no comma before }: "
        "delete the extra comma")
    (tmp_path / "knobless.json").write_text("{}")
    assert "not a RouterPolicy document" in _fails(capsys, "--journal", str(journal_path), "--candidate",
                                                   str(tmp_path / "knobless.json"))


@pytest.mark.parametrize(("content", "reason"), [
    (b'{"maker_offset_bps": NaN, "taker_bias": 0.0}', "maker_offset_bps must be finite, got nan"),
    (b'{"maker_offset_bps": 1e400, "taker_bias": 0.0}', "maker_offset_bps must be finite, got inf"),
    (b'{"maker_offset_bps": 1.0, "taker_bias": 5}', "taker_bias must be in [0, 1], got 5.0"),
    (b'\xff\xfe{"maker_offset_bps": 1.0}',
     "is UTF-16 text (it starts with a UTF-16 byte order mark): save it as UTF-8"),
    (b'{"maker_offset_bps": 1.0, "taker_bias": 0.\xff}', "byte 42 (0xff) is not UTF-8 text: save it as UTF-8"),
    (b'\xef\xbb\xbf{"maker_offset_bps": 1.0, "taker_bias": 0.0}',   # "Unexpected UTF-8 BOM (decode using utf-8-sig)"
     "starts with a UTF-8 byte order mark (BOM), invisible in most editors: save it as UTF-8 without BOM"),
    (b'{"maker_offset_bps": 1.0, "taker_bias": 0.0, "maker_offset_bps": 4.0}',   # scored as o4.00, the last one
     "duplicate key(s) maker_offset_bps: give each once"),
    (b'{"maker_offset_bps": true, "taker_bias": false}',                          # scored as o1.00_b0.00
     "maker_offset_bps and taker_bias must be JSON numbers, got True and False"),
    (b'{"maker_offset_bps": "4", "taker_bias": 0}',                               # scored as o4.00_b0.00
     "maker_offset_bps and taker_bias must be JSON numbers, got '4' and 0"),
    (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),  # it was "unexpected RecursionError", exit 1
    (b'{"maker_offset_bps": 1, "taker_bias": 0, "symbol": 7}',   # every symbol scored, the key unread
     "symbol must be a symbol name such as \"BTCUSDT\", got 7; leave the key out to score each symbol of the log"),
    (b'{"maker_offset_bps": 500, "taker_bias": 0}',   # "candidate arm o500.00_b0.00 was never taken with a fill"
     "maker_offset_bps 500 is outside router.json policy_bounds [-1, 10]: no router routes such a policy; give a "
     "value within the bounds"),
    (b'{"maker_offset_bps": 1, "taker_bias": 0, "maker_ttl_ms": -1}',   # scored as o1.00_b0.00, the TTL unread
     "maker_ttl_ms -1 is outside router.json policy_bounds [100, 30000]: no router routes such a policy; give a "
     "value within the bounds"),
])
def test_a_policy_file_with_impossible_knobs_is_named(journal_path: Path, tmp_path: Path, content: bytes,
                                                      reason: str, capsys: pytest.CaptureFixture[str]) -> None:
    """NaN used to be scored as the arm ``onan_b0.00`` ("never taken"), bytes that are not UTF-8 to read
    ``'utf-8' codec can't decode …`` without the file's name; a key given twice, a bool or a string knob were scored
    silently (the last offset, ``true`` as 1, ``"4"`` as 4)."""
    policy = tmp_path / "policy.json"
    policy.write_bytes(content)
    line = _fails(capsys, "--journal", str(journal_path), "--candidate", str(policy))
    assert line.endswith(f"{policy}: not a RouterPolicy document ({reason})") or line.endswith(f"{policy}: {reason}")


def test_table_shows_costs_differences_and_warnings(journal_path: Path, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ope", "--journal", str(journal_path), "--candidate", "o1.00_b0.00"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("BTCUSDT: candidate o1.00_b0.00 vs the logging policy (on_policy) on 2000 filled events")
    assert "\nETHUSDT: candidate o1.00_b0.00" in out
    for column in ("cost_bps", "base_bps", "diff_bps", "diff_low", "diff_high", "ess", "support_gap"):
        assert column in out
    snips = next(line.split() for line in out.splitlines() if line.strip().startswith("snips"))
    cost, low, high, base, diff = map(float, snips[1:6])
    assert low < cost < high and cost == pytest.approx(1.0, abs=0.3) and base == pytest.approx(2.0, abs=0.2)
    assert diff == pytest.approx(cost - base, abs=1e-3)
    deterministic = tmp_path / "deterministic.sqlite"
    with Journal(deterministic) as journal:
        journal.append_many([routed(intent_id=f"d{i}", arm="o1.00_b0.00" if i < 150 else "o2.00_b0.00",
                                    fills=(fill(100.01, 1.0, trade_id=f"d{i}"),)) for i in range(300)])
    assert main(["ope", "--journal", str(deterministic), "--candidate", "o1.00_b0.00"]) == 0
    out = capsys.readouterr().out
    assert "warning: deterministic log: every logged propensity is 1" in out
    assert "warning: low effective sample size for o1.00_b0.00" not in out  # ESS 150 >= 100


def test_flagged_events_are_left_out_counted_and_said(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Events the tuner's reward filter refuses are not scored either: a venue_anomaly fill's cost is not the arm's,
    a fee_unpriced one understates the fee. Scored, they made o1.00_b0.00 look 10 bps cheaper than it is."""
    path = tmp_path / "flagged.sqlite"
    anomaly = "venue_anomaly(fill x of y reported as taker on a post-only order)"
    unpriced = "fee_unpriced(fill x of y: fee 0.0002 BNB not priced in USDT)"
    events = []
    for i in range(400):  # o1.00 costs 1 bps, o2.00 2 bps
        arm, price = ("o1.00_b0.00", 100.01) if i % 2 else ("o2.00_b0.00", 100.02)
        events.append(routed(intent_id=f"k{i}", arm=arm, propensity=0.5, arrival_ts_ns=T0_NS + i * 10**9,
                             fills=(fill(price, 1.0, trade_id=f"k{i}"),)))
    for i, (arm, price, error) in enumerate([("o1.00_b0.00", 99.5, anomaly)] * 50 + [("o1.00_b0.00", 99.9, unpriced)]
                                            * 30 + [("o3.00_b0.00", 99.0, anomaly)] * 5):
        event = routed(intent_id=f"f{i}", arm=arm, propensity=0.5, arrival_ts_ns=T0_NS + (400 + i) * 10**9,
                       fills=(fill(price, 1.0, trade_id=f"f{i}"),))
        events.append(msgspec.structs.replace(event, error=error))
    mention = routed(intent_id="m", arm="o2.00_b0.00", propensity=0.5, arrival_ts_ns=T0_NS + 500 * 10**9,
                     fills=(fill(100.02, 1.0, trade_id="m"),))
    events.append(msgspec.structs.replace(mention, error="taker leg m-2 rejected by the venue: 'venue_anomaly'"))
    with Journal(path) as journal:
        journal.append_many(events)
    (only,) = _run_json(capsys, "--journal", str(path), "--candidate", "o1.00_b0.00")["results"]
    candidate = only["candidate"]
    assert candidate["n_events"] == 401 and candidate["skipped_unfilled"] == 0
    assert candidate["skipped_flagged"] == {"venue_anomaly": 55, "fee_unpriced": 30}
    assert candidate["notes"] == ["85 filled events left out as the tuner's reward filter leaves them out "
                                  "(55 venue_anomaly, 30 fee_unpriced): a venue_anomaly cost is not the arm's, a "
                                  "fee_unpriced cost understates the fee"]
    assert candidate["estimates"]["snips"]["cost_bps"] == pytest.approx(1.0, abs=1e-6)
    assert candidate["arm_ids"] == ["o1.00_b0.00", "o2.00_b0.00"]
    assert main(["ope", "--journal", str(path), "--candidate", "o1.00_b0.00"]) == 0
    out = capsys.readouterr().out
    assert "on 401 filled events (0 unfilled skipped, 85 flagged left out)" in out
    assert "\n  note: 85 filled events left out as the tuner's reward filter leaves them out (55 venue_anomaly, " in out
    line = _fails(capsys, "--journal", str(path), "--candidate", "o3.00_b0.00")
    assert "never taken with a fill in this log (5 of its filled events are flagged venue_anomaly or " in line


def test_policies_routing_over_the_same_time_are_named_apart(tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    """A simulation's journal routes the same intents with every policy: scored together, on_policy was their
    mixture with no word of it (the fixture's pA then pB, one taking over from the other, stays unwarned)."""
    path = tmp_path / "replays.sqlite"
    events = []
    for policy, arm, price in (("fixed-a", "o1.00_b0.00", 100.01), ("fixed-b", "o2.00_b0.00", 100.03)):
        for i in range(150):
            event = routed(intent_id=f"{policy}:{i}", arm=arm, arrival_ts_ns=T0_NS + i * 1_000_000_000,
                           fills=(fill(price, 1.0, trade_id=f"{policy}{i}"),))
            events.append(msgspec.structs.replace(event, policy_id=policy))
    with Journal(path) as journal:
        journal.append_many(events)
    (mixed,) = _run_json(capsys, "--journal", str(path), "--candidate", "o1.00_b0.00")["results"]
    assert any("2 logging policies routing over the same time" in w and "--logging-policy" in w
               and "fixed-a, fixed-b" in w for w in mixed["warnings"]), mixed["warnings"]
    (one,) = _run_json(capsys, "--journal", str(path), "--candidate", "o1.00_b0.00",
                       "--logging-policy", "fixed-a")["results"]
    assert not any("logging policies" in w for w in one["warnings"])
    assert one["candidate"]["estimates"]["snips"]["cost_bps"] == pytest.approx(one["candidate"]["logging"]["cost_bps"])


def test_bad_inputs_end_in_one_line_with_exit_2(journal_path: Path, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    assert "no journal at" in _fails(capsys, "--journal", str(tmp_path / "none.sqlite"), "--candidate", "x")
    assert "no such policy file" in _fails(capsys, "--journal", str(journal_path), "--candidate",
                                           str(tmp_path / "missing.json"))
    assert "no router events for SOLUSDT" in _fails(capsys, "--journal", str(journal_path), "--candidate",
                                                    "o1.00_b0.00", "--symbol", "SOLUSDT")
    not_a_journal = tmp_path / "notes.sqlite"
    not_a_journal.write_bytes(b"hello")
    assert str(not_a_journal) in _fails(capsys, "--journal", str(not_a_journal), "--candidate", "o1.00_b0.00")
    assert "expected ID or ID:VERSION" in _fails(capsys, "--journal", str(journal_path), "--candidate",
                                                 "o1.00_b0.00", "--logging-policy", ":3")


def test_missing_mlflow_model_or_alias_is_exit_2(journal_path: Path, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    from router_tuner.tuner.registry import PolicyRegistry

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    PolicyRegistry(uri, "router-tuner", "router-policy").publish(
        _offset_one_policy(), params={}, metrics={}, config_snapshot={})
    base = ["--journal", str(journal_path), "--tracking-uri", uri]
    line = _fails(capsys, *base, "--candidate", "ETHUSDT@champion")
    assert "ETHUSDT@champion: ETHUSDT: no policy version 'champion'" in line and "policy list" in line
    assert "no policy version 'nosuch'" in _fails(capsys, *base, "--candidate", "BTCUSDT@nosuch")
    assert "no policy version '7'" in _fails(capsys, *base, "--candidate", "o1.00_b0.00", "--baseline", "BTCUSDT/7")


def test_mlflow_candidate_is_scored_and_logged_to_its_run(journal_path: Path, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    from router_tuner.tuner.registry import PolicyRegistry

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    registry = PolicyRegistry(uri, "router-tuner", "router-policy")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/elsewhere.db")  # --tracking-uri wins
    version = registry.publish(_offset_one_policy(), params={}, metrics={}, config_snapshot={})
    result = _run_json(capsys, "--journal", str(journal_path), "--candidate", "BTCUSDT@champion",
                       "--tracking-uri", uri)
    (only,) = result["results"]  # the reference's symbol only
    assert only["candidate"]["candidate_arm"] == "o1.00_b0.00" and only["candidate"]["symbol"] == "BTCUSDT"
    logged = registry.show("BTCUSDT", str(version.version)).metrics
    assert logged["ope_dr_cost_bps"] == pytest.approx(only["candidate"]["estimates"]["dr"]["cost_bps"])
    assert logged["ope_dr_cost_bps"] > 0
    assert logged["ope_dr_diff_cost_bps"] == pytest.approx(only["difference"]["dr"]["cost_bps"])
    # a simulated learner's version (policy list --simulation) is a candidate too, by its prefix
    simulated = PolicyRegistry(None, "router-tuner", "sim-router-policy-ucb", override_uri=uri)
    simulated.publish(_offset_one_policy(), params={}, metrics={}, config_snapshot={})
    # a store that does not exist is named, and not created (it was, and the line said "no policy version")
    line = _fails(capsys, "--journal", str(journal_path), "--candidate", "BTCUSDT@champion", "--tracking-uri",
                  f"sqlite:///{tmp_path}/typo/x.db")
    assert f"{tmp_path}/typo/x.db does not exist, so no policy was ever registered there (nothing was created)" in line
    assert not (tmp_path / "typo").exists()
    by_prefix = _run_json(capsys, "--journal", str(journal_path), "--candidate", "BTCUSDT@champion",
                          "--tracking-uri", uri, "--prefix", "sim-router-policy-ucb")
    assert by_prefix["results"][0]["candidate"]["candidate_arm"] == "o1.00_b0.00"
    assert "ope_dr_cost_bps" in simulated.show("BTCUSDT", "1").metrics, "logged to the simulated version's run"
    assert "--prefix ' ': not a registered model name prefix" in _fails(
        capsys, "--journal", str(journal_path), "--candidate", "o1.00_b0.00", "--prefix", " ")


def test_bad_config_directory_is_a_clean_error(journal_path: Path, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    line = _fails(capsys, "--journal", str(journal_path), "--candidate", "o1.00_b0.00",
                  "--config", str(tmp_path / "no-such-dir"))
    assert line.startswith("router-tuner ope: 1 configuration problem(s), first: ")


def test_a_config_with_many_problems_is_still_one_line(journal_path: Path, config_dir: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    """It used to print ``ope: invalid configuration:`` and then one line per problem."""
    edit_config(config_dir, "tuner.json", lambda d: d.update(seed=-1, learner="nope"))
    line = _fails(capsys, "--journal", str(journal_path), "--candidate", "o1.00_b0.00", "--config", str(config_dir))
    assert "2 configuration problem(s), first: tuner.json: $.learner" in line


def _offset_one_policy() -> RouterPolicy:
    """BTCUSDT policy version 1 on the arm o1.00_b0.00 (maker offset 1 bp, never taker first)."""
    policy = RouterPolicy.from_static("BTCUSDT", load_config().router, policy_id="tuner-BTCUSDT")
    return replace(policy, version=1, arm="o1.00_b0.00", maker_offset_bps=1.0, taker_bias=0.0)


def test_a_zero_difference_prints_as_zero_never_minus_zero(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Scoring a fixed arm's own log: the paired difference is 0 up to float noise, and sndr printed
    "0.000 [-0.000, -0.000]" (an interval below its point)."""
    rng = np.random.default_rng(3)
    path = tmp_path / "fixed.sqlite"
    with Journal(path) as journal:
        journal.append_many([routed(intent_id=f"f{i}", arm="o1.00_b0.00", arrival_ts_ns=T0_NS + i * 1_000_000_000,
                                    fills=(fill(100.0 + float(rng.normal(0.01, 0.02)), 1.0, trade_id=f"t{i}"),))
                             for i in range(200)])
    assert main(["ope", "--journal", str(path), "--candidate", "o1.00_b0.00"]) == 0
    table = capsys.readouterr().out
    assert "sndr" in table and "-0.000" not in table


@pytest.mark.parametrize("n_events, arms", [(1, ("o0.00_b0.00",)), (3, ("o0.00_b0.00", "o1.00_b0.00", "o2.00_b0.00"))])
def test_estimates_resting_on_one_event_say_so(tmp_path: Path, capsys: pytest.CaptureFixture[str], n_events: int,
                                               arms: tuple[str, ...]) -> None:
    """A journal of one event (or one event of the candidate's arm) printed intervals of zero width, e.g. SNIPS
    1.346 [1.346, 1.346], under only the low-ESS warning, and with one event IPS and SNIPS were said to "disagree
    beyond their intervals" as if the weights were unstable; it now says the estimates rest on one event."""
    path = tmp_path / "short.sqlite"
    with Journal(path) as journal:
        journal.append_many([routed(intent_id=f"s{i}", arm=arms[i], propensity=1 / 3,
                                    arrival_ts_ns=T0_NS + i * 1_000_000_000,
                                    fills=(fill(100.01 + 0.01 * i, 1.0, trade_id=f"t{i}"),)) for i in range(n_events)])
    result = _run_json(capsys, "--journal", str(path), "--candidate", arms[-1])
    (only,) = result["results"]
    snips = only["candidate"]["estimates"]["snips"]
    assert snips["ci_low_bps"] == snips["ci_high_bps"]
    warnings = only["warnings"]
    said = f"the estimates for {arms[-1]} rest on 1 logged event(s) carrying weight"
    assert any(said in w for w in warnings), warnings
    assert not any("IPS and SNIPS disagree" in w for w in warnings), warnings
    assert main(["ope", "--journal", str(path), "--candidate", arms[-1]]) == 0
    assert "[x, x], the cost is not known exactly); score a longer log" in capsys.readouterr().out


def test_a_propensity_too_small_to_weight_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A logged propensity of 1e-300 (in (0, 1], so it passed) ended `ope` in "unexpected OverflowError" under a numpy
    RuntimeWarning, exit 1; it is now the symbol's one-line error, exit 2."""
    path = tmp_path / "tiny.sqlite"
    with Journal(path) as journal:
        journal.append_many([routed(intent_id=f"p{i}", arm="o1.00_b0.00", propensity=1e-300 if i == 4 else 0.5,
                                    arrival_ts_ns=T0_NS + i * 1_000_000_000,
                                    fills=(fill(100.01, 1.0, trade_id=f"t{i}"),)) for i in range(10)])
    line = _fails(capsys, "--journal", str(path), "--candidate", "o1.00_b0.00")
    assert "event p4 has propensity 1e-300, under 1e-150: its importance weight 1e+300 is beyond" in line


def test_a_policy_file_symbol_ignores_case_as_the_symbol_flag_does(journal_path: Path, tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    """`"symbol": "ethusdt"` read "no router events for ethusdt in J", where `--symbol ethusdt` scores ETHUSDT."""
    policy = tmp_path / "policy.json"
    policy.write_text('{"maker_offset_bps": 1.0, "taker_bias": 0.0, "symbol": "ethusdt"}')
    result = _run_json(capsys, "--journal", str(journal_path), "--candidate", str(policy))
    assert list(_by_symbol(result)) == ["ETHUSDT"]
