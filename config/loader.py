"""Strict loading of a configuration directory: every problem is reported with its file and key path.

The load runs in three passes and reports everything it finds, not just the first error:
1. JSON parse with duplicate-key detection at any depth (``json`` keeps the last duplicate silently);
2. typed decoding with msgspec (unknown keys, missing keys, wrong types, out-of-range values);
3. cross-file checks (sizing floors vs min notional, tiers, symbols, arm grid vs policy bounds,
   concurrency defined in one place only).
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
import msgspec.inspect

from router_tuner.config.encoding import encoding_problem
from router_tuner.config.models import (
    EXCHANGE_MARKET,
    MARKET_CONTRACT_TYPE,
    ConfigBundle,
    ExecutorConfig,
    RiskLimits,
    RouterConfig,
    StaticPolicy,
    StrategyConfig,
    TunerConfig,
    UniverseEntry,
    is_unit_fraction,
)
from router_tuner.config.redact import find_secrets, redact
from router_tuner.config.text import json_error_hint, parse_float, text_problems, underflowed_numbers, url_problem

DEFAULTS_DIR = Path(__file__).resolve().parent / "defaults"
FILES: dict[str, type[msgspec.Struct]] = {
    "risk_limits.json": RiskLimits,
    "strategy_config.json": StrategyConfig,
    "router.json": RouterConfig,
    "tuner.json": TunerConfig,
    "executor.json": ExecutorConfig,
}
_BUNDLE_FIELDS = ("risk", "strategy", "router", "tuner", "executor")
"""The ConfigBundle field of each of FILES, in order."""
CONCURRENCY_HOME = ("risk_limits.json", "max_concurrent_positions")
_CONCURRENCY_KEY = re.compile(r"concurren", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class ConfigIssue:
    """One problem: the file, the key path inside it (``$`` is the root) and what is wrong."""

    file: str
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}: {self.path}: {self.message}"


class ConfigError(ValueError):
    """A configuration directory that must not be traded on; ``issues`` lists every problem."""

    def __init__(self, issues: Iterable[ConfigIssue]) -> None:
        self.issues = tuple(issues)
        super().__init__("invalid configuration:\n" + "\n".join(f"  {issue}" for issue in self.issues))


class _Pairs(list[tuple[str, Any]]):
    """Object pairs as parsed, kept in order so duplicates survive until they are reported."""


def _parse_json(text: str) -> Any:
    return json.loads(text, object_pairs_hook=_Pairs, parse_float=parse_float)


def _find_duplicates(node: Any, path: str) -> list[str]:
    found: list[str] = []
    if isinstance(node, _Pairs):
        seen: set[str] = set()
        for key, value in node:
            if key in seen:
                found.append(f"{path}.{key}")
            seen.add(key)
            found.extend(_find_duplicates(value, f"{path}.{key}"))
    elif isinstance(node, list):
        for index, item in enumerate(node):
            found.extend(_find_duplicates(item, f"{path}[{index}]"))
    return found


def _to_plain(node: Any) -> Any:
    if isinstance(node, _Pairs):
        return {key: _to_plain(value) for key, value in node}
    if isinstance(node, list):
        return [_to_plain(item) for item in node]
    return node


_AT = re.compile(r"^(?P<message>.*) - at `(?P<path>[^`]*)`$", re.DOTALL)
_KEY_AT = re.compile(r"^(?P<message>.*) - at `key` in `(?P<path>[^`]*)`$", re.DOTALL)


def _split_msgspec_error(error: msgspec.ValidationError) -> tuple[str, str]:
    match = _KEY_AT.match(str(error)) or _AT.match(str(error))
    if match is None:
        return "$", str(error)
    return match["path"], match["message"]


def _lookup(node: Any, path: str) -> Any:
    for part in re.findall(r"\.([^.\[]+)|\[(\d+)\]", path.removeprefix("$")):
        key, index = part
        node = node[key] if key else node[int(index)]
    return node


def _narrowed(raw: dict[str, Any], path: str, key: str) -> dict[str, Any]:
    """A copy of ``raw`` whose map at ``path`` holds ``key`` alone: decoding it tells whether ``key`` is at fault."""
    probe = json.loads(json.dumps(raw))
    container = _lookup(probe, path)
    for other in list(container):
        if other != key:
            del container[other]
    return probe


def _name_dict_keys(raw: dict[str, Any], model: type[msgspec.Struct], path: str, message: str) -> str:
    """Replace msgspec's ``[...]`` (a dict entry it does not name) by the offending key."""
    while "[...]" in path:
        prefix, rest = path.split("[...]", 1)
        container = _lookup(raw, prefix)
        culprit = None
        for key in container:
            try:
                msgspec.convert(_narrowed(raw, prefix, key), model, strict=True)
            except msgspec.ValidationError as error:
                if _split_msgspec_error(error)[1] == message:
                    culprit = key
                    break
        if culprit is None:
            return path
        path = f"{prefix}.{culprit}{rest}"
    return path


def _bad_key(raw: dict[str, Any], model: type[msgspec.Struct], path: str, message: str) -> str | None:
    """The key of the map at ``path`` that msgspec refused with ``message`` (it names none)."""
    try:
        container = _lookup(raw, path)
    except (KeyError, IndexError, TypeError):
        return None
    for key in container:
        try:
            msgspec.convert(_narrowed(raw, path, key), model, strict=True)
        except msgspec.ValidationError as error:
            if _KEY_AT.match(str(error)) is not None and _split_msgspec_error(error) == (path, message):
                return str(key)
    return None


_UNKNOWN = re.compile(r"^Object contains unknown field `(?P<key>[^`]+)`$")
_MISSING = re.compile(r"^Object missing required field `(?P<key>[^`]+)`$")


def _patch(raw: Any, reference: Any, path: str, message: str) -> bool:
    """Set aside the error at ``path`` so the next decode can find the file's other problems.

    An unknown key is dropped; a bad or missing value is replaced by the embedded default's value.
    Returns False when there is nothing safe to patch with (the loop then stops).
    """
    parent_path, _, last = path.rpartition(".")
    try:
        if (unknown := _UNKNOWN.match(message)) is not None:
            del _lookup(raw, path)[unknown["key"]]
            return True
        if (missing := _MISSING.match(message)) is not None:
            _lookup(raw, path)[missing["key"]] = _lookup(reference, f"{path}.{missing['key']}")
            return True
        if parent_path and "[" not in last:
            _lookup(raw, parent_path)[last] = _lookup(reference, path)
            return True
    except (KeyError, IndexError, TypeError):
        return False
    return False


def _explain(work: Any, path: str, message: str) -> str:
    """Say so when the value is NaN or infinite (``NaN``, ``Infinity``, ``1e400`` in the file)."""
    try:
        value = _lookup(work, path)
    except (KeyError, IndexError, TypeError, ValueError):
        return message
    if isinstance(value, float) and not math.isfinite(value):
        return f"{value} is not a finite number: {message[:1].lower()}{message[1:]}"
    return message


def _missing_hint(reference: Any, path: str, message: str) -> str:
    """For a key the file lacks, the line that adds it with the embedded default's value (a file written before
    the key existed read "Object missing required field" and left the user to find what to put)."""
    if (missing := _MISSING.match(message)) is None:
        return ""
    try:
        default = _lookup(reference, f"{path}.{missing['key']}")
    except (KeyError, IndexError, TypeError):
        return ""
    shown = json.dumps(default)
    if len(shown) > 60:  # a whole section: its text would drown the line
        return f"; add it: `router-tuner config init DIR` writes the embedded default {path}.{missing['key']}"
    return (f"; add it, e.g. {json.dumps(missing['key'])}: {shown} (the embedded default; README Configuration says "
            "what it sets)")


