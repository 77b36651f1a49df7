"""Branch coverage of generated/ by the test suite, per implementation path (`make coverage`).

Reads the data `coverage run --branch --source=generated` left (the suite run with the fused kernels
uncompiled, OPTIMGEN_EAGER_KERNELS=1, so that their code runs as Python) and sorts every function of
every generated module into the path it belongs to:

- for-loop: ``_single_tensor_*``;  foreach: ``_multi_tensor_*``;
- fused: ``_fused_*`` (the host loop) and ``_*_kernel`` (the kernel);
- class: the optimizer class's methods and the functional entry point;
- helpers: the rest (``_flat``, ``_is_sharded``, ...).

It prints statements and branches covered per path, all of them and those an uncompiled CPU run
can reach (leaving out the branches that only a compiled step, an accelerator or a capturable step
takes, `if torch.compiler.is_compiling()`, `if not params[0].is_cpu`, `if capturable`:
test_fused.py, the compiled fuzz seeds, test_torch_contracts.py and tests/test_cuda.py run those),
and, with
``--missing``, the CPU-reachable lines never run, per module and path. Usage: ``python tests/tools/path_coverage.py DATA_FILE [--missing]``.
"""

from __future__ import annotations

import ast
import json
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

import coverage

PATHS = ("for-loop", "foreach", "fused", "class", "helpers")


def path_of(name: str, in_class: bool) -> str:
    if in_class:
        return "class"
    if name.startswith("_single_tensor_"):
        return "for-loop"
    if name.startswith("_multi_tensor_"):
        return "foreach"
    if (
        name.startswith("_fused_")
        or name.endswith("_kernel")
        or name.startswith("_compiled_")
    ):
        return "fused"
    if not name.startswith("_"):
        return "class"  # the functional API
    return "helpers"


def functions(tree: ast.Module):
    """(path, name, first line, last line) of every function, nested ones in their parent."""
    for node in tree.body:
        if isinstance(node, ast.ClassDef):
            for item in node.body:
                if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    yield "class", f"{node.name}.{item.name}", item.lineno, item.end_lineno
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield path_of(node.name, False), node.name, node.lineno, node.end_lineno


def on_cpu_uncompiled(test: ast.expr) -> bool | None:
    """The value of a condition in an uncompiled step on CPU tensors, where the code alone
    decides it: ``torch.compiler.is_compiling()`` is false, ``t.is_cpu`` true, ``capturable``
    false (torch refuses it on CPU); None where the data decides."""
    if isinstance(test, ast.Call) and isinstance(test.func, ast.Attribute):
        return False if test.func.attr == "is_compiling" else None
    if isinstance(test, ast.Attribute) and test.attr == "is_cpu":
        return True
    if isinstance(test, ast.Name) and test.id == "capturable":
        return False
    if (
        isinstance(test, ast.Subscript)
        and isinstance(test.slice, ast.Constant)
        and test.slice.value == "capturable"
    ):
        return False
    if isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not):
        inner = on_cpu_uncompiled(test.operand)
        return None if inner is None else not inner
    if isinstance(test, ast.BoolOp):
        values = [on_cpu_uncompiled(v) for v in test.values]
        decisive = isinstance(test.op, ast.Or)  # the value that decides an `or`: True
        if decisive in values:
            return decisive
        if all(v is not None for v in values):
            return not decisive
    return None


def elsewhere(tree: ast.Module) -> set[int]:
    """Lines only a compiled step, an accelerator or a capturable step runs: the branches of
    `if` statements that the condition's value on CPU, uncompiled, rules out (see
    on_cpu_uncompiled), and the compiled multi-tensor functions the fused path calls on an
    accelerator (an uncompiled CPU run reaches none of them)."""
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef) and node.name.startswith(
            "_compiled_multi_tensor"
        ):  # called from the accelerator branch of the fused path only
            lines.update(range(node.body[0].lineno, node.end_lineno + 1))
        if isinstance(node, ast.If):
            value = on_cpu_uncompiled(node.test)
            if value is not None:
                for stmt in node.orelse if value else node.body:
                    lines.update(range(stmt.lineno, stmt.end_lineno + 1))
    return lines


def report(data_file: str, show_missing: bool = False) -> dict:
    cov = coverage.Coverage(data_file=data_file, branch=True)
    cov.load()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "coverage.json"
        cov.json_report(
            morfs=[str(p) for p in sorted(Path("generated").glob("*.py"))],
            outfile=str(out),
        )
        files = json.loads(out.read_text())["files"]
    # per path: statements, run, branches, taken; then the same without `elsewhere` lines
    totals = {p: [0] * 8 for p in PATHS}
    missing_lines: dict[tuple[str, str], list[int]] = defaultdict(list)
    for name, data in sorted(files.items()):
        path = Path(name)
        if path.name == "__init__.py":
            continue
        tree = ast.parse(path.read_text())
        far = elsewhere(tree)
        run = set(data["executed_lines"])
        missing = set(data["missing_lines"])
        taken = [tuple(a) for a in data.get("executed_branches", [])]
        not_taken = [tuple(a) for a in data.get("missing_branches", [])]
        for kind, _, first, last in functions(tree):
            inside = (
                lambda n: first < n <= last
            )  # noqa: E731 (the def line runs on import)
            t = totals[kind]
            lines_run = {n for n in run if inside(n)}
            lines_missed = {n for n in missing if inside(n)}
            arcs_taken = [a for a in taken if inside(a[0])]
            arcs_missed = [a for a in not_taken if inside(a[0])]
            t[0] += len(lines_run) + len(lines_missed)
            t[1] += len(lines_run)
            t[2] += len(arcs_taken) + len(arcs_missed)
            t[3] += len(arcs_taken)
            near = lambda arcs: [
                a for a in arcs if a[0] not in far and a[1] not in far
            ]  # noqa
            t[4] += len(lines_run - far) + len(lines_missed - far)
            t[5] += len(lines_run - far)
            t[6] += len(near(arcs_taken)) + len(near(arcs_missed))
            t[7] += len(near(arcs_taken))
            if show_missing and lines_missed - far:
                missing_lines[(path.name, kind)] += sorted(lines_missed - far)
    print(
        f"{'path':9s} | {'statements run':20s} | {'branches taken':20s} | CPU-reachable:"
    )
    print(f"{'':9s} | {'':20s} | {'':20s} | statements | branches")
    print("-" * 10 + "+" + "-" * 22 + "+" + "-" * 22 + "+" + "-" * 12 + "+" + "-" * 9)
    for kind in PATHS:
        s, r, b, tk, s2, r2, b2, tk2 = totals[kind]
        print(
            f"{kind:9s} | {r:5d} / {s:5d} {_pct(r, s)} | {tk:5d} / {b:5d} {_pct(tk, b)}"
            f" | {_pct(r2, s2):>10s} | {_pct(tk2, b2):>8s}"
        )
    if show_missing:
        for (module, kind), lines in sorted(missing_lines.items()):
            print(f"{module} {kind}: {_ranges(lines)}")
    return totals


def _pct(part: int, whole: int) -> str:
    return f"{100 * part / whole if whole else 100.0:5.1f}%"


def _ranges(lines: list[int]) -> str:
    out, start = [], None
    for n, k in zip(lines, lines[1:] + [None]):
        start = n if start is None else start
        if k != n + 1:
            out.append(f"{start}" if start == n else f"{start}-{n}")
            start = None
    return ", ".join(out)


if __name__ == "__main__":
    report(sys.argv[1], "--missing" in sys.argv)
