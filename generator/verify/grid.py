"""The configurations `optimgen verify` runs a spec's class under, chosen from the spec itself.

The grid: the spec's defaults (given to both sides, so that the algorithms are compared, not
the defaults), each flag both ways, each hyperparameter changed once, and the values the spec's
own conditions name (``if weight_decay != 0``, ``mars_type == "shampoo"``, a counter's
``t % k == 0`` or ``t < warmup`` with a small ``k``, ``warmup``, and enough steps for a literal
period, the boundaries its ``requires`` allow). :class:`SpecConditions` reads those values, the
counter periods and thresholds, and the inputs above each branch of the update from the checked
spec; :func:`combinations` sets every input above a branch that no configuration reached to the
values its conditions name. The constructor's arguments (their defaults, a value for each one
without, whether two defaults are the same value) are read here too. Nothing here runs an
optimizer; generator.verify.coverage measures which branches a configuration takes.
"""

from __future__ import annotations

import inspect
import itertools
import math
from dataclasses import dataclass
from typing import Any

from generator.language import syntax as S
from generator.language.names import IMPLEMENTATION_FLAGS
from generator.verify.harness import Reference

MAX_STEPS = 1000  # the most steps the grid gives a configuration for a literal period
MAX_COMBINATIONS = 48  # tried per branch that no configuration reached


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
        # each local's values, and the conditions each is assigned under (`side <- 2` under
        # `if projection_type == "full":` reads projection_type as much as its value does)
        self.locals: dict[str, list] = {}
        for block in checked.blocks:
            self._assignments(block.body, ())
        for block in checked.blocks:
            self._walk(block.body, frozenset())
            for stmt in statements(block.body):
                for e in _expressions(stmt):
                    self._offsets(e)
        for st in checked.states.values():
            if st.condition is not None:
                self._condition(st.condition)
        # the boundaries the spec's own checks allow (`requires lr >= 0`: lr = 0, where a
        # weight of lr^p is 0 and a branch on it is taken)
        for v in checked.spec.validations:
            for node in subexpressions(v.expr):
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
            elif isinstance(s, (S.Repeat, S.ForEachParameter, S.For, S.While)):
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

    def _assignments(self, stmts, above: tuple) -> None:
        for s in stmts:
            if isinstance(s, S.Assign) and isinstance(s.target, S.Name):
                if s.target.id in self.checked.locals:
                    self.locals.setdefault(s.target.id, []).extend((s.value, *above))
            elif isinstance(s, S.If):
                conds = above
                for cond, body in s.branches:
                    conds = conds + (cond,)
                    self._assignments(body, conds)
                self._assignments(s.orelse, conds)
            elif isinstance(s, (S.Repeat, S.ForEachParameter, S.For, S.While)):
                self._assignments(s.body, above)

    def _inputs(self, e, depth: int = 0) -> frozenset:
        found: set[str] = set()
        for n in names_read(e):
            if n in self.symbols:
                found.add(n)
            elif n in self.locals and depth < 4:
                for source in self.locals[n]:
                    found |= self._inputs(source, depth + 1)
        return frozenset(found)

    def _counterish(self, e, depth: int = 0) -> bool:
        for n in names_read(e):
            st = self.checked.states.get(n)
            if st is not None and st.kind == "count":
                return True
            if (
                n in self.locals
                and depth < 4
                and any(self._counterish(x, depth + 1) for x in self.locals[n])
            ):
                return True
        return False

    # -- the values a condition names ------------------------------------------------------------
    def _condition(self, cond) -> None:
        for node in subexpressions(cond):
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
        for node in subexpressions(e):
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
    """The expressions a statement evaluates itself (not its nested blocks')."""
    if isinstance(s, S.Assign):
        return [s.value] + ([s.initially] if s.initially is not None else [])
    if isinstance(s, S.ItemAssign):  # (`P[j] <- a if use_svd else b`: a choice too)
        return [s.index, s.value]
    if isinstance(s, S.MultiAssign):
        return [s.value]
    if isinstance(s, S.CallStmt):
        return [s.call]
    if isinstance(s, S.Check):
        return [s.expr]
    if isinstance(s, S.Repeat):
        return [s.count]
    if isinstance(s, S.For):
        return [s.iterable]
    if isinstance(s, S.While):
        return [s.cond]
    return []


def subexpressions(e) -> list:
    out = [e]
    for c in S.children(e):
        out += subexpressions(c)
    return out


def names_read(e) -> set[str]:
    return {n.id for n in subexpressions(e) if isinstance(n, S.Name)}


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
            k: v for k, v in kwargs.items() if not same(defaults.get(k, kwargs), v)
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


def comparable(ours, theirs) -> bool:
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


def same(a, b) -> bool:
    """Equal values of one kind (0 and 0.0 are the same number; False is not 0)."""
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b or (a != a and b != b)
    try:
        return type(a) is type(b) and bool(a == b)
    except Exception:  # a tensor default
        return a is b


CASTS = {
    "bfloat16": "bfloat16"
}  # a builtin that casts → its dtype (a key of verify's TOLERANCES)


def narrowest_cast(checked) -> str | None:
    """The narrowest dtype the update computes in, if narrower than the parameters': a cast
    the spec writes (``bfloat16(x)``), or float32 where it sums totals (Prodigy's numerator and
    denominator are one-element tensors of the default dtype, as the reference keeps them: a
    float64 run's sums are rounded to float32, and the fused kernel, whose numbers are 0-d
    tensors, rounds its products before the sum rather than after)."""
    for block in checked.blocks:
        for s in statements(block.body):
            for e in _expressions(s):
                for node in subexpressions(e):
                    if isinstance(node, S.Call) and node.func in CASTS:
                        return CASTS[node.func]
    if any(st.kind == "total" for st in checked.states.values()):
        return "float32"
    return None


def statements(stmts):
    """Every statement of a block, those inside ifs and loops included, in order."""
    for s in stmts:
        yield s
        if isinstance(s, S.If):
            for _, body in s.branches:
                yield from statements(body)
            yield from statements(s.orelse)
        elif isinstance(s, (S.Repeat, S.ForEachParameter, S.For, S.While)):
            yield from statements(s.body)


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
