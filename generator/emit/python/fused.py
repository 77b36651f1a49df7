"""The fused path: the elementwise part of the update as one kernel per parameter, compiled by
torch.compile (inductor), printed from the same IR as the for-loop and foreach paths.

The per-parameter statements split in two. The host part runs in Python for each parameter, as
the for-loop does: counters, scalars (bias corrections), checks, and the condition of every `if`,
decided there as a Python bool. The kernel part is the tensor arithmetic, in a function that
takes the parameter's tensors, the scalars as 0-d float64 tensors and the conditions as bools; it
is compiled once per configuration (the bools), dtype and device, with dynamic shapes, so a new
learning rate is a new input, not a recompilation. In the kernel, torch's ``alpha=``/``value=``
(which must be Python numbers) become multiplications of an operand, and a lazy state is made
before the kernel and given its first value inside it.

On the CPU the same kernel statements printed as C++ (generator.emit.cpp.kernel) run instead where
the printer can write them, one call per group; this compiled kernel is their fallback (a bfloat16
or non-contiguous tensor, a precision policy). On an accelerator a compiled call per parameter
costs more than the kernel it runs (a launch and dynamo's guards each), so there
``_fused_<name>`` compiles the multi-tensor path whole instead (generator.emit.python.module): one
graph of foreach kernels, counters on the device.
"""

from __future__ import annotations

from dataclasses import replace

from generator import ir
from generator.naming import fresh, names_in_use
from generator.ir import uses
from generator.language.builtins import BUILTINS, CASTS
from generator.language.diagnostics import GeneratorBug
from generator.emit.python.blocks import Imports, Lines, _print_if
from generator.emit.python.scalars import ScalarPrinter, count_value
from generator.emit.python.single import (
    SingleTensorPrinter,
    fold_call_keywords,
    fold_keywords,
)

# Operations the kernel may contain: elementwise, so the tensors can be flattened.
# The spec's elementwise functions come from their table (sqrt, exp, cos, atan2, ...), the IR's
# own operations are listed.
ELEMENTWISE = {
    b.tensor.op for b in BUILTINS.values() if b.elementwise and b.tensor is not None
} | {
    "neg", "reciprocal", "square", "add",
    "sub", "mul", "div", "pow", "addcmul", "addcdiv", "lerp", "maximum", "minimum",
    "clamp_min", "clamp_max", "clamp", "where", "lt", "le", "gt", "ge", "eq", "ne", "copy",
    "clone", "number_like", "fill", "logical_and", "logical_or", "logical_not",
}  # fmt: skip


# Reductions over a whole tensor: its flat view gives the same result, so they join the kernel
# (inductor compiles the reduction and the elementwise work around it together).
WHOLE_TENSOR_REDUCTIONS = {"norm", "sum", "dot", "flatten"}
# the casts a spec writes to round there (MARS's bfloat16 before Newton-Schulz), which the kernel
# must then round as eager mode does; a cast to another tensor's dtype (cautious's 0/1 mask) or to
# an input's is exact where specs write it, and keeps the kernel's default
ROUNDING_CASTS = {"bfloat16"}


# Operations that need the tensors' shapes: with them the kernel takes the tensors as they are
# (one compilation per number of dimensions) rather than flattened.
SHAPED = {"mean", "norm", "matmul", "addmm", "transpose", "mean_except"}
# a tensor's elements in another's shape: among flattened tensors, flattened alike (AdaNorm's
# one-element norm read as a 0-d one)
RESHAPES = {"reshape_as"}


def _in_kernel(x: ir.TOp) -> bool:
    return x.op in ELEMENTWISE | WHOLE_TENSOR_REDUCTIONS | SHAPED | CASTS | RESHAPES


