"""Every numeric config field has a finite range: a typo can never switch a limit off.

The fields are found by walking the models (``msgspec.inspect``), not listed by hand, so a new field
without a range fails here.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec.inspect as mi
import pytest

from router_tuner.config.loader import DEFAULTS_DIR, FILES
from tests.conftest import config_issues, edit_config

NUMERIC = (mi.FloatType, mi.IntType)
ADWIN = {"detector": "adwin", "delta": 0.002, "clock": 32, "grace_period": 10, "min_window_length": 5}
"""A valid member of ``tuner.json`` ``guardrails.drift`` that the defaults do not select, to reach its fields."""
VARIANTS: dict[str, list[tuple[tuple[str, ...], Any]]] = {"tuner.json": [(("guardrails", "drift"), ADWIN)]}
POISON = ["NaN", "Infinity", "-Infinity", "1e400", "ABSURD"]


def _all_numeric_types(info: mi.Type, seen: set[type]) -> Iterator[mi.Type]:
    """Every numeric leaf reachable from ``info``, through every union member (tagged or optional)."""
    if isinstance(info, NUMERIC):
        yield info
    elif isinstance(info, mi.StructType):
        if info.cls in seen:
            return
        seen.add(info.cls)
        for field in info.fields:
            yield from _all_numeric_types(field.type, seen)
    elif isinstance(info, mi.DictType):
        yield from _all_numeric_types(info.value_type, seen)
    elif isinstance(info, (mi.VarTupleType, mi.ListType)):
        yield from _all_numeric_types(info.item_type, seen)
    elif isinstance(info, mi.UnionType):
        for member in info.types:
            yield from _all_numeric_types(member, seen)


def _member(info: mi.UnionType, raw: Any) -> mi.Type | None:
    """The union member the raw value decodes as (numbers: the numeric member, also in place of a null)."""
    for member in info.types:
        if isinstance(member, mi.StructType) and isinstance(raw, dict) and raw.get(member.tag_field) == member.tag:
            return member
        if isinstance(member, NUMERIC):
            return member
    return None


def _numeric_paths(info: mi.Type, raw: Any, path: tuple[str | int, ...]) -> Iterator[tuple[tuple[str | int, ...],
                                                                                           mi.Type]]:
    """(path into the raw document, type) of every numeric value the document holds or may hold there."""
    if isinstance(info, mi.UnionType):
        member = _member(info, raw)
        if member is not None:
            yield from _numeric_paths(member, raw, path)
    elif isinstance(info, NUMERIC):
        yield path, info
    elif isinstance(info, mi.StructType):
        for field in info.fields:
            yield from _numeric_paths(field.type, raw[field.encode_name], (*path, field.encode_name))
    elif isinstance(info, mi.DictType) and raw:
        key = next(iter(raw))
        yield from _numeric_paths(info.value_type, raw[key], (*path, key))
    elif isinstance(info, (mi.VarTupleType, mi.ListType)) and raw:
        yield from _numeric_paths(info.item_type, raw[0], (*path, 0))


def _documents() -> Iterator[tuple[str, dict[str, Any], str]]:
    """(file, raw document, label): each default file, and each one with a non-default union member."""
    for file in FILES:
        raw = json.loads((DEFAULTS_DIR / file).read_text())
        yield file, raw, "defaults"
        for path, value in VARIANTS.get(file, []):
            variant = json.loads(json.dumps(raw))
            _parent(variant, path)[path[-1]] = value
            yield file, variant, ".".join(path)


def _parent(node: Any, path: tuple[str | int, ...]) -> Any:
    for part in path[:-1]:
        node = node[part]
    return node


def _cases() -> list[Any]:
    cases: list[Any] = []
    seen: set[tuple[str, tuple[str | int, ...]]] = set()
    for file, raw, _label in _documents():
        for path, info in _numeric_paths(mi.type_info(FILES[file]), raw, ()):
            if (file, path) in seen:
                continue
            seen.add((file, path))
            cases.extend(pytest.param(file, raw, path, info, poison, id=f"{file}:{_json_path(path)}:{poison}")
                         for poison in POISON)
    return cases


def _json_path(path: tuple[str | int, ...]) -> str:
    return "$" + "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in path)


def _absurd(info: mi.Type) -> str:
    """A value far beyond any sane bound of the field's kind, above its upper bound or below its lower."""
    return "1000000000000000" if isinstance(info, mi.IntType) else "1e15"


