"""Where a simulation is recorded: every RouterEvent in a journal; in MLflow one parent run per simulation,
nested runs per learner and per learner and symbol, and every version each learner published as a
registered model version.

The journal is the simulation's own file (``<out>/simulation.sqlite``), replaced at each run: the
journal is append-only and its intent ids are unique, so two simulations cannot share one file.
MLflow (and ``tuner.registry``, which imports it) is imported only inside the MLflow functions: it costs
about a second to import and ``--no-mlflow`` runs never pay it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import msgspec

from router_tuner.config.loader import model_prefix_issues, snapshot
from router_tuner.config.models import ConfigBundle
from router_tuner.config.redact import redact
from router_tuner.executor.journal import Journal
from router_tuner.router.atomic_file import atomic_path
from router_tuner.simulation.job import SimulationOptions, SimulationResult
from router_tuner.simulation.learners import learner_policy_name
from router_tuner.simulation.series import learner_series
from router_tuner.tuner.flat_params import flatten_params

JOURNAL_NAME = "simulation.sqlite"
STAGING_MARK = "staged~"
"""Prefix of the model a simulation registers its versions under before they replace the previous simulation's."""
_METRIC_CHARS = re.compile(r"[^A-Za-z0-9_.\-/ ]")


def write_journal(result: SimulationResult, out_dir: Path) -> Path:
    """Journal every policy's events (intent ids are ``<policy>:<symbol>:<n>``) and, per shadow scenario, its
    routed orders, the champion-only run, the shadow proposals and the arm-safety changes; returns the file.

    The journal is written beside and renamed over the old one once complete: a run stopped while writing
    (Ctrl-C, SIGTERM, a full disk) leaves the previous journal, never a part of this run's events.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / JOURNAL_NAME
    with atomic_path(path) as temporary:
        try:
            with Journal(temporary) as journal:
                for symbol_result in result.symbols.values():  # one transaction (one fsync) per symbol
                    events = [event for run in symbol_result.runs.values() for event in run.events]
                    if symbol_result.shadow is not None:
                        scenario = symbol_result.shadow.scenario
                        events += [*scenario.run.events, *scenario.champion_run.events, *scenario.decisions,
                                   *scenario.safety_events]
                    journal.append_many(events)
        finally:
            for sidecar in ("-wal", "-shm", ".lock"):
                temporary.with_name(temporary.name + sidecar).unlink(missing_ok=True)
        for stale in ("-wal", "-shm"):  # the old file's: SQLite would apply them to the new one
            path.with_name(path.name + stale).unlink(missing_ok=True)
    return path


def metric_name(*parts: str) -> str:
    """An MLflow-safe metric name (``cost_bps/BTCUSDT/fixed_o1.00_b0.00``)."""
    return "/".join(_METRIC_CHARS.sub("_", p) for p in parts)


def run_config(config: ConfigBundle, options: SimulationOptions) -> ConfigBundle:
    """The configuration the run ran under: ``config`` with the values the options replace (``--orders`` for
    ``router.json`` ``simulation.intents.orders_per_symbol``, ``--seed`` for ``tuner.json`` ``seed``,
    ``--shadow-symbols`` for ``simulation.shadow_scenario.symbols``), so the params and config snapshots MLflow
    records say what ran, not the file's defaults."""
    replace = msgspec.structs.replace
    sim = config.router.simulation
    sim = replace(sim, intents=replace(sim.intents, orders_per_symbol=options.orders_per_symbol),
                  shadow_scenario=replace(sim.shadow_scenario, symbols=tuple(options.shadow_symbols)))
    return replace(config, router=replace(config.router, simulation=sim),
                   tuner=replace(config.tuner, seed=options.seed))


