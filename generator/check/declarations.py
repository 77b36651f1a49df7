"""Declarations: the checks of each input, state and method name on its own.

Part of the check stage (language → check → lower → emit). generator.check.checker calls these
on every ``input`` and ``state`` entry of a parsed spec (a name is legal, a type is known, a
default fits its type, a state's kind, scope and options agree) before the cross-entry checks
(duplicates, argument order) that it makes itself; the update's own assignments name new values
through ``check_name`` too (generator.check.flow).
"""

from __future__ import annotations

import keyword

from generator.language import syntax as S
from generator.language.builtins import CONSTANTS
from generator.language.diagnostics import Collector, did_you_mean
from generator.language.names import IMPLEMENTATION_FLAGS, RESERVED
from generator.language.spec_printer import print_expr
from generator.language.types import Kind

# the types an input may have (`float | tensor`, `int?`, `(float, float)` are made of them)
TYPES = {"float", "int", "bool", "tensor", "str", "dtype"}


# the dtypes a tensor state may be stored in (`stored as NAME`), as torch names them
STORAGE_DTYPES = ("float32", "float64", "bfloat16", "float16")


# The attributes of torch.optim.Optimizer a spec's `method` must not replace.
OPTIMIZER_ATTRIBUTES = frozenset(
    """step zero_grad state_dict load_state_dict add_param_group param_groups state defaults
    register_step_pre_hook register_step_post_hook register_state_dict_pre_hook
    register_state_dict_post_hook register_load_state_dict_pre_hook
    register_load_state_dict_post_hook profile_hook_step""".split()
)


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
    if inp.type.kind == "sequence" and (
        inp.type.names[0] not in ("float", "int") or inp.type.optional[0]
    ):
        out.error(
            "E202",
            "a `tuple of` holds numbers: `tuple of float` or `tuple of int`",
            inp.type.span,
            hint="a tuple of other values, or of a fixed length, names its items: "
            "`input beta1, beta2 (betas): (float, float)`",
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
    if isinstance(e, S.Name) and e.id in CONSTANTS:
        return "dtype" if CONSTANTS[e.id].kind == Kind.DTYPE else "float"
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
    if inp.type.kind == "sequence":
        if kind != "tuple":
            out.error(
                "E204",
                f"the default of a `tuple of {inp.type.names[0]}` is a tuple, "
                "e.g. `(0.0, 0.9, 0.99)`",
                d.span,
            )
            return
        for item in d.items:
            _check_value(item, inp.type.names, inp.type.optional[0], out)
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
    _check_value(d, inp.type.names, any(inp.type.optional), out)


def _check_value(d: S.Expr, names, optional: bool, out: Collector) -> None:
    """A literal default (or an item of a default tuple) that fits the type ``names``."""
    kind = _literal_kind(d)
    if kind is None:
        out.error(
            "E204",
            "each value of a default tuple must be a literal (a number, true, false, none "
            "or a string)",
            d.span,
        )
        return
    ok = {
        "none": optional,
        "bool": "bool" in names,
        "int": bool({"int", "float"} & set(names)),
        "float": "float" in names,
        "str": "str" in names,
        "dtype": "dtype" in names,
        "tuple": False,
    }[kind]
    if not ok:
        out.error(
            "E204",
            f"default `{_show(d)}` does not fit type "
            f"`{' | '.join(names)}{'?' if optional else ''}`",
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
    if st.transient and (st.kind not in ("tensor", "total") or st.eager):
        out.error(
            "E206",
            "`transient` is for a value a step carries between its blocks: a tensor of "
            "each parameter or an optimizer's total, made in the step",
            st.span,
            hint="a counter or an `eager` state lasts from step to step: drop `transient`",
        )
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
