"""The post-only-at-touch probe both engines run, and what is counted from it.

Every ``period`` of market time one order of one lot (the tape's smallest size unit) is posted post-only
at the touch of the side it joins, sides alternating; it is cancelled ``ttl`` after it was sent. The price
is the level-1 quote (``bookTicker``) at sending time: the same (time, side, price) goes to both engines, so
they are asked exactly the same questions. At most one probe rests at a time (``ttl + 2 * latency <
period``): every request of ours is a blocking round trip, so two requests closer than the latency would
not go out at the same times in both engines.

A probe ends ``FILLED`` (before the cancel took effect), ``CANCELED`` (not filled) or ``REJECTED`` (the
post-only order would have crossed the book at arrival).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from router_tuner.router.market.tape import MarketTape

CANCELED, FILLED, REJECTED = 0, 1, 2
Z_95 = 1.959963984540054


@dataclass(frozen=True, slots=True)
class ProbeSchedule:
    """The probes of one tape: send time (ns), side and price (the tape's scaled integers)."""

    submit_ns: np.ndarray
    is_buy: np.ndarray
    px: np.ndarray
    ttl_ns: int
    latency_ns: int
    qty_units: int = 1

    def __len__(self) -> int:
        return len(self.submit_ns)


@dataclass(frozen=True, slots=True)
class ProbeOutcome:
    """Per probe its end (``CANCELED``/``FILLED``/``REJECTED``) and the fill's exchange time (-1 if none), and
    how many orders the engine itself reports having received (its own count, to check it saw every probe)."""

    status: np.ndarray
    fill_ns: np.ndarray
    sent: int


def build_schedule(tape: MarketTape, period_s: float, ttl_s: float, latency_ms: float,
                   window_s: float | None = None) -> ProbeSchedule:
    """Probes over the part of the tape where quotes, trades and depth have all started.

    ``window_s`` cuts the schedule to its first seconds (a small slice for tests). ValueError when the
    timing cannot keep one probe at a time or when the tape is too short for a single probe.
    """
    period_ns, ttl_ns, latency_ns = round(period_s * 1e9), round(ttl_s * 1e9), round(latency_ms * 1e6)
    if ttl_ns <= 0 or latency_ns < 0:
        raise ValueError(f"ttl must be > 0 and latency >= 0 (got ttl {ttl_s} s, latency {latency_ms} ms)")
    if ttl_ns + 2 * latency_ns >= period_ns:
        raise ValueError(f"ttl + 2 * latency ({ttl_s} s + 2 * {latency_ms} ms) must be shorter than the period "
                         f"({period_s} s): one probe rests at a time")
    starts = [int(a[0]) for a in (tape.quote_ts_ns, tape.trade_ts_ns, tape.depth_ts_ns) if len(a)]
    first = max(starts) + period_ns
    last = tape.end_ns - ttl_ns - 2 * latency_ns
    if window_s is not None:
        last = min(last, first + round(window_s * 1e9))
    submit_ns = np.arange(first, last + 1, period_ns, dtype=np.int64)
    if len(submit_ns) == 0:
        raise ValueError(f"{tape.symbol}: the tape is too short for one probe of period {period_s} s")
    is_buy = np.arange(len(submit_ns)) % 2 == 0
    q = np.searchsorted(tape.quote_ts_ns, submit_ns, side="right") - 1
    px = np.where(is_buy, tape.bid_px[q], tape.ask_px[q])
    return ProbeSchedule(submit_ns=submit_ns, is_buy=is_buy, px=px, ttl_ns=ttl_ns, latency_ns=latency_ns)


def wilson_interval(successes: int, trials: int, z: float = Z_95) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion (95% by default); (0, 1) with no trials.

    Examples
    --------
    >>> [round(x, 4) for x in wilson_interval(5, 10)]
    [0.2366, 0.7634]
    """
    if trials == 0:
        return 0.0, 1.0
    p = successes / trials
    centre = p + z * z / (2 * trials)
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials))
    denom = 1 + z * z / trials
    # the bounds hold p exactly; rounding would otherwise put the lower bound a hair above 0 at k = 0
    return min(p, max(0.0, (centre - half) / denom)), max(p, min(1.0, (centre + half) / denom))


@dataclass(frozen=True, slots=True)
class FillStats:
    """Fill rate over all probes sent (a rejected probe is not filled), its interval and times to fill."""

    probes: int
    filled: int
    rejected: int
    rate: float
    low: float
    high: float
    median_fill_ms: float | None


def fill_stats(schedule: ProbeSchedule, outcome: ProbeOutcome) -> FillStats:
    filled = outcome.status == FILLED
    n, k = len(schedule), int(filled.sum())
    low, high = wilson_interval(k, n)
    waits = (outcome.fill_ns[filled] - schedule.submit_ns[filled]) / 1e6
    return FillStats(probes=n, filled=k, rejected=int((outcome.status == REJECTED).sum()), rate=k / n if n else 0.0,
                     low=low, high=high, median_fill_ms=float(np.median(waits)) if k else None)
