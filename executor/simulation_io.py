"""Where a simulation is recorded: every RouterEvent in a journal, one MLflow parent run per simulation.

The journal is the simulation's own file (``<out>/simulation.sqlite``), replaced at each run: the
journal is append-only and its intent ids are unique, so two simulations cannot share one file.
MLflow is imported only inside :func:`log_to_mlflow` (it costs about a second to import).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from config.loader import snapshot
from config.models import ConfigBundle
from executor.journal import Journal
from executor.simulation import SimulationResult
from tuner.registry import resolve_tracking_uri

JOURNAL_NAME = "simulation.sqlite"
_METRIC_CHARS = re.compile(r"[^A-Za-z0-9_.\-/ ]")


def write_journal(result: SimulationResult, out_dir: Path) -> Path:
    """Journal every policy's events (intent ids are ``<policy>:<symbol>:<n>``); returns the file."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / JOURNAL_NAME
    for stale in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        stale.unlink(missing_ok=True)
    with Journal(path) as journal:
        for symbol_result in result.symbols.values():
            for run in symbol_result.runs.values():
                journal.append_many(run.events)
    return path


def metric_name(*parts: str) -> str:
    """An MLflow-safe metric name (``cost_bps/BTCUSDT/fixed_o1.00_b0.00``)."""
    return "/".join(_METRIC_CHARS.sub("_", p) for p in parts)


def log_to_mlflow(result: SimulationResult, config: ConfigBundle, summary: dict[str, Any],
                  artifacts: list[Path]) -> str:
    """One parent run: options and seed as params, the config snapshot and report as artifacts,
    per-symbol/per-policy metrics. Returns the run id."""
    import mlflow

    mlflow.set_tracking_uri(resolve_tracking_uri(config.tuner.mlflow.tracking_uri))
    mlflow.set_experiment(config.tuner.mlflow.experiment)
    options = result.options
    with mlflow.start_run(run_name=f"simulate-seed{options.seed}") as run:
        mlflow.set_tag("job", "simulate")
        mlflow.log_params({"seed": options.seed, "orders_per_symbol": options.orders_per_symbol,
                           "symbols": ",".join(result.symbols), "data_source": result.data_source[:480],
                           "arms": len(result.arm_ids)})
        mlflow.log_dict(snapshot(config), "config_snapshot.json")
        mlflow.log_dict(summary, "summary.json")
        metrics: dict[str, float] = {}
        for symbol, sym in result.symbols.items():
            for policy, s in sym.summaries.items():
                for key in ("mean_cost_bps", "maker_ratio", "fallback_ratio", "mean_markout_bps"):
                    value = getattr(s, key)
                    if value is not None:
                        metrics[metric_name(key, symbol, policy)] = float(value)
        mlflow.log_metrics(metrics)
        for path in artifacts:
            mlflow.log_artifact(str(path), artifact_path="report")
        return str(run.info.run_id)


def json_line(summary: dict[str, Any]) -> str:
    """The ``--json`` line: one JSON object, no newlines inside."""
    return json.dumps(summary, separators=(",", ":"), allow_nan=False)
