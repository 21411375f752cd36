"""Per-arm safety bounds of one symbol: arms whose recent outcomes break a configured limit are excluded.

A learner keeps exploring an arm that looks bad only until its posterior says so; a desk wants a hard
stop sooner when an arm falls back to taker too often, slips too far or costs too much. Over each arm's
last ``window`` routed orders (once ``min_outcomes`` are in), the arm is excluded when

* its fallback ratio (share of orders that used the taker fallback) exceeds ``max_fallback_ratio`` with
  confidence ``fallback_confidence``: the ratio's Wilson lower bound at that level is above the limit (0.5:
  the ratio itself). A ratio near the limit is noise for a few dozen orders, and the check runs after every
  outcome: judged on the point estimate, a maker arm filling 25% of the time against a limit of 80% fallbacks
  is excluded sooner or later, and a re-probe trial of 5 orders fails a quarter of the time. With
  ``spare_fallbacks_cheaper_than_crossing`` an arm whose window costs on average no more than crossing at each
  order's arrival would have (the taker fee and half the arrival spread) is spared: its fallbacks cost nothing
  that taking at once would not,
* the mean slippage of its filled orders exceeds ``max_slippage_bps``, or
* the mean cost of its filled orders exceeds ``max_cost_bps``

(slippage and cost only with ``min_outcomes`` filled orders). An exclusion is judged on a recent window
and is not forever, because a quiet stretch that makes every maker arm fall back ends:

* it expires after ``reprobe_after_outcomes`` outcomes of the symbol, doubling with each exclusion of
  the same arm in a row (up to ``max_reprobe_after_outcomes``); the arm re-opens with an empty window
  and is probed again — reason ``reprobe`` — on a short trial: it is judged again after only
  ``reprobe_min_outcomes`` outcomes, so an arm that still breaks its limit costs a few orders per probe;
* every excluded arm re-opens at once when the market's regime changes: the symbol's maker fill rate
  over its last ``window`` maker-first orders moved by more than ``regime_fill_rate_change`` since the
  exclusion — reason ``regime``; and when the drift detector fires — reason ``drift``.

Each exclusion and re-opening is an :class:`~router.events.ArmSafetyChange` whose reason names the
configured limit, for the journal and for health.

The check runs after every outcome, so each window's totals are kept as it moves (:class:`_WindowTotals`)
instead of being summed again over the whole window: judging an arm is O(1), not O(``window``).
"""

from __future__ import annotations

import math
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from statistics import NormalDist

import msgspec

from router_tuner.config.models import SafetyConfig
from router_tuner.router.events import ArmSafetyChange


