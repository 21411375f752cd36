"""``router-tuner live``: run the executor on intents from a JSONL file, paper by default, live on request.

Policies come from ``--policy-source``: ``static`` (the default, router.json), ``registry`` (each
symbol's MLflow champion, re-read every ``policy_source.registry_refresh_s`` so a promote or rollback
reaches the running executor without a restart) or ``tuner`` (adaptive routing, ``executor.adaptive.routing``:
the tuner picks each symbol's arm per intent and learns every RouterEvent, publishing versions to
MLflow, or to memory with ``--no-mlflow``; shadow symbols of ``tuner.json`` act with the registry
champion, or the static policy with ``--no-mlflow``; its state is checkpointed at ``--tuner-state``,
default ``executor.json`` ``adaptive.tuner_state_path``, so a restart continues learning).

Paper mode (the default) routes on the simulated venue over recorded tapes (``--tape``) or the synthetic
market of ``executor.json``; its clock is the replay, advanced while the executor waits for its routes and by
the idle poll while no intent comes. Its
account (positions, recent orders) is kept in ``--paper-state`` across restarts (``executor.paper_account``),
as a real venue keeps it, so a restart after a kill reconciles against it.
Up to ``executor.json`` ``engine.max_routes_in_flight`` intents route at once (``engine.max_routes_per_symbol``
per symbol), as asyncio tasks on the route engine's loop (``executor.engine``); the next intent is read only when
a route can start (``executor.loop``). Live, the venue is ccxt.pro's client, and routes hear of their orders
from the user-data stream (``live.order_updates`` ``stream``), by REST polling while it is down: the mode is in
health, and polling raises the ``order_feed_polling`` alert.
Live mode needs both ``--live`` and the API key variables named in ``executor.json`` (``live``); the
keys are read from the environment only and never printed. Before the first intent the executor
reconciles open orders and positions with the venue, in both modes (see ``executor.reconcile``); health
is published every ``health.interval_s`` to the executor store and, when enabled, to a Prometheus
endpoint whose URL is printed on stdout.
The configuration is ``--config DIR``, else the embedded defaults, as in every other command.
Output: a ``started:`` line saying what the reconciliation found, then, when the run ends (intents done, a
signal, the paper market or a malformed intent line ending it), a summary of what this run did: intents
processed, orders routed and filled, fills, flagged orders per flag, mean cost in bps (fee_unpriced orders left out of
it, and counted), vetoes by reason (``features.run_summary``).
``--json`` prints the same as one JSON object per line (``"event"``: ``metrics``, ``started``, ``done``);
failures stay one plain line on stderr either way.
Failures end in one line on stderr through ``cli.main``'s table (``router-tuner live: ...``): exit 1 when a
venue, the registry or the tuner state refuses, the reconciliation does not match or the run halted; 2 for
bad input (a bad configuration, ``risk_limits.json`` ``min_notional`` under the live venue's own minimum for a
traded symbol (``executor.engine.live``), an unreadable intents file or a malformed line in it (with ``--follow``
the line is quarantined instead and the run goes on, ``executor.quarantine``), a venue without a live
adapter, a journal and executor store that are not each other's (``executor.reconcile``), an unreadable
paper account file or ``--tape``, one file given for two roles, a folder, FIFO or device where a file belongs,
a metrics host that does not resolve). 0 when the intents (or the paper market) are done or a signal stopped it.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import socket
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from router_tuner.cli.main import (
    BadInput,
    RunFailure,
    add_tracking_uri,
    distinct_files,
    finite_number,
    path_argument,
    reading,
    resolved_path,
    whole_number,
)
from router_tuner.config.loader import DEFAULTS_DIR, ConfigError, load_config
from router_tuner.config.models import SEED_MAX, ConfigBundle
from router_tuner.executor.adaptive.checkpoint import TunerCheckpoint
from router_tuner.executor.adaptive.routing import (
    AdaptiveRouting,
    AdaptiveStateAhead,
    CheckpointAheadOfJournal,
    refuse_unadaptable,
)
from router_tuner.executor.engine.collection import freeze_startup, thaw
from router_tuner.executor.engine.routes import RouteLoop
from router_tuner.executor.intents import IntentFormatError, JsonlIntentSource
from router_tuner.executor.journal import DEFAULT_PATH as DEFAULT_JOURNAL
from router_tuner.executor.journal import Journal
from router_tuner.executor.loop import Executor, ExecutorHalted, StartReport
from router_tuner.executor.monitoring.metrics import ExecutorMetrics
from router_tuner.executor.monitoring.push import PushSink
from router_tuner.executor.monitoring.telemetry import Telemetry
from router_tuner.executor.paper_account import PaperAccountError
from router_tuner.executor.reconcile import (
    JournalStoreMismatch,
    PositionReader,
    ReconcileError,
    check_journal_covers_store,
)
from router_tuner.executor.store import DEFAULT_STORE, ExecutorStore
from router_tuner.features.run_summary import RunSummary, summarize_run
from router_tuner.risk.lot import FloorUnderVenueMinimum
from router_tuner.risk.units import NS_PER_S
from router_tuner.router.venue import VenueError
from router_tuner.router.venues.ccxt.config import MissingCredentials
from router_tuner.router.venues.ccxt.quirks import QUIRKS
from router_tuner.router.venues.sim.venue import ReplayExhausted
from router_tuner.tuner.factory import frozen_budget_warning
from router_tuner.tuner.policy_source import PolicySource, RegistryPolicySource, StaticPolicySource
from router_tuner.tuner.service.publish import InMemoryPublisher, PolicyPublisher
from router_tuner.tuner.service.tuner_service import ModeSource
from router_tuner.tuner.state import StateFileError

if TYPE_CHECKING:
    from router_tuner.tuner.registry import PolicyRegistry

POLICY_SOURCES = ("static", "registry", "tuner")
MAX_IDLE_POLL_S = 3600.0
logger = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--venue", required=True, choices=sorted(QUIRKS),
                        help="exchange id the run trades on, or simulates in paper mode: a venue with a live "
                             "adapter (router.venues.ccxt.quirks)")
    parser.add_argument("--config", type=path_argument, default=None,
                        help="configuration directory (default: the embedded defaults)")
    parser.add_argument("--intents", required=True, type=path_argument, help="JSONL file of router.events.Intent")
    parser.add_argument("--follow", action="store_true",
                        help="tail the intents file until interrupted; a malformed line is quarantined (journal "
                             "dead_letters, alert intent_quarantined) and the run goes on")
    parser.add_argument("--journal", type=path_argument, default=DEFAULT_JOURNAL,
                        help=f"journal (default {DEFAULT_JOURNAL})")
    parser.add_argument("--store", type=path_argument, default=DEFAULT_STORE,
                        help=f"executor store (default {DEFAULT_STORE})")
    parser.add_argument("--tape", type=path_argument, action="append", default=[],
                        help="paper mode: a recorded Parquet tape, a symbol's chunk folder (OUT/SYMBOL, merged) or "
                             "a `record --out` folder (every symbol in it); repeatable; default synthetic market")
    parser.add_argument("--live", action="store_true", help="trade on the live venue (needs API keys in env)")
    parser.add_argument("--seed", type=whole_number(0, SEED_MAX), required=False,
                        help="router rng seed (default: executor.paper.seed)")
    parser.add_argument("--idle-poll-s", type=finite_number(0.0, MAX_IDLE_POLL_S, above_low=True), default=1.0,
                        help=f"wait per poll for a new intent, seconds (0 < s <= {MAX_IDLE_POLL_S:g}; default 1)")
    parser.add_argument("--policy-source", choices=POLICY_SOURCES, default="static",
                        help="where each symbol's RouterPolicy comes from (default: static): 'static' is router.json "
                             "static_policy; 'registry' is the MLflow champion of every executor.instruments "
                             "symbol (tuner.json mlflow, MLFLOW_TRACKING_URI wins), re-read every "
                             "executor.json policy_source.registry_refresh_s so promote/rollback needs no restart; "
                             "'tuner' routes with the online tuner (adaptive routing, versions published to MLflow)")
    parser.add_argument("--no-mlflow", action="store_true",
                        help="with --policy-source tuner: publish versions in memory only, shadow symbols act with "
                             "the static policy, no go-live requests are read")
    add_tracking_uri(parser)
    parser.add_argument("--paper-state", type=path_argument, required=False,
                        help="paper mode: the paper account (positions, recent orders) kept across restarts "
                             "(default: beside --store, its name with .paper.json for its suffix: "
                             "var/executor.paper.json)")
    parser.add_argument("--tuner-state", type=path_argument, required=False,
                        help="with --policy-source tuner: checkpoint manifest of the tuner state "
                             "(default: executor.json adaptive.tuner_state_path)")
    parser.add_argument("--json", action="store_true",
                        help="print one JSON object per stdout line (event: metrics, started, done); "
                             "a failure is still one plain line on stderr")


def _venue(args: argparse.Namespace,
           config: ConfigBundle) -> tuple[RouteLoop, PositionReader, Callable[[], None] | None, Callable[[], bool]]:
    """The route engine on the venue, the venue's position reader, the idle hook that advances a paper clock
    (paper only) and whether the paper market has ended (never, live). The caller closes the engine."""
    if args.live:
        if args.venue != config.executor.live.exchange_id:
            raise ValueError(f"--venue {args.venue} but executor.json live.exchange_id is "
                             f"{config.executor.live.exchange_id}")
        from router_tuner.executor.engine.live import live_routes

        routes = live_routes(config)
        hedge_mode = routes.venue.hedge_mode  # type: ignore[attr-defined]
        if hedge_mode != (config.router.position_mode == "hedge"):
            routes.close()
            raise ValueError(f"account hedge mode is {hedge_mode}, router.json position_mode is "
                             f"{config.router.position_mode}")
        return routes, routes.venue.positions, None, lambda: False  # type: ignore[attr-defined]
    from router_tuner.executor.venues import paper_account, synthetic_tapes
    from router_tuner.router.market.parquet import TapeFormatError
    from router_tuner.router.market.record.buffer import RecordingError
    from router_tuner.router.market.record.chunks import recorded_tapes

    run_started_ns = time.time_ns()
    for path in args.tape or ():
        if Path(path).name.endswith((".jsonl", ".jsonl.gz")):  # it said "not a readable Parquet file: … magic bytes"
            raise BadInput(f"--tape {path}: a JSONL recording, which `simulate --data` replays; --tape takes the "
                           "Parquet tapes `router-tuner record` writes: simulate this one with `router-tuner simulate "
                           f"--data {Path(path).parent}`, or record the market with `router-tuner record`")
    try:
        tapes = ([tape for path in args.tape for tape in recorded_tapes(path)] if args.tape
                 else synthetic_tapes(config, start_ns=run_started_ns))
    except TapeFormatError as error:
        raise BadInput(f"--tape {error}; give a Parquet tape written by `router-tuner record`") from error
    except RecordingError as error:
        raise BadInput(f"--tape {error}") from error
    _check_paper_symbols("--tape" if args.tape else "executor.json paper.synthetic",
                         [tape.symbol for tape in tapes], sorted(config.executor.instruments))
    # The run's start time is in the venue name because the paper venue numbers its fills from 1 in every
    # process: without it a restarted run would reuse trade ids the journal already holds, and positions
    # would skip those fills as already applied.
    account = paper_account(config, tapes, name=f"paper-{args.venue}-{run_started_ns}", path=paper_state_path(args))
    routes = RouteLoop.clocked(account, poll_interval_ms=config.executor.route.poll_interval_ms)
    venue = routes.venue
    step_ns = int(args.idle_poll_s * NS_PER_S)
    replay = account.inner
    return (routes, venue.positions, lambda: venue.clock.sleep_until(venue.clock.now_ns() + step_ns),  # type: ignore[attr-defined]
            lambda: replay.exhausted)


def _market_ended_line(args: argparse.Namespace, config: ConfigBundle) -> str:
    replay = ("the --tape recordings" if args.tape
              else f"executor.json paper.duration_s ({config.executor.paper.duration_s:g} s of synthetic market)")
    return (f"paper market ended: {replay} ran out before the intents; the intents not read yet are routed by the "
            "next run, on a new paper market (give longer recordings or a longer duration)")


def _check_paper_symbols(source: str, symbols: list[str], instruments: list[str]) -> None:
    """The paper venue replays one tape per ``executor.json`` instrument: the executor reconciles every one, so a
    missing tape used to stop the run at its start as a reconciliation failure (exit 1)."""
    repeated = sorted({symbol for symbol in symbols if symbols.count(symbol) > 1})
    if repeated:
        raise BadInput(f"{source}: two tapes for {' '.join(repeated)}: give one per symbol (a recording's chunks: "
                       "give their folder, OUT/SYMBOL, and they are replayed as one)")
    missing = [symbol for symbol in instruments if symbol not in symbols]
    foreign = [symbol for symbol in symbols if symbol not in instruments]
    if missing or foreign:
        problems = ([f"no tape for {' '.join(missing)}"] if missing else []) + (
            [f"{' '.join(foreign)} not in executor.json instruments"] if foreign else [])
        raise BadInput(f"{source}: {'; '.join(problems)}: paper mode replays one tape for each instrument "
                       f"({' '.join(instruments)})")


def _serve_metrics(metrics: ExecutorMetrics, config: ConfigBundle) -> tuple[int, object]:
    """The Prometheus endpoint, or one line naming the configured address: a host that does not resolve is
    bad input, a port another process holds is a runtime failure."""
    host, port = config.executor.prometheus.host, config.executor.prometheus.port
    where = f"Prometheus endpoint {host}:{port} (executor.json prometheus.host/port)"
    try:
        return metrics.serve(host, port)
    except socket.gaierror as error:
        raise BadInput(f"{where}: {error.strerror}; set a host this machine has") from error
    except OSError as error:
        raise RunFailure(f"{where}: {error.strerror or error}; stop what holds it, choose another port, "
                         "or set prometheus.enabled false") from error


def _refuse_unusable_files(args: argparse.Namespace, config: ConfigBundle) -> None:
    """Intents, journal, store, paper account and tuner state are different files: one given twice would be
    overwritten by the other's writer (a paper account written over the journal loses every record). The
    ones written are regular files (SQLite on ``/dev/null`` would leave its lock and journal in ``/dev``), and
    so are the intents: a read from a FIFO or device blocks until data comes, where no signal can stop it."""
    roles: list[tuple[str, Path]] = []

    def check(flag: str, path: Path) -> None:
        roles.append((flag, path))
        distinct_files(roles)
        resolved = resolved_path(flag, path)
        if resolved.exists() and not resolved.is_file():
            raise BadInput(f"{flag} {path}: not a regular file (a folder, FIFO or device); give a file path"
                           + (" (a FIFO or device would block the loop, deaf to Ctrl-C; --follow tails a file "
                              "as it grows)" if flag == "--intents" else ""))
        folder = next(ancestor for ancestor in resolved.parents if ancestor.exists())
        if not folder.is_dir():  # it failed later, after the journal opened, as "File exists: F", role unnamed
            raise BadInput(f"{flag} {path}: {folder} is a file, not a folder; give a path in a folder")

    for flag, path in (("--intents", args.intents), ("--journal", args.journal), ("--store", args.store)):
        check(flag, path)
    if not args.live:  # named after the store: only once the store is known to be a file
        check("--paper-state", paper_state_path(args))
    if args.policy_source == "tuner":
        check("--tuner-state", args.tuner_state if args.tuner_state is not None
              else Path(config.executor.adaptive.tuner_state_path))


def router_seed(args: argparse.Namespace, config: ConfigBundle) -> int:
    """The seed of the router's random generator: ``--seed``, else ``executor.json`` ``paper.seed``."""
    return int(args.seed if args.seed is not None else config.executor.paper.seed)