def register_policy_versions(result: SimulationResult, config: ConfigBundle, tracking_uri: str, *,
                             parent_runs: Mapping[tuple[str, str], str] | None = None) -> list[dict[str, Any]]:
    """Register every version each learner published per symbol, in order, as MLflow model versions.

    Models are ``<simulation.registered_model_prefix>-<learner>-<SYMBOL>``, never the live models of
    ``tuner.json``, through the same :class:`MlflowPublisher` the live tuner uses (flattened params, metrics,
    the pyfunc model, the policy and config snapshot). Registered version N is policy version N, so a model
    holds one simulation: the versions are registered under a staging model (``staged~<model>``, which no
    listing of the prefix shows) and, once the last is in, it takes the previous simulation's place
    (:meth:`PolicyRegistry.replace_model`; their runs stay in the experiment, like the previous journal is
    replaced). A run killed before that leaves the previous simulation's models as they were, and its staging
    model is deleted by the next; one killed between the swap's two steps (delete, rename) leaves its complete staging
    model, which the next run puts in place first. ``parent_runs`` maps (learner, symbol) to the run the versions'
    runs nest under. Each row names the final version; a symbol whose tuner never published is listed with
    ``policy_version`` None (and the previous simulation's model of it is deleted).
    """
    from router_tuner.tuner.registry import PolicyRegistry
    from router_tuner.tuner.service.publish import MlflowPublisher

    config = run_config(config, result.options)
    prefix = config.router.simulation.registered_model_prefix
    if clash := model_prefix_issues(config.router, config.tuner):  # refused at load; a bundle built in code too
        raise ValueError(str(clash[0]))
    rows: list[dict[str, Any]] = []
    for run in result.learner_runs:
        registry = PolicyRegistry(tracking_uri, experiment=config.tuner.mlflow.experiment,
                                  model_prefix=f"{prefix}-{run.learner}")
        staging = PolicyRegistry(tracking_uri, experiment=config.tuner.mlflow.experiment,
                                 model_prefix=f"{STAGING_MARK}{registry.model_prefix}")
        for symbol in result.symbols:
            parent = (parent_runs or {}).get((run.learner, symbol))
            # the learner's own tuner.json, as simulation.learners.learner_runs ran it
            tuner = msgspec.structs.replace(config.tuner, learner=run.learner)
            ran_under = msgspec.structs.replace(config, tuner=tuner)
            # the parent run's ``seed`` on every version: tuner.seed is in the snapshot, not in the version's params
            publisher = MlflowPublisher(staging, ran_under, parent_run_id=parent,
                                        run_params={"seed": result.options.seed})
            # a run killed between the swap's delete and its rename left its whole staging model and none in place
            registry.finish_replacing(symbol, staging.model_name(symbol))
            staging.delete_model(symbol)  # left by a run killed while registering
            records = run.publisher.records_of(symbol)
            if records:  # a staging model a run killed meanwhile left is listed part-registered (--prefix staged~…)
                staging.begin_registering(symbol, f"simulate run {parent or '?'}")
                for record in records:
                    publisher.publish(record)
                staging.end_registering(symbol)
            registry.replace_model(symbol, staging.model_name(symbol) if records else None)
            final = records[-1].policy if records else None
            rows.append({"learner": run.learner, "symbol": symbol, "model": registry.model_name(symbol),
                         "policy_version": final.version if final else None, "arm": final.arm if final else None,
                         "registered_version": final.version if final else None,
                         "registered_versions": len(records)})
    return rows


def _metrics(result: SimulationResult, summary: dict[str, Any]) -> dict[str, float]:
    """Per symbol and policy: cost, ratios, markout, regret; per OPE row: each estimate and the truth."""
    metrics: dict[str, float] = {}
    for symbol, sym in summary["symbols"].items():
        for policy, row in sym["policies"].items():
            for key in ("mean_cost_bps", "maker_ratio", "fallback_ratio", "mean_markout_bps",
                        "cumulative_regret_vs_best_fixed_bps"):
                if row[key] is not None:
                    metrics[metric_name(key, symbol, policy)] = float(row[key])
    for comp in summary["ope"]:
        metrics[metric_name("ope_truth_cost_bps", comp["symbol"], comp["learner"])] = comp["truth_cost_bps"]
        for estimator, est in comp["estimates"].items():
            metrics[metric_name("ope_cost_bps", comp["symbol"], comp["learner"], estimator)] = est["cost_bps"]
    for symbol, block in summary["shadow"]["symbols"].items():
        for phase, row in block["costs"].items():
            if row["mean_cost_bps"] is not None:
                metrics[metric_name("shadow_cost_bps", symbol, phase)] = float(row["mean_cost_bps"])
        if block["at_go_live"] is not None and block["at_go_live"]["estimate"] is not None:
            metrics[metric_name("shadow_ope_at_go_live_cost_bps", symbol)] = block["at_go_live"]["estimate"]["cost_bps"]
        if block["went_live_after_orders"] is not None:
            metrics[metric_name("shadow_went_live_after_orders", symbol)] = float(block["went_live_after_orders"])
    return metrics


