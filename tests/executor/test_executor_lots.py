"""Lot rounding at the executor: no order reaches the venue under its min notional or over a cap.

BTCUSDT's lot (0.001) is worth about 60 USD on the paper market, against a 100 USD floor: a 115 USD gross
rounded down became a 60 USD order. Now it is rounded up when every cap allows, else vetoed with the floor,
lot and price named.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import router_tuner.risk.screener as screener_module
from router_tuner.risk.checks import RiskDecision, check_order
from router_tuner.risk.context import RiskContext
from router_tuner.risk.exposure import is_reducing
from tests.executor.test_executor import SpyVenue
from tests.executor.test_executor_support import build_executor, executor_config, intent, make_paper_venue


def _capped(max_order_usd: float):
    config = executor_config()
    return msgspec.structs.replace(config, risk=msgspec.structs.replace(config.risk,
                                                                        max_order_notional_usd=max_order_usd))


@pytest.mark.parametrize("hint", [110.0, 115.0, 119.0])
def test_a_hint_one_lot_over_the_floor_is_rounded_up_not_sent_under_it(tmp_path: Path, hint: float) -> None:
    config = executor_config()
    venue = SpyVenue(make_paper_venue(config), {})
    executor, journal, store = build_executor(config, venue, tmp_path)
    executor.start()
    executor.process(intent("b1", size_hint_usd=hint))
    first = venue.placed[0]
    mid = venue.top_of_book("BTCUSDT").mid
    assert first.qty == 0.002 and first.qty * mid >= config.risk.min_notional_usd("BTCUSDT")
    assert store.submissions()["b1"].qty == 0.002 and journal.count("veto") == 0


def test_rounding_up_past_a_cap_is_a_veto_naming_floor_lot_and_price(tmp_path: Path) -> None:
    config = _capped(115.0)
    venue = SpyVenue(make_paper_venue(config), {})
    executor, journal, store = build_executor(config, venue, tmp_path)
    executor.start()
    executor.process(intent("b1", size_hint_usd=500.0))
    assert venue.placed == [] and store.submissions() == {}
    [veto] = list(journal.read("veto"))
    [reason] = veto.reasons
    assert reason.code == "lot_rounding_below_min_notional" and reason.threshold == 100.0
    assert reason.observed == pytest.approx(0.001 * venue.top_of_book("BTCUSDT").mid)
    assert reason.detail.startswith("risk_limits.min_notional.per_symbol_usd.BTCUSDT: 115 USD on lot 0.001 at ")
    assert "breaks order_gt_max_notional" in reason.detail
    assert veto.context["stage"] == "lot" and veto.context["blocked_by"] == ["order_gt_max_notional"]


def test_a_reducing_order_is_not_rounded_up_over_its_leg(tmp_path: Path) -> None:
    config = executor_config()
    executor, journal, _ = build_executor(config, make_paper_venue(config), tmp_path)
    executor.start()
    executor.process(intent("b1", size_hint_usd=300.0))
    held = executor.portfolio.legs[("BTCUSDT", "LONG")].qty
    executor.process(intent("s1", side="sell", reduce_only=True, size_hint_usd=90.0))
    sold = next(e for e in journal.read("router") if e.intent_id == "s1")
    assert sold.qty == 0.001 < held  # under the floor, as reduce-only may be; never over the hint's lot


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.function_scoped_fixture])
@given(hints=st.lists(st.floats(0.0, 1_500.0) | st.floats(95.0, 125.0), min_size=1, max_size=12),
       max_order_usd=st.sampled_from([25_000.0, 150.0, 115.0]),
       sides=st.lists(st.sampled_from(["buy", "sell", "reduce"]), min_size=12, max_size=12))
def test_no_order_reaching_the_venue_is_under_the_floor_or_over_a_cap(
        tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch, hints: list[float],
        max_order_usd: float, sides: list[str]) -> None:
    config = _capped(max_order_usd)
    checks: dict[str, list[tuple[RiskContext, RiskDecision]]] = defaultdict(list)
    venue = SpyVenue(make_paper_venue(config), checks)
    executor, journal, store = build_executor(config, venue, tmp_path_factory.mktemp("lots"))

    def spy(intent_, gross_usd, ctx, limits):
        decision = check_order(intent_, gross_usd, ctx, limits)
        checks[intent_.intent_id].append((ctx, decision))
        return decision

    with monkeypatch.context() as patch:
        patch.setattr(screener_module, "check_order", spy)
        executor.start()
        for k, hint in enumerate(hints):
            symbol = ("BTCUSDT", "ETHUSDT")[k % 2]
            how = sides[k]
            side, position_side = ("buy", "LONG") if how != "sell" else ("sell", "SHORT")
            if how == "reduce":
                side = "sell"
            executor.process(intent(f"p{k}", symbol=symbol, side=side, position_side=position_side,
                                    reduce_only=how == "reduce", size_hint_usd=hint))
    submissions = store.submissions()
    first_legs = {r.client_order_id.rsplit("-", 1)[0]: r for r in venue.placed if r.client_order_id.endswith("-1")}
    assert set(first_legs) == set(submissions)
    for intent_id, submission in submissions.items():
        assert first_legs[intent_id].qty == submission.qty
        sent = submission.intent
        ctx = checks[intent_id][-1][0]
        notional = submission.qty * (submission.arrival_bid + submission.arrival_ask) / 2
        if not is_reducing(sent):
            assert notional >= config.risk.min_notional_usd(sent.symbol), (intent_id, notional)
            assert not check_order(sent, notional, ctx, config.risk).veto, (intent_id, notional)
    assert journal.count("trade") == len(hints)
