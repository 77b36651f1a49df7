"""Rendering one optimizer module: the IR's pieces printed as Python, placed by the Jinja template.

The last stage of the pipeline (language → check → lower → emit) for a torch.optim module. The
template (templates/optimizer.py.jinja) holds the layering every torch.optim module has — the
class with ``_init_group`` and ``step``, the functional API, ``_single_tensor_*`` and
``_multi_tensor_*`` — and ``ModuleRenderer`` gathers what goes in each slot from the parts that
print it: the constructor (generator.emit.python.constructor), the state (state), the group and
optimizer blocks and methods (group), the functional bodies (bodies), the fused path (fused_host
and fused), each later ``update:`` pass with its own functional; then the imports: those of the
names the parts recorded as they printed them (``ModuleFacts.imports``), and those of the names
the template writes itself, decided by the flags it branches on.
"""

from __future__ import annotations

import functools
from dataclasses import replace
from pathlib import Path

import jinja2

from generator import ir
from generator.check.model import CheckedSpec
from generator.language.builtins import estimate_functions, runtime_functions
from generator.language.diagnostics import GeneratorBug
from generator.emit.python.blocks import Lines
from generator.emit.python.scalars import annotation
from generator.emit.python.single import SingleTensorPrinter
from generator.emit.python.fused import fusable, kernel_source, writes_casts
from generator.emit.python.facts import ModuleFacts, functional_name
from generator.emit.python.constructor import constructor_context
from generator.emit.python.state import state_context
from generator.emit.python.group import (
    call_kwargs,
    first_group_inputs,
    group_counting,
    method,
    optimizer_counting,
    transient_keys,
    unpack,
)
from generator.emit.python.bodies import flat_step, multi_body, random_step, single_body
from generator.emit.python.fused_host import fused_body, native_constant


@functools.lru_cache(maxsize=1)
def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,  # Python source, not HTML; every spec string is escaped with repr()
    )
    # `{{ sym | typed(opt) }}`: a hyperparameter of a functional signature with its type
    env.filters["typed"] = typed_symbol
    return env


def typed_symbol(symbol: str, opt: ir.Optimizer) -> str:
    """``lr: float | Tensor``, ``beta1: float`` (one of ``betas``), ``maximize: bool``; a
    number a group block computes keeps no annotation (its type is the run's)."""
    for a in opt.arguments:
        if symbol in a.symbols:
            t = a.type.items[a.symbols.index(symbol)] if a.type.items else a.type
            return f"{symbol}: {annotation(t)}"
    return symbol


