"""learner_eval's and learner_stress's bad flags end in one stderr line and exit 2 (a bad ``--set`` used to exit 1)."""

from __future__ import annotations

import pytest

from experiments.bench.learner_eval import main
from experiments.bench.learner_stress import main as stress_main


@pytest.mark.parametrize(("argv", "line"), [
    (["--set", "tuner.reward_mid_drift_window=-1"],
     "learner_eval: tuner.reward_mid_drift_window=-1: Expected `int` >= 0 - at `$.reward_mid_drift_window`"),
    (["--set", "tuner.reward_mid=Route_End"],
     "learner_eval: tuner.reward_mid='Route_End': Invalid enum value 'Route_End' - at `$.reward_mid`"),
    (["--set", "tuner.reward_mid_drift_window=0,1"],
     "learner_eval: --set 'tuner.reward_mid_drift_window=0,1': one value per key here (the sweep takes several)"),
    (["--informed", "nan"], "learner_eval.py: error: --informed nan: a share, between 0 and 1"),
    (["--informed", "1.0000001"], "learner_eval.py: error: --informed 1.0000001: a share, between 0 and 1"),
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
    (["--learners", "greedy"], "learner_stress.py: error: unknown learner(s) ['greedy']; choose from structured, "
     "thompson, ucb, epsilon_greedy, linucb, robbins_monro"),
    (["--orders", "0"], "learner_stress.py: error: --orders 0: at least 1"),
    (["--seeds", "4,x"], "learner_stress.py: error: invalid literal for int() with base 10: 'x'"),
])
def test_learner_stress_bad_flag_is_one_line_and_exit_2(argv: list[str], line: str,
                                                        capsys: pytest.CaptureFixture[str],
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.argv", ["learner_stress.py"])
    with pytest.raises(SystemExit) as stop:
        stress_main(argv)
    assert stop.value.code == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == line
