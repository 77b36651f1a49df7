"""Printing the per-parameter update as Python: the body of ``_single_tensor_<name>``.

The lowered IR's statements for one parameter, printed as torch's for-loop implementations write
them: operations chain on fresh results in place (``exp_avg_sq.sqrt().div_(c).add_(eps)``), a
tensor the printer does not own is never mutated, and with ``differentiable=True`` a result autograd
saved is not overwritten. Scalars are printed by generator.emit.python.scalars, operation spellings
come from generator.emit.python.ops. ``SparseValuesPrinter`` prints the same update on the rows a
sparse gradient holds. The foreach printer (generator.emit.python.foreach) and the fused kernel
(generator.emit.python.fused) print per-tensor expressions through this one.
"""

from __future__ import annotations

import re

from generator import ir
from generator.ir import uses
from generator.language.diagnostics import GeneratorBug
from generator.emit.python.ops import OPS
from generator.emit.python.blocks import (
    PY_PRECEDENCE,
    Imports,
    Lines,
    _print_if,
    _print_raise,
    _traced_or,
    loop_header,
)
from generator.emit.python.scalars import (
    CapturableScalars,
    ScalarPrinter,
    _counter_values,
    capturable,
    count_value,
    traced,
)


class SingleTensorPrinter:
    """The statements of one parameter's update, on its tensors (``param``, ``grad``, states);
    what they take from elsewhere is recorded in the module's ``imports``."""

    def __init__(
        self, opt: ir.Optimizer, imports: Imports, capturable_counters: bool = True
    ):
        self.opt = opt
        self.imports = imports
        # With differentiable=True, autograd needs the results it saved (sqrt's output) unchanged.
        self.differentiable = any(a.name == "differentiable" for a in opt.arguments)
        self.scalar = ScalarPrinter(self._ref, lambda e: self.tensor(e)[0], imports)
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
                self._ref, lambda e: self.tensor(e)[0], self.device_scalars, imports
            )

    def _ref(self, r: ir.SRef) -> str:
        return r.name  # counts are refreshed into a Python number named after their key

    def tensor(self, e: ir.TExpr) -> tuple[str, bool]:
        """(source, fresh): fresh results may be updated in place by the next operation."""
        if isinstance(e, ir.TRef):
            if e.index is not None:  # an item of a list
                return f"{e.name}[{self.scalar(e.index)}]", False
            return e.name, e.role == "fresh"
        if isinstance(e, ir.TList):
            items = "[" + ", ".join(self.tensor(x)[0] for x in e.items) + "]"
            if e.count is not None:
                items += f" * {self.scalar.wrap(e.count, PY_PRECEDENCE['*'] + 1)}"
            return items, False
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
            if spell.runtime:
                self.imports.need(spell.function)
                prefix = ""
            fresh = self.tensor(e.args[0])[1] if spell.view else True
            return f"{prefix}{spell.function}({', '.join(args)})", fresh
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
        # (a view, or the argument itself, is as fresh as the argument)
        return f"{base}.{method}({', '.join(args)})", fresh if spell.view else True

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
                function = (
                    spell.function if spell.runtime else f"torch.{spell.function}"
                )
                if spell.runtime:
                    self.imports.need(spell.function)
                call = f"{function}({target}, {a}, out={target})"
                if self.differentiable:  # out= does not support autograd
                    out("if differentiable:")
                    with out.indent():
                        # the clone keeps the value autograd saved from being overwritten
                        out(f"{target}.copy_({function}({target}.clone(), {a}))")
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
                value = count_value(
                    self.opt, var, st.as_number, self.imports, self.keep_tensors
                )
                out(f"{s.state} = {value}")
        elif isinstance(s, ir.TensorLet):
            self.let(s.name, s.value, out)
            if _reduced(s.value, self.reduced):
                self.reduced.add(s.name)
            else:
                self.reduced.discard(s.name)
        elif isinstance(s, ir.InPlace):
            self.inplace(self.tensor(s.target)[0], s.ops, out)
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
        elif isinstance(s, (ir.Repeat, ir.ForRange, ir.While)):
            out(loop_header(s, self.scalar))
            with out.indent():
                self.body(s.body, out)
        elif isinstance(s, ir.Break):
            out("break")
        elif isinstance(s, ir.SetItem):  # (of a local list)
            index = self.scalar(s.index)
            out(f"{s.target.name}[{index}] = {self.tensor(s.value)[0]}")
        elif isinstance(s, ir.ListAppend):
            out(f"{s.target.name}.append({self.tensor(s.value)[0]})")
        elif isinstance(s, ir.ListPopFirst):
            out(f"{s.target.name}.pop(0)")
        elif isinstance(s, ir.Raise):
            _print_raise(s, out, self.scalar)
        elif isinstance(s, ir.Evaluate):  # (in the optimizer's block, in step())
            out("self.zero_grad()")
            out("with torch.enable_grad():")
            with out.indent():
                out("loss = closure()")
        elif isinstance(s, ir.Estimate):  # (in the optimizer's block, in step())
            self.imports.need(s.function)
            args = ", ".join(self.scalar(a) for a in s.args)
            out(f'{s.function}(self.param_groups, self.state, "{s.state}", {args})')
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


def fold_call_keywords(op: ir.TOp) -> ir.TOp:
    """``op`` (a call, its first argument the tensor it is called on) without the Python-number
    keyword arguments: as fold_keywords, for the kernels, where numbers are tensors."""
    inner = fold_keywords(ir.TOp(op.op, op.args[1:], op.kwargs))
    return ir.TOp(inner.op, (op.args[0],) + inner.args, inner.kwargs)


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