def _decode(file: str, raw: Any, model: type[msgspec.Struct]) -> tuple[Any, list[ConfigIssue]]:
    """Decode strictly; on failure keep decoding a patched copy to report every problem in the file."""
    issues: list[ConfigIssue] = []
    reference: Any = None
    work = json.loads(json.dumps(raw))
    while True:
        try:
            value = msgspec.convert(work, model, strict=True)
            return (value if not issues else None), issues
        except msgspec.ValidationError as error:
            path, message = _split_msgspec_error(error)
            if isinstance(work, dict):
                path = _name_dict_keys(work, model, path, message)
            if _KEY_AT.match(str(error)) is not None:  # a map's key, not a value: name it and set it aside
                key = _bad_key(work, model, path, message)
                issues.append(ConfigIssue(file, path, f"key {key!r}: {message}"))
                if len(issues) >= 50 or key is None:
                    return None, issues
                del _lookup(work, path)[key]
                continue
            if reference is None:  # the embedded default is read only when there is something to patch
                reference = json.loads((DEFAULTS_DIR / file).read_text(encoding="utf-8"))
            issues.append(ConfigIssue(file, path, _explain(work, path, message) + _missing_hint(reference, path,
                                                                                                 message)))
            if len(issues) >= 50 or not isinstance(work, dict) or not _patch(work, reference, path, message):
                return None, issues


def _concurrency_keys(node: Any, path: str) -> list[str]:
    found: list[str] = []
    if isinstance(node, dict):
        for key, value in node.items():
            if _CONCURRENCY_KEY.search(key):
                found.append(f"{path}.{key}")
            found.extend(_concurrency_keys(value, f"{path}.{key}"))
    return found


def _read(directory: Path, file: str) -> tuple[Any, list[ConfigIssue]]:
    path = directory / file
    if path.exists() and not path.is_file():
        return None, [ConfigIssue(file, "$", f"not a regular file (looked for {path}); put the JSON file there")]
    if path.is_symlink() and not path.exists():  # it read "missing file" though the name is there
        return None, [ConfigIssue(file, "$", f"{path} is a symbolic link to {os.readlink(path)}, which does not exist "
                                             "(or links back to itself); point it at the JSON file")]
    if not path.is_file():
        return None, [ConfigIssue(file, "$", f"missing file (looked for {path})")]
    try:
        data = path.read_bytes()
        if not data.strip():  # json's "Expecting value: line 1 column 1 (char 0)" does not say the file is empty
            return None, [ConfigIssue(file, "$", f"the file is empty (looked for {path}); put the JSON object there")]
        if (problem := encoding_problem(data)) is not None:
            return None, [ConfigIssue(file, "$", problem)]
        parsed = _parse_json(data.decode("utf-8"))
        issues = [ConfigIssue(file, dup, "duplicate key") for dup in _find_duplicates(parsed, "$")]
        plain = _to_plain(parsed)
        if not isinstance(plain, dict):   # null would otherwise read as "nothing loaded" and lose the file
            kind = "null" if plain is None else type(plain).__name__
            return None, [ConfigIssue(file, "$", f"must hold one JSON object {{...}}, got {kind}")]
        return plain, issues
    except OSError as error:
        return None, [ConfigIssue(file, "$", f"cannot be read: {error.strerror or error}")]
    except RecursionError:
        return None, [ConfigIssue(file, "$", "not valid JSON: nested too deeply for a configuration file")]
    except json.JSONDecodeError as error:
        return None, [ConfigIssue(file, "$", f"not valid JSON: {error}{json_error_hint(error)}")]
    except UnicodeDecodeError as error:
        return None, [ConfigIssue(file, "$", f"not valid JSON: {error}")]
    except ValueError:  # Python refuses integer literals of more than 4300 digits
        return None, [ConfigIssue(file, "$", "not valid JSON: a number literal of thousands of digits")]


def cross_check(bundle: ConfigBundle) -> list[ConfigIssue]:
    """Consistency between files: what each file alone cannot know."""
    risk, strategy, router, tuner = bundle.risk, bundle.strategy, bundle.router, bundle.tuner
    issues: list[ConfigIssue] = []
    universe = strategy.universe
    for symbol, entry in universe.items():
        where = f"$.universe.{symbol}"
        if entry.tier not in risk.tier_caps:
            issues.append(ConfigIssue("strategy_config.json", f"{where}.tier",
                                      f"tier {entry.tier!r} has no entry in risk_limits.json tier_caps"))
        bucket = strategy.sizing.buckets.get(entry.tier)
        if bucket is None:
            issues.append(ConfigIssue("strategy_config.json", f"{where}.tier",
                                      f"tier {entry.tier!r} has no sizing bucket in $.sizing.buckets"))
        elif bucket.floor_usd < risk.min_notional_usd(symbol):
            issues.append(ConfigIssue(
                "strategy_config.json", f"$.sizing.buckets.{entry.tier}.floor_usd",
                f"sizing floor {bucket.floor_usd} USD is below the min_notional "
                f"{risk.min_notional_usd(symbol)} USD that applies to {symbol} (risk_limits.json)"))
    named: dict[tuple[str, str], str] = {}
    for symbol, entry in universe.items():  # one instrument under two of our names: which one is traded?
        first = named.setdefault((entry.market, entry.venue_symbol), symbol)
        if first != symbol:
            issues.append(ConfigIssue("strategy_config.json", f"$.universe.{symbol}.venue_symbol",
                                      f"{entry.market} {entry.venue_symbol} is already in the universe as {first}: "
                                      "give each instrument one entry"))
    for symbol, entry in universe.items():
        if entry.market != "spot" and entry.quote not in router.close_position_quotes:
            issues.append(ConfigIssue(
                "router.json", "$.close_position_quotes",
                f"{symbol} is quoted in {entry.quote}, which is not listed: "
                "its positions could not be closed"))
        if not entry.venue_symbol.split("_")[0].upper().endswith(entry.quote.upper()):  # BTCUSDT, BTCUSD_PERP
            issues.append(ConfigIssue(
                "strategy_config.json", f"$.universe.{symbol}.quote",
                f"{entry.quote} is not the quote venue symbol {entry.venue_symbol} ends with (Binance names a pair "
                "base then quote): set the quote the venue trades it in"))
        if MARKET_CONTRACT_TYPE[entry.market] != entry.contract_type:
            issues.append(ConfigIssue(
                "strategy_config.json", f"$.universe.{symbol}.contract_type",
                f"market {entry.market!r} trades {MARKET_CONTRACT_TYPE[entry.market]} contracts, "
                f"got {entry.contract_type!r}"))
        if entry.market not in router.sim_venue.fees:
            issues.append(ConfigIssue("router.json", "$.sim_venue.fees",
                                      f"no fee schedule for market {entry.market!r} of {symbol}"))
    screener = strategy.screener
    if screener.require_imbalance_alignment and screener.orderbook_imbalance_gate >= 1.0:
        issues.append(ConfigIssue("strategy_config.json", "$.screener.orderbook_imbalance_gate",
                                  f"{screener.orderbook_imbalance_gate:g}: a book leans 1 only with nothing on the "
                                  "other side, so every opening intent would be vetoed "
                                  "orderbook_imbalance_below_gate; set it below 1, or require_imbalance_alignment "
                                  "false"))
    issues.extend(_policy_bound_issues(router))
    issues.extend(_arm_grid_issues(router, tuner))
    issues.extend(_prior_band_issues(tuner))
    issues.extend(_memory_issues(tuner))
    issues.extend(_executor_issues(bundle))
    deployment = tuner.deployment
    if deployment.gate_estimator not in tuner.ope.estimators:
        issues.append(ConfigIssue("tuner.json", "$.deployment.gate_estimator",
                                  f"{deployment.gate_estimator!r} is not among $.ope.estimators "
                                  f"{list(tuner.ope.estimators)}: the gates could not be computed"))
    issues.extend(_symbol_reference_issues(bundle))
    issues.extend(model_prefix_issues(router, tuner))
    issues.extend(_order_issues(bundle))
    issues.extend(informed_horizon_issues(router))
    issues.extend(_markout_horizon_issues(router, tuner))
    issues.extend(_step_issues(bundle))
    issues.extend(_synthetic_size_issues(bundle))
    issues.extend(_synthetic_price_issues(bundle))
    issues.extend(_synthetic_duration_issues(router))
    issues.extend(_url_issues(bundle))
    issues.extend(_interval_issues(router, tuner))
    for file, attr in zip(FILES, _BUNDLE_FIELDS, strict=True):
        issues.extend(_repeated_values(file, getattr(bundle, attr), "$"))
    return issues


