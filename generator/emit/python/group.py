"""The blocks ``step`` runs around the per-parameter update, as Python: per group, per step.

A part of rendering one module (generator.emit.python.module) from the lowered IR. ``update
group:`` runs once per param group before its parameters (its counters live in the group dict, as
pytorch_optimizer counts ``group['step']``); ``update optimizer:`` once per step, its counters in
``self.state``; a spec's ``method`` once per group, over the parameters with state. ``GroupPrinter``
prints their statements with the single-tensor printer (generator.emit.python.single), reading the
group's values from the group dict. Here too: how ``step`` unpacks a tuple input and which keyword
arguments it hands the functional.
"""

from __future__ import annotations

from generator import ir
from generator.emit.python.blocks import Lines
from generator.emit.python.scalars import ScalarPrinter
from generator.emit.python.single import SingleTensorPrinter
from generator.emit.python.facts import (
    ModuleFacts,
    float_source,
    pydoc_string,
    reads_count_before_update,
    real_view,
)


class GroupPrinter(SingleTensorPrinter):
    """Statements run once per param group (``update group:``, a spec's ``method``): the group's
    values live in the group dict, inputs are read from it (a tuple input's symbols by name
    where the caller ``unpacked`` them), ``return`` ends the step."""

    def __init__(self, facts: ModuleFacts, unpacked: bool = False):
        super().__init__(facts.opt, facts.imports, capturable_counters=False)
        self.facts = facts
        self.unpacked = unpacked
        self.view_as_real = facts.opt.complex_mode == "view_as_real"
        self.scalar = ScalarPrinter(
            self._group_value, lambda e: self.tensor(e)[0], facts.imports
        )

    def _group_value(self, r: ir.SRef) -> str:
        a = self.facts.sym_arg.get(r.name)
        if r.name in self.facts.group_counts or (
            a is not None and (a[1] is None or not self.unpacked)
        ):
            return self.facts.group_ref(r)
        return r.name  # a tuple input's symbol (unpacked) or a local

    def stmt(self, s, out: Lines) -> None:
        if isinstance(s, ir.CountUpdate) and s.scope == "group":
            op = {"+=": "+=", "*=": "*=", "fill": "="}[s.op]
            out(f'group["{s.state}"] {op} {self.scalar(s.value)}')
        elif isinstance(s, ir.Return):
            keys = transient_keys(self.facts.opt)
            if keys:  # (the step ends here: what it carried goes, as at its end)
                out(f"drop_transient(self, {keys})")
            out("return loss")
        elif isinstance(s, ir.ForEachParameter):
            self.for_each(s, out)
        else:
            super().stmt(s, out)

    def for_each(self, s: ir.ForEachParameter, out: Lines) -> None:
        states = {b.var: b for b in self.opt.states if b.scope == "parameter"}
        used = [states[n] for n in ir.refs(s.body, ir.TRef) if n in states]
        always = [b for b in used if b.condition is None]
        out('for param in group["params"]:')
        with out.indent():
            out("state = self.state.get(param, {})")
            test = " or ".join(f'"{b.key}" not in state' for b in always)
            out(f"if {test or 'not state'}:")
            with out.indent():
                out("continue  # not yet reached by a step")
            written = {
                x.target.name for x in ir.walk(s.body) if isinstance(x, ir.InPlace)
            }
            for b in used:
                get = (
                    f'state["{b.key}"]'
                    if b.condition is None
                    else f'state.get("{b.key}")'
                )
                stored = b.condition is None and b.kind == "tensor" and b.length is None
                if stored:
                    # a state stored in another dtype than its parameter's (a precision
                    # policy, `stored as`) takes the parameter's here: `.to` is a no-op
                    # when they agree (a list state's tensors are in the parameter's)
                    get += ".to(param.dtype)"
                out(f"{b.var} = {get}")
            if self.view_as_real:
                out("if torch.is_complex(param):")
                with out.indent():
                    out(real_view("param"))
                    for b in always:
                        out(real_view(b.var, b.length is not None))
            self.body(s.body, out)
            for b in used:
                if (
                    b.var in written
                    and b.condition is None
                    and b.kind == "tensor"
                    and b.length is None
                ):
                    out(f'if state["{b.key}"].dtype != param.dtype:')
                    with out.indent():
                        out(f'state["{b.key}"].copy_({b.var})')


def unpack(facts: ModuleFacts) -> list[str]:
    out = []
    for a in facts.opt.arguments:
        if len(a.symbols) > 1 and any(s in facts.opt.hyper for s in a.symbols):
            out.append(f'{", ".join(a.symbols)} = group["{a.name}"]')
    return out


def call_kwargs(facts: ModuleFacts) -> list[tuple[str, str]]:
    out = []
    if "foreach" in facts.args:
        out.append(("foreach", 'group["foreach"]'))
    if "differentiable" in facts.args:
        out.append(("differentiable", 'group["differentiable"]'))
    if "capturable" in facts.args:
        out.append(("capturable", 'group["capturable"]'))
    if "fused" in facts.args:
        out.append(("fused", 'group["fused"]'))
    out.append(("has_complex", "has_complex"))
    out.append(("precision", "group_precision(self, group, params)"))
    totals = {s.key for s in facts.totals}
    made = {
        s.name for s in ir.walk(facts.opt.group_block) if isinstance(s, ir.ScalarLet)
    }
    for sym in facts.opt.hyper:
        if sym in facts.group_counts:
            out.append((sym, f'group["{sym}"]'))
            continue
        if sym in totals or sym in made:  # the step's tensors, the group block's values
            out.append((sym, sym))
            continue
        if sym in facts.optimizer_counts:  # read once per step by optimizer_counting
            out.append((sym, sym))
            continue
        a, k = facts.sym_arg[sym]
        # (an input every group takes from the constructor, SAM's use_gc: `self.defaults`)
        where = "self.defaults" if a.constructor else "group"
        out.append((sym, sym if k is not None else f'{where}["{a.name}"]'))
    return out


