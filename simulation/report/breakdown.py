"""The report's derived numbers: what the charts show beyond the summaries (presentation only).

Every function here reads a finished :class:`~simulation.job.SimulationResult`; none changes a simulated
number. They are kept apart from the chart code so the arithmetic is tested on its own.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from router_tuner.router.contract import ContractSpec, notional_usd
from router_tuner.router.events import RouterEvent
from router_tuner.simulation.job import SimulationResult, SymbolResult
from router_tuner.simulation.policies import ALWAYS_TAKER, FIXED_PREFIX, LEARNER_PREFIX, STATIC

USD_PER_BPS_PER_MILLION = 100.0
"""One basis point of 1,000,000 USD notional is 100 USD."""

_ARM_ID = re.compile(r"^o(?P<offset>-?\d+(?:\.\d+)?)_b(?P<bias>\d+(?:\.\d+)?)$")


def describe_arm(arm_id: str) -> str:
    """An arm id in words (``o0.50_b0.00`` -> post-only 0.50 bps behind the touch, ...); ids that are not
    ``tuner.arms`` ids are returned as they are."""
    match = _ARM_ID.match(arm_id.removeprefix(FIXED_PREFIX))
    if match is None:
        return arm_id
    offset, bias = float(match["offset"]), float(match["bias"])
    if bias >= 1.0:
        return "take liquidity at once (taker order; the offset is unused)"
    post = f"post-only {offset:.2f} bps behind the best price, re-priced until the TTL, then a taker fallback"
    return post if bias <= 0.0 else f"start as taker with probability {bias:.0%}, else {post}"


@dataclass(frozen=True, slots=True)
class CostParts:
    """Mean cost per filled order (bps) split into additive parts: ``fee + slippage + fallback`` equals the
    policy's mean cost. ``fallback`` is what the taker fallback legs cost (their price against the arrival mid
    and their fees); ``fee`` and ``slippage`` are those of every other fill. ``markout`` (mean mid move against
    us after the last fill) is not part of the cost and is shown beside it."""

    fee: float
    slippage: float
    fallback: float
    markout: float | None

    @property
    def total(self) -> float:
        return self.fee + self.slippage + self.fallback


def _order_parts(event: RouterEvent, contract: ContractSpec) -> tuple[float, float, float]:
    """``(fee, slippage, fallback)`` bps of one filled order; they add up to its ``cost_bps`` (the ledger's
    slippage is the quantity-weighted sum of each fill's and its fee the sum of each fill's over the base)."""
    sign = 1.0 if event.side == "buy" else -1.0
    mid = event.arrival_mid
    base = math.fsum(notional_usd(contract, f.price, f.qty) for f in event.fills)
    fee = slippage = fallback = 0.0
    for fill in event.fills:
        fill_slippage = fill.qty / event.filled_qty * sign * (fill.price - mid) / mid * 1e4
        fill_fee = fill.fee_usd / base * 1e4
        if event.used_fallback and fill.liquidity == "taker":
            fallback += fill_slippage + fill_fee
        else:
            fee += fill_fee
            slippage += fill_slippage
    return fee, slippage, fallback


def cost_parts(sym: SymbolResult, policy: str) -> CostParts | None:
    """The cost decomposition of ``policy`` on ``sym``; ``None`` when it filled nothing."""
    run = sym.runs[policy]
    parts = [_order_parts(e, sym.market.contract) for e in run.events if e.fills]
    if not parts:
        return None
    fee, slippage, fallback = (float(np.mean(column)) for column in zip(*parts, strict=True))
    markouts = run.markout_bps[np.isfinite(run.markout_bps)]
    return CostParts(fee=fee, slippage=slippage, fallback=fallback,
                     markout=float(markouts.mean()) if markouts.size else None)


@dataclass(frozen=True, slots=True)
class OffsetFill:
    """One maker-first fixed arm: its offset, how many of its maker-first orders filled as maker without
    the fallback, and its mean cost."""

    arm: str
    offset_bps: float
    maker_first_orders: int
    maker_filled: int
    mean_cost_bps: float | None

    @property
    def fill_rate(self) -> float | None:
        return self.maker_filled / self.maker_first_orders if self.maker_first_orders else None


def fill_rate_by_offset(sym: SymbolResult) -> list[OffsetFill]:
    """Per fixed arm that starts maker-first (taker bias 0), sorted by offset: the share of its orders whose
    post-only leg filled without a fallback."""
    rows = []
    for name, run in sym.runs.items():
        match = _ARM_ID.match(name.removeprefix(FIXED_PREFIX))
        if not name.startswith(FIXED_PREFIX) or match is None or float(match["bias"]) > 0.0:
            continue
        maker_first = [e for e in run.events if e.started_maker]
        rows.append(OffsetFill(arm=name.removeprefix(FIXED_PREFIX), offset_bps=float(match["offset"]),
                               maker_first_orders=len(maker_first),
                               maker_filled=sum(1 for e in maker_first if e.fills and not e.used_fallback),
                               mean_cost_bps=sym.summaries[name].mean_cost_bps))
    return sorted(rows, key=lambda r: r.offset_bps)


@dataclass(frozen=True, slots=True)
class RegretBand:
    """Cumulative regret (bps) against the best fixed arm after each order, with a pointwise 95% band."""

    regret: np.ndarray
    low: np.ndarray
    high: np.ndarray


def regret_band(run_costs: np.ndarray, best_costs: np.ndarray, z: float = 1.96) -> RegretBand:
    """The running sum of per-order differences (unfilled in either run count 0, as in
    :func:`simulation.results.cumulative_regret_bps`) and ``± z·sqrt(n)·sd`` of the first ``n`` differences:
    a normal band for the sum of ``n`` independent differences, so it says how much of the curve is noise."""
    if run_costs.shape != best_costs.shape:
        raise ValueError(f"regret needs the same intents: {run_costs.size} orders against {best_costs.size}")
    diff = run_costs - best_costs
    diff = np.where(np.isfinite(diff), diff, 0.0)
    n = np.arange(1, diff.size + 1, dtype=float)
    total = np.cumsum(diff)
    mean = total / n
    variance = np.maximum(np.cumsum(diff * diff) / n - mean * mean, 0.0) * n / np.maximum(n - 1.0, 1.0)
    half = z * np.sqrt(n * variance)
    return RegretBand(regret=total, low=total - half, high=total + half)


def rolling_arm_shares(events: Sequence[RouterEvent], arms: Sequence[str], window: int) -> np.ndarray:
    """Share of each arm (columns, in ``arms`` order) among the last ``window`` orders (fewer at the start),
    one row per order: how a learner's choice moves over the run."""
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    index = {arm: i for i, arm in enumerate(arms)}
    chosen = np.zeros((len(events), len(arms)))
    for row, event in enumerate(events):
        if event.arm in index:
            chosen[row, index[event.arm]] = 1.0
    totals = np.cumsum(chosen, axis=0)
    lagged = np.vstack([np.zeros((window, len(arms))), totals[:-window]])[: len(events)]
    counts = np.minimum(np.arange(1, len(events) + 1), window)[:, None]
    return (totals - lagged) / counts


