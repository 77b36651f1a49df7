"""Printing the IR as Python: scalar expressions, the single-tensor loop body and the foreach body.

Both bodies come from the same IR statements. The single-tensor printer chains operations on fresh
results in place (``exp_avg_sq.sqrt().div_(c).add_(eps)``) and never mutates a tensor it does not own;
the foreach printer turns each operation into one ``torch._foreach_*`` call on the device's tensor
lists, in place on fresh lists, and turns per-parameter scalars into lists. Operation spellings come
from generator.emit.python.ops; parentheses come from Python's precedence table, not from the spec.
"""

from __future__ import annotations

import contextlib
import re
from typing import Callable

from generator import ir
from generator.ir import uses
from generator.language.builtins import BUILTINS
from generator.language.diagnostics import GeneratorBug
from generator.emit.python.ops import OPS

PY_PRECEDENCE = {
    "cond": 0,
    "or": 1,
    "and": 2,
    "not": 3,
    "compare": 4,
    "+": 5,
    "-": 5,
    "*": 6,
    "/": 6,
    "%": 6,
    "//": 6,
    "neg": 7,
    "**": 8,
    "atom": 9,
}
_COMPARE = {"==", "!=", "<", "<=", ">", ">="}


def _tensor_name(e) -> str:
    if isinstance(e, ir.TRef):
        return e.name
    raise GeneratorBug(f"no tensor printer for {e!r}")


class ScalarPrinter:
    """Python source for scalar IR expressions; ``ref`` decides how a name is spelled here, and
    ``tensor`` how a tensor is (the argument of ``numel``, ``dim``, ``size``, ``item``).
    """

    def __init__(
        self, ref: Callable[[ir.SRef], str], tensor: Callable[..., str] = _tensor_name
    ):
        self.ref = ref
        self.tensor = tensor

    def prec(self, e) -> int:
        if isinstance(e, ir.SBin):
            return PY_PRECEDENCE["compare" if e.op in _COMPARE else e.op]
        if isinstance(e, ir.SCompare):
            return PY_PRECEDENCE["compare"]
        if isinstance(e, ir.SUnary):
            return PY_PRECEDENCE["not" if e.op == "not" else "neg"]
        if isinstance(e, ir.SCond):
            return PY_PRECEDENCE["cond"]
        if isinstance(e, ir.SConst) and e.text.startswith("-"):
            return PY_PRECEDENCE["neg"]
        return PY_PRECEDENCE["atom"]

    def wrap(self, e, minimum: int) -> str:
        text = self(e)
        return f"({text})" if self.prec(e) < minimum else text

    def __call__(self, e) -> str:
        if isinstance(e, ir.SConst):
            return e.text
        if isinstance(e, ir.SRef):
            return self.ref(e)
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
            if any(isinstance(a, (ir.TRef, ir.TOp)) for a in e.args):
                return self._tensor_property(e)
            args = [self(a) for a in e.args]
            f = e.func
            b = BUILTINS.get(f)  # math.sqrt(x), abs(x), max(a, b): the builtin table's
            if b is not None and b.python is not None:
                return b.python.format(*args)
            if f == "numel":
                return f"{self.wrap(e.args[0], PY_PRECEDENCE['atom'])}.numel()"
            if f == "is_sparse":
                return f"{self.wrap(e.args[0], PY_PRECEDENCE['atom'])}.is_sparse"
            if f == "where":
                return f"torch.where({', '.join(args)})"
        raise GeneratorBug(f"cannot print scalar {e!r}")

    def _tensor_property(self, e: ir.SCall) -> str:
        """A number read off a tensor: ``param.numel()``, ``grad.size(-1)``, ``norm.item()``."""
        base = self.tensor(e.args[0])
        if not base.replace("_", "").replace(".", "").isalnum() and not base.endswith(
            ")"
        ):
            base = f"({base})"
        rest = [self(a) for a in e.args[1:]]
        spelling = {
            "numel": f"{base}.numel()",
            "dim": f"{base}.dim()",
            "item": f"{base}.item()",
            "is_complex": f"torch.is_complex({base})",
            "is_sparse": f"{base}.is_sparse",
            "machine_epsilon": f"torch.finfo({base}.dtype).eps",
            "size": f"{base}.size({', '.join(rest)})",
            "is_sharded": f"_is_sharded({base})",
        }
        if e.func not in spelling:
            raise GeneratorBug(f"cannot print {e.func} of a tensor")
        return spelling[e.func]


def literal(e: ir.SExpr) -> str:
    """A default's Python source: ``0.001``, ``(0.9, 0.999)``, ``None``, ``'strong_wolfe'``."""
    return ScalarPrinter(_no_name, _no_name)(e)


def _no_name(e) -> str:
    raise GeneratorBug(f"a literal refers to {e!r}")


def annotation(t: ir.ArgType) -> str:
    """``float | Tensor``, ``tuple[float, float]``, ``int | None``."""
    if t.items:
        return "tuple[" + ", ".join(annotation(x) for x in t.items) + "]"
    return " | ".join([x.value for x in t.alternatives] + ["None"] * t.optional)


def message_source(msg: ir.Message, show) -> str:
    """Python source of an error message: a plain literal, or an f-string of the values it
    shows (``show`` prints each). The literal parts are spec text: escaped, never code.
    """
    if all(isinstance(p, str) for p in msg.parts):
        return repr("".join(msg.parts))
    out = []
    for part in msg.parts:
        if isinstance(part, str):
            out.append(part.replace("{", "{{").replace("}", "}}"))
        else:
            out.append("{" + show(part) + "}")
    return "f" + repr("".join(out))


def _input_name(e) -> str:
    """A value an error message of the step shows: an input, by its name in the function."""
    if isinstance(e, ir.SRef):
        return e.name
    raise GeneratorBug(f"a message of the step shows {e!r}")


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


class Lines:
    def __init__(self) -> None:
        self.lines: list[str] = []
        self.level = 0

    def __call__(self, text: str) -> None:
        self.lines.append("    " * self.level + text)

    def indent(self):
        lines = self

        class _Ctx:
            def __enter__(self):
                lines.level += 1

            def __exit__(self, *a):
                lines.level -= 1

        return _Ctx()

    def text(self) -> str:
        return "\n".join(self.lines)


# ---- the single-tensor body ------------------------------------------------------------------------


