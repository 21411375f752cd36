"""Policy versions in MLflow: one run and one registered model version per published RouterPolicy.

Each symbol has a registered model ``<prefix>-<SYMBOL>`` whose version N is policy version N: an MLflow
pyfunc model (:mod:`tuner.pyfunc`: decision context in, knobs and propensity out, so
``mlflow.pyfunc.load_model("models:/<prefix>-<SYMBOL>@champion")`` predicts) whose run also keeps the policy
document (``policy/policy.json``) and the redacted config snapshot. The registry aliases say which
version acts (``champion``) and which is proposed (``challenger``). Promotion and rollback only move
aliases, so the router picks up a change by re-reading the alias, without a restart. The champions a
promotion replaced are kept, oldest first, in a model tag (``champion_history``), so each rollback steps one
further back, never forward to the version it just left, and needs no memory outside MLflow.

MLflow is imported here (and in the pyfunc modules it uses) only: it costs about a second to import and
must stay off the routing path.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
from mlflow import MlflowClient
from mlflow.entities import Metric, Param
from mlflow.exceptions import MlflowException

from router_tuner.config.redact import redact
from router_tuner.config.text import url_problem
from router_tuner.router.policy import RouterPolicy
from router_tuner.tuner.flat_params import flatten_params
from router_tuner.tuner.gate_record import PROMOTION_TAG, initial_tags
from router_tuner.tuner.pyfunc import save_policy_model
from router_tuner.tuner.registry_aliases import CHALLENGER, CHAMPION
from router_tuner.tuner.run_owner import end_orphaned_runs, owner_tags

PREVIOUS_CHAMPION_TAG = "previous_champion_version"
"""The champion the last promotion replaced (stores written before ``champion_history`` hold only this)."""
CHAMPION_HISTORY_TAG = "champion_history"
"""Registered-model tag: the versions promotions replaced as champion, oldest first, comma-separated."""
DEPLOYMENT_MODE_TAG = "deployment_mode"
"""Registered-model tag a person sets to ``live`` (``policy go-live``) to take a symbol out of shadow mode."""
REGISTERING_TAG = "registering"
"""Registered-model tag set while ``simulate`` registers a model's versions (under its staging name, since it puts
the model in place whole) and removed after the last: a model that still holds it was left part-registered by a run
that stopped (kill -9, a crash) and is listed as such."""
DEFAULT_TRACKING_URI = "sqlite:///var/mlflow.db"
POLICY_ARTIFACT = "policy.json"
MODEL_ARTIFACT = "model"
"""Where a version's run keeps its pyfunc model; the registered version's source."""
PARENT_RUN_TAG = "mlflow.parentRunId"
logger = logging.getLogger(__name__)


def choose_tracking_uri(configured: str | None, *, override: str | None = None) -> str:
    """``override`` (a command's ``--tracking-uri``) wins, then ``MLFLOW_TRACKING_URI``, then the configured
    URI, then a local SQLite file under ``./var``; nothing is created (see :func:`resolve_tracking_uri`)."""
    if override:
        return override
    return os.environ.get("MLFLOW_TRACKING_URI") or configured or DEFAULT_TRACKING_URI


def resolve_tracking_uri(configured: str | None, *, override: str | None = None) -> str:
    """:func:`choose_tracking_uri`, with the folder of a configured (or the default) SQLite store created."""
    uri = choose_tracking_uri(configured, override=override)
    if not override and not os.environ.get("MLFLOW_TRACKING_URI") and uri.startswith("sqlite:///"):
        Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    return uri


def missing_sqlite_store(tracking_uri: str) -> Path | None:
    """The file a ``sqlite:///`` URI names when it does not exist yet or is empty (opening it would create a new,
    empty store), else ``None`` (a store there, a server, an in-memory or parameterised URI)."""
    location = tracking_uri.removeprefix("sqlite:///").split("?", 1)[0]  # ?mode=ro… opens (creates) the same file
    if not tracking_uri.startswith("sqlite:///") or location in ("", ":memory:"):
        return None
    database = Path(location)
    if database.exists() and not (database.is_file() and database.stat().st_size == 0):
        return None
    return database


@dataclass(frozen=True, slots=True)
class PolicyVersion:
    """One registered policy version as the registry knows it."""

    symbol: str
    model: str
    version: int
    run_id: str
    aliases: tuple[str, ...]
    policy: dict[str, Any]
    metrics: dict[str, float]
    tags: dict[str, str]
    """The model version's tags: the symbol, and the gate record of its promotion (:mod:`tuner.gate_record`)."""


class RegistryError(RuntimeError):
    """A registry operation that cannot be carried out (unknown symbol, version or alias)."""


