"""The live CLI on the local Binance USDⓈ-M fake (in process, ccxt's real signing): restart reconciliation
reads the venue's positions through ``LoopVenue.positions`` (over ``AsyncCcxtVenue``) and refuses to start
when they disagree with the journal."""

from __future__ import annotations

import json
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path

import msgspec
import pytest

from router_tuner.cli.main import main as cli_main
from router_tuner.config.loader import DEFAULTS_DIR
from router_tuner.executor.journal import Journal
from router_tuner.tuner.reward import RewardFilter
from tests.executor.test_executor_support import intent
from tests.fakes.binance_usdm import ORDER_PATH, Ban, FakeBinanceUsdm, RateLimitReply

API_KEY = "PLANTEDkeyLive4Xq8Zt2Wm6Rp0Yv3Nb7Hc1Ds5Fg9"
API_SECRET = "PLANTEDsecretLive2Kj6Lh0Mg4Nf8Pd2Qs6Rt0Uv4"

pytestmark = pytest.mark.timeout(60)


def edit_json(path: Path, change: Callable[[dict], None]) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def live_config_dir(tmp_path: Path, base_url: str) -> Path:
    """Defaults trading BTCUSDT only on the fake, straight taker (one IOC, no resting maker leg)."""
    target = tmp_path / "cfg"
    shutil.copytree(DEFAULTS_DIR, target)

    def executor(d: dict) -> None:
        d["instruments"] = {"BTCUSDT": {"tick_size": 0.1, "qty_step": 0.001}}
        d["paper"]["synthetic"] = {"BTCUSDT": d["paper"]["synthetic"]["BTCUSDT"]}
        d["prometheus"]["port"] = 0
        d["route"]["poll_interval_ms"] = 20.0
        d["live"].update(api_base_url=base_url, api_key_env="RT_LIVE_KEY", api_secret_env="RT_LIVE_SECRET",
                         ccxt_rate_limiter=False, request_timeout_ms=3000, top_of_book_source="order_book",
                         order_updates="polling", book_updates="rest")  # REST only: no websocket fake here

    edit_json(target / "executor.json", executor)
    edit_json(target / "router.json", lambda d: d["static_policy"].update(taker_bias=1.0))
    edit_json(target / "strategy_config.json", lambda d: d["screener"].update(require_imbalance_alignment=False))
    return target


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeBinanceUsdm]:
    monkeypatch.setenv("RT_LIVE_KEY", API_KEY)
    monkeypatch.setenv("RT_LIVE_SECRET", API_SECRET)
    with FakeBinanceUsdm(API_KEY, API_SECRET) as server:
        server.state.hedge_mode = True
        server.set_book("BTCUSDT", "60000.0", "5", "60000.1", "5")
        yield server


def live_args(tmp_path: Path, cfg: Path, intents: Path) -> list[str]:
    return ["live", "--venue", "binanceusdm", "--config", str(cfg), "--live", "--intents", str(intents),
            "--journal", str(tmp_path / "journal.sqlite"), "--store", str(tmp_path / "executor.sqlite"),
            "--idle-poll-s", "0.05"]


def failure_lines(err: str) -> str:
    """stderr without its start-up warnings (the null intent age limit's, as these intents are stamped in 2023):
    what a failure prints is the rest, one line."""
    warning = "router-tuner live: warning: "
    return "".join(line for line in err.splitlines(keepends=True) if not line.startswith(warning))


def one_intent_args(tmp_path: Path, fake: FakeBinanceUsdm, intent_id: str) -> list[str]:
    """``live`` on the fake with an intents file of one 300 USD buy ``intent_id``."""
    intents = tmp_path / "intents.jsonl"
    intents.write_bytes(msgspec.json.encode(intent(intent_id, size_hint_usd=300.0)) + b"\n")
    return live_args(tmp_path, live_config_dir(tmp_path, fake.base_url), intents)


