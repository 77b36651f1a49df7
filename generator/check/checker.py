"""Checking: everything that can be wrong with a parsed spec, reported at once, before any code exists.

The check stage of the pipeline (language → check → lower → emit) starts here: ``check`` turns a
``Spec`` from generator.language into a ``CheckedSpec`` (generator.check.model): fragments inlined,
every name resolved to a ``Symbol`` of a known kind, or located diagnostics. ``Checker`` walks the
spec in order and holds what the steps share: the declarations (each entry checked by
generator.check.declarations, the cross-entry rules here: duplicates, keyword-only order,
`defaults`), the requirements and state initial values (typed by generator.check.kinds), the update
(fragments and called procedures inlined, generator.check.procedures, and spellings made canonical
here, the data flow followed by generator.check.flow, which also follows `update flat:` and the
procedures it calls once generator.check.flat has set them up) and the methods; then the whole-spec rules (unused inputs, a construct a
declared path has no form for: E335, generator.check.queries). generator.lower.lowering trusts what
passes; anything it cannot lower is a GeneratorBug.
"""

from __future__ import annotations

from dataclasses import replace

from generator.language import syntax as S
from generator.language.builtins import BUILTINS
from generator.language.diagnostics import Collector, Note, did_you_mean
from generator.language.names import BUILTIN_TENSORS, IMPLEMENTATION_FLAGS
from generator.language.types import Kind, ListOf, union
from generator.check.declarations import (
    OPTIMIZER_ATTRIBUTES,
    check_input,
    check_name,
    check_state,
)
from generator.check.flat import check_flat
from generator.check.shapes import check_shapes
from generator.check.procedures import (
    call_of,
    check_called,
    check_declarations,
    inline_call,
)
from generator.check.flow import Flow
from generator.check.lists import STATEMENT_FUNCTIONS
from generator.check.kinds import Typer
from generator.check.lets import expand_lets
from generator.check.modifiers import apply_modifiers
from generator.check.model import Block, CheckedSpec, NoForm, Symbol, state_type
from generator.check.queries import (
    check_shapes_of_complex,
    is_param,
    is_grad,
    mentions_name,
    varies_beyond_rank,
)

__all__ = ["check", "check_fragment"]


