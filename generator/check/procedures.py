"""Procedures called from a per-parameter update: inlined where they are called.

Part of the check stage (language → check → lower → emit). An `update:` (or a group or optimizer
block, or a method) may call a procedure of the spec as the whole value of an assignment,
``x <- orthogonalize(g, ns_steps)``, or of a tuple assignment, ``a, b <- split(x)``. The checker
inlines the call, as it inlines a fragment (generator.check.checker.Checker.inline): the arguments
are bound to the procedure's parameters (a name or a literal is put in place of the parameter;
any other expression is computed once, into a local), the procedure's own names are renamed after
it (``orthogonalize_X``), and its final ``return`` assigns the targets. The statements are then
checked, lowered and printed like any other, so the procedure runs on every path the update has
(for-loop, foreach, fused), and its errors point into the procedure. A procedure sees only its
arguments and its own names (E502), is called with the arguments it takes (E503), and returns
once, at its end, as many values as the call assigns (E504). A flat update calls procedures as
functions instead (generator.check.flat_rules).
"""

from __future__ import annotations

from dataclasses import fields, replace

from generator.language import syntax as S
from generator.language.builtins import CONSTANTS
from generator.language.diagnostics import Collector, Note, did_you_mean


def check_declarations(spec: S.Spec, taken, out: Collector) -> None:
    """Each procedure's name is its own (not another procedure's, not a function's of the
    language, ``taken``), and so is each of its arguments' (E506)."""
    seen: dict[str, S.Span] = {}
    for proc in spec.procedures:
        name = proc.name.id
        if name in seen or name in taken:
            out.error(
                "E506",
                f"`{name}` is already "
                + ("a procedure" if name in seen else "a function of the language"),
                proc.name.span,
            )
        seen[name] = proc.name.span
        params: set[str] = set()
        for p in proc.params:
            if p.name.id in params:
                out.error("E506", f"`{p.name.id}` is an argument twice", p.name.span)
            params.add(p.name.id)


def check_called(spec: S.Spec, called: set[str], out: Collector) -> None:
    """A procedure no update calls is an error, as an unused input is."""
    for proc in spec.procedures:
        if proc.name.id not in called:
            out.error(
                "E506",
                f"procedure `{proc.name.id}` is never called",
                proc.name.span,
                hint="call it from the update (`x <- "
                f"{proc.name.id}(...)`), or remove it",
            )


def call_of(stmt, procedures: dict[str, S.Procedure]) -> S.Call | None:
    """The procedure call that is the whole value of an assignment, if it is one."""
    if isinstance(stmt, (S.Assign, S.MultiAssign)):
        v = stmt.value
        if isinstance(v, S.Call) and v.func in procedures:
            return v
    return None


def inline_call(
    stmt, call: S.Call, proc: S.Procedure, out: Collector, passed: set[str]
) -> tuple[S.Stmt, ...] | None:
    """The statements that replace ``stmt`` (an assignment of ``call``); None when the call
    or the procedure is in error (reported). The names an argument reads that the procedure
    never reads (an argument it ignores) are added to ``passed``: passing a value is a use.
    """
    args = bind_arguments(call, proc, out)
    if args is None:
        return None
    body, returned = _split_return(proc, stmt, out)
    if body is None:
        return None
    prefix = proc.name.id + "_"
    own = _assigned(proc.body)
    names: dict[str, object] = {n: S.Name(prefix + n, None, None) for n in own}
    prelude = []
    read = {
        n.id for s in _walk(proc.body) for e in S.expressions(s) for n in _names_read(e)
    }
    for p in proc.params:
        name, value = p.name.id, args[p.name.id]
        if name not in read:
            passed.update(n.id for n in _names_read(value))
            continue
        if name not in own and isinstance(value, (S.Name, S.Number, S.Bool)):
            names[name] = value  # put in its place: no copy, no local
        else:
            names[name] = S.Name(prefix + name, None, None)
            prelude.append(
                S.Assign(
                    S.Name(prefix + name, None, p.name.span), value, None, value.span
                )
            )
    if not _reads_only_its_own(proc, set(names), out):
        return None
    renamed = tuple(_rename(s, names) for s in body)
    values = tuple(_rename(v, names) for v in returned)
    if isinstance(stmt, S.Assign):
        ends = (replace(stmt, value=values[0]),)
    else:
        ends = tuple(
            S.Assign(t, v, None, stmt.span) for t, v in zip(stmt.targets, values)
        )
    return tuple(prelude) + renamed + ends


