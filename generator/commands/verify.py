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
"""

from __future__ import annotations

import ast
import importlib
import inspect
import itertools
import math
import sys
import traceback
from dataclasses import dataclass, field, replace
from typing import Any

from generator.language import syntax as S
from generator.commands.progress import Progress, add_progress_arguments
from generator import project as P
from generator.api import check_text, load_spec
from generator.check.checker import refuses_complex
from generator.driver import render_coverage

# two groups: the first two tensors, then the rest; shapes of ranks 1-3, sizes below and above
# small thresholds a spec may test (`size(param, 0) > 2`, `numel(param) > 4`)
SHAPES = ((5, 4), (4,), (3, 3, 2), (2,), (2, 6), (7,))
# (differentiable: the for-loop with differentiable=True, torch's other form of each in-place
# update, out of place where autograd would need the old value)
IMPLS = ("for-loop", "foreach", "fused", "differentiable")
IMPLEMENTATION_FLAGS = {"foreach", "fused", "differentiable", "capturable"}
TOLERANCES = {  # (rtol, atol)
    "float64": (1e-10, 1e-14),
    "float32": (1e-5, 1e-7),
    "bfloat16": (2e-2, 1e-3),
    "complex128": (1e-10, 1e-14),
}
DEFAULT_STEPS = 20
MAX_STEPS = 1000  # the most steps the grid gives a configuration for a literal period
MAX_COMBINATIONS = 48  # tried per branch that no configuration reached


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
    out: dict[str, Any] = {}
    for item in _split_top_level(text):
        name, eq, value = item.partition("=")
        name = name.strip()
        if not eq or not name.isidentifier():
            raise VerifyError(f"--config {text!r}: `{item.strip()}` is not NAME=VALUE")
        try:
            out[name] = ast.literal_eval(value.strip())
        except (ValueError, SyntaxError):
            raise VerifyError(
                f"--config {text!r}: the value of `{name}` is not a Python literal "
                "(numbers, True/False/None, quoted strings, tuples)"
            ) from None
    return out


def _split_top_level(text: str) -> list[str]:
    parts, depth, cur = [], 0, ""
    for ch in text:
        depth += ch in "([{"
        depth -= ch in ")]}"
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    return [p for p in parts + [cur] if p.strip()]


# ---- the reference ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Reference:
    name: str
    make: Any  # (params, **kwargs) -> torch.optim.Optimizer
    takes: frozenset[str] | None  # keyword arguments it accepts; None: any

    def accepts(self, name: str) -> bool:
        return self.takes is None or name in self.takes


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
    return Reference(spec, target, _keywords(target))


def _keywords(fn) -> frozenset[str] | None:
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return None
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return None
    return frozenset(n for n in params if n not in ("self", "params"))


# ---- the configurations -------------------------------------------------------------------------


@dataclass(frozen=True)
class Config:
    kwargs: tuple[tuple[str, Any], ...]
    steps: int
    origin: str  # why the grid has it

    @property
    def label(self) -> str:
        return ", ".join(f"{k}={v!r}" for k, v in self.kwargs) or "defaults"

    def as_dict(self) -> dict[str, Any]:
        return dict(self.kwargs)


def _changed(default):
    if isinstance(default, bool):
        return not default
    if isinstance(default, int):
        return default + 1
    if isinstance(default, float):
        if math.isinf(default) or math.isnan(default):
            return None
        return 0.01 if default == 0 else default * 0.5
    if isinstance(default, tuple) and default and isinstance(default[0], float):
        first = _changed(default[0])
        return None if first is None else (first,) + default[1:]
    return None


@dataclass
class _Symbol:
    """A spec symbol that is a constructor argument (or one entry of a tuple argument)."""

    arg: str
    index: int | None  # the entry of a tuple argument (betas → beta1 is 0)
    integer: bool


class SpecConditions:
    """What the spec's conditions name: values of inputs that decide a branch, counter periods
    and thresholds, and each branch's enclosing conditions (for combinations)."""

    def __init__(self, checked, defaults: dict[str, Any]):
        self.checked = checked
        self.symbols: dict[str, _Symbol] = {}
        for sym, info in checked.inputs.items():
            decl = info.decl
            names = [n.id for n in decl.names]
            index = names.index(sym) if len(names) > 1 else None
            integer = info.kind == "int"
            self.symbols[sym] = _Symbol(decl.arg_name, index, integer)
        self.defaults = defaults
        self.values: dict[str, list[Any]] = {}  # symbol → values its conditions name
        self.steps_needed: dict[str, int] = {}  # symbol or "" (a literal) → steps
        self.branch_inputs: dict[str, set[str]] = {}  # probe label → symbols above it
        self.locals = {
            n: s.decl.value
            for n, s in checked.locals.items()
            if isinstance(getattr(s, "decl", None), S.Assign)
        }
        for block in checked.blocks:
            self._walk(block.body, frozenset())
            for stmt in _statements(block.body):
                for e in _expressions(stmt):
                    self._offsets(e)
        for st in checked.states.values():
            if st.condition is not None:
                self._condition(st.condition)
        # the boundaries the spec's own checks allow (`requires lr >= 0`: lr = 0, where a
        # weight of lr^p is 0 and a branch on it is taken)
        for v in checked.spec.validations:
            for node in _nodes(v.expr):
                if isinstance(node, S.Compare) and any(
                    o in (">=", "<=") for o in node.ops
                ):
                    for a, b in zip(node.operands, node.operands[1:]):
                        for x, y in ((a, b), (b, a)):
                            if (
                                isinstance(x, S.Name)
                                and x.id in self.symbols
                                and isinstance(y, S.Number)
                            ):
                                self._add(
                                    x.id,
                                    (
                                        float(y.value)
                                        if not self.symbols[x.id].integer
                                        else int(y.value)
                                    ),
                                )

    # -- walking the update --------------------------------------------------------------------
    def _walk(self, stmts, above: frozenset) -> None:
        for s in stmts:
            if isinstance(s, S.If):
                chain = above
                for cond, body in s.branches:
                    self._condition(cond)
                    chain = chain | self._inputs(cond)
                    self._branch(cond, "then", chain)
                    self._walk(body, chain)
                cond = s.branches[-1][0]
                self._branch(cond, "else", chain)
                self._walk(s.orelse, chain)
            elif isinstance(s, (S.Repeat, S.ForEachParameter)):
                self._walk(s.body, above)
            for e in _expressions(s):
                self._choices(e, above)

    def _choices(self, e, above: frozenset) -> None:
        """``a if c else b`` anywhere in an expression: a branch too."""
        if isinstance(e, S.Conditional):
            self._condition(e.cond)
            chain = above | self._inputs(e.cond)
            self._branch(e.cond, "then", chain)
            self._branch(e.cond, "else", chain)
        for c in S.children(e):
            self._choices(c, above)

    def _branch(self, cond, way: str, chain: frozenset) -> None:
        span = cond.span
        self.branch_inputs[f"{span.path}:{span.line}:{span.column} {way}"] = set(chain)

    def _inputs(self, e, depth: int = 0) -> frozenset:
        found: set[str] = set()
        for n in _names(e):
            if n in self.symbols:
                found.add(n)
            elif n in self.locals and depth < 4:
                found |= self._inputs(self.locals[n], depth + 1)
        return frozenset(found)

    def _counterish(self, e, depth: int = 0) -> bool:
        for n in _names(e):
            st = self.checked.states.get(n)
            if st is not None and st.kind == "count":
                return True
            if (
                n in self.locals
                and depth < 4
                and self._counterish(self.locals[n], depth + 1)
            ):
                return True
        return False

    # -- the values a condition names ------------------------------------------------------------
    def _condition(self, cond) -> None:
        for node in _nodes(cond):
            if isinstance(node, S.Name) and node.id in self.symbols:
                if self.checked.inputs[node.id].kind == "bool":  # `if amsgrad:`
                    self._add(node.id, True)
                    self._add(node.id, False)
            if isinstance(node, S.Binary) and node.op == "%":
                if self._counterish(node.left):
                    self._period(node.right)
            if isinstance(node, S.Compare):
                pairs = zip(node.operands, node.operands[1:])
                for a, b in pairs:
                    self._compare(a, b)
                    self._compare(b, a)

    def _offsets(self, e) -> None:
        """``step - t0`` in the update (ASGD's averaging start): a small offset is crossed."""
        for node in _nodes(e):
            if isinstance(node, S.Binary) and node.op == "-":
                for x, y in ((node.left, node.right), (node.right, node.left)):
                    if (
                        isinstance(y, S.Name)
                        and y.id in self.symbols
                        and self._counterish(x)
                    ):
                        self._add(y.id, 2 if self.symbols[y.id].integer else 2.0)
                        self.steps_needed[y.id] = max(self.steps_needed.get(y.id, 0), 6)

    def _period(self, e) -> None:
        if isinstance(e, S.Name) and e.id in self.symbols:
            for v in (2, 3):
                self._add(e.id, v)
                self.steps_needed[e.id] = max(self.steps_needed.get(e.id, 0), 3 * 3 + 1)
        elif isinstance(e, S.Number):
            period = int(e.value) if e.value == int(e.value) else 0
            if period > 0:
                self.steps_needed[""] = max(self.steps_needed.get("", 0), period + 1)

    def _compare(self, a, b) -> None:
        if isinstance(a, S.Name) and a.id in self.symbols:
            sym = self.symbols[a.id]
            if self._counterish(b):  # `warmup > t`: a threshold the run crosses
                self._add(a.id, 4)
                return
            if isinstance(b, S.Number):
                c = b.value
                if sym.integer and c == int(c):
                    for v in (int(c), int(c) + 1, int(c) - 1):
                        self._add(a.id, v)
                else:
                    d = max(abs(c) * 0.5, 0.01)
                    for v in (float(c), float(c) + d, float(c) - d):
                        self._add(a.id, v)
            elif isinstance(b, S.String):
                self._add(a.id, b.value)
            elif isinstance(b, S.Bool):
                self._add(a.id, b.value)
            elif isinstance(b, S.NoneLit):  # `eps1 != none`: none, and a number
                self._add(a.id, None)
                self._add(a.id, 1 if sym.integer else 1e-3)
        elif self._counterish(a) and isinstance(b, S.Number) and b.value > 0:
            self.steps_needed[""] = max(self.steps_needed.get("", 0), int(b.value) + 2)

    def _add(self, sym: str, value) -> None:
        values = self.values.setdefault(sym, [])
        if value not in values:
            values.append(value)

    # -- as constructor arguments -------------------------------------------------------------------
    def assign(self, kwargs: dict[str, Any], sym: str, value) -> dict[str, Any] | None:
        """``kwargs`` with the spec symbol ``sym`` set to ``value`` (inside its tuple argument)."""
        s = self.symbols[sym]
        out = dict(kwargs)
        if s.index is None:
            out[s.arg] = value
            return out
        current = out.get(s.arg, self.defaults.get(s.arg))
        if not isinstance(current, tuple) or s.index >= len(current):
            return None
        out[s.arg] = current[: s.index] + (value,) + current[s.index + 1 :]
        return out

    def steps_for(self, syms) -> int:
        needed = [self.steps_needed.get(s, 0) for s in syms] + [
            self.steps_needed.get("", 0)
        ]
        return min(max(needed), MAX_STEPS)


