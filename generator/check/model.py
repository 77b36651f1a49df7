"""The checked spec: what the checker hands on, and the symbols it resolves names to.

Check is the second stage of the pipeline (language → check → lower → emit): generator.check.checker
turns a parsed ``Spec`` into the ``CheckedSpec`` defined here (fragments inlined, the update blocks
in order, every name resolved to a ``Symbol`` of a known type), which generator.lower.lowering and
the emitters read and never change. A symbol's type is one of the language's
(generator.language.types): ``bool`` (decided by hyperparameters: a Python ``if`` in the generated
code), ``scalar``/``int`` (numbers; *dynamic* when they depend on a counter such as the step,
*varying* when that counter is per-parameter), ``str`` and ``tensor`` (shaped like the parameter).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from generator.language import syntax as S
from generator.language.types import TENSORS, Kind, ListOf


@dataclass(frozen=True)
class Symbol:
    name: str
    # bool | scalar | int | str | tensor, or a list of tensors; in a flat update, the union of
    # the types the name may hold (generator.check.types)
    kind: Kind | ListOf | frozenset
    # input | state | local | param | grad; in a flat update also loss and a procedure's
    # argument, and "error" once a name is reported undefined
    role: str
    dynamic: bool = (
        False  # depends on a counter (not known when the optimizer is built)
    )
    varying: bool = False  # differs between parameters (per-parameter counter)
    decl: object = None  # the Input / State / Assign that introduced it
    optional: bool = False

    def __post_init__(self):
        if not isinstance(self.kind, (ListOf, frozenset)):
            object.__setattr__(self, "kind", Kind(self.kind))


def state_type(st: S.State) -> Kind | ListOf:
    """The type of a state of a per-parameter update: a number for a counter, true or false for
    a flag, a tensor (shaped like the parameter, or a total) or a list of them (``[0] * n``).
    """
    if st.kind == "count":
        return Kind.SCALAR
    if st.kind == "flag":
        return Kind.BOOL
    if st.repeated is not None or st.per_dimension is not None:
        return TENSORS
    return Kind.TENSOR


@dataclass(frozen=True)
class NoForm:
    """A construct the paths over lists of tensors (``paths``: foreach, fused) cannot run: a
    spec that declares one of those inputs is refused at it (E335), with ``instead``, what the
    spec could write that the foreach path runs."""

    what: str
    span: S.Span
    paths: frozenset[str]
    instead: str = ""


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
    # the update differs between parameters of other ranks in its shape (a loop over
    # `range(dim(param))`, a list made for each dimension): the foreach path runs once for each
    # rank, where `dim(param)` is one number (generator.check.queries.varies_beyond_rank)
    by_rank: bool = False

    @property
    def name(self) -> str:
        return self.spec.name
