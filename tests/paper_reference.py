"""The harness for optimizers from papers: a generated class beside its reference in
``pytorch_optimizer`` (4.x), the independent implementation issue 5 names.

The differential harness is generator.verify's, which `optimgen verify` and the parity tests
share: the problem (``problems.paper_problem``: the parity tests' stepwise problem, four
parameters of several shapes in two param groups, the second with half the learning rate;
gradients ``randn * 10**uniform(-6, 1)``, a fresh draw for every step and parameter; one parameter
without a gradient on steps 0, 4 and 5), the stepping (``harness.run_steps``) and the comparison
(``compare.compare_tensor``, ``finite_only``: a NaN or an infinity is a difference).
``assert_matches_reference`` runs both for ``STEPS`` steps, in float64, and compares every
parameter after every step with a relative tolerance of 1e-10, and the state tensors whose
layouts agree (``state_keys``: generated key → reference key). ``assert_implementations_agree``
holds the generated foreach path (float64) and fused path (float32, one compilation) to its
for-loop. ``assert_same_validation_errors`` checks that bad arguments are refused with the
reference's message. Failures say which step, which tensor and how far apart.

The table of what each paper optimizer is held to is ``paper_optim_db.py``; the tests,
``test_paper_optimizers.py``. The reference class is ``pytorch_optimizer.<name>`` unless a
``reference_name`` is given.
"""

from __future__ import annotations

import copy
import importlib
from typing import Any

import pytest
import torch

from generator.verify.compare import Tolerance, compare_tensor
from generator.verify.harness import run_steps
from generator.verify.problems import paper_problem, seed_draws, stable_seed
from parity import CompareContext, RecordKey

pytorch_optimizer = pytest.importorskip("pytorch_optimizer")

STEPS = 20
RTOL = 1e-10
ATOL = 1e-14  # values are O(1); a looser absolute floor would hide a wrong small update
FUSED_RTOL, FUSED_ATOL = (
    2e-6,
    1e-6,
)  # float32: the kernel's rounding, not the algorithm's
# elementwise |actual - expected| <= atol + rtol * |expected|; a NaN or an infinity on either
# side is a difference (finite_only: the suite's values stay finite, and two NaNs agreeing
# would hide two diverging runs)
TOL = Tolerance(RTOL, atol=ATOL, finite_only=True)
FUSED_TOL = Tolerance(FUSED_RTOL, atol=FUSED_ATOL, finite_only=True)


def generated(module: str, name: str) -> type:
    """The generated class, from its own module (``generated/<module>.py``)."""
    return getattr(importlib.import_module(f"generated.{module}"), name)


def reference(name) -> type:
    """pytorch_optimizer's class of that name; a callable given instead is the reference
    itself (a wrapper around a base optimizer: ``OrthoGrad(torch.optim.Adam, ...)``)."""
    return name if callable(name) else getattr(pytorch_optimizer, name)


def curved(cls) -> bool:
    """Whether the gradients must carry their graph: the generated class of ``cls``'s name
    (``cls`` itself or its reference) differentiates them (AdaHessian's Hessian estimate).
    """
    import generated as package

    twin = getattr(package, cls.__name__, cls)
    return getattr(twin, "requires_create_graph", False)


def run(cls, kwargs, dtype, seed, steps, on_step=None, shapes=None):
    """``steps`` steps of the harness's problem (``shapes``: other parameter shapes), calling
    ``on_step(step, params, opt)`` after each; returns (params, opt). Where the optimizer
    differentiates the gradients, they carry the graph of a quadratic model
    (generator.verify.problems.curved)."""
    problem = (
        paper_problem(dtype, seed, kwargs, curved=curved(cls))
        if shapes is None
        else paper_problem(dtype, seed, kwargs, shapes=shapes, curved=curved(cls))
    )
    # (what an optimizer draws from torch's or numpy's generator, alike on each side: the
    # probes of a Hessian estimate, the start of a power iteration, Kron's balancing)
    seed_draws(seed)
    return run_steps(cls, copy.deepcopy(kwargs), problem, steps, on_step)


class _Context(CompareContext):
    """The suite's comparisons, their messages ``<label>, step <n>: <what> differs ...``;
    what ``record`` names goes to the parity report (conftest prints it)."""

    def where(self, what: str) -> str:
        at = "" if self.step is None else f", step {self.step}"
        return f"{self.label}{at}: {what}"


