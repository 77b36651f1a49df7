"""Variants: an optimizer written as another one plus a change (`optimizer CLion from Lion`).

Part of the checker (language → check → lower → emit), run on a spec's syntax before anything
else, as generator.check.modifiers is (which then splices the variant's modifiers). A variant is
its base's spec with its own name and file (so its own module and class), its own summary (the
base's where it gives none) and references and notes added to the base's, inputs that replace the
base's of the same name (`input cautious: bool = true, fixed`: the option always on) or add to
them, and modifiers taken after the base's (`with grokfast`). Its update, states and checks are
its base's: a variant that declares any is refused (E409), as one whose base cannot be found or
is itself one of its own bases.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Callable

from generator.language import syntax as S
from generator.language.diagnostics import Collector, Note


def derive(
    spec: S.Spec,
    find: Callable[[str], S.Spec | None],
    out: Collector,
    seen: tuple[str, ...] = (),
) -> S.Spec | None:
    """The spec a variant stands for (``spec`` itself where it is none); ``find`` gives a base
    by its optimizer's name. None where it cannot be derived (reported)."""
    if spec.base is None:
        return spec
    name = spec.base.id
    if name in seen or name == spec.name:
        out.error("E409", f"`{spec.name}` is a variant of itself", spec.base.span)
        return None
    base = find(name)
    if base is None or base.kind != "optimizer":
        out.error(
            "E409",
            f"no optimizer named `{name}` to derive `{spec.name}` from",
            spec.base.span,
            hint="a base is an optimizer of this project or of optimgen's own specs",
        )
        return None
    base = derive(base, find, out, seen + (spec.name,))
    if base is None:
        return None
    extra = [
        (spec.states, "states"),
        (spec.updates, "an update"),
        (spec.checks, "checks"),
        (spec.procedures, "procedures"),
        (spec.methods, "methods"),
        (spec.lets, "values (`let`)"),
    ]
    for items, what in extra:
        if items:
            first = items[0]
            out.error(
                "E409",
                f"a variant takes its base's update: `{spec.name}` cannot declare {what}",
                first.span,
                hint="write a modifier for the change (`with NAME`), or a spec of its own",
                notes=[Note(f"the base, {base.name}", base.span)],
            )
            return None
    inputs = list(base.inputs)
    for inp in spec.inputs:
        k = next((i for i, b in enumerate(inputs) if b.arg_name == inp.arg_name), None)
        if k is None:
            inputs.append(inp)
        else:
            inputs[k] = inp
    replaced = {inp.arg_name for inp in spec.inputs}
    validations = tuple(
        v
        for v in base.validations
        if not any(v in b.requires for b in base.inputs if b.arg_name in replaced)
    ) + tuple(v for inp in spec.inputs for v in inp.requires)
    order = base.defaults_order
    if order is not None:
        new = tuple(i.arg_name for i in spec.inputs if i.arg_name not in order.names)
        order = replace(order, names=order.names + new)
    own_summary = any(d.key == "summary" for d in spec.docs)
    docs = (
        tuple(d for d in spec.docs if d.key == "summary")
        + tuple(d for d in base.docs if d.key != "summary" or not own_summary)
        + tuple(d for d in spec.docs if d.key != "summary")
    )
    return replace(
        base,
        name=spec.name,
        path=spec.path,
        source=spec.source,
        span=spec.span,
        docs=docs,
        inputs=tuple(inputs),
        validations=validations,
        defaults_order=order,
        modifiers=base.modifiers + spec.modifiers,
        modifiers_span=spec.modifiers_span or base.modifiers_span,
        base=spec.base,
    )
