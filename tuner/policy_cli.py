"""``router-tuner policy list|show|promote|rollback``: the policy versions in the MLflow registry.

The tracking URI is ``--tracking-uri`` when given, else ``MLFLOW_TRACKING_URI``, else ``tuner.json``'s
``mlflow.tracking_uri``, else the local SQLite default (see :func:`tuner.registry.resolve_tracking_uri`).
``promote`` is the plain alias move (the challenger, or ``--version``, becomes champion); ``rollback``
moves the champion back to the version it replaced. MLflow is imported inside :func:`run` only.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from config.loader import DEFAULTS_DIR, ConfigError, load_config

if TYPE_CHECKING:
    from tuner.registry import PolicyVersion


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="policy_command", required=True, metavar="ACTION")
    specs = {
        "list": "list policy versions (all symbols, or --symbol), newest first",
        "show": "show one version (--version N, default the champion)",
        "promote": "make the challenger (or --version N) the champion",
        "rollback": "move the champion back to the version it replaced",
    }
    for name, help_text in specs.items():
        sub = actions.add_parser(name, help=help_text, description=help_text)
        sub.add_argument("--symbol", required=name != "list", default=None, help="symbol, e.g. BTCUSDT")
        if name in ("show", "promote"):
            sub.add_argument("--version", type=int, default=None, help="registered version number")
        sub.add_argument("--json", action="store_true", help="print JSON instead of text")
        sub.add_argument("--tracking-uri", default=None, help="MLflow tracking URI (overrides env and config)")
        sub.add_argument("--config", default=None, help="config directory (default: embedded defaults)")


def run(args: argparse.Namespace) -> int:
    directory = args.config if args.config is not None else DEFAULTS_DIR
    try:
        bundle = load_config(directory)
    except ConfigError as error:
        print(f"policy: {error}", file=sys.stderr)
        return 2
    from tuner.registry import PolicyRegistry, RegistryError

    mlflow_config = bundle.tuner.mlflow
    with _env_override("MLFLOW_TRACKING_URI", args.tracking_uri):
        registry = PolicyRegistry(mlflow_config.tracking_uri, experiment=mlflow_config.experiment,
                                  model_prefix=mlflow_config.registered_model_prefix)
    try:
        if args.policy_command == "list":
            versions = registry.list(args.symbol)
        elif args.policy_command == "show":
            versions = [registry.show(args.symbol, str(args.version) if args.version is not None else "champion")]
        elif args.policy_command == "promote":
            versions = [registry.promote(args.symbol, args.version)]
        else:
            versions = [registry.rollback(args.symbol)]
    except RegistryError as error:
        print(f"policy {args.policy_command}: {error}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps([_as_dict(v) for v in versions], indent=2, sort_keys=True))
    else:
        for version in versions:
            print(_as_text(version, detailed=args.policy_command != "list"))
    return 0


@contextlib.contextmanager
def _env_override(name: str, value: str | None) -> Iterator[None]:
    """``--tracking-uri`` must beat the environment, which the registry consults first: set it briefly."""
    if value is None:
        yield
        return
    before = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = before


def _as_dict(version: PolicyVersion) -> dict[str, Any]:
    return {"symbol": version.symbol, "version": version.version, "run_id": version.run_id,
            "aliases": list(version.aliases), "policy": version.policy, "metrics": version.metrics}


def _as_text(version: PolicyVersion, *, detailed: bool) -> str:
    policy = version.policy
    aliases = ",".join(version.aliases) or "-"
    head = (f"{version.symbol} v{version.version} [{aliases}] policy {policy.get('policy_id')} "
            f"v{policy.get('version')} arm {policy.get('arm')} offset {policy.get('maker_offset_bps')} bps "
            f"taker_bias {policy.get('taker_bias')}")
    if not detailed:
        return head
    metrics = " ".join(f"{k}={v:.4g}" for k, v in sorted(version.metrics.items()))
    return f"{head}\n  run {version.run_id}\n  metrics {metrics or '-'}"
