"""The `let` declarations of a spec, resolved before anything else is checked.

Part of the check stage (language → check → lower → emit). ``let X <- merge_dims(param, n)``
names a value of each parameter: the state declarations read it (a list made for each block of a
merged shape needs its sizes three times) and the per-parameter update reads it as a local. The
checker never sees a `let`: :func:`expand_lets` puts each value in place of its name in the state
declarations (their first values and conditions, as if written out there), and opens every
per-parameter update with the assignments ``X <- ...`` in declaration order, positioned at the
`let` lines, so that every rule of the update (kinds, shapes, ownership, the paths) applies to
them as to any local. What is particular to a `let` is checked here: its name (E201, E207), that
nothing assigns it (E317), and that a per-parameter update exists to read it (E329); the update
opens with the values it reads (a value only the states read is not computed there, and one that
nothing reads is reported as any unused value, E402). A `let` that
is a condition (``let small <- dim(param) < 2``) is put in place of its name in the update too, as
an update keeps no true-or-false values of its own.
"""

from __future__ import annotations

from dataclasses import fields, is_dataclass, replace

from generator.check.declarations import check_name
from generator.language import syntax as S
from generator.language.diagnostics import Collector, Note

# the update modes that run for each parameter (a `let` is a value of one parameter)
PER_PARAMETER = ("each", "random")


def substitute(e, values: dict[str, S.Expr]):
    """``e`` (an expression, or any syntax holding expressions) with each name of ``values``
    replaced by its value; a comprehension's own variable is left alone."""
    if isinstance(e, S.Name):
        return values.get(e.id, e) if e.subscript is None else e
    if isinstance(e, S.ListOver):
        inner = {k: v for k, v in values.items() if k != e.var.id}
        return replace(
            e, item=substitute(e.item, inner), iterable=substitute(e.iterable, values)
        )
    if isinstance(e, tuple):
        return tuple(substitute(x, values) for x in e)
    if is_dataclass(e) and not isinstance(e, S.Span):
        return replace(
            e,
            **{
                f.name: substitute(getattr(e, f.name), values)
                for f in fields(e)
                if f.compare
            },
        )
    return e


def assigned_names(node) -> list[S.Name]:
    """The names a statement (or any syntax holding statements) assigns or loops over, nested
    blocks included."""
    if isinstance(node, tuple):
        return [n for x in node for n in assigned_names(x)]
    if not is_dataclass(node) or isinstance(node, S.Span):
        return []
    found = []
    if isinstance(node, (S.Assign, S.ItemAssign)):
        found.append(node.target)
    elif isinstance(node, S.MultiAssign):
        found.extend(node.targets)
    elif isinstance(node, S.For):
        found.append(node.var)
    for f in fields(node):
        v = getattr(node, f.name)
        if isinstance(v, tuple):
            found.extend(assigned_names(v))
    return found


def _read(node) -> set[str]:
    """The names read anywhere in ``node`` (syntax, or tuples of it)."""
    if isinstance(node, S.Name):
        return {node.id}
    if isinstance(node, tuple):
        return set().union(*(_read(x) for x in node)) if node else set()
    if not is_dataclass(node) or isinstance(node, S.Span):
        return set()
    return set().union(
        set(), *(_read(getattr(node, f.name)) for f in fields(node) if f.compare)
    )


def _is_condition(e: S.Expr) -> bool:
    """Whether ``e`` is true or false (a comparison, or one joined by and / or / not)."""
    if isinstance(e, (S.Compare, S.Bool)):
        return True
    if isinstance(e, S.Binary) and e.op in ("and", "or"):
        return True
    return isinstance(e, S.Unary) and e.op == "not"


def expand_lets(spec: S.Spec, out: Collector) -> S.Spec:
    """The spec with its `let` values resolved (see the module's docstring)."""
    if not spec.lets:
        return spec
    declared: dict[str, S.Span] = {}
    for inp in spec.inputs:
        for n in inp.names:
            declared.setdefault(n.id, n.span)
    for st in spec.states:
        declared.setdefault(st.name.id, st.name.span)
    values: dict[str, S.Expr] = {}
    for let in spec.lets:
        check_name(let.name, "a value", out)
        if let.name.id in ("param", "grad") or let.name.id in declared:
            first = declared.get(let.name.id)
            out.error(
                "E207",
                f"`{let.name.id}` is declared twice",
                let.name.span,
                notes=[Note("first declared here", first)] if first else [],
            )
            continue
        declared[let.name.id] = let.name.span
        # (a value may read the ones declared before it)
        values[let.name.id] = substitute(let.value, values)
    if not any(u.mode in PER_PARAMETER for u in spec.updates):
        out.error(
            "E329",
            "a `let` is a value of each parameter: it goes with a per-parameter `update:`",
            spec.lets[0].span,
        )
        return spec
    for u in spec.updates:
        for name in assigned_names(u.body):
            if name.id in values:
                let = next(x for x in spec.lets if x.name.id == name.id)
                out.error(
                    "E317",
                    f"cannot assign to `{name.id}`, a `let` value",
                    name.span,
                    notes=[Note("declared here", let.span)],
                    hint=f"assign a new name, e.g. `{name.id}_t <- ...`",
                )
    states = tuple(
        replace(
            st,
            init=substitute(st.init, values),
            condition=substitute(st.condition, values),
            written_init=st.init,
            written_condition=st.condition,
        )
        for st in spec.states
    )
    # (a condition is put in place where the update reads it, as in the states: an update
    # keeps no true-or-false values of its own, E319)
    conditions: dict[str, S.Expr] = {}
    for let in spec.lets:
        if let.name.id in values and _is_condition(let.value):
            # (written with the update's names: the earlier values are its locals there)
            conditions[let.name.id] = substitute(let.value, conditions)
    # the update opens with the values it reads (through others too); one that nothing reads
    # opens it as well, where it is reported as any unused value is (E402)
    in_update = _read(tuple(u.body for u in spec.updates if u.mode in PER_PARAMETER))
    in_states = _read(tuple((st.init, st.condition) for st in spec.states))
    for let in reversed(spec.lets):
        if let.name.id in in_update:
            in_update |= _read(let.value)
        if let.name.id in in_states:
            in_states |= _read(let.value)
    opening = tuple(
        S.Assign(let.name, substitute(let.value, conditions), None, let.span)
        for let in spec.lets
        if let.name.id in values
        and let.name.id not in conditions
        and (let.name.id in in_update or let.name.id not in in_states)
    )
    updates = tuple(
        (
            replace(u, body=opening + substitute(u.body, conditions))
            if u.mode in PER_PARAMETER
            else u
        )
        for u in spec.updates
    )
    return replace(spec, states=states, updates=updates)
