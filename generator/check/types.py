"""The typer of flat updates and procedures: the union of types each name may hold.

Part of the checker (generator.check.flow follows the statements with generator.check.flat_rules;
this module types them), in the language's one type lattice (generator.language.types). A flat value is a number, a 0-d tensor, the
vector of all parameters, a bool, none, a string, a list or a tuple, and a name may hold several
of these: the typer runs a fixed point over the update and every procedure, since a procedure's
arguments take the types of its call sites; generator.lower.flat reads the types to give each
value its form.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from generator.language import syntax as S
from generator.language.builtins import BUILTINS
from generator.language.types import (
    EMPTY,
    Kind,
    TupleOf,
    element,
    is_list,
    join,
    list_of,
    union,
)

# ---- the atoms a flat value takes: a number (a Python int or float), a 0-d tensor, the vector of
# all parameters (a value shaped like the parameters, as a per-parameter update's tensors are)
NUMBER = union(Kind.SCALAR)
TENSOR = union(Kind.REDUCED)
VECTOR = union(Kind.TENSOR)
BOOL = union(Kind.BOOL)
NONE = union(Kind.NONE)
STR = union(Kind.STR)


def is_vector(t: frozenset) -> bool:
    return Kind.TENSOR in t


def may_be_tensor(t: frozenset) -> bool:
    return bool(t & {Kind.TENSOR, Kind.REDUCED})


# ---- builtins of the flat language ---------------------------------------------------------------------
# name: (least, most arguments): the builtin table's functions with a flat form, and `evaluate`,
# the closure called again (a construct of the language, which the typer and printers know)
FUNCTIONS = {
    b.name: (b.flat.least, b.flat.most) for b in BUILTINS.values() if b.flat is not None
}
FUNCTIONS["evaluate"] = (0, 2)
# Names the generated step and procedures use for themselves.
RESERVED = {
    "closure",
    "orig_loss",
    "flat_grad",
    "obj_func",
    "x",
    "x_init",
    "math",
    "range",
    "reversed",
}


@dataclass
class Scope:
    """The update (``name`` "update") or a procedure, with the inferred type of each name."""

    name: str
    params: tuple[S.Parameter, ...]
    body: tuple[S.Stmt, ...]
    span: S.Span
    types: dict[str, frozenset] = field(default_factory=dict)
    returns: frozenset = EMPTY
    evaluates: bool = False  # calls the closure through evaluate(t, d), here or below


@dataclass
class Program:
    update: Scope
    procedures: dict[str, Scope]
    states: dict[str, S.State]  # by symbol
    inputs: dict[str, frozenset]  # the inputs the update reads, with their types


def input_type(inp: S.Input, k: int) -> frozenset:
    names = inp.type.names[k] if inp.type.kind == "tuple" else "|".join(inp.type.names)
    t = EMPTY
    for n in names.split("|"):
        t = join(
            t,
            {
                "float": NUMBER,
                "int": NUMBER,
                "tensor": TENSOR,
                "bool": BOOL,
                "str": STR,
            }.get(n, EMPTY),
        )
    optional = (
        inp.type.optional[k] if inp.type.kind == "tuple" else any(inp.type.optional)
    )
    if optional and inp.none_means is None:
        t = join(t, NONE)
    if inp.type.kind == "sequence":
        t = list_of(t)
    return t


# ---- typing: a fixed point over the update and the procedures -------------------------------------------


class Typer:
    def __init__(self, program: Program):
        self.p = program
        self.changed = False

    def add(self, scope: Scope, name: str, t: frozenset) -> None:
        old = scope.types.get(name, EMPTY)
        new = join(old, t)
        if new != old:
            scope.types[name] = new
            self.changed = True

    def run(self) -> None:
        scopes = [self.p.update, *self.p.procedures.values()]
        for _ in range(100):
            self.changed = False
            for sc in scopes:
                self.block(sc, sc.body)
            if not self.changed:
                return

    def block(self, sc: Scope, stmts) -> None:
        for s in stmts:
            self.stmt(sc, s)

    def stmt(self, sc: Scope, s) -> None:
        if isinstance(s, S.Assign):
            self.add(sc, s.target.id, self.expr(sc, s.value))
        elif isinstance(s, S.MultiAssign):
            t = self.expr(sc, s.value)
            for x in t:
                if isinstance(x, TupleOf) and len(x.items) == len(s.targets):
                    for name, item in zip(s.targets, x.items):
                        self.add(sc, name.id, item)
        elif isinstance(s, S.ItemAssign):
            self.expr(sc, s.index)
            self.add(sc, s.target.id, list_of(self.expr(sc, s.value)))
        elif isinstance(s, S.CallStmt):
            c = s.call
            args = [self.expr(sc, a) for a in c.args]
            if (
                c.func == "append"
                and len(c.args) == 2
                and isinstance(c.args[0], S.Name)
            ):
                self.add(sc, c.args[0].id, list_of(args[1]))
            elif c.func in self.p.procedures:
                self.expr(sc, c)
        elif isinstance(s, S.For):
            self.expr(sc, s.iterable)
            if is_range(s.iterable):
                self.add(sc, s.var.id, NUMBER)
            self.block(sc, s.body)
        elif isinstance(s, S.Return):
            values = [self.expr(sc, v) for v in s.values]
            t = (
                union(TupleOf(tuple(values)))
                if len(values) > 1
                else (values[0] if values else NONE)
            )
            new = join(sc.returns, t)
            if new != sc.returns:
                sc.returns = new
                self.changed = True
        elif isinstance(s, S.Check):
            self.expr(sc, s.expr)
        else:
            for cond, body in getattr(s, "branches", ()):
                self.expr(sc, cond)
            for e in ("cond", "count"):
                if hasattr(s, e):
                    self.expr(sc, getattr(s, e))
            for b in S.sub_blocks(s):
                self.block(sc, b)

    def expr(self, sc: Scope, e) -> frozenset:
        if isinstance(e, S.Number):
            return NUMBER
        if isinstance(e, S.Bool):
            return BOOL
        if isinstance(e, S.NoneLit):
            return NONE
        if isinstance(e, S.String):
            return STR
        if isinstance(e, S.Name):
            return sc.types.get(e.id, EMPTY)
        if isinstance(e, S.Unary):
            t = self.expr(sc, e.operand)
            return BOOL if e.op == "not" else t
        if isinstance(e, S.Binary):
            lt, rt = self.expr(sc, e.left), self.expr(sc, e.right)
            if e.op in ("and", "or"):
                return BOOL
            if e.op == "*" and (is_list(lt) or is_list(rt)):
                return join(*(t for t in (lt, rt) if is_list(t)), EMPTY)
            if is_vector(lt) or is_vector(rt):
                return VECTOR
            if may_be_tensor(lt) or may_be_tensor(rt):
                return TENSOR
            return NUMBER if lt or rt else EMPTY
        if isinstance(e, S.Compare):
            for x in e.operands:
                self.expr(sc, x)
            return BOOL
        if isinstance(e, S.Conditional):
            self.expr(sc, e.cond)
            return join(self.expr(sc, e.then), self.expr(sc, e.orelse))
        if isinstance(e, S.Tuple):
            return union(TupleOf(tuple(self.expr(sc, x) for x in e.items)))
        if isinstance(e, S.List):
            t = EMPTY
            for x in e.items:
                t = join(t, self.expr(sc, x))
            return list_of(t)
        if isinstance(e, S.Index):
            self.expr(sc, e.index)
            return element(self.expr(sc, e.value))
        if isinstance(e, S.Call):
            return self.call(sc, e)
        return EMPTY

    def call(self, sc: Scope, e: S.Call) -> frozenset:
        args = [self.expr(sc, a) for a in e.args]
        kwargs = {k: self.expr(sc, v) for k, v in e.keywords}
        proc = self.p.procedures.get(e.func)
        if proc is not None:
            for param, t in zip(proc.params, args):
                self.add(proc, param.name.id, t)
            for param in proc.params:
                if param.name.id in kwargs:
                    self.add(proc, param.name.id, kwargs[param.name.id])
            if proc.evaluates and not sc.evaluates and sc.name != "update":
                sc.evaluates = True
                self.changed = True
            return proc.returns
        f = e.func
        if f == "evaluate":
            if args and sc.name != "update" and not sc.evaluates:
                sc.evaluates = True
                self.changed = True
            return union(TupleOf((NUMBER, VECTOR)))
        form = BUILTINS[f].flat if f in BUILTINS else None
        if form is None:
            return EMPTY
        if isinstance(form.result, Kind):
            return union(form.result)
        if form.result == "follow":
            return args[0] if args else EMPTY
        # "element": of one list (a vector's is a 0-d tensor); of several arguments, any of them
        if len(args) == 1:
            return TENSOR if is_vector(args[0]) else element(args[0])
        t = EMPTY
        for a in args:
            t = join(t, a)
        return t


def expression_type(program: Program, scope: Scope, e) -> frozenset:
    """The type of an expression of ``scope``, once the fixed point is reached."""
    return Typer(program).expr(scope, e)


# ---- checking --------------------------------------------------------------------------------------------


def is_range(e) -> bool:
    """``range(n)``, ``range(a, b)`` or ``reversed(`` one of those ``)``."""
    if isinstance(e, S.Call) and e.func == "reversed" and len(e.args) == 1:
        e = e.args[0]
    return (
        isinstance(e, S.Call)
        and e.func == "range"
        and 1 <= len(e.args) <= 2
        and not e.keywords
    )
