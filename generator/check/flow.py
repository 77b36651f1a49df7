"""Statements and update blocks: the data flow of a per-parameter update, followed in order.

Part of the check stage (language → check → lower → emit). ``Flow`` walks the statements of the
`update:` blocks and of each `method` (fragments and called procedures already inlined by
generator.check.checker): what is defined where and with which type, read before written, the
time subscripts of states, lazy states given their first value, conditional states used only under
their condition, loops (`repeat`, `for`, `while`, `break`), lists (items of list states updated,
local lists made, grown and their items replaced) and the paths each has a form in, what each kind
of block (`update:`, `update group:`, `update optimizer:`, a method) may read and assign.
Expressions are typed by generator.check.kinds, in the language's types
(generator.language.types); `update flat:` is checked by generator.check.flat instead.
"""

from __future__ import annotations

from dataclasses import replace

from generator.language import syntax as S
from generator.language.diagnostics import Note
from generator.language.spec_printer import print_expr
from generator.language.types import Kind, ListOf
from generator.check.declarations import check_name
from generator.check.kinds import Typer, flat_only, outside_for_each
from generator.check.model import Block, NoForm, Symbol, state_type
from generator.check.queries import mentions_name
from generator.check.lists import STATEMENT_FUNCTIONS, list_statement_form
from generator.check.types import is_range


