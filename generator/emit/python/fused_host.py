"""The fused path's functional as Python: ``_fused_<name>``, the host loop around the kernel.

A part of rendering one module (generator.emit.python.module) from the lowered IR, for a spec that
takes `fused`. On an accelerator the functional hands the whole step to the compiled multi-tensor
path (inputs that may be tensors go in as device tensors, so one graph serves every value). On
the CPU it runs, per parameter, the host part generator.emit.python.fused split off the update
(counters, bias corrections, checks, the decision of every `if`), makes the lazy states, and hands
the parameter to the native kernel's batch (generator.runtime.native) or, where that refuses it,
queues a call of the compiled kernel on the (flattened) tensors with the numbers as 0-d tensors and
the precision policy's inputs (generator.runtime.precision); both run after the loop. The loop is
never traced (a step traced by torch.compile takes the multi-tensor path): counters are read with
``.item()``.
"""

from __future__ import annotations

from generator import ir
from generator.ir import uses
from generator.emit.python.blocks import Lines
from generator.emit.python.scalars import count_value
from generator.emit.python.single import SingleTensorPrinter
from generator.emit.python.fused import (
    first_values_on_host,
    group_counts,
    host_source,
    keeps_shapes,
    lazy_made_here,
)
from generator.emit.python.facts import (
    ModuleFacts,
    functional_name,
    per_parameter,
    reads_count_before_update,
)
from generator.emit.python.bodies import unread_tensors, to_scalar
from generator.emit.cpp.kernel import native_kernel


def fused_body(facts: ModuleFacts) -> str:
    """``_fused_<name>``: per parameter, the host part (numbers, decisions), then one call of
    the compiled kernel on the flattened tensors (see generator.emit.python.fused).
    """

    opt, out = facts.opt, Lines()
    fname = functional_name(opt)
    host, tensors, numbers, decisions = host_source(opt, fname, facts.imports)
    printer = SingleTensorPrinter(opt, facts.imports, capturable_counters=False)
    # the class refuses complex parameters with fused=True, as torch's do; a caller of the
    # functional form is told the same
    out("if has_complex:")
    with out.indent():
        out(
            'raise RuntimeError("`fused=True` requires all the params to be floating point")'
        )
    if opt.has_foreach:
        out("if params and not params[0].is_cpu:")
        with out.indent():
            # inputs that may be tensors (lr, which schedulers change) go in as device
            # tensors: one compiled graph serves every value; other numbers are compiled
            # in as constants (dynamo's dynamic floats gave stale values, see
            # _compiled_multi_tensor)
            decides = _decides(opt)
            tensor_ok = [
                s
                for a in opt.arguments
                if a.tensor_ok
                for s in a.symbols
                if s in opt.hyper and s not in decides
            ]
            if tensor_ok:
                out("device = params[0].device")
            for s in tensor_ok:
                facts.imports.need("_device_number")
                out(f"{s} = _device_number({s}, device)")
            args = facts.group_lists() + ["has_complex=has_complex"]
            if "capturable" in facts.args:
                args.append("capturable=True")  # the counters are on the device
            args += [f"{s}={s}" for s in opt.hyper]
            out(f"_compiled_multi_tensor{facts.suffix}()({', '.join(args)})")
            out("return")
    to_scalar(facts, out)
    printer.body(opt.hoisted, out)
    # numbers decided by hyperparameters are made tensors once per group
    group_level = set(opt.hyper) | {s.name for s in opt.hoisted}
    for n in numbers:
        if n in group_level:
            facts.imports.need("_number_tensor")
            out(f"_{n} = _number_tensor({n})")
    counts = group_counts(opt)
    if counts:
        # the counters the update opens with, for the whole group at once (as torch's fused
        # path does), each read in the loop; a number added to CPU tensors one by one is
        # wrapped into a tensor each time, a tensor of 1 times alpha is not (torch's trick)
        out("if params:")
        with out.indent():
            for s in counts:
                st = next(b for b in opt.states if b.key == s.state)
                out(
                    f"torch._foreach_add_({st.list_name}, torch.tensor(1.0), "
                    f"alpha={printer.scalar(s.value)})"
                )
    # (its calls run after the loop, under dynamo's settings entered once: runtime.kernels)
    out(f"kernel = _compiled_kernel{facts.suffix}(precision is not None).batch()")
    native = native_kernel(opt)
    if native is not None:
        # the native CPU kernel takes the parameters it can run (contiguous, computed in
        # float32 or float64, stored in those or, under a precision policy, in bfloat16) and
        # runs them all in one call after the loop; the others run the compiled kernel in
        # the loop
        out(f"native = _native_{fname}{facts.suffix}.batch(precision)")
    out("")
    out("for i, param in enumerate(params):")
    with out.indent():
        out("grad = grads[i]")
        unread = unread_tensors(facts)
        # a counter updated before the loop and not read: the loop has no use for it
        unread |= {
            st.var
            for st in facts.param_states()
            if st.kind == "count"
            and any(c.state == st.key for c in counts)
            and not any(
                isinstance(x, ir.CountUpdate)
                and x.state == st.key
                and (x.read_after or not any(x is c for c in counts))
                for x in ir.walk(opt.body)
            )
        }
        for s in facts.param_states():
            if s.kind == "count" and s.var in unread:  # (another pass's counter)
                continue
            if s.condition is not None and not per_parameter(s.condition):
                cond = printer.scalar(s.condition)
                out(f"{s.var} = {s.list_name}[i] if {cond} else None")
            else:
                out(f"{s.var} = {s.list_name}[i]")
        for s in facts.param_states():
            if s.kind == "count" and reads_count_before_update(opt.body, s.key):
                value = count_value(
                    opt, s.var, s.as_number, facts.imports, traced=False
                )
                out(f"{s.key} = {value}")
        # a lazy state this pass gives its first value: made here, that value in the kernel
        for s in lazy_made_here(opt):
            exists = (
                "" if s.condition is None else f"{printer.scalar(s.condition)} and "
            )
            out(f"_first_{s.var} = {exists}{s.var} is None")
            out(f"if _first_{s.var}:")
            with out.indent():
                source = first_values_on_host(opt).get(s.var)
                # in the dtype a precision policy stores it in (None: param's)
                facts.imports.need("stored_dtype")
                dtype = f'stored_dtype(precision, "{s.key}")'
                if source is not None:  # see first_values_on_host
                    out(
                        f"{s.var} = {s.list_name}[i] = {source}.detach().to("
                        f"{dtype} or {source}.dtype, copy=True)"
                    )
                else:
                    out(
                        f"{s.var} = {s.list_name}[i] = torch.empty_like("
                        f"param, dtype={dtype}, "
                        "memory_format=torch.preserve_format)"
                    )
        if host:
            out.lines += [("    " * out.level) + line for line in host.splitlines()]
        if native is not None:
            offered = ", ".join(tensors + numbers + decisions)
            out(f"if native is not None and native.add(i, {offered}):")
            with out.indent():
                out("continue")
        # the precision policy's inputs (generator.runtime.precision), cast in the kernel
        out("_compute, _rounding, _comp, _key = kernel_policy(precision, param, i)")
        flat = "_shaped" if keeps_shapes(opt) else "_flat"
        facts.imports.need(flat)
        args = [f"{flat}({t})" for t in tensors]
        if any(n not in group_level for n in numbers):
            facts.imports.need("_number_tensor")
        args += [
            f"_{n}" if n in group_level else f"_number_tensor({n})" for n in numbers
        ]
        args += decisions
        args += ["_compute", "_rounding"]
        args += [f"{flat}({t})" for t in ("_comp", "_key")]
        out(f"kernel.add({', '.join(args)})")
    if native is not None:
        out("if native is not None:")
        with out.indent():
            out("native.run()")
    out("kernel.run()")
    return out.text()


