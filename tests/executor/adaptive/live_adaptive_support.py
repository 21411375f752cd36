"""Builders for the adaptive-routing tests (no tests here): one-symbol config, an executor with a tuner."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import msgspec

from router_tuner.config.models import ConfigBundle
from router_tuner.executor.adaptive.checkpoint import TunerCheckpoint
from router_tuner.executor.adaptive.routing import AdaptiveRouting
from router_tuner.executor.loop import Executor
from router_tuner.router.events import Intent
from router_tuner.tuner.policy_source import PolicySource, StaticPolicySource
from router_tuner.tuner.service.publish import InMemoryPublisher, PolicyPublisher
from router_tuner.tuner.shadow import with_shadow_symbols
from tests.executor.test_executor_support import build_executor, executor_config, intent, paper_config_dir

SYMBOL = "BTCUSDT"
STEP_NS = 2_000_000_000  # paper time between two intents


def _replace(struct: Any, **changes: Any) -> Any:
    return msgspec.structs.replace(struct, **changes)


def adaptive_config(*, shadow: bool = False, checkpoint_every: int = 1, duration_s: float = 7200.0) -> ConfigBundle:
    """BTCUSDT only on the synthetic paper market; optionally in shadow mode."""
    base = executor_config(duration_s=duration_s)
    ex = base.executor
    executor = _replace(ex, instruments={SYMBOL: ex.instruments[SYMBOL]},
                        paper=_replace(ex.paper, synthetic={SYMBOL: ex.paper.synthetic[SYMBOL]}),
                        adaptive=_replace(ex.adaptive, checkpoint_every_n_events=checkpoint_every))
    bundle = _replace(base, executor=executor)
    return with_shadow_symbols(bundle, (SYMBOL,)) if shadow else bundle


def adaptive_executor(config: ConfigBundle, venue: Any, tmp_path: Path, *, publisher: PolicyPublisher | None = None,
                      champion: PolicySource | None = None) -> tuple[Executor, AdaptiveRouting]:
    """An executor on tmp files routing with a tuner (static champion, in-memory publisher by default)."""
    executor, journal, _store = build_executor(config, venue, tmp_path)
    adaptive = AdaptiveRouting.open(
        bundle=config, publisher=publisher if publisher is not None else InMemoryPublisher(),
        champion=champion if champion is not None else StaticPolicySource(config.router, [SYMBOL]),
        checkpoint=TunerCheckpoint(tmp_path / "tuner_state.json"), journal_router_events=journal.count("router"),
        modes=None)
    executor.adaptive = adaptive
    executor.policy_for = adaptive.current
    return executor, adaptive


def round_trip(k: int) -> Intent:
    """Intent ``k`` of a flat-every-two stream: even opens a long, odd closes it."""
    if k % 2 == 0:
        return intent(f"i{k}", size_hint_usd=300.0)
    return intent(f"i{k}", side="sell", close_position=True, size_hint_usd=300.0)


def paper_tuner_files(folder: Path, intents: int, *, rollback: bool = False) -> Path:
    """In ``folder``, the config directory (returned) and ``intents.jsonl`` of a paper ``live --policy-source tuner``
    run on ``intents`` round trips of BTCUSDT (the synthetic market): the tuner publishes v1 after 15 outcomes and v2
    after 30; with ``rollback`` a rollback window of 5 outcomes and no margin, so v2 is its rollback to the static
    knobs (``tests/cli/test_crash_points.py`` and ``experiments.crash_sweep`` kill such runs)."""
    from router_tuner.config.loader import DEFAULTS_DIR
    from tests.conftest import edit_config

    config = folder / "config"
    shutil.copytree(DEFAULTS_DIR, config)
    paper_config_dir(config, "BTCUSDT")
    edit_config(config, "tuner.json", lambda d: (d["learner_params"].update(burn_in_per_arm=1),
                                                 d["guardrails"].update(min_outcomes_before_move=10),
                                                 d["publish"].update(every_n_outcomes=15)))
    if rollback:
        edit_config(config, "tuner.json",
                    lambda d: d["guardrails"].update(rollback_window=5, rollback_margin_bps=0.001))
    (folder / "intents.jsonl").write_bytes(b"".join(msgspec.json.encode(round_trip(k)) + b"\n" for k in range(intents)))
    return config


def run_intents(executor: Executor, ks: range) -> None:
    for k in ks:
        executor.process(round_trip(k))
        executor.venue.clock.sleep_until(executor.venue.clock.now_ns() + STEP_NS)
