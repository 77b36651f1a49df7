"""The language reference page: every function and constant of the language, from the builtin table.

Part of the documentation backend (generator.emit.docs). ``optimgen build`` writes
``generated/docs/language.md`` from generator.language.builtins alone (and ``optimgen check`` fails
when it is stale), so the page lists exactly what the checker accepts: each function with its
arguments' and result's types, the shape of its result, the blocks it may be called in, and the
paths that run it; the constants; the list statements; the types those columns use.
"""

from __future__ import annotations

from generator.check.lists import STATEMENT_FUNCTIONS
from generator.check.types import FUNCTIONS as FLAT_FUNCTIONS
from generator.language.builtins import (
    ANY,
    BUILTINS,
    CONSTANTS,
    FOLLOW,
    LIST,
    Builtin,
    shape_rule,
)
from generator.language.types import Kind

# how the table's types read on the page
_TYPE_WORDS = {
    ANY: "number or tensor",
    LIST: "list",
    FOLLOW: "a tensor if an argument is one, else a number",
    Kind.BOOL: "bool",
    Kind.INT: "int",
    Kind.SCALAR: "number",
    Kind.STR: "str",
    Kind.DTYPE: "dtype",
    Kind.TENSOR: "tensor",
}

# where a function may be called, by the table's context
_WHERE = {
    "update": "per-parameter updates",
    "validation": "requirements and checks",
    "both": "per-parameter updates, requirements and checks",
    "flat": "`update flat:` and its procedures",
    "state": "a state's first value (`state L <- eps * eye(size(param, 0))`)",
    "estimate": "the whole value of a per-parameter state in `update optimizer:` "
    '(`D <- hutchinson(1, "rademacher")`)',
}

# the language's types, as a spec author meets them
TYPES = [
    ("number", "a Python number: a hyperparameter, a counter, a value of the step"),
    ("int", "a whole number: a dimension, a size, a loop's bound"),
    ("bool", "true or false, decided on the host (a Python `if`)"),
    ("str", "a string input, compared with string literals"),
    (
        "mask",
        "an elementwise comparison of tensors (`m * grad > 0`): true or false per element, "
        "named, joined by `and`, `or`, `not`, and read by where(mask, a, b)",
    ),
    (
        "tensor",
        "shaped like the parameter (in `update flat:`, the vector of all of them)",
    ),
    (
        "list",
        "a list state (`[0] * n`), a local list (`[a, b]`), or a `tuple of float` input",
    ),
]


def _signature(b: Builtin) -> str:
    required = len(b.params) - b.optional
    words = [_TYPE_WORDS[p] for p in b.params]
    shown = ", ".join(words[:required])
    if b.optional:
        shown += "".join(f"[, {w}]" for w in words[required:])
    return f"`{b.name}({shown})`"


def _paths(b: Builtin) -> str:
    if b.context == "validation":
        return "the constructor (or each step's check)"
    if b.context == "state":
        return "for-loop, foreach (the state is made once, per parameter)"
    if b.context == "estimate":
        return "every path (made in `step()`, before the groups; the update reads the state)"
    paths = []
    if b.context != "flat":
        paths += ["for-loop", "foreach"] + ["fused"] * b.elementwise
    if b.flat is not None:
        paths.append("flat")
    return ", ".join(paths)


def _where(b: Builtin) -> str:
    where = _WHERE[b.context]
    if b.flat is not None and b.context != "flat":
        where += "; `update flat:`"
    return where


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def language_reference() -> str:
    out = ["# The spec language: functions and constants", ""]
    out += [
        "Written by `optimgen build` from the builtin table "
        "(`generator/language/builtins.py`); do not edit. Every function a spec may call is "
        "here, with the types of its arguments and result (see *Types* below), the shape of "
        "its result, where it may be called, and the implementation paths that run it (a "
        "spec that declares `foreach` or `fused` is refused at a call that path has no form "
        "for, E335).",
        "",
        "## Functions",
        "",
        "| function | result | shape of the result | where | paths | what it is |",
        "|---|---|---|---|---|---|",
    ]
    for b in sorted(BUILTINS.values(), key=lambda b: b.name):
        out.append(
            f"| {_signature(b)} | {_TYPE_WORDS[b.result]} | {_cell(shape_rule(b))} | "
            f"{_where(b)} | {_paths(b)} | {_cell(b.doc)} |"
        )
    least, most = FLAT_FUNCTIONS["evaluate"]
    out += [
        "",
        f"In `update flat:` and its procedures, `evaluate()` ({least} to {most} arguments) "
        "calls the closure again: `evaluate()` at the parameters, `evaluate(t, d)` at a step "
        "`t` along `d`, as torch's LBFGS line search does; it returns the loss and the "
        "gradient.",
        "",
        "## Constants",
        "",
        "| name | value | in Python | what it is |",
        "|---|---|---|---|",
    ]
    for c in sorted(CONSTANTS.values(), key=lambda c: c.name):
        out.append(f"| `{c.name}` | {c.value!r} | `{c.python}` | {_cell(c.doc)} |")
    out += ["", "## List statements", ""]
    out += ["| statement | arguments | what it does |", "|---|---|---|"]
    what = {
        "append": "adds `v` at the end of the local list `xs`",
        "pop_first": "removes the first item of the local list `xs`",
    }
    spelled = {"append": "append(xs, v)", "pop_first": "pop_first(xs)"}
    for name, (least, _) in sorted(STATEMENT_FUNCTIONS.items()):
        out.append(f"| `{spelled[name]}` | {least} | {what[name]} |")
    out += ["", "## Types", "", "| type | what it is |", "|---|---|"]
    out += [f"| {name} | {text} |" for name, text in TYPES]
    return "\n".join(out) + "\n"