MIN_CONFIDENCE_LEVEL = 0.5
"""The lowest confidence an interval may be drawn at: below it the interval is narrower than the estimate's noise."""
MIN_RESAMPLES_PER_TAIL = 5
"""Bootstrap resamples beyond each end of an interval: with fewer, an end is an interpolation between a few draws."""


def _interval_issues(router: RouterConfig, tuner: TunerConfig) -> list[ConfigIssue]:
    """Bootstrap intervals that cannot mean what they say. A level under 0.5 is an error rate written as a level (0.05
    for 95 %): it loaded, every interval shrank about the estimate (0.0001: ``ope`` printed SNIPS 3.897 [3.888, 3.888])
    and the OPE gate of ``policy promote --journal``, which needs the candidate's cost upper bound under the champion's,
    passed on noise. Too few resamples for the level put each end between a few draws: 2 loaded and ``ope`` printed
    SNIPS 3.897 with the interval [4.021, 4.058], which does not hold it."""
    intervals = (("tuner.json", "$.ope", tuner.ope.ci_level, "bootstrap_resamples", tuner.ope.bootstrap_resamples),
                 ("router.json", "$.simulation.bootstrap", router.simulation.bootstrap.ci_level, "n_resamples",
                  router.simulation.bootstrap.n_resamples))
    issues = []
    for file, section, level, key, resamples in intervals:
        needed = math.ceil(2 * MIN_RESAMPLES_PER_TAIL / (1 - level) - 1e-9)
        if level < MIN_CONFIDENCE_LEVEL:
            issues.append(ConfigIssue(file, f"{section}.ci_level",
                                      f"{level:g} is the confidence the intervals are drawn at (0.95 for 95 %), not "
                                      f"their error rate: under {MIN_CONFIDENCE_LEVEL:g} an interval is narrower than "
                                      "the estimate's own noise (an OPE gate on its upper bound passes on noise); "
                                      f"write {1 - level:g} if that is the level meant"))
        elif resamples < needed:
            issues.append(ConfigIssue(file, f"{section}.{key}",
                                      f"{resamples} resamples leave {resamples * (1 - level) / 2:.3g} beyond each end "
                                      f"of the {level:g} interval, so its ends are interpolations between a few draws "
                                      "(they need not even hold the estimate); use at least "
                                      f"{needed} ({MIN_RESAMPLES_PER_TAIL} beyond each end), or lower ci_level"))
    return issues


def _repeated_values(file: str, node: Any, path: str) -> list[ConfigIssue]:
    """A list naming a value twice (a symbol, an estimator, an arm) is a typo for another value: never meant."""
    if isinstance(node, msgspec.Struct):
        return [issue for field in node.__struct_fields__
                for issue in _repeated_values(file, getattr(node, field), f"{path}.{field}")]
    if isinstance(node, dict):
        return [issue for key, value in node.items() for issue in _repeated_values(file, value, f"{path}.{key}")]
    if isinstance(node, tuple):
        seen: set[Any] = set()
        issues = []
        for index, value in enumerate(node):
            if value in seen:
                issues.append(ConfigIssue(file, f"{path}[{index}]", f"{value!r} is listed twice: list each once"))
            seen.add(value)
        return issues
    return []


def model_prefix_issues(router: RouterConfig, tuner: TunerConfig) -> list[ConfigIssue]:
    """The simulation's models (``<simulation prefix>-<learner>-<SYMBOL>``) must stay apart from the live ones
    (``<mlflow prefix>-<SYMBOL>``): with one prefix the start or extension of the other, a simulated version could
    become a model a live router reads, or be listed as one. It used to be refused only after a whole `simulate`
    run, as "unexpected ValueError", exit 1; a live prefix extending the simulation's was not refused at all."""
    simulated, live = router.simulation.registered_model_prefix, tuner.mlflow.registered_model_prefix
    if simulated != live and not simulated.startswith(f"{live}-") and not live.startswith(f"{simulated}-"):
        return []
    return [ConfigIssue("router.json", "$.simulation.registered_model_prefix",
                        f"{simulated!r} would put simulated policy versions among the live models of tuner.json "
                        f"mlflow.registered_model_prefix {live!r} (neither may be the other or start with it "
                        "and a dash); choose another prefix")]


def _symbol_references(bundle: ConfigBundle) -> list[tuple[str, str, Iterable[str]]]:
    """(file, key path, symbols) of every symbol list that must name universe symbols."""
    risk, router = bundle.risk, bundle.router
    return [("risk_limits.json", "$.min_notional.per_symbol_usd", risk.min_notional.per_symbol_usd),
            ("risk_limits.json", "$.leverage.per_symbol", risk.leverage.per_symbol),
            ("risk_limits.json", "$.restricted_symbols", risk.restricted_symbols),
            ("tuner.json", "$.deployment.shadow_symbols", bundle.tuner.deployment.shadow_symbols),
            ("router.json", "$.simulation.shadow_scenario.symbols", router.simulation.shadow_scenario.symbols),
            ("router.json", "$.simulation.synthetic_market.symbols", router.simulation.synthetic_market.symbols)]


def _symbol_reference_issues(bundle: ConfigBundle) -> list[ConfigIssue]:
    """A symbol named outside the universe is a typo that silently does nothing (a restriction not applied)."""
    universe = bundle.strategy.universe
    issues: list[ConfigIssue] = []
    for file, path, symbols in _symbol_references(bundle):
        keyed = isinstance(symbols, dict)
        for index, symbol in enumerate(symbols):
            if symbol not in universe:
                where = f"{path}.{symbol}" if keyed else f"{path}[{index}]"
                issues.append(ConfigIssue(file, where, f"{symbol} is not in strategy_config.json universe"))
    return issues


