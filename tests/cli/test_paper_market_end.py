"""A paper run whose market (``paper.duration_s`` of synthetic market, or ``--tape`` recordings) runs out before its
intents: no intent is admitted past the end, the run says so (exit 1) and the next run routes the rest.

It used to route every later intent into the empty replay: each journaled as an order "ended in an error", never to
be routed again (1486 of 3000 in one run), until a route left a leg unresolved and the executor halted.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from router_tuner.cli.main import RUNTIME_FAILURE
from router_tuner.executor.journal import Journal
from router_tuner.router.events import RouterEvent, VetoEvent
from tests.cli.test_cli_failures import one_line_failure
from tests.cli.test_live_cli import _intents
from tests.conftest import edit_config

N_INTENTS = 200


@pytest.fixture
def short_market(quiet_config: Path) -> Path:
    """Two seconds of synthetic market, and every intent let through the screener (so each one routes)."""
    edit_config(quiet_config, "executor.json", lambda data: data["paper"].update(duration_s=2.0))
    edit_config(quiet_config, "strategy_config.json", lambda data: data["screener"].update(
        orderbook_imbalance_gate=0.0, require_imbalance_alignment=False))
    return quiet_config


def _live(tmp_path: Path, config: Path) -> list[str]:
    intents = tmp_path / "intents.jsonl"
    if not intents.exists():
        _intents(intents, N_INTENTS)
    return ["live", "--venue", "binanceusdm", "--config", str(config), "--intents", str(intents),
            "--journal", str(tmp_path / "journal.sqlite"), "--store", str(tmp_path / "store.sqlite"),
            "--idle-poll-s", "0.05"]


def _journaled(tmp_path: Path) -> tuple[list[RouterEvent], list[VetoEvent]]:
    with Journal(tmp_path / "journal.sqlite", readonly=True) as journal:
        return list(journal.read("router")), list(journal.read("veto"))  # type: ignore[arg-type]


def test_no_intent_is_routed_past_the_end_of_the_paper_market(
        tmp_path: Path, short_market: Path, capsys: pytest.CaptureFixture[str]) -> None:
    in_flight = 8  # executor.json engine.max_routes_in_flight: the routes working when the market ends
    errors: list[int] = []
    for run in range(2):
        line = one_line_failure(_live(tmp_path, short_market), capsys, RUNTIME_FAILURE)
        assert line.startswith(  # then, when a route in flight was left unsettled: "; … settled by it"
            "router-tuner live: paper market ended: executor.json paper.duration_s (2 s of synthetic market) ran out "
            "before the intents; the intents not read yet are routed by the next run, on a new paper market (give "
            "longer recordings or a longer duration)")
        routed, vetoed = _journaled(tmp_path)
        errors.append(sum(event.error is not None for event in routed))
        assert errors[-1] <= in_flight * (run + 1)  # only routes in flight at an end, never one admitted after it
        ids = [event.intent_id for event in routed] + [veto.intent.intent_id for veto in vetoed]
        assert len(ids) == len(set(ids)) < N_INTENTS  # each intent once; the rest left for the next run
    assert len(ids) > 0 and errors[1] >= errors[0]
