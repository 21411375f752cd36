"""Adaptive routing (``--policy-source tuner``) in process on the synthetic paper market: the tuner learns
toward the cheaper arm and publishes versions to a tmp MLflow store, shadow mode sends exactly what the
champion alone sends, a crash between learning and journaling neither loses nor repeats an event, and
health, Prometheus and alerts show the tuner block."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import msgspec
import pytest
from prometheus_client import generate_latest

from router_tuner.config.loader import ConfigError
from router_tuner.executor.adaptive.checkpoint import TunerCheckpoint
from router_tuner.executor.adaptive.health import render_tuner_health
from router_tuner.executor.adaptive.records import ExcludedArm, TunerHealth, TunerSymbolHealth
from router_tuner.executor.adaptive.routing import AdaptiveStateAhead
from router_tuner.executor.halt import ExecutorHalted
from router_tuner.executor.monitoring.alerts import evaluate_tuner_alerts
from router_tuner.executor.store import ExecutorStore
from router_tuner.router.contract import ContractSpec
from router_tuner.router.events import RouterEvent
from router_tuner.router.venue import OrderRequest, OrderState, VenueTimeout
from router_tuner.tuner.factory import build_reward_filter
from router_tuner.tuner.policy_source import StaticPolicySource
from router_tuner.tuner.service.publish import InMemoryPublisher, MlflowPublisher
from router_tuner.tuner.state import StateFileError
from tests.executor.adaptive.live_adaptive_support import (
    SYMBOL,
    adaptive_config,
    adaptive_executor,
    round_trip,
    run_intents,
)
from tests.executor.test_executor_support import build_executor, make_paper_venue

pytestmark = pytest.mark.timeout(60)


class RecordingVenue:
    """Passes everything to the paper venue and records every order request that reaches it."""

    def __init__(self, inner: Any) -> None:
        self.inner, self.name = inner, inner.name
        self.placed: list[OrderRequest] = []

    @property
    def clock(self) -> Any:
        return self.inner.clock

    def contract(self, symbol: str) -> ContractSpec:
        return self.inner.contract(symbol)

    def place_order(self, request: OrderRequest) -> OrderState:
        self.placed.append(request)
        return self.inner.place_order(request)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def _offset(arm: str) -> float:
    return float(arm.split("_")[0][1:])


def _learnable(config: Any, events: list[RouterEvent]) -> int:
    reward_filter = build_reward_filter(config.tuner)
    return sum(reward_filter.reward_from_event(e) is not None for e in events)


def _static_mean_cost(config: Any, where: Path) -> float:
    """Mean cost of the test's 500 intents routed by the static policy on a fresh paper market: the reference the
    tuner must beat (it need not route the static arm itself: the default learner has no forced trials)."""
    where.mkdir()
    executor = build_executor(config, make_paper_venue(config), where,
                              policy_for=StaticPolicySource(config.router, [SYMBOL]).current)[0]
    executor.start()
    run_intents(executor, range(500))
    costs = [e.cost_bps for e in executor.journal.read("router") if e.cost_bps is not None]
    return sum(costs) / len(costs)


def test_paper_run_learns_the_cheaper_arm_and_publishes_to_mlflow(tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    config = adaptive_config()
    publisher = MlflowPublisher.from_config(config, tracking_uri=f"sqlite:///{tmp_path}/mlflow.db")
    executor, adaptive = adaptive_executor(config, make_paper_venue(config), tmp_path, publisher=publisher)
    executor.start()
    run_intents(executor, range(500))
    executor.publish_now()

    events = list(executor.journal.read("router"))
    assert len(events) == 500 and all(e.policy_id == f"tuner-{SYMBOL}" for e in events)
    mean_cost: dict[str, list[float]] = {}
    for event in events:
        if event.cost_bps is not None:
            mean_cost.setdefault(event.arm, []).append(event.cost_bps)
    static_cost = _static_mean_cost(config, tmp_path / "static")   # the same intents under the static policy alone
    late = Counter(e.arm for e in events[-150:])
    # the synthetic market fills deep passive orders: wider offsets are cheaper, and the tuner moves there
    assert sum(_offset(e.arm) for e in events[-150:]) / 150 > 2.0 * _offset("o1.00_b0.00"), "well past static"
    cheaper = {arm for arm, costs in mean_cost.items() if sum(costs) / len(costs) < static_cost - 0.5}
    assert sum(late[arm] for arm in cheaper) / 150 > 0.6
    # every decision logged its propensity; versions were published to the MLflow registry
    assert all(0.0 < e.propensity <= 1.0 for e in events)
    versions = publisher.registry.list(SYMBOL)
    assert len(versions) >= 1 and adaptive.service.tuner(SYMBOL).policy.version == len(versions)
    assert _offset(adaptive.service.tuner(SYMBOL).policy.arm) > 1.0
    # health: the tuner block is stored with the snapshot, rendered, and mirrored in the gauges
    tuner = executor.store.latest_tuner_health()
    assert tuner is not None and tuner.router_events_learned == 500
    (row,) = tuner.symbols
    assert (row.mode, row.policy_version, row.learned_outcomes) == ("live", len(versions), _learnable(config, events))
    assert row.budget_charged_bps_per_order <= row.budget_max_bps_per_order
    text = render_tuner_health(tuner)
    assert f"tuner {SYMBOL}" in text and "mode live" in text and f"v{len(versions)}" in text
    metrics = generate_latest(executor.telemetry.metrics.registry).decode()
    assert f'tuner_live{{symbol="{SYMBOL}"}} 1.0' in metrics
    assert f'tuner_learned_outcomes_total{{symbol="{SYMBOL}"}} {float(row.learned_outcomes)}' in metrics
    from router_tuner.cli.main import main as cli_main

    assert cli_main(["health", "--store", str(tmp_path / "executor.sqlite")]) == 0
    assert "mode live" in capsys.readouterr().out, "router-tuner health prints the tuner block"


def test_health_row_names_the_published_arm_not_the_last_explored_one(tmp_path: Path) -> None:
    """Issue 16: the row showed "v2 arm o0.50_b0.00" while the tuner's v2 was o0.00_b0.00."""
    config = adaptive_config()
    executor, adaptive = adaptive_executor(config, make_paper_venue(config), tmp_path)
    executor.start()
    explored_last = 0
    for chunk in range(12):
        run_intents(executor, range(chunk * 10, chunk * 10 + 10))
        executor.publish_now()
        (row,) = executor.store.latest_health().symbols
        published = adaptive.service.tuner(SYMBOL).policy
        assert (row.policy_id, row.policy_version, row.arm) == (published.policy_id, published.version, published.arm)
        last = list(executor.journal.read("router"))[-1]
        explored_last += last.arm != published.arm
    assert explored_last > 0, "some chunk ended on an explored arm, so the check above could fail"


