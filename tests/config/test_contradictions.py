"""Values valid alone that contradict another key or file: refused at load with the file and key, instead of an
unexpected error in the middle of a run (or alerts that silently never fire)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from router_tuner.config.loader import load_config
from tests.conftest import config_issues, edit_config

Edit = Callable[[dict[str, Any]], None]


def _rule(**values: float) -> Edit:
    return lambda data: data["simulation"]["rule_policy"].update(values)


def _static(**values: float) -> Edit:
    return lambda data: data["static_policy"].update(values)


def _fees(market: str, **values: float) -> Edit:
    return lambda data: data["sim_venue"]["fees"][market].update(values)


def _taker_bias_from_half(data: dict[str, Any]) -> None:
    data["policy_bounds"]["taker_bias"] = {"min": 0.5, "max": 1.0}
    data["static_policy"]["taker_bias"] = 0.5
    data["simulation"]["rule_policy"]["degraded_taker_bias"] = 0.5


@pytest.mark.parametrize(("file", "edit", "expected"), [
    ("router.json", _rule(base_offset_bps=40.0, max_offset_bps=50.0),
     ["router.json: $.simulation.rule_policy.base_offset_bps: 40.0 is outside policy_bounds.maker_offset_bps "
      "[-1.0, 10.0]",
      "router.json: $.simulation.rule_policy.max_offset_bps: 50.0 is outside policy_bounds.maker_offset_bps "
      "[-1.0, 10.0]"]),
    ("router.json", _rule(min_offset_bps=-2.0),
     ["router.json: $.simulation.rule_policy.min_offset_bps: -2.0 is outside policy_bounds.maker_offset_bps "
      "[-1.0, 10.0]"]),
    ("router.json", lambda data: (data["policy_bounds"].update(taker_bias={"min": 0.0, "max": 0.5}),
                                  data["simulation"]["rule_policy"].update(degraded_taker_bias=0.9)),
     ["router.json: $.simulation.rule_policy.degraded_taker_bias: 0.9 is outside policy_bounds.taker_bias "
      "[0.0, 0.5]",
      "tuner.json: $.arms.taker_biases[1]: 1.0 is outside router.json policy_bounds [0.0, 0.5]"]),
])
def test_the_rule_policy_stays_inside_the_policy_bounds(config_dir: Path, file: str, edit: Edit,
                                                        expected: list[str]) -> None:
    """It used to pass the load and stop `simulate` after the data had loaded: 'unexpected ValueError', exit 1."""
    edit_config(config_dir, file, edit)
    assert config_issues(config_dir) == expected


def test_taker_bias_bounds_without_zero_are_refused_for_the_rule_policy(config_dir: Path) -> None:
    """The rule policy routes with taker bias 0 while quality is good: bounds from 0.5 stopped `simulate` with an
    unexpected PolicyError on its first rule version."""
    edit_config(config_dir, "router.json", _taker_bias_from_half)
    edit_config(config_dir, "tuner.json", lambda data: data["arms"].update(taker_biases=[0.5, 1.0]))
    assert config_issues(config_dir) == [
        "router.json: $.policy_bounds.taker_bias: [0.5, 1.0] leaves out taker bias 0, which "
        "simulation.rule_policy routes with while quality is good"]


@pytest.mark.parametrize(("file", "edit", "expected"), [
    ("router.json", _static(maker_offset_bps=8.0),  # the grid stops at 4, two bps a step
     "tuner.json: $.arms.maker_offsets_bps: no value is one step from router.json static_policy.maker_offset_bps 8, "
     "where every learner starts, in steps of guardrails.max_offset_step_bps 2: add one, or move the static policy "
     "onto the grid"),
    ("tuner.json", lambda data: data["arms"].update(maker_offsets_bps=[10.0]),
     "tuner.json: $.arms.maker_offsets_bps: no value is one step from router.json static_policy.maker_offset_bps 1, "
     "where every learner starts, in steps of guardrails.max_offset_step_bps 2: add one, or move the static policy "
     "onto the grid"),
    ("tuner.json", lambda data: (data["arms"].update(taker_biases=[1.0]),
                                 data["guardrails"].update(max_bias_step=0.5)),
     "tuner.json: $.arms.taker_biases: no value is one step from router.json static_policy.taker_bias 0, where every "
     "learner starts, in steps of guardrails.max_bias_step 0.5: add one, or move the static policy onto the grid"),
])
def test_an_arm_grid_out_of_one_step_of_the_static_policy_is_refused(config_dir: Path, file: str, edit: Edit,
                                                                     expected: str) -> None:
    """Every tuner starts at the static policy and publishes one guardrail step at a time: out of reach, `simulate`
    stopped at its first learner order with an unexpected GuardrailError."""
    edit_config(config_dir, file, edit)
    assert config_issues(config_dir) == [expected]


@pytest.mark.parametrize(("edit", "expected"), [
    (lambda data: data["guardrails"].update(max_offset_step_bps=0.01),
     "tuner.json: $.arms.maker_offsets_bps: 0, 0.5, 2, 4 cannot be reached from router.json "
     "static_policy.maker_offset_bps 1, where every learner starts, in steps of guardrails.max_offset_step_bps 0.01"),
    (lambda data: data["guardrails"].update(max_bias_step=0.5),
     "tuner.json: $.arms.taker_biases: 1 cannot be reached from router.json static_policy.taker_bias 0, where every "
     "learner starts, in steps of guardrails.max_bias_step 0.5"),
])
def test_a_step_no_version_could_ever_move_by_is_refused(config_dir: Path, edit: Edit, expected: str) -> None:
    """A step of 0.01 bps loaded, and every learner but structured routed the static arm throughout, silently."""
    edit_config(config_dir, "tuner.json", edit)
    assert config_issues(config_dir) == [
        f"{expected}: no published version could ever move, and no learner but structured would try another value; "
        "add values in between, or widen the step"]


def test_a_step_that_reaches_part_of_the_grid_loads(config_dir: Path) -> None:
    """Publishing 2 but never 4 (a gap of two) is a choice a sweep of steps makes: not refused."""
    edit_config(config_dir, "tuner.json", lambda data: data["guardrails"].update(max_offset_step_bps=1.0))
    assert load_config(config_dir).tuner.guardrails.max_offset_step_bps == 1.0


def test_a_grid_joined_in_steps_from_the_start_loads(config_dir: Path) -> None:
    edit_config(config_dir, "tuner.json", lambda data: (data["arms"].update(maker_offsets_bps=[-1.0, 3.0, 5.0, 7.0]),
                                                        data["guardrails"].update(max_offset_step_bps=2.0)))
    assert load_config(config_dir).tuner.arms.maker_offsets_bps == (-1.0, 3.0, 5.0, 7.0)  # 1 -> -1 or 3, then on


def test_an_arm_exactly_one_step_away_is_reachable(config_dir: Path) -> None:
    edit_config(config_dir, "router.json", _static(maker_offset_bps=6.0))  # 4.0 is the grid's last, 2 bps away
    assert load_config(config_dir).router.static_policy.maker_offset_bps == 6.0


@pytest.mark.parametrize(("file", "edit", "expected"), [
    ("router.json", _fees("usdm", maker_fee_bps=900.0, taker_fee_bps=-900.0),
     ["router.json: $.sim_venue.fees.usdm.maker_fee_bps: 900 bps is outside tuner.json reward_band [-50, 200]: "
      "every maker fill would be rejected as an absurd cost and never learned; fix the fee or widen the band",
      "router.json: $.sim_venue.fees.usdm.taker_fee_bps: -900 bps is outside tuner.json reward_band [-50, 200]: "
      "every taker fill would be rejected as an absurd cost and never learned; fix the fee or widen the band"]),
    ("tuner.json", lambda data: data["reward_band"].update(max_cost_bps=8.0),  # spot takers pay 10
     ["router.json: $.sim_venue.fees.spot.maker_fee_bps: 10 bps is outside tuner.json reward_band [-50, 8]: "
      "every maker fill would be rejected as an absurd cost and never learned; fix the fee or widen the band",
      "router.json: $.sim_venue.fees.spot.taker_fee_bps: 10 bps is outside tuner.json reward_band [-50, 8]: "
      "every taker fill would be rejected as an absurd cost and never learned; fix the fee or widen the band"]),
])
def test_a_fee_outside_the_reward_band_is_refused(config_dir: Path, file: str, edit: Edit,
                                                  expected: list[str]) -> None:
    """With both fees outside, every outcome was rejected and `simulate` ended in 'unexpected ValueError: structured
    learner has no evidence on any arm'."""
    edit_config(config_dir, file, edit)
    assert config_issues(config_dir) == expected