def bind_arguments(call: S.Call, proc: S.Procedure, out: Collector) -> dict | None:
    """Parameter → the expression the call gives it (or its default); None when the call
    does not fit the procedure (every misfit reported, E503). Flat updates check their calls
    with it too."""
    names = [p.name.id for p in proc.params]
    ok = True
    if len(call.args) > len(names):
        out.error(
            "E503",
            f"`{call.func}` takes at most {len(names)} arguments, got {len(call.args)}",
            call.span,
        )
        ok = False
    given = dict(zip(names, call.args))
    for k, v in call.keywords:
        if k not in names:
            out.error(
                "E503",
                f"`{call.func}` has no argument `{k}`",
                v.span,
                hint=did_you_mean(k, names),
            )
            ok = False
        elif k in given:
            out.error("E503", f"`{k}` is given twice", v.span)
            ok = False
        given[k] = v
    missing = [p for p in proc.params if p.name.id not in given and p.default is None]
    if missing:
        out.error("E503", f"`{call.func}` needs `{missing[0].name.id}`", call.span)
        ok = False
    for p in proc.params:
        given.setdefault(p.name.id, p.default)
    return given if ok else None


def _split_return(proc: S.Procedure, stmt, out: Collector):
    """The body without its final ``return``, and the values that ``return`` gives."""
    wanted = len(stmt.targets) if isinstance(stmt, S.MultiAssign) else 1
    last = proc.body[-1] if proc.body else None
    if not isinstance(last, S.Return) or len(last.values) != wanted:
        out.error(
            "E504",
            f"`{proc.name.id}` is called for {wanted} value{'s' if wanted > 1 else ''}: "
            f"it ends with `return` of {wanted}",
            (last or proc).span,
            notes=[Note("called here", stmt.span)],
        )
        return None, ()
    for s in _walk(proc.body[:-1]):
        if isinstance(s, S.Return):
            out.error(
                "E504",
                "a procedure a per-parameter update calls returns once, at its end",
                s.span,
                notes=[Note("called here", stmt.span)],
                hint="set a name in each branch, and return it at the end",
            )
            return None, ()
    return proc.body[:-1], last.values


def _reads_only_its_own(proc: S.Procedure, known: set[str], out: Collector) -> bool:
    ok = True
    for s in _walk(proc.body):
        for e in S.expressions(s):
            for n in _names_read(e):
                if n.id not in known and n.id not in CONSTANTS:
                    out.error(
                        "E502",
                        f"`{n.id}` is not an argument or a name of `{proc.name.id}`",
                        n.span,
                        hint="a procedure sees only its arguments and its own names: "
                        "pass it as an argument",
                    )
                    known.add(n.id)  # one error per name
                    ok = False
    return ok


def _names_read(e):
    if isinstance(e, S.Name):
        yield e
    for c in S.children(e):
        yield from _names_read(c)


def _walk(stmts):
    for s in stmts:
        yield s
        for b in S.sub_blocks(s):
            yield from _walk(b)


def _assigned(stmts) -> set[str]:
    """The names a block assigns (its loops' variables too)."""
    out: set[str] = set()
    for s in _walk(stmts):
        if isinstance(s, (S.Assign, S.ItemAssign)):
            out.add(s.target.id)
        elif isinstance(s, S.MultiAssign):
            out.update(n.id for n in s.targets)
        elif isinstance(s, S.For):
            out.add(s.var.id)
    return out


def _rename(node, names: dict):
    """A syntax node with each name in ``names`` replaced (by a renamed name, or by the
    argument put in its place); spans stay the procedure's."""
    if isinstance(node, S.Name):
        new = names.get(node.id)
        if new is None:
            return node
        if isinstance(new, S.Name):
            return S.Name(new.id, node.subscript, node.span)
        return new
    if isinstance(node, tuple):
        return tuple(_rename(x, names) for x in node)
    if not hasattr(node, "__dataclass_fields__") or isinstance(node, S.Span):
        return node
    changes = {f.name: _rename(getattr(node, f.name), names) for f in fields(node)}
    return replace(node, **changes)
