"""``router-tuner journal``: look into a journal without writing to it.

``journal count`` prints how many records of each kind it holds; ``journal export`` writes one kind to
Parquet (the codec's DataFrame layout, nested fields as JSON text) for analysis in pandas or elsewhere.
Failures end in one line naming the journal (``cli.main``): exit 2 for a missing, foreign, corrupt or
truncated file or an unwritable ``--out``, 1 for a journal locked by another process.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from cli.main import probe_writable, reading
from router.events import EVENT_TYPES


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="journal_command", required=True, metavar="ACTION")
    count = actions.add_parser("count", help="records per kind")
    count.add_argument("--journal", required=True, type=Path, help="journal SQLite file")
    export = actions.add_parser("export", help="write one kind of record to a Parquet file")
    export.add_argument("--journal", required=True, type=Path, help="journal SQLite file")
    export.add_argument("--kind", required=True, choices=sorted(EVENT_TYPES), help="which records")
    export.add_argument("--out", required=True, type=Path, help="Parquet file to write (replaced atomically)")


def run(args: argparse.Namespace) -> int:
    from executor.journal import Journal

    if args.journal_command == "export":
        probe_writable(args.out.parent)
    with reading("journal", args.journal), Journal(args.journal, readonly=True) as journal:
        if args.journal_command == "count":
            for kind in sorted(EVENT_TYPES):
                print(f"{kind:<12}{journal.count(kind):>10}")
            return 0
        rows = journal.export_parquet(args.kind, args.out)
    print(f"journal: wrote {rows} {args.kind} records to {args.out}")
    return 0