def _expressions(s) -> list:
    if isinstance(s, S.Assign):
        return [s.value] + ([s.initially] if s.initially is not None else [])
    if isinstance(s, S.Check):
        return [s.expr]
    if isinstance(s, S.Repeat):
        return [s.count]
    return []


def _nodes(e) -> list:
    out = [e]
    for c in S.children(e):
        out += _nodes(c)
    return out


def _names(e) -> set[str]:
    return {n.id for n in _nodes(e) if isinstance(n, S.Name)}


def constructor_defaults(cls) -> dict[str, Any]:
    return {
        name: p.default
        for name, p in inspect.signature(cls.__init__).parameters.items()
        if name not in ("self", "params") and p.default is not inspect.Parameter.empty
    }


def grid(
    checked, gen_cls, ref: Reference | None, steps: int, accepted
) -> tuple[list[Config], SpecConditions]:
    """The configurations the spec calls for (see the module's docstring). ``accepted(kwargs)``
    tells whether the generated class takes a configuration (the grid leaves out its own
    guesses that the spec refuses)."""
    defaults = constructor_defaults(gen_cls)
    conditions = SpecConditions(checked, defaults)
    configs: list[Config] = []
    seen: set = set()

    def add(kwargs: dict[str, Any] | None, origin: str, syms=()) -> None:
        if kwargs is None:
            return
        kwargs = {
            k: v for k, v in kwargs.items() if not _same(defaults.get(k, kwargs), v)
        }
        key = repr(sorted(kwargs.items()))
        n = max(steps, conditions.steps_for(syms))
        if key in seen or (kwargs and not accepted(kwargs)):
            return
        seen.add(key)
        configs.append(Config(tuple(sorted(kwargs.items())), n, origin))

    add({}, "defaults")
    annotations = {
        n: str(p.annotation)
        for n, p in inspect.signature(gen_cls.__init__).parameters.items()
    }
    for name, default in defaults.items():
        if name in IMPLEMENTATION_FLAGS:
            continue
        if type(default) is int and "float" in annotations.get(name, ""):
            default = float(default)  # `weight_decay: float = 0`
        value = _changed(default)
        if value is not None and (
            ref is None or ref.accepts(name) or isinstance(default, bool)
        ):
            add({name: value}, "changed")
    for sym, values in conditions.values.items():
        for value in values:
            add(conditions.assign({}, sym, value), "named by a condition", (sym,))
    if conditions.steps_needed.get(""):
        configs[0] = Config(configs[0].kwargs, conditions.steps_for(()), "defaults")
    return configs, conditions


