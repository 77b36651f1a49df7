"""The optimizer class's constructor as Python: signature, defaults, argument checks, docstring.

A part of rendering one module (generator.emit.python.module) from the lowered IR: what the
template's ``__init__`` and class docstring hold. The signature spells each argument's type and
default (plus the precision policy every per-parameter optimizer takes); the defaults dict keeps a
fixed input's value as computed; old pickles get their flags back through ``__setstate__``; the
checks of the arguments (generator.emit.python.validation prints them) run in the constructor, and
again at each step on the group's values; the docstring is the spec's summary, its algorithm box
(generator.emit.docs.latex) and one line per argument.
"""

from __future__ import annotations

from generator import ir
from generator.emit.docs.latex import algorithm_box
from generator.emit.python.validation import (
    PrintedCheck,
    checks_printer,
    constructor_names,
    group_names,
    printed,
)
from generator.emit.python.blocks import Imports
from generator.emit.python.scalars import annotation, literal
from generator.emit.python.facts import ModuleFacts, pydoc_string


def constructor_context(facts: ModuleFacts) -> dict:
    """The template's entries for the constructor and the class docstring."""
    return dict(
        signature=signature(facts),
        defaults=defaults(facts),
        setdefaults=setdefaults(facts),
        fixed=fixed(facts),
        step_checks=step_checks(facts),
        # `none means` of an argument (a fixed input's value is computed in `defaults`)
        none_means=[
            (a, v) for a, v in none_means(facts).items() if not facts.args[a].fixed
        ],
        validations=validations(facts),
        docstring=docstring(facts),
    )


def signature(facts: ModuleFacts) -> list[str]:
    out, star = [], False
    for a in facts.opt.arguments:
        if a.fixed:
            continue
        if a.keyword and not star:
            out.append("*")
            star = True
        ann = annotation(a.type)
        if a.tensor_ok and ann == "float | Tensor":
            ann = "float | Tensor"
        out.append(
            f"{a.name}: {ann}"
            + ("" if a.default is None else f" = {literal(a.default, facts.imports)}")
        )
    # the precision policy every per-parameter optimizer takes (generator.runtime.precision)
    if facts.opt.mode == "each":
        if not star:
            out.append("*")
        out += [
            "state_dtype: torch.dtype | dict[str, torch.dtype] | None = None",
            "compute_dtype: torch.dtype | None = None",
            'param_rounding: str = "nearest"',
            "rounding_seed: int | None = None",
        ]
    return out


def defaults(facts: ModuleFacts) -> list[tuple[str, str]]:
    args = facts.opt.arguments
    if facts.opt.defaults_order:
        args = sorted(args, key=lambda a: facts.opt.defaults_order.index(a.name))
    computed = none_means(facts)
    return [
        (
            a.name,
            computed.get(a.name, _default(a, facts.imports)) if a.fixed else a.name,
        )
        for a in args
    ]


def setdefaults(facts: ModuleFacts) -> list[tuple[str, str]]:
    if facts.opt.mode == "flat":  # no flags whose absence an old pickle would show
        return []
    return [
        (a.name, _default(a, facts.imports))
        for a in facts.opt.arguments
        if not a.fixed
        and isinstance(a.default, ir.SConst)
        and (a.default.value is None or isinstance(a.default.value, bool))
    ]


def fixed(facts: ModuleFacts) -> list[tuple[str, str]]:
    computed = none_means(facts)  # kept in the group as computed
    return [
        (a.name, _default(a, facts.imports))
        for a in facts.opt.arguments
        if a.fixed and a.name not in computed
    ]


def none_means(facts: ModuleFacts) -> dict[str, str]:
    """argument → the Python source of its value when given as None."""
    printer = checks_printer(constructor_names(facts.opt), facts.imports)
    return {a: printer(v) for a, v in facts.opt.none_means}


def validations(facts: ModuleFacts) -> list[PrintedCheck]:
    names = constructor_names(facts.opt)
    return [printed(v, names, facts.imports) for v in facts.opt.validations]


def step_checks(facts: ModuleFacts) -> list[PrintedCheck]:
    # a placeholder reads the group's value: `{lr}` is group["lr"]
    names = group_names(facts.opt)
    return [printed(v, names, facts.imports) for v in facts.opt.step_checks]


def docstring(facts: ModuleFacts) -> str:
    opt = facts.opt
    parts = [opt.summary, "", algorithm_box(facts.checked)]
    parts.append("    Args:")
    parts.append(
        "        params (iterable): iterable of parameters or named_parameters to "
        "optimize or iterable of dicts defining parameter groups."
    )
    for a in opt.arguments:
        if a.fixed:
            continue
        kind = annotation(a.type) + (", optional" if a.default is not None else "")
        flag = "foreach explicit" if a.explicit else a.name
        doc = a.doc or _FLAG_DOCS.get(flag, "")
        # (a default the docstring shows is text: what it names is not imported for it)
        default = (
            f" (default: {_default(a, Imports())})" if a.default is not None else ""
        )
        parts.append(f"        {a.name} ({kind}): {doc}{default}".rstrip())
    if opt.notes:
        parts.append("")
        parts += [f"    .. note:: {n}" for n in opt.notes]
    if opt.references:
        parts.append("")
        parts.append("    References:")
        parts += [f"        - {r}" for r in opt.references]
    parts.append("")
    parts.append(f"    Generated by optimgen from ``{opt.spec_path}``.")
    return pydoc_string("\n".join(parts) + "\n    ")


_FLAG_DOCS = {
    "foreach": "whether the foreach (multi-tensor) implementation is used. If unspecified by the "
    "user (so foreach is None), foreach is used on CUDA where it is faster.",
    "foreach explicit": "whether the foreach (multi-tensor) implementation is used; "
    "unspecified (None), the for-loop runs on every device.",
    "maximize": "maximize the objective with respect to the params, instead of minimizing.",
    "capturable": "whether this instance is safe to capture in a graph (CUDA graphs).",
    "differentiable": "whether autograd should occur through the optimizer step in training.",
    "fused": "whether the fused implementation is used.",
}


def _default(a: ir.Argument, imports: Imports) -> str | None:
    return None if a.default is None else literal(a.default, imports)
