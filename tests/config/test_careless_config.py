"""Config values of the careless-user pass that used to load and fail later (or never): each is a load error
naming its file and key path."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from router_tuner.config.loader import DEFAULTS_DIR
from tests.conftest import config_issues, edit_config


@pytest.mark.parametrize(("key", "value"), [
    ("experiment", ""),                 # MLflow refused it only after the run, as a store failure (exit 1)
    ("experiment", "   "),
    ("registered_model_prefix", ""),    # registered the live models as "-BTCUSDT"
    ("registered_model_prefix", "a b"),
    ("tracking_uri", ""),               # read as "no URI": the local default store, silently
])
def test_an_empty_mlflow_name_is_refused(config_dir: Path, key: str, value: Any) -> None:
    edit_config(config_dir, "tuner.json", lambda d: d["mlflow"].update({key: value}))
    [issue] = config_issues(config_dir)
    assert issue.startswith(f"tuner.json: $.mlflow.{key}: Expected `str`")


def test_an_experiment_name_longer_than_mlflow_takes_is_refused(config_dir: Path) -> None:
    """501 characters loaded, and `simulate` failed after the whole run: "'name' exceeds the maximum length of 500
    characters; check the MLflow store", exit 1."""
    from mlflow.utils.validation import MAX_EXPERIMENT_NAME_LENGTH

    from router_tuner.config.loader import load_config
    from router_tuner.config.models import MAX_EXPERIMENT_NAME

    assert MAX_EXPERIMENT_NAME == MAX_EXPERIMENT_NAME_LENGTH
    edit_config(config_dir, "tuner.json", lambda d: d["mlflow"].update(experiment="x" * (MAX_EXPERIMENT_NAME + 1)))
    assert config_issues(config_dir) == ["tuner.json: $.mlflow.experiment: Expected `str` of length <= 500"]
    edit_config(config_dir, "tuner.json", lambda d: d["mlflow"].update(experiment="x" * MAX_EXPERIMENT_NAME))
    load_config(config_dir)


def _value_lists(node: Any, path: str) -> list[tuple[str, list[Any]]]:
    """(key path, list) of every non-empty list of plain values in a default file."""
    if isinstance(node, dict):
        return [found for key, value in node.items() for found in _value_lists(value, f"{path}.{key}")]
    if isinstance(node, list) and node and not isinstance(node[0], (dict, list)):
        return [(path, node)]
    return []


LISTS = [(file.name, path) for file in sorted(DEFAULTS_DIR.glob("*.json"))
         for path, _ in _value_lists(json.loads(file.read_text()), "$")]


@pytest.mark.parametrize(("file", "path"), LISTS)
def test_a_value_listed_twice_is_refused_in_every_list(config_dir: Path, file: str, path: str) -> None:
    """A repeated symbol, estimator, quote or quantile used to load silently (a typo for another value)."""
    def repeat_first(data: Any) -> None:
        *parents, last = path.removeprefix("$.").split(".")
        for key in parents:
            data = data[key]
        data[last] = [data[last][0], *data[last]]

    edit_config(config_dir, file, repeat_first)
    issues = config_issues(config_dir)
    assert any((issue.startswith(f"{file}: {path}[1]: ") and issue.endswith("is listed twice: list each once"))
               or (issue.startswith(f"{file}: {path.rsplit('.', 1)[0]}: {path.rsplit('.', 1)[1]} must be a "
                                    "non-empty, strictly increasing list"))  # histogram bounds, refused before
               for issue in issues), issues


def test_lists_of_every_file_are_covered() -> None:
    assert {file for file, _ in LISTS} >= {"tuner.json", "router.json", "executor.json"}


@pytest.mark.parametrize(("file", "edit", "issue"), [
    ("strategy_config.json", lambda d: d["universe"]["BTCUSDT"].update(quote="USDT "),
     "strategy_config.json: $.universe.BTCUSDT.quote: Expected `str` matching regex '^\\\\S+$'"),
    ("router.json", lambda d: d["close_position_quotes"].append(""),
     "router.json: $.close_position_quotes[3]: Expected `str` matching regex '^\\\\S+$'"),
    ("executor.json", lambda d: d["prometheus"].update(host="  "),
     "executor.json: $.prometheus.host: must name an address to bind (no spaces)"),
    ("executor.json", lambda d: d["adaptive"].update(tuner_state_path=""),
     "executor.json: $.adaptive.tuner_state_path: Expected `str` matching regex '\\\\S'"),
    ("executor.json", lambda d: d["live"].update(api_base_url="localhost:8080"),
     "executor.json: $.live.api_base_url: Expected `str` matching regex '^https?://\\\\S+$'"),
])
def test_a_blank_or_spaced_name_is_refused(config_dir: Path, file: str, edit: Any, issue: str) -> None:
    """Each loaded before: a quote "USDT " matched no closable quote, a blank host failed only when ``live``
    bound it, a blank tuner state path became the current folder."""
    edit_config(config_dir, file, edit)
    assert config_issues(config_dir) == [issue]