def combinations(conditions: SpecConditions, label: str) -> list[tuple[dict, tuple]]:
    """Configurations that set every input above a branch to the values conditions name."""
    syms = sorted(
        s for s in conditions.branch_inputs.get(label, ()) if s in conditions.values
    )
    if len(syms) < 2:
        return []
    options = [[None] + conditions.values[s] for s in syms]  # None: left at its default
    out = []
    for values in itertools.product(*options):
        kwargs: dict | None = {}
        for sym, value in zip(syms, values):
            if value is not None and kwargs is not None:
                kwargs = conditions.assign(kwargs, sym, value)
        if kwargs:
            out.append((kwargs, tuple(syms)))
        if len(out) >= MAX_COMBINATIONS:
            break
    return out


def _comparable(ours, theirs) -> bool:
    """Whether the spec's default may stand for the reference's: values of one kind (ADOPT's
    reference takes a function where the spec names it with a string: it keeps its own).
    """
    if theirs is inspect.Parameter.empty or ours is None or theirs is None:
        return True
    if callable(theirs) and not callable(ours):
        return False
    numbers = (int, float)
    if isinstance(ours, numbers) and isinstance(theirs, numbers):
        return True
    return isinstance(ours, type(theirs)) or isinstance(theirs, type(ours))


def _same(a, b) -> bool:
    """Equal values of one kind (0 and 0.0 are the same number; False is not 0)."""
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b or (a != a and b != b)
    try:
        return type(a) is type(b) and bool(a == b)
    except Exception:  # a tensor default
        return a is b