def writes_casts(opt: ir.Optimizer) -> bool:
    """Whether the kernel casts as the spec writes it (MARS's ``bfloat16(...)`` before its
    Newton-Schulz iterations): inductor then must round there as eager mode does."""
    return any(
        isinstance(x, ir.TOp) and x.op in ROUNDING_CASTS
        for s in ir.walk(opt.body)
        for e in ir.expressions(s)
        for x in _nodes(e)
    )


def keeps_shapes(opt: ir.Optimizer) -> bool:
    """Whether the kernel needs its tensors' shapes (a reduction along a dimension, a matrix
    product, a state shaped with a dimension reduced): then they are not flattened."""
    if any(s.reduced is not None for s in opt.states):
        return True
    for s in ir.walk(opt.body):
        for e in ir.expressions(s):
            for x in _nodes(e):
                if (
                    isinstance(x, ir.TOp)
                    and x.op in SHAPED
                    # (a whole-tensor norm or mean is the same of the flat view)
                    and (x.op not in ("norm", "mean") or x.kwargs)
                ):
                    return True
    return False


def fusable(opt: ir.Optimizer) -> str | None:
    """None when the update can be fused, else what stands in the way (for the error)."""
    blocked = fusion_blocker(opt)
    return None if blocked is None else blocked[0]


def fusion_blocker(opt: ir.Optimizer) -> tuple[str, object] | None:
    """What stands in the way of a fused update, and the span of the spec statement that holds
    it (None where it is the update as a whole); None when the update can be fused."""
    if opt.mode != "each" or opt.sparse == "only":
        return "an update that is not one per parameter", None
    for p in opt.later_passes:  # each pass is a kernel of its own
        blocked = fusion_blocker(
            replace(opt, body=p.body, hoisted=p.hoisted, later_passes=())
        )
        if blocked is not None:
            return blocked
    for s in ir.walk(opt.body):
        what = _blocks_fusion(s)
        if what is not None:
            return what, s.span
    return None


def _blocks_fusion(s: ir.Stmt) -> str | None:
    if isinstance(s, (ir.ForRange, ir.While, ir.Break)):
        return "a loop"  # (refused by the checker first, at the loop: E335)
    if isinstance(s, ir.Repeat) and not (
        isinstance(s.count, ir.SConst)
        and all(isinstance(x, (ir.TensorLet, ir.InPlace)) for x in ir.walk(s.body))
    ):
        # a fixed number of tensor statements unrolls in the kernel (MARS's Newton-Schulz)
        return "a `repeat` loop over numbers or a hyperparameter's count"
    if isinstance(s, ir.If) and s.varying and not _decided_on_host(s.cond):
        return "a condition read off a tensor"
    for e in ir.expressions(s):
        bad = [x.op for x in _nodes(e) if isinstance(x, ir.TOp) and not _in_kernel(x)]
        if bad:
            return f"`{bad[0]}`, which the kernel cannot run"
        if uses(e, lambda x: isinstance(x, ir.SCall) and x.func in ("item", "randint")):
            return "a number read off a tensor"
    return None


def _nodes(e) -> list:
    """Every node of an IR expression."""
    found: list = []
    uses(e, lambda x: found.append(x) or False)
    return found


SHAPES = ("numel", "size", "dim")


def _decided_on_host(cond) -> bool:
    """A per-parameter condition the host loop decides before the kernel: one that reads only
    numbers and the shapes of the parameter, its gradient and its states (`dim(param) > 1`).
    """
    shape_calls = []
    uses(
        cond,
        lambda x: isinstance(x, ir.SCall)
        and x.func in SHAPES
        and not shape_calls.append(x),
    )
    on_host = all(
        isinstance(c.args[0], ir.TRef) and c.args[0].role in ("param", "grad", "state")
        for c in shape_calls
    )
    tensors = []
    uses(cond, lambda x: isinstance(x, (ir.TRef, ir.TOp)) and not tensors.append(x))
    return on_host and len(tensors) == len(shape_calls)


