"""``router-tuner config check [DIR]``: validate a configuration directory, listing every problem (exit 2);
``router-tuner config init DIR``: write the embedded defaults there to edit (never over an existing file).

``--json`` prints the verdict as one JSON object on stdout (``ok``, ``problems`` with file, key path and
message, and what was loaded when it is valid); the problems are still listed on stderr, so a person
reading the terminal and a script reading stdout both see them.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from router_tuner.cli.main import BAD_INPUT, BadInput, path_text
from router_tuner.config.loader import DEFAULTS_DIR, FILES, ConfigError, load_config
from router_tuner.config.models import ConfigBundle


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="config_command", required=True, metavar="ACTION")
    check_help = "validate a config directory; exit 2 on any problem"
    check = actions.add_parser("check", help=check_help, description=check_help)
    check.add_argument("dir", nargs="?", default=None, type=path_text,
                       help="config directory (default: embedded defaults)")
    check.add_argument("--json", action="store_true",
                       help="also print the verdict as one JSON object on stdout (the problems stay listed on "
                            "stderr; a failure is still one plain line on stderr)")
    init_help = "write the embedded default files into DIR to edit (never overwrites)"
    init = actions.add_parser("init", help=init_help, description=init_help)
    init.add_argument("dir", type=path_text, help="directory to create or fill (a file of ours already there must "
                                                  "still equal the default, as an interrupted init leaves it: it is "
                                                  "kept; an edited one is refused)")


def run(args: argparse.Namespace) -> int:
    if args.config_command == "init":
        return _init(Path(args.dir))
    directory = args.dir if args.dir is not None else DEFAULTS_DIR
    try:
        bundle = load_config(directory)
        _refuse_what_live_refuses(bundle)
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


def _refuse_what_live_refuses(bundle: ConfigBundle) -> None:
    """What `live --policy-source tuner` refuses at start (and `simulate`/`sweep` for the learner) is refused here
    too, through the same list: a check that passes must not let `live` fail on the same files."""
    from router_tuner.tuner.factory import live_tuner_issues

    if issues := live_tuner_issues(bundle):
        raise ConfigError(issues)


def _init(directory: Path) -> int:
    """Copy the defaults, all or nothing: a file of the same name already there is refused, never replaced.

    Each file appears whole or not at all (:func:`create_bytes_atomic`). Files identical to the defaults are what
    an init stopped midway (kill -9, a power cut) left: the same command then writes the rest instead of refusing.
    """
    from router_tuner.router.atomic_file import create_bytes_atomic, remove_stale_temporaries

    if directory.exists() and not directory.is_dir():
        raise BadInput(f"init: {directory} exists and is not a directory")
    present = [name for name in FILES if (directory / name).exists()]
    if any(not _is_default(directory / name) for name in present):
        raise BadInput(f"init: {directory} already holds {', '.join(present)}: config init never overwrites; "
                       f"choose a new directory or check the one there with `router-tuner config check {directory}`")
    directory.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    try:
        for name in FILES:
            if name in present:
                remove_stale_temporaries(directory / name)  # what a kill after its link left
                continue
            create_bytes_atomic(directory / name, (DEFAULTS_DIR / name).read_bytes())  # never over a file
            written.append(directory / name)
    except BaseException:  # a full disk, Ctrl-C, SIGTERM's exit: none of this run's files stays
        for path in written:
            path.unlink(missing_ok=True)
        raise
    kept = f" ({len(present)} already there as written by an interrupted init, kept)" if present else ""
    print(f"config init: wrote {len(written)} files to {directory}{kept}; edit them, check with "
          f"`router-tuner config check {directory}` and pass --config {directory} to the other commands")
    return 0


def _is_default(path: Path) -> bool:
    """``path`` is a regular file holding exactly the embedded default of its name."""
    try:
        return path.is_file() and path.read_bytes() == (DEFAULTS_DIR / path.name).read_bytes()
    except OSError:
        return False
