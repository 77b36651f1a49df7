"""Checking: everything that can be wrong with a parsed spec, reported at once, before any code exists.

Per-entry checks (a name is legal, a type is known, a default fits its type) sit beside the
cross-entry ones (duplicates, keyword-only order, fragments resolved, the update typed and its data
flow followed) in this one module, which turns a ``Spec`` into a ``CheckedSpec``: fragments inlined,
every name resolved to a ``Symbol`` of a known kind. Kinds are "bool" (decided by hyperparameters:
a Python ``if`` in the generated code), "scalar"/"int" (numbers; *dynamic* when they depend on a
counter such as the step, *varying* when that counter is per-parameter) and "tensor" (shaped like the
parameter). generator.lower.lowering trusts what passes here; anything it cannot lower is a GeneratorBug.
"""

from __future__ import annotations

import keyword
from dataclasses import dataclass, field, replace

from generator.language import syntax as S
from generator.language.builtins import BUILTINS, CONSTANTS
from generator.language.diagnostics import Collector, Note, did_you_mean
from generator.check.flat import check_flat
from generator.language.names import BUILTIN_TENSORS, IMPLEMENTATION_FLAGS, RESERVED
from generator.language.spec_printer import print_expr

TYPES = {"float", "int", "bool", "tensor", "str"}


@dataclass(frozen=True)
class Symbol:
    name: str
    kind: str  # bool | scalar | int | tensor
    role: str  # input | state | local | param | grad
    dynamic: bool = (
        False  # depends on a counter (not known when the optimizer is built)
    )
    varying: bool = False  # differs between parameters (per-parameter counter)
    decl: object = None  # the Input / State / Assign that introduced it
    optional: bool = False


@dataclass(frozen=True)
class Block:
    mode: str  # "step" (once per step), "each" (every parameter with a gradient), "random"
    body: tuple[S.Stmt, ...]
    span: S.Span


@dataclass
class CheckedSpec:
    spec: S.Spec
    inputs: dict[str, Symbol]
    states: dict[str, S.State]
    blocks: list[Block]
    locals: dict[str, Symbol] = field(default_factory=dict)
    used_inputs: set[str] = field(default_factory=set)
    program: object = None  # generator.check.flat.Program of an `update flat:` spec
    # `method NAME:` blocks, fragments inlined: (declaration, statements)
    methods: tuple[tuple[S.Method, tuple[S.Stmt, ...]], ...] = ()
    # its IR (generator.ir.Optimizer), lowered once by generator.driver.lowered and kept here
    # for every emitter and query that needs it
    ir: object = field(default=None, compare=False, repr=False)

    @property
    def name(self) -> str:
        return self.spec.name


# The attributes of torch.optim.Optimizer a spec's `method` must not replace.
OPTIMIZER_ATTRIBUTES = frozenset(
    """step zero_grad state_dict load_state_dict add_param_group param_groups state defaults
    register_step_pre_hook register_step_post_hook register_state_dict_pre_hook
    register_state_dict_post_hook register_load_state_dict_pre_hook
    register_load_state_dict_post_hook profile_hook_step""".split()
)

# ---- per-entry checks --------------------------------------------------------------------------------


def check_name(name: S.Name, what: str, out: Collector) -> None:
    n = name.id
    if keyword.iskeyword(n) or keyword.issoftkeyword(n):
        out.error(
            "E201",
            f"`{n}` is a Python keyword and cannot name {what}",
            name.span,
            hint=f"rename it, e.g. `{n}_`" if not n.endswith("_") else None,
        )
    elif n.startswith("_") or n.startswith("__"):
        out.error("E201", f"`{n}`: names may not start with `_`", name.span)
    elif n in CONSTANTS:
        out.error(
            "E201",
            f"`{n}` is a constant of the language and cannot name {what}",
            name.span,
            hint=f"rename it, e.g. `{n}_value` (`{n}` is {CONSTANTS[n].doc})",
        )
    elif n in RESERVED:
        out.error(
            "E201",
            f"`{n}` is reserved by the generated code and cannot name {what}",
            name.span,
            hint=f"rename it, e.g. `{n}_value`",
        )
    elif not n.isascii() or not n.replace("_", "a").isalnum():
        out.error("E201", f"`{n}` is not a valid name", name.span)