def test_live_restart_checks_venue_positions_against_the_journal(
    fake: FakeBinanceUsdm, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = one_intent_args(tmp_path, fake, "lv1")

    assert cli_main(args) == 0, capsys.readouterr().err
    assert "positions checked against the venue" in capsys.readouterr().out
    with Journal(tmp_path / "journal.sqlite", readonly=True) as journal:
        (event,) = journal.read("router")
    assert event.filled_qty > 0 and event.routed_as == "taker"
    with fake.state.lock:
        assert fake.state.positions[("BTCUSDT", "LONG")] == Decimal(str(event.filled_qty))

    # the venue agrees with the journal: the restart starts (lv1 is already done, nothing is sent)
    posts_before = len(fake.order_requests("POST"))
    assert cli_main(args) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    assert "positions checked against the venue" in out and "done: 0 new intents processed" in out
    assert len(fake.order_requests("POST")) == posts_before

    # someone traded on the account while we were down: the restart refuses before sending anything
    fake.set_position("BTCUSDT", "SHORT", "-0.002")
    assert cli_main(args) == 1
    err = capsys.readouterr().err
    assert "ReconcileError: positions differ from the journal: BTCUSDT SHORT: venue -0.002, journal 0.0" in err
    assert len(fake.order_requests("POST")) == posts_before


def test_live_warns_that_intents_of_any_age_are_routed_and_vetoes_a_stale_one_once_limited(
    fake: FakeBinanceUsdm, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Live, the executor's clock is the wall clock: with ``intent_max_age_s`` null (the embedded default) real-money
    routing says at start that intents are routed however old; with 60 s, an intent stamped in 2023 is vetoed
    ``intent_stale`` before any request, and the warning is gone."""
    args = one_intent_args(tmp_path, fake, "age1")
    assert cli_main(args) == 0
    assert "risk_limits.json intent_max_age_s is null: intents are routed however old" in capsys.readouterr().err
    cfg = Path(args[args.index("--config") + 1])
    risk = json.loads((cfg / "risk_limits.json").read_text())
    (cfg / "risk_limits.json").write_text(json.dumps({**risk, "intent_max_age_s": 60.0}))
    intents = Path(args[args.index("--intents") + 1])
    intents.write_bytes(msgspec.json.encode(intent("age2", size_hint_usd=300.0)) + b"\n")
    posts_before = len(fake.order_requests("POST"))
    assert cli_main(args) == 0
    assert "intent_max_age_s" not in capsys.readouterr().err
    with Journal(tmp_path / "journal.sqlite", readonly=True) as journal:
        (veto,) = journal.read("veto")
    assert veto.intent.intent_id == "age2" and [r.code for r in veto.reasons] == ["intent_stale"]
    assert len(fake.order_requests("POST")) == posts_before


def test_live_restart_refuses_when_the_venue_cannot_report_positions(
    fake: FakeBinanceUsdm, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = live_config_dir(tmp_path, fake.base_url)
    intents = tmp_path / "intents.jsonl"
    intents.write_bytes(b"")
    fake.set_position("BTCUSDT", "BOTH", "0.003")  # a one-way position on a hedge account: unplaceable
    assert cli_main(live_args(tmp_path, cfg, intents)) == 1
    err = capsys.readouterr().err
    assert "ReconcileError: BTCUSDT positions unavailable: VenueError" in err
    assert not fake.order_requests("POST")


def test_live_refuses_an_unreadable_intents_file_before_touching_the_venue(
    fake: FakeBinanceUsdm, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = live_config_dir(tmp_path, fake.base_url)
    assert cli_main(live_args(tmp_path, cfg, tmp_path / "missing.jsonl")) == 2
    missing = tmp_path / "missing.jsonl"
    assert f"router-tuner live: intents {missing}: No such file or directory" in capsys.readouterr().err
    assert not fake.order_requests("POST") and not fake.order_requests("DELETE")
    assert not (tmp_path / "journal.sqlite").exists()


def test_a_retry_after_on_place_is_waited_out_and_the_order_sent_once(
    fake: FakeBinanceUsdm, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = one_intent_args(tmp_path, fake, "ra1")
    fake.fail_next("POST", ORDER_PATH, RateLimitReply(retry_after_s=1))
    started = time.monotonic()
    assert cli_main(args) == 0, capsys.readouterr().err
    assert time.monotonic() - started >= 1.0  # the venue's Retry-After, longer than the 200 ms back-off
    with Journal(tmp_path / "journal.sqlite", readonly=True) as journal:
        (event,) = journal.read("router")
    assert event.error is None and event.filled_qty > 0
    assert fake.posts_for("ra1-1") == 2  # the 429, then the order once
    with fake.state.lock:
        assert [o.client_order_id for o in fake.state.orders.values()] == ["ra1-1"]


def _banned_run(tmp_path: Path, fake: FakeBinanceUsdm, method: str, path: str) -> tuple[int, list[str]]:
    """``live`` with four intents, the venue banning the client (418 -1003, Retry-After 120 s) from the first
    ``method path`` request on: the exit code and the requests that reached the venue from the ban on."""
    intents = tmp_path / "intents.jsonl"
    intents.write_bytes(b"".join(msgspec.json.encode(intent(f"ban{i}", size_hint_usd=300.0)) + b"\n"
                                 for i in range(4)))
    fake.fail_next(method, path, Ban(seconds=120))
    code = cli_main(live_args(tmp_path, live_config_dir(tmp_path, fake.base_url), intents))
    with fake.state.lock:
        requests = [f"{m} {p}" for m, p, _ in fake.state.requests]
    return code, requests[requests.index(f"{method} {path}"):]


def test_a_ban_on_an_order_halts_with_one_line_and_sends_nothing_more(
    fake: FakeBinanceUsdm, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, during_ban = _banned_run(tmp_path, fake, "POST", ORDER_PATH)
    err = failure_lines(capsys.readouterr().err)
    assert code == 1 and len(err.strip().splitlines()) == 1, err
    assert err.startswith("router-tuner live: stopped: ExecutorHalted: intent ban0 left unsettled after a route "
                          "error (RateLimited, not retried further")
    assert "IP banned until" in err and "not sent: the venue asked for no requests for" in err
    # The settle's reads (GET of the order) were not sent into the ban (4 were); the other routes' touch reads or
    # orders may have been on their way before the ban's answer reached the client (one each at most), none after it.
    assert during_ban[0] == f"POST {ORDER_PATH}" and set(during_ban[1:]) <= {"GET /fapi/v1/depth", f"POST {ORDER_PATH}"}
    assert len(during_ban) <= 4, during_ban


def test_a_ban_on_the_touch_vetoes_each_intent_without_a_request(
    fake: FakeBinanceUsdm, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, during_ban = _banned_run(tmp_path, fake, "GET", "/fapi/v1/depth")
    assert code == 0 and "vetoed 4 intents: book_unavailable 4" in capsys.readouterr().out
    assert during_ban == ["GET /fapi/v1/depth"]  # one per intent before: each extends a ban (2 min up to 3 days)


def _overfilled_reduce(tmp_path: Path, fake: FakeBinanceUsdm, *, venue_leg_after: str,
                       position_side: str = "LONG") -> tuple[int, list[str]]:
    """Run ``live`` once to open a long (taker; hedge mode's LONG leg, or one-way mode's BOTH position), then again
    with a reduce-only sell resting as maker that the venue overfills by 0.002 (the venue's leg is then
    ``venue_leg_after``): the second run's exit code and args."""
    fake.state.hedge_mode = position_side != "BOTH"
    cfg = live_config_dir(tmp_path, fake.base_url)
    if position_side == "BOTH":
        edit_json(cfg / "router.json", lambda d: d.update(position_mode="one_way"))
    intents = tmp_path / "intents.jsonl"
    intents.write_bytes(msgspec.json.encode(intent("ov-open", size_hint_usd=300.0, position_side=position_side))
                        + b"\n")
    args = live_args(tmp_path, cfg, intents)
    assert cli_main(args) == 0
    edit_json(cfg / "router.json", lambda d: d["static_policy"].update(taker_bias=0.0, maker_ttl_ms=30000.0,
                                                                       reprice_attempts=0, fallback_mode="cancel"))
    with intents.open("ab") as lines:
        lines.write(msgspec.json.encode(intent("ov-close", side="sell", size_hint_usd=300.0, reduce_only=True,
                                               position_side=position_side)) + b"\n")

    def overfill() -> None:
        end = time.monotonic() + 20.0
        while not fake.created_for("ov-close-1") and time.monotonic() < end:
            time.sleep(0.005)
        with fake.state.lock:
            fake.fill("ov-close-1", str(fake.state.orders["ov-close-1"].orig_qty + Decimal("0.002")))
            fake.state.positions[("BTCUSDT", position_side)] = Decimal(venue_leg_after)

    filler = threading.Thread(target=overfill)
    filler.start()
    try:
        code = cli_main(args)
    finally:
        filler.join()
    return code, args


def test_a_hedge_reduce_only_overfill_closes_the_leg_is_flagged_and_the_run_and_a_restart_go_on(
    fake: FakeBinanceUsdm, tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    """The venue fills a reduce-only sell of the LONG leg beyond the leg (an overfill, or a fill after the leg closed):
    the books refused the fill ("unexpected ValueError: fill … would flip the LONG leg", exit 1) and every restart
    recovered the same intent into the same error. The leg closes flat (a hedge-mode venue holds no LONG leg below
    zero), the event is flagged and not learned, the venue's leg agrees, and the run goes on."""
    code, args = _overfilled_reduce(tmp_path, fake, venue_leg_after="0")
    assert code == 0, capsys.readouterr().err
    with Journal(tmp_path / "journal.sqlite", readonly=True) as journal:
        opened, closed = journal.read("router")
    assert closed.filled_qty == pytest.approx(opened.filled_qty + 0.002)  # every fill counted as reported
    assert closed.error is not None and "venue_anomaly(" in closed.error
    assert (f"beyond the LONG leg of {opened.filled_qty:.12g}: the leg is flat, 0.002 past flat held by no position"
            in closed.error)
    assert closed.realized_pnl_usd is not None
    lines = [r.getMessage() for r in caplog.records if "past flat" in r.getMessage()]
    assert len(lines) == 1 and lines[0].startswith("ov-close BTCUSDT LONG: venue_anomaly: ")
    assert lines[0].endswith("; the venue's LONG leg is 0: the books agree"), lines[0]
    assert RewardFilter(min_cost_bps=-20.0, max_cost_bps=50.0).reward_from_event(closed) is None
    # the restart finds the intent journaled and the venue's positions equal to the journal's: nothing replays
    assert cli_main(args) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    assert "positions checked against the venue" in out and "done: 0 new intents processed" in out


@pytest.mark.parametrize(("position_side", "journal_qty"), [("LONG", "0"), ("BOTH", "-0.002")])
def test_an_overfill_the_venues_position_does_not_explain_halts_once_and_the_restart_refuses_without_replaying(
    fake: FakeBinanceUsdm, tmp_path: Path, capsys: pytest.CaptureFixture[str], position_side: str, journal_qty: str
) -> None:
    """After the books took the fills past flat (hedge mode: the leg closed; one-way: the position flipped), the venue
    holds neither that nor flat: a position the journal cannot explain. The event is journaled first, then the run
    halts with one line (exit 1); the restart does not recover the intent again (it is journaled) and refuses at the
    position check, sending nothing, until the account is reconciled."""
    code, args = _overfilled_reduce(tmp_path, fake, venue_leg_after="0.001", position_side=position_side)
    err = failure_lines(capsys.readouterr().err)
    assert code == 1 and len(err.strip().splitlines()) == 1, err
    assert err.startswith(f"router-tuner live: stopped: ExecutorHalted: BTCUSDT {position_side}: the venue holds "
                          f"0.001, the journal {journal_qty} after intent ov-close filled past flat (fill ")
    assert err.rstrip().endswith("reconcile the account with the journal, then restart"), err
    with Journal(tmp_path / "journal.sqlite", readonly=True) as journal:
        assert [e.intent_id for e in journal.read("router")] == ["ov-open", "ov-close"]
    posts = len(fake.order_requests("POST"))
    assert cli_main(args) == 1
    err = capsys.readouterr().err
    assert err.strip() == ("router-tuner live: stopped: ReconcileError: positions differ from the journal: BTCUSDT "
                           f"{position_side}: venue 0.001, journal {float(journal_qty)}")
    assert len(fake.order_requests("POST")) == posts


@pytest.mark.parametrize(("venue_after", "verdict"), [
    ("0", "the venue's BOTH position is flat: the books follow it"),
    ("-0.002", "the venue's BOTH position is -0.002: the books agree"),
])
def test_a_one_way_reduce_only_overfill_is_flagged_and_the_books_follow_the_venue_in_the_run_and_the_restart(
    fake: FakeBinanceUsdm, tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture,
    venue_after: str, verdict: str,
) -> None:
    """One-way mode: the venue fills a reduce-only sell of the long position beyond it. The books took the fills as
    an ordinary flip to a short, without a word (only the restart's position check could notice). Now the event is
    flagged venue_anomaly (not learned) with one line, and the books hold what the venue reports: flat when the
    venue is flat, the short when the venue really flipped; the restart's replay of the journal agrees."""
    code, args = _overfilled_reduce(tmp_path, fake, venue_leg_after=venue_after, position_side="BOTH")
    assert code == 0, capsys.readouterr().err
    with Journal(tmp_path / "journal.sqlite", readonly=True) as journal:
        opened, closed = journal.read("router")
    assert closed.filled_qty == pytest.approx(opened.filled_qty + 0.002)  # every fill counted as reported
    assert closed.error is not None and "venue_anomaly(fill " in closed.error
    assert f"beyond the BOTH position of {opened.filled_qty:.12g}: 0.002 past flat" in closed.error
    assert closed.realized_pnl_usd is not None
    lines = [r.getMessage() for r in caplog.records if "past flat" in r.getMessage()]
    assert len(lines) == 1 and lines[0].startswith("ov-close BTCUSDT BOTH: venue_anomaly: ")
    assert lines[0].endswith(f"; {verdict}"), lines[0]
    assert closed.error.endswith("; the venue's BOTH position is flat: the books follow it)") == (venue_after == "0")
    assert RewardFilter(min_cost_bps=-20.0, max_cost_bps=50.0).reward_from_event(closed) is None
    assert "flagged 1 venue_anomaly" in capsys.readouterr().out
    # the restart rebuilds the books from the journal and checks them against the venue's position: they agree
    assert cli_main(args) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    assert "positions checked against the venue" in out and "done: 0 new intents processed" in out


def test_a_fill_whose_fee_no_market_prices_in_the_quote_counts_is_flagged_and_the_run_and_a_restart_go_on(
    fake: FakeBinanceUsdm, tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    """A BTCUSDC taker fill charged its fee in BNB (the BNB discount); the venue lists no BNB/USDC market nor a cross
    to USDC. Reading the filled order raised "BTCUSDC: cannot convert fee in BNB to USDC: no BNB/USDC market": the run
    halted ("stopped: ExecutorHalted: intent fee1 left unsettled after a route error (…)", exit 1) with the venue
    holding the position, and every restart stopped the same way ("ReconcileError: fee1: leg fee1-1 unresolved").
    The fill counts, its BNB fee is named on one line and in the event (``fee_unpriced``), not learned as zero."""
    fake.set_book("BTCUSDC", "59990.0", "5", "59990.1", "5")
    fake.set_book("BNBUSDT", "500.00", "10", "500.10", "10")
    fake.state.fee_asset_override = "BNB"
    cfg = live_config_dir(tmp_path, fake.base_url)
    edit_json(cfg / "executor.json",
              lambda d: d["instruments"].update({"BTCUSDC": {"tick_size": 0.1, "qty_step": 0.001}}))
    intents = tmp_path / "intents.jsonl"
    intents.write_bytes(msgspec.json.encode(intent("fee1", symbol="BTCUSDC", size_hint_usd=300.0)) + b"\n")
    args = live_args(tmp_path, cfg, intents)
    assert cli_main(args) == 0, capsys.readouterr().err
    with Journal(tmp_path / "journal.sqlite", readonly=True) as journal:
        (event,) = journal.read("router")
    with fake.state.lock:
        (trade,) = fake.state.trades
        assert fake.state.positions[("BTCUSDC", "LONG")] == Decimal(str(event.filled_qty))
    (fill,) = event.fills
    assert (event.outcome, fill.qty, fill.fee_usd, event.fees_bps) == ("filled", float(trade["qty"]), 0.0, 0.0)
    unpriced = (f"fill {fill.trade_id} of fee1-1: fee {float(trade['commission']):.12g} BNB not priced in USDC (no "
                "BNB/USDC market, nor a cross through an asset both are listed against), left out of fee_usd")
    assert event.error is not None and event.error.startswith(f"fee_unpriced({unpriced})")
    lines = [r.getMessage() for r in caplog.records if "fee_unpriced" in r.getMessage()]
    assert lines == [f"fee1 BTCUSDC: fee_unpriced: {unpriced}; the fill counts, the event is not learned"]
    reward = RewardFilter(min_cost_bps=-20.0, max_cost_bps=50.0)
    assert reward.reward_from_event(event) is None and reward.rejections == {"fee_unpriced": 1}
    # the restart finds fee1 journaled and the venue's position equal to the journal's
    assert cli_main(args) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    assert "positions checked against the venue" in out and "done: 0 new intents processed" in out


def test_an_order_reported_filled_before_its_trade_is_listed_is_journaled_with_its_fill_and_a_restart_agrees(
    fake: FakeBinanceUsdm, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Binance's account trade list can lag its order status: the IOC answer says filled while the trade read
    right after lists nothing yet. The fill is waited for (the order read again) and journaled: it was journaled as
    an unfilled order without an error, exit 0, the venue holding a position the books did not (caps counted
    without it), and the restart refused at the position check."""
    args = one_intent_args(tmp_path, fake, "tl1")
    fake.lag_trades(1)
    assert cli_main(args) == 0, capsys.readouterr().err
    with Journal(tmp_path / "journal.sqlite", readonly=True) as journal:
        (event,) = journal.read("router")
    with fake.state.lock:
        venue_qty = fake.state.positions[("BTCUSDT", "LONG")]
        assert fake.state.trades_lag == 0  # the lagging read did happen
    assert venue_qty > 0 and Decimal(str(event.filled_qty)) == venue_qty
    assert [f.qty for f in event.fills] == [event.filled_qty] and event.routed_as == "taker"
    assert fake.created_for("tl1-1") == 1 and len(fake.order_requests("POST")) == 1  # nothing sent twice
    capsys.readouterr()
    assert cli_main(args) == 0, capsys.readouterr().err  # the restart's position check agrees
    assert "positions checked against the venue" in capsys.readouterr().out


def test_an_instrument_the_venue_does_not_list_stops_the_start_in_one_line_with_the_touch_read_by_rest(
    fake: FakeBinanceUsdm, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``executor.json`` ``instruments`` naming a symbol the venue does not list (delisted, or another market's name)
    with ``live.book_updates`` ``rest``: refused at the venue's start as with the book stream, before any order.
    It was "unexpected ValueError: ccxt.pro:binanceusdm: unknown symbol 'ETHUSDT' (… report it)" from the
    reconciliation's position read."""
    args = one_intent_args(tmp_path, fake, "dl1")
    cfg = Path(args[args.index("--config") + 1])
    edit_json(cfg / "executor.json",
              lambda d: d["instruments"].update(ETHUSDT={"tick_size": 0.01, "qty_step": 0.001}))
    assert cli_main(args) == 1
    err = failure_lines(capsys.readouterr().err)
    assert err == ("router-tuner live: venue not started: VenueError: executor.json instruments: "
                   "ccxt.pro:binanceusdm: unknown symbol 'ETHUSDT'\n")
    assert not fake.order_requests("POST") and not fake.order_requests("DELETE")


def test_a_min_notional_floor_under_the_venues_refuses_the_start_and_one_at_it_opens_and_closes_under_it(
    fake: FakeBinanceUsdm, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``risk_limits.json`` ``min_notional`` for BTCUSDT at 20 USD where the venue's ``MIN_NOTIONAL`` filter is 100
    (the fake serves Binance's exchangeInfo, ccxt parses it): every opening order sized between the two would be sent
    and rejected -4164, so ``live --live`` refuses at connection with one line naming the key and the value needed,
    exit 2 (bad configuration), before the reconciliation reads the account and before the journal is made. At 100
    it starts; a reduce-only order under 100 (one-way mode, sent ``reduceOnly``) is not concerned and closes."""
    fake.state.hedge_mode = False
    cfg = live_config_dir(tmp_path, fake.base_url)
    edit_json(cfg / "router.json", lambda d: d.update(position_mode="one_way"))
    edit_json(cfg / "risk_limits.json", lambda d: d["min_notional"]["per_symbol_usd"].update(BTCUSDT=20.0))
    intents = tmp_path / "intents.jsonl"
    intents.write_bytes(msgspec.json.encode(intent("mn-open", size_hint_usd=300.0, position_side="BOTH")) + b"\n")
    args = live_args(tmp_path, cfg, intents)

    assert cli_main(args) == 2
    assert failure_lines(capsys.readouterr().err) == (
        "router-tuner live: risk_limits.json min_notional.per_symbol_usd.BTCUSDT is 20 USD, under binanceusdm's "
        "minimum notional 100 USDT for BTC/USDT:USDT: set it to at least 100 (opening orders under it are rejected "
        "by the venue, -4164)\n")
    with fake.state.lock:
        paths = {path for _, path, _ in fake.state.requests}
    assert "/fapi/v1/exchangeInfo" in paths and not {"/fapi/v1/openOrders", ORDER_PATH} & paths, paths
    assert not (tmp_path / "journal.sqlite").exists()

    edit_json(cfg / "risk_limits.json", lambda d: d["min_notional"]["per_symbol_usd"].update(BTCUSDT=100.0))
    assert cli_main(args) == 0, capsys.readouterr().err
    assert "positions checked against the venue" in capsys.readouterr().out
    with intents.open("ab") as lines:  # rounded down to one lot, 0.001 BTC at 60,000: 60 USD, under both floors
        lines.write(msgspec.json.encode(intent("mn-close", side="sell", size_hint_usd=61.0, reduce_only=True,
                                               position_side="BOTH")) + b"\n")
    assert cli_main(args) == 0, capsys.readouterr().err
    with Journal(tmp_path / "journal.sqlite", readonly=True) as journal:
        opened, closed = journal.read("router")
        assert list(journal.read("veto")) == []
    assert opened.filled_qty * 60_000.0 >= 100.0 and closed.error is None
    assert closed.filled_qty == pytest.approx(0.001)
    (close_post,) = [p for p in fake.order_requests("POST") if p["newClientOrderId"].startswith("mn-close")]
    assert close_post["reduceOnly"] == "true"