def group_counting(facts: ModuleFacts, block=None, first: bool = True) -> list[str]:
    """``update group:``: each group's counters, made at its first step and counted once
    per step before its parameters, as pytorch_optimizer counts ``group['step']``; the
    values it computes are locals the pass's functional receives.
    """
    out = Lines()
    for s in facts.group_counts.values() if first else ():
        init = facts.group_scalar(s.init)
        out(f'if "{s.key}" not in group:')
        out(f'    group["{s.key}"] = {init}')
    block = facts.opt.group_block if block is None else block
    GroupPrinter(facts).body(block, out)
    return out.lines


def method(facts: ModuleFacts, m: ir.Method) -> str:
    """``method NAME:``: its statements once per param group, the group's values read from
    and written to the group dict, ``for each parameter:`` over the parameters with state.
    """
    out = Lines()
    out("@torch.no_grad()")
    out(f"def {m.name}(self):")
    with out.indent():
        if m.doc is not None:
            out(pydoc_string(m.doc))
        out("for group in self.param_groups:")
        with out.indent():
            read = set(ir.refs(m.body, ir.SRef))
            for a in facts.opt.arguments:
                if len(a.symbols) > 1 and read & set(a.symbols):
                    names = [s if s in read else "_" for s in a.symbols]
                    out(f'{", ".join(names)} = group["{a.name}"]')
            GroupPrinter(facts, unpacked=True).body(m.body, out)
    return out.text()


def first_group_inputs(facts: ModuleFacts, stmts, out: Lines) -> None:
    """An optimizer-level block reads the hyperparameters of the first param group (as
    pytorch_optimizer's Prodigy and torch's LBFGS do)."""
    read = set(ir.refs(stmts, ir.SRef))
    for a in facts.opt.arguments:
        if read & set(a.symbols):
            names = [s if s in read else "_" for s in a.symbols]
            out(f'{", ".join(names)} = self.param_groups[0]["{a.name}"]')


def optimizer_counting(facts: ModuleFacts) -> str:
    """``update optimizer:`` beside ``update:``: the optimizer's counters, in
    ``self.state``, counted once per step before the groups; the update reads their
    values (MADGRAD's ``k``)."""
    out = Lines()
    count_optimizer_states(facts, out)
    read = set(facts.opt.hyper).union(*(p.hyper for p in facts.opt.later_passes))
    for s in facts.opt.states:
        if s.scope == "optimizer" and s.kind == "count" and s.key in read:
            facts.imports.need("_get_value")
            out(f"{s.key} = _get_value({s.var})")
    return out.text()


def count_optimizer_states(facts: ModuleFacts, out: Lines) -> None:
    opt = facts.opt
    printer = SingleTensorPrinter(opt, facts.imports, capturable_counters=False)
    # the block and the first values of the optimizer's own states read the inputs
    # (`state optimizer k: count <- start`)
    firsts = [
        s.init for s in opt.states if s.scope == "optimizer" and s.init is not None
    ]
    first_group_inputs(facts, (opt.step_block, firsts), out)
    for s in facts.totals:
        # one element of the default dtype, on the device of the first parameter (as
        # pytorch_optimizer's Prodigy keeps its sums)
        out(f'if "{s.key}" not in self.state:')
        with out.indent():
            device = 'self.param_groups[0]["params"][0].device'
            init = printer.scalar(s.init)
            make = (
                f"torch.zeros(1, device={device})"
                if init in ("0", "0.0")
                else f"torch.full((1,), {float_source(init)}, device={device})"
            )
            out(f'self.state["{s.key}"] = {make}')
        out(f'{s.key} = self.state["{s.key}"]')
    for s in opt.states:
        if s.scope == "optimizer" and s.kind == "count":
            out(f'if "{s.key}" not in self.state:')
            with out.indent():
                init = printer.scalar(s.init)
                facts.imports.need("_get_scalar_dtype")
                out(
                    f'self.state["{s.key}"] = torch.tensor({float_source(init)}, '
                    "dtype=_get_scalar_dtype())"
                )
            out(f'{s.var} = self.state["{s.key}"]')
            if reads_count_before_update(opt.step_block, s.key):
                facts.imports.need("_get_value")
                out(f"{s.key} = _get_value({s.var})")
    # a group's counter the block reads is the first group's, as it stands before the
    # groups count this step (AdaHessian's refresh reads param_groups[0]['step'])
    read = set(ir.refs(opt.step_block, ir.SRef))
    for s in opt.states:
        if s.scope == "group" and s.kind == "count" and s.key in read:
            out(
                f'{s.key} = self.param_groups[0].get("{s.key}", '
                f"{facts.group_scalar(s.init)})"
            )
    printer.body(opt.step_block, out)


def transient_keys(opt: ir.Optimizer) -> str:
    """The state keys a step drops at its end (``, transient``), as a tuple's source; "" for
    none."""
    keys = [s.key for s in opt.states if s.transient]
    return f"({', '.join(repr(k) for k in keys)},)" if keys else ""
