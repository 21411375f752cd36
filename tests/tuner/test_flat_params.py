"""Nested params become one MLflow param per setting; the registry logs them so, redacted, key by key."""

from __future__ import annotations

import doctest
from dataclasses import replace
from pathlib import Path

import pytest

import router_tuner.tuner.flat_params as flat_params_module
from router_tuner.config.loader import load_config, snapshot
from router_tuner.config.redact import REDACTED
from router_tuner.router.policy import RouterPolicy
from router_tuner.tuner.flat_params import MAX_PARAM_CHARS, flatten_params


def test_docstring_example_runs() -> None:
    result = doctest.testmod(flat_params_module)
    assert result.attempted > 0 and result.failed == 0


def test_lists_of_objects_are_indexed_and_scalars_are_json_text() -> None:
    flat = flatten_params({"risk": {"tiers": [{"name": "CORE", "cap": 0.2}, {"name": "TAIL", "cap": None}]},
                           "symbols": ["BTCUSDT", "ETHUSDT"], "n": 3})
    assert flat == {"risk.tiers.0.name": "CORE", "risk.tiers.0.cap": "0.2", "risk.tiers.1.name": "TAIL",
                    "risk.tiers.1.cap": "null", "symbols": '["BTCUSDT", "ETHUSDT"]', "n": "3"}


def test_a_value_mlflow_would_cut_is_refused() -> None:
    with pytest.raises(ValueError, match="param notes: 6001 characters"):
        flatten_params({"notes": "x" * (MAX_PARAM_CHARS + 1)})


def test_the_registry_logs_flat_redacted_params(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mlflow import MlflowClient

    from router_tuner.tuner.registry import PolicyRegistry

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    bundle = load_config()
    registry = PolicyRegistry(f"sqlite:///{tmp_path}/store.db", experiment="test", model_prefix="policy")
    policy = replace(RouterPolicy.from_static("BTCUSDT", bundle.router), version=1)
    key = "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A"
    config = snapshot(bundle)
    router = config["router"]
    published = registry.publish(policy, params={"router": router, "executor": config["executor"],
                                                 "learner_params": {"structured": {"replicas": 32}},
                                                 "notes": {"pasted": key}},
                                 metrics={"cost_bps": 1.0}, config_snapshot={})
    params = MlflowClient(tracking_uri=registry.tracking_uri).get_run(published.run_id).data.params
    assert params["learner_params.structured.replicas"] == "32"
    assert params["router.static_policy.maker_ttl_ms"] == str(router["static_policy"]["maker_ttl_ms"])
    assert len(params) > 100, "more than one batch of 100 params, all logged"
    assert params["notes.pasted"] == REDACTED and key not in params.values()
    assert max(len(v) for v in params.values()) < 200, "no JSON blobs"
