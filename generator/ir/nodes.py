"""The IR's nodes: the enums of fixed meanings, scalar and tensor expressions, the statements of
the per-parameter update, and the imperative part (values of any type, loops, lists, procedures).

Part of generator.ir (its package docstring tells the IR's place in the pipeline); every node is a
frozen dataclass, compared and hashed by value.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Union

from generator.language.types import Named

# ---- names the IR gives a fixed meaning ------------------------------------------------------------


class Role(Named):
    """What a tensor reference is."""

    PARAM = "param"
    GRAD = "grad"
    STATE = "state"
    LOCAL = "local"
    TOTAL = "total"  # an optimizer's sum over parameters (Prodigy's)
    FRESH = "fresh"  # a result a printer has just made and may update in place


class Scope(Named):
    """Where a state lives: per parameter, in the group dict, or once per optimizer."""

    PARAMETER = "parameter"
    GROUP = "group"
    OPTIMIZER = "optimizer"


class StateKind(Named):
    TENSOR = "tensor"  # shaped like the parameter (or reduced)
    COUNT = "count"  # a step counter
    FLAG = "flag"  # a counter that holds a decision
    TOTAL = "total"  # a sum over all parameters


class Mode(Named):
    """How the update visits the parameters."""

    EACH = "each"  # once per parameter with a gradient
    RANDOM = "random"  # one parameter drawn at random
    FLAT = "flat"  # all parameters as one vector (LBFGS)


def _coerce(node, **enums) -> None:
    """Make a frozen node's named fields members of their enums (a string is accepted and
    checked)."""
    for name, kind in enums.items():
        object.__setattr__(node, name, kind(getattr(node, name)))


# ---- scalar expressions (numbers and conditions computed on the host) ----------------------------------


@dataclass(frozen=True)
class SConst:
    """A literal: a number, true, false, none or a string (spec text, printed escaped). A
    number keeps the spelling the spec gives it (``1e-4``, ``-1``), which the generated code
    shows; a language constant is named by it (``pi``, ``inf``)."""

    value: int | float | bool | str | None
    spelling: str = ""

    @property
    def form(self) -> "Form":
        """As a value of a flat update: a literal is a Python value."""
        return Form.HOST

    @property
    def named(self) -> bool:
        """A language constant (``pi``, ``inf``), printed by its name in Python's math."""
        return self.spelling.lstrip("-")[:1].isalpha()


def number(text: str) -> SConst:
    """The number a spec writes as ``text`` (``1``, ``0.5``, ``1e-4``, ``-1``, ``inf``)."""
    whole = text.lstrip("-").isdigit()
    return SConst(int(text) if whole else float(text), text)


@dataclass(frozen=True)
class SRef:
    name: str
    varying: bool = False
    count: bool = False  # the value of a per-parameter or optimizer-level counter


@dataclass(frozen=True)
class SBin:
    op: str  # + - * / % ** and or == != < <= > >=
    left: "SExpr"
    right: "SExpr"


@dataclass(frozen=True)
class SCompare:
    ops: tuple[str, ...]
    operands: tuple["SExpr", ...]


@dataclass(frozen=True)
class SUnary:
    op: str  # - not
    operand: "SExpr"


@dataclass(frozen=True)
class SCall:
    """A function of numbers, or a number read off a tensor of each parameter (``numel``, ``dim``,
    ``size``, ``item``, ``machine_epsilon``: then an argument is a TExpr, and the value varies).
    """

    func: str  # sqrt abs exp log min max numel randint is_tensor dim size item ...
    args: tuple[Union["SExpr", "TExpr"], ...]


@dataclass(frozen=True)
class SCond:
    cond: "SExpr"
    then: "SExpr"
    orelse: "SExpr"


@dataclass(frozen=True)
class STuple:
    """A tuple of numbers (a default such as ``betas=(0.9, 0.999)``)."""

    items: tuple["SExpr", ...]


@dataclass(frozen=True)
class SIndex:
    """An item of a tuple of numbers, ``betas[k]`` (an input of type ``tuple of float``)."""

    value: "SExpr"
    index: "SExpr"


