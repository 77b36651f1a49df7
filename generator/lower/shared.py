"""Values named once: a per-parameter number that both branches of an `if` compute (Adam's
``sqrt(bias_correction2)`` whether or not ``amsgrad``) becomes one local before the `if`, named
after what it holds (``bias_correction2_sqrt``), as torch's own code names it.

A lowering pass over the IR, after folding (generator.lower.lowering applies it once). The
printers then write the value once: a Python number in the for-loop, one list in the
multi-tensor path (``bias_correction2_sqrts``) instead of a comprehension in every call. The
arithmetic is unchanged (the same operations on the same operands), so every path computes the
same numbers.
"""

from __future__ import annotations

from dataclasses import replace

from generator import ir
from generator.naming import fresh, names_in_use


def name_shared_values(opt: ir.Optimizer) -> ir.Optimizer:
    taken = names_in_use(opt)
    return replace(
        opt,
        body=_block(opt.body, taken),
        later_passes=tuple(
            replace(p, body=_block(p.body, taken)) for p in opt.later_passes
        ),
    )


def _block(stmts, taken: set[str]) -> tuple:
    out = []
    for s in stmts:
        if isinstance(s, ir.If) and s.traced is None:
            s = replace(s, then=_block(s.then, taken), orelse=_block(s.orelse, taken))
            bound = {x.name for x in ir.walk((s,)) if isinstance(x, ir.ScalarLet)}
            bound |= {x.var for x in ir.walk((s,)) if isinstance(x, ir.ForRange)}
            later = _slots(s.orelse)
            for e in _slots(s.then):
                if e in later and not ir.uses(
                    e, lambda r: isinstance(r, ir.SRef) and r.name in bound
                ):
                    name = fresh(e, taken, "value")
                    out.append(ir.ScalarLet(name, e, varying=True))
                    s = ir.substitute(s, e, ir.SRef(name, varying=True))
        out.append(s)
    return tuple(out)


def _slots(stmts) -> list:
    """The per-parameter numbers computed for tensor operations (their scalar arguments and
    keywords), each once, in order; plain names and constants are left out."""
    found: dict = {}

    def visit(x):
        if isinstance(x, ir.TOp):
            for a in x.args[1:] + tuple(v for _, v in x.kwargs):
                if _compound(a):
                    found.setdefault(a, None)
        return False

    for s in ir.walk(stmts):
        if isinstance(s, (ir.TensorLet, ir.InPlace)):
            for e in ir.expressions(s):
                ir.uses(e, visit)
    return list(found)


def _compound(e) -> bool:
    return (
        isinstance(e, (ir.SBin, ir.SCall))
        and ir.uses(e, lambda r: isinstance(r, ir.SRef) and r.varying)
        and not ir.uses(e, lambda r: isinstance(r, (ir.TRef, ir.TOp)))
    )
