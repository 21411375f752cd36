"""Venues behind the ``router.venue.Venue`` protocol: the simulated replay venue (``sim``)."""

from router.venue import ReduceOnlyRejected
from router.venues.sim import ReplayExhausted, SimClock, SimVenue
from router.venues.sim_config import SimVenueConfig
from router.venues.sim_queue import LogProbQueue, PowerProbQueue, QueueModel, RiskAverseQueue
from router.venues.sim_taker import TakerWalkTooDeep

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
