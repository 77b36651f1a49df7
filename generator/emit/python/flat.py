"""Printing flat updates and procedures as Python: the ``step`` of a whole-vector optimizer (LBFGS).

A printer dispatching on spec node type, with parentheses from Python's precedence, fed by the
types generator.check.flat inferred: a vector's functions are printed as tensor methods (``d.abs().max()``,
``y.dot(s)``), a number's as Python's (``abs(x)``, ``max(a, b)``), and the square root of a value
that may be a 0-d tensor as ``x.sqrt()``, so that the arithmetic is torch's, rounding for rounding.
``x <- x + a * v`` on a vector the step owns (a fresh result no list or state holds) becomes
``x.add_(v, alpha=a)``, and ``param <- param + t * d`` a step of every parameter along its slice of
d. The step keeps counters in the state dict, loads the other states where it first needs them and
stores those it assigned when it ends; procedures that evaluate the closure receive it as
``obj_func`` with the point ``x`` they started from, as torch's ``_strong_wolfe`` does.
"""

from __future__ import annotations

from generator.language import syntax as S
from generator.check.flat import step_along
from generator.check.types import (
    Program,
    Scope,
    expression_type,
    is_vector,
    may_be_tensor,
)
from generator.emit.python.blocks import PY_PRECEDENCE, Lines
from generator.emit.python.validation import text_message_source

PREC = PY_PRECEDENCE
_NEGATED = {"==": "!=", "!=": "==", "<": ">=", "<=": ">", ">": "<=", ">=": "<"}


def _prec(e) -> int:
    if isinstance(e, S.Conditional):
        return PREC["cond"]
    if isinstance(e, S.Binary):
        return PREC["**" if e.op == "^" else e.op]
    if isinstance(e, S.Compare):
        return PREC["compare"]
    if isinstance(e, S.Unary):
        return PREC["not" if e.op == "not" else "neg"]
    if isinstance(e, S.Number) and e.text.startswith("-"):
        return PREC["neg"]
    return PREC["atom"]


def procedure_name(name: str) -> str:
    return "_" + name


