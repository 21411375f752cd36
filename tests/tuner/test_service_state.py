"""TunerService state: a restart continues with the same decisions; bad or partial state is refused."""

from __future__ import annotations

from pathlib import Path

import msgspec
import numpy as np
import pytest

from router_tuner.tuner.service.publish import InMemoryPublisher
from router_tuner.tuner.service.tuner_service import TunerService, tuners_state_path
from router_tuner.tuner.state import StateFileError
from tests.tuner.test_service import SYMBOL, drive, event_for, model_cost, tuned_bundle


def test_saved_and_restored_service_makes_the_same_next_decisions(tmp_path: Path) -> None:
    bundle = tuned_bundle(min_outcomes=30, every_n=60)
    # the rollback window is not saved by design (it warms up again after a restart): a margin no run reaches keeps
    # rollbacks, which a restored tuner would decide on a shorter window, out of the decisions compared
    guardrails = msgspec.structs.replace(bundle.tuner.guardrails, rollback_margin_bps=1e6)
    bundle = msgspec.structs.replace(bundle, tuner=msgspec.structs.replace(bundle.tuner, guardrails=guardrails))
    path = tmp_path / "tuner.json"
    publisher = InMemoryPublisher()
    original = TunerService.from_config(bundle, [SYMBOL], publisher, state_path=path)
    drive(original, 400, model_cost, np.random.default_rng(5))
    assert publisher.records, "the run must have moved the policy for this test to mean something"
    original.save()
    restored = TunerService.from_config(bundle, [SYMBOL], InMemoryPublisher(), state_path=path)
    a, b = original.tuner(SYMBOL), restored.tuner(SYMBOL)
    assert b.policy == a.policy and b.outcomes_since_publish == a.outcomes_since_publish
    assert b.learner.counts() == a.learner.counts()
    rng_a, rng_b = np.random.default_rng(9), np.random.default_rng(9)
    assert drive(original, 200, model_cost, rng_a) == drive(restored, 200, model_cost, rng_b)
    assert a.policy == b.policy


def test_publishing_saves_the_state(tmp_path: Path) -> None:
    path = tmp_path / "tuner.json"
    service = TunerService.from_config(tuned_bundle(min_outcomes=30, every_n=30), [SYMBOL], InMemoryPublisher(),
                                       state_path=path)
    assert not path.exists()
    rng = np.random.default_rng(6)
    while service.tuner(SYMBOL).policy.version == 0:
        drive(service, 1, model_cost, rng)
    assert path.exists() and tuners_state_path(path).exists()
    restored = TunerService.from_config(tuned_bundle(min_outcomes=30, every_n=30), [SYMBOL], InMemoryPublisher(),
                                        state_path=path)
    assert restored.tuner(SYMBOL).policy.version == 1


def test_partial_or_foreign_state_is_refused(tmp_path: Path) -> None:
    bundle = tuned_bundle()
    path = tmp_path / "tuner.json"
    service = TunerService.from_config(bundle, [SYMBOL], InMemoryPublisher(), state_path=path)
    service.observe(event_for(service.decide(SYMBOL, None), 1.0), None)
    service.save()
    with pytest.raises(StateFileError, match="symbols"):
        TunerService.from_config(bundle, [SYMBOL, "ETHUSDT"], InMemoryPublisher(), state_path=path)
    tuners_state_path(path).unlink()
    with pytest.raises(StateFileError, match="missing"):
        TunerService.from_config(bundle, [SYMBOL], InMemoryPublisher(), state_path=path)
    tuners_state_path(path).write_text("{not json")
    with pytest.raises(StateFileError):
        TunerService.from_config(bundle, [SYMBOL], InMemoryPublisher(), state_path=path)
    with pytest.raises(ValueError, match="no state_path"):
        TunerService.from_config(bundle, [SYMBOL], InMemoryPublisher()).save()


def test_tuners_file_of_another_format_version_says_so(tmp_path: Path) -> None:
    bundle = tuned_bundle()
    path = tmp_path / "tuner.json"
    service = TunerService.from_config(bundle, [SYMBOL], InMemoryPublisher(), state_path=path)
    service.save()
    tuners_state_path(path).write_text('{"format_version":1,"symbols":{"BTCUSDT":{"policy":null}}}')
    with pytest.raises(StateFileError, match="format version 1, this code reads 2"):
        TunerService.from_config(bundle, [SYMBOL], InMemoryPublisher(), state_path=path)
