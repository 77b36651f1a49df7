"""Naming: the Python names the compiler gives values a spec leaves unnamed.

Between lowering and the emitters (torchgen keeps its naming apart in the same way): a number
both branches compute (generator.lower.shared) and a decision the fused kernel takes
(generator.emit.python.fused) are named after what they hold, spelled from their IR expression
(``weight_decay != 0`` → ``weight_decay_nonzero``, ``bias_correction2 ** 0.5`` →
``bias_correction2_sqrt``), and kept clear of every name the module already uses.
"""

from __future__ import annotations

from generator import ir

_COMPARE = {">": "gt", "<": "lt", ">=": "ge", "<=": "le", "==": "eq", "!=": "ne"}
_AGAINST_ZERO = {">": "positive", "<": "negative", "!=": "nonzero", "==": "zero"}
_BINARY = {
    "+": "plus",
    "-": "minus",
    "*": "times",
    "/": "over",
    "and": "and",
    "or": "or",
}
LONGEST = 48  # a spelled name longer than this reads worse than the fallback


def spelled(e) -> str:
    """A name that reads as the expression (it may not be a valid identifier)."""
    if isinstance(e, (ir.SRef, ir.TRef)):
        return e.name
    if isinstance(e, ir.SConst):
        if e.spelling:  # a number as written, a constant's name
            return e.spelling.replace(".", "_").replace("-", "minus_")
        if isinstance(e.value, str):
            return e.value
        return {None: "none", True: "true", False: "false"}[e.value]
    if isinstance(e, ir.SUnary):
        return f"{'not' if e.op == 'not' else 'minus'}_{spelled(e.operand)}"
    if isinstance(e, ir.SCompare) and len(e.ops) == 1:
        (op,), (a, b) = e.ops, e.operands
        if op in ("is", "is not") and b == ir.SConst(None):
            return f"{spelled(a)}_{op.replace(' ', '_')}_none"
        if (
            op in _AGAINST_ZERO
            and isinstance(b, ir.SConst)
            and b.spelling in ("0", "0.0")
        ):
            return f"{spelled(a)}_{_AGAINST_ZERO[op]}"
        return f"{spelled(a)}_{_COMPARE.get(op, 'cmp')}_{spelled(b)}"
    if isinstance(e, ir.SBin) and e.op == "**" and e.right == ir.number("0.5"):
        return f"{spelled(e.left)}_sqrt"
    if isinstance(e, ir.SBin) and e.op in _BINARY:
        return f"{spelled(e.left)}_{_BINARY[e.op]}_{spelled(e.right)}"
    if isinstance(e, ir.SCall) and e.args:
        return "_".join([spelled(e.args[0]), e.func] + [spelled(a) for a in e.args[1:]])
    return ""


def fresh(e, taken: set[str], fallback: str) -> str:
    """The spelled name of ``e`` (``fallback`` where it is no identifier or too long), made
    unique against ``taken`` with a suffix, and added to it."""
    name = spelled(e)
    if not name.isidentifier() or len(name) > LONGEST:
        name = fallback
    base, k = name, 2
    while name in taken:
        name, k = f"{base}_{k}", k + 1
    taken.add(name)
    return name


def names_in_use(opt: ir.Optimizer) -> set[str]:
    """Every name the module's functions may already use: arguments, hyperparameters, states
    and their lists, every local and reference of every block, and each varying number's list
    in the multi-tensor path (its name plus "s")."""
    names = set(opt.hyper) | {a.name for a in opt.arguments}
    names |= {"param", "grad", "state", "group"}
    names |= {s.var for s in opt.states} | {s.key for s in opt.states}
    names |= {s.list_name for s in opt.states}
    bodies = opt.body + opt.hoisted + opt.step_block + opt.group_block
    for p in opt.later_passes:
        bodies += p.body + p.hoisted + p.step_block + p.group_block
    for s in ir.walk(bodies):
        if isinstance(s, (ir.ScalarLet, ir.TensorLet)):
            names.add(s.name)
        elif isinstance(s, ir.ForRange):
            names.add(s.var)
    names |= set(ir.refs(bodies, ir.SRef)) | set(ir.refs(bodies, ir.TRef))
    return names | {n + "s" for n in names}
