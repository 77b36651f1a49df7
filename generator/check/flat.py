"""Flat updates and procedures: checking and typing the whole-vector part of the language.

An ``update flat:`` block runs once per step on all the parameters of the (single) group as one
vector, as torch's LBFGS does, and may call the spec's procedures (a line search). Its statements
form a small imperative language: loops with ``break``, lists of vectors and numbers, tuple
assignment, element assignment, and new evaluations of the closure through ``evaluate``. This
module checks them (names defined before use, calls known and well-formed, ``break`` inside a
loop, ``param`` changed only by a step along a vector, declarations that fit the mode), with the
type of every name that generator.check.types infers.
"""

from __future__ import annotations

from generator.language import syntax as S
from generator.language.builtins import BUILTINS
from generator.check.procedures import bind_arguments, check_declarations
from generator.language.diagnostics import Collector, did_you_mean
from generator.language.names import IMPLEMENTATION_FLAGS
from generator.check.types import (
    EMPTY,
    FUNCTIONS,
    NONE,
    NUMBER,
    RESERVED,
    VECTOR,
    Program,
    Scope,
    Typer,
    expression_type,
    input_type,
    is_list,
    is_range,
    is_vector,
)
from generator.check.lists import STATEMENT_FUNCTIONS, list_statement_form
from generator.language.types import tuple_sizes


