"""Lazy states on the foreach path: a state made on its first step, as torch's foreach code makes it.

Part of the Python backend (generator.emit.python). generator.emit.python.foreach prints an
ir.LazyInit here: when every tensor of the (device, dtype) group has the state, its update runs
as foreach calls on the list; otherwise each tensor is visited, the missing state made from its
first value (stored back, as a complex state where the update ran on real views) and the others
updated one by one with the single-tensor spelling.
"""

from __future__ import annotations

import contextlib

from generator import ir
from generator.ir import uses
from generator.language.diagnostics import GeneratorBug
from generator.emit.python.blocks import Lines
from generator.emit.python.scalars import count_value
from generator.emit.python.single import SingleTensorPrinter


def print_lazy(printer, s: ir.LazyInit, out: Lines) -> None:
    """torch's idiom for a state made on the first step: all made → foreach; else per tensor.
    ``printer`` is the generator.emit.python.foreach.ForeachPrinter of the body."""
    st = printer.states[s.state]
    lst = f"device_{st.list_name}"
    if s.update:
        out(f"if all(buf is not None for buf in {lst}):")
        with out.indent():
            printer.imports.need("cast")
            out(f"{lst} = cast(list[Tensor], {lst})")
            printer.body(s.update, out)
        out("else:")
    else:  # kept as it was first made: only the missing ones are made
        out(f"if not all(buf is not None for buf in {lst}):")
    with out.indent():
        single = SingleTensorPrinter(printer.opt, printer.imports)
        first, fresh = single.tensor(s.first)
        refs = []
        uses(s.first, lambda x: isinstance(x, ir.TRef) and (refs.append(x) or False))
        out(f"for j in range(len({lst})):")
        with out.indent():
            for r in dict.fromkeys(refs):
                out(f"{r.name} = {printer.tlist(r)}[j]")
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
                    st_r = printer.states[r.name]
                    var = f"{printer._ref_list(r)}[j]"
                    value = count_value(
                        printer.opt, var, st_r.as_number, printer.imports
                    )
                    out(f"{r.name} = {value}")
                else:
                    out(f"{r.name} = {printer._ref_list(r)}[j]")
            out(f"if {lst}[j] is None:")
            with out.indent():
                made = f"{first}.detach()" + ("" if fresh else ".clone()")
                if getattr(printer, "real_views", False):
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
                            out(f"{r.name} = {printer.tlist(r)}[j]")
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
