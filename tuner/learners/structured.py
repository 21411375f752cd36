"""Structured Thompson sampling: the cost of posting at offset d is learned in pieces shared across offsets.

An arm (offset d, taker bias b) costs ``b * C_taker + (1 - b) * [p(d) C_fill(d) + (1 - p(d)) C_fallback(d)]``:
the probability that the post-only leg fills the order within its TTL, the cost when it does (the
maker fee minus the price improvement, plus whatever the re-prices gave away) and the cost when it does
not (the taker fallback after the market ran away). Each piece is a smooth function of d, so an order
routed at one offset teaches the learner about its neighbours: the fill probability is a logistic curve
in d (never increasing with d), the two conditional costs are lines in d, and each offset's own
evidence is shrunk towards the curve by ``shrinkage`` pseudo-observations. With its own data an offset
follows its data; without, the curve speaks for it. Taker bias 1.0 is one arm whatever its offset.

Exploration is Thompson sampling by the online bootstrap (Eckles & Kaptein 2014): ``replicas`` copies
of the statistics, each fed every outcome with a Poisson(1) weight. A decision picks one replica at
random and routes the arm that replica expects to be cheapest, so the propensity is exact and cheap:
the share of replicas whose cheapest allowed arm is the chosen one. Each replica has its own prior fill
probability (randomized priors, Osband et al. 2018), so the replicas also disagree where no evidence has reached
yet: the bootstrap alone resamples evidence only. Every statistic is discounted by
``1 - 1/forgetting_window`` per outcome, so the arms in use follow a market that changes. An arm no longer routed
is not tried again for that: its evidence shrinks, but the replicas' agreement about it does not (until the priors
outweigh it). With ``fill_speed_window``, how fast posts fill lately against the learner's memory scales the fill
hazard the curve gives every offset (:mod:`tuner.learners.fill_speed`): a market turning busy shows in fill times
long before the posts deeper than the one routed are tried again, and their curve then says they fill more.

References
----------
Cont, R. & Kukanov, A. (2017). Optimal order placement in limit order markets. Quantitative Finance 17(1).
Eckles, D. & Kaptein, M. (2014). Thompson sampling with the online bootstrap. arXiv:1410.4009.
Garivier, A. & Moulines, E. (2011). On upper-confidence bound policies for switching bandit problems.
Osband, I., Aslanides, J. & Cassirer, A. (2018). Randomized prior functions for deep reinforcement learning. NeurIPS.
"""

from __future__ import annotations

import math
from collections.abc import Collection
from typing import Any

import numpy as np

from router_tuner.features.context import Context
from router_tuner.router.routing.order import posted_offset_bps
from router_tuner.tuner.arms import ArmGrid
from router_tuner.tuner.learners import structured_layout
from router_tuner.tuner.learners.base import Learner, LearnerState, RouteOutcome, StateMismatchError
from router_tuner.tuner.learners.kernels import CompiledKernels, entry_point

_MAKER_STATS = ("posted", "filled", "fill_cost", "fallback_cost")
"""Per replica and offset, the saved state's names: posts, fills, the total cost of the fills and of the fallbacks
(the rows of the workspace's ``stats``)."""
MIN_PRIOR_STRENGTH = 1e-6
MAX_PRIOR_STRENGTH = 1e6
MIN_PRIOR_FILL_PROBABILITY = 1e-6
"""Bounds of the priors' weight and fill probability: before any evidence a fitted line is its prior's alone, and
its normal equations' determinant is the square of the prior's weight (``prior_strength`` times p (1 - p) for the
fill probability); below these it underflows to zero and every expected cost turns NaN."""
MAX_PRIOR_LOGIT_SPREAD = 10.0
"""The widest spread of the replicas' prior fill logits either side of the prior's (a fill probability of 0.99995 or
its complement at 0.5): the weights p (1 - p) stay far above where the prior line's fit would underflow."""
_CHOICE_SLOTS = 4
"""Allowed sets whose per-replica choices a refit recomputes ahead of the next decision (the tuner reuses a few)."""
_UPDATES_DRAWN_AHEAD = 64
"""Uniforms are drawn for this many outcomes' bootstrap weights in one call (one call per outcome cost 0.6 us of a
7 us update); decisions read theirs from the same buffer, in the order a draw at a time would have given them."""
_POSTED_SHIFT_TOLERANCE_BPS = 0.1
"""A tick that moves no offset further than this from its nominal distance leaves the fit at the nominal offsets: the
shift is below the resolution the fills are fitted at, and applying it only reshuffles the run (measured on
ETHUSD_PERP, whose 0.04 bps tick moves 1 bp to 1.02: over holdout seeds 3-8 +0.077 bps against static with the
shift, +0.044 without, per seed up to 0.10 either way). A coarse tick moves them by whole bps."""
_FOLD_SCALE_BELOW = 1e-6
"""The pending forgetting factor is folded into the statistics below this, long before it could underflow."""