class _Checker:
    """Names defined before use (in the order of the text), calls, loops and the step on param."""

    def __init__(self, program: Program, out: Collector, used: set[str]):
        self.p, self.out, self.used = program, out, used

    def enter(self, sc: Scope, known: dict[str, str]) -> None:
        self.sc = sc
        self.known = dict(known)  # name → what it is ("input", "state", "local", ...)
        self.read: set[str] = set()
        self.assigned: dict[str, S.Span] = {}
        self.loops = 0

    def scope(self, sc: Scope, known: dict[str, str]) -> None:
        self.enter(sc, known)
        self.block(sc.body)
        for name, span in self.assigned.items():
            if name not in self.read and self.known.get(name) == "local":
                self.out.error(
                    "E402",
                    f"`{name}` is assigned but never used",
                    span,
                    hint="remove the assignment, or use the value",
                )

    def block(self, stmts) -> None:
        for s in stmts:
            self.stmt(s)

    def define(self, name: S.Name) -> None:
        what = self.known.get(name.id)
        if what == "input":
            self.out.error(
                "E505",
                f"`{name.id}` is an input: the update reads it, never assigns it",
                name.span,
                hint="give the new value a name of its own",
            )
            return
        if name.id == "param":
            self.out.error(
                "E505",
                "in a flat update the parameters change only by a step along a vector",
                name.span,
                hint="write `param <- param + t * d`",
            )
            return
        if what is None and (name.id in RESERVED or name.id in FUNCTIONS):
            self.out.error(
                "E506",
                f"`{name.id}` is a name the generated code uses itself",
                name.span,
                hint="choose another name",
            )
        if what is None:
            self.known[name.id] = "local"
            self.assigned.setdefault(name.id, name.span)

    def stmt(self, s) -> None:
        if isinstance(s, S.Assign):
            if s.target.id == "param" and self.sc.name == "update":
                self.param_step(s)
                return
            if s.initially is not None or s.target.subscript is not None:
                self.out.error(
                    "E506",
                    "time subscripts and `initially` belong to per-parameter updates",
                    s.span,
                )
            self.expr(s.value)
            self.define(s.target)
        elif isinstance(s, S.MultiAssign):
            self.expr(s.value)
            t = expression_type(self.p, self.sc, s.value)
            sizes = tuple_sizes(t)
            if t and sizes != {len(s.targets)}:
                self.out.error(
                    "E507",
                    f"{len(s.targets)} names, but the value is not a tuple of "
                    f"{len(s.targets)}",
                    s.value.span,
                )
            for n in s.targets:
                self.define(n)
                # a tuple is often used in part (the gradient of a trial point): not an error
                self.read.add(n.id)
        elif isinstance(s, S.ItemAssign):
            self.expr(s.index)
            self.expr(s.value)
            self.name(s.target)
            if not is_list(self.sc.types.get(s.target.id, EMPTY)):
                self.out.error("E507", f"`{s.target.id}` is not a list", s.target.span)
        elif isinstance(s, S.CallStmt):
            self.call_stmt(s.call)
        elif isinstance(s, S.If):
            for cond, body in s.branches:
                self.expr(cond)
                self.block(body)
            self.block(s.orelse)
        elif isinstance(s, S.While):
            self.expr(s.cond)
            self.loop(s.body)
        elif isinstance(s, S.For):
            self.range(s.iterable)
            self.define(s.var)
            self.read.add(s.var.id)
            self.loop(s.body)
        elif isinstance(s, S.Repeat):
            self.expr(s.count)
            self.loop(s.body)
        elif isinstance(s, S.Break):
            if not self.loops:
                self.out.error("E504", "`break` outside a loop", s.span)
        elif isinstance(s, S.Return):
            if self.sc.name == "update" and s.values:
                self.out.error(
                    "E504",
                    "`return` in a flat update ends the step; it returns no value",
                    s.span,
                    hint="the step returns the closure's first loss, as torch's do",
                )
            for v in s.values:
                self.expr(v)
        elif isinstance(s, S.Check):
            self.expr(s.expr)
            for ref, placeholder in S.message_parts(s.message.text):
                if placeholder:
                    self.name(S.Name(ref, None, s.message.span))
        elif isinstance(s, S.Use):
            self.out.error(
                "E506",
                "fragments are for per-parameter updates",
                s.span,
                hint="write the statements here, or as a procedure",
            )

    def loop(self, body) -> None:
        self.loops += 1
        self.block(body)
        self.loops -= 1

    def range(self, e) -> None:
        if not is_range(e):
            self.out.error(
                "E507",
                "`for` runs over `range(n)`, `range(a, b)` or `reversed(range(n))`",
                e.span,
            )
            return
        inner = e.args[0] if e.func == "reversed" else e
        for a in inner.args:
            self.expr(a)

    def param_step(self, s: S.Assign) -> None:
        step = step_along(s.value)
        if step is None:
            self.out.error(
                "E505",
                "in a flat update the parameters change only by a step along a vector",
                s.value.span,
                hint="write `param <- param + t * d` (or `param - t * d`)",
            )
            return
        _sign, size, direction = step
        if size is not None:
            self.expr(size)
        self.expr(direction)
        t = expression_type(self.p, self.sc, direction)
        if t and not is_vector(t):
            self.out.error(
                "E507", "the direction of the step is not a vector", direction.span
            )

    def call_stmt(self, c: S.Call) -> None:
        if c.func in STATEMENT_FUNCTIONS:
            if not list_statement_form(c, self.out):
                return
            for a in c.args:
                self.expr(a)
            if not (
                isinstance(c.args[0], S.Name)
                and is_list(self.sc.types.get(c.args[0].id, EMPTY))
            ):
                self.out.error("E507", f"`{c.func}` needs a list first", c.args[0].span)
            return
        if c.func not in self.p.procedures:
            self.out.error(
                "E503",
                f"`{c.func}(...)` as a statement: no procedure of that name",
                c.func_span or c.span,
                hint=did_you_mean(c.func, [*STATEMENT_FUNCTIONS, *self.p.procedures])
                or "statements call `append`, `pop_first` or a procedure",
            )
            return
        self.expr(c)

    def name(self, n: S.Name) -> None:
        what = self.known.get(n.id)
        if n.id == "param":
            self.out.error(
                "E505",
                "a flat update does not read the parameters; it steps them with "
                "`param <- param + t * d`",
                n.span,
            )
            return
        if what is None:
            where = "procedure" if self.sc.name != "update" else "update"
            hint = did_you_mean(n.id, self.known)
            if hint is None and self.sc.name != "update":
                hint = "a procedure sees only its arguments and its own names"
                self.used.add(n.id)  # an input read in the wrong place is not unused
            self.out.error(
                "E502",
                f"`{n.id}` is not defined before this point of the {where}",
                n.span,
                hint=hint,
            )
            self.known[n.id] = "error"
            return
        if what == "input":
            self.used.add(n.id)
        self.read.add(n.id)

    def expr(self, e) -> None:
        if isinstance(e, S.Name):
            self.name(e)
        elif isinstance(e, S.Call):
            self.call(e)
        else:
            for c in S.children(e):
                self.expr(c)

    def call(self, e: S.Call) -> None:
        proc = self.p.procedures.get(e.func)
        for a in e.args:
            self.expr(a)
        for _, v in e.keywords:
            self.expr(v)
        if proc is not None:
            bind_arguments(e, proc, self.out)
            return
        if e.func in STATEMENT_FUNCTIONS:
            self.out.error(
                "E503",
                f"`{e.func}` changes a list: write it as a statement of its own",
                e.span,
            )
            return
        if e.func not in FUNCTIONS or e.keywords:
            self.out.error(
                "E503",
                (
                    f"unknown function `{e.func}`"
                    if e.func not in FUNCTIONS
                    else f"`{e.func}` takes no keyword arguments"
                ),
                e.func_span or e.span,
                hint=(
                    did_you_mean(e.func, [*FUNCTIONS, *self.p.procedures])
                    if e.func not in FUNCTIONS
                    else None
                ),
            )
            return
        least, most = FUNCTIONS[e.func]
        if not least <= len(e.args) <= most:
            self.out.error(
                "E503",
                f"`{e.func}` takes {least}"
                + (f" to {most}" if most != least else "")
                + f" argument{'s' if most != 1 else ''}, got {len(e.args)}",
                e.span,
            )
            return
        if e.func == "evaluate" and len(e.args) == 1:
            self.out.error(
                "E503",
                "`evaluate()` evaluates at the parameters, `evaluate(t, d)` at a step t along d",
                e.span,
            )
        if e.func == "evaluate" and not e.args and self.sc.name != "update":
            self.out.error(
                "E503",
                "a procedure evaluates the closure at a step from where it started: "
                "`evaluate(t, d)`",
                e.span,
            )
        form = BUILTINS[e.func].flat if e.func in BUILTINS else None
        needs = form.needs if form is not None else None
        types = [expression_type(self.p, self.sc, a) for a in e.args]
        for k, t in enumerate(types):
            if needs == "vectors" and t and not is_vector(t):
                self.out.error(
                    "E507", f"`{e.func}` needs a vector here", e.args[k].span
                )
            if needs == "list" and k == 0 and t and not is_list(t):
                self.out.error("E507", f"`{e.func}` needs a list", e.args[k].span)


