"""``router-tuner journal``: look into a journal without writing to it.

``journal count`` prints how many records of each kind it holds; ``journal export`` writes one kind to
Parquet (the codec's DataFrame layout, nested fields as JSON text) for analysis in pandas or elsewhere.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

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
    from executor.journal import Journal, JournalError

    if not args.journal.is_file():
        print(f"journal: no journal at {args.journal}", file=sys.stderr)
        return 2
    try:
        with Journal(args.journal, readonly=True) as journal:
            if args.journal_command == "count":
                for kind in sorted(EVENT_TYPES):
                    print(f"{kind:<12}{journal.count(kind):>10}")
                return 0
            rows = journal.export_parquet(args.kind, args.out)
    except JournalError as error:
        print(f"journal: {args.journal}: {error}", file=sys.stderr)
        return 1
    print(f"journal: wrote {rows} {args.kind} records to {args.out}")
    return 0
