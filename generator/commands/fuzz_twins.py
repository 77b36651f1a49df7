"""The fuzzer's twins: a program with lists, written again without them.

Part of `optimgen fuzz` (generator.commands.fuzz). A program with a list state runs on no fused
path (and with a local list, on no foreach path either), so the paths it has are fewer to hold to
one another; its twin here computes the same numbers with the language's plain constructs (each
item a state of its own, the loop over them unrolled, a local list's items read as the expressions
that made them), and the fuzzer holds the program's for-loop to the twin's.
"""

from __future__ import annotations

import re
from dataclasses import replace

from generator.commands.fuzz_model import (
    BLOCKS,
    Assign,
    Expr,
    If,
    Program,
    Repeat,
    prune,
)


def unrolled(program: Program) -> Program | None:
    """A list program's twin without lists (None for a program without one): the list state's
    items are states of their own (``sl0``, ``sl1``, ...), the loop over them is unrolled, and a
    local list's items are read as the expressions that made them. The twin computes the same
    numbers with the language's plain constructs, so the list program's for-loop is held to it.
    """
    n = next(
        (int(decl.split("=")[1]) for name, decl in program.inputs if name == "nl"), None
    )
    # a `tuple of float` input's items: the literals of its default (the values it runs with)
    rates = next(
        (
            re.search(r"= \((.*)\)", decl).group(1).split(", ")
            for name, decl in program.inputs
            if name == "rl"
        ),
        None,
    )
    if rates is not None:
        n = len(rates)
    if n is None:
        return None
    states = []
    for name, decl in program.states:
        if name != "sl":
            states.append((name, decl))
            continue
        first = re.search(r"<- \[(.*)\] \* (nl|len\(rl\))", decl).group(1)
        states += [(f"sl{k}", f"state sl{k} (sl{k}) <- {first}") for k in range(n)]
    made: dict[str, tuple] = {}  # local list → its items

    def expr(e: Expr, k: int | None) -> Expr:
        m = re.fullmatch(r"(xl\d+)\[(\d)\]", e.template)
        if m and not e.args:
            return Expr("({})", (made[m.group(1)][int(m.group(2))],), e.kind)
        template = e.template
        if k is not None:
            template = template.replace("sl[j]", f"sl{k}")
            if rates is not None:
                template = template.replace("rl[j]", rates[k])
            template = re.sub(r"\bj\b", str(k), template)
        return Expr(template, tuple(expr(a, k) for a in e.args), e.kind)

    def block(stmts, k=None) -> tuple:
        out = []
        for st in stmts:
            if isinstance(st, Repeat) and st.count in ("nl", "len(rl)"):
                for item in range(n):
                    out += block(st.body, item)
            elif isinstance(st, Assign) and st.value.template.startswith("["):
                made[st.target] = tuple(expr(a, k) for a in st.value.args)
            elif isinstance(st, Assign):
                target = f"sl{k}" if st.target == "sl[j]" else st.target
                first = None if st.initially is None else expr(st.initially, k)
                out.append(Assign(target, expr(st.value, k), first))
            elif isinstance(st, If):
                out.append(
                    replace(st, then=block(st.then, k), orelse=block(st.orelse, k))
                )
            elif isinstance(st, Repeat):
                out.append(replace(st, body=block(st.body, k)))
        return tuple(out)

    # (what only an unread item of a local list read is read no more)
    return prune(
        replace(
            program,
            # (the twin reads the tuple's items as literals: its input is unused)
            inputs=tuple((name, d) for name, d in program.inputs if name != "rl"),
            states=tuple(states),
            **{name: block(getattr(program, name)) for name in BLOCKS},
        )
    )
