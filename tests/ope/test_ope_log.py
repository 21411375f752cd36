"""The OPE log is built from router events faithfully and refuses data it cannot evaluate; candidate
policy matrices are validated the same way."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from router_tuner.router.events import SCHEMA_VERSION, RouterEvent
from router_tuner.tuner.ope.log import LogError, LoggedBandit
from router_tuner.tuner.ope.policy import (
    PolicyError,
    check_policy,
    fixed_arm_policy,
    policy_from_actions,
    policy_from_callable,
    stochastic_policy,
)

ARMS = ("o0.00_b0.00", "o2.00_b0.00", "o4.00_b0.50")


def router_event(**overrides: Any) -> RouterEvent:
    fields: dict[str, Any] = dict(
        schema_version=SCHEMA_VERSION, intent_id="i1", symbol="BTC/USDT:USDT", side="buy", qty=0.01,
        reduce_only=False, close_position=False, position_side="BOTH", arrival_bid=99.0, arrival_ask=101.0,
        arrival_mid=100.0,
        arrival_ts_ns=3_600_000_000_123,
        policy_id="p", policy_version=1, arm=ARMS[1], maker_offset_bps=2.0, taker_bias=0.0, propensity=0.25,
        route_propensity=1.0, started_maker=True, is_maker_final=True, used_fallback=False, routed_as="maker",
        outcome="filled", reprice_count=0, cancel_count=0, post_only_reject_count=0, fills=(),
        filled_qty=0.01,
        avg_price=100.0, slippage_bps=-1.0, fees_bps=0.5, cost_bps=-0.5, time_to_fill_ms=120.0,
        realized_pnl_usd=None, error=None, finished_ts_ns=3_600_000_000_999,
    )  # fmt: skip
    fields.update(overrides)
    return RouterEvent(**fields)


def small_log(**overrides: Any) -> LoggedBandit:
    fields: dict[str, Any] = dict(
        actions=np.array([0, 1, 1, 2]),
        propensities=np.array([0.5, 0.25, 0.25, 0.25]),
        rewards=np.array([-1.0, -2.0, -3.0, -4.0]),
        arm_ids=ARMS,
    )
    fields.update(overrides)
    return LoggedBandit(**fields)


def test_from_events_maps_arm_propensity_reward_and_skips_unfilled() -> None:
    events = [
        router_event(intent_id="a", arm=ARMS[0], propensity=0.5, cost_bps=1.5, symbol="ETH/USDT:USDT"),
        router_event(intent_id="b", cost_bps=None, outcome="unfilled", routed_as="unfilled"),
        router_event(
            intent_id="c", arm=ARMS[2], propensity=1.0, cost_bps=-0.25, arrival_ts_ns=7_300_000_000_000
        ),
    ]
    contexts = np.array([[1.0, 0.1], [1.0, 0.2], [1.0, 0.3]])
    log = LoggedBandit.from_events(events, ARMS, contexts=contexts, time_slice_ns=3_600_000_000_000)
    assert log.skipped_unfilled == 1
    assert log.actions.tolist() == [0, 2]
    assert log.propensities.tolist() == [0.5, 1.0]
    assert log.rewards.tolist() == [-1.5, 0.25]
    assert log.contexts is not None and log.contexts[:, 1].tolist() == [0.1, 0.3]
    assert log.symbols is not None and log.symbols.tolist() == ["ETH/USDT:USDT", "BTC/USDT:USDT"]
    assert log.time_slices is not None and log.time_slices.tolist() == [3_600_000_000_000, 7_200_000_000_000]


def test_from_events_leaves_out_flagged_events_as_the_reward_filter_does_and_counts_them() -> None:
    """A venue_anomaly cost is not the arm's and a fee_unpriced one understates the fee: neither is scored, each is
    counted by flag (both flags: venue_anomaly, as tuner.reward ranks them); a message that merely names a flag is
    not one."""
    anomaly = "venue_anomaly(fill T1 of a-1 reported as taker on a post-only order)"
    unpriced = "fee_unpriced(fill T2 of b-1: fee 0.0002 BNB not priced in USDC)"
    events = [
        router_event(intent_id="ok", arm=ARMS[0], cost_bps=1.0),
        router_event(intent_id="a", arm=ARMS[1], cost_bps=-40.0, error=anomaly),
        router_event(intent_id="b", arm=ARMS[1], cost_bps=-1.0, error=unpriced),
        router_event(intent_id="ab", arm=ARMS[2], cost_bps=-9.0, error=f"settled on restart; {anomaly}; {unpriced}"),
        router_event(intent_id="text", arm=ARMS[2], cost_bps=2.0, error="binance: venue_anomaly fee_unpriced text"),
        router_event(intent_id="u", cost_bps=None, outcome="unfilled", routed_as="unfilled"),
    ]
    log = LoggedBandit.from_events(events, ARMS)
    assert log.rewards.tolist() == [-1.0, -2.0] and log.actions.tolist() == [0, 2]
    assert log.skipped_unfilled == 1
    assert log.skipped_flagged == {"venue_anomaly": 2, "fee_unpriced": 1}
    assert small_log().skipped_flagged == {"venue_anomaly": 0, "fee_unpriced": 0}
    with pytest.raises(LogError, match=r"no filled events among 2 \(2 filled events left out .*1 venue_anomaly, "
                                       r"1 fee_unpriced\)"):
        LoggedBandit.from_events(events[1:3], ARMS)
    with pytest.raises(LogError, match="skipped_flagged must count flags"):
        small_log(skipped_flagged={"unfilled": 1})


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"arm": "o9.00_b0.00"}, "not in arm_ids"),
        ({"propensity": 0.0}, r"not in \(0, 1\]"),
        ({"propensity": 1.5}, r"not in \(0, 1\]"),
        ({"propensity": math.nan}, r"not in \(0, 1\]"),
        ({"propensity": 1e-300}, r"propensity 1e-300, under 1e-150: its importance weight 1e\+300 is beyond"),
        ({"propensity": 5e-324}, r"propensity 5e-324, under 1e-150: its importance weight inf"),
        ({"cost_bps": math.inf}, "non-finite cost_bps"),
    ],
)
def test_from_events_rejects_bad_events(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(LogError, match=message):
        LoggedBandit.from_events([router_event(), router_event(**overrides)], ARMS)


def test_from_events_rejects_all_unfilled_and_misaligned_contexts() -> None:
    with pytest.raises(LogError, match="no filled events among 2"):
        LoggedBandit.from_events([router_event(cost_bps=None)] * 2, ARMS)
    with pytest.raises(LogError, match="one row per event"):
        LoggedBandit.from_events([router_event()] * 2, ARMS, contexts=np.zeros((3, 2)))
    with pytest.raises(LogError, match="time_slice_ns must be > 0"):
        LoggedBandit.from_events([router_event()], ARMS, time_slice_ns=0)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"propensities": np.array([0.5, 0.0, 0.25, 0.25])}, r"in \(0, 1\]: 1 bad, first at row 1"),
        ({"propensities": np.array([0.5, np.nan, 0.25, 0.25])}, "non-finite"),
        ({"propensities": np.array([0.5, 1e-300, 0.25, 0.25])}, "under 1e-150 make importance weights the "
                                                                 "estimators cannot sum: 1 such, first at row 1"),
        ({"rewards": np.array([-1.0, np.inf, 0.0, 0.0])}, "rewards contain 1 non-finite"),
        ({"rewards": np.zeros(3)}, r"shape \(4,\)"),
        ({"actions": np.array([0, 1, 1, 3])}, "must index arm_ids"),
        ({"actions": np.array([0.0, 1.0, 1.0, 2.0])}, "integer"),
        ({"arm_ids": ("a", "a", "b")}, "duplicates"),
        ({"contexts": np.zeros((3, 2))}, "contexts must have shape"),
        ({"logging_pi": np.full((4, 3), 0.5)}, "sum to 1"),
        ({"logging_pi": np.full((4, 3), 1 / 3)}, "disagrees with the logged propensity"),
        ({"symbols": np.array(["a"])}, "symbols must have shape"),
    ],
)
def test_logged_bandit_rejects_bad_columns(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(LogError, match=message):
        small_log(**overrides)


def test_empty_log_is_rejected() -> None:
    with pytest.raises(LogError, match="empty"):
        LoggedBandit(
            actions=np.array([], dtype=int), propensities=np.array([]), rewards=np.array([]), arm_ids=ARMS
        )


def test_subset_keeps_rows_aligned() -> None:
    log = small_log(
        symbols=np.array(["x", "y", "x", "y"], dtype=object), contexts=np.arange(8.0).reshape(4, 2)
    )
    part = log.subset(log.symbols == "y")
    assert part.actions.tolist() == [1, 2]
    assert part.rewards.tolist() == [-2.0, -4.0]
    assert part.contexts is not None and part.contexts[:, 0].tolist() == [2.0, 6.0]
    with pytest.raises(LogError, match="boolean"):
        log.subset(np.array([1, 0, 1, 0]))


def test_policy_helpers_build_valid_matrices() -> None:
    log = small_log(contexts=np.array([[0.0], [1.0], [2.0], [3.0]]))
    fixed = fixed_arm_policy(log, ARMS[2])
    assert fixed.shape == (4, 3) and fixed[:, 2].tolist() == [1.0] * 4 and fixed.sum() == 4.0
    mixed = stochastic_policy(log, {ARMS[0]: 0.25, ARMS[1]: 0.75})
    assert mixed[3].tolist() == [0.25, 0.75, 0.0]
    by_index = policy_from_callable(log, lambda x: (x[:, 0] % 3).astype(int))
    assert by_index.argmax(axis=1).tolist() == [0, 1, 2, 0]
    probs = policy_from_callable(log, lambda x: np.full((x.shape[0], 3), 1 / 3))
    assert np.allclose(probs.sum(axis=1), 1.0)
    named = policy_from_actions(log, [ARMS[1], ARMS[1], ARMS[0], ARMS[2]])
    assert named.argmax(axis=1).tolist() == [1, 1, 0, 2]


def test_policy_helpers_reject_bad_input() -> None:
    log = small_log()
    with pytest.raises(PolicyError, match="not in the log's arms"):
        fixed_arm_policy(log, "nope")
    with pytest.raises(PolicyError, match="not in the log's arms"):
        stochastic_policy(log, {"nope": 1.0})
    with pytest.raises(PolicyError, match="sum to 1"):
        stochastic_policy(log, {ARMS[0]: 0.5})
    with pytest.raises(PolicyError, match="no contexts"):
        policy_from_callable(log, lambda x: np.zeros(4, dtype=int))
    with pytest.raises(PolicyError, match="not in the log's arms"):
        policy_from_actions(log, [ARMS[0], ARMS[0], ARMS[0], "nope"])
    with pytest.raises(PolicyError, match="one arm per event"):
        policy_from_actions(log, [ARMS[0]])
    with pytest.raises(PolicyError, match="shape"):
        check_policy(np.ones((4, 2)) / 2, log)
    with pytest.raises(PolicyError, match=">= 0"):
        check_policy(np.array([[1.5, -0.5, 0.0]] * 4), log)
    with_ctx = small_log(contexts=np.zeros((4, 1)))
    with pytest.raises(PolicyError, match="integer arm indices"):
        policy_from_callable(with_ctx, lambda x: np.full(4, 3))


@settings(max_examples=50, deadline=None)
@given(
    st.lists(st.floats(min_value=0.0, max_value=10.0), min_size=3, max_size=3).filter(lambda v: sum(v) > 0)
)
def test_any_normalised_distribution_is_a_valid_policy(raw: list[float]) -> None:
    log = small_log()
    total = sum(raw)
    pi = stochastic_policy(log, {arm: value / total for arm, value in zip(ARMS, raw, strict=True)})
    assert np.allclose(pi.sum(axis=1), 1.0)
