"""Nested parameters as MLflow params: one dotted key per leaf (``router.maker_ttl_ms``), text values.

MLflow params are flat strings with a length limit; a configuration section logged as one JSON string
(0.7–2.2 KB) cannot be compared between versions key by key in the MLflow UI, and the next section that
grows past the limit would be cut. Lists of plain values stay one param (their JSON text: an arm grid is
read as a whole); lists of objects are indexed (``risk.tiers.0.name``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

MAX_PARAM_CHARS = 6000
"""MLflow's limit on a param value (``MAX_PARAM_VAL_LENGTH`` in MLflow 3)."""


def flatten_params(tree: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """Every leaf of ``tree`` under its dotted key path, as MLflow param text.

    Raises ``ValueError`` for a value longer than :data:`MAX_PARAM_CHARS`: a cut value would read as a
    real setting.

    >>> flatten_params({"router": {"maker_ttl_ms": 800.0, "fallback": "taker"}, "arms": [0.0, 0.5], "on": True})
    {'router.maker_ttl_ms': '800.0', 'router.fallback': 'taker', 'arms': '[0.0, 0.5]', 'on': 'true'}
    """
    flat: dict[str, str] = {}
    for key, value in tree.items():
        path = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten_params(value, f"{path}."))
        elif isinstance(value, list | tuple) and any(isinstance(item, Mapping) for item in value):
            flat.update(flatten_params({str(i): item for i, item in enumerate(value)}, f"{path}."))
        else:
            text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
            if len(text) > MAX_PARAM_CHARS:
                raise ValueError(f"param {path}: {len(text)} characters, MLflow keeps at most {MAX_PARAM_CHARS}")
            flat[path] = text
    return flat
