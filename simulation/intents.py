"""The seeded intent stream of the main job: the SAME small orders for every policy that is compared.

Why lanes: a route blocks on the venue clock for up to a few seconds (TTL, re-price, fallback), so one
replay of a six-minute tape holds only about a hundred sequential orders. Intents are therefore spread
evenly over the tape (one per slot, at a seeded time inside its slot) and dealt round-robin to ``lanes``
venue replays started at different times; consecutive intents of one lane are at least
``lane_min_gap_ms`` apart, so every policy sees each intent at the same arrival time. Orders are small
(``notional_min_usd``..``notional_max_usd``) so they do not move the market, which the replay does not
model anyway.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from router_tuner.config.models import IntentStream
from router_tuner.features.context import Context, decision_context
from router_tuner.router.events import Side
from router_tuner.simulation.markets import SimMarket

NS_PER_MS = 1_000_000


@dataclass(frozen=True, slots=True)
class SimIntent:
    """One order to route: arrival time, side, venue quantity, the lane it is replayed on, its context."""

    index: int
    symbol: str
    side: Side
    qty: float
    notional_usd: float
    arrival_ns: int
    lane: int
    context: Context


def lane_count(n_orders: int, window_ns: int, lane_min_gap_ms: float) -> int:
    """Lanes needed so that intents ``lanes`` slots apart are at least the minimum gap apart.

    Two intents ``L`` slots apart, each anywhere in its slot, are at least ``(L - 1)`` slots apart.
    """
    slot_ns = window_ns / n_orders
    return max(1, math.ceil(lane_min_gap_ms * NS_PER_MS / slot_ns) + 1)


class TapeTooShort(ValueError):
    """A recording too short to hold any intent after the warm-up and before the tail."""


def intent_window(market: SimMarket, stream: IntentStream) -> tuple[int, int]:
    """First and last arrival time intents may have on ``market``'s tape; TapeTooShort when there is none."""
    tape = market.tape
    first_ns = int(tape.quote_ts_ns[0]) + round(stream.warmup_ms * NS_PER_MS)
    last_ns = int(tape.quote_ts_ns[-1]) - round(stream.tail_ms * NS_PER_MS)
    if last_ns <= first_ns:
        raise TapeTooShort(f"{market.symbol}: the tape ({(tape.end_ns - tape.start_ns) / 1e9:.1f} s) is shorter "
                           f"than warmup_ms + tail_ms of router.json simulation.intents")
    return first_ns, last_ns


MIN_WINDOW_ROUTES = 10
"""Route spans (``lane_min_gap_ms``) the intents' window should hold before it holds fewer than the orders."""


def crowded_window_warning(market: SimMarket, n_orders: int, stream: IntentStream) -> str | None:
    """A recording much shorter than the orders asked of it, in one line; ``None`` when it holds them.

    The intents are spread over the window between the warm-up and the tail and dealt to as many venue replays
    (lanes) as keep each lane's orders ``lane_min_gap_ms`` apart, so a recording of 20 s took 300 orders within its
    46 ms window, on 300 replays of the same instant, and every figure was that instant's, silently. Said when the
    window holds fewer than ``MIN_WINDOW_ROUTES`` route spans and fewer than the orders."""
    first_ns, last_ns = intent_window(market, stream)
    spans = (last_ns - first_ns) / (stream.lane_min_gap_ms * NS_PER_MS)
    if spans >= MIN_WINDOW_ROUTES or spans >= n_orders:
        return None
    tape = market.tape
    lanes = min(n_orders, lane_count(n_orders, last_ns - first_ns, stream.lane_min_gap_ms))
    return (f"{market.symbol}: the recording ({(tape.end_ns - tape.start_ns) / 1e9:.1f} s) leaves "
            f"{(last_ns - first_ns) / 1e9:.2f} s for the {n_orders} orders to arrive in (after router.json "
            f"simulation.intents warmup_ms {stream.warmup_ms:g}, before tail_ms {stream.tail_ms:g}), under "
            f"{MIN_WINDOW_ROUTES} routes' span (lane_min_gap_ms {stream.lane_min_gap_ms:g}): they are routed on "
            f"{lanes} replays of that stretch, so the costs describe it, not the market; use a longer recording or "
            "fewer --orders")


