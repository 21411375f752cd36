"""A property over arbitrary decodable intents and executor states: the executor never raises, and every
intent ends in exactly one journal record (a RouterEvent or a VetoEvent) with its trade record; an intent
repeated with the same content adds nothing, one repeated with other content adds one duplicate veto.

"Decodable" is what ``router.events.Intent`` lets through (``executor.intents`` decodes JSON lines with it,
a strategy in-process builds one): any strings, any floats (an in-process intent may carry NaN or inf), any
integer time (JSON decodes integers beyond int64, which the journal cannot hold), flags in any combination.
States: one-way or hedge mode, a small or large wallet, and positions opened beforehand."""

from __future__ import annotations

import math
from collections import Counter

import msgspec
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from router_tuner.executor.duplicates import intent_digest
from router_tuner.router.events import Intent
from tests.executor.test_executor_support import T0_NS, build_executor, executor_config, intent, make_paper_venue

SYMBOLS = ["BTCUSDT", "ETHUSDT", "BTCUSDC", "BTCUSDT_SPOT", "BTCUSD_PERP", "DOGEUSDT"]
IDS = ["a", "b", "c"]  # a few ids drawn often, so repeats (same or other content) happen
# a traded symbol spelled as a careless producer does (case, spaces, a control character, a Cyrillic T)
ODD_SYMBOLS = [" BTCUSDT", "btcusdt", "BTCUSDT\n", "BTCUSDT\x00", "BTCUSD\u0422", ""]
# ids next to another id, a stop's reserved prefix, a duplicate's derived id, a client-id digest's shape
ODD_IDS = ["a ", " a", "A", "psl-", "ptp-x", "a~dup-0", "h" + "0" * 24]
LONG_TEXT = st.text(min_size=5_000, max_size=10_000)  # ids, tiers and strategies of 10k characters


def arbitrary_intents() -> st.SearchStrategy[Intent]:
    """Any decodable intent (plus non-finite hints, which an in-process intent may carry)."""
    return st.builds(
        Intent,
        intent_id=st.sampled_from(IDS + ODD_IDS) | st.text(max_size=80) | LONG_TEXT,
        symbol=st.sampled_from(SYMBOLS + ODD_SYMBOLS) | st.text(max_size=12),
        side=st.sampled_from(["buy", "sell"]),
        size_hint_usd=st.sampled_from([0.0, 99.9, 110.0, 300.0, 5_000.0]) | st.floats(allow_nan=True),
        tier=st.sampled_from(["CORE", "SPOT", "core", " CORE", ""]) | st.text(max_size=8) | LONG_TEXT,
        strategy=st.text(max_size=8) | LONG_TEXT,
        reduce_only=st.booleans(),
        close_position=st.booleans(),
        position_side=st.sampled_from(["BOTH", "LONG", "SHORT"]),
        is_stop=st.booleans(),
        ts_ns=st.sampled_from([T0_NS, -5, 9 * 10**18, 2**63, -(2**63) - 1, 10**40]) | st.integers(),
    )


@st.composite
def tradeable_intents(draw: st.DrawFn, hedge: bool) -> Intent:
    """Intents the executor may route in ``hedge`` or one-way mode: opening, reducing, closing, stops."""
    side = draw(st.sampled_from(["buy", "sell"]))
    reducing = draw(st.sampled_from([False, False, True]))
    if hedge:
        position_side = ("SHORT" if side == "buy" else "LONG") if reducing else ("LONG" if side == "buy" else "SHORT")
    else:
        position_side = "BOTH"
    close = reducing and draw(st.booleans())
    return Intent(intent_id=draw(st.sampled_from(IDS) | st.text(min_size=1, max_size=8)),
                  symbol=draw(st.sampled_from(["BTCUSDT", "ETHUSDT"])), side=side,
                  size_hint_usd=draw(st.sampled_from([0.0, 110.0, 300.0]) | st.floats(0.0, 3_000.0)), tier="CORE",
                  strategy="prop", reduce_only=reducing and not close and not hedge, close_position=close,
                  position_side=position_side, is_stop=reducing and draw(st.booleans()), ts_ns=T0_NS)


def intents(hedge: bool) -> st.SearchStrategy[Intent]:
    """Three in four tradeable, so that routes, fills and reductions happen between the poison."""
    return st.integers(0, 3).flatmap(lambda k: arbitrary_intents() if k == 0 else tradeable_intents(hedge))


def _same(a: Intent, b: Intent) -> bool:
    """Same content as the executor sees it (NaN hints equal themselves in the encoded form)."""
    return intent_digest(a) == intent_digest(b)


@settings(max_examples=80, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(data=st.data(), hedge=st.booleans(), wallet_usd=st.sampled_from([10_000.0, 150.0, 2_000_000.0]),
       opened=st.integers(0, 3))
def test_any_decodable_intent_ends_in_exactly_one_journal_record(
        tmp_path_factory: pytest.TempPathFactory, data: st.DataObject, hedge: bool, wallet_usd: float,
        opened: int) -> None:
    stream = data.draw(st.lists(intents(hedge), min_size=1, max_size=12), label="stream")
    config = executor_config(position_mode="hedge" if hedge else "one_way")
    config = msgspec.structs.replace(config, executor=msgspec.structs.replace(config.executor,
                                                                              starting_wallet_usd=wallet_usd))
    executor, journal, _ = build_executor(config, make_paper_venue(config), tmp_path_factory.mktemp("any"))
    executor.start()
    for k in range(opened):  # the state: positions opened before the stream
        executor.process(intent(f"open{k}", symbol=("BTCUSDT", "ETHUSDT")[k % 2], size_hint_usd=300.0,
                                position_side="LONG" if hedge else "BOTH"))
    before = {kind: journal.count(kind) for kind in ("router", "veto", "trade")}
    first: dict[str, Intent] = {}
    expected_records = 0
    conflicts: set[bytes] = set()
    for item in stream:
        record = executor.process(item)  # never raises
        seen = first.get(item.intent_id)
        if seen is None:
            first[item.intent_id] = item
            expected_records += 1
            assert record is not None and record.intent_id == item.intent_id
        elif _same(seen, item) or intent_digest(item) in conflicts:
            assert record is None
        else:
            conflicts.add(intent_digest(item))
            expected_records += 1
            assert record is not None and record.intent_id.startswith(item.intent_id + "~dup-")
    routed = [e.intent_id for e in journal.read("router")][before["router"]:]
    vetoed = [v.intent.intent_id for v in journal.read("veto")][before["veto"]:]
    traded = [t.intent_id for t in journal.read("trade")][before["trade"]:]
    assert len(routed) + len(vetoed) == len(traded) == expected_records
    assert Counter(routed + vetoed) == Counter(traded) and max(Counter(traded).values(), default=1) == 1
    for trade in journal.read("trade"):
        assert math.isfinite(trade.suggested_gross_usd) and math.isfinite(trade.clamped_gross_usd)
    event(f"routed {len(routed)}, vetoed {len(vetoed)}")
    journal.close()
    executor.store.close()