def test_shadow_mode_sends_exactly_what_the_champion_alone_sends(tmp_path: Path) -> None:
    def run(config: Any, where: Path, adaptive: bool) -> tuple[list[OrderRequest], Any]:
        where.mkdir()
        venue = RecordingVenue(make_paper_venue(config))
        if adaptive:
            executor, _ = adaptive_executor(config, venue, where)
        else:
            executor = build_executor(config, venue, where,
                                      policy_for=StaticPolicySource(config.router, [SYMBOL]).current)[0]
        executor.start()
        run_intents(executor, range(120))
        return venue.placed, executor

    champion_only, _ = run(adaptive_config(), tmp_path / "static", adaptive=False)
    shadowed, executor = run(adaptive_config(shadow=True), tmp_path / "shadow", adaptive=True)
    assert len(champion_only) >= 120 and shadowed == champion_only
    journal = executor.journal
    shadows = {s.intent_id: s for s in journal.read("shadow")}
    events = list(journal.read("router"))
    assert set(shadows) == {e.intent_id for e in events}  # one proposal per routed intent, same batch
    assert all(s.acting_arm == "o1.00_b0.00" and s.acting_policy_version == 0 for s in shadows.values())
    executor.publish_now()
    tuner = executor.store.latest_tuner_health()
    assert tuner is not None
    (row,) = tuner.symbols
    agreed = [s.agrees for s in shadows.values()][-row_window(executor):]
    assert row.mode == "shadow" and row.shadow_proposals == len(shadows) and row.policy_version == 0
    assert row.agreement == pytest.approx(sum(agreed) / len(agreed))
    assert row.learned_outcomes == _learnable(executor.config, events)
    assert all(s.proposed_arm in executor.adaptive.service.tuner(SYMBOL).allowed_arm_ids for s in shadows.values())


