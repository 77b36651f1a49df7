"""Printing a flat update and its procedures as Python: the ``step`` of a whole-vector optimizer (LBFGS).

A printer dispatching on IR node type (generator.lower.flat made the IR), with parentheses from
Python's precedence. Each value carries its form: a vector's functions are printed as tensor methods
(``d.abs().max()``, ``y.dot(s)``), a Python number's as Python's (``abs(x)``, ``max(a, b)``), and
the square root of a value that may be a 0-d tensor as ``x.sqrt()``, so that the arithmetic is
torch's, rounding for rounding. ``x <- x + a * v`` on a vector the step owns (a fresh result no list
or state holds) becomes ``x.add_(v, alpha=a)``, and a step of the parameters ``self._add_grad``.
The step keeps counters in the state dict, loads the other states where it first needs them and
stores those it assigned when it ends; procedures that evaluate the closure receive it as
``obj_func`` with the point ``x`` they started from, as torch's ``_strong_wolfe`` does.
"""

from __future__ import annotations

from generator import ir
from generator.emit.python.blocks import PY_PRECEDENCE, Imports, Lines, message_source
from generator.emit.python.scalars import constant_source
from generator.language.builtins import BUILTINS

PREC = PY_PRECEDENCE


def _prec(e) -> int:
    if isinstance(e, ir.VCond):
        return PREC["cond"]
    if isinstance(e, ir.VBin):
        return PREC[e.op]
    if isinstance(e, ir.VCompare):
        return PREC["compare"]
    if isinstance(e, ir.VUnary):
        return PREC["not" if e.op == "not" else "neg"]
    if isinstance(e, ir.SConst) and e.spelling.startswith("-"):
        return PREC["neg"]
    return PREC["atom"]


def procedure_name(name: str) -> str:
    return "_" + name


