"""Policy versions in MLflow: publish, aliases, promote and rollback step by step back, on a local store."""

from __future__ import annotations

from pathlib import Path

import pytest

from tuner.registry import (
    CHALLENGER,
    CHAMPION,
    PREVIOUS_CHAMPION_TAG,
    PolicyRegistry,
    RegistryError,
    resolve_tracking_uri,
)


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> PolicyRegistry:
    root = tmp_path_factory.mktemp("mlflow")
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("MLFLOW_TRACKING_URI", raising=False)
        return PolicyRegistry(f"sqlite:///{root}/store.db", experiment="test", model_prefix="policy")


def _publish(registry: PolicyRegistry, symbol: str, offset: float) -> int:
    published = registry.publish(
        symbol, {"symbol": symbol, "maker_offset_bps": offset},
        params={"learner": "thompson", "arm_grid": {"offsets": [0, 1, 2]}},
        metrics={"cost_bps": 3.0 - offset, "maker_ratio": 0.5},
        config_snapshot={"risk_limits": {"max_concurrent_positions": 4}})
    return published.version


def test_first_version_is_champion_and_challenger(registry: PolicyRegistry) -> None:
    version = _publish(registry, "AAAUSDT", 1.0)
    shown = registry.show("AAAUSDT", CHAMPION)
    assert shown.version == version
    assert set(shown.aliases) == {CHAMPION, CHALLENGER}
    assert shown.policy == {"symbol": "AAAUSDT", "maker_offset_bps": 1.0}
    assert shown.metrics == {"cost_bps": 2.0, "maker_ratio": 0.5}


def test_promote_then_rollback_restores_the_previous_champion(registry: PolicyRegistry) -> None:
    first = _publish(registry, "BBBUSDT", 1.0)
    second = _publish(registry, "BBBUSDT", 2.0)
    assert registry.show("BBBUSDT", CHAMPION).version == first
    assert registry.show("BBBUSDT", CHALLENGER).version == second
    assert registry.promote("BBBUSDT").version == second
    assert registry.show("BBBUSDT", CHAMPION).policy["maker_offset_bps"] == 2.0
    assert registry.rollback("BBBUSDT").version == first
    with pytest.raises(RegistryError, match="no previous champion"):  # never forward to the version it left
        registry.rollback("BBBUSDT")
    assert registry.show("BBBUSDT", CHAMPION).version == first
    assert [v.version for v in registry.list("BBBUSDT")] == [second, first]


def test_each_rollback_steps_further_back_through_the_promotions(registry: PolicyRegistry) -> None:
    versions = [_publish(registry, "DDDUSDT", float(k)) for k in range(1, 5)]  # v1 champion, v4 challenger
    for version in versions[1:]:
        registry.promote("DDDUSDT", version)
    assert registry.show("DDDUSDT", CHAMPION).version == versions[3]
    assert [registry.rollback("DDDUSDT").version for _ in range(3)] == [versions[2], versions[1], versions[0]]
    with pytest.raises(RegistryError, match="no previous champion"):
        registry.rollback("DDDUSDT")
    registry.promote("DDDUSDT", versions[2])  # a promotion after rollbacks starts a new step back
    assert registry.rollback("DDDUSDT").version == versions[0]


def test_a_store_written_before_the_history_rolls_back_one_step(registry: PolicyRegistry) -> None:
    first = _publish(registry, "EEEUSDT", 1.0)
    second = _publish(registry, "EEEUSDT", 2.0)
    client = registry._client
    client.set_registered_model_alias(registry.model_name("EEEUSDT"), CHAMPION, str(second))
    client.set_registered_model_tag(registry.model_name("EEEUSDT"), PREVIOUS_CHAMPION_TAG, str(first))
    assert registry.rollback("EEEUSDT").version == first
    with pytest.raises(RegistryError, match="no previous champion"):
        registry.rollback("EEEUSDT")


def test_errors_name_what_is_missing(registry: PolicyRegistry) -> None:
    with pytest.raises(RegistryError, match="ZZZUSDT: no policy version 'champion'"):
        registry.show("ZZZUSDT")
    with pytest.raises(RegistryError, match="no registered policy"):
        registry.rollback("ZZZUSDT")
    _publish(registry, "CCCUSDT", 1.0)
    with pytest.raises(RegistryError, match="already the champion"):
        registry.promote("CCCUSDT")
    with pytest.raises(RegistryError, match="no previous champion"):
        registry.rollback("CCCUSDT")


def test_tracking_uri_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert resolve_tracking_uri(None) == "sqlite:///var/mlflow.db"
    assert (tmp_path / "var").is_dir()
    assert resolve_tracking_uri("sqlite:///elsewhere/x.db") == "sqlite:///elsewhere/x.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
    assert resolve_tracking_uri("sqlite:///elsewhere/x.db") == "http://127.0.0.1:5000"
    assert resolve_tracking_uri("sqlite:///elsewhere/x.db", override="http://10.0.0.1:5000") == "http://10.0.0.1:5000"


def test_a_store_outage_is_not_read_as_a_missing_champion(registry: PolicyRegistry,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from mlflow.exceptions import MlflowException

    _publish(registry, "DDDUSDT", 1.0)

    def outage(*args: object, **kwargs: object) -> None:
        raise MlflowException("database is locked", error_code="INTERNAL_ERROR")

    monkeypatch.setattr(registry._client, "get_model_version_by_alias", outage)
    with pytest.raises(MlflowException, match="database is locked"):
        registry.champion_version("DDDUSDT")
    with pytest.raises(MlflowException, match="database is locked"):
        registry.publish("DDDUSDT", {"maker_offset_bps": 2.0}, params={}, metrics={}, config_snapshot={})
