"""The simulation on the executor's engine (``router.json`` ``simulation.engine: concurrent``): routes overlap on
one replay per symbol, our later post queues behind our earlier one, a policy learns in outcome order, each
intent ends in exactly one event, results are deterministic for a seed, and a bad engine name is refused."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import msgspec
import pytest

from router_tuner.cli.main import main
from router_tuner.config.loader import ConfigError, load_config
from router_tuner.config.models import ConfigBundle
from router_tuner.router.events import RouterEvent
from router_tuner.router.policy import RouterPolicy
from router_tuner.router.routing.order import RouteOrder
from router_tuner.router.venue import OrderRequest, OrderState
from router_tuner.router.venues.sim import SimVenue
from router_tuner.simulation import runner
from router_tuner.simulation.intents import SimIntent, arrival_context, intent_stream
from router_tuner.simulation.job import SimulationOptions
from router_tuner.simulation.markets import SimMarket, synthetic_market_from_tape, synthetic_markets
from router_tuner.simulation.policies import LEARNER_PREFIX, static
from router_tuner.simulation.runner import intent_index, route_intents, run_policy
from router_tuner.simulation.shadow import run_shadow_scenario, shadow_phase_matches_champion
from tests.conftest import edit_config
from tests.simulation.synthetic_job import synthetic_job_summary
from tests.venues.test_sim_venue_support import MS, make_tape

SYMBOL = "BTCUSDT"
ORDERS = 60
DENSE = 300
"""Intents on the synthetic tape in the overlap tests: about one a second, while a maker route lasts up to 2 s."""
SEED = 3


def with_engine(config: ConfigBundle, engine: str, **static_changes: object) -> ConfigBundle:
    config = runner.with_engine(config, engine)
    static_policy = msgspec.structs.replace(config.router.static_policy, **static_changes)
    return msgspec.structs.replace(config, router=msgspec.structs.replace(config.router, static_policy=static_policy))


@pytest.fixture(scope="module")
def concurrent() -> ConfigBundle:
    return with_engine(load_config(), "concurrent")


@pytest.fixture(scope="module")
def market(concurrent: ConfigBundle) -> SimMarket:
    return synthetic_markets(concurrent, (SYMBOL,), SEED)[0]


@pytest.fixture(scope="module")
def intents(concurrent: ConfigBundle, market: SimMarket) -> list[SimIntent]:
    return intent_stream(market, ORDERS, concurrent.router.simulation.intents, seed=SEED)


@pytest.fixture(scope="module")
def dense(concurrent: ConfigBundle, market: SimMarket) -> list[SimIntent]:
    return intent_stream(market, DENSE, concurrent.router.simulation.intents, seed=SEED)


class _RestingWatch(SimVenue):
    """A real SimVenue that records, after each order it accepts, how many orders of ours rest on it."""

    replays: ClassVar[list[_RestingWatch]] = []

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.resting_after_place: list[int] = []
        _RestingWatch.replays.append(self)

    def place_order(self, request: OrderRequest) -> OrderState:
        state = super().place_order(request)
        self.resting_after_place.append(len(self.open_orders(None)))
        return state


def _watched_run(config: ConfigBundle, market: SimMarket, intents: list[SimIntent],
                 monkeypatch: pytest.MonkeyPatch) -> list[_RestingWatch]:
    _RestingWatch.replays = []
    monkeypatch.setattr(runner, "SimVenue", _RestingWatch)
    run_policy(market, intents, static(SYMBOL, config.router), "static", config=config, seed=SEED)
    return _RestingWatch.replays


def test_concurrent_routes_overlap_on_one_replay_with_our_orders_resting_at_once(
        concurrent, market, dense, monkeypatch) -> None:
    (replay,) = _watched_run(concurrent, market, dense, monkeypatch)
    assert max(replay.resting_after_place) >= 2
    staggered = _watched_run(with_engine(concurrent, "staggered"), market, dense, monkeypatch)
    assert len(staggered) > 1 and max(max(r.resting_after_place) for r in staggered) == 1


def _queue_market(config: ConfigBundle) -> SimMarket:
    """Bid 10000 x 5 and ask 10003 x 5 for a minute; at 2 s one sell of 6 hits the bid: the 5 displayed and 1
    more, exactly one of our 1-lot buys joined behind the 5."""
    tape = make_tape([(0, 10000, 5, 10003, 5), (60_000 * MS, 10000, 5, 10003, 5)],
                     trades=[(2_000 * MS, 10000, 6, True)])
    return synthetic_market_from_tape(config, SYMBOL, tape, source="test: queue")


def _two_buys(market: SimMarket, config: ConfigBundle) -> list[SimIntent]:
    n_quotes = config.router.simulation.intents.context_quotes
    return [SimIntent(index=k, symbol=SYMBOL, side="buy", qty=1.0, notional_usd=10_000.0, arrival_ns=ts, lane=k,
                      context=arrival_context(market, ts, 1.0, True, n_quotes))
            for k, ts in enumerate((1_000 * MS, 1_100 * MS))]


@pytest.mark.parametrize(("engine", "second_routed_as"), [("concurrent", "taker"), ("staggered", "maker")])
def test_a_later_post_of_ours_queues_behind_the_earlier_one(engine: str, second_routed_as: str) -> None:
    config = with_engine(load_config(), engine, maker_offset_bps=0.0, maker_ttl_ms=5_000.0, reprice_attempts=0)
    market = _queue_market(config)
    run = run_policy(market, _two_buys(market, config), static(SYMBOL, config.router), "static", config=config,
                     seed=SEED)
    first, second = run.events
    assert (first.routed_as, first.fills[0].price, first.fills[0].ts_ns) == ("maker", 10000.0, 2_000 * MS)
    # concurrent: the sell of 6 goes through the 5 displayed and our earlier buy, none is left for the later one,
    # which falls back to the taker leg after its TTL; staggered: each buy is alone on its replay and fills
    assert second.routed_as == second_routed_as
    assert second.started_maker and second.fills[-1].price == (10000.0 if engine == "staggered" else 10003.0)


def test_each_intent_ends_in_exactly_one_event_and_decisions_see_only_ended_routes(
        concurrent, market, dense) -> None:
    intents = dense
    source = static(SYMBOL, concurrent.router)
    observed: list[RouterEvent] = []
    seen_at_decision: dict[int, tuple[int, set[int]]] = {}

    def decide(intent: SimIntent, order: RouteOrder, now_ns: int) -> RouterPolicy:
        seen_at_decision[intent.index] = (now_ns, {intent_index(e) for e in observed})
        return source.decide(intent.context)

    run = route_intents(market, intents, "static", decide=decide, observe=lambda intent, event: observed.append(event),
                        config=concurrent, seed=SEED)
    assert [intent_index(e) for e in run.events] == [i.index for i in intents]
    assert sorted(intent_index(e) for e in observed) == [i.index for i in intents]
    assert len({e.intent_id for e in run.events}) == len(intents)
    ends = [e.finished_ts_ns for e in observed]
    assert ends == sorted(ends)  # learned in the order the routes ended
    by_index = {intent_index(e): e for e in run.events}
    overlapped = 0
    for index, (now_ns, seen) in seen_at_decision.items():
        assert all(by_index[k].finished_ts_ns <= now_ns for k in seen)
        working = [k for k in seen_at_decision if k < index and k not in seen]
        assert all(by_index[k].finished_ts_ns >= now_ns for k in working)
        overlapped += bool(working)
    assert overlapped > DENSE // 4  # many decisions were made while earlier routes still worked


def test_the_concurrent_job_is_deterministic_for_a_seed_and_learns(concurrent) -> None:
    options = SimulationOptions(symbols=(SYMBOL,), orders_per_symbol=ORDERS, seed=SEED, data_dir=None,
                                learners=("structured", "ucb"))
    first = synthetic_job_summary(concurrent, options)
    assert synthetic_job_summary(concurrent, options) == first
    assert first["engine"] == "concurrent" and first["symbols"][SYMBOL]["replays"] == 1  # type: ignore[index]
    learner = first["symbols"][SYMBOL]["policies"][f"{LEARNER_PREFIX}ucb"]  # type: ignore[index]
    assert learner["orders"] == ORDERS


def test_shadow_phase_matches_the_champion_until_the_live_phase_shares_the_replay(concurrent, market,
                                                                                  intents) -> None:
    scenario = run_shadow_scenario(market, intents, concurrent, seed=SEED)
    assert scenario.went_live_by is not None
    assert 0 < len(scenario.untouched_intents) <= scenario.shadow_orders
    assert scenario.untouched_intents <= scenario.shadow_intents
    assert shadow_phase_matches_champion(scenario)
    staggered = run_shadow_scenario(market, intents, with_engine(concurrent, "staggered"), seed=SEED)
    assert staggered.untouched_intents == staggered.shadow_intents  # lanes never share a replay with live routes


def test_with_engine_refuses_an_unknown_engine() -> None:
    with pytest.raises(ValueError, match="simulation engine must be one of"):
        runner.with_engine(load_config(), "overlapping")


def test_a_bad_engine_is_refused_with_file_and_key(config_dir: Path, tmp_path: Path, capsys) -> None:
    edit_config(config_dir, "router.json", lambda d: d["simulation"].update(engine="overlapping"))
    with pytest.raises(ConfigError, match=r"router\.json.*simulation\.engine"):
        load_config(config_dir)
    code = main(["simulate", "--config", str(config_dir), "--out", str(tmp_path / "out"), "--no-mlflow"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code != 0 and len(err) == 1 and "simulation.engine" in err[0] and "router.json" in err[0]