# ---- running ------------------------------------------------------------------------------------


@dataclass
class Trajectory:
    """Parameters after each step, or where it stopped."""

    params: list = field(default_factory=list)  # per step: a list of tensors
    # after the last step, per parameter (by its index) its state: {key: tensor or number}
    states: dict = field(default_factory=dict)
    refused: str | None = None  # a refusal the spec documents, at construction
    error: str | None = None  # anything else that went wrong, with its step


@dataclass(frozen=True)
class Layout:
    """The parameters of a run: their shapes, and whether they form two param groups."""

    shapes: tuple = SHAPES
    grouped: bool = True
    note: str = ""  # why it is not the whole problem

    def groups(self, params) -> list[dict]:
        if not self.grouped or len(params) < 3:
            return [{"params": params}]
        return [{"params": params[:2]}, {"params": params[2:]}]


FULL = Layout()


def problem(torch, dtype, seed: int, steps: int, shapes=SHAPES, grouped: bool = False):
    gen = torch.Generator().manual_seed(seed)
    start = [torch.randn(s, generator=gen, dtype=dtype) for s in shapes]
    if len(start) > 3:
        start[3].zero_()  # a bias starting at zero: norms and ratios of a zero tensor
    grads = []
    for step in range(steps):
        row = []
        for i, s in enumerate(shapes):
            if i == 1 and step % 4 == 0:
                # a parameter without a gradient on some steps, the first among them (its
                # states are made a step after the others')
                row.append(None)
                continue
            if grouped and i >= 2 and step % 5 == 3:
                row.append(None)  # and a whole param group without one (a frozen layer)
                continue
            scale = 10 ** (torch.rand(s, generator=gen, dtype=torch.float64) * 5 - 4)
            g = torch.randn(s, generator=gen, dtype=dtype) * scale.to(dtype)
            if i == 0 and step % 3 == 1:
                g[0] = (
                    0  # a row without gradient on some steps (an embedding row not looked up)
                )
            if i == 4:
                g[0] = (
                    0  # and one that never gets any (a dead unit): its states stay zero
                )
            row.append(g)
        grads.append(row)
    return start, grads


