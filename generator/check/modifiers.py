"""Modifiers spliced into the optimizers that take them: the first step of checking a spec.

Part of the checker (language → check → lower → emit), run before everything else on a spec's
syntax. A modifier (a ``modifier NAME`` file among the fragments, e.g. specs/fragments/cautious.frag)
adds inputs, checks and states, and holds a block for each point it acts at (``at direction u, g:``).
An optimizer takes it with ``with NAME`` and exposes the points in its update
(``expose direction update, g``); here each ``expose`` becomes the blocks of the modifiers
acting there, in ``with`` order, their point's variables renamed to the optimizer's values, and an
``expose`` no modifier acts at is dropped. Three points need no ``expose`` (``grad``, ``group``
and ``param``, below: where a wrapper such as OrthoGrad or Lookahead acts), and a block written
``at POINT ... if exposed:`` is left out where the optimizer has no such point. What follows
(the checker, the lowering, the documentation) sees one spec, so a modifier's lines are checked,
generated and shown in the algorithm box as the optimizer's own, while their positions still
name the modifier's file.

A modifier acting around the whole step (SAM: the weights moved, the closure evaluated again,
the weights moved back) writes `update` blocks of its own instead: they run before the
optimizer's blocks, in `with` order, and are not changed by the points of the other modifiers
(their `grad` is the gradient as the step receives it).
"""

from __future__ import annotations

from dataclasses import fields, is_dataclass, replace

from generator.check.lets import assigned_names, substitute
from generator.language import syntax as S
from generator.language.diagnostics import Collector, Note, did_you_mean

# The points every optimizer with a per-parameter update has without exposing them, where a
# wrapper acts (pytorch_optimizer's OrthoGrad and Lookahead, around any optimizer):
# - `grad x`: the gradient as the step receives it, before the optimizer reads it (OrthoGrad
#   changes p.grad, then calls the wrapped step); the update then reads the block's result
#   wherever it reads `grad`, a lazy state's first value included;
# - `group`: once per group and step, before its parameters (`update group:`), with no value
#   (Lookahead counts its steps there);
# - `param p`: the parameter after the optimizer's step (Lookahead's pull toward slow weights).
GRAD, GROUP, PARAM = "grad", "group", "param"
IMPLICIT = {GRAD: 1, GROUP: 0, PARAM: 1}  # (the number of values each holds)


def apply_modifiers(spec: S.Spec, fragments: dict, out: Collector) -> S.Spec:
    """``spec`` with the modifiers of its ``with`` spliced in (itself where it takes none)."""
    if spec.kind != "optimizer":
        return spec
    exposed = [e for u in spec.updates for e in _exposes(u.body, fragments)]
    for e in exposed:
        if e.point in IMPLICIT:
            out.error(
                "E408",
                f"`{e.point}` is a point every per-parameter update has: it is not exposed",
                e.span,
                hint="remove the `expose`, or name the point otherwise",
            )
    taken: list[S.Spec] = []
    for name in spec.modifiers:
        mod = fragments.get(name.id)
        if mod is None or mod.kind != "modifier":
            known = [n for n, f in fragments.items() if f.kind == "modifier"]
            out.error(
                "E403",
                f"no modifier named `{name.id}`",
                name.span,
                hint=did_you_mean(name.id, known)
                or "a modifier is a `modifier NAME` file among the fragments",
            )
            continue
        if any(m.name == mod.name for m in taken):
            out.error("E403", f"modifier `{name.id}` is taken twice", name.span)
            continue
        ok = True
        if mod.updates and not any(u.mode == "each" for u in spec.updates):
            ok = False
            out.error(
                "E408",
                f"`with {name.id}`: {spec.name} has no per-parameter update for "
                f"{mod.name}'s blocks to run before",
                name.span,
                notes=[Note(f"{mod.name}'s first block", mod.updates[0].span)],
            )
        for block in mod.points:
            if block.point in IMPLICIT:
                ok &= _implicit_point_fits(spec, mod, name, block, out)
                continue
            here = [e for e in exposed if e.point == block.point]
            wrong = [e for e in here if len(e.names) != len(block.vars)]
            if wrong:
                ok = False
                out.error(
                    "E408",
                    f"`with {name.id}`: {mod.name} takes {len(block.vars)} value(s) at "
                    f"`{block.point}` ({', '.join(v.id for v in block.vars)}), the update "
                    f"exposes {len(wrong[0].names)}",
                    wrong[0].span,
                    notes=[
                        Note(f"{mod.name} acts at `{block.point}` here", block.span)
                    ],
                )
            if not here and not block.optional:
                ok = False
                out.error(
                    "E408",
                    f"`with {name.id}`: the update of {spec.name} exposes no "
                    f"`{block.point}` for it to act at",
                    name.span,
                    hint=f"add `expose {block.point} NAME` to the update where that value "
                    "is ready",
                    notes=[
                        Note(f"{mod.name} acts at `{block.point}` here", block.span)
                    ],
                )
        if ok and not _clashes(spec, mod, name, out):
            taken.append(mod)
    blocks: dict[str, list[S.PointBlock]] = {}
    for mod in taken:
        for block in mod.points:
            blocks.setdefault(block.point, []).append(block)
    each = [k for k, u in enumerate(spec.updates) if u.mode == "each"]
    updates = tuple(
        replace(
            u,
            body=(
                _at_grad(_splice(u.body, blocks, fragments), blocks, fragments)
                if u.mode == "each"
                else _splice(u.body, blocks, fragments)
            ),
        )
        for u in spec.updates
    )
    if each:  # (the parameter after the step: after the last pass, Prodigy's second)
        last = each[-1]
        updates = (
            updates[:last]
            + (replace(updates[last], body=_at_param(updates[last].body, blocks)),)
            + updates[last + 1 :]
        )
    updates = tuple(u for m in taken for u in m.updates) + _at_group(updates, blocks)
    docs = spec.docs + tuple(d for m in taken for d in m.docs if d.key == "reference")
    # (an input the optimizer declares itself replaces a modifier's of that name: a variant's
    # `input cautious: bool = true, fixed`)
    own = {i.arg_name for i in spec.inputs}
    added = tuple(i for m in taken for i in m.inputs if i.arg_name not in own)
    order = spec.defaults_order
    if order is not None:  # (the modifiers' options last, as a reference's **kwargs)
        order = replace(order, names=order.names + tuple(i.arg_name for i in added))
    return replace(
        spec,
        docs=docs,
        defaults_order=order,
        inputs=spec.inputs + added,
        checks=spec.checks + tuple(c for m in taken for c in m.checks),
        validations=spec.validations
        + tuple(
            v
            for m in taken
            for v in m.validations
            if not any(v in i.requires for i in m.inputs if i.arg_name in own)
        ),
        states=spec.states + tuple(s for m in taken for s in m.states),
        updates=updates,
    )


