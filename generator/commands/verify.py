"""`optimgen verify`: a spec's generated class run on every path it declares, against a reference
and against itself, over configurations chosen from the spec, with the spec's line coverage.

Every implementation the class has (for-loop, foreach, fused, and the for-loop with
``differentiable=True``; ``--impl`` chooses) runs on the same
problem as the reference (parameters of several shapes in two param groups, gradients spread over
five orders of magnitude, one parameter without a gradient on some steps and the second group
without any on others), in float64 and float32
and, where the spec allows complex parameters, complex128. After every step each parameter is
compared with the reference's and with the for-loop's, and checked for NaN and inf. The
reference is any ``module.Class`` or ``module:callable`` returning an optimizer for the given
parameters and keyword arguments (a wrapper such as Lookahead around torch's Adam); without one,
the implementations are compared with each other.

The configurations: the spec's defaults (given to both sides, so that the algorithms are
compared, not the defaults), each flag both ways, each hyperparameter changed once, and the values
the spec's own conditions name (``if weight_decay != 0``, ``mars_type == "shampoo"``, a counter's
``t % k == 0`` or ``t < warmup`` with a small ``k``, ``warmup``, and enough steps for a literal
period); then, for each branch of the update no configuration has reached, combinations of the
values its conditions name. Which branches ran is measured on a coverage build of the spec (each
branch opens with a probe), and the update lines that never ran are reported with the condition
that would reach them. ``--config`` adds configurations of your own.

A crash on either side is a FAIL row with the exception and the step; a refusal the spec itself
documents (its ``requires``/``check`` messages) is a row of its own, not a failure. Exit status 0
only when no row fails. torch is imported when the command runs.

This module is the command and its engine (:func:`verify`: configurations × dtypes × paths, a
row each). What it stands on lives in generator.verify: the problem and the runners shared with
the fuzzer and the test suite (problems, harness), the grid of configurations (grid) and the
coverage build (coverage).
"""

from __future__ import annotations

import importlib
import inspect
import sys
import warnings
from dataclasses import dataclass, field, replace
from typing import Any

from generator import project as P
from generator.api import check_text, load_spec
from generator.check.queries import reads_rank, refuses_complex
from generator.commands.common import (
    LiteralError,
    comma_list,
    literal_kwargs,
    progress_wanted,
)
from generator.commands.common import table as text_table
from generator.commands.progress import Progress, add_progress_arguments
from generator.language.names import IMPLEMENTATION_FLAGS
from generator.verify.coverage import Coverage, coverage_text, line_coverage
from generator.verify.grid import (
    Config,
    SpecConditions,
    combinations,
    comparable,
    constructor_defaults,
    grid,
    narrowest_cast,
    required_arguments,
    same,
)
from generator.verify.harness import (
    IMPLS,
    Reference,
    first_difference,
    impl_kwargs,
    implementations,
    keywords,
    non_finite,
    state_difference,
    trajectory,
)
from generator.verify.problems import FULL, WITH_SCALAR, Layout

# the names tests/ and tools/ reach through the command (its engine's report and coverage)
__all__ = [
    "IMPLS",
    "Coverage",
    "Reference",
    "Report",
    "coverage_text",
    "implementations",
    "keywords",
    "line_coverage",
    "parse_config",
    "reference",
    "run",
    "verify",
]

TOLERANCES = {  # (rtol, atol)
    "float64": (1e-10, 1e-14),
    "float32": (1e-5, 1e-7),
    "bfloat16": (2e-2, 1e-3),
    "complex128": (1e-10, 1e-14),
}
DEFAULT_STEPS = 20

# ---- the command line -------------------------------------------------------------------------