def native_constant(opt: ir.Optimizer, fname: str) -> str:
    """``_native_<fname> = NativeKernel(...)``: the pass's native CPU kernel (its C++ element
    loop, generator.emit.cpp.kernel), or "" where the kernel has none."""
    native = native_kernel(opt)
    if native is None:
        return ""

    def names(xs) -> str:
        quoted = [f'"{x}"' for x in xs]
        return "(" + ", ".join(quoted) + ("," if len(quoted) == 1 else "") + ")"

    return "\n".join(
        [
            f"_native_{fname} = NativeKernel(",
            f'    "{fname}",',
            f"    tensors={names(native.tensors)},",
            f"    written={names(native.written)},",
            f"    numbers={names(native.numbers)},",
            f"    decisions={names(native.decisions)},",
            '    source="""',
            native.body,
            '""",',
            ")",
        ]
    )


def _decides(opt: ir.Optimizer) -> set[str]:
    """The names a branch or a check of the update is decided by, directly or through the
    numbers made from them (SGD's `weight_decay != 0`): these must stay Python numbers.
    """
    found: set[str] = set()

    def names(e) -> set[str]:
        out: set[str] = set()
        uses(e, lambda r: isinstance(r, ir.SRef) and out.add(r.name) and False)
        return out

    stmts = list(ir.walk(opt.hoisted + opt.body))
    for s in stmts:
        if isinstance(s, ir.If):
            found |= names(s.cond)
        elif isinstance(s, ir.Raise):
            found |= names(s.fails)
    changed = True
    while changed:
        changed = False
        for s in stmts:
            if isinstance(s, ir.ScalarLet) and s.name in found:
                more = names(s.value) - found
                if more:
                    found |= more
                    changed = True
    return found
