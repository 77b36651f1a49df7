"""Mutation score of the test net over generated/ (`make mutants`).

Each mutant is one generated module with one small change in one implementation path (for-loop,
foreach, or fused: its host loop and its kernel): an operator swapped (``+``/``-``, ``*``/``/``, a
comparison turned), a sign dropped, a number changed, an in-place method or foreach call swapped for
its opposite (``add_``/``sub_``, ``_foreach_mul_``/``_foreach_div_``, ``maximum``/``minimum``), an
``alpha=``/``value=`` negated, an ``if`` turned around, or an in-place statement removed. A mutant
is killed when tests/test_every_path_vs_reference.py's check (every path against the reference
over the spec's grid, float64 and complex128, its explained exceptions applied) reports a failure
or raises. Code only a compiled step, an accelerator or a capturable step runs (the branches
``if torch.compiler.is_compiling()``, ``if not params[0].is_cpu`` and ``if capturable`` rule out
on CPU, tests/tools/path_coverage.py's ``elsewhere``) is not mutated: the suite runs it in
test_fused.py and tests/test_cuda.py, not here. The score is killed / mutants; survivors are printed with what was changed, where.

Usage: ``python tests/tools/mutants.py [--per-module N] [--seed S] [--jobs J] [--only NAME,...]``.
The mutants are the same for a seed: the sample is drawn per module from it.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import importlib.util
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
for _folder in (ROOT, ROOT / "tests", ROOT / "tests" / "tools"):
    if str(_folder) not in sys.path:  # appended: an emitter mutant's copy comes first
        sys.path.append(str(_folder))

from path_coverage import elsewhere, on_cpu_uncompiled  # noqa: E402

SWAP_BINOP = {ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.Div, ast.Div: ast.Mult}
SWAP_CMP = {
    ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE, ast.GtE: ast.Gt,
    ast.Eq: ast.NotEq, ast.NotEq: ast.Eq,
}  # fmt: skip
SWAP_NAME = {
    "add_": "sub_", "sub_": "add_", "mul_": "div_", "div_": "mul_",
    "add": "sub", "sub": "add", "mul": "div", "div": "mul",
    "addcmul_": "addcdiv_", "addcdiv_": "addcmul_", "addcmul": "addcdiv", "addcdiv": "addcmul",
    "_foreach_add_": "_foreach_sub_", "_foreach_sub_": "_foreach_add_",
    "_foreach_mul_": "_foreach_div_", "_foreach_div_": "_foreach_mul_",
    "_foreach_add": "_foreach_sub", "_foreach_sub": "_foreach_add",
    "_foreach_mul": "_foreach_div", "_foreach_div": "_foreach_mul",
    "_foreach_addcmul_": "_foreach_addcdiv_", "_foreach_addcdiv_": "_foreach_addcmul_",
    "maximum": "minimum", "minimum": "maximum", "clamp_min_": "clamp_max_",
    "clamp_max_": "clamp_min_", "clamp_min": "clamp_max", "clamp_max": "clamp_min",
    "_foreach_maximum_": "_foreach_minimum_", "_foreach_clamp_min_": "_foreach_clamp_max_",
    "_foreach_clamp_max_": "_foreach_clamp_min_", "sqrt": "rsqrt", "sqrt_": "rsqrt_",
    "_foreach_sqrt_": "_foreach_rsqrt_", "_foreach_sqrt": "_foreach_rsqrt",
}  # fmt: skip


def _in_a_path(name: str) -> bool:
    """The implementation paths, and the step that gathers their inputs (``step``,
    ``_init_group``): not the constructor's checks, which test_optim_db_errors.py holds.
    """
    return (
        name.startswith(("_single_tensor_", "_multi_tensor_", "_fused_"))
        or name.endswith("_kernel")
        or name in ("step", "_init_group", "init_group")
    ) and not name.startswith("_compiled_")


class Mutator(ast.NodeTransformer):
    """Counts the mutation points of the path functions (``target`` None), or applies the
    ``target``-th one and records what it did."""

    def __init__(
        self, target: int | None = None, far: frozenset = frozenset(), emitter=False
    ):
        self.target, self.count, self.done = target, 0, None
        self.function = None
        self.far = far  # lines an uncompiled CPU run cannot reach: not mutated
        # an emitter (the compiler's code): every function; flags flipped, `and`/`or`
        # swapped and any call statement removed, not tensor methods swapped
        self.emitter = emitter

    def _point(self, what: str, node) -> bool:
        if self.function is None or getattr(node, "lineno", None) in self.far:
            return False
        hit = self.count == self.target
        if hit:
            self.done = (self.function, getattr(node, "lineno", 0), what)
        self.count += 1
        return hit

    def visit_FunctionDef(self, node):
        if self.function is None and not (self.emitter or _in_a_path(node.name)):
            return node
        outer, self.function = self.function, self.function or node.name
        node.body = [self.visit(s) for s in node.body]  # (not its decorators)
        self.function = outer
        return node

    def visit_IfExp(self, node):
        value = on_cpu_uncompiled(node.test)
        if value is None:
            return self.generic_visit(node)
        # only the arm an uncompiled CPU step takes (`step if capturable else _get_value(step)`)
        if value:
            node.body = self.visit(node.body)
        else:
            node.orelse = self.visit(node.orelse)
        return node

    def visit_BinOp(self, node):
        node = self.generic_visit(node)
        new = SWAP_BINOP.get(type(node.op))
        if new and self._point(f"{type(node.op).__name__} -> {new.__name__}", node):
            node.op = new()
        return node

    def visit_Compare(self, node):
        node = self.generic_visit(node)
        new = SWAP_CMP.get(type(node.ops[0]))
        if new and self._point(f"{type(node.ops[0]).__name__} -> {new.__name__}", node):
            node.ops = [new()] + node.ops[1:]
        return node

    def visit_UnaryOp(self, node):
        node = self.generic_visit(node)
        if isinstance(node.op, (ast.USub, ast.Not)) and self._point(
            f"{type(node.op).__name__} dropped", node
        ):
            return node.operand
        return node

    def visit_BoolOp(self, node):
        node = self.generic_visit(node)
        if self.emitter and self.function and self._point("and/or swapped", node):
            node.op = ast.Or() if isinstance(node.op, ast.And) else ast.And()
        return node

    def visit_Constant(self, node):
        v = node.value
        if isinstance(v, bool):
            if self.emitter and self.function and self._point(f"{v} flipped", node):
                return ast.copy_location(ast.Constant(not v), node)
            return node
        if not isinstance(v, (int, float)) or not self.function:
            return node
        if self._point(f"{v!r} changed", node):
            return ast.copy_location(
                ast.Constant(v + 1 if v in (0, 0.0) else v * 2), node
            )
        return node

    def visit_keyword(self, node):
        node = self.generic_visit(node)
        if node.arg in ("alpha", "value") and self._point(
            f"{node.arg}= negated", node.value
        ):
            node.value = ast.UnaryOp(ast.USub(), node.value)
        return node

    def visit_Attribute(self, node):
        node = self.generic_visit(node)
        new = None if self.emitter else SWAP_NAME.get(node.attr)
        if new and self._point(f"{node.attr} -> {new}", node):
            node.attr = new
        return node

    def visit_If(self, node):
        if on_cpu_uncompiled(node.test) is not None:
            # a choice between two forms of one computation, the other one run elsewhere
            node.body = [self.visit(s) for s in node.body]
            node.orelse = [self.visit(s) for s in node.orelse]
            return node
        node = self.generic_visit(node)
        if self.function and self._point("if turned around", node):
            node.test = ast.UnaryOp(ast.Not(), node.test)
        return node

    def visit_Expr(self, node):
        node = self.generic_visit(node)
        call = node.value
        if (
            isinstance(call, ast.Call)
            and isinstance(call.func, ast.Attribute)
            and (self.emitter or call.func.attr.endswith("_"))
            and self.function
            and self._point(f"statement `{call.func.attr}(...)` removed", node)
        ):
            return ast.copy_location(ast.Pass(), node)
        return node


def mutants_of(source: str, emitter: bool = False) -> int:
    tree = ast.parse(source)
    m = Mutator(far=frozenset(() if emitter else elsewhere(tree)), emitter=emitter)
    m.visit(tree)
    return m.count


def mutate(source: str, target: int, emitter: bool = False) -> tuple[str, tuple]:
    tree = ast.parse(source)
    m = Mutator(target, frozenset(() if emitter else elsewhere(tree)), emitter)
    tree = m.visit(tree)
    ast.fix_missing_locations(tree)
    return ast.unparse(tree), m.done


def load(source: str, name: str, folder: Path):
    """Import a mutant from a file of its own (its tracebacks show its lines)."""
    path = folder / f"mutant_{name}.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[path.stem] = module
    spec.loader.exec_module(module)
    return module


@contextlib.contextmanager
def time_limit(seconds: int):
    def stop(*_):
        raise TimeoutError(f"more than {seconds} s")

    old = signal.signal(signal.SIGALRM, stop)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def judge(
    name: str, per_module: int, seed: int, suite: bool
) -> tuple[int, int, int, int, list]:
    """Mutants of one generated module: (points, tried, killed by the net, killed by the
    suite after the net, survivors)."""
    import test_every_path_vs_reference as net

    import generated

    module = sys.modules[getattr(generated, name).__module__]
    source = Path(module.__file__).read_text()
    points = mutants_of(source)
    chosen = sorted(
        random.Random(f"{seed}:{name}").sample(range(points), min(per_module, points))
    )
    by_net = by_suite = 0
    survivors = []
    checked_baseline = False
    with tempfile.TemporaryDirectory() as tmp:
        for target in chosen:
            mutated, what = mutate(source, target)
            try:
                with time_limit(120):
                    cls = getattr(load(mutated, f"{name}_{target}", Path(tmp)), name)
                    report, _ = net.run(name, cls)
                dead = bool(net.failures(name, report))
            except Exception:  # noqa: BLE001 - a mutant that cannot run is caught
                dead = True
            if dead:
                by_net += 1
                continue
            if suite and not checked_baseline:
                # the tests must pass on the committed module, or every mutant would "die"
                if suite_kills(source, module.__name__, name, Path(tmp)):
                    raise RuntimeError(f"the tests naming {name} fail without a mutant")
                checked_baseline = True
            if suite and suite_kills(mutated, module.__name__, name, Path(tmp)):
                by_suite += 1
            else:
                line = source.splitlines()[what[1] - 1].strip()
                survivors.append((name, *what[:2], f"{what[2]}  [{line}]"))
    return points, len(chosen), by_net, by_suite, survivors


def suite_kills(source: str, module: str, name: str, folder: Path) -> bool:
    """Whether the rest of the suite fails with the mutant in the committed module's place:
    the tests whose names mention the optimizer (pytest -k, without the multi-process and
    packaging tests), stopping at the first failure (tests/conftest.py swaps it in)."""
    path = folder / f"suite_{module.rsplit('.', 1)[-1]}.py"
    path.write_text(source)
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", "-p"]
        + ["no:xdist", "-m", "not distributed and not slow", "-k", name, "tests/"]
        + ["--ignore=tests/test_user_project.py", "--ignore=tests/tools"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={
            **os.environ,
            "OPTIMGEN_MUTANT": f"{path}::{module.rsplit('.', 1)[-1]}::{name}",
        },
    )
    return (
        done.returncode == 1
    )  # 1: a test failed (5: none collected, others: pytest broke)


EMITTERS = (
    "generator/lower/expressions.py",
    "generator/lower/statements.py",
    "generator/lower/rules.py",
    "generator/lower/lowering.py",
    "generator/emit/python/blocks.py",
    "generator/emit/python/scalars.py",
    "generator/emit/python/single.py",
    "generator/emit/python/foreach.py",
    "generator/emit/python/facts.py",
    "generator/emit/python/constructor.py",
    "generator/emit/python/state.py",
    "generator/emit/python/group.py",
    "generator/emit/python/bodies.py",
    "generator/emit/python/fused_host.py",
    "generator/emit/python/module.py",
    "generator/emit/python/fused.py",
    "generator/emit/python/ops.py",
    "generator/emit/python/flat.py",
)


def judge_emitted() -> dict:
    """In a process whose `generator` is a mutant's copy: build every standard spec, and hold
    each module whose text changed to its reference as the net does, and each changed twin's
    for-loop to torch's, bit for bit."""
    import test_every_path_vs_reference as net
    import torch

    import generated
    from generator.api import compile_text

    changed = []
    for name, spec in sorted(net.SPECS.items()):
        try:
            source = compile_text(spec.read_bytes(), f"specs/{spec.name}")
        except Exception as exc:  # noqa: BLE001 - the build failing on a valid spec
            return {"outcome": "build failed", "why": f"{name}: {exc!r}"[:200]}
        committed = Path(sys.modules[getattr(generated, name).__module__].__file__)
        if source != committed.read_text():
            changed.append((name, source))
    if not changed:
        return {"outcome": "same output"}
    with tempfile.TemporaryDirectory() as tmp:
        for name, source in changed:
            if name in net.NOT_HERE:
                continue
            try:
                with time_limit(300):
                    cls = getattr(load(source, name, Path(tmp)), name)
                    report, _ = net.run(name, cls)
                failed = net.failures(name, report)
            except (
                Exception
            ) as exc:  # noqa: BLE001 - a module that cannot run is caught
                failed = [repr(exc)[:200]]
            if failed:
                return {"outcome": "killed", "why": f"{name}: {failed[0]}"[:300]}
        # a twin's for-loop is torch's arithmetic in torch's order: bit-identical in float32
        # (tests/test_torch_parity.py holds it so), which a rewrite of the lowering's forms
        # breaks while the values stay within the net's tolerance
        for name, source in changed:
            if not hasattr(torch.optim, name) or name in net.NOT_HERE:
                continue
            if _inexact(name, getattr(generated, name)):
                continue  # not bit-identical without a mutant either: no judge here
            cls = getattr(load(source, f"{name}_exact", Path(tmp)), name)
            rows = _inexact(name, cls)
            if rows:
                return {"outcome": "killed", "why": f"{name} (bit-identity): {rows[0]}"}
    return {"outcome": "survived", "changed": [n for n, _ in changed]}


