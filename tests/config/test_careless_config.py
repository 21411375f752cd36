"""Config values of the careless-user pass that used to load and fail later (or never): each is a load error
naming its file and key path."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from router_tuner.config.loader import DEFAULTS_DIR, load_config
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
     "executor.json: $.prometheus.host: is blank: write a value"),
    ("executor.json", lambda d: d["prometheus"].update(host="local host"),
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
    edit_config(config_dir, "strategy_config.json",
                lambda d: d["universe"]["BTCUSDC"].update(venue_symbol="BTCUSDT", quote="USDT"))
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


@pytest.mark.parametrize(("file", "edit", "issue"), [
    ("executor.json", lambda d: d["adaptive"].update(tuner_state_path="var/a\x00b.json"),   # unexpected ValueError
     "executor.json: $.adaptive.tuner_state_path: holds a control character (U+0000, character 6 of 12)"),
    ("tuner.json", lambda d: d["mlflow"].update(tracking_uri="sqlite:///var/m\nl.db"),  # a store named over two lines
     "tuner.json: $.mlflow.tracking_uri: holds a control character (U+000A, character 16 of 20)"),
    ("executor.json", lambda d: d["push"].update(url="http://ho\tst/x"),                 # urllib dropped the tab
     "executor.json: $.push.url: holds a control character (U+0009, character 10 of 14)"),
    ("tuner.json", lambda d: d["mlflow"].update(experiment="router\u202etuner"),         # a right-to-left override
     "tuner.json: $.mlflow.experiment: holds an invisible format character (U+202E, character 7 of 12)"),
    ("tuner.json", lambda d: d["mlflow"].update(experiment="a\ud800b"),                  # not encodable as UTF-8
     "tuner.json: $.mlflow.experiment: holds a lone UTF-16 surrogate (U+D800, character 2 of 3)"),
    ("risk_limits.json", lambda d: d["tier_caps"].update({"C\x00": {"max_nav_pct": 0.5}}),
     "risk_limits.json: $.tier_caps: key 'C\\x00': holds a control character (U+0000, character 2 of 2)"),
])
def test_a_character_that_does_not_show_is_refused_anywhere(config_dir: Path, file: str, edit: Any,
                                                            issue: str) -> None:
    """Each passed `config check`: a NUL stopped ``live --policy-source tuner`` and ``simulate`` with "unexpected
    ValueError: embedded null byte" (exit 1), a newline in the tracking URI made a store file named over two lines."""
    edit_config(config_dir, file, edit)
    assert config_issues(config_dir) == [f"{issue} that does not show as written: retype the value as one line of "
                                         "visible text"]


@pytest.mark.parametrize(("file", "edit", "issue"), [
    ("tuner.json", lambda d: d["mlflow"].update(experiment="router-tuner "),   # silently another experiment
     "tuner.json: $.mlflow.experiment: starts or ends with whitespace, which would be kept as part of the value "
     "(another file, URL or name): remove it"),
    ("executor.json", lambda d: d["adaptive"].update(tuner_state_path=" var/state.json"),
     "executor.json: $.adaptive.tuner_state_path: starts or ends with whitespace, which would be kept as part of the "
     "value (another file, URL or name): remove it"),
    ("tuner.json", lambda d: d["mlflow"].update(tracking_uri="  "),           # "' ' is a folder path" at run time
     "tuner.json: $.mlflow.tracking_uri: is blank: write a value"),
])
def test_a_value_with_stray_whitespace_is_refused(config_dir: Path, file: str, edit: Any, issue: str) -> None:
    """Strings without a pattern of their own (paths, URLs, the experiment) kept a stray space as part of the value."""
    edit_config(config_dir, file, edit)
    assert config_issues(config_dir) == [issue]


UNDERFLOW = ("reads as 0: it is beyond the smallest floating-point number (about 1e-308); write 0 if 0 is meant, "
             "else a value of at least 1e-300")


@pytest.mark.parametrize(("old", "new", "issue"), [
    ('"after_stop_s": 900.0', '"after_stop_s": 1e-400', f"$.cooldowns.after_stop_s: 1e-400 {UNDERFLOW}"),
    ('"after_stop_s": 900.0', '"after_stop_s": 0.5E-999', f"$.cooldowns.after_stop_s: 0.5E-999 {UNDERFLOW}"),
    ('"max_age_s": 30.0', '"max_age_s": 1e-999', f"$.nav.max_age_s: 1e-999 {UNDERFLOW}"),
])
def test_a_number_that_reads_as_zero_is_named(config_dir: Path, old: str, new: str, issue: str) -> None:
    """``1e-400`` is positive as written and reads as 0.0: a cooldown of 0 loaded silently, and a setting that must be
    positive was refused as "Expected `float` > 0.0", though it is written above 0."""
    path = config_dir / "risk_limits.json"
    path.write_text(path.read_text(encoding="utf-8").replace(old, new), encoding="utf-8")
    assert config_issues(config_dir) == [f"risk_limits.json: {issue}"]


