"""The small protocol every learner speaks, and the bookkeeping they share.

One verb pair, as in river: ``choose(context, allowed) -> Choice`` and ``update(arm_id, reward,
context)``. A :class:`Choice` always carries the probability with which the arm was chosen, because
off-policy evaluation needs it logged with every decision. Randomness lives in one ``self._rng``
(a seeded numpy ``Generator``), so a learner restored from :mod:`tuner.state` continues exactly as if
it had never stopped.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from typing import Any, ClassVar, NamedTuple

import msgspec
import numpy as np

from router_tuner.features.context import Context
from router_tuner.router.routing.order import check_tick_bps
from router_tuner.tuner.arms import Arm, ArmGrid

_ALLOWED_CACHE_SIZE = 256
"""Distinct allowed-arm sets remembered per learner (a guard against unbounded growth, not a tuning knob)."""


class StateMismatchError(ValueError):
    """A saved state does not belong to this learner (other kind, arms or parameters)."""


@dataclass(frozen=True, slots=True)
class RouteOutcome:
    """How a routed order ended, beyond its cost: what a structured learner splits the cost by.

    ``started_maker``: the order began with a post-only leg (not straight taker);
    ``maker_filled``: that leg filled the whole order, so no taker fallback was needed;
    ``fill_wait_share``: how much of its TTL the first post waited before it filled the whole order (its time to fill
    over the TTL, in [0, 1]); ``None`` when the first post did not fill it (or the TTL is not known).
    """

    started_maker: bool
    maker_filled: bool
    fill_wait_share: float | None = None

    def __post_init__(self) -> None:
        if self.maker_filled and not self.started_maker:
            raise ValueError("an order that started as taker cannot have filled on a maker leg")
        if self.fill_wait_share is not None and not (self.maker_filled and 0.0 <= self.fill_wait_share <= 1.0):
            raise ValueError(f"fill_wait_share {self.fill_wait_share!r}: a share of the TTL in [0, 1], of a post that "
                             "filled the order")


class Choice(NamedTuple):
    """An arm and the probability the learner had of choosing it (given the allowed arms).

    A named tuple rather than a frozen dataclass: built once per decision, it costs half as much.
    """

    arm: Arm
    propensity: float


class RngState(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The exact state of a numpy ``PCG64`` generator."""

    bit_generator: str
    state: int
    inc: int
    has_uint32: int
    uinteger: int


class LearnerState(msgspec.Struct, frozen=True, forbid_unknown_fields=True, tag_field="kind"):
    """Fields every saved learner has; subclasses (one per learner, tagged by kind) add their own."""

    arm_ids: tuple[str, ...]
    params: dict[str, float]
    rng: RngState
    counts: tuple[float, ...]


