"""The codec round-trips valid events exactly (JSON, DataFrame, Parquet) and names the field it rejects."""

from __future__ import annotations

import io
import math
import struct
from typing import Any

import msgspec
import msgspec.inspect as mi
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from router_tuner.router.codec import (
    SchemaError,
    check_exact,
    from_dataframe,
    from_json,
    kind_of,
    to_dataframe,
    to_json,
)
from router_tuner.router.events import (
    EVENT_TYPES,
    SCHEMA_VERSION,
    Fill,
    Intent,
    RouterEvent,
    TradeRecord,
    VetoEvent,
    VetoReason,
)

INT64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)
FINITE = st.floats(allow_nan=False, allow_infinity=False)
JSON_SCALARS = st.none() | st.booleans() | st.integers() | FINITE | st.text(max_size=8)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)


def strategy_for(t: mi.Type) -> st.SearchStrategy[Any]:
    """A strategy of valid values for one msgspec type, derived from the schema rather than restated."""
    if isinstance(t, mi.IntType):
        return INT64
    if isinstance(t, mi.FloatType):
        return FINITE
    if isinstance(t, mi.BoolType):
        return st.booleans()
    if isinstance(t, mi.StrType):
        return st.text(max_size=12)
    if isinstance(t, mi.NoneType):
        return st.none()
    if isinstance(t, mi.LiteralType):
        return st.sampled_from(t.values)
    if isinstance(t, mi.UnionType):
        return st.one_of([strategy_for(member) for member in t.types])
    if isinstance(t, mi.VarTupleType):
        return st.lists(strategy_for(t.item_type), max_size=3).map(tuple)
    if isinstance(t, mi.DictType):
        assert isinstance(t.key_type, mi.StrType)
        return st.dictionaries(st.text(max_size=5), strategy_for(t.value_type), max_size=4)
    if isinstance(t, mi.AnyType):
        return JSON_VALUES
    if isinstance(t, mi.StructType):
        return st.builds(t.cls, **{f.name: strategy_for(f.type) for f in t.fields})
    raise NotImplementedError(f"no strategy for {t!r}")


EVENTS = {kind: strategy_for(mi.type_info(cls)) for kind, cls in EVENT_TYPES.items()}

ODD_VALUES = st.sampled_from([
    math.nan, math.inf, -math.inf, 1, 0, 2**63, 2**63 - 1, -(2**63), -(2**63) - 1, 2**64, 9_300_000_000_000_000_000,
    True, 1e22,
    "12345678901234567890", None, (1, 2), [1.0], {3: 1}, {"a": (1,)}, {"a": [math.nan]}, {1, 2},
])


def messy_for(t: mi.Type) -> st.SearchStrategy[Any]:
    """Like :func:`strategy_for`, with any field now and then holding an odd value (often one its type may not
    carry; also the int64 bounds themselves)."""
    if isinstance(t, mi.StructType):
        return st.builds(t.cls, **{f.name: messy_for(f.type) for f in t.fields})
    if isinstance(t, mi.VarTupleType):
        inner = st.lists(messy_for(t.item_type), max_size=3)
        return inner.map(tuple) | inner | ODD_VALUES
    return strategy_for(t) | ODD_VALUES


MESSY_EVENTS = {kind: messy_for(mi.type_info(cls)) for kind, cls in EVENT_TYPES.items()}
ANY_KIND = st.sampled_from(sorted(EVENT_TYPES))


def exact(value: Any) -> Any:
    """A comparable image that tells -0.0 from 0.0, 1 from 1.0 and True from 1, and () from []."""
    if isinstance(value, msgspec.Struct):
        return (type(value).__name__, tuple((f, exact(getattr(value, f))) for f in value.__struct_fields__))
    if isinstance(value, float):
        return ("float", struct.pack("<d", value))
    if isinstance(value, (tuple, list)):
        return (type(value).__name__, tuple(exact(v) for v in value))
    if isinstance(value, dict):
        return ("dict", tuple((k, exact(v)) for k, v in value.items()))
    return (type(value).__name__, value)


