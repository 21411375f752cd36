"""The ``router-tuner`` command line: one entry point that wires the packages together.

Each command lives in its owner's ``cli`` module, which exposes ``add_arguments(parser)``
and ``run(args) -> exit code`` and imports heavy libraries (MLflow, ccxt) only inside ``run``, so
``router-tuner config check`` stays fast. To add a command, add one line to ``COMMANDS``.
"""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Sequence

# command name -> (module with add_arguments/run, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "config": ("config.cli", "configuration tools: `config check [DIR]`"),
    "policy": ("tuner.policy_cli",
               "policy versions in MLflow: `policy list|show|promote|rollback|go-live` (promote is OPE-gated)"),
    "record": ("router.market.record_cli", "record live quotes and trades into Parquet tapes (ccxt.pro)"),
    "journal": ("executor.journal_cli", "inspect a journal: `journal count|export`"),
    "ope": ("tuner.ope_cli", "score a candidate policy on a journal's logged router events"),
    "simulate": ("executor.simulate_cli", "the main job: replay markets, compare routing policies, write the report"),
    "live": ("executor.live_cli", "run the executor: `live --venue binanceusdm --config DIR` (paper unless --live)"),
    "health": ("executor.health_cli", "print the executor's latest health snapshot and alerts"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="router-tuner", description="Adaptive maker/taker order router with an online tuner.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (module_name, help_text) in COMMANDS.items():
        module = importlib.import_module(module_name)
        sub = commands.add_parser(name, help=help_text, description=help_text)
        module.add_arguments(sub)
        sub.set_defaults(run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.run(args))


if __name__ == "__main__":
    raise SystemExit(main())
