"""What a recorded-data load read, used and skipped, per stream: the one line a person checks before trusting it.

Why it exists: a capture often carries more than the simulator reads (``markPrice@1s``, ``aggTrade``,
``forceOrder``, or a stream we have never seen). Skipping them silently would hide a capture that lacks
what the book needs; refusing them would make every richer capture unusable. So each is counted, and the
summary says which streams built the tape and which were skipped.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

USED_STREAMS = ("bookTicker", "depth", "snapshot", "trade", "aggTrade", "markPrice")
"""Streams the tape is built from (``snapshot`` is the REST depth snapshot line; ``aggTrade`` only without
``trade``)."""
KNOWN_SKIPPED_STREAMS = ("aggTrade", "forceOrder")
"""Documented Binance streams the simulator does not need: counted and skipped, never an error."""


@dataclass(slots=True)
class LoadSummary:
    """Per-stream message counts of one load (messages of the loaded symbol; others only counted).

    ``read`` counts every message of a used stream, ``depth_applied`` the depth diffs that went on the
    tape (the rest were older than a snapshot or waited past a gap), ``skipped`` the known streams the
    simulator does not read, ``unknown`` streams this loader does not know (skipped with a warning:
    they cannot change a book built from the used streams), and ``other_symbols`` messages of symbols
    not selected.
    """

    symbol: str = ""
    market: str = ""
    files: int = 0
    read: Counter[str] = field(default_factory=Counter)
    depth_applied: int = 0
    depth_gaps: int = 0
    depth_stale: int = 0
    depth_unused: str = ""
    """Why the depth read was not replayed, when it was not (the quotes alone are, as for a capture without depth)."""
    """Of ``depth_gaps``, the stretches where depth stopped while the quotes went on (the book unknown there)."""
    skipped: Counter[str] = field(default_factory=Counter)
    unknown: Counter[str] = field(default_factory=Counter)
    other_symbols: int = 0
    repeated: Counter[str] = field(default_factory=Counter)
    """Messages dropped because their update or trade id is not after the previous one of their stream: a line
    recorded twice, or out of order (Binance numbers each stream's messages in order)."""
    recv_units: dict[str, str] = field(default_factory=dict)
    """Files whose receive times are not in ns (another capture tool's ms or us), by name: read in that unit."""
    cut: list[str] = field(default_factory=list)
    """Where a file's end was cut short (an incomplete last line, a gzip stream without its end): used up to there."""
    overlaps: list[str] = field(default_factory=list)
    """Files of one symbol that overlap briefly in time (recorders handing over): read, the messages in both dropped."""
    event_units: dict[str, str] = field(default_factory=dict)
    """Files whose exchange event times ``E`` are not in ms (spot streams subscribed in us), by name: read in that
    unit."""
    quiet: list[str] = field(default_factory=list)
    """Where the quotes stopped for over a minute (the first three): replayed, a frozen book there."""

    def describe(self) -> str:
        """One line: ``usdm BTCUSDT, 1 file: used bookTicker 66089, ...; skipped aggTrade 900``."""
        used = ", ".join(f"{name} {self.read[name]}" + (
            f" ({self.depth_applied} applied, {self.depth_gaps} gaps)" if name == "depth" else
            " (as the trades: no trade stream)" if name == "aggTrade" else "")
            for name in USED_STREAMS if self.read[name])
        parts = [f"{self.market} {self.symbol}, {self.files} file{'s' if self.files != 1 else ''}: "
                 f"used {used or 'nothing'}"]
        if self.depth_stale:
            parts.append(f"DEPTH STOPPED while the quotes went on {self.depth_stale} time(s): book unknown from there "
                         "until a snapshot (quotes alone are replayed)")
        if self.depth_unused:
            parts.append(f"DEPTH NOT REPLAYED: {self.depth_unused} (the quotes alone are)")
        if self.skipped:
            parts.append("skipped " + ", ".join(f"{k} {v}" for k, v in sorted(self.skipped.items())))
        if self.unknown:
            parts.append("skipped unknown streams " + ", ".join(f"{k} {v}" for k, v in sorted(self.unknown.items())))
        if self.other_symbols:
            parts.append(f"skipped {self.other_symbols} messages of other symbols")
        if self.repeated:
            parts.append("DROPPED repeated or out-of-order messages (id not after the previous) "
                         + ", ".join(f"{k} {v}" for k, v in sorted(self.repeated.items())))
        parts.extend(f"receive times in {unit}: {name}" for name, unit in sorted(self.recv_units.items()))
        parts.extend(f"event times in {unit}: {name}" for name, unit in sorted(self.event_units.items()))
        parts.extend(f"CUT SHORT: {where}" for where in self.cut)
        parts.extend(f"OVERLAP: {where} (the messages recorded in both are read once)" for where in self.overlaps)
        parts.extend(f"QUIET: {where} (replayed as a frozen book)" for where in self.quiet)
        return "; ".join(parts)

    def to_dict(self) -> dict[str, object]:
        return {"symbol": self.symbol, "market": self.market, "files": self.files, "read": dict(self.read),
                "depth_applied": self.depth_applied, "depth_gaps": self.depth_gaps,
                "depth_stale": self.depth_stale, "depth_unused": self.depth_unused,
                "skipped": dict(self.skipped), "unknown": dict(self.unknown), "other_symbols": self.other_symbols,
                "repeated": dict(self.repeated), "recv_units": dict(self.recv_units), "cut": list(self.cut),
                "event_units": dict(self.event_units), "overlaps": list(self.overlaps),
                "quiet": list(self.quiet)}