def paper_state_path(args: argparse.Namespace) -> Path:
    """The paper account file: ``--paper-state``, else ``<store stem>.paper.json`` beside the store."""
    if args.paper_state is not None:
        return Path(args.paper_state)
    return args.store.with_name(args.store.stem + ".paper.json")


def policy_source(choice: str, config: ConfigBundle, symbols: list[str] | None = None, *,
                  tracking_uri: str | None = None) -> PolicySource:
    """The executor's policies: router.json's static policy, or the registry champions hot-swapped.

    ``symbols`` defaults to every ``executor.instruments`` symbol. ``registry`` needs a reachable store
    (``tracking_uri``, else as :func:`~tuner.registry.resolve_tracking_uri`; ``RegistryError`` when not), a
    champion for every symbol (``RegistryError`` naming the first one missing), and refuses a champion outside
    ``router.json`` ``policy_bounds`` or without a gate record
    (``PolicyError``, :mod:`tuner.gate_record`).
    """
    served = sorted(config.executor.instruments) if symbols is None else symbols
    if choice == "static":
        return StaticPolicySource(config.router, served)
    if choice != "registry":
        raise ValueError(f"policy source must be one of ('static', 'registry') (tuner: tuner_wiring), got {choice!r}")
    return RegistryPolicySource(_registry(config, tracking_uri), served, config.router.policy_bounds,
                                refresh_s=config.executor.policy_source.registry_refresh_s)