def row_window(executor: Any) -> int:
    return executor.config.tuner.deployment.shadow.agreement_window


class FailingJournal:
    """A journal whose next append fails: the process 'dies' between learning and journaling."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.fail = False

    def append_many(self, events: Any) -> None:
        if self.fail:
            raise OSError("disk gone")
        self.inner.append_many(events)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def test_crash_between_learning_and_journaling_learns_each_event_once(tmp_path: Path) -> None:
    config = adaptive_config(checkpoint_every=7)
    venue = make_paper_venue(config)
    executor, adaptive = adaptive_executor(config, venue, tmp_path)
    executor.journal = FailingJournal(executor.journal)
    executor.start()
    run_intents(executor, range(60))
    executor.journal.fail = True
    with pytest.raises(ExecutorHalted, match="disk gone"):
        run_intents(executor, range(60, 61))  # observed in memory, never journaled: the executor halts
    with pytest.raises(AdaptiveStateAhead):
        adaptive.checkpoint()  # memory is ahead of the journal: it must never be saved
    manifest = TunerCheckpoint(tmp_path / "tuner_state.json").manifest
    assert manifest is not None
    learned = manifest.router_events_learned  # the last multiple of 7, or a later version's forced checkpoint
    assert 56 <= learned < 60
    executor.journal.inner.close()
    executor.store.close()

    # restart on the same venue (as a live exchange would be): catch up to 60 events, recover the in-flight one
    restarted, adaptive2 = adaptive_executor(config, venue, tmp_path)
    report = restarted.start()
    assert report.recovered_intent_ids == ("i60",)
    assert report.tuner_catch_up is not None and report.tuner_catch_up.relearned == 60 - learned
    run_intents(restarted, range(61, 100))
    events = list(restarted.journal.read("router"))
    assert [e.intent_id for e in events] == [f"i{k}" for k in range(100)]
    row = adaptive2.health(0).symbols[0]
    assert row.learned_outcomes == _learnable(config, events)  # nothing lost, nothing twice
    assert adaptive2.router_events_learned == 100


def test_a_tuner_state_lost_or_looked_for_elsewhere_is_learned_again_from_the_journal(tmp_path: Path) -> None:
    """A restart whose --tuner-state names no file (moved, deleted, or the relative default read from another
    folder) started the tuner afresh at the journal's end: all it had learned was forgotten, silently ("tuner
    re-learned 0 events"). The journal and the stored decisions hold it all: a fresh state learns them again."""
    config = adaptive_config(checkpoint_every=1000)
    venue = make_paper_venue(config)
    executor, adaptive = adaptive_executor(config, venue, tmp_path)
    executor.start()
    run_intents(executor, range(40))
    learned = adaptive.health(0).symbols[0].learned_outcomes
    assert learned > 0
    executor.journal.close()
    executor.store.close()
    for state in tmp_path.glob("tuner_state*.json"):
        state.unlink()

    restarted, adaptive2 = adaptive_executor(config, venue, tmp_path)
    report = restarted.start()
    assert report.tuner_catch_up is not None and report.tuner_catch_up.relearned == 40
    assert adaptive2.health(0).symbols[0].learned_outcomes == learned  # nothing forgotten, nothing twice
    assert adaptive2.router_events_learned == 40


