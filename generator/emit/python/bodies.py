"""The functional's bodies as Python: ``_single_tensor_<name>``, ``_multi_tensor_<name>``, others.

A part of rendering one module (generator.emit.python.module) from the lowered IR. The for-loop
body binds each parameter's tensors and counters, then prints the update with the single-tensor
printer (generator.emit.python.single): on the rows of a sparse gradient where the spec takes one,
and on the real view of a complex parameter from the first operation whose complex arithmetic
differs from the real view's (the linear prefix before it runs on the complex tensors, as torch
orders it). The foreach body groups the lists by device and dtype and prints the same update with
the foreach printer (generator.emit.python.foreach). The bodies of the other modes are here too:
a random-parameter step, and a flat step (generator.emit.python.flat).
"""

from __future__ import annotations

import ast

from generator import ir
from generator.ir import uses
from generator.language.builtins import BUILTINS
from generator.emit.python.blocks import Lines
from generator.emit.python.scalars import count_value
from generator.emit.python.single import SingleTensorPrinter, SparseValuesPrinter
from generator.emit.python.foreach import ForeachPrinter
from generator.lower.products import regroup
from generator.emit.python.items import bind_items
from generator.emit.python.flat import FlatPrinter, UpdatePrinter
from generator.emit.python.facts import (
    ModuleFacts,
    functional_name,
    per_parameter,
    reads_count_before_update,
    real_view,
)
from generator.emit.python.group import count_optimizer_states, unpack

# Operations whose result on complex numbers differs from the same operation on the real view:
# specs using them update complex parameters through torch.view_as_real, as torch does.
NONLINEAR = {
    b.tensor.op for b in BUILTINS.values() if b.nonlinear_complex and b.tensor
} | {  # (the spec's functions come from their table: sqrt, exp, cos, ...)
    "square",
    "pow",
    "addcmul",
    "addcdiv",
    "maximum",
    "minimum",
    "clamp",
    "clamp_min",
    "clamp_max",
    "div",
    "reciprocal",
    "where",
    "lt",
    "le",
    "gt",
    "ge",
    "eq",
    "ne",
}


def needs_real_view(facts: ModuleFacts) -> bool:
    if facts.opt.refuses_complex:
        return False
    if facts.opt.complex_mode == "view_as_real":
        return True
    return bool(_ops_used(facts.opt.body) & NONLINEAR)


def to_scalar(facts: ModuleFacts, out: Lines) -> None:
    for a in facts.opt.arguments:
        if a.tensor_ok and any(s in facts.opt.hyper for s in a.symbols):
            for s in a.symbols:
                facts.imports.need("_to_scalar")
                out(f"{s} = _to_scalar({s})")


def _graph_constants(facts: ModuleFacts, out: Lines) -> None:
    """Compiled (an enclosing torch.compile), the hyperparameters that are Python floats
    become constants of the graph, guarded: a scheduler's new lr recompiles, as with
    torch's own classes. torch 2.13's dynamo otherwise traced them as symbolic floats and
    kept a stale value of one used twice (`param.mul_(1 - lr * wd)`, then
    `param.add_(u, alpha=-lr)`), silently."""
    typed = {s: a.type for a in facts.opt.arguments for s in a.symbols}
    # float inputs, and the numbers a group block hands over (their type is the run's)
    names = [s for s in facts.opt.hyper if s not in typed or _may_be_float(typed[s])]
    if not names:
        return
    out("if torch.compiler.is_compiling():")
    with out.indent():
        out(
            f"{', '.join(names)}{',' if len(names) == 1 else ''} = graph_constants({', '.join(names)})"
        )


def single_body(facts: ModuleFacts) -> str:
    opt, out = facts.opt, Lines()
    printer = SingleTensorPrinter(opt, facts.imports)
    to_scalar(facts, out)
    _graph_constants(facts, out)
    printer.body(opt.hoisted, out)
    if out.lines:
        out("")
    out("for i, param in enumerate(params):")
    with out.indent():
        unread = unread_tensors(facts)
        if "grad" not in unread:
            out("grad = grads[i]")
        views = [("param", None)] + [("grad", None)] * ("grad" not in unread)
        for s in facts.param_states():
            if s.var in unread:
                continue
            line = f"{s.var} = {s.list_name}[i]"
            if s.condition is not None and not per_parameter(s.condition):
                out(f"if {printer.scalar(s.condition)}:")
                with out.indent():
                    out(line)
            else:
                out(line)
            if s.kind == "tensor":
                # (a lazy state is None until this step makes it)
                views.append((s.var, s.condition if s.init is not None else "lazy"))
        for s in facts.param_states():
            if s.kind == "count" and reads_count_before_update(opt.body, s.key):
                value = count_value(
                    opt, s.var, s.as_number, facts.imports, printer.keep_tensors
                )
                out(f"{s.key} = {value}")
        out("")
        if opt.sparse == "only":
            _sparse_body(facts, out)
        elif opt.sparse == "also":
            out("if grad.is_sparse:")
            with out.indent():
                _sparse_body(facts, out)
            out("else:")
            with out.indent():
                _dense_body(facts, printer, views, out)
        else:
            _dense_body(facts, printer, views, out)
    return _keep_captured(out.text())


