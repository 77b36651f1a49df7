"""Checks printed as Python: each ir.Validation / ir.Raise as a condition and a message.

The checks come lowered (generator.lower.checks); this module only spells them. Messages are
spec text, so they are never pasted into the module as code: the literal parts are escaped
(braces doubled, then ``repr``), and each value shown is printed like any other expression, with
the spelling of the place it runs in (``{beta1}`` is ``{betas[0]}`` in the constructor and
``{group["betas"][0]}`` at a step).
"""

from __future__ import annotations

from dataclasses import dataclass

from generator import ir
from generator.language.diagnostics import GeneratorBug
from generator.emit.python.blocks import Imports, message_source
from generator.emit.python.ops import OPS
from generator.emit.python.scalars import ScalarPrinter


@dataclass(frozen=True)
class PrintedCheck:
    """What the template writes: ``if fails: raise exception(message)``."""

    fails: str
    exception: str
    message: str
    per_parameter: bool = False


def constructor_names(opt: ir.Optimizer) -> dict[str, str]:
    """Spec symbol → how the constructor spells it (``beta1`` → ``betas[0]``)."""
    names = {}
    for a in opt.arguments:
        for k, symbol in enumerate(a.symbols):
            names[symbol] = a.name if len(a.symbols) == 1 else f"{a.name}[{k}]"
    return names


def group_names(opt: ir.Optimizer) -> dict[str, str]:
    """Spec symbol → how a step reads it from the group (``beta1`` → ``group["betas"][0]``)."""
    names = {}
    for a in opt.arguments:
        for k, symbol in enumerate(a.symbols):
            names[symbol] = f'group["{a.name}"]' + (
                f"[{k}]" if len(a.symbols) > 1 else ""
            )
    return names


def per_parameter_name(e) -> str:
    """``param`` and ``grad`` in checks, as ``_init_group`` and the constructor name them."""
    if isinstance(e, ir.TRef) and e.role in ("param", "grad"):
        return "p" if e.role == "param" else "p.grad"
    if isinstance(e, ir.TRef) and e.role == "local":  # a `let` the states are made from
        return e.name
    raise GeneratorBug(f"a check reads {e!r}")


def parameter_printer(name, imports: Imports) -> ScalarPrinter:
    """The printer of numbers read off the parameter where a state is made or a check runs
    (``p.size(0)``), the table's functions of it included: ``block(merge_dims(p, 512), j, n)``
    (the sizes of Scalable Shampoo's blocks, read through its `let` values)."""

    def tensor(e) -> str:
        if not isinstance(e, ir.TOp):
            return per_parameter_name(e)
        spell = OPS[e.op]
        args = [
            tensor(a) if isinstance(a, (ir.TRef, ir.TOp)) else printer(a)
            for a in e.args
        ]
        if spell.runtime:
            imports.need(spell.function)
            return f"{spell.function}({', '.join(args)})"
        if spell.method is not None:
            return f"{args[0]}.{spell.method}({', '.join(args[1:])})"
        raise GeneratorBug(f"a check reads {e!r}")

    printer = ScalarPrinter(name, tensor, imports)
    return printer


def checks_printer(names: dict[str, str], imports: Imports) -> ScalarPrinter:
    return parameter_printer(lambda r: names.get(r.name, r.name), imports)


def printed(v: ir.Validation, names: dict[str, str], imports: Imports) -> PrintedCheck:
    printer = checks_printer(names, imports)
    return PrintedCheck(
        fails=printer(v.fails),
        exception=v.exception,
        message=message_source(v.message, printer),
        per_parameter=v.per_parameter,
    )