def test_a_state_ahead_of_the_journal_or_missing_files_refuse_to_start(tmp_path: Path) -> None:
    config = adaptive_config()
    executor, _ = adaptive_executor(config, make_paper_venue(config), tmp_path)
    executor.start()
    run_intents(executor, range(4))
    executor.journal.close()
    executor.store.close()
    other = tmp_path / "other"
    other.mkdir()
    (other / "tuner_state.json").write_bytes((tmp_path / "tuner_state.json").read_bytes())
    for name in ("tuner_state.g5.json", "tuner_state.g5.tuners.json"):
        (other / name).write_bytes((tmp_path / name).read_bytes())
    with pytest.raises(ValueError, match="learned 4 router events but the journal holds 0"):
        adaptive_executor(config, make_paper_venue(config), other)
    (other / "tuner_state.g5.json").unlink()
    with pytest.raises(StateFileError, match="names generation 5"):
        TunerCheckpoint(other / "tuner_state.json").restore(config, [SYMBOL], InMemoryPublisher())
    (other / "tuner_state.json").write_bytes(b"{not json")
    with pytest.raises(StateFileError, match="not a tuner checkpoint manifest"):
        TunerCheckpoint(other / "tuner_state.json")


def _row(**changes: Any) -> TunerSymbolHealth:
    base = dict(symbol=SYMBOL, mode="live", agreement=None, shadow_proposals=0, policy_id="tuner-BTCUSDT",
                policy_version=3, published_arm="o2.00_b0.00", last_arm="o2.00_b0.00", learned_outcomes=10,
                budget_orders=10, budget_charged_bps_per_order=0.2, budget_max_bps_per_order=1.0,
                budget_charged_usd_today=5.0, budget_max_usd_per_day=200.0, budget_blocked_decisions=0,
                allowed_arms=2, excluded_arms=(), all_arms_excluded=False, safety_fallbacks=0, drifts_detected=0,
                rejections={})
    return TunerSymbolHealth(**{**base, **changes})


def test_tuner_alerts_fire_on_a_spent_budget_and_on_every_arm_excluded(tmp_path: Path) -> None:
    limits = adaptive_config().executor.alerts
    quiet = TunerHealth(ts_ns=1, router_events_learned=10, checkpoint_generation=2, symbols=(_row(),))
    assert evaluate_tuner_alerts(quiet, limits) == ()
    excluded = (ExcludedArm(arm="o2.00_b0.00", reason="fallback_ratio_gt(0.8)", threshold=0.8, observed=0.9),
                ExcludedArm(arm="o4.00_b0.00", reason="cost_bps_gt(30)", threshold=30.0, observed=41.0))
    loud = TunerHealth(ts_ns=1, router_events_learned=10, checkpoint_generation=2, symbols=(
        _row(budget_charged_usd_today=190.0, excluded_arms=excluded, all_arms_excluded=True),))
    alerts = {a.code: a for a in evaluate_tuner_alerts(loud, limits)}
    assert set(alerts) == {f"tuner_budget_exhausted:{SYMBOL}", f"tuner_all_arms_excluded:{SYMBOL}"}
    assert alerts[f"tuner_budget_exhausted:{SYMBOL}"].observed == pytest.approx(0.95)
    assert "fallback_ratio_gt(0.8)" in alerts[f"tuner_all_arms_excluded:{SYMBOL}"].detail
    text = render_tuner_health(loud)
    assert "excluded o4.00_b0.00: cost_bps_gt(30) (observed 41)" in text
    # stored with its snapshot: the latest snapshot's block is returned, none for a non-adaptive publish
    config = adaptive_config()
    executor, _ = adaptive_executor(config, make_paper_venue(config), tmp_path)
    executor.start()
    executor.telemetry.publish(executor.venue.clock.now_ns(), executor.portfolio, executor.policies, loud)
    with ExecutorStore(tmp_path / "executor.sqlite", readonly=True) as reader:
        assert reader.latest_tuner_health() == loud
        assert {a.code for a in reader.alerts()} >= set(alerts)
    metrics = generate_latest(executor.telemetry.metrics.registry).decode()
    assert f'tuner_all_arms_excluded{{symbol="{SYMBOL}"}} 1.0' in metrics
    assert 'reason="cost_bps_gt(30)"' in metrics
    executor.telemetry.publish(executor.venue.clock.now_ns(), executor.portfolio, executor.policies, None)
    with ExecutorStore(tmp_path / "executor.sqlite", readonly=True) as reader:
        assert reader.latest_tuner_health() is None