def unread_tensors(facts: ModuleFacts) -> set[str]:
    """A later pass's functional receives every list: the tensors its update never names
    (the gradient, states of the other pass) are not bound in its loops."""
    if not facts.several_passes:
        return set()
    stmts = facts.opt.body + facts.opt.hoisted
    named = set(ir.refs(stmts, ir.TRef))
    tensors = ["grad"] + [s.var for s in facts.param_states() if s.kind == "tensor"]
    # (a counter of another pass, Adam's step in SAM's passes: neither read nor counted)
    counted = set(ir.refs(stmts, ir.SRef)) | {
        s.state for s in ir.walk(stmts) if isinstance(s, ir.CountUpdate)
    }
    counters = [
        s.var
        for s in facts.param_states()
        if s.kind == "count" and not {s.key, s.symbol, s.var} & counted
    ]
    return {t for t in tensors if t not in named} | set(counters)


def _sparse_body(facts: ModuleFacts, out: Lines) -> None:
    """A sparse gradient: the update runs on the values of the rows it holds (coalesced)."""
    body = facts.opt.body
    lead = 0
    while lead < len(body) and isinstance(body[lead], ir.CountUpdate):
        lead += 1
    SingleTensorPrinter(facts.opt, facts.imports).body(body[:lead], out)
    out("grad = grad.coalesce()  # the update is not linear: one value per row")
    out("grad_indices = grad._indices()")
    out("grad_values = grad._values()")
    out("if grad_values.numel() == 0:")
    with out.indent():
        out("continue")
    SparseValuesPrinter(facts.opt, facts.imports).body(body[lead:], out)


def _dense_body(facts: ModuleFacts, printer, views, out: Lines) -> None:
    opt = facts.opt
    # Complex parameters are updated through their real view, from the first operation on
    # which complex and real arithmetic differ; the linear prefix (maximize, L2 decay) runs
    # on the complex tensors first, exactly as torch orders it.
    if facts.opt.complex_mode == "view_as_real":
        split = 0
    elif needs_real_view(facts):
        split = _linear_prefix(
            opt.body, frozenset(b.var for b in opt.states if b.kind == "tensor")
        )
    else:
        split = len(opt.body)
    printer.body(opt.body[:split], out, free=split == len(opt.body))
    if split < len(opt.body):
        views += [(name, None) for name in _defined_locals(opt.body[:split])]
        lists = {b.var for b in opt.states if b.length is not None}
        out("if torch.is_complex(param):")
        with out.indent():
            for var, cond in views:
                if cond == "lazy" or per_parameter(
                    cond
                ):  # decided before the view changes the shape
                    out(f"if {var} is not None:")
                    with out.indent():
                        out(real_view(var, var in lists))
                elif cond is not None:
                    out(f"if {printer.scalar(cond)}:")
                    with out.indent():
                        out(real_view(var, var in lists))
                else:
                    out(real_view(var, var in lists))
        printer.real_views = True  # a state made from here on is stored complex
        printer.body(opt.body[split:], out, free=True)
        printer.real_views = False