SExpr = Union[SConst, SRef, SBin, SCompare, SUnary, SCall, SCond, STuple, SIndex]

# ---- tensor expressions -------------------------------------------------------------------------------


@dataclass(frozen=True)
class TRef:
    """A tensor by name: the parameter, its gradient, a state, a local; with ``index``, the
    item of a list of them (``momentum_buffer[k]``, of a list state)."""

    name: str
    role: Role
    index: Union["SExpr", None] = None

    def __post_init__(self) -> None:
        _coerce(self, role=Role)


@dataclass(frozen=True)
class TOp:
    """An operation producing a new tensor. ``args[0]`` is the tensor it is a method of."""

    op: str
    args: tuple[Union["TExpr", SExpr], ...]
    kwargs: tuple[tuple[str, SExpr], ...] = ()


@dataclass(frozen=True)
class TList:
    """A list of tensors of one parameter, ``[grad, m]``; with ``count``, that many times its
    one item (the same tensor: a local list's items are replaced, never changed in place).
    """

    items: tuple["TExpr", ...]
    count: SExpr | None = None


TExpr = Union[TRef, TOp, TList]

# ---- statements ---------------------------------------------------------------------------------------
# A statement's ``span`` is where the spec writes it (a syntax span, set by the lowering), for the
# diagnostics that speak of a lowered statement (E326); it is not part of its value.


@dataclass(frozen=True)
class ScalarLet:
    name: str
    value: SExpr
    varying: bool
    span: object = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class CountUpdate:
    """A counter state changes: ``step += 1`` (op "+="), ``mu_product *= mu`` or ``x.fill_(v)``."""

    state: str  # the state's key
    op: str  # "+=", "*=" or "fill"
    value: SExpr
    scope: Scope
    read_after: (
        bool  # the new value is read later in the update (refresh the Python number)
    )
    span: object = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        _coerce(self, scope=Scope)


@dataclass(frozen=True)
class TensorLet:
    """A local tensor: a fresh result (``owned``) or another name for an existing tensor."""

    name: str
    value: TExpr
    alias: bool
    span: object = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class InPlace:
    """``target.op_(args)``, one or more chained: ``exp_avg_sq.mul_(beta2).addcmul_(g, g, value=c)``."""

    target: TRef
    ops: tuple[TOp, ...]  # each TOp's args exclude the target itself
    span: object = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class LazyInit:
    """A lazy state: its first value on the first step, its update afterwards (SGD's momentum)."""

    state: str  # the state's key
    first: TExpr
    update: tuple["Stmt", ...]
    span: object = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class If:
    cond: SExpr | VExpr  # a VExpr in a flat update
    then: tuple["Stmt", ...]
    orelse: tuple["Stmt", ...]
    # decided per parameter (it depends on a per-parameter counter): the foreach path partitions
    # the tensor lists by the condition and runs each branch on its part
    varying: bool = False
    # the same `if` without a branch, for torch.compile (where a per-parameter condition is a
    # tensor): both branches run on copies and torch.where picks each result
    traced: tuple["Stmt", ...] | None = None
    span: object = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class Repeat:
    """``for _ in range(count):`` around a block (Muon's Newton-Schulz iterations)."""

    count: SExpr
    body: tuple["Stmt", ...]
    span: object = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class ForEachParameter:
    """A method's loop over the parameters of a group that have state."""

    body: tuple["Stmt", ...]


@dataclass(frozen=True)
class Estimate:
    """``D <- hutchinson(n, dist)`` in the optimizer's block: the per-parameter state ``state``
    (its state_dict key) of every parameter with a gradient, made or refreshed at once by
    ``function`` of generator.runtime.estimates, called with the optimizer's param groups and
    state and ``args`` (AdaHessian's Hessian diagonal)."""

    state: str
    function: str
    args: tuple[SExpr, ...]


@dataclass(frozen=True)
class Evaluate:
    """``evaluate()`` in the optimizer's block: the gradients zeroed and the closure evaluated
    again, with autograd on, its loss the step's (SAM's gradient at the weights its blocks
    before have moved)."""