def test_the_decision_is_stored_with_the_submission_in_one_transaction(tmp_path: Path) -> None:
    config = adaptive_config(shadow=True)
    executor, _ = adaptive_executor(config, make_paper_venue(config), tmp_path)
    executor.start()
    run_intents(executor, range(3))
    decisions = executor.store.decisions()
    assert set(decisions) == set(executor.store.submissions()) == {"i0", "i1", "i2"}
    shadow = {s.intent_id: s for s in executor.journal.read("shadow")}
    assert all(d.mode == "shadow" and d.shadow == shadow[i] for i, d in decisions.items())
    submission = executor.store.submissions()["i0"]
    wrong = msgspec.structs.replace(decisions["i1"], intent_id="i9")
    with pytest.raises(ValueError, match="stored with the submission of"):
        executor.store.record_submission(msgspec.structs.replace(
            submission, intent=msgspec.structs.replace(submission.intent, intent_id="i8")), decision=wrong)
    with pytest.raises(ValueError, match="already submitted"):
        executor.store.record_submission(submission, decision=decisions["i0"])
    assert set(executor.store.decisions()) == {"i0", "i1", "i2"}


class GoLiveRequests:
    """The registry's go-live tags (``policy go-live``), as ``TunerService.follow_go_live_requests`` reads them."""

    def __init__(self) -> None:
        self.modes: dict[str, str] = {}

    def deployment_mode(self, symbol: str) -> str | None:
        return self.modes.get(symbol)