class Learner(ABC):
    """Base of the tuner's learners: validation, burn-in, tie-breaking, counts and the rng.

    ``counts`` are effective sample sizes per arm: whole numbers until :meth:`discount_evidence`
    scales them down to re-open exploration after a drift.
    """

    kind: ClassVar[str]
    state_type: ClassVar[type[LearnerState]]
    requires_context: ClassVar[bool] = False
    needs_outcome: ClassVar[bool] = False
    prices_untried_arms: ClassVar[bool] = False
    """True when :meth:`expected_reward` is an informed estimate for every arm, tried or not (a model
    shared across arms), so the exploration budget may price exploring by it."""

    def __init__(self, grid: ArmGrid, *, burn_in: int, seed: int) -> None:
        if burn_in < 0:
            raise ValueError(f"burn_in must be >= 0, got {burn_in}")
        self._grid = grid
        self._arms = grid.arms
        self._burn_in = burn_in
        self._rng = np.random.default_rng(seed)
        self._uniform = self._rng.random  # bound once: the hot paths draw one double at a time
        self._counts = [0.0] * len(grid)
        self._all_arms = tuple(range(len(grid)))
        self._positions = {arm_id: i for i, arm_id in enumerate(grid.arm_ids)}
        self._allowed_cache: dict[frozenset[str] | tuple[str, ...], tuple[int, ...]] = {}
        self._last_allowed: tuple[object, tuple[int, ...]] = (object(), ())  # matches no allowed set
        self._index_arrays: dict[tuple[int, ...], np.ndarray] = {}
        self._under_burn_in = len(grid) if burn_in > 0 else 0

    @property
    def grid(self) -> ArmGrid:
        return self._grid

    def counts(self) -> dict[str, float]:
        """Effective number of rewards learned per arm."""
        return dict(zip(self._grid.arm_ids, self._counts, strict=True))

    def choose(self, context: Context | None = None, allowed: Collection[str] | None = None) -> Choice:
        """Pick an arm among ``allowed`` (all arms when ``None``), with its propensity.

        Arms below ``burn_in`` samples are tried first, uniformly at random among themselves.
        """
        if context is None and self.requires_context:
            self._check_context(context)
        idx = self._all_arms if allowed is None else self._allowed_indices(allowed)
        if self._under_burn_in:
            counts, burn_in = self._counts, self._burn_in
            under = [i for i in idx if counts[i] < burn_in]
            if under:
                return Choice(self._arms[under[self._draw_index(len(under))]], 1.0 / len(under))
        i, propensity = self._choose(idx, context)
        return Choice(self._arms[i], propensity)

    def update(self, arm_id: str, reward: float, context: Context | None = None,
               outcome: RouteOutcome | None = None) -> None:
        """Learn one reward (``-cost_bps``) for ``arm_id``; filter rewards with ``RewardFilter`` first.

        ``outcome`` (how the order ended) is required by a learner with ``needs_outcome`` and ignored
        by the others.
        """
        if context is None and self.requires_context:
            self._check_context(context)
        if not math.isfinite(reward):
            raise ValueError(f"reward must be finite, got {reward!r}")
        if outcome is None and self.needs_outcome:
            raise ValueError(f"{self.kind} learner learns from how an order ended: pass its RouteOutcome")
        try:
            i = self._positions[arm_id]
        except KeyError:
            i = self._grid.index(arm_id)  # raises the grid's error naming the arm
        self._update(i, float(reward), context, outcome)
        count = self._counts[i] + 1.0
        self._counts[i] = count
        if count - 1.0 < self._burn_in <= count:
            self._under_burn_in -= 1

    def expected_reward(self, arm_id: str, context: Context | None = None) -> float | None:
        """The learner's current estimate of ``arm_id``'s reward, ``None`` before any evidence."""
        self._check_context(context)
        return self._expected_reward(self._grid.index(arm_id), context)

    def expected_rewards(self, arm_ids: Iterable[str], context: Context | None = None, *,
                         with_evidence: bool = False) -> dict[str, float]:
        """:meth:`expected_reward` of each of ``arm_ids`` that has an estimate (only those with a learned reward when
        ``with_evidence``), in one call: the tuner reads every arm's after each outcome."""
        self._check_context(context)
        positions, counts, out = self._positions, self._counts, {}
        for arm_id in arm_ids:
            i = positions.get(arm_id)
            if i is None:
                i = self._grid.index(arm_id)  # raises the grid's error naming the arm
            if with_evidence and counts[i] <= 0:
                continue
            value = self._expected_reward(i, context)
            if value is not None:
                out[arm_id] = value
        return out

    def fill_residual(self, arm_id: str, outcome: RouteOutcome) -> float | None:
        """Whether the post-only leg filled (1/0) minus the probability the learner predicted for it;
        ``None`` for a learner that does not model fills, or an order that started as taker."""
        return None

    def set_tick_bps(self, tick_bps: float) -> None:
        """Tell the learner that one price tick of its symbol is ``tick_bps`` of the touch. A learner whose model is
        a function of the offset (the structured one) places each offset where its order really rests
        (:func:`~router.routing.order.posted_offset_bps`); one that learns each arm on its own only checks it.
        Raises ``ValueError`` on a tick that is not positive and finite."""
        check_tick_bps(tick_bps)

    def discount_evidence(self, keep_fraction: float) -> None:
        """Scale all accumulated evidence by ``keep_fraction`` in (0, 1]: widens exploration again (the structured
        learner's bootstrap hardly: see its ``_discount``)."""
        if not (math.isfinite(keep_fraction) and 0.0 < keep_fraction <= 1.0):
            raise ValueError(f"keep_fraction must be in (0, 1], got {keep_fraction!r}")
        self._counts = [c * keep_fraction for c in self._counts]
        self._count_under_burn_in()
        self._discount(keep_fraction)

    @abstractmethod
    def params(self) -> dict[str, float]:
        """The constructor parameters that shape learning (checked when a state is restored)."""

    @abstractmethod
    def to_state(self) -> LearnerState: ...

    def check_state(self, state: LearnerState) -> None:
        """Raise :class:`StateMismatchError` unless ``state`` fits this learner; changes nothing."""
        if not isinstance(state, self.state_type):
            raise StateMismatchError(f"{self.kind} learner cannot load a {type(state).__name__}")
        if state.arm_ids != self._grid.arm_ids:
            raise StateMismatchError(f"saved arms {state.arm_ids} differ from grid {self._grid.arm_ids}")
        if state.params != self.params():
            raise StateMismatchError(f"saved params {state.params} differ from configured {self.params()}")
        if state.rng.bit_generator != self._rng.bit_generator.state["bit_generator"]:
            raise StateMismatchError(f"saved random generator is {state.rng.bit_generator}")
        if len(state.counts) != len(self._grid):
            raise StateMismatchError(
                f"saved counts have {len(state.counts)} arms, the grid has {len(self._grid)}"
            )
        self._check_own_state(state)

    def load_state(self, state: LearnerState) -> None:
        """Replace this learner's evidence and rng with ``state``'s; raises :class:`StateMismatchError`."""
        self.check_state(state)
        self._rng.bit_generator.state = {
            "bit_generator": state.rng.bit_generator,
            "state": {"state": state.rng.state, "inc": state.rng.inc},
            "has_uint32": state.rng.has_uint32,
            "uinteger": state.rng.uinteger,
        }
        self._counts = [float(c) for c in state.counts]
        self._count_under_burn_in()
        self._apply_own_state(state)

    @abstractmethod
    def _check_own_state(self, state: Any) -> None:
        """Check the learner-specific fields of a state of type ``state_type``."""

    @abstractmethod
    def _apply_own_state(self, state: Any) -> None:
        """Load the learner-specific fields of a checked state of type ``state_type``."""

    @abstractmethod
    def _choose(self, idx: tuple[int, ...], context: Context | None) -> tuple[int, float]:
        """The arm among ``idx`` (ascending grid positions, none under burn-in) and its propensity."""

    @abstractmethod
    def _update(self, i: int, reward: float, context: Context | None, outcome: RouteOutcome | None) -> None: ...

    @abstractmethod
    def _expected_reward(self, i: int, context: Context | None) -> float | None: ...

    @abstractmethod
    def _discount(self, keep_fraction: float) -> None: ...

    def _base_state(self) -> dict[str, Any]:
        raw = self._rng.bit_generator.state
        rng = RngState(
            bit_generator=raw["bit_generator"],
            state=raw["state"]["state"],
            inc=raw["state"]["inc"],
            has_uint32=raw["has_uint32"],
            uinteger=raw["uinteger"],
        )
        return {
            "arm_ids": self._grid.arm_ids,
            "params": self.params(),
            "rng": rng,
            "counts": tuple(self._counts),
        }

    def _check_context(self, context: Context | None) -> None:
        if self.requires_context and context is None:
            raise ValueError(f"{self.kind} learner needs a context")

    def _count_under_burn_in(self) -> None:
        self._under_burn_in = sum(1 for c in self._counts if c < self._burn_in)

    def _allowed_indices(self, allowed: Collection[str]) -> tuple[int, ...]:
        """The grid positions of ``allowed``, ascending; cached per distinct hashable set (the tuner passes the
        same few sets again and again), so a decision does not re-validate them; the same immutable set as the last
        decision's (the tuner's prepared options) is not even hashed again."""
        last, last_idx = self._last_allowed
        if allowed is last:
            return last_idx
        key = allowed if isinstance(allowed, (frozenset, tuple)) else frozenset(allowed)
        cached = self._allowed_cache.get(key)
        if cached is not None:
            self._last_allowed = (key, cached)
            return cached
        if not allowed:
            raise ValueError("allowed arm set is empty: nothing to choose from")
        unknown = [a for a in allowed if a not in self._grid]
        if unknown:
            raise KeyError(f"allowed arms not in the grid: {sorted(unknown)}")
        if len(self._allowed_cache) >= _ALLOWED_CACHE_SIZE:
            self._allowed_cache.clear()
        idx = self._allowed_cache[key] = tuple(sorted({self._grid.index(a) for a in allowed}))
        self._last_allowed = (key, idx)
        return idx

    def _index_array(self, idx: tuple[int, ...]) -> np.ndarray:
        """Grid positions ``idx`` as an int64 array for a compiled kernel, built once per allowed set."""
        array = self._index_arrays.get(idx)
        if array is None:
            if len(self._index_arrays) >= _ALLOWED_CACHE_SIZE:
                self._index_arrays.clear()
            array = self._index_arrays[idx] = np.array(idx, dtype=np.int64)
        return array

    def _draw_index(self, n: int) -> int:
        """A uniform draw from ``range(n)``: one double scaled by ``n`` (a bias below n / 2**53, at a third of
        ``Generator.integers``' cost per call; the product stays below ``n`` in floating point)."""
        return int(self._uniform() * n)

    def _argmax_ties(self, idx: tuple[int, ...], scores: list[float]) -> tuple[int, int]:
        """The best of ``idx`` by ``scores`` (same order; ties broken at random) and how many tied."""
        best, tied = -math.inf, []
        for i, score in zip(idx, scores, strict=True):
            if score > best:
                best, tied = score, [i]
            elif score == best:
                tied.append(i)
        return (tied[self._draw_index(len(tied))] if len(tied) > 1 else tied[0]), len(tied)


