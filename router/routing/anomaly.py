"""Fills that the venue's own rules rule out for the order we sent: flagged, never learned in silence.

A post-only order only ever fills as maker and an IOC order only as taker; no fill of a limit order is worse
than its limit; an order never fills more than its quantity. A venue that reports otherwise (a misreported
maker flag, a fill booked at the wrong price or under the wrong order) still moved real money, so the fill
counts for positions and cost as reported; the route's ``RouterEvent.error`` then carries
``venue_anomaly(...)`` (``router.events.VENUE_ANOMALY``), so the journal shows it, the executor re-reads the
intent's orders, and the tuner does not learn from it (``tuner.reward``).
"""

from __future__ import annotations

from router_tuner.router.events import Fill
from router_tuner.router.venue import OrderRequest

_REL_TOL = 1e-9
"""Float noise, not a tolerance: a price or quantity beyond it is outside the order."""


def fill_anomaly(request: OrderRequest, fill: Fill) -> str | None:
    """What is wrong with ``fill`` as a fill of ``request`` (wrong liquidity, worse than the limit), if anything."""
    problems = []
    expected = "maker" if request.post_only else "taker" if request.time_in_force == "IOC" else None
    if expected is not None and fill.liquidity != expected:
        problems.append(f"reported as {fill.liquidity} on {'a post-only' if request.post_only else 'an IOC'} order")
    limit = request.price
    if limit is not None and (fill.price > limit * (1 + _REL_TOL) if request.side == "buy"
                              else fill.price < limit * (1 - _REL_TOL)):
        problems.append(f"at {fill.price:.12g}, worse than its {request.side} limit {limit:.12g}")
    return f"fill {fill.trade_id} of {request.client_order_id} {' and '.join(problems)}" if problems else None


def overfill_anomaly(request: OrderRequest, filled_qty: float) -> str | None:
    """``request`` filled beyond its quantity, if so; a close-position order's quantity is the venue's own."""
    if request.close_position or filled_qty <= request.qty * (1 + _REL_TOL):
        return None
    return f"{request.client_order_id} filled {filled_qty:.12g}, more than its quantity {request.qty:.12g}"
