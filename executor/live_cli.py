"""``router-tuner live``: run the executor on intents from a JSONL file, paper by default, live on request.

Policies come from ``--policy-source``: ``static`` (the default, router.json) or ``registry`` (each
symbol's MLflow champion, re-read every ``policy_source.registry_refresh_s`` so a promote or rollback
reaches the running executor without a restart).

Paper mode (the default) routes on the simulated venue over recorded tapes (``--tape``) or the synthetic
market of ``executor.json``; its clock is the replay, advanced by the idle poll while no intent comes.
Live mode needs both ``--live`` and the API key variables named in ``executor.json`` (``live``); the
keys are read from the environment only and never printed. Before the first intent the executor
reconciles open orders and positions with the venue, in both modes (see ``executor.reconcile``); health
is published every ``health.interval_s`` to the executor store and, when enabled, to a Prometheus
endpoint whose URL is printed on stdout.
Exit codes: 0 done, 1 configuration or reconciliation refused, 2 bad arguments.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from config.loader import ConfigError, load_config
from config.models import ConfigBundle
from executor.intents import JsonlIntentSource
from executor.journal import DEFAULT_PATH as DEFAULT_JOURNAL
from executor.journal import Journal
from executor.loop import Executor, ExecutorHalted
from executor.metrics import ExecutorMetrics
from executor.reconcile import PositionReader, ReconcileError
from executor.store import ExecutorStore
from executor.telemetry import Telemetry
from risk.units import NS_PER_S
from router.venue import Venue, VenueError
from router.venues.sim import ReplayExhausted
from tuner.policy_source import PolicySource, RegistryPolicySource, StaticPolicySource

DEFAULT_STORE = Path("var/executor.sqlite")
POLICY_SOURCES = ("static", "registry")
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
                             "executor.json policy_source.registry_refresh_s so promote/rollback needs no restart")


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

    tapes = ([read_tape(path) for path in args.tape] if args.tape
             else synthetic_tapes(config, start_ns=time.time_ns()))
    venue = paper_venue(config, tapes, name=f"paper-{args.venue}")
    step_ns = int(args.idle_poll_s * NS_PER_S)
    return venue, venue.positions, lambda: venue.clock.sleep_until(venue.clock.now_ns() + step_ns)


def policy_source(choice: str, config: ConfigBundle) -> PolicySource:
    """The executor's policies: router.json's static policy, or the registry champions hot-swapped.

    ``registry`` needs a reachable store (else ``RegistryError``), a champion for every
    ``executor.instruments`` symbol (``RegistryError`` naming the first one missing), and refuses a
    champion outside ``router.json`` ``policy_bounds`` (``PolicyError``).
    """
    symbols = sorted(config.executor.instruments)
    if choice == "static":
        return StaticPolicySource(config.router, symbols)
    if choice != "registry":
        raise ValueError(f"policy source must be one of {POLICY_SOURCES}, got {choice!r}")
    from mlflow.exceptions import MlflowException  # MLflow costs about a second to import: only when asked for

    from tuner.registry import PolicyRegistry, RegistryError

    mlflow_config = config.tuner.mlflow
    try:
        registry = PolicyRegistry(mlflow_config.tracking_uri, experiment=mlflow_config.experiment,
                                  model_prefix=mlflow_config.registered_model_prefix)
    except MlflowException as error:
        raise RegistryError(f"MLflow store unusable: {error}") from error
    return RegistryPolicySource(registry, symbols, config.router.policy_bounds,
                                refresh_s=config.executor.policy_source.registry_refresh_s)


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
    try:
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
    metrics = ExecutorMetrics()
    server = None
    if config.executor.prometheus.enabled:
        port, server = metrics.serve(config.executor.prometheus.host, config.executor.prometheus.port)
        print(f"metrics: http://{config.executor.prometheus.host}:{port}/metrics", flush=True)
    seed = args.seed if args.seed is not None else config.executor.paper.seed
    try:
        with Journal(args.journal) as journal, ExecutorStore(args.store) as store:
            executor = Executor(config=config, venue=venue, journal=journal, store=store,
                                policy_for=policies.current, rng=np.random.default_rng(seed),
                                venue_positions=positions,
                                telemetry=Telemetry(config=config.executor, store=store, metrics=metrics))
            report = executor.start()
            print(f"started: {report}", flush=True)
            source = JsonlIntentSource(args.intents, follow=args.follow)
            try:
                processed = executor.run(source, idle_poll_s=args.idle_poll_s,
                                         should_stop=lambda: stopping["flag"], on_idle=on_idle)
            except ReplayExhausted as error:  # paper only: the recorded or synthetic market ran out
                print(f"live: paper market ended: {error}", file=sys.stderr)
                return 0
            finally:
                source.close()
            executor.publish_now()
            print(f"done: {processed} new intents processed", flush=True)
    except (ReconcileError, ExecutorHalted) as error:
        print(f"live: stopped: {type(error).__name__}: {error}", file=sys.stderr)
        return 1
    finally:
        if server is not None:
            server.shutdown()
    return 0
