"""The report renders: HTML and Markdown exist, every PNG exists, is non-empty and is not a blank image."""

from __future__ import annotations

from pathlib import Path

import matplotlib.image as mpimg
import numpy as np
import pytest

from config.loader import load_config
from simulation.job import SimulationOptions, simulate
from simulation.markets import synthetic_markets
from simulation.report.page import ope_coverage, text_table, write_report
from tuner.factory import build_grid

EXPECTED_PLOTS = {"mean_cost.png", "cost_over_time.png", "regret.png", "fixed_arm_costs.png", "maker_fallback.png",
                  "slippage.png", "arm_heatmap.png", "ope.png"}


def _result(learners: tuple[str, ...]):
    config = load_config()
    options = SimulationOptions(symbols=("BTCUSDT", "ETHUSDT"), orders_per_symbol=30, seed=2, data_dir=None,
                                learners=learners)
    return simulate(config, synthetic_markets(config, options.symbols, options.seed), options,
                    build_grid(config.tuner, config.router), data_source="synthetic")


def _assert_real_image(plot: Path) -> None:
    assert plot.stat().st_size > 5_000
    pixels = mpimg.imread(plot)
    assert pixels.shape[0] > 100 and pixels.shape[1] > 100 and float(np.std(pixels)) > 0.01


def test_report_renders_every_plot(tmp_path: Path) -> None:
    result = _result(("thompson", "ucb", "epsilon_greedy", "linucb"))
    report = write_report(result, tmp_path)
    html, markdown = report.html.read_text(), report.markdown.read_text()
    assert {p.name for p in report.plots} == EXPECTED_PLOTS
    for plot in report.plots:
        _assert_real_image(plot)
        assert plot.name in html and plot.name in markdown
    assert "Offline policy evaluation" in html and "same intents" in html and "covers truth" in markdown
    assert "learner:linucb" in markdown and "greedy arm" in markdown
    table = text_table(result)
    assert "BTCUSDT" in table and "always_taker" in table and "best fixed arm" in table
    assert "learner:thompson" in table and "learner:epsilon_greedy" in table
    coverage = ope_coverage(result)
    assert {"ips", "snips", "dm", "dr"} <= set(coverage)
    assert all(total == 2 * 4 and 0 <= hit <= total for hit, total in coverage.values())


def test_report_without_learners_says_so(tmp_path: Path) -> None:
    report = write_report(_result(()), tmp_path)
    assert {p.name for p in report.plots} == EXPECTED_PLOTS - {"arm_heatmap.png", "ope.png"}
    for plot in report.plots:
        _assert_real_image(plot)
    assert "nothing to evaluate off-policy" in report.markdown.read_text()
    assert not list(tmp_path.glob("ope.png"))


def test_report_refuses_an_empty_result(tmp_path: Path) -> None:
    result = _result(())
    empty = type(result)(options=result.options, data_source="synthetic", symbols={}, arm_ids=result.arm_ids,
                         learner_runs=(), default_learner=result.default_learner,
                         oracle_segments=result.oracle_segments)
    with pytest.raises(ValueError, match="no symbol"):
        write_report(empty, tmp_path)


def test_report_drawn_by_two_workers_is_the_same_report(tmp_path: Path) -> None:
    result = _result(("thompson", "ucb"))
    one = write_report(result, tmp_path / "one")
    two = write_report(result, tmp_path / "two", workers=2)
    assert [p.name for p in two.plots] == [p.name for p in one.plots]
    for a, b in zip(one.plots, two.plots, strict=True):
        assert a.read_bytes() == b.read_bytes(), f"{b.name} differs when drawn in a worker"
    assert two.markdown.read_text() == one.markdown.read_text()
    with pytest.raises(ValueError, match="workers must be >= 1"):
        write_report(result, tmp_path / "none", workers=0)
