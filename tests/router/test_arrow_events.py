"""Arrow tables of the events (every Parquet export): nested fields as structs and lists, timestamps as
``timestamp[ns, UTC]``, and an exact round trip through Parquet read by pyarrow and by pandas."""

from __future__ import annotations

import io
from typing import Any

import msgspec.inspect as mi
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from router_tuner.router.arrow_events import TIMESTAMP, arrow_schema, from_arrow, to_arrow
from router_tuner.router.codec import SchemaError
from router_tuner.router.events import EVENT_TYPES, Event
from tests.router.test_codec import FILL, exact, router_event, strategy_for, veto_event


def arrow_strategy(t: mi.Type, name: str = "") -> st.SearchStrategy[Any]:
    """The codec's schema-derived strategy, but timestamps skip -2**63 ns, the one value pandas calls NaT."""
    if isinstance(t, mi.IntType) and (name == "ts_ns" or name.endswith("_ts_ns")):
        return st.integers(min_value=-(2**63) + 1, max_value=2**63 - 1)
    if isinstance(t, mi.StructType):
        return st.builds(t.cls, **{f.name: arrow_strategy(f.type, f.name) for f in t.fields})
    if isinstance(t, mi.VarTupleType):
        return st.lists(arrow_strategy(t.item_type, name), max_size=3).map(tuple)
    if isinstance(t, mi.UnionType):
        return st.one_of([arrow_strategy(member, name) for member in t.types])
    return strategy_for(t)


EVENTS = {kind: arrow_strategy(mi.type_info(cls)) for kind, cls in EVENT_TYPES.items()}


def _parquet(table: pa.Table) -> io.BytesIO:
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    buffer.seek(0)
    return buffer


def _events(data: st.DataObject, kind: str) -> list[Event]:
    return data.draw(st.lists(EVENTS[kind], max_size=4))


@settings(max_examples=80, deadline=None)
@given(data=st.data(), kind=st.sampled_from(sorted(EVENT_TYPES)))
def test_parquet_round_trip_through_pyarrow_is_exact(data: st.DataObject, kind: str) -> None:
    events = _events(data, kind)
    table = pq.read_table(_parquet(to_arrow(events, kind=kind)))
    assert table.schema.equals(arrow_schema(kind))
    assert exact(from_arrow(table, kind)) == exact(events)


# pyarrow's from_pandas reads Series.values of a tz-aware column, which pandas 3.1 deprecates: not ours to fix
@pytest.mark.filterwarnings("ignore::pandas.errors.Pandas4Warning")
@settings(max_examples=80, deadline=None)
@given(data=st.data(), kind=st.sampled_from(sorted(EVENT_TYPES)))
def test_parquet_round_trip_through_pandas_is_exact(data: st.DataObject, kind: str) -> None:
    events = _events(data, kind)
    frame = pd.read_parquet(_parquet(to_arrow(events, kind=kind)))
    back = pa.Table.from_pandas(frame, schema=arrow_schema(kind), preserve_index=False)
    assert exact(from_arrow(back, kind)) == exact(events)


def test_router_events_nest_fills_and_keep_utc_nanoseconds() -> None:
    event = router_event()
    schema = arrow_schema("router")
    assert schema.field("arrival_ts_ns").type == TIMESTAMP and schema.field("finished_ts_ns").type == TIMESTAMP
    fills = schema.field("fills").type
    assert isinstance(fills, pa.ListType) and fills.value_type.field("ts_ns").type == TIMESTAMP
    assert fills.value_type.field("price").type == pa.float64()
    frame = pd.read_parquet(_parquet(to_arrow([event])))
    assert str(frame["arrival_ts_ns"].dtype) == "datetime64[ns, UTC]"
    assert frame["arrival_ts_ns"][0].value == event.arrival_ts_ns  # nanoseconds kept, not microseconds
    (fill,) = frame["fills"][0]
    assert fill["price"] == FILL.price and fill["liquidity"] == "maker"
    assert pd.Timestamp(fill["ts_ns"]).value == FILL.ts_ns


def test_veto_events_nest_the_intent_and_reasons() -> None:
    event = veto_event(reasons=(*veto_event().reasons, type(veto_event().reasons[0])(
        code="tier", threshold="t2", observed=None, detail="tier t2 only")))
    table = to_arrow([event])
    intent = table.schema.field("intent").type
    assert isinstance(intent, pa.StructType) and intent.field("ts_ns").type == TIMESTAMP
    (row,) = table.to_pylist()
    assert row["intent"]["symbol"] == "ETH/USDT:USDT"
    assert [r["threshold"] for r in row["reasons"]] == [{"number": 0.15, "text": None}, {"number": None, "text": "t2"}]
    assert row["reasons"][1]["observed"] is None
    assert table.schema.field("context").type == pa.string()  # free-form per check: JSON text
    assert from_arrow(table, "veto") == [event]


def test_bad_tables_are_named() -> None:
    table = to_arrow([router_event()])
    with pytest.raises(SchemaError, match="unknown column 'venue'"):
        from_arrow(table.append_column("venue", pa.array(["x"])), "router")
    with pytest.raises(SchemaError, match="missing column 'qty'"):
        from_arrow(table.drop_columns(["qty"]), "router")
    legacy = table.set_column(table.schema.get_field_index("arrival_ts_ns"), "arrival_ts_ns",
                              pa.array([router_event().arrival_ts_ns], type=pa.int64()))
    with pytest.raises(SchemaError, match=r"int64 is not timestamp\[ns, tz=UTC\] \(at \$.arrival_ts_ns\)"):
        from_arrow(legacy, "router")
    with pytest.raises(ValueError, match="NaT"):
        to_arrow([router_event(arrival_ts_ns=-(2**63))])
    with pytest.raises(ValueError, match="empty sequence"):
        to_arrow([])
    assert to_arrow([], kind="veto").num_rows == 0
