"""Saving and restoring learners' state: a versioned JSON file written atomically.

The file holds, per key (usually the symbol), the learner's evidence (counts, moments or matrices), the
parameters it was built with and the exact state of its random generator, so a restored learner makes
the same choices as one that never stopped. It is JSON through strict msgspec structs, not pickle:
a pickle of library objects (river policies, numpy generators) is tied to private attributes that
change across versions, and loading one executes arbitrary code, so a state file could never be
inspected, diffed or trusted. The write goes to a temporary file in the same directory, is fsynced
and then ``os.replace``-d over the target, so a crash leaves either the old or the new file, never half.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TypeVar

import msgspec

from router_tuner.router.atomic_file import write_bytes_atomic
from router_tuner.tuner.learners import (
    EpsilonGreedyState,
    Learner,
    LinUCBState,
    RobbinsMonroState,
    StructuredState,
    ThompsonState,
    UCBState,
)

STATE_FORMAT_VERSION = 1

AnyLearnerState = StructuredState | ThompsonState | UCBState | EpsilonGreedyState | LinUCBState | RobbinsMonroState
_Doc = TypeVar("_Doc", bound=msgspec.Struct)


class StateFileError(ValueError):
    """A state file is unreadable, of another format version, or does not match the learners given."""


class _Header(msgspec.Struct, frozen=True):
    format_version: int


class TunerStateFile(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    format_version: int
    learners: dict[str, AnyLearnerState]


def save_state(path: Path, learners: Mapping[str, Learner]) -> None:
    """Write every learner's state to ``path`` atomically (temp file, fsync, ``os.replace``)."""
    if not learners:
        raise ValueError("no learners to save")
    doc = TunerStateFile(
        format_version=STATE_FORMAT_VERSION,
        learners={key: learner.to_state() for key, learner in learners.items()},
    )
    payload = msgspec.json.encode(doc)
    write_bytes_atomic(path, payload)


def restore_state(path: Path, learners: Mapping[str, Learner]) -> None:
    """Load ``path`` into the configured ``learners``; the keys must match the file's exactly.

    Every state is checked against its learner (kind, arms, parameters) before any learner is changed,
    so a mismatch leaves all learners untouched.
    """
    doc = read_versioned(Path(path), TunerStateFile, STATE_FORMAT_VERSION)
    if set(doc.learners) != set(learners):
        raise StateFileError(
            f"{path}: keys differ: missing in file {sorted(set(learners) - set(doc.learners))}, "
            f"unexpected in file {sorted(set(doc.learners) - set(learners))}"
        )
    for key, learner in learners.items():
        learner.check_state(doc.learners[key])
    for key, learner in learners.items():
        learner.load_state(doc.learners[key])


def read_versioned(path: Path, doc_type: type[_Doc], format_version: int) -> _Doc:
    """Decode a state file whose ``format_version`` must equal ``format_version``, strictly.

    The version is read first, so a file of another version is refused as such rather than as a
    document with unexpected fields. Raises :class:`StateFileError` for every way the file does not fit.
    """
    raw = path.read_bytes()
    try:
        found = msgspec.json.decode(raw, type=_Header).format_version
    except msgspec.DecodeError as exc:
        raise StateFileError(f"{path}: not a tuner state file: {exc}") from exc
    if found != format_version:
        raise StateFileError(f"{path}: format version {found}, this code reads {format_version}")
    try:
        return msgspec.json.decode(raw, type=doc_type)
    except msgspec.DecodeError as exc:
        raise StateFileError(f"{path}: {exc}") from exc
