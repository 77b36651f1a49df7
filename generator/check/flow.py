"""Statements and update blocks: the one walk that checks every update block, in order.

Part of the check stage (language → check → lower → emit). ``Flow`` follows the statements of every
kind of block (``MODES``: `update:`, `update group:`, `update optimizer:`, a `method`, with
fragments and called procedures already inlined by generator.check.checker; `update flat:` and the
procedures it calls, set up by generator.check.flat), one statement form at a time (``_STATEMENTS``):
what is defined where and with which type, read before written, the time subscripts of states, lazy
states given their first value, conditional states used only under their condition, loops
(`repeat`, `for`, `while`, `break`), lists (items of list states updated, local lists made, grown
and their items replaced), `return`, and the paths each construct has a form in. A per-parameter
block's expressions are typed by generator.check.kinds, one type each; a flat block's names hold
unions of types (generator.check.types), and where a form means something else there (Python's
scoping, the step on `param`, procedures called as functions) the walk applies
generator.check.flat_rules. Both type in the language's one lattice (generator.language.types).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from generator.language import syntax as S
from generator.language.diagnostics import Note
from generator.language.spec_printer import print_expr
from generator.language.types import TENSORS, Kind, ListOf
from generator.check.declarations import check_name
from generator.check.kinds import Typer, flat_only
from generator.check.model import Block, NoForm, Symbol, state_type
from generator.check import assignments, flat_rules
from generator.check.lists import STATEMENT_FUNCTIONS, list_statement_form
from generator.check.queries import varies_beyond_rank
from generator.check.types import is_range


class Flow:
    """Follows the update in order: what is defined where, read before written, and the subscripts.

    ``checker`` is the generator.check.checker.Checker whose inputs, states and collector it
    uses; ``env`` the symbols visible at the start (inputs, states, `param`, `grad`)."""

    def __init__(self, checker, env: dict, mode="each", program=None, scope=None):
        self.c = checker
        # a flat mode's program and the scope followed (generator.check.types), whose unions
        # of types flat_rules reads
        self.program, self.scope = program, scope
        self.env = (
            env  # inputs, states, builtins; locals are added as they are assigned
        )
        self.defined: dict[str, Symbol] = {}
        self.read: set[str] = set()
        self.assigned_now: dict[str, S.Span] = {}  # states assigned so far in this step
        self.initialised: set[str] = set()  # lazy states given their first value
        self.conditions: list[S.Expr] = []
        self.pending: dict[str, S.Span] = {}
        self.mode = mode
        self.in_each = False  # inside a method's `for each parameter:`
        self.origin: dict[str, str] = {}  # local → the mode of the block that set it
        self.accumulating: str | None = None  # the total an `update:` statement adds to
        self.loops = 0  # the loops around the statement being followed
        # per-parameter locals that may differ between parameters of one rank (queries.
        # varies_beyond_rank): a loop over a range of one of them has no foreach form
        self.beyond_rank: set[str] = set()

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

    @property
    def rules(self) -> "Mode":
        return MODES[self.mode]

    def body(self, stmts) -> None:
        for s in stmts:
            getattr(self, _STATEMENTS[type(s)])(s)

    def flat_only(self, s) -> None:
        """A statement a per-parameter update has no meaning for (E501)."""
        what = _STATEMENT_WORDS.get(type(s).__name__, "this statement")
        flat_only(self.c.out, what, s.span)
        # the rest is still followed, so that one misplaced statement is one error
        for b in S.sub_blocks(s):
            self.body(b)

    def no_form(self, form: NoForm) -> None:
        """A construct the paths over lists of tensors cannot run (a flat update has none)."""
        if not self.rules.flat:
            self.c.no_form.append(form)

    def break_(self, s: S.Break) -> None:
        if not self.loops:
            self.c.out.error("E504", "`break` outside a loop", s.span)
        else:
            self.no_form(NoForm("`break`", s.span, _LISTS, _RANGE))

    def return_(self, s: S.Return) -> None:
        if self.rules.returns is None:
            self.flat_only(s)
            return
        if self.rules.flat:
            for v in s.values:
                self.kind(v)
        if self.rules.returns != "values" and s.values:
            self.c.out.error(
                "E332",
                self.rules.returns,
                s.values[0].span,
                hint=(
                    "the step returns the closure's first loss, as torch's do"
                    if self.rules.flat
                    else None
                ),
            )

    def multi_assign(self, s: S.MultiAssign) -> None:
        # (a per-parameter block's are unpacked by generator.check.checker.unpacked)
        if self.rules.flat:
            flat_rules.multi_assign(self, s)
        else:
            self.flat_only(s)

    def call_stmt(self, s: S.CallStmt) -> None:
        c = s.call
        if c.func in STATEMENT_FUNCTIONS:
            self.list_call(c)
        elif self.rules.flat:
            flat_rules.procedure_call(self, c)
        elif c.func == "evaluate":
            # (SAM's: the closure again, at the weights the blocks before it have moved)
            if self.mode != "step":
                self.c.out.error(
                    "E337",
                    "`evaluate()` evaluates the closure once for every parameter: it belongs "
                    "in `update optimizer:`",
                    s.span,
                    hint="move the parameters in an `update:` block, then evaluate in an "
                    "`update optimizer:` block after it",
                )
            elif c.args:
                self.c.out.error(
                    "E337",
                    "`evaluate()` takes no arguments: it evaluates the closure at the "
                    "parameters as they are",
                    c.args[0].span,
                    hint="move the parameters in an `update:` block before it",
                )
        else:  # (a per-parameter block's procedure calls are inlined already)
            self.flat_only(s)

    def use(self, s: S.Use) -> None:
        if self.rules.flat:
            self.c.out.error(
                "E506",
                "fragments are for per-parameter updates",
                s.span,
                hint="write the statements here, or as a procedure",
            )
        else:  # (a per-parameter block's fragments are inlined already)
            self.flat_only(s)

    def report_unused(self, also_read=frozenset()) -> None:
        """E402 for each local assigned and never read."""
        for name, sym in self.defined.items():
            if sym.role == "local" and name not in self.read | also_read:
                self.c.out.error(
                    "E402",
                    f"`{name}` is assigned but never used",
                    sym.decl.target.span,
                    hint="remove the assignment, or use the value",
                )

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
        if self.rules.flat:  # (its message may name any value of the update)
            flat_rules.message_names(self, s.message)
            return
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
        if self.rules.flat:  # (Python's scoping)
            return
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
            if self.rules.flat:  # (its variable is still a name, one error is enough)
                flat_rules.loop_variable(self, s)
            self.loop_body(s.body)
            return
        if self.rules.flat:
            for bound in (it.args[0] if it.func == "reversed" else it).args:
                self.kind(bound)
            flat_rules.loop_variable(self, s)
            self.loop_body(s.body)
            return
        dynamic = varying = beyond = False
        for bound in (it.args[0] if it.func == "reversed" else it).args:
            beyond |= varies_beyond_rank(bound, self.env, self.beyond_rank)
            k, dyn, var = self.kind(bound)
            if k not in (Kind.INT, None):
                self.c.out.error(
                    "E323",
                    "the bounds of `for` must be whole numbers",
                    bound.span,
                    hint="e.g. an `int` input, `dim(param)` or `size(param, 0)`",
                )
            dynamic, varying = dynamic or dyn, varying or var
        # (a range that only the rank decides is one range in each of the foreach path's
        # calls, one per rank)
        self.no_form(
            NoForm(
                (
                    "a `for` loop over a range that differs between parameters"
                    if varying
                    else "a `for` loop"
                ),
                s.span,
                _LISTS if varying and beyond else frozenset({"fused"}),
                _RANGE,
            )
        )
        if varying and not beyond and not self.rules.flat:
            self.c.by_rank = True
        if beyond:
            self.beyond_rank.add(s.var.id)
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
        if k == Kind.MASK:
            self.c.out.error(
                "E308",
                "a comparison of tensors is a mask, true or false per element: it cannot be "
                f"the condition of `{keyword}`",
                cond.span,
                hint="a condition is decided by numbers; for an elementwise choice use "
                "where(a > b, x, y)",
            )
        elif k == Kind.TENSOR:
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
        self.no_form(NoForm("`while`", s.span, _LISTS, _RANGE))
        self.loop_body(s.body)

    def kind(self, e, context="update", lists=False):
        """(type, dynamic, varying) of ``e``; a list only where ``lists`` admits one. In a
        flat mode, its names and calls are checked and its type is left to the union typer
        (flat_rules.type_of): (None, False, False)."""
        if self.rules.flat:
            flat_rules.expression(self, e)
            return None, False, False
        t = Typer(self.c, context, self.env, self)
        k = t.any_kind(e) if lists else t.kind(e)
        return k, t.dynamic, t.varying

    def if_(self, s: S.If) -> None:
        if self.rules.flat:  # (Python's scoping)
            for cond, body in s.branches:
                self.kind(cond)
                self.body(body)
            self.body(s.orelse)
            return
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
        beyond = any(
            varies_beyond_rank(cond, before, self.beyond_rank) for cond, _ in s.branches
        )
        if dynamic and item is not None and not beyond:
            # (decided by the rank: one branch in each of the foreach path's calls)
            self.c.by_rank = True
        elif dynamic and item is not None:
            # (the foreach path splits its lists by such a condition; it keeps a list by
            # item, a list of every parameter's, and does not split those)
            self.no_form(
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
        # (a tuple of numbers is one for every parameter: never split)
        lists = {n for n, sym in env.items() if sym.kind == TENSORS}

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
        if self.rules.flat:
            flat_rules.list_call(self, c)
            return
        lst, *value = c.args
        k, _, _ = self.kind(lst, lists=True)
        if isinstance(lst, S.Name) and self.read_only(lst):
            return
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
        if self.rules.flat:
            flat_rules.item_assign(self, s)
            return
        target = S.Index(s.target, s.index, s.target.span)
        self.kind(target)  # (the list and the index read, as any item's are)
        if self.read_only(s.target):
            return
        k, _, _ = self.kind(s.value)
        if k not in (Kind.TENSOR, Kind.SCALAR, Kind.INT, None):
            self.c.out.error(
                "E507",
                f"an item of `{s.target.id}` is a tensor: it takes a tensor or a number",
                s.value.span,
            )

    def read_only(self, name: S.Name) -> bool:
        """An input's items (`betas[k]` of a `tuple of float`) are read, never changed:
        reported where a statement would change them."""
        sym = self.env.get(name.id)
        if sym is None or sym.role != "input":
            return False
        self.c.out.error(
            "E317",
            f"cannot change input `{name.id}`: the update reads its items",
            name.span,
            notes=[Note("declared here", sym.decl.span)],
            hint="copy what changes into a state or a local of its own",
        )
        return True

    def assign(self, s: S.Assign) -> None:
        (flat_rules if self.rules.flat else assignments).assign(self, s)


@dataclass(frozen=True)
class Mode:
    """What a kind of block is, for the one walk that checks them all."""

    # on all the parameters as one vector (LBFGS): a name may hold values of several types (the
    # union generator.check.types infers), a name set in a branch or a loop lives on after it
    # (Python's scoping), `param` changes by a step along a vector, procedures are called as
    # functions, and there are no paths over lists of tensors (foreach, fused) to refuse
    flat: bool
    # what `return` does: None (a per-parameter update has no meaning for it, E501), "values"
    # (a procedure's result), or the message for a value given where it ends the block (E332)
    returns: str | None


_ENDS_STEP = "`return` in a step ends it: it takes no value"
MODES = {
    "each": Mode(False, None),  # `update:`, on each parameter with a gradient
    "random": Mode(False, None),  # `update one random parameter:`
    "group": Mode(False, _ENDS_STEP),
    "step": Mode(False, _ENDS_STEP),  # `update optimizer:`
    "method": Mode(False, None),
    "flat": Mode(True, "`return` in a flat update ends the step: it takes no value"),
    "procedure": Mode(True, "values"),  # a procedure a flat update calls
}

# the paths over lists of tensors
_LISTS = frozenset({"foreach", "fused"})
# a loop those paths run
_RANGE = (
    "loop with `for k in range(n)` over a whole number the hyperparameters and the "
    "parameter's rank (`dim(param)`) decide"
)

# a statement form → the method of Flow that follows it
_STATEMENTS = {
    S.Assign: "assign",
    S.MultiAssign: "multi_assign",
    S.ItemAssign: "item_assign",
    S.CallStmt: "call_stmt",
    S.If: "if_",
    S.Repeat: "repeat",
    S.For: "for_",
    S.While: "while_",
    S.Break: "break_",
    S.Return: "return_",
    S.Check: "check",
    S.Use: "use",
    S.ForEachParameter: "for_each",
}

_STATEMENT_WORDS = {
    "MultiAssign": "assigning several names at once",
    "CallStmt": "a call as a statement",
    "Return": "`return`",
}


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
