"""Whole-spec queries: what a spec's syntax says about it as a whole, asked by check, lower and emit.

Part of the check stage (language → check → lower → emit), with no state of its own: whether a
spec refuses complex parameters (``refuses_complex``, also asked by the emitters and the verify
command), whether its update reads the parameter's shape without refusing them
(``check_shapes_of_complex``, a check generator.check.checker makes once the update is followed),
the first construct that reads a whole tensor (``whole_tensor_constructs``, for
generator.lower.checks), and small questions about one expression (``is_param``,
``mentions_name``).
"""

from __future__ import annotations

from generator.language import syntax as S
from generator.language.builtins import BUILTINS, CASTS
from generator.language.diagnostics import Collector
from generator.language.types import Kind
from generator.check.model import CheckedSpec


def refuses_complex(spec: S.Spec) -> bool:
    """A spec that checks ``not is_complex(...)`` never runs its update on complex tensors
    (one that refuses them under an option, ``not (use_gc and is_complex(grad))``, does).
    """
    return any(_is_complex_call(_negated(v.expr)) for v in spec.validations)


def complex_refused_under(spec: S.Spec) -> list[S.Expr]:
    """The conditions under which a spec refuses complex tensors: ``use_gc`` for
    ``check not (use_gc and is_complex(grad))``."""
    found = []
    for v in spec.validations:
        e = _negated(v.expr)
        if isinstance(e, S.Binary) and e.op == "and":
            for this, other in ((e.left, e.right), (e.right, e.left)):
                if _is_complex_call(this):
                    found.append(other)
    return found


def _negated(e):
    return e.operand if isinstance(e, S.Unary) and e.op == "not" else None


def _is_complex_call(e) -> bool:
    return isinstance(e, S.Call) and e.func == "is_complex"


def check_shapes_of_complex(spec: S.Spec, blocks, out: Collector) -> None:
    """An update that reads the parameter's shape must refuse complex parameters: complex ones
    are updated through their real views, whose shape is not theirs (one more dimension, twice
    the elements), so a shape test would silently take the other branch."""

    if refuses_complex(spec):
        return

    def shape_calls(e):
        if (
            isinstance(e, S.Call)
            and e.func in ("dim", "size", "numel")
            and e.args
            and isinstance(e.args[0], S.Name)
            and e.args[0].id in ("param", "grad", "g")
        ):
            yield e
        for c in S.children(e):
            yield from shape_calls(c)

    # (a block under a condition the spec refuses complex tensors under reads real shapes:
    # gradient centralization's `if use_gc and dim(param) > 1:`)
    refused_under = complex_refused_under(spec)

    def refused(cond) -> bool:
        return cond in refused_under or (
            isinstance(cond, S.Binary)
            and cond.op == "and"
            and (refused(cond.left) or refused(cond.right))
        )

    def stmts(body):
        for s in body:
            if isinstance(s, S.If) and refused(s.branches[0][0]):
                continue
            for e in S.expressions(s):
                yield from shape_calls(e)
            for b in S.sub_blocks(s):
                yield from stmts(b)

    # (one random parameter: updated as it is, complex or not)
    found = [c for b in blocks if b.mode == "each" for c in stmts(b.body)]
    found += [
        c
        for st in spec.states
        for e in (
            st.condition,
            st.init if st.shaped or st.per_dimension else None,
        )
        if e is not None
        for c in shape_calls(e)
    ]
    if found:
        out.error(
            "E327",
            f"the update reads the parameter's shape (`{found[0].func}`): complex parameters, "
            "updated through their real views, would read another shape",
            found[0].span,
            hint='refuse them: `check not is_complex(param) else "... does not support complex '
            'parameters"`',
        )


# Calls whose value depends on a whole tensor, not on each element alone: on a shard of a
# parameter (FSDP2's DTensor) they would compute on the shard as if it were the whole. Every
# function of tensors the table does not mark elementwise (a reduction, a matrix function, a
# product along a dimension), but the casts and copies, which keep each element's value.
WHOLE_TENSOR_CALLS = frozenset(
    {"item"}
    | {
        name
        for name, b in BUILTINS.items()
        if b.result not in (Kind.INT, Kind.BOOL, Kind.STR, Kind.SCALAR)
        and not b.elementwise
        and b.context in ("update", "both", "estimate")
        and name not in CASTS | {"clone"}
    }
)