def _step_issues(bundle: ConfigBundle) -> list[ConfigIssue]:
    """Tick sizes and quantity steps the paper and simulated markets can replay (a tick of 1000 used to load, then
    stop `live` with 'venue not started: ValueError: tick_size must be 1/n for an integer n', exit 1)."""
    synthetic = bundle.router.simulation.synthetic_market
    steps = [("executor.json", f"$.instruments.{symbol}.{key}", getattr(instrument, key))
             for symbol, instrument in bundle.executor.instruments.items() for key in ("tick_size", "qty_step")]
    steps += [("router.json", f"$.simulation.synthetic_market.{key}", getattr(synthetic, key))
              for key in ("tick_size", "qty_step")]
    return [ConfigIssue(file, path, f"{value:g} is not 1/n for a whole n (like 1, 0.5, 0.1 or 0.001): prices and "
                                    "quantities are replayed as whole numbers of it")
            for file, path, value in steps if not is_unit_fraction(value)]


MAX_SYNTHETIC_EVENTS = 5_000_000
"""Quotes and trades of one synthetic symbol's tape, generated up front in memory (about 100 bytes each)."""


def _synthetic_size_issues(bundle: ConfigBundle) -> list[ConfigIssue]:
    """A synthetic market too big to generate: ``paper.synthetic`` at a 1 ms quote interval for the 6 h paper
    duration took 2 GB and half a minute before `live` routed anything; at 0.1 ms the machine ran out of memory."""
    paper, simulated = bundle.executor.paper, bundle.router.simulation.synthetic_market
    markets = [("executor.json", f"$.paper.synthetic.{symbol}", paper.duration_s, "paper.duration_s", spec)
               for symbol, spec in paper.synthetic.items()]
    markets.append(("router.json", "$.simulation.synthetic_market", simulated.duration_s, "duration_s", simulated))
    issues = []
    for file, path, duration_s, duration_key, spec in markets:
        events = duration_s * (1000.0 / spec.quote_interval_ms + spec.trade_rate_per_s)
        if events > MAX_SYNTHETIC_EVENTS:
            issues.append(ConfigIssue(file, path, f"{duration_key} {duration_s:g} s at one quote every "
                                                  f"{spec.quote_interval_ms:g} ms and {spec.trade_rate_per_s:g} "
                                                  f"trades a second is {events:.3g} events, over the "
                                                  f"{MAX_SYNTHETIC_EVENTS:,} a synthetic tape may hold in memory: "
                                                  "raise quote_interval_ms or lower the rate or the duration"))
    return issues


MAX_SYNTHETIC_TICKS = 1e15
"""The most ticks a synthetic price may be: beyond it neighbouring ticks are no longer distinct float64 prices."""


def _synthetic_price_issues(bundle: ConfigBundle) -> list[ConfigIssue]:
    """A synthetic market's first mid must be a price its tick can draw: ``mid0`` under the half spread made
    `live` fail with "the mid path fell to zero; lower volatility or duration" (neither was the cause), a mid of
    1e16 ticks or more quoted bid = ask (every paper route "crossed_or_locked_book"), and 1e19 overflowed."""
    paper, simulated = bundle.executor.paper, bundle.router.simulation.synthetic_market
    markets = [("executor.json", f"$.paper.synthetic.{symbol}.mid0", spec.mid0, spec.spread_ticks,
                bundle.executor.instruments[symbol].tick_size, f"instruments.{symbol}.tick_size")
               for symbol, spec in paper.synthetic.items() if symbol in bundle.executor.instruments]
    markets += [("router.json", f"$.simulation.synthetic_market.symbols.{symbol}", mid0, simulated.spread_ticks,
                 simulated.tick_size, "simulation.synthetic_market.tick_size")
                for symbol, mid0 in simulated.symbols.items()]
    issues = []
    for file, path, mid0, spread_ticks, tick, tick_key in markets:
        ticks = mid0 / tick
        if round(ticks - spread_ticks / 2) < 1:
            issues.append(ConfigIssue(file, path, f"{mid0:g} is {ticks:.3g} ticks of {tick:g} ({tick_key}), under "
                                                  f"the half spread of {spread_ticks} ticks plus one: the synthetic "
                                                  "bid would start at zero; raise it or lower spread_ticks"))
        elif ticks > MAX_SYNTHETIC_TICKS:
            issues.append(ConfigIssue(file, path, f"{mid0:g} is {ticks:.3g} ticks of {tick:g} ({tick_key}), over "
                                                  f"{MAX_SYNTHETIC_TICKS:.0e}: prices that fine are not distinct "
                                                  "floating-point numbers (the bid would equal the ask); use a "
                                                  "coarser tick or a lower price"))
    return issues


def _synthetic_duration_issues(router: RouterConfig) -> list[ConfigIssue]:
    """The synthetic market must outlast the intents' warm-up and tail: ``sweep --data synthetic`` generated a
    shorter one, then failed every task as a runtime failure (exit 1)."""
    simulated, intents = router.simulation.synthetic_market, router.simulation.intents
    if simulated.duration_s * 1000.0 > intents.warmup_ms + intents.tail_ms:
        return []
    return [ConfigIssue("router.json", "$.simulation.synthetic_market.duration_s",
                        f"{simulated.duration_s:g} s is no longer than simulation.intents warmup_ms "
                        f"{intents.warmup_ms:g} + tail_ms {intents.tail_ms:g}: the synthetic tape would hold no "
                        "intent; lengthen it or shorten those")]


def _ordered_pairs(bundle: ConfigBundle) -> list[tuple[str, str, str, float, str, float, bool]]:
    """(file, section path, low key, low, high key, high, strict) of every pair that must be in order."""
    risk, router, tuner, executor = bundle.risk, bundle.router, bundle.tuner, bundle.executor
    rule, intents, band = router.simulation.rule_policy, router.simulation.intents, tuner.reward_band
    regimes, live, static = executor.health.slippage_regimes, executor.live, router.static_policy
    breakers = risk.circuit_breakers
    pairs = [(f"$.sizing.buckets.{name}", "floor_usd", bucket.floor_usd, "cap_usd", bucket.cap_usd, False)
             for name, bucket in bundle.strategy.sizing.buckets.items()]
    bands = [(file, section, *pair) for file, section, quality in (
        ("executor.json", "$.health.quality", executor.health.quality),
        ("router.json", "$.simulation.rule_policy", rule))
        for pair in _band_pairs(quality)]
    return [
        *bands,
        *(("strategy_config.json", *pair) for pair in pairs),
        ("risk_limits.json", "$.circuit_breakers", "daily_loss_pct", breakers.daily_loss_pct,
         "weekly_loss_pct", breakers.weekly_loss_pct, False),
        ("router.json", "$.static_policy", "min_spread_bps", static.min_spread_bps,
         "max_spread_bps", static.max_spread_bps, True),
        ("router.json", "$.simulation.intents", "notional_min_usd", intents.notional_min_usd,
         "notional_max_usd", intents.notional_max_usd, False),
        ("router.json", "$.simulation.rule_policy", "min_offset_bps", rule.min_offset_bps,
         "base_offset_bps", rule.base_offset_bps, False),
        ("router.json", "$.simulation.rule_policy", "base_offset_bps", rule.base_offset_bps,
         "max_offset_bps", rule.max_offset_bps, False),
        ("tuner.json", "$.reward_band", "min_cost_bps", band.min_cost_bps, "max_cost_bps", band.max_cost_bps, True),
        ("executor.json", "$.health.slippage_regimes", "calm_below_bps", regimes.calm_below_bps,
         "stressed_above_bps", regimes.stressed_above_bps, True),
        ("executor.json", "$.live", "backoff_initial_ms", live.backoff_initial_ms,
         "backoff_max_ms", live.backoff_max_ms, False),
        ("executor.json", "$.live", "stream_reconnect_initial_ms", live.stream_reconnect_initial_ms,
         "stream_reconnect_max_ms", live.stream_reconnect_max_ms, False),
    ]