def multi_body(facts: ModuleFacts) -> str:
    opt, out = facts.opt, Lines()
    printer = ForeachPrinter(opt, facts.imports)
    lists = facts.group_lists()
    out("if len(params) == 0:")
    with out.indent():
        out("return")
    if opt.by_rank:
        facts.imports.need("by_rank")
        out("if len({p.dim() for p in params}) > 1:")
        with out.indent():
            out(
                "# the update loops over a parameter's dimensions: one call for each rank,"
            )
            out("# where dim(param) is one number")
            args = [
                f"_multi_tensor_{functional_name(opt)}{facts.suffix}",
                f"[{', '.join(lists)}]",
                "has_complex=has_complex",
            ]
            if "capturable" in facts.args:
                args.append("capturable=capturable")
            args += [f"{s}={s}" for s in opt.hyper]
            out(f"by_rank({', '.join(args)})")
            out("return")
    out("")
    to_scalar(facts, out)
    _graph_constants(facts, out)
    printer.body(opt.hoisted, out)
    lazy = any(s.init is None for s in facts.param_states())
    by_item = [n for n in lists if n in facts.list_state_lists()]
    # a list state's list holds each parameter's list of tensors: the group takes it by item
    # (the k-th tensor of every parameter), after the lists of one tensor per parameter
    for n in by_item:
        out(f"{n}_by_item = [list(item) for item in zip(*{n})]")
    whole = [n for n in lists if n not in by_item]
    out("grouped_tensors = Optimizer._group_tensors_by_device_and_dtype(")
    with out.indent():
        grouped = whole + [f"*{n}_by_item" for n in by_item]
        out(f"[{', '.join(grouped)}],  # type: ignore[list-item]")
        if lazy:
            out("with_indices=True,")
    out(")")
    names = [f"device_{n}_" for n in whole]
    if by_item:
        names.append("*device_items_")
    out(
        f"for ({', '.join(names)},), {'indices' if lazy else '_'} in grouped_tensors.values():"
    )
    with out.indent():
        unread = unread_tensors(facts)
        by_list = {s.list_name: s.var for s in facts.param_states()}
        for n in whole:
            if by_list.get(n, "grad" if n == "grads" else None) in unread:
                continue
            facts.imports.need("cast")
            out(f"device_{n} = cast(list[Tensor], device_{n}_)")
        start = "0"
        for n in by_item:
            end = f"len({n}_by_item)" if start == "0" else f"{start} + len({n}_by_item)"
            out(f"device_{n} = device_items_[{'' if start == '0' else start}:{end}]")
            start = end
        if opt.sparse:
            out("if any(grad.is_sparse for grad in device_grads):")
            with out.indent():
                # sparse gradients update their rows one tensor at a time, as in torch
                args = [f"device_{n}" for n in lists] + ["has_complex=has_complex"]
                if "differentiable" in facts.args:
                    args.append("differentiable=False")
                args += [f"{s}={s}" for s in opt.hyper]
                out(f"_single_tensor_{functional_name(opt)}({', '.join(args)})")
                out("continue")
        if needs_real_view(facts):
            views = ["device_params"] + ["device_grads"] * ("grad" not in unread)
            extra, partial = [], []
            for s in facts.param_states():
                if s.kind != "tensor" or s.var in unread:
                    continue
                if s.length is not None:  # (each item's list)
                    views.append(f"*device_{s.list_name}")
                elif s.condition is None and s.init is not None:
                    views.append(f"device_{s.list_name}")
                elif s.init is None or per_parameter(s.condition):
                    # (None where a state does not apply, or is made by this step)
                    partial.append(f"device_{s.list_name}")
                else:
                    cond = ForeachPrinter(opt, facts.imports).scalar(s.condition)
                    extra.append(f"*([device_{s.list_name}] if {cond} else [])")
            out("if has_complex:")
            with out.indent():
                if partial:  # lists with None where a state does not apply
                    out(f"for states in ({', '.join(partial)},):")
                    with out.indent():
                        out("for j, x in enumerate(states):")
                        with out.indent():
                            out("if x is not None and torch.is_complex(x):")
                            with out.indent():
                                out("states[j] = torch.view_as_real(x)")
                facts.imports.need("_view_as_real")
                out(f"_view_as_real({', '.join(views + extra)})")
        out("")
        printer.real_views = needs_real_view(facts)
        # (products regrouped into fused operations: fewer passes over the tensors, where
        # the for-loop keeps the spec's order for torch's rounding)
        printer.body(regroup(opt, bind_items(opt.body)), out, free=True)
    return _keep_captured(out.text())


def random_step(facts: ModuleFacts) -> str:
    opt, out = facts.opt, Lines()
    printer = SingleTensorPrinter(opt, facts.imports, capturable_counters=False)
    count_optimizer_states(facts, out)
    out("")
    out("picked = self._pick_parameter()")
    out("if picked is None:")
    with out.indent():
        out("return loss")
    out("group, param = picked")
    out("grad = param.grad")
    for line in unpack(facts):
        out(line)
    for sym in opt.hyper:
        a, k = facts.sym_arg[sym]
        if k is None:
            out(f'{sym} = group["{a.name}"]')
    printer.body(opt.hoisted, out)
    printer.body(opt.body, out)
    return out.text()