def _needs_closure(opt) -> bool:
    """A step that must be given a closure (LBFGS): one without a default."""
    try:
        params = inspect.signature(opt.step).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(
        p.default is inspect.Parameter.empty
        and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
        for p in params
    )


def documented_refusal(exc: BaseException, module_file: str | None) -> bool:
    """Raised on purpose by the generated module's own checks (its requires and checks) or by
    a check of torch's it calls (torch's fused kernels take floating-point tensors only): the
    last frame is a `raise` statement, and the module is on the way to it. A failure inside
    an operation, or a Python error such as NameError, is no refusal."""
    frames = traceback.extract_tb(exc.__traceback__)
    if not frames or module_file is None:
        return False
    if not any(f.filename == module_file for f in frames):
        return False
    return (frames[-1].line or "").lstrip().startswith("raise ")


def trajectory(
    torch, make, kwargs, dtype, seed, steps, module_file=None, layout: Layout = FULL
) -> Trajectory:
    start, grads = problem(
        torch,
        dtype,
        seed,
        steps,
        layout.shapes,
        layout.grouped and len(layout.shapes) > 2,
    )
    # a differentiable step updates its parameters in place with autograd on: parameters that
    # do not require gradients (their .grad is set by hand here) keep that legal
    params = [
        t.clone().requires_grad_(not kwargs.get("differentiable", False)) for t in start
    ]
    torch.manual_seed(
        seed
    )  # an optimizer that draws (WeirdDescent) draws alike on each side
    out = Trajectory()
    try:
        opt = make(layout.groups(params), **kwargs)
    except Exception as e:  # the finding is the refusal itself
        what = f"at construction: {type(e).__name__}: {e}"
        if documented_refusal(e, module_file):
            out.refused = what
        else:
            out.error = what
        return out
    needs_closure = _needs_closure(opt)
    for step in range(steps):
        for p, g in zip(params, grads[step]):
            p.grad = None if g is None else g.clone()

        def closure(row=grads[step]):
            # a loss whose gradient is this step's gradient (LBFGS evaluates it again)
            with torch.enable_grad():
                for p in params:
                    p.grad = None
                terms = [
                    (p * g.conj()).real.sum() if p.is_complex() else (p * g).sum()
                    for p, g in zip(params, row)
                    if g is not None
                ]
                loss = torch.stack(terms).sum()
                loss.backward()
            return loss

        try:
            opt.step(closure) if needs_closure else opt.step()
        except Exception as e:
            where = f"at step {step + 1}"
            if documented_refusal(e, module_file):
                out.refused = f"{where}: {type(e).__name__}: {e}"
            else:
                out.error = f"{where}: {type(e).__name__}: {e}"
            return out
        out.params.append([p.detach().clone() for p in params])
    for i, p in enumerate(params):
        out.states[i] = {
            k: v.detach().clone() if torch.is_tensor(v) else v
            for k, v in opt.state.get(p, {}).items()
        }
    return out


def state_difference(
    torch, got: Trajectory, want: Trajectory, rtol, atol
) -> str | None:
    """The first state both sides keep under one key that differs after the last step (for
    a reference whose state layout the class promises to keep: torch's)."""
    for i, theirs in want.states.items():
        ours = got.states.get(i, {})
        for key in sorted(theirs.keys() & ours.keys()):
            diff = _value_difference(torch, ours[key], theirs[key], rtol, atol)
            if diff:
                return f"param #{i} state {key!r}{diff}"
    return None


