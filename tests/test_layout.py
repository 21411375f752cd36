"""The tree shows the architecture: packages import only the layers below them, and no folder hides a
subpackage in a shared name prefix or grows past 20 modules."""

from __future__ import annotations

import ast
import collections
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
                top = name.split(".")[0]
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
