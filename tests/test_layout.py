"""The compiler's layout holds its rules: imports point one way, the runtime stands alone.

Generated modules import only generator.runtime; the runtime imports torch and nothing of the
compiler; the import graph of the generator's modules has no circle (tests/tools/imports.py
prints the graph's figures).
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent / "tools"))

import imports  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def test_the_generators_modules_import_each_other_without_a_circle():
    """Imports inside functions count: moving one there hides a circle, it does not break it."""
    graph = {}
    for path in (ROOT / "generator").rglob("*.py"):
        top, inner = imports.imports(path)
        name = imports.module_name(path)
        graph[name] = {t for t in top | {t for _, t in inner} if t != name}
    assert imports.circles(graph) == [], "import circles among generator modules"


def test_the_runtime_imports_nothing_of_the_compiler():
    for path in (ROOT / "generator" / "runtime").rglob("*.py"):
        top, inner = imports.imports(path)
        compiler = sorted(
            t
            for t in top | {t for _, t in inner}
            if not t.startswith("generator.runtime")
        )
        assert compiler == [], f"{path.name} imports {compiler}"


def test_generated_modules_import_only_the_runtime_of_the_generator():
    for path in sorted((ROOT / "generated").glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(
                "generator"
            ):
                assert node.module.startswith(
                    "generator.runtime"
                ), f"{path.name}:{node.lineno} imports {node.module}"


def test_no_helper_is_pasted_into_a_generated_module():
    runtime = set()
    for path in (ROOT / "generator" / "runtime").glob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        runtime |= {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
    for path in sorted((ROOT / "generated").glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        defined = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
        assert (
            not defined & runtime
        ), f"{path.name} defines {sorted(defined & runtime)}, which generator.runtime holds"