def _inexact(name: str, cls) -> list[str]:
    """The configurations of the spec's grid where ``cls``'s for-loop is not bit-identical to
    torch's class in float32."""
    import warnings

    import test_every_path_vs_reference as net
    from generator.commands import verify as V
    from generator.api import check_text

    path = net.SPECS[name]
    checked = check_text(path.read_bytes(), f"specs/{path.name}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        report = V.verify(
            checked,
            cls,
            V.reference(f"torch.optim.{name}"),
            impls=["for-loop"],
            dtypes=["float32"],
            steps=12,
            rtol=0.0,
            atol=0.0,
        )
    return [
        f"{r.config.label}: {r.why}"[:200] for r in report.rows if r.status == "FAIL"
    ]


def judge_emitter(path: str, target: int) -> tuple[tuple, dict]:
    """Apply one mutant to a copy of the compiler and judge what it emits."""
    source = (ROOT / path).read_text()
    mutated, what = mutate(source, target, emitter=True)
    with tempfile.TemporaryDirectory() as tmp:
        shutil.copytree(
            ROOT / "generator",
            Path(tmp) / "generator",
            ignore=shutil.ignore_patterns("__pycache__"),
        )
        (Path(tmp) / path).write_text(mutated)
        code = (
            f"import sys; sys.path.insert(0, {tmp!r}); "
            f"sys.path.append({str(ROOT / 'tests' / 'tools')!r}); "
            "import json, mutants; print(json.dumps(mutants.judge_emitted()))"
        )
        done = subprocess.run(
            [sys.executable, "-c", code],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=1800,
            env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
        )
    lines = done.stdout.strip().splitlines()
    if done.returncode or not lines:
        why = (done.stderr.strip().splitlines() or ["?"])[-1]
        return (path, *what), {"outcome": "build failed", "why": why[:200]}
    return (path, *what), json.loads(lines[-1])


