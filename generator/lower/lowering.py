"""Lowering: a checked spec to the IR optimizer (ir.Optimizer) that the emitters print.

``lower`` assembles the optimizer from its parts: the arguments (types and defaults as IR), the
state buffers, the checks (generator.lower.checks), and the update's blocks lowered statement by
statement (generator.lower.statements; in-place operations chosen by the rule table of
generator.lower.rules), grouped into passes: each `update:` closes a pass, its optimizer and group
blocks run before its parameters. Scalars decided by hyperparameters alone are hoisted out of the
per-parameter loop; what each pass's functional receives is what it reads. The result's scalar
expressions are folded last (generator.lower.fold).
"""

from __future__ import annotations

import hashlib
from dataclasses import replace
from pathlib import Path

from generator import ir
from generator.ir import uses
from generator.lower import checks
from generator.language import syntax as S
from generator.language.builtins import BUILTINS, CONSTANTS
from generator.language.types import Kind
from generator.check.lets import substitute
from generator.check.model import CheckedSpec
from generator.check.queries import refuses_complex
from generator.language.names import IMPLEMENTATION_FLAGS
from generator.lower.expressions import list_name, loop_var, names_read
from generator.lower.flat import lower_flat
from generator.lower.fold import fold_optimizer
from generator.lower.shared import name_shared_values
from generator.lower.statements import Lowerer

# ---- the optimizer ------------------------------------------------------------------------------------


_PY_TYPES = {
    "float": ir.PyType.FLOAT,
    "int": ir.PyType.INT,
    "bool": ir.PyType.BOOL,
    "tensor": ir.PyType.TENSOR,
    "str": ir.PyType.STR,
    "dtype": ir.PyType.DTYPE,
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
        tuple(_PY_TYPES[n] for n in inp.type.names),
        any(inp.type.optional),
        repeated=inp.type.kind == "sequence",
    )


def _literal(e: S.Expr) -> ir.SExpr:
    """A default: a number, bool, None, string or a tuple of them."""
    if isinstance(e, S.Tuple):
        return ir.STuple(tuple(_literal(x) for x in e.items))
    if isinstance(e, S.Unary):
        return ir.SUnary("-", _literal(e.operand))
    if isinstance(e, (S.Bool, S.String)):
        return ir.SConst(e.value)
    if isinstance(e, S.NoneLit):
        return ir.SConst(None)
    if isinstance(e, S.Name):  # (a constant: `float32`)
        return ir.SConst(CONSTANTS[e.id].value, e.id)
    return ir.number(e.text)


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
                doc=inp.doc or "",
            )
        )
    flat = checked.program is not None
    states = []
    for st in spec.states:
        # `[0] * n`: n tensors, each made as a state of first value 0 is
        first, length = st.repeated if st.repeated and not flat else (st.init, None)
        # `eps * eye(n)`: a tensor of its own shape, of entries (on the diagonal) eps
        shape = constructor = item_var = None
        per_dimension = None if flat else st.per_dimension
        if per_dimension is not None:
            first, var, count = per_dimension
            item_var, length = var.id, count
        shaped = S.shaped(first) if first is not None and not flat else None
        if shaped is not None:
            call, factor = shaped
            constructor = call.func
            # (its whole-number arguments: `zeros_along(param, k)` is made of the parameter)
            shape = tuple(
                lw.sexpr(d)
                for d, t in zip(call.args, BUILTINS[call.func].params)
                if t in (Kind.INT, Kind.BOOL)
            )
            zeros = call.func in ("zeros", "zeros_along")  # (zero times any number)
            init = (
                ir.number("0" if zeros else "1")
                if factor is None or zeros
                else lw.sexpr(factor)
            )
        else:
            init = None if first is None or flat else lw.sexpr(first)
        states.append(
            ir.StateBuffer(
                key=st.key,
                symbol=st.name.id,
                kind=st.kind,
                scope=st.scope,
                # a flat update's states are printed from the spec (generator.emit.python.flat);
                # `<- param` is a copy of the parameter (SRef("param"), printed as a clone)
                init=init,
                length=None if length is None else lw.sexpr(length),
                shape=shape,
                constructor=constructor,
                item_var=item_var,
                condition=None if st.condition is None else lw.sexpr(st.condition),
                eager=st.eager,
                on_device=st.on_device,
                reduced=None if st.reduced is None else int(st.reduced),
                as_number=st.as_number,
                stored_as=st.stored_as,
                column_major=st.column_major is not None,
                dtype=st.dtype,
                transient=st.transient,
                list_name=list_name(st.key),
                var=loop_var(st.key, st.kind),
            )
        )
    parameter_values, states = _name_parameter_values(spec, lw, states)
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
        flat=None if checked.program is None else lower_flat(checked),
        sparse=spec.sparse,
        complex_mode=spec.complex_mode,
        refuses_complex=refuses_complex(spec),
        by_rank=checked.by_rank,
        parameter_values=parameter_values,
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
    return name_shared_values(fold_optimizer(optimizer))


def _reads_name(stmts, name: str) -> bool:

    return any(
        uses(e, lambda x: isinstance(x, ir.SRef) and x.name == name)
        for s in ir.walk(stmts)
        for e in ir.expressions(s)
    )


def _calls(e, func: str) -> bool:
    return uses(e, lambda x: isinstance(x, ir.SCall) and x.func == func)


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
    return all(_static(p, static) for p in ir.children(e))


def _name_parameter_values(spec: S.Spec, lw: Lowerer, states: list[ir.StateBuffer]):
    """The `let` values the states are made from, and the states naming them.

    The checker saw the states with each `let` written out (generator.check.lets); the
    lowered values are found again in the lowered states (the largest first, so that a value
    made of another keeps its own name) and replaced by a reference to the name, which
    ``_init_state`` computes once before the states: ``X = merge_dims(p, ...)``, then
    ``block(X, j // rank, ...)``."""
    if not spec.lets:
        return (), states
    # the values the states read, and the values those read (only these are lowered: a value
    # the update alone reads is a local of the update)
    read = {
        n
        for st in spec.states
        for e in (st.written_init, st.written_condition)
        if e is not None
        for n in names_read(e)
    }
    for let in reversed(spec.lets):
        if let.name.id in read:
            read |= names_read(let.value)
    lowered: list[tuple[str, object, object]] = []
    prior: dict[str, S.Expr] = {}
    for let in spec.lets:
        e = substitute(let.value, prior)
        prior[let.name.id] = e
        if let.name.id not in read:
            continue
        kind = lw.kind(e)
        tensor = kind in (Kind.TENSOR, Kind.MASK)
        ref = ir.TRef(let.name.id, "local") if tensor else ir.SRef(let.name.id)
        lowered.append((let.name.id, lw.operand(e), ref))
    fields_ = ("init", "length", "shape", "condition")
    named = []
    for st in states:
        for _, value, ref in reversed(lowered):
            st = replace(
                st, **{f: ir.substitute(getattr(st, f), value, ref) for f in fields_}
            )
        named.append(st)
    values = []
    for k, (name, value, ref) in enumerate(lowered):
        for _, inner, inner_ref in reversed(lowered[:k]):
            value = ir.substitute(value, inner, inner_ref)
        values.append(ir.ParameterValue(name, value))
    return tuple(values), named
