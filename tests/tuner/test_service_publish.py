"""Publishing: each record carries the full params and metrics; the MLflow publisher adds the config snapshot.

The MLflow publisher is tested against a recording registry here (no store), and against a real local store where a
restarted tuner meets a version a killed run registered; the real registry round trip is in ``test_policy_source``.
"""

from __future__ import annotations

import logging
import math
import sys
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import pytest

from router_tuner.config.loader import snapshot
from router_tuner.config.models import AdwinDrift, ConfigBundle
from router_tuner.router.policy import RouterPolicy
from router_tuner.tuner.arms import Arm
from router_tuner.tuner.factory import build_grid, build_guardrails, build_learner, build_reward_filter, symbol_seed
from router_tuner.tuner.guardrails import AdwinParams, PageHinkleyParams
from router_tuner.tuner.learners import UCB, EpsilonGreedy, LinUCB, NormalThompson
from router_tuner.tuner.registry import PolicyRegistry, PolicyVersion, RegistryError
from router_tuner.tuner.service.publish import MlflowPublisher, PolicyRecord
from router_tuner.tuner.service.tuner_service import TunerService
from tests.tuner.test_service import SYMBOL, CostFn, drive, model_cost, new_service, tuned_bundle


class RecordingRegistry:
    """Stands in for ``PolicyRegistry``: remembers publish/promote calls, numbers versions from 1."""

    def __init__(self) -> None:
        self.published: list[dict[str, Any]] = []
        self.promoted: list[tuple[str, int]] = []
        self.tagged: list[tuple[str, int, dict[str, str]]] = []

    def publish(self, policy: RouterPolicy, *, params: Mapping[str, Any], metrics: Mapping[str, float],
                config_snapshot: Mapping[str, Any], run_name: str, parent_run_id: str | None,
                tags: Mapping[str, str] | None = None) -> PolicyVersion:
        symbol = policy.symbol
        self.published.append({"symbol": symbol, "policy": policy, "params": dict(params),
                               "metrics": dict(metrics), "config_snapshot": config_snapshot, "run_name": run_name,
                               "tags": dict(tags or {})})
        version = len(self.published)
        aliases = ("challenger", "champion") if version == 1 else ("challenger",)
        return PolicyVersion(symbol, f"m-{symbol}", version, f"run{version}", aliases, policy.as_params(),
                             dict(metrics), {})

    def promote(self, symbol: str, version: int | None = None) -> PolicyVersion:
        assert version is not None
        self.promoted.append((symbol, version))
        return PolicyVersion(symbol, f"m-{symbol}", version, f"run{version}", ("champion",), {}, {}, {})

    def tag_version(self, symbol: str, version: int, tags: Mapping[str, str]) -> None:
        self.tagged.append((symbol, version, dict(tags)))


def _first_record() -> PolicyRecord:
    service, publisher = new_service(tuned_bundle(min_outcomes=30, every_n=30))
    rng = np.random.default_rng(8)
    while not publisher.records:
        drive(service, 1, model_cost, rng)
    return publisher.records[0]


def test_record_carries_learner_grid_guardrails_and_finite_metrics() -> None:
    record = _first_record()
    params = record.params()
    assert params["learner"] == "thompson" and params["policy_version"] == 1 and params["previous_version"] == 0
    assert set(params["learner_params"]) == {"prior_mean_reward", "prior_mean_pseudo_count", "prior_noise_std",
                                             "prior_noise_pseudo_count", "burn_in"}
    assert params["arm_grid"]["maker_offsets_bps"] == [0.0, 0.5, 1.0, 2.0, 4.0]
    assert len(params["arm_grid"]["arm_ids"]) == 6, "five maker offsets and one taker arm"
    assert params["guardrails"]["max_step_offset_bps"] == 2.0 and "drift" in params["guardrails"]
    metrics = record.metrics.as_dict()
    assert set(metrics) == {"outcomes", "events", "learned_cost_bps", "maker_ratio", "fallback_ratio", "regret_bps",
                            "expected_cost_bps"}
    assert all(math.isfinite(v) for v in metrics.values())
    assert metrics["regret_bps"] >= 0.0 and metrics["maker_ratio"] == 1.0 and metrics["fallback_ratio"] == 0.0


