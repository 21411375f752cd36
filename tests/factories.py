"""Builders of consistent events for tests: derived fields (avg price, slippage, cost) are computed."""

from __future__ import annotations

from router_tuner.router.events import SCHEMA_VERSION, Fill, RouterEvent


def fill(price: float, qty: float, liquidity: str = "maker", fee_bps: float = 0.0, ts_ns: int = 0,
         trade_id: str = "t1", client_order_id: str = "c1") -> Fill:
    return Fill(trade_id=trade_id, client_order_id=client_order_id, price=price, qty=qty,
                fee_usd=price * qty * fee_bps / 1e4, liquidity=liquidity, ts_ns=ts_ns)  # type: ignore[arg-type]


def routed(
    *, symbol: str = "BTCUSDT", side: str = "buy", qty: float = 1.0, mid: float = 100.0, spread: float = 0.02,
    fills: tuple[Fill, ...] = (), started_maker: bool = True, used_fallback: bool = False,
    reprice_count: int = 0, realized_pnl_usd: float | None = None, arrival_ts_ns: int = 0,
    finished_ts_ns: int = 1_000_000, arm: str = "static", propensity: float = 1.0,
    intent_id: str = "i1",
) -> RouterEvent:
    filled = sum(f.qty for f in fills)
    avg = sum(f.price * f.qty for f in fills) / filled if filled else None
    sign = 1.0 if side == "buy" else -1.0
    slippage = sign * (avg - mid) / mid * 1e4 if avg is not None else None
    fees = sum(f.fee_usd for f in fills) / (avg * filled) * 1e4 if avg is not None else None
    makers = {f.liquidity for f in fills}
    routed_as = "unfilled" if not fills else ("mixed" if len(makers) > 1 else makers.pop())
    return RouterEvent(
        schema_version=SCHEMA_VERSION, intent_id=intent_id, symbol=symbol, side=side,  # type: ignore[arg-type]
        qty=qty, reduce_only=False, close_position=False, position_side="BOTH", arrival_bid=mid - spread / 2,
        arrival_ask=mid + spread / 2, arrival_mid=mid,
        arrival_ts_ns=arrival_ts_ns, policy_id="p", policy_version=1, arm=arm, maker_offset_bps=1.0,
        taker_bias=0.0, propensity=propensity, route_propensity=1.0, started_maker=started_maker,
        is_maker_final=bool(fills) and all(f.liquidity == "maker" for f in fills), used_fallback=used_fallback,
        routed_as=routed_as,  # type: ignore[arg-type]
        outcome="filled" if filled >= qty else ("partial" if filled else "unfilled"),
        reprice_count=reprice_count, cancel_count=0, post_only_reject_count=0, fills=fills, filled_qty=filled,
        avg_price=avg, slippage_bps=slippage, fees_bps=fees,
        cost_bps=None if slippage is None or fees is None else slippage + fees,
        time_to_fill_ms=(max(f.ts_ns for f in fills) - arrival_ts_ns) / 1e6 if fills else None,
        realized_pnl_usd=realized_pnl_usd, error=None, finished_ts_ns=finished_ts_ns)