class FlatPrinter:
    def __init__(self, program: Program):
        self.p = program
        self.states = program.states

    # ---- names -----------------------------------------------------------------------------------
    def is_update(self, sc: Scope) -> bool:
        return sc.name == "update"

    def name(self, sc: Scope, n: str) -> str:
        if not self.is_update(sc):
            return n
        if n == "grad":
            return "flat_grad"
        st = self.states.get(n)
        if st is not None:
            return f'state["{st.key}"]' if st.kind == "count" else st.key
        return n

    # ---- expressions -----------------------------------------------------------------------------
    def type(self, sc: Scope, e):
        return expression_type(self.p, sc, e)

    def wrap(self, sc: Scope, e, prec: int) -> str:
        text = self.expr(sc, e)
        return f"({text})" if _prec(e) < prec else text

    def expr(self, sc: Scope, e) -> str:
        return getattr(self, "e_" + type(e).__name__)(sc, e)

    def e_Number(self, sc, e: S.Number) -> str:
        return "math.inf" if e.text == "inf" else e.text

    def e_Bool(self, sc, e) -> str:
        return "True" if e.value else "False"

    def e_NoneLit(self, sc, e) -> str:
        return "None"

    def e_String(self, sc, e: S.String) -> str:
        return repr(e.value)

    def e_Name(self, sc, e: S.Name) -> str:
        return self.name(sc, e.id)

    def e_Unary(self, sc, e: S.Unary) -> str:
        if e.op == "not":
            return "not " + self.wrap(sc, e.operand, PREC["not"])
        return "-" + self.wrap(sc, e.operand, PREC["neg"])

    def e_Binary(self, sc, e: S.Binary) -> str:
        op = "**" if e.op == "^" else e.op
        p = PREC[op]
        if op == "or":  # `a or (b and c)`: the grouping shown, not left to precedence
            left, right = (
                (
                    self.expr(sc, x)
                    if isinstance(x, S.Binary) and x.op == "or"
                    else self.wrap(sc, x, PREC["and"] + 1)
                )
                for x in (e.left, e.right)
            )
            return f"{left} or {right}"
        if op == "**":  # right-associative
            return f"{self.wrap(sc, e.left, p + 1)}**{self.wrap(sc, e.right, p)}"
        # the right operand at the same precedence keeps its parentheses: a - (b - c), and
        # a * (b / c) rounds differently from a * b / c
        return f"{self.wrap(sc, e.left, p)} {op} {self.wrap(sc, e.right, p + 1)}"

    def e_Compare(self, sc, e: S.Compare) -> str:
        parts = [self.wrap(sc, e.operands[0], PREC["compare"] + 1)]
        for op, right in zip(e.ops, e.operands[1:]):
            if isinstance(right, S.NoneLit) and op in ("==", "!="):
                op = "is" if op == "==" else "is not"
            parts += [op, self.wrap(sc, right, PREC["compare"] + 1)]
        return " ".join(parts)

    def e_Conditional(self, sc, e: S.Conditional) -> str:
        return (
            f"{self.wrap(sc, e.then, 1)} if {self.wrap(sc, e.cond, 1)} "
            f"else {self.wrap(sc, e.orelse, 0)}"
        )

    def e_Tuple(self, sc, e: S.Tuple) -> str:
        return "(" + ", ".join(self.expr(sc, x) for x in e.items) + ")"

    def e_List(self, sc, e: S.List) -> str:
        return "[" + ", ".join(self.expr(sc, x) for x in e.items) + "]"

    def e_Index(self, sc, e: S.Index) -> str:
        return f"{self.wrap(sc, e.value, PREC['atom'])}[{self.expr(sc, e.index)}]"

    def e_Call(self, sc, e: S.Call) -> str:
        if e.func in self.p.procedures:
            return self.procedure_call(sc, e)
        args = [self.expr(sc, a) for a in e.args]
        first = self.wrap(sc, e.args[0], PREC["atom"]) if e.args else ""
        t = self.type(sc, e.args[0]) if e.args else frozenset()
        f = e.func
        if f == "dot":
            return f"{first}.dot({args[1]})"
        if f in ("sum", "norm"):
            return f"{first}.{f}()"
        if f == "clone":
            return f"{first}.clone(memory_format=torch.contiguous_format)"
        if f == "abs" and is_vector(t):
            return f"{first}.abs()"
        if f in ("max", "min") and len(args) == 1 and is_vector(t):
            return f"{first}.{f}()"
        if f == "sqrt":
            return f"{first}.sqrt()" if may_be_tensor(t) else f"math.sqrt({args[0]})"
        if f == "evaluate":
            if self.is_update(sc):
                return f"self._directional_evaluate(closure, self._clone_param(), {', '.join(args)})"
            return f"obj_func(x, {', '.join(args)})"
        return f"{f}({', '.join(args)})"

    def procedure_call(self, sc: Scope, e: S.Call) -> str:
        proc = self.p.procedures[e.func]
        args = [self.expr(sc, a) for a in e.args]
        if proc.evaluates:
            args = ["obj_func", "x_init" if self.is_update(sc) else "x"] + args
        args += [f"{k}={self.expr(sc, v)}" for k, v in e.keywords]
        if len(args) > 4:
            return (
                f"{procedure_name(e.func)}(\n" + "".join(f"{a},\n" for a in args) + ")"
            )
        return f"{procedure_name(e.func)}({', '.join(args)})"

    def negation(self, sc, e) -> str:
        """``not e``, spelled as a comparison where e is one (``x != "a"``)."""
        if isinstance(e, S.Compare) and len(e.ops) == 1:
            return self.expr(sc, S.Compare((_NEGATED[e.ops[0]],), e.operands, e.span))
        return "not " + self.wrap(sc, e, PREC["not"])

    # ---- statements ------------------------------------------------------------------------------
    def block(self, sc: Scope, stmts, out: Lines, owned: set) -> set:
        """Prints the statements; the vectors the code owns afterwards (see module doc)."""
        for s in stmts:
            self.before(sc, s, out)
            owned = getattr(self, "s_" + type(s).__name__)(sc, s, out, owned)
        return owned

    def before(self, sc: Scope, s, out: Lines) -> None:
        """Hook for the update: states fetched where first needed."""

    def s_Assign(self, sc, s: S.Assign, out: Lines, owned: set) -> set:
        target = s.target.id
        if target == "param":
            sign, size, direction = step_along(s.value)
            alpha = "1" if size is None else self.expr(sc, size)
            if sign == "-":
                alpha = "-" + (
                    alpha if size is None or _prec(size) > PREC["neg"] else f"({alpha})"
                )
            out(f"self._add_grad({alpha}, {self.expr(sc, direction)})")
            return owned
        st = self.states.get(target) if self.is_update(sc) else None
        if st is not None and st.kind == "count":
            v = s.value
            if (
                isinstance(v, S.Binary)
                and v.op in ("+", "-")
                and isinstance(v.left, S.Name)
                and v.left.id == target
            ):
                out(
                    f'state["{st.key}"] {v.op}= {self.wrap(sc, v.right, PREC[v.op] + 1)}'
                )
            else:
                out(f'state["{st.key}"] = {self.expr(sc, s.value)}')
            return owned
        name = self.name(sc, target)
        inplace = self.inplace(sc, target, s.value) if target in owned else None
        if inplace is not None:
            out(f"{name}.{inplace}")
            return owned
        v = s.value
        if (
            isinstance(v, S.Binary)
            and v.op in ("+", "-")
            and isinstance(v.left, S.Name)
            and v.left.id == target
            and not may_be_tensor(sc.types.get(target, frozenset()))
        ):  # a number: `n += 1`
            out(f"{name} {v.op}= {self.wrap(sc, v.right, PREC[v.op] + 1)}")
            return owned
        out(f"{name} = {self.expr(sc, s.value)}")
        owned = owned - _bare_names(s.value)
        if is_vector(self.type(sc, s.value)) and _fresh(s.value):
            return owned | {target}
        return owned - {target}

    def inplace(self, sc, target: str, v) -> str | None:
        """``x + a * v`` → ``add_(v, alpha=a)`` where x is the target (owned) vector."""
        if not (
            isinstance(v, S.Binary)
            and v.op in ("+", "-")
            and isinstance(v.left, S.Name)
            and v.left.id == target
        ):
            return None
        right = v.right
        if isinstance(right, S.Binary) and right.op == "*" and not right.grouped:
            for vec, alpha in ((right.right, right.left), (right.left, right.right)):
                if is_vector(self.type(sc, vec)) and not is_vector(
                    self.type(sc, alpha)
                ):
                    a = self.expr(sc, alpha)
                    if v.op == "-":
                        a = "-" + (a if _prec(alpha) > PREC["neg"] else f"({a})")
                    return f"add_({self.expr(sc, vec)}, alpha={a})"
        if is_vector(self.type(sc, right)):
            return f"{'add_' if v.op == '+' else 'sub_'}({self.expr(sc, right)})"
        return None

    def s_MultiAssign(self, sc, s: S.MultiAssign, out: Lines, owned: set) -> set:
        names = [self.name(sc, n.id) for n in s.targets]
        v = s.value
        if (
            isinstance(v, S.Call)
            and v.func == "evaluate"
            and not v.args
            and self.is_update(sc)
        ):
            out(f"{names[0]} = float(closure())")
            out(f"{names[1]} = self._gather_flat_grad()")
        else:
            if (
                isinstance(v, S.Call)
                and self.p.procedures.get(v.func, None) is not None
            ):
                if self.p.procedures[v.func].evaluates and self.is_update(sc):
                    self.objective(out)
            value = (
                ", ".join(self.expr(sc, x) for x in v.items)
                if isinstance(v, S.Tuple)
                else self.expr(sc, v)
            )
            out(f"{', '.join(names)} = {value}")
        return owned - {n.id for n in s.targets} - _bare_names(v)

    def objective(self, out: Lines) -> None:
        out("x_init = self._clone_param()")
        out("")
        out("def obj_func(x, t, d):")
        with out.indent():
            out("return self._directional_evaluate(closure, x, t, d)")
        out("")

    def s_ItemAssign(self, sc, s: S.ItemAssign, out: Lines, owned: set) -> set:
        out(
            f"{self.name(sc, s.target.id)}[{self.expr(sc, s.index)}] = "
            f"{self.expr(sc, s.value)}"
        )
        return owned - _bare_names(s.value)

    def s_CallStmt(self, sc, s: S.CallStmt, out: Lines, owned: set) -> set:
        c = s.call
        if c.func == "append":
            out(f"{self.expr(sc, c.args[0])}.append({self.expr(sc, c.args[1])})")
        elif c.func == "pop_first":
            out(f"{self.expr(sc, c.args[0])}.pop(0)")
        else:
            if self.p.procedures[c.func].evaluates and self.is_update(sc):
                self.objective(out)
            out(self.expr(sc, c))
        return owned - _bare_names(c)

    def s_Check(self, sc, s, out: Lines, owned: set) -> set:
        names = {n: self.name(sc, n) for n in sc.types}
        out(f"if {self.negation(sc, s.expr)}:")
        with out.indent():
            out(
                f"raise {s.message.exception}({text_message_source(s.message.text, names)})"
            )
        return owned

    def s_If(self, sc, s: S.If, out: Lines, owned: set) -> set:
        results = []
        for k, (cond, body) in enumerate(s.branches):
            out(f"{'if' if k == 0 else 'elif'} {self.expr(sc, cond)}:")
            with out.indent():
                results.append(self.block(sc, body, out, set(owned)))
        if s.orelse:
            out("else:")
            with out.indent():
                results.append(self.block(sc, s.orelse, out, set(owned)))
        else:
            results.append(owned)
        return set.intersection(*results)

    def loop(self, sc, header: str, body, out: Lines, owned: set) -> set:
        entry = set(owned)
        for _ in range(8):  # what the body leaves owned is owned at the next iteration
            end = self.block(sc, body, Lines(), set(entry))
            if entry <= end:
                break
            entry &= end
        out(header)
        with out.indent():
            end = self.block(sc, body, out, set(entry))
        return entry & end

    def s_While(self, sc, s: S.While, out: Lines, owned: set) -> set:
        return self.loop(sc, f"while {self.expr(sc, s.cond)}:", s.body, out, owned)

    def s_Repeat(self, sc, s: S.Repeat, out: Lines, owned: set) -> set:
        return self.loop(
            sc, f"for _ in range({self.expr(sc, s.count)}):", s.body, out, owned
        )

    def s_For(self, sc, s: S.For, out: Lines, owned: set) -> set:
        it = s.iterable
        if it.func == "reversed":
            args = it.args[0].args
            start, stop = (S.Number("0", it.span), args[0]) if len(args) == 1 else args
            one = S.Number("1", it.span)
            last = self.expr(sc, S.Binary("-", stop, one, it.span))
            first = (
                "-1"
                if isinstance(start, S.Number) and start.text == "0"
                else self.expr(sc, S.Binary("-", start, one, it.span))
            )
            iterable = f"range({last}, {first}, -1)"
        else:
            iterable = f"range({', '.join(self.expr(sc, a) for a in it.args)})"
        return self.loop(sc, f"for {s.var.id} in {iterable}:", s.body, out, owned)

    def s_Break(self, sc, s, out: Lines, owned: set) -> set:
        out("break")
        return owned

    def s_Return(self, sc, s: S.Return, out: Lines, owned: set) -> set:
        out("return " + ", ".join(self.expr(sc, v) for v in s.values))
        return owned

    # ---- procedures ------------------------------------------------------------------------------
    def procedure(self, sc: Scope) -> str:
        params = ["obj_func", "x"] if sc.evaluates else []
        for p in sc.params:
            default = "" if p.default is None else "=" + self.expr(sc, p.default)
            params.append(p.name.id + default)
        out = Lines()
        out(f"def {procedure_name(sc.name)}({', '.join(params)}):")
        with out.indent():
            self.block(sc, sc.body, out, set())
        return out.text()


