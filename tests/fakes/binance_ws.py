"""A local fake of Binance USDⓈ-M's public market websocket: ccxt.pro's own subscription and parsing run.

It speaks the raw-stream endpoint (``/ws``, and the ``/public/ws``, ``/market/ws`` paths ccxt derives from
it, with any stream-index suffix): a client sends ``{"method": "SUBSCRIBE", "params": [...], "id": n}``
and is answered ``{"result": null, "id": n}``; afterwards every payload pushed for a subscribed stream
(``btcusdt@bookTicker``, ``btcusdt@trade``) is sent as the bare event JSON Binance sends on that endpoint.
Payload builders give the real field sets (bookTicker: e,u,s,b,B,a,A,T,E; trade: e,E,T,s,t,p,q,X,m).
The server runs aiohttp on its own event loop in a thread, bound to 127.0.0.1 on an ephemeral port;
tests drive it from synchronous code (``push``, ``drop``, ``wait_subscribed``). Hosted by another fake's
server (``FakeBinanceWs(host_loop=...)``, see ``tests.fakes.binance_user_ws``) it serves that server's public
paths instead, so one websocket base carries the market and the user-data streams as on Binance.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from aiohttp import WSMsgType, web


def book_ticker(symbol: str, update_id: int, bid: str, bid_qty: str, ask: str, ask_qty: str,
                ts_ms: int) -> dict[str, Any]:
    """A USDⓈ-M ``<symbol>@bookTicker`` event as Binance sends it (transaction and event time both set)."""
    return {"e": "bookTicker", "u": update_id, "s": symbol, "b": bid, "B": bid_qty, "a": ask, "A": ask_qty,
            "T": ts_ms, "E": ts_ms}


def trade(symbol: str, trade_id: int, price: str, qty: str, ts_ms: int, buyer_maker: bool) -> dict[str, Any]:
    """A USDⓈ-M ``<symbol>@trade`` event as Binance sends it."""
    return {"e": "trade", "E": ts_ms, "T": ts_ms, "s": symbol, "t": trade_id, "p": price, "q": qty,
            "X": "MARKET", "m": buyer_maker}


async def listen(handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> tuple[web.AppRunner, int]:
    """An aiohttp server on 127.0.0.1 (a free port) that answers every GET path with ``handler``; its port."""
    app = web.Application()
    app.router.add_get("/{tail:.*}", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]


class FakeBinanceWs:
    """The fake market-stream server: start it as a context manager, point ccxt's ws URLs at ``ws_url``."""

    def __init__(self, host_loop: asyncio.AbstractEventLoop | None = None) -> None:
        self._loop = host_loop if host_loop is not None else asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None
        self._port = 0
        self._lock = threading.Lock()
        self._sockets: dict[web.WebSocketResponse, set[str]] = {}
        self.subscribe_requests: list[dict[str, Any]] = []
        self.connections_opened = 0
        self.refusing = False

    @property
    def ws_url(self) -> str:
        """The raw-stream endpoint in ccxt's ``urls['api']['ws']`` form."""
        return f"ws://127.0.0.1:{self._port}/ws"

    def __enter__(self) -> FakeBinanceWs:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(timeout=10)
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    # ----- scripting (called from the test thread) ---------------------------------------------------
    def subscribed_streams(self) -> set[str]:
        """Streams subscribed on the currently open connections."""
        with self._lock:
            return set().union(*self._sockets.values()) if self._sockets else set()

    def wait_subscribed(self, streams: Iterable[str], timeout_s: float) -> None:
        """Block until every stream in ``streams`` is subscribed on an open connection."""
        wanted = set(streams)
        deadline = time.monotonic() + timeout_s
        while not wanted <= self.subscribed_streams():
            if time.monotonic() > deadline:
                raise TimeoutError(f"streams {sorted(wanted - self.subscribed_streams())} not subscribed "
                                   f"within {timeout_s} s")
            time.sleep(0.01)

    def push(self, stream: str, payloads: Iterable[dict[str, Any]], pace_s: float) -> int:
        """Send each payload to the connections subscribed to ``stream``, ``pace_s`` apart; return sockets hit.

        Pacing matters for quotes: ccxt hands a ticker watcher the latest quote per wake-up, so quotes sent
        back to back in one read may be conflated (see ``router.market.record.recorder``).
        """
        return asyncio.run_coroutine_threadsafe(self._push(stream, list(payloads), pace_s), self._loop).result(
            timeout=60)

    def refuse_connections(self, refusing: bool) -> None:
        """While refusing, handshakes are answered 503: with ``drop`` the stream stays down."""
        with self._lock:
            self.refusing = refusing

    def drop(self, stream: str) -> int:
        """Close (as the server) every connection carrying ``stream``; return how many were closed."""
        return asyncio.run_coroutine_threadsafe(self._drop(stream), self._loop).result(timeout=10)

    # ----- server ------------------------------------------------------------------------------------
    async def _start(self) -> None:
        self._runner, self._port = await listen(self.handle)

    async def _stop(self) -> None:
        await self.close_all()
        if self._runner is not None:
            await self._runner.cleanup()

    async def close_all(self) -> None:
        """Close every connection (on the serving loop): the hosting server's shutdown calls it too."""
        for ws in list(self._sockets):
            await ws.close()

    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        """Serve one websocket connection (the request handler, also called by a hosting server)."""
        path = request.path.rstrip("/").split("/")
        if "ws" not in path:
            raise web.HTTPNotFound(text=f"no websocket endpoint at {request.path}")
        with self._lock:
            if self.refusing:
                raise web.HTTPServiceUnavailable(text="market stream unavailable")
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        with self._lock:
            self._sockets[ws] = set()
            self.connections_opened += 1
        try:
            async for msg in ws:
                if msg.type != WSMsgType.TEXT:
                    continue
                request_body = json.loads(msg.data)
                await ws.send_str(json.dumps(self._answer(ws, request_body)))
        finally:
            with self._lock:
                self._sockets.pop(ws, None)
        return ws

    def _answer(self, ws: web.WebSocketResponse, body: dict[str, Any]) -> dict[str, Any]:
        method, params, req_id = body.get("method"), body.get("params"), body.get("id")
        if method != "SUBSCRIBE" or not isinstance(params, list) or not isinstance(req_id, int):
            # Binance's answer to a malformed request (code 2: invalid request).
            return {"error": {"code": 2, "msg": f"Invalid request: {body!r}"}, "id": req_id}
        with self._lock:
            self.subscribe_requests.append(body)
            self._sockets[ws].update(str(p) for p in params)
        return {"result": None, "id": req_id}

    async def _push(self, stream: str, payloads: list[dict[str, Any]], pace_s: float) -> int:
        with self._lock:
            targets = [ws for ws, streams in self._sockets.items() if stream in streams]
        for payload in payloads:
            text = json.dumps(payload)
            for ws in targets:
                await ws.send_str(text)
            if pace_s:
                await asyncio.sleep(pace_s)
        return len(targets)

    async def _drop(self, stream: str) -> int:
        with self._lock:
            targets = [ws for ws, streams in self._sockets.items() if stream in streams]
        for ws in targets:
            await ws.close()
        return len(targets)