class FlatPrinter:
    """Expressions and statements of a procedure; UpdatePrinter adds the step's states.
    ``imports`` records the names the printed code takes from elsewhere (``math``)."""

    in_update = False

    def __init__(self, imports: Imports):
        self.imports = imports

    # ---- expressions -----------------------------------------------------------------------------
    def wrap(self, e, prec: int) -> str:
        text = self.expr(e)
        return f"({text})" if _prec(e) < prec else text

    def expr(self, e) -> str:
        return getattr(self, "e_" + type(e).__name__)(e)

    def e_SConst(self, e: ir.SConst) -> str:
        return constant_source(e, self.imports)

    def e_VRef(self, e: ir.VRef) -> str:
        if e.binding is ir.Binding.GRAD:
            return "flat_grad"
        if e.binding is ir.Binding.COUNTER:
            return f'state["{e.name}"]'
        return e.name

    def e_VUnary(self, e: ir.VUnary) -> str:
        if e.op == "not":
            return "not " + self.wrap(e.operand, PREC["not"])
        return "-" + self.wrap(e.operand, PREC["neg"])

    def e_VBin(self, e: ir.VBin) -> str:
        p = PREC[e.op]
        if e.op == "or":  # `a or (b and c)`: the grouping shown, not left to precedence
            left, right = (
                (
                    self.expr(x)
                    if isinstance(x, ir.VBin) and x.op == "or"
                    else self.wrap(x, PREC["and"] + 1)
                )
                for x in (e.left, e.right)
            )
            return f"{left} or {right}"
        if e.op == "**":  # right-associative
            return f"{self.wrap(e.left, p + 1)}**{self.wrap(e.right, p)}"
        # the right operand at the same precedence keeps its parentheses: a - (b - c), and
        # a * (b / c) rounds differently from a * b / c
        return f"{self.wrap(e.left, p)} {e.op} {self.wrap(e.right, p + 1)}"

    def e_VCompare(self, e: ir.VCompare) -> str:
        parts = [self.wrap(e.operands[0], PREC["compare"] + 1)]
        for op, right in zip(e.ops, e.operands[1:]):
            if (
                isinstance(right, ir.SConst)
                and right.value is None
                and op in ("==", "!=")
            ):
                op = "is" if op == "==" else "is not"
            parts += [op, self.wrap(right, PREC["compare"] + 1)]
        return " ".join(parts)

    def e_VCond(self, e: ir.VCond) -> str:
        return (
            f"{self.wrap(e.then, 1)} if {self.wrap(e.cond, 1)} "
            f"else {self.wrap(e.orelse, 0)}"
        )

    def e_VTuple(self, e: ir.VTuple) -> str:
        return "(" + ", ".join(self.expr(x) for x in e.items) + ")"

    def e_VList(self, e: ir.VList) -> str:
        return "[" + ", ".join(self.expr(x) for x in e.items) + "]"

    def e_VIndex(self, e: ir.VIndex) -> str:
        return f"{self.wrap(e.value, PREC['atom'])}[{self.expr(e.index)}]"

    def e_VCall(self, e: ir.VCall) -> str:
        """The builtin table's flat form: torch's method on a vector (or, where the table says
        so, on anything that may be a tensor), else the Python function of numbers."""
        b = BUILTINS[e.func]
        form, first = b.flat, e.args[0].form
        args = [self.expr(a) for a in e.args]
        takes_method = first is ir.Form.VECTOR or (
            form.on_tensors and first is not ir.Form.HOST
        )
        if (
            form.vector is not None
            and takes_method
            and form.vector.count("{") == len(args)
        ):
            return form.vector.format(self.wrap(e.args[0], PREC["atom"]), *args[1:])
        if b.python is not None and b.python.count("{") == len(args):
            if "math." in b.python:  # the table's form for numbers (math.sqrt)
                self.imports.need("math")
            return b.python.format(*args)
        return f"{e.func}({', '.join(args)})"

    def e_VEvaluate(self, e: ir.VEvaluate) -> str:
        args = ", ".join(self.expr(a) for a in e.args)
        if self.in_update:
            return f"self._directional_evaluate(closure, self._clone_param(), {args})"
        return f"obj_func(x, {args})"

    def e_VProcCall(self, e: ir.VProcCall) -> str:
        args = [self.expr(a) for a in e.args]
        if e.evaluates:
            args = ["obj_func", "x_init" if self.in_update else "x"] + args
        args += [f"{k}={self.expr(v)}" for k, v in e.keywords]
        name = procedure_name(e.procedure)
        if len(args) > 4:
            return f"{name}(\n" + "".join(f"{a},\n" for a in args) + ")"
        return f"{name}({', '.join(args)})"

    # ---- statements ------------------------------------------------------------------------------
    def block(self, stmts, out: Lines, owned: set) -> set:
        """Prints the statements; the vectors the code owns afterwards (see module doc)."""
        for s in stmts:
            self.before(s, out)
            owned = getattr(self, "s_" + type(s).__name__)(s, out, owned)
        return owned

    def before(self, s, out: Lines) -> None:
        """Hook for the update: states fetched where first needed."""

    def fetches_before(self, s) -> bool:
        """Does the update fetch a state right before ``s`` (then it is no ``elif``)?"""
        return False

    def s_StepParams(self, s: ir.StepParams, out: Lines, owned: set) -> set:
        alpha = "1" if s.size is None else self.expr(s.size)
        if s.negative:
            alpha = "-" + (
                alpha if s.size is None or _prec(s.size) > PREC["neg"] else f"({alpha})"
            )
        out(f"self._add_grad({alpha}, {self.expr(s.direction)})")
        return owned

    def s_Bind(self, s: ir.Bind, out: Lines, owned: set) -> set:
        target, v = s.target, s.value
        name = self.expr(target)
        updates_itself = (
            isinstance(v, ir.VBin)
            and v.op in ("+", "-")
            and isinstance(v.left, ir.VRef)
            and v.left.name == target.name
        )
        if target.binding is ir.Binding.COUNTER:
            if updates_itself:
                out(f"{name} {v.op}= {self.wrap(v.right, PREC[v.op] + 1)}")
            else:
                out(f"{name} = {self.expr(v)}")
            return owned
        inplace = self.inplace(target.name, v) if target.name in owned else None
        if inplace is not None:
            out(f"{name}.{inplace}")
            return owned
        if updates_itself and target.form is ir.Form.HOST:  # a number: `n += 1`
            out(f"{name} {v.op}= {self.wrap(v.right, PREC[v.op] + 1)}")
            return owned
        out(f"{name} = {self.expr(v)}")
        owned = owned - _bare_names(v)
        if v.form is ir.Form.VECTOR and _fresh(v):
            return owned | {target.name}
        return owned - {target.name}

    def inplace(self, target: str, v) -> str | None:
        """``x + a * v`` → ``add_(v, alpha=a)`` where x is the target (owned) vector."""
        if not (
            isinstance(v, ir.VBin)
            and v.op in ("+", "-")
            and isinstance(v.left, ir.VRef)
            and v.left.name == target
        ):
            return None
        right = v.right
        if isinstance(right, ir.VBin) and right.op == "*" and not right.grouped:
            for vec, alpha in ((right.right, right.left), (right.left, right.right)):
                if vec.form is ir.Form.VECTOR and alpha.form is not ir.Form.VECTOR:
                    a = self.expr(alpha)
                    if v.op == "-":
                        a = "-" + (a if _prec(alpha) > PREC["neg"] else f"({a})")
                    return f"add_({self.expr(vec)}, alpha={a})"
        if right.form is ir.Form.VECTOR:
            return f"{'add_' if v.op == '+' else 'sub_'}({self.expr(right)})"
        return None

    def s_BindMany(self, s: ir.BindMany, out: Lines, owned: set) -> set:
        names = [self.expr(n) for n in s.targets]
        v = s.value
        if isinstance(v, ir.VEvaluate) and not v.args and self.in_update:
            out(f"{names[0]} = float(closure())")
            out(f"{names[1]} = self._gather_flat_grad()")
        else:
            if isinstance(v, ir.VProcCall) and v.evaluates and self.in_update:
                self.objective(out)
            value = (
                ", ".join(self.expr(x) for x in v.items)
                if isinstance(v, ir.VTuple)
                else self.expr(v)
            )
            out(f"{', '.join(names)} = {value}")
        return owned - {n.name for n in s.targets} - _bare_names(v)

    def objective(self, out: Lines) -> None:
        out("x_init = self._clone_param()")
        out("")
        out("def obj_func(x, t, d):")
        with out.indent():
            out("return self._directional_evaluate(closure, x, t, d)")
        out("")

    def s_SetItem(self, s: ir.SetItem, out: Lines, owned: set) -> set:
        out(f"{self.expr(s.target)}[{self.expr(s.index)}] = {self.expr(s.value)}")
        return owned - _bare_names(s.value)

    def s_ListAppend(self, s: ir.ListAppend, out: Lines, owned: set) -> set:
        out(f"{self.expr(s.target)}.append({self.expr(s.value)})")
        return owned - _bare_names(s.value)

    def s_ListPopFirst(self, s: ir.ListPopFirst, out: Lines, owned: set) -> set:
        out(f"{self.expr(s.target)}.pop(0)")
        return owned

    def s_CallProcedure(self, s: ir.CallProcedure, out: Lines, owned: set) -> set:
        if s.call.evaluates and self.in_update:
            self.objective(out)
        out(self.expr(s.call))
        return owned - _bare_names(s.call)

    def s_Raise(self, s: ir.Raise, out: Lines, owned: set) -> set:
        out(f"if {self.expr(s.fails)}:")
        with out.indent():
            out(f"raise {s.exception}({message_source(s.message, self.expr)})")
        return owned

    def s_If(self, s: ir.If, out: Lines, owned: set) -> set:
        results = []
        keyword = "if"
        while True:
            out(f"{keyword} {self.expr(s.cond)}:")
            with out.indent():
                results.append(self.block(s.then, out, set(owned)))
            rest = s.orelse
            if (
                len(rest) == 1
                and isinstance(rest[0], ir.If)
                and not self.fetches_before(rest[0])
            ):
                s, keyword = rest[0], "elif"
                continue
            if rest:
                out("else:")
                with out.indent():
                    results.append(self.block(rest, out, set(owned)))
            else:
                results.append(owned)
            return set.intersection(*results)

    def loop(self, header: str, body, out: Lines, owned: set) -> set:
        entry = set(owned)
        for _ in range(8):  # what the body leaves owned is owned at the next iteration
            end = self.block(body, Lines(), set(entry))
            if entry <= end:
                break
            entry &= end
        out(header)
        with out.indent():
            end = self.block(body, out, set(entry))
        return entry & end

    def s_While(self, s: ir.While, out: Lines, owned: set) -> set:
        return self.loop(f"while {self.expr(s.cond)}:", s.body, out, owned)

    def s_Repeat(self, s: ir.Repeat, out: Lines, owned: set) -> set:
        return self.loop(f"for _ in range({self.expr(s.count)}):", s.body, out, owned)

    def s_ForRange(self, s: ir.ForRange, out: Lines, owned: set) -> set:
        if s.reverse:
            one = ir.number("1")
            last = self.expr(ir.VBin("-", s.stop, one, ir.Form.HOST))
            first = (
                "-1"
                if s.start is None
                or (isinstance(s.start, ir.SConst) and s.start.spelling == "0")
                else self.expr(ir.VBin("-", s.start, one, ir.Form.HOST))
            )
            iterable = f"range({last}, {first}, -1)"
        else:
            bounds = (s.stop,) if s.start is None else (s.start, s.stop)
            iterable = f"range({', '.join(self.expr(a) for a in bounds)})"
        return self.loop(f"for {s.var} in {iterable}:", s.body, out, owned)

    def s_Break(self, s, out: Lines, owned: set) -> set:
        out("break")
        return owned

    def s_Return(self, s: ir.Return, out: Lines, owned: set) -> set:
        out("return " + ", ".join(self.expr(v) for v in s.values))
        return owned

    # ---- procedures ------------------------------------------------------------------------------
    def procedure(self, proc: ir.Procedure) -> str:
        params = ["obj_func", "x"] if proc.evaluates else []
        for p in proc.params:
            default = "" if p.default is None else "=" + self.expr(p.default)
            params.append(p.name + default)
        out = Lines()
        out(f"def {procedure_name(proc.name)}({', '.join(params)}):")
        with out.indent():
            self.block(proc.body, out, set())
        return out.text()