def add_arguments(p) -> None:
    p.add_argument(
        "spec",
        help="the spec whose generated class is checked: a file, or the name of one of "
        "your specs or of optimgen's optimizers",
    )
    p.add_argument(
        "--against",
        metavar="REFERENCE",
        help="the reference: MODULE.CLASS (torch.optim.Adam, pytorch_optimizer.Lion) or "
        "MODULE:CALLABLE returning an optimizer for (params, **kwargs); without it the "
        "implementations are compared with each other",
    )
    p.add_argument(
        "--impl",
        default="all",
        help="implementations to run: all (default: every one the spec declares) or a "
        "comma-separated list of for-loop, foreach, fused, differentiable",
    )
    p.add_argument(
        "--config",
        action="append",
        default=[],
        metavar="K=V,...",
        help="a configuration of your own (Python literals), e.g. 'k=3,lr=0.1'; repeatable",
    )
    p.add_argument(
        "--no-grid",
        dest="grid",
        action="store_false",
        help="run only the defaults and the --config configurations",
    )
    p.add_argument(
        "--steps",
        type=int,
        default=DEFAULT_STEPS,
        help=f"steps per configuration (default {DEFAULT_STEPS}; the grid adds steps where "
        "a condition of the spec needs them)",
    )
    p.add_argument(
        "--dtype",
        help="comma-separated parameter dtypes (default: float64,float32, and complex128 "
        f"where the spec allows complex parameters; also {', '.join(TOLERANCES)})",
    )
    p.add_argument("--rtol", type=float, help="relative tolerance (default: by dtype)")
    p.add_argument("--atol", type=float, help="absolute tolerance (default: by dtype)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--spec-dir",
        help="a spec folder to use instead of the project's (its fragments)",
    )
    add_progress_arguments(p)


class VerifyError(Exception):
    """A command-line mistake, reported in one line (exit 1)."""


def parse_config(text: str) -> dict[str, Any]:
    """``'k=3,lr=0.1,betas=(0.8, 0.9)'`` → {"k": 3, "lr": 0.1, "betas": (0.8, 0.9)}; values are
    Python literals (read with ast.literal_eval, never evaluated)."""
    try:
        return literal_kwargs(text)
    except LiteralError as e:
        if e.key is None:
            raise VerifyError(
                f"--config {text!r}: `{e.item}` is not NAME=VALUE"
            ) from None
        raise VerifyError(
            f"--config {text!r}: the value of `{e.key}` is not a Python literal "
            "(numbers, True/False/None, quoted strings, tuples)"
        ) from None


# ---- the reference ----------------------------------------------------------------------------


def reference(spec: str) -> Reference:
    """``module.Class`` or ``module:callable``."""
    if ":" in spec:
        module, _, attr = spec.partition(":")
        sep = ":"
    else:
        module, _, attr = spec.rpartition(".")
        sep = "."
    if not module or not attr:
        raise VerifyError(
            f"`{spec}` is neither MODULE.CLASS (torch.optim.Adam) nor MODULE:CALLABLE"
        )
    try:
        mod = importlib.import_module(module)
    except ImportError as e:
        raise VerifyError(f"cannot import `{module}`: {e}") from None
    target = mod
    for part in attr.split("."):
        target = getattr(target, part, None)
    if target is None or not callable(target):
        what = "class" if sep == "." else "callable"
        raise VerifyError(f"`{module}` has no {what} `{attr}`")
    if sep == "." and not isinstance(target, type):
        raise VerifyError(
            f"`{module}.{attr}` is not a class (MODULE:CALLABLE takes one)"
        )
    return Reference(spec, target, keywords(target))


# ---- the engine ----------------------------------------------------------------------------------


@dataclass
class Row:
    config: Config
    dtype: str
    impl: str
    status: str  # pass | FAIL | refused | skipped
    vs_reference: float | None = None
    vs_loop: float | None = None
    why: str = ""
    note: str = ""  # about the run, not the result (parameters left out, one group)


