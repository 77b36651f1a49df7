"""Lowering a flat update and its procedures: checked syntax and inferred types to IR.

Part of the lower stage (language → check → lower → emit). generator.check has checked the
``update flat:`` block and the procedures and generator.check.types has inferred the type of every
name; this module resolves each name to what it is (an input, a state, a counter, the gradient, a
local) and gives every expression the form its type has (a vector, a 0-d tensor, a Python value),
so that generator.emit.python.flat prints the step from the IR alone. Meaning is decided here, once:
a check's condition is negated into the condition under which it fails, ``param <- param + t * d``
becomes a step along ``d``, ``reversed(range(n))`` a loop counting down.
"""

from __future__ import annotations

from generator import ir
from generator.check.flat_rules import step_along
from generator.check.model import CheckedSpec
from generator.check.types import Program, Scope, Typer
from generator.language import syntax as S
from generator.language.diagnostics import GeneratorBug
from generator.language.types import Kind

_NEGATED = {"==": "!=", "!=": "==", "<": ">=", "<=": ">", ">": "<=", ">=": "<"}


def form(t: frozenset) -> ir.Form:
    """The form of a value of type ``t`` (a union: a value that may be a tensor is spelled as one)."""
    if Kind.TENSOR in t:
        return ir.Form.VECTOR
    if Kind.REDUCED in t:
        return ir.Form.TENSOR
    return ir.Form.HOST