def log_to_mlflow(result: SimulationResult, config: ConfigBundle, summary: dict[str, Any],
                  artifacts: list[Path], *, tracking_uri: str | None = None) -> tuple[str, list[dict[str, Any]]]:
    """One parent run (options and the flattened, redacted config as params; the config snapshot, summary
    and report as artifacts; per-symbol/per-policy metrics), a child run per learner and under it one per
    symbol (named ``<learner> <SYMBOL>``) whose metrics are curves over the orders (:mod:`simulation.series`)
    and under which that learner's versions are registered (listed in the parent's ``policy_versions.json``).
    ``tracking_uri`` (``simulate --tracking-uri``) wins over ``MLFLOW_TRACKING_URI`` and ``tuner.json``.
    Returns the parent run id and the registered versions."""
    import mlflow

    from router_tuner.tuner.registry import ensure_experiment, log_flat, open_client, resolve_tracking_uri
    from router_tuner.tuner.run_owner import owner_tags

    tracking_uri = resolve_tracking_uri(config.tuner.mlflow.tracking_uri, override=tracking_uri)
    client = open_client(tracking_uri)
    mlflow.set_tracking_uri(tracking_uri)
    ensure_experiment(client, tracking_uri, config.tuner.mlflow.experiment)
    mlflow.set_experiment(config.tuner.mlflow.experiment)
    options = result.options
    config = run_config(config, options)
    with mlflow.start_run(run_name=f"simulate-seed{options.seed}", tags=owner_tags()) as run:
        mlflow.set_tag("job", "simulate")
        options_params = {"seed": options.seed, "orders_per_symbol": options.orders_per_symbol,
                          "symbols": ",".join(result.symbols), "data_source": result.data_source[:480],
                          "arms": len(result.arm_ids), "learners": ",".join(options.learners),
                          "default_learner": result.default_learner}  # named as in --json (tuner.learner beside it)
        log_flat(client, run.info.run_id, params=flatten_params({**options_params, **redact(snapshot(config))}),
                 metrics=_metrics(result, summary))
        mlflow.log_dict(snapshot(config), "config_snapshot.json")
        mlflow.log_dict(summary, "summary.json")
        for path in artifacts:
            mlflow.log_artifact(str(path), artifact_path="report")
        parents = _learner_runs(result, client)
        versions = register_policy_versions(result, config, tracking_uri, parent_runs=parents)
        mlflow.log_dict({"policy_versions": versions}, "policy_versions.json")
        return str(run.info.run_id), versions


def _learner_runs(result: SimulationResult, client: Any) -> dict[tuple[str, str], str]:
    """A nested run per learner (its final costs per symbol) and under it one per symbol (the curves of
    :func:`simulation.series.learner_series`); returns the (learner, symbol) runs' ids, which the version
    runs name as their parent."""
    import mlflow

    from router_tuner.tuner.registry import log_flat
    from router_tuner.tuner.run_owner import owner_tags

    symbol_runs: dict[tuple[str, str], str] = {}
    for learner_run in result.learner_runs:
        learner = learner_run.learner
        policy = learner_policy_name(learner)
        with mlflow.start_run(run_name=learner, nested=True, tags={"learner": learner, **owner_tags()}) as parent:
            finals = {metric_name("mean_cost_bps", symbol): sym.summaries[policy].mean_cost_bps
                      for symbol, sym in result.symbols.items() if sym.summaries[policy].mean_cost_bps is not None}
            log_flat(client, parent.info.run_id, params={"learner": learner}, metrics=finals)
            for symbol, sym in result.symbols.items():
                with mlflow.start_run(run_name=f"{learner} {symbol}", nested=True,
                                      tags={"learner": learner, "symbol": symbol, **owner_tags()}) as child:
                    series = learner_series(sym.runs[policy], sym.runs[sym.best_fixed], result.arm_ids)
                    log_flat(client, child.info.run_id,
                             params={"learner": learner, "symbol": symbol, "best_fixed": sym.best_fixed},
                             series=[(point.step, point.metrics) for point in series])
                    symbol_runs[(learner, symbol)] = child.info.run_id
    return symbol_runs


def json_line(summary: dict[str, Any]) -> str:
    """The ``--json`` line: one JSON object, no newlines inside."""
    return json.dumps(summary, separators=(",", ":"), allow_nan=False)