@pytest.mark.parametrize(("maker", "taker"), [(-40.0, -10.0), (2.0, -5.0), (-6.0, 5.0)])
def test_fees_that_pay_for_a_round_trip_are_refused(config_dir: Path, maker: float, taker: float) -> None:
    """Maker -40 and taker -10 loaded, and `simulate` reported every policy earning (always taker -10 bps, best fixed
    arm -32): a run that measures nothing."""
    edit_config(config_dir, "router.json", _fees("usdm", maker_fee_bps=maker, taker_fee_bps=taker))
    assert config_issues(config_dir) == [
        f"router.json: $.sim_venue.fees.usdm: maker_fee_bps {maker:g} + taker_fee_bps {taker:g} is {maker + taker:g} "
        "bps: a round trip (a maker fill, then a taker fill back at the same price) would earn money, which no venue "
        "pays; keep a maker rebate no larger than the taker fee (a sign slipped?)"]


@pytest.mark.parametrize(("maker", "taker"), [(-0.5, 5.0), (-5.0, 5.0), (10.0, 2.0), (0.0, 0.0)])
def test_a_rebate_or_an_inverted_schedule_loads(config_dir: Path, maker: float, taker: float) -> None:
    edit_config(config_dir, "router.json", _fees("usdm", maker_fee_bps=maker, taker_fee_bps=taker))
    assert load_config(config_dir).router.sim_venue.fees["usdm"].maker_fee_bps == maker


