"""Fixtures of the venue tests: the Binance USDⓈ-M REST fake with its user data stream, per test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fakes.binance_usdm import FakeBinanceUsdm
from tests.fakes.binance_user_ws import FakeUserDataStream
from tests.venues.stream_support import API_KEY, API_SECRET, Fakes


@pytest.fixture()
def fakes() -> Iterator[Fakes]:
    with FakeBinanceUsdm(API_KEY, API_SECRET) as rest, FakeUserDataStream(rest) as stream:
        rest.set_book("BTCUSDT", "60000.0", "2", "60000.1", "2")
        yield Fakes(rest, stream)
