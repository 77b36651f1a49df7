"""The compiler's import graph: circles, imports inside functions, and the largest modules.

A check of issue 19's layout (imports point one way: commands → driver → language / check /
lower / emit; generated code → generator.runtime only). Run: ``python tests/tools/imports.py``;
it exits 1 when the graph of module-level imports has a circle or the runtime imports the
compiler.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> tuple[set[str], list[tuple[int, str]]]:
    """(modules imported at module level, [(line, module)] imported inside functions)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    top, inner = set(), []
    modules = {module_name(p) for p in (ROOT / "generator").rglob("*.py")}

    here = module_name(path)

    def targets(node) -> list[str]:
        if isinstance(node, ast.Import):
            return [a.name for a in node.names]
        base = node.module or ""
        if (
            node.level
        ):  # relative: from the module's package, one level up per extra dot
            package = (
                here.split(".") if path.name == "__init__.py" else here.split(".")[:-1]
            )
            package = package[: len(package) - (node.level - 1)]
            base = ".".join(package + ([base] if base else []))
        return [
            f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base
            for a in node.names
        ]

    def visit(node, nested: bool):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.Import, ast.ImportFrom)):
                for t in targets(child):
                    if t.startswith("generator"):
                        (inner.append((child.lineno, t)) if nested else top.add(t))
            visit(
                child,
                nested or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)),
            )

    visit(tree, False)
    return top, inner


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def strong(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in graph:
                continue
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in graph:
        if v not in index:
            strong(v)
    return out


def main() -> int:
    graph, inner, sizes = {}, {}, {}
    for path in sorted((ROOT / "generator").rglob("*.py")):
        name = module_name(path)
        top, nested = imports(path)
        # a package's own __init__ is imported on the way to its modules: not an edge
        graph[name] = {t for t in top if t != name}
        inner[name] = nested
        sizes[name] = len(path.read_text(encoding="utf-8").splitlines())
    found = circles(graph)
    # with the imports inside functions too: a circle an import moved into a function hides
    hidden = circles({m: graph[m] | {t for _, t in inner[m] if t != m} for m in graph})
    runtime = {
        m: sorted(t for t in graph[m] if not t.startswith("generator.runtime"))
        for m in graph
        if m.startswith("generator.runtime")
    }
    between = [(m, ln, t) for m, xs in inner.items() for ln, t in xs]
    print(
        f"modules: {len(graph)}; import circles: {len(found)} at module level, "
        f"{len(hidden)} counting the imports inside functions"
    )
    for c in hidden:
        print("  circle:", " ↔ ".join(c))
    print(f"imports inside functions between generator modules: {len(between)}")
    for m, ln, t in between:
        print(f"  {m}:{ln} imports {t}")
    print("largest modules:")
    for name, n in sorted(sizes.items(), key=lambda x: -x[1])[:8]:
        print(f"  {n:5d} {name}")
    bad_runtime = {m: t for m, t in runtime.items() if t}
    for m, t in bad_runtime.items():
        print(f"  {m} imports the compiler: {t}")
    return 1 if found or hidden or bad_runtime else 0


if __name__ == "__main__":
    sys.exit(main())