class _Split:
    """Names every `if` of the body, so that host and kernel refer to the same decision.

    A decision is named after what it holds: a flag the group gives (`maximize`) is passed as
    itself; any other condition is computed on the host into a name spelled from it
    (`weight_decay > 0` → `weight_decay_positive`, `dim(param) > 1` → `param_dim_gt_1`).
    """

    def __init__(self, opt: ir.Optimizer, body):
        self.opt = opt
        self.taken = names_in_use(opt)
        self.rebound = {s.name for s in ir.walk(body) if isinstance(s, ir.ScalarLet)}
        self.names: dict[int, str] = {}
        self.computed: set[int] = set()  # decisions the host assigns (not a group flag)
        self._name_block(body, {})

    def _name_block(self, stmts, known: dict) -> None:
        # `known`: the conditions of the group's values and shapes alone already decided in
        # this block or one around it; the same condition again is the same decision
        known = dict(known)
        for s in stmts:
            if isinstance(s, ir.If):
                self._name_if(s, known)
            for block in ir.blocks(s):
                self._name_block(block, known)

    def _name_if(self, s: ir.If, known: dict) -> None:
        c = s.cond
        if (
            isinstance(c, ir.SRef)
            and c.name in self.opt.hyper
            and c.name not in self.rebound
        ):
            self.names[id(s)] = c.name
            return
        fixed = not uses(c, lambda x: isinstance(x, ir.SRef) and x.name in self.rebound)
        if fixed and c in known:
            self.names[id(s)] = known[c]
            return
        name = fresh(c, self.taken, "decision")
        self.names[id(s)] = name
        self.computed.add(id(s))
        if fixed:
            known[c] = name

    def name(self, s: ir.If) -> str:
        return self.names[id(s)]

    def decisions(self) -> list[str]:
        return list(dict.fromkeys(self.names.values()))


def _host_stmts(stmts):
    return [
        s
        for s in stmts
        if isinstance(s, (ir.CountUpdate, ir.ScalarLet, ir.Raise, ir.If))
    ]


def _kernel_stmts(stmts):
    return [
        s
        for s in stmts
        if isinstance(s, (ir.TensorLet, ir.InPlace, ir.LazyInit, ir.If, ir.Repeat))
    ]


class HostPrinter(SingleTensorPrinter):
    """The per-parameter numbers and decisions, printed as the for-loop prints them."""

    def __init__(self, opt: ir.Optimizer, split: _Split, imports: Imports):
        # decisions are Python bools: the host reads numbers, capturable or not
        super().__init__(opt, imports, capturable_counters=False)
        self.split = split
        # the counter updates done before the loop, for the whole group (group_counts)
        self.counted = {id(s) for s in group_counts(opt)}
        # under a precision policy the for-loop computes on copies in the compute dtype: a
        # number that depends on a tensor's dtype is that dtype's here too, so that every path
        # decides the same (StableAdamW's check of machine_epsilon(param))
        self.scalar.dtype_of = self._compute_dtype

    def _compute_dtype(self, base: str) -> str:
        self.imports.need("compute_dtype")
        return f"compute_dtype(precision, {base})"

    def _hosted(self, stmts) -> list:
        """The statements with host work: an `if` on a group's flag around kernel work only
        prints nothing here (the kernel takes the flag itself)."""
        return [
            s
            for s in _host_stmts(stmts)
            if not isinstance(s, ir.If)
            or id(s) in self.split.computed
            or self._hosted(s.then)
            or self._hosted(s.orelse)
        ]

    def body(self, stmts, out: Lines) -> None:
        for s in self._hosted(stmts):
            if isinstance(s, ir.If):
                name = self.split.name(s)
                if id(s) in self.split.computed:
                    out(f"{name} = {self.scalar(s.cond)}")
                then, orelse = self._hosted(s.then), self._hosted(s.orelse)
                if not (len(orelse) == 1 and isinstance(orelse[0], ir.If)):
                    if then or orelse:
                        branch = ir.If(ir.SRef(name), tuple(then), tuple(orelse))
                        _print_if(branch, out, self.scalar, self.body)
                # not as an elif chain: an `elif` is an `if` of its own here, whose decision
                # must be assigned too
                elif then:
                    out(f"if {name}:")
                    with out.indent():
                        self.body(then, out)
                    if orelse:
                        out("else:")
                        with out.indent():
                            self.body(orelse, out)
                elif orelse:
                    out(f"if not {name}:")
                    with out.indent():
                        self.body(orelse, out)
            elif id(s) in self.counted:  # (updated before the loop: read only)
                if s.read_after:
                    value = count_value(
                        self.opt, f"{s.state}_t", False, self.imports, traced=False
                    )
                    out(f"{s.state} = {value}")
            else:
                self.stmt(s, out)


