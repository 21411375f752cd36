"""The executor's engine slots: at most ``max_routes_in_flight`` routes at once and ``max_routes_per_symbol``
on a symbol, intents held in their source meanwhile (backpressure), a reducing intent alone on its leg, and
``should_stop`` finishing the routes in flight without reading further intents."""

from __future__ import annotations

from pathlib import Path

import msgspec

from router_tuner.config.models import ConfigBundle
from router_tuner.executor.intents import QueueIntentSource
from router_tuner.executor.loop import Admission, Executor, Flight
from router_tuner.router.events import Intent
from tests.executor.test_executor_support import build_executor, executor_config, intent, make_paper_venue


def config(in_flight: int, per_symbol: int) -> ConfigBundle:
    base = executor_config(max_positions=4)
    executor = msgspec.structs.replace(
        base.executor, starting_wallet_usd=1e8,
        engine=msgspec.structs.replace(base.executor.engine, max_routes_in_flight=in_flight,
                                       max_routes_per_symbol=per_symbol))
    return msgspec.structs.replace(base, executor=executor)


class WatchedExecutor(Executor):
    """Notes, at each admission, how many routes work overall, per symbol and per leg (and which reduce)."""

    def _submit(self, admitted: Admission) -> Flight:
        flight = super()._submit(admitted)
        flights = [f.admission.submission.intent for f in self._flights.values()]
        self.seen.append((len(flights), {s: sum(i.symbol == s for i in flights) for s in ("BTCUSDT", "ETHUSDT")},
                          [(i.symbol, i.position_side, i.reduce_only or i.close_position) for i in flights]))
        return flight

    seen: list[tuple[int, dict[str, int], list[tuple[str, str, bool]]]]
    trades = 0


def run(tmp_path: Path, bundle: ConfigBundle, batch: list[Intent], stop_after: int | None = None) -> WatchedExecutor:
    venue = make_paper_venue(bundle)
    executor, journal, store = build_executor(bundle, venue, tmp_path)
    executor.__class__ = WatchedExecutor
    assert isinstance(executor, WatchedExecutor)
    executor.seen = []
    source = QueueIntentSource()
    for item in batch:
        source.put(item)
    source.close()
    with journal, store:
        executor.start()
        executor.run(source, idle_poll_s=0.0, should_stop=lambda: stop_after is not None
                     and len(executor.seen) >= stop_after, on_idle=None)
        executor.trades = journal.count("trade")
    return executor


def opens(count: int) -> list[Intent]:
    return [intent(f"o{i}", symbol="BTCUSDT" if i % 3 else "ETHUSDT", side="buy" if i % 2 else "sell",
                   position_side="LONG" if i % 2 else "SHORT", size_hint_usd=300.0) for i in range(count)]


def test_routes_in_flight_and_per_symbol_never_exceed_their_slots(tmp_path: Path) -> None:
    executor = run(tmp_path, config(in_flight=5, per_symbol=3), opens(30))
    assert executor.trades == 30
    assert max(total for total, _, _ in executor.seen) == 5  # the slots were used, never exceeded
    assert max(count for _, per_symbol, _ in executor.seen for count in per_symbol.values()) == 3


def test_one_slot_is_the_sequential_engine(tmp_path: Path) -> None:
    executor = run(tmp_path, config(in_flight=1, per_symbol=1), opens(6))
    assert [total for total, _, _ in executor.seen] == [1] * len(executor.seen) and executor.trades == 6


def test_a_reducing_intent_routes_alone_on_its_leg(tmp_path: Path) -> None:
    batch = [intent("l1", size_hint_usd=300.0), intent("l2", size_hint_usd=300.0),
             intent("c1", side="sell", close_position=True, size_hint_usd=300.0),
             intent("l3", size_hint_usd=300.0), intent("s1", side="sell", position_side="SHORT", size_hint_usd=300.0)]
    executor = run(tmp_path, config(in_flight=8, per_symbol=8), batch)
    assert executor.trades == 5
    for _, _, working in executor.seen:
        on_long = [reducing for symbol, side, reducing in working if (symbol, side) == ("BTCUSDT", "LONG")]
        assert not any(on_long) or len(on_long) == 1  # a close of the LONG leg never shares it


def test_should_stop_finishes_the_routes_in_flight_and_reads_no_more(tmp_path: Path) -> None:
    executor = run(tmp_path, config(in_flight=4, per_symbol=4), opens(20), stop_after=4)
    assert len(executor.seen) == 4 and executor.routes_in_flight == 0
    assert executor.trades == 4  # the four admitted were journaled; the rest wait
