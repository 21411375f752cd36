"""The markets the main job replays: recorded Binance tapes by default, the synthetic market otherwise.

Each tape is relabelled with our symbol name (``BTCUSDT_SPOT`` for the spot pair, as in
``strategy_config.json``), so policies, events and reports speak one name per instrument. Each market's
venue tables (:class:`~router.venues.sim.book.TapeBook`) are built once here and shared, read-only, by
every venue replay of it (every lane of every policy). A missing
data directory is not an error: the synthetic market is used and the caller says so loudly.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from router_tuner.config.models import ConfigBundle, Market, SimFillModel, SimulationConfig
from router_tuner.router.contract import ContractSpec
from router_tuner.router.market.recordings import LAYOUTS, discover_recordings, read_recorded
from router_tuner.router.market.summary import LoadSummary
from router_tuner.router.market.synthetic import SyntheticMarketSpec, generate
from router_tuner.router.market.tape import MarketTape
from router_tuner.router.venues.sim.book import TapeBook
from router_tuner.router.venues.sim.config import SimVenueConfig
from router_tuner.router.venues.sim.queue import PowerProbQueue


@dataclass(frozen=True, slots=True)
class SimMarket:
    """One instrument to simulate: its venue tables (under our symbol), market, quote and order-size facts.

    ``book`` is built once per market and shared by every venue that replays it; ``tape`` is its
    read-only tape. ``contract`` is the symbol's ``strategy_config.json`` universe entry, the one source
    of what a quantity is worth (:func:`router.contract.notional_usd`).
    """

    symbol: str
    market: Market
    quote: str
    book: TapeBook
    qty_step: float
    contract: ContractSpec
    source: str
    data_summary: LoadSummary | None
    """What the recording's load used and skipped per stream; ``None`` for a synthetic market."""

    @property
    def tape(self) -> MarketTape:
        return self.book.tape

    @property
    def contract_value_usd(self) -> float | None:
        """USD per contract on inverse (COIN-M) contracts, whose quantities are contract counts; else ``None``."""
        return self.contract.contract_size if self.contract.contract_type == "inverse" else None

    def tick_bps(self) -> float:
        """One price tick in bps of the tape's median mid (a BTC recording's is 0.02, a coin at 0.05 quoted in
        0.00001 has 2): how far apart the prices a post-only order can rest at are."""
        tape = self.tape
        return tape.tick_size * tape.price_scale / tape.median_mid() * 1e4

    def mid_at(self, ts_ns: np.ndarray) -> np.ndarray:
        """Mid price of the last quote at or before each time (the first quote before the tape starts)."""
        tape = self.tape
        i = np.clip(np.searchsorted(tape.quote_ts_ns, ts_ns, side="right") - 1, 0, len(tape.quote_ts_ns) - 1)
        return (tape.bid_px[i] + tape.ask_px[i]) / (2.0 * tape.price_scale)


_QUOTES = ("FDUSD", "USDT", "USDC", "TUSD", "USDP", "BUSD", "DAI", "AEUR", "EURI", "EUR", "TRY", "BRL", "JPY", "BTC",
           "ETH", "BNB")
"""Quote assets a venue symbol may end with, the longest first where one ends another."""


_USD_QUOTES = frozenset({"USD", "USDT", "USDC", "FDUSD", "BUSD", "TUSD", "USDP", "DAI"})
"""Quotes the main job takes at one USD: its intents' ``notional_*_usd`` and every USD figure are amounts of them."""


def refuse_non_usd_quote(config: ConfigBundle, symbol: str) -> None:
    """A market quoted in another asset (ETHBTC in BTC) cannot be simulated: its orders of 100 to 400 "USD" were
    100 to 400 BTC (8178 ETH, hundreds of times the touch), replayed walking the book, unsaid."""
    quote = config.strategy.universe[symbol].quote
    if quote not in _USD_QUOTES:
        raise ValueError(f"{symbol} is quoted in {quote} (strategy_config.json $.universe.{symbol}.quote): "
                         f"{_NOT_USD.format(quote=quote)}")


_NOT_USD = ("the simulation sizes orders in USD (router.json simulation.intents notional_min_usd/notional_max_usd) "
            "and has no {quote} price to convert them, so they would be that many {quote}; simulate pairs quoted in "
            f"USD or a USD stablecoin ({', '.join(sorted(_USD_QUOTES))}), or move its recording out of the data "
            "directory")