def test_a_go_live_request_is_followed_on_the_health_timer(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    config = adaptive_config(shadow=True)
    executor, adaptive = adaptive_executor(config, make_paper_venue(config), tmp_path)
    requests = GoLiveRequests()
    adaptive._modes = requests  # what cli.live wires to the MLflow registry
    executor.start()
    run_intents(executor, range(10))
    assert adaptive.service.mode(SYMBOL) == "shadow" and executor.journal.count("shadow") == 10
    requests.modes[SYMBOL] = "live"
    generation = TunerCheckpoint(tmp_path / "tuner_state.json").manifest.generation
    with caplog.at_level("INFO", logger="router_tuner.executor.adaptive.routing"):
        executor.telemetry._next_publish_ns = None  # the health timer is due
        executor.publish_if_due()
    assert f"{SYMBOL}: shadow -> live (registry go-live request)" in caplog.text
    tuner = executor.store.latest_tuner_health()
    assert tuner is not None and tuner.symbols[0].mode == "live"
    assert TunerCheckpoint(tmp_path / "tuner_state.json").manifest.generation == generation + 1
    run_intents(executor, range(10, 14))
    assert executor.journal.count("shadow") == 10  # live now: the tuner's own choices route, no proposals
    assert all(e.policy_id == f"tuner-{SYMBOL}" for e in list(executor.journal.read("router"))[10:])


def test_live_cli_refuses_tuner_flags_without_the_tuner_source(tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    from router_tuner.cli.main import main as cli_main

    args = ["live", "--venue", "binanceusdm", "--config", str(Path(__file__).parents[3] / "config" / "defaults"),
            "--intents", str(tmp_path / "none.jsonl"), "--journal", str(tmp_path / "j.sqlite"),
            "--store", str(tmp_path / "s.sqlite")]
    assert cli_main([*args, "--no-mlflow"]) == 2
    assert "--no-mlflow and --tuner-state need --policy-source tuner" in capsys.readouterr().err
    assert cli_main([*args, "--policy-source", "static", "--tuner-state", str(tmp_path / "t.json")]) == 2
    assert not (tmp_path / "j.sqlite").exists()


@pytest.mark.parametrize(("setting", "key"), [({"reward_markout_horizon_ms": 5000.0}, "reward_markout_horizon_ms"),
                                              ({"reward_mid": "route_end", "reward_mid_drift_window": 0},
                                               "reward_mid_drift_window")])
def test_live_adaptive_routing_refuses_a_reward_it_cannot_learn_honestly(
        tmp_path: Path, setting: dict[str, object], key: str) -> None:
    config = adaptive_config()
    adjusted = msgspec.structs.replace(config, tuner=msgspec.structs.replace(config.tuner, **setting))
    with pytest.raises(ConfigError, match=key):
        adaptive_executor(adjusted, make_paper_venue(adjusted), tmp_path)


class TouchFailsAfter(RecordingVenue):
    """The paper venue whose touch reads fail once an order was placed after :meth:`fail_after_next_order`:
    the arrival's read works, the read when the route ends does not."""

    armed_at: int | None = None

    def fail_after_next_order(self) -> None:
        self.armed_at = len(self.placed)

    def top_of_book(self, symbol: str) -> Any:
        if self.armed_at is not None and len(self.placed) > self.armed_at:
            raise VenueTimeout(f"touch of {symbol} timed out")
        return self.inner.top_of_book(symbol)


def test_a_route_end_tuner_learns_the_waiting_drift_live_and_a_failed_touch_read_learns_the_journaled_cost(
        tmp_path: Path) -> None:
    config = adaptive_config()
    against_end = msgspec.structs.replace(config, tuner=msgspec.structs.replace(config.tuner, reward_mid="route_end"))
    venue = TouchFailsAfter(make_paper_venue(against_end))
    executor, adaptive = adaptive_executor(against_end, venue, tmp_path)
    executor.start()
    run_intents(executor, range(40))
    tuner = adaptive.service.tuner(SYMBOL)
    drift = tuner.to_state().waiting_drift
    assert drift is not None and drift.routes == 40 and drift.seconds > 0.0, "every route's end mid was read"
    before = tuner.to_state().period
    venue.fail_after_next_order()
    executor.process(round_trip(40))
    last = list(executor.journal.read("router"))[-1]
    assert last.intent_id == "i40" and last.error is None and last.cost_bps is not None
    assert tuner.to_state().waiting_drift == drift, "no move read: nothing added to the drift"
    after = tuner.to_state().period
    assert after.learned == before.learned + 1, "the event is learned..."
    assert after.cost_sum_bps - before.cost_sum_bps == pytest.approx(last.cost_bps), "...at its journaled cost"




def test_a_coarse_tick_is_told_to_the_learner_and_named_once(tmp_path: Path, caplog: pytest.LogCaptureFixture,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """A coin at 0.02 quoted in 0.00001 (one tick is 5 bps): live adaptive routing fitted the structured learner at the
    grid's nominal offsets, four of which post one tick behind, and said nothing; now the learner is told the tick at
    the first decision (again only when the price moves it by 1%) and the log says once which offsets share a price."""
    base = adaptive_config()
    ex = base.executor
    coin = msgspec.structs.replace(ex.paper.synthetic[SYMBOL], mid0=0.02, mean_trade_qty=2500.0, touch_qty=1e5)
    executor_section = msgspec.structs.replace(
        ex, instruments={SYMBOL: msgspec.structs.replace(ex.instruments[SYMBOL], tick_size=0.00001)},
        paper=msgspec.structs.replace(ex.paper, synthetic={SYMBOL: coin}))
    config = msgspec.structs.replace(base, executor=executor_section)
    executor, adaptive = adaptive_executor(config, make_paper_venue(config), tmp_path)
    executor.start()
    learner = adaptive.service.tuner(SYMBOL).learner
    told: list[float] = []
    tell = learner.set_tick_bps
    monkeypatch.setattr(learner, "set_tick_bps", lambda tick_bps: (told.append(tick_bps), tell(tick_bps)))
    with caplog.at_level("WARNING", logger="router_tuner.executor.adaptive.routing"):
        run_intents(executor, range(6))
    assert len(told) == 1 and told[0] == pytest.approx(5.0, rel=0.01)
    warned = [r.getMessage() for r in caplog.records if "post at one price" in r.getMessage()]
    assert len(warned) == 1 and warned[0].startswith("BTCUSDT: one tick is 5 bps of its price")
    routed = list(executor.journal.read("router"))
    assert len(routed) == 6 and all(e.filled_qty > 0 for e in routed)
