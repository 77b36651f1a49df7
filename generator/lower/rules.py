"""The rewrite rules for in-place updates: one table, ``UPDATE_RULES``, tried in order.

An assignment to a state, to the parameter or to a local the update owns becomes in-place operations
on it, chosen by the first rule whose pattern matches the right-hand side (``b*m + (1-b)*g`` →
``lerp_``, ``b*v + c*g^2`` → ``mul_().addcmul_()``, ``p - s*m/d`` → ``addcdiv_``, …), with ``copy_``
as the rule that always matches. A rule reads the spec expression and returns the IR operations
(ir.TOp without their target), or None where it does not apply; it lowers sub-expressions with the
Lowerer's expression methods (generator.lower.expressions).
"""

from __future__ import annotations

from generator import ir
from generator.language import syntax as S
from generator.language.builtins import BUILTINS, unary_elementwise
from generator.language.types import Kind
from generator.lower.expressions import ExpressionLowerer, names_read, signed_terms

# ---- the rule table for updates of persistent tensors (states, the parameter, owned locals) ----------


def _is_one(e: S.Expr) -> bool:
    return isinstance(e, S.Number) and e.value == 1.0


# A rule's ``name`` is what the assignment updates: a state, the parameter or a local by its
# name, or an item of a list state by its syntax (``bufs[k]``).


def _x(lw: ExpressionLowerer, name: str | S.Index, e: S.Expr) -> bool:
    if isinstance(name, S.Index):
        return e == name
    return isinstance(e, S.Name) and lw._resolve(e)[0] == name


def _reads(name: str | S.Index, e: S.Expr) -> bool:
    """Whether ``e`` reads the updated value (for an item: any item of its list)."""
    whole = name.value.id if isinstance(name, S.Index) else name
    return whole in names_read(e)


def _scaled_x(lw: ExpressionLowerer, name: str, e: S.Expr):
    """``x`` → coefficient None; ``b * x`` or ``x * b`` (b a scalar) → b; otherwise False."""
    if _x(lw, name, e):
        return None
    if isinstance(e, S.Binary) and e.op == "*":
        if _x(lw, name, e.right) and lw.kind(e.left) != Kind.TENSOR:
            return e.left
        if _x(lw, name, e.left) and lw.kind(e.right) != Kind.TENSOR:
            return e.right
    return False


def rule_lerp(lw: ExpressionLowerer, name: str, e: S.Expr):
    """b * x + (1 - b) * a  →  x.lerp_(a, 1 - b)   (torch's exponential moving average)."""
    terms = signed_terms(e)
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
    if lw.kind(a) != Kind.TENSOR or (
        isinstance(a, S.Binary) and a.op in ("*", "/", "^")
    ):
        return None  # a product goes to mul_().addcmul_(), as torch does for the second moment
    return [ir.TOp("lerp", (lw.texpr(a), lw.sexpr(w)))]


def rule_scaled_sum(lw: ExpressionLowerer, name: str, e: S.Expr):
    """[b *] x ± t1 ± t2 …  →  x[.mul_(b)].add_/addcmul_/addcdiv_(…) for each term, in order."""
    terms = signed_terms(e)
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
        if ops and _reads(name, t):
            return None  # the term would read x after it changed: leave it to copy_
        if lw.kind(t) != Kind.TENSOR:
            s = lw.sexpr(t)
            ops.append(ir.TOp("add" if sign > 0 else "sub", (s,)))
            continue
        op = lw._apply_term(None, lw.term(sign, t))
        ops.append(ir.TOp(op.op, op.args[1:], op.kwargs))
    return ops or None


def rule_addmm(lw: ExpressionLowerer, name: str, e: S.Expr):
    """[b *] x + [c *] (A @ B)  →  x.addmm_(A, B[, beta=b][, alpha=c]): the product added in one
    rounding, as torch's in-place matrix statistics are (Shampoo's ``pre_cond.addmm_``).
    """
    terms = signed_terms(e)
    if len(terms) != 2 or terms[0][0] != 1:
        return None
    scale = _scaled_x(lw, name, terms[0][1])
    if scale is False:
        return None
    sign, t = terms[1]
    term = lw.term(sign, t)
    if len(term.num) != 1 or term.den or not isinstance(term.num[0], S.Binary):
        return None
    m = term.num[0]
    if m.op != "@" or _reads(name, m):
        return None
    kwargs = lw._kw("beta", None if scale is None else lw.sexpr(scale))
    kwargs += lw._kw("alpha", term.coef)
    return [ir.TOp("addmm", (lw.texpr(m.left), lw.texpr(m.right)), kwargs)]


