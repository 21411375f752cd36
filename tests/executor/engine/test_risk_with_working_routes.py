"""Risk with routes working at once: whatever the intents, at every admission the exposure the portfolio
holds plus what every working route may still add (its reserved notional) stays within the symbol, tier
and gross caps, and the legs open or being opened within ``max_concurrent_positions``."""

from __future__ import annotations

import tempfile
from functools import cache
from pathlib import Path

import msgspec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from router_tuner.config.models import ConfigBundle
from router_tuner.executor.intents import QueueIntentSource
from router_tuner.executor.loop import Admission, Executor, Flight
from router_tuner.executor.venues import paper_venue, synthetic_tapes
from router_tuner.risk.context import RiskContext
from router_tuner.router.market.tape import MarketTape
from tests.executor.test_executor_support import T0_NS, build_executor, executor_config, intent

TOLERANCE = 1e-9


@cache
def config() -> ConfigBundle:
    base = executor_config(max_positions=3)
    engine = msgspec.structs.replace(base.executor.engine, max_routes_in_flight=16, max_routes_per_symbol=8)
    return msgspec.structs.replace(base, executor=msgspec.structs.replace(base.executor, engine=engine))


@cache
def tapes() -> tuple[MarketTape, ...]:
    return tuple(synthetic_tapes(config(), start_ns=T0_NS))


class CheckedExecutor(Executor):
    """Checks the caps with every working route counted right after each route is admitted."""

    admissions = 0
    most_in_flight = 0

    def _submit(self, admitted: Admission) -> Flight:
        flight = super()._submit(admitted)
        self.admissions += 1
        self.most_in_flight = max(self.most_in_flight, self.routes_in_flight)
        self._check_caps()
        return flight

    def _check_caps(self) -> None:
        working = tuple(f.admission.working for f in self._flights.values())
        limits = self.config.risk
        universe = self.config.strategy.universe
        for symbol in self.config.executor.instruments:
            ctx = RiskContext.from_state(self.portfolio, symbol=symbol, universe=universe,
                                         now_ns=self.venue.clock.now_ns(), working=working)
            nav = ctx.nav_usd * (1 + TOLERANCE)
            assert ctx.symbol_gross_notional_usd <= limits.symbol_caps.max_nav_pct * nav, symbol
            assert ctx.current_tier_gross_notional <= limits.tier_caps[ctx.tier_name].max_nav_pct * nav
            assert ctx.gross_exposure_usd <= limits.max_gross_exposure_nav * nav
            assert ctx.open_positions_count + len(ctx.opening_legs) <= limits.max_concurrent_positions


INTENTS = st.lists(st.tuples(st.sampled_from(["BTCUSDT", "ETHUSDT"]), st.booleans(),
                             st.floats(min_value=150.0, max_value=2_500.0)), min_size=5, max_size=60)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(INTENTS)
def test_no_cap_is_exceeded_at_any_admission_counting_working_routes(specs: list[tuple[str, bool, float]]) -> None:
    bundle = config()
    venue = paper_venue(bundle, list(tapes()), name="sim-prop")
    with tempfile.TemporaryDirectory() as tmp:
        executor, journal, store = build_executor(bundle, venue, Path(tmp))
        executor.__class__ = CheckedExecutor
        assert isinstance(executor, CheckedExecutor)
        with journal, store:
            executor.start()
            source = QueueIntentSource()
            for index, (symbol, long_leg, size_usd) in enumerate(specs):
                source.put(intent(f"p{index}", symbol=symbol, side="buy" if long_leg else "sell",
                                  position_side="LONG" if long_leg else "SHORT", size_hint_usd=size_usd))
            source.close()
            step_ns = 50_000_000
            executor.run(source, idle_poll_s=0.0, should_stop=lambda: False,
                         on_idle=lambda: venue.clock.sleep_until(venue.clock.now_ns() + step_ns))
            assert journal.count("trade") == len(specs)
            assert executor.routes_in_flight == 0
            if executor.admissions >= 2:
                assert executor.most_in_flight >= 2  # the routes did work at once
