"""Rendering one optimizer module: the IR's pieces printed as Python, placed by the Jinja template.

The template (templates/optimizer.py.jinja) holds the layering every torch.optim module has — the
class with ``_init_group`` and ``step``, the functional API, ``_single_tensor_*`` and
``_multi_tensor_*`` — and this module computes what goes in each slot: the signature, the defaults,
the state initialisation, and the two bodies printed from the same IR statements.
"""

from __future__ import annotations

import ast
import functools
from dataclasses import replace
from pathlib import Path

import jinja2

from generator import ir
from generator.check.checker import CheckedSpec, refuses_complex
from generator.language.builtins import BUILTINS
from generator.language.diagnostics import GeneratorBug
from generator.emit.docs.latex import algorithm_box
from generator.emit.python.validation import (
    PrintedCheck,
    checks_printer,
    constructor_names,
    group_names,
    per_parameter_name,
    printed,
)
from generator.emit.python.printer import (
    ForeachPrinter,
    Lines,
    ScalarPrinter,
    SingleTensorPrinter,
    SparseValuesPrinter,
    annotation,
    count_value,
    literal,
    uses,
    varying_refs,
)
from generator.emit.python.flat import FlatPrinter, UpdatePrinter
from generator.emit.python.fused import (
    first_values_on_host,
    fusable,
    host_source,
    keeps_shapes,
    kernel_source,
    writes_casts,
)

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


@functools.lru_cache(maxsize=1)
def environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,  # Python source, not HTML; every spec string is escaped with repr()
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


def _reads_count_before_update(stmts, key: str) -> bool:
    for s in ir.walk(stmts):
        if isinstance(s, ir.CountUpdate) and s.state == key and s.op != "fill":
            return False
        # (a new value computed from the old one, `w <- w * beta + 1` or `c <- 0 if c > 10
        # else c + 1`, reads it first; beside `update:` the counter is a plain reference)
        exprs = ir.expressions(s)
        if any(
            uses(e, lambda x: isinstance(x, ir.SRef) and x.name == key) for e in exprs
        ):
            return True
    return False


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


def _pydoc_string(text: str) -> str:
    if '"""' in text or text.endswith("\\") or "\r" in text:
        return repr(text)
    return 'r"""' + text + '"""'


class GroupPrinter(SingleTensorPrinter):
    """Statements run once per param group (``update group:``, a spec's ``method``): the group's
    values live in the group dict, inputs are read from it (a tuple input's symbols by name
    where the caller ``unpacked`` them), ``return`` ends the step."""

    def __init__(
        self, renderer: "ModuleRenderer", checked: CheckedSpec, unpacked: bool = False
    ):
        super().__init__(renderer.opt, capturable_counters=False)
        self.renderer = renderer
        self.unpacked = unpacked
        self.view_as_real = checked.spec.complex_mode == "view_as_real"
        self.scalar = ScalarPrinter(self._group_value, lambda e: self.tensor(e)[0])

    def _group_value(self, r: ir.SRef) -> str:
        a = self.renderer.sym_arg.get(r.name)
        if r.name in self.renderer.group_counts or (
            a is not None and (a[1] is None or not self.unpacked)
        ):
            return self.renderer._group_ref(r)
        return r.name  # a tuple input's symbol (unpacked) or a local

    def stmt(self, s, out: Lines) -> None:
        if isinstance(s, ir.CountUpdate) and s.scope == "group":
            op = {"+=": "+=", "*=": "*=", "fill": "="}[s.op]
            out(f'group["{s.state}"] {op} {self.scalar(s.value)}')
        elif isinstance(s, ir.Return):
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
            for b in used:
                get = (
                    f'state["{b.key}"]'
                    if b.condition is None
                    else f'state.get("{b.key}")'
                )
                out(f"{b.var} = {get}")
            if self.view_as_real:
                out("if torch.is_complex(param):")
                with out.indent():
                    for name in ["param"] + [b.var for b in always]:
                        out(f"{name} = torch.view_as_real({name})")
            self.body(s.body, out)


