"""The Lowerer's expressions: spec expressions to scalar and tensor IR, each value's kind decided as
lowering proceeds.

A scalar expression becomes an ir.SExpr (states kept as numbers read from the group dict or the
optimizer's counters, constants as their Python spelling); a tensor expression becomes ir.TOp calls
of torch operations. A sum term's scalar factors become the fused operation's ``alpha``/``value`` as
torch writes them (``addcmul``, ``addcdiv``, ``addmm``); tensor factors keep the spec's order, so the
arithmetic on tensors is the spec's own. Whether a value is per-parameter, decided by tensor values,
or decided by hyperparameters alone is answered here too. Statements build on this class
(generator.lower.statements), and the rewrite rules call it (generator.lower.rules).
"""

from __future__ import annotations

import keyword
from dataclasses import dataclass, replace

from generator import ir
from generator.language import syntax as S
from generator.language.builtins import BUILTINS, CONSTANTS
from generator.check.model import CheckedSpec, state_type
from generator.language.names import RESERVED
from generator.language.diagnostics import GeneratorBug
from generator.language.spec_printer import print_expr
from generator.language.types import TENSORS, Kind, ListOf

# ---- names in the generated code ----------------------------------------------------------------------


def list_name(key: str) -> str:
    """The functional API's per-group list for a state (torch's own names: state_steps, exp_avgs)."""
    if key in ("step", "sum") or keyword.iskeyword(key + "s"):
        # (`state a` would make the list `as`, a Python keyword)
        return f"state_{key}s"
    head, _, last = key.rpartition("_")
    if last in _IRREGULAR_PLURALS:
        return head + ("_" if head else "") + _IRREGULAR_PLURALS[last]
    if key.endswith("s"):  # (a key that is a plural already: `slow_params`, `moments`)
        return key + "_list"
    return key + "s"


# (English plurals of the last word of a state key: `ortho_matrix` keeps `ortho_matrices`)
_IRREGULAR_PLURALS = {"matrix": "matrices", "index": "indices", "vertex": "vertices"}


def loop_var(key: str, kind: str) -> str:
    """The single-tensor loop's name for a state (``step_t`` for the counter, ``state_sum``)."""
    if kind == "count":
        return f"{key}_t"
    return f"state_{key}" if key in RESERVED else key


# ---- expression helpers -------------------------------------------------------------------------------


def signed_terms(e: S.Expr) -> list[tuple[int, S.Expr]]:
    """A left-associated sum as signed terms: a - b + c → [(+1, a), (-1, b), (+1, c)]."""
    if isinstance(e, S.Binary) and e.op in ("+", "-"):
        return signed_terms(e.left) + [(1 if e.op == "+" else -1, e.right)]
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


def _is_matmul(e: S.Expr) -> bool:
    return isinstance(e, S.Binary) and e.op == "@"


def _const(e) -> str | None:
    """A literal number's spelling (``-1`` also as the negation of ``1``), else None."""
    if isinstance(e, ir.SConst):
        return e.spelling
    if isinstance(e, ir.SUnary) and e.op == "-" and isinstance(e.operand, ir.SConst):
        return "-" + e.operand.spelling
    return None


def _is_square(e: S.Expr) -> bool:
    return (
        isinstance(e, S.Binary)
        and e.op == "^"
        and isinstance(e.right, S.Number)
        and e.right.value == 2.0
    )


def names_read(e) -> set[str]:
    """Names an expression or statement reads (``m_t`` counts as ``m`` too)."""
    if isinstance(e, S.Name):
        return {e.id, e.id[:-2]} if e.id.endswith("_t") else {e.id}
    if isinstance(e, S.Assign):
        return names_read(e.value) | (names_read(e.initially) if e.initially else set())
    out: set[str] = set()
    for child in S.children(e):
        out |= names_read(child)
    return out