def _registry(config: ConfigBundle, tracking_uri: str | None) -> PolicyRegistry:
    """The policy registry of ``tuner.json`` (MLflow is imported here, only when a registry is asked for)."""
    from mlflow.exceptions import MlflowException  # MLflow costs about a second to import: only when asked for

    from router_tuner.tuner.registry import PolicyRegistry, RegistryError

    mlflow_config = config.tuner.mlflow
    try:
        return PolicyRegistry(mlflow_config.tracking_uri, experiment=mlflow_config.experiment,
                              model_prefix=mlflow_config.registered_model_prefix, override_uri=tracking_uri)
    except MlflowException as error:
        raise RegistryError(f"MLflow store unusable: {error}") from error


@dataclass(frozen=True, slots=True)
class TunerWiring:
    """What ``--policy-source tuner`` needs besides the journal: publisher, champion and go-live source."""

    publisher: PolicyPublisher
    champion: PolicySource
    modes: ModeSource | None


def tuner_wiring(config: ConfigBundle, *, use_mlflow: bool, seed: int, tracking_uri: str | None = None) -> TunerWiring:
    """Publisher and champion of adaptive routing.

    With MLflow, versions go to the registry of ``tuner.json`` (``MLFLOW_TRACKING_URI`` wins, and ``tracking_uri``,
    the command's ``--tracking-uri``, over both), each with the
    router's ``seed`` as param ``router_seed`` (``--seed`` replaces ``paper.seed`` for the router only, so the
    config snapshot cannot say it), shadow symbols act with their registry champion (``RegistryError`` when one
    has none) and go-live requests are read from the registry. Without, versions stay in memory, shadow symbols act
    with the static policy and only the automatic go-live gate moves a symbol live.
    """
    symbols = sorted(config.executor.instruments)
    shadow = [s for s in symbols if s in config.tuner.deployment.shadow_symbols]
    if not use_mlflow:
        return TunerWiring(publisher=InMemoryPublisher(), champion=StaticPolicySource(config.router, symbols),
                           modes=None)
    from router_tuner.tuner.service.publish import MlflowPublisher

    registry = _registry(config, tracking_uri)
    champion: PolicySource = (RegistryPolicySource(registry, shadow, config.router.policy_bounds,
                                                   refresh_s=config.executor.policy_source.registry_refresh_s)
                              if shadow else StaticPolicySource(config.router, symbols))
    return TunerWiring(publisher=MlflowPublisher(registry, config, run_params={"router_seed": seed}), champion=champion,
                       modes=registry)


