"""`optimgen fuzz`: the compiler tested against itself. Random *valid* specs
(generator.commands.fuzz_programs) are built and run on every path they declare (for-loop,
foreach, fused); a build failure on a valid spec, a crash on any path, or two paths that disagree
beyond float rounding is a compiler bug.

Each program runs on the problem of ``optimgen verify`` (six shapes in two param groups, one
starting at zero, gradients over five orders of magnitude with rows of zeros, a parameter without a
gradient on some steps) in float64 and float32; each path is held to the for-loop, and a program
with lists (which runs the for-loop only) is held to its twin without lists as well. A failing
program is minimized: statements, branches, sub-expressions, states and inputs are removed while
the same failure remains, and the small spec that still fails is printed. torch is imported when
the command runs.
"""

from __future__ import annotations

import contextlib
import sys
import time
from dataclasses import dataclass, replace
from generator.api import check_text, load_spec
from generator.check.queries import calls, reads_rank
from generator.commands.common import comma_list
from generator.commands.fuzz_model import (
    BLOCKS,
    Assign,
    Expr,
    If,
    Program,
    Repeat,
    leaf,
    prune,
)
from generator.commands.fuzz_programs import draw
from generator.commands.fuzz_twins import unrolled
from generator.verify import harness as V
from generator.verify.problems import FULL, WITH_SCALAR
from generator.language.diagnostics import GeneratorBug, SpecError

# ---- running a program ------------------------------------------------------------------------------

TOLERANCES = {"float64": (1e-9, 1e-12), "float32": (2e-3, 2e-4)}


@dataclass
class Finding:
    kind: str  # invalid | build | crash | disagree
    path: str  # build, or the implementation
    dtype: str
    detail: str

    def same(self, other: "Finding") -> bool:
        return (self.kind, self.path) == (other.kind, other.path)


def build(text: str):
    """(class, findings): the spec built in memory, or why it could not be."""

    try:
        return load_spec(text), []
    except SpecError as e:
        first = e.render().splitlines()[0]
        return None, [Finding("invalid", "build", "-", first)]
    except GeneratorBug as e:
        return None, [Finding("build", "build", "-", f"internal error: {e}")]
    except Exception as e:  # a compiler bug that escaped as something else
        return None, [Finding("build", "build", "-", f"{type(e).__name__}: {e}")]


def run_paths(
    cls,
    dtypes=("float64", "float32"),
    steps: int = 6,
    seed: int = 0,
    twin=None,
    layout=FULL,
):
    """(findings, comparisons made, the dtypes whose for-loop overflowed: none compared there)
    of every path the class declares on verify's problem (``layout``: its parameters), held
    to the for-loop; with ``twin`` (the class of a list program's twin without lists), that
    one's for-loop too."""
    import torch

    findings, compared, diverged = [], 0, []
    impls = V.implementations(cls)
    candidates = [(impl, cls, impl) for impl in impls]
    if twin is not None:
        candidates.append(("lists unrolled", twin, "for-loop"))
    for dtype_name in dtypes:
        dtype = getattr(torch, dtype_name)
        runs = {
            name: V.trajectory(
                torch,
                c,
                V.impl_kwargs(c, impl),
                dtype,
                seed,
                steps,
                getattr(sys.modules.get(c.__module__), "__file__", None),
                layout,
            )
            for name, c, impl in candidates
        }
        loop = runs["for-loop"]
        if loop.params and V.non_finite(torch, loop):
            # the program itself overflows here (its values grew past the dtype): no path
            # has a number to be held to
            diverged.append(dtype_name)
            continue
        rtol, atol = TOLERANCES[dtype_name]
        for impl, t in runs.items():
            if t.error or t.refused:
                findings.append(
                    Finding("crash", impl, dtype_name, t.error or t.refused)
                )
                continue
            bad = V.non_finite(torch, t)
            if bad:
                findings.append(
                    Finding("crash", impl, dtype_name, f"non-finite: {bad}")
                )
                continue
            if impl != "for-loop" and loop.params:
                compared += 1
                _, diff = V.first_difference(torch, t, loop, rtol, atol)
                if diff:
                    findings.append(
                        Finding("disagree", impl, dtype_name, f"vs for-loop: {diff}")
                    )
    return findings, compared, diverged


def check_program(program: Program, dtypes=("float64", "float32"), steps: int = 6):
    """(findings, paths compared, the program as built: without `fused` where E326 or E335
    refuses it, the dtypes in which the program overflowed: none compared there)."""
    cls, findings = build(program.text())
    refused = ("[E326]", "[E335]")
    if findings and program.fused and any(r in findings[0].detail for r in refused):
        program = replace(program, fused=False)  # the update holds what no kernel runs
        cls, findings = build(program.text())
    if findings:
        return findings, 0, program, []
    twin = unrolled(program)
    if twin is not None:
        twin, findings = build(twin.text())
        if findings:  # (the twin is built from the valid program: its failure is a bug)
            return [replace(f, path="lists unrolled") for f in findings], 0, program, []
    # (a program that reads the rank runs on a 0-d parameter too, as verify does, unless it
    # reads a size, which a 0-d parameter has none of: the for-loop would fail as well)
    checked = check_text(program.text())
    scalar = reads_rank(checked) and not calls(checked, "size")
    layout = WITH_SCALAR if scalar else FULL
    found, compared, diverged = run_paths(cls, dtypes, steps, twin=twin, layout=layout)
    return found, compared, program, diverged


