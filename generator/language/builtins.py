"""The functions and constants a spec may use, each declared once with everything every stage needs.

One table serves the checker (arity and argument kinds), the lowering (which IR operation a call
becomes), the Python printers (a call on numbers, on 0-d tensors, on tensors: method, in-place and
foreach spellings), the complex-number analysis, the fused kernel (which operations it may hold)
and the documentation (LaTeX). Adding an elementwise function such as ``cos`` is one entry here;
tests/test_builtins_table.py checks that every consumer can spell every entry. Argument and result
types are the language's (generator.language.types: "scalar" a number, "int" a whole one, "tensor"
shaped like the parameter, "bool"), or "any" (scalar or tensor: the result follows the arguments).

Nothing here knows about the emitters (they read this table, never the other way round): the
spellings are plain strings.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from generator.language.types import Kind

# what a signature may say besides a type (generator.language.types)
ANY = "any"  # an argument: a number or a tensor
LIST = "list"  # an argument: a list, of any items
FOLLOW = "follow"  # a result: a tensor if any argument is one, else a number (flat: the first's)
ELEMENT = "element"  # a flat result: an item of the list (a vector's: a 0-d tensor)


def _type(word: str, markers: tuple[str, ...]) -> Kind | str:
    """A type of the table as its Kind, or one of the ``markers`` (a misspelling fails here)."""
    return word if word in markers else Kind(word)


@dataclass(frozen=True)
class TensorOp:
    """The IR operation a call on tensors lowers to, argument for argument, and torch's spellings
    of it (generator.emit.python.ops builds its OpSpelling from these)."""

    op: str  # the IR operation's name (ir.TOp.op)
    method: str | None = None  # Tensor method, out of place (`x.sqrt()`)
    inplace: str | None = None  # in-place Tensor method (`x.sqrt_()`)
    foreach: str | None = None  # torch._foreach_<foreach> (`<foreach>_` in place)
    attribute: str | None = None  # printed as `x.<attribute>` (the transpose `.T`)
    saves_output: bool = (
        False  # autograd keeps the result for the backward pass (sqrt, exp)
    )
    # a function of the generated modules' runtime (generator.runtime.linalg), `name(x, ...)`
    runtime: str | None = None
    # torch's function, `torch.<function>(x, ...)` (`linalg.cholesky`), for one without a method
    function: str | None = None
    # takes `out=`: `x <- f(x, ...)` on a tensor the update owns is `f(x, ..., out=x)`, in place
    # (the runtime's put_block, which writes one block of x)
    out: bool = False
    # the result may share memory with the first argument (a view of it, or the argument
    # itself where nothing changes: `x.to(dtype)` of a tensor of that dtype): never updated in
    # place as a fresh result is
    view: bool = False


def elementwise_op(name: str, saves_output: bool = False) -> TensorOp:
    """An elementwise torch function with a method, an in-place method and a foreach form of
    its own name (``sqrt``, ``sqrt_``, ``torch._foreach_sqrt``)."""
    return TensorOp(name, name, name + "_", name, saves_output=saves_output)


@dataclass(frozen=True)
class FlatForm:
    """The function in `update flat:` and procedures, where a value is a number, a 0-d tensor,
    the vector of all parameters (or one computed from it) or a list."""

    least: int  # how many arguments, at least
    most: int  # and at most
    # the type of the result: a Kind ("reduced" a 0-d tensor, "tensor" the vector of all
    # parameters, "scalar" a number), or "follow" (the first argument's), "element" (of one list
    # or vector argument; of several, any of them)
    result: Kind | str
    # on a vector first argument (with ``on_tensors``, on anything that may be a tensor): torch's
    # method, ``{0}`` the first argument, ``{1}`` the next ones; numbers take the Python form
    vector: str | None = None
    on_tensors: bool = False
    needs: str | None = None  # "vectors": every argument must be one; "list": the first

    def __post_init__(self):
        object.__setattr__(self, "result", _type(self.result, (FOLLOW, ELEMENT)))


@dataclass(frozen=True)
class Builtin:
    name: str
    params: tuple[
        Kind | str, ...
    ]  # the arguments' types, or "any" (scalar or tensor), "list"
    result: Kind | str  # a Kind, or "follow" (tensor if any argument is, else scalar)
    doc: str
    context: str = (
        # "update", "validation" (constructor checks only), "both", "flat" (only in
        # `update flat:` and procedures), "state" (a state's first value), or "estimate"
        # (the whole value of a per-parameter state in `update optimizer:`, made for every
        # parameter at once by the function of generator.runtime.estimates named `estimate`)
        "update"
    )
    optional: int = 0  # how many trailing arguments may be left out
    per_parameter: bool = False  # on a tensor: a number that differs between parameters
    whole: bool = False  # on whole numbers, a whole number (`max(dim(param), 1)`)
    # -- how each stage spells it --------------------------------------------------------------------
    # computed element by element (a fused kernel may hold it, on flattened tensors); a function
    # that is not reduces or reshapes
    elementwise: bool = False
    # a call on tensors lowers to TOp(tensor.op, its arguments); None: the lowering has a rule of
    # its own for it (max → maximum or clamp_min, dot → flattened, norm/mean → keyword arguments)
    tensor: TensorOp | None = None
    # on Python numbers: the expression, `{0}`, `{1}` its printed arguments ("math.sqrt({0})");
    # an expression that is not an atom is parenthesised here. None: numbers are not taken
    python: str | None = None
    # on numbers that are 0-d tensors (inside a fused kernel, capturable counters): torch's function
    torch: str | None = None
    # on complex numbers its result differs from the same function on the real view (the update
    # then runs on torch.view_as_real, as torch's own optimizers do)
    nonlinear_complex: bool = False
    # LaTeX, `{0}`, `{1}` the arguments (braces doubled); None: \mathrm{name}\left(...\right)
    latex: str | None = None
    # in `update flat:` and procedures (None: not there)
    flat: FlatForm | None = None
    # the shape of the result, where it is neither elementwise nor a number (shape_rule)
    shape: str | None = None
    # not elementwise, yet its result has its tensor argument's shape (a copy, a cast, a product
    # along a dimension by a square matrix): the lowering may then update it in place like any
    # value of the parameter's shape (generator.lower.statements.OTHER_SHAPES)
    keeps_shape: bool = False
    # an "estimate": its function in generator.runtime.estimates, called as
    # `name(self.param_groups, self.state, key, *arguments)`
    estimate: str | None = None
    # a number read off a tensor by this function of the generated modules' runtime
    # (generator.runtime.linalg), `name(x, ...)`
    runtime: str | None = None

    def __post_init__(self):
        object.__setattr__(
            self, "params", tuple(_type(p, (ANY, LIST)) for p in self.params)
        )
        object.__setattr__(self, "result", _type(self.result, (FOLLOW,)))


@dataclass(frozen=True)
class Constant:
    """A named number of the language (``pi``): a spec may read it anywhere a number goes, and may
    not define a name of its own with it (E201), as it cannot with ``true``, ``false``, ``none``.
    """

    name: str
    doc: str
    value: float | str
    python: str  # the Python expression (the generated module imports math or torch)
    latex: str
    kind: Kind = Kind.SCALAR


CONSTANTS: dict[str, Constant] = {
    c.name: c
    for c in [
        Constant(
            "pi",
            "π = 3.14159…, the ratio of a circle's circumference to its diameter",
            math.pi,
            "math.pi",
            r"\pi",
        ),
    ]
    + [
        Constant(
            name,
            f"torch.{name}, a dtype (an input's default, a cast's target)",
            name,
            f"torch.{name}",
            rf"\mathrm{{{{{name}}}}}",
            Kind.DTYPE,
        )
        for name in ("float32", "float64", "float16", "bfloat16")
    ]
}


BUILTINS: dict[str, Builtin] = {
    b.name: b
    for b in [
        Builtin(
            "sqrt",
            ("any",),
            "follow",
            "square root, elementwise on tensors",
            "both",
            elementwise=True,
            tensor=elementwise_op("sqrt", saves_output=True),
            python="math.sqrt({0})",
            torch="torch.sqrt",
            nonlinear_complex=True,
            latex=r"\sqrt{{{0}}}",
            flat=FlatForm(1, 1, "follow", "{0}.sqrt()", on_tensors=True),
        ),
        Builtin(
            "abs",
            ("any",),
            "follow",
            "absolute value",
            "both",
            whole=True,
            elementwise=True,
            tensor=elementwise_op("abs"),
            python="abs({0})",
            nonlinear_complex=True,
            latex=r"\left|{0}\right|",
            flat=FlatForm(1, 1, "follow", "{0}.abs()"),
        ),
        Builtin(
            "sign",
            ("any",),
            "follow",
            "sign (-1, 0 or 1)",
            elementwise=True,
            tensor=elementwise_op("sign"),
            python="(math.copysign(1.0, {0}) if {0} != 0 else 0.0)",
            nonlinear_complex=True,
        ),
        Builtin(
            "exp",
            ("any",),
            "follow",
            "exponential",
            elementwise=True,
            tensor=elementwise_op("exp", saves_output=True),
            python="math.exp({0})",
            torch="torch.exp",
            nonlinear_complex=True,
        ),
        Builtin(
            "log",
            ("any",),
            "follow",
            "natural logarithm",
            elementwise=True,
            tensor=elementwise_op("log"),
            python="math.log({0})",
            torch="torch.log",
            nonlinear_complex=True,
        ),
        Builtin(
            "max",
            ("any", "any"),
            "follow",
            "elementwise maximum",
            "both",
            whole=True,
            elementwise=True,
            python="max({0}, {1})",
            torch="torch.maximum",
            flat=FlatForm(1, 8, "element", "{0}.max()"),
        ),
        Builtin(
            "min",
            ("any", "any"),
            "follow",
            "elementwise minimum",
            "both",
            whole=True,
            elementwise=True,
            python="min({0}, {1})",
            torch="torch.minimum",
            flat=FlatForm(1, 8, "element", "{0}.min()"),
        ),
        Builtin(
            "clamp",
            ("any", "scalar", "scalar"),
            "follow",
            "clamp into [low, high]",
            elementwise=True,
        ),
        Builtin(
            "lerp",
            ("tensor", "tensor", "scalar"),
            "tensor",
            "lerp(a, b, w) = a + w (b - a)",
            elementwise=True,
        ),
        Builtin(
            "where",
            ("bool", "any", "any"),
            "tensor",
            "where(condition, a, b): a where the elementwise condition holds, else b",
            elementwise=True,
        ),
        Builtin(
            "numel",
            ("any",),
            "int",
            "number of elements (of the parameter, or of a tensor argument)",
            "both",
            per_parameter=True,
        ),
        Builtin(
            "rsqrt",
            ("any",),
            "follow",
            "1 / sqrt(x), in one operation",
            elementwise=True,
            tensor=elementwise_op("rsqrt", saves_output=True),
            nonlinear_complex=True,
        ),
        Builtin(
            "norm",
            ("tensor", "int"),
            "tensor",
            "the 2-norm: of the whole tensor (a one-element tensor), or along a dimension "
            "(kept, of size 1)",
            optional=1,
            flat=FlatForm(1, 1, "reduced", "{0}.norm()", needs="vectors"),
            shape="one element (a 0-d tensor); along dimension d, the argument's shape with d of size 1",
        ),
        Builtin(
            "mean",
            ("tensor", "int"),
            "tensor",
            "the mean: of the whole tensor (a 0-d tensor), or along a dimension (kept, of "
            "size 1)",
            optional=1,
            shape="a 0-d tensor; along dimension d, the argument's shape with d of size 1",
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
            latex=r"\langle {0}, {1} \rangle",
            flat=FlatForm(2, 2, "reduced", "{0}.dot({1})", needs="vectors"),
            shape="a 0-d tensor",
        ),
        Builtin(
            "sum",
            ("tensor", "int"),
            "tensor",
            "the sum: of all elements (a 0-d tensor), or along a dimension (kept, of size 1)",
            optional=1,
            tensor=TensorOp("sum", method="sum"),
            flat=FlatForm(1, 1, "reduced", "{0}.sum()", needs="vectors"),
            shape="a 0-d tensor; along dimension d, the argument's shape with d of size 1",
        ),
        Builtin(
            "clone",
            ("tensor",),
            "tensor",
            "a copy of a vector, which later changes of the vector leave as it was",
            "flat",
            flat=FlatForm(
                1,
                1,
                "tensor",
                "{0}.clone(memory_format=torch.contiguous_format)",
                needs="vectors",
            ),
            keeps_shape=True,
            shape="the argument's shape",
        ),
        Builtin(
            "len",
            ("list",),
            "int",
            "the length of a list (a list state, a local list, a `tuple of float` input)",
            "both",
            python="len({0})",
            flat=FlatForm(1, 1, "scalar", needs="list"),
        ),
        Builtin(
            "atan2",
            ("tensor", "tensor"),
            "tensor",
            "atan2(a, b): the angle of (b, a), elementwise; a / b without its blow-up "
            "where b is small",
            elementwise=True,
            tensor=TensorOp("atan2", method="atan2", inplace="atan2_"),
        ),
        Builtin(
            "transpose",
            ("tensor",),
            "tensor",
            "the transpose of a matrix",
            tensor=TensorOp("transpose", attribute="T", view=True),
            shape="the matrix transposed: (n, m) from (m, n)",
        ),
        Builtin(
            "bfloat16",
            ("tensor",),
            "tensor",
            "the tensor in bfloat16 (itself if it already is)",
            tensor=TensorOp("bfloat16", method="bfloat16", view=True),
            keeps_shape=True,
            shape="the argument's shape",
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
            python="isinstance({0}, Tensor)",
        ),
        Builtin(
            "is_number",
            ("any",),
            "bool",
            "whether an input was given as a number (an int or a float, not a callable or a "
            "string)",
            "validation",
            python="isinstance({0}, (int, float))",
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
            python="int(torch.randint({0}, (1,)).item())",
        ),
        Builtin(
            "onehot",
            ("scalar",),
            "tensor",
            "a tensor shaped like the parameter, 1 at flat index k and 0 elsewhere",
            keeps_shape=True,
            shape="the parameter's shape",
        ),
        Builtin(
            "inverse_root",
            ("tensor", "scalar"),
            "tensor",
            "inverse_root(A, p) = A^(-1/p) of a symmetric positive semidefinite matrix, "
            "through its singular value decomposition in float32 (float64 for float64), as "
            "pytorch_optimizer's Shampoo computes its preconditioners",
            tensor=TensorOp("inverse_root", runtime="inverse_root"),
            nonlinear_complex=True,
            shape="the matrix's: (n, n)",
            latex=r"{0}^{{-\frac{{1}}{{{1}}}}}",
        ),
        Builtin(
            "hutchinson",
            ("int", "str"),
            "tensor",
            "hutchinson(n, distribution): Hutchinson's estimate of the Hessian's diagonal, the "
            'mean of z ⊙ Hz over n probes z ("rademacher": ±1, or "gaussian"), one '
            "Hessian-vector product over every parameter with a gradient per probe; the "
            "gradients must carry their graph (`loss.backward(create_graph=True)`), and the "
            "probes are drawn from torch's generator as pytorch_optimizer's AdaHessian draws them",
            "estimate",
            estimate="hutchinson_",
            shape="the parameter's",
            latex=r"\widehat{{\operatorname{{diag}}}}\left(\nabla^2 f\right)_{{{0}, {1}}}",
        ),
        Builtin(
            "gram",
            ("tensor", "int"),
            "tensor",
            "gram(x, k): the Gram matrix of x's fibers along dimension k, unfold(x, k) @ "
            "transpose(unfold(x, k)), computed as torch.tensordot(x, x) over every other "
            "dimension (pytorch_optimizer's SOAP's statistic, to its rounding; of a vector, "
            "the outer product)",
            tensor=TensorOp("gram", runtime="gram"),
            nonlinear_complex=True,
            shape="(size(x, k), size(x, k))",
            latex=r"G_{{{1}}}\left({0}\right)",
        ),
        Builtin(
            "eigenvectors",
            ("tensor",),
            "tensor",
            "eigenvectors(A): the eigenvectors of a symmetric matrix, as columns, from the "
            "largest eigenvalue to the smallest (torch.linalg.eigh of A + 1e-30 I, columns "
            "reversed, as pytorch_optimizer's SOAP computes its eigenbases)",
            tensor=TensorOp("eigenvectors", runtime="eigenvectors"),
            nonlinear_complex=True,
            shape="the matrix's: (n, n)",
            latex=r"\operatorname{{eigvecs}}\left({0}\right)",
        ),
        Builtin(
            "qr",
            ("tensor",),
            "tensor",
            "qr(A): the orthonormal factor Q of A = QR (reduced), computed in float32 and "
            "returned in A's dtype, as pytorch_optimizer's SOAP refreshes its eigenbases",
            tensor=TensorOp("qr", runtime="qr"),
            nonlinear_complex=True,
            shape="(m, min(m, n)) from (m, n)",
            latex=r"\operatorname{{qr}}\left({0}\right)",
        ),
        Builtin(
            "reorder",
            ("tensor", "int", "tensor"),
            "tensor",
            "reorder(x, k, v): x with its slices along dimension k in the order that sorts the "
            "values of v from the largest (x.index_select(k, argsort(v, descending)): SOAP's "
            "eigenbasis and second moment, ordered by estimated eigenvalue)",
            tensor=TensorOp("reorder", runtime="reorder"),
            keeps_shape=True,
            shape="x's shape",
            latex=r"\operatorname{{sort}}_{{{1}}}\left({0} \mid {2}\right)",
        ),
        Builtin(
            "contract_first",
            ("tensor", "tensor"),
            "tensor",
            "contract_first(x, M): x's first dimension contracted with M's rows, the new "
            "dimension (M's columns) last (torch.tensordot(x, M, dims=([0], [0]))): applied "
            "once per dimension, Mᵀ along every dimension in turn, as SOAP projects",
            tensor=TensorOp("contract_first", runtime="contract_first"),
            shape="x's dimensions but the first, then size(M, 1)",
            latex=r"{0} \times_{{1}} {1}",
        ),
        Builtin(
            "rotate",
            ("tensor",),
            "tensor",
            "rotate(x): x with its first dimension moved last (a view): the step of "
            "contract_first for a dimension left as it is",
            tensor=TensorOp("rotate", runtime="rotate", view=True),
            shape="x's dimensions but the first, then the first",
            latex=r"\operatorname{{rot}}\left({0}\right)",
        ),
        Builtin(
            "left_singular",
            ("tensor", "int"),
            "tensor",
            "left_singular(A, r): the first r left singular vectors of a matrix (the columns "
            "of U in A = U diag(s) Vᵀ, all of them where r is larger), through a singular value "
            "decomposition in float32, as pytorch_optimizer's GaLore computes its projections",
            tensor=TensorOp("left_singular", runtime="left_singular"),
            nonlinear_complex=True,
            shape="(m, min(r, m, n)) from (m, n)",
            latex=r"U_{{{1}}}\left({0}\right)",
        ),
        Builtin(
            "right_singular",
            ("tensor", "int"),
            "tensor",
            "right_singular(A, r): the first r right singular vectors of a matrix, as rows "
            "(the rows of Vᵀ in A = U diag(s) Vᵀ, all of them where r is larger), through a "
            "singular value decomposition in float32, as pytorch_optimizer's GaLore computes "
            "its projections",
            tensor=TensorOp("right_singular", runtime="right_singular"),
            nonlinear_complex=True,
            shape="(min(r, m, n), n) from (m, n)",
            latex=r"V^\top_{{{1}}}\left({0}\right)",
        ),
        Builtin(
            "trace",
            ("tensor",),
            "tensor",
            "the sum of a matrix's diagonal (a 0-d tensor)",
            tensor=TensorOp("trace", method="trace"),
            shape="a 0-d tensor",
            latex=r"\operatorname{{tr}}\left({0}\right)",
        ),
        Builtin(
            "diag",
            ("tensor",),
            "tensor",
            "the diagonal of a matrix as a vector, or the diagonal matrix of a vector",
            tensor=TensorOp("diag", method="diag"),
            shape="(n,) from (n, n); (n, n) from (n,)",
            latex=r"\operatorname{{diag}}\left({0}\right)",
        ),
        Builtin(
            "cholesky",
            ("tensor",),
            "tensor",
            "the lower-triangular Cholesky factor L of a symmetric positive definite matrix "
            "(A = L Lᵀ)",
            tensor=TensorOp("cholesky", function="linalg.cholesky"),
            nonlinear_complex=True,
            shape="the matrix's: (n, n)",
        ),
        Builtin(
            "unfold",
            ("tensor", "int"),
            "tensor",
            "unfold(x, k): the mode-k unfolding, a matrix whose rows run along dimension k "
            "and whose columns over the others, in order (x.movedim(k, 0) flattened after "
            "its first dimension)",
            tensor=TensorOp("unfold", runtime="unfold"),
            shape="(size(x, k), numel(x) / size(x, k))",
        ),
        Builtin(
            "mode_product",
            ("tensor", "tensor", "int"),
            "tensor",
            "mode_product(x, M, k): x multiplied by the symmetric matrix M along dimension k "
            "(each fiber along k replaced by M @ fiber; along the last dimension computed as "
            "unfold(x, k)ᵀ @ M, as Shampoo's reference does)",
            tensor=TensorOp("mode_product", runtime="mode_product"),
            keeps_shape=True,
            shape="x's shape with dimension k of size(M, 0)",
            latex=r"{0} \times_{{{2}}} {1}",
        ),
        Builtin(
            "zeros",
            ("int", "int", "int", "int"),
            "tensor",
            "a tensor of zeros of the dimensions given (a state of its own shape)",
            "state",
            optional=3,
            shape="the dimensions given: (d0, d1, ...)",
        ),
        Builtin(
            "ones",
            ("int", "int", "int", "int"),
            "tensor",
            "a tensor of ones of the dimensions given (times a number: any value)",
            "state",
            optional=3,
            shape="the dimensions given: (d0, d1, ...)",
        ),
        Builtin(
            "zeros_along",
            ("tensor", "int"),
            "tensor",
            "zeros_along(param, k): zeros of size(param, k) along dimension k and of size 1 "
            "along the parameter's other dimensions, a vector that broadcasts against the "
            "parameter (of a 0-d parameter, a 0-d zero): SM3's accumulator for dimension k",
            "state",
            tensor=TensorOp("zeros_along", runtime="zeros_along"),
            shape="the parameter's shape with every dimension but k of size 1",
        ),
        Builtin(
            "max_except",
            ("tensor", "int"),
            "tensor",
            "max_except(x, k): the maximum over every dimension of x but k, the dimensions "
            "kept (of size 1); of a 0-d tensor, the tensor itself",
            tensor=TensorOp("max_except", runtime="max_except"),
            shape="x's shape with every dimension but k of size 1",
            latex=r"\max_{{\neg {1}}}\left({0}\right)",
        ),
        Builtin(
            "mean_except",
            ("tensor", "int"),
            "tensor",
            "mean_except(x, k): the mean over every dimension of x but k, the dimensions kept "
            "(of size 1), as gradient centralization takes each output channel's mean; of a "
            "0-d tensor, or one with k its only dimension, the tensor itself",
            # (the tensor itself where there is nothing to reduce)
            tensor=TensorOp("mean_except", runtime="mean_except", view=True),
            shape="x's shape with every dimension but k of size 1",
            latex=r"\operatorname{{mean}}_{{\neg {1}}}\left({0}\right)",
        ),
        Builtin(
            "newton_inverse_root",
            ("tensor", "int", "scalar"),
            "tensor",
            "newton_inverse_root(A, p, ridge) = (A + ridge · λ_max(A) I)^(-1/p) of a symmetric "
            "positive semidefinite matrix, by the coupled Newton iteration of Guo & Higham "
            "(λ_max by power iteration from a random vector drawn from torch's generator), as "
            "pytorch_optimizer's ScalableShampoo computes its preconditioners",
            tensor=TensorOp("newton_inverse_root", runtime="newton_inverse_root"),
            nonlinear_complex=True,
            shape="the matrix's: (n, n)",
            latex=r"\left({0} + {2} \lambda_{{\max}} I\right)^{{-\frac{{1}}{{{1}}}}}",
        ),
        Builtin(
            "merge_dims",
            ("tensor", "int"),
            "tensor",
            "merge_dims(x, n): x reshaped with its neighbouring dimensions merged while their "
            "product stays at most n (a dimension larger than n closes the ones before it, a 1 "
            "if there are none), as pytorch_optimizer's ScalableShampoo interprets a shape; "
            "one merged dimension gives a vector",
            tensor=TensorOp("merge_dims", runtime="merge_dims", view=True),
            shape="x's elements, in its dimensions merged up to n each",
            latex=r"\operatorname{{merge}}_{{{1}}}\left({0}\right)",
        ),
        Builtin(
            "block_count",
            ("tensor", "int"),
            "int",
            "block_count(x, n): how many blocks x is cut into when each of its dimensions is "
            "split in pieces of n (the last piece the rest; n <= 0 splits nothing)",
            per_parameter=True,
            runtime="block_count",
        ),
        Builtin(
            "block",
            ("tensor", "int", "int"),
            "tensor",
            "block(x, b, n): the b-th block of x cut into pieces of n along each dimension, "
            "numbered with the last dimension's pieces running fastest (a view)",
            tensor=TensorOp("block", runtime="block", view=True),
            shape="x's, each dimension cut to its piece: at most n",
            latex=r"\operatorname{{block}}_{{{2}}}\left({0}, {1}\right)",
        ),
        Builtin(
            "put_block",
            ("tensor", "int", "int", "tensor"),
            "tensor",
            "put_block(x, b, n, v): x with its b-th block (as `block(x, b, n)` reads it) "
            "replaced by v; `D <- put_block(D, b, n, v)` on a tensor the update made writes D "
            "in place",
            tensor=TensorOp("put_block", runtime="put_block", out=True),
            keeps_shape=True,
            shape="x's",
            latex=r"\operatorname{{put}}_{{{2}}}\left({0}, {1}, {3}\right)",
        ),
        Builtin(
            "reshape_as",
            ("tensor", "tensor"),
            "tensor",
            "reshape_as(x, y): x's elements in y's shape (a view where torch can make one)",
            tensor=TensorOp("reshape_as", method="reshape_as", view=True),
            shape="y's",
            latex=r"\operatorname{{reshape}}\left({0}, {1}\right)",
        ),
        Builtin(
            "one_shape",
            ("list",),
            "bool",
            "one_shape(xs): whether the tensors of a list all have one shape (false for an "
            "empty list): where they have, ScalableShampoo's reference stacks its statistics "
            "and updates them with one batched product",
            per_parameter=True,
            runtime="one_shape",
        ),
        Builtin(
            "contiguous",
            ("tensor",),
            "tensor",
            "contiguous(x): x laid out row by row (a copy where it is not, x itself where it "
            "is): the same values, but a matrix product rounds by its operands' layout, and "
            "ScalableShampoo's reference multiplies stacked (contiguous) copies",
            tensor=TensorOp("contiguous", method="contiguous", view=True),
            keeps_shape=True,
            shape="x's",
            latex=r"{0}",
        ),
        Builtin(
            "max_size",
            ("tensor",),
            "int",
            "max_size(x): the largest of x's sizes (0 for a 0-d tensor)",
            "both",
            per_parameter=True,
        ),
        Builtin(
            "eye",
            ("int",),
            "tensor",
            "the n × n identity matrix (times a number: eps · I, Shampoo's first statistic)",
            "state",
            shape="(n, n)",
            latex=r"I_{{{0}}}",
        ),
        Builtin(
            "identity_factor",
            ("tensor", "int", "bool"),
            "tensor",
            "identity_factor(param, k, dense): the identity along dimension k of the parameter, "
            "the size(param, k)-square identity matrix where dense, else its diagonal (a vector "
            "of ones); of a 0-d parameter, a 0-d one (PSGD Kron's first factors)",
            "state",
            tensor=TensorOp("identity_factor", runtime="identity_factor"),
            shape="(size(param, k), size(param, k)) where dense, else (size(param, k),)",
        ),
        Builtin(
            "kron_apply",
            ("list", "tensor"),
            "tensor",
            "kron_apply(Q, x): Q x, each factor of the list Q applied along its dimension of x "
            "(a matrix multiplies the fibers, a vector scales them), in one torch.einsum as "
            "pytorch_optimizer's Kron contracts it",
            tensor=TensorOp("kron_apply", runtime="kron_apply"),
            keeps_shape=True,
            shape="x's",
            latex=r"{0}\,{1}",
        ),
        Builtin(
            "kron_solve",
            ("list", "tensor"),
            "tensor",
            "kron_solve(Q, x): Q⁻ᴴ x, x multiplied from the right by the inverse of each factor "
            "along its dimension (a triangular solve in float32 for a matrix, a division for a "
            "vector), as pytorch_optimizer's Kron computes it",
            tensor=TensorOp("kron_solve", runtime="kron_solve"),
            keeps_shape=True,
            shape="x's",
            latex=r"{0}^{{-\mathsf{{H}}}}\,{1}",
        ),
        Builtin(
            "kron_gram",
            ("tensor", "list", "int"),
            "tensor",
            "kron_gram(x, Q, k): the statistic of the factor Q[k]: the Gram matrix of x's fibers "
            "along dimension k (X₍ₖ₎ X₍ₖ₎ᴴ) for a matrix factor, the sums of x's squared "
            "magnitudes over the other dimensions for a vector one; an einsum, as "
            "pytorch_optimizer's Kron computes it",
            tensor=TensorOp("kron_gram", runtime="kron_gram"),
            shape="(size(x, k), size(x, k)) for a matrix factor, else (size(x, k),)",
            latex=r"G_{{{2}}}\left({0}; {1}\right)",
        ),
        Builtin(
            "kron_precondition",
            ("list", "tensor"),
            "tensor",
            "kron_precondition(Q, x): Qᴴ Q x, the Kronecker-factored preconditioner applied "
            "along every dimension of x, in one torch.einsum as pytorch_optimizer's Kron "
            "contracts it",
            tensor=TensorOp("kron_precondition", runtime="kron_precondition"),
            keeps_shape=True,
            shape="x's",
            latex=r"{0}^{{\mathsf{{H}}}} {0}\,{1}",
        ),
        Builtin(
            "norm_lower_bound",
            ("tensor",),
            "tensor",
            "norm_lower_bound(A): a lower bound of the spectral norm of a matrix (of a vector, "
            "its norm), a 0-d tensor: A scaled by its largest magnitude, then the larger of two "
            "one-step power estimates from its heaviest row and column (PSGD's)",
            tensor=TensorOp("norm_lower_bound", runtime="norm_lower_bound"),
            shape="a 0-d tensor",
            latex=r"\underline{{\left\|{0}\right\|}}_2",
        ),
        Builtin(
            "norms_geometric_mean",
            ("list",),
            "tensor",
            "norms_geometric_mean(Q): the geometric mean of the largest magnitudes of the "
            "tensors of a list, (Π ‖Q_k‖∞)^(1/n), a 0-d tensor (PSGD's balancing of its "
            "factors)",
            tensor=TensorOp("norms_geometric_mean", runtime="norms_geometric_mean"),
            shape="a 0-d tensor",
            latex=r"\left(\prod_k \left\|{0}[k]\right\|_\infty\right)^{{1/n}}",
        ),
        Builtin(
            "max_abs",
            ("tensor",),
            "tensor",
            "max_abs(x): the largest magnitude of x's entries, ‖x‖∞ of its entries (a 0-d "
            "tensor)",
            tensor=TensorOp("max_abs", runtime="max_abs"),
            shape="a 0-d tensor",
            latex=r"\left\|{0}\right\|_\infty",
        ),
        Builtin(
            "triu",
            ("tensor",),
            "tensor",
            "triu(A): the upper triangle of a matrix, the entries below the diagonal zero",
            tensor=TensorOp("triu", method="triu", inplace="triu_"),
            shape="the matrix's: (m, n)",
            latex=r"\operatorname{{triu}}\left({0}\right)",
        ),
        Builtin(
            "randn_like",
            ("tensor",),
            "tensor",
            "randn_like(x): draws of the standard normal distribution shaped like x, in its "
            "dtype, from torch's generator (a seeded run draws alike)",
            tensor=TensorOp("randn_like", function="randn_like"),
            keeps_shape=True,
            shape="x's",
            latex=r"\mathcal{{N}}\left(0, I\right) \text{{ shaped like }} {0}",
        ),
        Builtin(
            "cast",
            ("tensor", "dtype"),
            "tensor",
            "cast(x, d): x in the dtype d (x itself where it has it, or where d is none)",
            tensor=TensorOp("cast", method="to", view=True),
            keeps_shape=True,
            shape="x's",
            latex=r"\operatorname{{cast}}_{{{1}}}\left({0}\right)",
        ),
        Builtin(
            "type_as",
            ("tensor", "tensor"),
            "tensor",
            "type_as(x, y): x in y's dtype (x itself where it has it)",
            tensor=TensorOp("type_as", method="type_as", view=True),
            keeps_shape=True,
            shape="x's",
            latex=r"\operatorname{{cast}}_{{\mathrm{{dtype}}\left({1}\right)}}\left({0}\right)",
        ),
        Builtin(
            "at_least_float32",
            ("tensor",),
            "tensor",
            "at_least_float32(x): x in float32 where its dtype is narrower (float16, "
            "bfloat16), else x itself: the precision pytorch_optimizer's OrthoGrad projects in",
            tensor=TensorOp("at_least_float32", runtime="at_least_float32", view=True),
            keeps_shape=True,
            shape="x's",
            latex=r"\operatorname{{cast}}_{{\geq \mathrm{{float32}}}}\left({0}\right)",
        ),
        Builtin(
            "largest_dim",
            ("tensor",),
            "int",
            "largest_dim(x): the dimension of x of the largest size, the last of them where "
            "several have it (numpy's argsort(shape)[::-1][0]; 0 for a 0-d tensor)",
            per_parameter=True,
            runtime="largest_dim",
        ),
        Builtin(
            "max_size_except",
            ("tensor", "int"),
            "int",
            "max_size_except(x, k): the largest size of x's dimensions other than k (0 where "
            "there is none)",
            per_parameter=True,
            runtime="max_size_except",
        ),
        Builtin(
            "host_uniform",
            (),
            "scalar",
            "host_uniform(): a number drawn uniformly from [0, 1) by numpy's global generator "
            "(np.random.random()), drawn where the step reaches it: a reference that decides "
            "so on the host (PSGD Kron's balancing) then decides alike in a run seeded with "
            "np.random.seed",
            runtime="host_uniform",
        ),
        Builtin(
            "cos",
            ("any",),
            "follow",
            "cosine (radians)",
            elementwise=True,
            tensor=elementwise_op("cos"),
            python="math.cos({0})",
            torch="torch.cos",
            nonlinear_complex=True,
            latex=r"\cos\left({0}\right)",
        ),
        Builtin(
            "sin",
            ("any",),
            "follow",
            "sine (radians)",
            elementwise=True,
            tensor=elementwise_op("sin"),
            python="math.sin({0})",
            torch="torch.sin",
            nonlinear_complex=True,
            latex=r"\sin\left({0}\right)",
        ),
    ]
}


# The functions that change a tensor's dtype and nothing else: each element keeps its value (up
# to the new dtype's rounding), so they read no whole tensor (FSDP2 shards step through them) and
# a fused kernel runs them.
CASTS = frozenset({"bfloat16", "type_as", "cast", "at_least_float32"})


def shape_rule(b: Builtin) -> str:
    """The shape of ``b``'s result, as the language reference states it."""
    if b.shape is not None:
        return b.shape
    if b.result in (Kind.INT, Kind.SCALAR, Kind.BOOL):
        return "a number" if b.result != Kind.BOOL else "true or false"
    if b.elementwise:
        return "elementwise: the shape of its tensor arguments" + (
            "" if b.result == Kind.TENSOR else " (a number on numbers)"
        )
    raise ValueError(f"builtin `{b.name}` declares no shape")


def runtime_functions() -> list[str]:
    """The functions of the generated modules' runtime (generator.runtime.linalg) that the
    table's entries are spelled with, which a generated module imports where it calls one.
    """
    return [
        b.tensor.runtime
        for b in BUILTINS.values()
        if b.tensor is not None and b.tensor.runtime is not None
    ] + [b.runtime for b in BUILTINS.values() if b.runtime is not None]


def estimate_functions() -> list[str]:
    """The functions of generator.runtime.estimates the table's estimates are made by."""
    return [b.estimate for b in BUILTINS.values() if b.estimate is not None]


def unary_elementwise() -> list[Builtin]:
    """The functions of one tensor computed element by element with torch's own function of
    that name (sqrt, exp, cos, ...): the lowering's rule ``x <- f(x)`` → ``x.f_()`` covers them.
    """
    return [
        b
        for b in BUILTINS.values()
        if b.elementwise
        and b.tensor is not None
        and len(b.params) == 1
        and b.tensor.inplace is not None
    ]
