"""``router-tuner live`` out of the box: paper mode on the embedded defaults trades, and every run ends in a
summary of what it did (routed, fills, cost, vetoes by reason), readable or as JSON lines."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import msgspec
import pytest

from router_tuner.cli.live import RunMark, _say_done
from router_tuner.cli.main import main
from router_tuner.executor.journal import Journal
from router_tuner.executor.monitoring.metrics import ExecutorMetrics
from router_tuner.router.events import Intent, RouterEvent, VetoEvent
from tests.conftest import edit_config
from tests.factories import fill, routed


@pytest.fixture(autouse=True)
def any_free_metrics_port(monkeypatch: pytest.MonkeyPatch) -> None:
    """The defaults serve Prometheus on 9464; a test binds any free port so parallel runs do not collide."""
    serve = ExecutorMetrics.serve
    monkeypatch.setattr(ExecutorMetrics, "serve", lambda self, host, _port: serve(self, host, 0))


def _intents(path: Path, n: int = 24) -> Path:
    """``n`` opening intents alternating symbol and side, as a strategy would send them."""
    now = time.time_ns()
    lines = []
    for k in range(n):
        side = "buy" if (k // 2) % 2 == 0 else "sell"
        lines.append(msgspec.json.encode(Intent(
            intent_id=f"i{k}", symbol="BTCUSDT" if k % 2 == 0 else "ETHUSDT", side=side, size_hint_usd=500.0,
            tier="CORE", strategy="demo", reduce_only=False, close_position=False,
            position_side="LONG" if side == "buy" else "SHORT", is_stop=False, ts_ns=now + k)))
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


def _args(tmp_path: Path, *extra: str) -> list[str]:
    intents = tmp_path / "intents.jsonl"
    if not intents.exists():
        _intents(intents)
    return ["live", "--venue", "binanceusdm", "--intents", str(intents),
            "--journal", str(tmp_path / "journal.sqlite"), "--store", str(tmp_path / "executor.sqlite"),
            "--idle-poll-s", "0.05", *extra]


def _journaled(tmp_path: Path) -> tuple[list[RouterEvent], list[VetoEvent]]:
    with Journal(tmp_path / "journal.sqlite", readonly=True) as journal:
        return list(journal.read("router")), list(journal.read("veto"))  # type: ignore[arg-type]


def test_paper_mode_on_the_defaults_routes_orders_and_prints_the_summary(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(_args(tmp_path)) == 0  # no --config: the embedded defaults, imbalance gate and trade cap on
    out = capsys.readouterr().out
    routed, vetoed = _journaled(tmp_path)
    assert routed, "the paper book must let some opening intents through the imbalance gate"
    assert vetoed and {r.code for v in vetoed for r in v.reasons} == {"orderbook_imbalance_below_gate"}
    assert "StartReport(" not in out and "started: 0 router events replayed from the journal" in out
    fills = sum(len(e.fills) for e in routed)
    mean_cost = sum(e.cost_bps for e in routed if e.cost_bps is not None) / len(routed)
    assert "done: 24 new intents processed (intents done)" in out
    assert f"routed {len(routed)} orders: {len(routed)} filled with {fills} fills" in out
    assert f"mean cost {mean_cost:.3f} bps per filled order" in out
    assert f"vetoed {len(vetoed)} intents: orderbook_imbalance_below_gate {len(vetoed)}" in out


def test_json_prints_one_object_per_line_and_a_rerun_counts_only_its_own_intents(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(_args(tmp_path, "--json")) == 0
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["event"] for r in records] == ["metrics", "started", "done"]
    done = records[-1]
    routed, vetoed = _journaled(tmp_path)
    assert (done["routed"], done["vetoed"], done["processed"]) == (len(routed), len(vetoed), 24)
    assert done["veto_reasons"] == {"orderbook_imbalance_below_gate": len(vetoed)} and done["ended"] == "intents_done"
    assert done["fills"] == sum(len(e.fills) for e in routed) and done["mean_cost_bps"] is not None

    assert main(_args(tmp_path, "--json")) == 0  # the same intents again: all already done
    again = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert again[1]["done_intents"] == 24 and again[1]["replayed_router_events"] == len(routed)
    assert (again[-1]["processed"], again[-1]["routed"], again[-1]["mean_cost_bps"]) == (0, 0, None)


def test_the_done_summary_counts_flagged_orders_per_flag_and_keeps_unpriced_fees_out_of_the_mean(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """What ``live`` prints at the end of a run that journaled flagged orders, in text and in the ``done`` object: the
    fills count, the flags are said per flag and not as errors, and the mean cost leaves out the fee_unpriced order
    (its cost understates the fee) and says so. It used to say '2 ended in an error' and mean -5.333 bps."""
    settled = "; settled: 1 orders found, 0 cancelled"
    events = [msgspec.structs.replace(routed(intent_id="plain", fills=(fill(100.01, 1.0, trade_id="t1"),)),
                                      error=None),
              msgspec.structs.replace(routed(intent_id="anomaly", fills=(fill(100.03, 1.0, trade_id="t2"),)),
                                      error="venue_anomaly(fill t2 of anomaly-1 reported as taker on a post-only "
                                            "order)" + settled),
              msgspec.structs.replace(routed(intent_id="unpriced", fills=(fill(99.8, 1.0, trade_id="t3"),)),
                                      error="fee_unpriced(fill t3 of unpriced-1: fee 0.0002 BNB not priced in USDC)"
                                            + settled)]
    with Journal(tmp_path / "journal.sqlite") as journal:
        mark = RunMark.of(journal)
        journal.append_many(events)
        for as_json in (True, False):
            _say_done(argparse.Namespace(json=as_json), journal, mark, ended="intents_done")
    json_line, *text = capsys.readouterr().out.strip().splitlines()
    done = json.loads(json_line)
    assert (done["routed"], done["filled_orders"], done["fills"], done["errors"]) == (3, 3, 3, 0)
    assert done["flagged"] == {"venue_anomaly": 1, "fee_unpriced": 1} and done["cost_orders"] == 2
    assert done["mean_cost_bps"] == pytest.approx(2.0)
    assert text == ["done: 3 new intents processed (intents done)",
                    "  routed 3 orders: 3 filled with 3 fills (3 maker), 0 ended in an error",
                    "  flagged 1 venue_anomaly (fills the venue's own rules rule out, counted as reported), "
                    "1 fee_unpriced (a fee not priced in the quote)",
                    "  mean cost 2.000 bps per filled order (vs arrival mid, fees included) over 2 orders; "
                    "1 fee_unpriced orders left out (their cost leaves out a fee not priced in the quote)",
                    "  vetoed 0 intents"]


def test_a_bad_config_directory_is_one_line_and_exit_2(config_dir: Path, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    edit_config(config_dir, "risk_limits.json", lambda d: d.update(max_trades_per_symbol_per_hour=-1))
    assert main(_args(tmp_path, "--config", str(config_dir), "--json")) == 2
    captured = capsys.readouterr()
    [line] = captured.err.strip().splitlines()
    assert line.startswith("router-tuner live: 1 configuration problem(s), first: ")
    assert "config check" in line and captured.out == ""
    assert not (tmp_path / "journal.sqlite").exists()


def test_help_says_errors_stay_plain_under_json(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["live", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "a failure is still one plain line on stderr" in text and "(default: the embedded defaults)" in text


def test_the_started_line_names_what_the_reconciliation_found() -> None:
    from router_tuner.cli.live import describe_start
    from router_tuner.executor.adaptive.routing import CatchUp
    from router_tuner.executor.loop import StartReport

    text = describe_start(StartReport(replayed_router_events=5, done_intents=7, recovered_intent_ids=("r1", "r2"),
                                      cancelled_orders=1, foreign_open_orders=("x9",), positions_checked=False,
                                      tuner_catch_up=CatchUp(relearned=3, without_decision=1), lot_warnings=()))
    assert text == ("5 router events replayed from the journal, 7 intents already done, 2 in-flight intents "
                    "recovered (r1, r2), 1 stale orders cancelled, 1 open orders not ours left alone (x9), "
                    "positions from the journal only (the venue cannot report them), tuner re-learned 3 events "
                    "(1 without a decision record)")


def test_a_symbol_whose_smallest_lot_over_the_floor_breaks_a_cap_is_warned_at_start(
        config_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # BTCUSDT: lot 0.001 at about 60,000 USD; the smallest order over the 100 USD floor is about 120 USD
    edit_config(config_dir, "risk_limits.json", lambda d: d.update(max_order_notional_usd=110.0))
    assert main(_args(tmp_path, "--config", str(config_dir))) == 0
    err = capsys.readouterr().err
    warnings = [line for line in err.splitlines() if line.startswith("router-tuner live: warning: ")]
    assert len(warnings) == 1, err
    assert warnings[0].startswith("router-tuner live: warning: BTCUSDT: the smallest order on lot 0.001")
    assert "over risk_limits.max_order_notional_usd 110 USD" in warnings[0]
    routed, vetoed = _journaled(tmp_path)
    assert all(e.symbol == "ETHUSDT" for e in routed)
    btc_codes = {r.code for v in vetoed if v.intent.symbol == "BTCUSDT" for r in v.reasons}
    assert sum(v.intent.symbol == "BTCUSDT" for v in vetoed) == 12  # every BTCUSDT intent, as warned
    assert "lot_rounding_below_min_notional" in btc_codes


def test_a_wallet_too_small_for_any_order_over_the_floor_is_warned_at_start(
        config_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A 1 USD wallet: every NAV cap allows cents, under both floors; it used to veto every intent in silence."""
    edit_config(config_dir, "executor.json", lambda d: d.update(starting_wallet_usd=1.0))
    assert main(_args(tmp_path, "--config", str(config_dir))) == 0
    err = capsys.readouterr().err
    warnings = [line for line in err.splitlines() if line.startswith("router-tuner live: warning: ")]
    assert [w.split(": ")[2] for w in warnings] == ["BTCUSDT", "ETHUSDT"], err
    assert all("executor.json starting_wallet_usd 1 plus the journal's PnL" in w
               and "the largest opening order risk_limits.max_trade_nav_pct allows is 0.1 USD" in w
               and "every opening intent will be vetoed" in w for w in warnings)
    routed, vetoed = _journaled(tmp_path)
    assert not routed and len(vetoed) == 24  # as warned


