"""Characters no configuration value may hold, and number literals JSON reads as another number.

A config string is compared, joined into file paths and URLs, and printed on one log line exactly as written, so an
invisible character changes what it names without a word. Each of these passed `config check`: a NUL in
``executor.json`` ``adaptive.tuner_state_path`` or ``tuner.json`` ``mlflow.tracking_uri`` stopped ``live`` and
``simulate`` with "unexpected ValueError: embedded null byte" (exit 1); a newline in the tracking URI created an
MLflow store whose file name ran over two lines; a trailing space named another MLflow experiment; urllib dropped a
tab or newline from ``push.url`` silently. And ``1e-400``, a positive number as written, reads as 0.0: a cooldown of
0 loaded silently, a positive setting was refused as "Expected `float` > 0.0".
"""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Iterable, Iterator
from typing import Any
from urllib.parse import urlsplit

_HIDDEN = {"Cc": "a control character", "Cf": "an invisible format character", "Cs": "a lone UTF-16 surrogate",
           "Zl": "a line separator", "Zp": "a paragraph separator"}
"""Unicode categories of characters that do not show as written text (``Cs``: ``"\\ud800"`` in JSON)."""


class UnderflowedFloat(float):
    """A number literal that is not 0 as written but reads as 0.0 (``1e-400``): kept apart so the load names it."""

    literal: str


def parse_float(literal: str) -> float:
    """``float(literal)``, marked when a literal with a non-zero digit before its exponent reads as 0.0."""
    value = float(literal)
    mantissa = literal.lower().partition("e")[0]
    if value != 0.0 or not any(digit in mantissa for digit in "123456789"):
        return value
    marked = UnderflowedFloat(value)
    marked.literal = literal
    return marked


def leaves(node: Any, path: str = "$") -> Iterator[tuple[str, Any, bool]]:
    """(key path, value, is_key) of every string, number and map key under ``node`` (parsed JSON: maps, lists or
    tuples, scalars); a key at its map's path."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield path, key, True
            yield from leaves(value, f"{path}.{key}")
    elif isinstance(node, (list, tuple)):
        for index, item in enumerate(node):
            yield from leaves(item, f"{path}[{index}]")
    else:
        yield path, node, False


def underflowed_numbers(document: Any) -> list[tuple[str, str]]:
    """(key path, message) of every number literal of ``document`` that reads as 0 though it is not written so."""
    return [(path, f"{value.literal} reads as 0: it is beyond the smallest floating-point number (about 1e-308); "
                   "write 0 if 0 is meant, else a value of at least 1e-300")
            for path, value, _ in leaves(document) if isinstance(value, UnderflowedFloat)]


def _text_problem(text: str) -> str | None:
    """What makes ``text`` other than one line of visible text as written, or None."""
    for index, char in enumerate(text):
        kind = _HIDDEN.get(unicodedata.category(char))
        if kind is not None:
            return (f"holds {kind} (U+{ord(char):04X}, character {index + 1} of {len(text)}) that does not show as "
                    "written: retype the value as one line of visible text")
    if not text.strip() and text:
        return "is blank: write a value"
    if text.strip() != text:
        return ("starts or ends with whitespace, which would be kept as part of the value (another file, URL or "
                "name): remove it")
    return None


def visible_text_problem(text: str) -> str | None:
    """What makes a command-line value other than one line of visible text (a control or invisible character,
    whitespace at either end), or None: the check a configuration string gets (``text_problems``)."""
    return _text_problem(text)


def text_problems(document: Any) -> list[tuple[str, str]]:
    """(key path, message) of every string or map key of ``document`` holding what does not show as written."""
    problems = []
    for path, value, is_key in leaves(document):
        problem = _text_problem(value) if isinstance(value, str) else None
        if problem is not None:
            problems.append((path, f"key {value!r}: {problem}" if is_key else problem))
    return problems


_TYPOGRAPHIC_QUOTES = "\u201c\u201d\u201e\u2018\u2019\u00ab\u00bb"
"""Quotes word processors and smart-quote editors type for ``"``: JSON reads none of them."""


def json_error_hint(error: json.JSONDecodeError) -> str:
    """What the JSON error is in an editor's terms, where Python names what it expected instead: a trailing comma and
    a smart quote both read "Expecting property name enclosed in double quotes", which a file with double quotes
    everywhere else does not explain ("" when nothing typical shows at the error)."""
    at, before = error.doc[error.pos:error.pos + 2], error.doc[:error.pos].rstrip()
    first = at[:1] or "end"  # the error is at the end of the file: none of the characters below
    if first in _TYPOGRAPHIC_QUOTES:
        return f"; {first} is a typographic quote: JSON needs a plain double quote (\"), so turn smart quotes off"
    if len(first) == 1 and first not in " \t\r\n" and (first.isspace() or unicodedata.category(first) == "Cf"):
        # a no-break or zero-width space pasted from a web page
        return (f"; U+{ord(first):04X} ({unicodedata.name(first, 'an invisible character').lower()}) is not JSON "
                "whitespace: retype it as a plain space, or delete it")
    if first == "'":
        return "; JSON strings and keys take double quotes (\"), not single ones"
    if at in ("//", "/*") or first == "#":
        return "; JSON has no comments: delete it"
    if first in ("}", "]", ",") and before.endswith(","):
        return f"; JSON allows no comma before {first}: delete the extra comma"
    if not error.doc[error.pos:].strip():
        return "; the file ends before its JSON object is closed (cut short?): complete it"
    if error.msg == "Extra data":
        return "; the file goes on after its JSON object (a second object, a pasted fragment): keep the one object"
    return ""


def repeated_keys(keys: Iterable[str]) -> list[str]:
    """The keys given more than once, sorted: ``json`` keeps the last of them silently, so the document is ambiguous."""
    listed = list(keys)
    return sorted({key for key in listed if listed.count(key) > 1})


def url_problem(url: str) -> str | None:
    """Why ``url`` names no endpoint a connection can reach (no host, a space, a port outside 1-65535), or None: urllib
    and MLflow took such URLs and failed only when they connected, as an unreachable server."""
    try:
        parts = urlsplit(url)
    except ValueError as error:  # "Invalid IPv6 URL"
        return f"not a URL ({error}); write scheme://HOST[:PORT]/PATH"
    try:
        port = parts.port
    except ValueError:  # "Port out of range 0-65535", "Port could not be cast to integer value"
        port = 0
    if not parts.hostname or url.split() != [url]:
        return "names no host (or holds a space): write scheme://HOST[:PORT]/PATH"
    if port == 0:
        return ("has no port a connection can reach (1 to 65535 after the host's colon): fix the port, or leave it "
                "out for the scheme's own")
    return None
