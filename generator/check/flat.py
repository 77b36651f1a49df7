"""Flat updates and procedures: the program a flat update is, set up for the one checker.

Part of the check stage (language → check → lower → emit). An ``update flat:`` block runs once per
step on all the parameters of the (single) group as one vector, as torch's LBFGS does, and may call
the spec's procedures (a line search) as functions. This module checks the declarations that fit
that mode, types the update and every procedure (the union of types each name may hold, by
generator.check.types), and has generator.check.flow follow their statements, as it follows every
other update block, with the flat modes' rules (generator.check.flat_rules). Its ``Program`` is
what generator.lower.flat lowers.
"""

from __future__ import annotations

from generator.language import syntax as S
from generator.check.flow import Flow
from generator.check.model import Symbol
from generator.check.procedures import check_declarations
from generator.language.diagnostics import Collector
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
    input_type,
)
from generator.check.lists import STATEMENT_FUNCTIONS


def _constant(e) -> bool:
    if isinstance(e, S.Unary) and e.op == "-":
        return isinstance(e.operand, S.Number)
    if isinstance(e, S.Tuple):
        return all(_constant(x) for x in e.items)
    return isinstance(e, (S.Number, S.String, S.Bool, S.NoneLit))


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
    env = {n: Symbol(n, t, "input") for n, t in inputs.items()}
    env.update(
        (n, Symbol(n, sc.types.get(n, EMPTY), "state", decl=st))
        for n, st in states.items()
    )
    env.update(grad=Symbol("grad", VECTOR, "grad"), loss=Symbol("loss", NUMBER, "loss"))
    flow = Flow(checker, env, "flat", program, sc)
    for st in states.values():
        if st.init is not None:  # computed in the step, from inputs
            flow.kind(st.init)
    flow.body(sc.body)
    flow.report_unused()
    for proc in program.procedures.values():
        flow = Flow(
            checker,
            {
                p.name.id: Symbol(
                    p.name.id, proc.types.get(p.name.id, EMPTY), "argument"
                )
                for p in proc.params
            },
            "procedure",
            program,
            proc,
        )
        flow.body(proc.body)
        flow.report_unused()
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
