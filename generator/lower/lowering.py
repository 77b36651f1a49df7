"""Lowering: a checked spec to the IR, choosing torch's in-place operations by a table of rewrite rules.

An assignment to a state or to the parameter becomes in-place operations on it, chosen by the first
rule in ``UPDATE_RULES`` whose pattern matches the right-hand side (``b*m + (1-b)*g`` → ``lerp_``,
``b*v + c*g^2`` → ``mul_().addcmul_()``, ``p - s*m/d`` → ``addcdiv_``, …), with ``copy_`` as the rule
that always matches. A term's scalar factors become the fused operation's ``alpha``/``value`` as torch
writes them; tensor factors keep the spec's order, so the arithmetic on tensors is the spec's own.
Locals are fresh tensors the update owns (then later updates of them are in place) or other names
for existing ones (then they are never mutated). Scalars decided by hyperparameters alone are hoisted
out of the per-parameter loop.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from dataclasses import dataclass, replace

from generator import ir
from generator.ir import uses
from generator.lower import checks
from generator.language import syntax as S
from generator.language.builtins import BUILTINS, CONSTANTS, unary_elementwise
from generator.check.checker import CheckedSpec
from generator.language.names import IMPLEMENTATION_FLAGS, RESERVED
from generator.language.diagnostics import GeneratorBug
from generator.language.spec_printer import print_expr
from generator.lower.fold import fold_optimizer

# ---- names in the generated code ----------------------------------------------------------------------


def list_name(key: str) -> str:
    """The functional API's per-group list for a state (torch's own names: state_steps, exp_avgs)."""
    if key in ("step", "sum"):
        return f"state_{key}s"
    return key + "s"


def loop_var(key: str, kind: str) -> str:
    """The single-tensor loop's name for a state (``step_t`` for the counter, ``state_sum``)."""
    if kind == "count":
        return f"{key}_t"
    return f"state_{key}" if key in RESERVED else key


# ---- expression helpers -------------------------------------------------------------------------------


def _is_one(e: S.Expr) -> bool:
    return isinstance(e, S.Number) and e.value == 1.0


def _terms(e: S.Expr) -> list[tuple[int, S.Expr]]:
    """A left-associated sum as signed terms: a - b + c → [(+1, a), (-1, b), (+1, c)]."""
    if isinstance(e, S.Binary) and e.op in ("+", "-"):
        return _terms(e.left) + [(1 if e.op == "+" else -1, e.right)]
    return [(1, e)]


def _factors(e: S.Expr) -> list[tuple[str, S.Expr]]:
    """A left-associated product as ('*' | '/', factor) pairs: a * b / c → [(*, a), (*, b), (/, c)].

    A parenthesised product on the right, ``s * (a * b)``, stays one factor: the author grouped it,
    so it is computed as a tensor first (``add_(a.mul(b), alpha=s)``), not fused into ``addcmul_``.
    """
    if isinstance(e, S.Binary) and e.op in ("*", "/"):
        return _factors(e.left) + [(e.op, e.right)]
    return [("*", e)]


@dataclass
class _Term:
    """A sum term split into a scalar coefficient and tensor factors (numerator, denominator)."""

    coef: ir.SExpr | None
    num: list[S.Expr]
    den: list[S.Expr]
    source: S.Expr


