"""The recordings a data folder holds, of either kind a person brings: Binance captures or `record`'s own chunks.

Why both: ``router-tuner record --out D`` writes ``D/<SYMBOL>/chunk-NNNNNN.parquet`` (``router.market.record``),
and the main job, sweeps and benchmarks read recordings from a folder of Binance captures
(``<usdm|spot|cm>_<symbol>_<YYYYMMDD>.jsonl[.gz]``, ``router.market.binance``). Given ``record``'s folder they
found "no recorded Binance files": a market recorded with the product could be replayed in paper ``live`` only.
Both kinds are keyed the same way, ``<market>_<symbol>`` (``usdm_btcusdt``), by the exchange's symbol.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from router_tuner.config.models import EXCHANGE_MARKET
from router_tuner.router.market.binance import LoadedRecording, discover, read_binance
from router_tuner.router.market.parquet import tape_market
from router_tuner.router.market.record.buffer import RecordingError
from router_tuner.router.market.record.chunks import chunk_paths, read_recording
from router_tuner.router.market.summary import LoadSummary

LAYOUTS = ("Binance captures named <usdm|spot|cm>_<symbol>_<YYYYMMDD>.jsonl[.gz], e.g. usdm_btcusdt_20240808.jsonl.gz, "
           "or `router-tuner record` folders <SYMBOL>/chunk-NNNNNN.parquet")


def discover_recordings(data_dir: Path) -> dict[str, list[Path]]:
    """Map ``"<market>_<symbol>"`` to its files: a capture's days (:func:`router.market.binance.discover`), or a
    ``record`` folder's chunks in flush order. A market held both ways is refused (which to replay is unsaid)."""
    found = discover(data_dir)
    for folder in sorted(sub for sub in data_dir.iterdir() if sub.is_dir()):
        chunks = chunk_paths(folder)
        if not chunks:
            continue
        _, exchange = tape_market(chunks[0])
        market = EXCHANGE_MARKET.get(exchange)
        if market is None:
            raise RecordingError(f"{chunks[0]}: recorded on {exchange!r}, which the simulation does not know "
                                 f"(it replays {', '.join(sorted(EXCHANGE_MARKET))})")
        key = f"{market}_{folder.name.lower()}"
        if key in found:
            raise RecordingError(f"{data_dir} holds {market} {folder.name} twice, as Binance captures and as the "
                                 f"recorded folder {folder}: keep one of them in the folder")
        found[key] = chunks
    return found


def read_recorded(paths: Sequence[Path]) -> LoadedRecording:
    """One market's tape from the files :func:`discover_recordings` listed for it, with what was read."""
    if paths and Path(paths[0]).suffix == ".parquet":
        folder = Path(paths[0]).parent
        tape = read_recording(folder.parent, folder.name)
        read = Counter({"bookTicker": int(tape.quote_ts_ns.size), "trade": int(tape.trade_ts_ns.size)})
        summary = LoadSummary(symbol=tape.symbol, market=EXCHANGE_MARKET[tape.market], files=len(paths), read=read)
        return LoadedRecording(tape, summary)
    return read_binance(paths)