@dataclass(frozen=True, slots=True)
class SafetyLimits:
    """``tuner.json`` ``deployment.safety``."""

    window: int
    min_outcomes: int
    max_fallback_ratio: float
    max_slippage_bps: float
    max_cost_bps: float
    reprobe_after_outcomes: int
    max_reprobe_after_outcomes: int
    reprobe_min_outcomes: int
    regime_fill_rate_change: float
    fallback_confidence: float
    spare_fallbacks_cheaper_than_crossing: bool

    def __post_init__(self) -> None:
        if not 1 <= self.reprobe_min_outcomes <= self.min_outcomes:
            raise ValueError(f"need 1 <= reprobe_min_outcomes <= min_outcomes, got {self.reprobe_min_outcomes} "
                             f"and {self.min_outcomes}")
        if not 1 <= self.reprobe_after_outcomes <= self.max_reprobe_after_outcomes:
            raise ValueError(f"need 1 <= reprobe_after_outcomes <= max_reprobe_after_outcomes, got "
                             f"{self.reprobe_after_outcomes} and {self.max_reprobe_after_outcomes}")
        if not 0.0 < self.regime_fill_rate_change <= 1.0:
            raise ValueError(f"regime_fill_rate_change must be in (0, 1], got {self.regime_fill_rate_change!r}")
        if not 1 <= self.min_outcomes <= self.window:
            raise ValueError(f"need 1 <= min_outcomes <= window, got {self.min_outcomes} and {self.window}")
        if not 0.0 <= self.max_fallback_ratio <= 1.0:
            raise ValueError(f"max_fallback_ratio must be in [0, 1], got {self.max_fallback_ratio!r}")
        if not 0.5 <= self.fallback_confidence < 1.0:
            raise ValueError(f"fallback_confidence must be in [0.5, 1), got {self.fallback_confidence!r}")
        for name in ("max_slippage_bps", "max_cost_bps"):
            if not math.isfinite(getattr(self, name)):
                raise ValueError(f"{name} must be finite, got {getattr(self, name)!r}")

    @classmethod
    def from_config(cls, config: SafetyConfig) -> SafetyLimits:
        return cls(window=config.window, min_outcomes=config.min_outcomes,
                   max_fallback_ratio=config.max_fallback_ratio, max_slippage_bps=config.max_slippage_bps,
                   max_cost_bps=config.max_cost_bps, reprobe_after_outcomes=config.reprobe_after_outcomes,
                   max_reprobe_after_outcomes=config.max_reprobe_after_outcomes,
                   reprobe_min_outcomes=config.reprobe_min_outcomes,
                   regime_fill_rate_change=config.regime_fill_rate_change,
                   fallback_confidence=config.fallback_confidence,
                   spare_fallbacks_cheaper_than_crossing=config.spare_fallbacks_cheaper_than_crossing)


class ArmOutcome(msgspec.Struct, frozen=True, array_like=True, forbid_unknown_fields=True):
    """What one routed order of an arm showed: fallback used, slippage and cost (``None`` when unfilled), and the
    cost minus what crossing at its arrival would have cost (``None`` when either is unknown)."""

    used_fallback: bool
    slippage_bps: float | None
    cost_bps: float | None
    over_crossing_bps: float | None = None


class SafetyState(msgspec.Struct, forbid_unknown_fields=True):
    """Recent outcomes per arm and the arms excluded now (with the change that excluded them)."""

    recent: dict[str, list[ArmOutcome]]
    excluded: dict[str, ArmSafetyChange]
    outcomes: int = 0
    reopen_at: dict[str, int] = msgspec.field(default_factory=dict)
    strikes: dict[str, int] = msgspec.field(default_factory=dict)
    fill_rate_at_exclusion: dict[str, float] = msgspec.field(default_factory=dict)
    maker_fills: list[bool] = msgspec.field(default_factory=list)

    @classmethod
    def empty(cls) -> SafetyState:
        return cls(recent={}, excluded={})


class _RunningMean:
    """The mean of a window of floats kept as values enter and leave it, with Neumaier's compensated sum, and a bound
    on how far it can be from the mean :func:`sum` gives over the window (the rescan it replaces).

    The compensated sum is within about two roundings of the magnitude passed through (``_magnitude``: every value
    added or removed since the totals were built) of the true sum; a plain left-to-right ``sum`` of ``n`` values is
    within ``n - 1`` roundings of their magnitude. A running mean further than both from a limit is on the same side
    of it as the rescan's."""

    __slots__ = ("_compensation", "_magnitude", "_sum", "count")

    def __init__(self) -> None:
        self.count = 0
        self._sum = 0.0
        self._compensation = 0.0
        self._magnitude = 0.0

    def add(self, value: float, sign: int) -> None:
        """Add ``value`` (``sign`` 1) or remove it (``sign`` -1)."""
        self._magnitude += abs(value)
        value *= sign
        total = self._sum + value
        if abs(self._sum) >= abs(value):
            self._compensation += (self._sum - total) + value
        else:
            self._compensation += (value - total) + self._sum
        self._sum = total
        self.count += sign

    def mean(self) -> float:
        return (self._sum + self._compensation) / self.count

    def error_bound(self) -> float:
        """How far :meth:`mean` may be from the window's plain ``sum`` over its count (see the class docstring)."""
        return (self.count + 4) * _EPSILON * self._magnitude / self.count


