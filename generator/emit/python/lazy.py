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
    # inside per-parameter branches, the branch's part of the list; what is made there is
    # put in every enclosing part too, and in the functional's list the optimizer stores
    whole = f"device_{st.list_name}"
    lst = printer.renamed(whole)
    parts = _parts(printer, whole)
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
                at = "j"
                targets = [f"{lst}[j]"]
                for part, idx in reversed(parts):
                    at = f"{idx}[{at}]"
                    targets.append(f"{part}[{at}]")
                if getattr(printer, "real_views", False):
                    # made from the real views: stored as the complex state it stands for
                    out(" = ".join(targets) + f" = {made}")
                    out(
                        f"{st.list_name}[indices[{at}]] = torch.view_as_complex({lst}[j]) "
                        f"if torch.is_complex(params[indices[{at}]]) else {lst}[j]"
                    )
                else:
                    targets.append(f"{st.list_name}[indices[{at}]]")
                    out(" = ".join(targets) + f" = {made}")
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


def _parts(printer, whole: str) -> list[tuple[str, str]]:
    """The enclosing lists of a state's list inside per-parameter branches, outermost first,
    each with the index list that picks the next level's part out of it: ``[(device_m,
    idx_1), (device_m_1, rest_idx_2)]`` where the list here is ``device_m_1_rest_2``."""
    chain = [whole]
    while chain[-1] in printer.rename:
        chain.append(printer.rename[chain[-1]])
    if len(chain) - 1 != len(printer.split_indices):
        raise GeneratorBug(
            f"a lazy state's list {whole} has {len(chain) - 1} parts in "
            f"{len(printer.split_indices)} branches"
        )
    return list(zip(chain[:-1], printer.split_indices))


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