@settings(max_examples=150, deadline=None)
@given(data=st.data(), kind=ANY_KIND)
def test_json_round_trip_is_exact(data: st.DataObject, kind: str) -> None:
    event = data.draw(EVENTS[kind])
    assert exact(from_json(to_json(event), kind)) == exact(event)


@settings(max_examples=400, deadline=None)
@given(data=st.data(), kind=ANY_KIND)
def test_the_fast_guard_decides_as_the_full_check(data: st.DataObject, kind: str) -> None:
    """to_json's C-level round-trip guard accepts and refuses exactly what the field-by-field check does,
    with the same field named."""
    event = data.draw(MESSY_EVENTS[kind])
    try:
        expected: bytes | str = check_exact(event)
    except SchemaError as error:
        expected = error.path
    try:
        got: bytes | str = to_json(event)
    except SchemaError as error:
        got = error.path
    assert got == expected


@settings(max_examples=60, deadline=None)
@given(data=st.data(), kind=ANY_KIND)
def test_dataframe_round_trip_is_exact(data: st.DataObject, kind: str) -> None:
    events = data.draw(st.lists(EVENTS[kind], max_size=4))
    df = to_dataframe(events, kind=kind)
    assert list(df.columns) == list(EVENT_TYPES[kind].__struct_fields__)
    assert len(df) == len(events)
    assert exact(from_dataframe(df, kind)) == exact(events)


@settings(max_examples=20, deadline=None)
@given(data=st.data(), kind=ANY_KIND)
def test_parquet_round_trip_is_exact(data: st.DataObject, kind: str) -> None:
    events = data.draw(st.lists(EVENTS[kind], min_size=1, max_size=4))
    buffer = io.BytesIO()
    to_dataframe(events).to_parquet(buffer, index=False)
    buffer.seek(0)
    assert exact(from_dataframe(pd.read_parquet(buffer), kind)) == exact(events)


# ---- fixed examples for the bad paths -------------------------------------------------------------------

FILL = Fill(trade_id="t1", client_order_id="c1", price=100.5, qty=0.25, fee_usd=-0.01, liquidity="maker",
            ts_ns=1_700_000_000_000_000_100)


def router_event(**overrides: Any) -> RouterEvent:
    fields: dict[str, Any] = dict(
        schema_version=SCHEMA_VERSION, intent_id="i1", symbol="BTC/USDT:USDT", side="buy", qty=0.25,
        reduce_only=False, close_position=False, position_side="SHORT", arrival_bid=100.0, arrival_ask=101.0,
        arrival_mid=100.5,
        arrival_ts_ns=1_700_000_000_000_000_000, policy_id="static", policy_version=3, arm="o2_b0",
        maker_offset_bps=2.0, taker_bias=0.0, propensity=0.9, route_propensity=1.0, started_maker=True,
        is_maker_final=True, used_fallback=False, routed_as="maker", outcome="filled", reprice_count=0,
        cancel_count=0, post_only_reject_count=0, fills=(FILL,), filled_qty=0.25, avg_price=100.5,
        slippage_bps=0.0, fees_bps=-0.4, cost_bps=-0.4, time_to_fill_ms=12.5, realized_pnl_usd=None,
        error=None, finished_ts_ns=1_700_000_000_000_000_200,
    )
    fields.update(overrides)
    return RouterEvent(**fields)


def veto_event(**overrides: Any) -> VetoEvent:
    intent = Intent(intent_id="i2", symbol="ETH/USDT:USDT", side="sell", size_hint_usd=500.0, tier="t1",
                    strategy="s", reduce_only=False, close_position=False, position_side="BOTH", is_stop=False,
                    ts_ns=5)
    fields: dict[str, Any] = dict(
        schema_version=SCHEMA_VERSION, intent=intent,
        reasons=(VetoReason(code="trade_gt_equity_cap", threshold=0.15, observed=0.18, detail="15%"),),
        context={"nav_usd": 1000.0, "positions": [{"symbol": "BTC", "qty": 1}]}, ts_ns=6,
    )
    fields.update(overrides)
    return VetoEvent(**fields)


def router_json(**changes: Any) -> bytes:
    """The JSON of router_event() with top-level keys replaced, added or (value ...) removed."""
    record = msgspec.to_builtins(router_event())
    for key, value in changes.items():
        if value is ...:
            del record[key]
        else:
            record[key] = value
    return msgspec.json.encode(record)


