"""Fixtures of the venue tests: the Binance USDⓈ-M REST fake (alone, or with its user data stream) and the ccxt venue
connected to it as the live engine wires it, per test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from router_tuner.executor.engine.live import LoopVenue
from tests.fakes.binance_usdm import FakeBinanceUsdm
from tests.fakes.binance_user_ws import FakeUserDataStream
from tests.venues.ccxt_support import Connect, LiveVenue, RecordedSleeps, open_live
from tests.venues.stream_support import API_KEY, API_SECRET, Fakes


@pytest.fixture()
def fakes() -> Iterator[Fakes]:
    with FakeBinanceUsdm(API_KEY, API_SECRET) as rest, FakeUserDataStream(rest) as stream:
        rest.set_book("BTCUSDT", "60000.0", "2", "60000.1", "2")
        yield Fakes(rest, stream)


@pytest.fixture()
def fake() -> Iterator[FakeBinanceUsdm]:
    """The REST fake with books on two quotes of BTC and on BNB (a fee asset)."""
    with FakeBinanceUsdm(API_KEY, API_SECRET) as server:
        server.set_book("BTCUSDT", "60000.0", "1.5", "60000.1", "2.0")
        server.set_book("BTCUSDC", "59990.0", "1.0", "59990.1", "1.0")
        server.set_book("BNBUSDT", "500.00", "10", "500.10", "10")
        yield server


@pytest.fixture()
def sleeps() -> RecordedSleeps:
    """The back-off waits of every venue ``connect`` opens."""
    return RecordedSleeps()


@pytest.fixture()
def connect(fake: FakeBinanceUsdm, sleeps: RecordedSleeps) -> Iterator[Connect]:
    """Opens a venue on ``fake`` (``open_live``'s keywords); each is closed when the test ends."""
    opened: list[LiveVenue] = []

    def open_one(**kw: object) -> LiveVenue:
        live = open_live(fake, sleeps, **kw)  # type: ignore[arg-type]
        opened.append(live)
        return live

    yield open_one
    for live in opened:
        live.loop.close()


@pytest.fixture()
def venue(connect: Connect) -> LoopVenue:
    """The executor's blocking view of a venue connected to ``fake`` in one-way mode."""
    return connect().venue