def check_input(inp: S.Input, out: Collector) -> None:
    for n in inp.names:
        check_name(n, "an input", out)
    if inp.torch_name is not None:
        check_name(S.Name(inp.torch_name, None, inp.span), "an argument", out)
    for t in (part for name in inp.type.names for part in name.split("|")):
        if t not in TYPES:
            out.error(
                "E202",
                f"unknown type `{t}`",
                inp.type.span,
                hint=did_you_mean(t, TYPES)
                or "types are float, int, bool, str and tensor",
            )
    if inp.type.kind == "tuple":
        if len(inp.type.names) != len(inp.names):
            out.error(
                "E203",
                f"{len(inp.names)} names for a tuple of {len(inp.type.names)} types",
                inp.type.span,
            )
        if inp.torch_name is None:
            out.error(
                "E203",
                "a tuple input needs an argument name in parentheses",
                inp.span,
                hint=f"e.g. `input {', '.join(n.id for n in inp.names)} (betas): ...`",
            )
    elif len(inp.names) != 1:
        out.error(
            "E203",
            "several names need a tuple type such as `(float, float)`",
            inp.type.span,
        )
    if inp.fixed and (inp.keyword or inp.required):
        out.error(
            "E204",
            "a `fixed` input is not an argument; it cannot also be keyword or required",
            inp.span,
        )
    if inp.required and inp.default is not None:
        out.error("E204", "a `required` input has no default", inp.default.span)
    if inp.squeezed and not any("tensor" in n.split("|") for n in inp.type.names):
        out.error(
            "E204",
            "`squeezed` keeps a 1-element tensor as a 0-d one; this input cannot be a tensor",
            inp.span,
            hint="allow a tensor (`float | tensor`) or drop `squeezed`",
        )
    if inp.explicit and inp.arg_name != "foreach":
        out.error(
            "E204",
            "`explicit` belongs to the `foreach` input: with it, `none` runs the for-loop",
            inp.span,
            hint="drop `explicit`",
        )
    if not inp.required and inp.default is None:
        out.error(
            "E204",
            f"input `{inp.names[0].id}` needs a default (`= value`) or `required`",
            inp.span,
        )
    if inp.default is not None:
        _check_default(inp, out)
    flag = IMPLEMENTATION_FLAGS.get(inp.arg_name)
    if flag is not None:
        kind, optional = flag
        if (
            inp.type.kind != "union"
            or inp.type.names != (kind,)
            or inp.type.optional != (optional,)
        ):
            want = kind + ("?" if optional else "")
            out.error(
                "E205",
                f"`{inp.arg_name}` is an implementation flag of type `{want}`",
                inp.type.span,
            )


def _literal_kind(e: S.Expr) -> str | None:
    if isinstance(e, S.Number):
        return "int" if e.is_integer_literal else "float"
    if isinstance(e, S.Unary) and e.op == "-" and isinstance(e.operand, S.Number):
        return _literal_kind(e.operand)
    if isinstance(e, S.Bool):
        return "bool"
    if isinstance(e, S.NoneLit):
        return "none"
    if isinstance(e, S.String):
        return "str"
    if isinstance(e, S.Tuple):
        return "tuple"
    return None


def _check_default(inp: S.Input, out: Collector) -> None:
    d = inp.default
    kind = _literal_kind(d)
    if kind is None:
        out.error(
            "E204",
            "a default must be a literal (a number, true, false, none, a string or a tuple)",
            d.span,
        )
        return
    if inp.type.kind == "tuple":
        if kind != "tuple" or len(d.items) != len(inp.names):
            out.error(
                "E204",
                f"the default must be a tuple of {len(inp.names)} values",
                d.span,
            )
            return
        for item in d.items:
            if _literal_kind(item) in (None, "tuple"):
                out.error(
                    "E204",
                    "each value of a default tuple must be a literal (a number, true, "
                    "false, none or a string)",
                    item.span,
                )
        return
    names, optional = inp.type.names, any(inp.type.optional)
    ok = {
        "none": optional,
        "bool": "bool" in names,
        "int": bool({"int", "float"} & set(names)),
        "float": "float" in names,
        "str": "str" in names,
        "tuple": False,
    }[kind]
    if not ok:
        out.error(
            "E204",
            f"default `{_show(d)}` does not fit type "
            f"`{' | '.join(n + ('?' if o else '') for n, o in zip(names, inp.type.optional))}`",
            d.span,
        )


def _show(e: S.Expr) -> str:
    return print_expr(e)


