"""Walking the IR: the sub-expressions of an expression, the nested blocks of a statement, every
statement of a body, the names an IR node refers to, and a node with names or sub-expressions
replaced.

Part of generator.ir; the passes of generator.lower and the printers of generator.emit read the IR
through these rather than listing node fields themselves.
"""

from __future__ import annotations

from dataclasses import fields, replace

from generator.ir.nodes import *  # noqa: F403 (the node classes, by the names the IR gives them)


def rename(node, names: dict[str, str]):
    """An IR expression or statement with the tensors and scalars in ``names`` renamed (a
    renamed tensor becomes a local)."""
    if isinstance(node, TRef):
        index = rename(node.index, names)
        if node.name in names:
            return TRef(names[node.name], "local", index)
        return replace(node, index=index)
    if isinstance(node, SRef):
        return replace(node, name=names[node.name]) if node.name in names else node
    if isinstance(node, tuple):
        return tuple(rename(x, names) for x in node)
    if not type(node).__module__.startswith("generator.ir."):
        return node  # a Python value a node holds, or a statement's span
    changes = {f.name: rename(getattr(node, f.name), names) for f in fields(node)}
    return replace(node, **changes)


def substitute(node, old, new):
    """An IR expression or statement with every sub-expression equal to ``old`` replaced by
    ``new``."""
    if node == old:
        return new
    if isinstance(node, tuple):
        return tuple(substitute(x, old, new) for x in node)
    if not hasattr(node, "__dataclass_fields__") or not type(
        node
    ).__module__.startswith("generator.ir."):
        return (
            node  # a Python value a node holds (a role, a name), or a statement's span
        )
    return replace(
        node,
        **{f.name: substitute(getattr(node, f.name), old, new) for f in fields(node)},
    )


def refs(node, kind: type) -> list[str]:
    """The names of the ``kind`` references (TRef, SRef) anywhere in ``node``, in order."""
    found: dict[str, None] = {}

    def visit(x):
        if isinstance(x, kind):
            found[x.name] = None
        elif isinstance(x, (list, tuple)):
            for y in x:
                visit(y)
        elif hasattr(x, "__dataclass_fields__"):
            for f in x.__dataclass_fields__:
                visit(getattr(x, f))

    visit(node)
    return list(found)


def children(e) -> tuple:
    """The sub-expressions of an expression, left to right (an in-place statement's
    operations count as its sub-expressions)."""
    if isinstance(e, (SBin,)):
        return (e.left, e.right)
    if isinstance(e, SCompare):
        return e.operands
    if isinstance(e, SUnary):
        return (e.operand,)
    if isinstance(e, SCall):
        return e.args
    if isinstance(e, SCond):
        return (e.cond, e.then, e.orelse)
    if isinstance(e, STuple):
        return e.items
    if isinstance(e, SIndex):
        return (e.value, e.index)
    if isinstance(e, TOp):
        return e.args + tuple(v for _, v in e.kwargs)
    if isinstance(e, TRef):
        return () if e.index is None else (e.index,)
    if isinstance(e, TList):
        return e.items + (() if e.count is None else (e.count,))
    if isinstance(e, InPlace):
        return e.ops
    if isinstance(e, (VBin,)):
        return (e.left, e.right)
    if isinstance(e, VCompare):
        return e.operands
    if isinstance(e, VUnary):
        return (e.operand,)
    if isinstance(e, VCond):
        return (e.cond, e.then, e.orelse)
    if isinstance(e, (VTuple, VList)):
        return e.items
    if isinstance(e, VIndex):
        return (e.value, e.index)
    if isinstance(e, (VCall, VEvaluate)):
        return e.args
    if isinstance(e, VProcCall):
        return e.args + tuple(v for _, v in e.keywords)
    return ()


def uses(e, pred) -> bool:
    """Does an expression contain a node (itself included) for which ``pred`` holds?"""
    return bool(pred(e)) or any(uses(x, pred) for x in children(e))


def refuses_sharded(v: Validation) -> bool:
    """The check that refuses a sharded (DTensor) parameter (perhaps only with the options
    that make the update read whole tensors: `cautious and is_sharded(p)`)."""

    def sharded(e) -> bool:
        if isinstance(e, SCall):
            return e.func == "is_sharded"
        return (
            isinstance(e, SBin)
            and e.op == "and"
            and (sharded(e.left) or sharded(e.right))
        )

    return sharded(v.fails)


def blocks(s) -> tuple:
    """The statement lists nested directly in a statement."""
    if isinstance(s, If):
        return (s.then, s.orelse)
    if isinstance(s, LazyInit):
        return (s.update,)
    if isinstance(s, (Repeat, ForEachParameter, While, ForRange)):
        return (s.body,)
    return ()


def walk(stmts):
    """Every statement, nested ones (branches, loops, a lazy state's update) after their parent."""
    for s in stmts:
        yield s
        for block in blocks(s):
            yield from walk(block)


def expressions(s) -> list:
    """The expressions a statement itself evaluates (not those of nested statements)."""
    if isinstance(s, (ScalarLet, TensorLet, CountUpdate)):
        return [s.value]
    if isinstance(s, InPlace):
        return list(s.ops)
    if isinstance(s, If):
        return [s.cond]
    if isinstance(s, Repeat):
        return [s.count]
    if isinstance(s, Raise):
        return [s.fails]
    if isinstance(s, LazyInit):
        return [s.first]
    if isinstance(s, (Bind, BindMany, ListAppend)):
        return [s.value]
    if isinstance(s, SetItem):
        return [s.index, s.value]
    if isinstance(s, CallProcedure):
        return [s.call]
    if isinstance(s, StepParams):
        return [e for e in (s.size, s.direction) if e is not None]
    if isinstance(s, While):
        return [s.cond]
    if isinstance(s, ForRange):
        return [e for e in (s.start, s.stop) if e is not None]
    if isinstance(s, Return):
        return list(s.values)
    if isinstance(s, Estimate):
        return list(s.args)
    return []


def scalar_lets(stmts):
    return (s for s in walk(stmts) if isinstance(s, ScalarLet))