class FlatLowerer:
    """Lowers the statements and expressions of one scope (the update or a procedure)."""

    def __init__(self, program: Program, sc: Scope):
        self.p, self.sc = program, sc
        self.typer = Typer(program)
        self.update = sc.name == "update"

    # ---- names -------------------------------------------------------------------------------------
    def ref(self, name: str) -> ir.VRef:
        f = form(self.sc.types.get(name, frozenset()))
        if not self.update:
            return ir.VRef(name, ir.Binding.LOCAL, f)
        if name == "grad":
            return ir.VRef(name, ir.Binding.GRAD, f)
        if name == "loss":
            return ir.VRef(name, ir.Binding.LOSS, f)
        st = self.p.states.get(name)
        if st is not None:
            kind = ir.Binding.COUNTER if st.kind == "count" else ir.Binding.STATE
            return ir.VRef(st.key, kind, f)
        if name in self.p.inputs:
            return ir.VRef(name, ir.Binding.INPUT, f)
        return ir.VRef(name, ir.Binding.LOCAL, f)

    # ---- expressions -------------------------------------------------------------------------------
    def form_of(self, e) -> ir.Form:
        return form(self.typer.expr(self.sc, e))

    def expr(self, e) -> ir.VExpr:
        if isinstance(e, S.Number):
            return ir.number(e.text)
        if isinstance(e, S.Bool):
            return ir.SConst(e.value)
        if isinstance(e, S.NoneLit):
            return ir.SConst(None)
        if isinstance(e, S.String):
            return ir.SConst(e.value)
        if isinstance(e, S.Name):
            return self.ref(e.id)
        if isinstance(e, S.Unary):
            return ir.VUnary(e.op, self.expr(e.operand), self.form_of(e))
        if isinstance(e, S.Binary):
            op = "**" if e.op == "^" else e.op
            return ir.VBin(
                op, self.expr(e.left), self.expr(e.right), self.form_of(e), e.grouped
            )
        if isinstance(e, S.Compare):
            return ir.VCompare(
                e.ops, tuple(self.expr(x) for x in e.operands), self.form_of(e)
            )
        if isinstance(e, S.Conditional):
            return ir.VCond(
                self.expr(e.cond),
                self.expr(e.then),
                self.expr(e.orelse),
                self.form_of(e),
            )
        if isinstance(e, S.Tuple):
            return ir.VTuple(tuple(self.expr(x) for x in e.items))
        if isinstance(e, S.List):
            return ir.VList(tuple(self.expr(x) for x in e.items))
        if isinstance(e, S.Index):
            return ir.VIndex(self.expr(e.value), self.expr(e.index), self.form_of(e))
        if isinstance(e, S.Call):
            return self.call(e)
        raise GeneratorBug(f"a flat update has {type(e).__name__}")

    def call(self, e: S.Call) -> ir.VExpr:
        args = tuple(self.expr(a) for a in e.args)
        proc = self.p.procedures.get(e.func)
        if proc is not None:
            return ir.VProcCall(
                e.func,
                args,
                tuple((k, self.expr(v)) for k, v in e.keywords),
                proc.evaluates,
                self.form_of(e),
            )
        if e.func == "evaluate":
            return ir.VEvaluate(args)
        return ir.VCall(e.func, args, self.form_of(e))

    def fails(self, e) -> ir.VExpr:
        """The condition under which ``check e`` raises: a comparison's opposite, else ``not e``."""
        if isinstance(e, S.Compare) and len(e.ops) == 1:
            return ir.VCompare(
                (_NEGATED[e.ops[0]],),
                tuple(self.expr(x) for x in e.operands),
                ir.Form.HOST,
            )
        return ir.VUnary("not", self.expr(e), ir.Form.HOST)

    # ---- statements --------------------------------------------------------------------------------
    def block(self, stmts) -> tuple[ir.Stmt, ...]:
        return tuple(self.stmt(s) for s in stmts)

    def stmt(self, s) -> ir.Stmt:
        if isinstance(s, S.Assign):
            if s.target.id == "param" and self.update:
                sign, size, direction = step_along(s.value)
                return ir.StepParams(
                    None if size is None else self.expr(size),
                    sign == "-",
                    self.expr(direction),
                )
            return ir.Bind(self.ref(s.target.id), self.expr(s.value))
        if isinstance(s, S.MultiAssign):
            return ir.BindMany(
                tuple(self.ref(n.id) for n in s.targets), self.expr(s.value)
            )
        if isinstance(s, S.ItemAssign):
            return ir.SetItem(
                self.ref(s.target.id), self.expr(s.index), self.expr(s.value)
            )
        if isinstance(s, S.CallStmt):
            c = s.call
            if c.func == "append":
                return ir.ListAppend(self.ref(c.args[0].id), self.expr(c.args[1]))
            if c.func == "pop_first":
                return ir.ListPopFirst(self.ref(c.args[0].id))
            return ir.CallProcedure(self.call(c))
        if isinstance(s, S.If):
            orelse = self.block(s.orelse)
            for cond, body in reversed(s.branches):  # elif: an `if` alone in an else
                orelse = (ir.If(self.expr(cond), self.block(body), orelse),)
            return orelse[0]
        if isinstance(s, S.While):
            return ir.While(self.expr(s.cond), self.block(s.body))
        if isinstance(s, S.For):
            it = s.iterable
            reverse = it.func == "reversed"
            args = it.args[0].args if reverse else it.args
            start, stop = (None, args[0]) if len(args) == 1 else args
            return ir.ForRange(
                s.var.id,
                None if start is None else self.expr(start),
                self.expr(stop),
                reverse,
                self.block(s.body),
            )
        if isinstance(s, S.Repeat):
            return ir.Repeat(self.expr(s.count), self.block(s.body))
        if isinstance(s, S.Break):
            return ir.Break()
        if isinstance(s, S.Return):
            return ir.Return(tuple(self.expr(v) for v in s.values))
        if isinstance(s, S.Check):
            parts = tuple(
                self.ref(text) if placeholder else text
                for text, placeholder in S.message_parts(s.message.text)
            )
            return ir.Raise(self.fails(s.expr), s.message.exception, ir.Message(parts))
        raise GeneratorBug(f"a flat update has {type(s).__name__}")


def lower_flat(checked: CheckedSpec) -> ir.FlatStep:
    """The IR of a checked spec's ``update flat:`` block and procedures."""
    program = checked.program
    update = FlatLowerer(program, program.update)
    procedures = []
    for sc in program.procedures.values():
        lw = FlatLowerer(program, sc)
        procedures.append(
            ir.Procedure(
                sc.name,
                tuple(
                    ir.ProcedureParameter(
                        p.name.id, None if p.default is None else lw.expr(p.default)
                    )
                    for p in sc.params
                ),
                lw.block(sc.body),
                sc.evaluates,
            )
        )
    states = program.states.values()
    return ir.FlatStep(
        body=update.block(program.update.body),
        procedures=tuple(procedures),
        inputs=tuple(program.inputs),
        counters=tuple(
            (st.key, update.expr(st.init)) for st in states if st.kind == "count"
        ),
        states=tuple(
            (st.key, None if st.lazy else update.expr(st.init))
            for st in states
            if st.kind != "count"
        ),
    )