def _exposes(body, fragments: dict, stack=()) -> list[S.Expose]:
    """The points ``body`` exposes, those of the fragments it uses included (Adam's
    `gradient`, exposed in specs/fragments/adam_update.frag)."""
    found = []
    for s in body:
        if isinstance(s, S.Expose):
            found.append(s)
        frag = _used(s, fragments, stack)
        if frag is not None:
            found += _exposes(frag.body, fragments, stack + (s.fragment,))
        for block in S.sub_blocks(s):
            found += _exposes(block, fragments, stack)
    return found


def _used(s, fragments: dict, stack) -> S.Spec | None:
    """The fragment a `use` statement pulls in (None for another statement, or where the
    checker will refuse it: unknown, a modifier, a fragment using itself)."""
    if not isinstance(s, S.Use) or s.fragment in stack:
        return None
    frag = fragments.get(s.fragment)
    return frag if frag is not None and frag.kind == "fragment" else None


def _splice(
    body,
    blocks: dict[str, list[S.PointBlock]],
    fragments: dict,
    holds=(),
    stack=(),
    opens_all=False,
) -> tuple:
    """``body`` with each ``expose POINT NAME`` replaced by the blocks acting at POINT (a
    fragment that exposes one opened in place: its lines, spliced); ``holds``, the conditions
    known true where ``body`` runs."""
    out = []
    for s in body:
        if isinstance(s, S.Expose):
            for block in blocks.get(s.point, ()):
                values = {v.id: n for v, n in zip(block.vars, s.names)}
                out.extend(_known(substitute(block.body, values), holds))
            continue
        frag = _used(s, fragments, stack)
        if frag is not None and (
            opens_all
            or any(e.point in blocks for e in _exposes(frag.body, fragments, stack))
        ):
            out.extend(
                _splice(
                    frag.body,
                    blocks,
                    fragments,
                    holds,
                    stack + (s.fragment,),
                    opens_all,
                )
            )
            continue
        if isinstance(s, S.If):
            s = replace(
                s,
                branches=tuple(
                    (
                        c,
                        _splice(
                            b,
                            blocks,
                            fragments,
                            holds + ((c,) if k == 0 else ()),
                            stack,
                            opens_all,
                        ),
                    )
                    for k, (c, b) in enumerate(s.branches)
                ),
                orelse=_splice(s.orelse, blocks, fragments, holds, stack, opens_all),
            )
            if not s.orelse and not any(b for _, b in s.branches):
                # (a condition that only placed a point no modifier acts at: SGD's
                # `if momentum != 0: expose momentum b`)
                continue
        elif hasattr(s, "body") and isinstance(s.body, tuple):
            s = replace(
                s, body=_splice(s.body, blocks, fragments, holds, stack, opens_all)
            )
        out.append(s)
    return tuple(out)


def _implicit_point_fits(spec, mod, name, block, out: Collector) -> bool:
    """A block at `grad`, `group` or `param` takes the values the point holds, in an optimizer
    whose update runs per parameter."""
    want = IMPLICIT[block.point]
    if len(block.vars) != want:
        why = (
            f"{mod.name} takes {len(block.vars)} value(s) at `{block.point}`, which holds "
            f"{want}"
        )
    elif not any(u.mode == "each" for u in spec.updates):
        why = f"{spec.name} has no per-parameter update for it to act at `{block.point}` of"
    else:
        return True
    out.error(
        "E408",
        f"`with {name.id}`: {why}",
        name.span,
        notes=[Note(f"{mod.name} acts at `{block.point}` here", block.span)],
    )
    return False


