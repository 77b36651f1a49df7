"""The fuzzer's program model: statements and expressions as data, printed as spec text, pruned.

Part of `optimgen fuzz`. generator.commands.fuzz_programs draws programs in these terms (an
``Expr`` is a template with ``{}`` for its arguments; ``Assign``, ``If`` and ``Repeat`` are the
statements; a ``Program`` holds inputs, states and the update blocks and prints itself as a
spec), generator.commands.fuzz_twins rewrites them, and generator.commands.fuzz shrinks them;
``prune`` drops what an update no longer reads after a rewrite.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

# ---- programs ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Expr:
    """``template`` with ``{}`` for each of ``args``; a leaf has no args (its template is it)."""

    template: str
    args: tuple = ()
    kind: str = "tensor"  # tensor | scalar

    def render(self) -> str:
        return self.template.format(*(a.render() for a in self.args))

    def nodes(self):
        yield self
        for a in self.args:
            yield from a.nodes()


def leaf(name: str, kind: str = "tensor") -> Expr:
    return Expr(name, (), kind)


@dataclass(frozen=True)
class Assign:
    target: str
    value: Expr
    initially: Expr | None = None


@dataclass(frozen=True)
class If:
    cond: str
    then: tuple
    orelse: tuple = ()
    construct: str = (
        "if"  # what kind of decision (for the figures): flag | shape | counter
    )


@dataclass(frozen=True)
class Repeat:
    """``repeat count:``; with ``var``, ``for var in range(count)`` (``reversed`` counting
    down from ``count`` to 1), a loop whose body reads its variable."""

    count: int | str  # a number, or an `int` input's name
    body: tuple
    var: str | None = None
    reverse: bool = False

    def header(self) -> str:
        if self.var is None:
            return f"repeat {self.count}"
        if self.reverse:
            return f"for {self.var} in reversed(range(1, {self.count + 1}))"
        return f"for {self.var} in range({self.count})"


@dataclass(frozen=True)
class Program:
    seed: int
    inputs: tuple  # (name, declaration text)
    states: tuple  # (name, declaration text)
    optimizer_block: tuple
    group_block: tuple
    body: tuple
    fused: bool
    foreach: bool = True
    # a second pass over the parameters, after a group block reading what the first summed
    group_block2: tuple = ()
    body2: tuple = ()
    # procedures the update calls: (name, parameters, statement lines)
    procedures: tuple = ()

    def blocks(self) -> tuple:
        return (
            ("update optimizer:", self.optimizer_block),
            ("update group:", self.group_block),
            ("update:", self.body),
            ("update group:", self.group_block2),
            ("update:", self.body2),
        )

    def text(self) -> str:
        blocks = "\n".join(
            _render_block(head, stmts) for head, stmts in self.blocks() if stmts
        )
        used = set(re.findall(r"[A-Za-z_]\w*", blocks))
        lines = [f"# fuzz program {self.seed}", "optimizer Fuzz"]
        # (the fuzz problem is real-valued; reading shapes needs the check, E327)
        lines.append('check not is_complex(param) else "real parameters only"')
        lines += [decl for name, decl in self.inputs if name in used]
        if self.foreach:
            lines.append("input foreach: bool? = none")
        if self.fused:
            lines.append("input fused: bool? = none, keyword")
        lines += [decl for name, decl in self.states if name in used]
        procedures = "".join(
            f"\nprocedure {name}({', '.join(params)}):\n"
            + "".join(f"    {line}\n" for line in body)
            for name, params, body in self.procedures
            if name in used  # (a call pruned away takes its procedure with it)
        )
        return "\n".join(lines) + "\n\n" + blocks + "\n" + procedures


def _render_block(head: str, stmts) -> str:
    return head + "\n" + "\n".join(_render_stmts(stmts, 1))


def _render_stmts(stmts, level: int) -> list[str]:
    pad = "    " * level
    out = []
    for s in stmts:
        if isinstance(s, Assign):
            tail = (
                f"  initially {s.initially.render()}" if s.initially is not None else ""
            )
            out.append(f"{pad}{s.target} <- {s.value.render()}{tail}")
        elif isinstance(s, If):
            out.append(f"{pad}if {s.cond}:")
            out += _render_stmts(s.then, level + 1)
            rest = s.orelse
            while len(rest) == 1 and isinstance(rest[0], If):  # an `elif` chain
                out.append(f"{pad}elif {rest[0].cond}:")
                out += _render_stmts(rest[0].then, level + 1)
                rest = rest[0].orelse
            if rest:
                out.append(f"{pad}else:")
                out += _render_stmts(rest, level + 1)
        elif isinstance(s, Repeat):
            out.append(f"{pad}{s.header()}:")
            out += _render_stmts(s.body, level + 1)
    return out


def prune(program: Program) -> Program:
    """Without the locals nothing reads (the checker refuses them, E402), and without the
    branches and repeats left empty; repeated until nothing more goes."""
    while True:
        text = program.text()
        reads = _reads(sum((stmts for _, stmts in program.blocks()), ()))
        smaller = replace(
            program,
            **{name: _prune_block(getattr(program, name), reads) for name in BLOCKS},
        )
        if smaller.text() == text:
            return program
        program = smaller


BLOCKS = ("optimizer_block", "group_block", "body", "group_block2", "body2")


def _is_local(name: str) -> bool:
    return re.fullmatch(r"x\d+|xl\d+|q\d+|bc|g", name) is not None


def _reads(stmts) -> set[str]:
    names: set[str] = set()
    for s in _walk(stmts):
        if isinstance(s, Assign):
            names |= _names(s.value.render())
            if s.initially is not None:
                names |= _names(s.initially.render())
        elif isinstance(s, If):
            names |= _names(s.cond)
    return names


def _names(text: str) -> set[str]:
    return set(re.findall(r"[A-Za-z_]\w*", text))


def _prune_block(stmts: tuple, reads: set[str]) -> tuple:
    out = []
    for s in stmts:
        if isinstance(s, Assign) and _is_local(s.target) and s.target not in reads:
            continue
        if isinstance(s, If):
            then, orelse = _prune_block(s.then, reads), _prune_block(s.orelse, reads)
            if not then and not orelse:
                continue
            if not then:
                s = replace(s, cond=f"not ({s.cond})", then=orelse, orelse=())
            else:
                s = replace(s, then=then, orelse=orelse)
        if isinstance(s, Repeat):
            body = _prune_block(s.body, reads)
            if not body:
                continue
            s = replace(s, body=body)
        out.append(s)
    return tuple(out)


def _walk(stmts):
    for s in stmts:
        yield s
        if isinstance(s, If):
            yield from _walk(s.then)
            yield from _walk(s.orelse)
        elif isinstance(s, Repeat):
            yield from _walk(s.body)
