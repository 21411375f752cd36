"""Arms and the arm grid: stable ids, validation, bounds."""

from __future__ import annotations

import math

import pytest

from router_tuner.tuner.arms import (
    Arm,
    ArmError,
    ArmGrid,
    arm_id_of_policy,
    offsets_at_one_price,
    one_price_warning,
)


def test_arm_id_is_stable_and_rounded() -> None:
    assert Arm(2.0, 0.1).arm_id == "o2.00_b0.10"
    assert Arm(2.0, 0.1) == Arm(2.0, 0.1)


@pytest.mark.parametrize(("offset", "bias"), [(math.nan, 0.0), (math.inf, 0.0), (1.0, -0.1), (1.0, 1.01),
                                              (1.0, math.nan)])
def test_arm_rejects_bad_values(offset: float, bias: float) -> None:
    with pytest.raises(ArmError):
        Arm(offset, bias)


def test_grid_is_sorted_product() -> None:
    grid = ArmGrid.from_values([3.0, 1.0], [0.5, 0.0], min_offset_bps=0.0, max_offset_bps=3.0)
    assert grid.arm_ids == ("o1.00_b0.00", "o1.00_b0.50", "o3.00_b0.00", "o3.00_b0.50")
    assert len(grid) == 4 and "o3.00_b0.50" in grid and "o9.00_b0.00" not in grid
    assert grid.index("o3.00_b0.00") == 2
    with pytest.raises(KeyError):
        grid.get("o9.00_b0.00")


@pytest.mark.parametrize(
    ("offsets", "biases", "match"),
    [
        ([], [0.0], "empty"),
        ([1.0, math.nan], [0.0], "non-finite"),
        ([1.0, 1.001], [0.0], "duplicates"),
        ([1.0], [0.0, 0.0], "duplicates"),
        ([1.0], [1.5], r"\[0, 1\]"),
        ([9.0], [0.0], "outside"),
        ([-1.0], [0.0], "outside"),
    ],
)
def test_grid_rejects_bad_values(offsets: list[float], biases: list[float], match: str) -> None:
    with pytest.raises(ArmError, match=match):
        ArmGrid.from_values(offsets, biases, min_offset_bps=0.0, max_offset_bps=5.0)


def test_grid_rejects_inverted_or_non_finite_bounds() -> None:
    with pytest.raises(ArmError):
        ArmGrid.from_values([1.0], [0.0], min_offset_bps=2.0, max_offset_bps=1.0)
    with pytest.raises(ArmError):
        ArmGrid.from_values([1.0], [0.0], min_offset_bps=0.0, max_offset_bps=math.inf)


def test_check_in_bounds() -> None:
    grid = ArmGrid.from_values([1.0], [0.0], min_offset_bps=0.0, max_offset_bps=2.0)
    grid.check_in_bounds(Arm(2.0, 1.0))
    with pytest.raises(ArmError):
        grid.check_in_bounds(Arm(2.5, 0.0))


def test_arm_id_of_policy_reads_the_knobs_not_the_label() -> None:
    assert arm_id_of_policy({"maker_offset_bps": 1.5, "taker_bias": 0.25, "arm": "static"}, "v3") == "o1.50_b0.25"
    with pytest.raises(ArmError, match="v3: not a RouterPolicy document"):
        arm_id_of_policy({"maker_offset_bps": 1.5}, "v3")
    with pytest.raises(ArmError, match="v3: not a RouterPolicy document"):
        arm_id_of_policy({"maker_offset_bps": "wide", "taker_bias": 0.0}, "v3")


GRID = ArmGrid.from_values([0.0, 0.5, 1.0, 2.0, 4.0], [0.0, 1.0], min_offset_bps=-1.0, max_offset_bps=10.0)


@pytest.mark.parametrize(("tick_bps", "groups"), [
    (0.02, []),                            # a BTC recording: every offset its own price
    (2.5, [(0.5, 1.0, 2.0)]),              # 4 bps rests two ticks behind
    (5.0, [(0.5, 1.0, 2.0, 4.0)]),
])
def test_offsets_at_one_price(tick_bps: float, groups: list[tuple[float, ...]]) -> None:
    assert offsets_at_one_price(GRID, tick_bps) == groups


def test_the_one_price_warning_is_one_line_naming_symbol_key_and_remedy() -> None:
    assert one_price_warning("BTCUSDT", GRID, 0.02) is None
    line = one_price_warning("DOGEUSDT", GRID, 2.5)
    assert line is not None and "\n" not in line
    assert line.startswith("DOGEUSDT: one tick is 2.5 bps of its price, so tuner.json arms.maker_offsets_bps post at "
                           "one price (0.5, 1, 2 bps: 1 tick(s) behind the touch)")
    assert line.endswith("for this market keep one offset per tick (multiples of 2.5 bps)")