def _value_difference(torch, a, e, rtol, atol) -> str | None:
    if isinstance(e, (list, tuple)):
        if not isinstance(a, (list, tuple)) or len(a) != len(e):
            return f": {_kind(a)} vs {_kind(e)}"
        for k, (x, y) in enumerate(zip(a, e)):
            diff = _value_difference(torch, x, y, rtol, atol)
            if diff:
                return f"[{k}]{diff}"
        return None
    if torch.is_tensor(a) != torch.is_tensor(e):
        return f": {_kind(a)} vs {_kind(e)}"
    if not torch.is_tensor(a):
        return None if a == e else f": {a!r} vs {e!r}"
    if a.shape != e.shape or a.is_complex() != e.is_complex():
        return f": {_kind(a)} vs {_kind(e)}"
    if a.is_complex():
        a, e = torch.view_as_real(a), torch.view_as_real(e)
    a, e = a.detach().double(), e.detach().double()
    bad = ~((a - e).abs() <= atol + rtol * e.abs())
    bad &= ~(torch.isnan(a) & torch.isnan(e))
    bad &= ~((a == e) & torch.isinf(a))
    if not bool(bad.any()):
        return None
    k = int(bad.flatten().nonzero()[0])
    return f", element {k}: {a.flatten()[k].item()!r} vs {e.flatten()[k].item()!r}"


def _kind(v) -> str:
    if hasattr(v, "shape") and hasattr(v, "dtype"):
        return f"{v.dtype} {tuple(v.shape)}"
    if isinstance(v, (list, tuple)):
        return f"{type(v).__name__} of {len(v)}"
    return type(v).__name__


def first_difference(torch, got: Trajectory, want: Trajectory, rtol, atol):
    """(max abs deviation, first difference beyond the tolerance or None)."""
    worst, first = 0.0, None
    for step, (a_params, e_params) in enumerate(zip(got.params, want.params)):
        for i, (a, e) in enumerate(zip(a_params, e_params)):
            a, e = a.detach(), e.detach()
            if a.is_complex():
                a, e = torch.view_as_real(a), torch.view_as_real(e)
            a, e = a.double(), e.double()
            diff = (a - e).abs()
            finite = torch.isfinite(diff)
            if finite.any():
                worst = max(worst, diff[finite].max().item())
            bad = ~(diff <= atol + rtol * e.abs())
            # two equal infinities agree, and so do two NaNs (both sides diverged alike)
            bad &= ~((a == e) & torch.isinf(a))
            bad &= ~(torch.isnan(a) & torch.isnan(e))
            if first is None and bool(bad.any()):
                k = int(bad.flatten().nonzero()[0])
                first = (
                    f"step {step + 1}, param #{i} {tuple(a.shape)}, element {k}: "
                    f"{a.flatten()[k].item()!r} vs {e.flatten()[k].item()!r}"
                )
    return worst, first


def non_finite(torch, traj: Trajectory) -> str | None:
    for step, params in enumerate(traj.params):
        for i, p in enumerate(params):
            if not bool(torch.isfinite(p).all()):
                return f"step {step + 1}, param #{i} {tuple(p.shape)}: NaN or inf"
    return None


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


def implementations(cls) -> list[str]:
    takes = inspect.signature(cls.__init__).parameters
    return ["for-loop"] + [i for i in IMPLS[1:] if i in takes]


def impl_kwargs(cls, impl: str) -> dict[str, Any]:
    takes = inspect.signature(cls.__init__).parameters
    if impl == "fused":
        return {"fused": True}
    if impl == "differentiable":
        return {
            "differentiable": True,
            **({"foreach": False} if "foreach" in takes else {}),
        }
    if "foreach" in takes:
        return {"foreach": impl == "foreach"}
    return {}


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


CASTS = {"bfloat16": "bfloat16"}  # a builtin that casts → its dtype in TOLERANCES


def narrowest_cast(checked) -> str | None:
    """The narrowest dtype the update computes in, if narrower than the parameters': a cast
    the spec writes (``bfloat16(x)``), or float32 where it sums totals (Prodigy's numerator and
    denominator are one-element tensors of the default dtype, as the reference keeps them: a
    float64 run's sums are rounded to float32, and the fused kernel, whose numbers are 0-d
    tensors, rounds its products before the sum rather than after)."""
    for block in checked.blocks:
        for s in _statements(block.body):
            for e in _expressions(s):
                for node in _nodes(e):
                    if isinstance(node, S.Call) and node.func in CASTS:
                        return CASTS[node.func]
    if any(st.kind == "total" for st in checked.states.values()):
        return "float32"
    return None


