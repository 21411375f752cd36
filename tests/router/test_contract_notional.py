"""USD notionals per contract spec: linear/spot qty x price, inverse (COIN-M) contracts x USD per contract.

Covers the one formula (router.contract), the simulated venue's fee in USD, the route's fees_bps (a ratio,
unchanged by the fee fix) and the config entries the simulation hands to the venue.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import msgspec
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from router_tuner.config import load_config
from router_tuner.config.models import ConfigBundle
from router_tuner.executor.monitoring.metrics import ExecutorMetrics
from router_tuner.risk.context import RiskContext
from router_tuner.risk.lot import fit_to_lot
from router_tuner.router.contract import Contract, notional_usd, venue_contract
from router_tuner.router.events import Fill, RouterEvent
from router_tuner.router.policy import RouterPolicy
from router_tuner.router.routing.ledger import RouteLedger
from router_tuner.router.routing.machine import route
from router_tuner.router.routing.order import RouteOrder, RouteSettings
from router_tuner.router.venue import TopOfBook
from router_tuner.router.venues.sim.venue import SimVenue
from router_tuner.simulation.markets import synthetic_markets, venue_config
from router_tuner.tuner.reward_adjustment import MarketAfter
from router_tuner.tuner.service.publish import InMemoryPublisher
from router_tuner.tuner.service.tuner_service import TunerService
from tests.executor.test_executor_support import build_executor, executor_config, intent, make_paper_venue
from tests.factories import fill, routed
from tests.router.test_route_sim import tape
from tests.venues.test_sim_venue_support import config as sim_config
from tests.venues.test_sim_venue_support import make_tape, market

BTCUSD_PERP = Contract("inverse", 100.0)


def test_notional_by_hand_for_each_contract_type() -> None:
    assert notional_usd(BTCUSD_PERP, price=61_234.5, qty=3) == 300.0  # 3 contracts of 100 USD
    assert notional_usd(Contract("inverse", 10.0), price=3_000.0, qty=7) == 70.0
    assert notional_usd(Contract("linear", 1.0), price=60_000.0, qty=0.002) == pytest.approx(120.0)
    assert notional_usd(Contract("spot", 1.0), price=2_500.0, qty=0.4) == pytest.approx(1_000.0)
    assert notional_usd(Contract("linear", 0.001), price=60_000.0, qty=5) == pytest.approx(300.0)
    assert notional_usd(load_config().strategy.universe["BTCUSD_PERP"], price=50_000.0, qty=4) == 400.0


@given(price=st.floats(1e-6, 1e7), contracts=st.integers(-10_000, 10_000))
def test_inverse_notional_ignores_price(price: float, contracts: int) -> None:
    assert notional_usd(BTCUSD_PERP, price, contracts) == contracts * 100.0


@pytest.mark.parametrize("price, qty", [(0.0, 1.0), (-1.0, 1.0), (float("nan"), 1.0), (100.0, float("inf"))])
def test_notional_refuses_bad_price_or_qty_even_for_inverse(price: float, qty: float) -> None:
    with pytest.raises(ValueError, match=r"price|qty"):
        notional_usd(BTCUSD_PERP, price, qty)


@pytest.mark.parametrize("kind, size", [("quanto", 1.0), ("inverse", 0.0), ("linear", -1.0), ("spot", True)])
def test_contract_refuses_bad_spec(kind: str, size: float) -> None:
    with pytest.raises(ValueError, match=r"contract_type|contract_size"):
        Contract(kind, size)  # type: ignore[arg-type]


def test_sim_venue_config_needs_a_valid_spec_for_every_symbol() -> None:
    with pytest.raises(ValueError, match=r"contracts\['BTCUSDT'\].*contract_size"):
        sim_config(contracts={"BTCUSDT": msgspec.structs.replace(load_config().strategy.universe["BTCUSDT"],
                                                                 contract_size=-1.0)})
    flat = make_tape([(0, 100, 10, 101, 10), (100_000_000, 100, 10, 101, 10)], symbol="ETHUSD_PERP")
    with pytest.raises(ValueError, match=r"no contract spec for \['ETHUSD_PERP'\]"):
        SimVenue([flat], sim_config(), start_ns=0)


def test_sim_fee_usd_of_an_inverse_fill_is_contracts_times_contract_value() -> None:
    flat = make_tape([(0, 60_000, 50, 60_001, 50), (100_000_000, 60_000, 50, 60_001, 50)], symbol="BTCUSD_PERP")
    venue = SimVenue([flat], sim_config(contracts={"BTCUSD_PERP": BTCUSD_PERP}, taker_fee_bps=5.0), start_ns=0)
    [fill] = venue.place_order(market("m1", "buy", 3, symbol="BTCUSD_PERP")).fills
    assert (fill.qty, fill.price) == (3, 60_001)
    assert fill.fee_usd == pytest.approx(3 * 100 * 5.0 / 1e4)  # 0.15 USD, not 3 * 60,001 * 5 bps = 90 USD
    assert venue.contract("BTCUSD_PERP") is BTCUSD_PERP and venue_contract(venue, "BTCUSD_PERP") is BTCUSD_PERP


def _ledger_event(contract: Contract | None, fills: tuple[Fill, ...]) -> tuple[float | None, float | None]:
    order = RouteOrder(intent_id="i1", symbol="BTCUSD_PERP", side="buy", qty=3.0, reduce_only=False,
                       close_position=False, position_side="BOTH", quote="USD", tick_size=0.1, qty_step=1.0)
    arrival = TopOfBook(symbol="BTCUSD_PERP", bid=59_990.0, bid_qty=5.0, ask=60_010.0, ask_qty=5.0, ts_ns=0)
    ledger = RouteLedger(order=order, arrival=arrival, arrival_ts_ns=0, contract=contract)
    ledger.fills.extend(fills)
    policy = RouterPolicy.from_static("BTCUSD_PERP", load_config().router)
    event = ledger.to_event(policy, finished_ts_ns=1)
    return event.fees_bps, event.cost_bps


def test_route_fees_bps_stays_the_fee_rate_on_inverse_contracts() -> None:
    fills = (Fill(trade_id="t1", client_order_id="i1-1", price=60_010.0, qty=2.0, fee_usd=2 * 100 * 5e-4,
                  liquidity="taker", ts_ns=1),
             Fill(trade_id="t2", client_order_id="i1-1", price=60_020.0, qty=1.0, fee_usd=1 * 100 * 5e-4,
                  liquidity="taker", ts_ns=1))
    fees_bps, cost_bps = _ledger_event(BTCUSD_PERP, fills)
    assert fees_bps == pytest.approx(5.0)
    slippage_bps = (60_010.0 * 2 + 60_020.0) / 3 / 60_000.0 * 1e4 - 1e4
    assert cost_bps == pytest.approx(slippage_bps + 5.0)
    with pytest.raises(ValueError, match="contract_type"):  # no spec, no silent price x contracts guess
        _ledger_event(None, fills)


def test_routed_cost_bps_on_coin_m_is_unchanged_by_the_usd_fee() -> None:
    """The same taker route on a BTCUSD_PERP tape: fees_bps is the taker rate, as before the fix."""
    router = load_config().router
    rows = [(0, 60_000.0, 50.0, 60_001.0, 50.0)]
    venue = SimVenue([tape(rows, symbol="BTCUSD_PERP")],
                     sim_config(contracts={"BTCUSD_PERP": BTCUSD_PERP}, taker_fee_bps=5.0, maker_fee_bps=-1.0),
                     start_ns=0)
    order = RouteOrder(intent_id="c1", symbol="BTCUSD_PERP", side="buy", qty=4.0, reduce_only=False,
                       close_position=False, position_side="BOTH", quote="USD", tick_size=0.01, qty_step=1.0)
    policy = dataclasses.replace(RouterPolicy.from_static("BTCUSD_PERP", router), taker_bias=1.0)
    settings = RouteSettings.from_config(router, poll_interval_ms=100.0, max_venue_retries=2,
                                         rate_limit_backoff_ms=50.0, max_retry_after_ms=5000.0)
    settings = dataclasses.replace(settings, position_mode="one_way")
    event = route(order, policy, venue, rng=np.random.default_rng(0), settings=settings)
    assert event.routed_as == "taker" and event.filled_qty == 4.0
    assert sum(f.fee_usd for f in event.fills) == pytest.approx(4 * 100 * 5.0 / 1e4)
    assert event.fees_bps == pytest.approx(5.0)
    assert event.cost_bps == pytest.approx(event.slippage_bps + 5.0)


def test_simulation_hands_the_universe_spec_to_the_venue() -> None:
    bundle = load_config()
    [eth] = synthetic_markets(bundle, ["ETHUSDT"], seed=1)
    assert venue_config(bundle, eth, seed=0).contracts == {"ETHUSDT": bundle.strategy.universe["ETHUSDT"]}


def _charged_notional_usd(symbol: str, qty: float, mid: float) -> float:
    service = TunerService.from_config(load_config(), [symbol], InMemoryPublisher())
    tuner = service.tuner(symbol)
    assert tuner.mode == "live"
    policy = tuner.decide(None)
    contracts = (fill(mid, qty, fee_bps=0.0),)
    event = msgspec.structs.replace(routed(symbol=symbol, qty=qty, mid=mid, fills=contracts), arm=policy.arm,
                                    policy_id=policy.policy_id, policy_version=policy.version,
                                    maker_offset_bps=policy.maker_offset_bps, taker_bias=policy.taker_bias,
                                    propensity=policy.propensity)
    tuner.observe(event, None, MarketAfter(markout_bps=None, move_to_end_bps=0.0))
    budget = tuner.to_state().budget
    assert budget.notional_orders == 1
    return budget.notional_sum_usd


def test_budget_charges_a_coin_m_order_its_usd_notional() -> None:
    """3 BTCUSD_PERP contracts are 300 USD of exploration notional, not 3 x 60,000."""
    assert _charged_notional_usd("BTCUSD_PERP", qty=3.0, mid=60_000.0) == 300.0
    assert _charged_notional_usd("ETHUSD_PERP", qty=5.0, mid=3_000.0) == 50.0
    assert _charged_notional_usd("BTCUSDT", qty=0.005, mid=60_000.0) == pytest.approx(300.0)


def test_tuner_refuses_a_bad_contract_spec() -> None:
    bundle = load_config()
    entry = msgspec.structs.replace(bundle.strategy.universe["BTCUSD_PERP"], contract_size=0.0)
    universe = {**bundle.strategy.universe, "BTCUSD_PERP": entry}
    bad = msgspec.structs.replace(bundle, strategy=msgspec.structs.replace(bundle.strategy, universe=universe))
    with pytest.raises(ValueError, match="BTCUSD_PERP tuner: contract_size"):
        TunerService.from_config(bad, ["BTCUSD_PERP"], InMemoryPublisher())


def _with_inverse_synthetic(contract_size: float) -> ConfigBundle:
    """The default config with a synthetic BTCUSD_PERP market whose universe entry is ``contract_size`` USD."""
    bundle = load_config()
    universe = {**bundle.strategy.universe, "BTCUSD_PERP": msgspec.structs.replace(
        bundle.strategy.universe["BTCUSD_PERP"], contract_size=contract_size)}
    sim = bundle.router.simulation
    synthetic = msgspec.structs.replace(sim.synthetic_market, symbols={"BTCUSD_PERP": 60_000.0})
    router = msgspec.structs.replace(bundle.router, simulation=msgspec.structs.replace(sim, synthetic_market=synthetic))
    return msgspec.structs.replace(bundle, router=router,
                                   strategy=msgspec.structs.replace(bundle.strategy, universe=universe))


@pytest.mark.parametrize("contract_size", [100.0, 50.0])
def test_simulated_inverse_market_reads_its_contract_value_from_the_universe(contract_size: float) -> None:
    """One source of truth (DESIGN rule 5): changing the universe's contract_size is all it takes."""
    bundle = _with_inverse_synthetic(contract_size)
    [btc] = synthetic_markets(bundle, ["BTCUSD_PERP"], seed=1)
    assert btc.contract is bundle.strategy.universe["BTCUSD_PERP"]
    assert btc.contract_value_usd == contract_size
    assert venue_config(bundle, btc, seed=0).contracts["BTCUSD_PERP"].contract_size == contract_size
    [eth] = synthetic_markets(load_config(), ["ETHUSDT"], seed=1)
    assert eth.contract_value_usd is None  # linear quantities are base coin, not contracts


