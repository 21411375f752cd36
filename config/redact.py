"""Secrets do not belong in configuration: recognise values that look like one, refuse them, redact copies.

Config files are copied into MLflow (``config_snapshot.json``) and printed by the command line, so an API
key pasted where an environment-variable *name* belongs would leak. The loader refuses such values with
the key path (never the value) and :func:`redact` masks them in any snapshot built from a bundle that did
not come through the loader. What counts as a secret, in any string of any file:

- a token: a run of at least ``MIN_TOKEN_CHARS`` characters from the key alphabets (hex, base62, base64
  without ``/``) mixing letters and digits, with at least ``MIN_TOKEN_ENTROPY_BITS`` bits of entropy per
  character — an exchange API key or secret, an access token. Words joined by ``_``, ``-`` or ``.``
  (``BINANCE_API_KEY``, ``var/tuner_state.json``) are not one run;
- a URL with a password in it (``https://user:pass@host``) or a credential-named query parameter
  (``?api_key=…``, ``token``, ``secret``, ``signature``, ``password``).
"""

from __future__ import annotations

import math
import re
from collections import Counter
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from router_tuner.config.text import leaves

MIN_TOKEN_CHARS = 20
MIN_TOKEN_ENTROPY_BITS = 3.0
REDACTED = "<redacted: looks like a secret>"
_TOKEN_RUN = re.compile(rf"[A-Za-z0-9+=]{{{MIN_TOKEN_CHARS},}}")
_CREDENTIAL_PARAM = re.compile(r"key|token|secret|signature|password|passwd", re.IGNORECASE)


def _entropy_bits(text: str) -> float:
    counts, n = Counter(text), len(text)
    return -sum(c / n * math.log2(c / n) for c in counts.values())


def _is_token(run: str) -> bool:
    digits = sum(ch.isdigit() for ch in run)
    letters = sum(ch.isalpha() for ch in run)
    return digits >= 2 and letters >= 2 and _entropy_bits(run) >= MIN_TOKEN_ENTROPY_BITS


def secret_reason(value: str) -> str | None:
    """Why ``value`` looks like a secret (without quoting it), or None."""
    if "://" in value:
        try:
            url = urlsplit(value)
            has_password = url.password is not None
        except ValueError:
            return None
        if has_password:
            return "is a URL with a password in it"
        names = [name for name, _ in parse_qsl(url.query) if _CREDENTIAL_PARAM.search(name)]
        if names:
            return f"is a URL with a credential in its query ({', '.join(sorted(set(names)))})"
    if any(_is_token(run) for run in _TOKEN_RUN.findall(value)):
        return "looks like an API key or token"
    return None


def find_secrets(node: Any) -> list[tuple[str, str]]:
    """(key path, reason) of every string value in a parsed JSON document that looks like a secret."""
    return [(path, reason) for path, value, is_key in leaves(node)
            if not is_key and isinstance(value, str) and (reason := secret_reason(value)) is not None]


def redact(node: Any) -> Any:
    """A copy of plain data with every secret-looking string replaced by ``REDACTED``."""
    if isinstance(node, str):
        return REDACTED if secret_reason(node) is not None else node
    if isinstance(node, dict):
        return {key: redact(value) for key, value in node.items()}
    if isinstance(node, (list, tuple)):
        return [redact(value) for value in node]
    return node