def _at_grad(body, blocks: dict[str, list[S.PointBlock]], fragments: dict) -> tuple:
    """A per-parameter update with the blocks acting at `grad` first, on a local that the
    update then reads for `grad` (its fragments opened, so that theirs read it too); named
    after the first block's variable (OrthoGrad's `ortho_grad`). A pass that does not read the
    gradient (Prodigy's second) is left as it is."""
    here = blocks.get(GRAD, ())
    if not here or not body:
        return body
    local = here[0].vars[0]
    opened = _splice(body, {}, fragments, opens_all=True)
    if GRAD not in _names(opened):
        return body
    spliced = [S.Assign(local, S.Name(GRAD, None, local.span), None, local.span)]
    for block in here:
        spliced += substitute(block.body, {block.vars[0].id: local})
    return tuple(spliced) + substitute(opened, {GRAD: local})


def _at_param(body, blocks: dict[str, list[S.PointBlock]]) -> tuple:
    """A per-parameter update with the blocks acting at `param` last, their value the
    parameter itself."""
    tail = []
    for block in blocks.get(PARAM, ()):
        tail += substitute(
            block.body, {block.vars[0].id: S.Name("param", None, block.vars[0].span)}
        )
    return tuple(body) + tuple(tail)


def _at_group(updates: tuple, blocks: dict[str, list[S.PointBlock]]) -> tuple:
    """The updates with the blocks acting at `group` first in the `update group:` before the
    first per-parameter update (one made for them where the optimizer has none there): once
    per group and step, however many passes the update makes (Prodigy's two)."""
    here = [s for block in blocks.get(GROUP, ()) for s in block.body]
    if not here:
        return updates
    at = next(i for i, u in enumerate(updates) if u.mode == "each")
    first = next((i for i, u in enumerate(updates[:at]) if u.mode == "group"), None)
    if first is not None:
        u = updates[first]
        return (
            updates[:first]
            + (replace(u, body=tuple(here) + u.body),)
            + updates[first + 1 :]
        )
    made = S.Update("group", tuple(here), blocks[GROUP][0].span)
    return updates[:at] + (made,) + updates[at:]


def _known(body, holds) -> tuple:
    """A modifier's block where the optimizer exposes its point under the modifier's own
    option (AdEMAMix's `if stable_adamw:`): an `if` on a condition that holds there is its
    block, not a second test of the option."""
    out: list = []
    for s in body:
        if (
            isinstance(s, S.If)
            and len(s.branches) == 1
            and not s.orelse
            and s.branches[0][0] in holds
        ):
            out.extend(s.branches[0][1])
        else:
            out.append(s)
    return tuple(out)


def _clashes(spec: S.Spec, mod: S.Spec, name: S.Name, out: Collector) -> bool:
    """Whether a value the modifier makes (a local of its blocks, an input, a state) has the
    name of one of the optimizer's: spliced in, the two would be one (reported, E202).
    """
    own = _names(replace(spec, modifiers=()))  # (its `with` names the modifiers only)
    # (an input of the modifier's that the optimizer redeclares is the optimizer's own; one it
    # only reads is the modifier's, read where the optimizer's update depends on the option:
    # AdEMAMix divides by its denominator first where `stable_adamw` is on, as its reference)
    redeclared = {i.arg_name for i in spec.inputs}
    makes = (
        {n.id for i in spec.inputs for n in i.names}
        | {s.name.id for s in spec.states}
        | {let.name.id for let in spec.lets}
        | {n.id for u in spec.updates for n in assigned_names(u.body)}
    )
    made = [
        (n, makes)
        for inp in mod.inputs
        if inp.arg_name not in redeclared
        for n in inp.names
    ] + [(s.name, own) for s in mod.states]
    for block in mod.points:
        bound = {v.id for v in block.vars}
        made += [(n, own) for n in assigned_names(block.body) if n.id not in bound]
        if block.point == GRAD:  # (its variable is a local of the update)
            made += [(v, own) for v in block.vars]
    for n, names in made:
        if n.id in names:
            out.error(
                "E202",
                f"`with {name.id}`: its `{n.id}` is also a name of {spec.name}",
                name.span,
                hint="rename one of them",
                notes=[Note(f"{mod.name}'s `{n.id}`", n.span)],
            )
            return True
    return False


def _names(node) -> set[str]:
    """Every name a spec (or any syntax) mentions."""
    if isinstance(node, S.Name):
        return {node.id}
    if isinstance(node, (tuple, list)):
        return set().union(*(_names(x) for x in node)) if node else set()
    if is_dataclass(node) and not isinstance(node, S.Span):
        return set().union(
            *(_names(getattr(node, f.name)) for f in fields(node) if f.compare)
        )
    return set()