def _bare_names(e) -> set:
    """Names whose value the expression passes on as it is (to a list, a tuple, a procedure)."""
    if isinstance(e, ir.VRef):
        return {e.name}
    if isinstance(e, ir.VCond):
        return _bare_names(e.then) | _bare_names(e.orelse)
    if isinstance(e, (ir.VTuple, ir.VList, ir.VProcCall, ir.VEvaluate)):
        return set().union(*(_bare_names(x) for x in ir.children(e)))
    return set()  # (a builtin computes a new value)


def _fresh(e) -> bool:
    """A new tensor, referenced nowhere else: arithmetic, a method result, a clone."""
    if isinstance(
        e,
        (ir.VRef, ir.VIndex, ir.VCond, ir.VTuple, ir.VList, ir.VProcCall, ir.VEvaluate),
    ):
        return False
    return True  # arithmetic, or a builtin's result


class UpdatePrinter(FlatPrinter):
    """The body of ``step``: state fetched, the update, state stored."""

    in_update = True

    def __init__(self, flat: ir.FlatStep, imports: Imports):
        super().__init__(imports)
        self.flat = flat
        body = flat.body
        self.keys = [key for key, _ in flat.states]
        self.init = dict(flat.states)
        self.lazy = [key for key, init in flat.states if init is None]
        created = [key for key, init in flat.states if init is not None]
        self.assigned = [key for key in self.keys if _assigns(body, key)]
        # id(statement) → the states fetched before it
        self.fetch_at: dict[int, list[str]] = {}
        for key in created:
            block = _lowest_block(body, key)
            first = next((s for s in block if _mentions(s, key)), None)
            if first is not None:
                self.fetch_at.setdefault(id(first), []).append(key)
        first_lazy = next(
            (s for s in body if any(_mentions(s, key) for key in self.lazy)), None
        )
        if first_lazy is not None and self.lazy:
            self.fetch_at.setdefault(id(first_lazy), [])[:0] = ["<lazy>"]
        self.stored_so_far: list[str] = []

    def fetches_before(self, s) -> bool:
        return id(s) in self.fetch_at

    def before(self, s, out: Lines) -> None:
        for key in self.fetch_at.get(id(s), ()):
            if key == "<lazy>":
                for k in self.lazy:
                    out(f'{k} = state.get("{k}")')
                out("")
                continue
            out(f'if "{key}" not in state:')
            with out.indent():
                out(f'state["{key}"] = {self.expr(self.init[key])}')
            out(f'{key} = state["{key}"]')
        self.stored_so_far += [
            key
            for key in self.assigned
            if key not in self.stored_so_far and _assigns((s,), key)
        ]

    def s_Return(self, s: ir.Return, out: Lines, owned: set) -> set:
        self.store(out, self.stored_so_far)
        out("return orig_loss")
        return owned

    def store(self, out: Lines, keys) -> None:
        for key in self.keys:
            if key in keys:
                out(f'state["{key}"] = {key}')

    def body(self) -> str:
        out = Lines()
        self.block(self.flat.body, out, set())
        if self.assigned:
            out("")
            self.store(out, self.assigned)
        return out.text()