@dataclass
class Report:
    rows: list[Row]
    probes: tuple
    hits: set
    combinations: list[Config]
    conditions: Any
    required: dict[str, Any] = field(default_factory=dict)
    # per branch never taken: the combinations that would try it but the spec refuses
    refused: dict[str, list[str]] = field(default_factory=dict)

    @property
    def failed(self) -> int:
        return sum(r.status == "FAIL" for r in self.rows)


def verify(
    checked,
    gen_cls,
    ref: Reference | None,
    *,
    impls: list[str],
    dtypes: list[str],
    steps: int = DEFAULT_STEPS,
    seed: int = 0,
    configs: list[dict[str, Any]] = (),
    use_grid: bool = True,
    rtol: float | None = None,
    atol: float | None = None,
    progress=None,
) -> Report:
    import torch

    module_file = getattr(sys.modules.get(gen_cls.__module__), "__file__", None)
    ref_defaults = {
        k: ours
        for k, (ours, theirs) in _shared_defaults(gen_cls, ref).items()
        if comparable(ours, theirs)
    }
    required = required_arguments(gen_cls)

    def accepted(kwargs) -> bool:
        # (a matrix or a vector: Muon takes matrices only)
        for shape in ((2, 2), (2,)):
            try:
                param = torch.zeros(shape, dtype=torch.float64, requires_grad=True)
                gen_cls([param], **{**required, **kwargs})
                return True
            except Exception:
                pass
        return False

    if use_grid:
        planned, conditions = grid(checked, gen_cls, ref, steps, accepted)
    else:
        planned = [Config((), steps, "defaults")]
        conditions = SpecConditions(checked, constructor_defaults(gen_cls))
    for kwargs in configs:
        planned.append(Config(tuple(sorted(kwargs.items())), steps, "--config"))
    layouts: dict[Config, Layout] = {}
    whole = WITH_SCALAR if reads_rank(checked) else FULL
    if getattr(gen_cls, "requires_create_graph", False):
        # (its step differentiates the gradients, and the reference's too)
        whole = replace(whole, curved=True)

    def layout(config: Config) -> Layout:
        if config not in layouts:
            kwargs = {**required, **config.as_dict()}
            loop = impl_kwargs(gen_cls, "for-loop")
            sides = [(gen_cls, {**kwargs, **loop}, module_file)]
            if ref is not None and all(ref.accepts(k) for k in kwargs):
                sides.append((ref.make, {**ref_defaults, **kwargs}, None))
            layouts[config] = fitting_layout(torch, sides, seed, whole)
        return layouts[config]

    with warnings.catch_warnings():
        # (torch's and the kernels' notes are not findings)
        warnings.simplefilter("ignore")
        cover = Coverage(checked)
        for config in planned:
            cover.run(torch, config, seed, required, layout(config))
        extra = []
        refused: dict[str, list[str]] = {}
        tried: set[str] = set()
        # rounds: a branch inside one that a combination just reached (fixed_decay's way
        # inside `if weight_decouple`) is on the frontier of the next round
        for _ in range(4):
            frontier = [b for b in cover.missed_frontier() if b not in tried]
            if not use_grid or not frontier:
                break
            tried.update(frontier)
            extra += _combinations_reaching(
                frontier, conditions, cover, accepted, refused, steps, torch, seed,
                required, layout,
            )  # fmt: skip
        rows = []
        if progress is not None:
            progress.total = max(len(planned + extra) * len(dtypes), 1)
        for config in planned + extra:
            for dtype_name in dtypes:
                if progress is not None:
                    progress.advance(f"{config.label} {dtype_name}", 0, force=True)
                rows += _rows(
                    torch,
                    gen_cls,
                    ref,
                    ref_defaults,
                    required,
                    config,
                    dtype_name,
                    impls,
                    seed,
                    rtol,
                    atol,
                    module_file,
                    layout(config),
                    narrowest_cast(checked),
                )
                if progress is not None:
                    progress.advance(f"{config.label} {dtype_name}")
    return Report(rows, cover.probes, cover.hits, extra, conditions, required, refused)