class SingleTensorPrinter:
    def __init__(self, opt: ir.Optimizer, capturable_counters: bool = True):
        self.opt = opt
        # With differentiable=True, autograd needs the results it saved (sqrt's output) unchanged.
        self.differentiable = any(a.name == "differentiable" for a in opt.arguments)
        self.scalar = ScalarPrinter(self._ref, lambda e: self.tensor(e)[0])
        self.counts = {s.key for s in opt.states if s.kind == "count"}
        # with capturable=True counters stay tensors on the device (the fused host reads numbers)
        self.keep_tensors = capturable_counters and capturable(opt)
        self.device_scalars = _counter_values(opt)
        self.reduced: set[str] = set()  # locals holding a reduction's (smaller) result
        # printing after complex parameters were viewed as real: a lazy state made there is
        # stored as the complex tensor the view stands for
        self.real_views = False
        if self.keep_tensors and self.device_scalars:
            self.scalar = CapturableScalars(
                self._ref, lambda e: self.tensor(e)[0], self.device_scalars
            )

    def _ref(self, r: ir.SRef) -> str:
        return r.name  # counts are refreshed into a Python number named after their key

    def tensor(self, e: ir.TExpr) -> tuple[str, bool]:
        """(source, fresh): fresh results may be updated in place by the next operation."""
        if isinstance(e, ir.TRef):
            return e.name, e.role == "fresh"
        spell = OPS[e.op]
        if e.op == "neg" and isinstance(e.args[0], ir.TRef):
            return f"-{self.tensor(e.args[0])[0]}", True
        if e.op == "number_like":
            # a fill on the device, not a copy from the host (CUDA graph capture forbids those)
            like = self.tensor(e.args[0])[0]
            return f"{like}.new_full((), {self.scalar(e.args[1])})", True
        if spell.infix is not None:
            a, b = (self.tensor(x)[0] for x in e.args)
            return f"({a} {spell.infix} {b})", True
        if spell.attribute is not None:
            base, fresh = self.tensor(e.args[0])
            if base.startswith("-"):
                base = f"({base})"
            return f"{base}.{spell.attribute}", fresh
        if spell.function is not None:
            args = [self.arg(a) for a in e.args]
            args += [f"{k}={self.scalar(v)}" for k, v in e.kwargs]
            prefix = "torch." if not spell.function.startswith("_") else ""
            return f"{prefix}{spell.function}({', '.join(args)})", True
        base, fresh = self.tensor(e.args[0])
        if base.startswith("-"):
            base = f"({base})"
        args = [self.arg(a) for a in e.args[1:]]
        args += [f"{k}={self.scalar(v)}" for k, v in e.kwargs]
        if fresh and self.differentiable and _saves_output(e.args[0]):
            fresh = False
        if (
            fresh
            and _reduced(e.args[0], self.reduced)
            and not all(_reduced(a, self.reduced) for a in e.args[1:])
        ):
            # a reduction's result (`mean(x, -1)`: size 1 along -1) broadcasts to the other
            # operand's shape: it cannot hold the result in place
            fresh = False
        method = spell.inplace if fresh and spell.inplace else spell.method
        return f"{base}.{method}({', '.join(args)})", True

    def let(self, name: str, e: ir.TExpr, out: Lines, assign: bool = True) -> None:
        """``name = e``; where an in-place step would overwrite a result autograd saved, the choice
        is made at run time, as torch writes it: ``x = x.add(eps) if differentiable else x.add_(eps)``.
        """
        chain, x = [], e
        while isinstance(x, ir.TOp) and OPS[x.op].function is None and OPS[x.op].method:
            chain.append(x)
            x = x.args[0]
        chain.reverse()
        for k in range(1, len(chain)):
            op = chain[k]
            if (
                self.differentiable
                and OPS[chain[k - 1].op].saves_output
                and OPS[op.op].inplace
            ):
                out(f"{name} = {self.tensor(chain[k - 1])[0]}")
                args = [self.arg(a) for a in op.args[1:]]
                args += [f"{kw}={self.scalar(v)}" for kw, v in op.kwargs]
                a = ", ".join(args)
                spell = OPS[op.op]
                out(
                    f"{name} = {name}.{spell.method}({a}) if differentiable "
                    f"else {name}.{spell.inplace}({a})"
                )
                rest: ir.TExpr = ir.TRef(name, "fresh")
                for outer in chain[k + 1 :]:
                    rest = ir.TOp(outer.op, (rest,) + outer.args[1:], outer.kwargs)
                if rest != ir.TRef(name, "fresh"):
                    self.let(name, rest, out, assign=False)
                return
        # A chain continuing in place on `name` itself needs no assignment.
        out(f"{name} = {self.tensor(e)[0]}" if assign else self.tensor(e)[0])

    def arg(self, a) -> str:
        if isinstance(a, (ir.TRef, ir.TOp)):
            return self.tensor(a)[0]
        return self.scalar(a)

    def inplace(self, target: str, ops: tuple[ir.TOp, ...], out: Lines) -> None:
        on_device = lambda v: uses(  # noqa: E731
            v, lambda r: isinstance(r, ir.SRef) and r.name in self.device_scalars
        )
        if self.keep_tensors and any(on_device(v) for op in ops for _, v in op.kwargs):
            # alpha= and value= take Python numbers only: with capturable=True a value made
            # from a counter is a tensor on the device, so it multiplies an operand instead
            out("if capturable:")
            with out.indent():
                self._inplace(target, tuple(fold_keywords(op) for op in ops), out)
            out("else:")
            with out.indent():
                self._inplace(target, ops, out)
            return
        self._inplace(target, ops, out)

    def _inplace(self, target: str, ops: tuple[ir.TOp, ...], out: Lines) -> None:
        chain = target
        for op in ops:
            spell = OPS[op.op]
            args = [self.arg(a) for a in op.args] + [
                f"{k}={self.scalar(v)}" for k, v in op.kwargs
            ]
            if spell.out_kw:
                if chain != target:
                    out(chain)
                a = ", ".join(args)
                call = f"torch.{spell.function}({target}, {a}, out={target})"
                if self.differentiable:  # out= does not support autograd
                    out("if differentiable:")
                    with out.indent():
                        # the clone keeps the value autograd saved from being overwritten
                        out(
                            f"{target}.copy_(torch.{spell.function}({target}.clone(), {a}))"
                        )
                    out("else:")
                    with out.indent():
                        out(call)
                else:
                    out(call)
                chain = target
                continue
            chain += f".{spell.inplace}({', '.join(args)})"
        if chain != target:
            out(chain)

    def body(self, stmts, out: Lines, free: bool = False) -> None:
        """Print ``stmts``; with ``free`` (the per-parameter update's top level), a local tensor
        is deleted once nothing after reads it: the locals of one parameter's update would
        otherwise all stay alive until the next parameter rebinds them."""
        tensors = {s.name for s in ir.walk(stmts) if isinstance(s, ir.TensorLet)}
        assigned = re.compile("    " * out.level + r"(\w+) = ")
        bound: list[str] = []
        freed: set[str] = set()
        for k, s in enumerate(stmts):
            mark = len(out.lines)
            self.stmt(s, out)
            if not free:
                continue
            made = [m[1] for line in out.lines[mark:] if (m := assigned.match(line))]
            made = [n for n in made if n in tensors]
            bound += made
            freed.difference_update(made)
            later = _names_read(stmts[k + 1 :])
            dead = [
                n for n in dict.fromkeys(bound) if n not in later and n not in freed
            ]
            if dead and k < len(stmts) - 1:  # at the end the next rebinding frees them
                out(f"del {', '.join(dead)}")
                freed.update(dead)

    def stmt(self, s, out: Lines) -> None:
        if isinstance(s, ir.Probe):
            out(f"_cover({s.label!r})")
        elif isinstance(s, ir.ScalarLet):
            out(f"{s.name} = {self.scalar(s.value)}")
        elif isinstance(s, ir.CountUpdate):
            var = f"{s.state}_t"
            st = next(b for b in self.opt.states if b.key == s.state)
            if s.op == "fill" and st.as_number:
                out(f"{var} = {self.scalar(s.value)}")
            elif s.op == "fill":
                out(f"{var}.fill_({self.scalar(s.value)})")
            else:
                out(f"{var} {s.op} {self.scalar(s.value)}")
            if (
                st.as_number
            ):  # a number: the list carries the new value back to the state
                out(f"{st.list_name}[i] = {var}")
            if s.read_after:
                value = count_value(self.opt, var, st.as_number, self.keep_tensors)
                out(f"{s.state} = {value}")
        elif isinstance(s, ir.TensorLet):
            self.let(s.name, s.value, out)
            if _reduced(s.value, self.reduced):
                self.reduced.add(s.name)
            else:
                self.reduced.discard(s.name)
        elif isinstance(s, ir.InPlace):
            self.inplace(s.target.name, s.ops, out)
        elif isinstance(s, ir.LazyInit):
            st = next(b for b in self.opt.states if b.key == s.state)
            first, fresh = self.tensor(s.first)
            out(f"if {st.var} is None:")
            with out.indent():
                out(f"{st.var} = {first}.detach()" + ("" if fresh else ".clone()"))
                if self.real_views:
                    out(
                        f"{st.list_name}[i] = torch.view_as_complex({st.var}) "
                        f"if torch.is_complex(params[i]) else {st.var}"
                    )
                else:
                    out(f"{st.list_name}[i] = {st.var}")
            if s.update:  # (none: kept as it was first made, MADGRAD's x0)
                out("else:")
                with out.indent():
                    self.body(s.update, out)
        elif isinstance(s, ir.If):
            _traced_or(
                s,
                out,
                self.body,
                lambda: _print_if(s, out, self.scalar, self.body),
                traced(self.opt),
            )
        elif isinstance(s, ir.Repeat):
            out(f"for _ in range({self.scalar(s.count)}):")
            with out.indent():
                self.body(s.body, out)
        elif isinstance(s, ir.Raise):
            _print_raise(s, out, self.scalar)
        else:
            raise GeneratorBug(f"cannot print {s!r}")


