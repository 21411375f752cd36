"""The routing state machine: one order in, exactly one ``RouterEvent`` out.

The machine does no I/O (``route_machine``): it yields the venue requests of ``router.routing.calls``
and receives their replies, so the same logic runs blocking on one venue (``route``), many at once on a
simulated clock (``router.routing.drive.ClockDriver``), or as asyncio tasks (``router.routing.aio``: the
executor's engine) on a wall clock or on a simulated one moved by ``router.routing.timeline``. The order is
validated once, when the machine is made, never per poll.

States: decide (maker or taker) -> post-only at the offset (post-only rejections re-priced from the new
touch, bounded) -> wait up to the TTL polling the order -> cancel and re-price toward the touch (bounded)
-> fall back with the remainder (taker, re-post or cancel). Documented choices:

- Spread clamps: a spread below ``min_spread_bps`` crosses at once (the maker leg earns too little); above
  ``max_spread_bps`` the touch is not trusted for posting, and the order crosses only if the far touch lies
  within ``max_taker_slippage_bps`` of the mid, else it is skipped (outcome ``unfilled`` with the reason).
  A crossed or locked book is never traded on (``unfilled`` with the reason). A forced start has
  ``route_propensity`` 1.0; a drawn start records the probability of the side drawn.
- Taker legs are IOC marketable limits at arrival mid +/- ``max_taker_slippage_bps`` (rounded to the tick
  toward less slippage), so no taker leg costs more than the cap: the venue fills what the book offers
  within the cap and expires the rest, so nothing rests and nothing is cancelled (``cancel_count`` counts
  only real cancels). A venue that acknowledges an IOC before matching it is polled until the order is
  final, and cancelled (counted) only if it still reports it live after ``max_venue_retries`` polls. A
  taker leg that fills nothing sets ``error`` to
  ``taker_leg_unfilled_within_slippage_cap(<max_taker_slippage_bps>bps)``.
- Post-only prices are rounded away from crossing and kept at least one tick off the far touch. A post-only
  order the venue returns as ``rejected``/``expired`` without fills (Binance GTX) counts as a rejection.
  The rejection budget ``post_only_retry_limit`` is shared by the whole route.
- Each post-only order gets a fresh TTL; re-prices move the offset by ``reprice_step_bps`` toward (and past)
  the touch. ``repost`` fallback joins the touch (offset 0) for one more TTL, then cancels.
  ``used_fallback`` is true when a fallback order was sent.
- Partial fills: the remainder is the quantity less what every order is known to have filled (the cancel's
  final state included); fills are counted once by trade id, so the cancel/fill race never re-orders.
  A fill the order rules out (a post-only one as taker, an IOC one as maker, a price worse than the limit, more
  than the order's quantity) counts as reported and is listed in ``error`` as ``venue_anomaly(...)``
  (``router.routing.anomaly``).
- Venue errors: ``RateLimited`` backs off on the venue clock and retries the same request (bounded); reads
  also retry ``VenueTimeout``/``VenueUnavailable``. A new order that timed out (or lost its connection) is
  resolved by fetching its client order id before anything else; one the venue does not know is never sent
  again: it may rest, or have filled, at a venue whose order query lags its matching (a second order would rest
  as an orphan or fill twice), so the route ends with the error and the executor settles the intent's legs.
  ``InsufficientMargin``/``BelowMinNotional`` and other refusals end the route with ``error`` set and outcome
  ``rejected`` (``partial`` when something already filled). Input errors raise ``RouteRefused``; a venue
  that cannot state the symbol's contract spec (``Venue.contract``) raises its error (or ``TypeError`` /
  ``ValueError`` from :func:`~router.contract.venue_contract`), and a failed arrival-touch read raises the
  venue error: in every case nothing was sent.
"""


from __future__ import annotations

from typing import Any, Literal, Protocol

import numpy as np

from router_tuner.router.events import RouterEvent
from router_tuner.router.policy import RouterPolicy
from router_tuner.router.routing.calls import (
    Cancel,
    ContractOf,
    Fetch,
    Now,
    OrderRef,
    Place,
    Steps,
    Touch,
    VenueCall,
    WaitUntil,
)
from router_tuner.router.routing.drive import drive
from router_tuner.router.routing.ledger import RouteLedger
from router_tuner.router.routing.order import (
    RouteOrder,
    RouteRefused,
    RouteSettings,
    check_order,
    client_order_id,
    request,
    round_price,
)
from router_tuner.router.venue import (
    BelowMinNotional,
    InsufficientMargin,
    OrderNotFound,
    OrderState,
    OrderType,
    PostOnlyRejected,
    RateLimited,
    TimeInForce,
    TopOfBook,
    Venue,
    VenueError,
    VenueProtocolError,
    VenueTimeout,
    VenueUnavailable,
)

