"""Arms of the tuner: the (maker offset, taker bias) pairs a learner chooses between, and their grid.

An arm id is derived from its values (``o2.00_b0.10``) so the same arm has the same id in every log,
state file and policy version; the grid rejects values that would collide on that id.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from router_tuner.router.routing.order import posted_offset_bps


class ArmError(ValueError):
    """An arm or grid definition is invalid (non-finite, out of bounds, duplicate)."""


def arm_id_of(maker_offset_bps: float, taker_bias: float) -> str:
    """The stable id of an arm: offset and bias rounded to two decimals."""
    return f"o{maker_offset_bps:.2f}_b{taker_bias:.2f}"


_LOOSE_ARM = re.compile(r"^[oO](?P<offset>[-+]?\d+(?:\.\d*)?)_[bB](?P<bias>[-+]?\d+(?:\.\d*)?)$")
"""An arm id however it is written (``o1_b0``, ``O1.0_B0``, with spaces around it)."""


def loose_arm_problem(text: str) -> str | None:
    """Why ``text``, an arm id written another way than the journal writes it (``o1_b0``, ``o1.00_b0.00 ``), names
    no logged arm, or None: it was scored as an arm "never taken with a fill", beside the same arm in the log."""
    loose = _LOOSE_ARM.match(text.strip())
    if loose is None:
        return None
    canonical = arm_id_of(float(loose["offset"]), float(loose["bias"]))
    return None if canonical == text else f"{text!r} is not an arm id as the journal writes them: write {canonical}"


def arm_id_of_policy(document: Mapping[str, Any], where: str) -> str:
    """The arm id of a policy document's knobs (``RouterPolicy.as_params()``, as the registry stores it).

    A rollback version is labelled ``static`` but carries real knobs, so the id comes from the knobs,
    never from the document's ``arm`` label. Raises :class:`ArmError` naming ``where`` when a knob is
    missing, not a number or out of range (a NaN offset used to name the arm ``onan_b0.00``).
    """
    try:
        knobs = document["maker_offset_bps"], document["taker_bias"]
    except KeyError as error:
        raise ArmError(f"{where}: not a RouterPolicy document (needs maker_offset_bps and taker_bias)") from error
    if any(isinstance(knob, bool) or not isinstance(knob, (int, float)) for knob in knobs):  # float("4"), float(True)
        raise ArmError(f"{where}: not a RouterPolicy document (maker_offset_bps and taker_bias must be JSON numbers, "
                       f"got {knobs[0]!r} and {knobs[1]!r})")
    offset, bias = float(knobs[0]), float(knobs[1])
    try:
        return Arm(offset, bias).arm_id
    except ArmError as error:
        raise ArmError(f"{where}: not a RouterPolicy document ({error})") from error


@dataclass(frozen=True, slots=True)
class Arm:
    """One routing choice: post at ``maker_offset_bps`` from the touch, go taker with ``taker_bias``.

    ``taker_bias`` is the probability that the router starts as taker instead of maker-first.
    """

    maker_offset_bps: float
    taker_bias: float
    arm_id: str = field(init=False)

    def __post_init__(self) -> None:
        if not math.isfinite(self.maker_offset_bps):
            raise ArmError(f"maker_offset_bps must be finite, got {self.maker_offset_bps!r}")
        if not (math.isfinite(self.taker_bias) and 0.0 <= self.taker_bias <= 1.0):
            raise ArmError(f"taker_bias must be in [0, 1], got {self.taker_bias!r}")
        object.__setattr__(self, "arm_id", arm_id_of(self.maker_offset_bps, self.taker_bias))


@dataclass(frozen=True, slots=True)
class ArmGrid:
    """The ordered set of arms a symbol's learner may choose from, inside fixed offset bounds.

    Build it with :meth:`from_values` (the Cartesian product of offsets and biases); the order of
    ``arms`` is stable (offsets, then biases, ascending) because learners index their statistics by it.

    Examples
    --------
    >>> grid = ArmGrid.from_values([0.0, 2.0], [0.0, 0.5], min_offset_bps=0.0, max_offset_bps=5.0)
    >>> grid.arm_ids
    ('o0.00_b0.00', 'o0.00_b0.50', 'o2.00_b0.00', 'o2.00_b0.50')
    >>> grid.get("o2.00_b0.50").taker_bias
    0.5
    """

    arms: tuple[Arm, ...]
    min_offset_bps: float
    max_offset_bps: float
    _index: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not (math.isfinite(self.min_offset_bps) and math.isfinite(self.max_offset_bps)):
            raise ArmError("offset bounds must be finite")
        if self.min_offset_bps > self.max_offset_bps:
            raise ArmError(f"min_offset_bps {self.min_offset_bps} > max_offset_bps {self.max_offset_bps}")
        if not self.arms:
            raise ArmError("an arm grid needs at least one arm")
        seen: set[str] = set()
        for arm in self.arms:
            self.check_in_bounds(arm)
            if arm.arm_id in seen:
                raise ArmError(f"duplicate arm {arm.arm_id}")
            seen.add(arm.arm_id)
        object.__setattr__(self, "_index", {a.arm_id: i for i, a in enumerate(self.arms)})

    @classmethod
    def from_values(
        cls,
        offsets_bps: Iterable[float],
        taker_biases: Iterable[float],
        *,
        min_offset_bps: float,
        max_offset_bps: float,
    ) -> ArmGrid:
        """Grid of every (offset, bias) pair, with taker bias 1.0 as ONE arm; raises :class:`ArmError` on bad
        or duplicate values.

        An order with taker bias 1.0 never posts, so its offset changes nothing: one arm stands for all of
        them (at the offset nearest the touch, the smaller on a tie), instead of identical arms learned
        one by one.
        """
        offsets = sorted(_unique_finite(offsets_bps, "offsets_bps"))
        biases = sorted(_unique_finite(taker_biases, "taker_biases"))
        taker_offset = min(offsets, key=lambda o: (abs(o), o))
        arms = tuple(Arm(o, b) for o, b in itertools.product(offsets, biases) if b < 1.0 or o == taker_offset)
        return cls(arms=arms, min_offset_bps=min_offset_bps, max_offset_bps=max_offset_bps)

    def check_in_bounds(self, arm: Arm) -> None:
        """Raise :class:`ArmError` when ``arm``'s offset lies outside this grid's bounds."""
        if not self.min_offset_bps <= arm.maker_offset_bps <= self.max_offset_bps:
            raise ArmError(
                f"arm {arm.arm_id}: maker_offset_bps outside [{self.min_offset_bps}, {self.max_offset_bps}]"
            )

    @property
    def arm_ids(self) -> tuple[str, ...]:
        return tuple(a.arm_id for a in self.arms)

    def index(self, arm_id: str) -> int:
        """Position of ``arm_id`` in ``arms``; raises ``KeyError`` for an arm not in the grid."""
        try:
            return self._index[arm_id]
        except KeyError:
            raise KeyError(f"arm {arm_id!r} is not in the grid") from None

    def get(self, arm_id: str) -> Arm:
        return self.arms[self.index(arm_id)]

    def __contains__(self, arm_id: object) -> bool:
        return arm_id in self._index

    def __len__(self) -> int:
        return len(self.arms)

    def __iter__(self) -> Iterator[Arm]:
        return iter(self.arms)


def _unique_finite(values: Iterable[float], name: str) -> list[float]:
    out = [float(v) for v in values]
    if not out:
        raise ArmError(f"{name} is empty")
    for v in out:
        if not math.isfinite(v):
            raise ArmError(f"{name} contains a non-finite value {v!r}")
    ids = [f"{v:.2f}" for v in out]
    if len(set(ids)) != len(ids):
        raise ArmError(f"{name} contains duplicates (at two-decimal precision): {out}")
    return out


def offsets_at_one_price(grid: ArmGrid, tick_bps: float) -> list[tuple[float, ...]]:
    """The maker offsets of ``grid``'s arms that may post, grouped where two or more rest at one price on a tick of
    ``tick_bps`` (:func:`~router.routing.order.posted_offset_bps`), nearest the touch first: on a coarse tick the
    grid is smaller than it looks."""
    by_distance: dict[float, list[float]] = {}
    for offset in sorted({a.maker_offset_bps for a in grid if a.taker_bias < 1.0}):
        by_distance.setdefault(posted_offset_bps(offset, tick_bps), []).append(offset)
    return [tuple(group) for _, group in sorted(by_distance.items()) if len(group) > 1]


def one_price_warning(symbol: str, grid: ArmGrid, tick_bps: float) -> str | None:
    """One line saying which of ``grid``'s offsets post at one price on ``symbol``, whose tick is ``tick_bps`` of
    its price, or ``None`` when every offset rests at its own price."""
    groups = offsets_at_one_price(grid, tick_bps)
    if not groups:
        return None
    listed = "; ".join(f"{', '.join(f'{d:g}' for d in group)} bps: "
                       f"{round(posted_offset_bps(group[0], tick_bps) / tick_bps)} tick(s) behind the touch"
                       for group in groups)
    return (f"{symbol}: one tick is {tick_bps:.3g} bps of its price, so tuner.json arms.maker_offsets_bps post at one "
            f"price ({listed}): those arms differ at most in where a re-price goes and split the learner's evidence; "
            f"for this market keep one offset per tick (multiples of {tick_bps:.3g} bps)")