def rule_scale(lw: ExpressionLowerer, name: str, e: S.Expr):
    """x * a  →  x.mul_(a);   x / a  →  x.div_(a)."""
    if isinstance(e, S.Binary) and e.op in ("*", "/") and _x(lw, name, e.left):
        return [ir.TOp("mul" if e.op == "*" else "div", (lw.operand(e.right),))]
    if isinstance(e, S.Binary) and e.op == "*" and _x(lw, name, e.right):
        return [ir.TOp("mul", (lw.operand(e.left),))]
    return None


def rule_extremum(lw: ExpressionLowerer, name: str, e: S.Expr):
    """max([b *] x, a) → torch.maximum(x[.mul_(b)], a, out=x);  min likewise (Adamax's u_t)."""
    if isinstance(e, S.Call) and e.func in ("max", "min") and len(e.args) == 2:
        a, b = e.args
        if _scaled_x(lw, name, a) is False:
            a, b = b, a  # max and min are symmetric
        scale = _scaled_x(lw, name, a)
        if scale is False or lw.kind(b) != Kind.TENSOR or _reads(name, b):
            return None
        ops = [] if scale is None else [ir.TOp("mul", (lw.sexpr(scale),))]
        op = "maximum" if e.func == "max" else "minimum"
        return ops + [ir.TOp(op, (lw.texpr(b),))]
    return None


_IN_PLACE_UNARY = {b.name: b.tensor.op for b in unary_elementwise()}


def rule_unary(lw: ExpressionLowerer, name: str, e: S.Expr):
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


def rule_lerp_call(lw: ExpressionLowerer, name: str, e: S.Expr):
    """lerp(x, a, w)  →  x.lerp_(a, w)   (Adafactor's and Muon's running averages)."""
    if (
        isinstance(e, S.Call)
        and e.func == "lerp"
        and _x(lw, name, e.args[0])
        and not _reads(name, e.args[1])
    ):
        return [ir.TOp("lerp", (lw.texpr(e.args[1]), lw.sexpr(e.args[2])))]
    return None


def rule_out(lw: ExpressionLowerer, name: str, e: S.Expr):
    """f(x, a, ...)  →  f(x, a, ..., out=x), for a function of the table that takes `out=`
    (put_block: one block of x written in place)."""
    b = BUILTINS.get(e.func) if isinstance(e, S.Call) else None
    if (
        b is not None
        and b.tensor is not None
        and b.tensor.out
        and _x(lw, name, e.args[0])
        and not any(_reads(name, a) for a in e.args[1:])
    ):
        return [ir.TOp(b.tensor.op, tuple(lw.operand(a) for a in e.args[1:]))]
    return None


def rule_fill(lw: ExpressionLowerer, name: str, e: S.Expr):
    """``x <- 0``: a number into a tensor (the optimizer's totals start each step from 0)."""
    if lw.kind(e) in (Kind.SCALAR, Kind.INT):
        return [ir.TOp("fill", (lw.sexpr(e),))]
    return None


def rule_copy(lw: ExpressionLowerer, name: str, e: S.Expr):
    """anything else  →  x.copy_(expression)."""
    return [ir.TOp("copy", (lw.texpr(e),))]


def rule_clamp(lw: ExpressionLowerer, name: str, e: S.Expr):
    """clamp([b *] x, lo, hi) → x[.mul_(b)].clamp_(lo, hi)   (Rprop's step sizes)."""
    if isinstance(e, S.Call) and e.func == "clamp" and len(e.args) == 3:
        inner = e.args[0]
        if _x(lw, name, inner):
            ops = []
        elif (
            isinstance(inner, S.Binary) and inner.op == "*" and _x(lw, name, inner.left)
        ):
            if _reads(name, inner.right):
                return None
            ops = [ir.TOp("mul", (lw.operand(inner.right),))]
        else:
            return None
        return ops + [ir.TOp("clamp", (lw.sexpr(e.args[1]), lw.sexpr(e.args[2])))]
    return None


UPDATE_RULES = (
    rule_lerp,
    rule_lerp_call,
    rule_addmm,
    rule_scaled_sum,
    rule_scale,
    rule_extremum,
    rule_clamp,
    rule_unary,
    rule_out,
    rule_fill,
    rule_copy,
)
