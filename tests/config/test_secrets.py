"""A key pasted into config is refused by the loader and masked in every snapshot that reaches MLflow."""

from __future__ import annotations

import json
import random
import string
from dataclasses import replace
from pathlib import Path

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from router_tuner.config import load_config, snapshot
from router_tuner.config.redact import REDACTED, redact, secret_reason
from router_tuner.router.policy import RouterPolicy
from tests.conftest import config_issues, edit_config

BINANCE_LIKE_KEY = "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A"
BASE62 = string.ascii_letters + string.digits
UPPER_HEX_KEY = "71A9BD91772398FD186AC21A7BF62D6074052E4D3D75D7EE287031C2ADFE248B"


@given(st.integers(min_value=0, max_value=2**64),
       st.sampled_from([("0123456789abcdef", 32), ("0123456789ABCDEF", 64), (BASE62, 32), (BASE62, 64)]))
def test_random_keys_that_mix_letters_and_digits_look_like_secrets(seed: int, kind: tuple[str, int]) -> None:
    """Exchange keys and tokens are uniform draws from a key alphabet (the seed picks one, not hypothesis)."""
    alphabet, length = kind
    rng = random.Random(seed)
    key = "".join(rng.choice(alphabet) for _ in range(length))
    if sum(c.isdigit() for c in key) >= 2 and sum(c.isalpha() for c in key) >= 2:
        assert secret_reason(key) == "looks like an API key or token"


@given(st.lists(st.text(alphabet=string.ascii_uppercase, min_size=1, max_size=12), min_size=1, max_size=6),
       st.integers(min_value=0, max_value=9999))
def test_environment_variable_names_do_not(words: list[str], suffix: int) -> None:
    name = "_".join(words)
    assert secret_reason(name) is None
    assert secret_reason(f"{name}_V{suffix}") is None


@pytest.mark.parametrize("value", ["BINANCE_API_KEY", "var/tuner_state.json", "sqlite:///var/mlflow.db",
                                   "https://fapi.binance.com", "http://127.0.0.1:5000", "sim-router-policy",
                                   "BTCUSD_PERP", "/data/run20261203/state.json"])
def test_ordinary_config_strings_do_not(value: str) -> None:
    assert secret_reason(value) is None


@pytest.mark.parametrize(("value", "reason"), [
    ("https://alice:hunter2@mlflow.example.com", "is a URL with a password in it"),
    ("https://fapi.example.com/?apiKey=abc&x=1", "is a URL with a credential in its query (apiKey)"),
    (BINANCE_LIKE_KEY, "looks like an API key or token"),
])
def test_credentials_are_recognised(value: str, reason: str) -> None:
    assert secret_reason(value) == reason


@pytest.mark.parametrize("key", [BINANCE_LIKE_KEY, UPPER_HEX_KEY])
def test_a_key_pasted_where_a_variable_name_belongs_is_refused_without_quoting_it(config_dir: Path, key: str) -> None:
    edit_config(config_dir, "executor.json", lambda d: d["live"].update(api_secret_env=key))
    [issue] = config_issues(config_dir)
    assert issue.startswith("executor.json: $.live.api_secret_env: looks like an API key or token: ")
    assert "put it in an environment variable and write the variable's name here" in issue
    assert key not in issue


def test_a_variable_name_must_look_like_one(config_dir: Path) -> None:
    edit_config(config_dir, "executor.json", lambda d: d["live"].update(api_key_env="binance key"))
    [issue] = config_issues(config_dir)
    assert issue.startswith("executor.json: $.live.api_key_env: Expected `str` matching regex")


def test_credentials_in_urls_are_refused(config_dir: Path) -> None:
    edit_config(config_dir, "tuner.json", lambda d: d["mlflow"].update(tracking_uri="https://u:pw@mlflow.example"))
    edit_config(config_dir, "executor.json", lambda d: d["live"].update(api_base_url="https://x.example/?token=1"))
    issues = config_issues(config_dir)
    assert [i.split(": ")[:3] for i in issues] == [
        ["tuner.json", "$.mlflow.tracking_uri", "is a URL with a password in it"],
        ["executor.json", "$.live.api_base_url", "is a URL with a credential in its query (token)"]]


def test_snapshot_masks_a_key_in_a_bundle_that_skipped_the_loader() -> None:
    bundle = load_config()
    live = msgspec.structs.replace(bundle.executor.live, api_key_env=BINANCE_LIKE_KEY)
    leaked = msgspec.structs.replace(bundle, executor=msgspec.structs.replace(bundle.executor, live=live))
    snap = snapshot(leaked)
    assert BINANCE_LIKE_KEY not in json.dumps(snap)
    assert snap["executor"]["live"]["api_key_env"] == REDACTED
    assert snap["executor"]["live"]["api_secret_env"] == "BINANCE_API_SECRET"
    assert snapshot(bundle) == msgspec.to_builtins(redact(snapshot(bundle)))


def test_the_registry_writes_a_redacted_config_snapshot(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mlflow import MlflowClient

    from router_tuner.tuner.registry import PolicyRegistry

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    uri = f"sqlite:///{tmp_path}/store.db"
    registry = PolicyRegistry(uri, experiment="test", model_prefix="policy")
    policy = replace(RouterPolicy.from_static("AAAUSDT", load_config().router), version=1)
    published = registry.publish(policy, params={}, metrics={},
                                 config_snapshot={"executor": {"live": {"api_key_env": BINANCE_LIKE_KEY}}})
    local = MlflowClient(tracking_uri=uri).download_artifacts(published.run_id, "config/config_snapshot.json",
                                                             str(tmp_path))
    written = Path(local).read_text()
    assert BINANCE_LIKE_KEY not in written and REDACTED in written


def test_one_variable_for_the_key_and_the_secret_is_refused(config_dir: Path) -> None:
    """It loaded: `live --live` would have signed every request with the API key as its secret."""
    edit_config(config_dir, "executor.json", lambda d: d["live"].update(api_secret_env="BINANCE_API_KEY"))
    assert config_issues(config_dir) == [
        "executor.json: $.live.api_secret_env: names BINANCE_API_KEY, as api_key_env does: `live --live` would sign "
        "every request with the API key as its secret, and the venue would refuse each one; name the variable that "
        "holds the secret (default BINANCE_API_SECRET)"]