def test_alerts_waiting_for_more_orders_than_the_health_window_holds_are_refused(config_dir: Path) -> None:
    """The ratio alerts wait for ``min_orders`` orders in a window of ``window_events``: above it they never fired,
    silently."""
    edit_config(config_dir, "executor.json", lambda data: data["alerts"].update(min_orders=501))
    assert config_issues(config_dir) == [
        "executor.json: $.alerts.min_orders: 501 must be at most health.window_events 500: the health window never "
        "holds more orders, so the fallback and slippage alerts could never fire"]


@pytest.mark.parametrize(("file", "edit", "path", "value"), [
    ("executor.json", lambda data: data["instruments"]["BTCUSDT"].update(tick_size=1000.0),
     "executor.json: $.instruments.BTCUSDT.tick_size", "1000"),
    ("executor.json", lambda data: data["instruments"]["ETHUSDT"].update(qty_step=0.003),
     "executor.json: $.instruments.ETHUSDT.qty_step", "0.003"),
    ("router.json", lambda data: data["simulation"]["synthetic_market"].update(tick_size=0.3),
     "router.json: $.simulation.synthetic_market.tick_size", "0.3"),
])
def test_a_tick_or_lot_the_markets_cannot_replay_is_refused(config_dir: Path, file: str, edit: Edit, path: str,
                                                            value: str) -> None:
    """A tick of 1000 loaded, then stopped `live` with 'venue not started: ValueError: tick_size must be 1/n for an
    integer n' (exit 1); on the synthetic market `simulate` stopped likewise."""
    edit_config(config_dir, file, edit)
    assert config_issues(config_dir) == [f"{path}: {value} is not 1/n for a whole n (like 1, 0.5, 0.1 or 0.001): "
                                         "prices and quantities are replayed as whole numbers of it"]


@pytest.mark.parametrize("step", [1.0, 0.5, 0.25, 0.1, 0.01, 0.001, 1e-8])
def test_unit_fraction_steps_load(config_dir: Path, step: float) -> None:
    edit_config(config_dir, "executor.json", lambda data: data["instruments"]["BTCUSDT"].update(tick_size=step))
    assert load_config(config_dir).executor.instruments["BTCUSDT"].tick_size == step


@pytest.mark.parametrize(("file", "edit", "expected"), [
    ("executor.json", lambda data: data["paper"]["synthetic"]["BTCUSDT"].update(quote_interval_ms=1.0),
     "executor.json: $.paper.synthetic.BTCUSDT: paper.duration_s 21600 s at one quote every 1 ms and 5 trades a "
     "second is 2.17e+07 events, over the 5,000,000 a synthetic tape may hold in memory: raise quote_interval_ms or "
     "lower the rate or the duration"),
    ("router.json", lambda data: data["simulation"]["synthetic_market"].update(duration_s=86400.0,
                                                                               trade_rate_per_s=100.0),
     "router.json: $.simulation.synthetic_market: duration_s 86400 s at one quote every 100 ms and 100 trades a "
     "second is 9.5e+06 events, over the 5,000,000 a synthetic tape may hold in memory: raise quote_interval_ms or "
     "lower the rate or the duration"),
])
def test_a_synthetic_market_too_big_to_generate_is_refused(config_dir: Path, file: str, edit: Edit,
                                                           expected: str) -> None:
    """A 1 ms quote interval over the 6 h paper duration took 2 GB and half a minute before `live` routed anything;
    at 0.1 ms the machine ran out of memory."""
    edit_config(config_dir, file, edit)
    assert config_issues(config_dir) == [expected]


