"""The items of lists on the foreach path: each named once, as a list of every parameter's.

Part of the Python backend (generator.emit.python). The foreach path keeps a list by item (a list
state: generator.emit.python.bodies.multi_body, ``device_momentum_buffers[k]`` the k-th tensor of
every parameter; a local list: a list of such lists); before the multi-tensor body is printed,
``bind_items`` names each item a statement reads or updates (``momentum_buffer_item =
momentum_buffers[k]``, an ir.TensorLet alias), so that generator.emit.python.foreach prints it as
any list of tensors, in place on the tensors themselves.
"""

from __future__ import annotations

from dataclasses import fields, replace

from generator import ir
from generator.ir import uses


def bind_items(stmts, bound: dict | None = None) -> tuple:
    """The statements with each item of a list they read or update (``bufs[k]``) named first,
    ``bufs_item = bufs[k]``, as a local list of the tensors of every parameter: the printer
    then runs on it as on any list of tensors (in place on the items themselves). A name holds
    until a number its index reads changes, or its list does; ``bound`` holds the names made
    before (a nested block sees them). (An item is never read by a branch's or a loop's own
    condition or bounds: the checker refuses a list under a condition decided per parameter on
    this path.)"""
    bound = dict(bound or {})
    out: list = []
    for s in stmts:
        if isinstance(s, ir.If):
            traced = None if s.traced is None else bind_items(s.traced, bound)
            s = replace(
                s,
                then=bind_items(s.then, bound),
                orelse=bind_items(s.orelse, bound),
                traced=traced,
            )
        elif isinstance(s, (ir.Repeat, ir.ForRange, ir.While, ir.ForEachParameter)):
            # (a loop's body runs again after it changed its numbers: it binds afresh)
            s = replace(s, body=bind_items(s.body))
        elif isinstance(s, ir.LazyInit):
            s = replace(s, update=bind_items(s.update, bound))
        else:

            def visit(x):
                if isinstance(x, ir.TRef) and x.index is not None and x not in bound:
                    n = sum(1 for r in bound if r.name == x.name)
                    local = ir.TRef(
                        f"{x.name}_item" + (f"_{n + 1}" if n else ""), "local"
                    )
                    out.append(ir.TensorLet(local.name, x, alias=True))
                    bound[x] = local
                return False

            for e in ir.expressions(s):
                uses(e, visit)
            if isinstance(s, ir.InPlace):
                visit(s.target)
            s = _with_items(s, bound)
        out.append(s)
        # a name holds until its index's numbers change, or its list does (a local list's
        # item replaced, the list grown, shortened or made anew), or the name is bound anew
        # (a loop's body binds its items afresh, with the same names)
        changed = {x.name for x in ir.walk([s]) if isinstance(x, ir.ScalarLet)}
        rebound = {x.name for x in ir.walk([s]) if isinstance(x, ir.TensorLet)}
        lists = {
            x.target.name
            for x in ir.walk([s])
            if isinstance(x, (ir.SetItem, ir.ListAppend, ir.ListPopFirst))
        } | rebound
        for item, local in list(bound.items()):
            if (
                item.name in lists
                or local.name in rebound
                or set(ir.refs(item.index, ir.SRef)) & changed
            ):
                del bound[item]
    return tuple(out)


def _with_items(node, items: dict):
    """``node`` (a statement without nested ones, or an expression) with the list items of
    ``items`` replaced by their names."""
    if isinstance(node, ir.TRef):
        return items.get(node, node)
    if isinstance(node, tuple):
        return tuple(_with_items(x, items) for x in node)
    if not hasattr(node, "__dataclass_fields__"):
        return node  # a Python value a node holds, an enum's member, a statement's span
    return replace(
        node,
        **{f.name: _with_items(getattr(node, f.name), items) for f in fields(node)},
    )