def _our_symbol(config: ConfigBundle, venue_symbol: str, market: str) -> str:
    """Our name of a recorded instrument (the loader refuses two universe entries of one instrument)."""
    matches = [name for name, entry in config.strategy.universe.items()
               if entry.venue_symbol == venue_symbol and entry.market == market]
    if not matches and (quote := _quote_of(venue_symbol, market)) not in (*_USD_QUOTES, None):
        raise ValueError(f"recorded {market} {venue_symbol} is quoted in {quote}: {_NOT_USD.format(quote=quote)}")
    if not matches:
        raise ValueError(f"recorded {market} {venue_symbol} is not in strategy_config.json's universe: add "
                         f"{universe_entry_hint(venue_symbol, market)} to its \"universe\" in a config directory "
                         f"(`router-tuner config init DIR` writes the defaults there) and pass --config DIR")
    return matches[0]


def _quote_of(venue_symbol: str, market: str) -> str | None:
    """The quote asset a venue symbol ends with (USD on COIN-M), ``None`` for one not in ``_QUOTES``."""
    if market == "cm":
        return "USD"
    return next((q for q in _QUOTES if venue_symbol.endswith(q) and venue_symbol != q), None)


def universe_entry_hint(venue_symbol: str, market: str) -> str:
    """A universe entry for a recorded market the configuration lacks, as JSON to paste (a COIN-M contract's USD
    size is Binance's usual one and named as such: the recording does not carry it)."""
    quote = _quote_of(venue_symbol, market)
    if market == "cm":
        size = 100.0 if venue_symbol.startswith("BTC") else 10.0
        entry = {"venue_symbol": venue_symbol, "tier": "CORE", "quote": "USD", "market": "cm",
                 "contract_type": "inverse", "contract_size": size}
        return (f"\"{venue_symbol}\": {json.dumps(entry)} (check contract_size: USD per contract, 100 for BTC and "
                f"10 for the others on Binance COIN-M)")
    spot = market == "spot"
    entry = {"venue_symbol": venue_symbol, "tier": "SPOT" if spot else "CORE", "quote": quote or "QUOTE",
             "market": market, "contract_type": "spot" if spot else "linear", "contract_size": 1.0}
    check = "" if quote else f" (check quote: set the asset {venue_symbol} is quoted in, the end of its name)"
    return f"\"{venue_symbol}{'_SPOT' if spot else ''}\": {json.dumps(entry)}{check}"


def _market(config: ConfigBundle, symbol: str, tape: MarketTape, source: str,
            data_summary: LoadSummary | None = None) -> SimMarket:
    entry = config.strategy.universe[symbol]
    return SimMarket(symbol=symbol, market=entry.market, quote=entry.quote,
                     book=TapeBook(dataclasses.replace(tape, symbol=symbol)), qty_step=1.0 / tape.qty_scale,
                     contract=entry, source=source, data_summary=data_summary)


def recorded_markets(config: ConfigBundle, data_dir: Path, symbols: Sequence[str] | None) -> list[SimMarket]:
    """Every recorded market in ``data_dir`` (or the ``symbols`` asked for, by our names)."""
    by_symbol = recorded_files(config, data_dir, symbols)
    wanted = list(by_symbol) if symbols is None else list(symbols)
    markets = []
    for s in wanted:
        loaded = read_recorded(by_symbol[s])
        markets.append(_market(config, s, loaded.tape, f"recorded:{by_symbol[s][0].name}", loaded.summary))
    return markets


def recorded_files(config: ConfigBundle, data_dir: Path, symbols: Sequence[str] | None) -> dict[str, list[Path]]:
    """The recorded files of each market in ``data_dir`` by our symbol name (of the ``symbols`` asked for only).

    Without ``symbols`` every recording is a market to simulate, so one of an instrument outside the universe is
    refused, naming the entry to add. With ``symbols`` (universe names, checked by the commands) such a recording
    cannot be one of them and is passed over: ``simulate --symbols BTCUSDT`` was refused for an XRPUSDT file beside
    the BTCUSDT one, and every ``sweep`` task on that folder failed at run time ("a task failed", exit 1, again on
    each rerun) though the sweep had planned BTCUSDT only.
    """
    found = discover_recordings(data_dir)
    if not found:
        others = sorted(path.name for path in data_dir.iterdir())
        seen = f"; it holds {len(others)} other file(s), e.g. {others[0]}" if others else ""
        raise FileNotFoundError(f"no recordings in {data_dir} ({LAYOUTS}{seen})")
    by_symbol: dict[str, list[Path]] = {}
    for key, paths in found.items():
        market, venue_symbol = key.split("_", 1)
        try:
            by_symbol[_our_symbol(config, venue_symbol.upper(), market)] = paths
        except ValueError:
            if symbols is None:
                raise
    unknown = sorted(set(symbols or ()) - set(by_symbol))
    if unknown:
        raise ValueError(f"no recorded data for {unknown} in {data_dir}; recorded: {sorted(by_symbol)}")
    chosen = by_symbol if symbols is None else {s: by_symbol[s] for s in symbols}
    for symbol in chosen:
        refuse_non_usd_quote(config, symbol)
    return chosen


