"""The rules of the flat modes: what the one walk of the checker does in `update flat:` and its procedures.

Part of the check stage (language → check → lower → emit). generator.check.flow walks every update
block, flat and per-parameter alike, one statement form at a time; where a form means something
else in a flat update it applies the rules here. A flat update runs once per step on all the
parameters of the group as one vector (torch's LBFGS) and calls the spec's procedures as
functions (a line search): its names hold unions of types (generator.check.types infers them by a
fixed point), follow Python's scoping (a name set in a branch or a loop lives on after it), and
`param` changes only by a step along a vector. The expression rules here (names defined before
use, calls known and well-formed, vectors where a function needs them) are the flat counterpart of
generator.check.kinds.
"""

from __future__ import annotations

from generator.language import syntax as S
from generator.language.builtins import BUILTINS
from generator.language.diagnostics import did_you_mean
from generator.language.types import Kind, ListOf, tuple_sizes
from generator.check.lists import STATEMENT_FUNCTIONS
from generator.check.model import Symbol
from generator.check.procedures import bind_arguments
from generator.check.types import (
    EMPTY,
    FUNCTIONS,
    RESERVED,
    expression_type,
    is_list,
    is_vector,
)


def a_list(t: frozenset) -> bool:
    """Whether a name of type ``t`` is a list wherever an item of it is assigned or it grows: a
    list, or none before it is made (``if h == none: h <- []``). (The typer joins a list into
    the name's type at such a statement, to widen the type of its items: a name that holds
    a tensor or a number too is one the statement was wrong about.)"""
    return is_list(t) and all(isinstance(x, ListOf) or x == Kind.NONE for x in t)


def type_of(flow, e) -> frozenset:
    """The union of types ``e`` may take in the flow's scope."""
    return expression_type(flow.program, flow.scope, e)


def expression(flow, e) -> None:
    """Checks the names and calls of ``e``."""
    if isinstance(e, S.Name):
        name(flow, e)
    elif isinstance(e, S.Call):
        call(flow, e)
    elif isinstance(e, S.ListOver):
        flow.c.out.error(
            "E507",
            "a list made for each k is the first value of a per-parameter state",
            e.span,
            hint="a flat update makes its lists with `[a, b]` and `append`",
        )
    else:
        for c in S.children(e):
            expression(flow, c)


def name(flow, n: S.Name) -> None:
    """A name read: defined before this point of the text, in this scope (E502)."""
    sym = flow.env.get(n.id)
    if n.id == "param":
        flow.c.out.error(
            "E505",
            "a flat update does not read the parameters; it steps them with "
            "`param <- param + t * d`",
            n.span,
        )
        return
    if sym is None:
        in_update = flow.mode == "flat"
        hint = did_you_mean(n.id, flow.env)
        if hint is None and not in_update:
            hint = "a procedure sees only its arguments and its own names"
            flow.c.used.add(n.id)  # an input read in the wrong place is not unused
        flow.c.out.error(
            "E502",
            f"`{n.id}` is not defined before this point of the "
            + ("update" if in_update else "procedure"),
            n.span,
            hint=hint,
        )
        flow.env[n.id] = Symbol(n.id, EMPTY, "error")  # one error per name
        return
    if sym.role == "input":
        flow.c.used.add(n.id)
    flow.read.add(n.id)


def define(flow, target: S.Name, decl=None) -> None:
    """A name assigned: a new local where it is not known yet."""
    sym = flow.env.get(target.id)
    if sym is not None and sym.role == "input":
        flow.c.out.error(
            "E505",
            f"`{target.id}` is an input: the update reads it, never assigns it",
            target.span,
            hint="give the new value a name of its own",
        )
        return
    if target.id == "param":
        flow.c.out.error(
            "E505",
            "in a flat update the parameters change only by a step along a vector",
            target.span,
            hint="write `param <- param + t * d`",
        )
        return
    if sym is not None:
        return
    if target.id in RESERVED or target.id in FUNCTIONS:
        flow.c.out.error(
            "E506",
            f"`{target.id}` is a name the generated code uses itself",
            target.span,
            hint="choose another name",
        )
    local = Symbol(
        target.id, flow.scope.types.get(target.id, EMPTY), "local", decl=decl
    )
    flow.env[target.id] = local
    if isinstance(decl, S.Assign):  # (a tuple's or a loop's names need not all be read)
        flow.defined.setdefault(target.id, local)


def assign(flow, s: S.Assign) -> None:
    if s.target.id == "param" and flow.mode == "flat":
        param_step(flow, s)
        return
    if s.initially is not None or s.target.subscript is not None:
        flow.c.out.error(
            "E506",
            "time subscripts and `initially` belong to per-parameter updates",
            s.span,
        )
    expression(flow, s.value)
    define(flow, s.target, s)


def multi_assign(flow, s: S.MultiAssign) -> None:
    expression(flow, s.value)
    t = type_of(flow, s.value)
    if t and tuple_sizes(t) != {len(s.targets)}:
        flow.c.out.error(
            "E507",
            f"{len(s.targets)} names, but the value is not a tuple of {len(s.targets)}",
            s.value.span,
        )
    for n in s.targets:
        define(flow, n, s)
        # a tuple is often used in part (the gradient of a trial point): not an error
        flow.read.add(n.id)