@dataclass(frozen=True)
class Return:
    """``return`` in a group or optimizer block or a flat update: the step ends there; in a
    procedure, with the values it returns."""

    values: tuple["VExpr", ...] = ()


@dataclass(frozen=True)
class Pass:
    """A later pass over the parameters: its blocks, as the first pass's fields of Optimizer."""

    step_block: tuple["Stmt", ...]
    group_block: tuple["Stmt", ...]
    body: tuple["Stmt", ...]
    hoisted: tuple["ScalarLet", ...]
    hyper: tuple[str, ...]


@dataclass(frozen=True)
class Method:
    """``method NAME:`` of the spec: statements run once per param group."""

    name: str
    doc: str | None
    body: tuple["Stmt", ...]


@dataclass(frozen=True)
class Message:
    """An error message: literal text and the values it shows, in order (``"Invalid
    learning rate: {lr}"`` is ``("Invalid learning rate: ", SRef("lr"))``)."""

    parts: tuple[Union[str, SExpr], ...]


@dataclass(frozen=True)
class Raise:
    """``if fails: raise exception(message)``: a check the step makes (Muon's ns_steps < 100)."""

    fails: SExpr | VExpr  # a VExpr in a flat update
    exception: str
    message: Message
    span: object = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class Probe:
    """A branch of the spec ran: only in the coverage builds of ``optimgen verify``, where it is
    printed as a call that records ``label``; ordinary builds never hold one."""

    label: (
        str  # "<path>:<line>:<column> then|else": the branch's condition, and which way
    )
    condition: str  # the condition as the spec writes it
    lines: tuple[str, ...]  # "<path>:<line>" of every statement of the branch


# ---- the imperative part: values of any type, loops, lists and procedures ------------------------------
# A flat update (LBFGS) and its procedures compute with Python numbers, 0-d tensors, the flat vector
# of all parameters, lists and tuples, in loops with `break`. Its values are the V* expressions
# below, each carrying the form the checker inferred for it (generator.check.types), so that a
# printer chooses torch's spelling (``d.abs().max()`` for a vector, ``abs(x)`` for a number)
# without typing anything itself.


class Form(Named):
    """What a value is, as far as its spelling goes."""

    VECTOR = "vector"  # the 1-D tensor of all parameters (or a vector computed from it)
    TENSOR = "tensor"  # a 0-d tensor, or a value that may be one (a dot product)
    HOST = "host"  # a Python value: number, bool, none, string, list or tuple


class Binding(Named):
    """What a name refers to in a flat update or procedure."""

    LOCAL = "local"  # a name of the update or procedure (a procedure's arguments too)
    INPUT = "input"  # a hyperparameter, read from the group before the update
    STATE = "state"  # a state the step loads where first needed and stores at its end
    COUNTER = "counter"  # a count state, kept in the state dict and updated there
    GRAD = "grad"  # the flat gradient the closure left
    LOSS = "loss"  # the closure's loss, as a Python number


@dataclass(frozen=True)
class VRef:
    name: str  # a state's key for STATE and COUNTER
    binding: Binding
    form: Form

    def __post_init__(self) -> None:
        _coerce(self, binding=Binding, form=Form)


@dataclass(frozen=True)
class VUnary:
    op: str  # - not
    operand: "VExpr"
    form: Form


@dataclass(frozen=True)
class VBin:
    op: str  # + - * / % ** and or
    left: "VExpr"
    right: "VExpr"
    form: Form
    grouped: bool = (
        False  # the spec wrote it in parentheses (kept: a * (b * v) is not (a * b) * v)
    )


@dataclass(frozen=True)
class VCompare:
    ops: tuple[str, ...]
    operands: tuple["VExpr", ...]
    form: Form


@dataclass(frozen=True)
class VCond:
    cond: "VExpr"
    then: "VExpr"
    orelse: "VExpr"
    form: Form


@dataclass(frozen=True)
class VTuple:
    items: tuple["VExpr", ...]
    form: Form = Form.HOST


@dataclass(frozen=True)
class VList:
    items: tuple["VExpr", ...]
    form: Form = Form.HOST


