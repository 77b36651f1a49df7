"""How each IR tensor operation is spelled in torch: as a method, an in-place method, a foreach call.

The printers (generator.emit.python.single, foreach, fused) never spell an operation themselves;
they look it up here. An entry without an in-place method is printed out of place (or with
``out=``); an entry without a foreach function is printed as a list comprehension over the zipped
tensor lists. ``scalar_list`` names the argument slots where torch's foreach functions accept a
list of per-tensor scalars.
"""

from __future__ import annotations

from dataclasses import dataclass

from generator.language.builtins import BUILTINS, TensorOp


@dataclass(frozen=True)
class OpSpelling:
    method: str | None  # Tensor method (out of place); None: only `function`
    inplace: str | None  # in-place Tensor method
    foreach: str | None  # torch._foreach_<name> (out of place; `<name>_` in place)
    function: str | None = None  # torch.<function>(a, b, ...) for ops without a method
    out_kw: bool = False  # in place through `torch.fn(x, a, out=x)`
    scalar_list: frozenset[str] = (
        frozenset()
    )  # foreach slots taking per-tensor scalar lists
    kw_positional: bool = False  # foreach takes the keyword (value=) positionally
    saves_output: bool = (
        False  # autograd keeps the result for the backward pass (sqrt, exp)
    )
    infix: str | None = None  # printed as `a <infix> b` (the matrix product `@`)
    attribute: str | None = None  # printed as `a.<attribute>` (the transpose `.T`)
    # `function` is the generated modules' runtime's (generator.runtime.linalg), imported
    runtime: bool = False
    # the result may be its first argument or a view of it: fresh only where that one is
    view: bool = False


def _spelling(t: TensorOp) -> OpSpelling:
    return OpSpelling(
        t.method,
        t.inplace,
        t.foreach,
        function=t.runtime or t.function,
        saves_output=t.saves_output,
        attribute=t.attribute,
        runtime=t.runtime is not None,
        out_kw=t.out,
        view=t.view,
    )


# The spec's functions that lower to one torch operation, spelled as their table entry says
# (generator.language.builtins): sqrt, exp, cos, ..., sum, atan2, transpose.
_BUILTIN = {b.tensor.op: _spelling(b.tensor) for b in BUILTINS.values() if b.tensor}

# Operations of the IR that are no function of the spec (`-x`, `1 / x`).
_UNARY = {
    name: OpSpelling(name, name + "_", name, saves_output=name == "reciprocal")
    for name in ("neg", "reciprocal")
}

OPS: dict[str, OpSpelling] = {
    **_BUILTIN,
    **_UNARY,
    "square": OpSpelling("square", "square_", None),
    "add": OpSpelling("add", "add_", "add", scalar_list=frozenset({"other"})),
    "sub": OpSpelling("sub", "sub_", "sub", scalar_list=frozenset({"other"})),
    "mul": OpSpelling("mul", "mul_", "mul", scalar_list=frozenset({"other"})),
    "div": OpSpelling("div", "div_", "div", scalar_list=frozenset({"other"})),
    "pow": OpSpelling("pow", "pow_", "pow", scalar_list=frozenset({"other"})),
    "addcmul": OpSpelling(
        "addcmul",
        "addcmul_",
        "addcmul",
        scalar_list=frozenset({"value"}),
        kw_positional=True,
    ),
    "addcdiv": OpSpelling(
        "addcdiv",
        "addcdiv_",
        "addcdiv",
        scalar_list=frozenset({"value"}),
        kw_positional=True,
    ),
    "lerp": OpSpelling("lerp", "lerp_", "lerp", scalar_list=frozenset({"other"})),
    "maximum": OpSpelling(None, None, "maximum", function="maximum", out_kw=True),
    "minimum": OpSpelling(None, None, "minimum", function="minimum", out_kw=True),
    "clamp_min": OpSpelling(
        "clamp_min", "clamp_min_", "clamp_min", scalar_list=frozenset({"other"})
    ),
    "clamp_max": OpSpelling(
        "clamp_max", "clamp_max_", "clamp_max", scalar_list=frozenset({"other"})
    ),
    "clamp": OpSpelling("clamp", "clamp_", None),
    "number_like": OpSpelling("new_tensor", None, None),
    "where": OpSpelling(None, None, None, function="where"),
    "lt": OpSpelling("lt", None, None),
    "le": OpSpelling("le", None, None),
    "gt": OpSpelling("gt", None, None),
    "ge": OpSpelling("ge", None, None),
    "eq": OpSpelling("eq", None, None),
    "ne": OpSpelling("ne", None, None),
    # masks joined element by element (no foreach form: per tensor on the multi-tensor path)
    "logical_and": OpSpelling("logical_and", None, None),
    "logical_or": OpSpelling("logical_or", None, None),
    "logical_not": OpSpelling("logical_not", None, None),
    "copy": OpSpelling(None, "copy_", "copy"),
    "clone": OpSpelling("clone", None, None),
    "onehot": OpSpelling(None, None, None, function="_onehot_like"),
    # Reductions and matrix operations: no foreach form, so the multi-tensor path runs them per
    # tensor (as torch's foreach Adafactor does), around the foreach calls of the elementwise part.
    "norm": OpSpelling("norm", None, None),
    "flatten": OpSpelling("flatten", None, None),
    "dot": OpSpelling(None, None, None, function="dot"),
    "fill": OpSpelling(None, "fill_", None),
    "mean": OpSpelling("mean", None, None),
    "matmul": OpSpelling(None, None, None, infix="@"),
    "addmm": OpSpelling(None, "addmm_", None, function="addmm"),
}