class Lowerer:
    def __init__(self, checked: CheckedSpec, coverage: bool = False):
        self.c = checked
        self.coverage = coverage  # each branch opens with an ir.Probe (optimgen verify)
        self.spec = checked.spec
        self.states = checked.states
        self.kinds: dict[str, str] = {}  # local name → kind, as lowering proceeds
        self.varying: dict[str, bool] = {}
        self.owned: dict[str, bool] = {}
        self.helpers: set[str] = set()
        self.static_locals: dict[str, bool] = (
            {}
        )  # local → decided by hyperparameters alone
        self.varying_branches = 0  # depth of per-parameter `if`s being lowered
        # locals that differ between parameters at some assignment: every assignment of them
        # makes a per-parameter value (a list on the foreach path), so that `c <- 1` then
        # `if flag: c <- 1 / t` leaves one kind of value behind (found by a first lowering)
        self.force_varying: frozenset[str] = frozenset()
        self.per_parameter = any(u.mode == "each" for u in self.spec.updates)
        self.per_step = (
            False  # lowering an `update group:` or `update optimizer:` block
        )
        self.branch_count = 0
        # tensor locals holding a reduction's result (`mean(g, -1)`: smaller than the
        # parameter): an operand of the parameter's shape cannot be added into them in place
        self.reduced: set[str] = set()
        self.data_dependent: dict[str, bool] = (
            {}
        )  # scalar locals decided by tensor values

    # -- kinds ------------------------------------------------------------------------------------------
    def _resolve(self, e: S.Name) -> tuple[str, str | None]:
        name, sub = e.id, e.subscript
        if (
            sub is None
            and name.endswith("_t")
            and name[:-2] in self.states
            and name not in self.kinds
        ):
            return name[:-2], "t"
        return name, sub

    def kind(self, e: S.Expr) -> str:
        """scalar | tensor | bool | tensorbool (the checker has validated everything)."""
        if isinstance(e, S.Number):
            return "scalar"
        if isinstance(e, (S.Bool, S.NoneLit)):
            return "bool"
        if isinstance(e, S.String):
            return "str"
        if isinstance(e, S.Name):
            name, _ = self._resolve(e)
            if name in ("param", "grad"):
                return "tensor"
            if name in self.states:
                return {"count": "scalar", "flag": "bool"}.get(
                    self.states[name].kind, "tensor"
                )
            if name in self.kinds:
                return self.kinds[name]
            sym = self.c.inputs.get(name)
            return "bool" if sym is not None and sym.kind == "bool" else "scalar"
        if isinstance(e, S.Unary):
            return "bool" if e.op == "not" else self.kind(e.operand)
        if isinstance(e, S.Binary):
            if e.op in ("and", "or"):
                return "bool"
            return (
                "tensor"
                if "tensor" in (self.kind(e.left), self.kind(e.right))
                else "scalar"
            )
        if isinstance(e, S.Compare):
            kinds = {self.kind(x) for x in e.operands}
            return "tensorbool" if "tensor" in kinds else "bool"
        if isinstance(e, S.Conditional):
            kinds = {self.kind(e.then), self.kind(e.orelse)}
            return "tensor" if "tensor" in kinds else kinds.pop()
        if isinstance(e, S.Call):
            result = BUILTINS[e.func].result
            if result in ("int", "scalar"):
                return "scalar"
            if result in ("tensor", "bool"):
                return result
            return (
                "tensor" if any(self.kind(a) == "tensor" for a in e.args) else "scalar"
            )
        raise GeneratorBug(f"no kind for {e!r}")

    def is_varying(self, e: S.Expr) -> bool:
        if isinstance(e, S.Name):
            name, _ = self._resolve(e)
            if name in self.states:
                st = self.states[name]
                return st.kind == "count" and st.scope == "parameter"
            return self.varying.get(name, False)
        if isinstance(e, S.Call) and e.func == "randint":
            return True  # a draw per parameter
        if isinstance(e, S.Call) and self._per_parameter(e):
            return True  # a property of each parameter's tensors
        return any(self.is_varying(c) for c in S.children(e))

    def is_data_dependent(self, e: S.Expr) -> bool:
        """Decided by values in tensors (a counter, a norm read as a number), which under
        torch.compile are tensors too; shapes (`dim`, `size`) stay Python numbers there.
        """
        if isinstance(e, S.Name):
            name, _ = self._resolve(e)
            if name in self.states:
                return self.states[name].kind in ("count", "flag")
            return self.data_dependent.get(name, False)
        if isinstance(e, S.Call) and e.func in ("item", "randint"):
            return True
        if isinstance(e, S.Call) and self._per_parameter(e):
            return False
        return any(self.is_data_dependent(c) for c in S.children(e))

    def _per_parameter(self, e: S.Call) -> bool:
        if self.per_step:  # a group or optimizer block reads the optimizer's totals
            return False
        return BUILTINS[e.func].per_parameter and any(
            self.kind(a) == "tensor" for a in e.args
        )

    def is_static(self, e: S.Expr) -> bool:
        """Decided by hyperparameters alone (no counters, no randomness, no locals that are not)."""
        if isinstance(e, S.Name):
            name, _ = self._resolve(e)
            if name in self.states or name in ("param", "grad"):
                return False
            if name in self.kinds:
                return self.static_locals.get(name, False)
            return True
        if isinstance(e, S.Call) and (
            e.func in ("randint", "numel", "onehot") or self._per_parameter(e)
        ):
            return False
        return all(self.is_static(c) for c in S.children(e))

    # -- scalar expressions -----------------------------------------------------------------------------
    def sexpr(self, e: S.Expr) -> ir.SExpr:
        if isinstance(e, S.Number):
            return ir.SConst("math.inf" if e.text == "inf" else e.text)
        if isinstance(e, S.Bool):
            return ir.SConst("True" if e.value else "False")
        if isinstance(e, S.NoneLit):
            return ir.SConst("None")
        if isinstance(e, S.String):
            return ir.SConst(
                repr(e.value)
            )  # spec text becomes a Python literal, escaped
        if isinstance(e, S.Name):
            name, _ = self._resolve(e)
            if name in CONSTANTS:  # (the checker lets no spec name shadow one)
                return ir.SConst(CONSTANTS[name].python)
            if name in self.states:
                st = self.states[name]
                if st.kind in ("count", "flag") and (
                    st.scope == "group"
                    or (st.scope == "optimizer" and self.per_parameter)
                ):
                    # a number of the group dict (or, beside `update:`, of the optimizer's
                    # state), passed in as the hyperparameters are
                    return ir.SRef(st.key)
                return ir.SRef(st.key, varying=st.scope == "parameter", count=True)
            return ir.SRef(name, varying=self.varying.get(name, False))
        if isinstance(e, S.Unary):
            return ir.SUnary(e.op, self.sexpr(e.operand))
        if isinstance(e, S.Binary):
            op = {"^": "**"}.get(e.op, e.op)
            return ir.SBin(op, self.sexpr(e.left), self.sexpr(e.right))
        if isinstance(e, S.Compare):
            ops = e.ops
            if any(isinstance(x, S.NoneLit) for x in e.operands):
                ops = tuple({"==": "is", "!=": "is not"}[op] for op in ops)
            return ir.SCompare(ops, tuple(self.sexpr(x) for x in e.operands))
        if isinstance(e, S.Conditional):
            return ir.SCond(
                self.sexpr(e.cond), self.sexpr(e.then), self.sexpr(e.orelse)
            )
        if isinstance(e, S.Call):
            return ir.SCall(e.func, tuple(self.operand(a) for a in e.args))
        raise GeneratorBug(f"cannot lower scalar {e!r}")

    # -- tensor expressions -----------------------------------------------------------------------------
    def tref(self, name: str) -> ir.TRef:
        if name in ("param", "grad"):
            return ir.TRef(name, name)
        if name in self.states:
            st = self.states[name]
            if st.kind == "total":
                return ir.TRef(st.key, "total")
            return ir.TRef(loop_var(st.key, st.kind), "state")
        return ir.TRef(name, "local")

    def term(self, sign: int, e: S.Expr) -> _Term:
        """Split a term into scalar coefficient and tensor factors, keeping the scalars' written order."""
        coef: ir.SExpr | None = None
        num, den = [], []
        if isinstance(e, S.Binary) and e.grouped and e.op in ("*", "/"):
            # `x + (a * s)`: the author grouped the term, so it is computed as a tensor first
            # (ASGD's `ax.add_(param.sub(ax).mul_(mu))`), not fused into alpha=/value=.
            return _Term(None if sign > 0 else ir.SConst("-1"), [e], [], e)
        for op, f in _factors(e):
            if isinstance(f, S.Unary) and f.op == "-" and self.kind(f) == "tensor":
                sign, f = -sign, f.operand
            if self.kind(f) == "tensor":
                (num if op == "*" else den).append(f)
            else:
                s = self.sexpr(f)
                if coef is None:
                    coef = s if op == "*" else ir.SBin("/", ir.SConst("1"), s)
                else:
                    coef = ir.SBin(op, coef, s)
        if sign < 0:
            coef = ir.SUnary("-", coef) if coef is not None else ir.SConst("-1")
        return _Term(coef, num, den, e)

    def texpr(self, e: S.Expr) -> ir.TExpr:
        if isinstance(e, S.Name):
            return self.tref(self._resolve(e)[0])
        if isinstance(e, S.Unary):
            return ir.TOp("neg", (self.texpr(e.operand),))
        if isinstance(e, S.Binary):
            if e.op in ("+", "-"):
                return self._sum(e)
            if e.op in ("*", "/"):
                return self._product(e)
            if e.op == "@":
                return ir.TOp("matmul", (self.texpr(e.left), self.texpr(e.right)))
            if e.op == "^":
                if isinstance(e.right, S.Number) and e.right.value == 2.0:
                    return ir.TOp("square", (self.texpr(e.left),))
                return ir.TOp("pow", (self.texpr(e.left), self.sexpr(e.right)))
        if isinstance(e, S.Call):
            return self._call(e)
        if isinstance(e, S.Compare):
            ops = {"<": "lt", "<=": "le", ">": "gt", ">=": "ge", "==": "eq", "!=": "ne"}
            if len(e.ops) != 1:
                raise GeneratorBug("chained tensor comparison")
            a, b = e.operands
            return ir.TOp(ops[e.ops[0]], (self.operand(a), self.operand(b)))
        raise GeneratorBug(f"cannot lower tensor expression {print_expr(e)}")

    def operand(self, e: S.Expr):
        return self.texpr(e) if self.kind(e) == "tensor" else self.sexpr(e)

    def _sum(self, e: S.Binary) -> ir.TExpr:
        left, right = e.left, e.right
        sign = 1 if e.op == "+" else -1
        if (
            self.kind(left) != "tensor"
        ):  # s + A, s - A: the tensor leads, the scalar is added
            base = (
                self.texpr(right) if sign > 0 else ir.TOp("neg", (self.texpr(right),))
            )
            return ir.TOp("add", (base, self.sexpr(left)))
        if self.kind(right) != "tensor":
            s = self.sexpr(right)
            return ir.TOp("add" if sign > 0 else "sub", (self.texpr(left), s))
        t = self.term(sign, right)
        if len(t.num) == 1 and not t.den and _is_matmul(t.num[0]):
            return self._addmm(left, t)
        return self._apply_term(self.texpr(left), t)

    def _addmm(self, left: S.Expr, t: _Term) -> ir.TOp:
        """``b*C + c*(A @ B)`` → ``torch.addmm(C, A, B, beta=b, alpha=c)``: one rounding, as torch
        computes Muon's Newton-Schulz steps (a separate product and sum round twice)."""
        m = t.num[0]
        beta = self.term(1, left)
        kwargs = ()
        if beta.coef is not None and len(beta.num) == 1 and not beta.den:
            c = self.texpr(beta.num[0])
            kwargs = self._kw("beta", beta.coef)
        else:
            c = self.texpr(left)
        kwargs += self._kw("alpha", () if t.coef is None else t.coef)
        return ir.TOp("addmm", (c, self.texpr(m.left), self.texpr(m.right)), kwargs)

    def _apply_term(self, base, t: _Term) -> ir.TOp:
        """``base + coef * (num / den)`` as one fused torch operation where torch has one."""
        kw = () if t.coef is None else t.coef
        num, den = t.num, t.den
        if len(num) == 1 and len(den) == 1:
            return ir.TOp(
                "addcdiv",
                (base, self.texpr(num[0]), self.texpr(den[0])),
                self._kw("value", kw),
            )
        if len(num) == 1 and not den and _is_square(num[0]):
            x = self.texpr(num[0].left)
            return ir.TOp("addcmul", (base, x, x), self._kw("value", kw))
        if len(num) == 2 and not den:
            return ir.TOp(
                "addcmul",
                (base, self.texpr(num[0]), self.texpr(num[1])),
                self._kw("value", kw),
            )
        if len(num) == 1 and not den:
            if t.coef is not None and _const(t.coef) == "-1":
                return ir.TOp("sub", (base, self.texpr(num[0])))
            return ir.TOp("add", (base, self.texpr(num[0])), self._kw("alpha", kw))
        # Longer products: build the product, then add it.
        prod = self._build_product(num, den)
        return ir.TOp("add", (base, prod), self._kw("alpha", kw))

    def _kw(self, name: str, coef) -> tuple:
        if coef == () or coef is None or _const(coef) == "1":
            return ()
        return ((name, coef),)

    def _build_product(self, num, den) -> ir.TExpr:
        acc = self.texpr(num[0]) if num else None
        for f in num[1:]:
            acc = ir.TOp("mul", (acc, self.texpr(f)))
        for f in den:
            acc = (
                ir.TOp("div", (acc, self.texpr(f)))
                if acc is not None
                else ir.TOp("reciprocal", (self.texpr(f),))
            )
        return acc

    def _product(self, e: S.Binary) -> ir.TExpr:
        lk, rk = self.kind(e.left), self.kind(e.right)
        if lk == "tensor" and rk == "tensor":
            return ir.TOp(
                "mul" if e.op == "*" else "div",
                (self.texpr(e.left), self.texpr(e.right)),
            )
        if lk == "tensor":
            return ir.TOp(
                "mul" if e.op == "*" else "div",
                (self.texpr(e.left), self.sexpr(e.right)),
            )
        if e.op == "*":  # s * A: multiplication commutes exactly
            return ir.TOp("mul", (self.texpr(e.right), self.sexpr(e.left)))
        return ir.TOp(
            "mul", (ir.TOp("reciprocal", (self.texpr(e.right),)), self.sexpr(e.left))
        )

    def _call(self, e: S.Call) -> ir.TExpr:
        f, args = e.func, e.args
        op = BUILTINS[f].tensor
        if op is not None:  # one torch operation, argument for argument (sqrt, atan2)
            return ir.TOp(op.op, tuple(self.texpr(a) for a in args))
        if f in ("max", "min"):
            a, b = args
            if self.kind(a) != "tensor":
                a, b = b, a  # max is symmetric
            if self.kind(b) == "tensor":
                return ir.TOp(
                    "maximum" if f == "max" else "minimum",
                    (self.texpr(a), self.texpr(b)),
                )
            return ir.TOp(
                "clamp_min" if f == "max" else "clamp_max",
                (self.texpr(a), self.sexpr(b)),
            )
        if f == "clamp":
            return ir.TOp(
                "clamp", (self.texpr(args[0]), self.sexpr(args[1]), self.sexpr(args[2]))
            )
        if f == "lerp":
            return ir.TOp(
                "lerp", (self.texpr(args[0]), self.texpr(args[1]), self.sexpr(args[2]))
            )
        if f == "where":
            a, b = self.operand(args[1]), self.operand(args[2])
            if self.kind(args[1]) != "tensor" and self.kind(args[2]) != "tensor":
                # torch.where of two numbers is a tensor of the default dtype: one number as
                # a 0-d tensor of the parameter's dtype makes it that dtype (1.2 stays 1.2 in
                # float64), without a parameter-sized tensor of it
                b = ir.TOp("number_like", (ir.TRef("param", "param"), b))
            return ir.TOp("where", (self.texpr(args[0]), a, b))
        if f == "dot":
            a, b = (ir.TOp("flatten", (self.texpr(x),)) for x in args)
            return ir.TOp("dot", (a, b))
        if f in ("norm", "mean"):
            x = self.texpr(args[0])
            if len(args) == 1:
                return ir.TOp(f, (x,))
            dim = ir.SConst(print_expr(args[1]))
            return ir.TOp(f, (x,), (("dim", dim), ("keepdim", ir.SConst("True"))))
        if f == "onehot":
            self.helpers.add("onehot")
            return ir.TOp("onehot", (ir.TRef("param", "param"), self.sexpr(args[0])))
        raise GeneratorBug(f"no tensor lowering for {f}()")

    # -- statements --------------------------------------------------------------------------------------
    def body(self, stmts, later: frozenset) -> list[ir.Stmt]:
        out = []
        for k, s in enumerate(stmts):
            after = later | _reads(stmts[k + 1 :])
            out.extend(self.stmt(s, after, stmts[k + 1 :]))
        return out

    def stmt(self, s, later, rest) -> list[ir.Stmt]:
        if isinstance(s, S.Assign):
            # `x <- a * (1 if adam else r) * g`: one statement per case (in a coverage build
            # every choice, so that each way has its probe: a way that never ran in a
            # statement that did is a branch the grid still has to reach)
            split = self._nested_choice(s)
            if split is not None:
                return self.stmt(split, later, rest)
        if isinstance(s, S.If):
            return [self._if(s.branches, s.orelse, later)]
        if isinstance(s, S.Repeat):
            return [self._repeat(s, later)]
        if isinstance(s, S.ForEachParameter):
            return [ir.ForEachParameter(tuple(self.body(s.body, later)))]
        if isinstance(s, S.Return):
            return [ir.Return()]
        if isinstance(s, S.Check):
            return [
                ir.Raise(
                    checks.negate(self.sexpr(s.expr)),
                    s.message.exception,
                    checks.message(s.message.text),
                )
            ]
        name, _ = self._resolve(s.target)
        if name in self.states:
            st = self.states[name]
            if st.kind in ("count", "flag"):
                return [self._count(st, s.value, name in later)]
            return [self._update_state(st, s)]
        if name == "param":
            return [self._update_persistent(self.tref("param"), "param", s.value)]
        kind = self.kind(s.value)
        if kind != "tensor":
            self.kinds[name] = "scalar"
            # set under a per-parameter condition, a value differs between parameters
            self.varying[name] = (
                self.is_varying(s.value)
                or self.varying_branches > 0
                or name in self.force_varying
            )
            self.data_dependent[name] = self.is_data_dependent(s.value)
            self.static_locals[name] = self.is_static(s.value)
            return [ir.ScalarLet(name, self.sexpr(s.value), self.varying[name])]
        return self._tensor_local(name, s.value, later, rest)

    def _nested_choice(self, s: S.Assign) -> S.If | None:
        """A choice inside a tensor expression (``(1 if adam else r)`` in a product) becomes
        an ``if`` around the whole assignment, once with each alternative, as the top-level
        ``x <- a if c else b`` already is; in a coverage build, every choice, numbers' too (the
        ways each get a probe); None when the value has no such choice."""
        if self.kind(s.value) != "tensor" and not self.coverage:
            return None

        def find(e, top):
            # (a choice of numbers, `(1.0 if fixed_decay else lr)`, stays a number, but in
            # a coverage build, where the choice itself is what is measured)
            if isinstance(e, S.Conditional) and (
                self.coverage or (not top and self.kind(e) == "tensor")
            ):
                return e
            for c in S.children(e):
                found = find(c, False)
                if found is not None:
                    return found
            return None

        # the first value of a lazy state (`initially a if c else b`) chooses the same way,
        # its top-level choice included
        first = None if s.initially is None else find(s.initially, False)
        if first is not None:
            return S.If(
                (
                    (
                        first.cond,
                        (replace(s, initially=_put(s.initially, first, first.then)),),
                    ),
                ),
                (replace(s, initially=_put(s.initially, first, first.orelse)),),
                s.span,
            )
        choice = find(s.value, True)
        if choice is None:
            return None

        then = replace(s, value=_put(s.value, choice, choice.then))
        orelse = replace(s, value=_put(s.value, choice, choice.orelse))
        return S.If(((choice.cond, (then,)),), (orelse,), s.span)

    def _repeat(self, s: S.Repeat, later) -> ir.Repeat:
        """A bounded loop: what is private at the top of an iteration must still be at its end."""
        inner = later | _reads(s.body)
        for _ in range(3):
            start = dict(self.owned)
            body = self.body(s.body, inner)
            lost = {k for k, v in start.items() if v and not self.owned.get(k, False)}
            if not lost:
                break
            self.owned = {k: v and k not in lost for k, v in start.items()}
        return ir.Repeat(self.sexpr(s.count), tuple(body))

    def _if(self, branches, orelse, later) -> ir.If:
        (cond, body), more = branches[0], branches[1:]
        before = set(self.kinds)
        per_parameter = self.is_varying(cond)
        self.varying_branches += per_parameter
        saved, reduced = dict(self.owned), set(self.reduced)
        then = self.body(body, later)
        owned_then, reduced_then = self.owned, self.reduced
        self.owned, self.reduced = dict(saved), set(reduced)
        other = [self._if(more, orelse, later)] if more else self.body(orelse, later)
        self.reduced |= reduced_then  # smaller after the `if` where it may be
        self.varying_branches -= per_parameter
        # Owned after the `if` only where every branch left it owned.
        self.owned = {k: v and owned_then.get(k, False) for k, v in self.owned.items()}
        # A scalar that varies per parameter in one branch is a per-parameter value in all.
        varying = {s.name for s in ir.scalar_lets(then + other) if s.varying}
        for name in varying:
            self.varying[name] = True
        then, other = _mark_varying(then, varying), _mark_varying(other, varying)
        if self.coverage:
            then = [_probe(cond, "then", body)] + then
            if not more:
                other = [_probe(cond, "else", orelse)] + other
        test = self.sexpr(cond)
        traced = (
            self._branchless(test, then, other, before)
            if per_parameter and self.is_data_dependent(cond)
            else None
        )
        return ir.If(test, tuple(then), tuple(other), per_parameter, traced)

    def _branchless(self, cond, then, orelse, before) -> tuple[ir.Stmt, ...] | None:
        """The `if` as torch.compile can trace it: each branch on copies of what it changes,
        then ``torch.where(condition, then, else)`` per value. None where a branch does more
        than compute values and update tensors in place (counters, loops, nested branches).
        """
        simple = (ir.ScalarLet, ir.TensorLet, ir.InPlace)
        if not all(isinstance(s, simple) for s in then + orelse):
            return None
        self.branch_count += 1
        test = f"taken{self.branch_count}_"
        out: list[ir.Stmt] = [ir.ScalarLet(test, cond, True)]
        renamed = []
        for tag, stmts in (("then", then), ("else", orelse)):
            names: dict[str, str] = {}
            for s in stmts:
                s = ir.rename(s, names)
                if isinstance(s, ir.InPlace) and s.target.name not in names.values():
                    # the branch's first change of a tensor it did not make: on a copy
                    original = s.target.name
                    copy = f"{original}_{tag}_"
                    out.append(ir.TensorLet(copy, ir.TOp("clone", (s.target,)), False))
                    names[original] = copy
                    s = ir.InPlace(ir.TRef(copy, "local"), s.ops)
                elif isinstance(s, (ir.TensorLet, ir.ScalarLet)):
                    names[s.name] = f"{s.name}_{tag}_"
                    s = replace(s, name=names[s.name])
                out.append(s)
            renamed.append(names)
        then_names, else_names = renamed
        kinds = {}
        for s in then + orelse:
            if isinstance(s, ir.InPlace):
                kinds[s.target.name] = s.target
            elif isinstance(s, ir.TensorLet):
                kinds[s.name] = "tensor"
            elif isinstance(s, ir.ScalarLet):
                kinds[s.name] = "scalar"
        for name, kind in kinds.items():
            both = name in then_names and name in else_names
            if not both and isinstance(kind, str) and name not in before:
                continue  # set in one branch only: not read after the `if`
            a, b = then_names.get(name, name), else_names.get(name, name)
            if kind == "scalar":
                pick = ir.SCall(
                    "where", (ir.SRef(test, True), ir.SRef(a, True), ir.SRef(b, True))
                )
                out.append(ir.ScalarLet(name, pick, True))
                continue
            ta = ir.TRef(a, "local") if a != name or kind == "tensor" else kind
            tb = ir.TRef(b, "local") if b != name or kind == "tensor" else kind
            pick = ir.TOp("where", (ir.SRef(test, True), ta, tb))
            if kind == "tensor":
                out.append(ir.TensorLet(name, pick, False))
            else:
                out.append(ir.InPlace(kind, (ir.TOp("copy", (pick,)),)))
        return tuple(out)

    def _count(self, st: S.State, value: S.Expr, read_after: bool) -> ir.CountUpdate:
        terms = _terms(value)
        me = lambda e: isinstance(e, S.Name) and self._resolve(e)[0] == st.name.id
        if len(terms) == 2 and me(terms[0][1]) and terms[0][0] == 1:
            sign, v = terms[1]
            val = self.sexpr(v) if sign > 0 else ir.SUnary("-", self.sexpr(v))
            return ir.CountUpdate(st.key, "+=", val, st.scope, read_after)
        if isinstance(value, S.Binary) and value.op == "*" and me(value.left):
            return ir.CountUpdate(
                st.key, "*=", self.sexpr(value.right), st.scope, read_after
            )
        return ir.CountUpdate(st.key, "fill", self.sexpr(value), st.scope, read_after)

    def _update_state(self, st: S.State, s: S.Assign) -> ir.Stmt:
        target = self.tref(st.name.id)
        # (a later assignment, without `initially`, updates a state made earlier this step)
        if st.lazy and s.initially is not None:
            first = self.texpr(s.initially)
            if isinstance(s.value, S.Name) and self._resolve(s.value)[0] == st.name.id:
                # `x0 <- x0 initially param`: kept from its first value on, nothing to do later
                return ir.LazyInit(st.key, first, ())
            update = self._update_persistent(target, st.name.id, s.value)
            return ir.LazyInit(st.key, first, (update,))
        return self._update_persistent(target, st.name.id, s.value)

    def _update_persistent(
        self, target: ir.TRef, name: str, value: S.Expr
    ) -> ir.InPlace:
        for rule in UPDATE_RULES:
            ops = rule(self, name, value)
            if ops is not None:
                return ir.InPlace(target, tuple(ops))
        raise GeneratorBug("no update rule matched")  # the last rule always matches

    def _tensor_local(self, name, value, later, rest) -> list[ir.Stmt]:
        self.kinds[name] = "tensor"
        if isinstance(value, S.Conditional) and self.is_static(value.cond):
            cond = value.cond
            a = S.Assign(S.Name(name, None, value.span), value.then, None, value.span)
            b = S.Assign(S.Name(name, None, value.span), value.orelse, None, value.span)
            return [self._if(((cond, (a,)),), (b,), later)]
        if isinstance(value, S.Name):
            src, _ = self._resolve(value)
            if (
                src in self.owned
            ):  # the source now has two names: neither may be mutated
                self.owned[src] = False
            hazard = _mutated_while_read(src, name, rest)
            self.owned[name] = False
            if hazard:
                self.owned[name] = True
                return [
                    ir.TensorLet(name, ir.TOp("clone", (self.tref(src),)), alias=False)
                ]
            return [ir.TensorLet(name, self.tref(src), alias=True)]
        if isinstance(value, S.Call) and value.func in VIEWS:
            # A view shares its source's memory; bfloat16() of a bfloat16 tensor is the tensor.
            src = value.args[0]
            same = isinstance(src, S.Name) and self._resolve(src)[0] == name
            private = same and self.owned.get(name, False)
            if isinstance(src, S.Name) and not same:
                self.owned[self._resolve(src)[0]] = False
            self.owned[name] = private
            return [ir.TensorLet(name, self.texpr(value), alias=False)]
        reduced = self._reduced(value)
        if self.owned.get(name) and (reduced or name not in self.reduced):
            # The local's buffer is private: update it in place, like a state, where a rule
            # says how; otherwise the name is bound to the new result.
            for rule in UPDATE_RULES[:-1]:
                ops = rule(self, name, value)
                if ops is not None:
                    return [ir.InPlace(ir.TRef(name, "local"), tuple(ops))]
        expr = self.texpr(value)
        self.owned[name] = True
        if reduced:
            self.reduced.add(name)
        else:
            self.reduced.discard(name)
        return [ir.TensorLet(name, expr, alias=False)]

    def _reduced(self, e: S.Expr) -> bool:
        """Whether a tensor value may be smaller than the parameter: a reduction, a local
        holding one, or arithmetic on those and numbers only."""
        if isinstance(e, S.Call) and e.func in ("mean", "norm", "sum", "dot"):
            return True
        if isinstance(e, S.Name):
            name, _ = self._resolve(e)
            return name in self.reduced or self.kind(e) != "tensor"
        if self.kind(e) != "tensor":
            return True
        parts = S.children(e)
        return bool(parts) and all(self._reduced(c) for c in parts)