class ModuleRenderer:
    """The template's context for one optimizer, and the module it renders."""

    def __init__(self, opt: ir.Optimizer, checked: CheckedSpec):
        self.facts = ModuleFacts(opt, checked)

    def context(self) -> dict:
        facts = self.facts
        opt = facts.opt
        imports = ["Optimizer", "ParamsT"]
        foreach_explicit = any(
            a.name == "foreach" and a.explicit for a in opt.arguments
        )
        if opt.has_foreach and not foreach_explicit:
            imports += ["_default_to_fused_or_foreach"]
        if opt.mode == "each":
            if "differentiable" in facts.args:
                imports.append("_use_grad_for_differentiable")
            if "capturable" in facts.args:
                imports.append("_get_capturable_supported_devices")
        ctx = dict(
            opt=opt,
            foreach_explicit=foreach_explicit,
            fname=functional_name(opt),
            arg_names=set(facts.args),
            has_fused="fused" in facts.args,
            # torch.compile's optimizer support intercepts `_init_group` and takes every
            # entry of self.state for a parameter's dict: an optimizer keeping its own
            # states there (pytorch_optimizer's layout: MADGRAD's k) names it as
            # pytorch_optimizer does, and is traced as plain code
            init_group=(
                "init_group"
                if opt.mode == "each"
                and any(s.scope == "optimizer" for s in opt.states)
                else "_init_group"
            ),
            unpack=unpack(facts),
            call_kwargs=call_kwargs(facts),
            group_counting=group_counting(facts) if opt.mode == "each" else [],
            optimizer_counting=(
                optimizer_counting(facts)
                if opt.mode == "each"
                and (facts.optimizer_counts or facts.totals or opt.step_block)
                else ""
            ),
            # `state group ..., eager`: made when the optimizer is built, from the group's
            # hyperparameters then (pytorch_optimizer's base_lrs)
            eager_group_counts=[
                (s.key, facts.group_scalar(s.init))
                for s in facts.group_counts.values()
                if s.eager
            ],
            methods=[method(facts, m) for m in opt.methods],
            whole_tensor=any(
                ir.refuses_sharded(v) for v in opt.validations + opt.step_checks
            ),
            transient=transient_keys(opt),
        )
        ctx.update(constructor_context(facts))
        ctx.update(state_context(facts))
        ctx["later_passes"] = [
            later_pass(facts, p, k) for k, p in enumerate(opt.later_passes, start=2)
        ]
        if opt.mode == "each":
            ctx["single_body"] = single_body(facts)
            if opt.has_foreach:
                ctx["multi_body"] = multi_body(facts)
        if ctx["has_fused"]:
            blocker = fusable(opt)
            if blocker is not None:  # generator.driver reports it as E326 first
                raise GeneratorBug(f"{opt.name} declares `fused` but has {blocker}")
            ctx["fused_body"] = fused_body(facts)
            ctx["kernel"] = kernel_source(opt, ctx["fname"], facts.imports)
            ctx["kernel_casts"] = writes_casts(opt)
            ctx["native"] = native_constant(opt, ctx["fname"])
            imports.append("_device_dtype_check_for_fused")
        elif opt.mode == "flat":
            ctx.update(flat_step(facts))
        elif opt.mode == "random":
            ctx["random_step"] = random_step(facts)
        # every part is printed by now: the names it took from elsewhere are recorded
        needed = facts.imports
        helpers = ("_get_value", "_to_scalar", "_view_as_real", "_get_scalar_dtype")
        imports += [name for name in helpers if name in needed]
        if any(a.squeezed for a in opt.arguments):  # the template's own _to_scalar
            imports.append("_to_scalar")
        ctx["kernel_imports"] = _sorted_imports(
            (["CompiledKernel"] if ctx["has_fused"] else [])
            + (["amp_skips_step"] if ctx["has_fused"] and not opt.evaluates else [])
            + (["graph_constants"] if opt.mode == "each" else [])
            + (["drop_transient"] if ctx["transient"] else [])
            + [
                n
                for n in ("_device_number", "_flat", "_number_tensor", "_shaped")
                if n in needed
            ]
        )
        ctx["has_native"] = bool(ctx.get("native")) or any(
            p.get("native") for p in ctx["later_passes"]
        )
        ctx["linalg_imports"] = _sorted_imports(
            n for n in runtime_functions() + ["by_rank"] if n in needed
        )
        ctx["estimate_imports"] = _sorted_imports(
            n for n in estimate_functions() if n in needed
        )
        ctx["shard_imports"] = _sorted_imports(
            n
            for n, used in (
                ("_copy_all", "_copy_all" in needed),
                ("_is_sharded", ctx["whole_tensor"]),
            )
            if used
        )
        ctx["optimizer_imports"] = _sorted_imports(imports)
        # (the template's own lines for math, cast and the fused path's precision helpers)
        ctx["imports"] = needed
        return ctx

    def render(self) -> str:
        return environment().get_template("optimizer.py.jinja").render(**self.context())


def later_pass(facts: ModuleFacts, p: ir.Pass, number: int) -> dict:
    """A later `update:` pass: its blocks in step() and its own functional."""
    sub = ModuleFacts(
        replace(
            facts.opt,
            step_block=p.step_block,
            group_block=p.group_block,
            body=p.body,
            hoisted=p.hoisted,
            hyper=p.hyper,
            later_passes=(),
        ),
        facts.checked,
        several_passes=True,
        imports=facts.imports,
    )
    out = Lines()
    first_group_inputs(sub, p.step_block, out)
    printer = SingleTensorPrinter(sub.opt, sub.imports, capturable_counters=False)
    printer.body(p.step_block, out)
    ctx = dict(
        fname=f"{functional_name(facts.opt)}_pass{number}",
        opt=sub.opt,
        optimizer_block=out.text() if p.step_block else "",
        group_counting=group_counting(facts, p.group_block, first=False),
        unpack=unpack(sub),
        call_kwargs=call_kwargs(sub),
        single_body=single_body(sub),
    )
    sub.suffix = (
        f"_pass{number}"  # (the pass's functionals: `_multi_tensor_adam_pass2`)
    )
    if sub.opt.has_foreach:
        ctx["multi_body"] = multi_body(sub)
    if "fused" in facts.args:
        ctx["suffix"] = sub.suffix
        ctx["fused_body"] = fused_body(sub)
        ctx["kernel"] = kernel_source(sub.opt, ctx["fname"], sub.imports)
        ctx["kernel_casts"] = writes_casts(sub.opt)
        ctx["native"] = native_constant(sub.opt, ctx["fname"])
    return ctx


def _sorted_imports(names) -> list[str]:
    """Classes, then functions, then the private helpers (isort's order by type)."""
    return sorted(
        set(names), key=lambda n: (n.startswith("_"), not n[:1].isupper(), n.lower())
    )
