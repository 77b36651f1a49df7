"""Printing spec expressions back in the spec language, with parentheses from precedence.

Used for messages (``exists only if amsgrad``) and by ``optimgen fmt``. A printer dispatching on node
type, as SymPy's printers do; parentheses come from a precedence table, never from the source text.
"""

from __future__ import annotations

from functools import singledispatch

from generator.language import syntax as S

# Higher binds tighter.
PRECEDENCE = {
    "cond": 1,
    "or": 2,
    "and": 3,
    "not": 4,
    "compare": 5,
    "+": 6,
    "-": 6,
    "*": 7,
    "/": 7,
    "%": 7,
    "//": 7,
    "@": 7,
    "neg": 8,
    "^": 9,
    "atom": 10,
}


def precedence(e) -> int:
    if isinstance(e, S.Conditional):
        return PRECEDENCE["cond"]
    if isinstance(e, S.Binary):
        return PRECEDENCE[e.op]
    if isinstance(e, S.Unary):
        return PRECEDENCE["not" if e.op == "not" else "neg"]
    if isinstance(e, S.Compare):
        return PRECEDENCE["compare"]
    return PRECEDENCE["atom"]


def _wrap(e, minimum: int) -> str:
    text = print_expr(e)
    grouped = (
        isinstance(e, S.Binary) and e.grouped
    )  # the author's parentheses carry meaning
    return f"({text})" if precedence(e) < minimum or grouped else text


@singledispatch
def print_expr(e) -> str:
    raise TypeError(f"cannot print {type(e).__name__}")


@print_expr.register
def _(e: S.Number) -> str:
    return e.text


@print_expr.register
def _(e: S.Bool) -> str:
    return "true" if e.value else "false"


@print_expr.register
def _(e: S.NoneLit) -> str:
    return "none"


@print_expr.register
def _(e: S.String) -> str:
    return '"' + e.value.replace("\\", "\\\\").replace('"', '\\"') + '"'


@print_expr.register
def _(e: S.Name) -> str:
    return e.id + ("" if e.subscript is None else "_{" + e.subscript + "}")


@print_expr.register
def _(e: S.Unary) -> str:
    if e.op == "not":
        return "not " + _wrap(e.operand, PRECEDENCE["not"])
    return "-" + _wrap(e.operand, PRECEDENCE["neg"])


@print_expr.register
def _(e: S.Binary) -> str:
    p = PRECEDENCE[e.op]
    if e.op == "^":  # right-associative
        return f"{_wrap(e.left, p + 1)}^{_wrap(e.right, p)}"
    return f"{_wrap(e.left, p)} {e.op} {_wrap(e.right, p + 1)}"


@print_expr.register
def _(e: S.Compare) -> str:
    parts = [_wrap(e.operands[0], PRECEDENCE["compare"] + 1)]
    for op, x in zip(e.ops, e.operands[1:]):
        parts += [op, _wrap(x, PRECEDENCE["compare"] + 1)]
    return " ".join(parts)


@print_expr.register
def _(e: S.Conditional) -> str:
    p = PRECEDENCE["cond"]
    return f"{_wrap(e.then, p + 1)} if {_wrap(e.cond, p + 1)} else {_wrap(e.orelse, p)}"


@print_expr.register
def _(e: S.Call) -> str:
    args = [print_expr(a) for a in e.args]
    args += [f"{k} = {print_expr(v)}" for k, v in e.keywords]
    return f"{e.func}({', '.join(args)})"


@print_expr.register
def _(e: S.List) -> str:
    return "[" + ", ".join(print_expr(a) for a in e.items) + "]"


@print_expr.register
def _(e: S.ListOver) -> str:
    return f"[{print_expr(e.item)} for {e.var.id} in {print_expr(e.iterable)}]"


@print_expr.register
def _(e: S.Index) -> str:
    return f"{_wrap(e.value, PRECEDENCE['atom'])}[{print_expr(e.index)}]"


@print_expr.register
def _(e: S.Tuple) -> str:
    return "(" + ", ".join(print_expr(a) for a in e.items) + ")"