# Calls whose result may share memory with their argument.
VIEWS = ("transpose", "bfloat16")


def _is_matmul(e: S.Expr) -> bool:
    return isinstance(e, S.Binary) and e.op == "@"


def _put(e: S.Expr, choice: S.Expr, with_: S.Expr) -> S.Expr:
    """``e`` with the sub-expression ``choice`` (by identity) replaced by ``with_``."""
    if e is choice:
        return with_
    if isinstance(e, S.Binary):
        return replace(
            e, left=_put(e.left, choice, with_), right=_put(e.right, choice, with_)
        )
    if isinstance(e, S.Unary):
        return replace(e, operand=_put(e.operand, choice, with_))
    if isinstance(e, S.Call):
        return replace(e, args=tuple(_put(a, choice, with_) for a in e.args))
    if isinstance(e, S.Conditional):
        return replace(
            e,
            cond=_put(e.cond, choice, with_),
            then=_put(e.then, choice, with_),
            orelse=_put(e.orelse, choice, with_),
        )
    if isinstance(e, S.Compare):
        return replace(e, operands=tuple(_put(x, choice, with_) for x in e.operands))
    return e


def _probe(cond: S.Expr, way: str, body) -> ir.Probe:
    span = cond.span
    lines: dict[str, None] = {}

    def visit(stmts):
        for s in stmts:
            lines[f"{s.span.path}:{s.span.line}"] = None
            if isinstance(s, S.If):
                for c, b in s.branches:
                    visit(b)
                visit(s.orelse)
            elif isinstance(s, (S.Repeat, S.ForEachParameter)):
                visit(s.body)

    visit(body)
    return ir.Probe(
        f"{span.path}:{span.line}:{span.column} {way}", print_expr(cond), tuple(lines)
    )


