"""Exploration budget of one symbol: how much exploring may cost, in bps per order and USD per day.

Exploring an arm that is not the one the tuner would exploit costs, in expectation, the difference of
their mean costs. The budget charges every live order that upper bound — (mean cost of the arm minus
mean cost of the exploited arm) plus ``confidence_z`` standard errors of that difference, or
``untried_extra_cost_bps`` while either arm has fewer than ``min_samples_for_bound`` outcomes — and
lets the learner explore an arm only while one more such charge keeps

* the mean charge per order within ``max_extra_cost_bps_per_order``, and
* the day's charge in USD (charge x the symbol's mean order notional) within ``max_extra_cost_usd_per_day``.

A learner that prices every arm from a model shared across arms (the structured learner) is charged
instead what exploring is expected to cost under its own posterior: its expected cost of the arm minus
that of the arm it expects to be cheapest (which is then the exploited arm).

The exploited arm (lowest mean cost among the arms allowed now, with enough outcomes; the published arm
before any has) costs nothing and is always affordable, so the budget never leaves the learner without
a choice. Because charges are upper bounds, the realised extra cost stays under the caps unless the
bounds are wrong. The budget keeps its own per-arm cost moments, independent of the learner (whose
evidence is discounted on drift), and a day is the UTC day of the last observed order.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import msgspec

from router_tuner.config.models import BudgetConfig
from router_tuner.risk.units import NS_PER_S, S_PER_DAY

_NS_PER_DAY = NS_PER_S * S_PER_DAY
_BPS = 1e-4


@dataclass(frozen=True, slots=True)
class BudgetLimits:
    """The caps and the bound's parameters (``tuner.json`` ``deployment.budget``)."""

    max_extra_cost_bps_per_order: float
    max_extra_cost_usd_per_day: float
    confidence_z: float
    min_samples_for_bound: int
    untried_extra_cost_bps: float
    min_cost_std_bps: float

    def __post_init__(self) -> None:
        for name in ("max_extra_cost_bps_per_order", "max_extra_cost_usd_per_day", "untried_extra_cost_bps"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be finite and >= 0, got {value!r}")
        for name in ("confidence_z", "min_cost_std_bps"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be finite and > 0, got {value!r}")
        if self.min_samples_for_bound < 2:
            raise ValueError(f"min_samples_for_bound must be >= 2, got {self.min_samples_for_bound}")

    @classmethod
    def from_config(cls, config: BudgetConfig) -> BudgetLimits:
        return cls(max_extra_cost_bps_per_order=config.max_extra_cost_bps_per_order,
                   max_extra_cost_usd_per_day=config.max_extra_cost_usd_per_day,
                   confidence_z=config.confidence_z, min_samples_for_bound=config.min_samples_for_bound,
                   untried_extra_cost_bps=config.untried_extra_cost_bps, min_cost_std_bps=config.min_cost_std_bps)


class BudgetState(msgspec.Struct, forbid_unknown_fields=True):
    """What the budget has seen and charged; saved with the tuner's state so a restart keeps the day's spend."""

    cost_n: dict[str, int]
    cost_mean_bps: dict[str, float]
    cost_m2: dict[str, float]
    orders: int
    charged_bps: float
    day: int | None
    charged_usd_today: float
    notional_sum_usd: float
    notional_orders: int
    blocked_decisions: int

    @classmethod
    def empty(cls) -> BudgetState:
        return cls(cost_n={}, cost_mean_bps={}, cost_m2={}, orders=0, charged_bps=0.0, day=None,
                   charged_usd_today=0.0, notional_sum_usd=0.0, notional_orders=0, blocked_decisions=0)


@dataclass(frozen=True, slots=True)
class BudgetReport:
    """What health shows: the caps, what was charged against them and how often they bound."""

    orders: int
    charged_bps_per_order: float
    max_extra_cost_bps_per_order: float
    charged_usd_today: float
    max_extra_cost_usd_per_day: float
    day: int | None
    blocked_decisions: int


class ExplorationBudget:
    """Filters the arms a learner may explore so the expected extra cost of exploring stays under the caps.

    Examples
    --------
    >>> limits = BudgetLimits(max_extra_cost_bps_per_order=1.0, max_extra_cost_usd_per_day=100.0,
    ...                       confidence_z=2.0, min_samples_for_bound=2, untried_extra_cost_bps=3.0,
    ...                       min_cost_std_bps=1.0)
    >>> budget = ExplorationBudget(limits)
    >>> budget.affordable(["a", "b"], published_arm="a")     # no order seen: nothing to pay with
    ('a',)
    >>> for i in range(4):
    ...     _ = budget.charge("a", "a", notional_usd=1000.0, ts_ns=i)
    ...     budget.record_cost("a", 2.0)
    >>> budget.affordable(["a", "b"], published_arm="a")     # (0 + 3) / 5 orders <= 1 bps
    ('a', 'b')
    """

    def __init__(self, limits: BudgetLimits, state: BudgetState | None = None) -> None:
        self.limits = limits
        self._s = state if state is not None else BudgetState.empty()

    @property
    def state(self) -> BudgetState:
        return self._s

    def exploit_arm(self, allowed: Sequence[str], published_arm: str,
                    expected_cost_bps: Mapping[str, float] | None = None) -> str:
        """The arm exploiting would pick among ``allowed``: lowest mean cost with enough outcomes.

        Before any allowed arm has ``min_samples_for_bound`` outcomes, the published arm when allowed,
        else the first allowed arm. With ``expected_cost_bps`` (the learner's posterior cost of every arm),
        the allowed arm it expects to be cheapest.
        """
        if not allowed:
            raise ValueError("no allowed arm to exploit")
        if expected_cost_bps is not None:
            return min(allowed, key=lambda a: expected_cost_bps[a])
        known = [a for a in allowed if self._s.cost_n.get(a, 0) >= self.limits.min_samples_for_bound]
        if known:
            return min(known, key=lambda a: self._s.cost_mean_bps[a])
        return published_arm if published_arm in allowed else allowed[0]

    def extra_cost_bps(self, arm: str, exploit: str, expected_cost_bps: Mapping[str, float] | None = None) -> float:
        """Upper bound of the extra cost of routing ``arm`` instead of ``exploit`` (0 for the same arm).

        With ``expected_cost_bps`` (a learner's posterior cost of every arm, tried or not) the charge is
        what exploring is expected to cost under that posterior: the difference of the two expected costs.
        """
        if arm == exploit:
            return 0.0
        if expected_cost_bps is not None:
            return max(0.0, expected_cost_bps[arm] - expected_cost_bps[exploit])
        need = self.limits.min_samples_for_bound
        n_arm, n_ref = self._s.cost_n.get(arm, 0), self._s.cost_n.get(exploit, 0)
        if n_arm < need or n_ref < need:
            return self.limits.untried_extra_cost_bps
        difference = self._s.cost_mean_bps[arm] - self._s.cost_mean_bps[exploit]
        spread = math.sqrt(self._std_error_sq(arm) + self._std_error_sq(exploit))
        return max(0.0, difference + self.limits.confidence_z * spread)

    def affordable(self, allowed: Sequence[str], published_arm: str,
                   expected_cost_bps: Mapping[str, float] | None = None) -> tuple[str, ...]:
        """The arms of ``allowed`` whose charge fits both caps, in their order; the exploited arm always.

        A pure question (nothing is counted): a caller that decides on the answer calls
        :meth:`count_decision` once per decision, however often it asked.
        """
        exploit = self.exploit_arm(allowed, published_arm, expected_cost_bps)
        mean_notional = (self._s.notional_sum_usd / self._s.notional_orders if self._s.notional_orders else None)
        out = []
        for arm in allowed:
            extra = self.extra_cost_bps(arm, exploit, expected_cost_bps)
            if extra == 0.0:
                out.append(arm)
                continue
            mean_charge_bps = (self._s.charged_bps + extra) / (self._s.orders + 1)
            per_order_ok = mean_charge_bps <= self.limits.max_extra_cost_bps_per_order
            usd_ok = mean_notional is not None and (
                self._s.charged_usd_today + extra * _BPS * mean_notional <= self.limits.max_extra_cost_usd_per_day)
            if per_order_ok and usd_ok:
                out.append(arm)
        return tuple(out)

    def count_decision(self, blocked: bool) -> None:
        """Count one decision made on an :meth:`affordable` answer; ``blocked``: the budget removed arms."""
        self._s.blocked_decisions += int(blocked)

    def charge(self, arm: str, exploit: str, expected_cost_bps: Mapping[str, float] | None = None, *,
               notional_usd: float, ts_ns: int) -> float:
        """Charge one routed order of ``arm`` (exploiting ``exploit``); returns the charge in bps.

        Call before :meth:`record_cost` of the same order, with the arms the decision saw.
        """
        if not (math.isfinite(notional_usd) and notional_usd >= 0):
            raise ValueError(f"notional_usd must be finite and >= 0, got {notional_usd!r}")
        day = ts_ns // _NS_PER_DAY
        if self._s.day is None or day > self._s.day:
            self._s.day, self._s.charged_usd_today = day, 0.0
        extra = self.extra_cost_bps(arm, exploit, expected_cost_bps)
        self._s.orders += 1
        self._s.charged_bps += extra
        self._s.charged_usd_today += extra * _BPS * notional_usd
        self._s.notional_sum_usd += notional_usd
        self._s.notional_orders += 1
        return extra

    def record_cost(self, arm: str, cost_bps: float) -> None:
        """Add one learned cost of ``arm`` to the budget's own moments."""
        if not math.isfinite(cost_bps):
            raise ValueError(f"cost_bps must be finite, got {cost_bps!r}")
        n = self._s.cost_n.get(arm, 0) + 1
        mean = self._s.cost_mean_bps.get(arm, 0.0)
        delta = cost_bps - mean
        mean += delta / n
        self._s.cost_n[arm] = n
        self._s.cost_mean_bps[arm] = mean
        self._s.cost_m2[arm] = self._s.cost_m2.get(arm, 0.0) + delta * (cost_bps - mean)

    def report(self) -> BudgetReport:
        s = self._s
        return BudgetReport(orders=s.orders, charged_bps_per_order=s.charged_bps / s.orders if s.orders else 0.0,
                            max_extra_cost_bps_per_order=self.limits.max_extra_cost_bps_per_order,
                            charged_usd_today=s.charged_usd_today,
                            max_extra_cost_usd_per_day=self.limits.max_extra_cost_usd_per_day, day=s.day,
                            blocked_decisions=s.blocked_decisions)

    def _std_error_sq(self, arm: str) -> float:
        n = self._s.cost_n[arm]
        std = max(math.sqrt(self._s.cost_m2[arm] / (n - 1)), self.limits.min_cost_std_bps)
        return std * std / n