def run(args: argparse.Namespace) -> int:
    """``live``; the SIGTERM and SIGINT handlers in place when it is called are restored when it returns.

    Until the executor installs its graceful stop (``_run_executor``), SIGTERM stops the start-up as Ctrl-C does
    (``cli.main`` takes it so from before this module loads): ``interrupted``, exit 130. The graceful stop's handlers
    stayed installed after the run (in a process that calls ``cli.main.main`` again, Ctrl-C then did nothing)."""
    previous = {number: signal.getsignal(number) for number in (signal.SIGTERM, signal.SIGINT)}
    try:
        return _run(args)
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def _run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = load_config(args.config if args.config is not None else DEFAULTS_DIR)  # bad: exit 2 (cli.main)
    _refuse_unusable_files(args, config)
    if args.policy_source != "tuner" and (args.no_mlflow or args.tuner_state is not None):
        raise BadInput("--no-mlflow and --tuner-state need --policy-source tuner")
    if args.live and args.paper_state is not None:
        raise BadInput("--paper-state is for paper mode; a live venue keeps its own account")
    if args.live and args.venue != config.executor.live.exchange_id:  # was exit 1, "venue not started: ValueError"
        raise BadInput(f"--venue {args.venue} but executor.json live.exchange_id is "
                       f"{config.executor.live.exchange_id}: they must name the same exchange; set it to "
                       f"{args.venue} (venues with a live adapter: {', '.join(sorted(QUIRKS))})")
    if args.live and args.tape:  # it was ignored: a run meant to replay a tape traded on the venue
        raise BadInput("--tape replays a recording in paper mode, and --live trades on the venue's market: "
                       "drop one of them")
    if args.policy_source == "tuner":
        try:
            refuse_unadaptable(config)
        except ConfigError as error:  # valid for `simulate` (config check passes it): named for this use
            raise BadInput(f"--policy-source tuner: {'; '.join(map(str, error.issues))}") from None
    if args.policy_source == "registry" or (args.policy_source == "tuner" and not args.no_mlflow):
        # the MLflow store opened as simulate opens it: a URI MLflow cannot use is bad input (exit 2), not a
        # policy source that failed to start (exit 1)
        from router_tuner.tuner.registry import open_client, resolve_tracking_uri

        open_client(resolve_tracking_uri(config.tuner.mlflow.tracking_uri, override=args.tracking_uri))
    elif args.tracking_uri is not None:
        raise BadInput(f"--tracking-uri {args.tracking_uri} is ignored: only --policy-source registry, or tuner "
                       "without --no-mlflow, opens MLflow; drop --tracking-uri")
    # before anything touches the venue: a missing file must not surface after reconciliation
    with reading("intents", args.intents):
        source = JsonlIntentSource(args.intents, follow=args.follow)
    try:
        return _serve(args, config, source)
    finally:
        source.close()