class KernelPrinter(SingleTensorPrinter):
    """The tensor arithmetic, with numbers as 0-d tensors: ``alpha=``/``value=`` fold into an
    operand (``x.add_(y * s)``), functions of numbers are torch's."""

    def __init__(self, opt: ir.Optimizer, split: _Split, imports: Imports):
        super().__init__(opt, imports, capturable_counters=False)
        self.split = split
        self.differentiable = False
        self.scalar = _TorchScalars(self._ref, lambda e: self.tensor(e)[0], imports)

    def tensor(self, e: ir.TExpr) -> tuple[str, bool]:
        if isinstance(e, ir.TOp) and e.kwargs:
            e = fold_call_keywords(e)
        if isinstance(e, ir.TOp) and e.op == "where":
            # torch.where of two numbers takes their dtype: numbers are float64 tensors here,
            # so each takes the parameter's dtype, as a Python number would
            cond, *values = e.args
            values = [
                v if isinstance(v, (ir.TRef, ir.TOp, ir.SConst)) else _as_param_dtype(v)
                for v in values
            ]
            e = ir.TOp("where", (cond, *values))
        if isinstance(e, ir.TOp) and e.op == "number_like":
            return (
                f"{self.tensor(e.args[0])[0]}.new_tensor({self.scalar(e.args[1])})",
                True,
            )
        return super().tensor(e)

    def inplace(self, target: str, ops, out: Lines) -> None:
        super().inplace(target, tuple(fold_keywords(op) for op in ops), out)

    def _kept(self, stmts) -> list:
        return kept_kernel_stmts(self.opt, stmts)

    def body(self, stmts, out: Lines) -> None:
        for s in _kernel_stmts(stmts):
            if isinstance(s, ir.If):
                name = self.split.name(s)
                then, orelse = self._kept(s.then), self._kept(s.orelse)
                if then or orelse:
                    _print_if(
                        ir.If(ir.SRef(name), tuple(then), tuple(orelse)),
                        out,
                        self.scalar,
                        self.body,
                        chain=False,
                    )
            elif isinstance(s, ir.LazyInit):
                st = next(b for b in self.opt.states if b.key == s.state)
                # made before the kernel; its first value is given here
                if st.var in first_values_on_host(self.opt):  # copied before the kernel
                    if s.update:
                        out(f"if not _first_{st.var}:")
                        with out.indent():
                            self.body(s.update, out)
                    continue
                out(f"if _first_{st.var}:")
                with out.indent():
                    out(f"{st.var}.copy_({self.tensor(s.first)[0]})")
                if s.update:
                    out("else:")
                    with out.indent():
                        self.body(s.update, out)
            else:
                self.stmt(s, out)


def kept_kernel_stmts(opt: ir.Optimizer, stmts) -> list:
    """The statements of a block a kernel prints (a lazy state copied on the host and never
    updated prints nothing), for the compiled kernel and the native one alike."""
    on_host = first_values_on_host(opt)
    return [
        s
        for s in _kernel_stmts(stmts)
        if not (
            isinstance(s, ir.LazyInit)
            and not s.update
            and next(b for b in opt.states if b.key == s.state).var in on_host
        )
    ]


