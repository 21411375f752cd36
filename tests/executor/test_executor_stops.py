"""Stops in the executor: a stop intent that fills starts its symbol's ``cooldowns.after_stop_s``, during
which ``check_order`` refuses new exposure there (reducing orders and other symbols still go); the cooldown
survives a restart; a stop that does not reduce, or does not fill, starts nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from router_tuner.risk.units import NS_PER_S
from router_tuner.router.events import TradeRecord
from tests.executor.test_executor_support import (
    build_executor,
    executor_config,
    intent,
    make_paper_venue,
    static_policies,
)


def codes(trade: TradeRecord | None) -> tuple[str, ...]:
    assert trade is not None
    return tuple(r.code for r in trade.veto_reasons)


@pytest.fixture
def setup(tmp_path: Path):
    config = executor_config(duration_s=3_600.0)
    venue = make_paper_venue(config)
    executor, journal, store = build_executor(config, venue, tmp_path,
                                              policy_for=static_policies(config, taker_bias=1.0))
    executor.start()
    return config, venue, executor, journal, store


def test_a_filled_stop_refuses_new_exposure_for_the_cooldown_then_accepts(setup) -> None:
    config, venue, executor, _journal, _store = setup
    after_stop_s = config.risk.cooldowns.after_stop_s
    assert codes(executor.process(intent("open", size_hint_usd=300.0))) == ()
    venue.clock.sleep_until(venue.clock.now_ns() + 5 * NS_PER_S)
    stop = executor.process(intent("stop", side="sell", size_hint_usd=300.0, reduce_only=True, is_stop=True))
    assert codes(stop) == () and stop.filled_qty > 0
    (stop_event,) = [e for e in executor.journal.read("router") if e.intent_id == "stop"]
    stopped_ns = max(f.ts_ns for f in stop_event.fills)
    assert executor.portfolio.last_stop_ns == {"BTCUSDT": stopped_ns}

    assert codes(executor.process(intent("again", size_hint_usd=300.0))) == ("cooldown_after_stop",)
    (veto,) = [v for v in executor.journal.read("veto") if v.intent.intent_id == "again"]
    assert veto.reasons[0].threshold == after_stop_s
    assert codes(executor.process(intent("eth", symbol="ETHUSDT", size_hint_usd=300.0))) == ()  # other symbol
    venue.clock.sleep_until(stopped_ns + int((after_stop_s - 1.0) * NS_PER_S))
    assert codes(executor.process(intent("late", size_hint_usd=300.0))) == ("cooldown_after_stop",)
    venue.clock.sleep_until(stopped_ns + int(after_stop_s * NS_PER_S))
    assert codes(executor.process(intent("after", size_hint_usd=300.0))) == ()


def test_the_cooldown_survives_a_restart(setup, tmp_path: Path) -> None:
    config, venue, executor, journal, store = setup
    executor.process(intent("open", size_hint_usd=300.0))
    executor.process(intent("stop", side="sell", size_hint_usd=300.0, reduce_only=True, is_stop=True))
    stopped_ns = executor.portfolio.last_stop_ns["BTCUSDT"]
    journal.close()
    store.close()
    restarted, _, _ = build_executor(config, venue, tmp_path, policy_for=static_policies(config, taker_bias=1.0))
    restarted.start()
    assert restarted.portfolio.last_stop_ns == {"BTCUSDT": stopped_ns}
    assert codes(restarted.process(intent("again", size_hint_usd=300.0))) == ("cooldown_after_stop",)


def test_a_stop_that_does_not_reduce_is_vetoed_and_starts_nothing(setup) -> None:
    _config, _venue, executor, _journal, _store = setup
    # a sell on the LONG leg without reduce_only would be refused by the router anyway; a stop says so first
    trade = executor.process(intent("bad-stop", side="sell", position_side="LONG", is_stop=True))
    assert codes(trade) == ("stop_not_reducing",)
    (veto,) = executor.journal.read("veto")
    assert veto.reasons[0].observed == "sell LONG" and veto.context == {"stage": "executor"}
    assert executor.portfolio.last_stop_ns == {}
    assert codes(executor.process(intent("open", size_hint_usd=300.0))) == ()


def test_only_filled_stops_start_a_cooldown(setup) -> None:
    _config, _venue, executor, _journal, _store = setup
    # a stop with nothing to stop (flat leg) never reaches the venue: no fill, no cooldown
    assert codes(executor.process(intent("flat-stop", side="sell", reduce_only=True, is_stop=True))) != ()
    # an ordinary reducing order is not a stop
    executor.process(intent("open", size_hint_usd=300.0))
    assert codes(executor.process(intent("trim", side="sell", size_hint_usd=300.0, reduce_only=True))) == ()
    assert executor.portfolio.last_stop_ns == {}
    assert codes(executor.process(intent("reopen", size_hint_usd=300.0))) == ()


@pytest.mark.parametrize("intent_id", ["psl-BTCUSDT-L-1", "ptp-x"])
def test_an_intent_with_a_protective_stop_id_is_vetoed(setup, intent_id: str) -> None:
    """Such an id used to be routed: a restart that found its submission would take it for a stop and skip it."""
    _config, _venue, executor, _journal, _store = setup
    assert codes(executor.process(intent(intent_id, size_hint_usd=300.0))) == ("reserved_intent_id",)
    (veto,) = executor.journal.read("veto")
    assert veto.reasons[0].observed == intent_id and veto.reasons[0].threshold == "psl-/ptp-"
    assert codes(executor.process(intent("psl", size_hint_usd=300.0))) == ()  # only the prefix with its dash


@pytest.mark.parametrize("intent_id", ["", "a\nb", "x\x00y", "tab\there", "line\u2028sep"])
def test_an_intent_id_that_is_empty_or_not_printable_is_vetoed(setup, intent_id: str) -> None:
    """A newline or NUL in an id used to route: every log line naming the intent was split or cut there."""
    _config, _venue, executor, _journal, _store = setup
    assert codes(executor.process(intent(intent_id, size_hint_usd=300.0))) == ("invalid_intent_id",)
    (veto,) = executor.journal.read("veto")
    assert veto.reasons[0].observed == repr(intent_id)
    assert codes(executor.process(intent("ordinary id/with spaces", size_hint_usd=300.0))) == ()
