"""``router-tuner live``: run the executor on intents from a JSONL file, paper by default, live on request.

Policies come from ``--policy-source``: ``static`` (the default, router.json), ``registry`` (each
symbol's MLflow champion, re-read every ``policy_source.registry_refresh_s`` so a promote or rollback
reaches the running executor without a restart) or ``tuner`` (adaptive routing, ``executor.adaptive.routing``:
the tuner picks each symbol's arm per intent and learns every RouterEvent, publishing versions to
MLflow, or to memory with ``--no-mlflow``; shadow symbols of ``tuner.json`` act with the registry
champion, or the static policy with ``--no-mlflow``; its state is checkpointed at ``--tuner-state``,
default ``executor.json`` ``adaptive.tuner_state_path``, so a restart continues learning).

Paper mode (the default) routes on the simulated venue over recorded tapes (``--tape``) or the synthetic
market of ``executor.json``; its clock is the replay, advanced by the idle poll while no intent comes.
Live mode needs both ``--live`` and the API key variables named in ``executor.json`` (``live``); the
keys are read from the environment only and never printed. Before the first intent the executor
reconciles open orders and positions with the venue, in both modes (see ``executor.reconcile``); health
is published every ``health.interval_s`` to the executor store and, when enabled, to a Prometheus
endpoint whose URL is printed on stdout.
Exit codes: 0 done, 1 configuration or reconciliation refused, 2 bad arguments (an unreadable intents file).
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from config.loader import ConfigError, load_config
from config.models import ConfigBundle
from executor.adaptive.checkpoint import TunerCheckpoint
from executor.adaptive.routing import AdaptiveRouting, AdaptiveStateAhead
from executor.intents import JsonlIntentSource
from executor.journal import DEFAULT_PATH as DEFAULT_JOURNAL
from executor.journal import Journal
from executor.loop import Executor, ExecutorHalted
from executor.metrics import ExecutorMetrics
from executor.reconcile import PositionReader, ReconcileError
from executor.store import DEFAULT_STORE, ExecutorStore
from executor.telemetry import Telemetry
from risk.units import NS_PER_S
from router.venue import Venue, VenueError
from router.venues.sim.venue import ReplayExhausted
from tuner.policy_source import PolicySource, RegistryPolicySource, StaticPolicySource
from tuner.service.publish import InMemoryPublisher, PolicyPublisher
from tuner.service.tuner_service import ModeSource

if TYPE_CHECKING:
    from tuner.registry import PolicyRegistry

POLICY_SOURCES = ("static", "registry", "tuner")
logger = logging.getLogger("executor.live")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--venue", required=True, help="exchange id the run trades on (e.g. binanceusdm)")
    parser.add_argument("--config", required=True, type=Path, help="configuration directory")
    parser.add_argument("--intents", required=True, type=Path, help="JSONL file of router.events.Intent")
    parser.add_argument("--follow", action="store_true", help="tail the intents file until interrupted")
    parser.add_argument("--journal", type=Path, default=DEFAULT_JOURNAL, help=f"journal (default {DEFAULT_JOURNAL})")
    parser.add_argument("--store", type=Path, default=DEFAULT_STORE, help=f"executor store (default {DEFAULT_STORE})")
    parser.add_argument("--tape", type=Path, action="append", default=[],
                        help="paper mode: a recorded Parquet tape (repeat per symbol); default synthetic market")
    parser.add_argument("--live", action="store_true", help="trade on the live venue (needs API keys in env)")
    parser.add_argument("--seed", type=int, required=False, help="router rng seed (default: executor.paper.seed)")
    parser.add_argument("--idle-poll-s", type=float, default=1.0, help="wait per poll for a new intent")
    parser.add_argument("--policy-source", choices=POLICY_SOURCES, default="static",
                        help="where each symbol's RouterPolicy comes from (default: static): 'static' is router.json "
                             "static_policy; 'registry' is the MLflow champion of every executor.instruments "
                             "symbol (tuner.json mlflow, MLFLOW_TRACKING_URI wins), re-read every "
                             "executor.json policy_source.registry_refresh_s so promote/rollback needs no restart; "
                             "'tuner' routes with the online tuner (adaptive routing, versions published to MLflow)")
    parser.add_argument("--no-mlflow", action="store_true",
                        help="with --policy-source tuner: publish versions in memory only, shadow symbols act with "
                             "the static policy, no go-live requests are read")
    parser.add_argument("--tuner-state", type=Path, required=False,
                        help="with --policy-source tuner: checkpoint manifest of the tuner state "
                             "(default: executor.json adaptive.tuner_state_path)")


def _venue(args: argparse.Namespace,
           config: ConfigBundle) -> tuple[Venue, PositionReader, Callable[[], None] | None]:
    """The venue, its position reader and the idle hook that advances a paper clock (paper only)."""
    if args.live:
        if args.venue != config.executor.live.exchange_id:
            raise ValueError(f"--venue {args.venue} but executor.json live.exchange_id is "
                             f"{config.executor.live.exchange_id}")
        from executor.venues import live_venue

        venue = live_venue(config)
        if venue.hedge_mode != (config.router.position_mode == "hedge"):
            raise ValueError(f"account hedge mode is {venue.hedge_mode}, router.json position_mode is "
                             f"{config.router.position_mode}")
        return venue, venue.positions, None
    from executor.venues import paper_venue, synthetic_tapes
    from router.market.parquet import read_tape

    run_started_ns = time.time_ns()
    tapes = ([read_tape(path) for path in args.tape] if args.tape
             else synthetic_tapes(config, start_ns=run_started_ns))
    # The run's start time is in the venue name because the paper venue numbers its fills from 1 in every
    # process: without it a restarted run would reuse trade ids the journal already holds, and positions
    # would skip those fills as already applied.
    venue = paper_venue(config, tapes, name=f"paper-{args.venue}-{run_started_ns}")
    step_ns = int(args.idle_poll_s * NS_PER_S)
    return venue, venue.positions, lambda: venue.clock.sleep_until(venue.clock.now_ns() + step_ns)


def policy_source(choice: str, config: ConfigBundle, symbols: list[str] | None = None) -> PolicySource:
    """The executor's policies: router.json's static policy, or the registry champions hot-swapped.

    ``symbols`` defaults to every ``executor.instruments`` symbol. ``registry`` needs a reachable
    store (else ``RegistryError``), a champion for every symbol (``RegistryError`` naming the first one
    missing), and refuses a champion outside ``router.json`` ``policy_bounds`` or without a gate record
    (``PolicyError``, :mod:`tuner.gate_record`).
    """
    served = sorted(config.executor.instruments) if symbols is None else symbols
    if choice == "static":
        return StaticPolicySource(config.router, served)
    if choice != "registry":
        raise ValueError(f"policy source must be one of ('static', 'registry') (tuner: tuner_wiring), got {choice!r}")
    return RegistryPolicySource(_registry(config), served, config.router.policy_bounds,
                                refresh_s=config.executor.policy_source.registry_refresh_s)


def _registry(config: ConfigBundle) -> PolicyRegistry:
    """The policy registry of ``tuner.json`` (MLflow is imported here, only when a registry is asked for)."""
    from mlflow.exceptions import MlflowException  # MLflow costs about a second to import: only when asked for

    from tuner.registry import PolicyRegistry, RegistryError

    mlflow_config = config.tuner.mlflow
    try:
        return PolicyRegistry(mlflow_config.tracking_uri, experiment=mlflow_config.experiment,
                              model_prefix=mlflow_config.registered_model_prefix)
    except MlflowException as error:
        raise RegistryError(f"MLflow store unusable: {error}") from error


@dataclass(frozen=True, slots=True)
class TunerWiring:
    """What ``--policy-source tuner`` needs besides the journal: publisher, champion and go-live source."""

    publisher: PolicyPublisher
    champion: PolicySource
    modes: ModeSource | None


def tuner_wiring(config: ConfigBundle, *, use_mlflow: bool) -> TunerWiring:
    """Publisher and champion of adaptive routing.

    With MLflow, versions go to the registry of ``tuner.json`` (``MLFLOW_TRACKING_URI`` wins), shadow
    symbols act with their registry champion (``RegistryError`` when one has none) and go-live
    requests are read from the registry. Without, versions stay in memory, shadow symbols act with the
    static policy and only the automatic go-live gate moves a symbol live.
    """
    symbols = sorted(config.executor.instruments)
    shadow = [s for s in symbols if s in config.tuner.deployment.shadow_symbols]
    if not use_mlflow:
        return TunerWiring(publisher=InMemoryPublisher(), champion=StaticPolicySource(config.router, symbols),
                           modes=None)
    from tuner.service.publish import MlflowPublisher

    registry = _registry(config)
    champion: PolicySource = (RegistryPolicySource(registry, shadow, config.router.policy_bounds,
                                                   refresh_s=config.executor.policy_source.registry_refresh_s)
                              if shadow else StaticPolicySource(config.router, symbols))
    return TunerWiring(publisher=MlflowPublisher(registry, config), champion=champion, modes=registry)


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.idle_poll_s <= 0:
        print("live: --idle-poll-s must be > 0", file=sys.stderr)
        return 2
    try:
        config = load_config(args.config)
    except ConfigError as error:
        print(f"live: {error}", file=sys.stderr)
        return 1
    if args.policy_source != "tuner" and (args.no_mlflow or args.tuner_state is not None):
        print("live: --no-mlflow and --tuner-state need --policy-source tuner", file=sys.stderr)
        return 2
    try:  # before anything touches the venue: a missing file must not surface after reconciliation
        source = JsonlIntentSource(args.intents, follow=args.follow)
    except OSError as error:
        print(f"live: intents not readable: {type(error).__name__}: {error}", file=sys.stderr)
        return 2
    try:
        return _serve(args, config, source)
    finally:
        source.close()


def _serve(args: argparse.Namespace, config: ConfigBundle, source: JsonlIntentSource) -> int:
    """Policies, venue, metrics, journal and store around the executor loop; returns the exit code."""
    wiring: TunerWiring | None = None
    try:
        if args.policy_source == "tuner":
            wiring = tuner_wiring(config, use_mlflow=not args.no_mlflow)
            policies: PolicySource = wiring.champion
        else:
            policies = policy_source(args.policy_source, config)
    except (RuntimeError, ValueError) as error:  # RegistryError, PolicyError: no champion or an unusable one
        print(f"live: policy source not started: {type(error).__name__}: {error}", file=sys.stderr)
        return 1
    try:
        venue, positions, on_idle = _venue(args, config)
    except (KeyError, ValueError, VenueError) as error:
        print(f"live: venue not started: {type(error).__name__}: {error}", file=sys.stderr)
        return 1
    stopping = {"flag": False}

    def stop(signum: int, _frame: object) -> None:
        logger.info("signal %d: finishing the current intent and stopping", signum)
        stopping["flag"] = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    metrics = ExecutorMetrics(config.strategy.universe)
    server = None
    if config.executor.prometheus.enabled:
        port, server = metrics.serve(config.executor.prometheus.host, config.executor.prometheus.port)
        print(f"metrics: http://{config.executor.prometheus.host}:{port}/metrics", flush=True)
    seed = args.seed if args.seed is not None else config.executor.paper.seed
    try:
        with Journal(args.journal) as journal, ExecutorStore(args.store) as store:
            adaptive = None
            if wiring is not None:
                state_path = (args.tuner_state if args.tuner_state is not None
                              else Path(config.executor.adaptive.tuner_state_path))
                try:
                    adaptive = AdaptiveRouting.open(
                        bundle=config, publisher=wiring.publisher, champion=wiring.champion,
                        checkpoint=TunerCheckpoint(state_path), journal_router_events=journal.count("router"),
                        modes=wiring.modes)
                except ValueError as error:  # StateFileError, or a state ahead of this journal
                    print(f"live: tuner state not restored: {type(error).__name__}: {error}", file=sys.stderr)
                    return 1
            executor = Executor(config=config, venue=venue, journal=journal, store=store,
                                policy_for=adaptive.current if adaptive is not None else policies.current,
                                rng=np.random.default_rng(seed), venue_positions=positions,
                                telemetry=Telemetry(config=config.executor, store=store, metrics=metrics,
                                                    contracts=config.strategy.universe,
                                                    champion_gates=(policies.champion_gates
                                                                    if isinstance(policies, RegistryPolicySource)
                                                                    else None)),
                                adaptive=adaptive)
            report = executor.start()
            print(f"started: {report}", flush=True)
            try:
                processed = executor.run(source, idle_poll_s=args.idle_poll_s,
                                         should_stop=lambda: stopping["flag"], on_idle=on_idle)
            except ReplayExhausted as error:  # paper only: the recorded or synthetic market ran out
                print(f"live: paper market ended: {error}", file=sys.stderr)
                return 0
            executor.publish_now()
            if adaptive is not None:
                adaptive.checkpoint()
            print(f"done: {processed} new intents processed", flush=True)
    except (ReconcileError, ExecutorHalted, AdaptiveStateAhead) as error:
        print(f"live: stopped: {type(error).__name__}: {error}", file=sys.stderr)
        return 1
    finally:
        if server is not None:
            server.shutdown()
    return 0
