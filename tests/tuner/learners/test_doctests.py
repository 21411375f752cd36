"""The docstring examples of the tuner's learner modules are tests: run them."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    "tuner.arms",
    "tuner.reward",
    "tuner.guardrails",
    "tuner.learners.thompson",
    "tuner.learners.ucb",
    "tuner.learners.epsilon_greedy",
    "tuner.learners.linucb",
    "tuner.learners.structured",
    "tuner.learners.robbins_monro",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name: str) -> None:
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0, f"{name} has no example"
    assert result.failed == 0
