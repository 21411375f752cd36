"""Policy versions in MLflow: publish, aliases, promote and rollback step by step back, on a local store."""

from __future__ import annotations

import http.server
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import pytest

from router_tuner.config.loader import load_config
from router_tuner.router.policy import RouterPolicy
from router_tuner.tuner.registry import (
    CHALLENGER,
    CHAMPION,
    PREVIOUS_CHAMPION_TAG,
    PolicyRegistry,
    RegistryError,
    TrackingUriError,
    check_server_reachable,
    resolve_tracking_uri,
)
from tests.conftest import use_tracking_uri

ROUTER = load_config().router


def policy(symbol: str, version: int, offset: float) -> RouterPolicy:
    return replace(RouterPolicy.from_static(symbol, ROUTER, policy_id=f"tuner-{symbol}"), version=version,
                   arm=f"o{offset:.2f}_b0.00", maker_offset_bps=offset, propensity=0.5)


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> PolicyRegistry:
    root = tmp_path_factory.mktemp("mlflow")
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("MLFLOW_TRACKING_URI", raising=False)
        return PolicyRegistry(f"sqlite:///{root}/store.db", experiment="test", model_prefix="policy")


def _publish(registry: PolicyRegistry, symbol: str, offset: float) -> int:
    next_version = len(registry.list(symbol)) + 1
    published = registry.publish(
        policy(symbol, next_version, offset),
        params={"learner": "thompson", "arm_grid": {"offsets": [0, 1, 2]}},
        metrics={"cost_bps": 3.0 - offset, "maker_ratio": 0.5},
        config_snapshot={"risk_limits": {"max_concurrent_positions": 4}})
    return published.version


def test_first_version_is_champion_and_challenger(registry: PolicyRegistry) -> None:
    version = _publish(registry, "AAAUSDT", 1.0)
    shown = registry.show("AAAUSDT", CHAMPION)
    assert shown.version == version
    assert set(shown.aliases) == {CHAMPION, CHALLENGER}
    assert shown.policy == policy("AAAUSDT", 1, 1.0).as_params()
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
    versions = [_publish(registry, "GGGUSDT", float(k)) for k in range(1, 5)]  # v1 champion, v4 challenger
    for version in versions[1:]:
        registry.promote("GGGUSDT", version)
    assert registry.show("GGGUSDT", CHAMPION).version == versions[3]
    assert [registry.rollback("GGGUSDT").version for _ in range(3)] == [versions[2], versions[1], versions[0]]
    with pytest.raises(RegistryError, match="no previous champion"):
        registry.rollback("GGGUSDT")
    registry.promote("GGGUSDT", versions[2])  # a promotion after rollbacks starts a new step back
    assert registry.rollback("GGGUSDT").version == versions[0]


def test_a_store_written_before_the_history_rolls_back_one_step(registry: PolicyRegistry) -> None:
    first = _publish(registry, "HHHUSDT", 1.0)
    second = _publish(registry, "HHHUSDT", 2.0)
    client = registry._client
    client.set_registered_model_alias(registry.model_name("HHHUSDT"), CHAMPION, str(second))
    client.set_registered_model_tag(registry.model_name("HHHUSDT"), PREVIOUS_CHAMPION_TAG, str(first))
    assert registry.rollback("HHHUSDT").version == first
    with pytest.raises(RegistryError, match="no previous champion"):
        registry.rollback("HHHUSDT")


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
        registry.publish(policy("DDDUSDT", 2, 2.0), params={}, metrics={}, config_snapshot={})


def test_the_registered_version_is_the_policy_version(registry: PolicyRegistry) -> None:
    with pytest.raises(RegistryError, match="policy version 2 would be registered as policy-EEEUSDT version 1"):
        registry.publish(policy("EEEUSDT", 2, 1.0), params={}, metrics={}, config_snapshot={})
    assert registry.list("EEEUSDT") == [], "a refused version writes nothing"
    for version in (1, 2):
        assert registry.publish(policy("EEEUSDT", version, 1.0), params={}, metrics={},
                                config_snapshot={}).version == version
    again = registry.publish(policy("EEEUSDT", 2, 1.0), params={}, metrics={}, config_snapshot={})
    assert again.version == 2 and len(registry.list("EEEUSDT")) == 2, "published again after a crash: no-op"
    with pytest.raises(RegistryError, match="policy version 2 would be registered as policy-EEEUSDT version 3"):
        registry.publish(policy("EEEUSDT", 2, 2.0), params={}, metrics={}, config_snapshot={})
    registry.delete_model("EEEUSDT")
    assert registry.list("EEEUSDT") == []
    registry.delete_model("EEEUSDT")  # absent is fine


def test_replace_model_puts_a_staged_model_in_place_with_its_versions_and_aliases(registry: PolicyRegistry) -> None:
    """simulate registers into a staging model and swaps it in: the old model stays whole until it is replaced."""
    staging = PolicyRegistry(registry.tracking_uri, experiment="test", model_prefix="staged~policy")
    for version in (1, 2):
        registry.publish(policy("SWPUSDT", version, 1.0), params={}, metrics={}, config_snapshot={})
        staging.publish(policy("SWPUSDT", version, 3.0), params={}, metrics={}, config_snapshot={})
    staging.publish(policy("SWPUSDT", 3, 3.0), params={}, metrics={}, config_snapshot={})
    assert [v.policy["maker_offset_bps"] for v in registry.list("SWPUSDT")] == [1.0, 1.0]
    registry.replace_model("SWPUSDT", staging.model_name("SWPUSDT"))
    listed = registry.list("SWPUSDT")
    assert [(v.version, v.aliases, v.policy["maker_offset_bps"]) for v in listed] == [
        (3, (CHALLENGER,), 3.0), (2, (), 3.0), (1, (CHAMPION,), 3.0)]
    assert staging.list("SWPUSDT") == []
    registry.replace_model("SWPUSDT", None)  # a simulation whose tuner never published: the old model goes
    assert registry.list("SWPUSDT") == []


