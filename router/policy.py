"""``RouterPolicy``: the per-symbol knobs the routing state machine runs on, static or chosen by the tuner.

A policy is a frozen value: the tuner publishes a new version instead of mutating one, so every
RouterEvent names exactly the knobs it ran under (policy id, version, arm and the arm's propensity).
Bounds come from ``router.json`` (``PolicyBounds``); ``validate`` is the one place they are enforced.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace
from typing import get_args

from router_tuner.config.models import FallbackMode, PolicyBounds, RouterConfig

STATIC_ARM = "static"
"""Arm id of the configured static policy; its propensity is 1.0 (a deterministic logging policy)."""

_FALLBACK_MODES: frozenset[str] = frozenset(get_args(FallbackMode))
_SET = object.__setattr__  # how a frozen dataclass sets its own fields
BOUNDED_KNOBS: tuple[str, ...] = (
    "maker_offset_bps", "taker_bias", "maker_ttl_ms", "reprice_attempts", "reprice_step_bps",
    "max_taker_slippage_bps",
)
"""The knobs ``router.json`` ``policy_bounds`` bounds (``RouterPolicy.validate``; ``ope`` checks a policy file's)."""


class PolicyError(ValueError):
    """A policy that must not be routed on; the message names the knob and the offending value."""


@dataclass(frozen=True, slots=True)
class RouterPolicy:
    """How one symbol's orders are routed: maker-first with a TTL, re-prices and a fallback.

    Parameters
    ----------
    policy_id, version:
        Identity of the published policy; every RouterEvent records both.
    symbol:
        The symbol this policy routes (our name, as in ``strategy_config.json``).
    maker_first:
        When false, every order goes straight to the taker leg.
    maker_offset_bps:
        Distance of the post-only price from our side's touch; positive is passive (behind the best),
        negative improves the touch inside the spread and is still post-only (never crosses).
    taker_bias:
        Probability of sending an order straight to the taker leg even when ``maker_first``.
    maker_ttl_ms:
        How long each post-only order may rest before it is re-priced or falls back.
    reprice_attempts, reprice_step_bps:
        How many times a resting order is moved toward the touch, and by how much each time.
    post_only_retry_limit:
        How many post-only rejections are re-priced from the new touch before falling back.
    fallback_mode:
        What happens to the unfilled remainder: ``taker`` crosses with a capped marketable limit,
        ``repost`` joins the touch for one more TTL, ``cancel`` gives up.
    max_taker_slippage_bps:
        Cap of any taker leg: a marketable limit at arrival mid plus (buy) or minus (sell) this.
    min_spread_bps, max_spread_bps:
        Spread clamps. Below the minimum the maker leg earns too little to wait for: the order crosses.
        Above the maximum the touch is not trusted for posting: the order crosses only when the far touch
        lies within ``max_taker_slippage_bps`` of the mid, else it is skipped.
    arm, propensity:
        The learner's arm and the probability it had of choosing it (``static`` and 1.0 otherwise).

    Examples
    --------
    >>> from router_tuner.config.loader import load_config
    >>> policy = RouterPolicy.from_static("BTCUSDT", load_config().router)
    >>> (policy.arm, policy.propensity, policy.fallback_mode)
    ('static', 1.0, 'taker')
    >>> tuned = policy.with_arm("off0.5_bias0.1", maker_offset_bps=0.5, taker_bias=0.1, propensity=0.25,
    ...                         version=2)
    >>> (tuned.version, tuned.maker_offset_bps, tuned.arm)
    (2, 0.5, 'off0.5_bias0.1')
    """

    policy_id: str
    version: int
    symbol: str
    maker_first: bool
    maker_offset_bps: float
    taker_bias: float
    maker_ttl_ms: float
    reprice_attempts: int
    reprice_step_bps: float
    post_only_retry_limit: int
    fallback_mode: FallbackMode
    max_taker_slippage_bps: float
    min_spread_bps: float
    max_spread_bps: float
    arm: str
    propensity: float

    def __post_init__(self) -> None:
        for name in ("policy_id", "symbol", "arm"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value:
                raise PolicyError(f"RouterPolicy.{name} must be a non-empty string, got {value!r}")
        for name in ("version", "reprice_attempts", "post_only_retry_limit"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise PolicyError(f"RouterPolicy.{name} must be an integer >= 0, got {value!r}")
        if not isinstance(self.maker_first, bool):
            raise PolicyError(f"RouterPolicy.maker_first must be a bool, got {self.maker_first!r}")
        if self.fallback_mode not in _FALLBACK_MODES:
            raise PolicyError(f"RouterPolicy.fallback_mode must be one of {sorted(_FALLBACK_MODES)}, "
                              f"got {self.fallback_mode!r}")
        for name in ("maker_offset_bps", "taker_bias", "maker_ttl_ms", "reprice_step_bps",
                     "max_taker_slippage_bps", "min_spread_bps", "max_spread_bps", "propensity"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                raise PolicyError(f"RouterPolicy.{name} must be a finite number, got {value!r}")
        if not 0.0 <= self.taker_bias <= 1.0:
            raise PolicyError(f"RouterPolicy.taker_bias must be a probability in [0, 1], got {self.taker_bias}")
        if not 0.0 < self.propensity <= 1.0:
            raise PolicyError(f"RouterPolicy.propensity must be in (0, 1], got {self.propensity}")
        if self.maker_ttl_ms <= 0.0:
            raise PolicyError(f"RouterPolicy.maker_ttl_ms must be > 0, got {self.maker_ttl_ms}")
        if self.reprice_step_bps < 0.0:
            raise PolicyError(f"RouterPolicy.reprice_step_bps must be >= 0, got {self.reprice_step_bps}")
        if self.max_taker_slippage_bps <= 0.0:
            raise PolicyError(f"RouterPolicy.max_taker_slippage_bps must be > 0, "
                              f"got {self.max_taker_slippage_bps}")
        if not 0.0 <= self.min_spread_bps < self.max_spread_bps:
            raise PolicyError(f"RouterPolicy spread clamps need 0 <= min_spread_bps < max_spread_bps, "
                              f"got min_spread_bps={self.min_spread_bps}, max_spread_bps={self.max_spread_bps}")

    @classmethod
    def from_static(cls, symbol: str, router: RouterConfig, *, policy_id: str | None = None) -> RouterPolicy:
        """The configured static policy for ``symbol`` as version 0, validated against the bounds.

        ``policy_id`` defaults to ``static-<symbol>``: the id names where the knobs came from.
        """
        static = router.static_policy
        policy = cls(
            policy_id=policy_id if policy_id is not None else f"static-{symbol}",
            version=0,
            symbol=symbol,
            maker_first=static.maker_first,
            maker_offset_bps=static.maker_offset_bps,
            taker_bias=static.taker_bias,
            maker_ttl_ms=static.maker_ttl_ms,
            reprice_attempts=static.reprice_attempts,
            reprice_step_bps=static.reprice_step_bps,
            post_only_retry_limit=static.post_only_retry_limit,
            fallback_mode=static.fallback_mode,
            max_taker_slippage_bps=static.max_taker_slippage_bps,
            min_spread_bps=static.min_spread_bps,
            max_spread_bps=static.max_spread_bps,
            arm=STATIC_ARM,
            propensity=1.0,
        )
        policy.validate(router.policy_bounds)
        return policy

    def validate(self, bounds: PolicyBounds) -> RouterPolicy:
        """Raise ``PolicyError`` naming the first knob outside ``bounds``; return ``self`` when inside."""
        for knob in BOUNDED_KNOBS:
            band = getattr(bounds, knob)
            value = getattr(self, knob)
            if not band.min <= value <= band.max:
                raise PolicyError(f"{self.policy_id} v{self.version} ({self.symbol}): {knob}={value} is outside "
                                  f"policy_bounds [{band.min}, {band.max}]")
        return self

    def with_arm(self, arm_id: str, maker_offset_bps: float, taker_bias: float, propensity: float,
                 version: int) -> RouterPolicy:
        """A new version carrying the tuner's arm; the caller validates it against the bounds."""
        if version <= self.version:
            raise PolicyError(f"{self.policy_id}: a new version must exceed {self.version}, got {version}")
        return replace(self, arm=arm_id, maker_offset_bps=maker_offset_bps, taker_bias=taker_bias,
                       propensity=propensity, version=version)

    def with_propensity(self, propensity: float) -> RouterPolicy:
        """This policy with another ``propensity`` (the tuner's per-decision copy of a pre-validated arm).

        Only the propensity is checked: every other field is this policy's, already checked, so the
        copy skips ``__post_init__`` (a decision's hot path; ``replace`` would re-check all sixteen).
        """
        if isinstance(propensity, bool) or not isinstance(propensity, int | float) or not 0.0 < propensity <= 1.0:
            raise PolicyError(f"RouterPolicy.propensity must be in (0, 1], got {propensity!r}")
        copy = object.__new__(RouterPolicy)
        for name in _FIELD_NAMES:
            _SET(copy, name, getattr(self, name))
        _SET(copy, "propensity", propensity)
        return copy

    def as_params(self) -> dict[str, object]:
        """Every knob by name, for logging a version (e.g. as MLflow params)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


_FIELD_NAMES: tuple[str, ...] = tuple(f.name for f in fields(RouterPolicy))
