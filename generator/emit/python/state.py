"""The per-parameter state as Python: how ``_init_group`` makes, collects and stores it.

A part of rendering one module (generator.emit.python.module) from the lowered IR. A state with a
first value is made when a parameter is first seen (zeros, a constant, a copy of the parameter, a
reduced shape), under the condition the spec gives it; a counter is a tensor (on the parameter's
device where capturable or fused asks for it) or a plain number. Each step collects the states
into the lists the functional receives, and stores back the states the step made lazily and the
counters kept as numbers. The precision policy (generator.runtime.precision) learns which lists
hold which state, and the dtype a spec stores each in.
"""

from __future__ import annotations

from generator import ir
from generator.emit.python.blocks import Lines
from generator.emit.python.validation import parameter_printer
from generator.emit.python.facts import ModuleFacts, float_source, per_parameter
from generator.language.builtins import BUILTINS


def state_context(facts: ModuleFacts) -> dict:
    """The template's entries for the states: ``_init_group``, loading, storing, precision."""
    states = facts.param_states()
    return dict(
        eager_states=any(s.eager for s in states),
        count_states=[
            (s.key, count_tensor(facts, s, f'float(p_state["{s.key}"])', "group"))
            for s in states
            if s.kind == "count" and not s.as_number
        ],
        # counters kept in the scalar dtype through a load (torch's load keeps `step` so),
        # and the states made in a dtype of their own (`, dtype NAME`)
        loaded_counters=repr(
            tuple(
                s.key
                for s in states
                if (s.kind == "count" and not s.as_number and s.key != "step")
                or s.dtype is not None
            )
        ),
        init_state=init_state(facts),
        fresh_state=fresh_state(facts),
        requires_create_graph=bool(_estimated(facts)),
        group_lists=facts.group_lists(),
        # a list state's list holds a list of tensors of each parameter
        list_types={
            n: "list[list[Tensor]]" if n in facts.list_state_lists() else "list[Tensor]"
            for n in facts.group_lists()
        },
        collect_state=collect_state(facts),
        capturable_counts=next(
            (s.list_name for s in states if s.kind == "count" and not s.as_number),
            "params",
        ),
        store_lazy=store_lazy(facts),
        # (a transient state holds a copy for the step, in the parameter's dtype: SAM's old_p,
        # which a policy storing it narrower would not put back as it was)
        tensor_state_keys=tuple(
            s.key for s in facts.tensor_states() if not s.transient
        ),
        declared_dtypes="{"
        + ", ".join(
            f'"{s.key}": torch.{s.stored_as}'
            for s in facts.tensor_states()
            if s.stored_as
        )
        + "}",
        precision_keys=precision_keys(facts),
    )


def precision_keys(facts: ModuleFacts) -> list[str | None]:
    """What each list of the functional holds, for ``Precision.chunks``: a list state's too
    (its tensors are computed in the compute dtype, each stored back into its own)."""
    keys = {s.list_name: s.key for s in facts.tensor_states()}
    keys.update(
        (s.list_name, s.key) for s in facts.param_states() if s.length is not None
    )
    return [
        "param" if n == "params" else "grad" if n == "grads" else keys.get(n)
        for n in facts.group_lists()
    ]


def fresh_state(facts: ModuleFacts) -> str:
    """The test that a parameter's state has not been made yet: torch's ``len(state) == 0``,
    or, where the optimizer's block makes a state of every parameter before the groups step
    (an estimate, AdaHessian's ``hessian``), the absence of the first state made here.
    """
    estimates = _estimated(facts)
    if not estimates:
        return "len(state) == 0"
    made = [s for s in facts.param_states() if s.init is not None]
    first = next((s for s in made if s.condition is None), None)
    if first is not None:
        return f'"{first.key}" not in state'
    # (every state made here under a condition: none of them yet, only estimates)
    return f"state.keys() <= {{{', '.join(repr(k) for k in sorted(estimates))}}}"


