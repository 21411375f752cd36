"""Atomic checkpoints of the tuner service together with how far into the journal it has learned.

A ``TunerService`` saves two files (learners, tuners) one after the other, and the executor needs a
third fact saved with them: how many journaled RouterEvents the saved state has learned
(``router_events_learned``, a position in the journal's insertion order). The three must move together,
or a restart would learn an event twice or not at all. So each checkpoint is a new *generation*: the
service's two files are written under ``<stem>.g<N>.json`` (and its ``.tuners.json`` neighbour), then
the manifest at ``state_path`` is replaced atomically to name generation N and the journal position,
and only then are the files of the generations before N removed. A crash at any point leaves the manifest naming a
complete generation; orphan files of an unfinished generation are overwritten by the next save.
"""

from __future__ import annotations

import glob
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import msgspec

from router_tuner.config.models import ConfigBundle
from router_tuner.router.atomic_file import write_bytes_atomic
from router_tuner.tuner.learners.base import StateMismatchError
from router_tuner.tuner.service.publish import PolicyPublisher
from router_tuner.tuner.service.tuner_service import TunerService, tuners_state_path
from router_tuner.tuner.state import StateFileError

MANIFEST_FORMAT_VERSION = 1


class Manifest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Which generation of state files is current and how many journaled router events it has learned."""

    format_version: int
    generation: int
    router_events_learned: int


@dataclass(frozen=True, slots=True)
class Restored:
    """A tuner service (without its own state path: only checkpoints write) and the manifest it came from."""

    service: TunerService
    manifest: Manifest | None


class TunerCheckpoint:
    """Saves and restores generations of tuner state under one manifest path (see the module docstring)."""

    def __init__(self, manifest_path: Path) -> None:
        self.path = Path(manifest_path)
        self._manifest: Manifest | None = self._read_manifest()

    @property
    def manifest(self) -> Manifest | None:
        """The current manifest, ``None`` before the first checkpoint."""
        return self._manifest

    def generation_path(self, generation: int) -> Path:
        return self.path.with_name(f"{self.path.stem}.g{generation}{self.path.suffix}")

    def restore(self, bundle: ConfigBundle, symbols: Iterable[str], publisher: PolicyPublisher) -> Restored:
        """The service from the current generation, or fresh from the static policy when there is none.

        Raises :class:`StateFileError` when the manifest names files that are missing or do not fit (saved under
        another learner, arm grid or learner parameters than ``bundle``'s).
        """
        wanted = list(symbols)
        if self._manifest is None:
            return Restored(TunerService.from_config(bundle, wanted, publisher, state_path=None), None)
        state = self.generation_path(self._manifest.generation)
        for needed in (state, tuners_state_path(state)):
            if not needed.exists():
                raise StateFileError(f"{self.path} names generation {self._manifest.generation} but {needed} "
                                     "is missing")
        try:
            saved = TunerService.from_config(bundle, wanted, publisher, state_path=state)
        except StateMismatchError as error:  # the learner's own words name neither the file nor the cause
            raise StateFileError(f"{state}: {error}: it was saved under another tuner.json learner, arms or "
                                 "learner parameters") from error
        return Restored(TunerService({s: saved.tuner(s) for s in saved.symbols}, None), self._manifest)

    def save(self, service: TunerService, *, router_events_learned: int) -> Manifest:
        """Write a new generation of ``service`` learned up to ``router_events_learned``; returns its manifest."""
        if router_events_learned < 0:
            raise ValueError(f"router_events_learned must be >= 0, got {router_events_learned}")
        previous = self._manifest
        generation = previous.generation + 1 if previous is not None else 1
        state = self.generation_path(generation)
        state.parent.mkdir(parents=True, exist_ok=True)
        TunerService({s: service.tuner(s) for s in service.symbols}, state).save()
        manifest = Manifest(format_version=MANIFEST_FORMAT_VERSION, generation=generation,
                            router_events_learned=router_events_learned)
        write_bytes_atomic(self.path, msgspec.json.encode(manifest))
        self._manifest = manifest
        self._remove_older_generations(generation)
        return manifest

    def _remove_older_generations(self, current: int) -> None:
        """Delete the files of every generation before ``current``: the previous one's, and any a process killed
        between its manifest and this step left (only the previous one's were deleted: those stayed for good)."""
        pattern = re.compile(re.escape(self.path.stem) + r"\.g([0-9]+)(?:" + re.escape(self.path.suffix)
                             + r"|\.tuners\.json)")
        for candidate in self.path.parent.glob(f"{glob.escape(self.path.stem)}.g*"):
            found = pattern.fullmatch(candidate.name)
            if found is not None and int(found.group(1)) < current:
                candidate.unlink(missing_ok=True)

    def _read_manifest(self) -> Manifest | None:
        if not self.path.exists():
            return None
        try:
            manifest = msgspec.json.decode(self.path.read_bytes(), type=Manifest)
        except msgspec.DecodeError as exc:
            raise StateFileError(f"{self.path}: not a tuner checkpoint manifest: {exc}") from exc
        if manifest.format_version != MANIFEST_FORMAT_VERSION:
            raise StateFileError(f"{self.path}: manifest format {manifest.format_version}, this code reads "
                                 f"{MANIFEST_FORMAT_VERSION}")
        return manifest
