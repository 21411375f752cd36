"""Market data for simulation: the columnar ``MarketTape``, its loaders (recorded Binance streams, the
project's Parquet format) and a seeded synthetic generator with a known fill-probability curve."""

from router_tuner.router.market.tape import MarketTape

__all__ = ["MarketTape"]