def synthetic_markets(config: ConfigBundle, symbols: Sequence[str] | None, seed: int) -> list[SimMarket]:
    """The configured synthetic market, one seeded tape per symbol (symbols must be in the universe)."""
    spec = config.router.simulation.synthetic_market
    wanted = list(spec.symbols) if symbols is None else list(symbols)
    unknown = sorted(set(wanted) - set(spec.symbols))
    if unknown:
        raise ValueError(f"no synthetic market for {unknown}; router.json simulation.synthetic_market lists "
                         f"{sorted(spec.symbols)}")
    markets = []
    for k, symbol in enumerate(wanted):
        if symbol not in config.strategy.universe:
            raise ValueError(f"synthetic symbol {symbol} is not in strategy_config.json universe")
        tape = generate(configured_synthetic_spec(config, symbol, seed=seed * 1000 + k))
        markets.append(_market(config, symbol, tape, "synthetic"))
    return markets


def configured_synthetic_spec(config: ConfigBundle, symbol: str, *, seed: int) -> SyntheticMarketSpec:
    """``router.json`` ``simulation.synthetic_market`` as the generator's spec for ``symbol`` (listed there), drawn
    from ``seed``; callers vary it with ``dataclasses.replace``."""
    spec = config.router.simulation.synthetic_market
    return SyntheticMarketSpec(
        symbol=symbol, start_ns=0, duration_s=spec.duration_s, mid0=spec.symbols[symbol], tick_size=spec.tick_size,
        spread_ticks=spec.spread_ticks, volatility_bps_per_sqrt_s=spec.volatility_bps_per_sqrt_s,
        quote_interval_ms=spec.quote_interval_ms, trade_rate_per_s=spec.trade_rate_per_s,
        mean_trade_qty=spec.mean_trade_qty, qty_step=spec.qty_step, touch_qty=spec.touch_qty,
        sweep_decay_per_bps=spec.sweep_decay_per_bps, seed=seed)


def synthetic_market_from_tape(config: ConfigBundle, symbol: str, tape: MarketTape, *, source: str) -> SimMarket:
    """A market to simulate from a tape drawn elsewhere (e.g. ``generate_regimes``); ``symbol`` in the universe."""
    if symbol not in config.strategy.universe:
        raise ValueError(f"synthetic symbol {symbol} is not in strategy_config.json universe")
    return _market(config, symbol, tape, source)


def venue_config(config: ConfigBundle, market: SimMarket, *, seed: int) -> SimVenueConfig:
    """The simulated venue of ``market``: fees and latencies from ``sim_venue``, fill model from ``simulation``."""
    sim, fees = config.router.sim_venue, config.router.sim_venue.fees[market.market]
    fill: SimFillModel = config.router.simulation.fill_model
    return SimVenueConfig(
        name=f"sim-{market.market}", maker_fee_bps=fees.maker_fee_bps, taker_fee_bps=fees.taker_fee_bps,
        contracts={market.symbol: market.contract},
        order_entry_latency_ms=sim.order_entry_latency_ms, cancel_latency_ms=sim.cancel_latency_ms,
        latency_jitter_ms=fill.latency_jitter_ms, queue_model=PowerProbQueue(power=fill.queue_power),
        no_depth_level_qty_ratio=fill.no_depth_level_qty_ratio, max_taker_walk_levels=fill.max_taker_walk_levels,
        seed=seed, position_mode=config.router.position_mode)


def check_simulation_config(sim: SimulationConfig, bounds_min_offset_bps: float, bounds_max_offset_bps: float) -> None:
    """Cross-checks of the ``simulation`` section that its types cannot express; raises ``ValueError``."""
    intents, rule = sim.intents, sim.rule_policy
    if intents.notional_min_usd > intents.notional_max_usd:
        raise ValueError(f"simulation.intents: notional_min_usd {intents.notional_min_usd} exceeds "
                         f"notional_max_usd {intents.notional_max_usd}")
    if not rule.min_offset_bps <= rule.base_offset_bps <= rule.max_offset_bps:
        raise ValueError(f"simulation.rule_policy: need min_offset_bps <= base_offset_bps <= max_offset_bps, got "
                         f"{rule.min_offset_bps}, {rule.base_offset_bps}, {rule.max_offset_bps}")
    if rule.min_offset_bps < bounds_min_offset_bps or rule.max_offset_bps > bounds_max_offset_bps:
        raise ValueError(f"simulation.rule_policy offsets [{rule.min_offset_bps}, {rule.max_offset_bps}] leave "
                         f"policy_bounds.maker_offset_bps [{bounds_min_offset_bps}, {bounds_max_offset_bps}]")
