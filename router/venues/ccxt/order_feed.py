"""Order updates pushed by the venue (ccxt.pro ``watch_orders``), with REST as the fallback and the referee.

A route waits on ``wait`` (``router.routing.aio.OrderUpdates``, what the asyncio driver awaits) instead of
polling: it returns as soon as news of that order arrives.
The feed merges every report (stream or REST) into one state per order so that what a route sees is
always safe to act on:

- each fill counts once (by trade id), however often the stream or REST repeats it;
- out of order is harmless: the filled quantity never goes back, and a terminal status wins;
- a report that breaks the venue's own rule (the fills reported for an order exceed its cumulative
  filled quantity: a fill reported under another order) is not believed: the order is re-read by REST and
  the violation counted; fills the stream owes (cumulative above the fills seen) are fetched by REST too;
- a report that cannot be read (a status the venue never sends, another program's order on a market we do not
  know) is logged and skipped, and a followed order re-read by REST: it does not take the stream down. A fee in an
  asset no market prices in our quote does not make a report unreadable: the fill counts, its fee named in the
  state's ``unpriced_fees`` (``router.venue.UnpricedFee``) for the route to flag;
- after a (re)connect, working orders are re-read by REST (open orders, and each tracked order that is no
  longer open), so fills that landed while the stream was down count, once;
- while the stream is down, tracked orders are polled by REST every ``poll_interval_ms``. ``status`` says
  which (``stream`` or ``polling``), since when, and how many reconnects: health and alerts read it.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import ccxt

from router_tuner.router.events import Fill
from router_tuner.router.venue import OrderState, OrderStatus, UnpricedFee, VenueError
from router_tuner.router.venues.ccxt.aio import AsyncCcxtVenue
from router_tuner.router.venues.ccxt.config import check_stream_settings
from router_tuner.router.venues.ccxt.parse import order_state

logger = logging.getLogger(__name__)

FeedMode = Literal["stream", "polling"]
UNFOLLOWED_KEPT = 4096
"""Stream reports of orders no route follows yet are kept (the newest this many): an order's first updates
(an IOC's whole life) can arrive before ``place_order`` returns and the route starts waiting on it."""
_OPEN_RANK: Mapping[str, int] = {"open": 0, "partially_filled": 1}


@dataclass(frozen=True, slots=True)
class FeedSettings:
    """REST polling interval while the stream is down, and the reconnect back-off (doubling, capped)."""

    poll_interval_ms: float
    reconnect_initial_ms: float
    reconnect_max_ms: float

    def __post_init__(self) -> None:
        check_stream_settings(self, "poll_interval_ms")


@dataclass(frozen=True, slots=True)
class FeedStatus:
    """How order news arrives now: ``mode`` since ``since_ns`` (wall ns), with counters for health/alerts."""

    mode: FeedMode
    since_ns: int
    reconnects: int
    protocol_violations: int
    last_error: str | None


@dataclass(slots=True)
class TrackedOrder:
    """One followed order: its merged state, the fills by trade id, and the waiter's wake-up."""

    symbol: str
    state: OrderState | None = None
    fills: dict[str, Fill] = field(default_factory=dict)
    unpriced: dict[str, UnpricedFee] = field(default_factory=dict)
    disbelieved: set[str] = field(default_factory=set)
    version: int = 0
    answered: int = 0
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    rereading: bool = False
    followed: bool = False

    def merge(self, incoming: OrderState, from_rest: bool) -> bool:
        """Fold one report into the state; wake the waiter and say True if anything changed. REST is the
        referee: a fill it lists under the order is believed even if the stream's report of it was not."""
        if from_rest:
            self.disbelieved.difference_update(f.trade_id for f in incoming.fills)
        unpriced = {fee.trade_id: fee for fee in incoming.unpriced_fees}
        for fill in incoming.fills:
            if fill.trade_id not in self.fills and fill.trade_id not in self.disbelieved:
                self.fills[fill.trade_id] = fill  # kept as first read, with its fee unpriced if it was then
                if fill.trade_id in unpriced:
                    self.unpriced[fill.trade_id] = unpriced[fill.trade_id]
        current = self.state
        fills = tuple(sorted(self.fills.values(), key=lambda f: (f.ts_ns, f.trade_id)))
        merged = OrderState(
            client_order_id=incoming.client_order_id,
            symbol=incoming.symbol,
            status=incoming.status if current is None else merge_status(current.status, incoming.status),
            qty=incoming.qty,
            filled_qty=max(incoming.filled_qty, current.filled_qty if current is not None else 0.0),
            price=incoming.price if incoming.price is not None or current is None else current.price,
            fills=fills,
            unpriced_fees=tuple(self.unpriced[f.trade_id] for f in fills if f.trade_id in self.unpriced),
        )
        if merged == current:
            return False
        self.state = merged
        self.version += 1
        self.changed.set()
        return True


def merge_status(current: OrderStatus, incoming: OrderStatus) -> OrderStatus:
    """A terminal status wins (the first one); otherwise the order only moves forward."""
    if current not in _OPEN_RANK:
        return current
    if incoming not in _OPEN_RANK:
        return incoming
    return current if _OPEN_RANK[current] >= _OPEN_RANK[incoming] else incoming


class StreamOrderFeed:
    """``router.routing.aio.OrderUpdates`` from a venue's user-data stream, REST polling while it is down.

    ``await start()`` before use and ``await close()`` after; ``status`` is for health and alerts.
    """

    def __init__(self, venue: AsyncCcxtVenue, settings: FeedSettings) -> None:
        self._venue = venue
        self._settings = settings
        self._orders: dict[str, TrackedOrder] = {}
        self._mode: FeedMode = "polling"
        self._since_ns = time.time_ns()
        self._connects = 0
        self._violations = 0
        self._last_error: str | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._rereads: set[asyncio.Task[None]] = set()

    @property
    def status(self) -> FeedStatus:
        return FeedStatus(self._mode, self._since_ns, max(self._connects - 1, 0), self._violations,
                          self._last_error)

    async def start(self) -> None:
        self._tasks = [asyncio.create_task(self._stream_loop(), name="order-feed:stream"),
                       asyncio.create_task(self._poll_loop(), name="order-feed:poll"),
                       asyncio.create_task(self._keep_alive_loop(), name="order-feed:keep-alive")]

    async def close(self) -> None:
        for task in (*self._tasks, *self._rereads):
            task.cancel()
        await asyncio.gather(*self._tasks, *self._rereads, return_exceptions=True)
        self._tasks = []

    def track(self, symbol: str, client_order_id: str) -> None:
        """Follow an order from now on (a ``wait`` does it too): polled and re-read with the others."""
        self._tracked(symbol, client_order_id)

    def forget(self, client_order_id: str) -> None:
        """Stop following an order whose route is done."""
        self._orders.pop(client_order_id, None)

    def current(self, client_order_id: str) -> OrderState | None:
        """The merged state of a followed order, without waiting."""
        tracked = self._orders.get(client_order_id)
        return tracked.state if tracked is not None else None

    async def wait(self, symbol: str, client_order_id: str, until_ns: int) -> OrderState | None:
        tracked = self._tracked(symbol, client_order_id)
        while True:
            if tracked.state is not None and tracked.version > tracked.answered:
                tracked.answered = tracked.version
                return tracked.state
            remaining_s = (until_ns - time.time_ns()) / 1e9
            if remaining_s <= 0:
                return None
            tracked.changed.clear()
            try:
                await asyncio.wait_for(tracked.changed.wait(), remaining_s)
            except TimeoutError:
                return None

    # ----- merging ---------------------------------------------------------------------------------
    def _tracked(self, symbol: str, client_order_id: str) -> TrackedOrder:
        tracked = self._orders.get(client_order_id)
        if tracked is None:
            tracked = self._orders[client_order_id] = TrackedOrder(symbol)
        elif tracked.symbol != symbol:
            raise ValueError(f"order {client_order_id!r} is followed under {tracked.symbol}, asked under {symbol}")
        tracked.followed = True
        return tracked

    def _reported(self, symbol: str, client_order_id: str) -> TrackedOrder:
        """The entry a stream report goes to; unfollowed ones are kept up to ``UNFOLLOWED_KEPT``, oldest out."""
        tracked = self._orders.get(client_order_id)
        if tracked is not None:
            return tracked
        unfollowed = [cid for cid, t in self._orders.items() if not t.followed]
        for cid in unfollowed[: max(len(unfollowed) - UNFOLLOWED_KEPT + 1, 0)]:
            del self._orders[cid]
        tracked = self._orders[client_order_id] = TrackedOrder(symbol)
        return tracked

    def _reread(self, client_order_id: str) -> None:
        """Re-read one order by REST in the background (once at a time per order)."""
        tracked = self._orders.get(client_order_id)
        if tracked is None or tracked.rereading:
            return
        tracked.rereading = True
        task = asyncio.create_task(self._reread_now(client_order_id, tracked))
        self._rereads.add(task)
        task.add_done_callback(self._rereads.discard)

    async def _reread_now(self, client_order_id: str, tracked: TrackedOrder) -> None:
        try:
            tracked.merge(await self._venue.fetch_order(tracked.symbol, client_order_id), from_rest=True)
        except VenueError as exc:
            logger.warning("%s: re-reading %s by REST failed: %s", self._venue.name, client_order_id, exc)
        finally:
            tracked.rereading = False

    # ----- the stream --------------------------------------------------------------------------------
    async def _stream_loop(self) -> None:
        delay_ms = self._settings.reconnect_initial_ms
        while True:
            await self._venue.quiet()  # a (re)connect asks the venue for a listen key: not during a ban
            watch = asyncio.ensure_future(self._venue.exchange.watch_orders())
            try:
                await self._until_connected(watch)
                self._connects += 1
                await self._recover_gap()
                self._set_mode("stream", None)
                delay_ms = self._settings.reconnect_initial_ms
                while True:
                    orders = await watch
                    watch = asyncio.ensure_future(self._venue.exchange.watch_orders())
                    for order in orders:
                        await self._read_report(order)
            except (ccxt.BaseError, VenueError) as exc:
                watch.cancel()
                self._set_mode("polling", f"{type(exc).__name__}: {exc}")
                await asyncio.sleep(delay_ms / 1000)
                delay_ms = min(delay_ms * 2, self._settings.reconnect_max_ms)
            except asyncio.CancelledError:
                watch.cancel()
                raise

    async def _until_connected(self, watch: asyncio.Future[Any]) -> None:
        """Wait until the watch's websocket is open (or the watch fails or returns first)."""
        while not watch.done():
            for client in list(self._venue.exchange.clients.values()):
                connected = client.connected
                if "orders" in client.futures and connected.done() and connected.exception() is None:
                    return
            await asyncio.sleep(0.005)
        watch.result()  # raises the watch's error; a result means the stream is up and delivering

    async def _recover_gap(self) -> None:
        """Re-read every followed working order by REST: what changed while the stream was down counts."""
        working = {cid: t for cid, t in self._orders.items()
                   if t.followed and (t.state is None or not t.state.is_terminal)}
        for symbol in sorted({t.symbol for t in working.values()}):
            open_now = {s.client_order_id: s for s in await self._venue.open_orders(symbol)}
            for cid, tracked in working.items():
                if tracked.symbol != symbol:
                    continue
                if cid in open_now:
                    tracked.merge(open_now[cid], from_rest=True)
                else:
                    self._reread(cid)

    async def _read_report(self, order: Mapping[str, Any]) -> None:
        """One stream report. One that cannot be read (a status the venue never sends) says nothing about the stream:
        logged on one line and skipped, a followed order re-read by REST; it used to take the stream down, also for an
        order of another program on the account. A fee no market prices in our quote is no longer unreadable: the
        fill counts and the fee is named (``VenueCore.fills_of_trades``)."""
        try:
            await self._on_stream_order(order)
        except VenueError as exc:
            cid = str(order.get("clientOrderId"))
            tracked = self._orders.get(cid)
            followed = tracked is not None and tracked.followed
            logger.warning("%s: stream report of %s not read (%s: %s); %s", self._venue.name, cid, type(exc).__name__,
                           exc, "re-reading it by REST" if followed else "not followed: skipped")
            if followed:
                self._reread(cid)

    async def _on_stream_order(self, order: Mapping[str, Any]) -> None:
        cid = order["clientOrderId"]  # Binance gives every order one (its own when none was sent)
        market = self._venue.exchange.market(order["symbol"])
        tracked = self._reported(market["id"], str(cid))
        trades = _stream_trades(self._venue.exchange, order, market)
        new = [t for t in trades if str(t["id"]) not in tracked.fills and str(t["id"]) not in tracked.disbelieved]
        filled = max(float(order.get("filled") or 0.0), tracked.state.filled_qty if tracked.state else 0.0)
        fills_qty = math.fsum(f.qty for f in tracked.fills.values()) + math.fsum(float(t["amount"]) for t in new)
        if fills_qty > filled * (1 + 1e-9) + 1e-12:
            self._violations += 1
            tracked.disbelieved.update(str(t["id"]) for t in new)
            logger.warning("%s: stream reported fills %s of %.12g under %s, which has filled %.12g: re-reading "
                           "it by REST", self._venue.name, [t["id"] for t in new], fills_qty, cid, filled)
            new = []
            self._reread(str(cid))
        priced = await self._venue.run(self._venue.core.fills_of_trades(new, str(cid), market, time.time_ns()))
        tracked.merge(order_state(order, tracked.symbol, str(cid), priced.fills, priced.unpriced), from_rest=False)
        state = tracked.state
        if state is not None and math.fsum(f.qty for f in state.fills) < state.filled_qty * (1 - 1e-9):
            self._reread(str(cid))  # the stream owes fills (a conflated or misreported update): ask REST

    # ----- the fallback ------------------------------------------------------------------------------
    async def _poll_loop(self) -> None:
        while True:
            await asyncio.sleep(self._settings.poll_interval_ms / 1000)
            if self._mode != "polling":
                continue
            for cid, tracked in list(self._orders.items()):
                if tracked.followed and (tracked.state is None or not tracked.state.is_terminal):
                    self._reread(cid)

    async def _keep_alive_loop(self) -> None:
        """Renew the listen key every ``listen_key_refresh_ms`` while the stream is up."""
        while True:
            await asyncio.sleep(self._venue.listen_key_refresh_ms / 1000)
            if self._mode == "stream":
                await self._venue.renew_listen_key()

    def _set_mode(self, mode: FeedMode, error: str | None) -> None:
        if error is not None:
            self._last_error = error
        if mode == self._mode:
            return
        self._mode, self._since_ns = mode, time.time_ns()
        if mode == "polling":
            logger.warning("%s: order stream down (%s): polling REST every %.0f ms", self._venue.name, error,
                           self._settings.poll_interval_ms)
        else:
            logger.info("%s: order stream up (reconnects %d)", self._venue.name, self.status.reconnects)


def _stream_trades(exchange: Any, order: Mapping[str, Any], market: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The trades a stream update carries for its order: ccxt's accumulated ones plus the update's own."""
    trades = {str(t["id"]): t for t in order.get("trades") or [] if str(t.get("order")) == str(order["id"])}
    info = order.get("info") or {}
    if info.get("x") == "TRADE":
        own = exchange.parse_ws_trade(info, market)
        trades.setdefault(str(own["id"]), own)
    return list(trades.values())