def _serve(args: argparse.Namespace, config: ConfigBundle, source: JsonlIntentSource) -> int:
    """Policies, venue, metrics, journal and store around the executor loop; returns the exit code.

    Every failure is raised for ``cli.main`` to print as one line: :class:`BadInput` (exit 2) for the
    wrong files, :class:`RunFailure` (exit 1) for a venue, registry or account that refuses.
    """
    wiring: TunerWiring | None = None
    try:
        if args.policy_source == "tuner":
            wiring = tuner_wiring(config, use_mlflow=not args.no_mlflow, seed=router_seed(args, config),
                                  tracking_uri=args.tracking_uri)
            policies: PolicySource = wiring.champion
        else:
            policies = policy_source(args.policy_source, config, tracking_uri=args.tracking_uri)
    except (RuntimeError, ValueError) as error:  # RegistryError, PolicyError: no champion or an unusable one
        advice = ("; each executor.json instruments symbol needs a champion in that store (see `router-tuner "
                  "policy list` and `policy promote`), or run with --policy-source static or tuner"
                  if args.policy_source == "registry" else "")  # it said what failed, not what to do
        raise RunFailure(f"policy source not started: {type(error).__name__}: {error}{advice}") from error
    try:
        routes, positions, on_idle, market_ended = _venue(args, config)
    except PaperAccountError as error:
        raise BadInput(f"paper account not restored: {error}") from error
    except MissingCredentials as error:
        raise BadInput(f"live trading not started: {error}") from error
    except FloorUnderVenueMinimum as error:  # a ValueError: bad configuration, not a venue that failed (exit 1)
        raise BadInput(str(error)) from error
    except (KeyError, ValueError, VenueError) as error:
        raise RunFailure(f"venue not started: {type(error).__name__}: {error}") from error
    try:
        return _run_executor(args, config, source, routes, positions, (on_idle, market_ended), wiring, policies)
    finally:
        routes.close()


