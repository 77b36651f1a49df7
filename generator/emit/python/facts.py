"""What every part of an optimizer module reads of the lowered IR, and the helpers they share.

The emit step (language → check → lower → emit) renders one optimizer module from the lowered
IR (generator.emit.python.module). Each part of it — the constructor (constructor), the state of
``_init_group`` (state), the group and optimizer blocks (group), the functional bodies (bodies)
and the fused path's host loop (fused_host) — reads one ``ModuleFacts``: the optimizer, its
arguments by name and by spec symbol, its counters by scope, its per-parameter states, the lists
the functional receives, how a step reads a hyperparameter from its param group, and the
``Imports`` where each part records a name from elsewhere as it prints it (one record for the
module, its later passes included). The small helpers several parts share (a counter read before
its update, a state condition decided per parameter, the functional's name, a docstring's literal)
live here too.
"""

from __future__ import annotations

from pathlib import Path

from generator import ir
from generator.ir import uses
from generator.check.model import CheckedSpec
from generator.language.diagnostics import GeneratorBug
from generator.emit.python.blocks import Imports
from generator.emit.python.scalars import varying_refs
from generator.emit.python.validation import parameter_printer


class ModuleFacts:
    """One optimizer's IR and the tables its module's parts look names up in."""

    def __init__(
        self,
        opt: ir.Optimizer,
        checked: CheckedSpec,
        several_passes: bool = False,
        imports: Imports | None = None,
    ):
        self.opt = opt
        self.checked = checked
        # the module's record (a later pass's parts print into their module)
        self.imports = Imports() if imports is None else imports
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
        self.let_names = frozenset(v.name for v in opt.parameter_values)
        self.group_scalar = parameter_printer(self.group_ref, self.imports)
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

    def group_ref(self, r: ir.SRef) -> str:
        """How a step reads a hyperparameter or a group counter: ``group["lr"]``."""
        if r.name in self.group_counts:
            return f'group["{r.name}"]'
        if r.name in self.let_names:  # (computed before the states are made)
            return r.name
        if r.name in self.sym_arg:
            a, k = self.sym_arg[r.name]
            # torch's Adagrad starts every accumulator from the constructor's value.
            where = "self.defaults" if a.constructor else "group"
            value = f'{where}["{a.name}"]' + (f"[{k}]" if k is not None else "")
            if not a.tensor_ok:
                return value
            # a 1-element tensor of any shape reads as a 0-d one (torch's _to_scalar)
            self.imports.need("_to_scalar")
            return f"_to_scalar({value})"
        raise GeneratorBug(f"`{r.name}` is not a hyperparameter")

    def param_states(self):
        if (
            self.opt.mode == "flat"
        ):  # one state for all parameters (generator.emit.python.flat)
            return []
        return [s for s in self.opt.states if s.scope == "parameter"]

    def tensor_states(self) -> list[ir.StateBuffer]:
        """The states a precision policy may store in another dtype: tensors, not counters
        nor lists (a list state's tensors stay in the parameter's dtype)."""
        return [
            s for s in self.param_states() if s.kind == "tensor" and s.length is None
        ]

    def list_state_lists(self) -> set[str]:
        """The functional's lists that hold a list state (a list of tensors per parameter)."""
        return {s.list_name for s in self.param_states() if s.length is not None}

    def group_lists(self) -> list[str]:
        st = self.param_states()
        return (
            ["params", "grads"]
            + [s.list_name for s in st if s.kind == "tensor"]
            + [s.list_name for s in st if s.kind == "count"]
        )


def per_parameter(cond) -> bool:
    """A state condition decided per parameter (``dim(param) > 1``), not by hyperparameters."""
    return cond is not None and bool(varying_refs(cond))


def reads_count_before_update(stmts, key: str) -> bool:
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


def functional_name(opt: ir.Optimizer) -> str:
    """The functional API is named after the module (adam, rmsprop), as in torch.optim."""
    stem = Path(opt.spec_path).stem
    return (
        stem if stem.isidentifier() and not stem.startswith("_") else opt.name.lower()
    )


def float_source(text: str) -> str:
    try:
        return repr(float(text))
    except ValueError:
        return f"float({text})"


def pydoc_string(text: str) -> str:
    if '"""' in text or text.endswith("\\") or "\r" in text:
        return repr(text)
    return 'r"""' + text + '"""'


def real_view(var: str, listed: bool = False) -> str:
    """``var = torch.view_as_real(var)``: a complex tensor updated through its real view; a
    list state (``listed``) through each of its tensors'."""
    if listed:
        return f"{var} = [torch.view_as_real(x) for x in {var}]"
    return f"{var} = torch.view_as_real({var})"