def test_routed_flags_round_trip_through_json_and_dataframes() -> None:
    event = router_event(reduce_only=True, close_position=True, position_side="SHORT")
    assert from_json(to_json(event), "router") == event
    (back,) = from_dataframe(to_dataframe([event]), "router")
    assert (back.reduce_only, back.close_position, back.position_side) == (True, True, "SHORT")


def test_kind_of_maps_types_and_refuses_others() -> None:
    assert kind_of(router_event()) == "router"
    assert kind_of(veto_event()) == "veto"
    with pytest.raises(TypeError, match="Fill"):
        kind_of(FILL)  # type: ignore[arg-type]


def test_unknown_kind_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown event kind 'fill'"):
        from_json(to_json(router_event()), "fill")


@pytest.mark.parametrize(
    ("payload", "path", "text"),
    [
        (router_json(bogus=1), "$.bogus", "unknown field `bogus`"),
        (router_json(qty=...), "$.qty", "missing required field `qty`"),
        (router_json(qty="0.25"), "$.qty", "Expected `float`, got `str`"),
        (router_json(reprice_count=1.0), "$.reprice_count", "Expected `int`, got `float`"),
        (router_json(started_maker=1), "$.started_maker", "Expected `bool`, got `int`"),
        (router_json(routed_as="limit"), "$.routed_as", "Invalid enum value 'limit'"),
        (router_json(avg_price=None, error=7), "$.error", "Expected `str | null`, got `int`"),
        (router_json(fills=[{**msgspec.to_builtins(FILL), "venue": 1}]), "$.fills[0].venue", "unknown field"),
        (router_json(fills=[{"trade_id": "t"}]), "$.fills[0].client_order_id", "missing required field"),
        (router_json(ts_ns=1), "$.ts_ns", "unknown field"),
        (router_json(close_position=...), "$.close_position", "missing required field `close_position`"),
        (router_json(position_side=...), "$.position_side", "missing required field `position_side`"),
        (router_json(position_side="NET"), "$.position_side", "Invalid enum value 'NET'"),
        (router_json(close_position="false"), "$.close_position", "Expected `bool`, got `str`"),
        (router_json(arrival_mid=1.5).replace(b":1.5,", b":1e400,"), "$.arrival_mid", "out of range"),
        (router_json(finished_ts_ns=2**63), "$.finished_ts_ns", "outside int64"),
        (b'{"qty": ', "$", "truncated"),
        (b'{"qty" 1}', "$", "malformed"),
    ],
)
def test_json_rejections_name_the_field(payload: bytes, path: str, text: str) -> None:
    with pytest.raises(SchemaError) as info:
        from_json(payload, "router")
    assert info.value.path == path
    assert info.value.kind == "router"
    assert text in str(info.value)


@pytest.mark.parametrize(
    ("event", "path"),
    [
        (router_event(qty=math.nan), "$.qty"),
        (router_event(cost_bps=math.inf), "$.cost_bps"),
        (router_event(fills=(msgspec.structs.replace(FILL, price=-math.inf),)), "$.fills[0].price"),
        (router_event(arrival_ts_ns=-(2**63) - 1), "$.arrival_ts_ns"),
        (veto_event(reasons=(VetoReason(code="x", threshold=math.nan, observed=None, detail=""),)),
         "$.reasons[0].threshold"),
        (veto_event(context={"a": [1.0, math.inf]}), "$.context.a[1]"),
        (veto_event(context={"a": (1, 2)}), "$.context.a"),
        (veto_event(context={"a": {3: 1}}), "$.context.a"),
    ],
)
def test_unencodable_values_are_refused_on_write(event: RouterEvent | VetoEvent, path: str) -> None:
    with pytest.raises(SchemaError) as info:
        to_json(event)
    assert info.value.path == path
    with pytest.raises(SchemaError):
        to_dataframe([event])


