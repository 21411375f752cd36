"""What the router is asked to execute and the settings it executes under, checked before any venue call.

The router never decides a size: ``RouteOrder`` carries the quantity the risk core approved, the
instrument's tick and lot steps and its quote currency. Invalid input (a close in an unlisted quote,
a position side that contradicts the account's position mode) raises ``RouteRefused`` before the venue
is touched; everything after the first venue call ends in exactly one ``RouterEvent``.
"""

from __future__ import annotations

import functools
import hashlib
import math
import re
from dataclasses import dataclass
from decimal import Decimal
from typing import get_args

import msgspec

from router_tuner.config.models import PositionMode, RouterConfig
from router_tuner.router.events import Intent, PositionSide, Side
from router_tuner.router.venue import OrderRequest, OrderType, TimeInForce

_SIDES = frozenset(get_args(Side))
_POSITION_SIDES = frozenset(get_args(PositionSide))

_CLIENT_ID_CHARS = re.compile(r"^[A-Za-z0-9_.:/-]+$")
CLIENT_ORDER_ID_MAX_LEN = 36
"""The shortest limit among supported venues (Binance ``newClientOrderId``); ids stay within it."""


class RouteRefused(ValueError):
    """An order the router will not send: the message says which rule it breaks."""


class RouteOrder(msgspec.Struct, frozen=True):
    """One order to route: the sized intent plus the instrument facts pricing needs.

    ``tick_size`` and ``qty_step`` are the venue's price and quantity increments; a remainder below
    ``qty_step`` is dust and is not re-ordered. ``quote`` decides whether a close is allowed.
    """

    intent_id: str
    symbol: str
    side: Side
    qty: float
    reduce_only: bool
    close_position: bool
    position_side: PositionSide
    quote: str
    tick_size: float
    qty_step: float

    def __post_init__(self) -> None:
        if not self.intent_id or not self.symbol or not self.quote:
            raise RouteRefused(f"intent_id, symbol and quote must be non-empty, got "
                               f"{self.intent_id!r}, {self.symbol!r}, {self.quote!r}")
        if self.side not in _SIDES:
            raise RouteRefused(f"{self.intent_id}: side must be 'buy' or 'sell', got {self.side!r}")
        if self.position_side not in _POSITION_SIDES:
            raise RouteRefused(f"{self.intent_id}: position_side must be BOTH, LONG or SHORT, "
                               f"got {self.position_side!r}")
        for name, value in (("qty", self.qty), ("tick_size", self.tick_size), ("qty_step", self.qty_step)):
            if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
                raise RouteRefused(f"{self.intent_id}: {name} must be a finite number > 0, got {value!r}")
        if self.qty < self.qty_step:
            raise RouteRefused(f"{self.intent_id}: qty {self.qty} is below the lot step {self.qty_step}")

    @classmethod
    def from_intent(cls, intent: Intent, *, qty: float, quote: str, tick_size: float,
                    qty_step: float) -> RouteOrder:
        """The sized order for ``intent``: flags and position side are taken from the intent as is."""
        return cls(intent_id=intent.intent_id, symbol=intent.symbol, side=intent.side, qty=qty,
                   reduce_only=intent.reduce_only, close_position=intent.close_position,
                   position_side=intent.position_side, quote=quote, tick_size=tick_size, qty_step=qty_step)

    @property
    def is_close(self) -> bool:
        return self.reduce_only or self.close_position


