"""Policy sources: the static policy, and the registry champion hot-swapped after promote/rollback."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest

from router_tuner.config.loader import load_config
from router_tuner.router.policy import PolicyError, RouterPolicy
from router_tuner.tuner.gate_record import gate_problem
from router_tuner.tuner.policy_source import (
    ChampionGateStatus,
    RegistryPolicySource,
    StaticPolicySource,
    policy_from_document,
)

BUNDLE = load_config()
BOUNDS = BUNDLE.router.policy_bounds
SYMBOL = "BTCUSDT"
BASE = RouterPolicy.from_static(SYMBOL, BUNDLE.router, policy_id=f"tuner-{SYMBOL}")


def version(n: int, offset_bps: float) -> RouterPolicy:
    return replace(BASE, version=n, arm=f"o{offset_bps:.2f}_b0.00", maker_offset_bps=offset_bps)


def test_policy_document_round_trips_and_bad_documents_are_refused() -> None:
    doc = version(3, 2.0).as_params()
    assert policy_from_document(doc, SYMBOL, BOUNDS) == version(3, 2.0)
    with pytest.raises(PolicyError, match="not a RouterPolicy document"):
        policy_from_document({k: v for k, v in doc.items() if k != "taker_bias"}, SYMBOL, BOUNDS)
    with pytest.raises(PolicyError, match="not a RouterPolicy document"):
        policy_from_document({**doc, "surprise": 1}, SYMBOL, BOUNDS)
    with pytest.raises(PolicyError, match="not a RouterPolicy document"):
        policy_from_document({**doc, "fallback_mode": "yolo"}, SYMBOL, BOUNDS)
    with pytest.raises(PolicyError, match="is for ETHUSDT"):
        policy_from_document({**doc, "symbol": "ETHUSDT"}, SYMBOL, BOUNDS)
    with pytest.raises(PolicyError, match="outside policy_bounds"):
        policy_from_document({**doc, "maker_offset_bps": 50.0}, SYMBOL, BOUNDS)


def test_static_source_serves_the_configured_policy() -> None:
    source = StaticPolicySource(BUNDLE.router, [SYMBOL, "ETHUSDT"])
    assert source.current(SYMBOL) == RouterPolicy.from_static(SYMBOL, BUNDLE.router)
    with pytest.raises(KeyError, match="no policy for SOLUSDT"):
        source.current("SOLUSDT")
    with pytest.raises(ValueError, match="at least one symbol"):
        StaticPolicySource(BUNDLE.router, [])


@dataclass
class Shown:
    policy: dict[str, Any]
    version: int


class FakeRegistry:
    """Serves a settable champion; counts alias lookups and document downloads; ``fail`` makes both raise.

    Every version carries a passing gate record unless ``tags`` says otherwise.
    """

    def __init__(self, policy: RouterPolicy) -> None:
        self.document = policy.as_params()
        self.registry_version = 1
        self.reads = 0
        self.lookups = 0
        self.fail = False
        self.tags: dict[int, dict[str, str]] = {}

    def publish_champion(self, document: dict[str, Any], tags: dict[str, str] | None = None) -> None:
        self.document = document
        self.registry_version += 1
        if tags is not None:
            self.tags[self.registry_version] = tags

    def version_tags(self, symbol: str, version: int) -> dict[str, str]:
        return self.tags.get(version, {"promotion": "initial"})

    def champion_version(self, symbol: str) -> int:
        self.lookups += 1
        if self.fail:
            raise ConnectionError("store unreachable")
        return self.registry_version

    def show(self, symbol: str, ref: str) -> Shown:
        assert ref in ("champion", str(self.registry_version))
        self.reads += 1
        if self.fail:
            raise ConnectionError("store unreachable")
        return Shown(dict(self.document), self.registry_version)


def test_registry_source_rereads_at_most_every_refresh_s_and_keeps_the_last_champion_on_errors() -> None:
    now = [100.0]
    registry = FakeRegistry(version(1, 1.0))
    source = RegistryPolicySource(registry, [SYMBOL], BOUNDS, refresh_s=5.0, clock=lambda: now[0])  # type: ignore[arg-type]
    assert source.current(SYMBOL).version == 1 and registry.reads == 1
    now[0] = 106.0
    assert source.current(SYMBOL).version == 1 and (registry.lookups, registry.reads) == (1, 1), \
        "an unchanged champion is not downloaded again"
    registry.publish_champion(version(2, 2.0).as_params())
    now[0] = 110.9
    assert source.current(SYMBOL).version == 1 and registry.reads == 1
    now[0] = 111.0
    assert source.current(SYMBOL).version == 2 and registry.reads == 2
    registry.fail = True
    now[0] = 116.0
    assert source.current(SYMBOL).version == 2 and source.refresh_errors == 1
    registry.fail = False
    registry.publish_champion({**version(3, 2.0).as_params(), "maker_offset_bps": 99.0})
    now[0] = 122.0
    assert source.current(SYMBOL).version == 2 and source.refresh_errors == 2, "out-of-bounds champion refused"
    assert "outside policy_bounds" in source.champion_gates()[0].problem
    with pytest.raises(KeyError, match="no policy for ETHUSDT"):
        source.current("ETHUSDT")
    with pytest.raises(ValueError, match="refresh_s"):
        RegistryPolicySource(registry, [SYMBOL], BOUNDS, refresh_s=-1.0)  # type: ignore[arg-type]


def test_an_ungated_champion_is_not_acted_on_until_its_record_holds() -> None:
    registry = FakeRegistry(version(1, 1.0))
    source = RegistryPolicySource(registry, [SYMBOL], BOUNDS, refresh_s=0.0)  # type: ignore[arg-type]
    assert source.champion_gates() == (ChampionGateStatus(SYMBOL, 1, 1, None),)
    registry.publish_champion(version(2, 2.0).as_params(), tags={})  # an alias moved by hand
    assert source.current(SYMBOL).version == 1 and source.refresh_errors == 0
    [gate] = source.champion_gates()
    assert (gate.served_version, gate.champion_version) == (1, 2) and "no gate record" in gate.problem
    registry.tags[2] = {"promotion": "forced", "promotion_forced_by": "alice", "promotion_forced_why": ""}
    assert source.current(SYMBOL).version == 1
    assert source.champion_gates()[0].problem == "a forced promotion record without who and why"
    registry.tags[2] = {"promotion": "forced", "promotion_forced_by": "alice", "promotion_forced_why": "checked"}
    assert source.current(SYMBOL).version == 2
    assert source.champion_gates() == (ChampionGateStatus(SYMBOL, 2, 2, None),)


@pytest.mark.parametrize("tags, problem", [
    ({"promotion": "initial"}, None),
    ({"promotion": "tuner_rollback"}, None),
    ({"promotion": "ope_gate", "promotion_cost_ci_high_bps": "1.5", "promotion_champion_cost_bps": "2.0",
      "promotion_margin_bps": "0.25"}, None),
    ({"promotion": "ope_gate", "promotion_cost_ci_high_bps": "1.9", "promotion_champion_cost_bps": "2.0",
      "promotion_margin_bps": "0.25"}, "does not pass"),
    ({"promotion": "ope_gate"}, "without the gate's numbers"),
    ({"promotion": "ope_gate", "promotion_cost_ci_high_bps": "nan", "promotion_champion_cost_bps": "2.0",
      "promotion_margin_bps": "0.25"}, "does not pass"),
    ({"promotion": "approved"}, "unknown promotion record"),
    ({}, "no gate record"),
])
def test_gate_records(tags: dict[str, str], problem: str | None) -> None:
    found = gate_problem(tags)
    assert found is None if problem is None else problem in found


def test_router_hot_swaps_after_promote_and_rollback_on_a_real_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    from router_tuner.tuner.promotion import force_promote
    from router_tuner.tuner.registry import PolicyRegistry, RegistryError

    registry = PolicyRegistry(f"sqlite:///{tmp_path}/store.db", experiment="test", model_prefix="policy")
    with pytest.raises(RegistryError):
        RegistryPolicySource(registry, [SYMBOL], BOUNDS, refresh_s=0.0)
    for n, offset in ((1, 1.0), (2, 2.0)):
        registry.publish(version(n, offset), params={"learner": "thompson"},
                         metrics={"cost_bps": 1.0}, config_snapshot={})
    source = RegistryPolicySource(registry, [SYMBOL], BOUNDS, refresh_s=0.0)
    assert source.current(SYMBOL) == version(1, 1.0), "the first version is the champion"
    registry.promote(SYMBOL)  # the bare alias move records no gate
    assert source.current(SYMBOL) == version(1, 1.0) and source.champion_gates()[0].champion_version == 2
    registry.rollback(SYMBOL)
    force_promote(registry, SYMBOL, who="test", why="hot swap")
    assert source.current(SYMBOL) == version(2, 2.0)
    registry.rollback(SYMBOL)
    assert source.current(SYMBOL) == version(1, 1.0)


def test_an_alias_moved_in_the_ui_is_not_picked_up_until_a_person_accepts_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    from mlflow import MlflowClient

    from router_tuner.tuner.promotion import force_promote
    from router_tuner.tuner.registry import PolicyRegistry, RegistryError

    registry = PolicyRegistry(f"sqlite:///{tmp_path}/store.db", experiment="test", model_prefix="policy")
    for n, offset in ((1, 1.0), (2, 2.0), (3, 3.0)):
        registry.publish(version(n, offset), params={}, metrics={}, config_snapshot={})
    source = RegistryPolicySource(registry, [SYMBOL], BOUNDS, refresh_s=0.0)
    ui = MlflowClient(tracking_uri=registry.tracking_uri)
    ui.set_registered_model_alias(registry.model_name(SYMBOL), "champion", "2")  # what the MLflow UI does
    assert source.current(SYMBOL) == version(1, 1.0), "the last gated champion keeps acting"
    [gate] = source.champion_gates()
    assert (gate.served_version, gate.champion_version) == (1, 2) and "moved outside" in gate.problem
    with pytest.raises(PolicyError, match="champion version 2 must not act: no gate record"):
        RegistryPolicySource(registry, [SYMBOL], BOUNDS, refresh_s=0.0)
    force_promote(registry, SYMBOL, who="alice", why="reviewed the UI move", version=2)
    assert source.current(SYMBOL) == version(2, 2.0) and source.champion_gates()[0].problem is None
    with pytest.raises(RegistryError, match="already the champion, with a gate record"):
        force_promote(registry, SYMBOL, who="alice", why="again", version=2)
    ui.delete_registered_model_alias(registry.model_name(SYMBOL), "champion")
    assert source.current(SYMBOL) == version(2, 2.0)
    assert source.champion_gates()[0] == ChampionGateStatus(SYMBOL, 2, None, "the champion alias is not set")
