"""The fused path (torch's fused four: SGD, Adam, AdamW, Adagrad): one compiled kernel per
configuration, dtype and device — not per shape, not per learning rate — and torch's errors.

Its numbers are checked against the for-loop in test_torch_parity.py (every optim_db config).
"""

from __future__ import annotations

import pytest
import torch
from torch._dynamo.utils import counters

from generator.verify.compare import call_capturing
from parity import generated_class, torch_class

FUSED_NAMES = ("SGD", "Adam", "AdamW", "Adagrad")


def _params():
    # ranks 1, 2 and 3, and a non-contiguous one (a transposed view): the kernel takes
    # contiguous tensors flat, the others as they are
    base = torch.randn(6, 5)
    return [
        torch.nn.Parameter(torch.randn(7)),
        torch.nn.Parameter(torch.randn(4, 3)),
        torch.nn.Parameter(torch.randn(2, 3, 4)),
        torch.nn.Parameter(base.t()),
    ]


@pytest.mark.parametrize("name", FUSED_NAMES)
def test_fused_compiles_once_for_all_shapes_and_learning_rates(name):
    torch._dynamo.reset()
    counters.clear()
    params = _params()
    reference = [torch.nn.Parameter(p.detach().clone()) for p in params]
    opt = generated_class(name)(params, lr=0.01, fused=True)
    loop = generated_class(name)(reference, lr=0.01, foreach=False)
    for step in range(4):
        for o in (opt, loop):
            for g in o.param_groups:
                g["lr"] = 0.01 / (step + 1)  # a scheduler's work: no recompilation
        for p, q in zip(params, reference):
            g = torch.randn_like(p)
            p.grad, q.grad = g.clone(), g.clone()
        opt.step()
        loop.step()
    graphs = counters["stats"]["unique_graphs"]
    # one graph for the contiguous (flat) tensors, one for the transposed one
    assert graphs <= 2, f"{name}(fused=True) compiled {graphs} graphs for 4 steps"
    for p, q in zip(params, reference):
        torch.testing.assert_close(p, q, rtol=1e-6, atol=1e-6 * q.abs().max().item())
    torch._dynamo.reset()


@pytest.mark.parametrize("name", FUSED_NAMES)
@pytest.mark.parametrize("flag", ["foreach", "differentiable"])
def test_fused_refuses_foreach_and_differentiable_like_torch(name, flag):
    outcomes = []
    for cls in (torch_class(name), generated_class(name)):
        p = torch.nn.Parameter(torch.randn(3))
        outcomes.append(call_capturing(lambda: cls([p], fused=True, **{flag: True}))[1])
    expected, actual = outcomes
    assert type(actual) is type(expected) and str(actual) == str(expected)


@pytest.mark.parametrize("name", FUSED_NAMES)
def test_fused_refuses_complex_parameters_like_torch(name):
    outcomes = []
    for cls in (torch_class(name), generated_class(name)):
        p = torch.nn.Parameter(torch.randn(3, dtype=torch.complex64))
        p.grad = torch.randn_like(p)
        opt = cls([p], lr=0.1, fused=True)
        outcomes.append(call_capturing(opt.step)[1])
    expected, actual = outcomes
    assert expected is not None
    assert type(actual) is type(expected) and str(actual) == str(expected)


def test_the_twins_with_a_fused_path_are_the_ones_the_suite_expects():
    """parity.FUSED_GENERATED / FUSED_EXTENSION drive the fused parity cases: they must be the
    twins whose generated class takes `fused` (and, for the extension, whose torch class
    does not), so that a spec losing or gaining `fused` cannot slip past the suite."""
    from generator.verify.harness import accepts_kwarg
    from parity import FUSED_EXTENSION, FUSED_GENERATED, TWIN_NAMES

    takes = {n for n in TWIN_NAMES if accepts_kwarg(generated_class(n), "fused")}
    assert takes == FUSED_GENERATED
    assert {n for n in takes if not accepts_kwarg(torch_class(n), "fused")} == (
        FUSED_EXTENSION
    )


def _accelerator_path_on_cpu(name):
    """The generated module of ``name`` with its accelerator branch of ``_fused_*`` (the
    multi-tensor path compiled whole) taken on CPU too: CI has no GPU, and the branch is
    device-independent code."""
    import sys
    import types

    module = sys.modules[generated_class(name).__module__]
    source = open(module.__file__, encoding="utf-8").read()
    branch = "if params and not params[0].is_cpu:"
    assert source.count(branch) == 1, f"{module.__file__}: no accelerator branch"
    copy = types.ModuleType(module.__name__ + "_on_cpu")
    copy.__file__ = module.__file__
    exec(
        compile(source.replace(branch, "if params:"), module.__file__, "exec"),
        copy.__dict__,
    )
    return getattr(copy, name)