class SparseValuesPrinter(SingleTensorPrinter):
    """The update of a sparse gradient, on the values of the rows it holds: the gradient is
    ``grad_values``, a state or the parameter is read at those rows (``sparse_mask``), and an
    addition to a state or the parameter adds a sparse tensor of the same rows, as torch's
    SparseAdam and sparse Adagrad do. (generator.check.checker admits only additive updates here.)
    """

    def tensor(self, e: ir.TExpr) -> tuple[str, bool]:
        if isinstance(e, ir.TRef) and e.role == "grad":
            return "grad_values", False
        if isinstance(e, ir.TRef) and e.role in ("param", "state"):
            return f"{e.name}.sparse_mask(grad)._values()", True
        return super().tensor(e)

    def stmt(self, s, out: Lines) -> None:
        if isinstance(s, ir.InPlace) and s.target.role in ("param", "state"):
            for op in s.ops:
                self._add_rows(s.target.name, op, out)
            return
        super().stmt(s, out)

    def _add_rows(self, target: str, op: ir.TOp, out: Lines) -> None:
        kw = dict(op.kwargs)
        if op.op in ("add", "sub") and isinstance(op.args[0], (ir.TRef, ir.TOp)):
            values, scale = op.args[0], kw.get("alpha")
        elif op.op == "addcmul":
            values, scale = ir.TOp("mul", op.args), kw.get("value")
        elif op.op == "addcdiv":
            values, scale = ir.TOp("div", op.args), kw.get("value")
        else:
            raise GeneratorBug(f"`{op.op}` of a sparse gradient's rows")
        rows = f"_make_sparse(grad, grad_indices, {self.tensor(values)[0]})"
        alpha = "" if scale is None else f", alpha={self.scalar(scale)}"
        method = "sub_" if op.op == "sub" else "add_"
        out(f"{target}.{method}({rows}{alpha})")


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
        device_ref=None,
        eager_ref=None,
        test: str = "capturable",
    ):
        super().__init__(ref, tensor)
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


def _names_read(stmts) -> set[str]:
    """Every tensor and number name the statements read (in-place targets included)."""
    found: set[str] = set()

    def visit(x):
        if isinstance(x, (ir.TRef, ir.SRef)):
            found.add(x.name)
        return False

    for s in ir.walk(stmts):
        for e in ir.expressions(s):
            uses(e, visit)
        if isinstance(s, ir.InPlace):
            found.add(s.target.name)
    return found


def fold_keywords(op: ir.TOp) -> ir.TOp:
    """``op`` (an in-place operation, its target left out) without the ``alpha=``/``value=``
    that torch takes as Python numbers only: the number multiplies an operand instead.
    """
    kw = dict(op.kwargs)
    if op.op in ("add", "sub") and "alpha" in kw:
        return ir.TOp(op.op, (ir.TOp("mul", (op.args[0], kw["alpha"])),))
    if op.op in ("addcmul", "addcdiv") and "value" in kw:
        a, b = op.args
        return ir.TOp(op.op, (ir.TOp("mul", (a, kw["value"])), b))
    return op


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
    opt: ir.Optimizer, var: str, as_number: bool, keep_tensor: bool = False
) -> str:
    """A counter's value as a number: ``_get_value(step_t)`` (a tensor while dynamo traces),
    ``step_t.item()`` in an update that reads numbers off tensors anyway, or the number itself.
    With ``keep_tensor`` (a spec taking `capturable`) the counter stays a tensor when
    capturable=True, as torch's capturable paths keep ``step_t``.
    """
    if as_number:
        return var
    value = f"{var}.item()" if opt.reads_numbers else f"_get_value({var})"
    if keep_tensor:
        return f"({var} if capturable else {value})"
    return value