@dataclass(frozen=True)
class VIndex:
    value: "VExpr"
    index: "VExpr"
    form: Form


@dataclass(frozen=True)
class VCall:
    """A builtin of the flat language (``dot``, ``abs``, ``max``, ``sum``, ``norm``, ``sqrt``,
    ``clone``, ``len``, ``min``)."""

    func: str
    args: tuple["VExpr", ...]
    form: Form


@dataclass(frozen=True)
class VProcCall:
    """A call of one of the spec's procedures; one that evaluates the closure is passed it."""

    procedure: str
    args: tuple["VExpr", ...]
    keywords: tuple[tuple[str, "VExpr"], ...]
    evaluates: bool
    form: Form = Form.HOST


@dataclass(frozen=True)
class VEvaluate:
    """The closure evaluated: at the parameters (no arguments; in the update, where it also
    refreshes the gradient) or at a step ``t`` along ``d`` from the start point."""

    args: tuple["VExpr", ...]
    form: Form = Form.HOST


VExpr = Union[
    SConst,
    VRef,
    VUnary,
    VBin,
    VCompare,
    VCond,
    VTuple,
    VList,
    VIndex,
    VCall,
    VProcCall,
    VEvaluate,
]


@dataclass(frozen=True)
class Bind:
    """``target <- value``: a name of the update or procedure, a state or a counter."""

    target: VRef
    value: VExpr


@dataclass(frozen=True)
class BindMany:
    """``a, b <- value``: a tuple unpacked."""

    targets: tuple[VRef, ...]
    value: VExpr


@dataclass(frozen=True)
class SetItem:
    """``al[i] <- value``: an element of a list replaced (a flat update's list, or a local
    list of tensors of a per-parameter update)."""

    target: Union[VRef, TRef]
    index: Union[VExpr, SExpr]
    value: Union[VExpr, TExpr]
    span: object = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class ListAppend:
    target: Union[VRef, TRef]
    value: Union[VExpr, TExpr]
    span: object = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class ListPopFirst:
    target: Union[VRef, TRef]
    span: object = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class CallProcedure:
    """A procedure called for its effect."""

    call: VProcCall


@dataclass(frozen=True)
class StepParams:
    """``param <- param + t * d``: every parameter steps along its slice of ``direction``."""

    size: VExpr | None  # None: a step of 1
    negative: bool  # ``param - t * d``
    direction: VExpr


@dataclass(frozen=True)
class While:
    cond: VExpr
    body: tuple["Stmt", ...]
    span: object = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class ForRange:
    """``for var in range(start, stop)``, or ``reversed(...)`` of it."""

    var: str
    start: VExpr | None  # None: from 0
    stop: VExpr
    reverse: bool
    body: tuple["Stmt", ...]
    span: object = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class Break:
    span: object = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class ProcedureParameter:
    name: str
    default: SConst | VUnary | VTuple | None  # a constant; None: required


@dataclass(frozen=True)
class Procedure:
    """``procedure name(...)``: a module-level function of the generated code."""

    name: str
    params: tuple[ProcedureParameter, ...]
    body: tuple["Stmt", ...]
    evaluates: bool  # takes the closure (``obj_func``) and its start point ``x``


@dataclass(frozen=True)
class FlatStep:
    """An ``update flat:`` block: the step on all parameters as one vector, and its procedures."""

    body: tuple["Stmt", ...]
    procedures: tuple[Procedure, ...]
    inputs: tuple[str, ...]  # the inputs the update reads
    counters: tuple[tuple[str, VExpr], ...]  # count states: key, initial value
    # the other states, in the spec's order: key, initial value (None: lazy, none until assigned)
    states: tuple[tuple[str, VExpr | None], ...]


Stmt = Union[
    Probe,
    Bind,
    BindMany,
    SetItem,
    ListAppend,
    ListPopFirst,
    CallProcedure,
    StepParams,
    While,
    ForRange,
    Break,
    ScalarLet,
    CountUpdate,
    TensorLet,
    InPlace,
    LazyInit,
    If,
    Repeat,
    Raise,
    ForEachParameter,
    Evaluate,
    Return,
]
