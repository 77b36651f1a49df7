"""The harness for optimizers from papers: a generated class beside its reference in
``pytorch_optimizer`` (4.x), the independent implementation issue 5 names.

``assert_matches_reference`` runs both for ``STEPS`` steps on the problem of ``parity`` (four
parameters of several shapes in two param groups, the second with half the learning rate;
gradients ``randn * 10**uniform(-6, 1)``, a fresh draw for every step and parameter; one parameter
without a gradient on steps 0, 4 and 5), in float64, and compares every parameter after every
step with a relative tolerance of 1e-10, and the state tensors whose layouts agree
(``state_keys``: generated key → reference key). ``assert_implementations_agree`` holds the
generated foreach path (float64) and fused path (float32, one compilation) to its for-loop.
``assert_same_validation_errors`` checks that bad arguments are refused with the reference's
message. Failures say which step, which tensor and how far apart.

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

from generator.verify.problems import (
    clone_params,
    gradients_for_step,
    make_initial_params,
    stable_seed,
)
from parity import RecordKey, record_deviation

pytorch_optimizer = pytest.importorskip("pytorch_optimizer")

STEPS = 20
RTOL = 1e-10
ATOL = 1e-14  # values are O(1); a looser absolute floor would hide a wrong small update
FUSED_RTOL, FUSED_ATOL = (
    2e-6,
    1e-6,
)  # float32: the kernel's rounding, not the algorithm's


def generated(module: str, name: str) -> type:
    """The generated class, from its own module (``generated/<module>.py``)."""
    return getattr(importlib.import_module(f"generated.{module}"), name)


def reference(name: str) -> type:
    return getattr(pytorch_optimizer, name)


def _groups(params, kwargs):
    second = {}
    lr = kwargs.get("lr")
    if isinstance(lr, float):
        second["lr"] = lr * 0.5
    return [{"params": params[:2]}, {"params": params[2:], **second}]


def _run(cls, kwargs, dtype, seed, steps, on_step=None, shapes=None):
    """``steps`` steps of the harness's problem (``shapes``: other parameter shapes)."""
    initial = (
        make_initial_params(dtype, seed)
        if shapes is None
        else make_initial_params(dtype, seed, shapes=shapes)
    )
    params = clone_params(initial)
    opt = cls(_groups(params, kwargs), **copy.deepcopy(kwargs))
    for step in range(steps):
        grads = gradients_for_step(step, params, seed)
        for p, g in zip(params, grads):
            p.grad = None if g is None else g.clone()
        opt.step()
        if on_step is not None:
            on_step(step, params, opt)
    return params, opt


def _close(actual, expected, rtol, atol, what):
    if actual.shape != expected.shape or actual.dtype != expected.dtype:
        raise AssertionError(
            f"{what}: {tuple(actual.shape)} {actual.dtype}, expected "
            f"{tuple(expected.shape)} {expected.dtype}"
        )
    diff = (actual - expected).abs()
    bound = atol + rtol * expected.abs()
    bad = ~(diff <= bound)
    if bad.any():
        k = int(bad.flatten().nonzero()[0])
        raise AssertionError(
            f"{what}: {int(bad.sum())} of {diff.numel()} elements differ; first at flat index "
            f"{k}: {actual.flatten()[k].item()!r} vs {expected.flatten()[k].item()!r}; "
            f"max abs diff {diff.max().item():.3e} (rtol {rtol:g}, atol {atol:g})"
        )


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
    gen_cls, ref_cls = generated(module, name), reference(reference_name or name)
    ref_kwargs = kwargs if ref_kwargs is None else ref_kwargs
    snapshots = []
    _run(
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
                        k: v.clone()
                        for k, v in opt.state[p].items()
                        if torch.is_tensor(v)
                    }
                    for p in params
                ],
            )
        ),
    )

    def check(step, params, opt):
        ref_params, ref_states = snapshots[step]
        for i, (a, e) in enumerate(zip(params, ref_params)):
            _close(a.detach(), e, RTOL, ATOL, f"{label}, step {step}, param #{i}")
            # the deviations seen, for the parity report (conftest prints it)
            diff = (a.detach() - e).abs()
            record_deviation(
                RecordKey(name, "vs pytorch_optimizer", "float64", "for-loop"),
                diff.max().item(),
                (diff / e.abs().clamp_min(1e-300)).max().item(),
            )
        for ours, theirs in (state_keys or {}).items():
            for i, p in enumerate(params):
                st = opt.state[p]
                if ours not in st and theirs not in ref_states[i]:
                    continue
                if ours not in st or theirs not in ref_states[i]:
                    raise AssertionError(
                        f"{label}, step {step}, param #{i}: state {ours!r} present "
                        f"{ours in st}, reference {theirs!r} present {theirs in ref_states[i]}"
                    )
                _close(
                    st[ours]
                    .to(ref_states[i][theirs].dtype)
                    .reshape(ref_states[i][theirs].shape),
                    ref_states[i][theirs],
                    RTOL,
                    ATOL,
                    f"{label}, step {step}, param #{i}, state {ours!r}",
                )

    _run(gen_cls, kwargs, dtype, seed, steps, check, shapes=shapes)


def assert_implementations_agree(
    module: str, name: str, kwargs: dict[str, Any], *, fused: bool = True
) -> None:
    """foreach (float64) and fused (float32) equal the generated for-loop at every step."""
    cls = generated(module, name)
    seed = stable_seed("paper-impls", name)
    impls = [("foreach", torch.float64, RTOL, ATOL)]
    if fused:
        impls.append(("fused", torch.float32, FUSED_RTOL, FUSED_ATOL))
    for impl, dtype, rtol, atol in impls:
        loop = []
        _run(
            cls,
            {**kwargs, "foreach": False},
            dtype,
            seed,
            STEPS,
            lambda step, params, opt: loop.append([p.detach().clone() for p in params]),
        )

        def check(step, params, opt):
            for i, (a, e) in enumerate(zip(params, loop[step])):
                _close(
                    a.detach(), e, rtol, atol, f"{name} {impl}, step {step}, param #{i}"
                )

        _run(cls, {**kwargs, impl: True}, dtype, seed, STEPS, check)


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
) -> None:
    """Same arguments, order and defaults as the reference (its ``**kwargs`` aside); the
    generated class may add keyword-only ``extensions`` after them (``fused``, and the
    precision policy every generated optimizer takes).

    ``schedules``: arguments whose default the generated class writes as an expression in
    ``step`` (the value here) and the reference as a callable, equal to it at
    ``SCHEDULE_PROBES``."""
    import inspect

    def args(cls):
        return [
            (p.name, p.default)
            for p in inspect.signature(cls.__init__).parameters.values()
            if p.kind is not inspect.Parameter.VAR_KEYWORD and p.name != "self"
        ]

    ours = [a for a in args(generated(module, name)) if a[0] not in extensions]
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
