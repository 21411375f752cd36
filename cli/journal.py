"""``router-tuner journal``: look into a journal without writing to it.

``journal count`` prints how many records of each kind it holds; ``journal export`` writes one kind to
Parquet (:mod:`router.arrow_events`: nested fields as Arrow structs and lists, timestamps as UTC nanosecond
timestamps) for analysis in pandas, pyarrow or elsewhere, either
as one file (``--out``) or, for router events, as a dataset partitioned by UTC day and symbol
(``--partitioned DIR``, the layout partitioned OPE reads: :mod:`tuner.ope.partition.layout`). ``--json`` prints
the counts, or what an export wrote, as one JSON object on stdout. ``count`` says on stderr how many intent lines
``live --follow`` quarantined (the journal's dead letters), which no count includes.
Failures end in one line naming the journal (``cli.main``): exit 2 for a missing, foreign, corrupt or
truncated file, an unwritable ``--out``, an ``--out`` that exists and is not a Parquet file (it is kept) or an
existing ``--partitioned`` folder, 1 for a journal locked by another process.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from router_tuner.cli.main import (
    BadInput,
    distinct_files,
    path_argument,
    print_result,
    probe_writable,
    reading,
)
from router_tuner.config.encoding import escape_controls
from router_tuner.router.events import EVENT_TYPES, RouterEvent


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="journal_command", required=True, metavar="ACTION")
    count = actions.add_parser("count", help="records per kind", description="records per kind")
    count.add_argument("--journal", required=True, type=path_argument, help="journal SQLite file")
    count.add_argument("--json", action="store_true", help="print {kind: records} as one JSON object on stdout")
    export_help = "write one kind of record to a Parquet file or partitioned dataset"
    export = actions.add_parser("export", help=export_help, description=export_help)
    export.add_argument("--journal", required=True, type=path_argument, help="journal SQLite file")
    export.add_argument("--kind", required=True, choices=sorted(EVENT_TYPES), help="which records")
    target = export.add_mutually_exclusive_group(required=True)
    target.add_argument("--out", type=path_argument,
                        help="Parquet file to write (an earlier Parquet file is replaced atomically; any other file "
                             "there is refused)")
    target.add_argument("--partitioned", type=path_argument, metavar="DIR",
                        help="router events only: a new folder of DIR/day=YYYY-MM-DD/symbol=SYM/part-0.parquet "
                             "(appears whole or not at all; an existing DIR is refused)")
    export.add_argument("--json", action="store_true",
                        help="print what was written (kind, rows, out, partitions) as one JSON object on stdout")


def run(args: argparse.Namespace) -> int:
    from router_tuner.executor.journal import Journal

    partitioned = getattr(args, "partitioned", None)
    if partitioned is not None and args.kind != "router":
        raise BadInput(f"--partitioned exports router events only, not {args.kind}")
    if partitioned is not None and partitioned.exists():
        raise BadInput(f"{partitioned} already exists: choose a new folder (exports are never merged)")
    if partitioned is not None and partitioned.is_symlink():  # exists() is False for a link to nothing: the export
        # went on and ended "journal J: Not a directory: .LINK.tmp", blaming the journal
        raise BadInput(f"--partitioned {partitioned}: is a symbolic link (to {os.readlink(partitioned)}, which does "
                       "not exist): choose a new folder (a dataset is written as a new folder, not through a link)")
    if args.journal_command == "export":
        target = args.out if partitioned is None else partitioned
        distinct_files([("--journal", args.journal), ("--out" if partitioned is None else "--partitioned", target)])
        if partitioned is None:
            _refuse_replacing_foreign(args.out)
        probe_writable(target.parent)  # before the journal is read: a failure names the output, not the journal
    with reading("journal", args.journal), Journal(args.journal, readonly=True) as journal:
        if args.journal_command == "count":
            counts = {kind: journal.count(kind) for kind in sorted(EVENT_TYPES)}
            quarantined = journal.dead_letter_count()
        elif partitioned is not None:
            return _export_partitioned([e for e in journal.read("router") if isinstance(e, RouterEvent)],
                                       partitioned, as_json=args.json)
        else:
            rows = journal.export_parquet(args.kind, args.out)
    if args.journal_command == "count":  # printed outside the journal's reading(): a stdout failure is not its
        print_result(json.dumps(counts) if args.json else "\n".join(f"{k:<12}{n:>10}" for k, n in counts.items()))
        _note_quarantined(args.journal, quarantined)
        return 0
    if args.json:
        print_result(json.dumps({"kind": args.kind, "rows": rows, "out": str(args.out)}))
    else:
        print_result(f"journal: wrote {rows} {args.kind} records to {args.out}")
    return 0


PARQUET_MAGIC = b"PAR1"


def _note_quarantined(journal: Path, quarantined: int) -> None:
    """Say on stderr how many intent lines ``live --follow`` quarantined (its ``dead_letters``): they are in none of
    the counts, which read as every intent the journal saw (an intents file with 40 malformed lines of 100 counted
    60 routed and vetoed, and nothing else). Stdout keeps the counts only, so ``--json`` stays one object."""
    if quarantined:
        print(escape_controls(f"router-tuner journal: note: {journal} also holds {quarantined} quarantined intent "
                              "line(s), not counted above: malformed lines `live --follow` set aside (its "
                              "dead_letters table), never routed"), file=sys.stderr)


def _refuse_replacing_foreign(out: Path) -> None:
    """``--out`` replaces an earlier export, nothing else: a folder or device is named as ``--out`` (the line
    used to name the journal), and a file that is not Parquet (another journal, notes) is kept, not replaced."""
    if out.exists() and not out.is_file():
        raise BadInput(f"--out {out}: exists and is not a regular file (a folder, device or FIFO): name a file")
    if out.is_file() and out.stat().st_size > 0:
        with reading("--out", out), out.open("rb") as existing:
            head = existing.read(len(PARQUET_MAGIC))
        if head != PARQUET_MAGIC:
            raise BadInput(f"--out {out}: exists and is not a Parquet file, so it is not an earlier export to "
                           "replace; choose another name, or move it away first")


def _export_partitioned(events: list[RouterEvent], root: Path, *, as_json: bool) -> int:
    from router_tuner.tuner.ope.partition.layout import write_router_events

    if not events:
        raise BadInput("the journal holds no router events to export")
    with reading("--partitioned", root):  # a failure writing the dataset names it, not the journal being read
        written = write_router_events(root, events)
    if as_json:
        print_result(json.dumps({"kind": "router", "rows": sum(written.values()), "out": str(root),
                                 "partitions": [{"day": d, "symbol": s, "rows": n}
                                                for (d, s), n in sorted(written.items())]}))
        return 0
    print_result(f"journal: wrote {sum(written.values())} router records to {root} in {len(written)} partitions "
                 f"(days {min(d for d, _ in written)}..{max(d for d, _ in written)}, "
                 f"{len({s for _, s in written})} symbols)")
    return 0