class Flow:
    """Follows the update in order: what is defined where, read before written, and the subscripts.

    ``checker`` is the generator.check.checker.Checker whose inputs, states and collector it
    uses; ``env`` the symbols visible at the start (inputs, states, `param`, `grad`)."""

    def __init__(self, checker, env: dict):
        self.c = checker
        self.env = (
            env  # inputs, states, builtins; locals are added as they are assigned
        )
        self.defined: dict[str, Symbol] = {}
        self.read: set[str] = set()
        self.assigned_now: dict[str, S.Span] = {}  # states assigned so far in this step
        self.initialised: set[str] = set()  # lazy states given their first value
        self.conditions: list[S.Expr] = []
        self.pending: dict[str, S.Span] = {}
        self.mode = "each"
        self.in_each = False  # inside a method's `for each parameter:`
        self.origin: dict[str, str] = {}  # local → the mode of the block that set it
        self.accumulating: str | None = None  # the total an `update:` statement adds to
        self.loops = 0  # the loops around the statement being followed

    def block(self, b: Block) -> None:
        # A group block's values reach the `update:` after it; a pass's values stay in it.
        for name in [n for n, sym in self.env.items() if sym.role == "local"]:
            reaches = b.mode in ("each", "random") and self.origin.get(name) in (
                "group",
                "step",
            )
            if not reaches:
                self.env.pop(name)
        self.mode = b.mode
        self.body(b.body)

    def body(self, stmts) -> None:
        for s in stmts:
            if isinstance(s, S.Assign):
                self.assign(s)
            elif isinstance(s, S.If):
                self.if_(s)
            elif isinstance(s, S.Repeat):
                self.repeat(s)
            elif isinstance(s, S.Check):
                self.check(s)
            elif isinstance(s, S.ForEachParameter):
                self.for_each(s)
            elif isinstance(s, S.For):
                self.for_(s)
            elif isinstance(s, S.While):
                self.while_(s)
            elif isinstance(s, S.ItemAssign):
                self.item_assign(s)
            elif isinstance(s, S.CallStmt) and s.call.func in STATEMENT_FUNCTIONS:
                self.list_call(s.call)
            elif isinstance(s, S.Break):
                if not self.loops:
                    self.c.out.error("E504", "`break` outside a loop", s.span)
                else:
                    self.c.no_form.append(NoForm("`break`", s.span, _LISTS, _RANGE))
            elif isinstance(s, S.Return) and self.mode in ("group", "step"):
                if s.values:
                    self.c.out.error(
                        "E332",
                        "`return` in a step ends it: it takes no value",
                        s.values[0].span,
                    )
            else:
                what = _STATEMENT_WORDS.get(type(s).__name__, "this statement")
                flat_only(self.c.out, what, s.span)
                # the rest is still followed, so that one misplaced statement is one error
                for b in S.sub_blocks(s):
                    self.body(b)

    def for_each(self, s: S.ForEachParameter) -> None:
        if self.mode != "method" or self.in_each:
            self.c.out.error(
                "E330",
                "`for each parameter:` belongs at the top of a `method`"
                + (
                    ""
                    if self.mode == "method"
                    else ": `update:` already runs on every parameter"
                ),
                s.span,
            )
        before = dict(self.env)
        self.env["param"] = Symbol("param", Kind.TENSOR, "param")
        for name, st in self.c.states.items():
            if st.scope == "parameter":
                self.env[name] = Symbol(
                    name,
                    state_type(st),
                    "state",
                    dynamic=st.kind == "count",
                    varying=st.kind == "count",
                    decl=st,
                )
                self.initialised.add(name)  # it visits only parameters with state
        self.in_each = True
        self.body(s.body)
        self.in_each = False
        # values computed for one parameter do not outlive the loop
        for name in list(self.env):
            if name not in before:
                sym = self.env.pop(name)
                if sym.role == "local":
                    self.pending[name] = sym.decl.target.span
        self.env.update(before)

    def check(self, s: S.Check) -> None:
        k, _, _ = self.kind(s.expr)
        if k not in (Kind.BOOL, None):
            self.c.out.error(
                "E324",
                "a check in the update must be a condition (true or false)",
                s.expr.span,
                hint="compare the value, e.g. `check ns_steps < 100 else ...`",
            )
        self.c.check_message(s.message)

    def repeat(self, s: S.Repeat) -> None:
        k, dyn, _ = self.kind(s.count)
        if k not in (Kind.INT, None) or dyn:
            self.c.out.error(
                "E323",
                "`repeat` needs a whole number decided by hyperparameters",
                s.count.span,
                hint="e.g. an `int` input: `repeat ns_steps:`",
            )
        self.loop_body(s.body)

    def loop_body(self, body, variable: str | None = None) -> None:
        """A loop's statements. The loop may run zero times: what its body defines first
        does not exist after it (nor does its variable)."""
        before = dict(self.env)
        self.loops += 1
        self.body(body)
        self.loops -= 1
        if variable is not None:
            self.env.pop(variable, None)
        for name in list(self.env):
            if name not in before:
                self.pending[name] = self.env.pop(name).decl.target.span

    def for_(self, s: S.For) -> None:
        """``for i in range(a, b)`` (or reversed): bounds that are whole numbers; a bound that
        differs between parameters leaves no single loop for the foreach path."""
        it = s.iterable
        if not is_range(it):
            self.c.out.error(
                "E507",
                "`for` runs over `range(n)`, `range(a, b)` or `reversed(range(n))`",
                it.span,
            )
            self.loop_body(s.body)
            return
        dynamic = varying = False
        for bound in (it.args[0] if it.func == "reversed" else it).args:
            k, dyn, var = self.kind(bound)
            if k not in (Kind.INT, None):
                self.c.out.error(
                    "E323",
                    "the bounds of `for` must be whole numbers",
                    bound.span,
                    hint="e.g. an `int` input, `dim(param)` or `size(param, 0)`",
                )
            dynamic, varying = dynamic or dyn, varying or var
        self.c.no_form.append(
            NoForm(
                (
                    "a `for` loop over a range that differs between parameters"
                    if varying
                    else "a `for` loop"
                ),
                s.span,
                _LISTS if varying else frozenset({"fused"}),
                _RANGE,
            )
        )
        name = s.var.id
        if name in self.env:
            self.c.out.error(
                "E319",
                f"`{name}` already names a value: a loop's variable takes a new name",
                s.var.span,
            )
            self.loop_body(s.body)
            return
        check_name(s.var, "a loop variable", self.c.out)
        self.env[name] = Symbol(
            name, Kind.INT, "local", dynamic=dynamic, varying=varying, decl=s
        )
        self.loop_body(s.body, name)

    def condition(self, cond, keyword: str, tensor_hint: str) -> bool:
        """The condition of an ``if`` or ``while``: true or false, never a tensor (E308,
        E307); whether it is decided per step (it depends on a counter)."""
        k, dyn, _ = self.kind(cond)
        if k in (Kind.TENSOR, Kind.MASK):
            self.c.out.error(
                "E308",
                f"a tensor cannot be the condition of `{keyword}`",
                cond.span,
                hint=tensor_hint,
            )
        elif k not in (Kind.BOOL, None):
            self.c.out.error(
                "E307",
                f"the condition of `{keyword}` must be true or false",
                cond.span,
                hint="compare it, e.g. `weight_decay != 0`",
            )
        return bool(dyn)

    def while_(self, s: S.While) -> None:
        self.condition(s.cond, "while", "compare a number, e.g. `while k < n:`")
        self.c.no_form.append(NoForm("`while`", s.span, _LISTS, _RANGE))
        self.loop_body(s.body)

    def kind(self, e, context="update", lists=False):
        """(type, dynamic, varying) of ``e``; a list only where ``lists`` admits one."""
        t = Typer(self.c, context, self.env, self)
        k = t.any_kind(e) if lists else t.kind(e)
        return k, t.dynamic, t.varying

    def if_(self, s: S.If) -> None:
        before = dict(self.env)
        envs = []
        negs = []
        dynamic = False  # decided per parameter (by the step): a partition in the foreach path
        for cond, body in s.branches:
            dynamic |= self.condition(
                cond, "if", "use where(condition, a, b) for an elementwise choice"
            )
            self.env = dict(before)
            self.conditions.extend(negs + [cond])
            self.body(body)
            del self.conditions[len(self.conditions) - len(negs) - 1 :]
            envs.append(self.env)
            negs.append(S.Unary("not", cond, cond.span))
        self.env = dict(before)
        self.conditions.extend(negs)
        self.body(s.orelse)
        del self.conditions[len(self.conditions) - len(negs) :]
        envs.append(self.env)
        item = self._list_use([b for _, b in s.branches] + [s.orelse], before)
        if dynamic and item is not None:
            # (the foreach path splits its lists by such a condition; it keeps a list by
            # item, a list of every parameter's, and does not split those)
            self.c.no_form.append(
                NoForm(
                    "a list under a condition decided per parameter",
                    item,
                    frozenset({"foreach"}),
                )
            )
        # A local is defined after the `if` only where every branch defined it, with one kind.
        # Under a per-parameter condition, a value set in a branch differs between parameters.
        merged = dict(before)
        for name in set().union(*envs):
            syms = [e.get(name) for e in envs]
            if name in before and all(x is before[name] for x in syms):
                continue
            if all(syms):
                kinds = {x.kind for x in syms}
                # `r <- 2.0` here, `r <- 1` there: a number
                if kinds == {Kind.INT, Kind.SCALAR}:
                    kinds = {Kind.SCALAR}
                merged[name] = replace(
                    syms[0],
                    kind=kinds.pop() if len(kinds) == 1 else Kind.TENSOR,
                    dynamic=dynamic or any(x.dynamic for x in syms),
                    varying=dynamic or any(x.varying for x in syms),
                )
            else:
                self.pending[name] = next(x for x in syms if x).decl.target.span
        self.env = merged

    def _list_use(self, blocks, env: dict) -> S.Span | None:
        """Where ``blocks`` first make, change or read a list (a list state's or a local
        list's item, a list made or grown); ``env`` the names before them."""
        lists = {n for n, sym in env.items() if isinstance(sym.kind, ListOf)}

        def in_expr(e):
            if isinstance(e, S.List) or (
                isinstance(e, S.Index)
                and isinstance(e.value, S.Name)
                and e.value.id in lists
            ):
                return e.span
            return next(filter(None, map(in_expr, S.children(e))), None)

        def in_stmts(stmts):
            for st in stmts:
                # (a statement call is a list's: procedures' calls are inlined already)
                if isinstance(st, S.CallStmt) or (
                    isinstance(st, S.ItemAssign) and st.target.id in lists
                ):
                    return st.span
                found = next(filter(None, map(in_expr, S.expressions(st))), None)
                found = found or next(
                    filter(None, map(in_stmts, S.sub_blocks(st))), None
                )
                if found is not None:
                    return found
            return None

        return next(filter(None, map(in_stmts, blocks)), None)

    def on_read(self, name: str, sub: str | None, span: S.Span) -> None:
        self.read.add(name)
        st = self.c.states.get(name)
        if self.mode in ("group", "step") and (
            name in ("param", "grad") or (st is not None and st.scope == "parameter")
        ):
            block = "update group:" if self.mode == "group" else "update optimizer:"
            self.c.out.error(
                "E334",
                f"`{name}` belongs to one parameter; `{block}` runs once per "
                + ("group" if self.mode == "group" else "step"),
                span,
                hint="sum what the parameters contribute into a `state optimizer ...: "
                "total` in `update:`, and read the total after it",
            )
        if (
            st is not None
            and st.kind == "total"
            and self.mode == "each"
            and self.accumulating != name
        ):
            self.c.out.error(
                "E333",
                f"the total `{name}` is complete only after the pass over the parameters",
                span,
                hint="read it in an `update group:` or `update optimizer:` after this "
                "`update:`",
            )
        if name == "param" and sub is not None:
            self._check_subscript(name, sub, span)
            return
        if st is None:
            if sub is not None:
                self.c.out.error(
                    "E314",
                    f"`{name}` is not a state; a time subscript marks "
                    "a state's value before or after this step",
                    span,
                )
            return
        self._check_subscript(name, sub, span)
        if st.lazy and name not in self.initialised:
            self.c.out.error(
                "E315",
                f"state `{name}` is read before it has a value",
                span,
                notes=[Note("declared lazy here", st.span)],
                hint=f"give it its first value with `{name} <- ... initially ...`",
            )
        self._check_condition(st, span)

    def _check_subscript(self, name: str, sub: str | None, span: S.Span) -> None:
        if sub == "t-1" and name in self.assigned_now:
            self.c.out.error(
                "E314",
                f"`{name}_{{t-1}}` is read after `{name}` was updated in " "this step",
                span,
                notes=[Note(f"{name} updated here", self.assigned_now[name])],
                hint="read it before the update, or drop the subscript",
            )
        if sub == "t" and name not in self.assigned_now:
            self.c.out.error(
                "E314",
                f"`{name}_t` is read before `{name}` is updated in this step",
                span,
                hint=f"write `{name}_{{t-1}}` for the previous value",
            )

    def _check_condition(self, st: S.State, span: S.Span) -> None:
        if st.condition is None:
            return
        if not any(_implies(c, st.condition) for c in self.conditions):
            self.c.out.error(
                "E316",
                f"state `{st.name.id}` exists only if "
                f"{print_expr(st.condition)}, but is used outside such a branch",
                span,
                notes=[Note("declared here", st.span)],
                hint=f"wrap the statement in `if {print_expr(st.condition)}:`",
            )

    def list_call(self, c: S.Call) -> None:
        """``append(xs, t)``, ``pop_first(xs)``: a local list grows or loses its first item."""
        if not list_statement_form(c, self.c.out):
            return
        lst, *value = c.args
        k, _, _ = self.kind(lst, lists=True)
        sym = self.env.get(lst.id) if isinstance(lst, S.Name) else None
        local = sym is not None and sym.role == "local"
        if k is not None and not (isinstance(k, ListOf) and local):
            self.c.out.error(
                "E507",
                f"`{c.func}` needs a local list first"
                + (": a list state keeps its length" if isinstance(k, ListOf) else ""),
                lst.span,
            )
        for v in value:
            vk, _, _ = self.kind(v)
            if vk not in (Kind.TENSOR, None):
                self.c.out.error(
                    "E507", "a per-parameter update's list holds tensors", v.span
                )

    def item_assign(self, s: S.ItemAssign) -> None:
        """``bufs[k] <- beta * bufs[k] + grad``: an item of a list state, updated in place;
        of a local list, replaced."""
        target = S.Index(s.target, s.index, s.target.span)
        self.kind(target)  # (the list and the index read, as any item's are)
        k, _, _ = self.kind(s.value)
        if k not in (Kind.TENSOR, Kind.SCALAR, Kind.INT, None):
            self.c.out.error(
                "E507",
                f"an item of `{s.target.id}` is a tensor: it takes a tensor or a number",
                s.value.span,
            )

    def assign(self, s: S.Assign) -> None:
        name, sub = s.target.id, s.target.subscript
        if self.mode == "method" and name not in self.env:
            if outside_for_each(self, name, s.target.span):
                self.kind(s.value)
                return
        beside_update = any(u.mode == "each" for u in self.c.spec.updates)
        if (self.mode == "step" and beside_update) and (name not in self.c.states):
            self.c.out.error(
                "E320",
                "`update optimizer:` beside `update:` assigns `state optimizer` values only",
                s.target.span,
                hint="compute other values in `update group:` or `update:`",
            )
        total = self.c.states.get(name)
        if total is not None and total.kind == "total" and self.mode != "step":
            if self.mode != "each" or not _adds_to(s.value, name):
                self.c.out.error(
                    "E320",
                    f"`update:` adds to the total `{name}` over the parameters: "
                    f"`{name} <- {name} + ...`; other changes belong in `update optimizer:`",
                    s.target.span,
                )
            self.accumulating = name
        if sub is None and name.endswith("_t") and name[:-2] in self.c.states:
            name, sub = name[:-2], "t"
        if sub == "t-1":
            self.c.out.error(
                "E314",
                f"cannot assign `{name}_{{t-1}}`, the previous value",
                s.target.span,
                hint=f"assign `{name}` (or `{name}_t`)",
            )
        if name not in self.env:  # a new local: its name must be usable in Python
            check_name(S.Name(name, None, s.target.span), "a value", self.c.out)
        target = self.env.get(name)
        if target is not None and target.role == "input":
            self.c.out.error(
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
            self.c.out.error(
                "E317",
                "cannot assign to `grad`: gradients are never modified",
                s.target.span,
                hint="name the working gradient, e.g. `g <- grad`",
            )
            return
        if (
            s.initially is not None
            and name in self.c.states
            and self.c.states[name].lazy
        ):
            self.kind(s.initially)
            self.initialised.add(
                name
            )  # the update expression runs only once it has a value
        lists = isinstance(s.value, S.List) or S.repeated_list(s.value) is not None
        k, dyn, var = self.kind(s.value, lists=lists)
        if isinstance(k, ListOf):
            if target is not None and target.role != "local":
                self.c.out.error(
                    "E507",
                    f"a list is a new local: `{name}` is not one",
                    s.target.span,
                    hint="a list state is made by its declaration and changes item by "
                    "item, `bufs[k] <- ...`",
                )
                return
            # (the foreach path holds a list of the items' lists; a fused kernel takes
            # one tensor per argument)
            self.c.no_form.append(NoForm("a list", s.value.span, frozenset({"fused"})))
        self.accumulating = None
        if s.initially is not None:
            st = self.c.states.get(name)
            if st is None or not st.lazy:
                self.c.out.error(
                    "E318",
                    "`initially` gives a lazy state its first value; "
                    f"`{name}` is not a lazy state",
                    s.initially.span,
                )
            ik, _, _ = self.kind(s.initially)
            if ik not in (Kind.TENSOR, None):
                self.c.out.error(
                    "E318",
                    "the first value of a tensor state must be a tensor",
                    s.initially.span,
                )
            if st is not None and st.lazy:
                self.initialised.add(name)
        elif (
            name in self.c.states
            and self.c.states[name].lazy
            and name not in self.initialised
        ):
            self.c.out.error(
                "E315",
                f"lazy state `{name}` is assigned without `initially`",
                s.target.span,
                hint=f"write `{name} <- ... initially <first value>`",
            )
            self.initialised.add(name)
        if (
            self.c.spec.sparse
            and target is not None
            and target.role in ("state", "param")
            and (target.role == "param" or self.c.states[name].kind == "tensor")
            and not _adds_to(s.value, name)
        ):
            self.c.out.error(
                "E325",
                f"with `sparse gradients`, `{name}` can only change by addition "
                f"(`{name} <- {name} + ...`): a sparse gradient updates the rows it holds",
                s.value.span,
                hint="write the update as an increment, e.g. "
                f"`{name} <- {name} + ((1 - b) * (g - {name}))`",
            )
        if target is not None and target.role in ("state", "param"):
            want = target.kind
            if k == Kind.TENSOR and want != Kind.TENSOR:
                self.c.out.error(
                    "E319",
                    f"`{name}` is a number; a tensor cannot be stored in it",
                    s.value.span,
                )
            if (
                k in (Kind.SCALAR, Kind.INT)
                and want == Kind.TENSOR
                and target.role == "param"
            ):
                self.c.out.error(
                    "E319", "the parameter must stay a tensor", s.value.span
                )
            if (k == Kind.BOOL) != (want == Kind.BOOL) and k is not None:
                self.c.out.error(
                    "E319",
                    (
                        f"a condition cannot be stored in `{name}`"
                        if k == Kind.BOOL
                        else f"`{name}` is a flag: it takes true or false"
                    ),
                    s.value.span,
                )
            if target.role == "state":
                st = self.c.states[name]
                block = {"optimizer": "step", "group": "group"}.get(st.scope)
                in_method = self.mode == "method" and not self.in_each
                accumulates = st.kind == "total" and self.mode == "each"
                if (
                    st.scope != "parameter"
                    and self.mode != block
                    and not (in_method or accumulates)
                ):
                    self.c.out.error(
                        "E320",
                        f"{st.scope}-level state `{name}` can only be "
                        f"updated in an `update {st.scope}:` block",
                        s.target.span,
                    )
                self._check_condition(st, s.target.span)
                self.assigned_now[name] = s.target.span
            if target.role == "param":
                self.read.add(name)
                self.assigned_now[name] = s.target.span
            return
        if k is None:
            k = Kind.TENSOR
        if k == Kind.BOOL:
            self.c.out.error(
                "E319", "store conditions in inputs, not in update values", s.value.span
            )
        prev = self.env.get(name)
        if prev is not None and isinstance(prev.decl, S.For):
            self.c.out.error(
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
            self.c.out.error(
                "E319",
                f"`{name}` was {_a(prev.kind)}; it cannot become {_a(k)}",
                s.value.span,
                notes=[Note("first assigned here", prev.decl.target.span)],
            )
        sym = Symbol(name, k, "local", dynamic=dyn, varying=var, decl=s)
        self.env[name] = sym
        self.origin[name] = self.mode
        self.defined.setdefault(name, sym)
        self.pending.pop(name, None)


# the paths over lists of tensors
_LISTS = frozenset({"foreach", "fused"})
# a loop those paths run
_RANGE = "loop with `for k in range(n)` over a whole number the hyperparameters decide"

_STATEMENT_WORDS = {
    "MultiAssign": "assigning several names at once",
    "CallStmt": "a call as a statement",
    "Return": "`return`",
}


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


def _implies(cond: S.Expr, required: S.Expr) -> bool:
    """Does a branch condition guarantee that a state's condition holds? (Syntactic, conservative.)"""
    if cond == required:
        return True
    negated = {"<": ">=", "<=": ">", ">": "<=", ">=": "<", "==": "!=", "!=": "=="}
    if (
        isinstance(cond, S.Unary)
        and cond.op == "not"
        and isinstance(cond.operand, S.Compare)
        and len(cond.operand.ops) == 1
    ):
        c = cond.operand
        if S.Compare((negated[c.ops[0]],), c.operands, c.span) == required:
            return True
    if isinstance(cond, S.Binary) and cond.op == "and":
        return _implies(cond.left, required) or _implies(cond.right, required)
    return False
