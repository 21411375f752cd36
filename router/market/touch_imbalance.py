"""A seeded, varying top-of-book imbalance for a tape whose touch sizes are flat (the synthetic market).

Why: the screener gates an opening intent on the book leaning its way
(``strategy_config.screener.orderbook_imbalance_gate``). A synthetic book that always shows the same size on
both sides reads imbalance 0.0, so paper trading on it vetoes every opening intent. A real touch's
imbalance wanders and mean-reverts within seconds; this module gives a tape that behaviour.

Model: a latent Ornstein-Uhlenbeck state ``x`` with stationary standard deviation ``sd`` and half-life
``half_life_s`` (sampled exactly at each quote time), and imbalance ``i = tanh(x)`` in (-1, 1). The touch
keeps its total size: bid ``= touch * (1 + i)``, ask ``= touch * (1 - i)`` in lots, at least one lot each,
so ``(bid - ask) / (bid + ask)`` is ``i`` up to rounding. The imbalance is independent of the mid path and
of the trades: it lets the gate pass and refuse at realistic rates, it does not make the gate profitable.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import numpy as np

from router_tuner.router.market.tape import MarketTape

_NS_PER_S = 1e9


def imbalance_path(quote_ts_ns: np.ndarray, *, sd: float, half_life_s: float,
                   seed: int | Sequence[int]) -> np.ndarray:
    """The imbalance ``tanh(x)`` at each quote time, ``x`` the OU state above (deterministic for its seed).

    Examples
    --------
    >>> import numpy as np
    >>> path = imbalance_path(np.arange(0, 10**12, 10**8), sd=1.0, half_life_s=5.0, seed=3)
    >>> bool(np.all(np.abs(path) < 1)), round(float(np.mean(path >= 0.2)), 1)
    (True, 0.4)
    """
    if not (sd > 0 and math.isfinite(sd)):
        raise ValueError(f"sd must be finite and > 0, got {sd!r}")
    if not (half_life_s > 0 and math.isfinite(half_life_s)):
        raise ValueError(f"half_life_s must be finite and > 0, got {half_life_s!r}")
    n = len(quote_ts_ns)
    if n == 0:
        return np.empty(0, dtype=np.float64)
    rng = np.random.default_rng(seed)
    steps_s = np.diff(quote_ts_ns).astype(np.float64) / _NS_PER_S
    if np.any(steps_s < 0):
        raise ValueError("quote times must be sorted")
    keep = np.exp2(-steps_s / half_life_s)  # the share of x that survives one step
    shocks = rng.normal(0.0, 1.0, n) * sd
    state = np.empty(n, dtype=np.float64)
    state[0] = shocks[0]
    noise = np.sqrt(1.0 - keep * keep) * shocks[1:]
    for k in range(1, n):
        state[k] = keep[k - 1] * state[k - 1] + noise[k - 1]
    return np.tanh(state)


def with_touch_imbalance(tape: MarketTape, *, sd: float, half_life_s: float,
                         seed: int | Sequence[int]) -> MarketTape:
    """``tape`` with its touch sizes redrawn around their mean to follow :func:`imbalance_path`.

    The total size at the touch of each quote is kept; prices, trades and depth are untouched.
    """
    imbalance = imbalance_path(tape.quote_ts_ns, sd=sd, half_life_s=half_life_s, seed=seed)
    touch = (tape.bid_qty + tape.ask_qty).astype(np.float64) / 2.0
    bid = np.maximum(1, np.round(touch * (1.0 + imbalance))).astype(np.int64)
    ask = np.maximum(1, np.round(touch * (1.0 - imbalance))).astype(np.int64)
    return dataclasses.replace(tape, bid_qty=bid, ask_qty=ask).validate()
