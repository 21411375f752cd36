"""The report renders: HTML and Markdown exist, every PNG exists, is non-empty and is not a blank image."""

from __future__ import annotations

from pathlib import Path

import matplotlib.image as mpimg
import numpy as np

from config.loader import load_config
from executor.report import text_table, write_report
from executor.simulation import SimulationOptions, simulate
from executor.simulation_market import synthetic_markets
from tuner.factory import build_grid


def test_report_renders_every_plot(tmp_path: Path) -> None:
    config = load_config()
    options = SimulationOptions(symbols=("BTCUSDT", "ETHUSDT"), orders_per_symbol=30, seed=2, data_dir=None)
    result = simulate(config, synthetic_markets(config, options.symbols, options.seed), options,
                      build_grid(config.tuner, config.router), data_source="synthetic")
    report = write_report(result, tmp_path)
    html = report.html.read_text()
    assert len(report.plots) >= 5
    for plot in report.plots:
        assert plot.stat().st_size > 5_000 and plot.name in html and plot.name in report.markdown.read_text()
        pixels = mpimg.imread(plot)
        assert pixels.shape[0] > 100 and pixels.shape[1] > 100 and float(np.std(pixels)) > 0.01
    assert "Offline policy evaluation" in html and "same intents" in html
    table = text_table(result)
    assert "BTCUSDT" in table and "always_taker" in table and "best fixed arm" in table
