"""The ``router-tuner`` command line: one entry point that wires the packages together.

Each sub-command imports its module only when it runs, so ``router-tuner config check`` does not pay
for MLflow or ccxt imports.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

Command = Callable[[argparse.Namespace], int]


def _config_check(args: argparse.Namespace) -> int:
    from config import ConfigError, load_config
    from config.loader import DEFAULTS_DIR

    directory = args.dir if args.dir is not None else DEFAULTS_DIR
    try:
        bundle = load_config(directory)
    except ConfigError as error:
        print(f"config check: {directory}: {len(error.issues)} problem(s)", file=sys.stderr)
        for issue in error.issues:
            print(f"  {issue}", file=sys.stderr)
        return 1
    print(f"config check: {directory}: OK ({len(bundle.strategy.universe)} symbols, "
          f"learner {bundle.tuner.learner}, max {bundle.risk.max_concurrent_positions} concurrent positions)")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="router-tuner", description="Adaptive maker/taker order router with an online tuner.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    config = commands.add_parser("config", help="configuration tools")
    config_commands = config.add_subparsers(dest="config_command", required=True, metavar="ACTION")
    check = config_commands.add_parser("check", help="validate a config directory; non-zero exit on errors")
    check.add_argument("dir", nargs="?", default=None, help="config directory (default: embedded defaults)")
    check.set_defaults(handler=_config_check)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handler: Command = args.handler
    return handler(args)


if __name__ == "__main__":
    raise SystemExit(main())