def _combinations_reaching(
    frontier, conditions, cover, accepted, refused, steps, torch, seed, required, layout
) -> list[Config]:
    """For each branch of ``frontier``, the first combination of the values its conditions
    name that takes it (the refused ones noted in ``refused``)."""
    extra = []
    for label in frontier:
        for kwargs, syms in combinations(conditions, label):
            if not accepted(kwargs):
                refused.setdefault(label, []).append(
                    ", ".join(f"{k}={v!r}" for k, v in sorted(kwargs.items()))
                )
                continue
            config = Config(
                tuple(sorted(kwargs.items())),
                max(steps, conditions.steps_for(syms)),
                f"a combination for {label}",
            )
            if label in cover.run(torch, config, seed, required, layout(config)):
                extra.append(config)
                break
    return extra


def _shared_defaults(gen_cls, ref: Reference | None) -> dict[str, tuple[Any, Any]]:
    """Hyperparameters both take, as (ours, theirs) defaults."""
    if ref is None:
        return {}
    try:
        theirs = inspect.signature(ref.make).parameters
    except (TypeError, ValueError):
        theirs = {}
    out = {}
    for name, ours in constructor_defaults(gen_cls).items():
        if name in IMPLEMENTATION_FLAGS or not ref.accepts(name):
            continue
        t = theirs.get(name)
        their_default = t.default if t is not None else inspect.Parameter.empty
        out[name] = (ours, their_default)
    return out


def fitting_layout(torch, sides, seed, whole: Layout = FULL) -> Layout:
    """The ``whole`` problem, or, where a side refuses some parameters (Muon takes matrices only,
    MARS's shampoo mode tensors of at most two dimensions), the shapes both sides take, so
    that the rest still runs. ``sides``: (make, kwargs, module_file) of the generated class
    and of the reference; the generated class's refusals count when the spec documents
    them (a crash is left to be reported), the reference's whatever they are."""

    def takes(make, kwargs, module_file, layout) -> bool:
        t = trajectory(torch, make, kwargs, torch.float64, seed, 1, module_file, layout)
        if module_file is None:
            return bool(t.params)
        return t.refused is None

    if all(takes(*side, whole) for side in sides):
        return whole
    kept = [
        shape
        for shape in whole.shapes
        if all(takes(*side, replace(whole, shapes=(shape,))) for side in sides)
    ]
    if not kept or len(kept) == len(whole.shapes):
        return whole
    left = ", ".join(str(shape) for shape in whole.shapes if shape not in kept)
    return replace(
        whole,
        shapes=tuple(kept),
        grouped=True,
        note=f"parameters {left} left out: refused",
    )