@dataclass(frozen=True, slots=True)
class Saving:
    """What the tuner saves per order on one symbol against a baseline (positive = the tuner is cheaper)."""

    symbol: str
    baseline: str
    tuner_cost_bps: float
    baseline_cost_bps: float

    @property
    def bps(self) -> float:
        return self.baseline_cost_bps - self.tuner_cost_bps

    @property
    def usd_per_million(self) -> float:
        return self.bps * USD_PER_BPS_PER_MILLION


def tuner_policy(result: SimulationResult) -> str | None:
    """The report name of the tuner's policy: the default learner when it ran, else the first learner."""
    learners = result.options.learners
    if not learners:
        return None
    name = result.default_learner if result.default_learner in learners else learners[0]
    return f"{LEARNER_PREFIX}{name}"


def savings(result: SimulationResult) -> dict[str, list[Saving]]:
    """Per baseline (static, always-taker): the tuner's saving on each symbol where both filled orders."""
    tuner = tuner_policy(result)
    out: dict[str, list[Saving]] = {STATIC: [], ALWAYS_TAKER: []}
    if tuner is None:
        return out
    for symbol, sym in result.symbols.items():
        own = sym.summaries[tuner].mean_cost_bps
        for baseline, rows in out.items():
            other = sym.summaries[baseline].mean_cost_bps
            if own is not None and other is not None:
                rows.append(Saving(symbol=symbol, baseline=baseline, tuner_cost_bps=own, baseline_cost_bps=other))
    return out


def robust_range(values: Sequence[float], anchors: Sequence[float], spread: float = 4.0) -> tuple[float, float]:
    """An axis range that always shows ``anchors`` and the ``values`` within ``spread`` interquartile ranges
    of their median: a few huge IPS estimates no longer squash every other point into one pixel."""
    points = np.asarray([v for v in values if math.isfinite(v)], dtype=float)
    kept = list(anchors)
    if points.size:
        q1, median, q3 = np.percentile(points, [25, 50, 75])
        reach = spread * max(q3 - q1, 0.25)
        kept += [float(v) for v in points if abs(v - median) <= reach]
    if not kept:
        raise ValueError("no finite value to scale an axis on")
    low, high = min(kept), max(kept)
    pad = max(0.08 * (high - low), 0.1)
    return low - pad, high + pad


def public_data_source(data_source: str) -> str:
    """The data source without the machine's absolute path: ``recorded:/a/b/binance`` -> ``recorded: binance``."""
    kind, _, where = data_source.partition(":")
    return f"{kind}: {where.rstrip('/').rsplit('/', 1)[-1]}" if where else data_source

