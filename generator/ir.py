"""The IR: what a generated optimizer does, typed as scalar / tensor / bool, independent of Python text.

generator.lower.lowering builds it from a checked spec; the emitters print it twice, as a single-tensor loop
and as a multi-tensor (``torch._foreach_*``) path, so both come from one description. Scalars are
Python numbers in the generated code (hyperparameters, bias corrections); they are *varying* when they
differ between parameters (they depend on a per-parameter counter such as ``step``), which the
multi-tensor path turns into lists. Tensor expressions are trees of named operations whose printing
(method, in-place method, foreach function) is table-driven in generator.emit.python.ops.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Union

# ---- names the IR gives a fixed meaning ------------------------------------------------------------


class _Named(str, enum.Enum):
    """An enum whose members are also their names' strings: printed, hashed and compared as
    the string, so the printers and templates spell them as before, while a node built with
    a misspelt one fails when it is made."""

    __str__ = str.__str__
    __format__ = str.__format__
    __hash__ = str.__hash__


class Role(_Named):
    """What a tensor reference is."""

    PARAM = "param"
    GRAD = "grad"
    STATE = "state"
    LOCAL = "local"
    TOTAL = "total"  # an optimizer's sum over parameters (Prodigy's)
    FRESH = "fresh"  # a result a printer has just made and may update in place


class Scope(_Named):
    """Where a state lives: per parameter, in the group dict, or once per optimizer."""

    PARAMETER = "parameter"
    GROUP = "group"
    OPTIMIZER = "optimizer"


class StateKind(_Named):
    TENSOR = "tensor"  # shaped like the parameter (or reduced)
    COUNT = "count"  # a step counter
    FLAG = "flag"  # a counter that holds a decision
    TOTAL = "total"  # a sum over all parameters


class Mode(_Named):
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


SExpr = Union[SConst, SRef, SBin, SCompare, SUnary, SCall, SCond, STuple]

# ---- tensor expressions -------------------------------------------------------------------------------


@dataclass(frozen=True)
class TRef:
    name: str
    role: Role

    def __post_init__(self) -> None:
        _coerce(self, role=Role)


@dataclass(frozen=True)
class TOp:
    """An operation producing a new tensor. ``args[0]`` is the tensor it is a method of."""

    op: str
    args: tuple[Union["TExpr", SExpr], ...]
    kwargs: tuple[tuple[str, SExpr], ...] = ()


TExpr = Union[TRef, TOp]

# ---- statements ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ScalarLet:
    name: str
    value: SExpr
    varying: bool


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

    def __post_init__(self) -> None:
        _coerce(self, scope=Scope)


@dataclass(frozen=True)
class TensorLet:
    """A local tensor: a fresh result (``owned``) or another name for an existing tensor."""

    name: str
    value: TExpr
    alias: bool


@dataclass(frozen=True)
class InPlace:
    """``target.op_(args)``, one or more chained: ``exp_avg_sq.mul_(beta2).addcmul_(g, g, value=c)``."""

    target: TRef
    ops: tuple[TOp, ...]  # each TOp's args exclude the target itself


@dataclass(frozen=True)
class LazyInit:
    """A lazy state: its first value on the first step, its update afterwards (SGD's momentum)."""

    state: str  # the state's key
    first: TExpr
    update: tuple["Stmt", ...]


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


@dataclass(frozen=True)
class Repeat:
    """``for _ in range(count):`` around a block (Muon's Newton-Schulz iterations)."""

    count: SExpr
    body: tuple["Stmt", ...]


@dataclass(frozen=True)
class ForEachParameter:
    """A method's loop over the parameters of a group that have state."""

    body: tuple["Stmt", ...]


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


class Form(_Named):
    """What a value is, as far as its spelling goes."""

    VECTOR = "vector"  # the 1-D tensor of all parameters (or a vector computed from it)
    TENSOR = "tensor"  # a 0-d tensor, or a value that may be one (a dot product)
    HOST = "host"  # a Python value: number, bool, none, string, list or tuple


class Binding(_Named):
    """What a name refers to in a flat update or procedure."""

    LOCAL = "local"  # a name of the update or procedure (a procedure's arguments too)
    INPUT = "input"  # a hyperparameter, read from the group before the update
    STATE = "state"  # a state the step loads where first needed and stores at its end
    COUNTER = "counter"  # a count state, kept in the state dict and updated there
    GRAD = "grad"  # the flat gradient the closure left
    LOSS = "loss"  # the closure's loss, as a Python number


@dataclass(frozen=True)
class VConst:
    """A literal: a number (with the spelling the spec gives it, kept in the generated code),
    a bool, none or a string."""

    value: object  # int | float | bool | str | None
    spelling: str = ""  # a number as the spec writes it (``1e-4``, ``1.0``)
    form: Form = Form.HOST


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
    VConst,
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
    """``al[i] <- value``: an element of a list replaced."""

    target: VRef
    index: VExpr
    value: VExpr


@dataclass(frozen=True)
class ListAppend:
    target: VRef
    value: VExpr


@dataclass(frozen=True)
class ListPopFirst:
    target: VRef


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


@dataclass(frozen=True)
class ForRange:
    """``for var in range(start, stop)``, or ``reversed(...)`` of it."""

    var: str
    start: VExpr | None  # None: from 0
    stop: VExpr
    reverse: bool
    body: tuple["Stmt", ...]


@dataclass(frozen=True)
class Break:
    pass


@dataclass(frozen=True)
class ProcedureParameter:
    name: str
    default: VConst | VUnary | VTuple | None  # a constant; None: required


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
    Return,
]


