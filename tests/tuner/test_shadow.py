"""Shadow mode: the champion acts, the learner proposes and learns off-policy; going live by command or gate."""

from __future__ import annotations

import dataclasses
import itertools
from pathlib import Path

import msgspec
import numpy as np
import pytest

from router_tuner.config.models import ConfigBundle
from router_tuner.executor.journal import Journal
from router_tuner.router.events import RouterEvent, ShadowDecision
from router_tuner.router.policy import RouterPolicy
from router_tuner.router.routing.machine import RouteSettings, route
from router_tuner.router.routing.order import RouteOrder
from router_tuner.router.routing.scripted import Quote, ScriptedFill, ScriptedVenue
from router_tuner.router.venue import OrderRequest
from router_tuner.tuner.arms import Arm
from router_tuner.tuner.service.publish import InMemoryPublisher
from router_tuner.tuner.service.symbol import ShadowModeError
from router_tuner.tuner.service.tuner_service import TunerService
from router_tuner.tuner.shadow import ShadowRule, with_shadow_symbols
from tests.tuner.test_service import SYMBOL, event_for, tuned_bundle

CHAMPION_ARM = "o0.50_b0.00"


def shadow_bundle(**shadow: float) -> ConfigBundle:
    bundle = with_shadow_symbols(tuned_bundle(min_outcomes=10_000, every_n=10_000), (SYMBOL,))
    deployment = bundle.tuner.deployment
    deployment = msgspec.structs.replace(deployment, shadow=msgspec.structs.replace(deployment.shadow, **shadow))
    ope = msgspec.structs.replace(bundle.tuner.ope, bootstrap_resamples=200)
    tuner = msgspec.structs.replace(bundle.tuner, deployment=deployment, ope=ope)
    return msgspec.structs.replace(bundle, tuner=tuner)


def champion(bundle: ConfigBundle) -> RouterPolicy:
    return RouterPolicy.from_static(SYMBOL, bundle.router, policy_id="router-policy").with_arm(
        CHAMPION_ARM, 0.5, 0.0, 1.0, 3)


def route_orders(bundle: ConfigBundle, service: TunerService | None, orders: int, seed: int
                 ) -> tuple[list[OrderRequest], list[ShadowDecision]]:
    """Route ``orders`` with the champion on scripted venues; with ``service``, in shadow beside it."""
    settings = RouteSettings.from_config(bundle.router, poll_interval_ms=100.0, max_venue_retries=2,
                                         rate_limit_backoff_ms=50.0, max_retry_after_ms=5000.0)
    route_rng, market_rng = np.random.default_rng(seed), np.random.default_rng(seed + 1)
    requests: list[OrderRequest] = []
    records: list[ShadowDecision] = []
    acting = champion(bundle)
    for i in range(orders):
        fills = [ScriptedFill(300_000_000, 1.0)] if market_rng.random() < 0.6 else []
        venue = ScriptedVenue(SYMBOL, [Quote(0, 100.0, 100.1, 5.0, 5.0)],
                              contract=bundle.strategy.universe[SYMBOL], fills=fills, faults=[],
                              maker_fee_bps=-0.5, taker_fee_bps=4.0, entry_latency_ns=10_000_000,
                              cancel_latency_ns=10_000_000)
        order = RouteOrder(intent_id=f"i{i}", symbol=SYMBOL, side="buy", qty=1.0, reduce_only=False,
                           close_position=False, position_side="LONG", quote="USDT", tick_size=0.01, qty_step=0.001)
        if service is not None:
            records.append(service.shadow(SYMBOL, None, acting, intent_id=order.intent_id, ts_ns=i))
        event = route(order, acting, venue, rng=route_rng, settings=settings)
        if service is not None:
            service.observe(event, None)
        requests.extend(venue.requests)
    return requests, records


