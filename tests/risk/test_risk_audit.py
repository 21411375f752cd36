"""The audit's findings, each reproduced as it was and shown impossible here (DESIGN rules 1, 4, 5)."""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

import msgspec
import pytest

from router_tuner.config import ConfigError, load_config
from router_tuner.risk import MarketView, PortfolioState, RiskContext, check_order, suggest_gross_usd, would_emit
from router_tuner.router.events import Fill
from router_tuner.router.venue import TopOfBook
from tests.conftest import edit_config
from tests.risk.test_risk_support import BUNDLE, LIMITS, NOW_NS, leg, limits_with, make_ctx, make_intent

RISK_DIR = Path(__file__).resolve().parents[2] / "risk"
CONCURRENCY_INPUTS = ("open_positions_count", "tier_name", "current_tier_gross_notional")


# 1. The executor called the check without the concurrency inputs, which defaulted to zero.

def test_a_context_without_concurrency_inputs_cannot_be_built() -> None:
    full = {f.name: getattr(make_ctx(), f.name) for f in dataclasses.fields(RiskContext)}
    for name in CONCURRENCY_INPUTS:
        with pytest.raises(TypeError, match=name):
            RiskContext(**{k: v for k, v in full.items() if k != name})


def test_check_order_refuses_anything_but_a_full_context() -> None:
    as_it_was = {"nav_usd": 100_000.0}  # the old call: NAV only, concurrency "defaulted" to zero
    with pytest.raises(TypeError, match="RiskContext"):
        check_order(make_intent(), 1_000.0, as_it_was, LIMITS)  # type: ignore[arg-type]


def test_the_builder_always_counts_open_positions_from_state() -> None:
    state = PortfolioState(wallet_balance_usd=1_000_000.0, nav_ts_ns=NOW_NS)
    for index, symbol in enumerate(["ETHUSDT", "BTCUSDC", "ETHUSDC", "BTCUSD_PERP"]):
        state.apply_fill(symbol=symbol, side="buy", position_side="BOTH", fill=Fill(
            trade_id=f"t{index}", client_order_id=f"o{index}", price=100.0, qty=1.0, fee_usd=0.0,
            liquidity="maker", ts_ns=NOW_NS))
    ctx = RiskContext.from_state(state, symbol="BTCUSDT", universe=BUNDLE.strategy.universe, now_ns=NOW_NS, working=())
    assert ctx.open_positions_count == LIMITS.max_concurrent_positions
    [reason] = check_order(make_intent(), 1_000.0, ctx, LIMITS).reasons
    assert reason.code == "max_concurrent_positions"


# 2. A "10pct" reason under a configured 15 % cap.

def test_reason_names_the_configured_cap_not_a_literal() -> None:
    ctx = make_ctx(nav_usd=1_000_000.0, equity_usd=100_000.0)
    [reason] = check_order(make_intent(), 18_000.0, ctx, LIMITS).reasons
    assert (reason.code, reason.threshold, reason.observed) == ("trade_gt_equity_cap", 0.15, 0.18)
    assert reason.threshold == LIMITS.trade_equity_cap_pct
    [moved] = check_order(make_intent(), 18_000.0, ctx, limits_with(trade_equity_cap_pct=0.12)).reasons
    assert moved.threshold == 0.12
    assert not check_order(make_intent(), 18_000.0, ctx, limits_with(trade_equity_cap_pct=0.2)).veto
    sources = "\n".join(path.read_text() for path in RISK_DIR.glob("*.py"))
    assert "10pct" not in sources and "pct)" not in sources


# 3. A hard-coded 0.20 order-book imbalance gate.

def _with_gate(gate: float):
    screener = msgspec.structs.replace(BUNDLE.strategy.screener, orderbook_imbalance_gate=gate)
    return msgspec.structs.replace(BUNDLE, strategy=msgspec.structs.replace(BUNDLE.strategy, screener=screener))


@pytest.mark.parametrize(("bid_qty", "ask_qty", "gate", "emits"), [
    (6.25, 3.75, 0.20, True),   # lean 0.25 passes the default gate
    (6.25, 3.75, 0.30, False),  # ... and fails when the config gate moves to 0.30
    (5.75, 4.25, 0.10, True),   # lean 0.15: refused by a hard-coded 0.20, passes a configured 0.10
    (5.75, 4.25, 0.20, False),
])
def test_the_imbalance_gate_follows_config(bid_qty: float, ask_qty: float, gate: float, emits: bool) -> None:
    book = TopOfBook(symbol="BTCUSDT", bid=100.0, bid_qty=bid_qty, ask=100.1, ask_qty=ask_qty, ts_ns=NOW_NS)
    decision = would_emit(make_intent(), MarketView(book=book, listed=True), make_ctx(), _with_gate(gate))
    assert decision.emit is emits
    if not emits:
        assert decision.reasons[0].threshold == gate


