"""Checks as IR: a spec's `requires`, `check` and `none means` lines, and the refusals its mode
implies, lowered to ir.Validation, ir.Raise and scalar expressions.

Part of lowering (generator.lower.lowering calls it once per spec). Nothing here is Python text:
a message is an ir.Message of literal parts and the values it shows, a condition an ir.SExpr;
the Python emitter decides how the constructor, ``_init_group`` or the step spell each name
(``{beta1}`` is ``betas[0]`` in the constructor and ``group["betas"][0]`` at a step).
"""

from __future__ import annotations

from dataclasses import replace

from generator import ir
from generator.check.model import CheckedSpec
from generator.check.queries import whole_tensor_constructs
from generator.language import syntax as S
from generator.language.spec_printer import print_expr
from generator.lower.expressions import names_read

# What a message on a parameter may show besides inputs: its size, as torch's messages do.
_PARAM = ir.TRef("param", "param")
PARAM_PLACEHOLDERS = {"size(param)": ir.SCall("size", (_PARAM,))}


def message(text: str, per_parameter: bool = False) -> ir.Message:
    """A message's parts: literal text, and for each ``{name}`` the value it shows (the
    checker has verified that every placeholder is an input, or ``size(param)`` on a
    parameter)."""
    parts: list = []
    for part, placeholder in S.message_parts(text):
        if not placeholder:
            if parts and isinstance(parts[-1], str):
                parts[-1] += part
            else:
                parts.append(part)
        elif per_parameter and part in PARAM_PLACEHOLDERS:
            parts.append(PARAM_PLACEHOLDERS[part])
        else:
            parts.append(ir.SRef(part))
    return ir.Message(tuple(parts))


def negate(e: ir.SExpr) -> ir.SExpr:
    """The condition under which a requirement fails, written the way a person would.

    ``not not x`` → ``x``; ``not a == b`` → ``a != b``. Orderings keep their ``not``: with NaN,
    ``not lr >= 0`` and ``lr < 0`` differ, and torch raises for a NaN learning rate.
    """
    if isinstance(e, ir.SUnary) and e.op == "not":
        return e.operand
    flip = {"==": "!=", "!=": "==", "is": "is not", "is not": "is"}
    if isinstance(e, ir.SCompare) and len(e.ops) == 1 and e.ops[0] in flip:
        return ir.SCompare((flip[e.ops[0]],), e.operands)
    if isinstance(e, ir.SBin) and e.op in ("==", "!="):
        return ir.SBin({"==": "!=", "!=": "=="}[e.op], e.left, e.right)
    if isinstance(e, ir.SBin) and e.op == "or":  # not (a or b) → not a and not b
        return ir.SBin("and", negate(e.left), negate(e.right))
    return ir.SUnary("not", e)


def is_step_check(v: S.Require) -> bool:
    """A check on the gradient runs at every step, in ``_init_group``, not in the constructor."""
    return "grad" in names_read(v.expr)


def _mentions_numel(e) -> list[str]:
    """Inputs whose numel() a requirement asks for: the requirement applies to tensors only."""
    if isinstance(e, S.Call) and e.func == "numel" and isinstance(e.args[0], S.Name):
        return [e.args[0].id]
    out = []
    for child in S.children(e):
        out += _mentions_numel(child)
    return out


def validations(checked: CheckedSpec, lw) -> tuple[ir.Validation, ...]:
    """The constructor's checks, in the spec's order (``lw``: the spec's Lowerer)."""
    out = []
    for v in checked.spec.validations:
        if is_step_check(v):
            continue
        per_parameter = "param" in names_read(v.expr)
        fails = negate(lw.sexpr(v.expr))
        for name in reversed(list(dict.fromkeys(_mentions_numel(v.expr)))):
            fails = ir.SBin("and", ir.SCall("is_tensor", (ir.SRef(name),)), fails)
        msg = v.message
        text = (
            msg.text if msg else f"Invalid value: `{print_expr(v.expr)}` does not hold"
        )
        out.append(
            ir.Validation(
                fails=fails,
                exception=msg.exception if msg else "ValueError",
                message=message(text, per_parameter),
                per_parameter=per_parameter,
            )
        )
    return tuple(out)


def step_checks(
    checked: CheckedSpec, lw, mode: str, spec_path: str
) -> tuple[ir.Validation, ...]:
    """The checks made on each parameter at every step: the spec's checks of the gradient,
    then the refusal of a sharded parameter where the update reads whole tensors."""
    out = [
        ir.Validation(
            fails=negate(lw.sexpr(v.expr)),
            exception=v.message.exception,
            message=message(v.message.text),
        )
        for v in checked.spec.validations
        if is_step_check(v)
    ]
    for what, span, guard in whole_tensor_constructs(checked) if mode == "each" else ():
        # (a modifier's line names its own file)
        where = span.path if span.path != checked.spec.path else spec_path
        refusal = _refuse_sharded(
            f"{checked.spec.name} reads each parameter's whole tensor ({what}, "
            f"{where}:{span.line}); a sharded DTensor parameter "
            "(FSDP2's fully_shard) holds only a shard of it, so it is refused rather "
            "than updated as if the shard were the whole. Keep these parameters "
            "unsharded (replicated), or use an optimizer whose update is elementwise.",
            per_parameter=False,
        )
        if guard is not None:  # (refused only with the options that take it)
            refusal = replace(
                refusal, fails=ir.SBin("and", lw.sexpr(guard), refusal.fails)
            )
        out.append(refusal)
    return tuple(out)


def unsharded(spec: S.Spec, mode: str) -> tuple[ir.Validation, ...]:
    """An update of all parameters as one vector, or of one random coordinate, reads whole
    tensors: sharded DTensor parameters (FSDP2) are refused when the optimizer is built.
    """
    if mode not in ("flat", "random"):
        return ()
    what = (
        "updates all parameters as one vector (`update flat:`)"
        if mode == "flat"
        else "updates one random coordinate of a whole parameter"
    )
    return (
        _refuse_sharded(
            f"{spec.name} {what}; a sharded DTensor parameter (FSDP2's fully_shard) holds "
            "only a shard of it, so it is refused. Keep the parameters unsharded (replicated).",
            per_parameter=True,
        ),
    )


def _refuse_sharded(text: str, per_parameter: bool) -> ir.Validation:
    return ir.Validation(
        fails=ir.SCall("is_sharded", (_PARAM,)),
        exception="ValueError",
        message=ir.Message((text,)),
        per_parameter=per_parameter,
    )


def none_means(checked: CheckedSpec, lw) -> tuple[tuple[str, ir.SExpr], ...]:
    """(argument, its value when given as None) for inputs declared with `none means`."""
    return tuple(
        (inp.arg_name, lw.sexpr(inp.none_means))
        for inp in checked.spec.inputs
        if inp.none_means is not None
    )