def test_mlflow_publisher_sends_params_metrics_policy_and_config_snapshot() -> None:
    bundle = tuned_bundle(min_outcomes=30, every_n=30)
    registry = RecordingRegistry()
    publisher = MlflowPublisher(registry, bundle, run_params={"router_seed": 123})  # type: ignore[arg-type]
    record = _first_record()
    publisher.publish(record)
    [call] = registry.published
    assert call["symbol"] == SYMBOL and call["policy"] == record.policy
    assert call["params"]["router_seed"] == 123, "what the command ran with besides the configuration"
    for section in ("risk_limits", "router", "executor"):
        assert call["params"][section] == snapshot(bundle)[section]
    assert call["params"]["learner"] == "thompson" and "arm_grid" in call["params"]
    assert call["tags"] == {"learner": "thompson"}, "a version run is found by tags.learner, as the learner runs are"
    assert call["metrics"] == record.metrics.as_dict()
    assert call["config_snapshot"] == snapshot(bundle)
    assert registry.promoted == []
    rollback = PolicyRecord(**{**{f: getattr(record, f) for f in record.__slots__}, "reason": "rollback"})
    publisher.publish(rollback)
    assert registry.promoted == [(SYMBOL, 2)], "a rollback version acts at once"
    [(symbol, version, tags)] = registry.tagged
    assert (symbol, version, tags["promotion"]) == (SYMBOL, 2, "tuner_rollback"), "with a gate record"


