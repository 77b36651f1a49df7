"""Several `update:` passes per step with sums over all parameters between them
(`state optimizer NAME: total`, `update group:` values reaching the next pass, `return` ending
the step): a spec for SGD with clipping by the global gradient norm, checked against
torch.nn.utils.clip_grad_norm_ followed by torch.optim.SGD."""

from __future__ import annotations

import pytest
import torch

from generator import load_spec

CLIPPED_SGD = """\
optimizer ClippedSGD
input lr: float = 0.1
input max_norm: float = 1.0
input foreach: bool? = none
state optimizer sq (grad_sq_sum): total <- 0
update optimizer:
    sq <- 0
update:
    sq <- sq + sum(grad * grad)
update group:
    if item(sq) == 0:
        return
    scale <- min(max_norm / (sqrt(item(sq)) + 1e-6), 1)
update:
    param <- param - lr * scale * grad
"""


def _problem(seed):
    gen = torch.Generator().manual_seed(seed)
    shapes = [(4, 3), (7,), (2, 2, 2)]
    params = [torch.randn(s, generator=gen, requires_grad=True) for s in shapes]
    grads = [
        [torch.randn(s, generator=gen) * 10 ** (k % 3 - 1) for s in shapes]
        for k in range(8)
    ]
    return params, grads


@pytest.mark.parametrize("foreach", [False, True])
@pytest.mark.parametrize("max_norm", [0.5, 100.0])
def test_two_passes_clip_by_the_global_norm_as_torch(foreach, max_norm):
    cls = load_spec(CLIPPED_SGD)
    ours, grads = _problem(0)
    theirs = [p.detach().clone().requires_grad_(True) for p in ours]
    opt = cls(
        [{"params": ours[:1]}, {"params": ours[1:]}], max_norm=max_norm, foreach=foreach
    )
    ref = torch.optim.SGD(theirs, lr=0.1)
    for step, gs in enumerate(grads):
        for a, b, g in zip(ours, theirs, gs):
            a.grad, b.grad = g.clone(), g.clone()
        torch.nn.utils.clip_grad_norm_(theirs, max_norm)
        opt.step()
        ref.step()
        for i, (a, b) in enumerate(zip(ours, theirs)):
            torch.testing.assert_close(
                a.detach(),
                b.detach(),
                rtol=2e-6,
                atol=1e-7,
                msg=lambda m: f"step {step}, param #{i}: {m}",
            )
    assert opt.state["grad_sq_sum"].shape == (1,)


def test_the_sum_spans_every_group_and_the_step_ends_on_a_zero_sum():
    cls = load_spec(CLIPPED_SGD)
    a, b = torch.ones(3, requires_grad=True), torch.ones(4, requires_grad=True)
    opt = cls([{"params": [a]}, {"params": [b]}], max_norm=1.0)
    a.grad, b.grad = torch.full((3,), 2.0), torch.full((4,), 1.0)
    opt.step()
    # the global norm is sqrt(3 * 4 + 4 * 1) = 4 for both groups
    assert opt.state["grad_sq_sum"].item() == 16.0
    torch.testing.assert_close(a.detach(), torch.full((3,), 1 - 0.1 * 2 / (4 + 1e-6)))
    torch.testing.assert_close(b.detach(), torch.full((4,), 1 - 0.1 * 1 / (4 + 1e-6)))
    a.grad, b.grad = torch.zeros(3), torch.zeros(4)
    before = a.detach().clone()
    opt.step()
    assert torch.equal(a.detach(), before)


def test_foreach_adds_to_a_total_in_the_order_of_the_for_loop():
    """The foreach pass adds one value per tensor, in order: the sums are bit-identical."""
    cls = load_spec(CLIPPED_SGD)
    runs = []
    for foreach in (False, True):
        params, grads = _problem(1)
        opt = cls(params, max_norm=0.3, foreach=foreach)
        for gs in grads:
            for p, g in zip(params, gs):
                p.grad = g
            opt.step()
        runs.append(([p.detach() for p in params], opt.state["grad_sq_sum"]))
    (loop, s1), (multi, s2) = runs
    assert torch.equal(s1, s2)
    assert all(torch.equal(x, y) for x, y in zip(loop, multi))
