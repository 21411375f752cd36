"""The simulated replay venue behind the ``router.venue.Venue`` protocol: recorded or synthetic tapes,
latency, a queue-position fill model for resting orders, depth-walking takers, positions and fees."""

from router_tuner.router.venue import ReduceOnlyRejected
from router_tuner.router.venues.sim.config import SimVenueConfig
from router_tuner.router.venues.sim.queue import LogProbQueue, PowerProbQueue, QueueModel, RiskAverseQueue
from router_tuner.router.venues.sim.taker import TakerWalkTooDeep
from router_tuner.router.venues.sim.venue import ReplayExhausted, SimClock, SimVenue

__all__ = [
    "LogProbQueue",
    "PowerProbQueue",
    "QueueModel",
    "ReduceOnlyRejected",
    "ReplayExhausted",
    "RiskAverseQueue",
    "SimClock",
    "SimVenue",
    "SimVenueConfig",
    "TakerWalkTooDeep",
]
