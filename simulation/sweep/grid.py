"""The sweep's grid: learner settings x learners x seeds x symbols x data, as independent, picklable tasks.

Two kinds of task share nothing but their inputs: a :class:`BaselineTask` routes one (seed, symbol, data)'s
intents under always-taker and every fixed arm (what regret and the captured share are measured against),
and a :class:`LearnerTask` routes the same intents under one learner with one combination of settings. So
the baselines run once however many settings are swept, and any task can run on any worker in any order.

A setting axis is ``tuner.<path>=v1,v2,...`` (``--set tuner.learner_params.epsilon=0.05,0.1``): each value
replaces that key of ``tuner.json`` and the result is validated like a loaded file (types, ranges,
cross-file checks). ``tuner.seed`` and ``tuner.learner`` are the ``--seeds`` and ``--learners`` axes, and
``tuner.arms`` would change the baselines themselves (sweep one arm grid at a time): those keys are refused.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import msgspec

from router_tuner.config.loader import cross_check, load_config, snapshot
from router_tuner.config.models import MAX_COUNT, SEED_MAX, ConfigBundle, TunerConfig
from router_tuner.config.text import parse_float, text_problems, underflowed_numbers
from router_tuner.router.market.recordings import discover_recordings

Setting = tuple[str, Any]
"""One setting of a learner task: a ``tuner.json`` key path (``learner_params.epsilon``) and its value."""

SYNTHETIC = "synthetic"
"""The ``data`` of a task that simulates the configured synthetic market (seeded by the task's seed)."""

_RESERVED = {"seed": "--seeds", "learner": "--learners", "arms": "one arm grid per sweep"}


class GridError(ValueError):
    """A grid axis or setting is malformed or makes an invalid configuration."""


def parse_axis(text: str) -> tuple[str, tuple[Any, ...]]:
    """``"tuner.learner_params.epsilon=0.05,0.1"`` -> ``("learner_params.epsilon", (0.05, 0.1))``.

    Values are JSON scalars (numbers, ``true``/``false``, ``null``); anything else is taken as a string.
    """
    key, sep, values = text.partition("=")
    key = key.strip()
    if not sep or not key.startswith("tuner.") or len(key) <= len("tuner."):
        raise GridError(f"--set {text!r}: expected tuner.KEY=V1,V2,... (a key path of tuner.json)")
    path = key.removeprefix("tuner.")
    if path.split(".")[0] in _RESERVED:
        raise GridError(f"--set {text!r}: tuner.{path.split('.')[0]} is not a sweep setting "
                        f"({_RESERVED[path.split('.')[0]]})")
    parsed = tuple(_scalar(v.strip()) for v in values.split(",") if v.strip())
    if not parsed:
        raise GridError(f"--set {text!r}: no values")
    if len(set(map(repr, parsed))) != len(parsed):
        raise GridError(f"--set {text!r}: a value is repeated")
    return path, parsed


def _scalar(text: str) -> Any:
    try:
        value = json.loads(text, parse_float=parse_float)  # 1e-400 stays recognisable as a literal read as 0
    except (json.JSONDecodeError, RecursionError):  # nested past the stack: a string, refused by its key's type
        return text
    return value if value is None or isinstance(value, bool | int | float | str) else text


def settings_grid(axes: Sequence[tuple[str, tuple[Any, ...]]]) -> list[tuple[Setting, ...]]:
    """Every combination of the axes' values (one empty combination when there is no axis)."""
    keys = [key for key, _ in axes]
    if len(set(keys)) != len(keys):
        raise GridError(f"a setting is given twice: {keys}")
    return [tuple(zip(keys, combo, strict=True)) for combo in itertools.product(*(values for _, values in axes))]


def with_settings(config: ConfigBundle, settings: Sequence[Setting]) -> ConfigBundle:
    """``config`` with each setting replacing its ``tuner.json`` key, validated as a loaded file would be."""
    if not settings:
        return config
    raw = msgspec.to_builtins(config.tuner)
    for path, value in settings:
        node = raw
        parts = path.split(".")
        for part in parts[:-1]:
            if not isinstance(node, dict) or part not in node:
                raise GridError(f"tuner.{path}: no such key in tuner.json")
            node = node[part]
        if not isinstance(node, dict) or parts[-1] not in node:
            raise GridError(f"tuner.{path}: no such key in tuner.json")
        if isinstance(node[parts[-1]], dict | list):
            raise GridError(f"tuner.{path}: not a single value in tuner.json")
        node[parts[-1]] = value
    problems = underflowed_numbers(raw) + text_problems(raw)  # as a loaded file's values are
    if problems:
        raise GridError(f"{_describe(settings)}: tuner.json {problems[0][0]}: {problems[0][1]}")
    try:
        tuner = msgspec.convert(raw, TunerConfig)
    except msgspec.ValidationError as error:
        raise GridError(f"{_describe(settings)}: {error}") from error
    bundle = msgspec.structs.replace(config, tuner=tuner)
    issues = cross_check(bundle)
    if issues:
        raise GridError(f"{_describe(settings)}: {issues[0]}")
    return bundle


def _describe(settings: Sequence[Setting]) -> str:
    return ", ".join(f"tuner.{k}={v!r}" for k, v in settings)


def available_symbols(config: ConfigBundle, data: str) -> tuple[str, ...]:
    """Our symbol names a data source can simulate: the configured synthetic market's, or the universe entries
    whose (market, venue symbol) a recorded folder holds files for (no tape is read)."""
    if data == SYNTHETIC:
        return tuple(config.router.simulation.synthetic_market.symbols)
    recorded = set(discover_recordings(Path(data)))
    return tuple(name for name, entry in config.strategy.universe.items()
                 if f"{entry.market}_{entry.venue_symbol.lower()}" in recorded)


def data_digest(config: ConfigBundle, data: str, symbol: str) -> str:
    """A short digest of the bytes of ``symbol``'s recorded files in ``data`` (their names and contents; empty
    for the synthetic market, which the seed and configuration pin). A task id holds it so a sweep resumed after
    a recording was replaced, cut or added runs that symbol's tasks again: with only the folder's path in the id,
    the checkpoints of the old recordings were reused and their rows mixed, unsaid, with rows of the new ones.
    Contents, not modification times: a copy of the same folder on another node or disk is the same data."""
    if data == SYNTHETIC:
        return ""
    entry = config.strategy.universe[symbol]
    hasher = hashlib.sha256()
    for path in discover_recordings(Path(data)).get(f"{entry.market}_{entry.venue_symbol.lower()}", []):
        hasher.update(path.name.encode() + b"\0")
        with path.open("rb") as file:
            hasher.update(hashlib.file_digest(file, "sha256").digest())
    return hasher.hexdigest()[:16]


def config_digest(config: ConfigBundle) -> str:
    """A short digest of the whole configuration: a task run under another configuration is another task."""
    return hashlib.sha256(json.dumps(snapshot(config), sort_keys=True).encode()).hexdigest()[:12]


@dataclass(frozen=True, slots=True)
class Scenario:
    """What both kinds of task route: one symbol's seeded intents on one data source, under a configuration
    (``config_dir``: None for the embedded defaults; ``config_digest`` pins its content)."""

    seed: int
    symbol: str
    data: str
    orders: int
    config_dir: str | None
    config_digest: str
    data_digest: str
    """:func:`data_digest` of ``symbol`` in ``data`` when the sweep was planned."""

    def config(self) -> ConfigBundle:
        return planned_config(self.config_dir, self.config_digest)


def planned_config(config_dir: str | None, digest: str) -> ConfigBundle:
    """The configuration a sweep was planned under; a file changed since is refused, not silently used."""
    config = load_config(config_dir)
    if config_digest(config) != digest:
        raise GridError(f"the configuration in {config_dir or 'the embedded defaults'} changed since the sweep "
                        "was planned")
    return config


@dataclass(frozen=True, slots=True)
class BaselineTask:
    """Always-taker and every fixed arm on one scenario."""

    scenario: Scenario

    @property
    def task_id(self) -> str:
        return _task_id("baseline", self.scenario.symbol, self.scenario.seed, asdict(self))


@dataclass(frozen=True, slots=True)
class LearnerTask:
    """One learner with one combination of settings on one scenario."""

    scenario: Scenario
    learner: str
    settings: tuple[Setting, ...]

    @property
    def baseline(self) -> BaselineTask:
        return BaselineTask(self.scenario)

    @property
    def task_id(self) -> str:
        return _task_id(self.learner, self.scenario.symbol, self.scenario.seed, asdict(self))


Task = BaselineTask | LearnerTask


def _task_id(kind: str, symbol: str, seed: int, content: dict[str, Any]) -> str:
    """Readable and content-addressed: ``<kind>-<symbol>-s<seed>-<digest of every input>``."""
    digest = hashlib.sha256(json.dumps(content, sort_keys=True, default=str).encode()).hexdigest()[:16]
    return f"{kind}-{symbol}-s{seed}-{digest}"


@dataclass(frozen=True, slots=True)
class SweepGrid:
    """The whole sweep: every learner task and the baselines they need (each baseline once)."""

    learner_tasks: tuple[LearnerTask, ...]

    @property
    def baseline_tasks(self) -> tuple[BaselineTask, ...]:
        return tuple(dict.fromkeys(t.baseline for t in self.learner_tasks))

    @property
    def tasks(self) -> tuple[Task, ...]:
        """Baselines first (the longest tasks: started early, they do not straggle at the end)."""
        return (*self.baseline_tasks, *self.learner_tasks)


def build_grid(config: ConfigBundle, *, config_dir: str | None, learners: Sequence[str], seeds: Sequence[int],
               symbols: Sequence[str], data: Sequence[str], orders: int,
               axes: Sequence[tuple[str, tuple[Any, ...]]]) -> SweepGrid:
    """Every (settings, learner, seed, symbol, data) task; each settings combination is validated up front so
    a bad value fails the command before any task runs."""
    for name, values in (("learners", learners), ("seeds", seeds), ("symbols", symbols), ("data", data)):
        if not values:
            raise GridError(f"no {name} to sweep")
        if len(set(values)) != len(values):
            raise GridError(f"{name} has a repeated value: {list(values)}")
    if not 1 <= orders <= MAX_COUNT:
        raise GridError(f"orders must be 1 to {MAX_COUNT}, got {orders}")
    if any(not 0 <= seed <= SEED_MAX for seed in seeds):
        raise GridError(f"seeds must be 0 to {SEED_MAX}, got {list(seeds)}")
    for source in data:
        missing = sorted(set(symbols) - set(available_symbols(config, source)))
        if missing:
            raise GridError(f"no market for {missing} in {source}; it has {list(available_symbols(config, source))}")
    combos = settings_grid(axes)
    for combo in combos:
        with_settings(config, combo)
    digest = config_digest(config)
    recorded = {(source, symbol): data_digest(config, source, symbol) for source in data for symbol in symbols}
    tasks = tuple(
        LearnerTask(Scenario(seed=seed, symbol=symbol, data=source, orders=orders, config_dir=config_dir,
                             config_digest=digest, data_digest=recorded[source, symbol]),
                    learner=learner, settings=combo)
        for source in data for symbol in symbols for seed in seeds for learner in learners for combo in combos)
    return SweepGrid(learner_tasks=tasks)
