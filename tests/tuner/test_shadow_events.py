"""The shadow and arm-safety records: one schema with the router events, strict, and journaled like them."""

from __future__ import annotations

from pathlib import Path

import pytest

from router_tuner.executor.journal import DuplicateEvent, Journal
from router_tuner.router.codec import SchemaError, from_dataframe, from_json, to_dataframe, to_json
from router_tuner.router.events import SCHEMA_VERSION, ArmSafetyChange, ArmSafetyEvent, ShadowDecision


def shadow_record(intent_id: str, *, agrees: bool = True) -> ShadowDecision:
    return ShadowDecision(schema_version=SCHEMA_VERSION, intent_id=intent_id, symbol="BTCUSDT", ts_ns=5,
                          acting_policy_id="router-policy", acting_policy_version=3, acting_arm="o1.00_b0.00",
                          acting_propensity=1.0, proposed_arm="o1.00_b0.00" if agrees else "o2.00_b0.00",
                          proposed_propensity=0.75, agrees=agrees, learner="thompson")


def safety_record(intent_id: str) -> ArmSafetyEvent:
    return ArmSafetyEvent(schema_version=SCHEMA_VERSION, intent_id=intent_id, symbol="BTCUSDT", ts_ns=9, changes=(
        ArmSafetyChange(arm="o4.00_b0.00", action="excluded", reason="fallback_ratio_gt(0.6)", threshold=0.6,
                        observed=0.8),
        ArmSafetyChange(arm="o2.00_b0.00", action="reopened", reason="drift", threshold=None, observed=None),
    ))


def test_new_kinds_round_trip_json_and_dataframe() -> None:
    for kind, record in (("shadow", shadow_record("i1")), ("arm_safety", safety_record("i2"))):
        assert from_json(to_json(record), kind) == record
        assert from_dataframe(to_dataframe([record], kind=kind), kind) == [record]


def test_journal_stores_and_reads_back_the_new_kinds(tmp_path: Path) -> None:
    with Journal(tmp_path / "j.sqlite") as journal:
        journal.append_many([shadow_record("i1"), shadow_record("i2", agrees=False), safety_record("i1")])
        with pytest.raises(DuplicateEvent):
            journal.append(shadow_record("i1"))
        assert [r.agrees for r in journal.read("shadow", symbol="BTCUSDT")] == [True, False]
        assert list(journal.read("arm_safety")) == [safety_record("i1")]


def test_a_record_missing_a_field_is_refused() -> None:
    text = to_json(shadow_record("i1")).replace(b'"agrees":true,', b"")
    with pytest.raises(SchemaError, match="agrees"):
        from_json(text, "shadow")
