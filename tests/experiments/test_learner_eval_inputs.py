"""learner_eval's and learner_stress's bad flags end in one stderr line and exit 2 (a bad ``--set`` used to exit 1)."""

from __future__ import annotations

from pathlib import Path

import pytest

from experiments.bench.learner_eval import main
from experiments.bench.learner_stress import main as stress_main
from router_tuner.cli.main import main as cli_main
from tests.conftest import edit_config


@pytest.mark.parametrize(("argv", "line"), [
    (["--set", "tuner.reward_mid_drift_window=-1"],
     "learner_eval: tuner.reward_mid_drift_window=-1: Expected `int` >= 0 - at `$.reward_mid_drift_window`"),
    (["--set", "tuner.reward_mid=Route_End"],
     "learner_eval: tuner.reward_mid='Route_End': Invalid enum value 'Route_End' - at `$.reward_mid`"),
    (["--set", "tuner.reward_mid_drift_window=0,1"],
     "learner_eval: --set 'tuner.reward_mid_drift_window=0,1': one value per key here (the sweep takes several)"),
    (["--informed", "nan"], "learner_eval.py: error: --informed nan: a share, between 0 and 1"),
    (["--informed", "1.0000001"], "learner_eval.py: error: --informed 1.0000001: a share, between 0 and 1"),
    (["--active-speed", "0"], "learner_eval.py: error: --active-speed 0.0: a speed-up factor, positive and finite"),
    (["--active-speed", "inf"], "learner_eval.py: error: --active-speed inf: a speed-up factor, positive and finite"),
    (["--orders", "0"], "learner_eval.py: error: --orders 0: at least 1"),
    (["--seeds", "3,x"], "learner_eval.py: error: --seeds 3,x: invalid literal for int() with base 10: 'x'"),
    (["--seeds=-1"], "learner_eval.py: error: --seeds -1: seeds are at least 0"),
    (["--learners", "greedy"], "learner_eval.py: error: --learners greedy: unknown learner(s) ['greedy']; choose "
     "from structured, thompson, ucb, epsilon_greedy, linucb, robbins_monro"),  # was a ValueError traceback
])
def test_a_bad_flag_is_one_line_and_exit_2(argv: list[str], line: str, capsys: pytest.CaptureFixture[str],
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.argv", ["learner_eval.py"])
    with pytest.raises(SystemExit) as stop:
        main(["--no-recorded", *argv])
    assert stop.value.code == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == line


@pytest.mark.parametrize(("argv", "line"), [
    (["--markets", "volatile,nope"], "learner_stress.py: error: unknown market(s) ['nope']; choose from configured, "
     "one_tick, wide_spread, busy, dead, volatile, calm, maker_rebate, flat_fees, busy_volatile_tight"),
    (["--learners", "greedy"], "learner_stress.py: error: --learners greedy: unknown learner(s) ['greedy']; choose "
     "from structured, thompson, ucb, epsilon_greedy, linucb, robbins_monro"),
    (["--orders", "0"], "learner_stress.py: error: --orders 0: at least 1"),
    (["--seeds", "4,x"], "learner_stress.py: error: --seeds 4,x: invalid literal for int() with base 10: 'x'"),
    (["--seeds=4,-1"], "learner_stress.py: error: --seeds 4,-1: seeds are at least 0"),
])
def test_learner_stress_bad_flag_is_one_line_and_exit_2(argv: list[str], line: str,
                                                        capsys: pytest.CaptureFixture[str],
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.argv", ["learner_stress.py"])
    with pytest.raises(SystemExit) as stop:
        stress_main(argv)
    assert stop.value.code == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == line


@pytest.mark.parametrize("active_speed", [1.0, 4.0])
def test_the_recorded_regimes_last_a_third_each_at_any_active_speed(active_speed: float) -> None:
    """Quiet ends slowed QUIET_SLOWDOWN times, the middle sped up ``active_speed`` times: three equal regimes per half,
    so each takes a third of the part's intents (with 1, a sixth of the half at each end, as before the flag)."""
    from experiments.bench.learner_eval import QUIET_SLOWDOWN, recorded_regime_market
    from router_tuner.config.loader import load_config
    from router_tuner.simulation.markets import synthetic_markets

    config = load_config()
    market = synthetic_markets(config, ("BTCUSDT",), 3)[0]
    ts = market.tape.quote_ts_ns
    half = (int(ts[-1]) - int(ts[0])) // 2
    quiet = half // 6 if active_speed == 1.0 else int(half / (QUIET_SLOWDOWN * active_speed + 2.0))
    warped = recorded_regime_market(config, market, active_speed).tape.quote_ts_ns
    regime = QUIET_SLOWDOWN * quiet  # each regime's length once played
    assert abs((int(warped[-1]) - int(warped[0])) - 6 * regime) <= 0.001 * regime
    assert abs((half - 2 * quiet) / active_speed - regime) <= 0.001 * regime
    with pytest.raises(ValueError, match="active_speed"):
        recorded_regime_market(config, market, 0.0)


def _solusdt(data: Path, *, crossed: bool = False) -> Path:
    """A minute of usdm SOLUSDT quotes (crossed from the 600th on when asked)."""
    from tests.market.test_market_binance import _snapshot, _ticker, _write

    data.mkdir()
    messages = [_snapshot(0, 100, [["20.00", "300"]], [["20.01", "400"]])]
    messages += [_ticker("solusdt", 1 + 50 * k, "20.02" if crossed and k >= 600 else "20.00", "20.01")
                 for k in range(1200)]
    return _write(data / "usdm_solusdt_20240809.jsonl.gz", messages)


def test_recordings_of_other_symbols_are_scored_with_data_and_config(tmp_path: Path,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    """learner_eval read only $ROUTER_TUNER_DATA with the embedded universe: another symbol's recording ended in a
    traceback (ValueError: not in strategy_config.json's universe) and a damaged one in a MarketDataError
    traceback."""
    data = tmp_path / "data"
    _solusdt(data)
    argv = ["--data", str(data), "--no-regimes", "--orders", "5", "--learners", "structured", "--seeds", "1"]
    assert main(argv) == 2
    assert capsys.readouterr().err.strip().startswith("learner_eval: recorded usdm SOLUSDT is not in")
    config = tmp_path / "config"
    assert cli_main(["config", "init", str(config)]) == 0
    entry = {"venue_symbol": "SOLUSDT", "tier": "CORE", "quote": "USDT", "market": "usdm",
             "contract_type": "linear", "contract_size": 1.0}
    edit_config(config, "strategy_config.json", lambda d: d["universe"].update(SOLUSDT=entry))
    assert main([*argv, "--config", str(config)]) == 0
    assert "SOLUSDT/holdout/s1" in capsys.readouterr().out
    damaged = tmp_path / "damaged"
    path = _solusdt(damaged, crossed=True)
    assert main([*argv, "--config", str(config), "--data", str(damaged)]) == 2
    assert capsys.readouterr().err.strip() == (
        f"learner_eval: {path}:602: crossed quote, bid 20.02 >= ask 20.01 (600 such quotes in all): a book never "
        "crosses, the capture is damaged there; cut the damaged stretch out of the file or move the file out of the "
        "data directory")