def _mark_varying(stmts, names: set) -> list:
    out = []
    for s in stmts:
        if isinstance(s, ir.ScalarLet) and s.name in names and not s.varying:
            s = ir.ScalarLet(s.name, s.value, True)
        elif isinstance(s, ir.If):
            s = replace(
                s,
                then=tuple(_mark_varying(s.then, names)),
                orelse=tuple(_mark_varying(s.orelse, names)),
            )
        out.append(s)
    return out


def _const(e) -> str | None:
    if isinstance(e, ir.SConst):
        return e.text
    if isinstance(e, ir.SUnary) and e.op == "-" and isinstance(e.operand, ir.SConst):
        return "-" + e.operand.text
    return None


def _is_square(e: S.Expr) -> bool:
    return (
        isinstance(e, S.Binary)
        and e.op == "^"
        and isinstance(e.right, S.Number)
        and e.right.value == 2.0
    )


def _names(e) -> set[str]:
    """Names an expression or statement reads (``m_t`` counts as ``m`` too)."""
    if isinstance(e, S.Name):
        return {e.id, e.id[:-2]} if e.id.endswith("_t") else {e.id}
    if isinstance(e, S.Assign):
        return _names(e.value) | (_names(e.initially) if e.initially else set())
    out: set[str] = set()
    for child in S.children(e):
        out |= _names(child)
    return out


