"""The tuner service: one :class:`SymbolTuner` per symbol, built from configuration, with saved state.

Usage, from the executor loop or a simulation::

    service = TunerService.from_config(bundle, ["BTCUSDT"], InMemoryPublisher(), state_path=Path("var/tuner.json"))
    policy = service.decide("BTCUSDT", context)          # RouterPolicy with arm, offset, bias, propensity
    event = route(..., policy, ...)                       # the RouterEvent logs arm and propensity
    service.observe(event, context)                       # learn, guard, maybe publish a new version
    service.save()                                        # also done after every published version

State is two files written atomically: the learners' evidence at ``state_path`` (:mod:`tuner.state`)
and the tuners' versions and counters next to it (``<stem>.tuners.json``). They are written learners
first; a crash between the two writes leaves the learners at most one save ahead of the counters,
which only shifts when the next version is considered. A restart with ``state_path`` pointing at
existing files continues where the saved run stopped; without files it starts from the static policy.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

import msgspec

from config.models import ConfigBundle
from router.atomic_file import write_bytes_atomic
from router.events import RouterEvent
from router.policy import RouterPolicy
from tuner.factory import build_grid, build_guardrails, build_learner, build_reward_filter, symbol_seed
from tuner.learners import Context
from tuner.service_publish import PolicyPublisher
from tuner.service_symbol import ObserveResult, PublishRule, SymbolTuner, SymbolTunerState
from tuner.state import StateFileError, restore_state, save_state

TUNERS_FORMAT_VERSION = 1


class _TunersFile(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    format_version: int
    symbols: dict[str, SymbolTunerState]


def tuners_state_path(state_path: Path) -> Path:
    """Where the tuners' own state lives next to the learners' state file."""
    return state_path.with_name(f"{state_path.stem}.tuners.json")


class TunerService:
    """Routes ``decide``/``observe`` to each symbol's tuner and saves/restores all of them together."""

    def __init__(self, tuners: Mapping[str, SymbolTuner], state_path: Path | None) -> None:
        if not tuners:
            raise ValueError("a tuner service needs at least one symbol")
        for symbol, tuner in tuners.items():
            if tuner.symbol != symbol:
                raise ValueError(f"tuner for {tuner.symbol} registered under {symbol}")
        self._tuners = dict(tuners)
        self._state_path = Path(state_path) if state_path is not None else None

    @classmethod
    def from_config(
        cls,
        bundle: ConfigBundle,
        symbols: Iterable[str],
        publisher: PolicyPublisher,
        state_path: Path | None = None,
    ) -> TunerService:
        """Tuners for ``symbols`` (all in the universe), starting from the static policy or saved state."""
        wanted = list(symbols)
        unknown = sorted(set(wanted) - set(bundle.strategy.universe))
        if unknown:
            raise ValueError(f"symbols not in strategy_config.json universe: {unknown}")
        if len(set(wanted)) != len(wanted):
            raise ValueError(f"duplicate symbols: {wanted}")
        tuner_config, router = bundle.tuner, bundle.router
        rule = PublishRule(every_n_outcomes=tuner_config.publish.every_n_outcomes,
                           min_improvement_bps=tuner_config.publish.min_improvement_bps)
        tuners: dict[str, SymbolTuner] = {}
        for symbol in wanted:
            grid = build_grid(tuner_config, router)
            tuners[symbol] = SymbolTuner(
                RouterPolicy.from_static(symbol, router, policy_id=f"tuner-{symbol}"),
                bounds=router.policy_bounds,
                learner=build_learner(tuner_config, grid, symbol_seed(tuner_config.seed, symbol)),
                guardrails=build_guardrails(tuner_config, router),
                reward_filter=build_reward_filter(tuner_config),
                publish_rule=rule,
                publisher=publisher,
            )
        service = cls(tuners, state_path)
        if state_path is not None and (Path(state_path).exists() or tuners_state_path(Path(state_path)).exists()):
            service.restore()
        return service

    @property
    def symbols(self) -> tuple[str, ...]:
        return tuple(self._tuners)

    def tuner(self, symbol: str) -> SymbolTuner:
        try:
            return self._tuners[symbol]
        except KeyError:
            raise KeyError(f"no tuner for {symbol}; tuned symbols: {sorted(self._tuners)}") from None

    def decide(self, symbol: str, context: Context | None) -> RouterPolicy:
        """The acting policy for one order of ``symbol`` (see :meth:`SymbolTuner.decide`)."""
        return self.tuner(symbol).decide(context)

    def observe(self, event: RouterEvent, context: Context | None) -> ObserveResult:
        """Learn one outcome in its symbol's tuner; saves the state when a version was published."""
        result = self.tuner(event.symbol).observe(event, context)
        if result.published is not None and self._state_path is not None:
            self.save()
        return result

    def save(self) -> None:
        """Write learners and tuners to the state files (atomically each); needs a ``state_path``."""
        path = self._require_path()
        save_state(path, {symbol: tuner.learner for symbol, tuner in self._tuners.items()})
        doc = _TunersFile(format_version=TUNERS_FORMAT_VERSION,
                          symbols={symbol: tuner.to_state() for symbol, tuner in self._tuners.items()})
        write_bytes_atomic(tuners_state_path(path), msgspec.json.encode(doc))

    def restore(self) -> None:
        """Load both state files; raises :class:`StateFileError` when one is missing or does not fit."""
        path = self._require_path()
        side = tuners_state_path(path)
        for needed in (path, side):
            if not needed.exists():
                raise StateFileError(f"{needed}: missing (learner and tuner state are saved together)")
        try:
            doc = msgspec.json.decode(side.read_bytes(), type=_TunersFile)
        except msgspec.DecodeError as exc:
            raise StateFileError(f"{side}: {exc}") from exc
        if doc.format_version != TUNERS_FORMAT_VERSION:
            raise StateFileError(f"{side}: format version {doc.format_version}, this code reads "
                                 f"{TUNERS_FORMAT_VERSION}")
        if set(doc.symbols) != set(self._tuners):
            raise StateFileError(f"{side}: symbols {sorted(doc.symbols)} differ from {sorted(self._tuners)}")
        restore_state(path, {symbol: tuner.learner for symbol, tuner in self._tuners.items()})
        for symbol, tuner in self._tuners.items():
            tuner.load_state(doc.symbols[symbol])

    def _require_path(self) -> Path:
        if self._state_path is None:
            raise ValueError("this tuner service has no state_path")
        return self._state_path