def lot_warning(market: SimMarket, stream: IntentStream) -> str | None:
    """An order of one lot (one contract on COIN-M) worth more than the intents' largest notional, in one line.

    Each intent's quantity is its notional in whole lots, at least one, so on a coarse lot at a high price (0.001 of a
    coin at 3,090,470 USD) every order was one lot of 3090 USD where ``notional_max_usd`` asks 400, unsaid."""
    mid = market.tape.median_mid() / market.tape.price_scale
    value = market.contract_value_usd
    lot = f"one contract ({value:g} USD, strategy_config.json contract_size)" if value is not None else ""
    if value is None:
        value = market.qty_step * mid
        lot = f"one lot ({market.qty_step:g} at {mid:.10g}, the recording's median mid, {value:.6g} USD)"
    if value <= stream.notional_max_usd:
        return None
    return (f"{market.symbol}: {lot} is over router.json simulation.intents notional_max_usd "
            f"{stream.notional_max_usd:g}: every order is one lot, {value / stream.notional_max_usd:.3g} times the "
            "largest asked; raise notional_min_usd and notional_max_usd to a few lots")


def intent_stream(market: SimMarket, n_orders: int, stream: IntentStream, *, seed: int) -> list[SimIntent]:
    """``n_orders`` intents over ``market``'s tape, deterministic for ``seed``; raises if the tape is too short."""
    if n_orders < 1:
        raise ValueError(f"n_orders must be >= 1, got {n_orders}")
    first_ns, last_ns = intent_window(market, stream)
    window_ns = last_ns - first_ns
    lanes = lane_count(n_orders, window_ns, stream.lane_min_gap_ms)
    rng = np.random.default_rng(seed)
    slot_ns = window_ns / n_orders
    arrivals = (first_ns + (np.arange(n_orders) + rng.random(n_orders)) * slot_ns).astype(np.int64)
    is_buy = rng.random(n_orders) < stream.buy_share
    notional = rng.uniform(stream.notional_min_usd, stream.notional_max_usd, n_orders)
    mids = market.mid_at(arrivals)
    informed = rng.random(n_orders) < stream.informed_share
    if informed.any():
        is_buy = informed_sides(market, arrivals, mids, stream.informed_horizon_ms, informed, is_buy)
    if market.contract_value_usd is not None:
        qty = np.maximum(1, np.floor(notional / market.contract_value_usd)).astype(float)  # contracts
        notional = qty * market.contract_value_usd
    else:
        qty = np.maximum(1, np.floor(notional / mids / market.qty_step)) * market.qty_step
        notional = qty * mids
    decimals = max(0, -math.floor(math.log10(market.qty_step)))
    return [SimIntent(index=i, symbol=market.symbol, side="buy" if is_buy[i] else "sell",
                      qty=round(float(qty[i]), decimals), notional_usd=float(notional[i]), arrival_ns=int(arrivals[i]),
                      lane=i % lanes, context=arrival_context(market, int(arrivals[i]), float(qty[i]),
                                                              bool(is_buy[i]), stream.context_quotes))
            for i in range(n_orders)]


def informed_sides(market: SimMarket, arrivals: np.ndarray, mids: np.ndarray, horizon_ms: float,
                   informed: np.ndarray, is_buy: np.ndarray) -> np.ndarray:
    """``is_buy`` with each informed intent buying when the mid ``horizon_ms`` after its arrival is above
    ``mids`` (its arrival mid), selling when below; an unmoved mid keeps the drawn side."""
    later = market.mid_at(arrivals + round(horizon_ms * NS_PER_MS))
    knows = informed & (later != mids)
    return np.where(knows, later > mids, is_buy)


def arrival_context(market: SimMarket, ts_ns: int, qty: float, is_buy: bool, n_quotes: int) -> Context:
    """What a contextual learner may know at arrival: the touch and the last ``n_quotes`` mids (no outcome)."""
    tape = market.tape
    end = int(np.searchsorted(tape.quote_ts_ns, ts_ns, side="right"))
    i = max(end - 1, 0)
    lo = max(0, end - n_quotes)
    return decision_context(
        bid=tape.bid_px[i] / tape.price_scale, ask=tape.ask_px[i] / tape.price_scale,
        bid_qty=tape.bid_qty[i] / tape.qty_scale, ask_qty=tape.ask_qty[i] / tape.qty_scale,
        recent_mids=(tape.bid_px[lo:end] + tape.ask_px[lo:end]) / 2.0, order_qty=qty,
        side="buy" if is_buy else "sell", ts_ns=ts_ns)