@pytest.mark.parametrize(
    "name,configs",
    [
        # AdamW: a new lr and weight_decay after the first compile (dynamo's dynamic floats
        # once kept a stale `1 - lr * weight_decay`); SGD: a tensor lr folded into alpha=
        ("AdamW", [{}, {"lr": 0.01}, {"lr": 0.003, "weight_decay": 0.1}]),
        ("SGD", [{"momentum": 0.9}, {"lr": 0.01, "momentum": 0.5, "nesterov": True}]),
    ],
)
def test_accelerator_fused_path_matches_the_for_loop_across_hyperparameters(
    name, configs
):
    fused_cls = _accelerator_path_on_cpu(name)
    for config in configs:
        params = _params()
        reference = [torch.nn.Parameter(p.detach().clone()) for p in params]
        opt = fused_cls(params, fused=True, **config)
        loop = generated_class(name)(reference, foreach=False, **config)
        for step in range(4):
            for p, q in zip(params, reference):
                g = torch.randn_like(p)
                p.grad, q.grad = g.clone(), g.clone()
            opt.step()
            loop.step()
        for i, (p, q) in enumerate(zip(params, reference)):
            torch.testing.assert_close(
                p,
                q,
                rtol=1.3e-6,
                atol=1e-5,
                msg=lambda m: f"{name}{config}, param {i}, after 4 steps: {m}",
            )


@pytest.mark.parametrize(
    "body, line",
    [
        # nested in a branch: the statement that reads the number, not the branch
        (
            "    if wd != 0:\n        s <- item(norm(grad))\n"
            "        param <- param * (1 - wd * s)\n",
            8,
        ),
        (
            "    k <- 0\n    repeat n:\n        k <- k + 1\n"
            "    param <- param * (1 - wd * k)\n",
            8,
        ),
    ],
    ids=["number_read_off_a_tensor", "repeat_over_numbers"],
)
def test_fused_is_refused_at_the_statement_the_kernel_cannot_hold(body, line):
    from generator.api import check_text
    from generator.language.diagnostics import SpecError

    spec = (
        "optimizer X\ninput lr: float = 0.1\ninput wd: float = 0\ninput n: int = 2\n"
        "input fused: bool? = none, keyword\nupdate:\n"
        + body
        + "    param <- param - lr * n * grad\n"
    )
    with pytest.raises(SpecError) as info:
        check_text(spec)
    (d,) = info.value.diagnostics
    assert (d.code, d.span.line) == ("E326", line), d
    assert [n.span.line for n in d.notes] == [5], "the note names the fused input"


ZERO_D_KEPT_SHAPES = """\
optimizer ZeroD
input lr: float = 0.1
input b0: float = 0.9
input fused: bool? = none, keyword
check not is_complex(param) else "real parameters only"
state s0 (s0) <- param
state sr (sr) <- 0 if dim(param) > 1, reduced over -1
state group n (n): count <- 0
update group:
    n <- n + 1
update:
    s0 <- lerp(s0, n * grad, b0)
    x <- s0 * 0.5
    if dim(param) > 1:
        sr <- lerp(sr, mean(grad^2, -1), 0.1)
        x <- x / (sqrt(sr) + 1)
    param <- param - lr * x
"""


def test_a_0d_float32_parameter_runs_the_kernel_that_keeps_shapes_in_float32():
    """A kernel that keeps its tensors' shapes (a state reduced along a dimension) took a 0-d
    parameter as it is: beside 0-d tensors only, its numbers (0-d float64 tensors) carried the
    arithmetic to float64, and `lerp` refused them (RuntimeError: expected dtype float).
    """
    from generator import load_spec
    from generator.runtime.kernels import eager_kernels
    import warnings

    cls = load_spec(ZERO_D_KEPT_SHAPES)
    results = {}
    for impl, flags in (("for-loop", {}), ("fused", {"fused": True})):
        gen = torch.Generator().manual_seed(0)
        params = [
            torch.randn(s, generator=gen).requires_grad_() for s in [(), (3, 2), (4,)]
        ]
        opt = cls(params, **flags)
        for _ in range(3):
            for p in params:
                p.grad = torch.randn(p.shape, generator=gen)
            with eager_kernels(), warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                opt.step()
        results[impl] = [p.detach().clone() for p in params]
    for k, (a, b) in enumerate(zip(results["fused"], results["for-loop"])):
        # (within float32 rounding: the kernel folds the arithmetic its own way)
        torch.testing.assert_close(
            a, b, msg=lambda m: f"parameter {k} of shape {tuple(a.shape)}: {m}"
        )