def test_a_tape_with_live_is_refused_before_anything_opens(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    """--tape was ignored under --live: a run meant to replay a recording would have traded on the venue."""
    monkeypatch.setenv("BINANCE_API_KEY", "k")
    monkeypatch.setenv("BINANCE_API_SECRET", "s")
    tape = tmp_path / "btc.parquet"
    tape.write_bytes(b"PAR1")
    assert main(_args(tmp_path, "--live", "--tape", str(tape))) == 2
    captured = capsys.readouterr()
    assert captured.err.strip() == ("router-tuner live: --tape replays a recording in paper mode, and --live trades "
                                    "on the venue's market: drop one of them")
    assert captured.out == "" and not (tmp_path / "journal.sqlite").exists()


def test_a_live_venue_other_than_the_configured_exchange_is_bad_input(config_dir: Path, tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    """It was exit 1, "venue not started: ValueError", after the metrics endpoint had started."""
    monkeypatch.setenv("BINANCE_API_KEY", "k")
    monkeypatch.setenv("BINANCE_API_SECRET", "s")
    edit_config(config_dir, "executor.json", lambda d: d["live"].update(exchange_id="bybit"))  # binance: a load error
    assert main(_args(tmp_path, "--live", "--config", str(config_dir))) == 2
    assert capsys.readouterr().err.strip() == (
        "router-tuner live: --venue binanceusdm but executor.json live.exchange_id is bybit: they must name the same "
        "exchange; set it to binanceusdm (venues with a live adapter: binanceusdm)")
    assert not (tmp_path / "journal.sqlite").exists()


def test_live_seed_is_recorded_with_every_version_the_tuner_publishes(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """The version runs recorded executor.json paper.seed (11) only, whatever --seed seeded the router with."""
    from mlflow import MlflowClient

    from tests.cli.test_crash_points import _paper_tuner

    argv, env = _paper_tuner(tmp_path, 35)
    argv[argv.index("--seed") + 1] = "123"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", env["MLFLOW_TRACKING_URI"])
    edit_config(tmp_path / "config", "executor.json", lambda d: d["prometheus"].update(enabled=False))
    assert main(argv) == 0
    client = MlflowClient(tracking_uri=env["MLFLOW_TRACKING_URI"])
    runs = client.search_runs([client.get_experiment_by_name("router-tuner").experiment_id])
    versions = [r.data.params for r in runs if r.data.tags.get("kind") == "policy_version"]
    assert len(versions) >= 2
    assert {(p["router_seed"], p["executor.paper.seed"]) for p in versions} == {("123", "11")}


def test_live_tracking_uri_names_the_store_the_tuner_publishes_to(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """live had no --tracking-uri (simulate, sweep, ope and policy have one): only MLFLOW_TRACKING_URI or tuner.json
    chose the store. Given, it wins over the environment, as on the other commands."""
    from mlflow import MlflowClient

    from tests.cli.test_crash_points import _paper_tuner

    argv, env = _paper_tuner(tmp_path, 35)
    decoy = tmp_path / "decoy.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{decoy}")
    edit_config(tmp_path / "config", "executor.json", lambda d: d["prometheus"].update(enabled=False))
    assert main([*argv, "--tracking-uri", env["MLFLOW_TRACKING_URI"]]) == 0
    client = MlflowClient(tracking_uri=env["MLFLOW_TRACKING_URI"])
    runs = client.search_runs([client.get_experiment_by_name("router-tuner").experiment_id])
    assert sum(r.data.tags.get("kind") == "policy_version" for r in runs) >= 2
    assert not decoy.exists()
