"""The optimizer in the IR: its constructor arguments and their types, the checks of its inputs,
its state buffers, and ``Optimizer``, the whole lowered spec that the emitters print.

Part of generator.ir.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from generator.ir.nodes import *  # noqa: F403
from generator.ir.nodes import _coerce
from generator.ir.walk import walk

# ---- the optimizer ------------------------------------------------------------------------------------


class PyType(enum.Enum):
    """The Python types an argument may take."""

    FLOAT = "float"
    INT = "int"
    BOOL = "bool"
    TENSOR = "Tensor"
    STR = "str"
    DTYPE = "torch.dtype"


@dataclass(frozen=True)
class ArgType:
    """An argument's type: one of ``alternatives`` (or None, when ``optional``); a tuple of
    ``items`` where there are items (``betas: tuple[float, float]``); with ``repeated``, a
    tuple of any length whose items are of this type (``betas: tuple[float, ...]``)."""

    alternatives: tuple[PyType, ...] = ()
    optional: bool = False
    items: tuple["ArgType", ...] = ()
    repeated: bool = False

    def admits(self, t: PyType) -> bool:
        return t in self.alternatives


@dataclass(frozen=True)
class Argument:
    """A constructor argument (one per input declaration, e.g. ``betas`` for beta1 and beta2)."""

    name: str  # the torch-facing argument name
    symbols: tuple[
        str, ...
    ]  # spec symbols it provides (beta1, beta2) — the functional API names
    default: SExpr | None  # None: required
    type: "ArgType"
    keyword: bool
    fixed: bool  # in `defaults` but not in the signature
    tensor_ok: bool  # may be a Tensor (then `_to_scalar` before the update)
    constructor: (
        bool  # state initialisation reads the constructor's value (self.defaults)
    )
    is_flag: bool  # foreach / differentiable / capturable / fused
    doc: str = ""  # what the spec says it is (the class docstring's Args)
    squeezed: bool = False  # stored as `_to_scalar(value)`: a 1-element tensor made 0-d
    explicit: bool = False  # foreach=None runs the for-loop (torch's Adafactor)


@dataclass(frozen=True)
class Validation:
    """A check of the inputs: in the constructor, on every parameter once the groups exist
    (``per_parameter``), or at every step on each gradient (in ``Optimizer.step_checks``).
    """

    fails: SExpr  # the condition under which it raises
    exception: str
    message: Message
    per_parameter: bool = False


@dataclass(frozen=True)
class StateBuffer:
    key: str  # state_dict key
    symbol: str  # name in the spec
    kind: StateKind
    scope: Scope
    init: SExpr | None  # None: lazy
    condition: SExpr | None
    eager: bool
    on_device: bool
    reduced: int | None  # shaped like the parameter with this dimension of size 1
    as_number: bool  # a counter kept as a Python number, written back after the step
    stored_as: str | None  # the storage dtype the spec declares (a torch dtype's name)
    list_name: (
        str  # name of the per-group list in the functional API (exp_avgs, state_steps)
    )
    var: str  # the single-tensor loop variable (exp_avg, step_t)
    # a list of this many tensors of each parameter (``[0] * n``), each made as ``init`` says
    length: SExpr | None = None
    # a tensor of its own shape (``eps * eye(size(param, 0))``): the dimensions given to
    # ``constructor`` (zeros, ones, eye), whose entries (the diagonal's, for eye) are ``init``
    shape: tuple[SExpr, ...] | None = None
    constructor: str | None = None
    # a list made for each value of this variable over range(length) (``[... for k in
    # range(dim(param))]``): ``shape`` reads it
    item_var: str | None = None
    # matrices stored column by column (``, column major``): made transposed, as LAPACK's
    column_major: bool = False
    # made in the dtype this input holds (None there: the parameter's); None: the parameter's
    dtype: str | None = None
    # made in the step and dropped at its end (``, transient``: SAM's old_p)
    transient: bool = False

    def __post_init__(self) -> None:
        _coerce(self, kind=StateKind, scope=Scope)


@dataclass(frozen=True)
class ParameterValue:
    """``let X <- ...`` that the states are made from: computed before them where a
    parameter's state is made (``X = merge_dims(p, group["block_size"])``); the states' values
    name it (an SRef of a number, a local TRef of a tensor)."""

    name: str
    value: SExpr | TExpr  # (a choice of tensors: an SCond of tensors)


@dataclass(frozen=True)
class Optimizer:
    name: str
    spec_path: str
    spec_hash: str
    summary: str
    references: tuple[str, ...]
    notes: tuple[str, ...]
    arguments: tuple[Argument, ...]
    validations: tuple[Validation, ...]
    states: tuple[StateBuffer, ...]
    mode: Mode
    step_block: tuple[Stmt, ...]  # once per step, before parameters
    body: tuple[Stmt, ...]  # per parameter
    hoisted: tuple[
        ScalarLet, ...
    ]  # scalars decided by hyperparameters, computed once per group
    hyper: tuple[str, ...]  # spec symbols the update reads from the group
    helpers: frozenset[str] = field(
        default_factory=frozenset
    )  # module-level helpers used
    has_foreach: bool = False
    # the update reads numbers off tensors (`item`): a host sync per parameter, so counters are
    # read with `.item()` too rather than `_get_value` (which only helps code dynamo can trace)
    reads_numbers: bool = False
    sparse: str | None = (
        None  # "also": sparse gradients update their rows; "only": must be sparse
    )
    defaults_order: tuple[str, ...] | None = None
    latex: str = ""
    # `none means`: (argument, Python source) replacing None in the constructor (LBFGS max_eval)
    # `none means`: (argument, the value the constructor puts in place of None)
    none_means: tuple[tuple[str, SExpr], ...] = ()
    # checks made at every step, on each parameter's gradient (`requires` reading `grad`), and
    # the refusal of sharded parameters by an update that reads whole tensors
    step_checks: tuple[Validation, ...] = ()
    # an `update flat:` spec: its step on all parameters as one vector, and its procedures
    flat: FlatStep | None = None
    # `update group:`: counters of the group dict, counted once per group before its parameters
    group_block: tuple[Stmt, ...] = ()
    methods: tuple[Method, ...] = ()
    # several `update:` blocks: the passes after the first, each over all groups' parameters
    later_passes: tuple[Pass, ...] = ()
    # complex parameters: "first_nonlinear" (their real view from the first operation where
    # complex and real arithmetic differ) or "view_as_real" (all of the update); never run on
    # them where the spec refuses them (`check not is_complex(param)`)
    complex_mode: str = "first_nonlinear"
    refuses_complex: bool = False
    # the foreach path runs once for each rank of the parameters (CheckedSpec.by_rank): there
    # `dim(param)` is one number, read off the first parameter
    by_rank: bool = False
    # the `let` values the per-parameter states are made from, in declaration order
    parameter_values: tuple[ParameterValue, ...] = ()

    def __post_init__(self) -> None:
        _coerce(self, mode=Mode)

    @property
    def evaluates(self) -> bool:
        """Its step evaluates the closure itself (``evaluate()``, SAM's): it needs one, and
        takes the gradients it finds at its start as the first evaluation."""
        blocks = (self.step_block,) + tuple(p.step_block for p in self.later_passes)
        return any(isinstance(s, Evaluate) for b in blocks for s in walk(b))