def informed_horizon_issues(router: RouterConfig) -> list[ConfigIssue]:
    """Informed simulated intents whose horizon reaches past the tape: the last intents arrive ``tail_ms`` before
    its end, and a mid looked up after the end is the last quote's, so their side would follow the tape's end
    rather than the horizon's move (with an hour's horizon, nearly every intent took the side of the whole
    tape's move)."""
    intents = router.simulation.intents
    if intents.informed_share == 0 or intents.informed_horizon_ms <= intents.tail_ms:
        return []
    return [ConfigIssue("router.json", "$.simulation.intents.informed_horizon_ms",
                        f"{intents.informed_horizon_ms:g} ms is longer than tail_ms {intents.tail_ms:g} ms: the last "
                        "informed intents would look past the tape's end; lower it or raise tail_ms")]


def _markout_horizon_issues(router: RouterConfig, tuner: TunerConfig) -> list[ConfigIssue]:
    """What a simulated order waits for must fall inside the tape: the last intents arrive ``tail_ms`` before its end.
    A markout looked up after the end is the last quote's, so a longer horizon measured their adverse selection
    against the tape's end (an hour loaded and every late order's markout, and with ``reward_markout_horizon_ms`` its
    learned cost, was the rest of the tape's move, silently). A venue latency of an hour loaded too: with the entry
    latency ``simulate`` refused "no order of any fixed arm filled … check that the data trades and router.json
    static_policy", blaming the data; with the cancel latency it ran, static at 0.99 bps: makers that no cancel could
    reach rested until they filled."""
    tail_ms, sim = router.simulation.intents.tail_ms, router.sim_venue
    jitter_ms = router.simulation.fill_model.latency_jitter_ms
    jittered = f" plus simulation.fill_model.latency_jitter_ms {jitter_ms:g} ms"
    waits = (("router.json", "$.simulation.markout_horizon_ms", router.simulation.markout_horizon_ms, 0.0, "",
              "orders' markout would look past"),
             ("tuner.json", "$.reward_markout_horizon_ms", tuner.reward_markout_horizon_ms, 0.0, "",
              "orders' markout would look past"),
             ("router.json", "$.sim_venue.order_entry_latency_ms", sim.order_entry_latency_ms, jitter_ms, jittered,
              "orders would reach the venue after"),
             ("router.json", "$.sim_venue.cancel_latency_ms", sim.cancel_latency_ms, jitter_ms, jittered,
              "cancels would reach the venue after"))
    return [ConfigIssue(file, path, f"{wait_ms:g} ms{label} is longer than router.json simulation.intents.tail_ms "
                                    f"{tail_ms:g} ms: the last {what} the tape's end; lower it or raise tail_ms")
            for file, path, wait_ms, extra_ms, label, what in waits if wait_ms + extra_ms > tail_ms]


def _band_pairs(quality: Any) -> list[tuple[str, float, str, float, bool]]:
    """Quality bands climb good -> degraded -> broken, in fallback ratio and in slippage (a broken band under the
    degraded one would call a symbol broken before it is degraded)."""
    return [(f"{low}_{measure}", getattr(quality, f"{low}_{measure}"),
             f"{high}_{measure}", getattr(quality, f"{high}_{measure}"), False)
            for measure in ("fallback_ratio", "slippage_bps")
            for low, high in (("good", "degraded"), ("degraded", "broken"))]


def _order_issues(bundle: ConfigBundle) -> list[ConfigIssue]:
    """A lower end above its upper end (a floor over its cap, a daily loss limit over the weekly one)."""
    issues: list[ConfigIssue] = []
    for file, section, low_key, low, high_key, high, strict in _ordered_pairs(bundle):
        if low > high or (strict and low == high):
            relation = "below" if strict else "at most"
            issues.append(ConfigIssue(file, f"{section}.{low_key}",
                                      f"{low} must be {relation} {high_key} {high}"))
    return issues


def _policy_bound_issues(router: RouterConfig) -> list[ConfigIssue]:
    issues: list[ConfigIssue] = []
    bounds = router.policy_bounds
    for knob in msgspec.structs.fields(bounds):
        band = getattr(bounds, knob.name)
        if band.min > band.max:
            issues.append(ConfigIssue("router.json", f"$.policy_bounds.{knob.name}", "min exceeds max"))
            continue
        outside = _outside_declared_range(StaticPolicy, knob.name, band.min, band.max)
        if outside is not None:
            issues.append(ConfigIssue("router.json", f"$.policy_bounds.{knob.name}", outside))
            continue
        value = getattr(router.static_policy, knob.name)
        if not band.min <= value <= band.max:
            issues.append(ConfigIssue("router.json", f"$.static_policy.{knob.name}",
                                      f"{value} is outside policy_bounds [{band.min}, {band.max}]"))
    return issues + _rule_policy_bound_issues(router)


def _rule_policy_bound_issues(router: RouterConfig) -> list[ConfigIssue]:
    """The simulated rule policy's offsets and taker bias are policies too: inside the box (a value outside it used
    to stop ``simulate`` after the data had loaded, as an unexpected error)."""
    rule, bounds = router.simulation.rule_policy, router.policy_bounds
    knobs = (("min_offset_bps", rule.min_offset_bps, bounds.maker_offset_bps, "maker_offset_bps"),
             ("base_offset_bps", rule.base_offset_bps, bounds.maker_offset_bps, "maker_offset_bps"),
             ("max_offset_bps", rule.max_offset_bps, bounds.maker_offset_bps, "maker_offset_bps"),
             ("degraded_taker_bias", rule.degraded_taker_bias, bounds.taker_bias, "taker_bias"))
    issues = [ConfigIssue("router.json", f"$.simulation.rule_policy.{key}",
                          f"{value} is outside policy_bounds.{bound_name} [{band.min}, {band.max}]")
              for key, value, band, bound_name in knobs if not band.min <= value <= band.max]
    if not bounds.taker_bias.min <= 0.0 <= bounds.taker_bias.max:
        issues.append(ConfigIssue("router.json", "$.policy_bounds.taker_bias",
                                  f"[{bounds.taker_bias.min}, {bounds.taker_bias.max}] leaves out taker bias 0, "
                                  "which simulation.rule_policy routes with while quality is good"))
    return issues


def _outside_declared_range(model: type[msgspec.Struct], name: str, low: float, high: float) -> str | None:
    """Why [low, high] does not fit the range ``model.name`` declares, or None when it fits."""
    info = next(f.type for f in msgspec.inspect.type_info(model).fields if f.name == name)
    assert isinstance(info, (msgspec.inspect.FloatType, msgspec.inspect.IntType))
    floor = info.ge if info.ge is not None else info.gt
    ceiling = info.le if info.le is not None else info.lt
    too_low = floor is not None and (low < floor or (info.gt is not None and low <= floor))
    too_high = ceiling is not None and (high > ceiling or (info.lt is not None and high >= ceiling))
    if too_low or too_high:
        return f"[{low}, {high}] is outside the range static_policy.{name} may take [{floor}, {ceiling}]"
    return None


