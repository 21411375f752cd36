"""Any edit of any key of any config file either loads or is refused as a ConfigError naming the file: never another
exception, never a traceback from ``config check``.

The targeted tests name the known bad values; this property walks every key the defaults have and puts anything
a careless edit can put there (another type, a huge or negative number, an empty or nested container, a removed
key, an unknown sibling) in its place.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from router_tuner.cli.main import BAD_INPUT, main
from router_tuner.config.loader import DEFAULTS_DIR, FILES, ConfigError, load_config

Path_ = tuple[str | int, ...]


def _paths(document: Any, path: Path_ = ()) -> Iterator[Path_]:
    """Every key path and list position of a parsed JSON document, containers included."""
    if path:
        yield path
    if isinstance(document, dict):
        for key, value in document.items():
            yield from _paths(value, (*path, key))
    elif isinstance(document, list):
        for i, value in enumerate(document):
            yield from _paths(value, (*path, i))


DOCUMENTS = {name: json.loads((DEFAULTS_DIR / name).read_text()) for name in FILES}
TARGETS = [(name, path) for name, document in DOCUMENTS.items() for path in _paths(document)]

careless_values = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=12), st.just([]), st.just({}),
    st.lists(st.integers(-3, 3), max_size=3), st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
)


def _edited(document: Any, path: Path_, action: str, value: Any) -> Any:
    copy = json.loads(json.dumps(document))
    *parents, last = path
    holder = copy
    for step in parents:
        holder = holder[step]
    if action == "replace":
        holder[last] = value
    elif action == "remove":
        if isinstance(holder, dict):
            del holder[last]
        else:
            holder.pop(last)
    elif isinstance(holder, dict):   # an unknown sibling key
        holder[f"{last}_x"] = value
    else:
        holder.append(value)
    return copy


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(target=st.sampled_from(TARGETS), action=st.sampled_from(["replace", "remove", "add"]), value=careless_values)
def test_any_careless_edit_loads_or_is_a_config_error_naming_its_file(target: tuple[str, Path_], action: str,
                                                                     value: Any) -> None:
    name, path = target
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp) / "cfg"
        shutil.copytree(DEFAULTS_DIR, directory)
        (directory / name).write_text(json.dumps(_edited(DOCUMENTS[name], path, action, value)))
        try:
            load_config(directory)
        except ConfigError as error:
            assert error.issues and all(issue.file in FILES or issue.file == str(directory) for issue in error.issues)


@pytest.mark.parametrize("name", sorted(FILES))
def test_config_check_on_a_file_that_is_not_an_object_is_one_exit_2(name: str, tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    for text in ("[]", "null", "7", '"x"', "{", ""):
        directory = tmp_path / f"cfg{len(text)}{text[:1]}"
        shutil.copytree(DEFAULTS_DIR, directory)
        (directory / name).write_text(text)
        assert main(["config", "check", str(directory)]) == BAD_INPUT
        err = capsys.readouterr().err
        assert "Traceback" not in err and f"{name}: $" in err