def init_state(facts: ModuleFacts) -> str:
    out = Lines()
    for v in facts.opt.parameter_values:  # (`let`: what the states are made from)
        out(f"{v.name} = {facts.group_scalar(v.value)}")
    made = [s for s in facts.param_states() if s.init is not None]
    for k, s in enumerate(made):
        # states made under one condition share one `if`
        guard = s.condition is not None
        opens = guard and (k == 0 or made[k - 1].condition != s.condition)
        if opens:
            out(f"if {facts.group_scalar(s.condition)}:")
        if guard:
            out.level += 1
        if s.item_var is not None:
            # a list made for each k: `[torch.eye(p.size(k), ...) for k in range(p.dim())]`
            out(
                f'state["{s.key}"] = [{_made_of_shape(facts, s)} '
                f"for {s.item_var} in range({facts.group_scalar(s.length)})]"
            )
        elif s.length is not None:
            # a list state: `length` tensors, each made as a state of that first value is
            out(
                f'state["{s.key}"] = [{_made_like_p(facts, s, out)} '
                f"for _ in range({facts.group_scalar(s.length)})]"
            )
        elif s.shape is not None:
            out(f'state["{s.key}"] = {_made_of_shape(facts, s)}')
        elif s.kind == "count" and s.as_number:
            out(f'state["{s.key}"] = {facts.group_scalar(s.init)}')
        elif s.kind == "count":
            value = float_source(facts.group_scalar(s.init))
            out(f'state["{s.key}"] = {count_tensor(facts, s, value, "group")}')
        elif s.reduced is not None:
            value = facts.group_scalar(s.init)
            shape = f"{s.key}_shape"
            out(f"{shape} = list(p.shape)")
            out(f"{shape}[{s.reduced}] = 1")
            make = (
                f"p.new_zeros({shape})"
                if value in ("0", "0.0")
                else f"p.new_full({shape}, {value})"
            )
            out(f'state["{s.key}"] = {make}')
        else:
            out(f'state["{s.key}"] = {_made_like_p(facts, s, out)}')
        if guard:
            out.level -= 1
    return out.text()


def _made_of_shape(facts: ModuleFacts, s: ir.State) -> str:
    """A tensor of its own shape (``torch.eye(p.size(0), ...)``) on the parameter's device, in
    its dtype: the identity (times the value), or the value everywhere."""
    scalar = facts.group_scalar
    if (
        s.item_var is not None
    ):  # (the variable of a list made for each k is read as itself)
        scalar = parameter_printer(
            lambda r: r.name if r.name == s.item_var else facts.group_ref(r),
            facts.imports,
        )
    dims = [scalar(d) for d in s.shape]
    value = scalar(s.init)
    dtype = _dtype(facts, s)
    where = f"dtype={dtype}, device=p.device"
    if s.column_major:
        # (made with its dimensions in reverse order and viewed transposed: stored column
        # by column, as LAPACK returns eigh's and qr's factors)
        size = "(" + ", ".join(reversed(dims)) + ")"
        made = (
            f"torch.eye({dims[0]}, {where})"
            if s.constructor == "eye"
            else (
                f"torch.full({size}, {value}, {where})"
                if value not in ("0", "0.0")
                else f"torch.zeros({size}, {where})"
            )
        )
        if s.constructor == "eye" and value not in ("1", "1.0"):
            made += f".mul_({value})"
        return f"{made}.mT"
    op = BUILTINS[s.constructor].tensor
    if op is not None:  # (zeros_along: a function of the runtime, of the parameter)
        facts.imports.need(op.runtime)
        made = f"{op.runtime}(p, {', '.join(dims)}" + (
            f", dtype={dtype})" if s.dtype else ")"
        )
        # (zeros_along's value is 0 whatever the factor: the lowering says so)
        return made if value in ("0", "0.0", "1", "1.0") else f"{made}.mul_({value})"
    if s.constructor == "eye":
        made = f"torch.eye({dims[0]}, {where})"
        return made if value in ("1", "1.0") else f"{made}.mul_({value})"
    size = "(" + ", ".join(dims) + ("," if len(dims) == 1 else "") + ")"
    if value in ("0", "0.0"):
        return f"torch.zeros({size}, {where})"
    return f"torch.full({size}, {value}, {where})"


def _dtype(facts: ModuleFacts, s: ir.State) -> str:
    """The dtype a state is made in: the parameter's, or the one its `dtype` input holds
    (``group["mu_dtype"] or p.dtype``: none there is the parameter's)."""
    if s.dtype is None:
        return "p.dtype"
    return f"{facts.group_ref(ir.SRef(s.dtype))} or p.dtype"


