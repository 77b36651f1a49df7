"""The Lowerer's statements: assignments, branches, loops and checks of an update block to IR
statements.

An assignment to a state, to an item of a list state or to the parameter becomes in-place
operations on it, chosen by the table of rewrite rules (generator.lower.rules); a counter's becomes
an ir.CountUpdate. Locals are fresh tensors the update owns (then later updates of them are in
place) or other names for existing ones, a list's item included (then they are never mutated); a
local list of tensors is made, grown and has its items replaced, never changed in place; a tuple
assignment arrives as single ones (generator.check.checker.unpacked). A choice inside a tensor expression becomes an ``if`` around the
whole assignment; an ``if`` decided by tensor values also gets its branchless form, which
torch.compile can trace; in a coverage build every branch opens with an ir.Probe.
"""

from __future__ import annotations

from dataclasses import replace

from generator import ir
from generator.lower import checks
from generator.language import syntax as S
from generator.check.model import CheckedSpec
from generator.language.builtins import BUILTINS
from generator.language.diagnostics import GeneratorBug
from generator.language.spec_printer import print_expr
from generator.language.types import Kind, ListOf
from generator.lower.expressions import ExpressionLowerer, names_read, signed_terms
from generator.lower.rules import UPDATE_RULES


class Lowerer(ExpressionLowerer):
    """Lowers an update's statements, one block after another (generator.lower.lowering.lower)."""

    def __init__(self, checked: CheckedSpec, coverage: bool = False):
        super().__init__(checked)
        self.coverage = coverage  # each branch opens with an ir.Probe (optimgen verify)
        self.owned: dict[str, bool] = {}
        self.varying_branches = 0  # depth of per-parameter `if`s being lowered
        # locals that differ between parameters at some assignment: every assignment of them
        # makes a per-parameter value (a list on the foreach path), so that `c <- 1` then
        # `if flag: c <- 1 / t` leaves one kind of value behind (found by a first lowering)
        self.force_varying: frozenset[str] = frozenset()
        self.branch_count = 0
        # tensor locals holding a reduction's result (`mean(g, -1)`: smaller than the
        # parameter): an operand of the parameter's shape cannot be added into them in place
        self.reduced: set[str] = set()

    # -- statements --------------------------------------------------------------------------------------
    def body(self, stmts, later: frozenset) -> list[ir.Stmt]:
        out = []
        for k, s in enumerate(stmts):
            after = later | _reads(stmts[k + 1 :])
            out.extend(_at(x, s.span) for x in self.stmt(s, after, stmts[k + 1 :]))
        return out

    def stmt(self, s, later, rest) -> list[ir.Stmt]:
        if isinstance(s, (S.Assign, S.ItemAssign)):
            # `x <- a * (1 if adam else r) * g`: one statement per case (in a coverage build
            # every choice, so that each way has its probe: a way that never ran in a
            # statement that did is a branch the grid still has to reach)
            split = self._nested_choice(s)
            if split is not None:
                return self.stmt(split, later, rest)
        if isinstance(s, S.If):
            return [self._if(s.branches, s.orelse, later)]
        if isinstance(s, S.Repeat):
            return [ir.Repeat(self.sexpr(s.count), self._loop_body(s.body, later))]
        if isinstance(s, S.For):
            return [self._for(s, later)]
        if isinstance(s, S.While):
            # (its condition reads its names again before every iteration)
            body = self._loop_body(s.body, later | names_read(s.cond))
            return [ir.While(self.sexpr(s.cond), body)]
        if isinstance(s, S.Break):
            return [ir.Break()]
        if isinstance(s, S.ItemAssign):
            if s.target.id not in self.states:  # an item of a local list: replaced
                target = self.tref(s.target.id)
                return [ir.SetItem(target, self.sexpr(s.index), self.texpr(s.value))]
            # an item of a list state: updated in place, by the same rules as a state
            item = S.Index(s.target, s.index, s.target.span)
            return [self._update_persistent(self.texpr(item), item, s.value)]
        if isinstance(s, S.CallStmt) and s.call.func == "evaluate":
            return [ir.Evaluate()]
        if isinstance(s, S.CallStmt):  # append(xs, t), pop_first(xs): a local list's
            target, *value = s.call.args
            if s.call.func == "append":
                return [ir.ListAppend(self.tref(target.id), self.texpr(value[0]))]
            return [ir.ListPopFirst(self.tref(target.id))]
        if isinstance(s, S.ForEachParameter):
            return [ir.ForEachParameter(tuple(self.body(s.body, later)))]
        if isinstance(s, S.Return):
            return [ir.Return()]
        if isinstance(s, S.Check):
            return [
                ir.Raise(
                    checks.negate(self.sexpr(s.expr)),
                    s.message.exception,
                    checks.message(s.message.text),
                )
            ]
        name, _ = self._resolve(s.target)
        b = BUILTINS.get(s.value.func) if isinstance(s.value, S.Call) else None
        if b is not None and b.estimate is not None:
            # (a state of every parameter, made in the optimizer's block by the runtime)
            args = tuple(self.sexpr(a) for a in s.value.args)
            return [ir.Estimate(self.states[name].key, b.estimate, args)]
        if name in self.states:
            st = self.states[name]
            if st.kind in ("count", "flag"):
                return [self._count(st, s.value, name in later)]
            return [self._update_state(st, s)]
        if name == "param":
            return [self._update_persistent(self.tref("param"), "param", s.value)]
        kind = self.kind(s.value)
        if isinstance(kind, ListOf):
            # a local list of tensors: items are replaced, never changed in place
            self.kinds[name] = kind
            self.owned[name] = False
            return [ir.TensorLet(name, self.texpr(s.value), alias=False)]
        if kind == Kind.MASK:
            # a mask: a boolean tensor, read by where(...) and joined by and/or/not, never
            # changed in place (nothing updates a mask's elements)
            self.kinds[name] = Kind.MASK
            self.owned[name] = False
            return [ir.TensorLet(name, self.texpr(s.value), alias=False)]
        if kind != Kind.TENSOR:
            self.kinds[name] = Kind.SCALAR
            # set under a per-parameter condition, a value differs between parameters
            self.varying[name] = (
                self.is_varying(s.value)
                or self.varying_branches > 0
                or name in self.force_varying
            )
            self.data_dependent[name] = self.is_data_dependent(s.value)
            self.static_locals[name] = self.is_static(s.value)
            return [ir.ScalarLet(name, self.sexpr(s.value), self.varying[name])]
        return self._tensor_local(name, s.value, later, rest)

    def _nested_choice(self, s: S.Assign | S.ItemAssign) -> S.If | None:
        """A choice inside a tensor expression (``(1 if adam else r)`` in a product) becomes
        an ``if`` around the whole assignment, once with each alternative, as the top-level
        ``x <- a if c else b`` already is (an item's, top-level too); in a coverage build,
        every choice, numbers' too (the ways each get a probe); None when the value has no
        such choice."""
        kind = self.kind(s.value)
        if not (kind == Kind.TENSOR or isinstance(kind, ListOf)) and not self.coverage:
            return None

        def find(e, top):
            # (a choice of numbers, `(1.0 if fixed_decay else lr)`, stays a number, but in
            # a coverage build, where the choice itself is what is measured)
            if isinstance(e, S.Conditional) and (
                self.coverage or (not top and self.kind(e) == Kind.TENSOR)
            ):
                return e
            for c in S.children(e):
                found = find(c, False)
                if found is not None:
                    return found
            return None

        # the first value of a lazy state (`initially a if c else b`) chooses the same way,
        # its top-level choice included
        initially = getattr(s, "initially", None)
        first = None if initially is None else find(initially, False)
        if first is not None:
            return S.If(
                (
                    (
                        first.cond,
                        (replace(s, initially=_put(s.initially, first, first.then)),),
                    ),
                ),
                (replace(s, initially=_put(s.initially, first, first.orelse)),),
                s.span,
            )
        # (a local's own top-level choice is its `if`, in _tensor_local; a state's or the
        # parameter's is one here, each alternative updating it in place)
        local = isinstance(s, S.Assign) and self._resolve(s.target)[0] not in (
            *self.states,
            "param",
        )
        choice = find(s.value, local)
        if choice is None:
            return None

        then = replace(s, value=_put(s.value, choice, choice.then))
        orelse = replace(s, value=_put(s.value, choice, choice.orelse))
        return S.If(((choice.cond, (then,)),), (orelse,), s.span)

    def _loop_body(self, stmts, later) -> tuple[ir.Stmt, ...]:
        """A loop's body: what is private at the top of an iteration must still be at its end;
        after the loop, what was private before it and still is (it may run no iteration).
        """
        inner = later | _reads(stmts)
        before = dict(self.owned)
        for _ in range(3):
            start = dict(self.owned)
            body = self.body(stmts, inner)
            lost = {k for k, v in start.items() if v and not self.owned.get(k, False)}
            if not lost:
                break
            self.owned = {k: v and k not in lost for k, v in start.items()}
        self.owned = {k: v and before.get(k, True) for k, v in self.owned.items()}
        return tuple(body)

    def _for(self, s: S.For, later) -> ir.ForRange:
        it = s.iterable
        reverse = it.func == "reversed"
        bounds = (it.args[0] if reverse else it).args
        start, stop = (None, bounds[0]) if len(bounds) == 1 else bounds
        var = s.var.id
        # the loop's variable: a whole number, per parameter where a bound is
        self.kinds[var] = Kind.SCALAR
        self.varying[var] = any(self.is_varying(b) for b in bounds)
        self.data_dependent[var] = any(self.is_data_dependent(b) for b in bounds)
        self.static_locals[var] = False
        return ir.ForRange(
            var,
            None if start is None else self.sexpr(start),
            self.sexpr(stop),
            reverse,
            self._loop_body(s.body, later),
        )

    def _if(self, branches, orelse, later) -> ir.If:
        (cond, body), more = branches[0], branches[1:]
        before = set(self.kinds)
        per_parameter = self.is_varying(cond)
        self.varying_branches += per_parameter
        saved, reduced = dict(self.owned), set(self.reduced)
        then = self.body(body, later)
        owned_then, reduced_then = self.owned, self.reduced
        self.owned, self.reduced = dict(saved), set(reduced)
        other = [self._if(more, orelse, later)] if more else self.body(orelse, later)
        self.reduced |= reduced_then  # smaller after the `if` where it may be
        self.varying_branches -= per_parameter
        # Owned after the `if` only where every branch left it owned.
        self.owned = {k: v and owned_then.get(k, False) for k, v in self.owned.items()}
        # A scalar that varies per parameter in one branch is a per-parameter value in all.
        varying = {s.name for s in ir.scalar_lets(then + other) if s.varying}
        for name in varying:
            self.varying[name] = True
        then, other = _mark_varying(then, varying), _mark_varying(other, varying)
        if self.coverage:
            then = [_probe(cond, "then", body)] + then
            if not more:
                other = [_probe(cond, "else", orelse)] + other
        test = self.sexpr(cond)
        traced = (
            self._branchless(test, then, other, before)
            if per_parameter and self.is_data_dependent(cond)
            else None
        )
        return ir.If(test, tuple(then), tuple(other), per_parameter, traced)

    def _branchless(self, cond, then, orelse, before) -> tuple[ir.Stmt, ...] | None:
        """The `if` as torch.compile can trace it: each branch on copies of what it changes,
        then ``torch.where(condition, then, else)`` per value. None where a branch does more
        than compute values and update tensors in place (counters, loops, nested branches).
        """
        simple = (ir.ScalarLet, ir.TensorLet, ir.InPlace)
        if not all(isinstance(s, simple) for s in then + orelse):
            return None
        self.branch_count += 1
        test = f"taken{self.branch_count}_"
        out: list[ir.Stmt] = [ir.ScalarLet(test, cond, True)]
        renamed = []
        for tag, stmts in (("then", then), ("else", orelse)):
            names: dict[str, str] = {}
            for s in stmts:
                s = ir.rename(s, names)
                if isinstance(s, ir.InPlace) and s.target.name not in names.values():
                    # the branch's first change of a tensor it did not make: on a copy
                    original = s.target.name
                    copy = f"{original}_{tag}_"
                    out.append(ir.TensorLet(copy, ir.TOp("clone", (s.target,)), False))
                    names[original] = copy
                    s = ir.InPlace(ir.TRef(copy, "local"), s.ops)
                elif isinstance(s, (ir.TensorLet, ir.ScalarLet)):
                    names[s.name] = f"{s.name}_{tag}_"
                    s = replace(s, name=names[s.name])
                out.append(s)
            renamed.append(names)
        then_names, else_names = renamed
        kinds = {}
        for s in then + orelse:
            if isinstance(s, ir.InPlace):
                kinds[s.target.name] = s.target
            elif isinstance(s, ir.TensorLet):
                kinds[s.name] = Kind.TENSOR
            elif isinstance(s, ir.ScalarLet):
                kinds[s.name] = Kind.SCALAR
        for name, kind in kinds.items():
            both = name in then_names and name in else_names
            if not both and isinstance(kind, str) and name not in before:
                continue  # set in one branch only: not read after the `if`
            a, b = then_names.get(name, name), else_names.get(name, name)
            if kind == Kind.SCALAR:
                pick = ir.SCall(
                    "where", (ir.SRef(test, True), ir.SRef(a, True), ir.SRef(b, True))
                )
                out.append(ir.ScalarLet(name, pick, True))
                continue
            ta = ir.TRef(a, "local") if a != name or kind == Kind.TENSOR else kind
            tb = ir.TRef(b, "local") if b != name or kind == Kind.TENSOR else kind
            pick = ir.TOp("where", (ir.SRef(test, True), ta, tb))
            if kind == Kind.TENSOR:
                out.append(ir.TensorLet(name, pick, False))
            else:
                out.append(ir.InPlace(kind, (ir.TOp("copy", (pick,)),)))
        return tuple(out)

    def _count(self, st: S.State, value: S.Expr, read_after: bool) -> ir.CountUpdate:
        terms = signed_terms(value)
        me = lambda e: isinstance(e, S.Name) and self._resolve(e)[0] == st.name.id
        if len(terms) == 2 and me(terms[0][1]) and terms[0][0] == 1:
            sign, v = terms[1]
            val = self.sexpr(v) if sign > 0 else ir.SUnary("-", self.sexpr(v))
            return ir.CountUpdate(st.key, "+=", val, st.scope, read_after)
        if isinstance(value, S.Binary) and value.op == "*" and me(value.left):
            return ir.CountUpdate(
                st.key, "*=", self.sexpr(value.right), st.scope, read_after
            )
        return ir.CountUpdate(st.key, "fill", self.sexpr(value), st.scope, read_after)

    def _update_state(self, st: S.State, s: S.Assign) -> ir.Stmt:
        target = self.tref(st.name.id)
        # (a later assignment, without `initially`, updates a state made earlier this step)
        if st.lazy and s.initially is not None:
            first = self.texpr(s.initially)
            if isinstance(s.value, S.Name) and self._resolve(s.value)[0] == st.name.id:
                # `x0 <- x0 initially param`: kept from its first value on, nothing to do later
                return ir.LazyInit(st.key, first, ())
            update = self._update_persistent(target, st.name.id, s.value)
            return ir.LazyInit(st.key, first, (update,))
        return self._update_persistent(target, st.name.id, s.value)

    def _update_persistent(
        self, target: ir.TRef, name: str | S.Index, value: S.Expr
    ) -> ir.InPlace:
        for rule in UPDATE_RULES:
            ops = rule(self, name, value)
            if ops is not None:
                return ir.InPlace(target, tuple(ops))
        raise GeneratorBug("no update rule matched")  # the last rule always matches

    def _tensor_local(self, name, value, later, rest) -> list[ir.Stmt]:
        self.kinds[name] = Kind.TENSOR
        if not isinstance(value, S.Conditional) and (
            isinstance(value, (S.Name, S.Index))
            or (isinstance(value, S.Call) and value.func in VIEWS)
        ):
            # (another name for a value, or a view of one: of that value's shape)
            other = self._reduced(value)
            (self.reduced.add if other else self.reduced.discard)(name)
        if isinstance(value, S.Conditional):
            # (a choice by the hyperparameters, a counter or the parameter's shape: an `if`
            # around the assignment, as a branch of any of these is)
            cond = value.cond
            a = S.Assign(S.Name(name, None, value.span), value.then, None, value.span)
            b = S.Assign(S.Name(name, None, value.span), value.orelse, None, value.span)
            return [self._if(((cond, (a,)),), (b,), later)]
        if isinstance(value, S.Name):
            src, _ = self._resolve(value)
            if (
                src in self.owned
            ):  # the source now has two names: neither may be mutated
                self.owned[src] = False
            hazard = _mutated_while_read(src, name, rest)
            self.owned[name] = False
            if hazard:
                self.owned[name] = True
                return [
                    ir.TensorLet(name, ir.TOp("clone", (self.tref(src),)), alias=False)
                ]
            return [ir.TensorLet(name, self.tref(src), alias=True)]
        if isinstance(value, S.Index):
            # another name for an item of a list: never mutated through it, and a copy where
            # the list's item changes in place while this name is still read
            hazard = _mutated_while_read(self._resolve(value.value)[0], name, rest)
            self.owned[name] = hazard
            if hazard:
                clone = ir.TOp("clone", (self.texpr(value),))
                return [ir.TensorLet(name, clone, alias=False)]
            return [ir.TensorLet(name, self.texpr(value), alias=True)]
        if isinstance(value, S.Call) and value.func in VIEWS:
            # A view shares its source's memory; bfloat16() of a bfloat16 tensor is the tensor.
            src = value.args[0]
            same = isinstance(src, S.Name) and self._resolve(src)[0] == name
            # (a view of a value computed here, no other name's, is this name's alone)
            private = (same and self.owned.get(name, False)) or not isinstance(
                src, (S.Name, S.Index)
            )
            if isinstance(src, S.Name) and not same:
                self.owned[self._resolve(src)[0]] = False
            self.owned[name] = private
            return [ir.TensorLet(name, self.texpr(value), alias=False)]
        reduced = self._reduced(value)
        # (in place on a value of another shape than the parameter's only where nothing else
        # of a shape is read: `r <- r + mean(g, 1)` broadcasts r of (1, n) to (m, n))
        if self.owned.get(name) and (
            name not in self.reduced
            or not self._reads_tensors(value, name)
            # (written into the local's own buffer through `out=`, it widens nothing)
            or _writes_out(value)
        ):
            # The local's buffer is private: update it in place, like a state, where a rule
            # says how; otherwise the name is bound to the new result.
            for rule in UPDATE_RULES[:-1]:
                ops = rule(self, name, value)
                if ops is not None:
                    return [ir.InPlace(ir.TRef(name, "local"), tuple(ops))]
        expr = self.texpr(value)
        self.owned[name] = True
        if reduced:
            self.reduced.add(name)
        else:
            self.reduced.discard(name)
        return [ir.TensorLet(name, expr, alias=False)]

    def _reads_tensors(self, e: S.Expr, name: str) -> bool:
        """Whether ``e`` reads a tensor (or a list of them) other than the local ``name``."""
        for n in names_read(e) - {name}:
            st = self.states.get(n)
            if (
                n in ("param", "grad")
                or (st is not None and st.kind == "tensor")
                or self.kinds.get(n, Kind.SCALAR) not in (Kind.SCALAR, Kind.INT)
            ):
                return True
        return False

    def _reduced(self, e: S.Expr) -> bool:
        """Whether a tensor value may have another shape than the parameter's (smaller, as a
        reduction's; its own, as a matrix function's or a per-dimension list item's): such a
        call, a local or state holding one, or arithmetic on those and numbers only."""
        if isinstance(e, S.Call) and e.func in OTHER_SHAPES:
            return True
        if isinstance(e, S.Binary) and e.op == "@":
            # (a product is taken as the parameter's shape where the shape checker let it
            # through: CAME's and Adafactor's factored estimate, a column times a row)
            return False
        if isinstance(e, S.Index):
            # (an item of a list state `[0] * n`: shaped like the parameter; of a list made
            # for each dimension, of its own shape)
            st = self.states.get(self._resolve(e.value)[0])
            return st is not None and st.per_dimension is not None
        if isinstance(e, S.Name):
            name, _ = self._resolve(e)
            st = self.states.get(name)
            if st is not None and (st.shaped is not None or st.reduced is not None):
                return True
            return name in self.reduced or self.kind(e) != Kind.TENSOR
        if self.kind(e) != Kind.TENSOR:
            return True
        parts = S.children(e)
        return bool(parts) and all(self._reduced(c) for c in parts)