def rename(node, names: dict[str, str]):
    """An IR expression or statement with the tensors and scalars in ``names`` renamed (a
    renamed tensor becomes a local)."""
    from dataclasses import fields, replace

    if isinstance(node, TRef):
        return TRef(names[node.name], "local") if node.name in names else node
    if isinstance(node, SRef):
        return replace(node, name=names[node.name]) if node.name in names else node
    if isinstance(node, tuple):
        return tuple(rename(x, names) for x in node)
    if not hasattr(node, "__dataclass_fields__"):
        return node
    changes = {f.name: rename(getattr(node, f.name), names) for f in fields(node)}
    return replace(node, **changes)


def refs(node, kind: type) -> list[str]:
    """The names of the ``kind`` references (TRef, SRef) anywhere in ``node``, in order."""
    found: dict[str, None] = {}

    def visit(x):
        if isinstance(x, kind):
            found[x.name] = None
        elif isinstance(x, (list, tuple)):
            for y in x:
                visit(y)
        elif hasattr(x, "__dataclass_fields__"):
            for f in x.__dataclass_fields__:
                visit(getattr(x, f))

    visit(node)
    return list(found)


def children(e) -> tuple:
    """The sub-expressions of an expression, left to right (an in-place statement's
    operations count as its sub-expressions)."""
    if isinstance(e, (SBin,)):
        return (e.left, e.right)
    if isinstance(e, SCompare):
        return e.operands
    if isinstance(e, SUnary):
        return (e.operand,)
    if isinstance(e, SCall):
        return e.args
    if isinstance(e, SCond):
        return (e.cond, e.then, e.orelse)
    if isinstance(e, STuple):
        return e.items
    if isinstance(e, TOp):
        return e.args + tuple(v for _, v in e.kwargs)
    if isinstance(e, InPlace):
        return e.ops
    if isinstance(e, (VBin,)):
        return (e.left, e.right)
    if isinstance(e, VCompare):
        return e.operands
    if isinstance(e, VUnary):
        return (e.operand,)
    if isinstance(e, VCond):
        return (e.cond, e.then, e.orelse)
    if isinstance(e, (VTuple, VList)):
        return e.items
    if isinstance(e, VIndex):
        return (e.value, e.index)
    if isinstance(e, (VCall, VEvaluate)):
        return e.args
    if isinstance(e, VProcCall):
        return e.args + tuple(v for _, v in e.keywords)
    return ()


def uses(e, pred) -> bool:
    """Does an expression contain a node (itself included) for which ``pred`` holds?"""
    return bool(pred(e)) or any(uses(x, pred) for x in children(e))


def refuses_sharded(v: Validation) -> bool:
    """The check that refuses a sharded (DTensor) parameter."""
    return isinstance(v.fails, SCall) and v.fails.func == "is_sharded"


def blocks(s) -> tuple:
    """The statement lists nested directly in a statement."""
    if isinstance(s, If):
        return (s.then, s.orelse)
    if isinstance(s, LazyInit):
        return (s.update,)
    if isinstance(s, (Repeat, ForEachParameter, While, ForRange)):
        return (s.body,)
    return ()


def walk(stmts):
    """Every statement, nested ones (branches, loops, a lazy state's update) after their parent."""
    for s in stmts:
        yield s
        for block in blocks(s):
            yield from walk(block)


def expressions(s) -> list:
    """The expressions a statement itself evaluates (not those of nested statements)."""
    if isinstance(s, (ScalarLet, TensorLet, CountUpdate)):
        return [s.value]
    if isinstance(s, InPlace):
        return list(s.ops)
    if isinstance(s, If):
        return [s.cond]
    if isinstance(s, Repeat):
        return [s.count]
    if isinstance(s, Raise):
        return [s.fails]
    if isinstance(s, LazyInit):
        return [s.first]
    if isinstance(s, (Bind, BindMany, ListAppend)):
        return [s.value]
    if isinstance(s, SetItem):
        return [s.index, s.value]
    if isinstance(s, CallProcedure):
        return [s.call]
    if isinstance(s, StepParams):
        return [e for e in (s.size, s.direction) if e is not None]
    if isinstance(s, While):
        return [s.cond]
    if isinstance(s, ForRange):
        return [e for e in (s.start, s.stop) if e is not None]
    if isinstance(s, Return):
        return list(s.values)
    return []


def scalar_lets(stmts):
    return (s for s in walk(stmts) if isinstance(s, ScalarLet))


# ---- the optimizer ------------------------------------------------------------------------------------


class PyType(enum.Enum):
    """The Python types an argument may take."""

    FLOAT = "float"
    INT = "int"
    BOOL = "bool"
    TENSOR = "Tensor"
    STR = "str"


@dataclass(frozen=True)
class ArgType:
    """An argument's type: one of ``alternatives`` (or None, when ``optional``); a tuple of
    ``items`` where there are items (``betas: tuple[float, float]``)."""

    alternatives: tuple[PyType, ...] = ()
    optional: bool = False
    items: tuple["ArgType", ...] = ()

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

    def __post_init__(self) -> None:
        _coerce(self, kind=StateKind, scope=Scope)


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

    def __post_init__(self) -> None:
        _coerce(self, mode=Mode)
