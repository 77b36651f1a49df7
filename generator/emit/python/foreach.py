"""Printing the multi-tensor update as Python: the body of ``_multi_tensor_<name>``.

The same lowered IR statements as the single-tensor body (generator.emit.python.single), printed
as torch's foreach implementations write them: on the lists of one (device, dtype) group, each
operation one ``torch._foreach_*`` call, in place on fresh lists; per-parameter scalars become
lists, an `if` decided per parameter partitions the lists, lazily made states are made per tensor,
and temporaries are deleted once nothing reads them. Operations without a foreach kernel run per
tensor with the single-tensor spelling.
"""

from __future__ import annotations

import re
from dataclasses import replace

from generator import ir
from generator.ir import uses
from generator.language.diagnostics import GeneratorBug
from generator.emit.python.ops import OPS
from generator.emit.python.blocks import (
    PY_PRECEDENCE,
    Imports,
    Lines,
    _input_name,
    _print_if,
    _print_raise,
    _traced_or,
    loop_header,
    message_source,
)
from generator.emit.python.scalars import (
    CapturableScalars,
    ScalarPrinter,
    _counter_values,
    _tensor_name,
    capturable,
    count_value,
    traced,
    varying_refs,
)
from generator.emit.python.lazy import print_lazy
from generator.emit.python.single import SingleTensorPrinter, _reduced


