"""Arrow tables of the event schema, the layout of every Parquet export: typed, nested, lossless.

One row per event, one column per field, the Arrow type following the field's type:

=========================================  ==================================================================
field type                                 Arrow type
=========================================  ==================================================================
``int`` named ``ts_ns`` / ``*_ts_ns``      ``timestamp[ns, tz=UTC]`` (the same nanoseconds since the epoch)
other ``int``                              ``int64``
``float`` / ``bool``                       ``float64`` / ``bool``
``str``, literals                          ``string``
``X | None``                               ``X``, nullable
a struct (``intent``, ``Fill`` ...)        ``struct`` of its fields, typed by these rules
``tuple[X, ...]`` (``fills``, ``reasons``)  ``list<X>``
``float | str | None`` (veto thresholds)   ``struct<number: float64, text: string>``: one set, or the struct null
``dict[str, Any]`` (the veto ``context``)  ``string`` holding its JSON: its keys and value types vary per check
=========================================  ==================================================================

:func:`from_arrow` reads such a table (from pyarrow, or from pandas via ``pa.Table.from_pandas`` with
:func:`arrow_schema`) back into events through the strict codec, so a round trip is exact.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import msgspec
import msgspec.inspect as mi
import pandas as pd
import pyarrow as pa

from router_tuner.router.codec import SchemaError, check_columns, event_type_of_kind, kind_of_events, validate
from router_tuner.router.events import EVENT_TYPES, Event

TIMESTAMP = pa.timestamp("ns", tz="UTC")
_ENCODER = msgspec.json.Encoder()

Convert = Callable[[Any], Any]
"""One direction of a field's conversion (event value <-> Arrow's Python value); ``None`` passes through."""


def _is_timestamp(name: str) -> bool:
    return name == "ts_ns" or name.endswith("_ts_ns")


def _identity(value: Any) -> Any:
    return value


_PANDAS_NAT_NS = -(2**63)


def _timestamp(value: int) -> int:
    """A ``*ts_ns`` value as Arrow takes it; the one int64 pandas reads as "no time" (NaT) is refused."""
    if value == _PANDAS_NAT_NS:
        raise ValueError(f"timestamp {value} ns is pandas' missing-time marker (NaT): not exportable")
    return value


def _ns(value: Any) -> int:
    """Nanoseconds since the epoch of what pyarrow returns for a ``timestamp[ns]`` cell."""
    return int(value.value) if isinstance(value, pd.Timestamp) else int(pd.Timestamp(value).value)


class _Field:
    """The Arrow type of one schema type and its two conversions (built once per event kind)."""

    def __init__(self, arrow: pa.DataType, to_arrow: Convert, from_arrow: Convert) -> None:
        self.arrow, self.to_arrow, self.from_arrow = arrow, to_arrow, from_arrow


def _optional(field: _Field) -> _Field:
    return _Field(field.arrow, lambda v: None if v is None else field.to_arrow(v),
                  lambda v: None if v is None else field.from_arrow(v))


def _number_or_text() -> _Field:
    def to_arrow(value: float | str) -> dict[str, Any]:
        return {"number": None, "text": value} if isinstance(value, str) else {"number": value, "text": None}

    def from_arrow(cell: dict[str, Any]) -> float | str:
        return cell["text"] if cell["number"] is None else cell["number"]

    return _Field(pa.struct([("number", pa.float64()), ("text", pa.string())]), to_arrow, from_arrow)


def _struct(info: mi.StructType) -> _Field:
    fields = [(f.name, _field(f.name, f.type)) for f in info.fields]
    return _Field(pa.struct([(name, f.arrow) for name, f in fields]),
                  lambda v: {name: f.to_arrow(getattr(v, name)) for name, f in fields},
                  lambda v: {name: f.from_arrow(v[name]) for name, f in fields})


def _field(name: str, kind: mi.Type) -> _Field:
    """The Arrow type and conversions of field ``name`` of schema type ``kind`` (rules in the module doc)."""
    if isinstance(kind, mi.IntType):
        if _is_timestamp(name):
            return _Field(TIMESTAMP, _timestamp, _ns)
        return _Field(pa.int64(), _identity, _identity)
    if isinstance(kind, mi.FloatType):
        return _Field(pa.float64(), _identity, _identity)
    if isinstance(kind, mi.BoolType):
        return _Field(pa.bool_(), _identity, _identity)
    if isinstance(kind, (mi.StrType, mi.LiteralType)):
        return _Field(pa.string(), _identity, _identity)
    if isinstance(kind, mi.StructType):
        return _struct(kind)
    if isinstance(kind, (mi.VarTupleType, mi.ListType)):
        item = _field(name, kind.item_type)
        return _Field(pa.list_(item.arrow), lambda v: [item.to_arrow(x) for x in v],
                      lambda v: [item.from_arrow(x) for x in v])
    if isinstance(kind, mi.UnionType):
        members = [t for t in kind.types if not isinstance(t, mi.NoneType)]
        if len(members) == 1:
            return _optional(_field(name, members[0]))
        if sorted(type(t).__name__ for t in members) == ["FloatType", "StrType"]:
            return _optional(_number_or_text())
    if isinstance(kind, mi.DictType):
        return _Field(pa.string(), lambda v: _ENCODER.encode(v).decode(), msgspec.json.decode)
    raise TypeError(f"no Arrow layout for field {name!r} of type {kind!r}")


def _kind_fields(kind: str) -> list[tuple[str, _Field]]:
    info = mi.type_info(event_type_of_kind(kind))
    assert isinstance(info, mi.StructType)
    return [(f.name, _field(f.name, f.type)) for f in info.fields]


_FIELDS = {kind: _kind_fields(kind) for kind in EVENT_TYPES}


def _fields(kind: str) -> list[tuple[str, _Field]]:
    event_type_of_kind(kind)
    return _FIELDS[kind]


def arrow_schema(kind: str) -> pa.Schema:
    """The Arrow schema of ``kind``'s table (what a Parquet export holds)."""
    return pa.schema([(name, f.arrow) for name, f in _fields(kind)])


def to_arrow(events: Sequence[Event], *, kind: str | None = None) -> pa.Table:
    """One row per event (layout in the module docstring); ``kind`` is required for an empty sequence."""
    kind = kind_of_events(events, kind)
    for event in events:
        validate(event)
    fields = _fields(kind)
    columns = [pa.array([f.to_arrow(getattr(e, name)) for e in events], type=f.arrow) for name, f in fields]
    return pa.Table.from_arrays(columns, schema=arrow_schema(kind))


def from_arrow(table: pa.Table, kind: str) -> list[Event]:
    """The events of ``kind`` in ``table``; its columns must be exactly the schema's, in any order, and a bad
    cell is a SchemaError naming the row and field."""
    cls = event_type_of_kind(kind)
    fields = _fields(kind)
    names = [name for name, _ in fields]
    check_columns(kind, table.column_names, names)
    expected = arrow_schema(kind)
    for name in names:
        if not table.schema.field(name).type.equals(expected.field(name).type):
            raise SchemaError(kind, f"$.{name}", f"column type {table.schema.field(name).type} is not "
                                                 f"{expected.field(name).type}")
    columns = {name: [None if v is None else f.from_arrow(v) for v in table.column(name).to_pylist()]
               for name, f in fields}
    events: list[Event] = []
    for row in range(table.num_rows):
        try:
            event = msgspec.convert({name: values[row] for name, values in columns.items()}, cls, strict=True)
            validate(event)
        except (msgspec.ValidationError, SchemaError) as err:
            raise SchemaError(kind, "$", f"row {row}: {err}") from err
        events.append(event)
    return events