_RETRY_WRITE: tuple[type[VenueError], ...] = (RateLimited,)
_RETRY_READ: tuple[type[VenueError], ...] = (RateLimited, VenueUnavailable, VenueTimeout)
Start = Literal["maker", "taker", "skip"]


class _RouteAbort(Exception):
    """Ends the route early; the message becomes ``RouterEvent.error``."""

    def __init__(self, message: str, *, rejected: bool) -> None:
        super().__init__(message)
        self.rejected = rejected


def route(order: RouteOrder, policy: RouterPolicy, venue: Venue, *, rng: np.random.Generator,
          settings: RouteSettings) -> RouterEvent:
    """Execute ``order`` on ``venue`` under ``policy`` and return its single ``RouterEvent``.

    ``rng`` draws the maker/taker start with probability ``taker_bias``; seed it for reproducible runs.
    Raises ``RouteRefused`` (nothing sent) for input the router must not send.

    Examples
    --------
    A buy posted 1 bp behind the bid is half filled while resting, re-priced once, and the rest crosses
    after the TTL:

    >>> from router_tuner.config.loader import load_config
    >>> from router_tuner.router.routing.scripted import Quote, ScriptedFill, ScriptedVenue
    >>> router = load_config().router
    >>> from router_tuner.router.contract import Contract
    >>> venue = ScriptedVenue("BTCUSDT", [Quote(0, 100.00, 100.10, 5.0, 5.0)], contract=Contract("linear", 1.0),
    ...     fills=[ScriptedFill(300_000_000, 0.5)], faults=[], maker_fee_bps=2.0, taker_fee_bps=5.0,
    ...     entry_latency_ns=10_000_000, cancel_latency_ns=10_000_000)
    >>> order = RouteOrder(intent_id="i1", symbol="BTCUSDT", side="buy", qty=1.0, reduce_only=False,
    ...     close_position=False, position_side="LONG", quote="USDT", tick_size=0.01, qty_step=0.001)
    >>> policy = RouterPolicy.from_static("BTCUSDT", router).with_arm("a", 1.0, 0.0, 1.0, 1)
    >>> settings = RouteSettings.from_config(router, poll_interval_ms=100.0, max_venue_retries=2,
    ...     rate_limit_backoff_ms=50.0, max_retry_after_ms=5000.0)
    >>> event = route(order, policy, venue, rng=np.random.default_rng(7), settings=settings)
    >>> event.routed_as, event.outcome, event.used_fallback, [(f.liquidity, f.price, f.qty) for f in event.fills]
    ('mixed', 'filled', True, [('maker', 99.99, 0.5), ('taker', 100.1, 0.5)])
    >>> event.reprice_count, event.cancel_count, round(event.cost_bps, 2)
    (1, 2, 3.0)
    """
    if policy.symbol != order.symbol:
        raise RouteRefused(f"{order.intent_id}: policy {policy.policy_id} routes {policy.symbol}, "
                           f"not {order.symbol}")
    return drive(route_machine(order, policy, settings, rng=rng), venue)


class Uniform(Protocol):
    """What the machine draws its maker/taker start from: ``random()`` uniform in [0, 1) (a numpy Generator)."""

    def random(self) -> float: ...


def route_machine(order: RouteOrder, policy: RouterPolicy, settings: RouteSettings, *,
                  rng: Uniform) -> Steps[RouterEvent]:
    """The route of ``order`` as a machine yielding venue calls; validated here, before anything is sent.

    Raises ``RouteRefused`` at once for input the router must not send; every run of the returned
    machine ends in exactly one ``RouterEvent``. ``rng`` is drawn when the machine decides its start.
    """
    if policy.symbol != order.symbol:
        raise RouteRefused(f"{order.intent_id}: policy {policy.policy_id} routes {policy.symbol}, "
                           f"not {order.symbol}")
    check_order(order, settings)
    return _Route(order, policy, settings).run(rng)