def _traced_or(s: ir.If, out: Lines, body, eager, test: str) -> None:
    """A per-parameter `if`: under torch.compile (and with capturable=True) the condition is a
    tensor, so its branchless form runs there (both branches, then torch.where, as torch's
    capturable formulas do).
    """
    if s.traced is None:
        eager()
        return
    out(f"if {test}:")
    with out.indent():
        body(s.traced, out)
    out("else:")
    with out.indent():
        eager()


def _print_raise(s: ir.Raise, out: Lines, scalar) -> None:
    out(f"if {scalar(s.fails)}:")
    with out.indent():
        out(f"raise {s.exception}({message_source(s.message, _input_name)})")


REDUCTIONS = {"mean", "norm", "sum", "dot"}


def _reduced(e, locals_: set[str] = frozenset()) -> bool:
    """Whether a tensor expression's result may be smaller than its operands' shape (a
    reduction, a local holding one, or arithmetic on such only); a number counts as one.
    """
    if isinstance(e, ir.TRef):
        return e.name in locals_
    if not isinstance(e, ir.TOp):
        return True  # a number
    if e.op in REDUCTIONS:
        return True
    tensors = [a for a in e.args if isinstance(a, (ir.TRef, ir.TOp))]
    return bool(tensors) and all(_reduced(a, locals_) for a in tensors)


def _saves_output(e) -> bool:
    return isinstance(e, ir.TOp) and OPS[e.op].saves_output


def _print_if(
    s: ir.If, out: Lines, scalar, body, chain_varying: bool = True, chain: bool = True
) -> None:
    """``if``/``elif``/``else``; with ``chain_varying`` False an `if` decided per parameter is
    not folded into an ``elif`` (the foreach path partitions the lists for it instead); with
    ``chain`` False no `if` is (the fused kernel tests each `if` by its own decision).
    """

    def chained(rest) -> bool:
        return (
            chain
            and len(rest) == 1
            and isinstance(rest[0], ir.If)
            and (chain_varying or not rest[0].varying)
        )

    then, orelse = Lines(), Lines()
    body(s.then, then)
    body(s.orelse, orelse)
    one = [
        b.lines[0] for b in (then, orelse) if len(b.lines) == 1 and " = " in b.lines[0]
    ]
    chain = chained(s.orelse)
    if (
        len(one) == 2
        and not chain
        and one[0].split(" = ", 1)[0] == one[1].split(" = ", 1)[0]
    ):
        # `x = a if cond else b` reads better than four lines for a choice of value.
        target, a = one[0].split(" = ", 1)
        b = one[1].split(" = ", 1)[1]
        if " if " in a:  # a nested choice: `(a if c else b) if flag else d`
            a = f"({a})"
        out(f"{target} = {a} if {scalar(s.cond)} else {b}")
        return
    out(f"if {scalar(s.cond)}:")
    with out.indent():
        body(s.then, out) if s.then else out("pass")
    rest = s.orelse
    while chained(rest):
        out(f"elif {scalar(rest[0].cond)}:")
        with out.indent():
            body(rest[0].then, out) if rest[0].then else out("pass")
        rest = rest[0].orelse
    if rest:
        out("else:")
        with out.indent():
            body(rest, out)


# ---- the multi-tensor (foreach) body ------------------------------------------------------------------