class ModuleRenderer:
    def __init__(
        self, opt: ir.Optimizer, checked: CheckedSpec, several_passes: bool = False
    ):
        self.opt = opt
        self.checked = checked
        # one pass of several: its functional names only the tensors its update reads
        self.several_passes = several_passes or bool(opt.later_passes)
        self.suffix = (
            ""  # of a later pass's compiled functions (`_compiled_kernel_pass2`)
        )
        self.args = {a.name: a for a in opt.arguments}
        self.sym_arg = {}
        for a in opt.arguments:
            for k, s in enumerate(a.symbols):
                self.sym_arg[s] = (a, k if len(a.symbols) > 1 else None)
        self.group_scalar = ScalarPrinter(self._group_ref, per_parameter_name)
        # `state group` counters: numbers of the group dict (pytorch_optimizer's group['step'])
        self.group_counts = {
            s.key: s
            for s in opt.states
            if s.scope == "group" and s.kind in ("count", "flag")
        }
        self.totals = [s for s in opt.states if s.kind == "total"]
        self.optimizer_counts = (
            {
                s.key: s
                for s in opt.states
                if s.scope == "optimizer" and s.kind == "count"
            }
            if opt.mode == "each"
            else {}
        )

    def _group_ref(self, r: ir.SRef) -> str:
        if r.name in self.group_counts:
            return f'group["{r.name}"]'
        if r.name in self.sym_arg:
            a, k = self.sym_arg[r.name]
            # torch's Adagrad starts every accumulator from the constructor's value.
            where = "self.defaults" if a.constructor else "group"
            value = f'{where}["{a.name}"]' + (f"[{k}]" if k is not None else "")
            # a 1-element tensor of any shape reads as a 0-d one (torch's _to_scalar)
            return f"_to_scalar({value})" if a.tensor_ok else value
        raise GeneratorBug(f"`{r.name}` is not a hyperparameter")

    # -- the class --------------------------------------------------------------------------------------
    def signature(self) -> list[str]:
        out, star = [], False
        for a in self.opt.arguments:
            if a.fixed:
                continue
            if a.keyword and not star:
                out.append("*")
                star = True
            ann = annotation(a.type)
            if a.tensor_ok and ann == "float | Tensor":
                ann = "float | Tensor"
            out.append(
                f"{a.name}: {ann}"
                + ("" if a.default is None else f" = {literal(a.default)}")
            )
        # the precision policy every per-parameter optimizer takes (generator.runtime.precision)
        if self.opt.mode == "each":
            if not star:
                out.append("*")
            out += [
                "state_dtype: torch.dtype | dict[str, torch.dtype] | None = None",
                "compute_dtype: torch.dtype | None = None",
                'param_rounding: str = "nearest"',
                "rounding_seed: int | None = None",
            ]
        return out

    def tensor_states(self) -> list[ir.StateBuffer]:
        """The states a precision policy may store in another dtype: tensors, not counters."""
        return [s for s in self.param_states() if s.kind == "tensor"]

    def precision_keys(self) -> list[str | None]:
        """What each list of the functional holds, for ``Precision.chunks``."""
        keys = {s.list_name: s.key for s in self.tensor_states()}
        return [
            "param" if n == "params" else "grad" if n == "grads" else keys.get(n)
            for n in self.group_lists()
        ]

    def defaults(self) -> list[tuple[str, str]]:
        args = self.opt.arguments
        if self.opt.defaults_order:
            args = sorted(args, key=lambda a: self.opt.defaults_order.index(a.name))
        computed = self.none_means()
        return [
            (a.name, computed.get(a.name, _default(a)) if a.fixed else a.name)
            for a in args
        ]

    def setdefaults(self) -> list[tuple[str, str]]:
        if self.opt.mode == "flat":  # no flags whose absence an old pickle would show
            return []
        return [
            (a.name, _default(a))
            for a in self.opt.arguments
            if not a.fixed
            and isinstance(a.default, ir.SConst)
            and a.default.text in ("True", "False", "None")
        ]

    def fixed(self) -> list[tuple[str, str]]:
        computed = self.none_means()  # kept in the group as computed
        return [
            (a.name, _default(a))
            for a in self.opt.arguments
            if a.fixed and a.name not in computed
        ]

    def param_states(self):
        if (
            self.opt.mode == "flat"
        ):  # one state for all parameters (generator.emit.python.flat)
            return []
        return [s for s in self.opt.states if s.scope == "parameter"]

    def group_lists(self) -> list[str]:
        st = self.param_states()
        return (
            ["params", "grads"]
            + [s.list_name for s in st if s.kind == "tensor"]
            + [s.list_name for s in st if s.kind == "count"]
        )

    def init_state(self) -> str:
        out = Lines()
        made = [s for s in self.param_states() if s.init is not None]
        for k, s in enumerate(made):
            # states made under one condition share one `if`
            guard = s.condition is not None
            opens = guard and (k == 0 or made[k - 1].condition != s.condition)
            if opens:
                out(f"if {self.group_scalar(s.condition)}:")
            if guard:
                out.level += 1
            if s.init == ir.SRef("param"):
                out(
                    f'state["{s.key}"] = p.detach().clone(memory_format=torch.preserve_format)'
                )
                if guard:
                    out.level -= 1
                continue
            value = self.group_scalar(s.init)
            if s.reduced is not None:
                shape = f"{s.key}_shape"
                out(f"{shape} = list(p.shape)")
                out(f"{shape}[{s.reduced}] = 1")
                make = (
                    f"p.new_zeros({shape})"
                    if value in ("0", "0.0")
                    else f"p.new_full({shape}, {value})"
                )
                out(f'state["{s.key}"] = {make}')
            elif s.kind == "count" and s.as_number:
                out(f'state["{s.key}"] = {value}')
            elif s.kind == "count":
                out(
                    f'state["{s.key}"] = {self.count_tensor(s, _float(value), "group")}'
                )
            elif value in ("0", "0.0"):
                out(
                    f'state["{s.key}"] = torch.zeros_like(p, memory_format=torch.preserve_format)'
                )
            else:
                out(
                    f"init_value = (complex({value}, {value}) if torch.is_complex(p) else {value})"
                )
                out(
                    f'state["{s.key}"] = torch.full_like(p, init_value, '
                    "memory_format=torch.preserve_format)"
                )
            if guard:
                out.level -= 1
        return out.text()

    def collect_state(self) -> str:
        out = Lines()
        st = self.param_states()
        for s in [s for s in st if s.kind == "tensor"] + [
            s for s in st if s.kind == "count"
        ]:
            if _per_parameter(s.condition):
                # the list keeps one entry per parameter; None where the state does not apply
                out(f'{s.list_name}.append(state.get("{s.key}"))')
                continue
            guard = s.condition is not None
            if guard:
                out(f"if {self.group_scalar(s.condition)}:")
                out.level += 1
            if s.init is None:
                out(
                    f'{s.list_name}.append(state.get("{s.key}"))'
                    if self._has_eager_or_init()
                    else f'{s.list_name}.append(self.state[p].get("{s.key}"))'
                )
            else:
                out(f'{s.list_name}.append(state["{s.key}"])')
            if guard:
                out.level -= 1
        return out.text()

    def count_tensor(self, s: ir.State, value: str, group: str) -> str:
        """A new counter tensor. On the parameter's device where the spec says so, or where
        capturable=True or fused=True asks for it (torch's note "special device hosting for
        step"), in float32 for fused as torch's fused kernels take it; else a CPU scalar.
        """
        cpu = f"torch.tensor({value}, dtype=_get_scalar_dtype())"
        if s.on_device:
            return f"torch.tensor({value}, dtype=_get_scalar_dtype(), device=p.device)"
        flags = [f for f in ("capturable", "fused") if f in self.args]
        if not flags:
            return cpu
        dtype = (
            f'_get_scalar_dtype(is_fused={group}["fused"])'
            if "fused" in flags
            else "_get_scalar_dtype()"
        )
        on_device = f"torch.tensor({value}, dtype={dtype}, device=p.device)"
        test = " or ".join(f'{group}["{f}"]' for f in flags)
        return f"({on_device} if {test} else {cpu})"

    def _has_eager_or_init(self) -> bool:
        return any(s.init is not None for s in self.param_states())

    def unpack(self) -> list[str]:
        out = []
        for a in self.opt.arguments:
            if len(a.symbols) > 1 and any(s in self.opt.hyper for s in a.symbols):
                out.append(f'{", ".join(a.symbols)} = group["{a.name}"]')
        return out

    def call_kwargs(self) -> list[tuple[str, str]]:
        out = []
        if "foreach" in self.args:
            out.append(("foreach", 'group["foreach"]'))
        if "differentiable" in self.args:
            out.append(("differentiable", 'group["differentiable"]'))
        if "capturable" in self.args:
            out.append(("capturable", 'group["capturable"]'))
        if "fused" in self.args:
            out.append(("fused", 'group["fused"]'))
        out.append(("has_complex", "has_complex"))
        out.append(("precision", "group_precision(self, group, params)"))
        totals = {s.key for s in self.totals}
        made = {
            s.name for s in ir.walk(self.opt.group_block) if isinstance(s, ir.ScalarLet)
        }
        for sym in self.opt.hyper:
            if sym in self.group_counts:
                out.append((sym, f'group["{sym}"]'))
                continue
            if (
                sym in totals or sym in made
            ):  # the step's tensors, the group block's values
                out.append((sym, sym))
                continue
            if sym in self.optimizer_counts:  # read once per step by optimizer_counting
                out.append((sym, sym))
                continue
            a, k = self.sym_arg[sym]
            out.append((sym, sym if k is not None else f'group["{a.name}"]'))
        return out

    def group_counting(self, block=None, first: bool = True) -> list[str]:
        """``update group:``: each group's counters, made at its first step and counted once
        per step before its parameters, as pytorch_optimizer counts ``group['step']``; the
        values it computes are locals the pass's functional receives.
        """
        out = Lines()
        for s in self.group_counts.values() if first else ():
            init = self.group_scalar(s.init)
            out(f'if "{s.key}" not in group:')
            out(f'    group["{s.key}"] = {init}')
        block = self.opt.group_block if block is None else block
        GroupPrinter(self, self.checked).body(block, out)
        return out.lines

    def method(self, m: ir.Method) -> str:
        """``method NAME:``: its statements once per param group, the group's values read from
        and written to the group dict, ``for each parameter:`` over the parameters with state.
        """
        out = Lines()
        out("@torch.no_grad()")
        out(f"def {m.name}(self):")
        with out.indent():
            if m.doc is not None:
                out(_pydoc_string(m.doc))
            out("for group in self.param_groups:")
            with out.indent():
                read = set(ir.refs(m.body, ir.SRef))
                for a in self.opt.arguments:
                    if len(a.symbols) > 1 and read & set(a.symbols):
                        names = [s if s in read else "_" for s in a.symbols]
                        out(f'{", ".join(names)} = group["{a.name}"]')
                GroupPrinter(self, self.checked, unpacked=True).body(m.body, out)
        return out.text()

    def later_pass(self, p: ir.Pass, number: int) -> dict:
        """A later `update:` pass: its blocks in step() and its own functional."""
        sub = ModuleRenderer(
            replace(
                self.opt,
                step_block=p.step_block,
                group_block=p.group_block,
                body=p.body,
                hoisted=p.hoisted,
                hyper=p.hyper,
                later_passes=(),
            ),
            self.checked,
            several_passes=True,
        )
        out = Lines()
        sub._first_group_inputs(p.step_block, out)
        SingleTensorPrinter(sub.opt, capturable_counters=False).body(p.step_block, out)
        ctx = dict(
            fname=f"{_functional_name(self.opt)}_pass{number}",
            opt=sub.opt,
            optimizer_block=out.text() if p.step_block else "",
            group_counting=self.group_counting(p.group_block, first=False),
            unpack=sub.unpack(),
            call_kwargs=sub.call_kwargs(),
            single_body=sub.single_body(),
        )
        if sub.opt.has_foreach:
            ctx["multi_body"] = sub.multi_body()
        if "fused" in self.args:

            sub.suffix = ctx["suffix"] = f"_pass{number}"
            ctx["fused_body"] = sub.fused_body()
            ctx["kernel"] = kernel_source(sub.opt, ctx["fname"])
            ctx["kernel_casts"] = writes_casts(sub.opt)
        return ctx

    def _first_group_inputs(self, stmts, out: Lines) -> None:
        """An optimizer-level block reads the hyperparameters of the first param group (as
        pytorch_optimizer's Prodigy and torch's LBFGS do)."""
        read = set(ir.refs(stmts, ir.SRef))
        for a in self.opt.arguments:
            if read & set(a.symbols):
                names = [s if s in read else "_" for s in a.symbols]
                out(f'{", ".join(names)} = self.param_groups[0]["{a.name}"]')

    def store_lazy(self) -> str:
        out = Lines()
        for s in self.param_states():
            if s.as_number:  # numbers are values, not tensors updated in place
                out(f"for p, value in zip(params, {s.list_name}, strict=True):")
                with out.indent():
                    out(f'self.state[p]["{s.key}"] = value')
                continue
            if s.init is not None:
                continue
            guard = s.condition is not None
            if guard:
                out(f"if {self.group_scalar(s.condition)}:")
                out.level += 1
            out(f"for p, buf in zip(params, {s.list_name}, strict=True):")
            with out.indent():
                out(f'self.state[p]["{s.key}"] = buf')
            if guard:
                out.level -= 1
        return out.text()

    def none_means(self) -> dict[str, str]:
        """argument → the Python source of its value when given as None."""
        printer = checks_printer(constructor_names(self.opt))
        return {a: printer(v) for a, v in self.opt.none_means}

    def validations(self) -> list[PrintedCheck]:
        names = constructor_names(self.opt)
        return [printed(v, names) for v in self.opt.validations]

    def step_checks(self) -> list[PrintedCheck]:
        # a placeholder reads the group's value: `{lr}` is group["lr"]
        names = group_names(self.opt)
        return [printed(v, names) for v in self.opt.step_checks]

    # -- the functional bodies ------------------------------------------------------------------------
    def needs_real_view(self) -> bool:
        if refuses_complex(self.checked.spec):
            return False
        if self.checked.spec.complex_mode == "view_as_real":
            return True
        return bool(_ops_used(self.opt.body) & NONLINEAR)

    def _graph_constants(self, out: Lines) -> None:
        """Compiled (an enclosing torch.compile), the hyperparameters that are Python floats
        become constants of the graph, guarded: a scheduler's new lr recompiles, as with
        torch's own classes. torch 2.13's dynamo otherwise traced them as symbolic floats and
        kept a stale value of one used twice (`param.mul_(1 - lr * wd)`, then
        `param.add_(u, alpha=-lr)`), silently."""
        typed = {s: a.type for a in self.opt.arguments for s in a.symbols}
        # float inputs, and the numbers a group block hands over (their type is the run's)
        names = [s for s in self.opt.hyper if s not in typed or _may_be_float(typed[s])]
        if not names:
            return
        out("if torch.compiler.is_compiling():")
        with out.indent():
            out(
                f"{', '.join(names)}{',' if len(names) == 1 else ''} = graph_constants({', '.join(names)})"
            )

    def _to_scalar(self, out: Lines) -> None:
        for a in self.opt.arguments:
            if a.tensor_ok and any(s in self.opt.hyper for s in a.symbols):
                for s in a.symbols:
                    out(f"{s} = _to_scalar({s})")

    def fused_body(self) -> str:
        """``_fused_<name>``: per parameter, the host part (numbers, decisions), then one call of
        the compiled kernel on the flattened tensors (see generator.emit.python.fused).
        """

        opt, out = self.opt, Lines()
        fname = _functional_name(opt)
        host, tensors, numbers, decisions = host_source(opt, fname)
        printer = SingleTensorPrinter(opt, capturable_counters=False)
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
                    out(f"{s} = _device_number({s}, device)")
                args = self.group_lists() + ["has_complex=has_complex"]
                if "capturable" in self.args:
                    args.append("capturable=True")  # the counters are on the device
                args += [f"{s}={s}" for s in opt.hyper]
                out(f"_compiled_multi_tensor{self.suffix}()({', '.join(args)})")
                out("return")
        self._to_scalar(out)
        printer.body(opt.hoisted, out)
        # numbers decided by hyperparameters are made tensors once per group
        group_level = set(opt.hyper) | {s.name for s in opt.hoisted}
        for n in numbers:
            if n in group_level:
                out(f"_{n} = _number_tensor({n})")
        out(f"kernel = _compiled_kernel{self.suffix}(precision is not None)")
        out("")
        out("for i, param in enumerate(params):")
        with out.indent():
            out("grad = grads[i]")
            for s in self.param_states():
                if s.condition is not None and not _per_parameter(s.condition):
                    cond = printer.scalar(s.condition)
                    out(f"{s.var} = {s.list_name}[i] if {cond} else None")
                else:
                    out(f"{s.var} = {s.list_name}[i]")
            for s in self.param_states():
                if s.kind == "count" and _reads_count_before_update(opt.body, s.key):
                    out(f"{s.key} = {count_value(opt, s.var, s.as_number)}")
            for s in self.param_states():
                if (
                    s.init is None
                ):  # a lazy state: made here, its first value in the kernel
                    exists = (
                        ""
                        if s.condition is None
                        else f"{printer.scalar(s.condition)} and "
                    )
                    out(f"_first_{s.var} = {exists}{s.var} is None")
                    out(f"if _first_{s.var}:")
                    with out.indent():
                        source = first_values_on_host(opt).get(s.var)
                        # in the dtype a precision policy stores it in (None: param's)
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
            # the precision policy's inputs (generator.runtime.precision), cast in the kernel
            out(
                "_compute, _rounding, _comp, _noise = kernel_policy(precision, param, i)"
            )
            flat = "" if keeps_shapes(opt) else "_flat"
            args = [f"{flat}({t})" if flat else t for t in tensors]
            args += [
                f"_{n}" if n in group_level else f"_number_tensor({n})" for n in numbers
            ]
            args += decisions
            args += ["_compute", "_rounding"]
            args += [f"{flat}({t})" if flat else t for t in ("_comp", "_noise")]
            out(f"kernel({', '.join(args)})")
        return out.text()

    def single_body(self) -> str:
        opt, out = self.opt, Lines()
        printer = SingleTensorPrinter(opt)
        self._to_scalar(out)
        self._graph_constants(out)
        printer.body(opt.hoisted, out)
        if out.lines:
            out("")
        out("for i, param in enumerate(params):")
        with out.indent():
            unread = self._unread_tensors()
            if "grad" not in unread:
                out("grad = grads[i]")
            views = [("param", None)] + [("grad", None)] * ("grad" not in unread)
            for s in self.param_states():
                if s.var in unread:
                    continue
                line = f"{s.var} = {s.list_name}[i]"
                if s.condition is not None and not _per_parameter(s.condition):
                    out(f"if {printer.scalar(s.condition)}:")
                    with out.indent():
                        out(line)
                else:
                    out(line)
                if s.kind == "tensor":
                    # (a lazy state is None until this step makes it)
                    views.append((s.var, s.condition if s.init is not None else "lazy"))
            for s in self.param_states():
                if s.kind == "count" and _reads_count_before_update(opt.body, s.key):
                    value = count_value(opt, s.var, s.as_number, printer.keep_tensors)
                    out(f"{s.key} = {value}")
            out("")
            if opt.sparse == "only":
                self._sparse_body(out)
            elif opt.sparse == "also":
                out("if grad.is_sparse:")
                with out.indent():
                    self._sparse_body(out)
                out("else:")
                with out.indent():
                    self._dense_body(printer, views, out)
            else:
                self._dense_body(printer, views, out)
        return _keep_captured(out.text())

    def _unread_tensors(self) -> set[str]:
        """A later pass's functional receives every list: the tensors its update never names
        (the gradient, states of the other pass) are not bound in its loops."""
        if not self.several_passes:
            return set()
        named = set(ir.refs(self.opt.body + self.opt.hoisted, ir.TRef))
        tensors = ["grad"] + [s.var for s in self.param_states() if s.kind == "tensor"]
        return {t for t in tensors if t not in named}

    def _sparse_body(self, out: Lines) -> None:
        """A sparse gradient: the update runs on the values of the rows it holds (coalesced)."""
        body = self.opt.body
        lead = 0
        while lead < len(body) and isinstance(body[lead], ir.CountUpdate):
            lead += 1
        SingleTensorPrinter(self.opt).body(body[:lead], out)
        out("grad = grad.coalesce()  # the update is not linear: one value per row")
        out("grad_indices = grad._indices()")
        out("grad_values = grad._values()")
        out("if grad_values.numel() == 0:")
        with out.indent():
            out("continue")
        SparseValuesPrinter(self.opt).body(body[lead:], out)

    def _dense_body(self, printer, views, out: Lines) -> None:
        opt = self.opt
        # Complex parameters are updated through their real view, from the first operation on
        # which complex and real arithmetic differ; the linear prefix (maximize, L2 decay) runs
        # on the complex tensors first, exactly as torch orders it.
        if self.checked.spec.complex_mode == "view_as_real":
            split = 0
        elif self.needs_real_view():
            split = _linear_prefix(
                opt.body, frozenset(b.var for b in opt.states if b.kind == "tensor")
            )
        else:
            split = len(opt.body)
        printer.body(opt.body[:split], out, free=split == len(opt.body))
        if split < len(opt.body):
            views += [(name, None) for name in _defined_locals(opt.body[:split])]
            out("if torch.is_complex(param):")
            with out.indent():
                for var, cond in views:
                    if cond == "lazy" or _per_parameter(
                        cond
                    ):  # decided before the view changes the shape
                        out(f"if {var} is not None:")
                        with out.indent():
                            out(f"{var} = torch.view_as_real({var})")
                    elif cond is not None:
                        out(f"if {printer.scalar(cond)}:")
                        with out.indent():
                            out(f"{var} = torch.view_as_real({var})")
                    else:
                        out(f"{var} = torch.view_as_real({var})")
            printer.real_views = True  # a state made from here on is stored complex
            printer.body(opt.body[split:], out, free=True)
            printer.real_views = False

    def multi_body(self) -> str:
        opt, out = self.opt, Lines()
        printer = ForeachPrinter(opt)
        lists = self.group_lists()
        out("if len(params) == 0:")
        with out.indent():
            out("return")
        out("")
        self._to_scalar(out)
        self._graph_constants(out)
        printer.body(opt.hoisted, out)
        lazy = any(s.init is None for s in self.param_states())
        out("grouped_tensors = Optimizer._group_tensors_by_device_and_dtype(")
        with out.indent():
            out(f"[{', '.join(lists)}],  # type: ignore[list-item]")
            if lazy:
                out("with_indices=True,")
        out(")")
        names = [f"device_{n}_" for n in lists]
        out(
            f"for ({', '.join(names)},), {'indices' if lazy else '_'} in grouped_tensors.values():"
        )
        with out.indent():
            unread = self._unread_tensors()
            by_list = {s.list_name: s.var for s in self.param_states()}
            for n in lists:
                if by_list.get(n, "grad" if n == "grads" else None) in unread:
                    continue
                out(f"device_{n} = cast(list[Tensor], device_{n}_)")
            if opt.sparse:
                out("if any(grad.is_sparse for grad in device_grads):")
                with out.indent():
                    # sparse gradients update their rows one tensor at a time, as in torch
                    args = [f"device_{n}" for n in lists] + ["has_complex=has_complex"]
                    if "differentiable" in self.args:
                        args.append("differentiable=False")
                    args += [f"{s}={s}" for s in opt.hyper]
                    out(f"_single_tensor_{_functional_name(opt)}({', '.join(args)})")
                    out("continue")
            if self.needs_real_view():
                views = ["device_params"] + ["device_grads"] * ("grad" not in unread)
                extra, partial = [], []
                for s in self.param_states():
                    if s.kind != "tensor" or s.var in unread:
                        continue
                    if s.condition is None and s.init is not None:
                        views.append(f"device_{s.list_name}")
                    elif s.init is None or _per_parameter(s.condition):
                        # (None where a state does not apply, or is made by this step)
                        partial.append(f"device_{s.list_name}")
                    else:
                        cond = ForeachPrinter(opt).scalar(s.condition)
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
                    out(f"_view_as_real({', '.join(views + extra)})")
            out("")
            printer.real_views = self.needs_real_view()
            printer.body(opt.body, out, free=True)
        return _keep_captured(out.text())

    def optimizer_counting(self) -> str:
        """``update optimizer:`` beside ``update:``: the optimizer's counters, in
        ``self.state``, counted once per step before the groups; the update reads their
        values (MADGRAD's ``k``)."""
        out = Lines()
        self._count_optimizer_states(out)
        read = set(self.opt.hyper).union(*(p.hyper for p in self.opt.later_passes))
        for s in self.opt.states:
            if s.scope == "optimizer" and s.kind == "count" and s.key in read:
                out(f"{s.key} = _get_value({s.var})")
        return out.text()

    def _count_optimizer_states(self, out: Lines) -> None:
        opt = self.opt
        printer = SingleTensorPrinter(opt, capturable_counters=False)
        # the block and the first values of the optimizer's own states read the inputs
        # (`state optimizer k: count <- start`)
        firsts = [
            s.init for s in opt.states if s.scope == "optimizer" and s.init is not None
        ]
        self._first_group_inputs((opt.step_block, firsts), out)
        for s in self.totals:
            # one element of the default dtype, on the device of the first parameter (as
            # pytorch_optimizer's Prodigy keeps its sums)
            out(f'if "{s.key}" not in self.state:')
            with out.indent():
                device = 'self.param_groups[0]["params"][0].device'
                init = printer.scalar(s.init)
                make = (
                    f"torch.zeros(1, device={device})"
                    if init in ("0", "0.0")
                    else f"torch.full((1,), {_float(init)}, device={device})"
                )
                out(f'self.state["{s.key}"] = {make}')
            out(f'{s.key} = self.state["{s.key}"]')
        for s in opt.states:
            if s.scope == "optimizer" and s.kind == "count":
                out(f'if "{s.key}" not in self.state:')
                with out.indent():
                    init = printer.scalar(s.init)
                    out(
                        f'self.state["{s.key}"] = torch.tensor({_float(init)}, '
                        "dtype=_get_scalar_dtype())"
                    )
                out(f'{s.var} = self.state["{s.key}"]')
                if _reads_count_before_update(opt.step_block, s.key):
                    out(f"{s.key} = _get_value({s.var})")
        printer.body(opt.step_block, out)

    def random_step(self) -> str:
        opt, out = self.opt, Lines()
        printer = SingleTensorPrinter(opt, capturable_counters=False)
        self._count_optimizer_states(out)
        out("")
        out("picked = self._pick_parameter()")
        out("if picked is None:")
        with out.indent():
            out("return loss")
        out("group, param = picked")
        out("grad = param.grad")
        for line in self.unpack():
            out(line)
        for sym in opt.hyper:
            a, k = self.sym_arg[sym]
            if k is None:
                out(f'{sym} = group["{a.name}"]')
        printer.body(opt.hoisted, out)
        printer.body(opt.body, out)
        return out.text()

    def flat_step(self) -> dict:

        program = self.opt.program
        hyper = []
        for a in self.opt.arguments:
            used = [s for s in a.symbols if s in program.inputs]
            if not used:
                continue
            value = f'group["{a.name}"]'
            if a.tensor_ok:
                value = f"_to_scalar({value})"
            hyper.append(f"{', '.join(a.symbols)} = {value}")
        printer = FlatPrinter(program)
        return dict(
            flat_hyper=hyper,
            flat_counters=[
                (st.key, printer.expr(program.update, st.init))
                for st in program.states.values()
                if st.kind == "count"
            ],
            flat_step=UpdatePrinter(program).body(),
            procedures="\n\n\n".join(
                printer.procedure(p) for p in program.procedures.values()
            ),
        )

    # -- documentation ------------------------------------------------------------------------------
    def docstring(self) -> str:
        opt = self.opt
        parts = [opt.summary, "", algorithm_box(self.checked)]
        parts.append("    Args:")
        parts.append(
            "        params (iterable): iterable of parameters or named_parameters to "
            "optimize or iterable of dicts defining parameter groups."
        )
        for inp in self.checked.spec.inputs:
            if inp.fixed:
                continue
            a = self.args[inp.arg_name]
            kind = annotation(a.type) + (", optional" if a.default is not None else "")
            flag = "foreach explicit" if a.explicit else a.name
            doc = inp.doc or _FLAG_DOCS.get(flag, "")
            default = f" (default: {_default(a)})" if a.default is not None else ""
            parts.append(f"        {a.name} ({kind}): {doc}{default}".rstrip())
        if opt.notes:
            parts.append("")
            parts += [f"    .. note:: {n}" for n in opt.notes]
        if opt.references:
            parts.append("")
            parts.append("    References:")
            parts += [f"        - {r}" for r in opt.references]
        parts.append("")
        parts.append(f"    Generated by optimgen from ``{opt.spec_path}``.")
        return _pydoc_string("\n".join(parts) + "\n    ")

    def context(self) -> dict:
        opt = self.opt
        imports = ["Optimizer", "ParamsT"]
        foreach_explicit = any(
            a.name == "foreach" and a.explicit for a in opt.arguments
        )
        if opt.has_foreach and not foreach_explicit:
            imports += ["_default_to_fused_or_foreach"]
        if opt.mode == "each":
            if "differentiable" in self.args:
                imports.append("_use_grad_for_differentiable")
            if "capturable" in self.args:
                imports.append("_get_capturable_supported_devices")
        ctx = dict(
            opt=opt,
            foreach_explicit=foreach_explicit,
            fname=_functional_name(opt),
            arg_names=set(self.args),
            signature=self.signature(),
            defaults=self.defaults(),
            setdefaults=self.setdefaults(),
            fixed=self.fixed(),
            has_fused="fused" in self.args,
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
            eager_states=any(s.eager for s in self.param_states()),
            count_states=[
                (s.key, self.count_tensor(s, f'float(p_state["{s.key}"])', "group"))
                for s in self.param_states()
                if s.kind == "count" and not s.as_number
            ],
            # counters kept in the scalar dtype through a load (torch's load keeps `step` so)
            loaded_counters=repr(
                tuple(
                    s.key
                    for s in self.param_states()
                    if s.kind == "count" and not s.as_number and s.key != "step"
                )
            ),
            init_state=self.init_state(),
            group_lists=self.group_lists(),
            collect_state=self.collect_state(),
            step_checks=self.step_checks(),
            capturable_counts=next(
                (
                    s.list_name
                    for s in self.param_states()
                    if s.kind == "count" and not s.as_number
                ),
                "params",
            ),
            unpack=self.unpack(),
            call_kwargs=self.call_kwargs(),
            # `none means` of an argument (a fixed input's value is computed in `defaults`)
            none_means=[
                (a, v) for a, v in self.none_means().items() if not self.args[a].fixed
            ],
            validations=self.validations(),
            group_counting=self.group_counting() if opt.mode == "each" else [],
            optimizer_counting=(
                self.optimizer_counting()
                if opt.mode == "each" and (self.optimizer_counts or self.totals)
                else ""
            ),
            # `state group ..., eager`: made when the optimizer is built, from the group's
            # hyperparameters then (pytorch_optimizer's base_lrs)
            eager_group_counts=[
                (s.key, self.group_scalar(s.init))
                for s in self.group_counts.values()
                if s.eager
            ],
            store_lazy=self.store_lazy(),
            tensor_state_keys=tuple(s.key for s in self.tensor_states()),
            declared_dtypes="{"
            + ", ".join(
                f'"{s.key}": torch.{s.stored_as}'
                for s in self.tensor_states()
                if s.stored_as
            )
            + "}",
            precision_keys=self.precision_keys(),
            docstring=self.docstring(),
            methods=[self.method(m) for m in opt.methods],
            whole_tensor=any(
                ir.refuses_sharded(v) for v in opt.validations + opt.step_checks
            ),
        )
        ctx["later_passes"] = [
            self.later_pass(p, k) for k, p in enumerate(opt.later_passes, start=2)
        ]
        code = ctx["init_state"] + ctx["optimizer_counting"] + "".join(ctx["methods"])
        code += "\n".join(ctx["group_counting"])
        for p in ctx["later_passes"]:
            code += p["single_body"] + p.get("multi_body", "") + p["optimizer_block"]
            code += p.get("fused_body", "") + p.get("kernel", "")
            code += "\n".join(p["group_counting"])
        if opt.mode == "each":
            ctx["single_body"] = self.single_body()
            code += ctx["single_body"]
            if opt.has_foreach:
                ctx["multi_body"] = self.multi_body()
                code += ctx["multi_body"]
        if ctx["has_fused"]:

            blocker = fusable(opt)
            if blocker is not None:  # generator.driver reports it as E326 first
                raise GeneratorBug(f"{opt.name} declares `fused` but has {blocker}")
            ctx["fused_body"] = self.fused_body()
            ctx["kernel"] = kernel_source(opt, ctx["fname"])
            ctx["kernel_casts"] = writes_casts(opt)
            code += ctx["fused_body"] + ctx["kernel"]
            ctx["fused_code"] = code
            imports.append("_device_dtype_check_for_fused")
        elif opt.mode == "flat":
            ctx.update(self.flat_step())
            code += "\n".join(ctx["flat_hyper"]) + ctx["flat_step"] + ctx["procedures"]
        elif opt.mode == "random":
            ctx["random_step"] = self.random_step()
            code += ctx["random_step"]
        for name in ("_get_value", "_to_scalar", "_view_as_real", "_get_scalar_dtype"):
            if name + "(" in code:
                imports.append(name)
        if ctx["count_states"]:
            imports.append("_get_scalar_dtype")
        if any(a.squeezed for a in opt.arguments):
            imports.append("_to_scalar")
        ctx["kernel_imports"] = _sorted_imports(
            (["CompiledKernel", "amp_skips_step"] if ctx["has_fused"] else [])
            + (["graph_constants"] if opt.mode == "each" else [])
            + [
                n
                for n in ("_device_number", "_flat", "_number_tensor")
                if n + "(" in code
            ]
        )
        ctx["shard_imports"] = _sorted_imports(
            n
            for n, used in (
                ("_copy_all", "_copy_all(" in code),
                ("_is_sharded", ctx["whole_tensor"]),
            )
            if used
        )
        ctx["optimizer_imports"] = _sorted_imports(imports)
        ctx["imports"] = {
            name
            for name, used in (("math", "math." in code), ("cast", "cast(" in code))
            if used
        }
        return ctx

    def render(self) -> str:
        return environment().get_template("optimizer.py.jinja").render(**self.context())