def _executor_issues(bundle: ConfigBundle) -> list[ConfigIssue]:
    """Instruments must be tradable symbols under their own venue name; probes must outrun route retries."""
    executor, universe = bundle.executor, bundle.strategy.universe
    issues: list[ConfigIssue] = []
    if not executor.instruments:  # it loaded, and `live` stopped with "policy source not started: ValueError", exit 1
        issues.append(ConfigIssue("executor.json", "$.instruments",
                                  "lists no symbol, so the executor would trade nothing; list the universe symbols "
                                  "to trade with their tick_size and qty_step"))
    for symbol in executor.instruments:
        entry = universe.get(symbol)
        if entry is None:
            issues.append(ConfigIssue("executor.json", f"$.instruments.{symbol}",
                                      f"{symbol} is not in strategy_config.json universe"))
        elif entry.venue_symbol != symbol:
            issues.append(ConfigIssue("executor.json", f"$.instruments.{symbol}",
                                      f"the executor trades symbols under their venue name; {symbol} is "
                                      f"{entry.venue_symbol} at the venue"))
        elif entry.contract_type == "inverse":
            issues.append(ConfigIssue("executor.json", f"$.instruments.{symbol}",
                                      f"{symbol} is an inverse contract: the executor sizes orders and books PnL "
                                      f"for linear contracts only, so it refuses to trade it"))
        elif entry.contract_size != 1.0:
            issues.append(ConfigIssue("strategy_config.json", f"$.universe.{symbol}.contract_size",
                                      f"{entry.contract_size:g}: the executor trades {symbol} (executor.json "
                                      "instruments) and books its exposure and PnL as quantity x price, one base "
                                      "unit per contract, so every risk cap would see "
                                      f"{1 / entry.contract_size:g}x the true exposure; set it to 1 (a USDⓈ-M or "
                                      "spot quantity is in base units)"))
    issues.extend(_one_market_issues(executor, universe))
    for symbol in executor.paper.synthetic:
        if symbol not in executor.instruments:
            issues.append(ConfigIssue("executor.json", f"$.paper.synthetic.{symbol}",
                                      f"{symbol} has no entry in $.instruments"))
    reconcile, route = executor.reconcile, executor.route
    if reconcile.probe_gap_legs <= route.max_venue_retries + 1:
        issues.append(ConfigIssue("executor.json", "$.reconcile.probe_gap_legs",
                                  f"must exceed route.max_venue_retries + 1 = {route.max_venue_retries + 1}: "
                                  "a route can skip that many client order ids in a row"))
    engine = executor.engine
    if engine.max_routes_per_symbol > engine.max_routes_in_flight:
        issues.append(ConfigIssue("executor.json", "$.engine.max_routes_per_symbol",
                                  f"must be at most engine.max_routes_in_flight ({engine.max_routes_in_flight})"))
    if executor.alerts.min_orders > executor.health.window_events:
        issues.append(ConfigIssue("executor.json", "$.alerts.min_orders",
                                  f"{executor.alerts.min_orders} must be at most health.window_events "
                                  f"{executor.health.window_events}: the health window never holds more orders, so "
                                  "the fallback and slippage alerts could never fire"))
    tolerance = reconcile.position_qty_tolerance
    coarse = sorted((instrument.qty_step, symbol) for symbol, instrument in executor.instruments.items()
                    if tolerance >= instrument.qty_step)
    if coarse:  # 1.0 loaded: a restart took a position a whole BTC off the journal's as reconciled
        step, symbol = coarse[0]
        issues.append(ConfigIssue("executor.json", "$.reconcile.position_qty_tolerance",
                                  f"{tolerance:g} is not under instruments.{symbol}.qty_step {step:g}: a position a "
                                  "whole lot off the journal's (a fill never journaled, an order not ours) would pass "
                                  "the restart's reconciliation unnoticed; keep it far below a lot (default 1e-9)"))
    if reconcile.max_legs_per_intent < reconcile.probe_gap_legs:
        issues.append(ConfigIssue("executor.json", "$.reconcile.max_legs_per_intent",
                                  "must be at least probe_gap_legs"))
    if executor.live.api_secret_env == executor.live.api_key_env:  # the key would be sent as the secret
        issues.append(ConfigIssue("executor.json", "$.live.api_secret_env",
                                  f"names {executor.live.api_key_env}, as api_key_env does: `live --live` would sign "
                                  "every request with the API key as its secret, and the venue would refuse each one; "
                                  "name the variable that holds the secret (default BINANCE_API_SECRET)"))
    if executor.prometheus.host.split() != [executor.prometheus.host]:
        issues.append(ConfigIssue("executor.json", "$.prometheus.host", "must name an address to bind (no spaces)"))
    take_profit = executor.protective_stops.take_profit_bps
    if take_profit is not None:  # 0.01 bps loaded: every position closed at once, at a loss, then a cooldown
        losing = sorted(f"{symbol} ({universe[symbol].market} taker fee {fees.taker_fee_bps:g} bps)"
                        for symbol in executor.instruments if symbol in universe
                        and (fees := bundle.router.sim_venue.fees.get(universe[symbol].market)) is not None
                        and take_profit <= fees.taker_fee_bps)
        if losing:
            issues.append(ConfigIssue("executor.json", "$.protective_stops.take_profit_bps",
                                      f"{take_profit:g} bps is no more than the taker fee of {', '.join(losing)} "
                                      "(router.json sim_venue.fees): the take-profit closes with a market order, so "
                                      "every one would close at a loss; set it above the fee, or null"))
    if executor.protective_stops.enabled:
        spot = sorted(s for s in executor.instruments if s in universe and universe[s].market == "spot")
        if spot:
            issues.append(ConfigIssue("executor.json", "$.protective_stops",
                                      f"closePosition stops exist on futures only, and {', '.join(spot)} "
                                      "is spot: set both distances to null or trade futures"))
    return issues


def _one_market_issues(executor: ExecutorConfig, universe: dict[str, UniverseEntry]) -> list[ConfigIssue]:
    """One executor trades one venue, so one market: a spot instrument beside the perpetuals passed `config check`,
    and `live` stopped with "venue not started: ValueError: paper venue needs tapes of one market", exit 1. And the
    venue's: spot instruments loaded with ``live.exchange_id`` binanceusdm, where ``live --live`` would have traded
    the perpetual of each pair's name."""
    markets: dict[str, list[str]] = {}
    for symbol in executor.instruments:  # one refused on its own (outside the universe, inverse, ...) is left to that
        entry = universe.get(symbol)
        if entry is not None and entry.venue_symbol == symbol and entry.contract_type != "inverse":
            markets.setdefault(entry.market, []).append(symbol)
    exchange = executor.live.exchange_id
    traded = EXCHANGE_MARKET.get(exchange)  # None: an exchange outside Binance's three, not ours to judge
    if len(markets) == 1 and traded is not None and traded not in markets:
        (market, symbols), = markets.items()
        return [ConfigIssue("executor.json", "$.live.exchange_id",
                            f"{exchange} trades the {traded} market, and the instruments are "
                            f"{market} ({' '.join(symbols)}): `live --live` would route each as the {exchange} "
                            f"market of that name; set the exchange of the {market} market "
                            f"({' or '.join(k for k, v in EXCHANGE_MARKET.items() if v == market)})")]
    if len(markets) < 2:
        return []
    held = "; ".join(f"{market}: {' '.join(symbols)}" for market, symbols in sorted(markets.items()))
    return [ConfigIssue("executor.json", "$.instruments",
                        f"lists instruments of {len(markets)} markets ({held}): one executor trades one venue, so "
                        "one market; keep one market's symbols here and run the others from another config directory")]


