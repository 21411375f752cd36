"""Configuration of the simulated venue: every fee, latency and fill-model knob, all required."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from router_tuner.config.models import PositionMode
from router_tuner.router.contract import ContractSpec, check_spec
from router_tuner.router.venues.sim.position import POSITION_MODES
from router_tuner.router.venues.sim.queue import LogProbQueue, PowerProbQueue, QueueModel, RiskAverseQueue

_QUEUE_MODEL_TYPES = (PowerProbQueue, LogProbQueue, RiskAverseQueue)


@dataclass(frozen=True, slots=True)
class SimVenueConfig:
    """Fees, latencies and fill-model parameters of a :class:`~router.venues.sim.venue.SimVenue`.

    Parameters
    ----------
    name:
        The venue's name as the router and the journal see it (e.g. ``"sim-binance-usdm"``).
    maker_fee_bps, taker_fee_bps:
        Fee rates per fill, ``fee_usd = notional_usd(contract, price, qty) * bps / 1e4``; negative is a
        rebate (maker only in practice, but both are allowed to be negative for exotic fee tiers).
    contracts:
        Per symbol the contract spec (``strategy_config.json`` universe entry or a
        :class:`~router.contract.Contract`): what a quantity is worth in USD. Every replayed symbol needs
        one; on inverse contracts ``qty`` is a number of contracts.
    order_entry_latency_ms:
        Time from ``place_order`` to the matching engine; ``place_order`` advances the replay by it.
    cancel_latency_ms:
        Time from ``cancel_order`` to the cancel taking effect; fills in between still land.
    latency_jitter_ms:
        Uniform extra latency in ``[0, jitter]`` drawn per request from the seeded generator.
    queue_model:
        How unexplained size decreases at our level move our queue position (see ``router.venues.sim.queue``).
    no_depth_level_qty_ratio:
        Impact assumption where the tape has no depth: each tick beyond the touch is assumed to hold
        ``ratio * touch size`` (at least one unit). Also used past the last known depth level.
    max_taker_walk_levels:
        A taker order needing more price levels than this is rejected instead of walking an imagined
        book (a simulated order that large is a caller bug, not a fill).
    seed:
        Seed of the one random generator (latency jitter); the replay is deterministic given it.
    position_mode:
        ``"hedge"`` (LONG and SHORT positions per symbol) or ``"one_way"`` (one net position, BOTH).
        One mode for the whole venue, as Binance USDⓈ-M applies ``dualSidePosition`` to every symbol
        and ``router.json`` has one ``position_mode``: a per-symbol mode would simulate an account
        that cannot exist live.
    """

    name: str
    maker_fee_bps: float
    taker_fee_bps: float
    contracts: Mapping[str, ContractSpec]
    order_entry_latency_ms: float
    cancel_latency_ms: float
    latency_jitter_ms: float
    queue_model: QueueModel
    no_depth_level_qty_ratio: float
    max_taker_walk_levels: int
    seed: int
    position_mode: PositionMode

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"SimVenueConfig.name must be a non-empty string, got {self.name!r}")
        for field_name in ("maker_fee_bps", "taker_fee_bps"):
            value = getattr(self, field_name)
            if not _is_real(value) or abs(value) > 1e3:
                raise ValueError(f"SimVenueConfig.{field_name} must be a finite number in [-1000, 1000] bps, "
                                 f"got {value!r}")
        if not isinstance(self.contracts, Mapping):
            raise ValueError(f"SimVenueConfig.contracts must map symbols to contract specs, got {self.contracts!r}")
        for symbol, spec in self.contracts.items():
            check_spec(spec, where=f"SimVenueConfig.contracts[{symbol!r}]")
        for field_name in ("order_entry_latency_ms", "cancel_latency_ms", "latency_jitter_ms"):
            value = getattr(self, field_name)
            if not _is_real(value) or value < 0:
                raise ValueError(f"SimVenueConfig.{field_name} must be a finite number >= 0, got {value!r}")
        if not isinstance(self.queue_model, _QUEUE_MODEL_TYPES):
            names = ", ".join(t.__name__ for t in _QUEUE_MODEL_TYPES)
            raise ValueError(f"SimVenueConfig.queue_model must be one of {names}, got {self.queue_model!r}")
        if not _is_real(self.no_depth_level_qty_ratio) or self.no_depth_level_qty_ratio <= 0:
            raise ValueError("SimVenueConfig.no_depth_level_qty_ratio must be a finite number > 0, "
                             f"got {self.no_depth_level_qty_ratio!r}")
        if isinstance(self.max_taker_walk_levels, bool) or not isinstance(self.max_taker_walk_levels, int) \
                or self.max_taker_walk_levels < 1:
            raise ValueError("SimVenueConfig.max_taker_walk_levels must be an int >= 1, "
                             f"got {self.max_taker_walk_levels!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"SimVenueConfig.seed must be an int >= 0, got {self.seed!r}")
        if self.position_mode not in POSITION_MODES:
            raise ValueError(f"SimVenueConfig.position_mode must be one of {POSITION_MODES}, "
                             f"got {self.position_mode!r}")


def _is_real(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
