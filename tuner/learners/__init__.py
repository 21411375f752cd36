"""Online learners of the tuner: one per file, all on the ``choose`` / ``update`` protocol of ``base``."""

from features.context import Context
from tuner.learners.base import Choice, Learner, LearnerState, RouteOutcome, StateMismatchError
from tuner.learners.context import ContextScales
from tuner.learners.epsilon_greedy import EpsilonGreedy, EpsilonGreedyState
from tuner.learners.linucb import LinUCB, LinUCBState
from tuner.learners.robbins_monro import RobbinsMonro, RobbinsMonroState
from tuner.learners.structured import StructuredState, StructuredThompson
from tuner.learners.thompson import NormalThompson, ThompsonState
from tuner.learners.ucb import UCB, UCBState

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
