"""Venue rejects other than post-only (margin, reduce-only, min notional, bad quantity), on the first leg or
on the fallback: each intent ends as one journaled RouterEvent whose error names the reject, positions
equal the venue's, and the loop goes on."""

from __future__ import annotations

from pathlib import Path

import pytest

from router_tuner.router.venue import BelowMinNotional, InsufficientMargin, InvalidOrder, ReduceOnlyRejected, VenueError
from tests.executor.test_executor_support import (
    build_executor,
    executor_config,
    intent,
    make_paper_venue,
    static_policies,
)
from tests.fakes.faulty_venue import FaultRates, FaultyVenue

NO_FAULTS = FaultRates(rate_limit=0.0, timeout_before=0.0, timeout_after=0.0, post_only_reject=0.0, disconnect=0.0,
                       cancel_answer_lost=0.0)
REJECTS = [InsufficientMargin("-2019 Margin is insufficient."),
           ReduceOnlyRejected("-2022 ReduceOnly Order is rejected."),
           BelowMinNotional("-4164 Order's notional must be no smaller than 100"),
           InvalidOrder("-1111 Precision is over the maximum defined for this asset.")]


@pytest.mark.parametrize("reject", REJECTS, ids=lambda e: type(e).__name__)
@pytest.mark.parametrize("leg", ["first", "fallback"])
def test_a_reject_ends_as_a_journaled_event_naming_it_and_the_loop_goes_on(tmp_path: Path, reject: VenueError,
                                                                        leg: str) -> None:
    config = executor_config()
    inner = make_paper_venue(config)
    venue = FaultyVenue(inner, NO_FAULTS, seed=1)
    # a maker leg that rests unfilled for 1 ms, then the taker fallback
    policies = static_policies(config, maker_ttl_ms=1.0, maker_offset_bps=50.0, taker_bias=0.0)
    executor, journal, store = build_executor(config, venue, tmp_path, policy_for=policies)
    executor.start()
    venue.reject_next(reject, taker_only=leg == "fallback")
    executor.process(intent("r1", size_hint_usd=300.0))
    executor.process(intent("ok", size_hint_usd=300.0))
    events = {e.intent_id: e for e in journal.read("router")}
    assert [t.intent_id for t in journal.read("trade")] == ["r1", "ok"] and journal.count("veto") == 0
    rejected = events["r1"]
    assert rejected.error is not None and f"{type(reject).__name__}: {reject}" in rejected.error
    assert rejected.fills == () and rejected.filled_qty == 0.0
    assert rejected.used_fallback == (leg == "fallback") and rejected.started_maker
    if leg == "first":
        assert rejected.outcome == "rejected"
    assert events["ok"].error is None and events["ok"].filled_qty > 0
    long_qty = sum(f.qty for e in events.values() for f in e.fills)
    assert inner.positions("BTCUSDT").get("LONG", 0.0) == pytest.approx(long_qty, abs=1e-12)
    assert inner.open_orders(None) == () and "r1" in store.submissions()