def _bare_names(e) -> set:
    """Names whose value the expression passes on as it is (to a list, a tuple, a procedure)."""
    if isinstance(e, S.Name):
        return {e.id}
    if isinstance(e, S.Conditional):
        return _bare_names(e.then) | _bare_names(e.orelse)
    if isinstance(e, (S.Tuple, S.List)):
        return set().union(*(_bare_names(x) for x in e.items))
    if isinstance(e, S.Call) and e.func not in (
        "dot",
        "abs",
        "max",
        "min",
        "sum",
        "norm",
        "sqrt",
        "clone",
        "len",
    ):
        return set().union(
            *(_bare_names(x) for x in e.args), *(_bare_names(v) for _, v in e.keywords)
        )
    return set()


def _fresh(e) -> bool:
    """A new tensor, referenced nowhere else: arithmetic, a method result, a clone."""
    if isinstance(e, (S.Name, S.Index, S.Conditional, S.Tuple, S.List)):
        return False
    if isinstance(e, S.Call):
        return e.func in ("clone", "abs", "sqrt")
    return True


class UpdatePrinter(FlatPrinter):
    """The body of ``step``: state fetched, the update, state stored."""

    def __init__(self, program: Program):
        super().__init__(program)
        sc = program.update
        self.sc = sc
        self.lazy = [
            n for n, st in self.states.items() if st.kind != "count" and st.lazy
        ]
        self.created = [
            n for n, st in self.states.items() if st.kind != "count" and not st.lazy
        ]
        self.assigned = [
            n
            for n in self.states
            if self.states[n].kind != "count" and _assigns(sc.body, n)
        ]
        self.fetch_at: dict[int, list[str]] = (
            {}
        )  # id(statement) → states fetched before it
        for n in self.created:
            block = _lowest_block(sc.body, n)
            first = next((s for s in block if _mentions(s, n)), None)
            if first is not None:
                self.fetch_at.setdefault(id(first), []).append(n)
        first_lazy = next(
            (s for s in sc.body if any(_mentions(s, n) for n in self.lazy)), None
        )
        if first_lazy is not None and self.lazy:
            self.fetch_at.setdefault(id(first_lazy), [])[:0] = ["<lazy>"]
        self.stored_so_far: list[str] = []

    def before(self, sc, s, out: Lines) -> None:
        for n in self.fetch_at.get(id(s), ()):
            if n == "<lazy>":
                for m in self.lazy:
                    key = self.states[m].key
                    out(f'{key} = state.get("{key}")')
                out("")
                continue
            st = self.states[n]
            out(f'if "{st.key}" not in state:')
            with out.indent():
                out(f'state["{st.key}"] = {self.expr(sc, st.init)}')
            out(f'{st.key} = state["{st.key}"]')
        self.stored_so_far += [
            n
            for n in self.assigned
            if n not in self.stored_so_far and _assigns((s,), n)
        ]

    def s_Return(self, sc, s: S.Return, out: Lines, owned: set) -> set:
        self.store(out, self.stored_so_far)
        out("return orig_loss")
        return owned

    def store(self, out: Lines, names) -> None:
        for n in self.states:
            if n in names:
                key = self.states[n].key
                out(f'state["{key}"] = {key}')

    def body(self) -> str:
        out = Lines()
        self.block(self.sc, self.sc.body, out, set())
        if self.assigned:
            out("")
            self.store(out, self.assigned)
        return out.text()