def _run_executor(args: argparse.Namespace, config: ConfigBundle, source: JsonlIntentSource, routes: RouteLoop,
                  positions: PositionReader, paper: tuple[Callable[[], None] | None, Callable[[], bool]],
                  wiring: TunerWiring | None, policies: PolicySource) -> int:
    """Metrics, journal, store and the executor on ``routes`` until the intents end; returns the exit code.

    ``paper``: the idle hook that advances a paper clock, and whether the paper market has ended. At its end no
    intent is admitted (each would be routed into a replay without data and journaled as an error, never to be
    routed again: a paper run past its market used to burn every later intent so, then halt with exit 1); the
    routes in flight finish, and the run ends as a runtime failure naming the replay: the unread intents are
    routed by the next run, on a new paper market.
    """
    on_idle, market_ended = paper
    stopping = {"flag": False}

    def stop(signum: int, _frame: object) -> None:
        logger.info("signal %d: finishing the current intent and stopping", signum)
        stopping["flag"] = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    metrics = ExecutorMetrics(config.strategy.universe, config.executor.prometheus)
    push = PushSink(config.executor.push, metrics.registry).start() if config.executor.push.enabled else None
    server = None
    if config.executor.prometheus.enabled:
        port, server = _serve_metrics(metrics, config)
        url = f"http://{config.executor.prometheus.host}:{port}/metrics"
        _say(args, {"event": "metrics", "url": url}, f"metrics: {url}")
    seed = router_seed(args, config)
    try:
        with _journal_and_store(args) as (journal, store):
            adaptive = None
            if wiring is not None:
                state_path = (args.tuner_state if args.tuner_state is not None
                              else Path(config.executor.adaptive.tuner_state_path))
                try:
                    adaptive = AdaptiveRouting.open(
                        bundle=config, publisher=wiring.publisher, champion=wiring.champion,
                        checkpoint=TunerCheckpoint(state_path), journal_router_events=journal.count("router"),
                        modes=wiring.modes)
                except StateFileError as error:  # damaged, of another journal, or saved under another tuner.json
                    if isinstance(error, CheckpointAheadOfJournal):
                        # a journal that lost records (its -wal cut or deleted after a kill) is the store's refusal
                        # to make, naming the journal: blaming the tuner state sent the user to move a sound state away
                        check_journal_covers_store(store.submissions(), journal.intent_ids("trade"),
                                                   max_in_flight=config.executor.engine.max_routes_in_flight,
                                                   journal=journal.path, store=store.path)
                    raise BadInput(f"tuner state not restored: {error}; restore the files it was saved with, or "
                                   "move them away: the tuner then learns this journal again from its start") \
                        from error
                except ValueError as error:
                    raise RunFailure(f"tuner state not restored: {type(error).__name__}: {error}") from error
            executor = Executor(config=config, venue=routes.venue, journal=journal, store=store,
                                policy_for=adaptive.current if adaptive is not None else policies.current,
                                rng=np.random.default_rng(seed), venue_positions=positions,
                                telemetry=Telemetry(config=config.executor, store=store, metrics=metrics,
                                                    contracts=config.strategy.universe,
                                                    champion_gates=(policies.champion_gates
                                                                    if isinstance(policies, RegistryPolicySource)
                                                                    else None), push=push),
                                adaptive=adaptive, routes=routes)
            report = executor.start()
            freeze_startup()  # a full collection no longer scans what start-up built (executor.engine.collection)
            mark = RunMark.of(journal)  # the summary counts what this run appends after it
            _say(args, {"event": "started", **asdict(report)}, f"started: {describe_start(report)}")
            for warning in report.lot_warnings:
                print(f"router-tuner live: warning: {warning}", file=sys.stderr)
            if adaptive is not None and (frozen := frozen_budget_warning(config, [config.tuner.learner])) is not None:
                print(f"router-tuner live: warning: {frozen}", file=sys.stderr)
            if args.live and config.risk.intent_max_age_s is None:
                print("router-tuner live: warning: risk_limits.json intent_max_age_s is null: intents are routed "
                      "however old their ts_ns (a backlog, an old file); set it to the oldest decision worth "
                      "trading, in seconds", file=sys.stderr)
            try:
                executor.run(source, idle_poll_s=args.idle_poll_s,
                             should_stop=lambda: stopping["flag"] or market_ended(),
                             on_idle=on_idle, quarantine_malformed=args.follow)
            except ReplayExhausted:  # the idle hook reached the end of the paper market (no route in flight)
                pass
            except IntentFormatError:
                _say_done(args, journal, mark, ended="malformed_intent")
                raise
            except ExecutorHalted as error:
                if market_ended():  # a route in flight at the end: settled (and journaled once) by the next run
                    _say_done(args, journal, mark, ended="paper_market_ended")
                    raise RunFailure(f"{_market_ended_line(args, config)}; the routes in flight at its end are "
                                     "settled by it") from error
                _say_done(args, journal, mark, ended="halted")
                raise
            executor.publish_now()
            if adaptive is not None:
                adaptive.checkpoint()
            if market_ended() and not (stopping["flag"] or source.exhausted):
                _say_done(args, journal, mark, ended="paper_market_ended")
                raise RunFailure(_market_ended_line(args, config))
            _say_done(args, journal, mark, ended="signal" if stopping["flag"] else "intents_done")
    except IntentFormatError as error:  # the intents before the line are journaled; nothing past it was routed
        error.add_note("stopped at a malformed intent")
        raise
    except JournalStoreMismatch as error:  # before ReconcileError, its base: the wrong pair of files
        paper = "" if args.live else f" (paper mode: with the paper account {paper_state_path(args)})"
        raise BadInput(f"refused: {error}{paper}") from error
    except (ReconcileError, ExecutorHalted, AdaptiveStateAhead) as error:
        paper = "" if args.live else f" (paper mode: the venue's account is {paper_state_path(args)})"
        raise RunFailure(f"stopped: {type(error).__name__}: {error}{paper}") from error
    finally:
        thaw()
        if server is not None:
            server.shutdown()
        if push is not None:
            push.close(drain_s=config.executor.push.timeout_s)
    return 0


