"""An intent id seen again: the same content is a no-op (a re-read file, a retry), other content is a veto.

Why a derived id: the journal holds one veto and one trade record per intent id, and the first intent
of that id already has its outcome. The conflicting intent is journaled under
``<intent_id>~dup-<digest>`` (``conflict_id``), its content otherwise unchanged, with reason
``duplicate_intent_id`` naming the original id; the digest makes a second arrival of the same conflicting
intent (a restart re-reading its file) a no-op too. Content is compared by a digest of the intent's
canonical JSON, so the executor keeps 16 bytes per processed intent, not the intent.
"""

from __future__ import annotations

import hashlib

import msgspec

from router_tuner.router.events import Intent, VetoReason

DUPLICATE_CODE = "duplicate_intent_id"


def intent_digest(intent: Intent) -> bytes:
    """A digest of the intent's every field (msgspec encodes a struct's fields in a fixed order)."""
    return hashlib.blake2b(msgspec.json.encode(intent), digest_size=16).digest()


def conflict_id(intent: Intent) -> str:
    """The id a conflicting duplicate is journaled under: stable for the same content."""
    return f"{intent.intent_id}~dup-{intent_digest(intent).hex()[:16]}"


def conflicting_duplicate(intent: Intent) -> tuple[Intent, VetoReason]:
    """The intent as journaled (under ``conflict_id``) and the reason it is refused."""
    journaled_id = conflict_id(intent)
    reason = VetoReason(code=DUPLICATE_CODE, threshold=intent.intent_id, observed=journaled_id,
                        detail=f"intent id {intent.intent_id!r} was already processed with other content; this "
                               f"intent is not routed and is journaled as {journaled_id!r}: give each intent its "
                               "own id")
    return msgspec.structs.replace(intent, intent_id=journaled_id), reason