def _as_param_dtype(v: ir.SExpr) -> ir.SExpr:
    return ir.SCall("as_param_dtype", (v,))


class _TorchScalars(ScalarPrinter):
    """Numbers are 0-d tensors in the kernel: their functions are torch's, not math's."""

    # the builtin table's torch forms: torch.sqrt, torch.cos, torch.maximum, ...
    FUNCS = {b.name: b.torch for b in BUILTINS.values() if b.torch is not None}

    def __call__(self, e) -> str:
        if isinstance(e, ir.SCall) and e.func == "as_param_dtype":
            return f"{self.wrap(e.args[0], 9)}.to(param.dtype)"
        if (
            isinstance(e, ir.SCall)
            and e.func in self.FUNCS
            and uses(e, lambda x: isinstance(x, ir.SRef))
        ):
            # (a number of constants and shapes alone, `sqrt(numel(g))`, `sin(pi / 4)`, is a
            # Python number, a SymInt while compiling, not a 0-d tensor: math's functions
            # apply to it)
            return f"{self.FUNCS[e.func]}({', '.join(self(a) for a in e.args)})"
        return super().__call__(e)


def first_values_on_host(opt: ir.Optimizer) -> dict[str, str]:
    """Lazy states whose first value is the parameter as the update starts (MADGRAD's
    ``x0 <- x0 initially param``): state variable → the tensor copied, on the host before the
    kernel runs. Inside the kernel, inductor would copy the parameter *after* the kernel's later
    in-place update of it (pytorch/pytorch#198131: a copy of an input into another input,
    then a mutation of the source, copies the mutated values)."""
    out = {}
    mutated = False
    for s in ir.walk(opt.body):
        if isinstance(s, ir.InPlace) and s.target.role == "param":
            mutated = True
        if (
            isinstance(s, ir.LazyInit)
            and not mutated
            and isinstance(s.first, ir.TRef)
            and s.first.role == "param"
        ):
            st = next(b for b in opt.states if b.key == s.state)
            out[st.var] = "param"
    return out


def kernel_inputs(
    opt: ir.Optimizer, split: _Split
) -> tuple[list[str], list[str], list[str]]:
    """(tensors, numbers, decisions) the kernel takes, in a fixed order."""
    tensors: list[str] = ["param", "grad"]
    for s in opt.states:
        if s.scope == "parameter" and s.kind == "tensor":
            tensors.append(s.var)
    # the optimizer's totals the pass adds to (Prodigy's sums), updated in place in the kernel
    tensors += [s.key for s in opt.states if s.kind == "total" and s.key in opt.hyper]
    numbers: list[str] = []
    split_names = split.decisions()
    local_tensors = {s.name for s in ir.walk(opt.body) if isinstance(s, ir.TensorLet)}

    def visit(x):
        if (
            isinstance(x, ir.SRef)
            and x.name not in numbers
            and x.name not in split_names
        ):
            numbers.append(x.name)
        return False

    # flags a value is chosen by, `(1.0 if fixed_decay else lr)`
    conditions: list[str] = []

    def condition(x):
        if isinstance(x, ir.SCond):
            uses(x.cond, lambda y: isinstance(y, ir.SRef) and conditions.append(y.name))
        return False

    for s in ir.walk(opt.body):  # a lazy state's update included
        if isinstance(s, (ir.TensorLet, ir.InPlace, ir.LazyInit)):
            for e in ir.expressions(s):
                uses(e, visit)
                uses(e, condition)
    # a flag enters the kernel as a Python bool, a decision compiled in, not as a 0-d tensor
    # (the kernel could not branch on that)
    conditions = list(dict.fromkeys(c for c in conditions if c not in split_names))
    numbers = [n for n in numbers if n not in local_tensors and n not in conditions]
    decisions = split_names + conditions
    decisions += [f"_first_{s.var}" for s in lazy_made_here(opt)]
    return tensors, numbers, decisions