def test_a_bad_map_key_is_named_and_every_one_is_listed(config_dir: Path) -> None:
    """msgspec names no key (``$: Expected ... - at `key` in `$.universe```), and the load stopped at the first."""
    def edit(data: Any) -> None:
        data["universe"]["btcusdt"] = data["universe"]["x y"] = data["universe"]["BTCUSDT"]
        data["sizing"]["base_nav_pct"] = 7

    edit_config(config_dir, "strategy_config.json", edit)
    assert config_issues(config_dir) == [
        "strategy_config.json: $.universe: key 'btcusdt': Expected `str` matching regex '^[A-Z0-9_]+$'",
        "strategy_config.json: $.universe: key 'x y': Expected `str` matching regex '^[A-Z0-9_]+$'",
        "strategy_config.json: $.sizing.base_nav_pct: Expected `float` <= 1.0"]


@pytest.mark.parametrize(("file", "section", "key", "value", "issue"), [
    ("executor.json", ("health", "quality"), "broken_fallback_ratio", 0.1,
     "executor.json: $.health.quality.degraded_fallback_ratio: 0.5 must be at most broken_fallback_ratio 0.1"),
    ("executor.json", ("health", "quality"), "good_slippage_bps", 6.0,
     "executor.json: $.health.quality.good_slippage_bps: 6.0 must be at most degraded_slippage_bps 5.0"),
    ("router.json", ("simulation", "rule_policy"), "degraded_fallback_ratio", 0.95,
     "router.json: $.simulation.rule_policy.degraded_fallback_ratio: 0.95 must be at most broken_fallback_ratio 0.9"),
])
def test_quality_bands_out_of_order_are_refused(config_dir: Path, file: str, section: tuple[str, str], key: str,
                                                value: float, issue: str) -> None:
    """A broken band under the degraded one loaded, and called a symbol broken before it was degraded."""
    edit_config(config_dir, file, lambda d: d[section[0]][section[1]].update({key: value}))
    assert config_issues(config_dir) == [issue]


def test_a_byte_order_mark_is_named_as_such(config_dir: Path) -> None:
    """It read ``not valid JSON: Unexpected UTF-8 BOM (decode using utf-8-sig)``: Python's advice, not the user's."""
    path = config_dir / "router.json"
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    assert config_issues(config_dir) == ["router.json: $: starts with a UTF-8 byte order mark (BOM), invisible in "
                                         "most editors: save it as UTF-8 without BOM"]


def test_one_instrument_under_two_names_is_refused(config_dir: Path) -> None:
    """BTCUSDC pointing at usdm BTCUSDT loaded; simulate then refused the recording, and only when it had one."""
    edit_config(config_dir, "strategy_config.json", lambda d: d["universe"]["BTCUSDC"].update(venue_symbol="BTCUSDT"))
    assert config_issues(config_dir) == ["strategy_config.json: $.universe.BTCUSDC.venue_symbol: usdm BTCUSDT is "
                                         "already in the universe as BTCUSDT: give each instrument one entry"]


@pytest.mark.parametrize(("encoding", "issue"), [
    ("utf-16", "is UTF-16 text (it starts with a UTF-16 byte order mark): save it as UTF-8"),
    ("utf-32", "is UTF-32 text (it starts with a UTF-32 byte order mark): save it as UTF-8"),
    ("utf-16-le", "holds NUL bytes, as UTF-16 or UTF-32 text does: save it as UTF-8"),
    ("utf-8+nul", "holds 512 NUL bytes after its text, as a file does whose writer died while extending it (a crash, "
                  "a power loss): delete the NUL bytes"),
])
def test_a_file_saved_as_utf16_is_named_as_such(config_dir: Path, encoding: str, issue: str) -> None:
    """Windows PowerShell's ``>`` writes UTF-16: it read ``not valid JSON: 'utf-8' codec can't decode byte 0xff in
    position 0: invalid start byte``."""
    path = config_dir / "router.json"
    text = path.read_text(encoding="utf-8")
    path.write_bytes(text.encode() + b"\x00" * 512 if encoding == "utf-8+nul" else text.encode(encoding))
    assert config_issues(config_dir) == [f"router.json: $: {issue}"]


@pytest.mark.parametrize("content", [b"", b" \n\r\n\t"])
def test_an_empty_file_is_named_as_such(config_dir: Path, content: bytes) -> None:
    """It read ``not valid JSON: Expecting value: line 1 column 1 (char 0)``."""
    (config_dir / "tuner.json").write_bytes(content)
    assert config_issues(config_dir) == [
        f"tuner.json: $: the file is empty (looked for {config_dir / 'tuner.json'}); put the JSON object there"]


@pytest.mark.parametrize("poll_ms", [1e-6, 0.5])
def test_a_route_poll_interval_under_a_millisecond_is_refused(config_dir: Path, poll_ms: float) -> None:
    """1e-6 ms loaded, and a paper route polled its replay two billion times: `live` hung on its first intent."""
    edit_config(config_dir, "executor.json", lambda data: data["route"].update(poll_interval_ms=poll_ms))
    assert config_issues(config_dir) == [
        "executor.json: $.route.poll_interval_ms: Expected `float` >= 1.0"]