def _constant(e) -> bool:
    if isinstance(e, S.Unary) and e.op == "-":
        return isinstance(e.operand, S.Number)
    if isinstance(e, S.Tuple):
        return all(_constant(x) for x in e.items)
    return isinstance(e, (S.Number, S.String, S.Bool, S.NoneLit))


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


# ---- declarations that fit the mode, and the entry point -------------------------------------------------


def _declarations(checker, out: Collector) -> None:
    spec = checker.spec
    if len(spec.updates) > 1:
        out.error(
            "E506",
            "a spec with `update flat:` has no other update block",
            (
                spec.updates[1].span
                if spec.updates[0].mode == "flat"
                else spec.updates[0].span
            ),
        )
    for inp in spec.inputs:
        if inp.arg_name in IMPLEMENTATION_FLAGS or inp.arg_name == "maximize":
            out.error(
                "E506",
                f"`{inp.arg_name}` is not available in a flat update",
                inp.span,
                hint="the flat step runs once on all parameters as one vector",
            )
    for st in spec.states:
        problems = [
            (st.scope != "parameter", f"`state {st.scope}`"),
            (st.condition is not None, "a condition"),
            (st.eager, "`eager`"),
            (st.on_device, "`on device`"),
            (st.reduced is not None, "`reduced over`"),
            (st.as_number, "`as number` (flat counters are numbers already)"),
        ]
        for bad, what in problems:
            if bad:
                out.error(
                    "E506",
                    f"{what} does not apply to the state of a flat update",
                    st.span,
                    hint="a flat update keeps one state for all parameters: "
                    "`state n: count <- 0`, `state d lazy`, or `state al <- [none] * n`",
                )
    check_declarations(spec, {*FUNCTIONS, *STATEMENT_FUNCTIONS}, out)


