"""The functions a spec may call, with what they accept and return.

One table serves the checker (arity and argument kinds), the lowering (which IR operation a call
becomes) and the documentation (the language reference lists this table). Kinds: "scalar" (a number:
a hyperparameter, a step-dependent value), "tensor" (shaped like the parameter), "bool", "any"
(scalar or tensor, the result follows the arguments).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Builtin:
    name: str
    params: tuple[str, ...]  # kinds of the arguments
    result: str  # "scalar", "tensor", "bool", "int", or "follow" (tensor if any argument is)
    doc: str
    context: str = (
        "update"  # "update", "validation" (constructor checks only) or "both"
    )


BUILTINS: dict[str, Builtin] = {
    b.name: b
    for b in [
        Builtin(
            "sqrt", ("any",), "follow", "square root, elementwise on tensors", "both"
        ),
        Builtin("abs", ("any",), "follow", "absolute value", "both"),
        Builtin("sign", ("any",), "follow", "sign (-1, 0 or 1)"),
        Builtin("exp", ("any",), "follow", "exponential"),
        Builtin("log", ("any",), "follow", "natural logarithm"),
        Builtin("max", ("any", "any"), "follow", "elementwise maximum", "both"),
        Builtin("min", ("any", "any"), "follow", "elementwise minimum", "both"),
        Builtin(
            "clamp", ("any", "scalar", "scalar"), "follow", "clamp into [low, high]"
        ),
        Builtin(
            "lerp",
            ("tensor", "tensor", "scalar"),
            "tensor",
            "lerp(a, b, w) = a + w (b - a)",
        ),
        Builtin(
            "where",
            ("bool", "any", "any"),
            "tensor",
            "where(condition, a, b): a where the elementwise condition holds, else b",
        ),
        Builtin(
            "numel",
            ("any",),
            "int",
            "number of elements (of the parameter, or of a tensor argument)",
            "both",
        ),
        Builtin(
            "is_tensor",
            ("any",),
            "bool",
            "whether an input was given as a tensor",
            "validation",
        ),
        Builtin(
            "is_sparse",
            ("tensor",),
            "bool",
            "whether the gradient is sparse (checked at each step, before the update)",
            "validation",
        ),
        Builtin(
            "randint",
            ("scalar",),
            "int",
            "a uniformly random integer in [0, n) from torch's default generator",
        ),
        Builtin(
            "onehot",
            ("scalar",),
            "tensor",
            "a tensor shaped like the parameter, 1 at flat index k and 0 elsewhere",
        ),
    ]
}