class Checker:
    """One spec's check, step by step (``check`` calls them in order): the names it declares,
    the inputs its requirements and update use, the blocks and methods it ends with."""

    def __init__(self, spec: S.Spec, fragments: dict[str, S.Spec], out: Collector):
        self.spec = spec
        self.fragments = fragments
        self.out = out
        self.inputs: dict[str, Symbol] = {}
        self.states: dict[str, S.State] = {}
        self.used: set[str] = set()
        self.locals: dict[str, Symbol] = {}
        self.procedures = {p.name.id: p for p in spec.procedures}
        self.called: set[str] = set()  # the procedures the per-parameter blocks call
        # the functions of generator.runtime the blocks call (no value may take their names)
        self.runtime_called: set[str] = set()
        self.failed_calls: set[S.Call] = set()  # calls whose inlining was refused
        self.passed: set[str] = set()  # names passed to a procedure that ignores them
        self.program = None  # generator.check.flat.Program, for an `update flat:` spec
        # statements of the per-parameter language that the foreach or fused path cannot
        # run (`while`, `break`, a loop over a per-parameter range): what each is, where,
        # and the paths ("foreach", "fused") it has no form in
        self.no_form: list[NoForm] = []
        self.by_rank = False  # (CheckedSpec.by_rank)

    # -- declarations --
    def declarations(self) -> None:
        seen: dict[str, S.Span] = {}
        args: dict[str, S.Span] = {}

        def declare(name: S.Name, what: str):
            if name.id in seen:
                self.out.error(
                    "E207",
                    f"`{name.id}` is declared twice",
                    name.span,
                    notes=[Note("first declared here", seen[name.id])],
                )
            seen.setdefault(name.id, name.span)

        keyword_seen = None
        for inp in self.spec.inputs:
            check_input(inp, self.out)
            for n in inp.names:
                declare(n, "input")
            if inp.arg_name in args and len(inp.names) == 1 and inp.torch_name:
                self.out.error(
                    "E207",
                    f"argument `{inp.arg_name}` is declared twice",
                    inp.span,
                    notes=[Note("first declared here", args[inp.arg_name])],
                )
            args.setdefault(inp.arg_name, inp.span)
            if inp.keyword:
                keyword_seen = inp
            elif keyword_seen is not None and not inp.fixed:
                self.out.error(
                    "E208",
                    f"positional input `{inp.arg_name}` after keyword-only "
                    f"`{keyword_seen.arg_name}`",
                    inp.span,
                    hint="move it above the keyword-only inputs, as torch orders them",
                )
            for k, n in enumerate(inp.names):
                names = inp.type.names
                # a tuple with fewer types than names was refused above (E203); the
                # names past its end still get a symbol, so their uses are not reported too
                t = (
                    names[min(k, len(names) - 1)]
                    if inp.type.kind == "tuple"
                    else names[0]
                )
                t = t.split("|")[0]
                kind = {
                    "bool": Kind.BOOL,
                    "int": Kind.INT,
                    "float": Kind.SCALAR,
                    "tensor": Kind.SCALAR,
                    "str": Kind.STR,
                    "dtype": Kind.DTYPE,
                }.get(t, Kind.SCALAR)
                if inp.type.kind == "union" and "float" in names:
                    kind = Kind.SCALAR
                if inp.type.kind == "sequence":  # (betas[k], len(betas))
                    kind = ListOf(union(kind))
                self.inputs[n.id] = Symbol(
                    n.id, kind, "input", decl=inp, optional=any(inp.type.optional)
                )
        has_foreach = any(i.arg_name == "foreach" for i in self.spec.inputs)
        for st in self.spec.states:
            check_state(st, self.out)
            self.state_dtype(st)
            declare(st.name, "state")
            self.states[st.name.id] = st
            if st.lazy and self.spec.sparse:
                self.out.error(
                    "E325",
                    "with `sparse gradients`, a state starts from a number, not `lazy`",
                    st.span,
                )
            if st.as_number and has_foreach:
                self.out.error(
                    "E206",
                    "an `as number` counter cannot be kept by the foreach path",
                    st.span,
                    hint="keep the counter a tensor (drop `as number`), or drop the "
                    "`foreach` input",
                )
        keys: dict[str, S.Span] = {}
        for st in self.spec.states:
            if st.scope == "parameter" and st.key in keys:
                self.out.error(
                    "E207",
                    f"state key `{st.key}` is used twice",
                    st.span,
                    notes=[Note("first used here", keys[st.key])],
                )
            keys.setdefault(st.key, st.span)
        order = self.spec.defaults_order
        if order is not None:
            names = [i.arg_name for i in self.spec.inputs]
            if sorted(order.names) != sorted(names):
                missing = sorted(set(names) - set(order.names))
                extra = sorted(set(order.names) - set(names))
                self.out.error(
                    "E209",
                    "`defaults` must list every argument once"
                    + (f"; missing {', '.join(missing)}" if missing else "")
                    + (f"; not arguments: {', '.join(extra)}" if extra else ""),
                    order.span,
                )
        for name in BUILTIN_TENSORS:
            if name in seen:
                self.out.error(
                    "E201",
                    f"`{name}` is built in (the parameter and its gradient)",
                    seen[name],
                )

    # -- validation expressions (constructor) --
    def validations(self) -> None:
        for v in self.spec.validations:
            kind = self.expr(v.expr, context="validation")
            if kind not in (Kind.BOOL, None):
                self.out.error(
                    "E301",
                    "a requirement must be a condition (true or false)",
                    v.expr.span,
                    hint="compare it, e.g. `lr >= 0`",
                )
            msg = v.message
            if msg is not None:
                self.check_message(msg, on_param=mentions_name(v.expr, "param"))
        for st in self.spec.states:
            if st.column_major is not None:
                self.column_major(st)
            if st.condition is not None and self.expr(
                st.condition, "state_condition"
            ) not in (Kind.BOOL, None):
                self.out.error(
                    "E301",
                    "a state condition must be decided by hyperparameters or the "
                    "parameter's shape",
                    st.condition.span,
                )
            if st.repeated is not None and not self.flat:
                self.list_state(st, *st.repeated)
                continue
            if st.shaped is not None and not self.flat:
                self.shaped_state(st, *st.shaped)
                continue
            if st.per_dimension is not None and not self.flat:
                self.per_dimension_state(st, *st.per_dimension)
                continue
            if is_grad(st.init) and st.kind == "tensor" and self.spec.sparse:
                self.out.error(
                    "E206",
                    "a state that starts as a copy of the gradient cannot have sparse "
                    "gradients (it would be a sparse tensor)",
                    st.init.span,
                )
            if (is_param(st.init) or is_grad(st.init)) and st.kind == "tensor":
                continue  # a copy of the parameter (the gradient) when the state is made
            if st.init is not None and not self.flat:
                kind = self.expr(st.init, "state")
                if kind == Kind.TENSOR:
                    self.out.error(
                        "E303",
                        "a state's initial value is a number, `param` (a copy of the "
                        "parameter), a tensor of its own shape (`eps * eye(n)`, "
                        "`zeros(n, m)`) or `lazy`",
                        st.init.span,
                        hint="for a first value taken from the update, declare the "
                        "state `lazy` and assign it with `initially`",
                    )

        for inp in self.spec.inputs:
            if inp.none_means is None:
                continue
            if not inp.type.optional[0] or len(inp.names) > 1:
                self.out.error(
                    "E204",
                    "`none means` is for an optional input (`int?`, `float?`)",
                    inp.none_means.span,
                )
            elif self.expr(inp.none_means, context="validation") not in (
                Kind.INT,
                Kind.SCALAR,
                None,
            ):
                self.out.error(
                    "E301",
                    "`none means` gives a number computed from other inputs",
                    inp.none_means.span,
                )

    def column_major(self, st: S.State) -> None:
        """``, column major``: a matrix stored column by column, for a state made of
        two-dimensional matrices only (E206 elsewhere)."""
        made = st.per_dimension[0] if st.per_dimension is not None else st.init
        shaped = S.shaped(made) if made is not None else None
        if shaped is None or (shaped[0].func != "eye" and len(shaped[0].args) != 2):
            self.out.error(
                "E206",
                "`column major` stores matrices: it is for a state made of two-dimensional "
                "ones (`eye(n)`, `zeros(n, m)`, or a list of them made for each dimension)",
                st.column_major,
            )

    def per_dimension_state(
        self, st: S.State, item: S.Expr, var: S.Name, count: S.Expr
    ) -> None:
        """``state P <- [eps * eye(size(param, k)) for k in range(dim(param))]``: a list of
        tensors of each parameter, one for each k, each of its own shape (Shampoo's
        preconditioners, one per dimension); k counts to a whole number the inputs and the
        parameter's shape decide."""
        if self.expr(count, "state_condition") not in (Kind.INT, None):
            self.out.error(
                "E303",
                "a list is made for each k of `range(n)`, n a whole number: an `int` "
                "input or `dim(param)`",
                count.span,
            )
        shaped = S.shaped(item)
        if shaped is None:
            self.out.error(
                "E303",
                "each item is a tensor of its own shape, made by a constructor: "
                f"`[eps * eye(size(param, {var.id})) for {var.id} in range(dim(param))]`",
                item.span,
                hint="a list of tensors shaped like the parameter is `[0] * n`",
            )
            return
        check_name(var, "a loop variable", self.out)
        env = dict(self.inputs)
        env[var.id] = Symbol(var.id, Kind.INT, "local")
        self.shaped_state(st, *shaped, env=env)
        # (the foreach path keeps a list state by item, the k-th tensor of every parameter in
        # one list: a parameter of another rank has another number of them, so it runs once
        # for each rank; a length read off the parameter's sizes has no such split)
        if varies_beyond_rank(count, {}):
            self.no_form.append(
                NoForm(
                    "a list whose length differs between parameters",
                    count.span,
                    frozenset({"foreach"}),
                )
            )
        elif mentions_name(count, "param"):
            self.by_rank = True

    def shaped_state(
        self, st: S.State, call: S.Call, factor: S.Expr | None, env=None
    ) -> None:
        """``state L <- eps * eye(size(param, 0))``: a tensor of each parameter of its own
        shape, made when the state is; its dimensions are whole numbers the inputs and the
        parameter's shape decide, its value a number of the inputs."""
        if self.refused_options(
            st,
            "a list made for each k" if env is not None else "a state of its own shape",
            f"it is a tensor of each parameter: `state {st.name.id} <- eps * eye(size(param, 0))`",
            # (a list made for each k keeps its tensors in the parameter's dtype, as a list
            # state does, and exists for every parameter)
            lists=env is not None,
        ):
            return
        b = BUILTINS[call.func]
        least = len(b.params) - b.optional
        if not least <= len(call.args) <= len(b.params):
            self.out.error(
                "E311",
                f"`{call.func}` takes {least}"
                + (f" to {len(b.params)}" if b.optional else "")
                + (" dimension" if Kind.TENSOR not in b.params else " argument")
                + f"{'s' if len(b.params) > 1 else ''}, got {len(call.args)}",
                call.span,
            )
            return
        for d, want in zip(call.args, b.params):
            if want == Kind.TENSOR:
                # (`zeros_along(param, k)`: a shape read off the parameter, made with it)
                if not (isinstance(d, S.Name) and d.id == "param"):
                    self.out.error(
                        "E303",
                        f"`{call.func}` is made of the parameter: its first argument is "
                        "`param`",
                        d.span,
                    )
                continue
            if want == Kind.BOOL:
                # (`identity_factor(param, k, dense)`: which form, decided per dimension)
                if self.expr(d, "state_condition", env) not in (Kind.BOOL, None):
                    self.out.error(
                        "E303",
                        f"`{call.func}` decides by a condition here (true or false)",
                        d.span,
                    )
                continue
            if self.expr(d, "state_condition", env) not in (Kind.INT, None):
                self.out.error(
                    "E303",
                    "a dimension is a whole number: an `int` input, `size(param, k)` or "
                    "`dim(param)`",
                    d.span,
                )
        # (a number of the inputs and of the parameter's shape, `s^(1 / dim(param))`; the
        # gradient is refused with the state's own message)
        shape_read = factor is not None and not mentions_name(factor, "grad")
        context = "state_condition" if shape_read else "state"
        if factor is not None and self.expr(factor, context, env) not in (
            Kind.SCALAR,
            Kind.INT,
            None,
        ):
            self.out.error(
                "E303",
                "a state's first value is a number times the constructor",
                factor.span,
            )
        # (a fused kernel runs on the parameter's elements: one shape for every tensor; a
        # state of a fixed shape, AdaNorm's one-element norm, is the same tensor for each)
        if not all(isinstance(a, S.Number) for a in call.args):
            self.no_form.append(
                NoForm("a state of its own shape", st.init.span, frozenset({"fused"}))
            )

    def state_dtype(self, st: S.State) -> None:
        """``, dtype NAME``: a parameter's tensor state (or list of them) made in the dtype a
        `dtype` input holds, which no storage dtype (`stored as`) overrides."""
        if st.dtype is None:
            return
        where = st.dtype_span or st.span
        inp = self.inputs.get(st.dtype)
        if st.kind != "tensor" or st.scope != "parameter":
            self.out.error(
                "E206",
                "`dtype` sets the dtype of a parameter's tensor state, not of a counter or "
                "a group's value",
                where,
            )
        elif st.stored_as is not None:
            self.out.error(
                "E206",
                "a state has one dtype: `stored as` or `dtype`, not both",
                where,
                hint="drop one of them",
            )
        elif inp is not None and inp.kind == Kind.DTYPE:
            self.used.add(st.dtype)
        else:
            dtypes = [n for n, s in self.inputs.items() if s.kind == Kind.DTYPE]
            self.out.error(
                "E206",
                f"`dtype {st.dtype}`: not an input of type `dtype`",
                where,
                hint=(
                    "one of " + ", ".join(f"`{n}`" for n in dtypes)
                    if dtypes
                    else f"declare it: `input {st.dtype}: dtype? = none`"
                ),
            )

    def refused_options(self, st: S.State, what: str, hint: str, lists: bool) -> bool:
        """E206 at the first declaration option a state of ``what`` kind cannot have (with
        ``lists``, a list's: no condition, no storage dtype of its own); whether there was one.
        """
        problems = [
            (st.scope != "parameter" or st.kind != "tensor", "a count, flag or total"),
            (lists and st.condition is not None, "a condition"),
            (st.eager, "`eager`"),
            (st.reduced is not None, "`reduced over`"),
            (lists and st.stored_as is not None, "`stored as`"),
            # (a sparse gradient's rows update a state by addition: one tensor's rows)
            (self.spec.sparse, "`sparse gradients`"),
        ]
        for bad, option in problems:
            if bad:
                self.out.error(
                    "E206", f"{what} cannot have {option}", st.span, hint=hint
                )
                return True
        return False

    def list_state(self, st: S.State, item: S.Expr, count: S.Expr) -> None:
        """``state bufs <- [0] * n``: n tensors of each parameter, each made as a state with
        the item as first value is; n is a whole number the inputs decide."""
        if self.refused_options(
            st,
            "a list state",
            "a list state holds tensors shaped like the parameter: "
            f"`state {st.name.id} <- [0] * n`",
            lists=True,
        ):
            return
        if not is_param(item) and self.expr(item, "state") not in (
            Kind.SCALAR,
            Kind.INT,
            None,
        ):
            self.out.error(
                "E303",
                "each item of a list state starts as a number or `param` (a copy of the "
                "parameter)",
                item.span,
            )
        if self.expr(count, "state") not in (Kind.INT, None):
            self.out.error(
                "E303",
                "the length of a list state is a whole number the inputs decide",
                count.span,
                hint="an `int` input, or arithmetic on them: `[0] * n`",
            )
        # (the foreach path keeps it by item: `device_momentum_buffers[k]`, a list of the
        # k-th tensor of every parameter; a fused kernel takes one tensor per argument)
        self.no_form.append(NoForm("a list state", st.span, frozenset({"fused"})))

    def check_message(self, msg: S.Message, on_param: bool = False) -> None:
        """The placeholders name inputs; the exception is one a check may raise."""
        if msg.exception not in ("ValueError", "RuntimeError", "TypeError"):
            self.out.error(
                "E302",
                f"`{msg.exception}` is not an exception a check may raise",
                msg.span,
                hint="use ValueError, RuntimeError or TypeError",
            )
        for ref, placeholder in S.message_parts(msg.text):
            if not placeholder:
                continue
            if on_param and ref == "size(param)":
                continue
            if ref not in self.inputs:
                self.out.error(
                    "E304",
                    f"`{{{ref}}}` in the message is not an input",
                    msg.span,
                    hint=did_you_mean(ref, self.inputs)
                    or "placeholders name inputs, e.g. {lr}; write {{ and }} for braces",
                )
            else:
                self.used.add(ref)

    # -- update --
    @property
    def flat(self) -> bool:
        return any(u.mode == "flat" for u in self.spec.updates)

    def update(self) -> list[Block]:
        blocks = []
        modes = [u.mode for u in self.spec.updates]
        if self.flat:
            self.program = check_flat(self)
            return [Block(u.mode, u.body, u.span) for u in self.spec.updates]
        if self.spec.kind == "optimizer" and not self.spec.updates:
            self.out.error(
                "E401",
                "the optimizer has no `update:` block",
                self.spec.span,
                hint="add `update:` with the per-parameter statements",
            )
        for u in self.spec.updates:
            body = self.inline(u.body, ())
            blocks.append(Block(u.mode, body, u.span))
        if modes.count("random") > 1 or ("random" in modes and "each" in modes):
            self.out.error(
                "E401",
                "one random-parameter update per optimizer",
                self.spec.updates[-1].span,
            )
        if "each" in modes and modes[-1] != "each":
            last = len(modes) - 1 - modes[::-1].index("each")
            self.out.error(
                "E401",
                "the last block of the step is an `update:` (a pass over the parameters)",
                self.spec.updates[last + 1].span,
                hint="move the block before the `update:` it prepares",
            )
        if "group" in modes and "each" not in modes:
            self.out.error(
                "E401",
                "`update group:` goes with `update:` (the parameters of each group)",
                self.spec.updates[modes.index("group")].span,
            )

        env = dict(self.inputs)
        for name, st in self.states.items():
            env[name] = Symbol(
                name,
                state_type(st),
                "state",
                dynamic=st.kind == "count",
                varying=st.scope == "parameter" and st.kind == "count",
                decl=st,
            )
        env["param"] = Symbol("param", Kind.TENSOR, "param")
        env["grad"] = Symbol("grad", Kind.TENSOR, "grad")
        self.flow = Flow(self, env)
        for b in blocks:
            self.flow.block(b)
        self.used |= self.passed  # an input passed to a procedure is used
        self.flow.report_unused(self.passed)
        check_shapes(self, blocks)
        self.locals = {n: s for n, s in self.flow.defined.items() if s.role == "local"}
        self.runtime_names_free()
        self.checked_methods = tuple(self.methods())
        check_declarations(self.spec, {*BUILTINS, *STATEMENT_FUNCTIONS}, self.out)
        check_called(self.spec, self.called, self.out)
        return blocks

    def runtime_names_free(self) -> None:
        """E201 at a value named like a function of generator.runtime that the update calls
        (`gram <- ...` beside `gram(g, k)`): the generated module imports the function by that
        name, and the value would shadow it."""
        named = {**self.inputs, **self.locals}
        for name in sorted(self.runtime_called & set(named)):
            decl = named[name].decl
            span = getattr(getattr(decl, "target", None), "span", None) or decl.span
            self.out.error(
                "E201",
                f"`{name}` names the function {name}() this update calls: the value would "
                "shadow it in the generated code",
                span,
                hint=f"rename it, e.g. `{name}_value`",
            )

    def methods(self):
        """``method NAME:`` runs once per group: it reads inputs and the group's values and sets
        `state group` values; the parameters and their states exist only inside
        ``for each parameter:``, which visits those the step has given state."""
        seen: dict[str, S.Span] = {}
        for m in self.spec.methods:
            name = m.name.id
            check_name(m.name, "a method", self.out)
            if name in seen:
                self.out.error(
                    "E207",
                    f"method `{name}` is declared twice",
                    m.name.span,
                    notes=[Note("first declared here", seen[name])],
                )
            seen.setdefault(name, m.name.span)
            if name in OPTIMIZER_ATTRIBUTES or name.startswith("_"):
                self.out.error(
                    "E329",
                    f"method `{name}` would replace torch.optim.Optimizer's own `{name}`",
                    m.name.span,
                    hint="choose another name (schedule-free optimizers add `train` and "
                    "`eval`)",
                )
            env = dict(self.inputs)
            for st_name, st in self.states.items():
                if st.scope != "parameter":
                    env[st_name] = Symbol(
                        st_name,
                        Kind.BOOL if st.kind == "flag" else Kind.SCALAR,
                        "state",
                        dynamic=True,
                        decl=st,
                    )
            flow = Flow(self, env, "method")
            body = self.inline(m.body, ())
            flow.body(body)
            flow.report_unused(self.passed)
            yield m, body

    def inline(self, body, stack) -> tuple[S.Stmt, ...]:
        out = []
        for stmt in body:
            if isinstance(stmt, S.Expose):
                # (a point no modifier acts at: generator.check.modifiers spliced the others)
                continue
            if isinstance(stmt, S.Use):
                frag = self.fragments.get(stmt.fragment)
                if frag is not None and frag.kind == "modifier":
                    self.out.error(
                        "E403",
                        f"`{stmt.fragment}` is a modifier: an optimizer takes it with "
                        f"`with {stmt.fragment}`",
                        stmt.span,
                    )
                    continue
                if frag is None:
                    self.out.error(
                        "E403",
                        f"no fragment named `{stmt.fragment}`",
                        stmt.span,
                        hint=did_you_mean(stmt.fragment, self.fragments)
                        or "fragments live in specs/fragments/*.frag",
                    )
                    continue
                if stmt.fragment in stack:
                    self.out.error(
                        "E403", f"fragment `{stmt.fragment}` uses itself", stmt.span
                    )
                    continue
                out.extend(self.inline(frag.body, stack + (stmt.fragment,)))
            elif call_of(stmt, self.procedures) is not None:
                # a procedure's call, inlined as a fragment is (generator.check.procedures)
                call = call_of(stmt, self.procedures)
                self.called.add(call.func)
                if call.func in stack:
                    self.out.error(
                        "E403", f"procedure `{call.func}` calls itself", stmt.span
                    )
                    continue
                proc = self.procedures[call.func]
                inlined = inline_call(stmt, call, proc, self.out, self.passed)
                if inlined is not None:
                    out.extend(self.inline(inlined, stack + (call.func,)))
                else:  # reported: its targets are still set, its arguments still read
                    self.failed_calls.add(call)
                    targets = getattr(stmt, "targets", None) or (stmt.target,)
                    out.extend(S.Assign(t, call, None, stmt.span) for t in targets)
            elif isinstance(stmt, S.MultiAssign) and isinstance(stmt.value, S.Tuple):
                # (a flat update's tuples are values of their own: generator.check.flat)
                out.extend(self.inline(unpacked(stmt, self.out), stack))
            elif isinstance(stmt, (S.Repeat, S.While, S.For)):
                # a loop: its header's expression, and its body with fragments inlined
                head = _LOOP_HEADS[type(stmt)]
                out.append(
                    replace(
                        stmt,
                        **{head: self.canon(getattr(stmt, head))},
                        body=self.inline(stmt.body, stack),
                    )
                )
            elif isinstance(stmt, S.If):
                branches = tuple(
                    (self.canon(c), self.inline(b, stack)) for c, b in stmt.branches
                )
                out.append(
                    replace(
                        stmt, branches=branches, orelse=self.inline(stmt.orelse, stack)
                    )
                )
            else:
                out.append(self.canon(stmt))
        return tuple(out)

    def canon(self, node):
        """``m_t`` → ``m`` with subscript t, where m is a state (or the parameter): one spelling on."""
        if isinstance(node, S.Name):
            base = node.id[:-2]
            if (
                node.subscript is None
                and node.id.endswith("_t")
                and node.id not in self.inputs
                and node.id not in self.states
                and (base in self.states or base == "param")
            ):
                return S.Name(base, "t", node.span)
            return node
        if (
            isinstance(node, (S.Number, S.Bool, S.NoneLit, S.String, S.Use))
            or node is None
        ):
            return node
        changes = {}
        for f in (
            "target",
            "value",
            "initially",
            "operand",
            "left",
            "right",
            "cond",
            "then",
            "orelse",
        ):
            if hasattr(node, f):
                changes[f] = self.canon(getattr(node, f))
        for f in ("args", "operands", "items"):
            if hasattr(node, f):
                changes[f] = tuple(self.canon(x) for x in getattr(node, f))
        if isinstance(node, S.If):
            changes["branches"] = tuple((self.canon(c), b) for c, b in node.branches)
        return replace(node, **changes)

    # -- expression kinds (shared by validation and update) --
    def expr(self, e, context, env=None, flow=None) -> str | None:
        """The kind of ``e``; reports errors and returns None when it has none."""
        env = env if env is not None else self.inputs
        return Typer(self, context, env, flow).kind(e)