def test_a_zero_written_with_an_exponent_is_still_zero(config_dir: Path) -> None:
    path = config_dir / "risk_limits.json"
    path.write_text(path.read_text(encoding="utf-8").replace('"after_stop_s": 900.0', '"after_stop_s": 0e-400'),
                    encoding="utf-8")
    assert load_config(config_dir).risk.cooldowns.after_stop_s == 0.0


@pytest.mark.parametrize(("file", "section", "path"), [
    ("tuner.json", ("ope",), "$.ope.ci_level"),
    ("router.json", ("simulation", "bootstrap"), "$.simulation.bootstrap.ci_level"),
])
def test_an_error_rate_written_as_a_confidence_level_is_refused(config_dir: Path, file: str,
                                                                section: tuple[str, ...], path: str) -> None:
    """0.05 (meant: 95 %) loaded: every interval shrank about its estimate (0.0001: ``ope`` printed SNIPS 3.897
    [3.888, 3.888]) and the OPE gate, which needs the candidate's cost upper bound under the champion's, passed on
    noise. 0.5 still loads."""
    def set_level(level: float) -> None:
        def edit(data: Any) -> None:
            for key in section:
                data = data[key]
            data["ci_level"] = level
        edit_config(config_dir, file, edit)

    set_level(0.05)
    assert config_issues(config_dir) == [
        f"{file}: {path}: 0.05 is the confidence the intervals are drawn at (0.95 for 95 %), not their error rate: "
        "under 0.5 an interval is narrower than the estimate's own noise (an OPE gate on its upper bound passes on "
        "noise); write 0.95 if that is the level meant"]
    set_level(0.5)
    load_config(config_dir)


@pytest.mark.parametrize(("old", "new", "hint"), [
    ('"taker_biases": [0.0, 1.0]', '"taker_biases": [0.0, 1.0,]', "JSON allows no comma before ]: delete the extra "
                                                                  "comma"),
    ('"learner"', "\u201clearner\u201d", "\u201c is a typographic quote: JSON needs a plain double quote (\"), so turn "
                                         "smart quotes off"),
    ('"learner"', "'learner'", "JSON strings and keys take double quotes (\"), not single ones"),
    ('"learner": "structured",', '"learner": "structured", // the default', "JSON has no comments: delete it"),
    ('"seed": 7,', '"seed": 7,,', "JSON allows no comma before ,: delete the extra comma"),
    ('"seed": 7,', '"seed":\u00a07,', "U+00A0 (no-break space) is not JSON whitespace: retype it as a plain space, or "
                                    "delete it"),
])
def test_a_json_slip_is_named_in_an_editor_s_terms(config_dir: Path, old: str, new: str, hint: str) -> None:
    """A trailing comma and a smart quote both read only "Expecting property name enclosed in double quotes", which a
    file of double quotes does not explain."""
    path = config_dir / "tuner.json"
    path.write_text(path.read_text(encoding="utf-8").replace(old, new, 1), encoding="utf-8")
    [issue] = config_issues(config_dir)
    assert issue.startswith("tuner.json: $: not valid JSON: ") and issue.endswith(f"; {hint}"), issue