def _targets(s) -> list[str]:
    if isinstance(s, S.Assign):
        return [s.target.id]
    if isinstance(s, S.MultiAssign):
        return [n.id for n in s.targets]
    return []


def _assigns(stmts, name: str) -> bool:
    for s in stmts:
        if name in _targets(s):
            return True
        if any(_assigns(b, name) for b in S.sub_blocks(s)):
            return True
    return False


def _mentions_expr(e, name: str) -> bool:
    if isinstance(e, S.Name):
        return e.id == name
    return any(_mentions_expr(c, name) for c in S.children(e))


def _mentions(s, name: str) -> bool:
    if name in _targets(s):
        return True
    if isinstance(s, S.ItemAssign) and s.target.id == name:
        return True
    if any(_mentions_expr(e, name) for e in S.expressions(s)):
        return True
    return any(_mentions(x, name) for b in S.sub_blocks(s) for x in b)


def _lowest_block(stmts, name: str):
    """The innermost block that holds every statement mentioning ``name``."""
    users = [s for s in stmts if _mentions(s, name)]
    if len(users) == 1:
        inner = [
            b for b in S.sub_blocks(users[0]) if any(_mentions(x, name) for x in b)
        ]
        own = not _mentions_own(users[0], name)
        if len(inner) == 1 and own:
            return _lowest_block(inner[0], name)
    return stmts


def _mentions_own(s, name: str) -> bool:
    """The statement itself (not a nested block) mentions the name."""
    nested = S.sub_blocks(s)
    if not nested:
        return _mentions(s, name)
    return any(_mentions_expr(e, name) for e in S.expressions(s)) or (
        isinstance(s, S.For) and s.var.id == name
    )