def _reads(stmts) -> frozenset:
    out = set()
    for s in stmts:
        if isinstance(s, S.Assign):
            out |= _names(s.value)
            if s.initially is not None:
                out |= _names(s.initially)
        elif isinstance(s, S.If):
            for c, b in s.branches:
                out |= _names(c) | _reads(b)
            out |= _reads(s.orelse)
        elif isinstance(s, S.Repeat):
            out |= _names(s.count) | _reads(s.body)
    return frozenset(out)


def _flat(stmts):
    for s in stmts:
        if isinstance(s, S.Assign):
            yield s
        elif isinstance(s, S.If):
            for _, b in s.branches:
                yield from _flat(b)
            yield from _flat(s.orelse)
        elif isinstance(
            s, S.Repeat
        ):  # twice: a later iteration reads what an earlier wrote
            yield from _flat(s.body)
            yield from _flat(s.body)


def _mutated_while_read(src: str, alias: str, rest) -> bool:
    """Is ``src`` updated in place while ``alias`` (another name for it) is still read afterwards?"""
    flat = list(_flat(rest))
    for k, s in enumerate(flat):
        if s.target.id == alias:
            return False  # the alias is rebound first
        if s.target.id == src:
            return any(alias in _names(x.value) for x in flat[k:])
    return False