def _rows(
    torch,
    gen_cls,
    ref,
    ref_defaults,
    required,
    config,
    dtype_name,
    impls,
    seed,
    rtol,
    atol,
    module_file,
    layout,
    narrowest=None,
) -> list[Row]:
    dtype = getattr(torch, dtype_name)
    r_tol, a_tol = TOLERANCES[dtype_name]
    r_tol = rtol if rtol is not None else r_tol
    a_tol = atol if atol is not None else a_tol
    fused_tol = (r_tol, a_tol)
    if narrowest is not None and rtol is None and atol is None:
        # the spec computes part of its update in a narrower dtype (MARS's bfloat16
        # Newton-Schulz, Prodigy's float32 sums): the compiled kernel rounds it in another
        # order, within that dtype's precision
        n_r, n_a = TOLERANCES[narrowest]
        fused_tol = (max(r_tol, n_r), max(a_tol, n_a))
    kwargs = {**required, **config.as_dict()}
    notes = [layout.note] if layout.note else []
    want = None
    if ref is not None:
        missing = [k for k in kwargs if not ref.accepts(k)]
        if missing:
            notes.append(f"the reference takes no `{missing[0]}`")
        else:
            ref_kwargs = {**ref_defaults, **kwargs}
            want = trajectory(
                torch, ref.make, ref_kwargs, dtype, seed, config.steps, None, layout
            )
            if not want.params and layout.grouped:
                # (torch's LBFGS takes one param group only)
                single = replace(layout, grouped=False)
                again = trajectory(
                    torch, ref.make, ref_kwargs, dtype, seed, config.steps, None, single
                )
                if again.params:
                    want, layout = again, single
                    notes.append("one param group: the reference refuses two")
            if not want.params:
                why = (want.refused or want.error or "").removeprefix(
                    "at construction: "
                )
                return [
                    Row(
                        config,
                        dtype_name,
                        "all",
                        "skipped",
                        why=f"the reference refuses it ({why})",
                    )
                ]
    runs = {
        impl: trajectory(
            torch,
            gen_cls,
            {**kwargs, **impl_kwargs(gen_cls, impl)},
            dtype,
            seed,
            config.steps,
            module_file,
            layout,
        )
        for impl in impls
    }
    loop = runs.get("for-loop")
    rows = []
    for impl, got in runs.items():
        row = Row(config, dtype_name, impl, "pass")
        if got.refused is not None:
            row.status, row.why = "refused", f"as the spec says {got.refused}"
        elif got.error is not None:
            row.status, row.why = "FAIL", got.error
        else:
            problems = []

            def compare(other):
                worst, diff = first_difference(torch, got, other, r_tol, a_tol)
                if diff and impl == "fused" and fused_tol != (r_tol, a_tol):
                    if first_difference(torch, got, other, *fused_tol)[1] is None:
                        notes.append(
                            f"fused within {narrowest}'s precision: the spec computes in "
                            f"{narrowest}, the compiled kernel rounds in another order"
                        )
                        diff = None
                return worst, diff

            if want is not None:
                row.vs_reference, diff = compare(want)
                if diff:
                    problems.append(f"vs reference: {diff}")
                elif ref.name.startswith("torch.optim."):
                    # the twins keep torch's state layout (state_dicts load across): the
                    # states must agree too, the step counters of an update that reads none
                    # included
                    diff = state_difference(torch, got, want, r_tol, a_tol)
                    if diff:
                        problems.append(f"vs reference's state: {diff}")
                if want.error:
                    problems.append(f"the reference failed {want.error}")
            if loop is not None and impl != "for-loop" and loop.params:
                # with a reference, it decides each path's result (a wrong for-loop must
                # not fail the others); without one, the for-loop is the reference
                row.vs_loop, diff = compare(loop)
                if diff and want is None:
                    problems.append(f"vs for-loop: {diff}")
            bad = non_finite(torch, got)
            if bad and not (want is not None and non_finite(torch, want)):
                problems.append(bad)
            if problems:
                row.status, row.why = "FAIL", "; ".join(problems)
        row.note = "; ".join(notes)
        rows.append(row)
    if len(rows) > 1 and all(r.status == "refused" for r in rows):
        if len({r.why for r in rows}) == 1:  # refused at construction: one row for all
            return [Row(config, dtype_name, "all", "refused", why=rows[0].why)]
    return rows


# ---- the command --------------------------------------------------------------------------------


def run(args) -> int:
    try:
        return _run(args)
    except VerifyError as e:
        print(f"optimgen verify: {e}", file=sys.stderr)
        return 1


