"""The executor routes with the registry champion chosen by ``--policy-source registry``, and a promote or
rollback in MLflow reaches the next intent without a restart (RouterEvent.policy_version says which)."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import msgspec
import pytest
from mlflow import MlflowClient

from router_tuner.cli.health import render
from router_tuner.cli.live import policy_source
from router_tuner.cli.main import main as cli_main
from router_tuner.config.loader import DEFAULTS_DIR
from router_tuner.executor.journal import Journal
from router_tuner.executor.monitoring.metrics import ExecutorMetrics
from router_tuner.executor.monitoring.telemetry import Telemetry
from router_tuner.router.policy import RouterPolicy
from router_tuner.tuner.policy_source import RegistryPolicySource, StaticPolicySource
from router_tuner.tuner.promotion import force_promote
from router_tuner.tuner.registry import PolicyRegistry, RegistryError
from tests.executor.test_executor_support import build_executor, executor_config, intent, make_paper_venue

pytestmark = pytest.mark.timeout(90)


def tuned(symbol: str, config_router, version: int, offset_bps: float) -> RouterPolicy:
    base = RouterPolicy.from_static(symbol, config_router, policy_id=f"tuner-{symbol}")
    return replace(base, version=version, arm=f"o{offset_bps:.2f}_b0.00", maker_offset_bps=offset_bps)


def publish(registry: PolicyRegistry, policy: RouterPolicy) -> int:
    return registry.publish(policy, params={"learner": "test"},
                            metrics={"cost_bps": 1.0}, config_snapshot={}).version


def test_promote_and_rollback_reach_the_next_intent(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlflow.db")
    base = executor_config()
    ex = base.executor
    config = msgspec.structs.replace(base, executor=msgspec.structs.replace(
        ex, instruments={"BTCUSDT": ex.instruments["BTCUSDT"]},
        paper=msgspec.structs.replace(ex.paper, synthetic={"BTCUSDT": ex.paper.synthetic["BTCUSDT"]}),
        policy_source=msgspec.structs.replace(ex.policy_source, registry_refresh_s=0.0)))
    with pytest.raises(RegistryError, match="BTCUSDT: no policy version 'champion'"):
        policy_source("registry", config)
    mlflow = config.tuner.mlflow
    registry = PolicyRegistry(None, experiment=mlflow.experiment, model_prefix=mlflow.registered_model_prefix)
    v1, v2 = (publish(registry, tuned("BTCUSDT", config.router, n, offset)) for n, offset in ((1, 1.0), (2, 2.0)))
    source = policy_source("registry", config)
    assert isinstance(source, RegistryPolicySource)
    executor, _journal, store = build_executor(config, make_paper_venue(config), tmp_path, policy_for=source.current)
    executor.start()
    assert executor.policies["BTCUSDT"].version == v1

    def route_one(intent_id: str) -> tuple[int, float, str]:
        executor.process(intent(intent_id, size_hint_usd=300.0))
        event = next(e for e in executor.journal.read("router") if e.intent_id == intent_id)
        return event.policy_version, event.maker_offset_bps, event.policy_id

    assert route_one("p1") == (v1, 1.0, "tuner-BTCUSDT")
    force_promote(registry, "BTCUSDT", who="test", why="hot swap")  # v2 becomes champion while the executor runs
    assert route_one("p2") == (v2, 2.0, "tuner-BTCUSDT")
    registry.rollback("BTCUSDT")
    assert route_one("p3") == (v1, 1.0, "tuner-BTCUSDT")
    assert source.refresh_errors == 0

    v3 = publish(registry, tuned("BTCUSDT", config.router, 3, 3.0))
    MlflowClient(tracking_uri=registry.tracking_uri).set_registered_model_alias(
        registry.model_name("BTCUSDT"), "champion", str(v3))  # moved in the MLflow UI, no gate
    assert route_one("p4") == (v1, 1.0, "tuner-BTCUSDT"), "the running router keeps the last gated champion"
    universe = config.strategy.universe
    metrics = ExecutorMetrics(universe, config.executor.prometheus)
    telemetry = Telemetry(config=config.executor, store=store, metrics=metrics, contracts=universe,
                          champion_gates=source.champion_gates)
    health = telemetry.publish(executor.venue.clock.now_ns(), executor.portfolio, executor.policies, None)
    [gate] = health.champion_gates
    assert (gate.served_version, gate.champion_version) == (v1, v3) and "no gate record" in gate.problem
    [alert] = [a for a in store.alerts() if a.code.startswith("champion_not_gated")]
    assert alert.code == "champion_not_gated:BTCUSDT" and "routing gated v1" in alert.detail
    assert "champion BTCUSDT          serving v1, registry champion v3: NOT ACTED ON" in render(store.latest_health())


def test_live_cli_policy_source_flag(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlflow.db")
    config_dir = tmp_path / "cfg"
    shutil.copytree(DEFAULTS_DIR, config_dir)
    executor_json = json.loads((config_dir / "executor.json").read_text())
    executor_json["prometheus"]["port"] = 0
    executor_json["paper"]["duration_s"] = 600.0
    (config_dir / "executor.json").write_text(json.dumps(executor_json))
    strategy_json = json.loads((config_dir / "strategy_config.json").read_text())
    strategy_json["screener"]["require_imbalance_alignment"] = False  # synthetic books are symmetric
    (config_dir / "strategy_config.json").write_text(json.dumps(strategy_json))
    intents = tmp_path / "intents.jsonl"
    intents.write_bytes(msgspec.json.encode(intent("c1", size_hint_usd=300.0)) + b"\n")
    args = ["live", "--venue", "binanceusdm", "--config", str(config_dir), "--intents", str(intents),
            "--journal", str(tmp_path / "j.sqlite"), "--store", str(tmp_path / "s.sqlite")]
    bundle = executor_config()
    assert isinstance(policy_source("static", bundle), StaticPolicySource)
    with pytest.raises(ValueError, match="policy source must be one of"):
        policy_source("champion", bundle)
    with pytest.raises(SystemExit):
        cli_main([*args, "--policy-source", "champion"])
    assert "invalid choice: 'champion'" in capsys.readouterr().err

    mlflow = bundle.tuner.mlflow
    registry = PolicyRegistry(None, experiment=mlflow.experiment, model_prefix=mlflow.registered_model_prefix)
    version = publish(registry, tuned("BTCUSDT", bundle.router, 1, 0.5))
    # ETHUSDT is traded too and has no champion: refused before any venue or journal exists
    assert cli_main([*args, "--policy-source", "registry"]) == 1
    err = capsys.readouterr().err
    assert "NoSuchVersion: ETHUSDT: no policy version 'champion'" in err
    assert err.strip().endswith("; each executor.json instruments symbol needs a champion in that store (see "
                                "`router-tuner policy list` and `policy promote`), or run with --policy-source static "
                                "or tuner")  # it said what failed, not what to do
    assert not (tmp_path / "j.sqlite").exists()
    publish(registry, tuned("ETHUSDT", bundle.router, 1, 1.0))
    assert cli_main([*args, "--policy-source", "registry"]) == 0, capsys.readouterr().err
    with Journal(tmp_path / "j.sqlite", readonly=True) as journal:
        (event,) = journal.read("router")
    assert (event.policy_id, event.policy_version, event.maker_offset_bps) == ("tuner-BTCUSDT", 1, 0.5)
    assert version == 1, "the registry's version is the policy version"