class ForeachPrinter:
    """One foreach call per operation, on the lists of one (device, dtype) group."""

    def __init__(self, opt: ir.Optimizer):
        self.opt = opt
        self.states = {s.key: s for s in opt.states}
        self.by_var = {s.var: s for s in opt.states}
        self.scalar = ScalarPrinter(self._ref_list)
        self.temp = 0
        self.rename: dict[str, str] = (
            {}
        )  # full list → the part a per-parameter branch runs on
        # lists that exist for the whole group: parameters, gradients, states
        self.group_lists = {"device_params", "device_grads"} | {
            f"device_{s.list_name}" for s in opt.states if s.scope == "parameter"
        }
        self.known: set[str] = set()  # lists the body has made so far
        self.parts: set[str] = set()  # a branch's parts of lists, made when it starts
        self.count = "len(device_params)"  # tensors the statements run on
        # Hyperparameters that may be tensors, and the scalars computed from them: their arithmetic
        # runs in the tensor's dtype, as in torch; foreach functions then want plain numbers.
        self.tensorish = {s for a in opt.arguments if a.tensor_ok for s in a.symbols}
        for s in ir.scalar_lets(opt.hoisted + opt.body):
            if uses(
                s.value, lambda r: isinstance(r, ir.SRef) and r.name in self.tensorish
            ):
                self.tensorish.add(s.name)

    # Names: tensors of the group are lists `device_<name>`; per-parameter scalars are lists `<name>s`.
    def tlist(self, r: ir.TRef) -> str:
        if r.role == "param":
            name = "device_params"
        elif r.role == "grad":
            name = "device_grads"
        elif r.role == "state":
            name = "device_" + self.by_var[r.name].list_name
        else:
            name = "device_" + r.name
        return self.renamed(name)

    def renamed(self, name: str) -> str:
        """The list a name stands for here: inside nested per-parameter branches a list is
        renamed once per level (``device_params`` → ``device_params_rest_1`` →
        ``device_params_rest_1_5``), so the renames are followed to the innermost."""
        while name in self.rename:
            name = self.rename[name]
        return name

    def _ref_list(self, r: ir.SRef) -> str:
        if r.count and r.varying:
            name = f"device_{self.states[r.name].list_name}"
        else:
            name = r.name + "s" if r.varying else r.name
        return self.renamed(name)

    def partition(self, s: ir.If, out: Lines, later: frozenset) -> None:
        """An `if` decided per parameter: each branch runs on the tensors it holds for; values a
        branch sets that are read after the `if` are put back in place in the group's list.
        """
        self.temp += 1
        k = self.temp
        out(f"cond_{k} = {self.scalar_value(s.cond)}")
        assigned = [self._assigned(b) for b in (s.then, s.orelse)]
        merged = [n for n in dict.fromkeys(assigned[0] + assigned[1]) if n in later]
        # where each value goes back: the list as named here (inside an enclosing branch, that
        # branch's own part of it)
        dest = {name: self.renamed(name) for name in merged}
        live = self.group_lists | self.known | self.parts
        for name in merged:
            if dest[name] not in live:
                out(f"{dest[name]}: list = [None] * len(cond_{k})")
                self.known.add(dest[name])
            elif name.startswith("device_") and dest[name] not in self.parts:
                # a foreach result may be a tuple: the branches put values back in place
                # (a part made by an enclosing branch is a list already)
                out(f"{dest[name]} = list({dest[name]})")
        branches = ((s.then, "", "if ok"), (s.orelse, "rest_", "if not ok"))
        for (body, prefix, test), sets in zip(branches, assigned):
            if not body:
                continue
            idx = f"{prefix}idx_{k}"
            out(f"{idx} = [j for j, ok in enumerate(cond_{k}) {test}]")
            out(f"if {idx}:")
            with out.indent():
                saved, saved_count = dict(self.rename), self.count
                self.count = f"len({idx})"
                optional = {
                    self.renamed(f"device_{st.list_name}")
                    for st in self.states.values()
                    if st.condition is not None and not varying_refs(st.condition)
                }
                for name in self._lists_read(body):
                    part = f"{name}_{prefix}{k}"
                    # a state that exists only under a hyperparameter (`if amsgrad`) has an
                    # empty list otherwise
                    guard = f" if {name} else []" if name in optional else ""
                    out(f"{part} = [{name}[j] for j in {idx}]{guard}")
                    self.rename[name] = part
                    self.parts.add(part)
                whole = self._assigned(body, nested=False)
                for name in merged:
                    if name not in sets or dest[name] in self.rename:
                        continue  # (a part made above, for the values the branch reads)
                    # the branch's own part of the list; where only a nested branch sets it
                    # (`s <- 2` under a further `if`), it starts from the values it had
                    part = f"{dest[name]}_{prefix}{k}"
                    self.rename[dest[name]] = part
                    if name not in whole:
                        out(f"{part} = [{dest[name]}[j] for j in {idx}]")
                        self.parts.add(part)
                self.body(body, out, later)
                for name in merged:
                    if name in sets:
                        part = self.renamed(name)
                        out(f"for j, value in zip({idx}, {part}, strict=True):")
                        with out.indent():
                            out(f"{dest[name]}[j] = value")
                self.rename, self.count = saved, saved_count

    def _assigned(self, stmts, nested: bool = True) -> list[str]:
        """Lists a block (re)binds: tensor locals and per-parameter scalars (with ``nested``
        off, only those its own statements bind, for every tensor it runs on)."""
        out = []
        for s in ir.walk(stmts) if nested else stmts:
            if isinstance(s, ir.TensorLet):
                out.append("device_" + s.name)
            elif isinstance(s, ir.ScalarLet) and s.varying:
                out.append(s.name + "s")
        return list(dict.fromkeys(out))

    def _lists_read(self, stmts) -> list[str]:
        """Group-wide lists a block reads before it sets them (tensor and per-parameter scalar
        lists that exist when the block starts)."""
        live = self.group_lists | self.known | self.parts
        return [n for n in self._reads(stmts, before_set=True) if n in live]

    def _reads(self, stmts, before_set: bool = False) -> list[str]:
        """Every list a block reads (tensor lists and per-parameter scalar lists); with
        ``before_set``, only those it reads before it sets them itself."""
        found: list[str] = []
        set_: set[str] = set()

        def visit(x):
            name = None
            if isinstance(x, ir.TRef):
                name = self.tlist(x)
            elif isinstance(x, ir.SRef) and x.varying:
                name = self._ref_list(x)
            if name is not None and name not in found and name not in set_:
                found.append(name)
            return False

        for s in ir.walk(stmts):
            for e in ir.expressions(s):
                uses(e, visit)
            if isinstance(s, ir.InPlace):
                visit(s.target)
            if isinstance(s, ir.CountUpdate) and s.scope == "parameter":
                found.append(f"device_{self.states[s.state].list_name}")
            if before_set and isinstance(s, ir.TensorLet):
                set_.add("device_" + s.name)
            if before_set and isinstance(s, ir.ScalarLet) and s.varying:
                set_.add(s.name + "s")
        return list(dict.fromkeys(found))

    def _ref_item(self, r: ir.SRef) -> str:
        if r.count and r.varying:
            return count_value(self.opt, r.name, False, capturable(self.opt))
        return r.name

    def scalar_value(self, e: ir.SExpr) -> str:
        """A scalar argument: a Python number, or a list comprehension when it varies per tensor."""
        refs = varying_refs(e)
        if not refs:
            return self.scalar(e)
        single = SingleTensorPrinter(self.opt)
        counters = _counter_values(self.opt)
        printer = (
            CapturableScalars(
                self._ref_item,
                lambda t: single.tensor(t)[0],
                counters,
                device_ref=lambda r: r.name,
                eager_ref=lambda r: (
                    count_value(self.opt, r.name, False)
                    if r.count and r.varying
                    else r.name
                ),
                # (compiled, the counters are tensors too: math.sqrt of one would break the
                # graph, and the rest of the step would run eagerly on tensors)
                test=traced(self.opt),
            )
            if counters
            else ScalarPrinter(self._ref_item, lambda t: single.tensor(t)[0])
        )
        item = printer(e)
        loops = [r.name for r in refs]
        lists = [
            self.tlist(r) if isinstance(r, ir.TRef) else self._ref_list(r) for r in refs
        ]
        if len(refs) == 1:
            return f"[{item} for {loops[0]} in {lists[0]}]"
        return f"[{item} for {', '.join(loops)} in zip({', '.join(lists)})]"

    def slot(self, a, where: str = "") -> tuple[str, bool]:
        """(source, varying) of a scalar argument slot. ``where`` is "traced" or "eager" where
        the caller knows whether the values are tensors (see ``traced``)."""
        refs = varying_refs(a)
        if not refs:
            return self.scalar(a), False
        src = self._ref_list(a) if isinstance(a, ir.SRef) else self.scalar_value(a)
        if (
            where != "traced"
            and not self.opt.reads_numbers
            and uses(a, lambda r: isinstance(r, ir.SRef) and r.name in self.tensorish)
        ):
            numbers = f"[_get_value(x) for x in {src}]"
            if where == "eager" or not capturable(self.opt):
                src = numbers
            else:  # capturable=True keeps the device tensors
                src = f"({src} if capturable else {numbers})"
        return src, True

    def tensor(self, e: ir.TExpr, out: Lines, dest: str | None) -> tuple[str, bool]:
        """Emit statements computing ``e``; return (list name, fresh)."""
        if isinstance(e, ir.TRef):
            return self.tlist(e), False
        spell = OPS[e.op]
        base_expr = e.args[0]
        if spell.foreach is None or any(
            isinstance(a, ir.TOp) and OPS[a.op].foreach is None for a in e.args[1:]
        ):
            return self._comprehension(e, out, dest), True
        base, fresh = (
            self.tensor(base_expr, out, dest)
            if isinstance(base_expr, (ir.TRef, ir.TOp))
            else (None, False)
        )
        args = []
        for k, a in enumerate(e.args[1:]):
            if isinstance(a, (ir.TRef, ir.TOp)):
                args.append(self.tensor(a, out, self._new_temp(dest))[0])
            else:
                args.append(self.slot(a)[0])
        alpha = values = None
        test = None
        for k, v in e.kwargs:
            src, varying = self.slot(v)
            if spell.kw_positional and varying:
                values = (self.slot(v, "traced")[0], self.slot(v, "eager")[0])
            elif spell.kw_positional and self.tensor_value(v):
                values, test = (src, src), self.tensor_value(v)
            elif spell.kw_positional:
                args.append(src)
            elif (
                varying
            ):  # torch's foreach alpha= takes one number: scale the operand instead
                alpha = src
            else:
                args.append(f"{k}={src}")
        if alpha is not None:
            args[0] = f"torch._foreach_mul({args[0]}, {alpha})"
        if values is not None:
            if fresh:
                self._per_tensor_values(e.op, [base] + args, values, out, "_", test)
                return base, True
            name = dest or self._new_temp(None)
            call = self._per_tensor_values(e.op, [base] + args, values, out, "", test)
            out(f"{name} = {call}")
            return name, True
        call_args = ", ".join([base] + args)
        if fresh:
            out(f"torch._foreach_{spell.foreach}_({call_args})")
            return base, True
        name = dest or self._new_temp(None)
        if e.op in ("addcdiv", "addcmul"):
            # copied, then in place: the same numbers, and a form DTensor shards (FSDP2) take
            # (torch 2.13 has no sharding rule for the out-of-place foreach addcdiv/addcmul)
            out(f"{name} = [x.clone() for x in {base}]")
            out(f"torch._foreach_{spell.foreach}_({', '.join([name] + args)})")
            return name, True
        out(f"{name} = torch._foreach_{spell.foreach}({call_args})")
        return name, True

    def _new_temp(self, dest: str | None) -> str:
        self.temp += 1
        return f"{dest or 'device_tmp'}_{self.temp}"

    def _comprehension(self, e: ir.TOp, out: Lines, dest: str | None) -> str:
        """An operation without a foreach function: the single-tensor spelling, per tensor."""
        refs: list[ir.TRef] = []

        def collect(x):
            if isinstance(x, ir.TRef) and x not in refs:
                refs.append(x)
            return False

        uses(e, collect)
        single = SingleTensorPrinter(self.opt)
        single.scalar = ScalarPrinter(self._ref_item, lambda t: single.tensor(t)[0])
        expr = single.tensor(e)[0]
        svars = [r for r in varying_refs(e) if isinstance(r, ir.SRef)]
        names = [r.name for r in refs] + [r.name for r in svars]
        lists = [self.tlist(r) for r in refs] + [self._ref_list(r) for r in svars]
        name = dest or self._new_temp(None)
        if len(names) == 1:
            out(f"{name} = [{expr} for {names[0]} in {lists[0]}]")
        else:
            out(
                f"{name} = [{expr} for {', '.join(names)} in zip({', '.join(lists)}, strict=True)]"
            )
        return name

    def inplace(self, target: ir.TRef, ops, out: Lines) -> None:
        if target.role == "total":
            self._add_to_total(target, ops, out)
            return
        t = self.tlist(target)
        for op in ops:
            spell = OPS[op.op]
            if spell.foreach is None and op.op != "clamp":
                self._inplace_per_tensor(t, op, out)
                continue
            args = []
            for a in op.args:
                if isinstance(a, (ir.TRef, ir.TOp)):
                    args.append(self.tensor(a, out, self._new_temp("device_update"))[0])
                else:
                    args.append(self.slot(a)[0])
            alpha = values = test = None
            for k, v in op.kwargs:
                src, varying = self.slot(v)
                if spell.kw_positional and varying:
                    values = (self.slot(v, "traced")[0], self.slot(v, "eager")[0])
                elif spell.kw_positional and self.tensor_value(v):
                    values, test = (src, src), self.tensor_value(v)
                elif spell.kw_positional:
                    args.append(src)
                elif varying:
                    alpha = (self.slot(v, "traced")[0], self.slot(v, "eager")[0])
                elif k == "alpha" and self.tensor_value(v):
                    # foreach's alpha= takes a Python number: a tensor scales the operand
                    scaled = [f"torch._foreach_mul({args[0]}, {src})"] + args[1:]
                    out(f"if {self.tensor_value(v)}:")
                    with out.indent():
                        out(
                            f"torch._foreach_{spell.foreach}_({', '.join([t] + scaled)})"
                        )
                    out("else:")
                    out.level += 1
                    args.append(f"{k}={src}")
                    test = "alpha"
                else:
                    args.append(f"{k}={src}")
            if values is not None:
                self._per_tensor_values(op.op, [t] + args, values, out, "_", test)
                continue
            if alpha is not None:
                # torch's foreach add takes one alpha; a per-tensor alpha (ASGD's eta) keeps the
                # for-loop's fused arithmetic through a loop rather than a separate multiply
                # (with capturable=True the alphas are device tensors: they scale the operand)
                if capturable(self.opt):
                    out("if capturable:")
                    out.level += 1
                    scaled = f"torch._foreach_mul({args[0]}, {alpha[0]})"
                    out(f"torch._foreach_{spell.foreach}_({t}, {scaled})")
                    out.level -= 1
                    out("else:")
                    out.level += 1
                out(f"for x, y, a in zip({t}, {args[0]}, {alpha[1]}, strict=True):")
                with out.indent():
                    out(f"x.{spell.inplace}(y, alpha=a)")
                if capturable(self.opt):
                    out.level -= 1
                continue
            if (
                op.op == "clamp"
            ):  # clamp_(lo, hi) is clamp_min_(lo) then clamp_max_(hi), exactly
                out(f"torch._foreach_clamp_min_({t}, {args[0]})")
                out(f"torch._foreach_clamp_max_({t}, {args[1]})")
                continue
            if op.op == "copy":  # (DTensor shards have no foreach copy: see _copy_all)
                out(f"_copy_all({', '.join([t] + args)})")
                continue
            out(f"torch._foreach_{spell.foreach}_({', '.join([t] + args)})")
            if test == "alpha":
                out.level -= 1

    def _inplace_per_tensor(self, t: str, op: ir.TOp, out: Lines) -> None:
        """An in-place operation torch has no multi-tensor kernel for, run on each tensor (as
        torch's foreach paths do for such steps); ``x <- 0`` is torch's ``_foreach_zero_``.
        """
        spell = OPS[op.op]
        if spell.inplace is None:
            raise GeneratorBug(f"no in-place form of {op.op}")
        if (
            op.op == "fill"
            and not op.kwargs
            and self.slot(op.args[0])[0] in ("0", "0.0")
        ):
            out(f"torch._foreach_zero_({t})")
            return
        names, lists, args = ["x"], [t], []
        for k, a in [(None, a) for a in op.args] + list(op.kwargs):
            if isinstance(a, (ir.TRef, ir.TOp)):
                src, each = (
                    self.tensor(a, out, self._new_temp("device_update"))[0],
                    True,
                )
            else:
                src, each = self.slot(a, "eager")
            if each:
                names.append(f"a{len(names)}")
                lists.append(src)
                src = names[-1]
            args.append(src if k is None else f"{k}={src}")
        call = f"{names[0]}.{spell.inplace}({', '.join(args)})"
        if len(lists) == 1:
            out(f"for x in {t}:")
        else:
            out(f"for {', '.join(names)} in zip({', '.join(lists)}, strict=True):")
        with out.indent():
            out(call)

    def _add_to_total(self, target: ir.TRef, ops, out: Lines) -> None:
        """``total <- total + c * f(x)``: one value per tensor, added in the tensors' order (the
        for-loop's order, so that both round the sum alike)."""
        for op in ops:
            values = self.tensor(op.args[0], out, self._new_temp("device_values"))[0]
            kwargs = "".join(f", {k}={self.slot(v)[0]}" for k, v in op.kwargs)
            out(f"for value in {values}:")
            with out.indent():
                out(f"{target.name}.{OPS[op.op].inplace}(value{kwargs})")

    def tensor_value(self, v) -> str | None:
        """The run-time test of whether a group-level value (``1 - beta2``, ``-lr``) is a
        tensor, where it may be one: foreach's ``value=`` and ``alpha=`` take Python numbers
        only. A spec taking `capturable` keeps tensor hyperparameters on the device then; any
        other reads them as numbers eagerly (``_to_scalar``), so the test holds only while
        torch.compile traces it, as torch's SGD tests ``torch.compiler.is_compiling()``.
        """
        names = []
        uses(
            v,
            lambda r: isinstance(r, ir.SRef)
            and r.name in self.tensorish
            and r.name not in names
            and not names.append(r.name),
        )
        if not names:
            return None
        test = " or ".join(f"isinstance({n}, Tensor)" for n in names)
        if capturable(self.opt):
            return test
        if len(names) > 1:
            test = f"({test})"
        return f"{test} and torch.compiler.is_compiling()"

    def _per_tensor_values(
        self,
        op: str,
        args: list[str],
        values: tuple[str, str],
        out: Lines,
        suffix: str,
        test: str | None = None,
    ) -> str | None:
        """``addcdiv``/``addcmul`` with one value per tensor. Eagerly the values are numbers, a
        scalar list; under torch.compile they are tensors (``_get_value`` keeps the step a
        tensor), which foreach ops take only as operands: the values are folded into one
        (``a / (b / s)``, ``(a * s) * b``), as torch's compiled (capturable) path does.
        """
        spell = OPS[op]
        j = 2 if op == "addcdiv" else 1
        folded = list(args)
        fold = "div" if op == "addcdiv" else "mul"
        tensors, numbers = values
        folded[j] = f"torch._foreach_{fold}({args[j]}, {tensors})"
        name = f"torch._foreach_{spell.foreach}{suffix}"
        test = test or traced(self.opt)
        if suffix:
            out(f"if {test}:")
            with out.indent():
                out(f"{name}({', '.join(folded)})")
            out("else:")
            with out.indent():
                out(f"{name}({', '.join(args + [numbers])})")
            return None
        return (
            f"{name}({', '.join(folded)}) if {test} "
            f"else {name}({', '.join(args + [numbers])})"
        )

    def body(
        self, stmts, out: Lines, later: frozenset = frozenset(), free: bool = False
    ) -> None:
        """Print ``stmts``; with ``free`` (the update's top level), a list of temporaries is
        deleted once nothing after reads it, as torch's foreach code does (`del row_means`):
        each holds a tensor per parameter, and the peak memory of a step is their sum.
        """
        bound: list[str] = []  # lists this level made, unconditionally
        freed: set[str] = set()
        # a list assigned at this level's indentation is bound whatever the branches did
        assigned = re.compile("    " * out.level + r"(device_\w+)(?:: \w+)? = ")
        for k, s in enumerate(stmts):
            after = later | frozenset(self._reads(stmts[k + 1 :]))
            mark = len(out.lines)
            self.stmt(s, out, after)
            if not free:
                continue
            made = [m[1] for line in out.lines[mark:] if (m := assigned.match(line))]
            bound += made
            freed.difference_update(made)
            dead = [
                n for n in dict.fromkeys(bound) if n not in after and n not in freed
            ]
            if dead and k < len(stmts) - 1:  # at the end the next rebinding frees them
                out(f"del {', '.join(dead)}")
                freed.update(dead)

    def stmt(self, s, out: Lines, later: frozenset = frozenset()) -> None:
        if isinstance(s, ir.Probe):
            out(f"_cover({s.label!r})")
        elif isinstance(s, ir.ScalarLet):
            dest = self.renamed(f"{s.name}s")
            if s.varying and not varying_refs(
                s.value
            ):  # the same value for every tensor
                out(f"{dest} = [{self.scalar(s.value)}] * {self.count}")
            elif s.varying:
                out(f"{dest} = {self.scalar_value(s.value)}")
            else:
                out(f"{s.name} = {self.scalar(s.value)}")
            if s.varying:
                self.known.update((f"{s.name}s", dest))
        elif isinstance(s, ir.CountUpdate):
            lst = self.renamed(f"device_{self.states[s.state].list_name}")
            value, varying = self.slot(s.value)
            if s.op == "+=" and value == "1":
                # torch's idiom: a CPU scalar tensor keeps the foreach kernel off the slow path
                out(f"if not torch.compiler.is_compiling() and {lst}[0].is_cpu:")
                with out.indent():
                    out(
                        f'torch._foreach_add_({lst}, torch.tensor(1.0, device="cpu"), alpha=1.0)'
                    )
                out("else:")
                with out.indent():
                    out(f"torch._foreach_add_({lst}, 1)")
            elif s.op == "+=":
                out(f"torch._foreach_add_({lst}, {value})")
            elif s.op == "*=":
                out(f"torch._foreach_mul_({lst}, {value})")
            elif varying:
                out(f"for {s.state}_t, value in zip({lst}, {value}, strict=True):")
                with out.indent():
                    out(f"{s.state}_t.fill_(value)")
            else:
                out(f"for {s.state}_t in {lst}:")
                with out.indent():
                    out(f"{s.state}_t.fill_({value})")
        elif isinstance(s, ir.TensorLet):
            dest = self.renamed("device_" + s.name)
            self.known.update(("device_" + s.name, dest))
            if s.alias:
                out(f"{dest} = {self.tlist(s.value)}")
            else:
                name, fresh = self.tensor(s.value, out, dest)
                if name != dest:
                    out(
                        f"{dest} = {name}"
                        if fresh
                        else f"{dest} = torch._foreach_mul({name}, 1)"
                    )
        elif isinstance(s, ir.InPlace):
            self.inplace(s.target, s.ops, out)
        elif isinstance(s, ir.LazyInit):
            self.lazy(s, out)
        elif isinstance(s, ir.If) and s.varying:
            known = set(self.known)

            def eager():
                # the lists the traced form made exist only on its side of the `if`
                self.known = set(known)
                self.partition(s, out, later)

            _traced_or(
                s, out, lambda b, o: self.body(b, o, later), eager, traced(self.opt)
            )
        elif isinstance(s, ir.If):
            # each branch starts from the lists made before the `if` (_print_if may print a
            # branch twice); after it, a list exists if every branch made it
            before, made = set(self.known), []

            def branch(b, o):
                self.known = set(before)
                self.body(b, o, later)
                made.append(set(self.known))

            _print_if(s, out, self.scalar, branch, chain_varying=False)
            rest = s
            while (
                rest.orelse
                and len(rest.orelse) == 1
                and isinstance(rest.orelse[0], ir.If)
            ):
                rest = rest.orelse[0]
            exhaustive = bool(rest.orelse)
            self.known = (
                before | set.intersection(*made) if exhaustive and made else before
            )
        elif isinstance(s, ir.Repeat):
            out(f"for _ in range({self.scalar(s.count)}):")
            with out.indent():
                self.body(s.body, out, later | frozenset(self._reads(s.body)))
        elif isinstance(s, ir.Raise) and varying_refs(s.fails):
            out(f"if any({self.scalar_value(s.fails)}):")
            with out.indent():
                out(f"raise {s.exception}({message_source(s.message, _input_name)})")
        elif isinstance(s, ir.Raise):
            _print_raise(s, out, self.scalar)
        else:
            raise GeneratorBug(f"cannot print {s!r}")

    def lazy(self, s: ir.LazyInit, out: Lines) -> None:
        """torch's idiom for a state made on the first step: all made → foreach; else per tensor."""
        st = self.states[s.state]
        lst = f"device_{st.list_name}"
        if s.update:
            out(f"if all(buf is not None for buf in {lst}):")
            with out.indent():
                out(f"{lst} = cast(list[Tensor], {lst})")
                self.body(s.update, out)
            out("else:")
        else:  # kept as it was first made: only the missing ones are made
            out(f"if not all(buf is not None for buf in {lst}):")
        with out.indent():
            single = SingleTensorPrinter(self.opt)
            first, fresh = single.tensor(s.first)
            refs = []
            uses(
                s.first, lambda x: isinstance(x, ir.TRef) and (refs.append(x) or False)
            )
            out(f"for j in range(len({lst})):")
            with out.indent():
                for r in dict.fromkeys(refs):
                    out(f"{r.name} = {self.tlist(r)}[j]")
                # the numbers of this tensor: its counters and per-parameter values
                numbers: list[ir.SRef] = []
                for node in (s.first, *s.update):
                    uses(
                        node,
                        lambda x: isinstance(x, ir.SRef)
                        and x.varying
                        and (numbers.append(x) or False),
                    )
                for r in dict.fromkeys(numbers):
                    if r.count:
                        st_r = self.states[r.name]
                        var = f"{self._ref_list(r)}[j]"
                        out(f"{r.name} = {count_value(self.opt, var, st_r.as_number)}")
                    else:
                        out(f"{r.name} = {self._ref_list(r)}[j]")
                out(f"if {lst}[j] is None:")
                with out.indent():
                    made = f"{first}.detach()" + ("" if fresh else ".clone()")
                    if getattr(self, "real_views", False):
                        # made from the real views: stored as the complex state it stands for
                        out(f"{lst}[j] = {made}")
                        out(
                            f"{st.list_name}[indices[j]] = torch.view_as_complex({lst}[j]) "
                            f"if torch.is_complex(params[indices[j]]) else {lst}[j]"
                        )
                    else:
                        out(f"{lst}[j] = {st.list_name}[indices[j]] = {made}")
                if s.update:
                    out("else:")
                with out.indent() if s.update else contextlib.nullcontext():
                    if s.update:
                        out(f"{st.var} = {lst}[j]")
                    bound = {r.name for r in refs} | {st.var}
                    for u in s.update:
                        if not isinstance(u, ir.InPlace):
                            raise GeneratorBug("a lazy state's update must be in place")
                        for r in _tensor_refs(u):
                            if r.name not in bound:
                                out(f"{r.name} = {self.tlist(r)}[j]")
                                bound.add(r.name)
                        single.inplace(st.var, u.ops, out)


def _tensor_refs(s: ir.InPlace) -> list[ir.TRef]:
    refs: list[ir.TRef] = []
    for op in s.ops:
        uses(
            op,
            lambda x: isinstance(x, ir.TRef)
            and x not in refs
            and (refs.append(x) or False),
        )
    return refs