class _WindowTotals:
    """One arm's window as totals: fallbacks, and the slippage and cost of its filled orders. Built again from the
    window after as many changes as it holds, so the error bound's magnitude covers at most two windows' values."""

    __slots__ = ("changes", "cost", "fallbacks", "over_crossing", "slippage")

    def __init__(self, outcomes: Iterable[ArmOutcome] = ()) -> None:
        self.fallbacks = self.changes = 0
        self.slippage = _RunningMean()
        self.cost = _RunningMean()
        self.over_crossing = _RunningMean()
        for outcome in outcomes:
            self.add(outcome, 1)
        self.changes = 0  # the values in the window when built count in the bound's magnitude, not as changes

    def add(self, outcome: ArmOutcome, sign: int) -> None:
        """Count ``outcome`` in (``sign`` 1) or out (``sign`` -1)."""
        self.changes += 1
        self.fallbacks += sign * outcome.used_fallback
        if outcome.slippage_bps is not None:
            self.slippage.add(outcome.slippage_bps, sign)
        if outcome.cost_bps is not None:
            self.cost.add(outcome.cost_bps, sign)
        if outcome.over_crossing_bps is not None:
            self.over_crossing.add(outcome.over_crossing_bps, sign)


class ArmSafety:
    """Watches each arm's recent outcomes against :class:`SafetyLimits`; see the module docstring.

    Examples
    --------
    >>> limits = SafetyLimits(window=4, min_outcomes=2, max_fallback_ratio=0.5, max_slippage_bps=5.0,
    ...                       max_cost_bps=8.0, reprobe_after_outcomes=1, max_reprobe_after_outcomes=12,
    ...                       reprobe_min_outcomes=1, regime_fill_rate_change=0.3, fallback_confidence=0.5,
    ...                       spare_fallbacks_cheaper_than_crossing=False)
    >>> safety = ArmSafety(limits)
    >>> safety.observe_outcome("a", used_fallback=True, slippage_bps=1.0, cost_bps=2.0)
    >>> change = safety.observe_outcome("a", used_fallback=True, slippage_bps=1.0, cost_bps=2.0)
    >>> change.reason, change.observed, safety.choosable(["a", "b"])
    ('fallback_ratio_gt(0.5)', 1.0, ('b',))
    >>> safety.observe_outcome("b", used_fallback=False, slippage_bps=0.0, cost_bps=1.0)
    >>> [(c.arm, c.reason) for c in safety.reopen_due()], safety.choosable(["a", "b"])
    ([('a', 'reprobe')], ('a', 'b'))
    """

    def __init__(self, limits: SafetyLimits, state: SafetyState | None = None) -> None:
        self.limits = limits
        self._fallback_z = NormalDist().inv_cdf(limits.fallback_confidence)
        self._s = state if state is not None else SafetyState.empty()
        self._totals = {arm: _WindowTotals(recent) for arm, recent in self._s.recent.items()}
        self._maker_filled = sum(self._s.maker_fills)

    @property
    def state(self) -> SafetyState:
        return self._s

    @property
    def excluded(self) -> dict[str, ArmSafetyChange]:
        """Arms excluded now, each with the change (limit, observed value) that excluded it."""
        return dict(self._s.excluded)

    def choosable(self, allowed: Iterable[str]) -> tuple[str, ...]:
        """``allowed`` without the excluded arms, in order."""
        return tuple(a for a in allowed if a not in self._s.excluded)

    def observe_outcome(self, arm: str, *, used_fallback: bool, slippage_bps: float | None,
                        cost_bps: float | None, maker_filled: bool | None = None,
                        crossing_cost_bps: float | None = None) -> ArmSafetyChange | None:
        """Add one routed order of ``arm``; returns the exclusion it caused, if any.

        Pass slippage and cost only for orders whose reward was accepted (``None`` otherwise), so an
        absurd or unfilled outcome counts for the fallback ratio only. ``maker_filled`` (for an order that
        started maker-first: did the post-only leg fill it all) feeds the symbol's maker fill rate, the
        regime signal; ``None`` for a taker start. ``crossing_cost_bps``, what taking at the order's arrival would
        have cost in the same measure as ``cost_bps`` (``None``: unknown), spares an arm from the fallback-ratio
        limit while it costs less than crossing (``spare_fallbacks_cheaper_than_crossing``). Call
        :meth:`reopen_due` after each outcome.
        """
        for name, value in (("slippage_bps", slippage_bps), ("cost_bps", cost_bps),
                            ("crossing_cost_bps", crossing_cost_bps)):
            if value is not None and not math.isfinite(value):
                raise ValueError(f"{name} must be finite or None, got {value!r}")
        self._s.outcomes += 1
        window = self.limits.window
        if maker_filled is not None:
            fills = self._s.maker_fills
            fills.append(maker_filled)
            self._maker_filled += maker_filled
            while len(fills) > window:  # more than one only after a load under a smaller window
                self._maker_filled -= fills.pop(0)
        recent = self._s.recent.setdefault(arm, [])
        totals = self._totals.setdefault(arm, _WindowTotals())
        over_crossing = None if cost_bps is None or crossing_cost_bps is None else cost_bps - crossing_cost_bps
        outcome = ArmOutcome(used_fallback=used_fallback, slippage_bps=slippage_bps, cost_bps=cost_bps,
                             over_crossing_bps=over_crossing)
        recent.append(outcome)
        totals.add(outcome, 1)
        while len(recent) > window:
            totals.add(recent.pop(0), -1)
        if totals.changes > 2 * window:
            totals = self._totals[arm] = _WindowTotals(recent)
        on_trial = self._s.strikes.get(arm, 0) > 0
        needed = self.limits.reprobe_min_outcomes if on_trial else self.limits.min_outcomes
        if arm in self._s.excluded or len(recent) < needed:
            return None
        change = self._breach(arm, recent, totals, needed)
        if change is not None:
            self._exclude(arm, change)
        return change

    def maker_fill_rate(self) -> float | None:
        """Share of the symbol's last ``window`` maker-first orders that filled on the maker leg."""
        count = len(self._s.maker_fills)
        return self._maker_filled / count if count >= self.limits.min_outcomes else None

    def reopen_due(self) -> list[ArmSafetyChange]:
        """Re-open the arms whose exclusion expired (``reprobe``), or all of them when the regime changed."""
        rate = self.maker_fill_rate()
        if rate is not None and any(abs(rate - before) > self.limits.regime_fill_rate_change
                                    for before in self._s.fill_rate_at_exclusion.values()):
            return self._reopen(list(self._s.excluded), "regime")
        due = [arm for arm in self._s.excluded if self._s.outcomes >= self._s.reopen_at.get(arm, 0)]
        return self._reopen(due, "reprobe")

    def reopen_all(self) -> list[ArmSafetyChange]:
        """Re-open every excluded arm with an empty window (call when drift is detected)."""
        return self._reopen(list(self._s.excluded), "drift")

    def _exclude(self, arm: str, change: ArmSafetyChange) -> None:
        strikes = self._s.strikes.get(arm, 0) + 1
        wait = min(self.limits.reprobe_after_outcomes * 2 ** (strikes - 1), self.limits.max_reprobe_after_outcomes)
        self._s.excluded[arm] = change
        self._s.strikes[arm] = strikes
        self._s.reopen_at[arm] = self._s.outcomes + wait
        rate = self.maker_fill_rate()
        if rate is not None:
            self._s.fill_rate_at_exclusion[arm] = rate

    def _reopen(self, arms: list[str], reason: str) -> list[ArmSafetyChange]:
        for arm in arms:
            del self._s.excluded[arm]
            self._s.recent.pop(arm, None)
            self._totals.pop(arm, None)
            self._s.reopen_at.pop(arm, None)
            self._s.fill_rate_at_exclusion.pop(arm, None)
            if reason != "reprobe":
                self._s.strikes.pop(arm, None)  # new evidence, not the same arm failing again
        return [ArmSafetyChange(arm=arm, action="reopened", reason=reason, threshold=None, observed=None)
                for arm in arms]

    def _breach(self, arm: str, recent: list[ArmOutcome], totals: _WindowTotals,
                needed: int) -> ArmSafetyChange | None:
        limits = self.limits
        n = len(recent)
        fallbacks = totals.fallbacks
        # the fallback ratio is judged by its lower confidence bound and reported as itself
        if (wilson_lower_bound(fallbacks, n, self._fallback_z) > limits.max_fallback_ratio
                and not self._cheaper_than_crossing(recent, totals, needed)):
            return _excluded(arm, "fallback_ratio", limits.max_fallback_ratio, fallbacks / n)
        for name, running, threshold in (("slippage_bps", totals.slippage, limits.max_slippage_bps),
                                         ("cost_bps", totals.cost, limits.max_cost_bps)):
            mean = _mean_above(recent, name, running, threshold, needed)
            if mean is not None:
                return _excluded(arm, name, threshold, mean)
        return None

    def _cheaper_than_crossing(self, recent: list[ArmOutcome], totals: _WindowTotals, needed: int) -> bool:
        """Whether the arm's window, fallbacks and all, cost no more on average than crossing at each order's arrival
        would have: its fallbacks then cost nothing a taker leg would not (BTCUSD_PERP re-quoted on a 5 bps tick: the
        touch falls back on 80% of its orders and is still the cheapest arm, 7.00 bps against 7.49 for taking)."""
        return (self.limits.spare_fallbacks_cheaper_than_crossing and totals.over_crossing.count >= needed
                and _mean_above(recent, "over_crossing_bps", totals.over_crossing, 0.0, needed) is None)