@contextmanager
def _journal_and_store(args: argparse.Namespace) -> Iterator[tuple[Journal, ExecutorStore]]:
    """The journal and the executor store, open; a file that does not open is named in the failure line (a journal
    cut short or damaged was "database disk image is malformed: …" without saying which of the two files)."""
    with ExitStack() as files:
        with reading("journal", args.journal):
            journal = files.enter_context(Journal(args.journal))
        with reading("executor store", args.store):
            store = files.enter_context(ExecutorStore(args.store))
        yield journal, store


def describe_start(report: StartReport) -> str:
    """What the start-up reconciliation found, in words (``--json`` prints the fields instead)."""
    def listed(ids: tuple[str, ...]) -> str:
        return f" ({', '.join(ids)})" if ids else ""

    parts = [f"{report.replayed_router_events} router events replayed from the journal",
             f"{report.done_intents} intents already done",
             f"{len(report.recovered_intent_ids)} in-flight intents recovered{listed(report.recovered_intent_ids)}",
             f"{report.cancelled_orders} stale orders cancelled",
             f"{len(report.foreign_open_orders)} open orders not ours left alone{listed(report.foreign_open_orders)}",
             "positions checked against the venue" if report.positions_checked
             else "positions from the journal only (the venue cannot report them)"]
    if report.tuner_catch_up is not None:
        parts.append(f"tuner re-learned {report.tuner_catch_up.relearned} events "
                     f"({report.tuner_catch_up.without_decision} without a decision record)")
    return ", ".join(parts)