@pytest.mark.parametrize(("edit", "hint"), [
    (lambda text: text + text, "the file goes on after its JSON object (a second object, a pasted fragment): keep "
                               "the one object"),
    (lambda text: text[:len(text) // 2], "the file ends before its JSON object is closed (cut short?): complete it"),
])
def test_a_file_with_two_objects_or_cut_short_is_named_as_such(config_dir: Path, edit: Any, hint: str) -> None:
    path = config_dir / "tuner.json"
    path.write_text(edit(path.read_text(encoding="utf-8").rstrip()), encoding="utf-8")
    [issue] = config_issues(config_dir)
    assert issue.endswith(f"; {hint}"), issue


@pytest.mark.parametrize(("file", "section", "key", "level", "resamples", "needed"), [
    ("tuner.json", ("ope",), "bootstrap_resamples", 0.95, 2, 200),
    ("tuner.json", ("ope",), "bootstrap_resamples", 0.99, 999, 1000),
    ("router.json", ("simulation", "bootstrap"), "n_resamples", 0.95, 199, 200),
])
def test_too_few_resamples_for_the_interval_are_refused(config_dir: Path, file: str, section: tuple[str, ...],
                                                        key: str, level: float, resamples: int, needed: int) -> None:
    """2 loaded, and ``ope`` printed SNIPS 3.897 with the interval [4.021, 4.058], which does not hold it: an end
    between a few draws. The defaults (1000 at 0.95, 400 at 0.95) load."""
    def set_interval(count: int) -> None:
        def edit(data: Any) -> None:
            for part in section:
                data = data[part]
            data.update({"ci_level": level, key: count})
        edit_config(config_dir, file, edit)

    set_interval(resamples)
    [issue] = config_issues(config_dir)
    assert issue.startswith(f"{file}: $.{'.'.join(section)}.{key}: {resamples} resamples leave "), issue
    assert issue.endswith(f"use at least {needed} (5 beyond each end), or lower ci_level"), issue
    set_interval(needed)
    load_config(config_dir)


@pytest.mark.parametrize(("symbol", "quote"), [("BTCUSDT", "USDC"), ("BTCUSD_PERP", "USDT"), ("ETHUSDT_SPOT", "USD")])
def test_a_quote_the_venue_symbol_does_not_end_with_is_refused(config_dir: Path, symbol: str, quote: str) -> None:
    """BTCUSDT quoted USDC loaded: its closes were allowed or refused by router.json close_position_quotes for a quote
    the venue does not trade it in."""
    edit_config(config_dir, "strategy_config.json", lambda d: d["universe"][symbol].update(quote=quote))
    venue_symbol = json.loads((config_dir / "strategy_config.json").read_text())["universe"][symbol]["venue_symbol"]
    assert config_issues(config_dir) == [
        f"strategy_config.json: $.universe.{symbol}.quote: {quote} is not the quote venue symbol {venue_symbol} ends "
        "with (Binance names a pair base then quote): set the quote the venue trades it in"]


@pytest.mark.parametrize("target", ["tuner.json", "/nonexistent/tuner.json"])
def test_a_dangling_or_looping_symbolic_link_is_named_as_such(config_dir: Path, target: str) -> None:
    """It read "missing file", though ``ls`` shows the name there."""
    (config_dir / "tuner.json").unlink()
    (config_dir / "tuner.json").symlink_to(target)
    assert config_issues(config_dir) == [
        f"tuner.json: $: {config_dir / 'tuner.json'} is a symbolic link to {target}, which does not exist (or links "
        "back to itself); point it at the JSON file"]


@pytest.mark.parametrize(("file", "edit", "issue"), [
    ("executor.json", lambda d: d["adaptive"].update(tuner_state_path="var/" + "x" * 300 + ".json"),
     "executor.json: $.adaptive.tuner_state_path: names a file or folder of 305 bytes"),
    ("tuner.json", lambda d: d["mlflow"].update(tracking_uri="sqlite:///var/" + "é" * 128 + ".db"),
     "tuner.json: $.mlflow.tracking_uri: names a file or folder of 259 bytes"),
])
def test_a_file_name_longer_than_a_file_system_takes_is_refused(config_dir: Path, file: str, edit: Any,
                                                                issue: str) -> None:
    """Both passed `config check`; `live --policy-source tuner` and `simulate` stopped with "File name too long", exit
    1, naming no key."""
    edit_config(config_dir, file, edit)
    assert config_issues(config_dir) == [f"{issue}, longer than the 255 a file system takes; shorten it"]


def test_a_file_written_before_a_key_existed_is_told_the_line_to_add(config_dir: Path) -> None:
    edit_config(config_dir, "risk_limits.json", lambda d: d.pop("intent_max_age_s"))
    edit_config(config_dir, "executor.json", lambda d: d.pop("paper"))
    issues = config_issues(config_dir)
    assert ("risk_limits.json: $: Object missing required field `intent_max_age_s`; add it, e.g. "
            '"intent_max_age_s": null (the embedded default; README Configuration says what it sets)') in issues
    # a whole section is not printed into the line: config init writes it
    assert ("executor.json: $: Object missing required field `paper`; add it: `router-tuner config init DIR` "
            "writes the embedded default $.paper") in issues


@pytest.mark.parametrize("window", [1.0, 200.0, 500.0])
def test_a_fill_speed_memory_not_shorter_than_the_learner_s_is_refused(config_dir: Path, window: float) -> None:
    edit_config(config_dir, "tuner.json", lambda d: d["learner_params"]["structured"].update(fill_speed_window=window))
    issues = config_issues(config_dir)
    assert len(issues) == 1 and f"fill_speed_window {window:g} must be 0 (off), or above 1 and under " \
                                 "forgetting_window 200" in issues[0]


def test_a_fill_speed_window_of_0_turns_it_off(config_dir: Path) -> None:
    edit_config(config_dir, "tuner.json", lambda d: d["learner_params"]["structured"].update(fill_speed_window=0))
    assert load_config(config_dir).tuner.learner_params.structured.fill_speed_window == 0.0