def test_shadow_mode_never_changes_what_is_sent_to_the_venue(tmp_path: Path) -> None:
    bundle = shadow_bundle()
    plain, _ = route_orders(bundle, None, 150, seed=3)
    service = TunerService.from_config(bundle, [SYMBOL], InMemoryPublisher())
    shadowed, records = route_orders(bundle, service, 150, seed=3)
    assert shadowed == plain and len(plain) >= 150
    tuner = service.tuner(SYMBOL)
    assert tuner.mode == "shadow" and len(records) == 150
    assert {r.acting_arm for r in records} == {CHAMPION_ARM}
    proposed = {r.proposed_arm for r in records}
    assert proposed <= set(tuner.allowed_arm_ids) and proposed - {CHAMPION_ARM}, "the learner proposes its own arms"
    assert all(0.0 < r.proposed_propensity <= 1.0 for r in records)
    assert [r.agrees for r in records] == [r.proposed_arm == CHAMPION_ARM for r in records]
    counts = tuner.learner.counts()
    assert counts[CHAMPION_ARM] > 0 and sum(counts.values()) == counts[CHAMPION_ARM], \
        "off-policy: the learner only learns the arm the champion took"
    with Journal(tmp_path / "journal.sqlite") as journal:
        journal.append_many(records)
        assert list(journal.read("shadow")) == records


def exploring_champion_events(bundle: ConfigBundle, service: TunerService, orders: int, seed: int,
                              best_arm: str) -> list[bool]:
    """A champion that routes ``best_arm`` 85% of the time and a random neighbour otherwise (propensities
    logged), in a market where ``best_arm`` is cheapest; returns whether each outcome sent the symbol live."""
    tuner = service.tuner(SYMBOL)
    grid = tuner.learner.grid
    others = [a for a in tuner.allowed_arm_ids if a != best_arm]
    rng = np.random.default_rng(seed)
    base = champion(bundle)
    went_live = []
    ids = itertools.count()
    for _ in range(orders):
        if service.mode(SYMBOL) == "live":
            break
        explore = rng.random() >= 0.85
        arm = grid.get(others[rng.integers(len(others))] if explore else best_arm)
        propensity = 0.15 / len(others) if explore else 0.85
        acting = dataclasses.replace(base, arm=arm.arm_id, maker_offset_bps=arm.maker_offset_bps,
                                         taker_bias=arm.taker_bias, propensity=propensity)
        intent_id = f"i{next(ids)}"
        service.shadow(SYMBOL, None, acting, intent_id=intent_id, ts_ns=0)
        cost = 1.0 + 2.0 * abs(arm.maker_offset_bps - 1.0) + 3.0 * arm.taker_bias + rng.normal(0.0, 1.0)
        event: RouterEvent = msgspec.structs.replace(event_for(acting, cost), intent_id=intent_id)
        went_live.append(service.observe(event, None).went_live)
    return went_live


def test_a_symbol_goes_live_when_agreement_and_the_ope_bound_pass() -> None:
    bundle = shadow_bundle(agreement_window=100, min_agreement=0.7, min_outcomes=300, gate_every_n_outcomes=100,
                           ope_window_events=1000, max_shortfall_bps=0.5)
    service = TunerService.from_config(bundle, [SYMBOL], InMemoryPublisher())
    went_live = exploring_champion_events(bundle, service, 3000, seed=8, best_arm="o1.00_b0.00")
    assert went_live[-1] and went_live.count(True) == 1 and service.mode(SYMBOL) == "live"
    tuner = service.tuner(SYMBOL)
    gate = tuner.evaluate_shadow()
    assert gate.candidate_arm == "o1.00_b0.00" and gate.estimate is not None and gate.acting_value is not None
    assert gate.estimate.ci_low >= gate.acting_value.value - 0.5 and gate.agreement is not None
    upper, acting = -gate.estimate.ci_low, -gate.acting_value.value  # the reason speaks cost in bps
    assert f"cost upper bound {upper:.3f} bps <= the acting policy's {acting:.3f} bps + 0.5 bps" in gate.reason
    assert gate.agreement >= 0.7
    assert service.decide(SYMBOL, None).symbol == SYMBOL
    with pytest.raises(ShadowModeError, match="is live"):
        service.shadow(SYMBOL, None, champion(bundle), intent_id="x", ts_ns=0)