def check_state(st: S.State, out: Collector) -> None:
    check_name(st.name, "a state", out)
    if st.on_device and st.kind != "count":
        out.error(
            "E206",
            "`on device` is for counters; tensor state always lives with its parameter",
            st.span,
        )
    if st.torch_name is not None:
        if not st.torch_name.isidentifier() or keyword.iskeyword(st.torch_name):
            out.error("E201", f"`{st.torch_name}` is not a valid state key", st.span)
    if st.kind not in ("tensor", "count", "flag", "total"):
        out.error(
            "E206",
            f"unknown state kind `{st.kind}`",
            st.span,
            hint="a state is a `tensor` (the default, shaped like the parameter), a `count`, "
            "for a group a `flag` (true or false), for the optimizer a `total`",
        )
    if st.kind == "total" and (
        st.scope != "optimizer" or st.lazy or st.condition or st.eager
    ):
        out.error(
            "E206",
            "a `total` is the optimizer's sum over parameters: "
            f"`state optimizer {st.name.id}: total <- 0`",
            st.span,
        )
    if st.kind == "flag" and (
        st.scope != "group" or not isinstance(st.init, S.Bool) or st.condition
    ):
        out.error(
            "E206",
            "a `flag` is a group's true-or-false setting: "
            f"`state group {st.name.id}: flag <- true`",
            st.span,
        )
    if st.kind == "count" and st.lazy:
        out.error(
            "E206",
            "a `count` state starts from a number; `lazy` is for tensors",
            st.span,
        )
    if st.scope != "parameter" and st.kind not in ("count", "flag", "total"):
        out.error(
            "E206", f"{st.scope}-level state must be a `count` (a number)", st.span
        )
    if st.as_number and st.kind != "count":
        out.error("E206", "`as number` is for counters", st.span)
    if st.reduced is not None:
        if st.kind != "tensor" or st.lazy:
            out.error(
                "E206",
                "`reduced over` shapes a tensor state that starts from a number",
                st.span,
            )
        if not st.reduced.lstrip("-").isdigit():
            out.error(
                "E206",
                f"`reduced over {st.reduced}`: the dimension must be an integer",
                st.span,
                hint="e.g. `reduced over -1` for one value per row",
            )

    if st.stored_as is not None:
        if st.kind != "tensor" or st.scope != "parameter":
            out.error(
                "E206",
                "`stored as` sets the dtype of a parameter's tensor state, "
                "not of a counter or a group's value",
                st.span,
            )
        elif st.stored_as not in STORAGE_DTYPES:
            out.error(
                "E206",
                f"`stored as {st.stored_as}`: not a floating-point dtype",
                st.stored_as_span or st.span,
                hint="one of " + ", ".join(STORAGE_DTYPES),
            )


# the dtypes a tensor state may be stored in (`stored as NAME`), as torch names them
STORAGE_DTYPES = ("float32", "float64", "bfloat16", "float16")


# ---- cross-entry checks ------------------------------------------------------------------------------


