"""A local fake of Binance USDⓈ-M's user data stream, fed by the REST fake's orders: ccxt.pro runs for real.

It answers the listen-key endpoints on the REST fake (``POST``/``PUT``/``DELETE /fapi/v1/listenKey``, API-key
header required: a POST returns the account's active key or a new one, a PUT on an expired or deleted key is
Binance's -1125) and serves the stream on 127.0.0.1 at the paths ccxt.pro and Binance use
(``/private/ws?listenKey=K``, ``/ws/K``). Every order change of ``FakeBinanceUsdm`` (new, each trade, cancel,
IOC expiry) is pushed to the connections of the active key as an ``ORDER_TRADE_UPDATE`` with Binance's
field set, in order. Faults as a live venue shows them: drop the connections, refuse reconnects (a gap:
events meanwhile are lost, as on Binance), expire the key (``listenKeyExpired`` is pushed and the
connection stays open but silent, as Binance documents), send an update twice, swap two updates, and
report a fill under another order. The server runs aiohttp on its own loop in a thread. Its public paths
(a ``public`` or ``market`` segment: where ccxt.pro sends ``watch_bids_asks``) are served by ``market``, a
``FakeBinanceWs`` on the same server: one ``ws_url`` carries both, as Binance's one host does.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from decimal import Decimal
from typing import Any

from aiohttp import WSMsgType, web

from tests.fakes.binance_usdm import BinanceUsdmError, FakeBinanceUsdm, FakeOrder
from tests.fakes.binance_ws import FakeBinanceWs, listen

LISTEN_KEY_PATH = "/fapi/v1/listenKey"


def order_trade_update(order: FakeOrder, execution_type: str, trade: dict[str, Any] | None,
                       event_ms: int) -> dict[str, Any]:
    """An ``ORDER_TRADE_UPDATE`` event as Binance USDⓈ-M pushes it (``n``/``N`` only with a commission)."""
    avg = order.cum_quote / order.executed_qty if order.executed_qty else Decimal(0)
    body: dict[str, Any] = {
        "s": order.symbol, "c": order.client_order_id, "S": order.side, "o": order.order_type,
        "f": order.time_in_force, "q": str(order.orig_qty),
        "p": str(order.price) if order.order_type == "LIMIT" else "0", "ap": str(avg), "sp": "0",
        "x": execution_type, "X": order.status, "i": order.order_id,
        "l": trade["qty"] if trade else "0", "z": str(order.executed_qty), "L": trade["price"] if trade else "0",
        "T": trade["time"] if trade else order.update_ms, "t": trade["id"] if trade else 0, "b": "0", "a": "0",
        "m": bool(trade["maker"]) if trade else False, "R": order.reduce_only, "wt": "CONTRACT_PRICE",
        "ot": order.order_type, "ps": order.position_side, "cp": False, "rp": "0", "pP": False, "si": 0, "ss": 0,
        "V": "EXPIRE_MAKER", "pm": "NONE", "gtd": 0,
    }
    if trade:
        body["N"], body["n"] = trade["commissionAsset"], trade["commission"]
    return {"e": "ORDER_TRADE_UPDATE", "E": event_ms, "T": body["T"], "o": body}


class FakeUserDataStream:
    """The user data stream of ``rest``'s account: start it as a context manager inside the REST fake's."""

    def __init__(self, rest: FakeBinanceUsdm) -> None:
        self.rest = rest
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self.market = FakeBinanceWs(host_loop=self._loop)
        self._runner: web.AppRunner | None = None
        self._port = 0
        self._lock = threading.Lock()
        self._sockets: dict[web.WebSocketResponse, str] = {}
        self._outbox: asyncio.Queue[tuple[str, str] | None] | None = None
        self._sender: asyncio.Task[None] | None = None
        self._key_serial = 0
        self.active_key: str | None = None
        self.refusing = False
        self.connections_opened = 0
        self.keepalive_puts = 0
        self.key_posts = 0
        self.events_sent = 0
        self._duplicate_next = 0
        self._swap_next = False
        self._held: dict[str, Any] | None = None
        self._misreport_under: str | None = None

    @property
    def ws_url(self) -> str:
        """The websocket base in ccxt's ``urls['api']['ws']`` form (ccxt appends ``/private/ws?listenKey=``)."""
        return f"ws://127.0.0.1:{self._port}/ws"

    def __enter__(self) -> FakeUserDataStream:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(timeout=10)
        with self.rest.state.lock:
            self.rest.state.order_listeners.append(self._on_order)
            routes = self.rest.state.extra_routes
            routes[("POST", LISTEN_KEY_PATH)] = self._post_key
            routes[("PUT", LISTEN_KEY_PATH)] = self._put_key
            routes[("DELETE", LISTEN_KEY_PATH)] = self._delete_key
        return self

    def __exit__(self, *exc: object) -> None:
        with self.rest.state.lock:
            self.rest.state.order_listeners.remove(self._on_order)
            for method in ("POST", "PUT", "DELETE"):
                self.rest.state.extra_routes.pop((method, LISTEN_KEY_PATH), None)
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    # ----- scripting (called from the test thread) ---------------------------------------------------
    def connected(self) -> int:
        """Open connections on the active listen key (the ones that receive updates)."""
        with self._lock:
            return sum(1 for key in self._sockets.values() if key == self.active_key)

    def wait_connected(self, timeout_s: float, at_least: int = 1) -> None:
        deadline = time.monotonic() + timeout_s
        while self.connected() < at_least:
            if time.monotonic() > deadline:
                raise TimeoutError(f"no user-stream connection on the active listen key within {timeout_s} s")
            time.sleep(0.005)

    def drop(self) -> int:
        """Close (as the server) every user-stream connection; return how many were closed."""
        return asyncio.run_coroutine_threadsafe(self._close_where(lambda key: True), self._loop).result(timeout=10)

    def refuse_connections(self, refusing: bool) -> None:
        """While refusing, handshakes are answered 503: together with ``drop`` this opens a gap."""
        with self._lock:
            self.refusing = refusing

    def expire_listen_key(self) -> None:
        """The active key expires: ``listenKeyExpired`` is pushed, its connections stay open but get nothing."""
        with self.rest.state.lock, self._lock:
            key = self.active_key
            if key is None:
                raise RuntimeError("no active listen key to expire")
            self.active_key = None
        payload = {"e": "listenKeyExpired", "E": _now_ms(), "listenKey": key}
        self._loop.call_soon_threadsafe(self._put, key, json.dumps(payload))

    def duplicate_next(self, count: int) -> None:
        """Send each of the next ``count`` order updates twice."""
        with self._lock:
            self._duplicate_next += count

    def swap_next(self) -> None:
        """Hold the next order update and send it after the one that follows it."""
        with self._lock:
            self._swap_next = True

    def report_next_fill_under(self, client_order_id: str) -> None:
        """Push the next fill (trade fields) in an update naming order ``client_order_id`` instead of its own."""
        with self._lock:
            self._misreport_under = client_order_id

    # ----- listen-key endpoints (called by the REST fake under its lock) -----------------------------
    def _check_key_header(self, api_key: str | None) -> None:
        if api_key != self.rest.api_key:
            raise BinanceUsdmError(-2015, "Invalid API-key, IP, or permissions for action.", 401)

    def _post_key(self, params: dict[str, str], api_key: str | None) -> dict[str, Any]:
        self._check_key_header(api_key)
        with self._lock:
            self.key_posts += 1
            if self.active_key is None:
                self._key_serial += 1
                self.active_key = f"fakeListenKey{self._key_serial:04d}" + "x" * 47
            return {"listenKey": self.active_key}

    def _put_key(self, params: dict[str, str], api_key: str | None) -> dict[str, Any]:
        self._check_key_header(api_key)
        with self._lock:
            if self.active_key is None:
                raise BinanceUsdmError(-1125, "This listenKey does not exist.")
            self.keepalive_puts += 1
            return {"listenKey": self.active_key}

    def _delete_key(self, params: dict[str, str], api_key: str | None) -> dict[str, Any]:
        self._check_key_header(api_key)
        with self._lock:
            key, self.active_key = self.active_key, None
        if key is not None:
            asyncio.run_coroutine_threadsafe(self._close_where(lambda k: k == key), self._loop)
        return {}

    # ----- order updates -----------------------------------------------------------------------------
    def _on_order(self, order: FakeOrder, execution_type: str, trade: dict[str, Any] | None) -> None:
        """Called under the REST fake's lock at every order change: the update, faults applied, in order."""
        event = order_trade_update(order, execution_type, trade, _now_ms())
        with self._lock:
            key = self.active_key
            if trade is not None and self._misreport_under is not None:
                other = self.rest.state.orders[self._misreport_under]
                shown = order_trade_update(other, "TRADE", trade, event["E"])
                event = {**shown, "o": {**shown["o"], "x": "TRADE"}}
                self._misreport_under = None
            copies = 1
            if self._duplicate_next:
                self._duplicate_next -= 1
                copies = 2
            outgoing: list[dict[str, Any]] = []
            if self._swap_next:
                self._swap_next = False
                self._held = event
            elif self._held is not None:
                outgoing, self._held = [event, self._held], None
            else:
                outgoing = [event]
        if key is None:
            return
        for payload in outgoing:
            for _ in range(copies):
                self._loop.call_soon_threadsafe(self._put, key, json.dumps(payload))

    def _put(self, key: str, text: str) -> None:
        if self._outbox is not None:
            self._outbox.put_nowait((key, text))

    async def _send_loop(self) -> None:
        assert self._outbox is not None
        while (item := await self._outbox.get()) is not None:
            key, text = item
            with self._lock:
                targets = [ws for ws, k in self._sockets.items() if k == key]
                self.events_sent += len(targets)
            for ws in targets:
                try:
                    await ws.send_str(text)
                except ConnectionError:
                    continue

    # ----- server ------------------------------------------------------------------------------------
    async def _start(self) -> None:
        self._outbox = asyncio.Queue()
        self._sender = asyncio.create_task(self._send_loop())
        self._runner, self._port = await listen(self._handle)

    async def _stop(self) -> None:
        assert self._outbox is not None and self._sender is not None
        self._outbox.put_nowait(None)
        await self._sender
        await self._close_where(lambda key: True)
        await self.market.close_all()
        if self._runner is not None:
            await self._runner.cleanup()

    async def _close_where(self, match: Any) -> int:
        with self._lock:
            targets = [ws for ws, key in self._sockets.items() if match(key)]
        for ws in targets:
            await ws.close()
        return len(targets)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        parts = [p for p in request.path.split("/") if p]
        if {"public", "market"} & set(parts):
            return await self.market.handle(request)
        key = request.query.get("listenKey") or (parts[-1] if len(parts) >= 2 and parts[-2] == "ws" else None)
        with self._lock:
            refusing, active = self.refusing, self.active_key
        if refusing:
            raise web.HTTPServiceUnavailable(text="user data stream unavailable")
        if key is None or key != active:
            raise web.HTTPBadRequest(text=f"invalid listen key {key!r}")
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        with self._lock:
            self._sockets[ws] = key
            self.connections_opened += 1
        try:
            async for msg in ws:
                if msg.type == WSMsgType.ERROR:
                    break
        finally:
            with self._lock:
                self._sockets.pop(ws, None)
        return ws


def _now_ms() -> int:
    return time.time_ns() // 1_000_000