class MomentsState(LearnerState, frozen=True):
    """Fields of a learner whose evidence is per-arm reward moments (:class:`MomentsLearner`)."""

    means: tuple[float, ...]
    m2: tuple[float, ...]


class ArmMoments:
    """Per-arm running mean and sum of squared deviations (Welford), with fractional weights.

    Plain lists of floats: at a few dozen arms, numpy's per-call overhead costs more than the arithmetic.
    """

    def __init__(self, n_arms: int) -> None:
        self.means = [0.0] * n_arms
        self.m2 = [0.0] * n_arms

    def add(self, i: int, x: float, count_after: float) -> None:
        """Add ``x`` to arm ``i`` whose effective count, this sample included, is ``count_after``."""
        mean = self.means[i]
        delta = x - mean
        mean += delta / count_after
        self.means[i] = mean
        self.m2[i] += delta * (x - mean)

    def discount(self, keep_fraction: float) -> None:
        self.m2 = [m * keep_fraction for m in self.m2]

    def check(self, means: tuple[float, ...], m2: tuple[float, ...]) -> None:
        if len(means) != len(self.means) or len(m2) != len(self.m2):
            raise StateMismatchError("saved moments do not match the number of arms")

    def load(self, means: tuple[float, ...], m2: tuple[float, ...]) -> None:
        self.check(means, m2)
        self.means = [float(m) for m in means]
        self.m2 = [float(m) for m in m2]