@dataclass(frozen=True, slots=True)
class RouteSettings:
    """Account facts and venue-interaction knobs of the routing loop (all required, none guessed).

    Parameters
    ----------
    position_mode, close_position_quotes:
        From ``router.json``: hedge (LONG/SHORT) or one-way (BOTH), and the quotes closes are allowed in.
    poll_interval_ms:
        Cadence at which a resting order's status is fetched while it waits for fills.
    max_venue_retries:
        Retries of one venue call after ``RateLimited``, ``VenueTimeout`` or ``VenueUnavailable``.
    rate_limit_backoff_ms:
        First back-off after ``RateLimited``; doubles on each retry, and a venue's Retry-After hint is waited
        when longer.
    max_retry_after_ms:
        The longest Retry-After the loop waits out: a venue asking for more ends the call as rate limited at
        once (the route then settles), instead of blocking the loop for the venue's whole penalty.
    """

    position_mode: PositionMode
    close_position_quotes: tuple[str, ...]
    poll_interval_ms: float
    max_venue_retries: int
    rate_limit_backoff_ms: float
    max_retry_after_ms: float

    def __post_init__(self) -> None:
        if self.position_mode not in get_args(PositionMode):
            raise ValueError(f"RouteSettings.position_mode must be 'hedge' or 'one_way', "
                             f"got {self.position_mode!r}")
        for name in ("poll_interval_ms", "rate_limit_backoff_ms", "max_retry_after_ms"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
                raise ValueError(f"RouteSettings.{name} must be a finite number > 0, got {value!r}")
        if isinstance(self.max_venue_retries, bool) or not isinstance(self.max_venue_retries, int) \
                or self.max_venue_retries < 0:
            raise ValueError(f"RouteSettings.max_venue_retries must be an integer >= 0, "
                             f"got {self.max_venue_retries!r}")

    @classmethod
    def from_config(cls, router: RouterConfig, *, poll_interval_ms: float, max_venue_retries: int,
                    rate_limit_backoff_ms: float, max_retry_after_ms: float) -> RouteSettings:
        """Position mode and closable quotes from ``router.json``; loop knobs from the caller."""
        return cls(position_mode=router.position_mode, close_position_quotes=router.close_position_quotes,
                   poll_interval_ms=poll_interval_ms, max_venue_retries=max_venue_retries,
                   rate_limit_backoff_ms=rate_limit_backoff_ms, max_retry_after_ms=max_retry_after_ms)


def check_order(order: RouteOrder, settings: RouteSettings) -> None:
    """Refuse what must not reach a venue: closes in unlisted quotes, position sides wrong for the mode.

    Hedge mode needs LONG/SHORT, and the side must agree with it: buying LONG or selling SHORT opens,
    selling LONG or buying SHORT reduces, so a reduce-only/close order must be the reducing pair.
    One-way mode needs BOTH (reduce-only then says the order may only shrink the position).
    """
    if order.is_close and order.quote not in settings.close_position_quotes:
        raise RouteRefused(f"{order.intent_id}: close of {order.symbol} refused: quote {order.quote!r} is not in "
                           f"router.json close_position_quotes {list(settings.close_position_quotes)}")
    if settings.position_mode == "one_way":
        if order.position_side != "BOTH":
            raise RouteRefused(f"{order.intent_id}: one-way position mode needs position_side BOTH, "
                               f"got {order.position_side}")
        return
    if order.position_side == "BOTH":
        raise RouteRefused(f"{order.intent_id}: hedge position mode needs position_side LONG or SHORT, got BOTH")
    reduces = (order.side == "sell") == (order.position_side == "LONG")
    if order.is_close and not reduces:
        raise RouteRefused(f"{order.intent_id}: a close of the {order.position_side} side must "
                           f"{'sell' if order.position_side == 'LONG' else 'buy'}, got {order.side}")
    if not order.is_close and reduces:
        raise RouteRefused(f"{order.intent_id}: {order.side} on the {order.position_side} side reduces the "
                           f"position; mark it reduce_only or close_position")


def client_order_id(intent_id: str, leg: int) -> str:
    """Deterministic id of the ``leg``-th order of an intent (legs count from 1, never reused).

    An intent id that is too long or has characters venues refuse is replaced by a stable digest.
    """
    suffix = f"-{leg}"
    if _CLIENT_ID_CHARS.match(intent_id) and len(intent_id) + len(suffix) <= CLIENT_ORDER_ID_MAX_LEN:
        return intent_id + suffix
    digest = hashlib.blake2b(intent_id.encode(), digest_size=12).hexdigest()
    return f"h{digest}{suffix}"


def request(order: RouteOrder, *, client_id: str, qty: float, order_type: OrderType, price: float | None,
            time_in_force: TimeInForce, post_only: bool) -> OrderRequest:
    """The venue request for one leg: the order's reduce/close flags and position side are passed as is."""
    return OrderRequest(client_order_id=client_id, symbol=order.symbol, side=order.side, qty=qty,
                        order_type=order_type, price=price, time_in_force=time_in_force, post_only=post_only,
                        reduce_only=order.reduce_only, close_position=order.close_position,
                        position_side=order.position_side)


@functools.lru_cache(maxsize=256)
def _decimals(step: float) -> int:
    exponent = Decimal(repr(step)).normalize().as_tuple().exponent
    return max(0, -int(exponent))


def round_price(price: float, tick_size: float, *, up: bool) -> float:
    """``price`` on the tick grid, rounded up or down (a tiny tolerance absorbs float noise)."""
    ticks = price / tick_size
    whole = math.ceil(ticks - 1e-9) if up else math.floor(ticks + 1e-9)
    return round(whole * tick_size, _decimals(tick_size))


def check_tick_bps(tick_bps: float) -> None:
    """Raise ``ValueError`` unless ``tick_bps``, one price tick in bps of the price, is positive and finite."""
    if not (math.isfinite(tick_bps) and tick_bps > 0.0):
        raise ValueError(f"tick_bps must be positive and finite, got {tick_bps!r}")


def posted_offset_bps(offset_bps: float, tick_bps: float) -> float:
    """How far behind our touch a post-only order at ``offset_bps`` rests when one tick is ``tick_bps`` of the
    touch: ``maker_price`` rounds the price away from crossing, so the offset becomes whole ticks, rounded up
    (0.5 bps on a 2 bps tick rests a full tick behind; offsets within one tick of each other post at one price).
    The far-touch clamp of a negative offset inside a narrow spread is not modelled. Raises ``ValueError`` on a
    tick that is not positive and finite (:func:`check_tick_bps`)."""
    check_tick_bps(tick_bps)
    return tick_bps * math.ceil(offset_bps / tick_bps - 1e-9)


def ceil_qty(qty: float, qty_step: float) -> float:
    """``qty`` rounded up to the lot step: the least that may be ordered to reach it."""
    steps = math.ceil(qty / qty_step - 1e-9)
    return round(steps * qty_step, _decimals(qty_step))


def floor_qty(qty: float, qty_step: float) -> float:
    """``qty`` rounded down to the lot step: what may still be ordered without exceeding it."""
    steps = math.floor(qty / qty_step + 1e-9)
    return round(steps * qty_step, _decimals(qty_step))
