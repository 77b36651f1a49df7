"""`state group` counters and `update group:`: a step count kept in each param group's dict
(pytorch_optimizer's ``group['step']``), counted once per group and step before its parameters,
read by the per-parameter update as a number. A parameter without a gradient on some steps still
sees the group's count (a per-parameter counter would lag); the for-loop, foreach and fused paths
agree; the count lives in ``param_groups`` of the state_dict and survives a reload.
"""

from __future__ import annotations

import pytest
import torch

from generator import load_spec

SPEC = """\
optimizer GroupAdam
input lr: float = 1e-2
input beta1: float = 0.9
input foreach: bool? = none
input fused: bool? = none, keyword
state group n (step): count <- 0
state m (exp_avg) <- 0
update group:
    n <- n + 1
update:
    m <- beta1 * m + (1 - beta1) * grad
    param <- param - lr / (1 - beta1^n) * m
"""


def _reference(steps, lr=1e-2, beta1=0.9):
    """By hand: both parameters use the step count of the group, 1, 2, 3, ..."""
    a, b = torch.ones(3), torch.ones(2)
    ma, mb = torch.zeros(3), torch.zeros(2)
    for step in range(1, steps + 1):
        ga = torch.full((3,), 0.5 * step)
        ma.lerp_(ga, 1 - beta1)
        a.add_(ma, alpha=-(lr / (1 - beta1**step)))
        if step not in (1, 3):  # b has no gradient on steps 1 and 3
            gb = torch.full((2,), 0.25 * step)
            mb.lerp_(gb, 1 - beta1)
            b.add_(mb, alpha=-(lr / (1 - beta1**step)))
    return a, b


def _run(cls, steps, **kwargs):
    params = [torch.ones(3, requires_grad=True), torch.ones(2, requires_grad=True)]
    opt = cls(params, **kwargs)
    for step in range(1, steps + 1):
        params[0].grad = torch.full((3,), 0.5 * step)
        params[1].grad = None if step in (1, 3) else torch.full((2,), 0.25 * step)
        opt.step()
    return params, opt


@pytest.mark.parametrize(
    "kwargs", [{"foreach": False}, {"foreach": True}, {"fused": True}], ids=str
)
def test_group_counter_counts_steps_of_the_group(kwargs):
    cls = load_spec(SPEC)
    (a, b), opt = _run(cls, 5, **kwargs)
    ra, rb = _reference(5)
    tol = {"rtol": 1e-6, "atol": 1e-7} if "fused" in kwargs else {"rtol": 0, "atol": 0}
    torch.testing.assert_close(a.detach(), ra, **tol)
    torch.testing.assert_close(b.detach(), rb, **tol)
    assert opt.param_groups[0]["step"] == 5
    assert all("step" not in opt.state[p] for p in (a, b)), "the count is the group's"


def test_group_counter_lives_in_param_groups_and_survives_a_reload():
    cls = load_spec(SPEC)
    _, opt = _run(cls, 3)
    sd = opt.state_dict()
    assert sd["param_groups"][0]["step"] == 3
    params = [torch.ones(3, requires_grad=True), torch.ones(2, requires_grad=True)]
    again = cls(params)
    again.load_state_dict(sd)
    assert again.param_groups[0]["step"] == 3


EAGER = """\
optimizer BaseLr
input lr: float = 0.1
state group n (step): count <- 0
state group b (base_lr): count <- lr, eager
update group:
    n <- n + 1
update:
    param <- param - lr / b * grad
"""


def test_an_eager_group_counter_is_made_when_the_optimizer_is_built():
    """`eager`: the group's value is taken at construction (pytorch_optimizer's base_lrs), so
    a scheduler that changes lr before the first step does not change it."""
    cls = load_spec(EAGER)
    p = torch.ones(2, requires_grad=True)
    opt = cls([p], lr=0.1)
    assert opt.param_groups[0]["base_lr"] == 0.1
    opt.param_groups[0]["lr"] = 0.05
    p.grad = torch.ones(2)
    opt.step()
    assert opt.param_groups[0]["base_lr"] == 0.1
    torch.testing.assert_close(p.detach(), torch.full((2,), 0.5))


OPTIMIZER_COUNT = """\
optimizer OptCount
input lr: float = 1e-2
input foreach: bool? = none
input fused: bool? = none, keyword
state optimizer k (k): count <- 0
state s (s) <- 0
update optimizer:
    k <- k + 1
update:
    s <- s + sqrt(k) * grad
    param <- param - lr * s
"""


@pytest.mark.parametrize(
    "kwargs", [{"foreach": False}, {"foreach": True}, {"fused": True}], ids=str
)
def test_optimizer_counter_beside_update_counts_steps_of_the_optimizer(kwargs):
    """`update optimizer:` beside `update:` (MADGRAD's k): counted once per step in
    ``self.state``; a parameter that missed a step reads the optimizer's count."""
    cls = load_spec(OPTIMIZER_COUNT)
    a, b = torch.zeros(3, requires_grad=True), torch.zeros(2, requires_grad=True)
    opt = cls([a, b], **kwargs)
    for step in range(3):
        a.grad = torch.ones(3)
        b.grad = None if step == 0 else torch.ones(2)
        opt.step()
    lr, r2, r3 = 1e-2, 2**0.5, 3**0.5
    want_a = -lr * (1 + (1 + r2) + (1 + r2 + r3))
    want_b = -lr * (r2 + (r2 + r3))
    tol = {"rtol": 1e-6, "atol": 1e-7}
    torch.testing.assert_close(a.detach(), torch.full((3,), want_a), **tol)
    torch.testing.assert_close(b.detach(), torch.full((2,), want_b), **tol)
    assert opt.state_dict()["state"]["k"].item() == 3