def close(actual, expected, tol, label, what, step=None, record=None) -> None:
    """``actual`` equals ``expected`` (dtype, shape, then every element) within ``tol``; a
    mismatch names ``label``, ``step`` and ``what``, and the deviation."""
    ctx = _Context(label=label, step=step, tol=tol, record=record)
    compare_tensor(actual, expected, what, ctx, record=record is not None)


def _tensors(v):
    """A state value as the comparison reads it: a tensor (cloned), a list of them (a list
    state; the reference's dict of them, in its order, such as AggMo's buffers keyed by their
    decay rates), or None for anything else."""
    if torch.is_tensor(v):
        return v.detach().clone()
    items = list(v.values()) if isinstance(v, dict) else v
    if isinstance(items, (list, tuple)) and all(map(torch.is_tensor, items)):
        return [x.detach().clone() for x in items]
    return None


def _numbered(state: dict, prefix: str) -> list:
    """The reference's states ``prefix0``, ``prefix1``, ... as one list, in their order ([] for
    a parameter of no dimension, which has none)."""
    keys = [k for k in state if k.startswith(prefix) and k[len(prefix) :].isdigit()]
    return [state[f"{prefix}{j}"] for j in range(len(keys))]


def _shape_of(v) -> str:
    return f"a list of {len(v)} tensors" if isinstance(v, list) else "one tensor"


def assert_matches_reference(
    module: str,
    name: str,
    kwargs: dict[str, Any],
    *,
    state_keys: dict[str, str] | None = None,
    steps: int = STEPS,
    ref_kwargs: dict[str, Any] | None = None,
    reference_name: str | None = None,
    shapes=None,
) -> None:
    """The generated ``name`` equals ``pytorch_optimizer.<name>`` after every step (on
    parameters of ``shapes`` when given, the harness's otherwise)."""
    seed = stable_seed("paper", name, sorted(kwargs.items(), key=str))
    dtype = torch.float64
    label = f"{name}({kwargs})"
    record = RecordKey(name, "vs pytorch_optimizer", "float64", "for-loop")
    gen_cls, ref_cls = generated(module, name), reference(reference_name or name)
    ref_kwargs = kwargs if ref_kwargs is None else ref_kwargs
    snapshots = []
    run(
        ref_cls,
        ref_kwargs,
        dtype,
        seed,
        steps,
        shapes=shapes,
        on_step=lambda step, params, opt: snapshots.append(
            (
                [p.detach().clone() for p in params],
                [
                    {
                        k: _tensors(v)
                        for k, v in opt.state[p].items()
                        if _tensors(v) is not None
                    }
                    for p in params
                ],
            )
        ),
    )

    def check(step, params, opt):
        ref_params, ref_states = snapshots[step]
        for i, (a, e) in enumerate(zip(params, ref_params)):
            # (the deviations seen go to the parity report)
            close(a.detach(), e, TOL, label, f"param #{i}", step, record)
        for ours, theirs in (state_keys or {}).items():
            for i, p in enumerate(params):
                st = opt.state[p]
                if theirs.endswith("*") and ref_states[i]:
                    # the reference's keys pre_cond_0, pre_cond_1, ... as one list
                    ref_states[i][theirs] = _numbered(ref_states[i], theirs[:-1])
                if ours not in st and theirs not in ref_states[i]:
                    continue
                if ours not in st or theirs not in ref_states[i]:
                    raise AssertionError(
                        f"{label}, step {step}, param #{i}: state {ours!r} present "
                        f"{ours in st}, reference {theirs!r} present {theirs in ref_states[i]}"
                    )
                mine, reference_state = _tensors(st[ours]), ref_states[i][theirs]
                if isinstance(mine, list) != isinstance(reference_state, list) or (
                    isinstance(mine, list) and len(mine) != len(reference_state)
                ):
                    raise AssertionError(
                        f"{label}, step {step}, param #{i}: state {ours!r} holds "
                        f"{_shape_of(mine)}, the reference's {theirs!r} "
                        f"{_shape_of(reference_state)}"
                    )
                pairs = (
                    list(enumerate(zip(mine, reference_state)))
                    if isinstance(mine, list)
                    else [(None, (mine, reference_state))]
                )
                for k, (a, e) in pairs:
                    close(
                        a.to(e.dtype).reshape(e.shape),
                        e,
                        TOL,
                        label,
                        f"param #{i}, state {ours!r}" + ("" if k is None else f"[{k}]"),
                        step,
                    )

    run(gen_cls, kwargs, dtype, seed, steps, check, shapes=shapes)


