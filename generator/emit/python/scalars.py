"""Printing scalar IR expressions as Python, and the counters that may be tensors on the device.

Emit's printers (generator.emit.python.single, foreach, fused, validation) spell every number of
the lowered IR through ``ScalarPrinter``: a caller decides how a name reads where the code runs
(``beta1``, ``group["betas"][0]``, a list per parameter), the printer adds parentheses from Python's
precedence and the builtin table's spellings (``math.sqrt(x)``), recording the ``math`` they need
in the module's ``Imports``. With torch's `capturable` flag the per-parameter counters, and the
numbers made from them, stay tensors on the device; the helpers here say which numbers those are,
how a counter reads as a number (``_get_value(step_t)``), and ``CapturableScalars`` prints their
``max``/``sqrt`` as torch's, chosen at run time.
"""

from __future__ import annotations

import re

from typing import Callable

from generator import ir
from generator.ir import uses
from generator.language.builtins import BUILTINS, CONSTANTS
from generator.language.diagnostics import GeneratorBug
from generator.emit.python.blocks import PY_PRECEDENCE, Imports

_COMPARE = {"==", "!=", "<", "<=", ">", ">="}

# the builtin table spells these functions of numbers with math's (math.sqrt, math.copysign)
_MATH = frozenset(
    b.name for b in BUILTINS.values() if b.python is not None and "math." in b.python
)


def _tensor_name(e) -> str:
    if isinstance(e, ir.TRef):
        return e.name
    raise GeneratorBug(f"no tensor printer for {e!r}")


def _is_tensor(e) -> bool:
    """A tensor, or a choice of tensors (``merge_dims(p, n) if merged else p``)."""
    if isinstance(e, ir.SCond):
        return _is_tensor(e.then)
    return isinstance(e, (ir.TRef, ir.TOp))


