"""The report's derived numbers: the cost decomposition adds up to the mean cost, the regret band holds the
regret, rolling arm shares are shares, the OPE axis keeps the truth and drops outliers, arm ids in words."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from router_tuner.simulation.job import SimulationResult
from router_tuner.simulation.policies import ALWAYS_TAKER, FIXED_PREFIX, STATIC
from router_tuner.simulation.report import breakdown
from router_tuner.simulation.report.headline import headline
from router_tuner.simulation.results import costs, cumulative_regret_bps
from tests.simulation.test_report import report_result


@pytest.fixture(scope="module")
def result() -> SimulationResult:
    return report_result(("structured", "ucb"))


def test_cost_parts_add_up_to_every_policys_mean_cost(result: SimulationResult) -> None:
    for sym in result.symbols.values():
        for name, summary in sym.summaries.items():
            parts = breakdown.cost_parts(sym, name)
            assert parts is not None and summary.mean_cost_bps is not None
            assert parts.total == pytest.approx(summary.mean_cost_bps, abs=1e-9)
            assert parts.markout == pytest.approx(summary.mean_markout_bps)
        taker = breakdown.cost_parts(sym, ALWAYS_TAKER)
        assert taker is not None and taker.fallback == 0.0  # a taker start has no fallback leg
        assert any(p.fallback > 0.0 for n in sym.runs if (p := breakdown.cost_parts(sym, n)) is not None)


def test_fill_rate_by_offset_covers_the_maker_first_arms(result: SimulationResult) -> None:
    for sym in result.symbols.values():
        rows = breakdown.fill_rate_by_offset(sym)
        maker_first = [a for a in result.arm_ids if a.endswith("_b0.00")]
        assert sorted(r.arm for r in rows) == sorted(maker_first)
        assert [r.offset_bps for r in rows] == sorted(r.offset_bps for r in rows)
        for r in rows:
            run = sym.runs[f"{FIXED_PREFIX}{r.arm}"]
            assert r.maker_first_orders == len(run.events)
            assert r.fill_rate == sum(bool(e.fills) and not e.used_fallback for e in run.events) / len(run.events)


def test_regret_band_matches_the_regret_of_the_results(result: SimulationResult) -> None:
    sym = result.symbols["BTCUSDT"]
    best = sym.runs[sym.best_fixed]
    band = breakdown.regret_band(costs(sym.runs[STATIC].events), costs(best.events))
    assert np.allclose(band.regret, cumulative_regret_bps(sym.runs[STATIC], best))
    with pytest.raises(ValueError, match="same intents"):
        breakdown.regret_band(np.zeros(3), np.zeros(4))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(-50, 50), min_size=1, max_size=60), st.floats(-5, 5))
def test_regret_band_holds_the_regret_and_is_flat_without_noise(diffs: list[float], shift: float) -> None:
    best = np.zeros(len(diffs))
    band = breakdown.regret_band(np.asarray(diffs), best)
    assert np.all(band.low <= band.regret + 1e-9) and np.all(band.regret <= band.high + 1e-9)
    constant = breakdown.regret_band(np.full(len(diffs), shift), best)
    assert np.allclose(constant.high, constant.low)
    assert np.allclose(constant.regret, shift * np.arange(1, len(diffs) + 1))


def test_regret_band_counts_unfilled_orders_as_zero() -> None:
    band = breakdown.regret_band(np.array([1.0, np.nan, 3.0]), np.array([0.0, 0.0, np.nan]))
    assert band.regret.tolist() == [1.0, 1.0, 1.0]


def test_rolling_arm_shares_are_shares_of_the_last_window() -> None:
    class Event:
        def __init__(self, arm: str) -> None:
            self.arm = arm

    events = [Event(a) for a in ("a", "a", "b", "b", "b", "zz")]
    shares = breakdown.rolling_arm_shares(events, ["a", "b"], window=2)  # type: ignore[arg-type]
    assert shares.tolist() == [[1, 0], [1, 0], [0.5, 0.5], [0, 1], [0, 1], [0, 0.5]]
    with pytest.raises(ValueError, match="window"):
        breakdown.rolling_arm_shares(events, ["a"], window=0)  # type: ignore[arg-type]


def test_robust_range_keeps_the_anchors_and_drops_an_ips_outlier() -> None:
    low, high = breakdown.robust_range([1.0, 1.2, 0.9, 1.1, 1.05, 900.0, -700.0], anchors=[0.8, 1.5])
    assert low < 0.8 and 1.5 < high < 3.0
    assert breakdown.robust_range([], anchors=[2.0]) == pytest.approx((1.9, 2.1))
    with pytest.raises(ValueError, match="no finite value"):
        breakdown.robust_range([math.nan], anchors=[])


def test_savings_are_baseline_minus_tuner(result: SimulationResult) -> None:
    found = breakdown.savings(result)
    assert breakdown.tuner_policy(result) == "learner:structured"
    for baseline, rows in found.items():
        assert [r.symbol for r in rows] == list(result.symbols)
        for r in rows:
            sym = result.symbols[r.symbol]
            expected = sym.summaries[baseline].mean_cost_bps - sym.summaries["learner:structured"].mean_cost_bps
            assert r.bps == pytest.approx(expected) and r.usd_per_million == pytest.approx(100 * expected)


def test_arm_ids_in_words_and_paths_without_the_machine() -> None:
    assert breakdown.describe_arm("o0.50_b0.00").startswith("post-only 0.50 bps behind the best price")
    assert breakdown.describe_arm("fixed:o0.00_b1.00").startswith("take liquidity at once")
    assert breakdown.describe_arm("o1.00_b0.25").startswith("start as taker with probability 25%, else post-only")
    assert breakdown.describe_arm("static") == "static"
    assert breakdown.public_data_source("recorded:/home/x/shared/data/binance/") == "recorded: binance"
    assert breakdown.public_data_source("synthetic") == "synthetic"


def test_headline_words_follow_the_sign_of_each_saving(result: SimulationResult) -> None:
    lead = headline(result)
    static_rows = breakdown.savings(result)[STATIC]
    assert len(lead.per_symbol) == len(static_rows) == 2
    for line, row in zip(lead.per_symbol, static_rows, strict=True):
        verb = "saves" if row.bps >= 0 else "costs an extra"
        assert line.startswith(f"{row.symbol}: {row.tuner_cost_bps:.2f} bps per order; against static {verb} "
                               f"{abs(row.bps):.2f} bps ({abs(row.bps) * 100:,.0f} USD per 1M notional)")
    assert "synthetic" in lead.caveat and "no interval of their own" in lead.caveat