class ForeachPrinter:
    """One foreach call per operation, on the lists of one (device, dtype) group; what they
    take from elsewhere is recorded in the module's ``imports``."""

    def __init__(self, opt: ir.Optimizer, imports: Imports):
        self.opt = opt
        self.imports = imports
        self.states = {s.key: s for s in opt.states}
        self.by_var = {s.var: s for s in opt.states}
        self.scalar = ScalarPrinter(self._ref_list, self._whole_list, imports=imports)
        self.temp = 0
        self.reduced: set[str] = set()  # locals holding a reduction's (smaller) result
        self.rename: dict[str, str] = (
            {}
        )  # full list → the part a per-parameter branch runs on
        # lists that exist for the whole group: parameters, gradients, states
        self.group_lists = {"device_params", "device_grads"} | {
            f"device_{s.list_name}" for s in opt.states if s.scope == "parameter"
        }
        self.known: set[str] = set()  # lists the body has made so far
        # locals whose lists this code made (a foreach function's result, bound outside any
        # `if`): their tensors are the update's own, and one that nothing reads after the
        # statement being printed holds its result in place, as torch's foreach code reuses
        # its buffers (RAdam's bias-corrected average takes the step: no second copy)
        self.owned: set[str] = set()
        # the lists read after the statement being printed, and the locals it reads (each
        # time it reads them)
        self.later: frozenset = frozenset()
        self.reads_now: list[str] = []
        self.lists: set[str] = set()  # local lists of tensors (each item a list here)
        self.parts: set[str] = set()  # a branch's parts of lists, made when it starts
        self.count = "len(device_params)"  # tensors the statements run on
        # the index lists of the per-parameter branches the body is inside, outermost first
        # (`idx_1`, `rest_idx_2`): a position in a branch's part of a list is
        # `idx_1[rest_idx_2[j]]` in the group's list
        self.split_indices: list[str] = []
        # inside a per-parameter `if`'s traced form ("traced") or its partition ("eager"): the
        # test of whether the step is traced is then known, and not printed again
        self.form: str | None = None
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
        if r.index is not None:
            # an item of a list state, for every parameter: its list kept by item
            # (multi_body), `device_momentum_buffers[k]`
            return f"{self.tlist(replace(r, index=None))}[{self.scalar(r.index)}]"
        if r.role == "param":
            name = "device_params"
        elif r.role == "grad":
            name = "device_grads"
        elif r.role == "state":
            name = "device_" + self.by_var[r.name].list_name
        else:
            name = "device_" + r.name
        return self.renamed(name)

    def _is_list(self, r: ir.TRef) -> bool:
        """A whole list (a list state, a local list), which the group keeps by item."""
        st = self.by_var.get(r.name) if r.role == "state" else None
        listed = st is not None and st.length is not None
        return r.index is None and (
            listed or r.role == "local" and r.name in self.lists
        )

    def _whole_list(self, r: ir.TRef) -> str:
        """A tensor a number of the whole group is read off: a list state, whose length
        (``len(bufs)``) is its items' (the group keeps it by item)."""
        if self._is_list(r):
            return self.tlist(r)
        if self.opt.by_rank and r.index is None:
            # (`dim(param)`, one number in a call that runs on parameters of one rank)
            return f"{self.tlist(r)}[0]"
        return _tensor_name(r)

    def _dead_here(self, r: ir.TRef) -> bool:
        """A local list this code owns, read once by the statement being printed and by
        nothing after it: an operation on it may run in place."""
        return (
            r.role == "local"
            and r.index is None
            and r.name in self.owned
            and r.name not in self.lists
            and not any(n in self.later for n in self._renames(f"device_{r.name}"))
            and self.reads_now.count(r.name) == 1
        )

    def _renames(self, name: str) -> list[str]:
        """A list's name and each name it takes in the branches around (``device_x`` →
        ``device_x_3`` → ``device_x_3_7``): a later read at any of these levels reads it.
        """
        names = [name]
        while name in self.rename:
            name = self.rename[name]
            names.append(name)
        return names

    def renamed(self, name: str) -> str:
        """The list a name stands for here: inside nested per-parameter branches a list is
        renamed once per level (``device_params`` → ``device_params_rest_1`` →
        ``device_params_rest_1_5``), so the renames are followed to the innermost."""
        return self._renames(name)[-1]

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
        owned = set(self.owned)
        for (body, prefix, test), sets in zip(branches, assigned):
            if not body:
                continue
            self.owned = set(owned)  # (what one branch made is not the other's)
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
                self.split_indices.append(idx)
                self.body(body, out, later)
                self.split_indices.pop()
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
            if isinstance(x, ir.TRef):  # (an item's list: its whole list)
                name = self.tlist(replace(x, index=None))
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
            if isinstance(s, ir.LazyInit):  # (a state made here is put in its list)
                found.append(self.renamed(f"device_{self.states[s.state].list_name}"))
            if before_set and isinstance(s, ir.TensorLet):
                set_.add("device_" + s.name)
            if before_set and isinstance(s, ir.ScalarLet) and s.varying:
                set_.add(s.name + "s")
        return list(dict.fromkeys(found))

    def _ref_item(self, r: ir.SRef) -> str:
        if r.count and r.varying:
            return count_value(
                self.opt, r.name, False, self.imports, capturable(self.opt)
            )
        return r.name

    def scalar_value(self, e: ir.SExpr, wrap=None) -> str:
        """A scalar argument: a Python number, or a list comprehension when it varies per tensor
        (with ``wrap``, each item passes through it: ``_get_value(...)``)."""
        refs = varying_refs(e)
        if not refs:
            return self.scalar(e)
        single = SingleTensorPrinter(self.opt, self.imports)
        counters = _counter_values(self.opt)
        printer = (
            CapturableScalars(
                self._ref_item,
                lambda t: single.tensor(t)[0],
                counters,
                self.imports,
                device_ref=lambda r: r.name,
                eager_ref=lambda r: (
                    count_value(self.opt, r.name, False, self.imports)
                    if r.count and r.varying
                    else r.name
                ),
                # (compiled, the counters are tensors too: math.sqrt of one would break the
                # graph, and the rest of the step would run eagerly on tensors)
                test=traced(self.opt),
            )
            if counters
            else ScalarPrinter(
                self._ref_item, lambda t: single.tensor(t)[0], self.imports
            )
        )
        item, head = printer(e), self._loop_head(refs)
        return f"[{wrap(item) if wrap else item} {head}]"

    def _loop_head(self, refs) -> str:
        """``for step in device_state_steps``, or over several lists zipped."""
        loops = [r.name for r in refs]
        lists = [
            self.tlist(r) if isinstance(r, ir.TRef) else self._ref_list(r) for r in refs
        ]
        if len(refs) == 1:
            return f"for {loops[0]} in {lists[0]}"
        return f"for {', '.join(loops)} in zip({', '.join(lists)})"

    def slot(self, a, where: str = "") -> tuple[str, bool]:
        """(source, varying) of a scalar argument slot. ``where`` is "traced" or "eager" where
        the caller knows whether the values are tensors (see ``traced``)."""
        refs = varying_refs(a)
        if not refs:
            return self.scalar(a), False
        where = where or self.form or ""
        src = self._ref_list(a) if isinstance(a, ir.SRef) else self.scalar_value(a)
        if (
            where != "traced"
            and not self.opt.reads_numbers
            and uses(a, lambda r: isinstance(r, ir.SRef) and r.name in self.tensorish)
        ):
            # the values as Python numbers, in one comprehension
            self.imports.need("_get_value")
            numbers = (
                f"[_get_value(x) for x in {src}]"
                if isinstance(a, ir.SRef)
                else self.scalar_value(a, wrap=lambda item: f"_get_value({item})")
            )
            if where == "eager" or not capturable(self.opt):
                src = numbers
            else:  # capturable=True keeps the device tensors
                src = f"({src} if capturable else {numbers})"
        return src, True

    def tensor(self, e: ir.TExpr, out: Lines, dest: str | None) -> tuple[str, bool]:
        """Emit statements computing ``e``; return (list name, fresh)."""
        if isinstance(e, ir.TRef):
            return self.tlist(e), self._dead_here(e)
        if isinstance(e, ir.TList):  # a local list: of the items' lists
            items = [self.tensor(x, out, None)[0] for x in e.items]
            text = f"[{', '.join(items)}]"
            if e.count is not None:
                text += f" * {self.scalar.wrap(e.count, PY_PRECEDENCE['*'] + 1)}"
            # (a new list, bound as it is: its items are never mutated)
            return text, True
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
        if (
            fresh
            and _reduced(base_expr, self.reduced)
            and not all(_reduced(a, self.reduced) for a in e.args[1:])
        ):
            # a reduction's result (`mean(x, -1)`: size 1 along -1) broadcasts to the other
            # operand's shape: it cannot hold the result in place (as in the for-loop)
            fresh = False
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
            # (a whole list is read by a number of it, `len(bufs)`: one for the group)
            if isinstance(x, ir.TRef) and x not in refs and not self._is_list(x):
                refs.append(x)
            return False

        uses(e, collect)
        single = SingleTensorPrinter(self.opt, self.imports)
        single.scalar = ScalarPrinter(
            self._ref_item,
            lambda t: self.tlist(t) if self._is_list(t) else single.tensor(t)[0],
            self.imports,
        )
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
                self.imports.need("_copy_all")
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
            lists: list[str] = []
            # (addcmul's two operands: one list where they agree)
            for k, arg in enumerate(op.args):
                same = next((j for j in range(k) if op.args[j] == arg), None)
                lists.append(
                    lists[same]
                    if same is not None
                    else self.tensor(arg, out, self._new_temp("device_values"))[0]
                )
            kwargs = "".join(f", {k}={self.slot(v)[0]}" for k, v in op.kwargs)
            names = ["value", *(f"value_{k}" for k in range(2, len(lists) + 1))]
            names = [names[lists.index(lst)] for lst in lists]
            unique = list(dict.fromkeys(names))
            if len(unique) == 1:
                out(f"for value in {lists[0]}:")
            else:
                lists = list(dict.fromkeys(lists))
                out(f"for {', '.join(unique)} in zip({', '.join(lists)}, strict=True):")
            with out.indent():
                out(f"{target.name}.{OPS[op.op].inplace}({', '.join(names)}{kwargs})")

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
        known = self.form if test is None else None
        test = test or traced(self.opt)
        if known is not None:
            call = f"{name}({', '.join(folded if known == 'traced' else args + [numbers])})"
            if suffix:
                out(call)
                return None
            return call
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
        self, stmts, out: Lines, later: frozenset | None = None, free: bool = False
    ) -> None:
        """Print ``stmts``; with ``free`` (the update's top level), a list of temporaries is
        deleted once nothing after reads it, as torch's foreach code does (`del row_means`):
        each holds a tensor per parameter, and the peak memory of a step is their sum.
        """
        if later is None:  # (a block printed inside a statement: a lazy state's update)
            later = self.later
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
        saved = self.later, self.reads_now
        self.later = later
        self.reads_now = [
            x.name
            for e in ir.expressions(s)
            for x in _all_trefs(e)
            if x.role == "local"
        ]
        before = set(self.owned)
        # (a statement that may keep a local's tensors under another name, `x4 <- x2`, a lazy
        # state's first value, a list's item, leaves them owned by none: a later operation in
        # place would change both)
        keeps = []
        if isinstance(s, ir.TensorLet) and (
            s.alias
            or not isinstance(s.value, ir.TOp)
            or OPS[s.value.op].foreach is None
        ):
            keeps = [s.value]
        elif isinstance(s, ir.LazyInit):
            keeps = [s.first]
        elif isinstance(s, (ir.SetItem, ir.ListAppend)):
            keeps = [s.value]
        for e in keeps:
            self.owned -= {x.name for x in _all_trefs(e)}
            before -= {x.name for x in _all_trefs(e)}
        try:
            self._stmt(s, out, later)
        finally:
            self.later, self.reads_now = saved
        if not isinstance(s, ir.TensorLet):
            # (a local set inside an `if`, a loop or a branch may be another's list on the
            # other side: SGD's `g`, -grad or grad itself; it is owned by none after it)
            inside = {x.name for x in ir.walk([s]) if isinstance(x, ir.TensorLet)}
            self.owned = before - inside

    def _stmt(self, s, out: Lines, later: frozenset = frozenset()) -> None:
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
            if isinstance(s.value, ir.TList):
                self.lists.add(s.name)
            if s.alias:
                out(f"{dest} = {self.tlist(s.value)}")
            else:
                # (a value that reads the local it replaces other than as the operand its first
                # operation starts from, `e <- param^2 * e`, is built in a list of its own:
                # built in the local's, it would overwrite what it still reads)
                reads: list = []
                uses(
                    s.value,
                    lambda x: isinstance(x, ir.TRef)
                    and x.name == s.name
                    and reads.append(x),
                )
                first = s.value
                while isinstance(first, ir.TOp) and first.args:
                    first = first.args[0]
                safe = not reads or (len(reads) == 1 and first is reads[0])
                numbered = self.temp
                into = dest if safe else self._new_temp(dest)
                start = len(out.lines)
                name, fresh = self.tensor(s.value, out, into)
                made = out.lines[start:]
                head = "    " * out.level + f"{into} = "
                if into != dest and len(made) == 1 and made[0].startswith(head):
                    # (one assignment, a comprehension over the old list: it reads it all
                    # before the name is bound again)
                    out.lines[start] = (
                        "    " * out.level + f"{dest} = " + made[0][len(head) :]
                    )
                    name, self.temp = dest, numbered
                if name != dest:
                    out(
                        f"{dest} = {name}"
                        if fresh
                        else f"{dest} = torch._foreach_mul({name}, 1)"
                    )
            # (owned once its value is made, not while the value reads the old one: the
            # result of a foreach function, new tensors; an operation printed per tensor may
            # return its operand, `at_least_float32(param)` a float32 param)
            if (
                not s.alias
                and isinstance(s.value, ir.TOp)
                and OPS[s.value.op].foreach is not None
            ):
                self.owned.add(s.name)
            else:
                self.owned.discard(s.name)
            if _reduced(s.value, self.reduced):
                self.reduced.add(s.name)
            else:
                self.reduced.discard(s.name)
        elif isinstance(s, ir.InPlace):
            self.inplace(s.target, s.ops, out)
        elif isinstance(s, ir.LazyInit):
            print_lazy(self, s, out)
        elif isinstance(s, ir.If) and s.varying:
            known, owned = set(self.known), set(self.owned)

            form = self.form

            def eager():
                # the lists the traced form made exist only on its side of the `if`
                self.known, self.owned = set(known), set(owned)
                if s.traced is not None:
                    self.form = "eager"
                self.partition(s, out, later)
                self.form = form

            def traced_form(b, o):
                self.owned = set(owned)
                self.form = "traced"
                self.body(b, o, later)
                self.form = form

            _traced_or(s, out, traced_form, eager, traced(self.opt))
        elif isinstance(s, ir.If):
            # each branch starts from the lists made before the `if` (_print_if may print a
            # branch twice); after it, a list exists if every branch made it
            before, made = set(self.known), []
            owned = set(self.owned)

            def branch(b, o):
                # (and from the lists owned before it: a branch may be printed twice)
                self.known, self.owned = set(before), set(owned)
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
        elif isinstance(s, (ir.Repeat, ir.ForRange)):
            # (the checker refuses `foreach` with a loop over per-parameter bounds, or a
            # `while` or `break`: they have no form here)
            out(loop_header(s, self.scalar))
            with out.indent():
                self.body(s.body, out, later | frozenset(self._reads(s.body)))
        elif isinstance(s, ir.Raise) and varying_refs(s.fails):
            out(f"if any({self.scalar_value(s.fails)}):")
            with out.indent():
                out(f"raise {s.exception}({message_source(s.message, _input_name)})")
        elif isinstance(s, ir.Raise):
            _print_raise(s, out, self.scalar)
        elif isinstance(s, ir.SetItem):  # (of a local list: its item's list replaced)
            value = self.tensor(s.value, out, None)[0]
            out(f"{self.tlist(s.target)}[{self.scalar(s.index)}] = {value}")
        elif isinstance(s, ir.ListAppend):
            out(f"{self.tlist(s.target)}.append({self.tensor(s.value, out, None)[0]})")
        elif isinstance(s, ir.ListPopFirst):
            out(f"{self.tlist(s.target)}.pop(0)")
        else:
            raise GeneratorBug(f"cannot print {s!r}")


def _all_trefs(e) -> list:
    """Every tensor reference in ``e``, as often as it occurs."""
    found: list = []
    uses(e, lambda x: isinstance(x, ir.TRef) and found.append(x))
    return found