def test_every_numeric_field_declares_finite_bounds_on_both_sides() -> None:
    unbounded = []
    for model in FILES.values():
        for info in _all_numeric_types(mi.type_info(model), set()):
            low = info.ge if info.ge is not None else info.gt
            high = info.le if info.le is not None else info.lt
            if low is None or high is None or not (math.isfinite(low) and math.isfinite(high)):
                unbounded.append(f"{model.__name__}: {info}")
    assert unbounded == []


def test_the_walk_reaches_the_numbers_of_every_file_and_union_member() -> None:
    paths = {(case.values[0], _json_path(case.values[2])) for case in _cases()}
    assert ("tuner.json", "$.guardrails.drift.grace_period") in paths
    assert ("tuner.json", "$.guardrails.drift.threshold") in paths
    assert ("executor.json", "$.instruments.BTCUSDT.tick_size") in paths
    assert ("tuner.json", "$.arms.maker_offsets_bps[0]") in paths
    assert ("tuner.json", "$.ope.clip_threshold") in paths
    assert {file for file, _ in paths} == set(FILES)
    assert len(paths) > 150


@pytest.mark.parametrize(("file", "raw", "path", "info", "poison"), _cases())
def test_a_poisoned_number_is_refused_naming_its_key(config_dir: Path, file: str, raw: dict[str, Any],
                                                      path: tuple[str | int, ...], info: mi.Type, poison: str) -> None:
    document = json.loads(json.dumps(raw))
    _parent(document, path)[path[-1]] = "__POISON__"
    literal = _absurd(info) if poison == "ABSURD" else poison
    (config_dir / file).write_text(json.dumps(document).replace('"__POISON__"', literal))
    issues = config_issues(config_dir)
    assert any(issue.startswith(f"{file}: {_json_path(path)}: ") for issue in issues), issues


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "1e400"])
def test_a_non_finite_number_is_named_as_such(config_dir: Path, literal: str) -> None:
    path = config_dir / "risk_limits.json"
    key = '"max_order_notional_usd": '
    path.write_text(path.read_text().replace(f"{key}25000.0", f"{key}{literal}"))
    [issue] = config_issues(config_dir)
    assert issue.startswith("risk_limits.json: $.max_order_notional_usd: ") and "not a finite number" in issue


def test_the_absurd_values_of_the_issue_are_refused(config_dir: Path) -> None:
    """The values of issue 13 item 4, each in its own file."""
    replacements = {
        "risk_limits.json": [('"max_order_notional_usd": 25000.0', '"max_order_notional_usd": 1e30'),
                             ('"max_age_s": 30.0', '"max_age_s": 1e30'),
                             ('"max_concurrent_positions": 4', '"max_concurrent_positions": 100000')],
        "executor.json": [('"starting_wallet_usd": 10000.0', '"starting_wallet_usd": Infinity'),
                          ('"tick_size": 0.1', '"tick_size": 1e12')],
        "tuner.json": [('"min_cost_bps": -50.0', '"min_cost_bps": NaN'),
                       ('"max_cost_bps": 30.0', '"max_cost_bps": NaN')],
    }
    for file, pairs in replacements.items():
        text = (config_dir / file).read_text()
        for old, new in pairs:
            assert old in text, old
            text = text.replace(old, new)
        (config_dir / file).write_text(text)
    paths = {tuple(issue.split(": ")[:2]) for issue in config_issues(config_dir)}
    assert {("risk_limits.json", "$.max_order_notional_usd"), ("risk_limits.json", "$.nav.max_age_s"),
            ("risk_limits.json", "$.max_concurrent_positions"), ("executor.json", "$.starting_wallet_usd"),
            ("executor.json", "$.instruments.BTCUSDT.tick_size"), ("tuner.json", "$.reward_band.min_cost_bps"),
            ("tuner.json", "$.deployment.safety.max_cost_bps")} <= paths



def test_fewer_simulated_orders_than_the_report_has_quarters_are_refused(config_dir: Path) -> None:
    """3 loaded, and `simulate` ended after the whole run in "unexpected ValueError: need at least 4 orders for
    quarters" (the report reads each run's regret by quarter)."""
    edit_config(config_dir, "router.json", lambda d: d["simulation"]["intents"].update(orders_per_symbol=3))
    assert config_issues(config_dir) == [
        "router.json: $.simulation.intents.orders_per_symbol: Expected `int` >= 4"]
