"""Online learners of the tuner: one per file, all on the ``choose`` / ``update`` protocol of ``base``."""

from router_tuner.features.context import Context
from router_tuner.tuner.learners.base import Choice, Learner, LearnerState, RouteOutcome, StateMismatchError
from router_tuner.tuner.learners.context import ContextScales
from router_tuner.tuner.learners.epsilon_greedy import EpsilonGreedy, EpsilonGreedyState
from router_tuner.tuner.learners.linucb import LinUCB, LinUCBState
from router_tuner.tuner.learners.robbins_monro import RobbinsMonro, RobbinsMonroState
from router_tuner.tuner.learners.structured import StructuredState, StructuredThompson
from router_tuner.tuner.learners.thompson import NormalThompson, ThompsonState
from router_tuner.tuner.learners.ucb import UCB, UCBState

__all__ = [
    "UCB",
    "Choice",
    "Context",
    "ContextScales",
    "EpsilonGreedy",
    "EpsilonGreedyState",
    "Learner",
    "LearnerState",
    "LinUCB",
    "LinUCBState",
    "NormalThompson",
    "RobbinsMonro",
    "RobbinsMonroState",
    "RouteOutcome",
    "StateMismatchError",
    "StructuredState",
    "StructuredThompson",
    "ThompsonState",
    "UCBState",
]
