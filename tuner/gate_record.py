"""What entitles a registry version to act: the gate record its promotion leaves in its model-version tags.

Aliases can be moved by anyone with write access to the registry (the MLflow UI, a script), so the alias
alone does not say a version passed the OPE gate. Every way this project makes a version champion tags it:
``policy promote`` with the gate's numbers (``ope_gate``) or with who and why (``forced``), the first
version of a model (``initial``: something must act) and the tuner's automatic return to proven knobs
(``tuner_rollback``). :func:`gate_problem` reads those tags back; a router following the registry
(:class:`tuner.policy_source.RegistryPolicySource`) acts only on a champion whose record holds. The check
stops unreviewed alias moves, not a person who also forges the tags: registry write access stays a trust
boundary. Free of MLflow, so the router's policy source can import it cheaply.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

PROMOTION_TAG = "promotion"
OPE_GATE, FORCED, INITIAL, TUNER_ROLLBACK = "ope_gate", "forced", "initial", "tuner_rollback"
FORCED_BY_TAG, FORCED_WHY_TAG = "promotion_forced_by", "promotion_forced_why"
_GATE_NUMBERS = ("promotion_cost_ci_high_bps", "promotion_champion_cost_bps", "promotion_margin_bps")


def forced_tags(*, who: str, why: str) -> dict[str, str]:
    """The record of a promotion a person forced past the gate."""
    return {PROMOTION_TAG: FORCED, FORCED_BY_TAG: who, FORCED_WHY_TAG: why}


def initial_tags() -> dict[str, str]:
    """The record of a version crowned because its model had no champion when it was published."""
    return {PROMOTION_TAG: INITIAL, "promotion_reason": "no champion when it was published"}


def tuner_rollback_tags(previous_version: int) -> dict[str, str]:
    """The record of the tuner returning to knobs that already acted (its live cost degraded)."""
    return {PROMOTION_TAG: TUNER_ROLLBACK,
            "promotion_reason": f"tuner rollback from version {previous_version}: live cost degraded"}


def gate_problem(tags: Mapping[str, str]) -> str | None:
    """``None`` when ``tags`` hold a gate record that entitles the version to act, else what is wrong.

    An ``ope_gate`` record must carry the gate's numbers and they must pass (cost upper bound below the
    champion's cost minus the margin); a ``forced`` one must name who and why.
    """
    kind = tags.get(PROMOTION_TAG)
    if kind is None:
        return "no gate record (promotion tag): the alias was moved outside `router-tuner policy promote`"
    if kind in (INITIAL, TUNER_ROLLBACK):
        return None
    if kind == FORCED:
        if tags.get(FORCED_BY_TAG, "").strip() and tags.get(FORCED_WHY_TAG, "").strip():
            return None
        return "a forced promotion record without who and why"
    if kind != OPE_GATE:
        return f"unknown promotion record {kind!r}"
    try:
        upper, champion, margin = (float(tags[key]) for key in _GATE_NUMBERS)
    except (KeyError, ValueError):
        return "an ope_gate record without the gate's numbers"
    if not all(math.isfinite(x) for x in (upper, champion, margin)) or not upper < champion - margin:
        return (f"an ope_gate record that does not pass: cost upper bound {upper:g} bps is not below "
                f"{champion:g} - {margin:g} bps")
    return None
