"""Specs that build must run on every path they declare: regressions of the four generator bugs a new
user hit in specs that built cleanly (issue 17), each run on the for-loop, foreach and fused paths
and held to a computation written here, plus the fused kernel's fallback when torch.compile
refuses a configuration.

1. a local reassigned inside nested per-parameter (shape) branches: the foreach path read a list it
   had never made (`UnboundLocalError: device_g_2`), or lost values a nested branch did not set;
2. an optimizer-level counter whose first value is an input: `NameError: start` at the first step;
3. `c <- 0 if c > 10 else c + 1` in `update optimizer:` read the counter before binding it;
4. a state reset to a constant (`m <- 0`) stopped the build: no foreach form for `fill`.
"""

from __future__ import annotations

import warnings

import pytest
import torch

from generator import load_spec
from generator.runtime import kernels
from generator.runtime.kernels import CompiledKernel
from paths import run_path

SHAPES = ((3, 4), (2, 3, 4), (5,), (2, 4), (3,), (4, 3))
IMPLS = ("for-loop", "foreach", "fused")


def _run(cls, impl, steps=6, seed=0, **kwargs):
    """Parameters of SHAPES after ``steps`` steps of ``cls`` on ``impl``, with their gradients."""
    return run_path(cls, impl, SHAPES, steps, seed, **kwargs)


def _initial(seed=0):
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(s, generator=gen, dtype=torch.float64) for s in SHAPES]


NESTED = """\
optimizer NestedBug
input lr: float = 0.1
input foreach: bool? = none
input fused: bool? = none
check not is_complex(param) else "no complex parameters"
update:
    g <- grad
    s <- 1.0
    if dim(param) > 1:
        if dim(param) == 2:
            g <- g - mean(g, 1)
            if size(param, 0) > 2:
                g <- g * 0.5
                s <- s + 1
        else:
            g <- g - mean(g, 2)
    param <- param - lr * s * g
"""


def _nested_step(p, g, lr=0.1):
    s = 1.0
    if g.dim() > 1:
        if g.dim() == 2:
            g = g - g.mean(1, keepdim=True)
            if p.size(0) > 2:
                g, s = g * 0.5, s + 1
        else:
            g = g - g.mean(2, keepdim=True)
    return p - lr * s * g


@pytest.mark.parametrize("impl", IMPLS)
def test_a_local_set_in_nested_shape_branches_on_every_path(impl):
    cls = load_spec(NESTED)
    with warnings.catch_warnings():
        # (torch 2.13's inductor fails on one of these kernels: the step runs it uncompiled)
        warnings.simplefilter("ignore", RuntimeWarning)
        _, got, history = _run(cls, impl)
    expected = _initial()
    for grads in history:
        expected = [_nested_step(p, g) for p, g in zip(expected, grads)]
    for shape, a, e in zip(SHAPES, got, expected):
        torch.testing.assert_close(a, e, rtol=1e-12, atol=1e-12, msg=f"{impl} {shape}")


COUNTER_FROM_INPUT = """\
optimizer CounterStart
input lr: float = 0.01
input start: int = 5
input foreach: bool? = none
state optimizer c (c): count <- start
update optimizer:
    c <- c + 1
update:
    param <- param - lr * c * grad
"""


@pytest.mark.parametrize("impl", IMPLS[:2])
@pytest.mark.parametrize("start", [5, -2])
def test_an_optimizer_counter_starts_from_an_input(impl, start):
    opt, got, history = _run(load_spec(COUNTER_FROM_INPUT), impl, steps=4, start=start)
    assert opt.state["c"].item() == start + 4
    expected = _initial()
    for k, grads in enumerate(history, start=1):
        expected = [p - 0.01 * (start + k) * g for p, g in zip(expected, grads)]
    for a, e in zip(got, expected):
        torch.testing.assert_close(a, e, rtol=1e-12, atol=1e-12)


COUNTER_CYCLE = """\
optimizer CounterCycle
input lr: float = 0.01
input foreach: bool? = none
state optimizer c (c): count <- 0
update optimizer:
    c <- 0 if c > 10 else c + 1
update:
    param <- param - lr * c * grad
"""


@pytest.mark.parametrize("impl", IMPLS[:2])
def test_an_optimizer_counter_set_from_its_own_value(impl):
    cls = load_spec(COUNTER_CYCLE)
    seen = []
    p = torch.zeros(2, requires_grad=True)
    opt = cls([p], foreach=impl == "foreach")
    for _ in range(14):
        p.grad = torch.ones(2)
        opt.step()
        seen.append(int(opt.state["c"].item()))
    assert seen == [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 0, 1, 2]
    assert p[0].item() == pytest.approx(-0.01 * sum(seen))


RESETS = {
    "zero": ("m <- 0", 0.0),
    "a number": ("m <- 0.5", 0.5),
    "an input": ("m <- lr", 0.1),
}


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("reset", RESETS, ids=list(RESETS))
def test_a_state_reset_to_a_constant_builds_and_runs(impl, reset):
    line, value = RESETS[reset]
    spec = (
        "optimizer Reset\ninput lr: float = 0.1\ninput foreach: bool? = none\n"
        "input fused: bool? = none\nstate m (m) <- 0\nupdate:\n"
        f"    {line}\n    m <- m + grad\n    param <- param - lr * m\n"
    )
    opt, got, history = _run(load_spec(spec), impl)
    expected = _initial()
    for grads in history:
        expected = [p - 0.1 * (value + g) for p, g in zip(expected, grads)]
    for a, e in zip(got, expected):
        torch.testing.assert_close(a, e, rtol=1e-12, atol=1e-12)
    last = history[-1]
    for p, g in zip(opt.param_groups[0]["params"], last):
        torch.testing.assert_close(opt.state[p]["m"], value + g, rtol=0, atol=1e-15)


def _kernel(p, g, flag: bool):
    if flag:
        p.add_(g, alpha=-0.5)
    else:
        p.sub_(g)


def test_a_compiled_kernel_past_the_recompile_limit_runs_uncompiled(monkeypatch):
    # ordinary use (many optimizers, flags and dtypes in one process) must never hit dynamo's
    # limit as an exception; here it is 1, so the second configuration is refused
    monkeypatch.setattr(
        kernels, "EAGER", False
    )  # (compiled, whatever the environment says)
    kernel = CompiledKernel(
        _kernel, dynamic=True, fullgraph=True, dynamo_config={"recompile_limit": 1}
    )
    results = {}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for dtype in (torch.float32, torch.float64, torch.bfloat16):
            for flag in (True, False):
                p, g = torch.ones(4, dtype=dtype), torch.full((4,), 2.0, dtype=dtype)
                kernel(p, g, flag)
                results[dtype, flag] = p
    for (dtype, flag), p in results.items():
        assert p.tolist() == [0.0] * 4 if flag else [-1.0] * 4, (dtype, flag, p)
    refused = [w for w in caught if "runs the same kernel uncompiled" in str(w.message)]
    assert refused and len(kernel.eager) == len(refused) == 5, [
        str(w.message) for w in caught
    ]
    p = torch.ones(4, dtype=torch.bfloat16)
    kernel(
        p, torch.full((4,), 2.0, dtype=torch.bfloat16), False
    )  # remembered: no warning
    assert p.tolist() == [-1.0] * 4