def check_flat(checker) -> Program | None:
    """Checks the flat update and the procedures of ``checker.spec``; their types, or None."""
    out = checker.out
    spec = checker.spec
    _declarations(checker, out)
    update = next((u for u in spec.updates if u.mode == "flat"), None)
    if update is None:
        return None
    inputs: dict[str, frozenset] = {}
    for inp in spec.inputs:
        for k, n in enumerate(inp.names):
            inputs[n.id] = input_type(inp, k)
    states = {st.name.id: st for st in spec.states}
    program = Program(
        update=Scope("update", (), update.body, update.span),
        procedures={
            p.name.id: Scope(p.name.id, p.params, p.body, p.span)
            for p in spec.procedures
        },
        states=states,
        inputs={},
    )
    sc = program.update
    sc.types.update(inputs)
    sc.types["grad"] = VECTOR
    sc.types["loss"] = NUMBER
    typer = Typer(program)
    for name, st in states.items():
        if st.kind == "count":
            sc.types[name] = NUMBER
        elif st.lazy:
            sc.types[name] = NONE
        else:
            sc.types[name] = typer.expr(sc, st.init)
    for proc in program.procedures.values():
        for p in proc.params:
            if p.default is not None:
                proc.types[p.name.id] = typer.expr(proc, p.default)
    typer.run()
    check = _Checker(program, out, checker.used)
    known = {n: "input" for n in inputs}
    known.update({n: "state" for n in states})
    known.update(grad="builtin", loss="builtin")
    check.enter(sc, known)
    for st in states.values():
        if st.init is not None:  # computed in the step, from inputs
            check.expr(st.init)
    check.scope(sc, known)
    for proc in program.procedures.values():
        check.scope(proc, {p.name.id: "param" for p in proc.params})
        for p in proc.params:
            if p.default is not None and not _constant(p.default):
                out.error(
                    "E506",
                    "a procedure's default value is a constant (a number, a string, "
                    "true, false, none)",
                    p.default.span,
                )
    # the generated step names inputs by their symbols and states by their keys: neither may
    # take a name it uses itself, nor may a local take a state's key
    for name, span in [(n.id, n.span) for i in spec.inputs for n in i.names] + [
        (st.key, st.span) for st in states.values()
    ]:
        if name in RESERVED:
            out.error(
                "E506",
                f"`{name}` is a name the generated step uses itself",
                span,
                hint="choose another name (a state can keep torch's key with `(KEY)`)",
            )
    keys = {st.key: name for name, st in states.items() if st.kind != "count"}
    for name, what in check_locals(sc):
        if name in keys and keys[name] != name:
            out.error(
                "E506",
                f"`{name}` is the state key of `{keys[name]}`: the step keeps that state "
                "under this name",
                what,
                hint="choose another name for the local",
            )
    program.inputs.update((n, t) for n, t in inputs.items() if n in checker.used)
    return program


def check_locals(sc: Scope):
    """(name, span) of every name the update assigns that is not a state or builtin."""

    def walk(stmts):
        for s in stmts:
            if isinstance(s, S.Assign):
                yield s.target
            elif isinstance(s, S.MultiAssign):
                yield from s.targets
            elif isinstance(s, S.For):
                yield s.var
            for b in S.sub_blocks(s):
                yield from walk(b)

    for n in walk(sc.body):
        yield n.id, n.span
