"""Where the router gets each symbol's acting RouterPolicy: the static config or the registry's champion.

:class:`RegistryPolicySource` loads every symbol's ``champion`` at start and re-reads the alias at most
every ``refresh_s`` seconds, so a ``promote`` or ``rollback`` reaches the router without a restart. A
failed re-read (store unreachable, a champion that is not a valid policy) keeps the last good policy and
is counted and logged: routing on the previous champion is safer than not routing. MLflow is reached
only through the registry object passed in, so importing this module stays cheap.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, Protocol

import msgspec

from config.models import PolicyBounds, RouterConfig
from router.policy import PolicyError, RouterPolicy
from tuner.registry_aliases import CHAMPION

if TYPE_CHECKING:
    from tuner.registry import PolicyRegistry

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


class RegistryPolicySource:
    """Each symbol's registry ``champion``, re-read at most every ``refresh_s`` seconds (0: every call).

    Parameters
    ----------
    registry
        The policy registry (MLflow) the tuner publishes to.
    symbols
        Symbols to serve; each must have a champion at start (else :class:`RegistryError`).
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
        self._versions: dict[str, int] = {}
        self._read_at: dict[str, float] = {}
        self.refresh_errors = 0
        for symbol in symbols:
            self._read(symbol)
            self._read_at[symbol] = self._clock()
        if not self._policies:
            raise ValueError("a policy source needs at least one symbol")

    def current(self, symbol: str) -> RouterPolicy:
        """The champion as of the last read; re-reads when ``refresh_s`` has passed since then."""
        if symbol not in self._policies:
            raise KeyError(f"no policy for {symbol}; served: {sorted(self._policies)}")
        now = self._clock()
        if now - self._read_at[symbol] >= self._refresh_s:
            self._read_at[symbol] = now
            try:
                if self._registry.champion_version(symbol) != self._versions[symbol]:
                    self._read(symbol)
            except Exception as error:  # the store is outside our process: keep routing on the last champion
                self.refresh_errors += 1
                log.warning("%s: champion re-read failed, keeping %s v%d: %s", symbol,
                            self._policies[symbol].policy_id, self._policies[symbol].version, error)
        return self._policies[symbol]

    def _read(self, symbol: str) -> None:
        """Download the champion's policy document; only when its version changed after the first read."""
        champion = self._registry.show(symbol, CHAMPION)
        self._policies[symbol] = policy_from_document(champion.policy, symbol, self._bounds)
        self._versions[symbol] = champion.version
