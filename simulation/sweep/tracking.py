"""The sweep in MLflow: one parent run (the grid as params, the result table as an artifact) and one nested
run per row (its settings, learner, seed, symbol and data as params; cost, interval, regret and captured
share as metrics), written by the driver after the tasks.

Resumable like the tasks: the parent's id is kept in ``OUT/mlflow_run.json`` (a parent an attempt killed before
writing it left is found by its ``sweep_out`` tag, the out folder, and deleted) and a nested run carries its
task id as a tag, so a rerun after a failure in the middle of logging adds only the rows not yet logged. A row
counts as logged once its run is ended (the last step): a run an attempt killed midway left (created, its params
and metrics missing) is deleted and logged again.
MLflow is imported here only: ``--no-mlflow`` never pays for it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from router_tuner.config.models import ConfigBundle
from router_tuner.router.atomic_file import write_bytes_atomic

STATE_NAME = "mlflow_run.json"
OUT_TAG = "sweep_out"
_PARAMS = ("learner", "settings", "seed", "symbol", "data", "orders")
_METRICS = ("mean_cost_bps", "cost_ci_low_bps", "cost_ci_high_bps", "taker_cost_bps", "best_fixed_cost_bps",
            "regret_bps", "captured_share", "maker_ratio", "fallback_ratio", "filled")


def log_sweep(rows: Sequence[dict[str, Any]], grid_params: dict[str, str], config: ConfigBundle, table: Path,
              out_dir: Path, *, tracking_uri: str | None = None) -> tuple[str, int]:
    """Log the parent run and every row not yet logged as a nested run; returns (parent run id, rows logged).
    ``tracking_uri`` (``sweep --tracking-uri``) wins over ``MLFLOW_TRACKING_URI`` and ``tuner.json``."""
    from mlflow.entities import Metric, Param, RunTag
    from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID, MLFLOW_RUN_NAME

    from router_tuner.tuner.registry import ensure_experiment, open_client, resolve_tracking_uri
    from router_tuner.tuner.run_owner import owner_tags

    uri = resolve_tracking_uri(config.tuner.mlflow.tracking_uri, override=tracking_uri)
    client = open_client(uri)
    experiment = ensure_experiment(client, uri, config.tuner.mlflow.experiment)
    state = Path(out_dir) / STATE_NAME
    parent = _parent_id(state, uri)
    if parent is None:
        folder = str(Path(out_dir).resolve())
        for stale in client.search_runs([experiment], filter_string="tags.job = 'sweep'", max_results=50_000):
            # created by an attempt killed before it wrote the state file: never resumed, it stayed empty and
            # RUNNING (KILLED, once ensure_experiment saw its process gone) beside the parent logged again
            if stale.info.status != "FINISHED" and stale.data.tags.get(OUT_TAG) == folder:
                client.delete_run(stale.info.run_id)
        run = client.create_run(experiment, run_name="sweep", tags={"job": "sweep", OUT_TAG: folder, **owner_tags()})
        parent = run.info.run_id
        client.log_batch(parent, params=[Param(k, v[:6000]) for k, v in grid_params.items()])
        write_bytes_atomic(state, json.dumps({"tracking_uri": uri, "parent_run_id": parent}).encode())
    children = client.search_runs([experiment], filter_string=f"tags.{MLFLOW_PARENT_RUN_ID} = '{parent}'",
                                  max_results=50_000)
    for child_run in children:  # created, never ended: an attempt killed while logging it; logged again below
        if child_run.info.status != "FINISHED":
            client.delete_run(child_run.info.run_id)
    logged = {r.data.tags.get("task_id") for r in children if r.info.status == "FINISHED"}
    added = 0
    now_ms = int(time.time() * 1000)
    for row in rows:
        if row["task_id"] in logged:
            continue
        name = f"{row['learner']}-{row['symbol']}-s{row['seed']}"
        child = client.create_run(experiment, tags={MLFLOW_PARENT_RUN_ID: parent, "task_id": row["task_id"],
                                                    MLFLOW_RUN_NAME: name, **owner_tags()}).info.run_id
        client.log_batch(child, params=[Param(k, str(row[k])[:6000]) for k in _PARAMS],
                         metrics=[Metric(k, float(row[k]), now_ms, 0) for k in _METRICS if row[k] is not None],
                         tags=[RunTag(k, str(row[k])) for k in ("best_fixed_arm", "greedy_arm") if row[k] is not None])
        client.set_terminated(child)
        added += 1
    client.log_artifact(parent, str(table))
    client.set_terminated(parent)
    return parent, added


class SweepStateError(ValueError):
    """``OUT/mlflow_run.json`` does not read as the record this module writes (a damaged copy, a hand edit)."""


def _parent_id(state: Path, uri: str) -> str | None:
    """The parent run of an earlier attempt of this sweep on the same tracking store, if any.

    A record that does not read is refused naming the file: "MLflow logging failed …; rerun to retry" quoted the
    JSON decoder's words ("Unterminated string …") and failed again at every rerun; taken as absent it would log
    every row again under a second parent beside the first."""
    if not state.is_file():
        return None
    try:
        recorded = json.loads(state.read_text(encoding="utf-8"))
        parent, recorded_uri = recorded["parent_run_id"], recorded["tracking_uri"]
        if not (isinstance(parent, str) and isinstance(recorded_uri, str)):
            raise TypeError("parent_run_id and tracking_uri must be strings")
    except (ValueError, RecursionError, TypeError, KeyError) as error:
        raise SweepStateError(
            f"{state}: not this sweep's record of its MLflow parent run ({type(error).__name__}: {error}); delete it "
            "to log the sweep under a new parent run (an earlier parent, if any, stays in MLflow)") from error
    return parent if recorded_uri == uri else None