def _targets(s) -> list[str]:
    """The names a statement binds (a state's key for a state)."""
    if isinstance(s, ir.Bind):
        return [s.target.name]
    if isinstance(s, ir.BindMany):
        return [n.name for n in s.targets]
    return []


def _assigns(stmts, name: str) -> bool:
    for s in stmts:
        if name in _targets(s):
            return True
        if any(_assigns(b, name) for b in ir.blocks(s)):
            return True
    return False


def _mentions_own(s, name: str) -> bool:
    """The statement itself (not a nested block) binds, changes or reads the name."""
    if name in _targets(s):
        return True
    if isinstance(s, (ir.SetItem, ir.ListAppend, ir.ListPopFirst)):
        if s.target.name == name:
            return True
    if isinstance(s, ir.ForRange) and s.var == name:
        return True
    return name in ir.refs(ir.expressions(s), ir.VRef)


def _mentions(s, name: str) -> bool:
    return _mentions_own(s, name) or any(
        _mentions(x, name) for b in ir.blocks(s) for x in b
    )


def _lowest_block(stmts, name: str):
    """The innermost block that holds every statement mentioning ``name``."""
    users = [s for s in stmts if _mentions(s, name)]
    if len(users) == 1:
        inner = [b for b in ir.blocks(users[0]) if any(_mentions(x, name) for x in b)]
        if len(inner) == 1 and not _mentions_own(users[0], name):
            return _lowest_block(inner[0], name)
    return stmts