def _coin_m_event(contracts: float, price: float) -> RouterEvent:
    fills = (Fill(trade_id="t1", client_order_id="c1-1", price=price, qty=contracts, fee_usd=contracts * 100 * 5e-4,
                  liquidity="taker", ts_ns=0),)
    return routed(symbol="BTCUSD_PERP", qty=contracts, mid=price, fills=fills)


def test_prometheus_filled_notional_counts_contract_usd() -> None:
    config = load_config()
    universe, settings = config.strategy.universe, config.executor.prometheus
    metrics = ExecutorMetrics(universe, settings)
    metrics.observe_router_event(_coin_m_event(3.0, 60_000.0))
    metrics.observe_router_event(routed(symbol="BTCUSDT", qty=0.01, mid=60_000.0, fills=(fill(60_000.0, 0.01),)))
    sample = metrics.registry.get_sample_value
    assert sample("router_filled_notional_usd_total", {"symbol": "BTCUSD_PERP"}) == 300.0  # not 180,000
    assert sample("router_filled_notional_usd_total", {"symbol": "BTCUSDT"}) == pytest.approx(600.0)
    with pytest.raises(KeyError, match="no contract spec for 'BTCUSD_PERP'"):
        ExecutorMetrics({"BTCUSDT": universe["BTCUSDT"]}, settings).observe_router_event(_coin_m_event(1.0, 60_000.0))