def emitter_mutants(count: int, seed: int, jobs: int) -> int:
    points = [
        (p, t)
        for p in EMITTERS
        for t in range(mutants_of((ROOT / p).read_text(), True))
    ]
    chosen = sorted(
        random.Random(f"{seed}:emitters").sample(points, min(count, len(points)))
    )
    outcomes: dict[str, list] = {}
    start = time.monotonic()
    with ProcessPoolExecutor(jobs) as pool:
        for what, result in pool.map(judge_emitter, *zip(*chosen)):
            outcomes.setdefault(result["outcome"], []).append((what, result))
            print(
                f"{result['outcome']:13s} {what[0]}:{what[2]} {what[1]}: {what[3]}",
                flush=True,
            )
    took = time.monotonic() - start
    n = {k: len(v) for k, v in outcomes.items()}
    effective = len(chosen) - n.get("same output", 0)
    dead = n.get("killed", 0) + n.get("build failed", 0)
    print(
        f"emitter mutants: {len(chosen)} of {len(points)} points; {n.get('same output', 0)} "
        f"emit the same standard library (equivalent there); of the {effective} others "
        f"{n.get('build failed', 0)} break the build and {n.get('killed', 0)} are caught by "
        f"the net: {dead} / {effective} = {100 * dead / max(effective, 1):.1f}% ({took:.0f} s)"
    )
    for what, result in outcomes.get("survived", []):
        print(
            f"  survived: {what[0]}:{what[2]} {what[1]}: {what[3]} (changed {result['changed']})"
        )
    return 0