def assert_implementations_agree(
    module: str, name: str, kwargs: dict[str, Any], *, fused: bool = True
) -> None:
    """foreach (float64) and fused (float32) equal the generated for-loop at every step."""
    cls = generated(module, name)
    seed = stable_seed("paper-impls", name)
    impls = [("foreach", torch.float64, TOL)]
    if fused:
        impls.append(("fused", torch.float32, FUSED_TOL))
    for impl, dtype, tol in impls:
        loop = []
        run(
            cls,
            {**kwargs, "foreach": False},
            dtype,
            seed,
            STEPS,
            lambda step, params, opt: loop.append([p.detach().clone() for p in params]),
        )

        def check(step, params, opt):
            for i, (a, e) in enumerate(zip(params, loop[step])):
                close(a.detach(), e, tol, f"{name} {impl}", f"param #{i}", step)

        run(cls, {**kwargs, impl: True}, dtype, seed, STEPS, check)


def assert_same_validation_errors(
    module: str,
    name: str,
    bad: list[dict[str, Any]],
    *,
    reference_name: str | None = None,
) -> None:
    """Each set of bad arguments is refused by both, with the same message."""
    gen_cls, ref_cls = generated(module, name), reference(reference_name or name)
    for kwargs in bad:
        messages = []
        for who, cls in (("the reference", ref_cls), ("the generated class", gen_cls)):
            try:
                cls([torch.zeros(2, requires_grad=True)], **kwargs)
            except Exception as error:  # any refusal: its message is compared
                messages.append(str(error))
            else:
                raise AssertionError(f"{name}({kwargs}): {who} accepted it")
        assert (
            messages[1] == messages[0]
        ), f"{name}({kwargs}): {messages[1]!r}, reference {messages[0]!r}"


POLICY_ARGS = ("state_dtype", "compute_dtype", "param_rounding", "rounding_seed")


SCHEDULE_PROBES = (1, 2, 7, 20)


def assert_same_signature(
    module: str,
    name: str,
    extensions=("fused",) + POLICY_ARGS,
    *,
    reference_name: str | None = None,
    schedules: dict[str, str] | None = None,
    group_options: tuple[str, ...] = (),
) -> None:
    """Same arguments, order and defaults as the reference (its ``**kwargs`` aside); the
    generated class may add keyword-only ``extensions`` after them (``fused``, and the
    precision policy every generated optimizer takes).

    ``schedules``: arguments whose default the generated class writes as an expression in
    ``step`` (the value here) and the reference as a callable, equal to it at
    ``SCHEDULE_PROBES``; ``group_options``: keyword arguments of the generated class that
    the reference reads from a param group (its ``**kwargs``)."""
    import inspect

    def args(cls):
        return [
            (p.name, p.default)
            for p in inspect.signature(cls.__init__).parameters.values()
            if p.kind is not inspect.Parameter.VAR_KEYWORD and p.name != "self"
        ]

    ours = [
        a
        for a in args(generated(module, name))
        if a[0] not in extensions + group_options
    ]
    theirs = args(reference(reference_name or name))
    names, ref_names = [n for n, _ in ours], [n for n, _ in theirs]
    assert (
        names == ref_names
    ), f"{name}: arguments {names}, reference {ref_names} (in this order)"
    for (arg, default), (_, ref_default) in zip(ours, theirs):
        expr = (schedules or {}).get(arg)
        if expr is None:
            assert (
                default == ref_default
            ), f"{name}: {arg}={default!r} by default, reference {ref_default!r}"
            continue
        assert (
            default == expr
        ), f"{name}: {arg}={default!r} by default, expected the schedule {expr!r}"
        got = [ref_default(t) for t in SCHEDULE_PROBES]
        want = [
            eval(expr, {"step": t}) for t in SCHEDULE_PROBES
        ]  # table data, not input
        assert got == want, (
            f"{name}: the reference's default {arg} gives {got} at steps "
            f"{list(SCHEDULE_PROBES)}, {expr!r} gives {want}"
        )
