"""Assignments in a per-parameter block: the rules of ``name <- value``.

Part of the check stage (language → check → lower → emit). generator.check.flow follows every
update block; an assignment of a per-parameter block (`update:`, `update group:`, `update
optimizer:`, a method) comes here: a local is made or replaced and keeps one type (the foreach and
fused paths hold each value in one form), a state or the parameter is updated in the block its
scope allows and keeps its type, a lazy state gets its first value with `initially`, a total is
added to, and an input or `grad` is never assigned. (A flat update's assignments follow
generator.check.flat_rules.)
"""

from __future__ import annotations

from generator.language import syntax as S
from generator.language.builtins import BUILTINS
from generator.language.diagnostics import Note
from generator.language.types import Kind, ListOf
from generator.check.declarations import check_name
from generator.check.kinds import outside_for_each
from generator.check.model import NoForm, Symbol
from generator.check.queries import mentions_name, varies_beyond_rank


def assign(flow, s: S.Assign) -> None:
    """``name <- value`` in a per-parameter block: a local made or replaced (one type for
    good), a state or the parameter updated (in the block its scope allows, with its type),
    a lazy state given its first value with `initially`; never an input or `grad`."""
    name, sub = s.target.id, s.target.subscript
    if flow.mode == "method" and name not in flow.env:
        if outside_for_each(flow, name, s.target.span):
            flow.kind(s.value)
            return
    beside_update = any(u.mode == "each" for u in flow.c.spec.updates)
    if (flow.mode == "step" and beside_update) and (name not in flow.c.states):
        flow.c.out.error(
            "E320",
            "`update optimizer:` beside `update:` assigns `state optimizer` values only",
            s.target.span,
            hint="compute other values in `update group:` or `update:`",
        )
    total = flow.c.states.get(name)
    if total is not None and total.kind == "total" and flow.mode != "step":
        if flow.mode != "each" or not _adds_to(s.value, name):
            flow.c.out.error(
                "E320",
                f"`update:` adds to the total `{name}` over the parameters: "
                f"`{name} <- {name} + ...`; other changes belong in `update optimizer:`",
                s.target.span,
            )
        flow.accumulating = name
    if sub is None and name.endswith("_t") and name[:-2] in flow.c.states:
        name, sub = name[:-2], "t"
    if sub == "t-1":
        flow.c.out.error(
            "E314",
            f"cannot assign `{name}_{{t-1}}`, the previous value",
            s.target.span,
            hint=f"assign `{name}` (or `{name}_t`)",
        )
    if name not in flow.env:  # a new local: its name must be usable in Python
        check_name(S.Name(name, None, s.target.span), "a value", flow.c.out)
    target = flow.env.get(name)
    if target is not None and target.role == "input":
        flow.c.out.error(
            "E317",
            f"cannot assign to input `{name}`",
            s.target.span,
            notes=[Note("declared here", target.decl.span)],
            hint=(
                f"assign a new name, e.g. `{name}_t <- ...`"
                if not name.endswith("_t")
                else None
            ),
        )
        return
    if target is not None and target.role == "grad":
        flow.c.out.error(
            "E317",
            "cannot assign to `grad`: gradients are never modified",
            s.target.span,
            hint="name the working gradient, e.g. `g <- grad`",
        )
        return
    if _is_estimate(s.value):
        estimate(flow, s)
        return
    if s.initially is not None and name in flow.c.states and flow.c.states[name].lazy:
        flow.kind(s.initially)
        flow.initialised.add(
            name
        )  # the update expression runs only once it has a value
    lists = isinstance(s.value, S.List) or S.repeated_list(s.value) is not None
    k, dyn, var = flow.kind(s.value, lists=lists)
    if isinstance(k, ListOf):
        if target is not None and target.role != "local":
            flow.c.out.error(
                "E507",
                f"a list is a new local: `{name}` is not one",
                s.target.span,
                hint="a list state is made by its declaration and changes item by "
                "item, `bufs[k] <- ...`",
            )
            return
        # (the foreach path holds a list of the items' lists; a fused kernel takes
        # one tensor per argument)
        flow.no_form(NoForm("a list", s.value.span, frozenset({"fused"})))
    flow.accumulating = None
    if s.initially is not None:
        st = flow.c.states.get(name)
        if st is None or not st.lazy:
            flow.c.out.error(
                "E318",
                "`initially` gives a lazy state its first value; "
                f"`{name}` is not a lazy state",
                s.initially.span,
            )
        ik, _, _ = flow.kind(s.initially)
        if ik not in (Kind.TENSOR, None):
            flow.c.out.error(
                "E318",
                "the first value of a tensor state must be a tensor",
                s.initially.span,
            )
        if st is not None and st.lazy:
            flow.initialised.add(name)
    elif (
        name in flow.c.states
        and flow.c.states[name].lazy
        and name not in flow.initialised
    ):
        flow.c.out.error(
            "E315",
            f"lazy state `{name}` is assigned without `initially`",
            s.target.span,
            hint=f"write `{name} <- ... initially <first value>`",
        )
        flow.initialised.add(name)
    if (
        flow.c.spec.sparse
        and target is not None
        and target.role in ("state", "param")
        and (target.role == "param" or flow.c.states[name].kind == "tensor")
        and not _adds_to(s.value, name)
    ):
        flow.c.out.error(
            "E325",
            f"with `sparse gradients`, `{name}` can only change by addition "
            f"(`{name} <- {name} + ...`): a sparse gradient updates the rows it holds",
            s.value.span,
            hint="write the update as an increment, e.g. "
            f"`{name} <- {name} + ((1 - b) * (g - {name}))`",
        )
    if target is not None and target.role in ("state", "param"):
        want = target.kind
        if k == Kind.MASK:
            flow.c.out.error(
                "E319",
                f"a mask cannot be stored in `{name}`: it is true or false per element",
                s.value.span,
                hint="store numbers made of it: `where(mask, 1, 0)`",
            )
            return
        if k == Kind.TENSOR and want != Kind.TENSOR:
            flow.c.out.error(
                "E319",
                f"`{name}` is a number; a tensor cannot be stored in it",
                s.value.span,
            )
        if (
            k in (Kind.SCALAR, Kind.INT)
            and want == Kind.TENSOR
            and target.role == "param"
        ):
            flow.c.out.error("E319", "the parameter must stay a tensor", s.value.span)
        if (k == Kind.BOOL) != (want == Kind.BOOL) and k is not None:
            flow.c.out.error(
                "E319",
                (
                    f"a condition cannot be stored in `{name}`"
                    if k == Kind.BOOL
                    else f"`{name}` is a flag: it takes true or false"
                ),
                s.value.span,
            )
        if target.role == "state":
            st = flow.c.states[name]
            block = {"optimizer": "step", "group": "group"}.get(st.scope)
            in_method = flow.mode == "method" and not flow.in_each
            accumulates = st.kind == "total" and flow.mode == "each"
            if (
                st.scope != "parameter"
                and flow.mode != block
                and not (in_method or accumulates)
            ):
                flow.c.out.error(
                    "E320",
                    f"{st.scope}-level state `{name}` can only be "
                    f"updated in an `update {st.scope}:` block",
                    s.target.span,
                )
            flow._check_condition(st, s.target.span)
            flow.assigned_now[name] = s.target.span
        if target.role == "param":
            flow.read.add(name)
            flow.assigned_now[name] = s.target.span
        return
    if k is None:
        k = Kind.TENSOR
    if k == Kind.BOOL:
        flow.c.out.error(
            "E319", "store conditions in inputs, not in update values", s.value.span
        )
    prev = flow.env.get(name)
    if prev is not None and isinstance(prev.decl, S.For):
        flow.c.out.error(
            "E319",
            f"`{name}` is the loop's variable: the loop sets it",
            s.target.span,
            hint="give the value a name of its own",
        )
        return
    if (
        prev is not None
        and prev.kind != k
        and not ({prev.kind, k} <= {Kind.SCALAR, Kind.INT})
    ):
        flow.c.out.error(
            "E319",
            f"`{name}` was {_a(prev.kind)}; it cannot become {_a(k)}",
            s.value.span,
            notes=[Note("first assigned here", prev.decl.target.span)],
        )
    if (dyn or var) and varies_beyond_rank(s.value, flow.env, flow.beyond_rank):
        flow.beyond_rank.add(name)  # (for good: a branch may have set it so)
    sym = Symbol(name, k, "local", dynamic=dyn, varying=var, decl=s)
    flow.env[name] = sym
    flow.origin[name] = flow.mode
    flow.defined.setdefault(name, sym)
    flow.pending.pop(name, None)