# 4. Caps as module-level constants in the risk code.

UNIT_FACTS = {"NS_PER_S": 1_000_000_000, "S_PER_HOUR": 3_600, "S_PER_DAY": 86_400, "S_PER_WEEK": 604_800,
              # calendar facts that define an epoch-nanosecond intent time (2000-01-01 and 2100-01-01 UTC)
              "EPOCH_2000_NS": 946_684_800_000_000_000, "EPOCH_2100_NS": 4_102_444_800_000_000_000}


def _numbers(node: ast.AST) -> list[float]:
    return [n.value for n in ast.walk(node) if isinstance(n, ast.Constant)
            and isinstance(n.value, int | float) and not isinstance(n.value, bool)]


def test_no_numeric_constants_in_risk_but_unit_facts() -> None:
    sources = sorted(RISK_DIR.glob("*.py"))
    assert {p.name for p in sources} >= {"checks.py", "caps.py", "sizer.py", "screener.py", "context.py"}
    for path in sources:
        tree = ast.parse(path.read_text(), filename=str(path))
        for statement in tree.body:
            if isinstance(statement, ast.Assign | ast.AnnAssign) and _numbers(statement):
                targets = statement.targets if isinstance(statement, ast.Assign) else [statement.target]
                names = [t.id for t in targets if isinstance(t, ast.Name)]
                assert path.name == "units.py" and names and names[0] in UNIT_FACTS, (
                    f"{path.name}:{statement.lineno}: module-level number in {names}")
        if path.name != "units.py":
            odd = sorted({value for value in _numbers(tree) if value not in (0, 1)})
            assert not odd, f"{path.name}: numeric literals {odd} belong in config"
    from router_tuner.risk import units
    assert {name: getattr(units, name) for name in UNIT_FACTS} == UNIT_FACTS


def test_the_scan_would_catch_a_module_level_cap() -> None:
    tree = ast.parse("MAX_TRADE_PCT = 0.10\nif x > 0.20:\n    pass\n")
    assert _numbers(tree.body[0]) == [0.10] and _numbers(tree) == [0.10, 0.20]


# 5. Sizing floors below the venue's min notional, and orders sized under it.

def test_a_sizing_floor_below_min_notional_is_refused_at_load(config_dir: Path) -> None:
    edit_config(config_dir, "strategy_config.json", lambda d: d["sizing"]["buckets"]["CORE"].update(floor_usd=50.0))
    with pytest.raises(ConfigError, match=r"floor_usd: sizing floor 50.0 USD is below the min_notional 100.0"):
        load_config(config_dir)


def test_the_sizer_never_suggests_below_min_notional() -> None:
    small_nav = make_ctx(nav_usd=500.0, equity_usd=500.0)  # 10 % of NAV = 50 USD < BTCUSDT's 100 USD
    size = suggest_gross_usd(make_intent(size_hint_usd=1e6), small_nav, BUNDLE)
    assert (size.outcome, size.gross_usd, size.min_notional_usd) == ("too_small_for_venue", None, 100.0)
    eth = suggest_gross_usd(make_intent(symbol="ETHUSDT", size_hint_usd=1e6), make_ctx(
        symbol="ETHUSDT", nav_usd=500.0, equity_usd=500.0), BUNDLE)
    assert eth.outcome == "sized" and eth.gross_usd >= LIMITS.min_notional_usd("ETHUSDT")


# 6. Concurrency defined twice (a duplicate key, or a second home in another file).

def test_a_duplicated_concurrency_key_is_refused(config_dir: Path) -> None:
    path = config_dir / "risk_limits.json"
    text = path.read_text().replace('"max_concurrent_positions": 4,',
                                    '"max_concurrent_positions": 4, "max_concurrent_positions": 8,')
    path.write_text(text)
    with pytest.raises(ConfigError, match=r"risk_limits.json: \$.max_concurrent_positions: duplicate key"):
        load_config(config_dir)


def test_concurrency_in_a_second_file_is_refused(config_dir: Path) -> None:
    edit_config(config_dir, "strategy_config.json", lambda d: d["screener"].update(max_concurrent=6))
    with pytest.raises(ConfigError, match="concurrency is defined in one place only"):
        load_config(config_dir)


def test_risk_reads_concurrency_from_its_one_home_only() -> None:
    ctx = make_ctx(tuple(leg(symbol=f"S{i}", gross_usd=10.0) for i in range(2)))
    assert not check_order(make_intent(), 1_000.0, ctx, limits_with(max_concurrent_positions=3)).veto
    [reason] = check_order(make_intent(), 1_000.0, ctx, limits_with(max_concurrent_positions=2)).reasons
    assert (reason.code, reason.threshold) == ("max_concurrent_positions", 2)