def main(argv=None) -> int:
    import test_every_path_vs_reference as net

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--per-module", type=int, default=25)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    p.add_argument("--only", help="comma-separated class names")
    p.add_argument(
        "--suite",
        action="store_true",
        help="run the rest of the suite (tests naming the optimizer) on the net's survivors",
    )
    p.add_argument(
        "--emitters",
        type=int,
        metavar="N",
        help="N mutants of the compiler's lowering and emitters instead, each judged on "
        "what it emits for the standard library",
    )
    args = p.parse_args(argv)
    if args.emitters:
        return emitter_mutants(args.emitters, args.seed, args.jobs)
    names = args.only.split(",") if args.only else sorted(net.SPECS)
    names = [n for n in names if n not in net.NOT_HERE]
    killed = total = 0
    start = time.monotonic()
    by_suite = 0
    with ProcessPoolExecutor(args.jobs) as pool:
        futures = [
            pool.submit(judge, n, args.per_module, args.seed, args.suite) for n in names
        ]
        for name, future in zip(names, futures):
            points, tried, net_dead, suite_dead, lived = future.result()
            total += tried
            killed += net_dead
            by_suite += suite_dead
            print(
                f"{name:18s} {net_dead:3d} + {suite_dead:3d} / {tried:3d} killed "
                f"(net + suite; {points} points)",
                flush=True,
            )
            for (
                _,
                function,
                line,
                what,
            ) in lived:  # as they come: a long run may be cut short
                print(f"  survived: {name} {function} line {line}: {what}", flush=True)
    took = time.monotonic() - start
    print(
        f"mutation score of the net: {killed} / {total} = "
        f"{100 * killed / max(total, 1):.1f}%"
    )
    if args.suite:
        dead = killed + by_suite
        print(
            f"mutation score of the suite: {dead} / {total} = "
            f"{100 * dead / max(total, 1):.1f}% ({by_suite} more by the other tests)"
        )
    print(f"({took:.0f} s; the survivors are listed under their optimizer above)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
