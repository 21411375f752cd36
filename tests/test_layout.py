"""The tree shows the architecture: packages import only the layers below them, and no folder hides a
subpackage in a shared name prefix or grows past 20 modules."""

from __future__ import annotations

import ast
import collections
import importlib
import re
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# bottom to top: each package may import only the packages before it (imports inside functions included)
LAYERS = ("config", "router", "risk", "features", "tuner", "executor", "simulation", "cli")
PRODUCT_DIRS = (*LAYERS, "experiments")


def _imported_packages(package: str) -> dict[str, set[Path]]:
    found: dict[str, set[Path]] = collections.defaultdict(set)
    for path in (REPO / package).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            else:
                continue
            for name in names:
                parts = name.split(".")
                top = parts[1] if parts[0] == "router_tuner" and len(parts) > 1 else parts[0]
                if top in PRODUCT_DIRS and top != package:
                    found[top].add(path.relative_to(REPO))
    return found


@pytest.mark.parametrize("package", LAYERS)
def test_package_imports_only_layers_below_it(package: str) -> None:
    below = set(LAYERS[:LAYERS.index(package)])
    upward = {top: sorted(map(str, paths)) for top, paths in _imported_packages(package).items() if top not in below}
    assert upward == {}, f"{package} imports a layer above it (or experiments): {upward}"


def _module_folders() -> list[Path]:
    return [folder for name in (*PRODUCT_DIRS, "tests") for folder in [REPO / name, *(REPO / name).rglob("*")]
            if folder.is_dir() and folder.name != "__pycache__"]


@pytest.mark.parametrize("folder", _module_folders(), ids=lambda p: str(p.relative_to(REPO)))
def test_folder_is_small_and_has_no_prefix_family(folder: Path) -> None:
    modules = [p.stem for p in folder.glob("*.py") if p.stem not in ("__init__", "__main__", "conftest")]
    assert len(modules) <= 20, f"{folder.relative_to(REPO)} holds {len(modules)} modules"
    prefixes = collections.Counter(m.split("_")[0] for m in modules if "_" in m and not m.startswith("test_"))
    families = {prefix: count for prefix, count in prefixes.items() if count >= 4}
    assert families == {}, f"{folder.relative_to(REPO)}: a subpackage in disguise {families}"


def test_every_package_folder_installs_under_the_router_tuner_namespace() -> None:
    """A package folder missing from pyproject's list would be left out of the wheel (editable installs hide it)."""
    listed = set(tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    folders = {"router_tuner." + ".".join(init.parent.relative_to(REPO).parts)
               for package in LAYERS for init in (REPO / package).rglob("__init__.py")}
    assert listed == folders


def test_the_public_api_the_readme_lists_imports() -> None:
    """Every ``router_tuner.…`` name in the README's Python API table resolves (the docs match the code)."""
    readme = (REPO / "README.md").read_text()
    section = readme.split("## Python API", 1)[1].split("\n## ", 1)[0]
    names = set(re.findall(r"`(router_tuner(?:\.\w+)+)", section))
    assert len(names) >= 8
    for name in sorted(names):
        parts = name.split(".")
        for cut in range(len(parts), 0, -1):  # the longest importable module, then attributes
            try:
                target = importlib.import_module(".".join(parts[:cut]))
            except ModuleNotFoundError:
                continue
            for attr in parts[cut:]:
                target = getattr(target, attr)
            break
        else:
            raise AssertionError(f"{name} does not import")
