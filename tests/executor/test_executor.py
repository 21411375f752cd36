"""The executor loop: risk on one context, routing, positions and PnL, journaled outcomes, burst cap."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import msgspec
import pytest

import router_tuner.risk.screener as screener_module
from router_tuner.executor.intents import JsonlIntentSource, QueueIntentSource
from router_tuner.risk.checks import RiskDecision, check_order
from router_tuner.risk.context import RiskContext
from router_tuner.router.codec import to_json
from router_tuner.router.contract import ContractSpec
from router_tuner.router.events import Intent, TradeRecord
from router_tuner.router.venue import OrderRequest, OrderState
from tests.executor.test_executor_support import T0_NS, build_executor, executor_config, intent, make_paper_venue


class SpyVenue:
    """Records every order that reaches the venue, with the executor state at that moment."""

    def __init__(self, inner, checks: dict[str, list[tuple[RiskContext, RiskDecision]]]) -> None:
        self.inner, self.name, self.checks = inner, inner.name, checks
        self.placed: list[OrderRequest] = []
        self.unchecked: list[str] = []

    @property
    def clock(self):
        return self.inner.clock

    def contract(self, symbol: str) -> ContractSpec:
        return self.inner.contract(symbol)

    def place_order(self, request: OrderRequest) -> OrderState:
        self.placed.append(request)
        intent_id = request.client_order_id.rsplit("-", 1)[0]
        if not any(not decision.veto for _, decision in self.checks.get(intent_id, [])):
            self.unchecked.append(request.client_order_id)
        return self.inner.place_order(request)

    def __getattr__(self, name: str):
        return getattr(self.inner, name)


def _fills_by_leg(journal, store) -> dict[tuple[str, str], float]:
    submissions = store.submissions()
    legs: dict[tuple[str, str], float] = defaultdict(float)
    for event in journal.read("router"):
        side = submissions[event.intent_id].intent.position_side
        for fill in event.fills:
            legs[(event.symbol, side)] += fill.qty if event.side == "buy" else -fill.qty
    return {key: round(qty, 9) for key, qty in legs.items() if abs(qty) > 1e-12}


def test_every_order_at_the_venue_passed_check_order_with_a_full_context(tmp_path: Path, monkeypatch) -> None:
    config = executor_config()
    checks: dict[str, list[tuple[RiskContext, RiskDecision]]] = defaultdict(list)
    venue = SpyVenue(make_paper_venue(config), checks)
    executor, journal, _ = build_executor(config, venue, tmp_path)

    def spy(intent_, gross_usd, ctx, limits):
        rebuilt = RiskContext.from_state(executor.portfolio, symbol=intent_.symbol,
                                         universe=config.strategy.universe, now_ns=ctx.now_ns, working=())
        assert ctx == rebuilt, "the executor's context must be the one builder's, from the live portfolio"
        decision = check_order(intent_, gross_usd, ctx, limits)
        checks[intent_.intent_id].append((ctx, decision))
        return decision

    monkeypatch.setattr(screener_module, "check_order", spy)
    executor.start()
    for k in range(40):
        sell = k % 4 == 3
        executor.process(intent(f"s{k}", symbol=("BTCUSDT", "ETHUSDT")[k % 2], side="sell" if sell else "buy",
                                reduce_only=sell, size_hint_usd=400.0))
    assert venue.placed, "the run must reach the venue"
    assert venue.unchecked == []
    routed = {e.intent_id for e in journal.read("router")}
    assert routed == {i for i, calls in checks.items() if not calls[-1][1].veto}


def test_positions_pnl_and_journal_agree_with_the_venue(tmp_path: Path) -> None:
    config = executor_config()
    venue = make_paper_venue(config)
    executor, journal, store = build_executor(config, venue, tmp_path)
    executor.start()
    for k in range(12):
        executor.process(intent(f"b{k}", size_hint_usd=300.0))
        if k % 3 == 2:
            executor.process(intent(f"c{k}", side="sell", close_position=True, size_hint_usd=0.0))
    events = list(journal.read("router"))
    trades = {t.intent_id: t for t in journal.read("trade")}
    assert len(trades) == journal.count("router") + journal.count("veto") == 16
    for event in events:
        reducing = event.intent_id.startswith("c")
        assert (event.realized_pnl_usd is not None) == (reducing and event.filled_qty > 0)
        trade = trades[event.intent_id]
        assert trade.filled_qty == event.filled_qty and trade.realized_pnl_usd == event.realized_pnl_usd
        assert trade.fees_usd == pytest.approx(sum(f.fee_usd for f in event.fills))
        assert trade.clamped_gross_usd <= trade.suggested_gross_usd * (1 + 1e-9)
    ours = {key: round(leg.qty, 9) for key, leg in executor.portfolio.legs.items()}
    assert ours == _fills_by_leg(journal, store)
    venue_legs = {("BTCUSDT", side): round(qty, 9) for side, qty in venue.positions("BTCUSDT").items() if qty}
    assert venue_legs == ours
    realized = sum(e.realized_pnl_usd for e in events if e.realized_pnl_usd is not None)
    opening_fees = sum(f.fee_usd for e in events if e.realized_pnl_usd is None for f in e.fills)
    assert executor.portfolio.wallet_balance_usd == pytest.approx(
        config.executor.starting_wallet_usd + realized - opening_fees)


def test_realized_pnl_is_average_cost_net_of_fees(tmp_path: Path) -> None:
    config = executor_config()
    executor, journal, _ = build_executor(config, make_paper_venue(config), tmp_path)
    executor.start()
    for k in range(3):
        executor.process(intent(f"b{k}", size_hint_usd=300.0))
    events = list(journal.read("router"))
    qty = sum(f.qty for e in events for f in e.fills)
    entry = sum(f.qty * f.price for e in events for f in e.fills) / qty
    executor.process(intent("close", side="sell", close_position=True, size_hint_usd=0.0))
    close = next(e for e in journal.read("router") if e.intent_id == "close")
    assert close.filled_qty == pytest.approx(qty)
    expected = sum(f.qty * (f.price - entry) - f.fee_usd for f in close.fills)
    assert close.realized_pnl_usd == pytest.approx(expected)


def test_vetoes_are_journaled_with_reasons_and_nothing_is_sent(tmp_path: Path) -> None:
    config = executor_config()
    venue = SpyVenue(make_paper_venue(config), {})
    executor, journal, store = build_executor(config, venue, tmp_path)
    executor.start()
    executor.process(intent("unknown", symbol="DOGEUSDT"))
    executor.process(intent("nothing", side="sell", reduce_only=True))
    executor.process(msgspec.structs.replace(intent("wrong-tier", size_hint_usd=300.0), tier="SPOT"))
    assert venue.placed == []
    vetoes = {v.intent.intent_id: v for v in journal.read("veto")}
    assert [r.code for r in vetoes["unknown"].reasons] == ["symbol_not_tradable"]
    assert [r.code for r in vetoes["nothing"].reasons] == ["nothing_to_reduce"]
    assert "intent_tier_mismatch" in [r.code for r in vetoes["wrong-tier"].reasons]
    for veto in vetoes.values():
        to_json(veto)  # contexts are JSON-exact
    trades = {t.intent_id: t for t in journal.read("trade")}
    assert all(trades[i].veto_reasons == vetoes[i].reasons and trades[i].filled_qty == 0 for i in vetoes)
    assert store.submissions() == {}


def test_an_intent_is_processed_once_and_nothing_runs_before_start(tmp_path: Path) -> None:
    config = executor_config()
    executor, journal, _ = build_executor(config, make_paper_venue(config), tmp_path)
    with pytest.raises(RuntimeError, match="start"):
        executor.process(intent("early"))
    executor.start()
    assert isinstance(executor.process(intent("once", size_hint_usd=300.0)), TradeRecord)
    assert executor.process(intent("once", size_hint_usd=300.0)) is None
    assert journal.count("trade") == 1


def test_burst_of_1000_intents_in_one_tick_never_opens_more_than_the_cap(tmp_path: Path) -> None:
    cap = 2
    config = executor_config(max_positions=cap)
    venue = make_paper_venue(config)
    executor, journal, _ = build_executor(config, venue, tmp_path)
    executor.start()
    combos = [("BTCUSDT", "buy", "LONG"), ("ETHUSDT", "buy", "LONG"), ("BTCUSDT", "sell", "SHORT"),
              ("ETHUSDT", "sell", "SHORT")]
    most_open = 0
    for k in range(1000):
        symbol, side, position_side = combos[k % 4]
        executor.process(intent(f"burst{k}", symbol=symbol, side=side, position_side=position_side,
                                size_hint_usd=150.0, ts_ns=T0_NS))
        venue_open = sum(1 for s in ("BTCUSDT", "ETHUSDT") for qty in venue.positions(s).values() if qty)
        assert len(executor.portfolio.legs) <= cap and venue_open <= cap
        most_open = max(most_open, venue_open)
    assert most_open == cap
    codes = {r.code for v in journal.read("veto") for r in v.reasons}
    assert "max_concurrent_positions" in codes
    assert journal.count("trade") == 1000


def test_jsonl_and_queue_sources_feed_the_loop(tmp_path: Path) -> None:
    config = executor_config()
    executor, journal, _ = build_executor(config, make_paper_venue(config), tmp_path)
    executor.start()
    path = tmp_path / "intents.jsonl"
    path.write_bytes(b"".join(to_json_intent(intent(f"f{k}", size_hint_usd=200.0)) + b"\n" for k in range(3)))
    source = JsonlIntentSource(path, follow=False)
    assert executor.run(source, idle_poll_s=0.0, should_stop=lambda: False, on_idle=None) == 3
    queue = QueueIntentSource()
    queue.put(intent("q1", size_hint_usd=200.0))
    queue.close()
    assert executor.run(queue, idle_poll_s=0.01, should_stop=lambda: False, on_idle=None) == 1
    assert {t.intent_id for t in journal.read("trade")} == {"f0", "f1", "f2", "q1"}


def test_bad_intent_line_is_an_error_naming_the_line(tmp_path: Path) -> None:
    path = tmp_path / "intents.jsonl"
    path.write_bytes(to_json_intent(intent("ok")) + b"\n" + b'{"intent_id": "x"}\n')
    source = JsonlIntentSource(path, follow=False)
    assert source.next_intent(0.0) is not None
    with pytest.raises(ValueError, match=r"intents\.jsonl:2"):
        source.next_intent(0.0)


def to_json_intent(value: Intent) -> bytes:
    return msgspec.json.encode(value)


def test_router_events_name_the_policy_they_ran_under(tmp_path: Path) -> None:
    config = executor_config()
    executor, journal, _ = build_executor(config, make_paper_venue(config), tmp_path)
    executor.start()
    executor.process(intent("x1", size_hint_usd=300.0))
    [event] = list(journal.read("router"))
    assert (event.policy_id, event.arm, event.propensity) == ("static-BTCUSDT", "static", 1.0)
    assert event.error is None and event.outcome in ("filled", "partial", "unfilled")


def test_a_poison_size_hint_is_a_journaled_veto_and_the_loop_goes_on(tmp_path: Path) -> None:
    config = executor_config()
    venue = SpyVenue(make_paper_venue(config), {})
    executor, journal, _store = build_executor(config, venue, tmp_path)
    executor.start()
    executor.process(intent("poison", size_hint_usd=-500.0))
    assert venue.placed == []
    executor.process(intent("after", size_hint_usd=300.0))
    vetoes = {v.intent.intent_id: v for v in journal.read("veto")}
    assert [r.code for r in vetoes["poison"].reasons] == ["invalid_size_hint"]
    assert {t.intent_id for t in journal.read("trade")} == {"poison", "after"}