# Calls whose result may have another shape than their tensor arguments' (a reduction, a
# matrix's transpose or root, an unfolding): the table's functions on tensors that are neither
# elementwise nor keep their argument's shape.
OTHER_SHAPES = frozenset(
    b.name
    for b in BUILTINS.values()
    if b.result == Kind.TENSOR and not b.elementwise and not b.keeps_shape
)


def _writes_out(e: S.Expr) -> bool:
    """A call of a function that writes its first argument through `out=` (put_block)."""
    b = BUILTINS.get(e.func) if isinstance(e, S.Call) else None
    return b is not None and b.tensor is not None and b.tensor.out


# Calls whose result may share memory with their argument (the table's `view` entries).
VIEWS = tuple(
    b.name for b in BUILTINS.values() if b.tensor is not None and b.tensor.view
)


def _put(e: S.Expr, choice: S.Expr, with_: S.Expr) -> S.Expr:
    """``e`` with the sub-expression ``choice`` (by identity) replaced by ``with_``."""
    if e is choice:
        return with_
    if isinstance(e, S.Binary):
        return replace(
            e, left=_put(e.left, choice, with_), right=_put(e.right, choice, with_)
        )
    if isinstance(e, S.Unary):
        return replace(e, operand=_put(e.operand, choice, with_))
    if isinstance(e, S.Call):
        return replace(e, args=tuple(_put(a, choice, with_) for a in e.args))
    if isinstance(e, S.Conditional):
        return replace(
            e,
            cond=_put(e.cond, choice, with_),
            then=_put(e.then, choice, with_),
            orelse=_put(e.orelse, choice, with_),
        )
    if isinstance(e, S.Compare):
        return replace(e, operands=tuple(_put(x, choice, with_) for x in e.operands))
    if isinstance(e, (S.List, S.Tuple)):
        return replace(e, items=tuple(_put(x, choice, with_) for x in e.items))
    if isinstance(e, S.Index):
        return replace(
            e, value=_put(e.value, choice, with_), index=_put(e.index, choice, with_)
        )
    return e