class StructuredState(LearnerState, frozen=True, tag="structured"):
    """Per replica (rows) and offset (columns) discounted statistics, flattened row-major."""

    posted: tuple[float, ...]
    filled: tuple[float, ...]
    fill_cost: tuple[float, ...]
    fallback_cost: tuple[float, ...]
    taker: tuple[float, ...]
    taker_cost: tuple[float, ...]
    fill_speed: tuple[float, ...] = ()
    """The fill-speed tallies (:mod:`tuner.learners.fill_speed`), row-major (empty when the learner does not track
    fill speed)."""


class StructuredThompson(CompiledKernels, Learner):
    """Thompson sampling over a shared model of fill probability, fill cost and fallback cost per offset.

    Parameters
    ----------
    grid
        The arms; a taker bias strictly between 0 and 1 is learned as the mixture it is.
    replicas
        Bootstrap replicas (>= 2); the propensity resolution is 1 / replicas.
    forgetting_window
        Effective memory in outcomes: every statistic is multiplied by ``1 - 1/forgetting_window`` per
        outcome (``inf`` never forgets).
    shrinkage
        Pseudo-observations of the fitted curve added to each offset's own evidence.
    maker_fee_bps, taker_fee_bps
        The symbol's fee schedule: the priors follow from it (a taker leg costs the taker fee, a fill at the
        touch the maker fee and one bp less per bp further, a fallback the taker fee plus
        ``prior_fallback_drift_bps``), each worth ``prior_strength`` observations until evidence arrives.
    prior_fallback_drift_bps
        Prior adverse move of the market before a maker leg falls back (bps, >= 0).
    prior_fill_probability
        Prior fill probability of a post-only leg, worth ``prior_strength`` posts.
    prior_fill_logit_spread
        The replicas' prior fill probabilities are spread evenly over this many logit units either side of
        ``prior_fill_probability``'s (0: one prior for all).
    prior_strength
        Weight of the priors, in observations (> 0).
    burn_in
        Outcomes per arm before sampling starts (arms below are tried first).
    seed
        Seed of the learner's one random generator.
    fill_speed_window
        The short memory, in outcomes, of how fast first posts fill (:mod:`tuner.learners.fill_speed`); ``None``:
        the fill curve is used as fitted.

    Examples
    --------
    >>> from router_tuner.tuner.arms import ArmGrid
    >>> from router_tuner.tuner.learners.base import RouteOutcome
    >>> grid = ArmGrid.from_values([0.0, 2.0], [0.0, 1.0], min_offset_bps=0.0, max_offset_bps=5.0)
    >>> grid.arm_ids
    ('o0.00_b0.00', 'o0.00_b1.00', 'o2.00_b0.00')
    >>> learner = StructuredThompson(grid, replicas=16, forgetting_window=math.inf, shrinkage=5.0,
    ...                              maker_fee_bps=2.0, taker_fee_bps=5.0, prior_fallback_drift_bps=1.0,
    ...                              prior_fill_probability=0.5, prior_fill_logit_spread=0.0, prior_strength=1.0,
    ...                              burn_in=2, seed=7)
    >>> rng = np.random.default_rng(1)
    >>> for _ in range(300):
    ...     arm = learner.choose().arm
    ...     if arm.taker_bias == 1.0:
    ...         learner.update(arm.arm_id, -5.0, outcome=RouteOutcome(started_maker=False, maker_filled=False))
    ...     else:   # the touch fills 80% at 2 bps, 2 bps behind it fills 20% at 0 bps; a fallback costs 6
    ...         filled = rng.random() < (0.8 if arm.maker_offset_bps == 0.0 else 0.2)
    ...         cost = (2.0 - arm.maker_offset_bps) if filled else 6.0
    ...         learner.update(arm.arm_id, -cost, outcome=RouteOutcome(started_maker=True, maker_filled=filled))
    >>> choice = learner.choose()
    >>> choice.arm.arm_id, choice.propensity > 0.8
    ('o0.00_b0.00', True)
    """

    kind = "structured"
    state_type = StructuredState
    _KERNELS = ("_learn", "_refit", "_add_slot")
    needs_outcome = True
    prices_untried_arms = True

    def __init__(self, grid: ArmGrid, *, replicas: int, forgetting_window: float, shrinkage: float,
                 maker_fee_bps: float, taker_fee_bps: float, prior_fallback_drift_bps: float,
                 prior_fill_probability: float, prior_fill_logit_spread: float, prior_strength: float, burn_in: int,
                 seed: int, fill_speed_window: float | None = None) -> None:
        super().__init__(grid, burn_in=burn_in, seed=seed)
        if replicas < 2:
            raise ValueError(f"replicas must be >= 2, got {replicas}")
        if not forgetting_window > 1.0:
            raise ValueError(f"forgetting_window must be > 1 (or inf), got {forgetting_window!r}")
        if not (math.isfinite(shrinkage) and shrinkage >= 0.0):
            raise ValueError(f"shrinkage must be finite and >= 0, got {shrinkage!r}")
        for name, value in (("maker_fee_bps", maker_fee_bps), ("taker_fee_bps", taker_fee_bps)):
            if not math.isfinite(value):
                raise ValueError(f"{name} must be finite, got {value!r}")
        if not (math.isfinite(prior_fallback_drift_bps) and prior_fallback_drift_bps >= 0.0):
            raise ValueError(f"prior_fallback_drift_bps must be finite and >= 0, got {prior_fallback_drift_bps!r}")
        if not MIN_PRIOR_FILL_PROBABILITY <= prior_fill_probability <= 1.0 - MIN_PRIOR_FILL_PROBABILITY:
            raise ValueError(f"prior_fill_probability must be in [{MIN_PRIOR_FILL_PROBABILITY}, "
                             f"{1.0 - MIN_PRIOR_FILL_PROBABILITY}], got {prior_fill_probability!r}")
        if not (math.isfinite(prior_fill_logit_spread) and 0.0 <= prior_fill_logit_spread <= MAX_PRIOR_LOGIT_SPREAD):
            raise ValueError(f"prior_fill_logit_spread must be in [0, {MAX_PRIOR_LOGIT_SPREAD}], "
                             f"got {prior_fill_logit_spread!r}")
        if fill_speed_window is not None and not 1.0 < fill_speed_window < forgetting_window:
            raise ValueError(f"fill_speed_window must be > 1 and shorter than forgetting_window "
                             f"({forgetting_window!r}), got {fill_speed_window!r}")
        if not (math.isfinite(prior_strength) and MIN_PRIOR_STRENGTH <= prior_strength <= MAX_PRIOR_STRENGTH):
            raise ValueError(f"prior_strength must be in [{MIN_PRIOR_STRENGTH}, {MAX_PRIOR_STRENGTH}], "
                             f"got {prior_strength!r}")
        self._replicas = replicas
        self._window = float(forgetting_window)
        self._keep = 1.0 - 1.0 / self._window
        self._shrinkage = float(shrinkage)
        self._maker_fee, self._taker_fee = float(maker_fee_bps), float(taker_fee_bps)
        self._fallback_drift = float(prior_fallback_drift_bps)
        self._prior_fill = float(prior_fill_probability)
        self._prior_strength = float(prior_strength)
        self._offsets = np.array(sorted({a.maker_offset_bps for a in grid if a.taker_bias < 1.0}), dtype=float)
        self._column_of = {d: j for j, d in enumerate(self._offsets.tolist())}
        self._arm_columns = [self._column_of.get(a.maker_offset_bps, 0) if a.taker_bias < 1.0 else 0 for a in grid]
        self._prior_spread = float(prior_fill_logit_spread)
        self._fill_speed_window = fill_speed_window
        keeps = ({} if fill_speed_window is None  # the fill-speed memories' keep factors (tuner.learners.fill_speed)
                 else {"keep_slow": self._keep, "keep_fast": 1.0 - 1.0 / fill_speed_window})
        self._space = structured_layout.workspace(
            replicas=replicas, offsets=self._offsets, arm_column=self._arm_columns,
            arm_bias=np.array([a.taker_bias for a in grid], dtype=float),
            prior_rows=self._prior_rows(), slots=_CHOICE_SLOTS,
            prior_strength=self._prior_strength, taker_fee=self._taker_fee, shrinkage=self._shrinkage,
            uniforms=replicas * _UPDATES_DRAWN_AHEAD, **keeps)
        self._uniform_count = self._space.uniforms.size
        self._next_uniform = self._uniform_count  # none drawn ahead yet
        self._taker_only = [a.taker_bias >= 1.0 for a in grid]
        self._scale_factor = 1.0
        # The allowed sets decisions use, one row each, whose replica choices the kernels keep current: the tuner
        # passes a few sets again and again, so a decision is one draw and two lookups.
        self._slot_of: dict[tuple[int, ...], int] = {}
        self._last_slot: tuple[tuple[int, ...] | None, int] = (None, 0)  # the last set decided in and its row
        self._bind_kernels()
        self._refresh()

    def _prior_rows(self) -> np.ndarray:
        """Each replica's prior lines as moments, shape (replicas, pieces, 5): the costs' priors are the fee
        schedule's; the fill probability's intercept is spread evenly over ``prior_fill_logit_spread`` either side of
        ``prior_fill_probability``'s logit (randomized prior functions, Osband et al. 2018). The bootstrap varies
        only what evidence says; with one prior for all, evidence at one offset left every replica the same slope
        through it (the prior's), so the offsets beside the one routed were never tried: synthetic flat fees (maker =
        taker = 4 bps), every replica stayed 2 bps deeper than the best offset until the safety bounds excluded it."""
        replicas = self._replicas
        quantiles = (2.0 * np.arange(replicas) + 1.0) / replicas - 1.0  # evenly in (-1, 1), symmetric
        fill_logits = math.log(self._prior_fill / (1.0 - self._prior_fill)) + self._prior_spread * quantiles
        fill = 1.0 / (1.0 + np.exp(-fill_logits))
        priors = np.zeros((replicas, structured_layout.PIECES, 2))
        priors[:, 0, 0] = fill_logits
        priors[:, 1] = self._maker_fee, -1.0
        priors[:, 2] = self._taker_fee + self._fallback_drift, 0.0
        strengths = self._prior_strength * np.ones((replicas, structured_layout.PIECES))
        strengths[:, 0] *= fill * (1.0 - fill)
        return _prior_line_moments(priors, strengths)

    def _bind_kernels(self) -> None:
        from router_tuner.tuner.learners import structured_kernel
        self._learn, self._refit, self._add_slot = (entry_point(structured_kernel.learn),
                                                    entry_point(structured_kernel.refresh),
                                                    entry_point(structured_kernel.add_slot))

    def params(self) -> dict[str, float]:
        return {"replicas": float(self._replicas), "forgetting_window": self._window, "shrinkage": self._shrinkage,
                "maker_fee_bps": self._maker_fee, "taker_fee_bps": self._taker_fee,
                "prior_fallback_drift_bps": self._fallback_drift, "prior_fill_probability": self._prior_fill,
                "prior_fill_logit_spread": self._prior_spread,
                "prior_strength": self._prior_strength, "burn_in": float(self._burn_in),
                "fill_speed_window": 0.0 if self._fill_speed_window is None else float(self._fill_speed_window)}

    def expected_costs_bps(self) -> np.ndarray:
        """Each replica's expected cost of each arm, shape (replicas, arms): the posterior sample."""
        return self._space.costs.copy()

    @property
    def fill_level(self) -> float:
        """How many times faster than the learner's memory says posts fill lately (1: as remembered, and always
        without fill speed; :mod:`tuner.learners.fill_speed`)."""
        return float(self._space.floats[structured_layout.FILL_LEVEL])

    def fill_probability(self, offset_bps: float) -> float:
        """The posterior mean probability that a post at ``offset_bps`` (a grid offset) fills in its TTL."""
        column = self._column_of.get(offset_bps)
        if column is None:
            raise KeyError(f"{offset_bps} bps is not a maker offset of the grid {self._offsets.tolist()}")
        if self._fill_mean is None:
            self._fill_mean = (self._space.p_fill.sum(axis=0) / self._replicas).tolist()
        return self._fill_mean[column]

    # --- Learner hooks ---------------------------------------------------------------------------

    def set_tick_bps(self, tick_bps: float) -> None:
        """Fit the shared curves at the distances the grid's offsets really post at on a tick of ``tick_bps``.

        On a coarse tick the nominal offsets are not where the orders rest: on a 5 bps tick, 0.5, 1, 2 and 4 bps all
        post one tick (5 bps) behind the touch. Fitted at the nominal offsets, the fill curve spread the step
        between the touch and one tick behind over 0-4 bps and priced the touch from the deeper offsets' fills
        (recording BTCUSDT re-quoted on a 5 bps tick: 0.16 for the touch against 0.44 measured, most orders
        routed one tick behind). Each offset keeps its own evidence (a re-price from 0.5 bps joins the touch,
        from 1 bp it stays a tick behind); offsets that post at one price share the curves' value there.
        """
        posted = np.array([posted_offset_bps(d, tick_bps) for d in self._offsets.tolist()], dtype=float)
        if np.max(np.abs(posted - self._offsets), initial=0.0) <= _POSTED_SHIFT_TOLERANCE_BPS:
            posted = self._offsets
        if not np.array_equal(posted, self._space.offsets):
            self._space.offsets[:] = posted
            self._refresh()

    def fill_residual(self, arm_id: str, outcome: RouteOutcome) -> float | None:
        if not outcome.started_maker:
            return None
        arm = self._grid.get(arm_id)
        return float(outcome.maker_filled) - self.fill_probability(arm.maker_offset_bps)

    def choice_probabilities(self, allowed: Collection[str] | None = None) -> dict[str, float]:
        """The exact probability of each allowed arm at the next sampled decision (after burn-in): the
        share of replicas that expect it to be cheapest. They sum to one."""
        idx = self._all_arms if allowed is None else self._allowed_indices(allowed)
        shares = self._space.slot_shares[self._slot(idx)]
        return {self._arms[i].arm_id: float(shares[i]) / self._replicas for i in idx}

    def _choose(self, idx: tuple[int, ...], context: Context | None) -> tuple[int, float]:
        last, slot = self._last_slot
        if idx is not last:  # the tuner passes the same tuple again and again: not hashed again
            slot = self._slot(idx)
            self._last_slot = (idx, slot)
        space = self._space
        drawn = self._next_uniform  # _draw_index, inline: one call less on every decision
        if drawn >= self._uniform_count:
            self._draw_ahead()
            drawn = 0
        self._next_uniform = drawn + 1
        replicas = self._replicas
        acting = space.slot_best.item(slot, int(space.uniforms.item(drawn) * replicas))  # item(): a Python int
        return acting, space.slot_shares.item(slot, acting) / replicas

    def _slot(self, idx: tuple[int, ...]) -> int:
        """The row holding each replica's cheapest arm among ``idx`` and how many replicas pick each arm (indexed
        by grid position), kept current by every refit."""
        slot = self._slot_of.get(idx)
        return self._new_slot(idx) if slot is None else slot

    def _new_slot(self, idx: tuple[int, ...]) -> int:
        """A row for a new allowed set: a free one or the oldest set's, filled from the current fit."""
        if len(self._slot_of) < _CHOICE_SLOTS:
            slot = len(self._slot_of)
        else:
            slot = self._slot_of.pop(next(iter(self._slot_of)))
            self._last_slot = (None, 0)  # its row may be the one reused
        self._slot_of[idx] = slot
        space = self._space
        space.slot_arms[slot, :len(idx)] = idx
        space.slot_sizes[slot] = len(idx)
        self._add_slot(space.floats, space.ints, slot)
        return slot

    def _update(self, i: int, reward: float, context: Context | None, outcome: RouteOutcome | None) -> None:
        assert outcome is not None  # Learner.update refuses None for a learner that needs_outcome
        started_maker = outcome.started_maker
        if started_maker and self._taker_only[i]:
            raise ValueError(f"arm {self._arms[i].arm_id} is taker only: it cannot start as maker")
        scale = self._scale_factor = self._scale_factor * self._keep  # _forget, inline: on every outcome
        if scale < _FOLD_SCALE_BELOW:
            self._fold_forgetting()
        space = self._space
        first = self._next_uniform
        if first + self._replicas > self._uniform_count:
            self._draw_ahead()
            first = 0
        self._next_uniform = first + self._replicas
        wait = outcome.fill_wait_share
        self._learn(space.floats, space.ints, self._scale_factor, self._arm_columns[i], started_maker,
                    outcome.maker_filled, -reward, first, -1.0 if wait is None else wait)
        self._fill_mean = self._mean_costs = None

    def _draw_index(self, n: int) -> int:
        """A uniform draw from ``range(n)``, read from the draws made ahead (see :meth:`Learner._draw_index`)."""
        if self._next_uniform >= self._uniform_count:
            self._draw_ahead()
        u = self._space.uniforms.item(self._next_uniform)
        self._next_uniform += 1
        return int(u * n)

    def _draw_ahead(self) -> None:
        """Refill the draws ahead from the first one not used: the generator is first moved back over the unused
        ones, so the learner's draws are one sequence whatever the buffer's size."""
        self._give_back_unused_draws()
        self._rng.random(out=self._space.uniforms)
        self._next_uniform = 0

    def _give_back_unused_draws(self) -> None:
        """Move the generator back over the draws made ahead and not used (a saved state then holds the generator
        where this learner's next draw comes from, and a restore continues the same sequence)."""
        unused = self._space.uniforms.size - self._next_uniform
        if unused:
            self._rng.bit_generator.advance(-unused)
            self._next_uniform = self._space.uniforms.size

    def _expected_reward(self, i: int, context: Context | None) -> float | None:
        """Minus the mean over replicas of the arm's expected cost: informed for untried arms too."""
        if self._mean_costs is None:
            self._mean_costs = (self._space.costs.sum(axis=0) / self._replicas).tolist()
        return -self._mean_costs[i]

    def _discount(self, keep_fraction: float) -> None:
        """Every statistic times ``keep_fraction``. Unlike the other learners' discount this hardly widens
        exploration: the replicas' spread is that of the evidence they resample, not of its weight, so only the weak
        priors gain a share (widening the replicas about their mean on a drift alarm was measured worse: README, "The
        tuner")."""
        self._forget(keep_fraction)
        self._refresh()

    def to_state(self) -> StructuredState:
        self._give_back_unused_draws()
        self._fold_forgetting()  # the saved numbers, all replicas refitted, are the ones this learner goes on with:
        # a restore is exact
        stats = {name: tuple(values.ravel().tolist()) for name, values in self._true_stats().items()}
        speed = () if self._fill_speed_window is None else tuple(self._space.fill_speed.ravel().tolist())
        return StructuredState(**self._base_state(), **stats, fill_speed=speed)

    def _check_own_state(self, state: Any) -> None:
        for name, values in self._true_stats().items():
            if len(getattr(state, name)) != values.size:
                raise StateMismatchError(f"saved {name} has {len(getattr(state, name))} values, "
                                         f"expected {values.size}")
        expected = 0 if self._fill_speed_window is None else self._space.fill_speed.size
        if len(state.fill_speed) != expected:
            raise StateMismatchError(f"saved fill_speed has {len(state.fill_speed)} values, expected {expected}")

    def _apply_own_state(self, state: Any) -> None:
        stats = self._space.stats
        for row, name in enumerate(_MAKER_STATS):
            stats[row] = np.array(getattr(state, name), dtype=float).reshape(stats.shape[1:])
        self._space.taker_stats[:] = (state.taker, state.taker_cost)
        if self._fill_speed_window is not None:  # the level follows from them in the refresh below
            self._space.fill_speed[:] = np.array(state.fill_speed, dtype=float).reshape(self._space.fill_speed.shape)
        self._next_uniform = self._space.uniforms.size  # the generator was just set: nothing is drawn ahead
        self._scale_factor = 1.0
        self._refresh()

    # --- the model -------------------------------------------------------------------------------

    def _true_stats(self) -> dict[str, np.ndarray]:
        """The discounted statistics by their saved names (stored ones times the pending forgetting factor)."""
        g, stats, taker_stats = self._scale_factor, self._space.stats, self._space.taker_stats
        return {**{name: g * stats[row] for row, name in enumerate(_MAKER_STATS)},
                "taker": g * taker_stats[0], "taker_cost": g * taker_stats[1]}

    def _forget(self, factor: float) -> None:
        """Multiply every statistic by ``factor`` in O(1): the factor is kept aside and new evidence is stored
        divided by it; folded into the arrays before it underflows."""
        self._scale_factor *= factor
        if self._scale_factor < _FOLD_SCALE_BELOW:
            self._fold_forgetting()

    def _fold_forgetting(self) -> None:
        if self._scale_factor != 1.0:
            self._space.stats[:] *= self._scale_factor
            self._space.taker_stats[:] *= self._scale_factor
            self._scale_factor = 1.0
            self._refresh()

    def _refresh(self) -> None:
        """Recompute every replica's expected cost of every arm (and the fill probability per offset) from the
        statistics, off the decision path, so a decision only reads them: here after a load, a discount or a fold.
        An outcome refits only the replicas whose bootstrap weight for it is not zero (about 63%); the others keep
        the fit of their last outcome, whose statistics have since only shrunk by the forgetting factor (a fit a
        few outcomes of forgetting behind, and exactly current when nothing is forgotten). Half the refit's cost,
        and the propensity stays exact: it is the share of the replicas' current fits that pick the arm.

        Per replica, each offset's own evidence is shrunk by ``shrinkage`` pseudo-observations towards curves
        shared across offsets, fitted by weighted least squares with a ridge pull towards the priors: the fill
        probability as a line in the empirical logit (Berkson's minimum chi-square, weights n p (1 - p)), its
        slope never positive (a post further from the touch never fills more often); the costs as lines in the
        offset, with prior slopes -1 for a fill (one bp further is one bp cheaper) and 0 for a fallback. The
        prior lines are ``prior_strength`` pseudo-observations at offsets 0 and 1, so every fit is defined with
        evidence at one offset or none. Evaluated by :func:`~tuner.learners.structured_kernel.refresh`; an outcome
        is added and the replicas it reaches refitted in one compiled call,
        :func:`~tuner.learners.structured_kernel.learn`.
        """
        self._refit(self._space.floats, self._space.ints, self._scale_factor)
        # read by expected_reward and fill_probability (the tuner's observe), computed there at most once per refit
        self._fill_mean: list[float] | None = None
        self._mean_costs: list[float] | None = None


def _prior_line_moments(priors: np.ndarray, strengths: np.ndarray) -> np.ndarray:
    """What each line's prior adds to the moments of its least-squares fit: ``strengths`` pseudo-observations of
    the line (intercept, slope in ``priors[..., 0]`` and ``priors[..., 1]``) at x = 0 and at x = 1, as
    (sum w, sum w x, sum w x^2, sum w y, sum w x y) in a last axis of 5."""
    a0, b0, k = priors[..., 0], priors[..., 1], strengths
    return np.ascontiguousarray(np.stack((2.0 * k, k, k, k * (2.0 * a0 + b0), k * (a0 + b0)), axis=-1))
