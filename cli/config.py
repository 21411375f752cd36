"""``router-tuner config check [DIR]``: validate a configuration directory, listing every problem (exit 2).

``--json`` prints the verdict as one JSON object on stdout (``ok``, ``problems`` with file, key path and
message, and what was loaded when it is valid); the problems are still listed on stderr, so a person
reading the terminal and a script reading stdout both see them.
"""

from __future__ import annotations

import argparse
import json
import sys

from router_tuner.cli.main import BAD_INPUT
from router_tuner.config.loader import DEFAULTS_DIR, ConfigError, load_config


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="config_command", required=True, metavar="ACTION")
    check = actions.add_parser("check", help="validate a config directory; exit 2 on any problem")
    check.add_argument("dir", nargs="?", default=None, help="config directory (default: embedded defaults)")
    check.add_argument("--json", action="store_true",
                       help="also print the verdict as one JSON object on stdout (the problems stay listed on "
                            "stderr; a failure is still one plain line on stderr)")


def run(args: argparse.Namespace) -> int:
    directory = args.dir if args.dir is not None else DEFAULTS_DIR
    try:
        bundle = load_config(directory)
    except ConfigError as error:
        print(f"config check: {directory}: {len(error.issues)} problem(s)", file=sys.stderr)
        for issue in error.issues:
            print(f"  {issue}", file=sys.stderr)
        if args.json:
            print(json.dumps({"config": str(directory), "ok": False, "problems": [
                {"file": issue.file, "path": issue.path, "message": issue.message} for issue in error.issues]}))
        return BAD_INPUT
    if args.json:
        print(json.dumps({"config": str(directory), "ok": True, "problems": [],
                          "symbols": sorted(bundle.strategy.universe), "learner": bundle.tuner.learner,
                          "max_concurrent_positions": bundle.risk.max_concurrent_positions}))
        return 0
    print(f"config check: {directory}: OK ({len(bundle.strategy.universe)} symbols, "
          f"learner {bundle.tuner.learner}, max {bundle.risk.max_concurrent_positions} concurrent positions)")
    return 0