_NEAR = 1e-9
"""A margin (relative to the limit) beyond :meth:`_RunningMean.error_bound` within which a running mean is summed
again over its window before judging: the decision is always the one the window's plain sum gives."""


def _mean_above(recent: list[ArmOutcome], name: str, running: _RunningMean, threshold: float,
                needed: int) -> float | None:
    """The window's mean of ``name`` when it is above ``threshold`` (with ``needed`` values at least), else None."""
    if running.count < needed:
        return None
    mean = running.mean()
    if abs(mean - threshold) <= running.error_bound() + _NEAR * (1.0 + abs(threshold)) or mean > threshold:
        # the window's own mean, summed as it always was: decides a near tie and is the value reported
        values = [v for o in recent if (v := getattr(o, name)) is not None]
        mean = sum(values) / len(values)
        if mean > threshold:
            return mean
    return None

_EPSILON = sys.float_info.epsilon


def _excluded(arm: str, limit: str, threshold: float, observed: float) -> ArmSafetyChange:
    return ArmSafetyChange(arm=arm, action="excluded", reason=f"{limit}_gt({threshold:g})", threshold=threshold,
                           observed=observed)


def wilson_lower_bound(successes: int, n: int, z: float) -> float:
    """The Wilson score interval's lower end for ``successes`` in ``n`` trials at ``z`` standard normal deviates
    (one-sided level ``Phi(z)``); ``z`` = 0 gives the ratio itself. Unlike the normal approximation it stays in
    [0, 1] and is not 0-wide at a ratio of 0 or 1 (Wilson 1927; Brown, Cai & DasGupta 2001)."""
    p = successes / n
    z2 = z * z
    centre = p + z2 / (2 * n)
    spread = z * math.sqrt(p * (1.0 - p) / n + z2 / (4 * n * n))
    return (centre - spread) / (1.0 + z2 / n)