def test_a_swap_killed_between_its_delete_and_its_rename_is_finished_by_the_next(registry: PolicyRegistry) -> None:
    """The next simulate deleted the complete staging model it found: killed between the two steps, a run left
    neither the previous versions nor its own."""
    staging = PolicyRegistry(registry.tracking_uri, experiment="test", model_prefix="staged~policy")
    staged = staging.model_name("KILUSDT")
    assert not registry.finish_replacing("KILUSDT", staged)  # nothing staged
    registry.publish(policy("KILUSDT", 1, 1.0), params={}, metrics={}, config_snapshot={})
    staging.publish(policy("KILUSDT", 1, 3.0), params={}, metrics={}, config_snapshot={})
    assert not registry.finish_replacing("KILUSDT", staged)  # a model in place: not a half-done swap
    registry.delete_model("KILUSDT")  # the swap's first step, then the kill
    staging.begin_registering("KILUSDT", "a run killed while registering")
    assert not registry.finish_replacing("KILUSDT", staged)  # part-registered: never put in place
    staging.end_registering("KILUSDT")
    assert registry.finish_replacing("KILUSDT", staged)
    assert [v.policy["maker_offset_bps"] for v in registry.list("KILUSDT")] == [3.0] and staging.list("KILUSDT") == []


def test_each_version_is_a_pyfunc_model_that_predicts_knobs_and_propensity(registry: PolicyRegistry,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    import mlflow
    import pandas as pd
    from mlflow.exceptions import MlflowException

    _publish(registry, "FFFUSDT", 0.5)
    _publish(registry, "FFFUSDT", 2.0)
    use_tracking_uri(monkeypatch, registry.tracking_uri)
    model = mlflow.pyfunc.load_model("models:/policy-FFFUSDT@champion")
    schema = model.metadata.get_input_schema()
    assert schema.input_names() == ["spread_bps", "volatility_bps", "book_imbalance", "hour", "size_vs_touch"]
    assert "propensity" in model.metadata.get_output_schema().input_names()
    contexts = pd.DataFrame({"spread_bps": [1.0, 8.0], "volatility_bps": [2.0, 30.0], "book_imbalance": [0.1, -0.9],
                             "hour": [3.0, 23.5], "size_vs_touch": [0.1, 2.0]})
    out = model.predict(contexts)
    assert len(out) == 2 and list(out["version"]) == [1, 1] and list(out["maker_offset_bps"]) == [0.5, 0.5]
    assert list(out["propensity"]) == [0.5, 0.5] and list(out["arm"]) == ["o0.50_b0.00"] * 2
    challenger = mlflow.pyfunc.load_model("models:/policy-FFFUSDT@challenger").predict(contexts)
    assert list(challenger["version"]) == [2, 2] and challenger["maker_offset_bps"][0] == 2.0
    with pytest.raises(MlflowException, match="hour"):
        model.predict(contexts.drop(columns=["hour"]))


@contextmanager
def _serving(answer: Callable[[str], tuple[int, bytes]]) -> Iterator[str]:
    """A local HTTP server whose every GET is ``answer(path)`` (status, body); yields its URL."""
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            status, body = answer(self.path)
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


_NOT_FOUND_PAGE = (404, b"<!DOCTYPE HTML><html><body><h1>Error response</h1><p>Error code: 404</p></body></html>")


@pytest.mark.parametrize("answer", [
    lambda path: (404, b"") if path == "/health" else (404, b'{"error_code": "RESOURCE_DOES_NOT_EXIST"}'),
    lambda path: (401, b"<html>log in</html>"),  # behind authentication: MLflow's client sends the credentials
], ids=["proxy-without-health", "authentication"])
def test_a_tracking_server_that_answers_as_mlflow_or_asks_for_credentials_passes_the_probe(
        answer: Callable[[str], tuple[int, bytes]]) -> None:
    with _serving(answer) as url:
        check_server_reachable(url)


def test_a_web_server_that_is_not_mlflow_is_refused_at_once() -> None:
    """It passed the probe (it answered), so `simulate` ran its whole job, then failed with the server's HTML page
    pasted into its one line, exit 1."""
    refused = (r"the server there is not MLflow \(HTTP 404 on /health, HTTP 404 without MLflow's JSON on "
               r"/api/2.0/mlflow/experiments/get-by-name\): give the address of an MLflow tracking server")
    with _serving(lambda path: _NOT_FOUND_PAGE) as url, pytest.raises(TrackingUriError, match=refused):
        check_server_reachable(url)


def test_a_tracking_server_is_probed_at_once() -> None:
    """MLflow's client retries a refused connection for about two minutes; the probe says so at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = sock.getsockname()[1]
    with pytest.raises(RegistryError, match=rf"http://127.0.0.1:{closed} did not answer .*/health within 5 s"):
        check_server_reachable(f"http://127.0.0.1:{closed}")
    check_server_reachable("sqlite:////nonexistent/store.db")   # not a server: MLflow reports its own errors