@pytest.mark.parametrize(("simulated", "live"), [
    ("sim-router-policy", "sim-router-policy"),             # the simulation registered into the live models
    ("router-policy-sim", "router-policy"),
    ("sim-router-policy", "sim-router-policy-structured"),  # live BTCUSDT = the structured learner's simulated one
])
def test_simulated_and_live_model_prefixes_that_overlap_are_refused(config_dir: Path, simulated: str,
                                                                    live: str) -> None:
    """It was refused only after a whole `simulate` run ("unexpected ValueError", exit 1), and a live prefix
    extending the simulation's not at all: `simulate` registered its structured versions as the live models."""
    edit_config(config_dir, "router.json", lambda data: data["simulation"].update(registered_model_prefix=simulated))
    edit_config(config_dir, "tuner.json", lambda data: data["mlflow"].update(registered_model_prefix=live))
    assert config_issues(config_dir) == [
        f"router.json: $.simulation.registered_model_prefix: {simulated!r} would put simulated policy versions among "
        f"the live models of tuner.json mlflow.registered_model_prefix {live!r} (neither may be the other or start "
        "with it and a dash); choose another prefix"]


def test_model_prefixes_that_only_share_letters_load(config_dir: Path) -> None:
    edit_config(config_dir, "tuner.json",
                lambda data: data["mlflow"].update(registered_model_prefix="sim-router-policy2"))
    load_config(config_dir)


def test_a_markout_horizon_past_the_tape_end_is_refused(config_dir: Path) -> None:
    """An hour loaded: the last orders' markout (and with reward_markout_horizon_ms their learned cost) was the
    move to the tape's last quote, silently."""
    edit_config(config_dir, "router.json", lambda data: data["simulation"].update(markout_horizon_ms=3_600_000.0))
    edit_config(config_dir, "tuner.json", lambda data: data.update(reward_markout_horizon_ms=15_001.0))
    assert config_issues(config_dir) == [
        "router.json: $.simulation.markout_horizon_ms: 3.6e+06 ms is longer than router.json "
        "simulation.intents.tail_ms 15000 ms: the last orders' markout would look past the tape's end; lower it or "
        "raise tail_ms",
        "tuner.json: $.reward_markout_horizon_ms: 15001 ms is longer than router.json simulation.intents.tail_ms "
        "15000 ms: the last orders' markout would look past the tape's end; lower it or raise tail_ms"]
    edit_config(config_dir, "router.json", lambda data: data["simulation"].update(markout_horizon_ms=15_000.0))
    edit_config(config_dir, "tuner.json", lambda data: data.update(reward_markout_horizon_ms=15_000.0))
    load_config(config_dir)


@pytest.mark.parametrize(("key", "what"), [("order_entry_latency_ms", "orders"), ("cancel_latency_ms", "cancels")])
def test_a_venue_latency_past_the_tape_end_is_refused(config_dir: Path, key: str, what: str) -> None:
    """An hour loaded: with the entry latency `simulate` refused "no order of any fixed arm filled … check that the
    data trades", blaming the data; with the cancel latency it ran, makers that no cancel could reach resting until
    they filled. The fill model's jitter (5 ms) counts: 14995 ms still loads."""
    edit_config(config_dir, "router.json", lambda data: data["sim_venue"].update({key: 3_600_000.0}))
    assert config_issues(config_dir) == [
        f"router.json: $.sim_venue.{key}: 3.6e+06 ms plus simulation.fill_model.latency_jitter_ms 5 ms is longer than "
        f"router.json simulation.intents.tail_ms 15000 ms: the last {what} would reach the venue after the tape's end; "
        "lower it or raise tail_ms"]
    edit_config(config_dir, "router.json", lambda data: data["sim_venue"].update({key: 14_995.0}))
    load_config(config_dir)


def test_an_imbalance_gate_no_book_can_meet_is_refused(config_dir: Path) -> None:
    """1.0 loaded: a book leans 1 only with nothing on the other side, and paper `live` vetoed 30 of 30 intents
    orderbook_imbalance_below_gate, with no word at start."""
    edit_config(config_dir, "strategy_config.json", lambda data: data["screener"].update(orderbook_imbalance_gate=1.0))
    assert config_issues(config_dir) == [
        "strategy_config.json: $.screener.orderbook_imbalance_gate: 1: a book leans 1 only with nothing on the other "
        "side, so every opening intent would be vetoed orderbook_imbalance_below_gate; set it below 1, or "
        "require_imbalance_alignment false"]
    edit_config(config_dir, "strategy_config.json", lambda data: data["screener"].update(
        require_imbalance_alignment=False))
    load_config(config_dir)