def test_mlflow_is_not_imported_by_the_service_path() -> None:
    import subprocess

    code = ("import sys; import tuner.service.tuner_service, tuner.service.publish, tuner.policy_source, "
            "tuner.factory; "
            "print('mlflow' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"


@pytest.mark.parametrize("kind, cls", [("thompson", NormalThompson), ("ucb", UCB),
                                       ("epsilon_greedy", EpsilonGreedy), ("linucb", LinUCB)])
def test_factory_builds_each_configured_learner(kind: str, cls: type) -> None:
    tuner = tuned_bundle(learner=kind).tuner
    router = tuned_bundle().router
    learner = build_learner(tuner, build_grid(tuner, router), symbol_seed(tuner.seed, SYMBOL),
                            router.sim_venue.fees["usdm"], router.static_policy.maker_offset_bps)
    assert isinstance(learner, cls) and learner.params()["burn_in"] == tuner.learner_params.burn_in_per_arm


def test_factory_guardrails_take_bounds_from_router_and_drift_from_tuner() -> None:
    bundle = tuned_bundle()
    rails = build_guardrails(bundle.tuner, bundle.router)
    assert (rails.min_offset_bps, rails.max_offset_bps) == (-1.0, 10.0)
    assert isinstance(rails.drift, PageHinkleyParams) and rails.drift.threshold == 200.0
    adwin = AdwinDrift(delta=0.002, clock=32, grace_period=10, min_window_length=5)
    tuner = msgspec.structs.replace(bundle.tuner, guardrails=msgspec.structs.replace(bundle.tuner.guardrails,
                                                                                     drift=adwin))
    assert build_guardrails(tuner, bundle.router).drift == AdwinParams(0.002, 32, 10, 5)
    band = build_reward_filter(bundle.tuner)
    assert (band.min_cost_bps, band.max_cost_bps) == (-50.0, 200.0)
    assert symbol_seed(7, "BTCUSDT") == symbol_seed(7, "BTCUSDT") != symbol_seed(7, "ETHUSDT")
    with pytest.raises(ValueError, match="non-empty"):
        symbol_seed(7, "")


def _low_offsets(arm: Arm, rng: np.random.Generator) -> float:
    return 2.0 + arm.maker_offset_bps + 4.0 * arm.taker_bias + rng.normal(0.0, 0.1)


def _high_offsets(arm: Arm, rng: np.random.Generator) -> float:
    return 8.0 - arm.maker_offset_bps + 4.0 * arm.taker_bias + rng.normal(0.0, 0.1)


def _run_to_version(service: TunerService, version: int, cost: CostFn, seed: int) -> RouterPolicy:
    """Drive ``service`` until its tuner has published ``version``; returns that version."""
    rng = np.random.default_rng(seed)
    for _ in range(500):
        if service.tuner(SYMBOL).policy.version == version:
            return service.tuner(SYMBOL).policy
        drive(service, 1, cost, rng)
    raise AssertionError(f"no version {version} after 500 orders")


def _store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[PolicyRegistry, ConfigBundle]:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return (PolicyRegistry(f"sqlite:///{tmp_path}/store.db", experiment="test", model_prefix="policy"),
            tuned_bundle(min_outcomes=30, every_n=30))


def test_a_restarted_tuner_adopts_the_version_a_killed_run_registered_with_other_knobs_and_goes_on(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """A run killed after registering version 1 and before saving its state: the restart (from the state before it)
    derived another version 1, which the registry refused ("would be registered as ... version 2"), nothing routed.
    The registered version 1 is now adopted as the tuner's own (knobs, counter) and the tuner's next version is 2."""
    registry, bundle = _store(tmp_path, monkeypatch)
    killed = TunerService.from_config(bundle, [SYMBOL], MlflowPublisher(registry, bundle))
    registered = _run_to_version(killed, 1, _low_offsets, seed=1)
    restarted = TunerService.from_config(bundle, [SYMBOL], MlflowPublisher(registry, bundle))
    with caplog.at_level(logging.WARNING, logger="router_tuner.tuner.service.publish"):
        adopted = _run_to_version(restarted, 1, _high_offsets, seed=2)
    assert adopted == registered, "the registered knobs, not the ones the restart derived"
    [warning] = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    derived = 2.0  # one step up from the static 1.0 towards the high offsets the restart learned to prefer
    assert warning == (f"{SYMBOL}: adopted policy-{SYMBOL} version 1, registered by a run killed before it saved its "
                       f"state (arm {registered.arm}, schedule), in place of the version 1 the restarted tuner derived "
                       f"(arm o{derived:.2f}_b0.00, schedule): maker_offset_bps {registered.maker_offset_bps} "
                       f"registered, {derived} derived; the tuner goes on from version 1, its next version is 2")
    assert [v.version for v in registry.list(SYMBOL)] == [1], "nothing registered in its place"
    first = registry.show(SYMBOL, "1")
    assert set(first.aliases) == {"champion", "challenger"} and first.tags["promotion"] == "initial"
    second = _run_to_version(restarted, 2, _high_offsets, seed=3)
    shown = registry.show(SYMBOL, "2")
    assert shown.policy == second.as_params() and shown.aliases == ("challenger",)
    assert registry.version_run(shown)[0]["previous_version"] == "1"


def test_a_registry_ahead_by_two_versions_or_with_another_history_is_still_refused(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Only the newest version, on top of the tuner's own history, is explained by a killed publish."""
    registry, bundle = _store(tmp_path, monkeypatch)
    other = TunerService.from_config(bundle, [SYMBOL], MlflowPublisher(registry, bundle))
    first = _run_to_version(other, 1, _low_offsets, seed=1)
    _run_to_version(other, 2, _high_offsets, seed=2)
    behind = TunerService.from_config(bundle, [SYMBOL], MlflowPublisher(registry, bundle))
    with pytest.raises(RegistryError, match=rf"^{SYMBOL}: policy version 1 would be registered as policy-{SYMBOL} "
                                            r"version 3; the registry version must be the policy version, so versions "
                                            r"are published in order \(restore the tuner's state, or publish under a "
                                            r"new model prefix\)$"):
        _run_to_version(behind, 1, _high_offsets, seed=3)
    assert behind.tuner(SYMBOL).policy.version == 0, "the tuner keeps its version"
    elsewhere = TunerService.from_config(bundle, [SYMBOL], MlflowPublisher(registry, bundle))
    ours = replace(first, maker_offset_bps=2.0, arm="o2.00_b0.00")  # another version 1 than the registry's
    elsewhere.tuner(SYMBOL).load_state(msgspec.structs.replace(elsewhere.tuner(SYMBOL).to_state(), policy=ours))
    with pytest.raises(RegistryError, match=rf"version 3; .* not adopted as a version a killed run of this tuner "
                                            rf"registered: the registry's version 1 \(arm {first.arm}\) is not the "
                                            r"tuner's \(arm o2.00_b0.00\)$"):
        _run_to_version(elsewhere, 2, _low_offsets, seed=4)
    assert elsewhere.tuner(SYMBOL).policy == ours and [v.version for v in registry.list(SYMBOL)] == [2, 1]
