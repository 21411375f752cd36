"""Lossless, strict encodings of the event schema (``router/events.py``): JSON bytes and pandas DataFrames.

Both directions validate, so nothing that cannot round-trip exactly is ever written or read back:

* shape: unknown, missing or mistyped fields are a :class:`SchemaError` naming the kind and the field's
  path (``$.fills[0].price``), never a silent default;
* values: every float anywhere in an event (typed fields, ``VetoReason`` thresholds, the veto
  ``context``) must be finite — msgspec would write NaN/inf as JSON ``null``, so a NaN price would come
  back as "no price"; every typed ``int`` field must fit in int64 (SQLite and DataFrame columns);
* the veto ``context`` must hold JSON-native values only (dict with str keys, list, str, int, float,
  bool, None): a tuple would come back as a list.

DataFrame layout (one row per event, one column per field, in struct order):

=====================  ==========================================================================
field type             column dtype
=====================  ==========================================================================
``int``                ``int64``
``float``              ``float64`` (bit-exact, ``-0.0`` kept)
``float | None``       ``Float64`` (nullable: ``None`` is ``pd.NA``, never NaN)
``bool``               ``bool``
``str``, literals      ``string`` (``None`` is ``pd.NA``)
nested (``fills``,     ``string`` holding the field's msgspec JSON text: exact, and Parquet stores
``reasons``,           it as a plain string column whatever the shape of ``context``
``intent``,
``context``, ...)
=====================  ==========================================================================

:func:`from_dataframe` reads these dtypes and what Parquet gives back for them. A missing value is
``None`` or ``pd.NA`` (or NaN in a pandas string column, that dtype's own missing marker); a NaN in a
numeric column is a value, and is rejected as non-finite rather than guessed to mean ``None``. An int
field held in a float column (what pandas does to an int column with a hole) is a type error.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import msgspec
import msgspec.inspect as mi
import pandas as pd

from router_tuner.router.events import EVENT_TYPES, Event

_INT64_MIN = -(2**63)
_INT64_MAX = 2**63 - 1

_KIND_OF_TYPE: dict[type, str] = {cls: kind for kind, cls in EVENT_TYPES.items()}
_DECODERS = {kind: msgspec.json.Decoder(cls, strict=True) for kind, cls in EVENT_TYPES.items()}
_ENCODER = msgspec.json.Encoder()

_PATH_RE = re.compile(r" - at `(?P<path>[^`]*)`$")
_FIELD_RE = re.compile(r"(?:unknown|missing required) field `(?P<field>[^`]*)`")


class SchemaError(ValueError):
    """An event or record does not match the schema of its kind; ``path`` names the offending field."""

    def __init__(self, kind: str, path: str, message: str) -> None:
        self.kind = kind
        self.path = path
        self.message = message
        super().__init__(f"{kind} event: {message} (at {path})")


def kind_of(event: Event) -> str:
    """The ``EVENT_TYPES`` key of ``event``; a non-event is a TypeError, not a guess."""
    kind = _KIND_OF_TYPE.get(type(event))
    if kind is None:
        raise TypeError(f"not a journaled event type: {type(event).__name__}")
    return kind


def event_type_of_kind(kind: str) -> type[Event]:
    """The event class of ``kind`` (e.g. ``"router_event"``); ValueError naming the known kinds otherwise."""
    try:
        return EVENT_TYPES[kind]
    except KeyError:
        raise ValueError(f"unknown event kind {kind!r}; expected one of {sorted(EVENT_TYPES)}") from None


def _schema_error(kind: str, err: msgspec.DecodeError, prefix: str = "") -> SchemaError:
    """Turn a msgspec error into a SchemaError whose path ends at the named field."""
    text = str(err)
    match = _PATH_RE.search(text)
    path = match.group("path") if match else "$"
    message = text[: match.start()] if match else text
    field = _FIELD_RE.search(message)
    if field:
        path = f"{path}.{field.group('field')}"
    return SchemaError(kind, path, prefix + message)


def _validate_json_value(kind: str, value: object, path: str) -> None:
    """Reject what JSON cannot carry back exactly: non-finite floats, non-str keys, non-JSON containers."""
    if value is None or isinstance(value, (bool, int, str)):
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise SchemaError(kind, path, f"non-finite float {value!r}")
        return
    if isinstance(value, list):
        for i, item in enumerate(value):
            _validate_json_value(kind, item, f"{path}[{i}]")
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise SchemaError(kind, path, f"non-string key {key!r}")
            _validate_json_value(kind, item, f"{path}.{key}")
        return
    raise SchemaError(kind, path, f"{type(value).__name__} is not JSON-native (dict/list/str/int/float/bool)")


def _validate_struct(kind: str, record: msgspec.Struct, path: str) -> None:
    for name in record.__struct_fields__:
        value = getattr(record, name)
        field_path = f"{path}.{name}"
        if isinstance(value, msgspec.Struct):
            _validate_struct(kind, value, field_path)
        elif isinstance(value, (tuple, list)):
            for i, item in enumerate(value):
                if isinstance(item, msgspec.Struct):
                    _validate_struct(kind, item, f"{field_path}[{i}]")
                else:
                    _validate_json_value(kind, item, f"{field_path}[{i}]")
        elif isinstance(value, int) and not isinstance(value, bool):
            if not _INT64_MIN <= value <= _INT64_MAX:
                raise SchemaError(kind, field_path, f"integer {value} outside int64")
        else:
            _validate_json_value(kind, value, field_path)


def validate(event: Event) -> None:
    """Check the value rules msgspec's types do not carry (finite floats, int64, JSON-native context).

    The shape is checked by msgspec on decode; an event built in memory is trusted for shape (its
    constructor does not type-check), so :func:`to_json` validates shape by decoding what it wrote.
    """
    _validate_struct(kind_of(event), event, "$")


def to_json(event: Event) -> bytes:
    """Encode one event as msgspec JSON, refusing any value that would not decode back to itself.

    The journal's hot path: one encode and a round-trip guard run in msgspec's C code (strict decode,
    struct equality, re-encode, a scan of the digit runs for an integer that may lie beyond int64). Only an event the
    guard trips on goes through :func:`check_exact`, which names the offending field, or passes the event
    when the guard was merely cautious (a long digit run inside a string, say). The result is the same as
    :func:`check_exact`'s for every event.
    """
    kind = kind_of(event)
    try:
        data = _ENCODER.encode(event)
    except (TypeError, msgspec.EncodeError):
        return check_exact(event)  # a value msgspec cannot encode: named there
    if _round_trips(kind, event, data):
        return data
    return check_exact(event)


def check_exact(event: Event) -> bytes:
    """The full check in Python, field by field: :func:`validate`, then encode, strict decode and compare
    types and values; raises a SchemaError naming the first offending field, else returns the JSON."""
    kind = kind_of(event)
    _validate_struct(kind, event, "$")
    data = _ENCODER.encode(event)
    try:
        decoded = _DECODERS[kind].decode(data)
    except msgspec.ValidationError as err:
        raise _schema_error(kind, err) from err
    path = _first_difference(event, decoded, "$")
    if path is not None:
        raise SchemaError(kind, path, "value does not round-trip: it is not of the schema's type")
    return data


_DIGIT_RUNS = bytes(ord("0") if chr(b).isdigit() and b < 128 else ord(" ") for b in range(256))
"""``bytes.translate`` table: every ASCII digit to ``0``, every other byte to a space (digit runs, found in C)."""
_INT64_MAX_DIGITS = str(_INT64_MAX).encode()


def _may_hold_int_beyond_int64(data: bytes) -> bool:
    """True when a digit run of ``data`` is longer than int64's bounds or, as long, above its maximum.

    Cautious: the run may be in a string or a float, or be exactly -2**63; :func:`check_exact` decides then.
    """
    runs = data.translate(_DIGIT_RUNS)
    width = len(_INT64_MAX_DIGITS)
    start = runs.find(b"0" * width)
    while start >= 0:
        end = runs.find(b" ", start)
        end = len(runs) if end < 0 else end
        if end - start > width or data[start:end] > _INT64_MAX_DIGITS:
            return True
        start = runs.find(b"0" * width, end)
    return False


def _round_trips(kind: str, event: Event, data: bytes) -> bool:
    """True when ``data`` decodes strictly to an equal event that re-encodes to ``data``, with no digit run
    that may be an integer beyond int64.

    Equality catches every changed value (NaN and inf come back as null or fail to decode, a tuple in a
    ``context`` comes back a list, a list in a tuple field a tuple); re-encoding catches an int in a float
    field (1 comes back 1.0), which equality does not.
    """
    try:
        decoded = _DECODERS[kind].decode(data)
    except msgspec.ValidationError:
        return False
    return decoded == event and _ENCODER.encode(decoded) == data and not _may_hold_int_beyond_int64(data)


def _first_difference(written: object, read: object, path: str) -> str | None:
    """Path of the first value that decoding changed in type or value (1 -> 1.0, list -> tuple)."""
    if type(written) is not type(read):
        return path
    if isinstance(written, msgspec.Struct):
        for name in written.__struct_fields__:
            found = _first_difference(getattr(written, name), getattr(read, name), f"{path}.{name}")
            if found is not None:
                return found
        return None
    if isinstance(written, (tuple, list)):
        assert isinstance(read, (tuple, list))
        if len(written) != len(read):
            return path
        for i, (w, r) in enumerate(zip(written, read, strict=True)):
            found = _first_difference(w, r, f"{path}[{i}]")
            if found is not None:
                return found
        return None
    if isinstance(written, dict):
        assert isinstance(read, dict)
        if written.keys() != read.keys():
            return path
        for key, value in written.items():
            found = _first_difference(value, read[key], f"{path}.{key}")
            if found is not None:
                return found
        return None
    return None if written == read else path


def from_json(data: bytes | str, kind: str) -> Event:
    """Decode and validate one event of ``kind``; any deviation is a SchemaError naming the field."""
    event_type_of_kind(kind)
    try:
        event = _DECODERS[kind].decode(data)
    except msgspec.DecodeError as err:
        raise _schema_error(kind, err) from err
    _validate_struct(kind, event, "$")
    return event


def _column_spec(field_type: mi.Type) -> tuple[str, Callable[[Any], Any] | None]:
    """The pandas dtype of one field, and the cell encoder for nested fields (None: stored as is)."""
    if isinstance(field_type, mi.IntType):
        return "int64", None
    if isinstance(field_type, mi.FloatType):
        return "float64", None
    if isinstance(field_type, mi.BoolType):
        return "bool", None
    if isinstance(field_type, (mi.StrType, mi.LiteralType)):
        return "string", None
    if isinstance(field_type, mi.UnionType):
        members = [t for t in field_type.types if not isinstance(t, mi.NoneType)]
        if len(members) == 1 and len(members) < len(field_type.types):
            if isinstance(members[0], mi.FloatType):
                return "Float64", None
            if isinstance(members[0], (mi.StrType, mi.LiteralType)):
                return "string", None
    return "string", _ENCODER.encode


def _columns(kind: str) -> list[tuple[str, str, Callable[[Any], Any] | None]]:
    info = mi.type_info(event_type_of_kind(kind))
    assert isinstance(info, mi.StructType)
    return [(f.name, *_column_spec(f.type)) for f in info.fields]


_COLUMNS = {kind: _columns(kind) for kind in EVENT_TYPES}


def check_columns(kind: str, present: Sequence[str], expected: Sequence[str]) -> None:
    """A table of ``kind`` holds exactly the ``expected`` columns: SchemaError naming the first unknown, then the
    first missing one (a DataFrame or an Arrow table alike)."""
    unknown = [c for c in present if c not in expected]
    if unknown:
        raise SchemaError(kind, f"$.{unknown[0]}", f"unknown column {unknown[0]!r}")
    missing = [c for c in expected if c not in present]
    if missing:
        raise SchemaError(kind, f"$.{missing[0]}", f"missing column {missing[0]!r}")


def kind_of_events(events: Sequence[Event], kind: str | None) -> str:
    """The one kind of ``events`` (and ``kind``, when given); ValueError for mixed kinds or nothing to infer from."""
    kinds = {kind_of(event) for event in events}
    if kind is not None:
        event_type_of_kind(kind)
        kinds.add(kind)
    if not kinds:
        raise ValueError("cannot infer the kind of an empty sequence: pass kind=")
    if len(kinds) > 1:
        raise ValueError(f"one DataFrame holds one kind of event, got {sorted(kinds)}")
    return kinds.pop()


def to_dataframe(events: Sequence[Event], *, kind: str | None = None) -> pd.DataFrame:
    """One row per event, one typed column per field (layout in the module docstring).

    ``kind`` is required for an empty sequence and, when given, must match every event.
    """
    kind = kind_of_events(events, kind)
    for event in events:
        validate(event)
    columns: dict[str, pd.Series] = {}
    for name, dtype, encode in _COLUMNS[kind]:
        values = [getattr(event, name) for event in events]
        if encode is not None:
            values = [encode(value).decode() for value in values]
        columns[name] = pd.Series(values, dtype=dtype)
    return pd.DataFrame(columns)


def _cells(series: pd.Series, nested: bool) -> Iterable[Any]:
    """Python values of one column, with pandas' missing markers mapped to None (see module doc)."""
    nan_is_missing = isinstance(series.dtype, pd.StringDtype)
    for value in series.tolist():
        string_nan = nan_is_missing and isinstance(value, float) and math.isnan(value)
        if value is None or value is pd.NA or string_nan:
            yield None
        elif nested and isinstance(value, str):
            yield msgspec.json.decode(value)
        else:
            yield value