# ---- minimizing -------------------------------------------------------------------------------------


def _variants(program: Program):
    """Smaller programs: one statement, branch or sub-expression fewer."""
    for field_name in BLOCKS:
        stmts = getattr(program, field_name)
        for smaller in _smaller_blocks(stmts):
            yield prune(replace(program, **{field_name: smaller}))
    if program.fused:
        yield replace(program, fused=False)
    if program.foreach:
        yield replace(program, foreach=False)


def _smaller_blocks(stmts: tuple):
    for k, s in enumerate(stmts):
        if not (isinstance(s, Assign) and s.target == "param" and k == len(stmts) - 1):
            yield stmts[:k] + stmts[k + 1 :]  # without it
        if isinstance(s, If):
            yield stmts[:k] + s.then + stmts[k + 1 :]
            yield stmts[:k] + s.orelse + stmts[k + 1 :]
            for then in _smaller_blocks(s.then):
                yield stmts[:k] + (replace(s, then=then),) + stmts[k + 1 :]
            for orelse in _smaller_blocks(s.orelse):
                yield stmts[:k] + (replace(s, orelse=orelse),) + stmts[k + 1 :]
        elif isinstance(s, Repeat):
            yield stmts[:k] + s.body + stmts[k + 1 :]
        elif isinstance(s, Assign):
            for value in _smaller_exprs(s.value):
                yield stmts[:k] + (replace(s, value=value),) + stmts[k + 1 :]


def _smaller_exprs(e: Expr):
    for k, a in enumerate(e.args):
        if a.kind == e.kind:
            yield a  # the expression replaced by one of its operands
        for smaller in _smaller_exprs(a):
            yield Expr(e.template, e.args[:k] + (smaller,) + e.args[k + 1 :], e.kind)
    if e.kind == "tensor" and e.args:
        yield leaf("grad")


def minimize(program: Program, fails, budget: float = 120.0) -> Program:
    """The smallest program found for which ``fails(program)`` still holds (greedy: one
    statement, branch or sub-expression fewer at a time, until none can go; bounded in time).
    """
    deadline = time.monotonic() + budget
    current = program
    improved = True
    while improved and time.monotonic() < deadline:
        improved = False
        for candidate in _variants(current):
            if time.monotonic() > deadline:
                break
            if len(candidate.text()) >= len(current.text()):
                continue
            if fails(candidate):
                current, improved = candidate, True
                break
    return current


def fails_as(failure: Finding, dtypes, steps):
    """The predicate "fails the way ``failure`` did" (same kind, same path)."""

    def fails(program: Program) -> bool:
        found, *_ = check_program(program, dtypes, steps)
        return any(f.same(failure) for f in found)

    return fails


# ---- the command ------------------------------------------------------------------------------------


def add_arguments(p) -> None:
    p.add_argument(
        "--programs", type=int, default=100, help="programs to draw (default 100)"
    )
    p.add_argument("--seed", type=int, default=0, help="the first program's seed")
    p.add_argument("--steps", type=int, default=6, help="steps per run (default 6)")
    p.add_argument(
        "--dtype",
        default="float64,float32",
        help="comma-separated dtypes (float64,float32)",
    )
    p.add_argument(
        "--no-minimize",
        dest="minimize",
        action="store_false",
        help="report failing programs as drawn",
    )
    p.add_argument(
        "--show", action="store_true", help="print each program's spec as it is drawn"
    )
    p.add_argument(
        "--eager-kernels",
        action="store_true",
        help="run the fused kernels uncompiled (fast: the kernels' code, not inductor's)",
    )


def run(args) -> int:
    import warnings

    dtypes = comma_list(args.dtype)
    unknown = [d for d in dtypes if d not in TOLERANCES]
    if unknown:
        print(
            f"optimgen fuzz: --dtype: `{unknown[0]}` is not one of float64, float32",
            file=sys.stderr,
        )
        return 1
    constructs: dict[str, int] = {}
    failures = []
    compared = fused = 0
    start = time.monotonic()
    from generator.runtime.kernels import eager_kernels

    with (
        warnings.catch_warnings(),
        eager_kernels() if args.eager_kernels else contextlib.nullcontext(),
    ):
        warnings.simplefilter("ignore")
        for seed in range(args.seed, args.seed + args.programs):
            program, used = draw(seed)
            for k, v in used.items():
                constructs[k] = constructs.get(k, 0) + v
            if args.show:
                print(program.text())
            found, n, built, _ = check_program(program, dtypes, args.steps)
            compared += n
            fused += built.fused
            if found:
                first = found[0]
                small = (
                    minimize(built, fails_as(first, dtypes, args.steps))
                    if args.minimize
                    else built
                )
                failures.append((seed, first, small))
                print(
                    f"seed {seed}: {first.kind} on {first.path} ({first.dtype}): "
                    f"{first.detail}"
                )
                print(_indent(small.text()))
    took = time.monotonic() - start
    print(
        f"{args.programs} programs (seeds {args.seed}..{args.seed + args.programs - 1}), "
        f"{fused} with a fused path; {compared} path runs compared with the for-loop; "
        f"{len(failures)} failing; {took:.0f} s"
    )
    print("constructs: " + ", ".join(f"{k} {v}" for k, v in sorted(constructs.items())))
    return 1 if failures else 0


def _indent(text: str) -> str:
    return "\n".join("    " + line for line in text.rstrip().splitlines())
