"""``router-tuner config check [DIR]``: validate a configuration directory, listing every problem (exit 2)."""

from __future__ import annotations

import argparse
import sys

from cli.main import BAD_INPUT
from config.loader import DEFAULTS_DIR, ConfigError, load_config


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="config_command", required=True, metavar="ACTION")
    check = actions.add_parser("check", help="validate a config directory; exit 2 on any problem")
    check.add_argument("dir", nargs="?", default=None, help="config directory (default: embedded defaults)")


def run(args: argparse.Namespace) -> int:
    directory = args.dir if args.dir is not None else DEFAULTS_DIR
    try:
        bundle = load_config(directory)
    except ConfigError as error:
        print(f"config check: {directory}: {len(error.issues)} problem(s)", file=sys.stderr)
        for issue in error.issues:
            print(f"  {issue}", file=sys.stderr)
        return BAD_INPUT
    print(f"config check: {directory}: OK ({len(bundle.strategy.universe)} symbols, "
          f"learner {bundle.tuner.learner}, max {bundle.risk.max_concurrent_positions} concurrent positions)")
    return 0