def _url_issues(bundle: ConfigBundle) -> list[ConfigIssue]:
    """Each endpoint URL must name a host and a port a socket can reach: ``push.url`` ``http://127.0.0.1:99999/x``
    loaded, and every health push failed as "Connection refused" (urllib wrapped the port) until the sink dropped it;
    ``https:///`` (no host) loaded as the venue's REST base URL; a tracking server at port 99999 was "did not answer",
    exit 1."""
    executor, tracking_uri = bundle.executor, bundle.tuner.mlflow.tracking_uri or ""
    urls = [("executor.json", "$.live.api_base_url", executor.live.api_base_url),
            ("executor.json", "$.live.ws_base_url", executor.live.ws_base_url),
            ("executor.json", "$.push.url", executor.push.url)]
    if tracking_uri.startswith(("http://", "https://")):
        urls.append(("tuner.json", "$.mlflow.tracking_uri", tracking_uri))
    return [ConfigIssue(file, path, f"{url}: {problem}")
            for file, path, url in urls if url is not None and (problem := url_problem(url)) is not None]


def _arm_grid_issues(router: RouterConfig, tuner: TunerConfig) -> list[ConfigIssue]:
    issues: list[ConfigIssue] = []
    offsets, biases = router.policy_bounds.maker_offset_bps, router.policy_bounds.taker_bias
    for values, name, band in ((tuner.arms.maker_offsets_bps, "maker_offsets_bps", offsets),
                               (tuner.arms.taker_biases, "taker_biases", biases)):
        if not values:
            issues.append(ConfigIssue("tuner.json", f"$.arms.{name}", "must list at least one value"))
        for index, value in enumerate(values):
            if not band.min <= value <= band.max:
                issues.append(ConfigIssue(
                    "tuner.json", f"$.arms.{name}[{index}]",
                    f"{value} is outside router.json policy_bounds [{band.min}, {band.max}]"))
    return issues + _first_step_issues(router, tuner) + _fee_band_issues(router, tuner) + _round_trip_fee_issues(router)


_STEP_TOLERANCE = 1e-9
"""As ``tuner.guardrails``: a grid value exactly one step away is within the step."""


def _first_step_issues(router: RouterConfig, tuner: TunerConfig) -> list[ConfigIssue]:
    """A tuner starts at the static policy and publishes versions at most one guardrail step apart; learners but
    the structured one also explore only within a step of the published arm. With no grid arm within a step of
    the start, ``simulate`` and ``live --policy-source tuner`` stopped with an unexpected GuardrailError; with
    every other grid value past a gap wider than a step, no version could ever move (a step of 0.01 bps loaded, and
    every learner but structured silently routed the static arm throughout)."""
    static, guardrails, bounds = router.static_policy, tuner.guardrails, router.policy_bounds
    issues: list[ConfigIssue] = []
    for name, grid, band, knob, start, step_key, step in (
            ("maker_offsets_bps", tuner.arms.maker_offsets_bps, bounds.maker_offset_bps, "maker_offset_bps",
             static.maker_offset_bps, "max_offset_step_bps", guardrails.max_offset_step_bps),
            ("taker_biases", tuner.arms.taker_biases, bounds.taker_bias, "taker_bias", static.taker_bias,
             "max_bias_step", guardrails.max_bias_step)):
        values = [value for value in grid if band.min <= value <= band.max]  # the others are refused on their own
        where = (f"router.json static_policy.{knob} {start:g}, where every learner starts, in steps of "
                 f"guardrails.{step_key} {step:g}")
        if values and not any(abs(value - start) <= step + _STEP_TOLERANCE for value in values):
            issues.append(ConfigIssue("tuner.json", f"$.arms.{name}", f"no value is one step from {where}: add one, "
                                                                      "or move the static policy onto the grid"))
            continue
        unreachable = _unreachable(values, start, step)
        stuck = all(abs(value - start) <= _STEP_TOLERANCE for value in values if value not in unreachable)
        if unreachable and stuck:  # a grid reachable in part is a choice (a sweep of steps); not moving at all is not
            issues.append(ConfigIssue("tuner.json", f"$.arms.{name}",
                                      f"{', '.join(f'{value:g}' for value in unreachable)} cannot be reached from "
                                      f"{where}: no published version could ever move, and no learner but "
                                      "structured would try another value; add values in between, or widen the step"))
    return issues


def _unreachable(values: Iterable[float], start: float, step: float) -> list[float]:
    """Grid values no chain of grid moves of at most ``step`` joins to a first move from ``start`` (which is left
    for good: it is not a grid value to come back through)."""
    points = sorted(set(values))
    groups: list[list[float]] = []
    for value in points:  # runs of values each within a step of the one before
        if groups and value - groups[-1][-1] <= step + _STEP_TOLERANCE:
            groups[-1].append(value)
        else:
            groups.append([value])
    return [value for group in groups if not any(abs(value - start) <= step + _STEP_TOLERANCE for value in group)
            for value in group]


def _fee_band_issues(router: RouterConfig, tuner: TunerConfig) -> list[ConfigIssue]:
    """A fee outside the reward band makes every fill of that kind an absurd cost the learner rejects: it could
    learn nothing about those arms (with both fees outside, ``simulate`` stopped with 'no greedy arm')."""
    band = tuner.reward_band
    if band.min_cost_bps >= band.max_cost_bps:
        return []  # the band itself is refused (``_order_issues``): one problem, not one per fee
    return [ConfigIssue("router.json", f"$.sim_venue.fees.{market}.{key}",
                        f"{fee:g} bps is outside tuner.json reward_band [{band.min_cost_bps:g}, "
                        f"{band.max_cost_bps:g}]: every {key.split('_')[0]} fill would be rejected as an absurd "
                        f"cost and never learned; fix the fee or widen the band")
            for market, schedule in router.sim_venue.fees.items()
            for key, fee in (("maker_fee_bps", schedule.maker_fee_bps), ("taker_fee_bps", schedule.taker_fee_bps))
            if not band.min_cost_bps <= fee <= band.max_cost_bps]


def _round_trip_fee_issues(router: RouterConfig) -> list[ConfigIssue]:
    """A maker and a taker fee that add up below 0 pay for trading with ourselves: maker -40 and taker -10 loaded, and
    `simulate` reported every policy earning (always taker -10 bps, best fixed arm -32), a run that measures nothing.
    A maker rebate under a dearer taker fee (Binance: -0.5 and 5 bps) and an inverted schedule (maker 10, taker 2)
    are schedules venues run, and load."""
    return [ConfigIssue("router.json", f"$.sim_venue.fees.{market}",
                        f"maker_fee_bps {schedule.maker_fee_bps:g} + taker_fee_bps {schedule.taker_fee_bps:g} is "
                        f"{total:g} bps: a round trip (a maker fill, then a taker fill back at the same price) would "
                        "earn money, which no venue pays; keep a maker rebate no larger than the taker fee (a sign "
                        "slipped?)")
            for market, schedule in router.sim_venue.fees.items()
            if (total := schedule.maker_fee_bps + schedule.taker_fee_bps) < 0]