def check(spec: S.Spec, fragments: dict[str, S.Spec], out: Collector) -> CheckedSpec:
    spec = apply_modifiers(spec, fragments, out)
    spec = expand_lets(spec, out)
    c = Checker(spec, fragments, out)
    c.declarations()
    c.validations()
    blocks = c.update()
    if spec.methods and not any(u.mode == "each" for u in spec.updates):
        out.error(
            "E329",
            "a `method` goes with a per-parameter `update:`",
            spec.methods[0].span,
        )
    for inp in spec.inputs:
        if inp.arg_name in IMPLEMENTATION_FLAGS:
            continue
        unused = [n for n in inp.names if n.id not in c.used]
        for n in unused:
            out.error(
                "E321",
                f"input `{n.id}` is never used",
                n.span,
                hint="use it in the update or a requirement, or remove it",
            )
    paths_without_form(c)
    if c.program is None:
        check_shapes_of_complex(spec, blocks, out)
        if spec.complex_mode == "view_as_real":
            for st in spec.states:
                if st.lazy:
                    out.error(
                        "E328",
                        "`complex view_as_real` with a `lazy` state is not supported: the "
                        "state would be made from the real view of a complex parameter",
                        st.span,
                        hint="give the state its starting value in the declaration: a "
                        "number (`<- 0`) or a copy of the parameter (`<- param`); or drop "
                        "`complex view_as_real` (the real view then starts where the "
                        "arithmetic needs it)",
                    )
    return CheckedSpec(
        spec,
        c.inputs,
        c.states,
        blocks,
        c.locals,
        c.used,
        c.program,
        getattr(c, "checked_methods", ()),
        by_rank=c.by_rank,
    )


