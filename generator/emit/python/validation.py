"""Constructor checks: a spec's ``requires`` and ``check`` lines as Python conditions and messages.

Messages are spec text, so they are never pasted into the module as code: the literal parts are
escaped (braces doubled, then ``repr``), and each ``{placeholder}`` is an input name the checker has
verified, spelled as the constructor sees it (``{beta1}`` → ``{betas[0]}``).
"""

from __future__ import annotations

from generator import ir
from generator.language import syntax as S
from generator.check.checker import CheckedSpec
from generator.language.diagnostics import GeneratorBug
from generator.emit.python.printer import ScalarPrinter

# What a message on a parameter may show besides inputs: its size, as torch's messages do.
PARAM_PLACEHOLDERS = {"size(param)": "p.size()"}


def constructor_names(checked: CheckedSpec) -> dict[str, str]:
    """Spec symbol → how the constructor spells it (``beta1`` → ``betas[0]``)."""
    names = {}
    for inp in checked.spec.inputs:
        if len(inp.names) == 1:
            names[inp.names[0].id] = inp.arg_name
        else:
            for k, n in enumerate(inp.names):
                names[n.id] = f"{inp.arg_name}[{k}]"
    return names


def message_source(text: str, names: dict[str, str]) -> str:
    """Python source of a message: a plain literal, or an f-string whose only fields are inputs."""
    parts = S.message_parts(text)
    if not any(placeholder for _, placeholder in parts):
        return repr("".join(t for t, _ in parts))
    out = []
    for part, placeholder in parts:
        if placeholder:
            out.append("{" + names[part] + "}")
        else:
            out.append(part.replace("{", "{{").replace("}", "}}"))
    return "f" + repr("".join(out))


def _mentions_numel(e) -> list[str]:
    """Inputs whose numel() a requirement asks for: the requirement applies to tensors only."""
    if isinstance(e, S.Call) and e.func == "numel" and isinstance(e.args[0], S.Name):
        return [e.args[0].id]
    out = []
    for f in ("operand", "left", "right", "cond", "then", "orelse"):
        x = getattr(e, f, None)
        if x is not None:
            out += _mentions_numel(x)
    for x in getattr(e, "args", ()) or getattr(e, "operands", ()) or ():
        out += _mentions_numel(x)
    return out


def validations(checked: CheckedSpec) -> list[ir.Validation]:
    from generator.lower.lowering import Lowerer

    names = constructor_names(checked)
    lw = Lowerer(checked)
    printer = ScalarPrinter(lambda r: names.get(r.name, r.name), _per_parameter_name)
    out = []
    for v in checked.spec.validations:
        if is_step_check(v):
            continue
        per_parameter = "param" in _names(v.expr)
        fails = printer(negate(lw.sexpr(v.expr)))
        guards = [
            f"isinstance({names[n]}, Tensor)"
            for n in dict.fromkeys(_mentions_numel(v.expr))
        ]
        if guards:
            fails = " and ".join(guards + [fails])
        msg = v.message
        text = msg.text if msg else f"Invalid value: `{_show(v.expr)}` does not hold"
        out.append(
            ir.Validation(
                fails=fails,
                exception=msg.exception if msg else "ValueError",
                message=message_source(
                    text, names | (PARAM_PLACEHOLDERS if per_parameter else {})
                ),
                per_parameter=per_parameter,
            )
        )
    return out


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


def _names(e) -> set[str]:
    from generator.lower.lowering import _names

    return _names(e)


def is_step_check(v) -> bool:
    """A check on the gradient runs at every step, in ``_init_group``, not in the constructor."""
    return "grad" in _names(v.expr)


def step_checks(checked: CheckedSpec) -> list[ir.Validation]:
    from generator.lower.lowering import Lowerer

    group = {}
    for inp in checked.spec.inputs:
        for k, n in enumerate(inp.names):
            group[n.id] = f'group["{inp.arg_name}"]' + (
                f"[{k}]" if len(inp.names) > 1 else ""
            )
    lw = Lowerer(checked)
    printer = ScalarPrinter(lambda r: group.get(r.name, r.name), _per_parameter_name)
    out = []
    for v in checked.spec.validations:
        if not is_step_check(v):
            continue
        text = v.message.text
        out.append(
            ir.Validation(
                fails=printer(negate(lw.sexpr(v.expr))),
                exception=v.message.exception,
                # (a placeholder reads the group's value: `{lr}` is group["lr"])
                message=message_source(text, group),
            )
        )
    return out


def _per_parameter_name(e) -> str:
    """``param`` and ``grad`` in checks, as ``_init_group`` and the constructor name them."""
    if isinstance(e, ir.TRef) and e.role in ("param", "grad"):
        return "p" if e.role == "param" else "p.grad"
    raise GeneratorBug(f"a check reads {e!r}")


def _show(e) -> str:
    from generator.language.spec_printer import print_expr

    return print_expr(e)
