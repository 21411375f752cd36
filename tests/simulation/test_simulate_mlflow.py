"""``router-tuner simulate`` with MLflow on a temporary SQLite store: one parent run with per-symbol/per-policy
metrics and the report as artifacts, and each learner's final policy as a registered version under the
simulation's own model prefix (never the live models)."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import msgspec
import pandas as pd
import pytest
from mlflow import MlflowClient

from router_tuner.cli.main import main
from router_tuner.config.loader import DEFAULTS_DIR, load_config
from router_tuner.config.models import ConfigBundle
from router_tuner.router.policy import RouterPolicy
from router_tuner.simulation.job import SimulationOptions, SimulationResult
from router_tuner.simulation.learners import LearnerRun
from router_tuner.simulation.recording import register_policy_versions
from router_tuner.tuner.factory import build_grid, build_guardrails
from router_tuner.tuner.registry import PolicyRegistry
from router_tuner.tuner.service.publish import InMemoryPublisher, PolicyRecord, VersionMetrics
from tests.conftest import use_tracking_uri


@pytest.fixture()
def fast_publishing_config(tmp_path: Path) -> Path:
    """The defaults with a tuner that may publish after 10 outcomes and learners past burn-in after one outcome
    per arm, and a static policy posting 4 bps behind the touch (dearer on the synthetic market than the arms
    nearer the touch), so a short run moves away from it and registers versions whatever the random path (from the
    default static arm, cheapest there, a learner that finds it so has no new version to publish)."""
    root = tmp_path / "config"
    shutil.copytree(DEFAULTS_DIR, root)
    router = json.loads((root / "router.json").read_text())
    router["static_policy"]["maker_offset_bps"] = 4.0
    (root / "router.json").write_text(json.dumps(router))
    tuner = json.loads((root / "tuner.json").read_text())
    tuner["learner_params"]["burn_in_per_arm"] = 1
    tuner["guardrails"]["min_outcomes_before_move"] = 10
    tuner["publish"]["every_n_outcomes"] = 15
    (root / "tuner.json").write_text(json.dumps(tuner))
    return root


def test_simulate_logs_a_parent_run_and_registers_final_policies(
        tmp_path: Path, fast_publishing_config: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("ROUTER_TUNER_DATA", "")
    monkeypatch.setattr("router_tuner.router.market.binance._DEFAULT_DATA_DIR", tmp_path / "none")
    (tmp_path / "cwd").mkdir()
    monkeypatch.chdir(tmp_path / "cwd")  # not the store's folder: artifacts must follow the store, not the cwd
    code = main(["simulate", "--orders", "40", "--symbols", "BTCUSDT", "--seed", "5", "--out", str(tmp_path / "out"),
                 "--config", str(fast_publishing_config), "--learners", "ucb,epsilon_greedy", "--json"])
    assert code == 0
    line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    client = MlflowClient(tracking_uri=uri)
    run = client.get_run(line["mlflow_run_id"])
    assert run.data.tags["job"] == "simulate" and run.data.params["learners"] == "ucb,epsilon_greedy"
    # --json's default_learner under the same name (it was only tuner.learner), here one this run did not run
    assert run.data.params["default_learner"] == line["default_learner"] == "structured"
    metrics = run.data.metrics
    assert "mean_cost_bps/BTCUSDT/learner_ucb" in metrics and "mean_cost_bps/BTCUSDT/static" in metrics
    assert "cumulative_regret_vs_best_fixed_bps/BTCUSDT/learner_epsilon_greedy" in metrics
    assert "ope_cost_bps/BTCUSDT/learner_ucb/dr" in metrics and "ope_truth_cost_bps/BTCUSDT/learner_ucb" in metrics
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "report")}
    assert {"report/report.html", "report/report.md", "report/plotly.min.js"} <= artifacts  # the page opens as is
    versions = line["policy_versions"]
    assert {(v["learner"], v["symbol"]) for v in versions} == {("ucb", "BTCUSDT"), ("epsilon_greedy", "BTCUSDT")}
    published = [v for v in versions if v["registered_version"] is not None]
    assert published, "with publishing after 10 outcomes at least one learner registers its final policy"
    prefix = load_config(fast_publishing_config).router.simulation.registered_model_prefix
    for v in published:
        registry = PolicyRegistry(uri, experiment="router-tuner", model_prefix=f"{prefix}-{v['learner']}")
        shown = registry.show("BTCUSDT", str(v["registered_version"]))
        assert shown.policy["arm"] == v["arm"] and shown.policy["version"] == v["policy_version"]
        assert v["registered_version"] == v["policy_version"] == v["registered_versions"], "every version, in order"
        assert [p.version for p in registry.list("BTCUSDT")] == list(range(v["policy_version"], 0, -1))
        assert v["model"] == f"{prefix}-{v['learner']}-BTCUSDT"
    assert run.data.params["router.static_policy.maker_ttl_ms"] and run.data.params["seed"] == "5"
    # the config params say what ran (--orders 40, --seed 5), not router.json's 800 and tuner.json's 7 beside it
    assert run.data.params["router.simulation.intents.orders_per_symbol"] == "40"
    assert run.data.params["tuner.seed"] == "5"
    for v in published:  # and so does each version's record of the configuration it ran under
        version_run = client.get_run(client.get_model_version(v["model"], str(v["registered_version"])).run_id)
        # the learner's reward-scale cost is not the journal's cost_bps the report averages: named apart from it
        assert "learned_cost_bps" in version_run.data.metrics and "cost_bps" not in version_run.data.metrics
        assert version_run.data.params["router.simulation.intents.orders_per_symbol"] == "40"
        # a reviewer reads a version's seed and learner off the run itself, named as on the parent and learner runs
        assert version_run.data.params["seed"] == "5" and version_run.data.tags["learner"] == v["learner"]
        snap = json.loads(Path(client.download_artifacts(version_run.info.run_id, "config/config_snapshot.json",
                                                         str(tmp_path))).read_text())
        assert (snap["tuner"]["learner"], snap["tuner"]["seed"]) == (v["learner"], 5)
        assert snap["router"]["simulation"]["intents"]["orders_per_symbol"] == 40
    assert max(len(value) for value in run.data.params.values()) <= 480, "flat params, no JSON blobs"
    experiment_id = run.info.experiment_id

    def children(parent_id: str) -> dict[str, object]:
        found = client.search_runs([experiment_id], filter_string=f"tags.mlflow.parentRunId = '{parent_id}'")
        return {r.info.run_name: r for r in found}

    learners = children(run.info.run_id)
    assert set(learners) == {"ucb", "epsilon_greedy"}
    for learner, learner_run in learners.items():
        assert learner_run.data.tags["learner"] == learner and "mean_cost_bps/BTCUSDT" in learner_run.data.metrics
        [symbol_run] = children(learner_run.info.run_id).values()
        assert symbol_run.info.run_name == f"{learner} BTCUSDT" and symbol_run.data.tags["symbol"] == "BTCUSDT"
        regret = client.get_metric_history(symbol_run.info.run_id, "cumulative_regret_bps")
        assert [m.step for m in regret] == list(range(1, 41)), "a curve over the 40 orders, not one value"
        assert any(k.startswith("arm_share/") for k in symbol_run.data.metrics)
        row = next(v for v in versions if v["learner"] == learner)
        assert len(children(symbol_run.info.run_id)) == row["registered_versions"], "version runs nest here"
    live = PolicyRegistry(uri, experiment="router-tuner", model_prefix="router-policy")
    assert live.list() == []  # a simulation never touches the live models
    experiment = client.get_experiment_by_name("router-tuner")
    assert experiment.artifact_location == (tmp_path / "mlruns").as_uri(), "artifacts sit beside the store"
    assert not (tmp_path / "cwd" / "mlruns").exists()
    assert main(["policy", "list", "--config", str(fast_publishing_config)]) == 0
    assert "no policy versions named router-policy-*" in capsys.readouterr().err


def test_simulate_tracking_uri_wins_over_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                          capsys) -> None:
    """``simulate --tracking-uri`` like ``policy``/``ope``: the run and its versions go to that store (simulate had
    no such option, and its MLflow store did not follow ``--out`` either: ./var/mlflow.db of the current folder)."""
    env_db, chosen_db = tmp_path / "env.db", tmp_path / "chosen.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{env_db}")
    monkeypatch.setenv("ROUTER_TUNER_DATA", "")
    monkeypatch.setattr("router_tuner.router.market.binance._DEFAULT_DATA_DIR", tmp_path / "none")
    code = main(["simulate", "--orders", "8", "--symbols", "BTCUSDT", "--learners", "ucb", "--shadow-symbols",
                 "--workers", "1", "--out", str(tmp_path / "out"), "--tracking-uri", f"sqlite:///{chosen_db}",
                 "--json"])
    assert code == 0
    printed = capsys.readouterr().out.strip().splitlines()
    line = json.loads(printed[-1])
    run = MlflowClient(tracking_uri=f"sqlite:///{chosen_db}").get_run(line["mlflow_run_id"])
    assert run.info.status == "FINISHED" and run.data.params["orders_per_symbol"] == "8"
    assert printed[-2] == f"mlflow: run {line['mlflow_run_id']} in experiment router-tuner at sqlite:///{chosen_db}", \
        "the text says where a reviewer finds the run, as --json does"
    assert not env_db.exists(), "the environment's store is not touched"
    with pytest.raises(SystemExit) as stopped:
        main(["simulate", "--orders", "8", "--tracking-uri", ""])
    assert stopped.value.code == 2
    assert "argument --tracking-uri: empty" in capsys.readouterr().err


def test_simulation_prefix_must_not_shadow_live_models(tmp_path: Path) -> None:
    config = load_config()
    clash = msgspec.structs.replace(config.router.simulation,
                                    registered_model_prefix=f"{config.tuner.mlflow.registered_model_prefix}-sim")
    bad = msgspec.structs.replace(config, router=msgspec.structs.replace(config.router, simulation=clash))
    with pytest.raises(ValueError, match="live models"):
        register_policy_versions(_empty_result(), bad, f"sqlite:///{tmp_path / 'mlflow.db'}")


def test_every_version_is_registered_in_order_and_a_rerun_replaces_them(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    config = load_config()
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    publisher = InMemoryPublisher()
    for version in (1, 2, 3):
        publisher.publish(_record(config, version))
    run = LearnerRun(learner="ucb", service=None, publisher=publisher)  # type: ignore[arg-type]
    result = dataclasses.replace(_empty_result(), symbols={"BTCUSDT": None, "ETHUSDT": None},  # type: ignore[dict-item]
                                 learner_runs=(run,))
    for _ in range(2):  # the second simulation replaces the first one's versions
        rows = register_policy_versions(result, config, uri)
        assert [(r["symbol"], r["registered_version"], r["registered_versions"]) for r in rows] == [
            ("BTCUSDT", 3, 3), ("ETHUSDT", None, 0)]
    registry = PolicyRegistry(uri, experiment="router-tuner",
                              model_prefix=f"{config.router.simulation.registered_model_prefix}-ucb")
    assert [(v.version, v.policy["version"], v.aliases) for v in registry.list("BTCUSDT")] == [
        (3, 3, ("challenger",)), (2, 2, ()), (1, 1, ("champion",))]
    import mlflow

    use_tracking_uri(monkeypatch, uri)
    model = mlflow.pyfunc.load_model(f"models:/{registry.model_name('BTCUSDT')}@challenger")
    context = {"spread_bps": [1.0], "volatility_bps": [3.0], "book_imbalance": [0.2], "hour": [9.0],
               "size_vs_touch": [0.5]}
    assert model.predict(pd.DataFrame(context))["maker_offset_bps"].tolist() == [3.0]


def _record(config: ConfigBundle, version: int) -> PolicyRecord:
    """A BTCUSDT version on offset ``version`` bps, as a learner publishes it."""
    base = RouterPolicy.from_static("BTCUSDT", config.router, policy_id="tuner-BTCUSDT")
    policy = base.with_arm(f"o{version:.2f}_b0.00", maker_offset_bps=float(version), taker_bias=0.0, propensity=0.5,
                           version=version)
    metrics = VersionMetrics(outcomes=10, events=10, learned_cost_bps=3.0, maker_ratio=0.5, fallback_ratio=0.1,
                             regret_bps=0.2, expected_cost_bps=2.9)
    return PolicyRecord(policy=policy, reason="schedule", previous_version=version - 1, learner="ucb",
                        learner_params={"delta": 1.0}, grid=build_grid(config.tuner, config.router),
                        guardrails=build_guardrails(config.tuner, config.router), metrics=metrics)


def _empty_result() -> SimulationResult:
    options = SimulationOptions(symbols=None, orders_per_symbol=1, seed=0, data_dir=None, learners=())
    return SimulationResult(options=options, data_source="synthetic", symbols={}, arm_ids=(), learner_runs=(),
                            default_learner="structured", oracle_segments=1, engine="staggered")