def _prior_band_issues(tuner: TunerConfig) -> list[ConfigIssue]:
    """A learner's prior cost outside the reward band is a cost it would reject as absurd if it were observed: with
    -1000 or 1000 loaded, every learned outcome was a surprise of hundreds of bps, the drift detector fired again
    and again and discounted the evidence each time (six drifts in 200 orders where the defaults have none)."""
    band, params = tuner.reward_band, tuner.learner_params
    if band.min_cost_bps >= band.max_cost_bps:
        return []  # the band itself is refused (``_order_issues``)
    return [ConfigIssue("tuner.json", f"$.learner_params.{key}",
                        f"{value:g} bps is outside reward_band [{band.min_cost_bps:g}, {band.max_cost_bps:g}]: a "
                        "prior cost the learner would reject as absurd if it were observed; set it within the band")
            for key, value in (("thompson_prior_mean_cost_bps", params.thompson_prior_mean_cost_bps),
                               ("linucb_prior_mean_cost_bps", params.linucb_prior_mean_cost_bps))
            if not band.min_cost_bps <= value <= band.max_cost_bps]


def _memory_issues(tuner: TunerConfig) -> list[ConfigIssue]:
    """The structured learner's memory must hold an outcome of every arm: at ``forgetting_window`` 1.0000001 each
    outcome erased all the evidence before it, and the learner explored for ever (its largest arm share 0.35 against
    0.49, its cost 4.27 bps against 3.79 on 200 simulated orders)."""
    biases = tuner.arms.taker_biases
    arms = len(tuner.arms.maker_offsets_bps) * sum(bias < 1.0 for bias in biases) + any(bias >= 1.0 for bias in biases)
    window = tuner.learner_params.structured.forgetting_window
    if window >= arms:
        return []
    return [ConfigIssue("tuner.json", "$.learner_params.structured.forgetting_window",
                        f"{window:.10g} outcomes is shorter than the {arms} arms of $.arms: the learner would forget "
                        f"an arm's evidence before it had tried the others and explore for ever; set it to at least "
                        f"{arms}")]


def load_config(directory: Path | str | None = None) -> ConfigBundle:
    """Load and check a configuration directory (the embedded defaults when ``None``).

    Raises ``ConfigError`` listing every problem found, each with its file and key path.
    """
    root = DEFAULTS_DIR if directory is None else Path(directory)
    if not root.is_dir():
        raise ConfigError([ConfigIssue(str(root), "$", "not a directory")])
    issues: list[ConfigIssue] = []
    decoded: dict[str, Any] = {}
    for file, model in FILES.items():
        raw, read_issues = _read(root, file)
        issues.extend(read_issues)
        if raw is None:
            continue
        if file != CONCURRENCY_HOME[0]:
            issues.extend(
                ConfigIssue(file, key, f"concurrency is defined in one place only: "
                                       f"{CONCURRENCY_HOME[0]} $.{CONCURRENCY_HOME[1]}")
                for key in _concurrency_keys(raw, "$"))
        decoded[file], file_issues = _checked(file, raw, model)
        issues.extend(file_issues)
    if issues:
        raise ConfigError(issues)
    bundle = ConfigBundle(risk=decoded["risk_limits.json"], strategy=decoded["strategy_config.json"],
                          router=decoded["router.json"], tuner=decoded["tuner.json"],
                          executor=decoded["executor.json"])
    cross_issues = (cross_check(bundle) + _state_path_issues(root, bundle.executor)
                    + _folder_state_path_issues(bundle.executor) + _path_name_issues(bundle.tuner, bundle.executor))
    if cross_issues:
        raise ConfigError(cross_issues)
    return bundle


def _checked(file: str, raw: Any, model: type[msgspec.Struct]) -> tuple[Any, list[ConfigIssue]]:
    """Decode one file; what the raw JSON shows is named instead of msgspec's message at the same key path (a pasted
    key also breaks a name pattern, ``1e-400`` reads as 0 and breaks ``> 0``), and a hidden character or a stray
    space where msgspec found nothing wrong (a path, a URL, a name without a pattern) is named too."""
    first = _secret_issues(file, raw) + [ConfigIssue(file, path, message) for path, message in underflowed_numbers(raw)]
    value, decode_issues = _decode(file, raw, model)
    issues = first + [issue for issue in decode_issues if issue.path not in {f.path for f in first}]
    taken = {issue.path for issue in issues}
    issues += [ConfigIssue(file, path, message) for path, message in text_problems(raw) if path not in taken]
    return (None if issues else value), issues


MAX_NAME_BYTES = 255
"""The longest file or folder name Linux file systems take (NAME_MAX)."""


def _path_name_issues(tuner: TunerConfig, executor: ExecutorConfig) -> list[ConfigIssue]:
    """A file path the configuration names must be one the file system takes: a 5,000-character name in
    ``adaptive.tuner_state_path`` or a ``sqlite:///`` tracking URI passed `config check`, and `live` and `simulate`
    stopped with "File name too long", exit 1, naming no key."""
    uri = tuner.mlflow.tracking_uri or ""
    store = uri.removeprefix("sqlite:///") if uri.startswith("sqlite:") else ""
    paths = (("executor.json", "$.adaptive.tuner_state_path", executor.adaptive.tuner_state_path),
             ("tuner.json", "$.mlflow.tracking_uri", store))
    return [ConfigIssue(file, key, f"names a file or folder of {longest} bytes, longer than the {MAX_NAME_BYTES} a "
                                   "file system takes; shorten it")
            for file, key, path in paths
            if (longest := max((len(part.encode()) for part in Path(path).parts), default=0)) > MAX_NAME_BYTES]


def _folder_state_path_issues(executor: ExecutorConfig) -> list[ConfigIssue]:
    """``adaptive.tuner_state_path`` ``var/`` (a folder meant) loaded: `live --policy-source tuner` opened the default
    journal and store in ``var/``, then stopped with "Is a directory: var"; with a journal elsewhere it wrote its
    manifest as a file named ``var``."""
    path = executor.adaptive.tuner_state_path
    if not path.endswith(("/", "/.", "/..")) and path not in (".", ".."):
        return []
    return [ConfigIssue("executor.json", "$.adaptive.tuner_state_path",
                        f"{path} names a folder; give the checkpoint manifest's file in it (the default is "
                        "var/tuner_state.json)")]


def _state_path_issues(root: Path, executor: ExecutorConfig) -> list[ConfigIssue]:
    """The tuner's checkpoint manifest must be a file of its own: ``adaptive.tuner_state_path`` naming this directory's
    ``tuner.json`` loaded, and `live --policy-source tuner` refused it as "not a tuner checkpoint manifest ... move
    them away", advice that would have moved the configuration away."""
    state = os.path.realpath(executor.adaptive.tuner_state_path)  # Path.resolve raises on a symlink loop
    return [ConfigIssue("executor.json", "$.adaptive.tuner_state_path",
                        f"{executor.adaptive.tuner_state_path} is this configuration's {file}: the tuner's "
                        "checkpoint manifest cannot share a file with the configuration; give the tuner state a file "
                        "of its own (default var/tuner_state.json)")
            for file in FILES if state == os.path.realpath(root / file)]


def _secret_issues(file: str, raw: Any) -> list[ConfigIssue]:
    """Values that look like secrets, named by key path only (the value is never repeated)."""
    return [ConfigIssue(file, path, f"{reason}: secrets do not belong in config files (they are copied to MLflow "
                                    f"and logs); put it in an environment variable and write the variable's "
                                    f"name here (as executor.json live.api_key_env does)")
            for path, reason in find_secrets(raw)]


def snapshot(bundle: ConfigBundle) -> dict[str, Any]:
    """Plain-data copy of the whole configuration, for MLflow params and journals; secret-looking values masked."""
    return redact({file.removesuffix(".json"): msgspec.to_builtins(getattr(bundle, attr))
                   for file, attr in zip(FILES, _BUNDLE_FIELDS, strict=True)})