def flat_step(facts: ModuleFacts) -> dict:
    flat = facts.opt.flat
    hyper = []
    for a in facts.opt.arguments:
        used = [s for s in a.symbols if s in flat.inputs]
        if not used:
            continue
        value = f'group["{a.name}"]'
        if a.tensor_ok:
            facts.imports.need("_to_scalar")
            value = f"_to_scalar({value})"
        hyper.append(f"{', '.join(a.symbols)} = {value}")
    printer = FlatPrinter(facts.imports)
    return dict(
        flat_hyper=hyper,
        flat_counters=[(key, printer.expr(init)) for key, init in flat.counters],
        flat_step=UpdatePrinter(flat, facts.imports).body(),
        procedures="\n\n\n".join(printer.procedure(p) for p in flat.procedures),
    )


def _ops_used(stmts) -> set[str]:
    ops: set[str] = set()

    def visit(x):
        if isinstance(x, ir.TOp):
            ops.add(x.op)
        return False

    for s in ir.walk(stmts):
        if isinstance(s, (ir.InPlace, ir.TensorLet, ir.LazyInit)):
            for e in ir.expressions(s):
                uses(e, visit)
    return ops


def _keep_captured(source: str) -> str:
    """``source`` without the ``del`` of a name that a comprehension's body reads: in Python
    3.11 that makes it a cell, and dynamo cannot trace deleting a cell (DELETE_DEREF).
    """
    captured: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(
            node, (ast.ListComp, ast.SetComp, ast.GeneratorExp, ast.DictComp)
        ):
            inner = (
                [node.key, node.value] if isinstance(node, ast.DictComp) else [node.elt]
            )
            for k, gen in enumerate(node.generators):
                inner += gen.ifs + ([gen.iter] if k else [])
            for part in inner:
                captured |= {n.id for n in ast.walk(part) if isinstance(n, ast.Name)}
    lines = []
    for line in source.splitlines():
        stripped = line.lstrip()
        if stripped.startswith("del "):
            names = [n for n in stripped[4:].split(", ") if n not in captured]
            if not names:
                continue
            line = line[: len(line) - len(stripped)] + "del " + ", ".join(names)
        lines.append(line)
    return "\n".join(lines)


LINEAR = {"neg", "add", "sub", "mul", "copy", "clone", "lerp"}


def _linear_prefix(stmts, state_vars: frozenset = frozenset()) -> int:
    """How many leading statements act on the parameter and locals with linear operations only
    (and make lazy states from them: ``state_vars`` are the states' loop names)."""
    for k, s in enumerate(stmts):
        if isinstance(s, ir.CountUpdate) or isinstance(s, ir.ScalarLet):
            continue
        if isinstance(s, ir.LazyInit):
            # a state made from the gradient by linear operations (Adan's `initially -grad`,
            # SGD's momentum) is made and kept complex, before the real view: made after it,
            # it would be made from the view, with the view's shape
            own = {
                x.target.name for x in ir.walk(s.update) if isinstance(x, ir.InPlace)
            }
            others = set(ir.refs((s.first, s.update), ir.TRef)) - own
            if _ops_used([s]) - LINEAR or others & state_vars:
                return k
            continue
        if _ops_used([s]) - LINEAR:
            return k
        refs_state = []
        for x in ir.walk([s]):
            for e in ir.expressions(x):
                uses(
                    e,
                    lambda r: isinstance(r, ir.TRef)
                    and r.role == "state"
                    and (refs_state.append(r) or False),
                )
            if isinstance(x, ir.InPlace) and x.target.role == "state":
                refs_state.append(x.target)
            if (
                isinstance(x, ir.InPlace)
                and any(
                    isinstance(a, (ir.TRef, ir.TOp)) for op in x.ops for a in op.args
                )
                and x.target.role == "param"
            ):
                return k  # the parameter is updated from other tensors: not a prefix operation
        if refs_state:
            return k
    return len(stmts)


def _defined_locals(stmts) -> list[str]:
    """Tensor locals bound on every path through ``stmts``."""
    names: list[str] = []
    for s in stmts:
        if isinstance(s, ir.TensorLet) and s.name not in names:
            names.append(s.name)
        elif isinstance(s, ir.If):
            both = [
                n for n in _defined_locals(s.then) if n in _defined_locals(s.orelse)
            ]
            names += [n for n in both if n not in names]
    return names


def _may_be_float(t: ir.ArgType) -> bool:
    return any(_may_be_float(x) for x in t.items) or t.admits(ir.PyType.FLOAT)
