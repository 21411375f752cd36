"""The docstring examples of the tuner's learner modules are tests: run them."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    "router_tuner.tuner.arms",
    "router_tuner.tuner.reward",
    "router_tuner.tuner.guardrails",
    "router_tuner.tuner.learners.thompson",
    "router_tuner.tuner.learners.ucb",
    "router_tuner.tuner.learners.epsilon_greedy",
    "router_tuner.tuner.learners.linucb",
    "router_tuner.tuner.learners.structured",
    "router_tuner.tuner.learners.robbins_monro",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name: str) -> None:
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0, f"{name} has no example"
    assert result.failed == 0
