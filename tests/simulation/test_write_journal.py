"""The main job's journal is replaced whole: a run stopped while writing it keeps the previous journal."""

from __future__ import annotations

from pathlib import Path

import pytest

from router_tuner.config.loader import load_config
from router_tuner.executor.journal import Journal
from router_tuner.simulation.job import SimulationOptions, simulate
from router_tuner.simulation.markets import synthetic_markets
from router_tuner.simulation.recording import write_journal
from router_tuner.tuner.factory import build_grid


def _counts(path: Path) -> dict[str, int]:
    with Journal(path, readonly=True) as journal:
        return {kind: journal.count(kind) for kind in ("router", "shadow")}


def test_an_interrupted_write_keeps_the_previous_journal_whole(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """Ctrl-C during the write used to leave the first policies' events only, read later as a whole run."""
    config = load_config()
    options = SimulationOptions(symbols=("BTCUSDT",), orders_per_symbol=20, seed=3, data_dir=None, learners=("ucb",))
    result = simulate(config, synthetic_markets(config, options.symbols, options.seed), options,
                      build_grid(config.tuner, config.router), data_source="synthetic")
    path = write_journal(result, tmp_path)
    before = _counts(path)
    assert before["router"] > 0
    append_many = Journal.append_many

    def interrupted(self: Journal, events: list) -> None:
        append_many(self, events)  # the first batch is committed to the temporary file, then the stop comes
        raise KeyboardInterrupt

    monkeypatch.setattr(Journal, "append_many", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_journal(result, tmp_path)
    assert _counts(path) == before
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []  # no temporary left
    monkeypatch.setattr(Journal, "append_many", append_many)
    assert _counts(write_journal(result, tmp_path)) == before  # and a complete rewrite gives the same