class ScalarPrinter:
    """Python source for scalar IR expressions; ``ref`` decides how a name is spelled here, and
    ``tensor`` how a tensor is (the argument of ``numel``, ``dim``, ``size``, ``item``); the
    module's ``imports`` record what the printed numbers need (without one, as for a test's
    expression, the record is the printer's own).
    """

    def __init__(
        self,
        ref: Callable[[ir.SRef], str],
        tensor: Callable[..., str] = _tensor_name,
        imports: Imports | None = None,
    ):
        self.ref = ref
        self.tensor = tensor
        self.imports = Imports() if imports is None else imports
        # how a tensor's dtype reads where a number depends on it (machine_epsilon)
        self.dtype_of: Callable[[str], str] = lambda base: f"{base}.dtype"

    def prec(self, e) -> int:
        if isinstance(e, ir.SBin):
            return PY_PRECEDENCE["compare" if e.op in _COMPARE else e.op]
        if isinstance(e, ir.SCompare):
            return PY_PRECEDENCE["compare"]
        if isinstance(e, ir.SUnary):
            return PY_PRECEDENCE["not" if e.op == "not" else "neg"]
        if isinstance(e, ir.SCond):
            return PY_PRECEDENCE["cond"]
        if isinstance(e, ir.SConst) and e.spelling.startswith("-"):
            return PY_PRECEDENCE["neg"]
        return PY_PRECEDENCE["atom"]

    def wrap(self, e, minimum: int) -> str:
        text = self(e)
        return f"({text})" if self.prec(e) < minimum else text

    def __call__(self, e) -> str:
        if isinstance(e, (ir.TRef, ir.TOp)):  # (a branch of a choice of tensors)
            return self.tensor(e)
        if isinstance(e, ir.SConst):
            return constant_source(e, self.imports)
        if isinstance(e, ir.SRef):
            return self.ref(e)
        if isinstance(e, ir.SIndex):
            return f"{self.wrap(e.value, PY_PRECEDENCE['atom'])}[{self(e.index)}]"
        if isinstance(e, ir.STuple):
            items = [self(x) for x in e.items]
            return "(" + ", ".join(items) + ("," if len(items) == 1 else "") + ")"
        if isinstance(e, ir.SBin):
            if e.op in _COMPARE:
                return self(ir.SCompare((e.op,), (e.left, e.right)))
            p = PY_PRECEDENCE[e.op]
            if e.op == "**":
                return f"{self.wrap(e.left, p + 1)} ** {self.wrap(e.right, p)}"
            return f"{self.wrap(e.left, p)} {e.op} {self.wrap(e.right, p + 1)}"
        if isinstance(e, ir.SCompare):
            p = PY_PRECEDENCE["compare"]
            parts = [self.wrap(e.operands[0], p + 1)]
            for op, x in zip(e.ops, e.operands[1:]):
                parts += [op, self.wrap(x, p + 1)]
            return " ".join(parts)
        if isinstance(e, ir.SUnary):
            if e.op == "not":
                return "not " + self.wrap(e.operand, PY_PRECEDENCE["not"])
            return "-" + self.wrap(e.operand, PY_PRECEDENCE["neg"])
        if isinstance(e, ir.SCond):
            p = PY_PRECEDENCE["cond"]
            return f"{self.wrap(e.then, p + 1)} if {self.wrap(e.cond, p + 1)} else {self.wrap(e.orelse, p)}"
        if isinstance(e, ir.SCall):
            if any(_is_tensor(a) for a in e.args):
                return self._tensor_property(e)
            args = [self(a) for a in e.args]
            f = e.func
            b = BUILTINS.get(f)  # math.sqrt(x), abs(x), max(a, b): the builtin table's
            if b is not None and b.python is not None:
                if f in _MATH:
                    self.imports.need("math")
                return b.python.format(*args)
            if (
                b is not None and b.runtime is not None
            ):  # (host_uniform(): the runtime's)
                self.imports.need(b.runtime)
                return f"{b.runtime}({', '.join(args)})"
            if f == "numel":
                return f"{self.wrap(e.args[0], PY_PRECEDENCE['atom'])}.numel()"
            if f == "is_sparse":
                return f"{self.wrap(e.args[0], PY_PRECEDENCE['atom'])}.is_sparse"
            if f == "where":
                return f"torch.where({', '.join(args)})"
        raise GeneratorBug(f"cannot print scalar {e!r}")

    def _tensor_property(self, e: ir.SCall) -> str:
        """A number read off a tensor: ``param.numel()``, ``grad.size(-1)``, ``norm.item()``."""
        base = (
            self.tensor(e.args[0])
            if isinstance(e.args[0], (ir.TRef, ir.TOp))
            else f"({self(e.args[0])})"  # a choice of tensors
        )
        # (a name, an attribute, a call or an item, `device_params[0]`, needs no parentheses)
        if not re.fullmatch(r"[\w.]+(\[\w+\])?", base) and not base.endswith(")"):
            base = f"({base})"
        # printed only where read: a dtype_of may record the helper it names (compute_dtype)
        if e.func == "machine_epsilon":
            return f"torch.finfo({self.dtype_of(base)}).eps"
        rest = [
            self.tensor(a) if isinstance(a, (ir.TRef, ir.TOp)) else self(a)
            for a in e.args[1:]
        ]
        spelling = {
            "numel": f"{base}.numel()",
            "dim": f"{base}.dim()",
            "item": f"{base}.item()",
            "is_complex": f"torch.is_complex({base})",
            "is_sparse": f"{base}.is_sparse",
            "size": f"{base}.size({', '.join(rest)})",
            "is_sharded": f"_is_sharded({base})",
            "len": f"len({base})",  # (of a list state)
            "max_size": f"max({base}.shape, default=0)",
        }
        runtime = BUILTINS[e.func].runtime if e.func in BUILTINS else None
        if runtime is not None:  # (a number the generated modules' runtime computes)
            self.imports.need(runtime)
            return f"{runtime}({', '.join([base, *rest])})"
        if e.func not in spelling:
            raise GeneratorBug(f"cannot print {e.func} of a tensor")
        return spelling[e.func]


def constant_source(e: ir.SConst, imports: Imports) -> str:
    """A literal's Python source: a number as the spec spells it, a named constant as Python's
    math spells it (``math.pi``, ``math.inf``), true/false/none and strings as Python literals
    (a string is spec text: escaped by ``repr``)."""
    if e.named:
        sign, name = ("-", e.spelling[1:]) if e.spelling[0] == "-" else ("", e.spelling)
        python = CONSTANTS[name].python if name in CONSTANTS else "math." + name
        if python.startswith("math."):  # (a dtype is torch's: `torch.float32`)
            imports.need("math")
        return sign + python
    return e.spelling or repr(e.value)


def literal(e: ir.SExpr, imports: Imports) -> str:
    """A default's Python source: ``0.001``, ``(0.9, 0.999)``, ``None``, ``'strong_wolfe'``."""
    return ScalarPrinter(_no_name, _no_name, imports)(e)


def _no_name(e) -> str:
    raise GeneratorBug(f"a literal refers to {e!r}")


def annotation(t: ir.ArgType) -> str:
    """``float | Tensor``, ``tuple[float, float]``, ``tuple[float, ...]``, ``int | None``."""
    if t.items:
        return "tuple[" + ", ".join(annotation(x) for x in t.items) + "]"
    if t.repeated:
        item = " | ".join([x.value for x in t.alternatives] + ["None"] * t.optional)
        return f"tuple[{item}, ...]"
    return " | ".join([x.value for x in t.alternatives] + ["None"] * t.optional)


