"""Constant folding of scalar IR expressions: a table of rewrite rules, applied by one rewriter.

Lowering builds a term's coefficient from the spec's factors as written, so a choice split into
its cases leaves ``alpha=-(step_size * 1)`` behind (LAMB's ``(1 if adam else trust_ratio)``).
Each rule here removes an operation whose result is exactly its operand, in value and in type,
whatever the operand is at run time: a Python int or float, or a 0-d tensor (capturable
counters, the fused kernel's numbers). Folding never changes what a generated optimizer computes.

Not folded, on purpose:

* ``x + 0`` and ``0 + x``: ``-0.0 + 0`` is ``+0.0``, the sign of a zero would change;
* ``x * 1.0``, ``x / 1`` and ``x - 0.0`` when ``x`` may be an integer: ``2 * 1.0`` is ``2.0`` and
  ``5 / 1`` is ``5.0`` (another type; an integer tensor would become a float one). They are folded
  where ``x`` is a float by construction (a quotient, a float literal, ``math.sqrt``, ...);
* ``0 - x``: ``0 - 0.0`` is ``+0.0`` where ``-x`` is ``-0.0``;
* anything to a bare counter: ``t * 1`` is a copy of this step's count, where ``t`` may be the
  counter tensor itself (capturable), which ``t += 1`` changes in place.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Callable

from generator import ir
from generator.language.builtins import BUILTINS


def _literal(e) -> tuple[str, float] | None:
    """A number literal of the spec: ("int", value) for ``1``, ("float", value) for ``1.0``."""
    if (
        not isinstance(e, ir.SConst)
        or isinstance(e.value, bool)
        or not isinstance(e.value, (int, float))
        or e.named
    ):
        return None
    return ("int" if isinstance(e.value, int) else "float"), float(e.value)


# functions of numbers that always give a float (math.sqrt, math.exp, ...; torch.sqrt of a
# 0-d tensor gives a floating tensor): the builtin table's Python forms in `math`
_FLOAT_FUNCTIONS = frozenset(
    b.name for b in BUILTINS.values() if b.python and b.python.startswith("math.")
)


def is_float(e) -> bool:
    """Is the value a float (a Python float, or a floating 0-d tensor) whatever the inputs are?"""
    lit = _literal(e)
    if lit is not None:
        return lit[0] == "float"
    if isinstance(e, ir.SConst):
        return e.named  # pi, inf
    if isinstance(e, ir.SBin):
        if e.op == "/":
            return True  # true division: a float (or a floating tensor)
        if e.op in ("+", "-", "*"):
            return is_float(e.left) or is_float(e.right)
        return False
    if isinstance(e, ir.SUnary):
        return e.op == "-" and is_float(e.operand)
    if isinstance(e, ir.SCall):
        return e.func in _FLOAT_FUNCTIONS
    if isinstance(e, ir.SCond):
        return is_float(e.then) and is_float(e.orelse)
    return False


def _any(_) -> bool:
    return True


@dataclass(frozen=True)
class Rule:
    """``left op right → x``: one side is the literal ``const`` ("int" 1 or "float" 1.0 ...), the
    other is ``x``, kept when ``guard(x)`` holds."""

    name: str  # as a person writes it
    op: str  # the SBin operator
    const: tuple[
        str, float
    ]  # the literal: its kind ("int": `1`, "float": `1.0`) and value
    side: str  # where the literal stands: "right" (x * 1) or "left" (1 * x)
    guard: Callable[[object], bool] = _any  # on x: when the result is exactly x

    def apply(self, e: ir.SBin):
        if e.op != self.op:
            return None
        const, x = (e.right, e.left) if self.side == "right" else (e.left, e.right)
        if _literal(const) != self.const or not self.guard(x) or _counter(x):
            return None
        return x


def _counter(x) -> bool:
    """A counter itself: with capturable=True a tensor that ``+=`` changes in place, so that
    ``t * 1`` is a copy of this step's value where ``t`` would be the counter."""
    return isinstance(x, ir.SRef) and x.count


RULES: tuple[Rule, ...] = (
    # exact for every number type: int * 1 is that int, a tensor * 1 keeps its dtype
    Rule("x * 1 → x", "*", ("int", 1.0), "right"),
    Rule("1 * x → x", "*", ("int", 1.0), "left"),
    Rule("x - 0 → x", "-", ("int", 0.0), "right"),  # (-0.0 - 0 is -0.0)
    # exact where x is a float already (an int would become a float)
    Rule("x * 1.0 → x, x a float", "*", ("float", 1.0), "right", is_float),
    Rule("1.0 * x → x, x a float", "*", ("float", 1.0), "left", is_float),
    Rule("x / 1 → x, x a float", "/", ("int", 1.0), "right", is_float),
    Rule("x / 1.0 → x, x a float", "/", ("float", 1.0), "right", is_float),
    Rule("x - 0.0 → x, x a float", "-", ("float", 0.0), "right", is_float),
)


def fold_expr(e):
    """A scalar expression (bottom up) with every rule applied where it matches."""
    if isinstance(e, ir.SBin):
        e = replace(e, left=fold_expr(e.left), right=fold_expr(e.right))
        for rule in RULES:
            x = rule.apply(e)
            if x is not None:
                return x
        return e
    return fold(e)


def fold(node):
    """Every scalar expression inside an IR node (statements, tensor operations' arguments and
    keywords, tuples of them) folded; anything else is returned as it is."""
    if isinstance(node, tuple):
        folded = tuple(fold(x) for x in node)
        return node if all(a is b for a, b in zip(folded, node)) else folded
    if isinstance(node, ir.SBin):
        return fold_expr(node)
    if not hasattr(node, "__dataclass_fields__") or not ir.is_node(node):
        return node
    changes = {f.name: fold(getattr(node, f.name)) for f in fields(node)}
    if all(changes[k] is getattr(node, k) for k in changes):
        return node
    return replace(node, **changes)


# the parts of an ir.Optimizer that hold expressions (its `program`, a flat update's syntax, and
# its printed validations are left alone)
_OPTIMIZER_FIELDS = (
    "states",
    "step_block",
    "body",
    "hoisted",
    "group_block",
    "methods",
    "later_passes",
)


def fold_optimizer(opt: ir.Optimizer) -> ir.Optimizer:
    return replace(opt, **{f: fold(getattr(opt, f)) for f in _OPTIMIZER_FIELDS})