class MomentsLearner(Learner):
    """A learner whose evidence is each arm's reward moments: one :class:`ArmMoments` and its state.

    The update, the drift discount and the saving of the moments are the same for every such learner
    (UCB, Thompson, epsilon-greedy), so they live here once; subclasses add their choice rule.
    """

    state_type: ClassVar[type[MomentsState]]

    def __init__(self, grid: ArmGrid, *, burn_in: int, seed: int) -> None:
        super().__init__(grid, burn_in=burn_in, seed=seed)
        self._moments = ArmMoments(len(grid))

    def _update(self, i: int, reward: float, context: Context | None, outcome: RouteOutcome | None) -> None:
        self._moments.add(i, reward, self._counts[i] + 1.0)

    def _expected_reward(self, i: int, context: Context | None) -> float | None:
        """The sample mean of arm ``i``'s rewards, ``None`` before its first."""
        return self._moments.means[i] if self._counts[i] > 0 else None

    def _discount(self, keep_fraction: float) -> None:
        self._moments.discount(keep_fraction)

    def _moments_state(self) -> dict[str, Any]:
        """The base state plus the moments: the fields of a :class:`MomentsState`."""
        return {
            **self._base_state(),
            "means": tuple(self._moments.means),
            "m2": tuple(self._moments.m2),
        }

    def _check_own_state(self, state: MomentsState) -> None:
        self._moments.check(state.means, state.m2)

    def _apply_own_state(self, state: MomentsState) -> None:
        self._moments.load(state.means, state.m2)