def _run(args) -> int:

    ref = reference(args.against) if args.against else None
    configs = [parse_config(c) for c in args.config]
    where = P.around(args.spec_dir, None)
    path = P.spec_named(args.spec, where)
    if path is None:
        raise VerifyError(f"no spec `{args.spec}`")
    shown = P.display(path, where.root if where else None)
    dirs = P.fragment_dirs(where, [path])
    checked = check_text(path.read_bytes(), shown, dirs)
    gen_cls = load_spec(path, dirs)
    declared = implementations(gen_cls)
    if args.impl == "all":
        impls = declared
    else:
        impls = comma_list(args.impl)
        unknown = [i for i in impls if i not in IMPLS]
        if unknown:
            raise VerifyError(
                f"--impl: no implementation `{unknown[0]}` ({', '.join(IMPLS)})"
            )
        absent = [i for i in impls if i not in declared]
        if absent:
            raise VerifyError(
                f"{gen_cls.__name__} has no {absent[0]} path (it declares "
                f"{', '.join(declared)})"
            )
    if args.dtype:
        dtypes = comma_list(args.dtype)
        unknown = [d for d in dtypes if d not in TOLERANCES]
        if unknown:
            raise VerifyError(
                f"--dtype: `{unknown[0]}` is not one of {', '.join(TOLERANCES)}"
            )
    else:
        dtypes = ["float64", "float32"]
        if not refuses_complex(checked.spec):
            dtypes.append("complex128")
    if args.steps < 1:
        raise VerifyError("--steps must be at least 1")
    progress = Progress(1, progress_wanted(args))
    report = verify(
        checked,
        gen_cls,
        ref,
        impls=impls,
        dtypes=dtypes,
        steps=args.steps,
        seed=args.seed,
        configs=configs,
        use_grid=args.grid,
        rtol=args.rtol,
        atol=args.atol,
        progress=progress,
    )
    progress.clear()
    against = f"vs {ref.name}" if ref else "its implementations against each other"
    print(
        f"{gen_cls.__name__} ({shown}) {against}: {', '.join(impls)}; "
        f"{', '.join(dtypes)}; {args.steps} steps (more where a condition needs them)"
    )
    differ = {
        k: v
        for k, v in _shared_defaults(gen_cls, ref).items()
        if v[1] is not inspect.Parameter.empty and not same(*v) and comparable(*v)
    }
    if report.required:
        print(
            "arguments without a default, given to both: "
            + ", ".join(f"{k}={v!r}" for k, v in report.required.items())
        )
    if differ:
        print(
            "defaults that differ, the spec's given to both: "
            + ", ".join(f"{k}={o!r} (reference {t!r})" for k, (o, t) in differ.items())
        )
    print(table(report.rows, impls))
    counts = {
        s: sum(r.status == s for r in report.rows)
        for s in ("pass", "FAIL", "refused", "skipped")
    }
    print(
        f"{counts['pass']} passed, {counts['FAIL']} failed, {counts['refused']} refused as "
        f"the spec says, {counts['skipped']} skipped"
    )
    print(coverage_text(checked, report))
    return 1 if report.failed else 0


def table(rows: list[Row], impls: list[str]) -> str:
    """One line per configuration and dtype, a column per implementation: its result and its
    largest deviation (from the reference, or from the for-loop without one)."""
    groups: dict[tuple, list[Row]] = {}
    for r in rows:
        groups.setdefault((r.config.label, r.config.steps, r.dtype), []).append(r)
    headers = ["configuration", "steps", "dtype", *impls, "first difference / why"]
    body = []
    for (label, steps, dtype), group in groups.items():
        cells, whys = {}, []
        for r in group:
            devs = [d for d in (r.vs_reference, r.vs_loop) if d is not None]
            cell = r.status + (
                f" {max(devs):.0e}" if devs and r.status == "pass" else ""
            )
            for impl in impls if r.impl == "all" else [r.impl]:
                cells[impl] = cell
            if r.why:
                prefix = "" if r.impl == "all" or len(group) == 1 else f"{r.impl}: "
                whys.append(prefix + _short(r.why))
        whys += [note for r in group if r.note for note in r.note.split("; ")]
        line = [label, str(steps), dtype, *(cells.get(i, "-") for i in impls)]
        body.append(line + ["; ".join(dict.fromkeys(whys))])
    return text_table(headers, body)


def _short(text: str, limit: int = 160) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
