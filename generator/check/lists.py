"""The list statements of the language, checked alike in every update block.

Part of the check stage (language → check → lower → emit). ``append(xs, v)`` and
``pop_first(xs)`` change a list in place, as statements of their own; generator.check.flow checks their
form here in every block, then what the list holds by the block's types (a flat update's lists of
vectors and numbers, generator.check.flat_rules; a per-parameter update's lists of tensors).
"""

from __future__ import annotations

from generator.language import syntax as S
from generator.language.diagnostics import Collector

# name: (least, most arguments)
STATEMENT_FUNCTIONS = {"append": (2, 2), "pop_first": (1, 1)}


def list_statement_form(c: S.Call, out: Collector) -> bool:
    """Whether a list statement has its arguments (reported, E503, where it has not)."""
    least, most = STATEMENT_FUNCTIONS[c.func]
    if least <= len(c.args) <= most and not c.keywords:
        return True
    out.error(
        "E503",
        f"`{c.func}` takes {least} argument{'s' if least > 1 else ''}",
        c.span,
    )
    return False