def _statements(stmts):
    for s in stmts:
        yield s
        if isinstance(s, S.If):
            for _, body in s.branches:
                yield from _statements(body)
            yield from _statements(s.orelse)
        elif isinstance(s, (S.Repeat, S.ForEachParameter)):
            yield from _statements(s.body)


def required_arguments(cls) -> dict[str, Any]:
    """A value for each argument without a default (WeirdDescent's lr): the same to both."""
    out = {}
    for name, p in inspect.signature(cls.__init__).parameters.items():
        if name in ("self", "params") or p.default is not inspect.Parameter.empty:
            continue
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        kind = str(p.annotation)
        out[name] = False if "bool" in kind else 1 if kind == "int" else 1e-3
    return out


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
    import warnings

    import torch

    module_file = getattr(sys.modules.get(gen_cls.__module__), "__file__", None)
    ref_defaults = {
        k: ours
        for k, (ours, theirs) in _shared_defaults(gen_cls, ref).items()
        if _comparable(ours, theirs)
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

    def layout(config: Config) -> Layout:
        if config not in layouts:
            kwargs = {**required, **config.as_dict()}
            loop = impl_kwargs(gen_cls, "for-loop")
            sides = [(gen_cls, {**kwargs, **loop}, module_file)]
            if ref is not None and all(ref.accepts(k) for k in kwargs):
                sides.append((ref.make, {**ref_defaults, **kwargs}, None))
            layouts[config] = fitting_layout(torch, sides, seed)
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


def fitting_layout(torch, sides, seed) -> Layout:
    """The whole problem, or, where a side refuses some parameters (Muon takes matrices only,
    MARS's shampoo mode tensors of at most two dimensions), the shapes both sides take, so
    that the rest still runs. ``sides``: (make, kwargs, module_file) of the generated class
    and of the reference; the generated class's refusals count when the spec documents
    them (a crash is left to be reported), the reference's whatever they are."""

    def takes(make, kwargs, module_file, layout) -> bool:
        t = trajectory(torch, make, kwargs, torch.float64, seed, 1, module_file, layout)
        if module_file is None:
            return bool(t.params)
        return t.refused is None

    if all(takes(*side, FULL) for side in sides):
        return FULL
    kept = [
        shape
        for shape in SHAPES
        if all(takes(*side, Layout((shape,))) for side in sides)
    ]
    if not kept or len(kept) == len(SHAPES):
        return FULL
    left = ", ".join(str(shape) for shape in SHAPES if shape not in kept)
    return Layout(tuple(kept), True, f"parameters {left} left out: refused")


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


# ---- coverage -------------------------------------------------------------------------------------


class Coverage:
    """The spec's coverage build (generator.driver.render_coverage) run on the for-loop path."""

    def __init__(self, checked):
        import types

        source, self.probes = render_coverage(checked)
        self.hits: set[str] = set()
        self._current: set[str] = set()
        module = types.ModuleType(f"optimgen_coverage_{checked.name}")
        module.__dict__["_cover"] = self._record
        exec(
            compile(source, f"<optimgen coverage {checked.name}>", "exec"),
            module.__dict__,
        )
        self.cls = module.__dict__[checked.name]
        self.by_label = {p.label: p for p in self.probes}

    def _record(self, label: str) -> None:
        self._current.add(label)

    def run(self, torch, config: Config, seed: int, required, layout) -> set[str]:
        self._current = set()
        kwargs = {**required, **config.as_dict(), **impl_kwargs(self.cls, "for-loop")}
        trajectory(
            torch, self.cls, kwargs, torch.float64, seed, config.steps, None, layout
        )
        self.hits |= self._current
        return self._current

    def missed(self) -> list:
        return [p for p in self.probes if p.label not in self.hits]

    def missed_frontier(self) -> list[str]:
        """Labels of branches never taken whose enclosing branch was taken (or that no
        branch encloses): the ones a new configuration can reach."""
        missed = {p.label for p in self.missed()}
        return [
            p.label
            for p in self.probes
            if p.label in missed
            and not any(q.label in missed for q in self.probes if _encloses(q, p))
        ]


def _position(probe) -> str:
    return probe.label.rsplit(" ", 1)[0]


def _encloses(outer, inner) -> bool:
    """Whether ``inner``'s condition stands in ``outer``'s branch."""
    if _position(outer) == _position(inner):
        return False
    path, line, _ = _position(inner).rsplit(":", 2)
    return f"{path}:{line}" in outer.lines


def line_coverage(checked, probes, hits) -> tuple[int, int, list[str]]:
    """(lines that ran, update lines, lines never run) over the spec's update blocks."""
    every: dict[str, None] = {}

    def visit(stmts):
        for s in stmts:
            every[f"{s.span.path}:{s.span.line}"] = None
            if isinstance(s, S.If):
                for _, body in s.branches:
                    visit(body)
                visit(s.orelse)
            elif isinstance(s, (S.Repeat, S.ForEachParameter)):
                visit(s.body)

    for block in checked.blocks:
        visit(block.body)
    ran = {line for p in probes if p.label in hits for line in p.lines}
    never = [
        line
        for line in every
        if line not in ran
        and any(line in p.lines for p in probes if p.label not in hits)
    ]
    return len(every) - len(never), len(every), never


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
        impls = [i.strip() for i in args.impl.split(",") if i.strip()]
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
        dtypes = [d.strip() for d in args.dtype.split(",") if d.strip()]
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
    show = args.progress if args.progress is not None else sys.stderr.isatty()
    progress = Progress(1, show)
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
        if v[1] is not inspect.Parameter.empty and not _same(*v) and _comparable(*v)
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
    widths = [max(len(str(x)) for x in col) for col in zip(headers, *body)]
    fmt = lambda row: " | ".join(
        str(x).ljust(w) for x, w in zip(row, widths)
    )  # noqa: E731
    return "\n".join(
        [fmt(headers), "-+-".join("-" * w for w in widths)]
        + [fmt(r).rstrip() for r in body]
    )


def _short(text: str, limit: int = 160) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def coverage_text(checked, report: Report) -> str:
    ran, total, never = line_coverage(checked, report.probes, report.hits)
    taken = sum(p.label in report.hits for p in report.probes)
    out = [
        f"coverage of the update: {ran} of {total} lines ran; {taken} of "
        f"{len(report.probes)} branches taken"
    ]
    for config in report.combinations:
        out.append(f"  (the grid added {config.label}: {config.origin})")
    missed = {p.label: p for p in report.probes if p.label not in report.hits}
    for p in report.probes:
        if p.label not in missed:
            continue
        where, way = p.label.rsplit(" ", 1)
        needs = f"`{p.condition}` to be {'true' if way == 'then' else 'false'}"
        lines = [line.rsplit(":", 1)[1] for line in p.lines if line in never]
        what = (
            f"line{'s' if len(lines) > 1 else ''} {', '.join(lines)} never ran"
            if lines
            else f"the {way} branch never ran"
        )
        out.append(
            f"  {where.rsplit(':', 1)[0]}: {what}: it needs {needs}; {_hint(p, report)}"
        )
    return "\n".join(out)


SHAPE_CALLS = ("dim", "size", "numel")


def _hint(probe, report: Report) -> str:
    """What would reach a branch, from what its conditions read."""
    conditions = report.conditions
    syms = sorted(conditions.branch_inputs.get(probe.label, ()))
    args = sorted({conditions.symbols[s].arg for s in syms if s in conditions.symbols})
    hints = []
    if args:
        hints.append(f"add --config with other values of {', '.join(args)}")
    refused = report.refused.get(probe.label)
    if refused:
        hints.append(
            f"the spec refuses {refused[0]}" + (" and more" if len(refused) > 1 else "")
        )
    if any(f"{c}(" in probe.condition for c in SHAPE_CALLS):
        shapes = ", ".join(str(s) for s in SHAPES)
        hints.append(f"parameter shapes decide it (verify's are {shapes})")
    if any(
        st.kind == "count" and st.name.id in _words(probe.condition)
        for st in conditions.checked.states.values()
    ):
        hints.append("more --steps")
    return "; ".join(hints) or "the values in the tensors decide it"


def _words(text: str) -> set[str]:
    import re

    return set(re.findall(r"[A-Za-z_]\w*", text))