def test_wrongly_typed_in_memory_event_is_refused_on_write() -> None:
    with pytest.raises(SchemaError) as info:
        to_json(router_event(qty="0.25"))
    assert info.value.path == "$.qty"
    with pytest.raises(SchemaError, match="got `bool`") as info:
        to_json(router_event(fills=(msgspec.structs.replace(FILL, ts_ns=True),)))
    assert info.value.path == "$.fills[0].ts_ns"
    for event, path in [(router_event(fills=[FILL]), "$.fills"), (router_event(qty=1), "$.qty")]:
        with pytest.raises(SchemaError, match="does not round-trip") as info:
            to_json(event)
        assert info.value.path == path


def test_nan_in_json_is_not_read_as_none() -> None:
    # msgspec would write NaN as null; the codec refuses to write it, and null in a required float is an error
    with pytest.raises(SchemaError) as info:
        from_json(router_json(qty=None), "router")
    assert info.value.path == "$.qty"


# ---- DataFrame specifics --------------------------------------------------------------------------------


def test_dataframe_dtypes_keep_ints_and_none() -> None:
    df = to_dataframe([router_event(), router_event(intent_id="i9", avg_price=None, error="timeout")])
    assert df["finished_ts_ns"].dtype == "int64"
    assert df["qty"].dtype == "float64"
    assert df["avg_price"].dtype == "Float64"
    assert df["avg_price"].isna().tolist() == [False, True]
    assert df["error"].tolist()[0] is pd.NA
    assert isinstance(df["fills"].iloc[0], str)


def test_dataframe_unknown_and_missing_columns_are_named() -> None:
    df = to_dataframe([router_event()])
    with pytest.raises(SchemaError) as info:
        from_dataframe(df.assign(venue="x"), "router")
    assert info.value.path == "$.venue"
    with pytest.raises(SchemaError) as info:
        from_dataframe(df.drop(columns=["qty"]), "router")
    assert info.value.path == "$.qty"


def test_int_column_turned_float_by_pandas_is_a_type_error() -> None:
    df = to_dataframe([router_event()])
    df["reprice_count"] = df["reprice_count"].astype("float64")
    with pytest.raises(SchemaError) as info:
        from_dataframe(df, "router")
    assert info.value.path == "$.reprice_count"
    assert "row 0" in str(info.value)


def test_nan_in_numeric_column_is_rejected_not_taken_as_none() -> None:
    df = to_dataframe([router_event()])
    df["avg_price"] = df["avg_price"].astype("float64")
    df.loc[0, "avg_price"] = math.nan
    with pytest.raises(SchemaError, match="non-finite") as info:
        from_dataframe(df, "router")
    assert info.value.path == "$.avg_price"


def test_missing_value_in_required_column_names_the_field() -> None:
    df = to_dataframe([router_event()])
    df["qty"] = df["qty"].astype("Float64")
    df.loc[0, "qty"] = pd.NA
    with pytest.raises(SchemaError) as info:
        from_dataframe(df, "router")
    assert info.value.path == "$.qty"


def test_default_pandas_str_column_nan_means_none() -> None:
    df = to_dataframe([router_event()])
    df["error"] = pd.Series([math.nan], dtype="str")
    assert from_dataframe(df, "router")[0].error is None


def test_corrupt_nested_cell_is_named() -> None:
    df = to_dataframe([veto_event()])
    df.loc[0, "reasons"] = "[{"
    with pytest.raises(SchemaError) as info:
        from_dataframe(df, "veto")
    assert info.value.path == "$.reasons"
    df = to_dataframe([veto_event()])
    df.loc[0, "intent"] = '{"intent_id": "x"}'
    with pytest.raises(SchemaError) as info:
        from_dataframe(df, "veto")
    assert info.value.path == "$.intent.symbol"


def test_kind_rules_for_dataframes() -> None:
    with pytest.raises(ValueError, match="empty sequence"):
        to_dataframe([])
    with pytest.raises(ValueError, match="one kind"):
        to_dataframe([router_event(), veto_event()])
    with pytest.raises(ValueError, match="one kind"):
        to_dataframe([router_event()], kind="trade")
    empty = to_dataframe([], kind="trade")
    assert list(empty.columns) == list(TradeRecord.__struct_fields__)
    assert from_dataframe(empty, "trade") == []