# ---- the rule table for updates of persistent tensors (states, the parameter, owned locals) ----------


def _x(lw: Lowerer, name: str, e: S.Expr) -> bool:
    return isinstance(e, S.Name) and lw._resolve(e)[0] == name


def _scaled_x(lw: Lowerer, name: str, e: S.Expr):
    """``x`` → coefficient None; ``b * x`` or ``x * b`` (b a scalar) → b; otherwise False."""
    if _x(lw, name, e):
        return None
    if isinstance(e, S.Binary) and e.op == "*":
        if _x(lw, name, e.right) and lw.kind(e.left) != "tensor":
            return e.left
        if _x(lw, name, e.left) and lw.kind(e.right) != "tensor":
            return e.right
    return False


def rule_lerp(lw: Lowerer, name: str, e: S.Expr):
    """b * x + (1 - b) * a  →  x.lerp_(a, 1 - b)   (torch's exponential moving average)."""
    terms = _terms(e)
    if len(terms) != 2 or terms[0][0] != 1 or terms[1][0] != 1:
        return None
    first = terms[0][1]
    # Only the paper's spelling `b * x`: `x * b + (1 - b) * a` is computed as written (mul_, add_).
    if not (
        isinstance(first, S.Binary) and first.op == "*" and _x(lw, name, first.right)
    ):
        return None
    b = _scaled_x(lw, name, first)
    rest = terms[1][1]
    if b in (None, False) or not (isinstance(rest, S.Binary) and rest.op == "*"):
        return None
    w, a = rest.left, rest.right
    if not (
        isinstance(w, S.Binary) and w.op == "-" and _is_one(w.left) and w.right == b
    ):
        return None
    if lw.kind(a) != "tensor" or (isinstance(a, S.Binary) and a.op in ("*", "/", "^")):
        return None  # a product goes to mul_().addcmul_(), as torch does for the second moment
    return [ir.TOp("lerp", (lw.texpr(a), lw.sexpr(w)))]


def rule_scaled_sum(lw: Lowerer, name: str, e: S.Expr):
    """[b *] x ± t1 ± t2 …  →  x[.mul_(b)].add_/addcmul_/addcdiv_(…) for each term, in order."""
    terms = _terms(e)
    # x must be the first or second term: (a + x) + b == (x + a) + b exactly, later positions are not.
    pos = next(
        (
            k
            for k, (sg, t) in enumerate(terms[:2])
            if sg == 1 and _scaled_x(lw, name, t) is not False
        ),
        None,
    )
    if pos is None or len(terms) < 2 and _scaled_x(lw, name, terms[0][1]) is None:
        return None
    scale = _scaled_x(lw, name, terms[pos][1])
    rest = terms[:pos] + terms[pos + 1 :]
    ops = []
    if scale is not None:
        ops.append(ir.TOp("mul", (lw.sexpr(scale),)))
    for sign, t in rest:
        if ops and name in _names(t):
            return None  # the term would read x after it changed: leave it to copy_
        if lw.kind(t) != "tensor":
            s = lw.sexpr(t)
            ops.append(ir.TOp("add" if sign > 0 else "sub", (s,)))
            continue
        op = lw._apply_term(None, lw.term(sign, t))
        ops.append(ir.TOp(op.op, op.args[1:], op.kwargs))
    return ops or None


def rule_scale(lw: Lowerer, name: str, e: S.Expr):
    """x * a  →  x.mul_(a);   x / a  →  x.div_(a)."""
    if isinstance(e, S.Binary) and e.op in ("*", "/") and _x(lw, name, e.left):
        return [ir.TOp("mul" if e.op == "*" else "div", (lw.operand(e.right),))]
    if isinstance(e, S.Binary) and e.op == "*" and _x(lw, name, e.right):
        return [ir.TOp("mul", (lw.operand(e.left),))]
    return None


