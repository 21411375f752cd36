"""The ``router-tuner`` command line: one entry point that wires the packages together.

Each command lives in its owner's ``cli`` module, which exposes ``add_arguments(parser)`` and
``run(args) -> exit code``. Only the module of the command being run is imported (the overview in
``--help`` comes from ``COMMANDS``), so ``router-tuner config check`` does not pay for river, MLflow or
ccxt. To add a command, add one line to ``COMMANDS``.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# command name -> (module with add_arguments/run, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "config": ("cli.config", "configuration tools: `config check [DIR]`"),
    "policy": ("cli.policy",
               "policy versions in MLflow: `policy list|show|promote|rollback|go-live` (promote is OPE-gated)"),
    "record": ("cli.record", "record live quotes and trades into Parquet tapes (ccxt.pro)"),
    "journal": ("cli.journal", "inspect a journal: `journal count|export`"),
    "ope": ("cli.ope", "score a candidate policy on a journal's logged router events"),
    "ope-dataset": ("cli.ope_dataset", "score a candidate arm on a partitioned dataset, on one core or Ray"),
    "simulate": ("cli.simulate", "the main job: replay markets, compare routing policies, write the report"),
    "sweep": ("cli.sweep", "learner settings x seeds x symbols x data as tasks, on one core or Ray (resumable)"),
    "live": ("cli.live", "run the executor: `live --venue binanceusdm --config DIR` (paper unless --live)"),
    "health": ("cli.health", "print the executor's latest health snapshot and alerts"),
}


def build_parser(selected: str | None) -> argparse.ArgumentParser:
    """The parser, with the arguments of the ``selected`` command only (``None``: the overview)."""
    parser = argparse.ArgumentParser(
        prog="router-tuner", description="Adaptive maker/taker order router with an online tuner.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (module_name, help_text) in COMMANDS.items():
        sub = commands.add_parser(name, help=help_text, description=help_text)
        if name == selected:
            module = importlib.import_module(module_name)
            module.add_arguments(sub)
            sub.set_defaults(run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    selected = next((a for a in arguments if not a.startswith("-")), None)
    args = build_parser(selected if selected in COMMANDS else None).parse_args(arguments)
    return int(args.run(args))


if __name__ == "__main__":
    raise SystemExit(main())
