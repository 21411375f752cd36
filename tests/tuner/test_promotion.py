"""OPE-gated promotion: refused when the challenger's lower bound does not clear the margin, accepted when it
does, forced with who/why recorded in MLflow; rollback reaches the router within one decision."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import msgspec
import numpy as np
import pytest

from router_tuner.cli.main import main
from router_tuner.config.loader import load_config
from router_tuner.executor.journal import Journal
from router_tuner.router.events import RouterEvent
from router_tuner.router.policy import RouterPolicy
from router_tuner.router.routing.machine import RouteSettings, route
from router_tuner.router.routing.order import RouteOrder
from router_tuner.router.routing.scripted import Quote, ScriptedVenue
from router_tuner.tuner.policy_source import RegistryPolicySource
from router_tuner.tuner.promotion import PromotionRule, judge, recent_events
from router_tuner.tuner.service.publish import InMemoryPublisher
from router_tuner.tuner.service.tuner_service import TunerService
from router_tuner.tuner.shadow import with_shadow_symbols
from tests.conftest import default_registry
from tests.tuner.test_service import event_for

BUNDLE = load_config()
OPE = msgspec.structs.replace(BUNDLE.tuner.ope, bootstrap_resamples=200)
RULE = PromotionRule(recent_window_s=3600.0, margin_bps=0.25, min_effective_sample_size=50.0, gate_estimator="snips")
CHAMPION, CHALLENGER = (1.0, 0.0), (2.0, 0.0)
NS = 1_000_000_000


def policy(symbol: str, version: int, knobs: tuple[float, float], propensity: float = 1.0) -> RouterPolicy:
    offset, bias = knobs
    return dataclasses.replace(RouterPolicy.from_static(symbol, BUNDLE.router, policy_id=f"tuner-{symbol}"),
                               version=version, arm=f"o{offset:.2f}_b{bias:.2f}", maker_offset_bps=offset,
                               taker_bias=bias, propensity=propensity)


def logged(symbol: str, n: int, challenger_cost_bps: float, *, seed: int, start_s: float = 0.0) -> list[RouterEvent]:
    """A champion that explores the challenger's arm 30% of the time; the champion's arm costs 3 bps."""
    rng = np.random.default_rng(seed)
    events = []
    for i in range(n):
        explore = rng.random() < 0.3
        acting = policy(symbol, 1, CHALLENGER if explore else CHAMPION, 0.3 if explore else 0.7)
        cost = (challenger_cost_bps if explore else 3.0) + rng.normal(0.0, 1.0)
        events.append(msgspec.structs.replace(event_for(acting, cost, symbol=symbol), intent_id=f"{symbol}-{i}",
                                              finished_ts_ns=int((start_s + i) * NS)))
    return events


def test_the_gate_passes_only_a_challenger_whose_lower_bound_clears_the_margin() -> None:
    better = judge(logged("BTCUSDT", 1000, 1.0, seed=1), "o2.00_b0.00", "BTCUSDT", RULE, OPE, seed=3)
    assert better.passes and better.estimate is not None and better.champion_value is not None
    assert better.estimate.ci_low > better.champion_value.value + RULE.margin_bps
    tags = better.tags()
    assert tags["promotion"] == "ope_gate"
    # every number a person reads is a cost in bps: the challenger ~1 bp, the champion's log ~2.4 bps
    assert float(tags["promotion_cost_bps"]) == pytest.approx(1.0, abs=0.3)
    assert float(tags["promotion_cost_ci_high_bps"]) == pytest.approx(-better.estimate.ci_low, rel=1e-5)
    assert float(tags["promotion_champion_cost_bps"]) == pytest.approx(-better.champion_value.value, rel=1e-5)
    assert float(tags["promotion_champion_cost_bps"]) > 2.0
    upper, champion = float(tags["promotion_cost_ci_high_bps"]), float(tags["promotion_champion_cost_bps"])
    assert better.reason == (f"snips cost upper bound {upper:.3f} bps < the champion's {champion:.3f} bps - 0.25 bps "
                             f"margin = {champion - 0.25:.3f} bps (cost, lower is better)")
    assert "-" not in better.reason.split("bound ")[1].split(" ")[0], "no negative rewards in the message"

    # the challenger is better by ~0.3 bps of reward over the log: its lower bound cannot clear 0.25 bps on top
    close = judge(logged("BTCUSDT", 1000, 2.6, seed=1), "o2.00_b0.00", "BTCUSDT", RULE, OPE, seed=3)
    assert not close.passes and "cost upper bound" in close.reason and "does not beat the champion's" in close.reason

    thin = dataclasses.replace(RULE, min_effective_sample_size=10_000.0)
    assert "effective sample size" in judge(logged("BTCUSDT", 1000, 1.0, seed=1), "o2.00_b0.00", "BTCUSDT",
                                            thin, OPE, seed=3).reason
    unsupported = judge(logged("BTCUSDT", 200, 1.0, seed=1), "o4.00_b0.00", "BTCUSDT", RULE, OPE, seed=3)
    assert not unsupported.passes and unsupported.reason.startswith("ope: candidate arm o4.00_b0.00 was never taken")


def test_recent_means_the_configured_window_before_the_latest_event() -> None:
    events = logged("BTCUSDT", 10, 1.0, seed=1) + logged("ETHUSDT", 3, 1.0, seed=2, start_s=10_000.0)
    assert [e.intent_id for e in recent_events(events, "BTCUSDT", 4.0)] == [f"BTCUSDT-{i}" for i in (5, 6, 7, 8, 9)]
    assert recent_events(events, "BNBUSDT", 4.0) == []
    with pytest.raises(ValueError, match="margin_bps"):
        PromotionRule(recent_window_s=1.0, margin_bps=-1.0, min_effective_sample_size=1.0, gate_estimator="snips")


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> str:
    """Champion v1 (1 bp behind) and challenger v2 (2 bps behind) for BTCUSDT and ETHUSDT."""
    uri = f"sqlite:///{tmp_path_factory.mktemp('mlflow')}/store.db"
    registry = default_registry(uri)
    for symbol in ("BTCUSDT", "ETHUSDT"):
        for version, knobs in ((1, CHAMPION), (2, CHALLENGER)):
            registry.publish(policy(symbol, version, knobs), params={"learner": "thompson"},
                             metrics={}, config_snapshot={})
    return uri


def journal_with(path: Path, events: list[RouterEvent]) -> Path:
    with Journal(path) as journal:
        journal.append_many(events)
    return path


def test_promote_is_refused_then_accepted_on_the_logs_and_force_records_who_and_why(
        store: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    common = ["--symbol", "BTCUSDT", "--tracking-uri", store]
    worse = journal_with(tmp_path / "worse.sqlite", logged("BTCUSDT", 600, 3.5, seed=4))
    assert main(["policy", "promote", *common, "--journal", str(worse)]) == 1
    assert "refused: snips cost upper bound" in capsys.readouterr().err
    registry = default_registry(store)
    assert registry.champion_version("BTCUSDT") == 1, "a refused promotion changes nothing"

    better = journal_with(tmp_path / "better.sqlite", logged("BTCUSDT", 600, 1.0, seed=4))
    assert main(["policy", "promote", *common, "--journal", str(better)]) == 0
    assert registry.champion_version("BTCUSDT") == 2
    tags = registry.version_tags("BTCUSDT", 2)
    assert tags["promotion"] == "ope_gate"
    assert float(tags["promotion_cost_ci_high_bps"]) < float(tags["promotion_champion_cost_bps"]) - 0.25

    eth = ["--symbol", "ETHUSDT", "--tracking-uri", store]
    assert main(["policy", "promote", *eth]) == 2
    assert "needs --journal PATH" in capsys.readouterr().err
    assert main(["policy", "promote", *eth, "--force", "--who", "alice"]) == 2
    assert "needs --who NAME and --why TEXT" in capsys.readouterr().err
    assert main(["policy", "promote", *eth, "--force", "--who", "alice", "--why", "venue fee change"]) == 0
    forced = registry.show("ETHUSDT", "champion")
    assert forced.version == 2
    expected = {"promotion": "forced", "promotion_forced_by": "alice", "promotion_forced_why": "venue fee change"}
    assert expected.items() <= registry.version_tags("ETHUSDT", 2).items()
    from mlflow import MlflowClient

    run_tags = MlflowClient(tracking_uri=store).get_run(forced.run_id).data.tags
    assert expected.items() <= run_tags.items(), "who and why are on the version's run too"
    assert main(["policy", "promote", *eth, "--journal", str(tmp_path / "missing.sqlite")]) == 2  # bad input
    assert "no journal" in capsys.readouterr().err


def test_rollback_reaches_the_router_within_one_decision(store: str, capsys: pytest.CaptureFixture[str],
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    registry = default_registry(store)
    source = RegistryPolicySource(registry, ["ETHUSDT"], BUNDLE.router.policy_bounds, refresh_s=0.0)
    settings = RouteSettings.from_config(BUNDLE.router, poll_interval_ms=100.0, max_venue_retries=2,
                                         rate_limit_backoff_ms=50.0, max_retry_after_ms=5000.0)

    def one_order(i: int) -> RouterEvent:
        venue = ScriptedVenue("ETHUSDT", [Quote(0, 100.0, 100.1, 5.0, 5.0)],
                              contract=BUNDLE.strategy.universe["ETHUSDT"], fills=[], faults=[],
                              maker_fee_bps=-0.5, taker_fee_bps=4.0, entry_latency_ns=0, cancel_latency_ns=0)
        order = RouteOrder(intent_id=f"r{i}", symbol="ETHUSDT", side="buy", qty=1.0, reduce_only=False,
                           close_position=False, position_side="LONG", quote="USDT", tick_size=0.01, qty_step=0.001)
        return route(order, source.current("ETHUSDT"), venue, rng=np.random.default_rng(i), settings=settings)

    before = registry.champion_version("ETHUSDT")
    assert one_order(0).maker_offset_bps == 2.0 and before == 2
    assert main(["policy", "rollback", "--symbol", "ETHUSDT", "--tracking-uri", store]) == 0
    capsys.readouterr()
    after = one_order(1)
    assert (after.policy_version, after.maker_offset_bps) == (1, 1.0), "the very next order routes the old version"


def test_go_live_command_takes_a_shadow_symbol_live(store: str, capsys: pytest.CaptureFixture[str],
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    registry = default_registry(store)
    service = TunerService.from_config(with_shadow_symbols(BUNDLE, ("BTCUSDT", "ETHUSDT")), ["BTCUSDT", "ETHUSDT"],
                                       InMemoryPublisher())
    assert service.follow_go_live_requests(registry) == []
    assert main(["policy", "go-live", "--symbol", "BTCUSDT", "--tracking-uri", store]) == 2
    assert main(["policy", "go-live", "--symbol", "BTCUSDT", "--tracking-uri", store, "--who", "bob",
                 "--why", "agreement 0.93 for a week"]) == 0
    capsys.readouterr()
    assert service.follow_go_live_requests(registry) == ["BTCUSDT"]
    assert (service.mode("BTCUSDT"), service.mode("ETHUSDT")) == ("live", "shadow")
    assert main(["policy", "go-live", "--symbol", "SOLUSDT", "--tracking-uri", store, "--who", "bob",
                 "--why", "x"]) == 2  # not in the universe: bad input, before MLflow is asked
    assert "--symbol SOLUSDT: not in strategy_config.json universe" in capsys.readouterr().err


def test_promote_refuses_a_journal_where_several_policies_routed_the_same_intents(
        store: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """A simulation's journal (every policy routes the same intents) given to `policy promote --journal`: the gate
    pooled every policy's events as the champion's own log, each intent once per policy, and promoted on that
    mixture without a word (`ope` warns of such a log)."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    champion_log = [msgspec.structs.replace(e, arrival_ts_ns=e.finished_ts_ns)
                    for e in logged("ETHUSDT", 600, 1.0, seed=4)]
    other_policy = [msgspec.structs.replace(e, policy_id="fixed-o2.00_b0.00-ETHUSDT", intent_id=f"{e.intent_id}~f")
                    for e in champion_log]
    mixed = journal_with(tmp_path / "simulated.sqlite", champion_log + other_policy)
    argv = ["policy", "promote", "--symbol", "ETHUSDT", "--tracking-uri", store, "--journal", str(mixed)]
    assert main(argv) == 2
    assert capsys.readouterr().err == (
        f"router-tuner policy: promote --journal {mixed}: its recent ETHUSDT router events were logged by 2 policies "
        "routing over the same time (fixed-o2.00_b0.00-ETHUSDT, tuner-ETHUSDT), as a simulation's journal is: the "
        "gate judges the challenger on the champion's own log; give the journal `live` wrote under the champion\n")
    assert default_registry(store).champion_version("ETHUSDT") == 1, "nothing moved"
    # a live journal where the static policy handed over to the tuner (one after the other) is one log
    handed_over = [msgspec.structs.replace(e, policy_id="static-ETHUSDT", intent_id=f"{e.intent_id}~s",
                                           arrival_ts_ns=e.arrival_ts_ns - 700 * NS,
                                           finished_ts_ns=e.finished_ts_ns - 700 * NS) for e in champion_log[:5]]
    sequential = journal_with(tmp_path / "live.sqlite", handed_over + champion_log)
    assert main(["policy", "promote", "--symbol", "ETHUSDT", "--tracking-uri", store, "--journal",
                 str(sequential), "--json"]) == 0, capsys.readouterr().err
    assert default_registry(store).champion_version("ETHUSDT") == 2