def rule_extremum(lw: Lowerer, name: str, e: S.Expr):
    """max([b *] x, a) → torch.maximum(x[.mul_(b)], a, out=x);  min likewise (Adamax's u_t)."""
    if isinstance(e, S.Call) and e.func in ("max", "min") and len(e.args) == 2:
        a, b = e.args
        if _scaled_x(lw, name, a) is False:
            a, b = b, a  # max and min are symmetric
        scale = _scaled_x(lw, name, a)
        if scale is False or lw.kind(b) != "tensor" or name in _names(b):
            return None
        ops = [] if scale is None else [ir.TOp("mul", (lw.sexpr(scale),))]
        op = "maximum" if e.func == "max" else "minimum"
        return ops + [ir.TOp(op, (lw.texpr(b),))]
    return None


_IN_PLACE_UNARY = {b.name: b.tensor.op for b in unary_elementwise()}


def rule_unary(lw: Lowerer, name: str, e: S.Expr):
    """sqrt(x) → x.sqrt_(), and the other elementwise functions of x alone (builtins.py's
    ``unary_elementwise``: cos(x) → x.cos_())."""
    if (
        isinstance(e, S.Call)
        and e.func in _IN_PLACE_UNARY
        and len(e.args) == 1
        and _x(lw, name, e.args[0])
    ):
        return [ir.TOp(_IN_PLACE_UNARY[e.func], ())]
    if isinstance(e, S.Unary) and e.op == "-" and _x(lw, name, e.operand):
        return [ir.TOp("neg", ())]
    return None


def rule_lerp_call(lw: Lowerer, name: str, e: S.Expr):
    """lerp(x, a, w)  →  x.lerp_(a, w)   (Adafactor's and Muon's running averages)."""
    if (
        isinstance(e, S.Call)
        and e.func == "lerp"
        and _x(lw, name, e.args[0])
        and name not in _names(e.args[1])
    ):
        return [ir.TOp("lerp", (lw.texpr(e.args[1]), lw.sexpr(e.args[2])))]
    return None


def rule_fill(lw: Lowerer, name: str, e: S.Expr):
    """``x <- 0``: a number into a tensor (the optimizer's totals start each step from 0)."""
    if lw.kind(e) in ("scalar", "int"):
        return [ir.TOp("fill", (lw.sexpr(e),))]
    return None


def rule_copy(lw: Lowerer, name: str, e: S.Expr):
    """anything else  →  x.copy_(expression)."""
    return [ir.TOp("copy", (lw.texpr(e),))]


def rule_clamp(lw: Lowerer, name: str, e: S.Expr):
    """clamp([b *] x, lo, hi) → x[.mul_(b)].clamp_(lo, hi)   (Rprop's step sizes)."""
    if isinstance(e, S.Call) and e.func == "clamp" and len(e.args) == 3:
        inner = e.args[0]
        if _x(lw, name, inner):
            ops = []
        elif (
            isinstance(inner, S.Binary) and inner.op == "*" and _x(lw, name, inner.left)
        ):
            if name in _names(inner.right):
                return None
            ops = [ir.TOp("mul", (lw.operand(inner.right),))]
        else:
            return None
        return ops + [ir.TOp("clamp", (lw.sexpr(e.args[1]), lw.sexpr(e.args[2])))]
    return None


UPDATE_RULES = (
    rule_lerp,
    rule_lerp_call,
    rule_scaled_sum,
    rule_scale,
    rule_extremum,
    rule_clamp,
    rule_unary,
    rule_fill,
    rule_copy,
)


# ---- the optimizer ------------------------------------------------------------------------------------


_PY_TYPES = {
    "float": ir.PyType.FLOAT,
    "int": ir.PyType.INT,
    "bool": ir.PyType.BOOL,
    "tensor": ir.PyType.TENSOR,
    "str": ir.PyType.STR,
}


def _arg_type(inp: S.Input) -> ir.ArgType:
    if inp.type.kind == "tuple":
        return ir.ArgType(
            items=tuple(
                ir.ArgType(tuple(_PY_TYPES[p] for p in n.split("|")), optional)
                for n, optional in zip(inp.type.names, inp.type.optional)
            )
        )
    return ir.ArgType(
        tuple(_PY_TYPES[n] for n in inp.type.names), any(inp.type.optional)
    )


def _literal(e: S.Expr) -> ir.SExpr:
    """A default: a number, bool, None, string or a tuple of them."""
    if isinstance(e, S.Tuple):
        return ir.STuple(tuple(_literal(x) for x in e.items))
    if isinstance(e, S.Unary):
        return ir.SUnary("-", _literal(e.operand))
    if isinstance(e, S.Bool):
        return ir.SConst("True" if e.value else "False")
    if isinstance(e, S.NoneLit):
        return ir.SConst("None")
    if isinstance(e, S.String):
        return ir.SConst(repr(e.value))  # spec text: a literal, escaped
    return ir.SConst("math.inf" if e.text == "inf" else e.text)


