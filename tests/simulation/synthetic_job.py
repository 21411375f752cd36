"""The main job on the synthetic market, as a test runs it to compare two runs' results."""

from __future__ import annotations

from router_tuner.config.models import ConfigBundle
from router_tuner.simulation.job import SimulationOptions, simulate
from router_tuner.simulation.markets import synthetic_markets
from router_tuner.simulation.report.page import summary_dict
from router_tuner.tuner.factory import build_grid


def synthetic_job_summary(config: ConfigBundle, options: SimulationOptions) -> dict[str, object]:
    """``simulate`` on fresh synthetic markets of ``options``' symbols and seed: its summary (the JSON line)."""
    markets = synthetic_markets(config, options.symbols, options.seed)
    grid = build_grid(config.tuner, config.router)
    return summary_dict(simulate(config, markets, options, grid, data_source="synthetic"))
