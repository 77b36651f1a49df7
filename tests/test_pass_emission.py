"""Emission of updates the shipped specs did not reach before a modifier's own passes (SAM's):
a local rebuilt from itself on the foreach path, a lazy state of a later pass on the fused path,
a total summed with a product. Each spec runs on every path it declares, held to its for-loop.
"""

from __future__ import annotations

import pytest
import torch

from generator.api import load_spec
from generator.runtime.kernels import eager_kernels

TWO_PASSES = """optimizer TwoPasses
input lr: float = 0.1
input foreach: bool? = none, keyword
input fused: bool? = none, keyword
state optimizer total: total <- 0
state b (momentum_buffer) lazy
update:
    n <- norm(grad)
    total <- total + n * n
update group:
    scale <- item(1 / (sqrt(total) + 1))
update:
    e <- grad
    e <- param^2 * e
    b <- 0.9 * b + e * scale initially 2 * e * scale
    param <- param - lr * b
"""


def _run(cls, **kwargs):
    g = torch.Generator().manual_seed(0)
    params = [
        torch.randn(s, generator=g, dtype=torch.float64).requires_grad_()
        for s in ((3, 2), (4,), ())
    ]
    opt = cls([{"params": params[:2]}, {"params": params[2:], "lr": 0.05}], **kwargs)
    for step in range(4):
        for p in params:
            p.grad = torch.randn(p.shape, generator=g, dtype=torch.float64)
        opt.step()
    return [p.detach() for p in params]


@pytest.mark.parametrize("path", [{"foreach": True}, {"fused": True}])
def test_every_path_of_a_spec_with_passes_matches_its_for_loop(path):
    # (foreach: `e <- param^2 * e` once overwrote e with param^2 before reading it; fused: the
    # first pass made the momentum buffer, unset, and the second stepped on it; foreach: the
    # total's product lost its second operand)
    cls = load_spec(TWO_PASSES)
    want = _run(cls, foreach=False)
    with eager_kernels():
        got = _run(cls, **path)
    for g, w in zip(got, want, strict=True):
        torch.testing.assert_close(g, w, rtol=1e-12, atol=1e-15)


def test_the_foreach_path_reuses_a_local_nothing_reads_again():
    # (torch's foreach code reuses its buffers: RAdam's bias-corrected average takes the step
    # in place once nothing reads it after, so a step holds two parameter-sized temporaries,
    # the average and the adaptive rate, not a third for the step)
    import math

    from generator.commands.bench import _step_peak_bytes
    from generated import RAdam

    params = [torch.nn.Parameter(torch.randn(256, 256)) for _ in range(4)]
    size = sum(p.numel() * p.element_size() for p in params)
    opt = RAdam(params, foreach=True)
    for step in range(7):  # (past rho_t > 5: the rectified branch, its two temporaries)
        for p in params:
            p.grad = torch.randn_like(p)
        opt.step()
    peak = _step_peak_bytes(torch, torch.device("cpu"), opt.step, lambda: None)
    if math.isnan(peak):
        pytest.skip("this torch's profiler has no memory timeline")
    assert (
        peak <= 2.1 * size
    ), f"a step's temporaries: {peak / size:.2f} × the parameters"


NESTED_READ = """optimizer NestedRead
check not is_complex(param) else "real parameters only"
input lr: float = 0.1
input k: int = 2
input foreach: bool? = none, keyword
state s (s) <- param
state t (step): count <- 0
update:
    t <- t + 1
    x <- 0.5 * grad
    if numel(param) > 4:
        if t % k == 0:
            s <- max(s, abs(x + grad))
        y <- x
    else:
        y <- 2 * grad
    param <- param - lr * (y + s)
"""


def test_the_foreach_path_keeps_a_local_read_after_a_nested_branch():
    # (found by the hypothesis fuzzer: inside two per-parameter branches, `x + grad` ran in
    # place on x's part of the list, though the outer branch reads x after the inner one)
    cls = load_spec(NESTED_READ)
    want = _run(cls, foreach=False)
    got = _run(cls, foreach=True)
    for g, w in zip(got, want, strict=True):
        torch.testing.assert_close(g, w, rtol=1e-12, atol=1e-15)
