"""How a taker order (market, or the marketable part of a limit) consumes the simulated book.

The walk takes the level-1 touch first, then the depth levels beyond it as the tape shows them at
arrival. Where the tape has no usable depth (or the walk runs past the last known level), each further
tick is assumed to hold ``no_depth_level_qty_ratio`` times the touch size: a documented impact
assumption rather than an invented book. ``taken`` is what our earlier takers already took at each price
from the book now displayed (the venue forgets it when the touch changes on the tape): it is gone, so
two takers in a row do not both fill against the same displayed size.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from itertools import chain

from router_tuner.router.venue import VenueError
from router_tuner.router.venues.sim.book import TapeBook


class TakerWalkTooDeep(VenueError):
    """A taker order would need more price levels than ``max_taker_walk_levels``; nothing was filled."""


def taker_walk(book: TapeBook, is_buy: bool, qty: int, limit_px: int | None, ts_ns: int,
               no_depth_level_qty_ratio: float, max_levels: int,
               taken: Mapping[int, int]) -> tuple[list[tuple[int, int]], int]:
    """Plan a taker execution: ``([(price, size), ...], size left over at the limit)``.

    ``limit_px`` bounds the prices taken (None for a market order, which must then fill completely).
    Raises :class:`TakerWalkTooDeep` before anything is filled when the walk would exceed ``max_levels``.
    """
    quote = book.quote_at(ts_ns)
    touch_px, touch_qty = (quote.ask_px, quote.ask_qty) if is_buy else (quote.bid_px, quote.bid_qty)
    step = book.tick_px if is_buy else -book.tick_px
    extrapolated_qty = max(1, round(no_depth_level_qty_ratio * touch_qty))

    def within_limit(px: int) -> bool:
        return limit_px is None or (px <= limit_px if is_buy else px >= limit_px)

    known: Iterable[tuple[int, int]] = [(touch_px, touch_qty)] if touch_qty > 0 else []
    if book.depth_known_at(ts_ns):
        known = chain(known, book.levels_beyond(not is_buy, touch_px, ts_ns, max_levels))
    plan: list[tuple[int, int]] = []
    left = qty
    last_px = touch_px - step
    levels = iter(known)
    while left > 0 and len(plan) < max_levels:  # no further level is read once the order is done
        level = next(levels, None)
        if level is None or not within_limit(level[0]):
            break
        px, size = level
        last_px = px
        take = min(left, size - taken.get(px, 0))
        if take > 0:
            plan.append((px, take))
            left -= take
    while left > 0 and len(plan) < max_levels and last_px + step > 0 and within_limit(last_px + step):
        last_px += step
        take = min(left, extrapolated_qty - taken.get(last_px, 0))
        if take > 0:
            plan.append((last_px, take))
            left -= take
    if left > 0 and within_limit(last_px + step):
        raise TakerWalkTooDeep(
            f"{book.symbol}: a {'buy' if is_buy else 'sell'} taker of {qty} units would walk more than "
            f"max_taker_walk_levels={max_levels} price levels from the touch {touch_px}")
    return plan, left