def lower(checked: CheckedSpec, coverage: bool = False) -> ir.Optimizer:
    """The optimizer's IR; with ``coverage``, every branch opens with an ir.Probe."""
    spec = checked.spec
    lw = Lowerer(checked, coverage)
    if checked.program is None:
        probe = Lowerer(checked)
        probed = []
        for b in checked.blocks:
            probe.per_step = b.mode in ("group", "step")
            probed += ir.walk(probe.body(b.body, frozenset()))
        lw.force_varying = frozenset(
            s.name for s in probed if isinstance(s, ir.ScalarLet) and s.varying
        )
    args = []
    for inp in spec.inputs:
        args.append(
            ir.Argument(
                name=inp.arg_name,
                symbols=tuple(n.id for n in inp.names),
                default=None if inp.default is None else _literal(inp.default),
                type=_arg_type(inp),
                keyword=inp.keyword,
                fixed=inp.fixed,
                tensor_ok=any("tensor" in n.split("|") for n in inp.type.names),
                constructor=inp.constructor,
                is_flag=inp.arg_name in IMPLEMENTATION_FLAGS,
                squeezed=inp.squeezed,
                explicit=inp.explicit,
            )
        )
    flat = checked.program is not None
    states = []
    for st in spec.states:
        states.append(
            ir.StateBuffer(
                key=st.key,
                symbol=st.name.id,
                kind=st.kind,
                scope=st.scope,
                # a flat update's states are printed from the spec (generator.emit.python.flat);
                # `<- param` is a copy of the parameter (SRef("param"), printed as a clone)
                init=None if st.init is None or flat else lw.sexpr(st.init),
                condition=None if st.condition is None else lw.sexpr(st.condition),
                eager=st.eager,
                on_device=st.on_device,
                reduced=None if st.reduced is None else int(st.reduced),
                as_number=st.as_number,
                stored_as=st.stored_as,
                list_name=list_name(st.key),
                var=loop_var(st.key, st.kind),
            )
        )
    # the blocks in written order: each `update:` closes a pass (its optimizer and group blocks
    # run before its parameters)
    passes, current, mode = [], ([], [], []), "each"
    for block in checked.blocks if not flat else ():
        lw.per_step = block.mode in ("group", "step")
        lowered = lw.body(block.body, frozenset())
        lw.per_step = False
        step_part, group_part, body_part = current
        if block.mode == "step":
            step_part.extend(lowered)
        elif block.mode == "group":
            group_part.extend(lowered)
        else:
            body_part.extend(lowered)
            mode = block.mode
            passes.append(current)
            current = ([], [], [])
    step_block, group_block, body = passes[0] if passes else current
    group_counts = [
        st.key
        for st in spec.states
        if st.kind in ("count", "flag")
        and (st.scope == "group" or (st.scope == "optimizer" and mode == "each"))
    ]
    totals = [st.key for st in spec.states if st.kind == "total"]

    def numbers_of(group_part) -> list[str]:
        # what the pass's functional receives besides the inputs: the group's counters and
        # the values its group block computed
        made = [s.name for s in ir.walk(group_part) if isinstance(s, ir.ScalarLet)]
        return group_counts + [n for n in dict.fromkeys(made) if n not in group_counts]

    hoisted, body = _hoist(body, set(checked.inputs) | set(numbers_of(group_block)))
    # every pass receives every state's list: the inputs that decide whether a state exists
    # (`state v <- 0 if amsgrad`) reach each pass, read or not

    decide = [
        st.condition
        for st in states
        if st.scope == "parameter" and st.condition is not None
    ]

    def decides(name: str) -> bool:
        return any(
            uses(c, lambda x: isinstance(x, ir.SRef) and x.name == name) for c in decide
        )

    later = []
    for step_part, group_part, body_part in passes[1:]:
        numbers = numbers_of(group_part)
        later_hoisted, later_body = _hoist(
            body_part, set(checked.inputs) | set(numbers)
        )
        reads = later_body + later_hoisted
        later.append(
            ir.Pass(
                step_block=tuple(step_part),
                group_block=tuple(group_part),
                body=tuple(later_body),
                hoisted=tuple(later_hoisted),
                hyper=tuple(
                    s for s in _hyper_order(spec) if _reads_name(reads, s) or decides(s)
                )
                + tuple(k for k in numbers if _reads_name(reads, k))
                + tuple(k for k in totals if k in ir.refs(reads, ir.TRef)),
            )
        )
    hyper = sorted(
        s
        for s in checked.used_inputs
        if s in checked.inputs
        and checked.inputs[s].decl.arg_name not in IMPLEMENTATION_FLAGS
        # with several passes, each functional receives what its pass reads
        and (not later or _reads_name(body + hoisted, s) or decides(s))
    )
    if flat:
        mode = "flat"
    # The path lands in a comment and docstrings: keep it to one printable line without
    # quotes, and never a machine's absolute path (a spec outside the project and the
    # working directory is named by its file name alone)
    spec_path = "".join(
        ch if ch.isprintable() and ch not in '"\\' else "?"
        for ch in (Path(spec.path).name if Path(spec.path).is_absolute() else spec.path)
    )
    optimizer = ir.Optimizer(
        name=spec.name,
        spec_path=spec_path,
        spec_hash=hashlib.sha256(spec.source.encode()).hexdigest()[:16],
        summary=spec.doc("summary") or f"Implements the {spec.name} algorithm.",
        references=tuple(d.text for d in spec.docs if d.key == "reference"),
        notes=tuple(d.text for d in spec.docs if d.key == "note"),
        arguments=tuple(args),
        validations=checks.validations(checked, lw) + checks.unsharded(spec, mode),
        states=tuple(states),
        mode=mode,
        step_block=tuple(step_block),
        body=tuple(body),
        hoisted=tuple(hoisted),
        hyper=tuple(s for s in _hyper_order(spec) if s in hyper)
        + tuple(k for k in numbers_of(group_block) if _reads_name(body + hoisted, k))
        + tuple(k for k in totals if k in ir.refs(body + hoisted, ir.TRef)),
        group_block=tuple(group_block),
        helpers=frozenset(lw.helpers),
        has_foreach=any(a.name == "foreach" for a in args) and mode == "each",
        defaults_order=spec.defaults_order.names if spec.defaults_order else None,
        none_means=checks.none_means(checked, lw),
        step_checks=checks.step_checks(checked, lw, mode, spec_path),
        program=checked.program,
        sparse=spec.sparse,
        reads_numbers=any(
            _calls(e, "item") for s in ir.walk(body) for e in ir.expressions(s)
        ),
        methods=tuple(
            # each method lowered on its own: its locals are not the update's
            ir.Method(m.name.id, m.doc, tuple(Lowerer(checked).body(body, frozenset())))
            for m, body in checked.methods
        ),
        later_passes=tuple(later),
    )
    # its scalar expressions without the operations that return their operand (fold.RULES)
    return fold_optimizer(optimizer)


def _reads_name(stmts, name: str) -> bool:

    return any(
        uses(e, lambda x: isinstance(x, ir.SRef) and x.name == name)
        for s in ir.walk(stmts)
        for e in ir.expressions(s)
    )


def _calls(e, func: str) -> bool:
    if isinstance(e, ir.SCall) and e.func == func:
        return True
    parts = [getattr(e, f, None) for f in ("left", "right", "operand", "cond", "then")]
    parts += [getattr(e, "orelse", None)] + list(getattr(e, "operands", ()))
    parts += list(getattr(e, "args", ())) + [v for _, v in getattr(e, "kwargs", ())]
    return any(p is not None and _calls(p, func) for p in parts)


def _hyper_order(spec: S.Spec):
    for inp in spec.inputs:
        for n in inp.names:
            yield n.id


def _hoist(body, inputs: set):
    """Move scalars decided by hyperparameters alone to the top: computed once per group."""
    hoisted, rest, static = [], [], set(inputs)
    # a name assigned more than once stays in the loop: hoisted, its later rebinding inside the
    # loop would carry over from one parameter to the next
    counts: dict[str, int] = {}
    for s in ir.walk(body):
        if isinstance(s, ir.ScalarLet):
            counts[s.name] = counts.get(s.name, 0) + 1
    for s in body:
        if (
            isinstance(s, ir.ScalarLet)
            and not s.varying
            and counts[s.name] == 1
            and _static(s.value, static)
        ):
            hoisted.append(s)
            static.add(s.name)
        else:
            rest.append(s)
    return hoisted, rest


def _static(e: ir.SExpr, static: set) -> bool:
    if isinstance(e, ir.SRef):
        return not e.count and e.name in static
    if isinstance(e, ir.SConst):
        return True
    if isinstance(e, ir.SCall):
        return e.func not in ("randint", "numel") and all(
            not isinstance(a, (ir.TRef, ir.TOp)) and _static(a, static) for a in e.args
        )
    parts = [
        getattr(e, f)
        for f in ("left", "right", "operand", "cond", "then", "orelse")
        if hasattr(e, f)
    ] + list(getattr(e, "operands", ()))
    return all(_static(p, static) for p in parts)