def test_prometheus_counts_flagged_orders_per_flag_apart_from_errors_and_keeps_unpriced_fees_out_of_cost() -> None:
    """As the run's summary does: a flag (and the settlement note after it) is not an error; a fee_unpriced cost
    understates the fee, so the cost histogram (the dashboard's mean cost) leaves it out."""
    config = load_config()
    metrics = ExecutorMetrics(config.strategy.universe, config.executor.prometheus)
    anomaly = "venue_anomaly(fill t of o-1 reported as taker on a post-only order)"
    for error in (None, f"{anomaly}; settled: 1 orders found, 0 cancelled", "fee_unpriced(fill t of o-1: fee 1 BNB)",
                  f"taker leg o-2 rejected by the venue; {anomaly}"):
        metrics.observe_router_event(msgspec.structs.replace(
            routed(symbol="BTCUSDT", qty=0.01, mid=60_000.0, fills=(fill(60_006.0, 0.01),)), error=error))
    sample = metrics.registry.get_sample_value
    assert sample("router_errors_total", {"symbol": "BTCUSDT"}) == 1.0
    assert sample("router_flagged_orders_total", {"symbol": "BTCUSDT", "reason": "venue_anomaly"}) == 2.0
    assert sample("router_flagged_orders_total", {"symbol": "BTCUSDT", "reason": "fee_unpriced"}) == 1.0
    assert sample("router_cost_bps_count", {"symbol": "BTCUSDT", "routed_as": "maker"}) == 3.0


