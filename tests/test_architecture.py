"""Dependencies point one way: the contract (vidpipe/*, not vidpipe.apps) <- models, beam_pipelines <- the apps.

Every .py under vidpipe/, models/, beam_pipelines/ and dags/ is parsed with ``ast``; imports count at any depth
(function-level lazy imports included), and so do ``importlib.import_module("...")`` / ``__import__("...")``
with a string literal. A violation is reported as ``file:line imports module``.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("vidpipe", "models", "beam_pipelines", "dags")
APPS = "vidpipe.apps"
MODELS_SERVING_SIDE = ("models.serving", "models.predict", "models.inputs", "models.export")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(source: str, module: str, is_package: bool = False) -> Iterator[tuple[int, str]]:
    """(line, dotted name) of every import in ``source``; ``from a import b`` gives ``a.b``."""
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1] if package else []
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                yield node.lineno, base if alias.name == "*" else f"{base}.{alias.name}"
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant) and isinstance(
                node.args[0].value, str):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
            if name in ("import_module", "__import__"):
                yield node.lineno, node.args[0].value


def _files() -> list[Path]:
    return sorted(path for package in PACKAGES for path in (ROOT / package).rglob("*.py")
                  if "__pycache__" not in path.parts)


def _all_imports() -> list[tuple[Path, str, int, str]]:
    """(file, importing module, line, imported name) over the four packages."""
    found = []
    for path in _files():
        module = _module_name(path)
        for line, name in imports_of(path.read_text(encoding="utf-8"), module, path.name == "__init__.py"):
            found.append((path, module, line, name))
    return found


def _within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def _layer(module: str) -> str:
    if _within(module, APPS):
        return "apps"
    return module.split(".")[0]


def _forbidden(importer: str, name: str) -> str | None:
    """Why ``importer`` may not import ``name``; None when it may."""
    layer = _layer(importer)
    if _within(name, "dags"):
        return "nothing imports the DAG files"
    if layer == "vidpipe" and (_within(name, APPS) or _within(name, "models") or _within(name, "beam_pipelines")):
        return "the contract (vidpipe outside vidpipe.apps) imports no models, beam_pipelines or vidpipe.apps"
    if layer == "models" and (_within(name, "beam_pipelines") or _within(name, APPS)):
        return "models imports no beam_pipelines or vidpipe.apps"
    if layer == "beam_pipelines":
        if _within(name, APPS):
            return "beam_pipelines imports no vidpipe.apps"
        if _within(name, "models") and not any(_within(name, allowed) for allowed in MODELS_SERVING_SIDE):
            return f"beam_pipelines imports from models only the serving side ({', '.join(MODELS_SERVING_SIDE)})"
    return None


def _report(violations: list[str]) -> str:
    return f"{len(violations)} import(s) against the layers:\n" + "\n".join(violations)


def test_the_scanner_sees_lazy_relative_and_dynamic_imports():
    source = (
        "import os\n"
        "from vidpipe import layout\n"
        "def f():\n"
        "    from models.train import train\n"
        "    import importlib\n"
        "    return importlib.import_module('beam_pipelines.ingest'), __import__('dags.vidpipe_pipeline')\n"
        "from . import schema\n"
        "from ..apps import cli\n"
    )
    assert sorted(imports_of(source, "vidpipe.apps.x")) == [
        (1, "os"), (2, "vidpipe.layout"), (4, "models.train.train"), (5, "importlib"),
        (6, "beam_pipelines.ingest"), (6, "dags.vidpipe_pipeline"), (7, "vidpipe.apps.schema"), (8, "vidpipe.apps.cli"),
    ]
    assert _forbidden("vidpipe.schema", "models.train") and _forbidden("vidpipe.schema", "vidpipe.apps.cli")
    assert _forbidden("beam_pipelines.predict", "models.train.EXPORT_METADATA")
    assert _forbidden("beam_pipelines.predict", "models.serving.load") is None
    assert _forbidden("vidpipe.apps.cli", "models.train") is None
    assert _forbidden("vidpipe.apps.cli", "dags.vidpipe_pipeline")


def test_every_package_is_scanned():
    modules = {_module_name(path) for path in _files()}
    assert {"vidpipe.layout", "vidpipe.apps.cli", "models.train", "beam_pipelines.ingest",
            "dags.vidpipe_pipeline"} <= modules


@pytest.mark.parametrize("layer", ["vidpipe", "models", "beam_pipelines", "apps", "dags"])
def test_dependencies_point_one_way(layer):
    violations = [f"{path.relative_to(ROOT)}:{line} imports {name}: {why}"
                  for path, module, line, name in _all_imports()
                  if _layer(module) == layer and (why := _forbidden(module, name))]
    assert not violations, _report(violations)


def test_layout_imports_only_the_standard_library():
    path = ROOT / "vidpipe" / "layout.py"
    outside = [f"{path.relative_to(ROOT)}:{line} imports {name}"
               for line, name in imports_of(path.read_text(encoding="utf-8"), "vidpipe.layout")
               if name.split(".")[0] not in sys.stdlib_module_names]
    assert not outside, _report(outside)