def _at(s: ir.Stmt, span) -> ir.Stmt:
    """The statement, with the span of the spec statement it was lowered from (a nested one
    keeps its own)."""
    if getattr(s, "span", span) is None:
        return replace(s, span=span)
    return s


def _probe(cond: S.Expr, way: str, body) -> ir.Probe:
    span = cond.span
    lines: dict[str, None] = {}

    def visit(stmts):
        for s in stmts:
            lines[f"{s.span.path}:{s.span.line}"] = None
            if isinstance(s, S.If):
                for c, b in s.branches:
                    visit(b)
                visit(s.orelse)
            elif isinstance(s, (S.Repeat, S.ForEachParameter, S.For, S.While)):
                visit(s.body)

    visit(body)
    return ir.Probe(
        f"{span.path}:{span.line}:{span.column} {way}", print_expr(cond), tuple(lines)
    )


def _mark_varying(stmts, names: set) -> list:
    out = []
    for s in stmts:
        if isinstance(s, ir.ScalarLet) and s.name in names and not s.varying:
            s = ir.ScalarLet(s.name, s.value, True)
        elif isinstance(s, ir.If):
            s = replace(
                s,
                then=tuple(_mark_varying(s.then, names)),
                orelse=tuple(_mark_varying(s.orelse, names)),
            )
        out.append(s)
    return out