def test_executor_sizes_linear_through_the_spec_and_refuses_inverse(tmp_path: Path) -> None:
    """gross / USD per unit: a linear contract of 0.001 base units at 60,000 is 60 USD per unit."""
    config = executor_config()
    executor, _, _ = build_executor(config, make_paper_venue(config), tmp_path)
    ctx = RiskContext.from_state(executor.portfolio, symbol="BTCUSDT", universe=config.strategy.universe, now_ns=0,
                                 working=())
    book = TopOfBook(symbol="BTCUSDT", bid=59_999.0, bid_qty=1.0, ask=60_001.0, ask_qty=1.0, ts_ns=0)
    buy = intent("q1", symbol="BTCUSDT", side="buy", size_hint_usd=300.0)

    def qty(qty_step: float, contract: Contract) -> float:
        unit_usd = executor._unit_usd(buy, book, contract)
        return fit_to_lot(buy, 300.0, unit_usd=unit_usd, qty_step=qty_step, ctx=ctx, config=config).qty

    assert qty(0.001, Contract("linear", 1.0)) == pytest.approx(0.005)
    assert qty(1.0, Contract("linear", 0.001)) == 5.0
    with pytest.raises(ValueError, match=r"sizes \('linear', 'spot'\) contracts only, got 'inverse'"):
        executor._unit_usd(buy, book, BTCUSD_PERP)