class Checker:
    def __init__(self, spec: S.Spec, fragments: dict[str, S.Spec], out: Collector):
        self.spec = spec
        self.fragments = fragments
        self.out = out
        self.inputs: dict[str, Symbol] = {}
        self.states: dict[str, S.State] = {}
        self.used: set[str] = set()
        self.locals: dict[str, Symbol] = {}
        self.program = None  # generator.check.flat.Program, for an `update flat:` spec

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
                    "bool": "bool",
                    "int": "int",
                    "float": "scalar",
                    "tensor": "scalar",
                    "str": "str",
                }.get(t, "scalar")
                if inp.type.kind == "union" and "float" in names:
                    kind = "scalar"
                self.inputs[n.id] = Symbol(
                    n.id, kind, "input", decl=inp, optional=any(inp.type.optional)
                )
        has_foreach = any(i.arg_name == "foreach" for i in self.spec.inputs)
        for st in self.spec.states:
            check_state(st, self.out)
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
            if kind not in ("bool", None):
                self.out.error(
                    "E301",
                    "a requirement must be a condition (true or false)",
                    v.expr.span,
                    hint="compare it, e.g. `lr >= 0`",
                )
            msg = v.message
            if msg is not None:
                self._check_message(msg, on_param=_mentions(v.expr, "param"))
        for st in self.spec.states:
            if st.condition is not None and self.expr(
                st.condition, "state_condition"
            ) not in ("bool", None):
                self.out.error(
                    "E301",
                    "a state condition must be decided by hyperparameters or the "
                    "parameter's shape",
                    st.condition.span,
                )
            if is_param(st.init) and st.kind == "tensor":
                continue  # a copy of the parameter when the state is made
            if st.init is not None and not self.flat:
                kind = self.expr(st.init, "state")
                if kind == "tensor":
                    self.out.error(
                        "E303",
                        "a state's initial value is a number, `param` (a copy of the "
                        "parameter) or `lazy`",
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
                "int",
                "scalar",
                None,
            ):
                self.out.error(
                    "E301",
                    "`none means` gives a number computed from other inputs",
                    inp.none_means.span,
                )

    def _check_message(self, msg: S.Message, on_param: bool = False) -> None:
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
        if self.flat or self.spec.procedures:
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
            kind = {"count": "scalar", "flag": "bool"}.get(
                st.kind, "tensor"
            )  # total: 1 elem
            env[name] = Symbol(
                name,
                kind,
                "state",
                dynamic=st.kind == "count",
                varying=st.scope == "parameter" and st.kind == "count",
                decl=st,
            )
        env["param"] = Symbol("param", "tensor", "param")
        env["grad"] = Symbol("grad", "tensor", "grad")
        self.flow = _Flow(self, env)
        for b in blocks:
            self.flow.block(b)
        for name, sym in self.flow.defined.items():
            if name not in self.flow.read and sym.role == "local":
                self.out.error(
                    "E402",
                    f"`{name}` is assigned but never used",
                    sym.decl.target.span,
                    hint="remove the assignment, or use the value",
                )
        self.locals = {n: s for n, s in self.flow.defined.items() if s.role == "local"}
        self.checked_methods = tuple(self.methods())
        return blocks

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
                        "bool" if st.kind == "flag" else "scalar",
                        "state",
                        dynamic=True,
                        decl=st,
                    )
            flow = _Flow(self, env)
            flow.mode = "method"
            body = self.inline(m.body, ())
            flow.body(body)
            for local, sym in flow.defined.items():
                if local not in flow.read and sym.role == "local":
                    self.out.error(
                        "E402",
                        f"`{local}` is assigned but never used",
                        sym.decl.target.span,
                        hint="remove the assignment, or use the value",
                    )
            yield m, body

    def inline(self, body, stack) -> tuple[S.Stmt, ...]:
        out = []
        for stmt in body:
            if isinstance(stmt, S.Use):
                frag = self.fragments.get(stmt.fragment)
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
            elif isinstance(stmt, S.Repeat):
                out.append(
                    replace(
                        stmt,
                        count=self.canon(stmt.count),
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
        return _Typer(
            self, context, env if env is not None else self.inputs, flow
        ).kind(e)


class _Typer:
    def __init__(self, checker: Checker, context: str, env: dict, flow):
        self.c, self.context, self.env, self.flow = checker, context, env, flow
        self.dynamic = False
        self.varying = False

    def error(self, *a, **k):
        self.c.out.error(*a, **k)

    def kind(self, e) -> str | None:
        method = getattr(self, "k_" + type(e).__name__)
        return method(e)

    def k_Number(self, e):
        return "int" if e.is_integer_literal else "scalar"

    def k_Bool(self, e):
        return "bool"

    def k_NoneLit(self, e):
        self.error(
            "E305",
            "`none` is only a default value, or compared with `==` / `!=`",
            e.span,
        )

    def k_String(self, e):
        return "str"

    def k_Tuple(self, e):
        self.error("E305", "a tuple is only a default value", e.span)

    def k_Index(self, e):
        _flat_only(self.c.out, "a list element", e.span)

    def k_List(self, e):
        _flat_only(self.c.out, "a list", e.span)

    def k_Name(self, e: S.Name):
        if e.id in CONSTANTS and e.id not in self.env:
            # `pi` (a spec naming something `pi` has had its error from check_name: its own
            # symbol is read then, so that no other error follows from that one)
            if e.subscript is not None:
                self.error(
                    "E306", f"`{e.id}` is a constant: it has no time subscript", e.span
                )
                return None
            return CONSTANTS[e.id].kind
        sym = self.env.get(e.id)
        name, sub = e.id, e.subscript
        if (
            sym is None
            and sub is None
            and name.endswith("_t")
            and name[:-2] in self.env
        ):
            name, sub = name[:-2], "t"
            sym = self.env[name]
        if sym is None:
            if self.flow is not None and name in self.flow.pending:
                self.error(
                    "E306",
                    f"`{name}` is used before it is assigned",
                    e.span,
                    notes=[Note("assigned here", self.flow.pending[name])],
                )
                return None
            if self.context == "state" and (
                name in self.c.states or name in BUILTIN_TENSORS
            ):
                self.error(
                    "E303",
                    f"a state's initial value cannot use `{name}`: it is a number known when "
                    "the optimizer is built",
                    e.span,
                    hint="for a first value taken from the update, declare the state `lazy` "
                    "and assign it with `initially`",
                )
                return None
            if self.flow is not None and self.flow.mode == "method":
                if _outside_for_each(self.flow, name, e.span):
                    return None
            if self.context == "validation" and name == "grad":
                return "tensor"  # a check on the gradient runs at each step (is_sparse(grad))
            if self.context in ("validation", "state_condition") and name == "param":
                return "tensor"  # a check on each parameter when the optimizer is built
            if self.context == "validation" and (
                name in self.c.states or name in BUILTIN_TENSORS
            ):
                self.error(
                    "E306",
                    f"`{name}` does not exist when the optimizer is built",
                    e.span,
                    hint="requirements may only name inputs",
                )
                return None
            candidates = list(self.env) + (list(self.flow.defined) if self.flow else [])
            self.error(
                "E306",
                f"undefined name `{name}`",
                e.span,
                hint=did_you_mean(name, candidates),
            )
            return None
        if sym.role == "input":
            self.c.used.add(name)
        if self.flow is not None:
            self.flow.on_read(name, sub, e.span)
        self.dynamic |= sym.dynamic
        self.varying |= sym.varying
        return sym.kind

    def k_Unary(self, e: S.Unary):
        k = self.kind(e.operand)
        if e.op == "not":
            if k not in ("bool", None):
                self.error("E307", "`not` needs a condition", e.operand.span)
            return "bool"
        if k == "bool":
            self.error("E307", "cannot negate a condition; use `not`", e.span)
            return None
        return k

    def k_Binary(self, e: S.Binary):
        lk, rk = self.kind(e.left), self.kind(e.right)
        if e.op in ("and", "or"):
            for side, k in ((e.left, lk), (e.right, rk)):
                if k == "tensor":
                    self.error(
                        "E308",
                        f"a tensor cannot be a condition of `{e.op}`",
                        side.span,
                        hint="reduce it first, or use where(...) for elementwise choice",
                    )
                elif k not in ("bool", None):
                    self.error(
                        "E307",
                        f"`{e.op}` joins conditions",
                        side.span,
                        hint="compare the value, e.g. `x != 0`",
                    )
            return "bool"
        if lk is None or rk is None:
            return None
        for side, k in ((e.left, lk), (e.right, rk)):
            if k == "bool":
                self.error(
                    "E307", f"a condition cannot be an operand of `{e.op}`", side.span
                )
                return None
            if k == "str":
                self.error(
                    "E307",
                    f"a string cannot be an operand of `{e.op}`",
                    side.span,
                    hint='strings are only compared: `adjust_lr_fn == "original"`',
                )
                return None
        if e.op == "@" and (lk, rk) != ("tensor", "tensor"):
            self.error(
                "E309",
                "`@` multiplies matrices: both sides must be tensors",
                e.span,
                hint="for a number times a tensor write `*`",
            )
        if e.op in ("%", "//") and "tensor" in (lk, rk):
            self.error(
                "E309", f"`{e.op}` is for numbers (step counts), not tensors", e.span
            )
        if e.op == "^" and rk == "tensor":
            self.error("E309", "the exponent must be a number", e.right.span)
        if "tensor" in (lk, rk):
            return "tensor"
        if lk == rk == "int" and e.op in ("+", "-", "*", "%", "//"):
            return "int"
        return "scalar"

    def k_Compare(self, e: S.Compare):
        nones = [isinstance(x, S.NoneLit) for x in e.operands]
        if any(nones):
            # `eps1 == none`: whether an optional input was left out
            if len(e.ops) != 1 or e.ops[0] not in ("==", "!=") or all(nones):
                self.error(
                    "E307",
                    "`none` is compared with `==` or `!=` to one optional input",
                    e.span,
                )
                return "bool"
            other = e.operands[nones.index(False)]
            self.kind(other)
            sym = self.env.get(other.id) if isinstance(other, S.Name) else None
            if sym is None or sym.role != "input" or not sym.optional:
                self.error(
                    "E307",
                    "only an optional input (a type with `?`) can be `none`",
                    other.span,
                )
            return "bool"
        kinds = [self.kind(x) for x in e.operands]
        if None in kinds:
            return "bool"
        if "str" in kinds:
            if set(kinds) != {"str"} or any(op not in ("==", "!=") for op in e.ops):
                self.error(
                    "E307",
                    "a string is only compared with another string, with == or !=",
                    e.span,
                )
            return "bool"
        if "tensor" in kinds:
            if self.context == "where":
                return "tensorbool"
            self.error(
                "E308",
                "a tensor comparison cannot be a condition",
                e.span,
                hint="a condition must be decided by numbers; for an elementwise choice "
                "use where(a > b, x, y)",
            )
            return None
        if "bool" in kinds and any(op not in ("==", "!=") for op in e.ops):
            self.error("E307", "conditions can only be compared with == and !=", e.span)
        return "bool"

    def k_Conditional(self, e: S.Conditional):
        ck = self.kind(e.cond)
        if ck == "tensor" or ck == "tensorbool":
            self.error(
                "E308",
                "a tensor cannot be the condition of `if ... else`",
                e.cond.span,
                hint="use where(condition, a, b) for an elementwise choice",
            )
        elif ck not in ("bool", None):
            self.error(
                "E307",
                "the condition must be true or false",
                e.cond.span,
                hint="compare it, e.g. `x != 0`",
            )
        if self.flow is not None:
            self.flow.conditions.append(e.cond)
        a = self.kind(e.then)
        if self.flow is not None:
            self.flow.conditions.pop()
            self.flow.conditions.append(S.Unary("not", e.cond, e.cond.span))
        b = self.kind(e.orelse)
        if self.flow is not None:
            self.flow.conditions.pop()
        if None in (a, b):
            return None
        if "bool" in (a, b) and a != b:
            self.error("E307", "both branches must be conditions, or neither", e.span)
        return "tensor" if "tensor" in (a, b) else a if a == b else "scalar"

    def k_Call(self, e: S.Call):
        if e.keywords:
            _flat_only(self.c.out, "a keyword argument", e.keywords[0][1].span)
            return None
        b = BUILTINS.get(e.func)
        if b is None:
            self.error(
                "E310",
                f"unknown function `{e.func}`",
                e.func_span or e.span,
                hint=did_you_mean(e.func, BUILTINS)
                or "see the language reference for the functions a spec can call",
            )
            for a in e.args:
                self.kind(a)
            return None
        if self.context == "validation" and b.context == "update":
            self.error("E310", f"`{e.func}` cannot be used in a requirement", e.span)
        if self.context != "validation" and b.context == "validation":
            self.error("E310", f"`{e.func}` is only for requirements on inputs", e.span)
        least = len(b.params) - b.optional
        if not least <= len(e.args) <= len(b.params):
            count = (
                f"{least} or {len(b.params)} arguments"
                if b.optional
                else f"{len(b.params)} argument{'s' if len(b.params) != 1 else ''}"
            )
            self.error("E311", f"`{e.func}` takes {count}, got {len(e.args)}", e.span)
            return None
        kinds = []
        for want, a in zip(b.params, e.args):
            saved = self.context
            if want == "bool" and e.func == "where":
                self.context = "where"
            k = self.kind(a)
            self.context = saved
            kinds.append(k)
            if k is None:
                continue
            if want == "scalar" and k == "tensor":
                self.error(
                    "E312", f"`{e.func}` needs a number here, not a tensor", a.span
                )
            elif want == "tensor" and k not in ("tensor",):
                self.error("E312", f"`{e.func}` needs a tensor here", a.span)
            elif want == "int" and k != "int":
                self.error(
                    "E312",
                    f"`{e.func}` needs a whole number here (a dimension such as -1)",
                    a.span,
                )
            elif want == "bool" and e.func == "where" and k != "tensorbool":
                self.error(
                    "E312",
                    "where(...) needs an elementwise comparison of tensors first",
                    a.span,
                )
            elif want == "any" and k == "bool":
                self.error("E312", f"`{e.func}` needs a number or a tensor", a.span)
        if None in kinds:
            return None
        if b.result == "follow":
            if "tensor" not in kinds and b.python is None:
                # (the builtin table has no form of it for Python numbers)
                self.error(
                    "E312",
                    f"`{e.func}` is for tensors: it has no form for numbers",
                    e.span,
                )
                return None
            return "tensor" if "tensor" in kinds else "scalar"
        if e.func == "randint":
            self.dynamic = True
        per_step = self.flow is not None and self.flow.mode in ("group", "step")
        if (
            b.per_parameter
            and "tensor" in kinds
            and self.context != "validation"
            and not per_step  # there the tensors are the optimizer's totals
        ):
            # a property of each parameter (its shape, a norm read as a number)
            self.dynamic = self.varying = True
        return b.result


class _Flow:
    """Follows the update in order: what is defined where, read before written, and the subscripts."""

    def __init__(self, checker: Checker, env: dict):
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
            elif isinstance(s, S.Return) and self.mode in ("group", "step"):
                if s.values:
                    self.c.out.error(
                        "E332",
                        "`return` in a step ends it: it takes no value",
                        s.values[0].span,
                    )
            else:
                what = _STATEMENT_WORDS.get(type(s).__name__, "this statement")
                _flat_only(self.c.out, what, s.span)
                # the rest is still followed, so that one misplaced loop is one error
                if isinstance(s, S.While):
                    self.kind(s.cond)
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
        self.env["param"] = Symbol("param", "tensor", "param")
        for name, st in self.c.states.items():
            if st.scope == "parameter":
                self.env[name] = Symbol(
                    name,
                    "scalar" if st.kind == "count" else "tensor",
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
        if k not in ("bool", None):
            self.c.out.error(
                "E324",
                "a check in the update must be a condition (true or false)",
                s.expr.span,
                hint="compare the value, e.g. `check ns_steps < 100 else ...`",
            )
        self.c._check_message(s.message)

    def repeat(self, s: S.Repeat) -> None:
        k, dyn, _ = self.kind(s.count)
        if k not in ("int", None) or dyn:
            self.c.out.error(
                "E323",
                "`repeat` needs a whole number decided by hyperparameters",
                s.count.span,
                hint="e.g. an `int` input: `repeat ns_steps:`",
            )
        # The block may run zero times: what it defines first does not exist after it.
        before = dict(self.env)
        self.body(s.body)
        for name in list(self.env):
            if name not in before:
                self.pending[name] = self.env.pop(name).decl.target.span

    def kind(self, e, context="update"):
        t = _Typer(self.c, context, self.env, self)
        k = t.kind(e)
        return k, t.dynamic, t.varying

    def if_(self, s: S.If) -> None:
        before = dict(self.env)
        envs = []
        negs = []
        dynamic = False  # decided per parameter (by the step): a partition in the foreach path
        for cond, body in s.branches:
            k, dyn, _ = self.kind(cond)
            if k == "tensor" or k == "tensorbool":
                self.c.out.error(
                    "E308",
                    "a tensor cannot be the condition of `if`",
                    cond.span,
                    hint="use where(condition, a, b) for an elementwise choice",
                )
            elif k not in ("bool", None):
                self.c.out.error(
                    "E307",
                    "the condition of `if` must be true or false",
                    cond.span,
                    hint="compare it, e.g. `weight_decay != 0`",
                )
            dynamic |= bool(dyn)
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
                if kinds == {"int", "scalar"}:
                    kinds = {"scalar"}
                merged[name] = replace(
                    syms[0],
                    kind=kinds.pop() if len(kinds) == 1 else "tensor",
                    dynamic=dynamic or any(x.dynamic for x in syms),
                    varying=dynamic or any(x.varying for x in syms),
                )
            else:
                self.pending[name] = next(x for x in syms if x).decl.target.span
        self.env = merged

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
                f"{_show(st.condition)}, but is used outside such a branch",
                span,
                notes=[Note("declared here", st.span)],
                hint=f"wrap the statement in `if {_show(st.condition)}:`",
            )

    def assign(self, s: S.Assign) -> None:
        name, sub = s.target.id, s.target.subscript
        if self.mode == "method" and name not in self.env:
            if _outside_for_each(self, name, s.target.span):
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
        k, dyn, var = self.kind(s.value)
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
            if ik not in ("tensor", None):
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
            if k == "tensor" and want != "tensor":
                self.c.out.error(
                    "E319",
                    f"`{name}` is a number; a tensor cannot be stored in it",
                    s.value.span,
                )
            if k in ("scalar", "int") and want == "tensor" and target.role == "param":
                self.c.out.error(
                    "E319", "the parameter must stay a tensor", s.value.span
                )
            if (k == "bool") != (want == "bool") and k is not None:
                self.c.out.error(
                    "E319",
                    (
                        f"a condition cannot be stored in `{name}`"
                        if k == "bool"
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
            k = "tensor"
        if k == "bool":
            self.c.out.error(
                "E319", "store conditions in inputs, not in update values", s.value.span
            )
        prev = self.env.get(name)
        if (
            prev is not None
            and prev.kind != k
            and not ({prev.kind, k} <= {"scalar", "int"})
        ):
            self.c.out.error(
                "E319",
                f"`{name}` was a {prev.kind}; it cannot become a {k}",
                s.value.span,
                notes=[Note("first assigned here", prev.decl.target.span)],
            )
        sym = Symbol(name, k, "local", dynamic=dyn, varying=var, decl=s)
        self.env[name] = sym
        self.origin[name] = self.mode
        self.defined.setdefault(name, sym)
        self.pending.pop(name, None)


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
        and (len(terms) == 1 or not any(_mentions(t, name) for t in terms))
    )


def refuses_complex(spec: S.Spec) -> bool:
    """A spec that checks ``not is_complex(...)`` never runs its update on complex tensors."""

    def mentions(e) -> bool:
        return (isinstance(e, S.Call) and e.func == "is_complex") or any(
            mentions(c) for c in S.children(e)
        )

    return any(mentions(v.expr) for v in spec.validations)


def _check_shapes_of_complex(spec: S.Spec, blocks, out: Collector) -> None:
    """An update that reads the parameter's shape must refuse complex parameters: complex ones
    are updated through their real views, whose shape is not theirs (one more dimension, twice
    the elements), so a shape test would silently take the other branch."""

    if refuses_complex(spec):
        return

    def shape_calls(e):
        if (
            isinstance(e, S.Call)
            and e.func in ("dim", "size", "numel")
            and e.args
            and isinstance(e.args[0], S.Name)
            and e.args[0].id in ("param", "grad", "g")
        ):
            yield e
        for c in S.children(e):
            yield from shape_calls(c)

    def stmts(body):
        for s in body:
            for f in ("value", "cond", "count", "expr"):
                if getattr(s, f, None) is not None:
                    yield from shape_calls(getattr(s, f))
            for cond, _ in getattr(s, "branches", ()):
                yield from shape_calls(cond)
            for b in S.sub_blocks(s):
                yield from stmts(b)

    # (one random parameter: updated as it is, complex or not)
    found = [c for b in blocks if b.mode == "each" for c in stmts(b.body)]
    found += [
        c
        for st in spec.states
        if st.condition is not None
        for c in shape_calls(st.condition)
    ]
    if found:
        out.error(
            "E327",
            f"the update reads the parameter's shape (`{found[0].func}`): complex parameters, "
            "updated through their real views, would read another shape",
            found[0].span,
            hint='refuse them: `check not is_complex(param) else "... does not support complex '
            'parameters"`',
        )


_STATEMENT_WORDS = {
    "MultiAssign": "assigning several names at once",
    "ItemAssign": "assigning a list element",
    "CallStmt": "a call as a statement",
    "While": "`while`",
    "For": "`for`",
    "Break": "`break`",
    "Return": "`return`",
}


def _flat_only(out: Collector, what: str, span: S.Span) -> None:
    out.error(
        "E501",
        f"{what} belongs to `update flat:` and procedures",
        span,
        hint="a per-parameter update is a straight computation on each tensor; "
        "whole-vector algorithms (LBFGS) are written as `update flat:`",
    )


def _outside_for_each(flow: "_Flow", name: str, span: S.Span) -> bool:
    """In a method: a name of the parameters' world used where there is none; reported."""
    st = flow.c.states.get(name)
    if name == "grad":
        flow.c.out.error(
            "E331",
            "a method has no gradient: it runs outside the step",
            span,
            hint="compute what the method needs from the parameter and its states",
        )
        return True
    if name == "param" or (st is not None and st.scope == "parameter"):
        flow.c.out.error(
            "E331",
            f"`{name}` belongs to one parameter: a method reaches it inside "
            "`for each parameter:`",
            span,
            hint="wrap the statements on parameters in `for each parameter:`",
        )
        return True
    return False


# Calls whose value depends on a whole tensor, not on each element alone: on a shard of a
# parameter (FSDP2's DTensor) they would compute on the shard as if it were the whole.
WHOLE_TENSOR_CALLS = frozenset(
    {"norm", "mean", "sum", "dot", "item", "transpose", "onehot"}
)


def whole_tensor_construct(checked: "CheckedSpec") -> tuple[str, S.Span] | None:
    """The first construct of the per-parameter update that reads a whole tensor (a reduction,
    a shape, a matrix product, a state with a reduced dimension, a sum over parameters), with
    its place in the spec; None when the update is elementwise."""
    for st in checked.spec.states:
        if st.reduced is not None:
            return f"state `{st.name.id}`, reduced over {st.reduced}", st.span
        if st.kind == "total":
            return f"`{st.name.id}`, a sum over all parameters", st.span
    found = []

    def visit(e):
        if found:
            return
        if isinstance(e, S.Call) and e.func in WHOLE_TENSOR_CALLS:
            found.append((f"`{e.func}(...)`", e.span))
        elif isinstance(e, S.Binary) and e.op == "@":
            found.append(("a matrix product `@`", e.span))
        for c in S.children(e):
            visit(c)

    def stmts(body):
        for s in body:
            for f in ("value", "initially", "count", "expr"):
                if getattr(s, f, None) is not None:
                    visit(getattr(s, f))
            if isinstance(s, S.If):
                for cond, b in s.branches:
                    visit(cond)
                    stmts(b)
                stmts(s.orelse)
            else:
                for b in S.sub_blocks(s):
                    stmts(b)

    for block in checked.blocks:
        if block.mode in ("each", "random"):
            stmts(block.body)
    return found[0] if found else None


def is_param(e) -> bool:
    """`param` itself: a state declared `<- param` starts as a copy of the parameter."""
    return isinstance(e, S.Name) and e.id == "param" and e.subscript is None


def _mentions(e: S.Expr, name: str) -> bool:
    if isinstance(e, S.Name):
        return e.id == name
    return any(_mentions(c, name) for c in S.children(e))


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


def check(spec: S.Spec, fragments: dict[str, S.Spec], out: Collector) -> CheckedSpec:
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
    if c.program is None:
        _check_shapes_of_complex(spec, blocks, out)
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
    )


def check_fragment(frag: S.Spec, out: Collector) -> None:
    if frag.inputs or frag.states or frag.updates:
        out.error("E404", "a fragment holds update statements only", frag.span)
