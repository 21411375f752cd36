"""The one sign convention OPE shows people: cost in bps against the arrival mid, lower is better.

Estimators work in rewards (``-cost_bps``, higher is better) because that is how the literature and the
learners state them. Everything printed, returned as JSON, logged to MLflow or written in a gate's reason
goes through this module, so no reader ever meets a negative reward beside a positive cost.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from router_tuner.tuner.ope.estimators import OpeEstimate


def cost_of_reward(reward: float) -> float:
    """``-reward`` as a cost, with a zero reward a plain ``0.0``: a bare negation would print ``-0.00`` (an IPS
    bound where no resampled event carries weight)."""
    return 0.0 - reward


@dataclass(frozen=True, slots=True)
class CostInterval:
    """A cost in bps with its interval; built from a reward and its interval (the bounds swap)."""

    cost_bps: float
    ci_low_bps: float
    ci_high_bps: float

    @classmethod
    def from_reward(cls, value: float, ci_low: float, ci_high: float) -> CostInterval:
        return cls(cost_bps=cost_of_reward(value), ci_low_bps=cost_of_reward(ci_high),
                   ci_high_bps=cost_of_reward(ci_low))

    @classmethod
    def of(cls, estimate: OpeEstimate) -> CostInterval:
        return cls.from_reward(estimate.value, estimate.ci_low, estimate.ci_high)

    def to_dict(self) -> dict[str, float]:
        return {"cost_bps": self.cost_bps, "ci_low_bps": self.ci_low_bps, "ci_high_bps": self.ci_high_bps}


def cost_view(estimate: OpeEstimate) -> dict[str, Any]:
    """An estimate as JSON in cost terms: ``cost_bps``, ``ci_low_bps``, ``ci_high_bps``,
    ``logging_cost_bps`` in place of the reward fields, every diagnostic unchanged."""
    out = estimate.to_dict()
    for reward_key in ("value", "ci_low", "ci_high", "logging_value"):
        del out[reward_key]
    return out | CostInterval.of(estimate).to_dict() | {"logging_cost_bps": cost_of_reward(estimate.logging_value)}