def maker_price(order: RouteOrder, touch: TopOfBook, offset_bps: float) -> float:
    """Post-only price ``offset_bps`` behind our touch, rounded away from crossing, never at the far touch."""
    tick = order.tick_size
    if order.side == "buy":
        price = round_price(touch.bid * (1.0 - offset_bps / 1e4), tick, up=False)
        # two ticks below the ask, the price is below the ask less a tick rounded down: no second rounding needed
        return price if price <= touch.ask - 2.0 * tick else min(price, round_price(touch.ask - tick, tick, up=False))
    price = round_price(touch.ask * (1.0 + offset_bps / 1e4), tick, up=True)
    return price if price >= touch.bid + 2.0 * tick else max(price, round_price(touch.bid + tick, tick, up=True))


def taker_limit_price(order: RouteOrder, arrival_mid: float, max_slippage_bps: float) -> float:
    """Marketable limit at arrival mid +/- the slippage cap, rounded toward less slippage."""
    if order.side == "buy":
        return round_price(arrival_mid * (1.0 + max_slippage_bps / 1e4), order.tick_size, up=False)
    return round_price(arrival_mid * (1.0 - max_slippage_bps / 1e4), order.tick_size, up=True)


class _Route:
    """One run of the state machine; all mutable state lives in the ledger and the leg counter."""

    def __init__(self, order: RouteOrder, policy: RouterPolicy, settings: RouteSettings) -> None:
        self.order, self.policy, self.settings = order, policy, settings
        self.poll_ns = int(settings.poll_interval_ms * 1e6)
        self.legs = 0

    def run(self, rng: Uniform) -> Steps[RouterEvent]:
        contract = yield ContractOf(self.order.symbol)
        arrival_ts_ns: int = yield Now()
        touch = yield from self._retrying(Touch(self.order.symbol), idempotent=True)
        self.ledger = RouteLedger(order=self.order, arrival=touch, arrival_ts_ns=arrival_ts_ns, contract=contract)
        try:
            start = self._decide(touch, rng)
            if start == "maker":
                self.ledger.started_maker = True
                yield from self._maker_phase(touch)
            elif start == "taker":
                yield from self._taker_leg()
        except _RouteAbort as abort:
            self.ledger.error = str(abort)
            self.ledger.rejected = abort.rejected
        return self.ledger.to_event(self.policy, (yield Now()))

    # --- decisions ------------------------------------------------------------------------------

    def _decide(self, touch: TopOfBook, rng: Uniform) -> Start:
        policy = self.policy
        if not touch.ask > touch.bid > 0.0:
            self.ledger.error = f"crossed_or_locked_book(bid={touch.bid}, ask={touch.ask})"
            return "skip"
        spread_bps = touch.spread_bps
        if not policy.maker_first or spread_bps < policy.min_spread_bps:
            return "taker"
        if spread_bps > policy.max_spread_bps:
            if spread_bps / 2.0 <= policy.max_taker_slippage_bps:
                return "taker"
            self.ledger.error = (f"spread_too_wide(spread_bps={spread_bps:.3f} > max_spread_bps="
                                 f"{policy.max_spread_bps}, half spread beyond max_taker_slippage_bps="
                                 f"{policy.max_taker_slippage_bps})")
            return "skip"
        go_taker = bool(rng.random() < policy.taker_bias)
        self.ledger.route_propensity = policy.taker_bias if go_taker else 1.0 - policy.taker_bias
        return "taker" if go_taker else "maker"

    def _maker_phase(self, arrival: TopOfBook) -> Steps[None]:
        offset_bps = self.policy.maker_offset_bps
        touch: TopOfBook | None = arrival  # the first order prices off the arrival touch: no second read
        while self.ledger.remaining_qty() > 0.0:
            state = yield from self._post(offset_bps, touch)
            touch = None
            if state is None:
                break
            yield from self._rest(state)
            if self.ledger.remaining_qty() <= 0.0 or self.ledger.reprice_count >= self.policy.reprice_attempts:
                break
            self.ledger.reprice_count += 1
            offset_bps -= self.policy.reprice_step_bps
        yield from self._fallback()

    def _fallback(self) -> Steps[None]:
        if self.ledger.remaining_qty() <= 0.0 or self.policy.fallback_mode == "cancel":
            return
        self.ledger.used_fallback = True
        if self.policy.fallback_mode == "taker":
            yield from self._taker_leg()
            return
        state = yield from self._post(0.0, None)
        if state is not None:
            yield from self._rest(state)

    # --- legs -------------------------------------------------------------------------------------

    def _post(self, offset_bps: float, touch: TopOfBook | None) -> Steps[OrderState | None]:
        """A resting post-only order for the remainder, or ``None`` once the rejection budget is spent.

        ``touch`` is a touch just read (the arrival's); otherwise, and after every rejection, it is re-read.
        """
        while True:
            if touch is None:
                touch = yield from self._touch()
            if not touch.ask > touch.bid > 0.0:
                raise _RouteAbort(f"crossed_or_locked_book(bid={touch.bid}, ask={touch.ask}) while re-pricing",
                                  rejected=False)
            try:
                state = yield from self._place("limit", maker_price(self.order, touch, offset_bps),
                                               time_in_force="GTC", post_only=True)
            except PostOnlyRejected:
                state = None
            if state is not None and not (state.status in ("rejected", "expired") and not state.fills):
                return state
            self.ledger.post_only_reject_count += 1
            if self.ledger.post_only_reject_count > self.policy.post_only_retry_limit:
                return None
            touch = None

    def _rest(self, state: OrderState) -> Steps[None]:
        """Wait up to the TTL for news of the order (pushed, or polled); cancel whatever still rests."""
        deadline_ns = (yield Now()) + int(self.policy.maker_ttl_ms * 1e6)
        while not state.is_terminal and (yield Now()) < deadline_ns:
            state = yield from self._news(state, deadline_ns)
        if not state.is_terminal:
            yield from self._cancel(state.client_order_id)

    def _taker_leg(self) -> Steps[None]:
        """One IOC limit for the remainder, capped at ``max_taker_slippage_bps`` from the arrival mid."""
        cap_bps = self.policy.max_taker_slippage_bps
        price = taker_limit_price(self.order, self.ledger.arrival.mid, cap_bps)
        state = yield from self._place("limit", price, time_in_force="IOC", post_only=False)
        if state.status == "rejected":
            self.ledger.error = f"taker leg {state.client_order_id} rejected by the venue"
            self.ledger.rejected = True
            return
        state = yield from self._final_ioc(state)
        if state.filled_qty <= 0.0 and not state.fills:
            self.ledger.error = f"taker_leg_unfilled_within_slippage_cap({cap_bps}bps)"

    def _final_ioc(self, state: OrderState) -> Steps[OrderState]:
        """The final state of an IOC order: polled while the venue still matches it, cancelled if it lingers."""
        for _ in range(self.settings.max_venue_retries):
            if state.is_terminal:
                return state
            state = yield from self._news(state, (yield Now()) + self.poll_ns)
        if state.is_terminal:
            return state
        return (yield from self._cancel(state.client_order_id))

    # --- venue calls ------------------------------------------------------------------------------

    def _place(self, order_type: OrderType, price: float | None, *, time_in_force: TimeInForce,
               post_only: bool) -> Steps[OrderState]:
        """Send one order for the remainder; an unknown outcome (a timeout, a lost connection) is resolved by its
        client order id. An order the venue does not know then is not sent again: it may rest, or have filled, at a
        venue whose order query lags its matching (a second order would rest as an orphan or fill twice), so the
        route ends with the error and the executor settles the intent's legs. A live venue resends once under the
        same id itself, which the exchange refuses as a duplicate (``router.venues.ccxt.core``)."""
        self.legs += 1
        client_id = client_order_id(self.order.intent_id, self.legs)
        req = request(self.order, client_id=client_id, qty=self.ledger.remaining_qty(), order_type=order_type,
                      price=price, time_in_force=time_in_force, post_only=post_only)
        self.ledger.expect(req)
        try:
            state = yield from self._retrying(Place(req), idempotent=False)
        except (VenueTimeout, VenueUnavailable) as exc:
            found = yield from self._resolve(client_id)
            if found is None:
                raise _RouteAbort(f"order {client_id}: outcome unknown ({type(exc).__name__}: {exc}) and the venue "
                                  "does not know it; not sent again (one that rests or filled may not show yet in "
                                  "the venue's order query, and a second would rest as an orphan or fill twice)",
                                  rejected=False) from exc
            state = found
        except PostOnlyRejected:
            raise
        except (InsufficientMargin, BelowMinNotional) as exc:
            raise _RouteAbort(f"{type(exc).__name__}: {exc}", rejected=True) from exc
        except RateLimited as exc:
            raise _RouteAbort(f"RateLimited, not retried further (at most {self.settings.max_venue_retries} retries, "
                              f"waits up to max_retry_after_ms {self.settings.max_retry_after_ms:g}): {exc}",
                              rejected=False) from exc
        except VenueError as exc:
            raise _RouteAbort(f"{type(exc).__name__}: {exc}", rejected=True) from exc
        self._observe(state)
        return state

    def _observe(self, state: OrderState) -> None:
        """Record a state; a venue that breaks its own protocol ends the route (the event keeps the error)."""
        try:
            self.ledger.observe(state)
        except VenueProtocolError as exc:
            raise _RouteAbort(f"VenueProtocolError: {exc}; order may still rest", rejected=False) from exc

    def _news(self, seen: OrderState, until_ns: int) -> Steps[OrderState]:
        """The order's state after waiting for news of it (a state other than ``seen``) until ``until_ns``
        (a poll when nothing is pushed).

        A simulated clock may fail (its replay ended) and that ends the route.
        """
        client_id = seen.client_order_id
        try:
            news = yield WaitUntil(until_ns, OrderRef(self.order.symbol, client_id), self.poll_ns, seen)
        except VenueError as exc:
            raise _RouteAbort(f"clock stopped: {type(exc).__name__}: {exc}", rejected=False) from exc
        if news is None:
            return (yield from self._fetch(client_id))
        self._observe(news)
        return news

    def _touch(self) -> Steps[TopOfBook]:
        try:
            return (yield from self._retrying(Touch(self.order.symbol), idempotent=True))
        except VenueError as exc:
            raise _RouteAbort(f"touch unavailable while re-pricing: {type(exc).__name__}: {exc}",
                              rejected=False) from exc

    def _resolve(self, client_id: str) -> Steps[OrderState | None]:
        """The state of an order whose placement timed out, or ``None`` if the venue never got it."""
        try:
            return (yield from self._retrying(Fetch(self.order.symbol, client_id), idempotent=True))
        except OrderNotFound:
            return None
        except VenueError as exc:
            raise _RouteAbort(f"order {client_id} unresolved after a timeout: {type(exc).__name__}: {exc}",
                              rejected=False) from exc

    def _fetch(self, client_id: str) -> Steps[OrderState]:
        try:
            state = yield from self._retrying(Fetch(self.order.symbol, client_id), idempotent=True)
        except VenueError as exc:
            raise _RouteAbort(f"status of {client_id} unknown: {type(exc).__name__}: {exc}",
                              rejected=False) from exc
        self._observe(state)
        return state

    def _cancel(self, client_id: str) -> Steps[OrderState]:
        """Cancel and return the final state (fills that raced the cancel included, each once)."""
        self.ledger.cancel_count += 1
        retries = self.settings.max_venue_retries
        for _ in range(retries + 1):
            try:
                state = yield from self._retrying(Cancel(self.order.symbol, client_id), idempotent=False)
            except (VenueTimeout, VenueUnavailable, OrderNotFound):
                state = yield from self._fetch(client_id)
                if not state.is_terminal:
                    continue
            except VenueError as exc:
                raise _RouteAbort(f"cancel of {client_id} failed, order may still rest: "
                                  f"{type(exc).__name__}: {exc}", rejected=False) from exc
            break
        else:
            raise _RouteAbort(f"cancel of {client_id} not confirmed after {retries + 1} attempts; "
                              f"order may still rest", rejected=False)
        self._observe(state)
        for _ in range(retries):
            if state.is_terminal:
                return state
            state = yield from self._news(state, (yield Now()) + self.poll_ns)
        if not state.is_terminal:
            raise _RouteAbort(f"cancel of {client_id} acknowledged but not final after {retries} polls",
                              rejected=False)
        return state

    def _retrying(self, call: VenueCall, *, idempotent: bool) -> Steps[Any]:
        """``call``'s reply, backing off on the venue clock after rate limits; reads also retry lost answers.

        A write (place, cancel) is not repeated after a timeout or a dropped connection: its effect is
        unknown and the caller resolves it by client order id instead.
        """
        retryable = _RETRY_READ if idempotent else _RETRY_WRITE
        attempt = 0
        while True:
            try:
                return (yield call)
            except retryable as exc:
                hint_ms = exc.retry_after_s * 1e3 if isinstance(exc, RateLimited) and exc.retry_after_s else 0.0
                if attempt >= self.settings.max_venue_retries or hint_ms > self.settings.max_retry_after_ms:
                    raise
                delay_ms = max(hint_ms, self.settings.rate_limit_backoff_ms * 2**attempt)
                yield WaitUntil((yield Now()) + int(delay_ms * 1e6), None, self.poll_ns)
                attempt += 1