class ExpressionLowerer:
    """What a Lowerer knows of the values it has lowered so far, and how it lowers an expression."""

    def __init__(self, checked: CheckedSpec):
        self.c = checked
        self.spec = checked.spec
        self.states = checked.states
        # local name → type, as lowering proceeds
        self.kinds: dict[str, Kind | ListOf] = {}
        self.varying: dict[str, bool] = {}
        self.helpers: set[str] = set()
        # local → decided by hyperparameters alone
        self.static_locals: dict[str, bool] = {}
        self.per_parameter = any(u.mode == "each" for u in self.spec.updates)
        # lowering an `update group:` or `update optimizer:` block
        self.per_step = False
        # scalar locals decided by tensor values
        self.data_dependent: dict[str, bool] = {}

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

    def kind(self, e: S.Expr) -> Kind | ListOf:
        """The type of ``e`` in the language's lattice, as the lowering needs it: a number is a
        scalar (int or not), a list holds tensors (the checker has validated everything).
        """
        if isinstance(e, S.List) or S.repeated_list(e) is not None:
            return TENSORS
        if isinstance(e, S.Number):
            return Kind.SCALAR
        if isinstance(e, (S.Bool, S.NoneLit)):
            return Kind.BOOL
        if isinstance(e, S.String):
            return Kind.STR
        if isinstance(e, S.Name):
            name, _ = self._resolve(e)
            if name in ("param", "grad"):
                return Kind.TENSOR
            if name in self.states:
                return state_type(self.states[name])
            if name in self.kinds:
                return self.kinds[name]
            sym = self.c.inputs.get(name)
            if sym is not None and isinstance(sym.kind, ListOf):
                return sym.kind  # a tuple of numbers (`tuple of float`)
            return (
                Kind.BOOL if sym is not None and sym.kind == Kind.BOOL else Kind.SCALAR
            )
        if isinstance(e, S.Unary):
            inner = self.kind(e.operand)
            return Kind.BOOL if e.op == "not" and inner != Kind.MASK else inner
        if isinstance(e, S.Binary):
            if e.op in ("and", "or"):
                # (masks join element by element)
                return Kind.MASK if self.kind(e.left) == Kind.MASK else Kind.BOOL
            return (
                Kind.TENSOR
                if Kind.TENSOR in (self.kind(e.left), self.kind(e.right))
                else Kind.SCALAR
            )
        if isinstance(e, S.Compare):
            kinds = {self.kind(x) for x in e.operands}
            return Kind.MASK if Kind.TENSOR in kinds else Kind.BOOL
        if isinstance(e, S.Conditional):
            kinds = {self.kind(e.then), self.kind(e.orelse)}
            return Kind.TENSOR if Kind.TENSOR in kinds else kinds.pop()
        if isinstance(e, S.Index):
            lk = self.kind(e.value)
            if lk != TENSORS:  # an item of a tuple of numbers
                (item,) = lk.item
                return Kind.SCALAR if item == Kind.INT else item
            return Kind.TENSOR
        if isinstance(e, S.Call):
            result = BUILTINS[e.func].result
            if result in (Kind.INT, Kind.SCALAR):
                return Kind.SCALAR
            if result in (Kind.TENSOR, Kind.BOOL):
                return result
            return (
                Kind.TENSOR
                if any(self.kind(a) == Kind.TENSOR for a in e.args)
                else Kind.SCALAR
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
        if e.func == "dim" and self.c.by_rank:
            # (one number in each of the foreach path's calls, one per rank)
            return False
        return BUILTINS[e.func].per_parameter and any(
            self.kind(a) == Kind.TENSOR for a in e.args
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
            return ir.number(e.text)
        if isinstance(e, (S.Bool, S.String)):
            return ir.SConst(e.value)
        if isinstance(e, S.NoneLit):
            return ir.SConst(None)
        if isinstance(e, S.Name):
            name, _ = self._resolve(e)
            if name in CONSTANTS:  # (the checker lets no spec name shadow one)
                return ir.SConst(CONSTANTS[name].value, name)
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
        if isinstance(e, S.Index):  # an item of a tuple of numbers
            return ir.SIndex(self.sexpr(e.value), self.sexpr(e.index))
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
            return _Term(None if sign > 0 else ir.number("-1"), [e], [], e)
        for op, f in _factors(e):
            if isinstance(f, S.Unary) and f.op == "-" and self.kind(f) == Kind.TENSOR:
                sign, f = -sign, f.operand
            if self.kind(f) == Kind.TENSOR:
                (num if op == "*" else den).append(f)
            else:
                s = self.sexpr(f)
                if coef is None:
                    coef = s if op == "*" else ir.SBin("/", ir.number("1"), s)
                else:
                    coef = ir.SBin(op, coef, s)
        if sign < 0:
            coef = ir.SUnary("-", coef) if coef is not None else ir.number("-1")
        return _Term(coef, num, den, e)

    def texpr(self, e: S.Expr) -> ir.TExpr:
        if isinstance(e, S.Name):
            return self.tref(self._resolve(e)[0])
        if isinstance(e, S.Index):
            whole = self.tref(self._resolve(e.value)[0])
            return replace(whole, index=self.sexpr(e.index))
        if isinstance(e, S.List):
            return ir.TList(tuple(self.texpr(x) for x in e.items))
        if S.repeated_list(e) is not None:
            items, count = S.repeated_list(e)
            return replace(self.texpr(items), count=self.sexpr(count))
        if isinstance(e, S.Unary):
            if e.op == "not":  # (of a mask)
                return ir.TOp("logical_not", (self.texpr(e.operand),))
            return ir.TOp("neg", (self.texpr(e.operand),))
        if isinstance(e, S.Binary):
            if e.op in ("and", "or"):  # (of masks)
                op = "logical_and" if e.op == "and" else "logical_or"
                return ir.TOp(op, (self.texpr(e.left), self.texpr(e.right)))
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
        """A tensor (or list of them, ``len(bufs)``'s) as a TExpr, a number as an SExpr."""
        tensor = self.kind(e) in (Kind.TENSOR, Kind.MASK, TENSORS)
        if tensor and isinstance(e, S.Conditional):
            # a choice of tensors a number is read off (`size(X, 0)`, X a `let` of
            # `merge_dims(param, n) if merged else param`): an update splits the choices of
            # its tensor values into `if`s before they are lowered
            return ir.SCond(
                self.sexpr(e.cond), self.operand(e.then), self.operand(e.orelse)
            )
        return self.texpr(e) if tensor else self.sexpr(e)

    def _sum(self, e: S.Binary) -> ir.TExpr:
        left, right = e.left, e.right
        sign = 1 if e.op == "+" else -1
        if (
            self.kind(left) != Kind.TENSOR
        ):  # s + A, s - A: the tensor leads, the scalar is added
            base = (
                self.texpr(right) if sign > 0 else ir.TOp("neg", (self.texpr(right),))
            )
            return ir.TOp("add", (base, self.sexpr(left)))
        if self.kind(right) != Kind.TENSOR:
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
        if lk == Kind.TENSOR and rk == Kind.TENSOR:
            return ir.TOp(
                "mul" if e.op == "*" else "div",
                (self.texpr(e.left), self.texpr(e.right)),
            )
        if lk == Kind.TENSOR:
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
        if op is not None and not (f == "sum" and len(args) == 2):
            # one torch operation, argument for argument (sqrt, atan2)
            # (a number argument stays one: inverse_root(A, 4))
            return ir.TOp(op.op, tuple(self.operand(a) for a in args))
        if f in ("max", "min"):
            a, b = args
            if self.kind(a) != Kind.TENSOR:
                a, b = b, a  # max is symmetric
            if self.kind(b) == Kind.TENSOR:
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
            if self.kind(args[1]) != Kind.TENSOR and self.kind(args[2]) != Kind.TENSOR:
                # torch.where of two numbers is a tensor of the default dtype: one number as
                # a 0-d tensor of the parameter's dtype makes it that dtype (1.2 stays 1.2 in
                # float64), without a parameter-sized tensor of it
                b = ir.TOp("number_like", (ir.TRef("param", "param"), b))
            return ir.TOp("where", (self.texpr(args[0]), a, b))
        if f == "dot":
            a, b = (ir.TOp("flatten", (self.texpr(x),)) for x in args)
            return ir.TOp("dot", (a, b))
        if f in ("norm", "mean", "sum"):
            x = self.texpr(args[0])
            if len(args) == 1:
                return ir.TOp(f, (x,))
            dim = self.sexpr(args[1])
            return ir.TOp(f, (x,), (("dim", dim), ("keepdim", ir.SConst(True))))
        if f == "onehot":
            self.helpers.add("onehot")
            return ir.TOp("onehot", (ir.TRef("param", "param"), self.sexpr(args[0])))
        raise GeneratorBug(f"no tensor lowering for {f}()")
