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
    optional: int = 0  # how many trailing arguments may be left out
    per_parameter: bool = False  # on a tensor: a number that differs between parameters


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
            per_parameter=True,
        ),
        Builtin("rsqrt", ("any",), "follow", "1 / sqrt(x), in one operation"),
        Builtin(
            "norm",
            ("tensor", "int"),
            "tensor",
            "the 2-norm: of the whole tensor (a one-element tensor), or along a dimension "
            "(kept, of size 1)",
            optional=1,
        ),
        Builtin(
            "mean",
            ("tensor", "int"),
            "tensor",
            "the mean along a dimension (kept, of size 1)",
        ),
        Builtin(
            "size",
            ("tensor", "int"),
            "int",
            "the size of a tensor along a dimension",
            per_parameter=True,
        ),
        Builtin(
            "dim",
            ("tensor",),
            "int",
            "the number of dimensions of a tensor",
            "both",
            per_parameter=True,
        ),
        Builtin(
            "item",
            ("tensor",),
            "scalar",
            "the value of a one-element tensor as a Python number (a host-device sync, as "
            "torch's Adafactor reads its norms)",
            per_parameter=True,
        ),
        Builtin(
            "machine_epsilon",
            ("tensor",),
            "scalar",
            "the machine epsilon of a tensor's dtype (torch.finfo(dtype).eps)",
            per_parameter=True,
        ),
        Builtin(
            "dot",
            ("tensor", "tensor"),
            "tensor",
            "the inner product of two tensors, as flat vectors (a 0-d tensor)",
        ),
        Builtin("sum", ("tensor",), "tensor", "the sum of all elements (a 0-d tensor)"),
        Builtin(
            "atan2",
            ("tensor", "tensor"),
            "tensor",
            "atan2(a, b): the angle of (b, a), elementwise; a / b without its blow-up "
            "where b is small",
        ),
        Builtin("transpose", ("tensor",), "tensor", "the transpose of a matrix"),
        Builtin(
            "bfloat16",
            ("tensor",),
            "tensor",
            "the tensor in bfloat16 (itself if it already is)",
        ),
        Builtin(
            "is_complex",
            ("tensor",),
            "bool",
            "whether the parameter (or gradient) is complex",
            "validation",
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