def varying_refs(e) -> list:
    """What makes a scalar differ between parameters: per-parameter counters and scalars
    (``SRef``), and the tensors a number is read off (``TRef``: ``param.dim()``)."""
    out: list = []

    def tensor(x):
        if isinstance(x, ir.TRef) and x not in out:
            out.append(x)
        return False

    def visit(x):
        if isinstance(x, ir.SRef) and x.varying and x not in out:
            out.append(x)
        if isinstance(x, ir.SCall):
            for a in x.args:
                if isinstance(a, (ir.TRef, ir.TOp)):
                    uses(a, tensor)
        return False

    uses(e, visit)
    return out


def capturable(opt: ir.Optimizer) -> bool:
    """Whether the spec takes torch's `capturable` flag: its counters then stay tensors on the
    parameter's device, read without a host-device sync, as CUDA graph capture requires.
    """
    return any(a.name == "capturable" for a in opt.arguments)


def traced(opt: ir.Optimizer) -> str:
    """The run-time test for "the counters are tensors here": under torch.compile (dynamo
    traces them as tensors) and, where the spec has the flag, with capturable=True."""
    if capturable(opt):
        return "capturable or torch.compiler.is_compiling()"
    return "torch.compiler.is_compiling()"


class CapturableScalars(ScalarPrinter):
    """Numbers made from counters are device tensors with capturable=True: Python's ``max`` or
    ``math.sqrt`` of one would read it back to the host (a sync, and an error inside CUDA graph
    capture), so such a call becomes torch's, chosen at run time as torch's capturable code
    chooses (ASGD's ``1 / max(1, step - t0)``)."""

    # functions of one number with a torch form (the builtin table's `torch`): torch.sqrt(step)
    TORCH = {
        b.name: b.torch
        for b in BUILTINS.values()
        if b.torch is not None and len(b.params) == 1
    }

    def __init__(
        self,
        ref,
        tensor,
        device_scalars: set[str],
        imports: Imports,
        device_ref=None,
        eager_ref=None,
        test: str = "capturable",
    ):
        super().__init__(ref, tensor, imports)
        self.device_scalars = device_scalars
        self.test = test  # the run-time test for "the counters are tensors here"
        # how a name reads on either side of the run-time choice, where that decides it (the
        # foreach path's ``step if capturable else _get_value(step)``)
        self.device_ref = device_ref or ref
        self.eager_ref = eager_ref or ref

    def on_device(self, e) -> bool:
        return uses(
            e, lambda r: isinstance(r, ir.SRef) and r.name in self.device_scalars
        )

    def __call__(self, e) -> str:
        if not (
            isinstance(e, ir.SCall)
            and e.func in ("max", "min", *self.TORCH)
            and self.on_device(e)
        ):
            return super().__call__(e)
        ref = self.ref
        try:
            self.ref = self.eager_ref
            eager = super().__call__(e)
            self.ref = self.device_ref
            device = self._on_device(e)
        finally:
            self.ref = ref
        return f"({device} if {self.test} else {eager})"

    def _on_device(self, e: ir.SCall) -> str:
        args = [self(a) for a in e.args]
        if e.func in self.TORCH:
            device = f"{self.TORCH[e.func]}({args[0]})"
        else:
            atom = PY_PRECEDENCE["atom"]
            on = [self.wrap(x, atom) for x in e.args if self.on_device(x)]
            off = [a for a, x in zip(args, e.args) if not self.on_device(x)]
            bound = "min" if e.func == "max" else "max"
            if len(on) == 1 and len(off) == 1:
                device = f"{on[0]}.clamp({bound}={off[0]})"
            else:
                fn = "torch.maximum" if e.func == "max" else "torch.minimum"
                device = f"{fn}({', '.join(on)})"
                for a in off:
                    device = f"{device}.clamp({bound}={a})"
        return device


def _counter_values(opt: ir.Optimizer) -> set[str]:
    """The per-parameter counters and the numbers computed from them: tensors on the device
    with capturable=True."""
    found = {
        s.key
        for s in opt.states
        if s.kind == "count" and s.scope == "parameter" and not s.as_number
    }
    for s in ir.walk(opt.body):
        if isinstance(s, ir.ScalarLet) and uses(
            s.value, lambda r: isinstance(r, ir.SRef) and r.name in found
        ):
            found.add(s.name)
    return found


def count_value(
    opt: ir.Optimizer,
    var: str,
    as_number: bool,
    imports: Imports,
    keep_tensor: bool = False,
    traced: bool = True,
) -> str:
    """A counter's value as a number: ``_get_value(step_t)`` (a tensor while dynamo traces),
    ``step_t.item()`` in an update that reads numbers off tensors anyway or in code never
    traced (``traced=False``), or the number itself.
    With ``keep_tensor`` (a spec taking `capturable`) the counter stays a tensor when
    capturable=True, as torch's capturable paths keep ``step_t``.
    """
    if as_number:
        return var
    if opt.reads_numbers or not traced:
        value = f"{var}.item()"
    else:
        imports.need("_get_value")
        value = f"_get_value({var})"
    if keep_tensor:
        return f"({var} if capturable else {value})"
    return value