def from_dataframe(df: pd.DataFrame, kind: str) -> list[Event]:
    """Rebuild the events of ``kind`` from a frame made by :func:`to_dataframe` (or read from its Parquet).

    Columns must be exactly the struct's fields; a bad cell is a SchemaError naming the row and field.
    """
    cls = event_type_of_kind(kind)
    expected = [name for name, _, _ in _COLUMNS[kind]]
    check_columns(kind, list(df.columns), expected)
    if df.columns.duplicated().any():
        raise SchemaError(kind, "$", f"duplicate columns {sorted(set(df.columns[df.columns.duplicated()]))}")
    columns: dict[str, list[Any]] = {}
    for name, _, encode in _COLUMNS[kind]:
        try:
            columns[name] = list(_cells(df[name], nested=encode is not None))
        except msgspec.DecodeError as err:
            raise SchemaError(kind, f"$.{name}", f"cell is not valid JSON: {err}") from err
    events: list[Event] = []
    for row, label in enumerate(df.index):
        record = {name: values[row] for name, values in columns.items()}
        try:
            event = msgspec.convert(record, cls, strict=True)
            _validate_struct(kind, event, "$")
        except msgspec.ValidationError as err:
            raise _schema_error(kind, err, prefix=f"row {label!r}: ") from err
        except SchemaError as err:
            raise SchemaError(kind, err.path, f"row {label!r}: {err.message}") from err
        events.append(event)
    return events