def whole_tensor_constructs(
    checked: CheckedSpec,
) -> list[tuple[str, S.Span, S.Expr | None]]:
    """The constructs of the per-parameter update that read a whole tensor (a reduction, a
    shape, a matrix product, a state with a reduced dimension, a sum over parameters), each
    with its place in the spec and the condition on the inputs it runs under: the first one
    that runs always (None), or else the first under each condition (`if cautious:` and
    `if adanorm:` blocks give two); empty when the update is elementwise."""

    def of_inputs(e) -> bool:
        # (a condition the constructor's values decide: names of inputs, no calls)
        if isinstance(e, S.Name):
            return e.id in checked.inputs and e.subscript is None
        if isinstance(e, S.Call):
            return False
        return all(of_inputs(c) for c in S.children(e))

    def input_part(cond):
        # (the conjuncts the inputs decide: `use_gc` of `use_gc and dim(param) > 1`, which
        # holds wherever the whole condition does; refusing under it refuses more, never less)
        if of_inputs(cond):
            return cond
        if isinstance(cond, S.Binary) and cond.op == "and":
            left, right = input_part(cond.left), input_part(cond.right)
            if left is None or right is None:
                return left or right
            return S.Binary("and", left, right, cond.span)
        return None

    found: list[tuple[str, S.Span, S.Expr | None]] = []
    for st in checked.spec.states:
        # (a state made under a condition of the inputs is one only with it: AdaNorm's norm)
        when = None if st.condition is None else input_part(st.condition)
        if st.reduced is not None:
            found.append(
                (f"state `{st.name.id}`, reduced over {st.reduced}", st.span, when)
            )
        elif st.shaped is not None or st.per_dimension is not None:
            found.append((f"state `{st.name.id}`, of its own shape", st.span, when))
        elif st.kind == "total":
            found.append((f"`{st.name.id}`, a sum over all parameters", st.span, None))

    def visit(e, guard):
        if isinstance(e, S.Call) and e.func in WHOLE_TENSOR_CALLS:
            found.append((f"`{e.func}(...)`", e.span, guard))
        elif isinstance(e, S.Binary) and e.op == "@":
            found.append(("a matrix product `@`", e.span, guard))
        for c in S.children(e):
            visit(c, guard)

    def both(guard, cond):
        if cond is None:
            return guard
        return cond if guard is None else S.Binary("and", guard, cond, cond.span)

    def stmts(body, guard):
        for s in body:
            if isinstance(s, S.If):  # each condition before its own block
                for k, (cond, b) in enumerate(s.branches):
                    visit(cond, guard)
                    # (the first branch of a choice by the inputs runs under its condition;
                    # the others are taken as always, which refuses more, never less)
                    inner = both(guard, input_part(cond)) if k == 0 else guard
                    stmts(b, inner)
                stmts(s.orelse, guard)
                continue
            for e in S.expressions(s):
                visit(e, guard)
            for b in S.sub_blocks(s):
                stmts(b, guard)

    for block in checked.blocks:
        # (`update optimizer:` holds numbers, and estimates, which differentiate every
        # parameter's whole gradient)
        if block.mode in ("each", "random", "step"):
            stmts(block.body, None)
    always = [f for f in found if f[2] is None]
    if always:
        return always[:1]
    firsts: dict = {}  # (the first construct under each condition)
    for f in found:
        firsts.setdefault(f[2], f)
    return list(firsts.values())


def varies_beyond_rank(e: S.Expr, env: dict, beyond=frozenset()) -> bool:
    """Whether ``e`` may differ between two parameters of one rank, or between steps: it
    reads a size, a state (a counter), a draw, a tensor, or a local in ``beyond`` (one
    assigned such a value), not only ``dim(param)`` and the inputs; ``env`` the symbols in
    scope. The foreach path runs once per rank, so a loop's bound, a list's length or a
    condition that does not vary beyond it is one value in each of its calls."""
    if isinstance(e, S.Call):
        if e.func == "dim":
            return False
        if e.func == "len" and len(e.args) == 1 and isinstance(e.args[0], S.Name):
            # (a list state's length: its count's, `[0] * n` or `range(dim(param))`)
            st = getattr(env.get(e.args[0].id), "decl", None)
            if isinstance(st, S.State) and (st.repeated or st.per_dimension):
                count = (st.repeated or st.per_dimension)[-1]
                return varies_beyond_rank(count, {})
        b = BUILTINS.get(e.func)
        if e.func == "randint" or (b is not None and b.per_parameter):
            return True
    if isinstance(e, S.Name):
        sym = env.get(e.id)
        if sym is None or sym.role == "input":
            return False
        return sym.role != "local" or e.id in beyond
    return any(varies_beyond_rank(c, env, beyond) for c in S.children(e))


def calls(checked: CheckedSpec, func: str) -> bool:
    """Whether the spec calls ``func`` anywhere: in a state's first value or an update."""

    def in_expr(e) -> bool:
        if isinstance(e, S.Call) and e.func == func:
            return True
        return any(in_expr(c) for c in S.children(e))

    def stmts(body) -> bool:
        return any(
            any(in_expr(e) for e in S.expressions(s))
            or any(stmts(b) for b in S.sub_blocks(s))
            for s in body
        )

    return any(
        st.init is not None and in_expr(st.init) for st in checked.spec.states
    ) or any(stmts(block.body) for block in checked.blocks)


def reads_rank(checked: CheckedSpec) -> bool:
    """Whether the spec reads a parameter's rank (``dim(param)``: a branch on it, a list made
    for each dimension): its 0-d parameters then take paths its others do not."""
    return calls(checked, "dim")


def is_param(e) -> bool:
    """`param` itself: a state declared `<- param` starts as a copy of the parameter."""
    return isinstance(e, S.Name) and e.id == "param" and e.subscript is None


def is_grad(e) -> bool:
    """`grad` itself: a state declared `<- grad` starts as a copy of the gradient it is made
    with (the raw gradient, before the update reads it: pytorch_optimizer's Shampoo's buffer).
    """
    return isinstance(e, S.Name) and e.id == "grad" and e.subscript is None


def mentions_name(e: S.Expr, name: str) -> bool:
    """Whether ``e`` reads ``name`` anywhere."""
    if isinstance(e, S.Name):
        return e.id == name
    return any(mentions_name(c, name) for c in S.children(e))