def item_assign(flow, s: S.ItemAssign) -> None:
    expression(flow, s.index)
    expression(flow, s.value)
    name(flow, s.target)
    if not a_list(flow.scope.types.get(s.target.id, EMPTY)):
        flow.c.out.error("E507", f"`{s.target.id}` is not a list", s.target.span)


def list_call(flow, c: S.Call) -> None:
    """``append(xs, v)``, ``pop_first(xs)`` on a list of vectors or numbers."""
    for a in c.args:
        expression(flow, a)
    first = c.args[0]
    if not (
        isinstance(first, S.Name) and a_list(flow.scope.types.get(first.id, EMPTY))
    ):
        flow.c.out.error("E507", f"`{c.func}` needs a list first", first.span)


def procedure_call(flow, c: S.Call) -> None:
    """A procedure called as a statement, for what it does (its value unused)."""
    if c.func not in flow.program.procedures:
        flow.c.out.error(
            "E503",
            f"`{c.func}(...)` as a statement: no procedure of that name",
            c.func_span or c.span,
            hint=did_you_mean(c.func, [*STATEMENT_FUNCTIONS, *flow.program.procedures])
            or "statements call `append`, `pop_first` or a procedure",
        )
        return
    expression(flow, c)


def loop_variable(flow, s: S.For) -> None:
    define(flow, s.var, s)
    flow.read.add(s.var.id)


def param_step(flow, s: S.Assign) -> None:
    """``param <- param + t * d``: the one change a flat update makes to the parameters."""
    step = step_along(s.value)
    if step is None:
        flow.c.out.error(
            "E505",
            "in a flat update the parameters change only by a step along a vector",
            s.value.span,
            hint="write `param <- param + t * d` (or `param - t * d`)",
        )
        return
    _sign, size, direction = step
    if size is not None:
        expression(flow, size)
    expression(flow, direction)
    t = type_of(flow, direction)
    if t and not is_vector(t):
        flow.c.out.error(
            "E507", "the direction of the step is not a vector", direction.span
        )


def message_names(flow, message: S.Message) -> None:
    """A check's message names values of the update in braces: each must be defined."""
    for ref, placeholder in S.message_parts(message.text):
        if placeholder:
            name(flow, S.Name(ref, None, message.span))


def call(flow, e: S.Call) -> None:
    out = flow.c.out
    proc = flow.program.procedures.get(e.func)
    for a in e.args:
        expression(flow, a)
    for _, v in e.keywords:
        expression(flow, v)
    if proc is not None:
        bind_arguments(e, proc, out)
        return
    if e.func in STATEMENT_FUNCTIONS:
        out.error(
            "E503",
            f"`{e.func}` changes a list: write it as a statement of its own",
            e.span,
        )
        return
    if e.func not in FUNCTIONS or e.keywords:
        out.error(
            "E503",
            (
                f"unknown function `{e.func}`"
                if e.func not in FUNCTIONS
                else f"`{e.func}` takes no keyword arguments"
            ),
            e.func_span or e.span,
            hint=(
                did_you_mean(e.func, [*FUNCTIONS, *flow.program.procedures])
                if e.func not in FUNCTIONS
                else None
            ),
        )
        return
    least, most = FUNCTIONS[e.func]
    if not least <= len(e.args) <= most:
        out.error(
            "E503",
            f"`{e.func}` takes {least}"
            + (f" to {most}" if most != least else "")
            + f" argument{'s' if most != 1 else ''}, got {len(e.args)}",
            e.span,
        )
        return
    if e.func == "evaluate" and len(e.args) == 1:
        out.error(
            "E503",
            "`evaluate()` evaluates at the parameters, `evaluate(t, d)` at a step t along d",
            e.span,
        )
    if e.func == "evaluate" and not e.args and flow.mode != "flat":
        out.error(
            "E503",
            "a procedure evaluates the closure at a step from where it started: "
            "`evaluate(t, d)`",
            e.span,
        )
    form = BUILTINS[e.func].flat if e.func in BUILTINS else None
    needs = form.needs if form is not None else None
    for k, a in enumerate(e.args):
        t = type_of(flow, a)
        if needs == "vectors" and t and not is_vector(t):
            out.error("E507", f"`{e.func}` needs a vector here", a.span)
        if needs == "list" and k == 0 and t and not is_list(t):
            out.error("E507", f"`{e.func}` needs a list", a.span)


def step_along(value) -> tuple[str, S.Expr | None, S.Expr] | None:
    """``param + t * d`` → ("+", t, d); ``param - d`` → ("-", None, d); anything else → None."""
    if not (
        isinstance(value, S.Binary)
        and value.op in ("+", "-")
        and isinstance(value.left, S.Name)
        and value.left.id == "param"
    ):
        return None
    right = value.right
    if isinstance(right, S.Binary) and right.op == "*":
        return value.op, right.left, right.right
    return value.op, None, right
