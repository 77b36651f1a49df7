"""Python source every printer writes: the precedence table, the line buffer, shared statements.

The last step of the pipeline (language → check → lower → emit) prints the lowered IR as Python.
Every printer — scalars (generator.emit.python.scalars), the single-tensor and foreach bodies
(single, foreach), the fused kernel (fused) and the flat step (flat) — writes into a ``Lines``
buffer and takes its parentheses from ``PY_PRECEDENCE``, Python's precedence table, not the spec's.
Each but the flat step's records in the module's ``Imports`` every name from elsewhere it prints
(``math.sqrt``, ``_get_value``, ``cast``) where it prints it: the module imports what its code uses.
The statements the bodies print alike live here too: ``if``/``elif``/``else`` (folded into one
``x = a if c else b`` where both branches assign one name), a check's ``raise`` with its message
(spec text, escaped, never code), and the choice between an `if`'s traced (branchless) form and its
eager one.
"""

from __future__ import annotations

from generator import ir
from generator.language.diagnostics import GeneratorBug

PY_PRECEDENCE = {
    "cond": 0,
    "or": 1,
    "and": 2,
    "not": 3,
    "compare": 4,
    "+": 5,
    "-": 5,
    "*": 6,
    "/": 6,
    "%": 6,
    "//": 6,
    "neg": 7,
    "**": 8,
    "atom": 9,
}


class Lines:
    """Python source being printed: one string per line, indented by ``level``."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.level = 0

    def __call__(self, text: str) -> None:
        self.lines.append("    " * self.level + text)

    def indent(self):
        lines = self

        class _Ctx:
            def __enter__(self):
                lines.level += 1

            def __exit__(self, *a):
                lines.level -= 1

        return _Ctx()

    def text(self) -> str:
        return "\n".join(self.lines)


class Imports:
    """The names a module's printed code takes from elsewhere (``math``, ``cast``, torch's and
    the runtime's helpers): each printer records a name where it prints it, and the module's
    import lines (generator.emit.python.module) are read from here."""

    def __init__(self) -> None:
        self.names: set[str] = set()

    def need(self, name: str) -> None:
        self.names.add(name)

    def __contains__(self, name: str) -> bool:
        return name in self.names


def loop_header(s, scalar) -> str:
    """The ``for``/``while`` line of an ir.Repeat, ir.ForRange or ir.While, with ``scalar``
    printing its numbers (a loop counting down runs from ``stop - 1`` to ``start``)."""
    if isinstance(s, ir.Repeat):
        return f"for _ in range({scalar(s.count)}):"
    if isinstance(s, ir.While):
        return f"while {scalar(s.cond)}:"
    if s.reverse:

        def before(x) -> str:  # x - 1, worked out where x is a whole number as written
            if isinstance(x, ir.SConst) and x.spelling.isdigit():
                return str(x.value - 1)
            return scalar(ir.SBin("-", x, ir.number("1")))

        first = "-1" if s.start is None else before(s.start)
        return f"for {s.var} in range({before(s.stop)}, {first}, -1):"
    bounds = (s.stop,) if s.start is None else (s.start, s.stop)
    return f"for {s.var} in range({', '.join(scalar(b) for b in bounds)}):"


def message_source(msg: ir.Message, show) -> str:
    """Python source of an error message: a plain literal, or an f-string of the values it
    shows (``show`` prints each). The literal parts are spec text: escaped, never code.
    """
    if all(isinstance(p, str) for p in msg.parts):
        return repr("".join(msg.parts))
    out = []
    for part in msg.parts:
        if isinstance(part, str):
            out.append(part.replace("{", "{{").replace("}", "}}"))
        else:
            out.append("{" + show(part) + "}")
    return "f" + repr("".join(out))


def _input_name(e) -> str:
    """A value an error message of the step shows: an input, by its name in the function."""
    if isinstance(e, ir.SRef):
        return e.name
    raise GeneratorBug(f"a message of the step shows {e!r}")


def _traced_or(s: ir.If, out: Lines, body, eager, test: str) -> None:
    """A per-parameter `if`: under torch.compile (and with capturable=True) the condition is a
    tensor, so its branchless form runs there (both branches, then torch.where, as torch's
    capturable formulas do).
    """
    if s.traced is None:
        eager()
        return
    out(f"if {test}:")
    with out.indent():
        body(s.traced, out)
    out("else:")
    with out.indent():
        eager()


def _print_raise(s: ir.Raise, out: Lines, scalar) -> None:
    out(f"if {scalar(s.fails)}:")
    with out.indent():
        out(f"raise {s.exception}({message_source(s.message, _input_name)})")


def _print_if(
    s: ir.If, out: Lines, scalar, body, chain_varying: bool = True, chain: bool = True
) -> None:
    """``if``/``elif``/``else``; with ``chain_varying`` False an `if` decided per parameter is
    not folded into an ``elif`` (the foreach path partitions the lists for it instead); with
    ``chain`` False no `if` is (the fused kernel tests each `if` by its own decision).
    """

    def chained(rest) -> bool:
        return (
            chain
            and len(rest) == 1
            and isinstance(rest[0], ir.If)
            and (chain_varying or not rest[0].varying)
        )

    then, orelse = Lines(), Lines()
    body(s.then, then)
    body(s.orelse, orelse)
    one = [
        b.lines[0] for b in (then, orelse) if len(b.lines) == 1 and " = " in b.lines[0]
    ]
    chain = chained(s.orelse)
    if (
        len(one) == 2
        and not chain
        and one[0].split(" = ", 1)[0] == one[1].split(" = ", 1)[0]
    ):
        # `x = a if cond else b` reads better than four lines for a choice of value.
        target, a = one[0].split(" = ", 1)
        b = one[1].split(" = ", 1)[1]
        if " if " in a:  # a nested choice: `(a if c else b) if flag else d`
            a = f"({a})"
        out(f"{target} = {a} if {scalar(s.cond)} else {b}")
        return
    out(f"if {scalar(s.cond)}:")
    with out.indent():
        body(s.then, out) if s.then else out("pass")
    rest = s.orelse
    while chained(rest):
        out(f"elif {scalar(rest[0].cond)}:")
        with out.indent():
            body(rest[0].then, out) if rest[0].then else out("pass")
        rest = rest[0].orelse
    if rest:
        out("else:")
        with out.indent():
            body(rest, out)