_FLAG_DOCS = {
    "foreach": "whether the foreach (multi-tensor) implementation is used. If unspecified by the "
    "user (so foreach is None), foreach is used on CUDA where it is faster.",
    "foreach explicit": "whether the foreach (multi-tensor) implementation is used; "
    "unspecified (None), the for-loop runs on every device.",
    "maximize": "maximize the objective with respect to the params, instead of minimizing.",
    "capturable": "whether this instance is safe to capture in a graph (CUDA graphs).",
    "differentiable": "whether autograd should occur through the optimizer step in training.",
    "fused": "whether the fused implementation is used.",
}


def _per_parameter(cond) -> bool:
    """A state condition decided per parameter (``dim(param) > 1``), not by hyperparameters."""
    return cond is not None and bool(varying_refs(cond))


def _default(a: ir.Argument) -> str | None:
    return None if a.default is None else literal(a.default)


def _may_be_float(t: ir.ArgType) -> bool:
    return any(_may_be_float(x) for x in t.items) or t.admits(ir.PyType.FLOAT)


def _sorted_imports(names) -> list[str]:
    """Classes, then functions, then the private helpers (isort's order by type)."""
    return sorted(
        set(names), key=lambda n: (n.startswith("_"), not n[:1].isupper(), n.lower())
    )


def _functional_name(opt: ir.Optimizer) -> str:
    """The functional API is named after the module (adam, rmsprop), as in torch.optim."""
    stem = Path(opt.spec_path).stem
    return (
        stem if stem.isidentifier() and not stem.startswith("_") else opt.name.lower()
    )


def _float(text: str) -> str:
    try:
        return repr(float(text))
    except ValueError:
        return f"float({text})"