def _made_like_p(facts: ModuleFacts, s: ir.State, out: Lines) -> str:
    """A new tensor shaped like the parameter ``p``, of first value ``s.init`` (a number, or
    the parameter itself: a copy), in the state's dtype; a number other than 0 is written to
    ``out`` first (complex parameters start from ``value + value·i``, as torch's Adagrad's
    do)."""
    init = s.init
    dtype = "" if s.dtype is None else f"dtype={_dtype(facts, s)}, "
    if init == ir.SRef("grad"):  # (the raw gradient the state is made with)
        made = "p.grad.detach().clone(memory_format=torch.preserve_format)"
        return made if not dtype else f"{made}.to({_dtype(facts, s)})"
    if init == ir.SRef("param"):
        made = "p.detach().clone(memory_format=torch.preserve_format)"
        return made if not dtype else f"{made}.to({_dtype(facts, s)})"
    value = facts.group_scalar(init)
    if value in ("0", "0.0"):
        return f"torch.zeros_like(p, {dtype}memory_format=torch.preserve_format)"
    out(f"init_value = (complex({value}, {value}) if torch.is_complex(p) else {value})")
    return f"torch.full_like(p, init_value, {dtype}memory_format=torch.preserve_format)"


def collect_state(facts: ModuleFacts) -> str:
    out = Lines()
    st = facts.param_states()
    for s in [s for s in st if s.kind == "tensor"] + [
        s for s in st if s.kind == "count"
    ]:
        if per_parameter(s.condition):
            # the list keeps one entry per parameter; None where the state does not apply
            out(f'{s.list_name}.append(state.get("{s.key}"))')
            continue
        guard = s.condition is not None
        if guard:
            out(f"if {facts.group_scalar(s.condition)}:")
            out.level += 1
        if s.init is None:
            out(
                f'{s.list_name}.append(state.get("{s.key}"))'
                if _has_eager_or_init(facts)
                else f'{s.list_name}.append(self.state[p].get("{s.key}"))'
            )
        else:
            out(f'{s.list_name}.append(state["{s.key}"])')
        if guard:
            out.level -= 1
    return out.text()


def count_tensor(facts: ModuleFacts, s: ir.State, value: str, group: str) -> str:
    """A new counter tensor. On the parameter's device where the spec says so, or where
    capturable=True or fused=True asks for it (torch's note "special device hosting for
    step"), in float32 for fused as torch's fused kernels take it; else a CPU scalar.
    """
    facts.imports.need("_get_scalar_dtype")
    cpu = f"torch.tensor({value}, dtype=_get_scalar_dtype())"
    if s.on_device:
        return f"torch.tensor({value}, dtype=_get_scalar_dtype(), device=p.device)"
    flags = [f for f in ("capturable", "fused") if f in facts.args]
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


def _has_eager_or_init(facts: ModuleFacts) -> bool:
    return any(s.init is not None for s in facts.param_states())


def _estimated(facts: ModuleFacts) -> set[str]:
    """The keys of the states the optimizer's block makes for every parameter (estimates)."""
    return {
        s.state
        for p in (facts.opt, *facts.opt.later_passes)
        for s in ir.walk(p.step_block)
        if isinstance(s, ir.Estimate)
    }


def store_lazy(facts: ModuleFacts) -> str:
    out = Lines()
    # (an estimate is made in the state by the runtime, and the update only reads it)
    estimated = _estimated(facts)
    for s in facts.param_states():
        if s.key in estimated:
            continue
        if s.as_number:  # numbers are values, not tensors updated in place
            out(f"for p, value in zip(params, {s.list_name}, strict=True):")
            with out.indent():
                out(f'self.state[p]["{s.key}"] = value')
            continue
        if s.init is not None:
            continue
        guard = s.condition is not None
        if guard:
            out(f"if {facts.group_scalar(s.condition)}:")
            out.level += 1
        out(f"for p, buf in zip(params, {s.list_name}, strict=True):")
        with out.indent():
            out(f'self.state[p]["{s.key}"] = buf')
        if guard:
            out.level -= 1
    return out.text()