def _is_estimate(value: S.Expr) -> bool:
    b = BUILTINS.get(value.func) if isinstance(value, S.Call) else None
    return b is not None and b.context == "estimate"


def estimate(flow, s: S.Assign) -> None:
    """``D <- hutchinson(n, "rademacher")`` in ``update optimizer:``: a lazy per-parameter
    tensor state made, for every parameter with a gradient at once, before the groups step
    (its first value too: no ``initially``); its arguments are numbers and strings of the
    inputs, read off the first group as the block's are."""
    call, name = s.value, s.target.id
    st = flow.c.states.get(name)
    where = None
    if flow.mode != "step":
        where = "in `update optimizer:` (once per step, before the groups)"
    elif st is None or st.scope != "parameter" or st.kind != "tensor" or not st.lazy:
        where = "as the value of a lazy per-parameter state (`state D (hessian) lazy`)"
    elif s.initially is not None or s.target.subscript is not None:
        where = (
            "as a state's whole value, with no `initially` (it makes the first value)"
        )
    if where is not None:
        flow.c.out.error(
            "E310",
            f"`{call.func}` makes a state of every parameter at once: it is assigned {where}",
            s.value.span,
        )
    if st is not None:  # (it has a value from here on, whatever else is wrong)
        flow.initialised.add(name)
        flow.assigned_now[name] = s.target.span
    # (its arguments as any call's: arity, and each argument's type)
    flow.kind(call, context="estimate")


def _a(kind) -> str:
    """``an int``, ``a tensor``: a type in a sentence."""
    return ("an " if str(kind)[0] in "aeiou" else "a ") + str(kind)


def _adds_to(value: S.Expr, name: str) -> bool:
    """``x + a - b ...`` where the first term is ``x`` itself; a single increment may read ``x``
    (its rows before the update), several may not (each would see the previous one's rows).
    """
    terms = []
    e = value
    while isinstance(e, S.Binary) and e.op in ("+", "-") and not e.grouped:
        terms.append(e.right)
        e = e.left
    return (
        bool(terms)
        and isinstance(e, S.Name)
        and e.id == name
        and (len(terms) == 1 or not any(mentions_name(t, name) for t in terms))
    )