def lazy_made_here(opt: ir.Optimizer) -> list:
    """The lazy states whose first value this pass's update gives (``initially``); with
    several passes, another pass's lazy state is made by that pass (SAM's old_p in its second,
    SGD's momentum buffer in its last), never left allocated and unset by an earlier one.
    """
    made = {s.state for s in ir.walk(opt.body) if isinstance(s, ir.LazyInit)}
    return [
        s
        for s in opt.states
        if s.scope == "parameter" and s.init is None and s.key in made
    ]


def kernel_source(opt: ir.Optimizer, fname: str, imports: Imports) -> str:
    """``def _<fname>_kernel(...)``: the tensor statements of one parameter's update."""
    split = _Split(opt, opt.body)
    tensors, numbers, decisions = kernel_inputs(opt, split)
    out = Lines()
    policy = ["_compute", "_rounding", "_comp", "_key"]
    args = ", ".join(tensors + numbers + decisions + policy)
    out(f"def _{fname}_kernel({args}):")
    with out.indent():
        body = Lines()
        KernelPrinter(opt, split, imports).body(opt.body, body)
        if not body.lines:
            raise GeneratorBug("an empty fused kernel")
        # the precision policy (generator.runtime.precision): the arithmetic in the compute dtype,
        # the casts and the rounding in the kernel's own loop
        stored = ["param"] + [
            s.var for s in opt.states if s.scope == "parameter" and s.kind == "tensor"
        ]
        cast = stored[:1] + ["grad"] + stored[1:]
        out("if _compute is not None:  # a precision policy: compute in _compute")
        with out.indent():
            out(f"_stored = ({', '.join(stored)}{',' * (len(stored) == 1)})")
            out(f"{', '.join(cast)} = to_compute(_compute, {', '.join(cast)})")
        for line in body.lines:
            out(line)
        out("if _compute is not None:")
        with out.indent():
            stores = ", ".join(stored) + "," * (len(stored) == 1)
            out(f"store_back(_stored, ({stores}), _rounding, _comp, _key)")
    return out.text()


def group_counts(opt: ir.Optimizer) -> list[ir.CountUpdate]:
    """The counter updates the update opens with (``t <- t + 1``), each by a number of the
    group: done for the whole group at once before the host loop (one foreach call, as
    torch's fused path does), not once per parameter."""
    out = []
    for s in opt.body:
        if not isinstance(s, ir.CountUpdate):
            break
        st = next(b for b in opt.states if b.key == s.state)
        if (
            s.scope != "parameter"
            or s.op != "+="
            or st.as_number
            or st.condition is not None
            or uses(s.value, lambda x: isinstance(x, ir.SRef) and x.varying)
        ):
            break
        out.append(s)
    return out


def host_source(
    opt: ir.Optimizer, fname: str, imports: Imports
) -> tuple[str, list[str], list[str], list[str]]:
    split = _Split(opt, opt.body)
    tensors, numbers, decisions = kernel_inputs(opt, split)
    out = Lines()
    # Decisions and numbers made inside a branch: defined for every parameter, so that the
    # kernel call can name them (the kernel reads them only where they were made).
    nested = [s for s in ir.walk(opt.body) if isinstance(s, ir.If)]
    inner = {id(x) for s in nested for x in ir.walk(s.then + s.orelse)}
    for s in nested:
        if id(s) in inner and id(s) in split.computed:
            out(f"{split.name(s)} = False")
    made = set()  # a number set in both branches of an `if` is defined once
    for s in ir.walk(opt.body):
        if isinstance(s, ir.ScalarLet) and id(s) in inner and s.name in numbers:
            if s.name not in made:
                made.add(s.name)
                out(f"{s.name} = 0.0")
    HostPrinter(opt, split, imports).body(opt.body, out)
    return out.text(), tensors, numbers, decisions
