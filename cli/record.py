"""``router-tuner record``: record live quotes and trades of some symbols into Parquet tapes (ccxt.pro).

ccxt is imported inside ``run`` so the rest of the command line stays fast. ``--symbols`` takes the names
space-separated or comma-separated (``cli.main.SymbolList``, as in ``simulate``); ``--json`` prints the
per-symbol counts as one JSON object at the end. ``--api-url``/``--ws-url``
re-point the exchange's REST and websocket hosts (keeping ccxt's paths): for a proxy, or a local fake.
Every flag, the venue and the symbol names' form, and that ``--out`` can be written are checked before any
connection (exit 2); an exchange that refuses or does not answer is exit 1 (one line, ``cli.main``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from urllib.parse import urlsplit

from router_tuner.cli.main import SYMBOLS_RULE, BadInput, RunFailure, SymbolList, path_argument, probe_writable
from router_tuner.router.venues.ccxt.urls import repoint_urls

DEFAULT_FLUSH_INTERVAL_S = 60.0
DEFAULT_PROGRESS_INTERVAL_S = 10.0
DEFAULT_RECONNECT_INITIAL_MS = 250.0
DEFAULT_RECONNECT_MAX_MS = 30_000.0
DEFAULT_MAX_CONSECUTIVE_FAILURES = 20


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--venue", required=True, help="ccxt exchange id with a recording mapping (binanceusdm)")
    parser.add_argument("--symbols", required=True, nargs="+", action=SymbolList,
                        help=f"exchange market ids, {SYMBOLS_RULE}")
    parser.add_argument("--seconds", type=float, default=None, help="stop after this long (default: until Ctrl-C)")
    parser.add_argument("--out", type=path_argument, default=None,
                        help="output folder (default: recordings/<venue>-<UTC start time>); one sub-folder "
                             "per symbol of chunk-NNNNNN.parquet files; an existing folder is resumed")
    parser.add_argument("--flush-seconds", type=float, default=DEFAULT_FLUSH_INTERVAL_S,
                        help="write a chunk per symbol this often; a crash loses at most this much "
                             "(default: %(default)s)")
    parser.add_argument("--progress-seconds", type=float, default=DEFAULT_PROGRESS_INTERVAL_S,
                        help="print messages/s per symbol to stderr this often (default: %(default)s)")
    parser.add_argument("--reconnect-initial-ms", type=float, default=DEFAULT_RECONNECT_INITIAL_MS,
                        help="first reconnect delay, doubled per failure (default: %(default)s)")
    parser.add_argument("--reconnect-max-ms", type=float, default=DEFAULT_RECONNECT_MAX_MS,
                        help="reconnect delay cap (default: %(default)s)")
    parser.add_argument("--max-failures", type=int, default=DEFAULT_MAX_CONSECUTIVE_FAILURES,
                        help="give up after this many connection failures in a row (default: %(default)s)")
    parser.add_argument("--api-url", default=None, type=_base_url("http", "https"),
                        help="re-point REST endpoints to this base URL (http:// or https://)")
    parser.add_argument("--ws-url", default=None, type=_base_url("ws", "wss"),
                        help="re-point websocket endpoints to this base URL (ws:// or wss://)")
    parser.add_argument("--json", action="store_true",
                        help="print the per-symbol counts as one JSON object on stdout at the end (progress stays "
                             "on stderr; a failure is still one plain line on stderr)")


def _base_url(*schemes: str) -> Callable[[str], str]:
    """An argparse type: a base URL of one of ``schemes`` with a host (``junk`` used to reach ccxt as a request
    to ``junk/fapi/v1/exchangeInfo``, exit 1 as if the exchange had failed)."""
    def parse(text: str) -> str:
        url = urlsplit(text.strip())
        if url.scheme not in schemes or not url.hostname:
            raise argparse.ArgumentTypeError(f"{text!r} is not a URL of the form "
                                             f"{' or '.join(f'{s}://HOST' for s in schemes)}")
        return text.strip()
    return parse


def run(args: argparse.Namespace) -> int:
    import ccxt.pro

    from router_tuner.router.market.record.chunks import last_chunk
    from router_tuner.router.market.record.fields import record_fields_for
    from router_tuner.router.market.record.recorder import Recorder, RecorderConfig, RecordingError, RecordingSummary
    from router_tuner.router.venues.ccxt.quirks import quirks_for

    symbols = tuple(args.symbols)
    out = args.out or Path("recordings") / f"{args.venue}-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}"
    try:
        config = RecorderConfig(
            exchange_id=args.venue, symbols=symbols, out_dir=out, duration_s=args.seconds,
            flush_interval_s=args.flush_seconds, progress_interval_s=args.progress_seconds,
            reconnect_initial_ms=args.reconnect_initial_ms, reconnect_max_ms=args.reconnect_max_ms,
            max_consecutive_failures=args.max_failures)
        record_fields_for(args.venue)  # refuse an exchange without a raw-field mapping before connecting
        exchange_class = getattr(ccxt.pro, args.venue, None)
        if exchange_class is None:
            raise ValueError(f"ccxt.pro has no websocket exchange {args.venue!r}")
        exchange = exchange_class({"options": dict(quirks_for(args.venue).ccxt_options)})
        repoint_urls(exchange.urls, args.api_url, args.ws_url)
        recorder = Recorder(config, exchange, sys.stderr)
    except ValueError as exc:
        raise BadInput(str(exc)) from exc
    if out.exists() and not out.is_dir():
        raise BadInput(f"--out {out}: exists and is not a folder: name a folder (an existing one is resumed)")
    probe_writable(out)  # before connecting: a folder that cannot be written used to fail after the connection
    for symbol in symbols:  # the chunk a resume continues after: damaged or foreign, refused before connecting
        folder = out / symbol
        if folder.exists() and not folder.is_dir():  # it was "File exists: …" once the markets had loaded
            raise BadInput(f"--out {folder}: exists and is not a folder: each symbol's chunks are written in a folder "
                           "of its name; move that file away, or record into another --out")
        try:
            last_chunk(out / symbol, symbol)
        except RecordingError as error:
            raise BadInput(f"--out {error}") from error

    async def main() -> RecordingSummary:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        try:
            return await recorder.run(stop)
        finally:
            await exchange.close()

    try:
        summary = asyncio.run(main())
    except (RecordingError, ccxt.BaseError) as exc:
        raise RunFailure(f"{type(exc).__name__}: {exc}") from exc
    if args.json:
        print(json.dumps({"out_dir": str(summary.out_dir), "elapsed_s": summary.elapsed_s, "symbols": {
            name: {**asdict(stats), "rejected": summary.rejected[name], "folder": str(summary.out_dir / name)}
            for name, stats in summary.stats.items()}}, sort_keys=True))
        return 0
    for name, stats in summary.stats.items():
        print(f"{name}: {stats.quotes} quotes, {stats.trades} trades, {stats.gaps} gaps, "
              f"{summary.rejected[name]} rejected, {stats.chunks} chunks -> {summary.out_dir / name}")
    return 0