_LOOP_HEADS = {S.Repeat: "count", S.While: "cond", S.For: "iterable"}


def unpacked(s: S.MultiAssign, out: Collector) -> tuple[S.Stmt, ...]:
    """``a, b <- (x, y)`` as assignments of one name each: every value is computed before any
    name changes, so where a value reads a name assigned before it (``a, b <- (b, a)``) the
    values go to new names first (``a_value``, ``b_value``)."""
    items = s.value.items
    if len(items) != len(s.targets):
        out.error(
            "E507",
            f"{len(s.targets)} names, but the value is a tuple of {len(items)}",
            s.value.span,
        )
        return ()
    assigned: set[str] = set()
    parallel = False
    for target, item in zip(s.targets, items):
        parallel |= any(mentions_name(item, name) for name in assigned)
        assigned.add(target.id)
    if not parallel:
        return tuple(S.Assign(t, v, None, s.span) for t, v in zip(s.targets, items))
    values = [S.Name(f"{t.id}_value", None, t.span) for t in s.targets]
    return tuple(
        [S.Assign(n, v, None, s.span) for n, v in zip(values, items)]
        + [S.Assign(t, n, None, s.span) for t, n in zip(s.targets, values)]
    )


def paths_without_form(c: Checker) -> None:
    """The `foreach` and `fused` inputs promise paths over lists of tensors; a statement that
    one of them cannot run refuses the input, at the statement, rather than falling back.
    """
    flags = {i.arg_name: i for i in c.spec.inputs if i.arg_name in ("foreach", "fused")}
    for construct in c.no_form:
        for path, flag in flags.items():
            if path not in construct.paths:
                continue
            c.out.error(
                "E335",
                f"{construct.what} has no {path} form: "
                + (
                    "the for-loop and foreach paths run it"
                    if "foreach" not in construct.paths
                    else "only the for-loop path runs it"
                ),
                construct.span,
                notes=[Note(f"the `{path}` input is declared here", flag.span)],
                hint=f"remove the `{path}` input"
                + (
                    f", or {construct.instead}"
                    if path == "foreach" and construct.instead
                    else ""
                ),
            )


def check_fragment(frag: S.Spec, out: Collector) -> None:
    if frag.kind == "modifier":
        if not frag.points and not frag.updates:
            out.error(
                "E404",
                "a modifier acts at a point (`at direction u:` and its statements) or "
                "around the step (`update` blocks of its own, run before the optimizer's)",
                frag.span,
            )
        for u in frag.updates:
            if u.mode not in ("each", "step", "group"):
                out.error(
                    "E404",
                    "a modifier's blocks run before the optimizer's: `update:`, "
                    "`update group:` or `update optimizer:`",
                    u.span,
                )
        return
    if frag.inputs or frag.states or frag.updates:
        out.error("E404", "a fragment holds update statements only", frag.span)