def test_the_gate_refuses_when_agreement_is_short_and_a_person_can_still_go_live(tmp_path: Path) -> None:
    bundle = shadow_bundle(agreement_window=100, min_agreement=0.99, min_outcomes=300, gate_every_n_outcomes=100,
                           ope_window_events=1000, max_shortfall_bps=0.5)
    state = tmp_path / "tuner.json"
    service = TunerService.from_config(bundle, [SYMBOL], InMemoryPublisher(), state_path=state)
    assert not any(exploring_champion_events(bundle, service, 600, seed=8, best_arm="o1.00_b0.00"))
    gate = service.evaluate_shadow(SYMBOL)
    assert not gate.passes and gate.reason.startswith("agreement ") and "< 0.99" in gate.reason
    with pytest.raises(ShadowModeError, match="shadow mode"):
        service.decide(SYMBOL, None)
    service.go_live(SYMBOL)
    restored = TunerService.from_config(bundle, [SYMBOL], InMemoryPublisher(), state_path=state)
    assert restored.mode(SYMBOL) == "live", "going live is saved and survives a restart"
    with pytest.raises(ShadowModeError, match="live already"):
        restored.go_live(SYMBOL)


def test_the_gate_cannot_score_an_arm_the_champion_never_took() -> None:
    bundle = shadow_bundle(min_outcomes=50, gate_every_n_outcomes=50)
    service = TunerService.from_config(bundle, [SYMBOL], InMemoryPublisher())
    tuner = service.tuner(SYMBOL)
    acting = champion(bundle)
    for i in range(60):
        service.shadow(SYMBOL, None, acting, intent_id=f"i{i}", ts_ns=0)
        service.observe(msgspec.structs.replace(event_for(acting, 2.0), intent_id=f"i{i}"), None)
    gate = tuner.evaluate_shadow("o2.00_b0.00")
    assert not gate.passes and gate.reason.startswith("ope: candidate arm o2.00_b0.00 was never taken")
    assert tuner.mode == "shadow"


def test_bad_shadow_configuration_is_refused() -> None:
    bundle = shadow_bundle()
    with pytest.raises(ValueError, match="min_agreement"):
        ShadowRule(agreement_window=10, min_agreement=0.0, min_outcomes=1, gate_every_n_outcomes=1,
                   ope_window_events=10, max_shortfall_bps=0.0, gate_estimator="snips")
    with pytest.raises(ValueError, match="shadow_symbols not in the universe"):
        TunerService.from_config(with_shadow_symbols(bundle, ("NOPEUSDT",)), [SYMBOL], InMemoryPublisher())
    deployment = msgspec.structs.replace(bundle.tuner.deployment, gate_estimator="dr")
    ope = msgspec.structs.replace(bundle.tuner.ope, estimators=("ips", "snips"))
    wrong = msgspec.structs.replace(bundle, tuner=msgspec.structs.replace(bundle.tuner, deployment=deployment, ope=ope))
    with pytest.raises(ValueError, match="gate estimator 'dr' is not configured"):
        TunerService.from_config(wrong, [SYMBOL], InMemoryPublisher())
    service = TunerService.from_config(bundle, [SYMBOL], InMemoryPublisher())
    other = RouterPolicy.from_static("ETHUSDT", bundle.router)
    with pytest.raises(ValueError, match="acting policy of ETHUSDT"):
        service.shadow(SYMBOL, None, other, intent_id="i", ts_ns=0)
    assert Arm(0.5, 0.0).arm_id == CHAMPION_ARM