def _reads(stmts) -> frozenset:
    out = set()
    for s in stmts:
        if isinstance(s, S.Assign):
            out |= names_read(s.value)
            if s.initially is not None:
                out |= names_read(s.initially)
        elif isinstance(s, S.If):
            for c, b in s.branches:
                out |= names_read(c) | _reads(b)
            out |= _reads(s.orelse)
        elif isinstance(s, S.Repeat):
            out |= names_read(s.count) | _reads(s.body)
        elif isinstance(s, S.For):
            out |= names_read(s.iterable) | _reads(s.body)
        elif isinstance(s, S.While):
            out |= names_read(s.cond) | _reads(s.body)
        elif isinstance(s, S.ItemAssign):  # (its list too: an item updated in place)
            out |= names_read(s.value) | names_read(s.index) | {s.target.id}
        elif isinstance(s, S.CallStmt):
            out |= names_read(s.call)
    return frozenset(out)


def _flat(stmts):
    """The assignments, in the order they run (an item's assignment changes its list)."""
    for s in stmts:
        if isinstance(s, (S.Assign, S.ItemAssign)):
            yield s
        elif isinstance(s, S.If):
            for _, b in s.branches:
                yield from _flat(b)
            yield from _flat(s.orelse)
        elif isinstance(
            s, (S.Repeat, S.For, S.While)
        ):  # twice: a later iteration reads what an earlier wrote
            yield from _flat(s.body)
            yield from _flat(s.body)


def _mutated_while_read(src: str, alias: str, rest) -> bool:
    """Is ``src`` updated in place while ``alias`` (another name for it) is still read afterwards?"""
    flat = list(_flat(rest))
    for k, s in enumerate(flat):
        if s.target.id == alias:
            return False  # the alias is rebound first
        if s.target.id == src:
            return any(alias in names_read(x.value) for x in flat[k:])
    return False