class NoSuchVersion(RegistryError):
    """A version or alias the registry does not hold for a symbol (a wrong ``--version``, ``--symbol`` or
    ``--prefix``): bad input, not a store failure."""


class VersionTaken(RegistryError):
    """The policy version is the model's newest registered version already, with other knobs: ``registered``.

    Raised instead of the plain :class:`RegistryError` so a publisher that can explain it (a run killed after
    registering the version and before saving its state, :class:`tuner.service.publish.MlflowPublisher`) may adopt
    the registered version; anyone else gets the same refusal."""

    def __init__(self, message: str, registered: PolicyVersion) -> None:
        super().__init__(message)
        self.registered = registered


class ChampionStays(RegistryError):
    """A promote or rollback that cannot move the champion (no earlier champion left, no challenger, the version
    is the champion already): the store is fine."""


class TrackingUriError(ValueError):
    """A tracking URI MLflow will not open as given: a bare path or ``file:`` (MLflow's retired file store)."""


class PolicyRegistry:
    """Publish, list, promote and roll back per-symbol RouterPolicy versions in MLflow."""

    def __init__(self, tracking_uri: str | None, experiment: str, model_prefix: str, *,
                 override_uri: str | None = None) -> None:
        """``tracking_uri`` is the configured URI; ``override_uri`` (a command line's) beats the environment."""
        self.tracking_uri = resolve_tracking_uri(tracking_uri, override=override_uri)
        self.model_prefix = model_prefix
        self._client = open_client(self.tracking_uri)
        self._experiment_id = ensure_experiment(self._client, self.tracking_uri, experiment)

    def model_name(self, symbol: str) -> str:
        return f"{self.model_prefix}-{symbol}"

    def publish(
        self,
        policy: RouterPolicy,
        *,
        params: Mapping[str, Any],
        metrics: Mapping[str, float],
        config_snapshot: Mapping[str, Any],
        run_name: str | None = None,
        parent_run_id: str | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> PolicyVersion:
        """Record a new version as an MLflow run with a pyfunc model, register it and make it ``challenger``.

        The registered version number is the policy version: MLflow numbers a model's versions 1, 2, … in
        order, so a version that would get another number is refused (:class:`RegistryError`) before
        anything is written; a version the registry holds already with the same knobs is returned, its missing
        aliases and gate record added first (adaptive routing publishes again what it published between its last
        checkpoint and a crash, which may have landed before them); the model's newest version with other knobs is
        refused as :class:`VersionTaken`, which carries it (the publisher of a restarted tuner may adopt it).
        The first version of a symbol also becomes ``champion`` (gate record ``initial``,
        :mod:`tuner.gate_record`): something must act. The config snapshot is written through
        :func:`config.redact.redact`, whoever built it: a pasted key never reaches MLflow.
        ``parent_run_id`` nests the version's run under another (the simulation's); ``tags`` are added to the run's
        own (the publisher's ``learner``, so a reviewer filtering runs by learner finds its versions too).
        """
        symbol, name = policy.symbol, self.model_name(policy.symbol)
        expected = self._next_version(name)
        refusal = (f"{symbol}: policy version {policy.version} would be registered as {name} version {expected}; "
                   f"the registry version must be the policy version, so versions are published in order "
                   f"(restore the tuner's state, or publish under a new model prefix)")
        if 0 < policy.version < expected:
            registered = self.show(symbol, str(policy.version))
            if registered.policy == policy.as_params():  # published again after a crash (at-least-once)
                return self.finish_version(symbol, policy.version)
            if policy.version == expected - 1:  # the newest version, with other knobs: the caller may adopt it
                raise VersionTaken(refusal, registered)
        if policy.version != expected:
            raise RegistryError(refusal)
        run_tags = {**(tags or {}), "symbol": symbol, "kind": "policy_version", "policy_version": str(policy.version),
                    **owner_tags()}
        if parent_run_id is not None:
            run_tags[PARENT_RUN_TAG] = parent_run_id
        run = self._client.create_run(self._experiment_id, run_name=run_name or f"{symbol}-v{policy.version}",
                                      tags=run_tags)
        run_id = run.info.run_id
        try:
            self._log_version(run_id, policy, params, metrics, config_snapshot)
        except Exception:
            self._client.set_terminated(run_id, status="FAILED")
            raise
        self._client.set_terminated(run_id)
        self._ensure_model(name)
        created = self._client.create_model_version(
            name, source=f"{run.info.artifact_uri}/{MODEL_ARTIFACT}", run_id=run_id,
            tags={"symbol": symbol, "policy_id": policy.policy_id, "arm": policy.arm})
        version = int(created.version)
        if version != policy.version:  # another process published in between: take ours back
            self._client.delete_model_version(name, created.version)
            raise RegistryError(f"{symbol}: {name} version {policy.version} was published by someone else meanwhile")
        return self.finish_version(symbol, version)

    def finish_version(self, symbol: str, version: int) -> PolicyVersion:
        """The steps of :meth:`publish` after the version is registered: it becomes ``challenger`` (unless a
        newer version is), and ``champion`` with the ``initial`` gate record when the model has none. Each step is
        taken only when still missing, so publishing again a version a killed process registered finishes it (its
        rerun used to return it as it was: no champion, and the next version crowned ungated in its place)."""
        name = self.model_name(symbol)
        challenger = self._alias_version(name, CHALLENGER)
        if challenger is None or challenger < version:
            self._client.set_registered_model_alias(name, CHALLENGER, str(version))
        champion = self._alias_version(name, CHAMPION)
        if champion is None:
            self._client.set_registered_model_alias(name, CHAMPION, str(version))
            champion = version
        if champion == version and PROMOTION_TAG not in self.version_tags(symbol, version) and not self._history(name):
            self.tag_version(symbol, version, initial_tags())
        return self.show(symbol, str(version))

    def _log_version(self, run_id: str, policy: RouterPolicy, params: Mapping[str, Any],
                     metrics: Mapping[str, float], config_snapshot: Mapping[str, Any]) -> None:
        """Flattened redacted params, metrics, the policy document, the redacted config snapshot, the model."""
        log_flat(self._client, run_id, params=flatten_params(redact(dict(params))), metrics=metrics)
        with tempfile.TemporaryDirectory() as scratch:
            policy_path = Path(scratch) / POLICY_ARTIFACT
            policy_path.write_text(json.dumps(policy.as_params(), sort_keys=True, indent=2))
            config_path = Path(scratch) / "config_snapshot.json"
            config_path.write_text(json.dumps(redact(dict(config_snapshot)), sort_keys=True, indent=2))
            self._client.log_artifact(run_id, str(policy_path), artifact_path="policy")
            self._client.log_artifact(run_id, str(config_path), artifact_path="config")
            model_dir = save_policy_model(policy, Path(scratch) / MODEL_ARTIFACT)
            self._client.log_artifacts(run_id, str(model_dir), artifact_path=MODEL_ARTIFACT)

    def version_run(self, version: PolicyVersion) -> tuple[dict[str, str], dict[str, str]]:
        """The params and tags of the run that registered ``version`` (flattened, as :meth:`publish` logged them)."""
        run = self._client.get_run(version.run_id)
        return dict(run.data.params), dict(run.data.tags)

    def show(self, symbol: str, ref: str = CHAMPION) -> PolicyVersion:
        """One version by number or alias (``champion``/``challenger``)."""
        name = self.model_name(symbol)
        try:
            model_version = (self._client.get_model_version(name, ref) if ref.isdigit()
                             else self._client.get_model_version_by_alias(name, ref))
        except MlflowException as error:
            if not _is_missing(error):
                raise
            raise NoSuchVersion(f"{symbol}: no policy version {ref!r} in {self.tracking_uri}") from error
        return self._describe(symbol, model_version)

    def challenger_version(self, symbol: str) -> int | None:
        """The version the ``challenger`` alias names, ``None`` when there is none (or no model)."""
        return self._alias_version(self.model_name(symbol), CHALLENGER)

    def champion_version(self, symbol: str) -> int | None:
        """The champion's version number only (one alias lookup, no artifact download)."""
        return self._alias_version(self.model_name(symbol), CHAMPION)

    def list(self, symbol: str | None = None) -> list[PolicyVersion]:
        """Every version of one symbol, or of every model under the prefix, by model then newest first.

        ``search_model_versions`` returns versions without their aliases (MLflow 3.17 fills them only in
        ``get_model_version``), so the aliases are read once per model from the registered model.
        """
        query = f"name='{self.model_name(symbol)}'" if symbol else f"name LIKE '{self.model_prefix}-%'"
        # LIKE reads % and _ in the prefix as wildcards (``--prefix %`` listed every model): keep the prefix's own
        found = [mv for mv in self._client.search_model_versions(query)
                 if mv.name.startswith(f"{self.model_prefix}-")]
        aliases: dict[str, dict[str, list[str]]] = {}
        for name in {mv.name for mv in found}:
            by_version: dict[str, list[str]] = {}
            for alias, version in self._client.get_registered_model(name).aliases.items():
                by_version.setdefault(str(version), []).append(alias)
            aliases[name] = by_version
        described = [self._describe(mv.tags.get("symbol", mv.name.removeprefix(f"{self.model_prefix}-")), mv,
                                    aliases=aliases[mv.name].get(str(mv.version), []))
                     for mv in found]
        return sorted(described, key=lambda v: (v.model, -v.version))

    def promote(self, symbol: str, version: int | None = None) -> PolicyVersion:
        """Make ``version`` (default: the challenger) the champion; remember the old one for rollback."""
        name = self.model_name(symbol)
        target = version if version is not None else self._alias_version(name, CHALLENGER)
        if target is None:
            raise ChampionStays(f"{symbol}: no challenger to promote")
        current = self._alias_version(name, CHAMPION)
        if current == target:
            raise ChampionStays(f"{symbol}: version {target} is already the champion")
        self.show(symbol, str(target))
        if current is not None:
            history = self._history(name)  # its last entry is current already after a promotion killed before
            self._set_history(name, history if history[-1:] == [current] else [*history, current])  # the alias
        self._client.set_registered_model_alias(name, CHAMPION, str(target))
        return self.show(symbol, CHAMPION)

    def rollback(self, symbol: str) -> PolicyVersion:
        """Move ``champion`` back to the version the current one replaced; the next rollback goes further back.

        The version left is not remembered as a champion to return to: rolling back twice from v3 (which
        replaced v2, which replaced v1) acts with v1, and a third rollback is refused.
        """
        name = self.model_name(symbol)
        try:
            history = self._history(name)
        except MlflowException as error:
            if not _is_missing(error):
                raise
            raise NoSuchVersion(f"{symbol}: no registered policy in {self.tracking_uri}") from error
        if not history:
            raise ChampionStays(f"{symbol}: no previous champion to roll back to")
        try:
            self._client.get_model_version(name, str(history[-1]))
        except MlflowException as error:  # deleted in the MLflow UI: MLflow's "Model Version … not found" said only
            if not _is_missing(error):  # that, and "check the MLflow store"
                raise
            raise ChampionStays(f"{symbol}: v{history[-1]}, the champion before v{self._alias_version(name, CHAMPION)} "
                                f"(model tag {CHAMPION_HISTORY_TAG} of {name}), is no longer registered (deleted in "
                                "MLflow?), so there is nothing to roll back to; to act with another version, "
                                "`policy promote --version N --force --who … --why …`") from error
        self._client.set_registered_model_alias(name, CHAMPION, str(history[-1]))
        self._set_history(name, history[:-1])
        return self.show(symbol, CHAMPION)

    def _history(self, name: str) -> list[int]:
        """The champions promotions replaced, oldest first (``MlflowException`` when there is no model)."""
        tags = self._client.get_registered_model(name).tags
        key = CHAMPION_HISTORY_TAG if CHAMPION_HISTORY_TAG in tags else PREVIOUS_CHAMPION_TAG
        entries = [v.strip() for v in tags.get(key, "").split(",") if v.strip()]
        if not all(v.isascii() and v.isdigit() and int(v) > 0 for v in entries):  # a tag edited in the MLflow UI
            raise RegistryError(f"{name}: model tag {key} {tags[key]!r} is not a comma-separated list of version "
                                "numbers (edited by hand?), so no earlier champion can be told: set it right in "
                                "MLflow, or choose the version with `policy promote --version N --force`")
        return [int(v) for v in entries]

    def _set_history(self, name: str, history: list[int]) -> None:
        """Store the history and, for readers of the older tag, its last entry (empty when none is left)."""
        self._client.set_registered_model_tag(name, CHAMPION_HISTORY_TAG, ",".join(map(str, history)))
        self._client.set_registered_model_tag(name, PREVIOUS_CHAMPION_TAG, str(history[-1]) if history else "")

    def tag_version(self, symbol: str, version: int, tags: Mapping[str, str]) -> None:
        """Record ``tags`` on a model version and on its run (e.g. why it was promoted, and by whom)."""
        name = self.model_name(symbol)
        target = self.show(symbol, str(version))
        for key, value in tags.items():
            self._client.set_model_version_tag(name, str(version), key, value)
            self._client.set_tag(target.run_id, key, value)

    def version_tags(self, symbol: str, version: int) -> dict[str, str]:
        """The tags of one model version."""
        try:
            return dict(self._client.get_model_version(self.model_name(symbol), str(version)).tags)
        except MlflowException as error:
            if not _is_missing(error):
                raise
            raise NoSuchVersion(f"{symbol}: no policy version {version}") from error

    def request_go_live(self, symbol: str, *, who: str, why: str) -> None:
        """Ask the tuner to take ``symbol`` out of shadow mode; who and why are kept as model tags."""
        name = self.model_name(symbol)
        # who and why before the switch itself: a request killed midway is not taken as made without its record
        for key, value in (("go_live_by", who), ("go_live_why", why), (DEPLOYMENT_MODE_TAG, "live")):
            try:
                self._client.set_registered_model_tag(name, key, value)
            except MlflowException as error:
                if not _is_missing(error):
                    raise
                raise RegistryError(f"{symbol}: no registered policy to take live") from error

    def deployment_mode(self, symbol: str) -> str | None:
        """``live`` once :meth:`request_go_live` was called for ``symbol``, else ``None``."""
        try:
            return self._client.get_registered_model(self.model_name(symbol)).tags.get(DEPLOYMENT_MODE_TAG)
        except MlflowException as error:
            if not _is_missing(error):
                raise
            return None

    def log_to_run(self, run_id: str, *, metrics: Mapping[str, float], artifact: Mapping[str, Any],
                   artifact_file: str) -> None:
        """Attach evaluation results (e.g. OPE) to a policy version's run."""
        log_flat(self._client, run_id, metrics=metrics)  # one request: a kill never leaves two evaluations mixed
        self._client.log_dict(run_id, dict(artifact), artifact_file)

    def delete_model(self, symbol: str) -> None:
        """Delete ``symbol``'s registered model and every version of it (their runs stay); absent is fine."""
        try:
            self._client.delete_registered_model(self.model_name(symbol))
        except MlflowException as error:
            if not _is_missing(error):
                raise

    def replace_model(self, symbol: str, staged: str | None) -> None:
        """Put the complete model ``staged`` in the place of ``symbol``'s model (deleted first, absent is fine;
        ``None``: only delete it). Each step is one MLflow request (one transaction on a SQL store), and the
        rename keeps the versions, aliases and tags: until the delete, the old model is whole where it was."""
        self.delete_model(symbol)
        if staged is not None:
            self._client.rename_registered_model(staged, self.model_name(symbol))

    def finish_replacing(self, symbol: str, staged: str) -> bool:
        """Finish a :meth:`replace_model` that a kill stopped between its delete and its rename: a complete ``staged``
        model (not part-registered) with no model in ``symbol``'s place is renamed there. True when it was."""
        if self._model(self.model_name(symbol)) is not None:
            return False
        found = self._model(staged)
        if found is None or REGISTERING_TAG in found.tags:
            return False
        self._client.rename_registered_model(staged, self.model_name(symbol))
        return True

    def begin_registering(self, symbol: str, run: str) -> None:
        """Create ``symbol``'s model if needed and mark it part-registered (by ``run``) until
        :meth:`end_registering`."""
        name = self.model_name(symbol)
        self._ensure_model(name)
        self._client.set_registered_model_tag(name, REGISTERING_TAG, run)

    def end_registering(self, symbol: str) -> None:
        """``symbol``'s model holds every version its run meant to register."""
        self._client.delete_registered_model_tag(self.model_name(symbol), REGISTERING_TAG)

    def registering(self, model: str) -> str | None:
        """The run that left model ``model`` part-registered (it stopped before its last version), else ``None``."""
        found = self._model(model)
        return None if found is None else found.tags.get(REGISTERING_TAG)

    def _model(self, name: str) -> Any | None:
        """The registered model ``name``, ``None`` when absent (any other store failure raises)."""
        try:
            return self._client.get_registered_model(name)
        except MlflowException as error:
            if not _is_missing(error):
                raise
            return None

    def _ensure_model(self, name: str) -> None:
        try:
            self._client.get_registered_model(name)
        except MlflowException as error:
            if not _is_missing(error):
                raise
            self._client.create_registered_model(name)

    def _next_version(self, name: str) -> int:
        """The number MLflow gives the next version of model ``name`` (1 for a new model)."""
        versions = [int(mv.version) for mv in self._client.search_model_versions(f"name='{name}'")]
        return max(versions, default=0) + 1

    def _alias_version(self, name: str, alias: str) -> int | None:
        try:
            return int(self._client.get_model_version_by_alias(name, alias).version)
        except MlflowException as error:
            if not _is_missing(error):
                raise
            return None

    def _describe(self, symbol: str, model_version: Any, *, aliases: Iterable[str] | None = None) -> PolicyVersion:
        run = self._client.get_run(model_version.run_id)
        artifact = f"{run.info.artifact_uri}/policy/{POLICY_ARTIFACT}"
        try:
            local = mlflow.artifacts.download_artifacts(artifact, tracking_uri=self.tracking_uri)
            policy = json.loads(Path(local).read_text())
        except (MlflowException, OSError, ValueError) as error:  # its run's artifacts deleted or damaged
            raise RegistryError(f"{symbol} policy version {model_version.version} ({model_version.name}, run "
                                f"{model_version.run_id}): its policy artifact {artifact} does not read ({error}); "
                                "restore the run's artifacts, or delete that version in MLflow") from error
        return PolicyVersion(symbol=symbol, model=model_version.name, version=int(model_version.version),
                             run_id=model_version.run_id,
                             aliases=tuple(sorted(model_version.aliases if aliases is None else aliases)),
                             policy=policy, metrics=dict(run.data.metrics), tags=dict(model_version.tags))


def _is_missing(error: MlflowException) -> bool:
    """True when MLflow says the model, version or alias does not exist; False for any other failure.

    Only absence may read as "no champion": a store that is down must fail loudly, or a publish during an
    outage would crown a new champion. MLflow reports a missing alias as INVALID_PARAMETER_VALUE.
    """
    if error.error_code == "RESOURCE_DOES_NOT_EXIST":
        return True
    return error.error_code == "INVALID_PARAMETER_VALUE" and "not found" in error.message


STORE_LOCK_SUFFIX = ".create.lock"


@contextmanager
def _store_creation_lock(tracking_uri: str) -> Iterator[None]:
    """Hold ``<db>.create.lock`` (a blocking ``flock``, released by the kernel if the process dies) while a
    local SQLite store is opened; other URIs need no lock (a server serialises its own schema)."""
    if not tracking_uri.startswith("sqlite:///"):
        yield
        return
    database = Path(tracking_uri.removeprefix("sqlite:///"))
    database.parent.mkdir(parents=True, exist_ok=True)
    with open(database.with_name(database.name + STORE_LOCK_SUFFIX), "a+b") as lock_file:
        fcntl.flock(lock_file.fileno(), fcntl.LOCK_EX)  # waits for the process creating the store
        yield


SERVER_PROBE_TIMEOUT_S = 5.0
"""How long a tracking server may take to answer its health probe before it counts as unreachable."""


def open_client(tracking_uri: str) -> MlflowClient:
    """An MLflow client on ``tracking_uri``, its store created (or migrated) by one process at a time.

    Opening a new SQLite store creates and migrates its schema; two processes doing it at once crash one
    ("duplicate column name"). Every process that may be first to open the store comes through here.
    A tracking server (http, https) is probed first: raises :class:`RegistryError` when it does not answer.
    """
    refuse_file_store(tracking_uri)
    refuse_memory_store(tracking_uri)
    check_server_reachable(tracking_uri)
    try:
        with _store_creation_lock(tracking_uri):
            refuse_foreign_sqlite(tracking_uri)
            _create_sqlite_store(tracking_uri)
            return MlflowClient(tracking_uri=tracking_uri)
    except ModuleNotFoundError as error:  # postgresql:// or mysql:// without its driver: "unexpected", exit 1
        scheme = tracking_uri.split(":", 1)[0]
        raise TrackingUriError(f"MLflow tracking URI {tracking_uri}: MLflow's {scheme} store needs the Python module "
                               f"{error.name}, which is not installed here: install it, or give sqlite:///PATH.db or "
                               "http(s)://HOST:PORT") from None


def refuse_memory_store(tracking_uri: str) -> None:
    """Raise :class:`TrackingUriError` for a ``sqlite:`` URI naming no file (``sqlite://``, ``sqlite:///``,
    ``sqlite:///:memory:``). Why: an in-memory store vanishes when the command ends, so ``simulate`` "logged" its
    runs and versions nowhere and ``policy list`` reported "no policy versions" of a store that never existed (and
    left a ``:memory:.create.lock`` file in the working folder); ``sqlite:///`` ended in "unexpected ValueError:
    PosixPath('.') has an empty name"."""
    if not tracking_uri.startswith("sqlite:"):
        return
    location = tracking_uri.removeprefix("sqlite:").split("?", 1)[0]
    if location in ("", "//", "///", "///:memory:", "//:memory:"):
        raise TrackingUriError(f"MLflow tracking URI {tracking_uri}: names no SQLite file (an in-memory database, "
                               "gone when the command ends): give sqlite:///PATH.db")


MLFLOW_SCHEMA_TABLE = "alembic_version"
"""The table MLflow's SQL store keeps its schema revision in: every MLflow SQLite store has it."""


def refuse_foreign_sqlite(tracking_uri: str) -> None:
    """Raise :class:`TrackingUriError` when a ``sqlite:///`` URI names an existing file that is not an MLflow store:
    a SQLite database holding tables but not MLflow's (a journal, an executor store, another program's file), or a
    file that is not SQLite at all. Why: MLflow "migrates" any SQLite file it is pointed at, so
    ``policy list --tracking-uri sqlite:///var/journal.sqlite`` wrote MLflow's thirty tables into the journal and
    listed "no policy versions"; a text file failed as "file is not a database", exit 1, blaming the store. The file is
    opened read-only here and left as it is; an empty file, a new path, a folder or device (MLflow's own error) pass.
    """
    location = tracking_uri.removeprefix("sqlite:///")
    if not tracking_uri.startswith("sqlite:///") or location in ("", ":memory:") or "?" in location:
        return
    database = Path(location)
    if not database.is_file() or database.stat().st_size == 0:
        return
    import sqlite3

    try:
        connection = sqlite3.connect(f"{database.resolve().as_uri()}?mode=ro", uri=True)
        try:
            tables = [name for (name,) in connection.execute(
                "SELECT name FROM sqlite_schema WHERE type = 'table' ORDER BY name")]
        finally:
            connection.close()
    except sqlite3.OperationalError:
        return  # locked, unreadable: MLflow's own error says so (exit 1, as a store that is busy)
    except sqlite3.DatabaseError as error:  # not a database, malformed
        raise TrackingUriError(f"MLflow tracking URI {tracking_uri}: {database} is not a readable SQLite database "
                               f"({error}): restore it from a copy, or point at the MLflow store") from None
    if tables and MLFLOW_SCHEMA_TABLE not in tables:
        shown = ", ".join(tables[:4]) + (", …" if len(tables) > 4 else "")
        raise TrackingUriError(f"MLflow tracking URI {tracking_uri}: {database} holds tables ({shown}) but not "
                               f"MLflow's ({MLFLOW_SCHEMA_TABLE}): not an MLflow store (a journal or executor "
                               "store?), left untouched; point at the MLflow store (default sqlite:///var/mlflow.db)")


def _create_sqlite_store(tracking_uri: str) -> None:
    """Create a new local SQLite store whole or not at all: under a temporary name beside it, renamed into place
    once MLflow has created and migrated every table (:func:`router.atomic_file.atomic_path`).

    MLflow creates a store in place over a few seconds, and its migrations are not transactional: a command
    killed meanwhile (kill -9 of the first ``simulate``, ``live`` or ``policy list``) left a half-migrated file
    that every later command refused ("MLflow store: table latest_metrics already exists"). An existing non-empty
    store, and any other URI, is left to MLflow. The caller holds the store's creation lock.
    """
    location = tracking_uri.removeprefix("sqlite:///")
    if not tracking_uri.startswith("sqlite:///") or location in ("", ":memory:") or "?" in location:
        return  # not a plain file path: left to MLflow
    database = Path(location)
    if database.is_file() and database.stat().st_size > 0:
        return
    from router_tuner.router.atomic_file import atomic_path

    with atomic_path(database) as temporary:
        client = MlflowClient(tracking_uri=f"sqlite:///{temporary}")
        client.search_experiments(max_results=1)  # the tracking store: creates and migrates every table
        client.search_registered_models(max_results=1)  # the registry store on the same file: checks them


def refuse_file_store(tracking_uri: str) -> None:
    """Raise :class:`TrackingUriError` for a bare path or ``file:`` URI: MLflow refuses its file store with a
    paragraph about migrating (``policy list --tracking-uri garbage`` ended in it, exit 1, as a store failure),
    unless ``MLFLOW_ALLOW_FILE_STORE`` opts in, as MLflow documents."""
    scheme = tracking_uri.split("://", 1)[0] if "://" in tracking_uri else ""
    allowed = os.environ.get("MLFLOW_ALLOW_FILE_STORE", "").strip().lower() in ("1", "true", "yes")
    if scheme in ("", "file") and not tracking_uri.startswith("databricks") and not allowed:
        raise TrackingUriError(f"MLflow tracking URI {tracking_uri!r} is a folder path (MLflow's file store, which "
                               "MLflow no longer serves): give sqlite:///PATH.db or http(s)://HOST:PORT")


def check_server_reachable(tracking_uri: str, timeout_s: float = SERVER_PROBE_TIMEOUT_S) -> None:
    """Raise :class:`RegistryError` when ``tracking_uri`` is an MLflow server that does not answer its ``/health``
    within ``timeout_s``, :class:`TrackingUriError` when what answers is not MLflow; other stores pass. Why: MLflow's
    client retries a refused connection with back-off for about two minutes before it fails, so a run would end
    that long after its work with a stack of retries."""
    if not tracking_uri.startswith(("http://", "https://")):
        return
    if (problem := url_problem(tracking_uri)) is not None:  # port 99999 or no host read "did not answer", exit 1
        raise TrackingUriError(f"MLflow tracking URI {tracking_uri}: {problem}")
    probe = tracking_uri.rstrip("/") + "/health"
    try:
        with urllib.request.urlopen(probe, timeout=timeout_s):
            return
    except urllib.error.HTTPError as error:
        if error.code == 404:  # a proxy in front of MLflow without /health, or no MLflow at all: its API tells
            _refuse_without_mlflow_api(tracking_uri, timeout_s)
        return  # it answered (auth, a proxy's refusal): MLflow's client reports what it then gets
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        raise RegistryError(f"MLflow tracking server {tracking_uri} did not answer {probe} within {timeout_s:g} s "
                            f"({reason})") from error


_API_PROBE = "/api/2.0/mlflow/experiments/get-by-name?experiment_name=router-tuner-probe"
"""An MLflow server answers it in JSON, found or not (``RESOURCE_DOES_NOT_EXIST``)."""


def _refuse_without_mlflow_api(tracking_uri: str, timeout_s: float) -> None:
    """Raise :class:`TrackingUriError` when ``tracking_uri``'s MLflow API answers with something other than JSON (an
    HTML "not found" page: another web server on that port, or a path that is not MLflow's). Why: such a server
    passed the probe, ``simulate`` ran its whole job and then failed with the page's HTML in its one line, exit 1."""
    probe = tracking_uri.rstrip("/") + _API_PROBE
    try:
        with urllib.request.urlopen(probe, timeout=timeout_s) as answer:
            status, body = answer.status, answer.read(65536)
    except urllib.error.HTTPError as error:
        status, body = error.code, error.read(65536)
    except (urllib.error.URLError, OSError):
        return  # it answered /health a moment ago: MLflow's client reports what follows
    if status in (401, 403):
        return  # behind authentication: MLflow's client sends the credentials
    try:
        is_json = isinstance(json.loads(body), dict)
    except ValueError:
        is_json = False
    if not is_json:
        raise TrackingUriError(f"MLflow tracking URI {tracking_uri}: the server there is not MLflow (HTTP 404 on "
                               f"/health, HTTP {status} without MLflow's JSON on {_API_PROBE.split('?')[0]}): give "
                               "the address of an MLflow tracking server (`mlflow server`), with its path if it "
                               "serves under one")


def ensure_experiment(client: MlflowClient, tracking_uri: str, name: str) -> str:
    """The experiment's id, creating it with its artifacts beside a local SQLite store when it is new.

    Every writer of the project's experiment goes through here, so artifacts never land in whatever
    directory the process happened to start in. Its runs left ``RUNNING`` by a process that is gone (kill -9, a
    crash) are marked ``KILLED`` here, with one warning line (:mod:`tuner.run_owner`).
    """
    found = client.get_experiment_by_name(name)
    if found is None:
        return str(client.create_experiment(name, artifact_location=_artifact_root(tracking_uri)))
    experiment_id = str(found.experiment_id)
    if orphans := end_orphaned_runs(client, experiment_id):
        logger.warning("MLflow: marked %d run(s) of experiment %s KILLED: left RUNNING by a process of this host "
                       "that is gone (killed or crashed): %s", len(orphans), name, " ".join(orphans))
    return experiment_id


def log_flat(client: MlflowClient, run_id: str, *, params: Mapping[str, str] | None = None,
             metrics: Mapping[str, float] | None = None,
             series: Iterable[tuple[int, Mapping[str, float]]] = ()) -> None:
    """Params, metrics (step 0) and metric ``series`` of (step, metrics) in as few requests as MLflow allows
    (100 params, 1000 metrics per batch): a request per value would cost seconds per run."""
    timestamp = int(time.time() * 1000)
    param_items = [Param(key, value) for key, value in (params or {}).items()]
    metric_items = [Metric(key, float(value), timestamp, 0) for key, value in (metrics or {}).items()]
    metric_items += [Metric(key, float(value), timestamp, step)
                     for step, point in series for key, value in point.items()]
    for start in range(0, len(param_items), 100):
        client.log_batch(run_id, params=param_items[start:start + 100])
    for start in range(0, len(metric_items), 1000):
        client.log_batch(run_id, metrics=metric_items[start:start + 1000])


def _artifact_root(tracking_uri: str) -> str | None:
    """Keep artifacts next to a local SQLite store instead of in the working directory's ``mlruns``."""
    if tracking_uri.startswith("sqlite:///"):
        return (Path(tracking_uri.removeprefix("sqlite:///")).resolve().parent / "mlruns").as_uri()
    return None