def describe_done(summary: RunSummary, *, ended: str) -> list[str]:
    """The closing lines of a run: how many intents were new and why it ended, then what became of them."""
    return [f"done: {summary.routed + summary.vetoed} new intents processed ({ended.replace('_', ' ')})",
            *(f"  {line}" for line in summary.lines())]


@dataclass(frozen=True, slots=True)
class RunMark:
    """Where the journal stood when this run started: its last row and how many lines were dead letters."""

    first_row: int
    dead_letters: int

    @classmethod
    def of(cls, journal: Journal) -> RunMark:
        return cls(first_row=journal.last_row(), dead_letters=len(journal.dead_letters()))


def _say_done(args: argparse.Namespace, journal: Journal, mark: RunMark, *, ended: str) -> None:
    """Print the summary of the router and veto events this run journaled (after ``mark``), and the intent
    lines it quarantined (``--follow``)."""
    summary = summarize_run([*journal.read("router", after_row=mark.first_row),
                             *journal.read("veto", after_row=mark.first_row)])
    quarantined = len(journal.dead_letters()) - mark.dead_letters
    lines = describe_done(summary, ended=ended)
    if quarantined:
        lines.append(f"  quarantined {quarantined} malformed intent lines (journal {journal.path}: dead_letters)")
    _say(args, {"event": "done", "ended": ended, "processed": summary.routed + summary.vetoed,
                "quarantined": quarantined, **summary.as_dict()}, "\n".join(lines))


def _say(args: argparse.Namespace, fields: dict[str, object], text: str) -> None:
    """One stdout record: a JSON object under ``--json``, else the readable ``text``."""
    print(json.dumps(fields, sort_keys=True, default=str) if args.json else text, flush=True)
