"""The spec model: frozen dataclasses for everything a spec file says, each carrying its source span.

generator.language.parse builds these from the Lark tree; generator.check.checker reads them and never mutates them;
generator.lower.lowering turns an optimizer's update into the IR. Nothing here knows about torch or Python code
generation, so the model can be printed back (``optimgen fmt``), rendered as LaTeX, or checked alone.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Union

from generator.language.builtins import BUILTINS


@dataclass(frozen=True)
class Span:
    """A region of a spec file: 1-based line and column of its first and last character."""

    path: str
    line: int
    column: int
    end_line: int
    end_column: int

    def __str__(self) -> str:
        return f"{self.path}:{self.line}:{self.column}"


# ---- expressions ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Number:
    text: str  # the literal as written, so that printing keeps the author's spelling
    span: Span = field(compare=False)

    @property
    def value(self) -> float:
        return float(self.text)

    @property
    def is_integer_literal(self) -> bool:
        return all(ch.isdigit() for ch in self.text)


@dataclass(frozen=True)
class Bool:
    value: bool
    span: Span = field(compare=False)


@dataclass(frozen=True)
class NoneLit:
    span: Span = field(compare=False)


@dataclass(frozen=True)
class String:
    """A quoted string: the value of a string input compared in a condition (Muon's adjust_lr_fn)."""

    value: str
    span: Span = field(compare=False)


@dataclass(frozen=True)
class Name:
    id: str
    subscript: str | None  # None, "t" or "t-1"
    span: Span = field(compare=False)


@dataclass(frozen=True)
class Unary:
    op: str  # "-" or "not"
    operand: Expr
    span: Span = field(compare=False)


@dataclass(frozen=True)
class Binary:
    op: str  # + - * / % @ ^ and or
    left: Expr
    right: Expr
    span: Span = field(compare=False)
    # written in parentheses: a parenthesised tensor term is computed as a tensor, then added
    grouped: bool = field(default=False, compare=False)


@dataclass(frozen=True)
class Compare:
    """A comparison chain as Python reads it: ``0 <= beta1 < 1``."""

    ops: tuple[str, ...]
    operands: tuple[Expr, ...]
    span: Span = field(compare=False)


@dataclass(frozen=True)
class Conditional:
    cond: Expr
    then: Expr
    orelse: Expr
    span: Span = field(compare=False)


@dataclass(frozen=True)
class Call:
    func: str
    args: tuple[Expr, ...]
    span: Span = field(compare=False)
    func_span: Span = field(compare=False, default=None)
    keywords: tuple[tuple[str, Expr], ...] = ()  # `max_ls=...` (procedure calls)


@dataclass(frozen=True)
class Index:
    """``old_dirs[i]``: an element of a list (flat updates and procedures)."""

    value: Expr
    index: Expr
    span: Span = field(compare=False)


@dataclass(frozen=True)
class List:
    """``[t_prev, t]``: a list (flat updates and procedures)."""

    items: tuple[Expr, ...]
    span: Span = field(compare=False)


@dataclass(frozen=True)
class Tuple:
    items: tuple[Expr, ...]
    span: Span = field(compare=False)


@dataclass(frozen=True)
class ListOver:
    """``[eps * eye(size(param, k)) for k in range(dim(param))]``: a list of one item for each
    value of ``var`` over ``iterable`` (a range), each computed from it (a per-dimension state).
    """

    item: Expr
    var: Name
    iterable: Expr
    span: Span = field(compare=False)


Expr = Union[
    Number,
    Bool,
    NoneLit,
    String,
    Name,
    Unary,
    Binary,
    Compare,
    Conditional,
    Call,
    Tuple,
    Index,
    List,
    ListOver,
]


def children(e: Expr) -> tuple[Expr, ...]:
    """The sub-expressions of an expression, left to right."""
    if isinstance(e, Unary):
        return (e.operand,)
    if isinstance(e, Binary):
        return (e.left, e.right)
    if isinstance(e, Compare):
        return e.operands
    if isinstance(e, Conditional):
        return (e.cond, e.then, e.orelse)
    if isinstance(e, Call):
        return e.args + tuple(v for _, v in e.keywords)
    if isinstance(e, (Tuple, List)):
        return e.items
    if isinstance(e, Index):
        return (e.value, e.index)
    if isinstance(e, ListOver):
        return (e.item, e.iterable)
    return ()


# ---- statements -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Assign:
    target: Name
    value: Expr
    initially: Expr | None
    span: Span = field(compare=False)


@dataclass(frozen=True)
class If:
    branches: tuple[tuple[Expr, tuple[Stmt, ...]], ...]  # if / elif, in order
    orelse: tuple[Stmt, ...]
    span: Span = field(compare=False)


@dataclass(frozen=True)
class Repeat:
    """``repeat n:``: the block, n times (n decided by hyperparameters)."""

    count: Expr
    body: tuple[Stmt, ...]
    span: Span = field(compare=False)


@dataclass(frozen=True)
class Use:
    fragment: str
    span: Span = field(compare=False)


@dataclass(frozen=True)
class Expose:
    """``expose direction update, g``: a point of the update where the modifiers the optimizer
    takes act on the values ``names`` (generator.check.modifiers)."""

    point: str
    names: tuple[Name, ...]
    span: Span = field(compare=False)


# ---- the statements of flat updates and procedures (whole-vector algorithms such as LBFGS) --------


@dataclass(frozen=True)
class MultiAssign:
    """``f_new, g_new <- evaluate(t, d)``: a tuple unpacked."""

    targets: tuple[Name, ...]
    value: Expr
    span: Span = field(compare=False)


@dataclass(frozen=True)
class ItemAssign:
    """``al[i] <- ...``: an element of a list replaced."""

    target: Name
    index: Expr
    value: Expr
    span: Span = field(compare=False)


@dataclass(frozen=True)
class CallStmt:
    """``append(old_dirs, y)``: a call for its effect."""

    call: Call
    span: Span = field(compare=False)


@dataclass(frozen=True)
class While:
    cond: Expr
    body: tuple[Stmt, ...]
    span: Span = field(compare=False)


@dataclass(frozen=True)
class For:
    """``for i in range(n):`` or ``for i in reversed(range(n)):``."""

    var: Name
    iterable: Expr
    body: tuple[Stmt, ...]
    span: Span = field(compare=False)


@dataclass(frozen=True)
class ForEachParameter:
    """``for each parameter:`` in a method: the block on every parameter of the group that has
    state (schedule-free's switch between the iterates)."""

    body: tuple[Stmt, ...]
    span: Span = field(compare=False)


@dataclass(frozen=True)
class Break:
    span: Span = field(compare=False)


@dataclass(frozen=True)
class Return:
    values: tuple[Expr, ...]  # empty in an update: the step ends there
    span: Span = field(compare=False)


Stmt = Union[
    Assign,
    If,
    Repeat,
    Use,
    Expose,
    "Check",
    MultiAssign,
    ItemAssign,
    CallStmt,
    While,
    For,
    Break,
    Return,
    ForEachParameter,
]


def repeated_list(e) -> tuple[List, Expr] | None:
    """``[x] * n`` (or ``n * [x]``): (the list, n); None for any other expression."""
    if isinstance(e, Binary) and e.op == "*":
        if isinstance(e.left, List):
            return e.left, e.right
        if isinstance(e.right, List):
            return e.right, e.left
    return None


# the functions that make a tensor of a shape they are given (a state's first value): the
# builtin table's functions of that context
CONSTRUCTORS = tuple(n for n, b in BUILTINS.items() if b.context == "state")


def shaped(e) -> tuple[Call, Expr | None] | None:
    """``eye(n)``, ``zeros(n, m)``, ``ones(n)``, each perhaps times a number (``eps * eye(n)``):
    (the constructor's call, the number or None); None for any other expression."""
    if isinstance(e, Call) and e.func in CONSTRUCTORS:
        return e, None
    if isinstance(e, Binary) and e.op == "*":
        for call, factor in ((e.left, e.right), (e.right, e.left)):
            if isinstance(call, Call) and call.func in CONSTRUCTORS:
                return call, factor
    return None


def sub_blocks(s) -> tuple[tuple[Stmt, ...], ...]:
    """The statement blocks nested directly in a statement."""
    if isinstance(s, If):
        return tuple(b for _, b in s.branches) + (s.orelse,)
    if isinstance(s, (Repeat, While, For, ForEachParameter)):
        return (s.body,)
    return ()


def expressions(s) -> tuple[Expr, ...]:
    """The expressions a statement itself evaluates (not those of its nested blocks), in
    order."""
    if isinstance(s, Assign):
        return (s.value,) + ((s.initially,) if s.initially is not None else ())
    if isinstance(s, If):
        return tuple(c for c, _ in s.branches)
    if isinstance(s, Repeat):
        return (s.count,)
    if isinstance(s, (MultiAssign,)):
        return (s.value,)
    if isinstance(s, ItemAssign):
        return (s.index, s.value)
    if isinstance(s, CallStmt):
        return (s.call,)
    if isinstance(s, While):
        return (s.cond,)
    if isinstance(s, For):
        return (s.iterable,)
    if isinstance(s, Return):
        return s.values
    if isinstance(s, Check):
        return (s.expr,)
    return ()


# ---- declarations ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Doc:
    key: str  # summary | reference | note
    text: str
    span: Span = field(compare=False)


@dataclass(frozen=True)
class Message:
    """``else [ExceptionType] "text with {placeholders}"`` of a requirement or check."""

    exception: str
    text: str
    span: Span = field(compare=False)


def message_parts(text: str) -> list[tuple[str, bool]]:
    """A message as (text, is_placeholder) parts: ``{name}`` is a placeholder, ``{{``/``}}`` braces."""
    import re

    parts: list[tuple[str, bool]] = []
    pos = 0
    for m in re.finditer(r"\{\{|\}\}|\{([^{}]*)\}", text):
        if m.start() > pos:
            parts.append((text[pos : m.start()], False))
        if m.group(0) in ("{{", "}}"):
            parts.append((m.group(0)[0], False))
        else:
            parts.append((m.group(1), True))
        pos = m.end()
    if pos < len(text):
        parts.append((text[pos:], False))
    return parts


@dataclass(frozen=True)
class Require:
    expr: Expr
    message: Message | None
    span: Span = field(compare=False)


@dataclass(frozen=True)
class TypeRef:
    """``float``, ``bool?``, ``float | tensor``, ``(float, float)`` or ``tuple of float``."""

    # "union", "tuple" (one name per item) or "sequence" (a tuple of any length of one type,
    # one name: its items are read as ``betas[k]``, its length as ``len(betas)``)
    kind: str
    names: tuple[str, ...]
    optional: tuple[bool, ...]
    span: Span = field(compare=False)


@dataclass(frozen=True)
class Input:
    names: tuple[Name, ...]  # one name, or several for a tuple argument such as betas
    torch_name: str | None
    type: TypeRef
    default: Expr | None
    keyword: bool
    required: bool
    fixed: bool  # in `defaults` with its default value, but not a constructor argument
    constructor: (
        bool  # state initialisation reads the constructor's value, not the group's
    )
    squeezed: bool  # a 1-element tensor is kept as a 0-d one (torch's `_to_scalar`)
    explicit: bool  # foreach: `none` means the for-loop, not torch's per-device default
    doc: str | None  # what the argument means, for the docstring
    requires: tuple[Require, ...]
    span: Span = field(compare=False)
    # `none means max_iter * 5 // 4`: what the constructor stores when the argument is None
    none_means: Expr | None = None

    @property
    def arg_name(self) -> str:
        """The constructor argument's name (torch's name where the spec gives one)."""
        return self.torch_name or self.names[0].id


@dataclass(frozen=True)
class Check:
    expr: Expr
    message: Message
    span: Span = field(compare=False)


@dataclass(frozen=True)
class State:
    scope: str  # "parameter", "group" or "optimizer"
    name: Name
    torch_name: str | None
    kind: str  # "tensor" (shaped like the parameter) or "count" (a 0-d float32 counter)
    init: Expr | None  # None when lazy
    lazy: bool
    condition: Expr | None
    eager: bool  # created in the constructor rather than at the first step
    on_device: (
        bool  # a counter kept on the parameter's device (torch's ASGD), not on the CPU
    )
    span: Span = field(compare=False)
    # `, reduced over -1`: the parameter's shape with this dimension of size 1 (Adafactor's rows)
    reduced: str | None = None
    # `, as number`: a counter kept as a Python number in the state (torch's SparseAdam step)
    as_number: bool = False
    # `, transient`: made in a step, carried between its blocks and dropped at its end (SAM's)
    transient: bool = False
    # `, stored as bfloat16`: the storage dtype of a tensor state (the precision policy's default)
    stored_as: str | None = None
    stored_as_span: Span | None = field(default=None, compare=False)
    # `, column major`: a matrix state stored column by column (the option's span, or None)
    column_major: Span | None = field(default=None, compare=False)
    # `, dtype mu_dtype`: made in the dtype that input holds (none: the parameter's)
    dtype: str | None = None
    dtype_span: Span | None = field(default=None, compare=False)
    # its first value as written, where it reads `let` values (``init`` has them written out:
    # generator.check.lets); the documentation shows this one
    written_init: "Expr | None" = field(default=None, compare=False)
    written_condition: "Expr | None" = field(default=None, compare=False)

    @property
    def key(self) -> str:
        """The state_dict key."""
        return self.torch_name or self.name.id

    @property
    def shaped(self) -> tuple["Call", "Expr | None"] | None:
        """``<- eps * eye(size(param, 0))``: a state of its own shape, made by a constructor
        (times a number); None where the state is shaped like the parameter."""
        return shaped(self.init)

    @property
    def per_dimension(self) -> tuple["Expr", "Name", "Expr"] | None:
        """``<- [eps * eye(size(param, k)) for k in range(dim(param))]``: a list of tensors of
        each parameter, one for each k, each of its own shape; (item, k, count). None for any
        other first value."""
        e = self.init
        if (
            isinstance(e, ListOver)
            and isinstance(e.iterable, Call)
            and e.iterable.func == "range"
            and len(e.iterable.args) == 1
        ):
            return e.item, e.var, e.iterable.args[0]
        return None

    @property
    def repeated(self) -> tuple["Expr", "Expr"] | None:
        """``[0] * n``: a list of ``n`` states of each parameter, each starting as the item
        does; (item, n). None for any other first value."""
        found = repeated_list(self.init)
        if found is not None and len(found[0].items) == 1:
            return found[0].items[0], found[1]
        return None


@dataclass(frozen=True)
class ComplexMode:
    mode: str  # "view_as_real": the whole update on real views
    span: Span = field(compare=False)


@dataclass(frozen=True)
class DefaultsOrder:
    names: tuple[str, ...]
    span: Span = field(compare=False)


@dataclass(frozen=True)
class Update:
    # "each" (every parameter with a gradient), "random" (one random parameter), "step" (once per
    # step, before the parameters) or "flat" (once per step, on all parameters as one vector)
    mode: str
    body: tuple[Stmt, ...]
    span: Span = field(compare=False)


@dataclass(frozen=True)
class Parameter:
    name: Name
    default: Expr | None


@dataclass(frozen=True)
class Let:
    """``let X <- expr``: a value of each parameter, read by the state declarations and, as a
    local computed before its first line, by the per-parameter update."""

    name: Name
    value: Expr
    span: Span = field(compare=False)


@dataclass(frozen=True)
class PointBlock:
    """``at direction u, g:`` in a modifier: the statements run where an optimizer exposes that
    point, ``vars`` standing for the values the optimizer names there, in order."""

    point: str
    point_span: Span = field(compare=False)
    vars: tuple[Name, ...] = ()
    body: tuple[Stmt, ...] = ()
    span: Span = field(default=None, compare=False)
    # `if exposed`: nothing where the optimizer has no such point
    optional: bool = False


@dataclass(frozen=True)
class With:
    """``with cautious, grokfast``: the modifiers an optimizer takes, in order."""

    names: tuple[Name, ...]
    span: Span = field(compare=False)


@dataclass(frozen=True)
class Procedure:
    """``procedure name(a, b = 1):`` a function a flat update calls (a line search)."""

    name: Name
    params: tuple[Parameter, ...]
    body: tuple[Stmt, ...]
    span: Span = field(compare=False)


@dataclass(frozen=True)
class Method:
    """``method eval "doc":`` a method of the optimizer besides ``step()``, run once per group."""

    name: Name
    doc: str | None
    body: tuple[Stmt, ...]
    span: Span = field(compare=False)


@dataclass(frozen=True)
class Spec:
    kind: str  # "optimizer" or "fragment"
    name: str
    docs: tuple[Doc, ...]
    inputs: tuple[Input, ...]
    checks: tuple[Check, ...]
    states: tuple[State, ...]
    updates: tuple[Update, ...]
    body: tuple[Stmt, ...]  # a fragment's statements
    validations: tuple[Require | Check, ...]  # requires and checks in file order
    defaults_order: DefaultsOrder | None
    complex_mode: str  # "first_nonlinear" (default) or "view_as_real"
    sparse: (
        str | None
    )  # None (dense gradients), "also" or "only" (`sparse gradients [only]`)
    path: str
    source: str = field(compare=False, repr=False)
    span: Span = field(compare=False)
    procedures: tuple[Procedure, ...] = ()
    methods: tuple[Method, ...] = ()
    lets: tuple[Let, ...] = ()
    # an optimizer's `with` (the modifiers it takes); a modifier's `at POINT VAR:` blocks
    modifiers: tuple[Name, ...] = ()
    modifiers_span: Span | None = field(default=None, compare=False)
    points: tuple[PointBlock, ...] = ()
    # `optimizer X from Base`: a variant of Base (generator.check.variants), None for any other
    base: Name | None = None

    def doc(self, key: str) -> str | None:
        texts = [d.text for d in self.docs if d.key == key]
        return "\n".join(texts) if texts else None
