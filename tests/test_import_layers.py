"""Every module of bot/ sits in a layer of the ``layers`` contract in ``.importlinter``.

import-linter's ``exhaustive`` option needs ``containers``, and our packages are split
across layers (``bot.approvals.service`` is a service, ``bot.approvals.store`` an adapter),
so the contract names modules in full; this test is what keeps a new module from
landing outside every layer, where lint-imports would never look at its imports.
"""

from __future__ import annotations

import ast
import configparser
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _layered() -> set[str]:
    config = configparser.ConfigParser()
    config.read(ROOT / ".importlinter")
    raw = config["importlinter:contract:layers"]["layers"]
    names = set()
    for line in raw.splitlines():
        for name in re.split(r"[|:]", line):
            if name.strip():
                names.add(name.strip().strip("()"))
    return names


def _modules() -> dict[str, Path]:
    found = {}
    for path in sorted((ROOT / "bot").rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def _imports_nothing(path: Path) -> bool:
    tree = ast.parse(path.read_text())
    return not any(isinstance(node, ast.Import | ast.ImportFrom) for node in ast.walk(tree))


def test_every_module_is_in_a_layer() -> None:
    layered = _layered()
    unlayered = [
        name
        for name, path in _modules().items()
        if not any(name == layer or name.startswith(layer + ".") for layer in layered)
        # A split package's __init__ (bot.approvals, bot.health ...) is only a docstring.
        and not (path.name == "__init__.py" and _imports_nothing(path))
    ]
    assert unlayered == [], f"add these to the layers contract in .importlinter: {unlayered}"


def test_every_layer_names_a_module() -> None:
    modules = _modules()
    missing = sorted(name for name in _layered() if name not in modules)
    assert missing == [], f"layers name modules that do not exist: {missing}"
