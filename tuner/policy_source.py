"""Where the router gets each symbol's acting RouterPolicy: the static config or the registry's champion.

:class:`RegistryPolicySource` loads every symbol's ``champion`` at start and re-reads the alias at most
every ``refresh_s`` seconds, so a ``promote`` or ``rollback`` reaches the router without a restart. A
champion without a gate record (an alias moved by hand) is not acted on; a failed re-read (store
unreachable, a champion that is not a valid policy) keeps the last good policy and is counted and
logged: routing on the previous champion is safer than not routing. MLflow is reached
only through the registry object passed in, so importing this module stays cheap.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import msgspec

from router_tuner.config.models import PolicyBounds, RouterConfig
from router_tuner.router.policy import PolicyError, RouterPolicy
from router_tuner.tuner.gate_record import gate_problem
from router_tuner.tuner.registry_aliases import CHAMPION

if TYPE_CHECKING:
    from router_tuner.tuner.registry import PolicyRegistry

log = logging.getLogger(__name__)


class PolicySource(Protocol):
    """The acting policy of a symbol, as the router should use it for the next order."""

    def current(self, symbol: str) -> RouterPolicy: ...


def policy_from_document(document: Mapping[str, Any], symbol: str, bounds: PolicyBounds) -> RouterPolicy:
    """A RouterPolicy from its published document (``RouterPolicy.as_params()``), checked and bounded.

    Raises :class:`PolicyError` for a document with missing, unknown or mistyped knobs, of another
    symbol, or outside ``bounds``.
    """
    given, known = set(document), {f.name for f in dataclasses.fields(RouterPolicy)}
    if given != known:
        raise PolicyError(f"{symbol}: not a RouterPolicy document: missing {sorted(known - given)}, "
                          f"unknown {sorted(given - known)}")
    try:
        policy = msgspec.convert(dict(document), RouterPolicy, strict=True)
    except (msgspec.ValidationError, TypeError) as error:
        raise PolicyError(f"{symbol}: not a RouterPolicy document: {error}") from error
    if policy.symbol != symbol:
        raise PolicyError(f"{symbol}: the published policy is for {policy.symbol}")
    return policy.validate(bounds)


class StaticPolicySource:
    """The static policy of ``router.json`` for every configured symbol (version 0, arm ``static``)."""

    def __init__(self, router: RouterConfig, symbols: Iterable[str]) -> None:
        self._policies = {symbol: RouterPolicy.from_static(symbol, router) for symbol in symbols}
        if not self._policies:
            raise ValueError("a policy source needs at least one symbol")

    def current(self, symbol: str) -> RouterPolicy:
        try:
            return self._policies[symbol]
        except KeyError:
            raise KeyError(f"no policy for {symbol}; configured: {sorted(self._policies)}") from None


@dataclass(frozen=True, slots=True)
class ChampionGateStatus:
    """The registry version the router acts on for one symbol, against what the ``champion`` alias names.

    ``problem`` says why the registry's champion is not acted on (no gate record, alias unset, knobs
    outside the bounds); ``None``
    when the router serves the registry's champion. For the health snapshot.
    """

    symbol: str
    served_version: int
    champion_version: int | None
    problem: str | None


class RegistryPolicySource:
    """Each symbol's registry ``champion``, re-read at most every ``refresh_s`` seconds (0: every call).

    A champion is acted on only when its model version carries a gate record
    (:func:`tuner.gate_record.gate_problem`): an alias moved in the MLflow UI without passing the OPE gate
    or a forced override with who and why leaves the router on the last gated champion, logs a warning
    and shows in :meth:`champion_gates` (and so in health) until the alias moves back or the version is
    accepted (``policy promote --version N --force --who --why``).

    Parameters
    ----------
    registry
        The policy registry (MLflow) the tuner publishes to.
    symbols
        Symbols to serve; each must have a gated champion at start (else :class:`RegistryError` when there
        is none, :class:`PolicyError` when it is ungated or not a valid policy).
    bounds
        ``router.json`` policy bounds; a champion outside them is refused.
    refresh_s
        Minimum seconds between two reads of a symbol's champion alias (>= 0).
    clock
        Monotonic seconds; a parameter so tests and simulations control time.
    """

    def __init__(self, registry: PolicyRegistry, symbols: Iterable[str], bounds: PolicyBounds, *,
                 refresh_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        if not refresh_s >= 0.0:
            raise ValueError(f"refresh_s must be >= 0, got {refresh_s!r}")
        self._registry = registry
        self._bounds = bounds
        self._refresh_s = float(refresh_s)
        self._clock = clock
        self._policies: dict[str, RouterPolicy] = {}
        self._read_at: dict[str, float] = {}
        self._served: dict[str, int] = {}
        self._champions: dict[str, int | None] = {}
        self._refused: dict[str, str] = {}
        self.refresh_errors = 0
        for symbol in symbols:
            champion = registry.show(symbol, CHAMPION)
            problem = gate_problem(registry.version_tags(symbol, champion.version))
            if problem is not None:
                raise PolicyError(f"{symbol}: champion version {champion.version} must not act: {problem}; accept "
                                  f"it with `router-tuner policy promote --symbol {symbol} --version "
                                  f"{champion.version} --force --who NAME --why TEXT` or move the alias back")
            self._policies[symbol] = policy_from_document(champion.policy, symbol, bounds)
            self._served[symbol] = self._champions[symbol] = champion.version
            self._read_at[symbol] = self._clock()
        if not self._policies:
            raise ValueError("a policy source needs at least one symbol")

    def current(self, symbol: str) -> RouterPolicy:
        """The gated champion as of the last read; re-reads when ``refresh_s`` has passed since then."""
        if symbol not in self._policies:
            raise KeyError(f"no policy for {symbol}; served: {sorted(self._policies)}")
        now = self._clock()
        if now - self._read_at[symbol] >= self._refresh_s:
            self._read_at[symbol] = now
            try:
                self._follow(symbol, self._registry.champion_version(symbol))
            except Exception as error:  # the store is outside our process: keep routing on the last champion
                self.refresh_errors += 1
                log.warning("%s: champion re-read failed, keeping %s v%d: %s", symbol,
                            self._policies[symbol].policy_id, self._policies[symbol].version, error)
        return self._policies[symbol]

    def champion_gates(self) -> tuple[ChampionGateStatus, ...]:
        """Per served symbol: the version acting, the registry's champion and why they differ, if they do."""
        return tuple(ChampionGateStatus(symbol=s, served_version=v, champion_version=self._champions[s],
                                        problem=self._refused.get(s)) for s, v in sorted(self._served.items()))

    def _follow(self, symbol: str, champion: int | None) -> None:
        """Act on registry version ``champion`` when it differs from the served one and its gate record holds.

        The version is read by number, not by alias, so the version checked is the version served.
        """
        self._champions[symbol] = champion
        if champion == self._served[symbol]:
            self._refused.pop(symbol, None)
            return
        problem = ("the champion alias is not set" if champion is None
                   else gate_problem(self._registry.version_tags(symbol, champion)))
        if problem is None:
            shown = self._registry.show(symbol, str(champion))
            try:
                self._policies[symbol] = policy_from_document(shown.policy, symbol, self._bounds)
            except PolicyError as error:  # published outside the tuner, or the bounds changed since
                self.refresh_errors += 1
                problem = f"not a policy to route on: {error}"
            else:
                self._served[symbol] = champion
                self._refused.pop(symbol, None)
                return
        if self._refused.get(symbol) != problem:
            log.warning("%s: registry champion v%s not acted on (%s), keeping gated v%d", symbol, champion, problem,
                        self._served[symbol])
        self._refused[symbol] = problem
